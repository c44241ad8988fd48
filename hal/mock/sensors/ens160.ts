// A virtual ScioSense ENS160 on the virtual I2C bus: PART_ID, OPMODE, the compensation inputs, and
// the air quality outputs with their validity flag (warm-up for the first minutes after it starts).
import { Config, misrStep, PART_ID, Register, Status, Validity } from '../../../drivers/sensors/ens160';
import { VirtualRegisterChip } from './chip';

export class VirtualEns160 extends VirtualRegisterChip {
  aqi = 1;
  tvoc = 50;
  eco2 = 450;
  validity: number = Validity.NORMAL;
  #tick = 0;

  /** Line noise: the next data bytes read arrive with a bit flipped (after the chip's MISR took them). */
  corruptReads = 0;
  /** DATA_MISR (a plain field: reset() runs from the base constructor, before private fields exist). */
  protected misr = 0;

  protected override read(register: number): number {
    if ((register === Register.PART_ID || register === Register.PART_ID + 1) && this.fault === 'wrong-id')
      return 0x55;
    if (register === Register.DATA_MISR) return this.misr;
    const value = super.read(register);
    if (register >= Register.DATA_AQI && register < Register.DATA_MISR) {
      // §16.2.7: NEWDAT clears once the data are read; §16.2.13: each data byte sent goes into the MISR.
      this.registers[Register.DEVICE_STATUS] &= ~Status.NEWDAT;
      this.misr = misrStep(this.misr, value);
      if (this.corruptReads > 0) {
        this.corruptReads--;
        return value ^ 0b0001_0000;
      }
    }
    return value;
  }

  protected update(): void {
    const r = this.registers;
    const mode = r[Register.OPMODE];
    if (mode !== Config.Mode.STANDARD) {
      r[Register.DEVICE_STATUS] =
        mode === Config.Mode.IDLE || mode === Config.Mode.DEEP_SLEEP ? 0 : Status.STATER;
      return;
    }
    this.#tick++;
    r[Register.DEVICE_STATUS] = Status.STATAS | (this.validity << 2) | Status.NEWDAT;
    r[Register.DATA_AQI] = this.aqi & 0b111;
    this.setUint16(Register.DATA_TVOC, this.tvoc + (this.#tick % 2), true);
    this.setUint16(Register.DATA_ECO2, this.eco2, true);
  }

  protected reset(): void {
    this.misr = 0;
    this.registers.fill(0);
    this.setUint16(Register.PART_ID, PART_ID, true);
    this.setUint16(Register.DATA_RH, 50 * 512, true);
  }

  /** The compensation the host last wrote: °C and %RH. */
  get compensation(): { temperature: number; humidity: number } {
    return {
      temperature: this.getUint16(Register.TEMP_IN, true) / 64 - 273.15,
      humidity: this.getUint16(Register.RH_IN, true) / 512,
    };
  }
}
