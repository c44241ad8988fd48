// A virtual Vishay VEML7700 on the virtual I2C bus: 16-bit command registers (LSB first), the
// ALS count from the light falling on it, shutdown, the window interrupt flags.
import { Bits, DEVICE_ID, Register } from '../../../drivers/sensors/veml7700';
import { Dither, VirtualRegisterChip } from './chip';

const GAIN: Readonly<Record<number, number>> = { 0: 1, 1: 2, 2: 0.125, 3: 0.25 };
const IT_MS: Readonly<Record<number, number>> = { 12: 25, 8: 50, 0: 100, 1: 200, 2: 400, 3: 800 };

export class VirtualVeml7700 extends VirtualRegisterChip {
  /** Light on the sensor, lux. */
  lux = 0;
  readonly #dither = new Dither();

  // Command codes address 16-bit registers: byte 2c is the LSB of command c, 2c + 1 its MSB.
  protected override pointerOf(first: number): number {
    return (first & 0x7f) * 2;
  }

  protected override read(register: number): number {
    const value = super.read(register);
    if (register === Register.ALS_INT * 2 + 1) this.registers[register] = 0; // flags clear on read
    return value;
  }

  protected update(): void {
    const conf = this.getUint16(Register.ALS_CONF_0 * 2, true);
    if (conf & Bits.SD) return; // shut down: the output keeps its last value
    const perCount = 0.0036 * (800 / (IT_MS[(conf >> 6) & 0b1111] ?? 100)) * (2 / GAIN[(conf >> 11) & 0b11]);
    const counts = Math.max(
      0,
      Math.min(0xffff, Math.round(this.lux / perCount) + (this.lux > 0 ? this.#dither.next() : 0)),
    );
    this.setUint16(Register.ALS * 2, counts, true);
    if (conf & Bits.INT_EN) {
      const high = this.getUint16(Register.ALS_WH * 2, true);
      const low = this.getUint16(Register.ALS_WL * 2, true);
      let flags = this.getUint16(Register.ALS_INT * 2, true);
      if (counts > high) flags |= Bits.INT_TH_HIGH;
      if (counts < low) flags |= Bits.INT_TH_LOW;
      this.setUint16(Register.ALS_INT * 2, flags, true);
    }
  }

  protected reset(): void {
    this.registers.fill(0);
    this.setUint16(Register.ALS_CONF_0 * 2, Bits.SD, true);
    this.setUint16(Register.ID * 2, this.fault === 'wrong-id' ? 0xc455 : 0xc400 | DEVICE_ID, true);
  }

  override transmit(byteLength: number, stop: boolean): Uint8Array {
    this.setUint16(Register.ID * 2, this.fault === 'wrong-id' ? 0xc455 : 0xc400 | DEVICE_ID, true);
    return super.transmit(byteLength, stop);
  }
}
