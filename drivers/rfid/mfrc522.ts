// NXP MFRC522 contactless reader IC (ISO/IEC 14443 A, 106 kBd) over SPI.
// Datasheet: MFRC522 Standard performance MIFARE and NTAG frontend, Rev. 3.9, 27 April 2016.
// The driver moves frames; ISO 14443-3 activation and ISO 14443-4 live in iso14443a.ts / isodep.ts.
import type { Clock } from '../../hal/clock';
import type { Digital, DigitalOptions, IOClass, SPI, SPIOptions } from '../../hal/io';

/** §9.2 register map. */
export const Register = Object.freeze({
  COMMAND: 0x01,
  COM_IEN: 0x02,
  DIV_IEN: 0x03,
  COM_IRQ: 0x04,
  DIV_IRQ: 0x05,
  ERROR: 0x06,
  STATUS1: 0x07,
  STATUS2: 0x08,
  FIFO_DATA: 0x09,
  FIFO_LEVEL: 0x0a,
  WATER_LEVEL: 0x0b,
  CONTROL: 0x0c,
  BIT_FRAMING: 0x0d,
  COLL: 0x0e,
  MODE: 0x11,
  TX_MODE: 0x12,
  RX_MODE: 0x13,
  TX_CONTROL: 0x14,
  TX_ASK: 0x15,
  TX_SEL: 0x16,
  RX_SEL: 0x17,
  RX_THRESHOLD: 0x18,
  DEMOD: 0x19,
  MF_TX: 0x1c,
  MF_RX: 0x1d,
  SERIAL_SPEED: 0x1f,
  CRC_RESULT_H: 0x21,
  CRC_RESULT_L: 0x22,
  MOD_WIDTH: 0x24,
  RF_CFG: 0x26,
  GS_N: 0x27,
  CW_GS_P: 0x28,
  MOD_GS_P: 0x29,
  T_MODE: 0x2a,
  T_PRESCALER: 0x2b,
  T_RELOAD_H: 0x2c,
  T_RELOAD_L: 0x2d,
  T_COUNTER_H: 0x2e,
  T_COUNTER_L: 0x2f,
  TEST_SEL1: 0x31,
  TEST_SEL2: 0x32,
  TEST_PIN_EN: 0x33,
  TEST_PIN_VALUE: 0x34,
  TEST_BUS: 0x35,
  AUTO_TEST: 0x36,
  VERSION: 0x37,
  ANALOG_TEST: 0x38,
  TEST_DAC1: 0x39,
  TEST_DAC2: 0x3a,
  TEST_ADC: 0x3b,
});

/** §10.3 command set (CommandReg bits 3..0). */
export const Command = Object.freeze({
  IDLE: 0x00,
  MEM: 0x01,
  GENERATE_RANDOM_ID: 0x02,
  CALC_CRC: 0x03,
  TRANSMIT: 0x04,
  NO_CMD_CHANGE: 0x07,
  RECEIVE: 0x08,
  TRANSCEIVE: 0x0c,
  MF_AUTHENT: 0x0e,
  SOFT_RESET: 0x0f,
});

/** Register bits, grouped by register (§9.3). Shared with the virtual chip. */
export const Bits = Object.freeze({
  COMMAND_POWER_DOWN: 0b0001_0000, // §9.3.1.2
  IRQ_SET: 0b1000_0000, // §9.3.1.5 Set1 / §9.3.1.6 Set2: 1 sets, 0 clears the marked bits
  IRQ_TX: 0b0100_0000,
  IRQ_RX: 0b0010_0000,
  IRQ_IDLE: 0b0001_0000,
  IRQ_ERR: 0b0000_0010,
  IRQ_TIMER: 0b0000_0001,
  IRQ_ALL: 0b0111_1111,
  DIV_IRQ_CRC: 0b0000_0100, // §9.3.1.6 CRCIRq
  ERR_WR: 0b1000_0000, // §9.3.1.7 ErrorReg
  ERR_TEMP: 0b0100_0000,
  ERR_BUFFER_OVFL: 0b0001_0000,
  ERR_COLL: 0b0000_1000,
  ERR_CRC: 0b0000_0100,
  ERR_PARITY: 0b0000_0010,
  ERR_PROTOCOL: 0b0000_0001,
  FIFO_FLUSH: 0b1000_0000, // §9.3.1.11 FlushBuffer
  FIFO_LEVEL: 0b0111_1111,
  CONTROL_RX_LAST_BITS: 0b0000_0111, // §9.3.1.13
  FRAMING_START_SEND: 0b1000_0000, // §9.3.1.14
  COLL_VALUES_AFTER_COLL: 0b1000_0000, // §9.3.1.15
  COLL_POS_NOT_VALID: 0b0010_0000,
  COLL_POS: 0b0001_1111,
  MODE_CRC_PRESET: 0b0000_0011, // §9.3.2.2: 00 0x0000, 01 0x6363, 10 0xA671, 11 0xFFFF
  CRC_EN: 0b1000_0000, // §9.3.2.3 TxCRCEn / §9.3.2.4 RxCRCEn
  TX_RF_EN: 0b0000_0011, // §9.3.2.5 Tx2RFEn | Tx1RFEn
  TX_FORCE_100_ASK: 0b0100_0000, // §9.3.2.6
  RF_CFG_RX_GAIN: 0b0111_0000, // §9.3.3.6
  T_MODE_AUTO: 0b1000_0000, // §9.3.3.10 TAuto
  T_MODE_PRESCALER_HI: 0b0000_1111,
});

export const Config = Object.freeze({
  /** §9.3.3.6 RxGain: receiver voltage gain. */
  AntennaGain: Object.freeze({
    DB_18: 0b010,
    DB_23: 0b011,
    DB_33: 0b100,
    DB_38: 0b101,
    DB_43: 0b110,
    DB_48: 0b111,
  }),
});

/** §9.3.4.8 VersionReg values accepted: MFRC522 v1.0 and v2.0, and the Fudan FM17522 clone. */
export const KNOWN_VERSIONS: readonly number[] = Object.freeze([0x91, 0x92, 0x88]);

/** The FIFO holds 64 bytes (§8.3). */
export const FIFO_SIZE = 64;

const TIMER_KHZ = 13_560; // §8.5: the timer runs from the 13.56 MHz clock
const DEFAULT_TIMEOUT_MS = 25;
const MAX_TIMEOUT_MS = 39_000; // prescaler 0xFFF, reload 0xFFFF
const GUARD_MS = 20; // beyond the chip's own timer, before the chip is declared hung
const POLLS_PER_MS = 20; // without a clock: assume an SPI register read costs at least 50 µs
const SHORT_POLLS = 2_000; // soft reset, CRC: microseconds on the chip

export class RfidError extends Error {
  override readonly name: string = 'RfidError';
  constructor(message: string) {
    super(message);
  }
}

/** VersionReg did not hold a known MFRC522 (or no chip answered). */
export class ChipVersionError extends RfidError {
  override readonly name: string = 'ChipVersionError';
  readonly version: number;
  constructor(version: number) {
    super(`MFRC522 not found: VersionReg 0x${version.toString(16).padStart(2, '0')}`);
    this.version = version;
  }
}

/** The chip did not finish a command in time, or reported an internal fault (WrErr, TempErr). */
export class ChipError extends RfidError {
  override readonly name: string = 'ChipError';
  constructor(message: string) {
    super(message);
  }
}

/** No card answered before the receive timer ran out. */
export class RfidTimeout extends RfidError {
  override readonly name: string = 'RfidTimeout';
  constructor(message = 'no answer from the card') {
    super(message);
  }
}

/** ErrorReg CollErr: two cards answered different bits. */
export class RfidCollision extends RfidError {
  override readonly name: string = 'RfidCollision';
  /** 1-based bit position in the received bytes (counting from RxAlign's bit 0), or -1 when out of range. */
  readonly position: number;
  constructor(position: number) {
    super(`bit collision at ${position < 0 ? 'an unknown position' : `bit ${position}`}`);
    this.position = position;
  }
}

/** ErrorReg CRCErr: the frame's CRC_A did not check. */
export class RfidCrcError extends RfidError {
  override readonly name: string = 'RfidCrcError';
  constructor() {
    super('CRC_A error in the received frame');
  }
}

/** ErrorReg ParityErr. */
export class RfidParityError extends RfidError {
  override readonly name: string = 'RfidParityError';
  constructor() {
    super('parity error in the received frame');
  }
}

/** ErrorReg ProtocolErr (SOF or frame length violated), or an empty frame. */
export class RfidProtocolError extends RfidError {
  override readonly name: string = 'RfidProtocolError';
  constructor(message = 'protocol error in the received frame') {
    super(message);
  }
}

/** ErrorReg BufferOvfl: more than 64 bytes arrived. */
export class RfidBufferOverflow extends RfidError {
  override readonly name: string = 'RfidBufferOverflow';
  constructor() {
    super('FIFO overflow');
  }
}

export interface ReaderOptions extends Partial<SPIOptions> {
  io: IOClass<SPI, SPIOptions>;
  select: number;
}

export interface ResetPinOptions extends Partial<DigitalOptions> {
  io: IOClass<Digital, DigitalOptions>;
  pin: number;
}

export interface MFRC522Options {
  reader: ReaderOptions;
  /** NRSTPD: held low powers the chip down; the driver drives it high at construction. */
  reset?: ResetPinOptions;
  /** Bounds polling by time; without it polling is bounded by a count. */
  clock?: Clock;
}

export interface MFRC522Configuration {
  /** Config.AntennaGain (RFCfgReg RxGain). */
  antennaGain?: number;
  /** Receive timeout programmed into the chip's timer, in ms (default 25). */
  timeoutMs?: number;
}

export interface TransceiveOptions {
  /** Valid bits in the last byte sent, 0 = all eight (BitFramingReg TxLastBits). */
  txLastBits?: number;
  /** Bit position in the first FIFO byte where the first received bit lands (BitFramingReg RxAlign). */
  rxAlign?: number;
  /** The chip appends CRC_A when sending and checks it when receiving (TxModeReg/RxModeReg CRCEn). */
  crc?: boolean;
  /** Timeout for this exchange only. */
  timeoutMs?: number;
  /** Bitwise anticollision: return on a collision (bits after it cleared) instead of throwing. */
  collisions?: boolean;
}

export interface ReceivedFrame {
  /** A fresh copy of the FIFO contents. */
  bytes: Uint8Array;
  /** Valid bits in the last byte, 0 = all eight (ControlReg RxLastBits). */
  lastBits: number;
  /** 0 = no collision; else CollPos (1-based, RxAlign's bit counted); -1 = collision out of range. */
  collision: number;
}

export class MFRC522 {
  #spi: SPI | undefined;
  #resetPin: Digital | undefined;
  readonly #clock: Clock | undefined;
  readonly #register = new Uint8Array(2);
  readonly #burst = new Uint8Array(FIFO_SIZE + 1);
  #version = 0;
  #timeoutMs = DEFAULT_TIMEOUT_MS;
  #timerMs = -1; // what the timer registers hold now
  #crc = -1; // what TxModeReg/RxModeReg CRCEn hold now (1, 0; -1 unknown)
  #valuesAfterColl = -1;

  constructor(options: MFRC522Options) {
    const { reader, reset, clock } = options;
    this.#clock = clock;
    try {
      if (reset) {
        this.#resetPin = new reset.io({ mode: 'output', ...reset });
        this.#resetPin.write(1); // §8.8.1: a rising edge on NRSTPD starts a hard reset
      }
      this.#spi = new reader.io({ hz: 10_000_000, mode: 0, ...reader });
      const version = this.#read(Register.VERSION);
      if (!KNOWN_VERSIONS.includes(version)) throw new ChipVersionError(version);
      this.#version = version;
      this.reset();
    } catch (error) {
      this.close();
      throw error;
    }
  }

  /** VersionReg as read at construction (0x91, 0x92 or 0x88). */
  get version(): number {
    return this.#version;
  }

  /** Soft reset, then the ISO 14443 A settings, the timer, and the antenna on. */
  reset(): void {
    this.#open();
    this.#write(Register.COMMAND, Command.SOFT_RESET);
    this.#poll(() => !(this.#read(Register.COMMAND) & Bits.COMMAND_POWER_DOWN), 'soft reset');
    this.#timerMs = -1;
    this.#crc = -1;
    this.#valuesAfterColl = -1;
    this.#write(Register.TX_ASK, Bits.TX_FORCE_100_ASK); // §9.3.2.6: type A uses 100 % ASK
    this.#write(Register.MODE, 0b0011_1101); // §9.3.2.2: TxWaitRF, PolMFin, CRC preset 0x6363 (CRC_A)
    this.#setCrc(false);
    this.configure({});
    this.antennaOn();
  }

  configure(options: MFRC522Configuration): void {
    this.#open();
    const { antennaGain, timeoutMs } = options;
    if (antennaGain !== undefined) {
      if (!Number.isInteger(antennaGain) || antennaGain < 0 || antennaGain > 7) {
        throw new RangeError(`antennaGain ${antennaGain}`);
      }
      const rfCfg = this.#read(Register.RF_CFG);
      this.#write(Register.RF_CFG, (rfCfg & ~Bits.RF_CFG_RX_GAIN) | (antennaGain << 4));
    }
    if (timeoutMs !== undefined) {
      if (!(timeoutMs > 0 && timeoutMs <= MAX_TIMEOUT_MS)) throw new RangeError(`timeoutMs ${timeoutMs}`);
      this.#timeoutMs = timeoutMs;
    }
    this.#setTimer(this.#timeoutMs);
  }

  get antennaGain(): number {
    return (this.#read(Register.RF_CFG) & Bits.RF_CFG_RX_GAIN) >> 4;
  }

  antennaOn(): void {
    const txControl = this.#read(Register.TX_CONTROL);
    if ((txControl & Bits.TX_RF_EN) !== Bits.TX_RF_EN)
      this.#write(Register.TX_CONTROL, txControl | Bits.TX_RF_EN);
  }

  /** Cards in the field lose power and fall back to their power-off state. */
  antennaOff(): void {
    const txControl = this.#read(Register.TX_CONTROL);
    this.#write(Register.TX_CONTROL, txControl & ~Bits.TX_RF_EN);
  }

  get antenna(): boolean {
    return (this.#read(Register.TX_CONTROL) & Bits.TX_RF_EN) === Bits.TX_RF_EN;
  }

  /** CRC over `data` by the chip's coprocessor (CalcCRC, §10.3.1.4); the low byte goes first on air. */
  calculateCRC(data: Uint8Array): number {
    this.#open();
    if (data.length > FIFO_SIZE) throw new RangeError(`CRC over ${data.length} bytes`);
    this.#write(Register.COMMAND, Command.IDLE);
    this.#write(Register.DIV_IRQ, Bits.DIV_IRQ_CRC);
    this.#write(Register.FIFO_LEVEL, Bits.FIFO_FLUSH);
    this.#writeFifo(data);
    this.#write(Register.COMMAND, Command.CALC_CRC);
    this.#poll(() => (this.#read(Register.DIV_IRQ) & Bits.DIV_IRQ_CRC) !== 0, 'CRC');
    this.#write(Register.COMMAND, Command.IDLE);
    return this.#read(Register.CRC_RESULT_L) | (this.#read(Register.CRC_RESULT_H) << 8);
  }

  /**
   * Sends a frame and returns the card's answer (Transceive, §10.3.1.8). Throws RfidTimeout when
   * nothing answers, and the ErrorReg errors as typed errors (a collision only without `collisions`).
   */
  transceive(data: Uint8Array, options: TransceiveOptions = {}): ReceivedFrame {
    this.#open();
    const { txLastBits = 0, rxAlign = 0, crc = false, collisions = false } = options;
    if (data.length < 1 || data.length > FIFO_SIZE) throw new RangeError(`frame of ${data.length} bytes`);
    if (!(txLastBits >= 0 && txLastBits <= 7 && rxAlign >= 0 && rxAlign <= 7)) {
      throw new RangeError(`txLastBits ${txLastBits}, rxAlign ${rxAlign}`);
    }
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    if (!(timeoutMs > 0 && timeoutMs <= MAX_TIMEOUT_MS)) throw new RangeError(`timeoutMs ${timeoutMs}`);
    this.#setCrc(crc);
    this.#setTimer(timeoutMs);
    this.#setValuesAfterColl(!collisions);

    const framing = (rxAlign << 4) | txLastBits;
    this.#write(Register.COMMAND, Command.IDLE);
    this.#write(Register.COM_IRQ, Bits.IRQ_ALL); // Set1 = 0: clear every request bit
    this.#write(Register.FIFO_LEVEL, Bits.FIFO_FLUSH);
    this.#writeFifo(data);
    this.#write(Register.BIT_FRAMING, framing);
    this.#write(Register.COMMAND, Command.TRANSCEIVE);
    this.#write(Register.BIT_FRAMING, framing | Bits.FRAMING_START_SEND);

    let irq = 0;
    const done = Bits.IRQ_RX | Bits.IRQ_IDLE | Bits.IRQ_ERR | Bits.IRQ_TIMER;
    this.#poll(
      () => {
        irq = this.#read(Register.COM_IRQ);
        return (irq & done) !== 0;
      },
      'receive',
      timeoutMs,
    );
    this.#write(Register.BIT_FRAMING, framing);
    this.#write(Register.COMMAND, Command.IDLE);

    const errors = this.#read(Register.ERROR);
    if (!(irq & (Bits.IRQ_RX | Bits.IRQ_IDLE | Bits.IRQ_ERR))) throw new RfidTimeout();
    if (errors & (Bits.ERR_WR | Bits.ERR_TEMP)) {
      throw new ChipError(`chip fault (ErrorReg 0x${errors.toString(16)})`);
    }
    if (errors & Bits.ERR_BUFFER_OVFL) throw new RfidBufferOverflow();
    const length = this.#read(Register.FIFO_LEVEL) & Bits.FIFO_LEVEL;
    let collision = 0;
    if (errors & Bits.ERR_COLL) {
      // A collision is read before parity and CRC: those follow from it.
      const coll = this.#read(Register.COLL);
      collision = coll & Bits.COLL_POS_NOT_VALID ? -1 : coll & Bits.COLL_POS || 32; // §9.3.1.15: 0 = bit 32
      if (!collisions || length === 0) throw new RfidCollision(collision);
    } else {
      if (errors & Bits.ERR_PROTOCOL) throw new RfidProtocolError();
      if (errors & Bits.ERR_PARITY) throw new RfidParityError();
      if (errors & Bits.ERR_CRC) throw new RfidCrcError();
    }
    if (length === 0) {
      if (irq & Bits.IRQ_TIMER) throw new RfidTimeout();
      throw new RfidProtocolError('empty frame');
    }
    const lastBits = this.#read(Register.CONTROL) & Bits.CONTROL_RX_LAST_BITS;
    return { bytes: this.#readFifo(length), lastBits, collision };
  }

  close(): void {
    const spi = this.#spi;
    this.#spi = undefined;
    if (spi) {
      try {
        spi.close();
      } catch {
        // closing a bus that failed is not worth a second error
      }
    }
    const pin = this.#resetPin;
    this.#resetPin = undefined;
    if (pin) {
      try {
        pin.write(0); // power the chip down
      } finally {
        pin.close();
      }
    }
  }

  #open(): SPI {
    if (!this.#spi) throw new RfidError('MFRC522 closed');
    return this.#spi;
  }

  /** §9.3.3.10: f_timer = 13.56 MHz / (2·TPrescaler + 1); TAuto starts it at the end of sending. */
  #setTimer(ms: number): void {
    if (ms === this.#timerMs) return;
    const ticks = ms * TIMER_KHZ;
    let prescaler = 0x0a9; // 25 µs per tick, up to 1.6 s
    if (ticks / (2 * prescaler + 1) > 0xffff) prescaler = Math.ceil((ticks / 0xffff - 1) / 2);
    const reload = Math.min(0xffff, Math.max(1, Math.ceil(ticks / (2 * prescaler + 1))));
    this.#write(Register.T_MODE, Bits.T_MODE_AUTO | ((prescaler >> 8) & Bits.T_MODE_PRESCALER_HI));
    this.#write(Register.T_PRESCALER, prescaler & 0xff);
    this.#write(Register.T_RELOAD_H, reload >> 8);
    this.#write(Register.T_RELOAD_L, reload & 0xff);
    this.#timerMs = ms;
  }

  #setCrc(on: boolean): void {
    const value = on ? 1 : 0;
    if (value === this.#crc) return;
    this.#write(Register.TX_MODE, on ? Bits.CRC_EN : 0); // 106 kBd, ISO 14443 A framing
    this.#write(Register.RX_MODE, on ? Bits.CRC_EN : 0);
    this.#crc = value;
  }

  #setValuesAfterColl(on: boolean): void {
    const value = on ? 1 : 0;
    if (value === this.#valuesAfterColl) return;
    this.#write(Register.COLL, on ? Bits.COLL_VALUES_AFTER_COLL : 0);
    this.#valuesAfterColl = value;
  }

  #poll(ready: () => boolean, what: string, timeoutMs?: number): void {
    const clock = this.#clock;
    const limitMs = (timeoutMs ?? 0) + GUARD_MS;
    if (clock) {
      const deadline = clock.monotonic() + limitMs;
      // a count backs the clock up: a clock that does not move must not hang the meter
      for (let polls = POLLS_PER_MS * limitMs * 10; polls > 0; polls--) {
        if (ready()) return;
        if (clock.monotonic() > deadline) break;
      }
    } else {
      const polls = timeoutMs === undefined ? SHORT_POLLS : POLLS_PER_MS * limitMs;
      for (let i = 0; i < polls; i++) if (ready()) return;
    }
    this.#write(Register.COMMAND, Command.IDLE);
    throw new ChipError(`MFRC522 did not finish: ${what}`);
  }

  /** §8.1.2.3: address byte = bit 7 read (1) / write (0), address in bits 6..1, bit 0 zero. */
  #read(register: number): number {
    const spi = this.#open();
    const buffer = this.#register;
    buffer[0] = 0x80 | (register << 1);
    buffer[1] = 0;
    spi.transfer(buffer);
    spi.flush(true);
    return buffer[1];
  }

  #write(register: number, value: number): void {
    const spi = this.#open();
    const buffer = this.#register;
    buffer[0] = register << 1;
    buffer[1] = value;
    spi.write(buffer);
    spi.flush(true);
  }

  /** §8.1.2.2: one address byte, then every data byte goes to that address. */
  #writeFifo(data: Uint8Array): void {
    const spi = this.#open();
    const burst = this.#burst;
    burst[0] = Register.FIFO_DATA << 1;
    burst.set(data, 1);
    spi.write(burst.subarray(0, data.length + 1));
    spi.flush(true);
  }

  /** §8.1.2.1: the address is repeated per byte; the last byte sent is 0x00. */
  #readFifo(length: number): Uint8Array {
    const spi = this.#open();
    const burst = this.#burst.subarray(0, length + 1);
    burst.fill(0x80 | (Register.FIFO_DATA << 1), 0, length);
    burst[length] = 0;
    spi.transfer(burst);
    spi.flush(true);
    return burst.slice(1);
  }
}
