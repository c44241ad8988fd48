// ST LIS3DH 3-axis accelerometer over I2C with its INT1 pin: tilt from the gravity vector, and
// vibration from the high-pass filtered interrupt that wakes the meter. Datasheet: LIS3DH, DocID
// 17530 Rev 2 (register description §8, mapping Table 17), and application note AN3308.
import type { Digital, DigitalOptions, IOClass } from '../../hal/io';
import { I2cRegisters, type I2cSensorBus, openBus, SensorIdentityError } from './registers';

export const Register = Object.freeze({
  WHO_AM_I: 0x0f,
  CTRL_REG1: 0x20,
  CTRL_REG2: 0x21,
  CTRL_REG3: 0x22,
  CTRL_REG4: 0x23,
  CTRL_REG5: 0x24,
  CTRL_REG6: 0x25,
  REFERENCE: 0x26, // reading it resets the high-pass filter
  STATUS_REG: 0x27,
  OUT_X_L: 0x28,
  INT1_CFG: 0x30,
  INT1_SRC: 0x31, // reading it clears a latched interrupt
  INT1_THS: 0x32,
  INT1_DURATION: 0x33,
});

export const WHO_AM_I_VALUE = 0x33; // §8.6
export const AUTO_INCREMENT = 0b1000_0000; // §6.1.1: sub-address MSB set for multi-byte reads

export const Bits = Object.freeze({
  LPEN: 0b0000_1000, // CTRL_REG1 low-power mode
  XYZ_EN: 0b0000_0111,
  HPIS1: 0b0000_0001, // CTRL_REG2: high-pass filter on the INT1 function
  I1_IA1: 0b0100_0000, // CTRL_REG3: IA1 interrupt on INT1
  BDU: 0b1000_0000, // CTRL_REG4 block data update
  HR: 0b0000_1000, // CTRL_REG4 high resolution
  LIR_INT1: 0b0000_1000, // CTRL_REG5 latch INT1
  INT_POLARITY: 0b0000_0010, // CTRL_REG6: 1 = active low
  OR_HIGH_EVENTS: 0b0010_1010, // INT1_CFG: ZHIE | YHIE | XHIE, OR combination
  IA: 0b0100_0000, // INT1_SRC interrupt active
});

export const Config = Object.freeze({
  Range: Object.freeze({ RANGE_2_G: 0b00, RANGE_4_G: 0b01, RANGE_8_G: 0b10, RANGE_16_G: 0b11 }),
  DataRate: Object.freeze({
    POWER_DOWN: 0,
    HZ_1: 0b0001,
    HZ_10: 0b0010,
    HZ_25: 0b0011,
    HZ_50: 0b0100,
    HZ_100: 0b0101,
  }),
});

/** mg per digit of the 12-bit high-resolution output by range (§2.1 Table 4, So). */
const SENSITIVITY_MG: readonly number[] = [1, 2, 4, 12];
/** mg per LSB of INT1_THS by range (§8.21). */
const THRESHOLD_MG: readonly number[] = [16, 32, 62, 186];
const RATE_HZ: Readonly<Record<number, number>> = { 1: 1, 2: 10, 3: 25, 4: 50, 5: 100 };
const G = 9.80665;

export interface Lis3dhOptions {
  sensor: I2cSensorBus;
  /** The INT1 line (open collector to the ESP32, active low), for the wake-up. */
  alert?: { io: IOClass<Digital, DigitalOptions>; pin: number };
  onAlert?: () => void;
  onError?: (message: string) => void;
}

export interface Lis3dhConfiguration {
  range?: number;
  rate?: number;
  /** Movement interrupt: high-pass filtered acceleration over `threshold` g for `duration` samples. */
  alert?: { threshold: number; duration?: number };
}

export class LIS3DH {
  #registers: I2cRegisters | undefined;
  #monitor: Digital | undefined;
  readonly #values = new Uint8Array(6);
  #range: number = Config.Range.RANGE_2_G;
  #rate: number = Config.DataRate.HZ_10;

  constructor(options: Lis3dhOptions) {
    const io = openBus(options.sensor, { address: 0x18, hz: 400_000 });
    const registers = new I2cRegisters(io);
    try {
      const id = registers.readUint8(Register.WHO_AM_I);
      if (id !== WHO_AM_I_VALUE) throw new SensorIdentityError('LIS3DH', id);
      registers.writeUint8(Register.CTRL_REG6, Bits.INT_POLARITY);
    } catch (error) {
      io.close();
      throw error;
    }
    this.#registers = registers;
    const { alert, onAlert } = options;
    if (alert && onAlert) {
      this.#monitor = new alert.io({
        pin: alert.pin,
        mode: 'inputPullUp',
        edge: 2,
        onReadable: () => onAlert(),
      });
    }
    this.configure({});
  }

  configure(options: Lis3dhConfiguration): void {
    const r = this.#live();
    if (options.range !== undefined) this.#range = options.range & 0b11;
    if (options.rate !== undefined) this.#rate = options.rate & 0b1111;
    r.writeUint8(Register.CTRL_REG1, (this.#rate << 4) | Bits.XYZ_EN);
    r.writeUint8(Register.CTRL_REG4, Bits.BDU | (this.#range << 4) | Bits.HR);
    if (options.alert) {
      const lsb = THRESHOLD_MG[this.#range];
      r.writeUint8(Register.CTRL_REG2, Bits.HPIS1);
      r.writeUint8(Register.CTRL_REG3, Bits.I1_IA1);
      r.writeUint8(Register.CTRL_REG5, Bits.LIR_INT1);
      r.writeUint8(
        Register.INT1_THS,
        Math.max(1, Math.min(0x7f, Math.round((options.alert.threshold * 1000) / lsb))),
      );
      r.writeUint8(Register.INT1_DURATION, (options.alert.duration ?? 0) & 0x7f);
      r.readUint8(Register.REFERENCE); // §8.9: sets the filter's reference to the present value
      r.writeUint8(Register.INT1_CFG, Bits.OR_HIGH_EVENTS);
    }
  }

  /** Output data rate in Hz (for duration arithmetic). */
  get rateHz(): number {
    return RATE_HZ[this.#rate] ?? 0;
  }

  /** Acceleration in m/s², as the SDK's accelerometers report it. */
  sample(): { accelerometer: { x: number; y: number; z: number } } {
    const v = this.#live().readBlock(Register.OUT_X_L | AUTO_INCREMENT, this.#values);
    const scale = (SENSITIVITY_MG[this.#range] / 1000) * G;
    // Little-endian, left-justified 12 bits (§3.2.1): shift the 16-bit word right by 4.
    const axis = (i: number) => (((v[i + 1] << 24) | (v[i] << 16)) >> 20) * scale;
    return { accelerometer: { x: axis(0), y: axis(2), z: axis(4) } };
  }

  /** INT1_SRC: which axes crossed the threshold; reading releases the latched INT1 line. */
  status(): { active: boolean; source: number } {
    const source = this.#live().readUint8(Register.INT1_SRC);
    return { active: (source & Bits.IA) !== 0, source };
  }

  close(): void {
    const registers = this.#registers;
    if (!registers) return;
    this.#registers = undefined;
    this.#monitor?.close();
    this.#monitor = undefined;
    try {
      registers.writeUint8(Register.CTRL_REG1, 0); // power-down mode
    } catch {
      // a chip that does not answer draws nothing to save
    }
    registers.close();
  }

  #live(): I2cRegisters {
    if (!this.#registers) throw new Error('LIS3DH closed');
    return this.#registers;
  }
}
