// A virtual ScioSense ENS160 on the virtual I2C bus: PART_ID, OPMODE, the compensation inputs, and
// the air quality outputs with their validity flag (warm-up for the first minutes after it starts).
import { Config, PART_ID, Register, Status, Validity } from '../../../drivers/sensors/ens160';
import { VirtualRegisterChip } from './chip';

export class VirtualEns160 extends VirtualRegisterChip {
  aqi = 1;
  tvoc = 50;
  eco2 = 450;
  validity: number = Validity.NORMAL;
  #tick = 0;

  protected override read(register: number): number {
    if ((register === Register.PART_ID || register === Register.PART_ID + 1) && this.fault === 'wrong-id')
      return 0x55;
    return super.read(register);
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
