// Sensirion SHT31 (SHT3x-DIS) humidity and temperature sensor over I2C, every word CRC-8 checked.
// Datasheet: SHT3x-DIS, Version 7 (sections 4.3 single shot, 4.9 soft reset, 4.11 status
// register, 4.12 checksum, 4.13 conversion).
import { type I2cSensorBus, openBus, SensorIdentityError } from './registers';

/** 16-bit commands, sent most significant byte first. */
export const Command = Object.freeze({
  MEASURE_HIGH_STRETCH: 0x2c06, // §4.3 Table 9: single shot, high repeatability, clock stretching
  MEASURE_MEDIUM_STRETCH: 0x2c0d,
  MEASURE_LOW_STRETCH: 0x2c10,
  READ_STATUS: 0xf32d, // §4.11
  CLEAR_STATUS: 0x3041,
  SOFT_RESET: 0x30a2, // §4.9
  HEATER_ON: 0x306d, // §4.10
  HEATER_OFF: 0x3066,
});

export const Status = Object.freeze({
  ALERT_PENDING: 0b1000_0000_0000_0000,
  HEATER_ON: 0b0010_0000_0000_0000,
  RESET_DETECTED: 0b0000_0000_0001_0000, // set by a hard or soft reset, until CLEAR_STATUS
  COMMAND_FAILED: 0b0000_0000_0000_0010,
  WRITE_CRC_FAILED: 0b0000_0000_0000_0001,
});

export const Config = Object.freeze({
  Repeatability: Object.freeze({
    HIGH: Command.MEASURE_HIGH_STRETCH,
    MEDIUM: Command.MEASURE_MEDIUM_STRETCH,
    LOW: Command.MEASURE_LOW_STRETCH,
  }),
});

const SOFT_RESET_MS = 2; // §2.2 Table 4: soft reset time 1.5 ms max

/** §4.12 Table 19: CRC-8, polynomial 0x31, initialisation 0xFF, no reflection, no final XOR. */
export function sensirionCrc(bytes: Uint8Array, from = 0, length = 2): number {
  let crc = 0xff;
  for (let i = from; i < from + length; i++) {
    crc ^= bytes[i];
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x80 ? ((crc << 1) ^ 0x31) & 0xff : (crc << 1) & 0xff;
  }
  return crc;
}

export interface Sht3xOptions {
  sensor: I2cSensorBus;
  onError?: (message: string) => void;
  /** Blocks for `ms` (Timer.delay on the device); the soft reset needs 1.5 ms before the next command. */
  delay?: (ms: number) => void;
}

export interface Sht3xConfiguration {
  repeatability?: number;
  heater?: boolean;
}

export interface Sht3xSample {
  thermometer: { temperature?: number };
  hygrometer: { humidity?: number };
}

export class SHT3x {
  #io: ReturnType<typeof openBus> | undefined;
  readonly #onError: ((message: string) => void) | undefined;
  readonly #command = new Uint8Array(2);
  readonly #status = new Uint8Array(3);
  readonly #values = new Uint8Array(6);
  #repeatability: number = Command.MEASURE_HIGH_STRETCH;

  constructor(options: Sht3xOptions) {
    const io = openBus(options.sensor, { address: 0x44, hz: 400_000 });
    this.#io = io;
    this.#onError = options.onError;
    try {
      this.#write(Command.SOFT_RESET);
      options.delay?.(SOFT_RESET_MS);
      // No ID register: a genuine SHT3x answers the status read with a valid CRC and reset flag.
      const status = this.#readStatus();
      if (status === undefined || !(status & Status.RESET_DETECTED))
        throw new SensorIdentityError('SHT3x', status ?? -1);
      this.#write(Command.CLEAR_STATUS);
    } catch (error) {
      this.#io = undefined;
      io.close();
      throw error;
    }
    this.configure({});
  }

  configure(options: Sht3xConfiguration): void {
    if (options.repeatability !== undefined) this.#repeatability = options.repeatability;
    if (options.heater !== undefined) this.#write(options.heater ? Command.HEATER_ON : Command.HEATER_OFF);
  }

  /** One single-shot measurement; a word whose CRC fails is left out and reported to onError. */
  sample(): Sht3xSample {
    const io = this.#live();
    this.#write(this.#repeatability);
    const v = this.#values;
    v.set(new Uint8Array(io.read(6))); // the chip stretches the clock until the conversion ends
    const result: Sht3xSample = { thermometer: {}, hygrometer: {} };
    if (sensirionCrc(v, 0) === v[2])
      result.thermometer.temperature = -45 + (175 * ((v[0] << 8) | v[1])) / 65535; // §4.13
    else this.#onError?.('bad checksum: temperature');
    if (sensirionCrc(v, 3) === v[5]) result.hygrometer.humidity = (100 * ((v[3] << 8) | v[4])) / 65535;
    else this.#onError?.('bad checksum: humidity');
    return result;
  }

  /** The status word, or undefined when its CRC fails. */
  status(): number | undefined {
    return this.#readStatus();
  }

  close(): void {
    const io = this.#io;
    if (!io) return;
    this.#io = undefined;
    io.close();
  }

  #readStatus(): number | undefined {
    const io = this.#live();
    this.#write(Command.READ_STATUS);
    const s = this.#status;
    s.set(new Uint8Array(io.read(3)));
    return sensirionCrc(s, 0) === s[2] ? (s[0] << 8) | s[1] : undefined;
  }

  #write(command: number): void {
    const c = this.#command;
    c[0] = command >> 8;
    c[1] = command & 0xff;
    this.#live().write(c);
  }

  #live() {
    if (!this.#io) throw new Error('SHT3x closed');
    return this.#io;
  }
}
