// A virtual Vishay VEML7700 on the virtual I2C bus: 16-bit command registers (LSB first), the
// ALS count from the light falling on it, shutdown, the window interrupt flags. Command codes and
// bits are written from the datasheet, not taken from drivers/sensors/veml7700.ts;
// host-tests/twins/sensors.test.ts compares the two.
import { Dither, VirtualRegisterChip } from './chip';

/** VEML7700 datasheet (Vishay 84286) command codes. */
export const VemlCommand = Object.freeze({
  ALS_CONF_0: 0x00,
  ALS_WH: 0x01,
  ALS_WL: 0x02,
  POWER_SAVING: 0x03,
  ALS: 0x04,
  WHITE: 0x05,
  ALS_INT: 0x06,
  ID: 0x07,
});

/** ALS_CONF_0: ALS_GAIN [12:11], ALS_IT [9:6], ALS_PERS [5:4], ALS_INT_EN [1], ALS_SD [0]; ALS_INT flags [15:14]. */
export const VemlBit = Object.freeze({
  ALS_SD: 1 << 0,
  ALS_INT_EN: 1 << 1,
  INT_TH_HIGH: 1 << 14,
  INT_TH_LOW: 1 << 15,
});

/** ID register: device id code 0x81 in the low byte; 0xC4 in the high byte for address 0x10. */
export const VEML_ID = 0xc481;

/** ALS_GAIN codes: ×1, ×2, ×1/8, ×1/4. */
const GAIN: Readonly<Record<number, number>> = { 0: 1, 1: 2, 2: 0.125, 3: 0.25 };
/** ALS_IT codes → integration time, ms. */
const IT_MS: Readonly<Record<number, number>> = { 12: 25, 8: 50, 0: 100, 1: 200, 2: 400, 3: 800 };
/** Resolution table: 0.0036 lx per count at gain ×2 and 800 ms. */
const LUX_PER_COUNT_X2_800MS = 0.0036;

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
    if (register === VemlCommand.ALS_INT * 2 + 1) this.registers[register] = 0; // flags clear on read
    return value;
  }

  protected update(): void {
    const conf = this.getUint16(VemlCommand.ALS_CONF_0 * 2, true);
    if (conf & VemlBit.ALS_SD) return; // shut down: the output keeps its last value
    const perCount =
      LUX_PER_COUNT_X2_800MS * (800 / (IT_MS[(conf >> 6) & 0b1111] ?? 100)) * (2 / GAIN[(conf >> 11) & 0b11]);
    const counts = Math.max(
      0,
      Math.min(0xffff, Math.round(this.lux / perCount) + (this.lux > 0 ? this.#dither.next() : 0)),
    );
    this.setUint16(VemlCommand.ALS * 2, counts, true);
    if (conf & VemlBit.ALS_INT_EN) {
      const high = this.getUint16(VemlCommand.ALS_WH * 2, true);
      const low = this.getUint16(VemlCommand.ALS_WL * 2, true);
      let flags = this.getUint16(VemlCommand.ALS_INT * 2, true);
      if (counts > high) flags |= VemlBit.INT_TH_HIGH;
      if (counts < low) flags |= VemlBit.INT_TH_LOW;
      this.setUint16(VemlCommand.ALS_INT * 2, flags, true);
    }
  }

  protected reset(): void {
    this.registers.fill(0);
    this.setUint16(VemlCommand.ALS_CONF_0 * 2, VemlBit.ALS_SD, true);
    this.setUint16(VemlCommand.ID * 2, this.fault === 'wrong-id' ? 0xc455 : VEML_ID, true);
  }

  override transmit(byteLength: number, stop: boolean): Uint8Array {
    this.setUint16(VemlCommand.ID * 2, this.fault === 'wrong-id' ? 0xc455 : VEML_ID, true);
    return super.transmit(byteLength, stop);
  }
}
