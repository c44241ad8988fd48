// A virtual NXP MFRC522 on the virtual SPI bus: register file, 64-byte FIFO, the commands Idle,
// Mem, GenerateRandomID, CalcCRC, Transmit, Transceive and SoftReset, the timer's timeout IRQ,
// and an RF field holding virtual cards. Runs under Node and XS (no Node API).
//
// What the real chip leaves open is modelled thus, and the driver relies on nothing else:
// - CollPos counts FIFO bit positions from 1, the bits below RxAlign included.
// - With RxCRCEn, a frame whose CRC_A checks reaches the FIFO without its two CRC bytes; a frame
//   whose CRC fails keeps them and sets CRCErr (as the MFRC500 family documents).
// - With ValuesAfterColl = 0, the colliding bit and every bit after it read as 0.
import { Bits, Command, Register } from '../../drivers/rfid/mfrc522';
import type { VirtualSpiChip } from './bus';

/** An RF frame: `bits` bits, least significant bit of bytes[0] first (ISO 14443-3 bit order). */
export interface RfFrame {
  bytes: Uint8Array;
  bits: number;
}

/** A card in the field: answers a frame from the reader, or stays silent. */
export interface VirtualPicc {
  receive(frame: RfFrame): RfFrame | undefined;
  /** The field went away (antenna off, card taken out): back to the power-off state. */
  powerOff(): void;
}

/** CRC_A (ISO 14443-3 Annex B): CRC-16/CCITT reflected, preset 0x6363 unless told. */
export function crcA(data: Uint8Array, length = data.length, preset = 0x6363): number {
  let crc = preset;
  for (let i = 0; i < length; i++) {
    let ch = (data[i] ^ crc) & 0xff;
    ch = (ch ^ (ch << 4)) & 0xff;
    crc = ((crc >> 8) ^ (ch << 8) ^ (ch << 3) ^ (ch >> 4)) & 0xffff;
  }
  return crc;
}

/** Appends CRC_A, low byte first. */
export function withCrcA(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + 2);
  out.set(data);
  const crc = crcA(data);
  out[data.length] = crc & 0xff;
  out[data.length + 1] = crc >> 8;
  return out;
}

/** True when a whole-byte frame ends in a correct CRC_A. */
export function checkCrcA(frame: RfFrame): boolean {
  const n = frame.bytes.length;
  if (frame.bits !== n * 8 || n < 3) return false;
  const crc = crcA(frame.bytes, n - 2);
  return frame.bytes[n - 2] === (crc & 0xff) && frame.bytes[n - 1] === crc >> 8;
}

export function frameOf(bytes: Uint8Array | number[], bits?: number): RfFrame {
  const data = bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
  return { bytes: data, bits: bits ?? data.length * 8 };
}

function bitAt(frame: RfFrame, index: number): number {
  return (frame.bytes[index >> 3] >> (index & 7)) & 1;
}

/** The RF field in front of the antenna. */
export class RfField {
  readonly #cards: VirtualPicc[] = [];
  readonly #leaving = new Map<VirtualPicc, number>();
  /** Frames the reader sent while the field was on. */
  frames = 0;

  add(card: VirtualPicc): void {
    if (this.#cards.includes(card)) return;
    card.powerOff();
    this.#cards.push(card);
  }

  remove(card: VirtualPicc): void {
    const at = this.#cards.indexOf(card);
    if (at >= 0) this.#cards.splice(at, 1);
    this.#leaving.delete(card);
    card.powerOff();
  }

  /** The card takes `frames` more frames (and answers them), then leaves before the next one. */
  removeAfter(card: VirtualPicc, frames: number): void {
    this.#leaving.set(card, frames);
  }

  has(card: VirtualPicc): boolean {
    return this.#cards.includes(card);
  }

  get size(): number {
    return this.#cards.length;
  }

  powerOff(): void {
    for (const card of this.#cards) card.powerOff();
  }

  deliver(frame: RfFrame): RfFrame[] {
    this.frames++;
    const answers: RfFrame[] = [];
    for (const card of this.#cards.slice()) {
      const left = this.#leaving.get(card);
      if (left !== undefined) {
        if (left <= 0) {
          this.remove(card);
          continue;
        }
        this.#leaving.set(card, left - 1);
      }
      const answer = card.receive({ bytes: frame.bytes.slice(), bits: frame.bits });
      if (answer && answer.bits > 0) answers.push(answer);
    }
    return answers;
  }
}

export interface VirtualMfrc522Options {
  /** VersionReg (default 0x92, MFRC522 v2.0). */
  version?: number;
}

/** §9.2 reset values of the registers the model keeps. */
const RESET_VALUES: readonly (readonly [number, number])[] = [
  [Register.COMMAND, 0x20],
  [Register.COM_IEN, 0x80],
  [Register.COM_IRQ, 0x14],
  [Register.STATUS1, 0x21],
  [Register.WATER_LEVEL, 0x08],
  [Register.CONTROL, 0x10],
  [Register.COLL, 0xa0],
  [Register.MODE, 0x3f],
  [Register.TX_CONTROL, 0x80],
  [Register.TX_SEL, 0x10],
  [Register.RX_SEL, 0x84],
  [Register.RX_THRESHOLD, 0x84],
  [Register.DEMOD, 0x4d],
  [Register.MF_TX, 0x62],
  [Register.SERIAL_SPEED, 0xeb],
  [Register.CRC_RESULT_H, 0xff],
  [Register.CRC_RESULT_L, 0xff],
  [Register.MOD_WIDTH, 0x26],
  [Register.RF_CFG, 0x48],
  [Register.GS_N, 0x88],
  [Register.CW_GS_P, 0x20],
  [Register.MOD_GS_P, 0x20],
];

const CRC_PRESETS = [0x0000, 0x6363, 0xa671, 0xffff];
const LOG_LIMIT = 64;

export class VirtualMfrc522 implements VirtualSpiChip {
  readonly field = new RfField();
  /** The last frames sent on air (with the CRC the chip appended), oldest first. */
  readonly sent: RfFrame[] = [];
  readonly #regs = new Uint8Array(64);
  readonly #internal = new Uint8Array(25);
  #fifo: number[] = [];
  #version: number;
  #first = true;
  #reading = false;
  #address = 0;
  #crcErrors = 0;
  #random = 0x1234_5678;
  /** SPI transactions seen (a select to a deselect). */
  transactions = 0;
  softResets = 0;

  constructor(options: VirtualMfrc522Options = {}) {
    this.#version = options.version ?? 0x92;
    this.#reset();
  }

  /** The next `frames` frames received from cards fail their CRC (two bits flipped in one byte). */
  injectCrcError(frames = 1): void {
    this.#crcErrors += frames;
  }

  /** Reads a register as the chip holds it, without side effects (tests only). */
  peek(register: number): number {
    if (register === Register.FIFO_LEVEL) return this.#fifo.length;
    if (register === Register.VERSION) return this.#version;
    return this.#regs[register];
  }

  get antennaOn(): boolean {
    return (this.#regs[Register.TX_CONTROL] & Bits.TX_RF_EN) !== 0;
  }

  /** §9.3.3.10: (2·TPrescaler + 1)·(TReload + 1) / 13.56 MHz, in ms. */
  get timerPeriodMs(): number {
    const regs = this.#regs;
    const prescaler = ((regs[Register.T_MODE] & Bits.T_MODE_PRESCALER_HI) << 8) | regs[Register.T_PRESCALER];
    const reload = (regs[Register.T_RELOAD_H] << 8) | regs[Register.T_RELOAD_L];
    return ((2 * prescaler + 1) * (reload + 1)) / 13_560;
  }

  select(): void {
    this.#first = true;
    this.transactions++;
  }

  exchange(mosi: number): number {
    if (this.#first) {
      this.#first = false;
      this.#reading = (mosi & 0x80) !== 0;
      this.#address = (mosi >> 1) & 0x3f;
      return 0;
    }
    if (this.#reading) {
      const value = this.#read(this.#address);
      this.#address = (mosi >> 1) & 0x3f; // the next address, or the closing 0x00
      return value;
    }
    this.#write(this.#address, mosi & 0xff);
    return 0;
  }

  deselect(): void {
    this.#first = true;
  }

  #reset(): void {
    const regs = this.#regs;
    const wasOn = this.antennaOn;
    regs.fill(0);
    for (const [register, value] of RESET_VALUES) regs[register] = value;
    this.#fifo = [];
    if (wasOn) this.field.powerOff();
  }

  #read(register: number): number {
    const regs = this.#regs;
    switch (register) {
      case Register.FIFO_DATA:
        return this.#fifo.shift() ?? 0;
      case Register.FIFO_LEVEL:
        return this.#fifo.length;
      case Register.VERSION:
        return this.#version;
      case Register.STATUS1: {
        const level = this.#fifo.length;
        const comIrq = regs[Register.COM_IRQ];
        const irq =
          comIrq & regs[Register.COM_IEN] & 0x7f || regs[Register.DIV_IRQ] & regs[Register.DIV_IEN] & 0x7f;
        return (
          (regs[Register.STATUS1] & 0b0110_0000) |
          (irq ? 0x10 : 0) |
          (level <= 8 ? 0x01 : 0) |
          (level >= 56 ? 0x02 : 0)
        );
      }
      default:
        return regs[register];
    }
  }

  #write(register: number, value: number): void {
    const regs = this.#regs;
    switch (register) {
      case Register.COMMAND:
        regs[register] = (regs[register] & 0xf0) | (value & 0x30) | (value & 0x0f);
        this.#command(value & 0x0f);
        return;
      case Register.COM_IRQ:
      case Register.DIV_IRQ:
        if (value & Bits.IRQ_SET) regs[register] |= value & 0x7f;
        else regs[register] &= ~value & 0x7f;
        return;
      case Register.FIFO_DATA:
        if (this.#fifo.length >= 64) regs[Register.ERROR] |= Bits.ERR_BUFFER_OVFL;
        else this.#fifo.push(value);
        return;
      case Register.FIFO_LEVEL:
        if (value & Bits.FIFO_FLUSH) {
          this.#fifo = [];
          regs[Register.ERROR] &= ~Bits.ERR_BUFFER_OVFL;
        }
        return;
      case Register.BIT_FRAMING:
        regs[register] = value;
        if (value & Bits.FRAMING_START_SEND && (regs[Register.COMMAND] & 0x0f) === Command.TRANSCEIVE) {
          this.#transceive();
        }
        return;
      case Register.COLL:
        regs[register] = (regs[register] & 0x7f) | (value & Bits.COLL_VALUES_AFTER_COLL);
        return;
      case Register.TX_CONTROL: {
        const wasOn = this.antennaOn;
        regs[register] = value;
        if (wasOn && !this.antennaOn) this.field.powerOff();
        return;
      }
      case Register.ERROR:
      case Register.STATUS1:
      case Register.CONTROL: // only TStopNow/TStartNow are writable; the timer is modelled at timeout only
      case Register.CRC_RESULT_H:
      case Register.CRC_RESULT_L:
      case Register.VERSION:
        return;
      default:
        regs[register] = value;
    }
  }

  #command(command: number): void {
    const regs = this.#regs;
    switch (command) {
      case Command.SOFT_RESET:
        this.softResets++;
        this.#reset();
        return;
      case Command.MEM:
        // §10.3.1.2: 25 bytes FIFO → internal buffer, or back when the FIFO is empty
        if (this.#fifo.length === 0) this.#fifo = Array.from(this.#internal);
        else this.#internal.set(this.#fifo.splice(0, 25).concat(Array(25).fill(0)).slice(0, 25));
        this.#finish();
        return;
      case Command.GENERATE_RANDOM_ID:
        for (let i = 0; i < 10; i++) {
          this.#random = (Math.imul(this.#random, 1_103_515_245) + 12_345) >>> 0;
          this.#internal[i] = this.#random >>> 24;
        }
        this.#finish();
        return;
      case Command.CALC_CRC: {
        // §10.3.1.4: runs until another command; ModeReg CRCPreset chooses the preset
        const data = Uint8Array.from(this.#fifo.splice(0));
        const crc = crcA(data, data.length, CRC_PRESETS[regs[Register.MODE] & Bits.MODE_CRC_PRESET]);
        regs[Register.CRC_RESULT_L] = crc & 0xff;
        regs[Register.CRC_RESULT_H] = crc >> 8;
        regs[Register.DIV_IRQ] |= Bits.DIV_IRQ_CRC;
        regs[Register.STATUS1] |= 0b0110_0000; // CRCReady, CRCOk
        return;
      }
      case Command.TRANSMIT:
        this.#send();
        this.#finish();
        return;
      case Command.IDLE:
      case Command.TRANSCEIVE: // waits for StartSend
      case Command.RECEIVE: // nothing arrives unsent; only the driver's deadline ends it
        return;
      default:
        // MFAuthent and the rest: not modelled; the chip reports a protocol error
        regs[Register.ERROR] |= Bits.ERR_PROTOCOL;
        regs[Register.COM_IRQ] |= Bits.IRQ_ERR;
        this.#finish();
    }
  }

  #finish(): void {
    const regs = this.#regs;
    regs[Register.COMMAND] &= 0xf0;
    regs[Register.COM_IRQ] |= Bits.IRQ_IDLE;
  }

  /** FIFO → air, with TxLastBits and (TxCRCEn) CRC_A. Answers only while the antenna is on. */
  #send(): RfFrame[] {
    const regs = this.#regs;
    const data = Uint8Array.from(this.#fifo.splice(0));
    const lastBits = regs[Register.BIT_FRAMING] & 0x07;
    const crc = regs[Register.TX_MODE] & Bits.CRC_EN && lastBits === 0;
    const frame: RfFrame = crc
      ? frameOf(withCrcA(data))
      : { bytes: data, bits: lastBits ? (data.length - 1) * 8 + lastBits : data.length * 8 };
    regs[Register.COM_IRQ] |= Bits.IRQ_TX;
    if (!this.antennaOn || frame.bits === 0) return [];
    this.sent.push(frame);
    if (this.sent.length > LOG_LIMIT) this.sent.shift();
    return this.field.deliver(frame);
  }

  #transceive(): void {
    const regs = this.#regs;
    const answers = this.#send();
    regs[Register.BIT_FRAMING] &= ~Bits.FRAMING_START_SEND;
    regs[Register.ERROR] = 0; // cleared when the receiver starts
    if (answers.length === 0) {
      if (regs[Register.T_MODE] & Bits.T_MODE_AUTO) regs[Register.COM_IRQ] |= Bits.IRQ_TIMER;
      return;
    }
    const valuesAfterColl = (regs[Register.COLL] & Bits.COLL_VALUES_AFTER_COLL) !== 0;
    // Every card modulates its own bits; where two disagree the chip sees a collision.
    let bits = 0;
    for (const answer of answers) bits = Math.max(bits, answer.bits);
    const received = new Uint8Array((bits + 7) >> 3);
    let collision = -1;
    for (let i = 0; i < bits; i++) {
      let ones = 0;
      let zeros = 0;
      for (const answer of answers) {
        if (i >= answer.bits) continue;
        if (bitAt(answer, i)) ones++;
        else zeros++;
      }
      let bit = ones ? 1 : 0;
      if (ones && zeros && collision < 0) collision = i;
      if (collision >= 0 && !valuesAfterColl) bit = 0;
      if (bit) received[i >> 3] |= 1 << (i & 7);
    }
    if (this.#crcErrors > 0 && received.length > 0) {
      this.#crcErrors--;
      received[0] ^= 0b0000_0011; // two flips in one byte: the parity still holds, the CRC does not
    }
    let frame: RfFrame = { bytes: received, bits };
    let errors = 0;
    if (collision >= 0) errors |= Bits.ERR_COLL;
    else if (regs[Register.RX_MODE] & Bits.CRC_EN) {
      if (checkCrcA(frame)) frame = { bytes: received.subarray(0, received.length - 2), bits: bits - 16 };
      else errors |= Bits.ERR_CRC;
    }
    // RxAlign: the first received bit lands at that position of the first FIFO byte
    const rxAlign = (regs[Register.BIT_FRAMING] >> 4) & 0x07;
    const total = rxAlign + frame.bits;
    const fifo = new Uint8Array((total + 7) >> 3);
    for (let i = 0; i < frame.bits; i++) {
      if (bitAt(frame, i)) fifo[(rxAlign + i) >> 3] |= 1 << ((rxAlign + i) & 7);
    }
    for (const byte of fifo) {
      if (this.#fifo.length >= 64) {
        errors |= Bits.ERR_BUFFER_OVFL;
        break;
      }
      this.#fifo.push(byte);
    }
    const position = collision >= 0 ? rxAlign + collision + 1 : 0;
    regs[Register.COLL] =
      (regs[Register.COLL] & Bits.COLL_VALUES_AFTER_COLL) |
      (collision >= 0 && position <= 32 ? position & Bits.COLL_POS : Bits.COLL_POS_NOT_VALID);
    regs[Register.CONTROL] = (regs[Register.CONTROL] & ~Bits.CONTROL_RX_LAST_BITS) | (total & 7);
    regs[Register.ERROR] = errors;
    regs[Register.COM_IRQ] |= Bits.IRQ_RX | (errors ? Bits.IRQ_ERR : 0);
  }
}
