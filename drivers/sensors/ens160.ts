// ScioSense ENS160 digital metal-oxide multi-gas sensor over I2C: air quality index (UBA), TVOC and
// equivalent CO2, compensated with the SHT31's temperature and humidity. Datasheet: ENS160,
// Revision 0.95 (§16 registers: 16.1 overview, 16.2.2 OPMODE, 16.2.5 TEMP_IN, 16.2.6 RH_IN,
// 16.2.7 DEVICE_STATUS). Registers are little-endian.
import { I2cRegisters, type I2cSensorBus, openBus, SensorIdentityError } from './registers';

export const Register = Object.freeze({
  PART_ID: 0x00,
  OPMODE: 0x10,
  CONFIG: 0x11,
  COMMAND: 0x12,
  TEMP_IN: 0x13,
  RH_IN: 0x15,
  DEVICE_STATUS: 0x20,
  DATA_AQI: 0x21,
  DATA_TVOC: 0x22,
  DATA_ECO2: 0x24,
  DATA_T: 0x30,
  DATA_RH: 0x32,
  DATA_MISR: 0x38,
});

export const PART_ID = 0x0160; // §16.1 Table 16

export const Config = Object.freeze({
  Mode: Object.freeze({ DEEP_SLEEP: 0x00, IDLE: 0x01, STANDARD: 0x02, RESET: 0xf0 }),
});

export const Status = Object.freeze({
  STATAS: 0b1000_0000, // an OPMODE is running
  STATER: 0b0100_0000, // error: invalid operating mode selected
  VALIDITY: 0b0000_1100, // 0 normal, 1 warm-up, 2 initial start-up, 3 invalid output
  NEWDAT: 0b0000_0010,
});

/** §16.2.13: DATA_MISR polynomial x^8 + x^4 + x^3 + x^2 + 1. */
const MISR_POLY = 0x1d;

/** One step of the ENS160's data checksum (MISR) over a byte read from the DATA_ registers. */
export function misrStep(misr: number, byte: number): number {
  const shifted = ((misr << 1) ^ byte) & 0xff;
  return misr & 0x80 ? shifted ^ MISR_POLY : shifted;
}

export const Validity = Object.freeze({ NORMAL: 0, WARM_UP: 1, INITIAL_START_UP: 2, INVALID: 3 });

export interface Ens160Options {
  sensor: I2cSensorBus;
  onError?: (message: string) => void;
}

export interface Ens160Configuration {
  mode?: number;
  /** Ambient conditions for the on-chip compensation. */
  compensation?: { temperature: number; humidity: number };
}

export interface Ens160Sample {
  airQuality: { aqi: number; tvoc: number; eco2: number; validity: number; fresh: boolean };
}

export class ENS160 {
  #registers: I2cRegisters | undefined;
  readonly #onError: ((message: string) => void) | undefined;
  readonly #data = new Uint8Array(5);
  #mode: number = Config.Mode.STANDARD;

  constructor(options: Ens160Options) {
    const io = openBus(options.sensor, { address: 0x52, hz: 400_000 });
    const registers = new I2cRegisters(io);
    try {
      const id = registers.readUint16(Register.PART_ID, true);
      if (id !== PART_ID) throw new SensorIdentityError('ENS160', id);
    } catch (error) {
      io.close();
      throw error;
    }
    this.#registers = registers;
    this.#onError = options.onError;
    this.configure({});
  }

  configure(options: Ens160Configuration): void {
    const r = this.#live();
    if (options.mode !== undefined) this.#mode = options.mode;
    r.writeUint8(Register.OPMODE, this.#mode);
    if (options.compensation) {
      // §16.2.5: Kelvin × 64; §16.2.6: %RH × 512. LSB first; the MSB write takes effect.
      r.writeUint16(Register.TEMP_IN, Math.round((options.compensation.temperature + 273.15) * 64), true);
      r.writeUint16(
        Register.RH_IN,
        Math.round(Math.max(0, Math.min(100, options.compensation.humidity)) * 512),
        true,
      );
    }
  }

  sample(): Ens160Sample {
    const r = this.#live();
    const status = r.readUint8(Register.DEVICE_STATUS);
    if (status & Status.STATER) this.#onError?.('device status error');
    // The chip folds every DATA_ byte it sends into DATA_MISR: the same fold over the bytes
    // received, from the value before, must give the value after, or the read was corrupted.
    const before = r.readUint8(Register.DATA_MISR);
    const d = r.readBlock(Register.DATA_AQI, this.#data);
    let misr = before;
    for (let i = 0; i < d.length; i++) misr = misrStep(misr, d[i]);
    const after = r.readUint8(Register.DATA_MISR);
    if (after !== misr)
      this.#onError?.(`data checksum (DATA_MISR 0x${after.toString(16)}, expected 0x${misr.toString(16)})`);
    return {
      airQuality: {
        aqi: d[0] & 0b111,
        tvoc: d[1] | (d[2] << 8),
        eco2: d[3] | (d[4] << 8),
        validity: (status & Status.VALIDITY) >> 2,
        fresh: (status & Status.NEWDAT) !== 0,
      },
    };
  }

  close(): void {
    const registers = this.#registers;
    if (!registers) return;
    this.#registers = undefined;
    try {
      registers.writeUint8(Register.OPMODE, Config.Mode.DEEP_SLEEP);
    } catch {
      // a chip that does not answer draws nothing to save
    }
    registers.close();
  }

  #live(): I2cRegisters {
    if (!this.#registers) throw new Error('ENS160 closed');
    return this.#registers;
  }
}
