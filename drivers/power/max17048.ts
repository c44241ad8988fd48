// Maxim (Analog Devices) MAX17048 1-cell fuel gauge with ModelGauge over I2C: one per battery pack
// (disposable, rechargeable, backup). Datasheet: MAX17048/MAX17049, 19-6171 Rev 7 (Table 2
// register summary; register descriptions; Table 3 STATUS bits). Registers are 16-bit big-endian.
import { I2cRegisters, type I2cSensorBus, openBus, SensorIdentityError } from '../sensors/registers';

export const Register = Object.freeze({
  VCELL: 0x02, // 78.125 µV per LSB
  SOC: 0x04, // 1/256 % per LSB
  MODE: 0x06,
  VERSION: 0x08,
  HIBRT: 0x0a,
  CONFIG: 0x0c,
  VALRT: 0x14,
  CRATE: 0x16, // 0.208 %/h per LSB, signed
  VRESET_ID: 0x18,
  STATUS: 0x1a,
  CMD: 0xfe,
});

export const Bits = Object.freeze({
  QUICK_START: 0b0100_0000_0000_0000, // MODE
  EN_SLEEP: 0b0010_0000_0000_0000,
  HIB_STAT: 0b0001_0000_0000_0000,
  SLEEP: 0b0000_0000_1000_0000, // CONFIG low byte
  ALSC: 0b0000_0000_0100_0000,
  ALRT: 0b0000_0000_0010_0000,
  ATHD: 0b0000_0000_0001_1111, // empty alert at 32 - ATHD %
  RI: 0b0000_0001_0000_0000, // STATUS: reset indicator (power-up: a pack was connected)
  VH: 0b0000_0010_0000_0000,
  VL: 0b0000_0100_0000_0000,
  VR: 0b0000_1000_0000_0000, // voltage reset: the cell dropped out (a pack swap)
  HD: 0b0001_0000_0000_0000, // SOC low (below the ATHD threshold)
  SC: 0b0010_0000_0000_0000, // SOC changed by 1 %
  EN_VR: 0b0100_0000_0000_0000,
});

export const VERSION_MASK = 0xfff0;
export const VERSION_VALUE = 0x0010; // VERSION reads 0x001_
export const POWER_ON_RESET = 0x5400; // CMD
export const HIBRT_DEFAULT = 0x8030;

export interface Max17048Options {
  sensor: I2cSensorBus;
  onError?: (message: string) => void;
}

export interface Max17048Configuration {
  /** Empty alert threshold in percent, 1..32. */
  emptyAlert?: number;
  /** Voltage alert window in volts (20 mV steps). */
  voltageAlert?: { min: number; max: number };
  /** ModelGauge temperature compensation byte (default 0x97). */
  rcomp?: number;
  /** Alert on a voltage reset (a pack drop-out), the swap detector. */
  resetAlert?: boolean;
  /** Automatic hibernate (the default thresholds) or always active. */
  hibernate?: boolean;
}

export interface Max17048Sample {
  battery: { voltage: number; percent: number; rate: number };
}

export interface Max17048Status {
  resetIndicator: boolean;
  voltageHigh: boolean;
  voltageLow: boolean;
  voltageReset: boolean;
  low: boolean;
  changed: boolean;
}

export class MAX17048 {
  #registers: I2cRegisters | undefined;
  #rcomp = 0x97;
  #emptyAlert = 4;

  constructor(options: Max17048Options) {
    const io = openBus(options.sensor, { address: 0x36, hz: 400_000 });
    const registers = new I2cRegisters(io);
    try {
      const version = registers.readUint16(Register.VERSION, false);
      if ((version & VERSION_MASK) !== VERSION_VALUE) throw new SensorIdentityError('MAX17048', version);
    } catch (error) {
      io.close();
      throw error;
    }
    this.#registers = registers;
    this.configure({});
  }

  configure(options: Max17048Configuration): void {
    const r = this.#live();
    if (options.rcomp !== undefined) this.#rcomp = options.rcomp & 0xff;
    if (options.emptyAlert !== undefined)
      this.#emptyAlert = Math.max(1, Math.min(32, Math.round(options.emptyAlert)));
    r.writeUint16(Register.CONFIG, (this.#rcomp << 8) | ((32 - this.#emptyAlert) & Bits.ATHD), false);
    if (options.voltageAlert) {
      const step = (v: number) => Math.max(0, Math.min(0xff, Math.round(v / 0.02)));
      r.writeUint16(
        Register.VALRT,
        (step(options.voltageAlert.min) << 8) | step(options.voltageAlert.max),
        false,
      );
    }
    if (options.resetAlert !== undefined) {
      const status = r.readUint16(Register.STATUS, false);
      r.writeUint16(Register.STATUS, options.resetAlert ? status | Bits.EN_VR : status & ~Bits.EN_VR, false);
    }
    if (options.hibernate !== undefined)
      r.writeUint16(Register.HIBRT, options.hibernate ? HIBRT_DEFAULT : 0, false);
  }

  sample(): Max17048Sample {
    const r = this.#live();
    const vcell = r.readUint16(Register.VCELL, false);
    const soc = r.readUint16(Register.SOC, false);
    const crate = r.readUint16(Register.CRATE, false);
    return {
      battery: {
        voltage: (vcell * 78.125) / 1_000_000,
        percent: Math.min(100, soc / 256),
        rate: ((crate << 16) >> 16) * 0.208,
      },
    };
  }

  status(): Max17048Status {
    const s = this.#live().readUint16(Register.STATUS, false);
    return {
      resetIndicator: (s & Bits.RI) !== 0,
      voltageHigh: (s & Bits.VH) !== 0,
      voltageLow: (s & Bits.VL) !== 0,
      voltageReset: (s & Bits.VR) !== 0,
      low: (s & Bits.HD) !== 0,
      changed: (s & Bits.SC) !== 0,
    };
  }

  /** Clears the RI and alert flags (and CONFIG.ALRT) once the firmware has acted on them. */
  clearStatus(): void {
    const r = this.#live();
    const s = r.readUint16(Register.STATUS, false);
    r.writeUint16(Register.STATUS, s & Bits.EN_VR, false);
    const config = r.readUint16(Register.CONFIG, false);
    r.writeUint16(Register.CONFIG, config & ~Bits.ALRT, false);
  }

  /** Restarts fuel-gauge calculations from the present voltage (after a pack insertion). */
  quickStart(): void {
    this.#live().writeUint16(Register.MODE, Bits.QUICK_START, false);
  }

  close(): void {
    const registers = this.#registers;
    if (!registers) return;
    this.#registers = undefined;
    registers.close();
  }

  #live(): I2cRegisters {
    if (!this.#registers) throw new Error('MAX17048 closed');
    return this.#registers;
  }
}
