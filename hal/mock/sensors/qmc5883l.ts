// A virtual QST QMC5883L on the virtual I2C bus: the field at the bay (earth's field plus a parked
// vehicle's disturbance, in µT) as signed 16-bit outputs at the configured range, with DRDY and OVL.
// Registers and bits are written from the datasheet, not taken from drivers/sensors/qmc5883l.ts;
// host-tests/twins/sensors.test.ts compares the two.
import { Dither, VirtualRegisterChip } from './chip';

/** QST QMC5883L datasheet (Rev. C) §9.1 register map. */
export const QmcReg = Object.freeze({
  DATA_X_LSB: 0x00, // X, Y, Z as little-endian int16 in 00..05
  STATUS: 0x06,
  TOUT_LSB: 0x07,
  CONTROL_1: 0x09, // OSR[7:6] RNG[5:4] ODR[3:2] MODE[1:0]
  CONTROL_2: 0x0a,
  SET_RESET_PERIOD: 0x0b,
  CHIP_ID: 0x0d,
});

/** §9.2 bits: STATUS DRDY, OVL, DOR; CONTROL_2 SOFT_RST, ROL_PNT, INT_ENB. */
export const QmcBit = Object.freeze({
  DRDY: 1 << 0,
  OVL: 1 << 1,
  DOR: 1 << 2,
  SOFT_RST: 1 << 7,
  ROL_PNT: 1 << 6,
  INT_ENB: 1 << 0,
});

/** §9.2.7: the chip id register reads 0xFF. */
export const QMC_CHIP_ID = 0xff;

/** §2.1 Table 2: field resolution, LSB per gauss at RNG 2 G and 8 G (1 G = 100 µT). */
const LSB_PER_GAUSS = [12_000, 3_000];

export class VirtualQmc5883l extends VirtualRegisterChip {
  /** Flux density at the sensor, µT. */
  field = { x: 20, y: 5, z: -42 };
  readonly #dither = new Dither();

  protected override read(register: number): number {
    if (register === QmcReg.CHIP_ID && this.fault === 'wrong-id') return 0x00;
    return super.read(register);
  }

  protected override write(register: number, value: number): void {
    if (register === QmcReg.CONTROL_2 && value & QmcBit.SOFT_RST) {
      this.reset();
      return;
    }
    super.write(register, value);
  }

  protected update(): void {
    const r = this.registers;
    if ((r[QmcReg.CONTROL_1] & 0b11) === 0) return; // standby
    const lsbPerUt = LSB_PER_GAUSS[(r[QmcReg.CONTROL_1] >> 4) & 0b11] / 100;
    let overflow = false;
    [this.field.x, this.field.y, this.field.z].forEach((ut, i) => {
      let digits = Math.round(ut * lsbPerUt) + this.#dither.next();
      if (digits > 32767 || digits < -32768) {
        overflow = true;
        digits = Math.max(-32768, Math.min(32767, digits));
      }
      this.setUint16(QmcReg.DATA_X_LSB + 2 * i, digits & 0xffff, true);
    });
    r[QmcReg.STATUS] = QmcBit.DRDY | (overflow ? QmcBit.OVL : 0);
  }

  protected reset(): void {
    this.registers.fill(0);
    this.registers[QmcReg.CHIP_ID] = QMC_CHIP_ID;
  }
}
