// A virtual ScioSense ENS160 on the virtual I2C bus: PART_ID, OPMODE, the compensation inputs, and
// the air quality outputs with their validity flag (warm-up for the first minutes after it starts).
// Registers, modes, status bits and the MISR are written from the datasheet, not taken from
// drivers/sensors/ens160.ts; host-tests/twins/sensors.test.ts compares the two.
import { VirtualRegisterChip } from './chip';

/** ENS160 datasheet (ScioSense, SC-001224-DS) §16.1 Table 16: register map. */
export const EnsReg = Object.freeze({
  PART_ID: 0x00, // 2 bytes, little-endian
  OPMODE: 0x10,
  CONFIG: 0x11,
  COMMAND: 0x12,
  TEMP_IN: 0x13, // Kelvin × 64
  RH_IN: 0x15, // %RH × 512
  DEVICE_STATUS: 0x20,
  DATA_AQI: 0x21,
  DATA_TVOC: 0x22,
  DATA_ECO2: 0x24,
  DATA_T: 0x30,
  DATA_RH: 0x32,
  DATA_MISR: 0x38,
});

/** §16.1: PART_ID reads 0x0160. */
export const ENS_PART_ID = 0x0160;

/** §16.2.2 OPMODE values. */
export const EnsMode = Object.freeze({ DEEP_SLEEP: 0x00, IDLE: 0x01, STANDARD: 0x02, RESET: 0xf0 });

/** §16.2.7 DEVICE_STATUS: STATAS [7], STATER [6], VALIDITY FLAG [3:2], NEWDAT [1], NEWGPR [0]. */
export const EnsStatus = Object.freeze({ STATAS: 1 << 7, STATER: 1 << 6, NEWDAT: 1 << 1, NEWGPR: 1 << 0 });

/** §16.2.7 validity flag: 0 normal, 1 warm-up, 2 initial start-up, 3 invalid output. */
export const EnsValidity = Object.freeze({ NORMAL: 0, WARM_UP: 1, INITIAL_START_UP: 2, INVALID: 3 });

/** §16.2.13: DATA_MISR, a MISR over each data byte sent, polynomial x^8 + x^4 + x^3 + x^2 + 1. */
export function ensMisr(misr: number, byte: number): number {
  const next = ((misr << 1) ^ byte) & 0xff;
  return misr & 0x80 ? next ^ 0b0001_1101 : next;
}

export class VirtualEns160 extends VirtualRegisterChip {
  aqi = 1;
  tvoc = 50;
  eco2 = 450;
  validity: number = EnsValidity.NORMAL;
  #tick = 0;

  /** Line noise: the next data bytes read arrive with a bit flipped (after the chip's MISR took them). */
  corruptReads = 0;
  /** DATA_MISR (a plain field: reset() runs from the base constructor, before private fields exist). */
  protected misr = 0;

  protected override read(register: number): number {
    if ((register === EnsReg.PART_ID || register === EnsReg.PART_ID + 1) && this.fault === 'wrong-id')
      return 0x55;
    if (register === EnsReg.DATA_MISR) return this.misr;
    const value = super.read(register);
    if (register >= EnsReg.DATA_AQI && register < EnsReg.DATA_MISR) {
      // §16.2.7: NEWDAT clears once the data are read; §16.2.13: each data byte sent goes into the MISR.
      this.registers[EnsReg.DEVICE_STATUS] &= ~EnsStatus.NEWDAT;
      this.misr = ensMisr(this.misr, value);
      if (this.corruptReads > 0) {
        this.corruptReads--;
        return value ^ 0b0001_0000;
      }
    }
    return value;
  }

  protected update(): void {
    const r = this.registers;
    const mode = r[EnsReg.OPMODE];
    if (mode !== EnsMode.STANDARD) {
      r[EnsReg.DEVICE_STATUS] = mode === EnsMode.IDLE || mode === EnsMode.DEEP_SLEEP ? 0 : EnsStatus.STATER;
      return;
    }
    this.#tick++;
    r[EnsReg.DEVICE_STATUS] = EnsStatus.STATAS | (this.validity << 2) | EnsStatus.NEWDAT;
    r[EnsReg.DATA_AQI] = this.aqi & 0b111;
    this.setUint16(EnsReg.DATA_TVOC, this.tvoc + (this.#tick % 2), true);
    this.setUint16(EnsReg.DATA_ECO2, this.eco2, true);
  }

  protected reset(): void {
    this.misr = 0;
    this.registers.fill(0);
    this.setUint16(EnsReg.PART_ID, ENS_PART_ID, true);
    this.setUint16(EnsReg.DATA_RH, 50 * 512, true);
  }

  /** The compensation the host last wrote: °C and %RH. */
  get compensation(): { temperature: number; humidity: number } {
    return {
      temperature: this.getUint16(EnsReg.TEMP_IN, true) / 64 - 273.15,
      humidity: this.getUint16(EnsReg.RH_IN, true) / 512,
    };
  }
}
