// A virtual QST QMC5883L on the virtual I2C bus: the field at the bay (earth's field plus a parked
// vehicle's disturbance, in µT) as signed 16-bit outputs at the configured range, with DRDY and OVL.
import { Bits, CHIP_ID, Register } from '../../../drivers/sensors/qmc5883l';
import { Dither, VirtualRegisterChip } from './chip';

const LSB_PER_GAUSS = [12_000, 3_000];

export class VirtualQmc5883l extends VirtualRegisterChip {
  /** Flux density at the sensor, µT. */
  field = { x: 20, y: 5, z: -42 };
  readonly #dither = new Dither();

  protected override read(register: number): number {
    if (register === Register.CHIP_ID && this.fault === 'wrong-id') return 0x00;
    return super.read(register);
  }

  protected override write(register: number, value: number): void {
    if (register === Register.CONTROL_2 && value & Bits.SOFT_RST) {
      this.reset();
      return;
    }
    super.write(register, value);
  }

  protected update(): void {
    const r = this.registers;
    if ((r[Register.CONTROL_1] & 0b11) === 0) return; // standby
    const lsbPerUt = LSB_PER_GAUSS[(r[Register.CONTROL_1] >> 4) & 0b11] / 100;
    let overflow = false;
    [this.field.x, this.field.y, this.field.z].forEach((ut, i) => {
      let digits = Math.round(ut * lsbPerUt) + this.#dither.next();
      if (digits > 32767 || digits < -32768) {
        overflow = true;
        digits = Math.max(-32768, Math.min(32767, digits));
      }
      this.setUint16(Register.X_LSB + 2 * i, digits & 0xffff, true);
    });
    r[Register.STATUS] = Bits.DRDY | (overflow ? Bits.OVL : 0);
  }

  protected reset(): void {
    this.registers.fill(0);
    this.registers[Register.CHIP_ID] = CHIP_ID;
  }
}
