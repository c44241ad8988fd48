// Vishay VEML7700 high-accuracy ambient light sensor over I2C: the meter's cover sensor (dark
// while the cover is shut). Datasheet: VEML7700, document 84286, Rev. 1.7 (and the application
// note "Designing the VEML7700 Into an Application", document 84323).
// Registers are 16 bits, sent least significant byte first after an 8-bit command code (§ Command
// Register Format).
import { I2cRegisters, type I2cSensorBus, openBus, SensorIdentityError } from './registers';

export const Register = Object.freeze({
  ALS_CONF_0: 0x00,
  ALS_WH: 0x01, // high threshold window
  ALS_WL: 0x02, // low threshold window
  POWER_SAVING: 0x03,
  ALS: 0x04,
  WHITE: 0x05,
  ALS_INT: 0x06, // interrupt status, cleared by reading
  ID: 0x07,
});

export const Bits = Object.freeze({
  GAIN: 0b0001_1000_0000_0000, // ALS_CONF_0 bits 12:11
  IT: 0b0000_0011_1100_0000, // bits 9:6
  PERS: 0b0000_0000_0011_0000, // bits 5:4
  INT_EN: 0b0000_0000_0000_0010,
  SD: 0b0000_0000_0000_0001, // 1 = shut down
  INT_TH_LOW: 0b1000_0000_0000_0000, // ALS_INT bit 15
  INT_TH_HIGH: 0b0100_0000_0000_0000, // bit 14
});

/** ID register low byte (device ID code); the high byte depends on the address option. */
export const DEVICE_ID = 0x81;

export const Config = Object.freeze({
  Gain: Object.freeze({ X1: 0b00, X2: 0b01, X1_8: 0b10, X1_4: 0b11 }),
  /** ALS_IT codes by integration time in ms. */
  IntegrationTime: Object.freeze({
    MS_25: 0b1100,
    MS_50: 0b1000,
    MS_100: 0b0000,
    MS_200: 0b0001,
    MS_400: 0b0010,
    MS_800: 0b0011,
  }),
  Persistence: Object.freeze({ ONE: 0b00, TWO: 0b01, FOUR: 0b10, EIGHT: 0b11 }),
});

const GAIN_FACTOR: Readonly<Record<number, number>> = { 0: 1, 1: 2, 2: 0.125, 3: 0.25 };
const IT_MS: Readonly<Record<number, number>> = { 12: 25, 8: 50, 0: 100, 1: 200, 2: 400, 3: 800 };
const LUX_PER_COUNT_AT_X2_800MS = 0.0036; // resolution table: gain 2, IT 800 ms

export interface Veml7700Options {
  sensor: I2cSensorBus;
  onError?: (message: string) => void;
}

export interface Veml7700Configuration {
  gain?: number;
  integrationTime?: number;
  persistence?: number;
  /** Window thresholds in lux: an interrupt flag is raised outside [low, high]. */
  thresholds?: { low: number; high: number };
  enabled?: boolean;
}

export class VEML7700 {
  #registers: I2cRegisters | undefined;
  #gain: number = Config.Gain.X1_8;
  #integration: number = Config.IntegrationTime.MS_100;
  #persistence: number = Config.Persistence.ONE;
  #interrupt = false;
  #enabled = true;
  /** The user's window [low, high] in counts (restored after a self-test). */
  readonly #window = [0, 0];
  /** The flag an armed self-test expects (0: none armed). */
  #selfTest = 0;

  constructor(options: Veml7700Options) {
    const io = openBus(options.sensor, { address: 0x10, hz: 400_000 });
    const registers = new I2cRegisters(io);
    try {
      const id = registers.readUint16(Register.ID, true) & 0xff;
      if (id !== DEVICE_ID) throw new SensorIdentityError('VEML7700', id);
    } catch (error) {
      io.close();
      throw error;
    }
    this.#registers = registers;
    this.configure({});
  }

  configure(options: Veml7700Configuration): void {
    const registers = this.#live();
    if (options.gain !== undefined) this.#gain = options.gain & 0b11;
    if (options.integrationTime !== undefined) this.#integration = options.integrationTime & 0b1111;
    if (options.persistence !== undefined) this.#persistence = options.persistence & 0b11;
    if (options.enabled !== undefined) this.#enabled = options.enabled;
    if (options.thresholds) {
      const perCount = this.resolution;
      this.#window[1] = Math.min(0xffff, Math.round(options.thresholds.high / perCount));
      this.#window[0] = Math.min(0xffff, Math.round(options.thresholds.low / perCount));
      registers.writeUint16(Register.ALS_WH, this.#window[1], true);
      registers.writeUint16(Register.ALS_WL, this.#window[0], true);
      this.#interrupt = true;
    }
    this.#writeConf(this.#interrupt);
  }

  #writeConf(interrupt: boolean): void {
    this.#live().writeUint16(
      Register.ALS_CONF_0,
      (this.#gain << 11) |
        (this.#integration << 6) |
        (this.#persistence << 4) |
        (interrupt ? Bits.INT_EN : 0) |
        (this.#enabled ? 0 : Bits.SD),
      true,
    );
  }

  /** Lux per count at the present gain and integration time. */
  get resolution(): number {
    return LUX_PER_COUNT_AT_X2_800MS * (800 / IT_MS[this.#integration]) * (2 / GAIN_FACTOR[this.#gain]);
  }

  sample(): { lightmeter: { illuminance: number; counts: number } } {
    const counts = this.#live().readUint16(Register.ALS, true);
    return { lightmeter: { illuminance: counts * this.resolution, counts } };
  }

  /**
   * Tells a steady reading (a dark cover reads 0 for hours) from a stuck chip: moves the window so
   * that the present count lies outside it (ALS_WL one count above it, or ALS_WH one below at full
   * scale) with the interrupt enabled. A converting chip raises the flag at its next conversion
   * (one integration time); selfTestPassed() looks for it. Stale flags are cleared first.
   */
  armSelfTest(): void {
    const registers = this.#live();
    const counts = registers.readUint16(Register.ALS, true);
    registers.readUint16(Register.ALS_INT, true); // clears stale flags
    const top = counts >= 0xfffe;
    registers.writeUint16(Register.ALS_WH, top ? counts - 1 : 0xffff, true);
    registers.writeUint16(Register.ALS_WL, top ? 0 : counts + 1, true);
    this.#selfTest = top ? Bits.INT_TH_HIGH : Bits.INT_TH_LOW;
    this.#writeConf(true);
  }

  /** Whether the flag armSelfTest() expects was raised; restores the window and interrupt setting. */
  selfTestPassed(): boolean {
    const registers = this.#live();
    const expected = this.#selfTest;
    this.#selfTest = 0;
    const flags = registers.readUint16(Register.ALS_INT, true);
    registers.writeUint16(Register.ALS_WH, this.#window[1], true);
    registers.writeUint16(Register.ALS_WL, this.#window[0], true);
    this.#writeConf(this.#interrupt);
    return expected !== 0 && (flags & expected) !== 0;
  }

  /** The window flags (reading clears them). */
  status(): { high: boolean; low: boolean } {
    const flags = this.#live().readUint16(Register.ALS_INT, true);
    return { high: (flags & Bits.INT_TH_HIGH) !== 0, low: (flags & Bits.INT_TH_LOW) !== 0 };
  }

  close(): void {
    const registers = this.#registers;
    if (!registers) return;
    this.#registers = undefined;
    try {
      registers.writeUint16(Register.ALS_CONF_0, Bits.SD, true); // shut down: 0.5 µA
    } catch {
      // a chip that does not answer draws nothing to save
    }
    registers.close();
  }

  #live(): I2cRegisters {
    if (!this.#registers) throw new Error('VEML7700 closed');
    return this.#registers;
  }
}
