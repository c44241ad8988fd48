// QST QMC5883L 3-axis magnetometer over I2C: one per bay, under the surface, for geomagnetic
// vehicle detection. Datasheet: QMC5883L, Rev. 1.0 (§9.1 register map Table 13, §9.2 registers).
// Output registers are little-endian signed 16-bit.
import { I2cRegisters, type I2cSensorBus, openBus, SensorIdentityError } from './registers';

export const Register = Object.freeze({
  X_LSB: 0x00,
  STATUS: 0x06,
  TEMP_LSB: 0x07,
  CONTROL_1: 0x09,
  CONTROL_2: 0x0a,
  SET_RESET_PERIOD: 0x0b,
  CHIP_ID: 0x0d,
});

export const CHIP_ID = 0xff; // §9.2.7
export const SET_RESET_PERIOD = 0x01; // §9.2.6: recommended value

export const Bits = Object.freeze({
  DRDY: 0b0000_0001, // STATUS: data ready
  OVL: 0b0000_0010, // overflow: a field beyond the range
  DOR: 0b0000_0100, // data skipped
  SOFT_RST: 0b1000_0000, // CONTROL_2
  ROL_PNT: 0b0100_0000, // CONTROL_2: pointer roll-over
  INT_ENB: 0b0000_0001, // CONTROL_2: 1 disables the DRDY pin
});

export const Config = Object.freeze({
  Mode: Object.freeze({ STANDBY: 0b00, CONTINUOUS: 0b01 }),
  DataRate: Object.freeze({ HZ_10: 0b00, HZ_50: 0b01, HZ_100: 0b10, HZ_200: 0b11 }),
  Range: Object.freeze({ GAUSS_2: 0b00, GAUSS_8: 0b01 }),
  OverSampling: Object.freeze({ OSR_512: 0b00, OSR_256: 0b01, OSR_128: 0b10, OSR_64: 0b11 }),
});

/** LSB per gauss by range (§2.1 Table 2: field resolution); 1 G = 100 µT. */
const LSB_PER_GAUSS: readonly number[] = [12_000, 3_000];

export interface Qmc5883lOptions {
  sensor: I2cSensorBus;
  onError?: (message: string) => void;
}

export interface Qmc5883lConfiguration {
  mode?: number;
  rate?: number;
  range?: number;
  overSampling?: number;
}

export class QMC5883L {
  #registers: I2cRegisters | undefined;
  readonly #onError: ((message: string) => void) | undefined;
  readonly #data = new Uint8Array(6);
  #mode: number = Config.Mode.CONTINUOUS;
  #rate: number = Config.DataRate.HZ_10;
  #range: number = Config.Range.GAUSS_8;
  #overSampling: number = Config.OverSampling.OSR_512;

  constructor(options: Qmc5883lOptions) {
    const io = openBus(options.sensor, { address: 0x0d, hz: 400_000 });
    const registers = new I2cRegisters(io);
    try {
      const id = registers.readUint8(Register.CHIP_ID);
      if (id !== CHIP_ID) throw new SensorIdentityError('QMC5883L', id);
      registers.writeUint8(Register.CONTROL_2, Bits.SOFT_RST);
      registers.writeUint8(Register.CONTROL_2, Bits.ROL_PNT | Bits.INT_ENB);
      registers.writeUint8(Register.SET_RESET_PERIOD, SET_RESET_PERIOD);
    } catch (error) {
      io.close();
      throw error;
    }
    this.#registers = registers;
    this.#onError = options.onError;
    this.configure({});
  }

  configure(options: Qmc5883lConfiguration): void {
    if (options.mode !== undefined) this.#mode = options.mode & 0b11;
    if (options.rate !== undefined) this.#rate = options.rate & 0b11;
    if (options.range !== undefined) this.#range = options.range & 0b11;
    if (options.overSampling !== undefined) this.#overSampling = options.overSampling & 0b11;
    this.#live().writeUint8(
      Register.CONTROL_1,
      (this.#overSampling << 6) | (this.#range << 4) | (this.#rate << 2) | this.#mode,
    );
  }

  /** Flux density in µT; an overflowing axis is reported to onError (the values saturate). */
  sample(): { magnetometer: { x: number; y: number; z: number } } {
    const r = this.#live();
    const status = r.readUint8(Register.STATUS);
    if (status & Bits.OVL) this.#onError?.('magnetic overflow');
    const d = r.readBlock(Register.X_LSB, this.#data);
    const scale = 100 / LSB_PER_GAUSS[this.#range];
    const axis = (i: number) => (((d[i + 1] << 24) | (d[i] << 16)) >> 16) * scale;
    return { magnetometer: { x: axis(0), y: axis(2), z: axis(4) } };
  }

  close(): void {
    const registers = this.#registers;
    if (!registers) return;
    this.#registers = undefined;
    try {
      registers.writeUint8(Register.CONTROL_1, Config.Mode.STANDBY);
    } catch {
      // a chip that does not answer draws nothing to save
    }
    registers.close();
  }

  #live(): I2cRegisters {
    if (!this.#registers) throw new Error('QMC5883L closed');
    return this.#registers;
  }
}
