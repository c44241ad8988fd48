/*
 * HD44780 character LCD (Hitachi HD44780U datasheet, ADE-207-272) behind a PCF8574 I2C remote
 * 8-bit I/O expander (NXP PCF8574 datasheet, Rev. 5) — the common "LCD backpack".
 * Backpack wiring: P0 RS, P1 R/W, P2 E, P3 backlight, P4..P7 = D4..D7; the LCD runs in 4-bit mode.
 * Every expander byte written is one state of the LCD bus, so one nibble is two bytes: E high
 * with the data, then E low (the controller latches on the falling edge). At 100 kHz a byte takes
 * about 90 µs, longer than E's 450 ns minimum and a command's 37 µs execution time.
 */
import type { I2C, I2COptions, IOClass } from '../../hal/io';

const Bit = Object.freeze({
  RS: 0b0000_0001, // register select: 0 instruction, 1 data
  RW: 0b0000_0010, // kept 0: the driver never reads the busy flag
  E: 0b0000_0100,
  BACKLIGHT: 0b0000_1000,
});

const Command = Object.freeze({
  CLEAR: 0x01, // 1.52 ms
  HOME: 0x02, // 1.52 ms
  ENTRY_MODE: 0x04, // | 0b10 increment, | 0b01 shift
  DISPLAY: 0x08, // | 0b100 display on, | 0b010 cursor, | 0b001 blink
  FUNCTION_SET: 0x20, // | 0b1_0000 8-bit, | 0b1000 two lines, | 0b0100 5x10 dots
  SET_DDRAM: 0x80,
});

/** DDRAM address of each row's first column on 20x4 (and 16x4) modules. */
export const RowOffsets = Object.freeze([0x00, 0x40, 0x14, 0x54]);

export const Config = Object.freeze({
  Address: Object.freeze({ PCF8574: 0x27, PCF8574A: 0x3f }),
});

export interface HD44780Options {
  display: { io: IOClass<I2C, I2COptions> } & Partial<I2COptions>;
  columns?: number;
  rows?: number;
  /** Blocking wait in milliseconds (Timer.delay on the device): power-on and clear need it. */
  delay: (ms: number) => void;
  onError?: (message: string) => void;
}

export interface HD44780Configuration {
  backlight?: boolean;
  display?: boolean;
  cursor?: boolean;
  blink?: boolean;
}

export class HD44780 {
  #io: I2C | undefined;
  readonly #delay: (ms: number) => void;
  readonly #onError: ((message: string) => void) | undefined;
  readonly columns: number;
  readonly rows: number;
  #backlight: number = Bit.BACKLIGHT;
  #control = 0b100; // display on, no cursor, no blink
  // One row: a DDRAM address command and `columns` characters, 4 expander bytes each.
  readonly #buffer: Uint8Array;
  readonly #command4: Uint8Array; // views over #buffer made once: a command allocates nothing
  readonly #nibble2: Uint8Array;
  readonly #byte = new Uint8Array(1);

  constructor(options: HD44780Options) {
    const { io, ...bus } = options.display;
    this.columns = options.columns ?? 20;
    this.rows = options.rows ?? 4;
    if (this.rows > RowOffsets.length || this.columns > 40) throw new RangeError('unsupported LCD geometry');
    this.#delay = options.delay;
    this.#onError = options.onError;
    this.#buffer = new Uint8Array(4 * (1 + this.columns));
    this.#command4 = this.#buffer.subarray(0, 4);
    this.#nibble2 = this.#buffer.subarray(0, 2);
    const i2c = new io({ hz: 100_000, address: Config.Address.PCF8574, ...bus });
    this.#io = i2c;
    // The PCF8574 has no ID register: a read that is acknowledged proves the expander is there.
    try {
      i2c.read(1);
    } catch {
      this.close();
      throw new Error('PCF8574 not found');
    }
    this.#initialize();
    this.configure({});
  }

  configure(options: HD44780Configuration): void {
    if (options.backlight !== undefined) this.#backlight = options.backlight ? Bit.BACKLIGHT : 0;
    if (options.display !== undefined)
      this.#control = (this.#control & 0b011) | (options.display ? 0b100 : 0);
    if (options.cursor !== undefined) this.#control = (this.#control & 0b101) | (options.cursor ? 0b010 : 0);
    if (options.blink !== undefined) this.#control = (this.#control & 0b110) | (options.blink ? 0b001 : 0);
    this.#command(Command.DISPLAY | this.#control);
  }

  clear(): void {
    this.#command(Command.CLEAR);
    this.#delay(2);
  }

  /** Writes one whole row, padded with spaces; characters outside the ROM's ASCII range show '?'. */
  writeRow(row: number, text: string): void {
    if (!Number.isInteger(row) || row < 0 || row >= this.rows) throw new RangeError(`no row ${row}`);
    const buffer = this.#buffer;
    let position = this.#pack(buffer, 0, Command.SET_DDRAM | RowOffsets[row], 0);
    for (let column = 0; column < this.columns; column++) {
      const code = column < text.length ? text.charCodeAt(column) : 0x20;
      // ROM A00 matches ASCII from 0x20 to 0x7D ('\' shows as the yen sign).
      position = this.#pack(buffer, position, code >= 0x20 && code <= 0x7d ? code : 0x3f, Bit.RS);
    }
    this.#write(buffer);
  }

  close(): void {
    this.#io?.close();
    this.#io = undefined;
  }

  #initialize(): void {
    // Datasheet figure 24, initialisation by instruction for a 4-bit interface.
    this.#delay(50); // > 40 ms after Vcc rises to 2.7 V
    this.#nibble(0x3);
    this.#delay(5); // > 4.1 ms
    this.#nibble(0x3);
    this.#delay(1); // > 100 µs
    this.#nibble(0x3);
    this.#nibble(0x2); // 4-bit interface from here on
    this.#command(Command.FUNCTION_SET | 0b1000); // 4-bit, two-line addressing, 5x8 dots
    this.#command(Command.DISPLAY); // display off
    this.clear();
    this.#command(Command.ENTRY_MODE | 0b10); // increment, no shift
  }

  #command(value: number): void {
    this.#pack(this.#buffer, 0, value, 0);
    this.#write(this.#command4);
  }

  #nibble(high: number): void {
    const buffer = this.#buffer;
    const bits = (high << 4) | this.#backlight;
    buffer[0] = bits | Bit.E;
    buffer[1] = bits;
    this.#write(this.#nibble2);
  }

  /** Packs one byte as two nibbles, each an E-high then E-low expander byte; returns the next position. */
  #pack(buffer: Uint8Array, position: number, value: number, rs: number): number {
    const flags = rs | this.#backlight;
    const high = (value & 0xf0) | flags;
    const low = ((value << 4) & 0xf0) | flags;
    buffer[position] = high | Bit.E;
    buffer[position + 1] = high;
    buffer[position + 2] = low | Bit.E;
    buffer[position + 3] = low;
    return position + 4;
  }

  #write(bytes: Uint8Array): void {
    const io = this.#io;
    if (!io) throw new Error('closed');
    try {
      io.write(bytes);
    } catch {
      this.#onError?.('LCD backpack did not acknowledge');
    }
  }

  /** Backlight only: the expander keeps the LCD bus idle with E low. */
  backlight(on: boolean): void {
    this.#backlight = on ? Bit.BACKLIGHT : 0;
    this.#byte[0] = this.#backlight;
    this.#write(this.#byte);
  }
}
