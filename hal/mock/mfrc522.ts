// A virtual NXP MFRC522 on the virtual SPI bus: register file, 64-byte FIFO, the commands Idle,
// Mem, GenerateRandomID, CalcCRC, Transmit, Transceive and SoftReset, the timer's timeout IRQ,
// and an RF field holding virtual cards. Runs under Node and XS (no Node API).
//
// What the real chip leaves open is modelled thus, and the driver relies on nothing else:
// - CollPos counts FIFO bit positions from 1, the bits below RxAlign included.
// - With RxCRCEn, a frame whose CRC_A checks reaches the FIFO without its two CRC bytes; a frame
//   whose CRC fails keeps them and sets CRCErr (as the MFRC500 family documents).
// - With ValuesAfterColl = 0, the colliding bit and every bit after it read as 0.
// The register map, command set and bits below are written from the NXP MFRC522 datasheet
// (Rev. 3.9, 27 April 2016) with its own names, not taken from drivers/rfid/mfrc522.ts: a wrong
// address in the driver then shows up as a reader that does not work, and
// host-tests/hal/twins.test.ts compares the two tables.
import type { VirtualSpiChip } from './bus';

/** §9.2 Table 20: register addresses (reserved ones left out). */
export const Reg = Object.freeze({
  CommandReg: 0x01,
  ComIEnReg: 0x02,
  DivIEnReg: 0x03,
  ComIrqReg: 0x04,
  DivIrqReg: 0x05,
  ErrorReg: 0x06,
  Status1Reg: 0x07,
  Status2Reg: 0x08,
  FIFODataReg: 0x09,
  FIFOLevelReg: 0x0a,
  WaterLevelReg: 0x0b,
  ControlReg: 0x0c,
  BitFramingReg: 0x0d,
  CollReg: 0x0e,
  ModeReg: 0x11,
  TxModeReg: 0x12,
  RxModeReg: 0x13,
  TxControlReg: 0x14,
  TxASKReg: 0x15,
  TxSelReg: 0x16,
  RxSelReg: 0x17,
  RxThresholdReg: 0x18,
  DemodReg: 0x19,
  MfTxReg: 0x1c,
  MfRxReg: 0x1d,
  SerialSpeedReg: 0x1f,
  CRCResultRegMSB: 0x21,
  CRCResultRegLSB: 0x22,
  ModWidthReg: 0x24,
  RFCfgReg: 0x26,
  GsNReg: 0x27,
  CWGsPReg: 0x28,
  ModGsPReg: 0x29,
  TModeReg: 0x2a,
  TPrescalerReg: 0x2b,
  TReloadRegHi: 0x2c,
  TReloadRegLo: 0x2d,
  TCounterValRegHi: 0x2e,
  TCounterValRegLo: 0x2f,
  TestSel1Reg: 0x31,
  TestSel2Reg: 0x32,
  TestPinEnReg: 0x33,
  TestPinValueReg: 0x34,
  TestBusReg: 0x35,
  AutoTestReg: 0x36,
  VersionReg: 0x37,
  AnalogTestReg: 0x38,
  TestDAC1Reg: 0x39,
  TestDAC2Reg: 0x3a,
  TestADCReg: 0x3b,
});

/** §10.3 Table 149: command codes (CommandReg Command[3:0]). */
export const Cmd = Object.freeze({
  Idle: 0b0000,
  Mem: 0b0001,
  GenerateRandomID: 0b0010,
  CalcCRC: 0b0011,
  Transmit: 0b0100,
  NoCmdChange: 0b0111,
  Receive: 0b1000,
  Transceive: 0b1100,
  MFAuthent: 0b1110,
  SoftReset: 0b1111,
});

/** §9.3 register bit fields, by the datasheet's bit names. */
export const Bit = Object.freeze({
  PowerDown: 1 << 4, // §9.3.1.2 CommandReg
  Set1: 1 << 7, // §9.3.1.5 ComIrqReg (Set2 of DivIrqReg, §9.3.1.6, is the same bit)
  TxIRq: 1 << 6,
  RxIRq: 1 << 5,
  IdleIRq: 1 << 4,
  ErrIRq: 1 << 1,
  TimerIRq: 1 << 0,
  CRCIRq: 1 << 2, // §9.3.1.6 DivIrqReg
  WrErr: 1 << 7, // §9.3.1.7 ErrorReg
  TempErr: 1 << 6,
  BufferOvfl: 1 << 4,
  CollErr: 1 << 3,
  CRCErr: 1 << 2,
  ParityErr: 1 << 1,
  ProtocolErr: 1 << 0,
  CRCOk: 1 << 6, // §9.3.1.8 Status1Reg
  CRCReady: 1 << 5,
  IRq: 1 << 4,
  HiAlert: 1 << 1,
  LoAlert: 1 << 0,
  FlushBuffer: 1 << 7, // §9.3.1.11 FIFOLevelReg
  RxLastBits: 0b111, // §9.3.1.13 ControlReg[2:0]
  StartSend: 1 << 7, // §9.3.1.14 BitFramingReg; RxAlign [6:4], TxLastBits [2:0]
  ValuesAfterColl: 1 << 7, // §9.3.1.15 CollReg
  CollPosNotValid: 1 << 5,
  CollPos: 0b1_1111,
  CRCPreset: 0b11, // §9.3.2.2 ModeReg[1:0]
  TxCRCEn: 1 << 7, // §9.3.2.3 TxModeReg
  RxCRCEn: 1 << 7, // §9.3.2.4 RxModeReg
  Tx2RFEn: 1 << 1, // §9.3.2.5 TxControlReg
  Tx1RFEn: 1 << 0,
  Force100ASK: 1 << 6, // §9.3.2.6 TxASKReg
  RxGain: 0b111 << 4, // §9.3.3.6 RFCfgReg[6:4]
  TAuto: 1 << 7, // §9.3.3.10 TModeReg; TPrescaler_Hi [3:0]
  TPrescalerHi: 0b1111,
});

/** §9.3.2.2 ModeReg CRCPreset: 00 → 0000h, 01 → 6363h, 10 → A671h, 11 → FFFFh. */
export const CRC_PRESETS: readonly number[] = Object.freeze([0x0000, 0x6363, 0xa671, 0xffff]);

/** §8.3.1: the FIFO buffer holds 64 bytes. */
export const FIFO_BYTES = 64;

/** §9.3.4.8 VersionReg: 91h is version 1.0, 92h version 2.0. */
export const VERSION_2_0 = 0x92;

const RF_ON = Bit.Tx2RFEn | Bit.Tx1RFEn;

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

/** §9.3: the reset values of the registers the model keeps. */
const RESET_VALUES: readonly (readonly [number, number])[] = [
  [Reg.CommandReg, 0x20],
  [Reg.ComIEnReg, 0x80],
  [Reg.ComIrqReg, 0x14],
  [Reg.Status1Reg, 0x21],
  [Reg.WaterLevelReg, 0x08],
  [Reg.ControlReg, 0x10],
  [Reg.CollReg, 0xa0],
  [Reg.ModeReg, 0x3f],
  [Reg.TxControlReg, 0x80],
  [Reg.TxSelReg, 0x10],
  [Reg.RxSelReg, 0x84],
  [Reg.RxThresholdReg, 0x84],
  [Reg.DemodReg, 0x4d],
  [Reg.MfTxReg, 0x62],
  [Reg.SerialSpeedReg, 0xeb],
  [Reg.CRCResultRegMSB, 0xff],
  [Reg.CRCResultRegLSB, 0xff],
  [Reg.ModWidthReg, 0x26],
  [Reg.RFCfgReg, 0x48],
  [Reg.GsNReg, 0x88],
  [Reg.CWGsPReg, 0x20],
  [Reg.ModGsPReg, 0x20],
];

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
    this.#version = options.version ?? VERSION_2_0;
    this.#reset();
  }

  /** The next `frames` frames received from cards fail their CRC (two bits flipped in one byte). */
  injectCrcError(frames = 1): void {
    this.#crcErrors += frames;
  }

  /** Reads a register as the chip holds it, without side effects (tests only). */
  peek(register: number): number {
    if (register === Reg.FIFOLevelReg) return this.#fifo.length;
    if (register === Reg.VersionReg) return this.#version;
    return this.#regs[register];
  }

  get antennaOn(): boolean {
    return (this.#regs[Reg.TxControlReg] & RF_ON) !== 0;
  }

  /** §9.3.3.10: (2·TPrescaler + 1)·(TReload + 1) / 13.56 MHz, in ms. */
  get timerPeriodMs(): number {
    const regs = this.#regs;
    const prescaler = ((regs[Reg.TModeReg] & Bit.TPrescalerHi) << 8) | regs[Reg.TPrescalerReg];
    const reload = (regs[Reg.TReloadRegHi] << 8) | regs[Reg.TReloadRegLo];
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
      case Reg.FIFODataReg:
        return this.#fifo.shift() ?? 0;
      case Reg.FIFOLevelReg:
        return this.#fifo.length;
      case Reg.VersionReg:
        return this.#version;
      case Reg.Status1Reg: {
        const level = this.#fifo.length;
        const comIrq = regs[Reg.ComIrqReg];
        const irq = comIrq & regs[Reg.ComIEnReg] & 0x7f || regs[Reg.DivIrqReg] & regs[Reg.DivIEnReg] & 0x7f;
        return (
          (regs[Reg.Status1Reg] & (Bit.CRCOk | Bit.CRCReady)) |
          (irq ? Bit.IRq : 0) |
          (level <= 8 ? Bit.LoAlert : 0) |
          (level >= FIFO_BYTES - 8 ? Bit.HiAlert : 0)
        );
      }
      default:
        return regs[register];
    }
  }

  #write(register: number, value: number): void {
    const regs = this.#regs;
    switch (register) {
      case Reg.CommandReg:
        regs[register] = (regs[register] & 0xf0) | (value & 0x30) | (value & 0x0f);
        this.#command(value & 0x0f);
        return;
      case Reg.ComIrqReg:
      case Reg.DivIrqReg:
        if (value & Bit.Set1) regs[register] |= value & 0x7f;
        else regs[register] &= ~value & 0x7f;
        return;
      case Reg.FIFODataReg:
        if (this.#fifo.length >= FIFO_BYTES) regs[Reg.ErrorReg] |= Bit.BufferOvfl;
        else this.#fifo.push(value);
        return;
      case Reg.FIFOLevelReg:
        if (value & Bit.FlushBuffer) {
          this.#fifo = [];
          regs[Reg.ErrorReg] &= ~Bit.BufferOvfl;
        }
        return;
      case Reg.BitFramingReg:
        regs[register] = value;
        if (value & Bit.StartSend && (regs[Reg.CommandReg] & 0x0f) === Cmd.Transceive) {
          this.#transceive();
        }
        return;
      case Reg.CollReg:
        regs[register] = (regs[register] & 0x7f) | (value & Bit.ValuesAfterColl);
        return;
      case Reg.TxControlReg: {
        const wasOn = this.antennaOn;
        regs[register] = value;
        if (wasOn && !this.antennaOn) this.field.powerOff();
        return;
      }
      case Reg.ErrorReg:
      case Reg.Status1Reg:
      case Reg.ControlReg: // only TStopNow/TStartNow are writable; the timer is modelled at timeout only
      case Reg.CRCResultRegMSB:
      case Reg.CRCResultRegLSB:
      case Reg.VersionReg:
        return;
      default:
        regs[register] = value;
    }
  }

  #command(command: number): void {
    const regs = this.#regs;
    switch (command) {
      case Cmd.SoftReset:
        this.softResets++;
        this.#reset();
        return;
      case Cmd.Mem:
        // §10.3.1.2: 25 bytes FIFO → internal buffer, or back when the FIFO is empty
        if (this.#fifo.length === 0) this.#fifo = Array.from(this.#internal);
        else this.#internal.set(this.#fifo.splice(0, 25).concat(Array(25).fill(0)).slice(0, 25));
        this.#finish();
        return;
      case Cmd.GenerateRandomID:
        for (let i = 0; i < 10; i++) {
          this.#random = (Math.imul(this.#random, 1_103_515_245) + 12_345) >>> 0;
          this.#internal[i] = this.#random >>> 24;
        }
        this.#finish();
        return;
      case Cmd.CalcCRC: {
        // §10.3.1.4: runs until another command; ModeReg CRCPreset chooses the preset
        const data = Uint8Array.from(this.#fifo.splice(0));
        const crc = crcA(data, data.length, CRC_PRESETS[regs[Reg.ModeReg] & Bit.CRCPreset]);
        regs[Reg.CRCResultRegLSB] = crc & 0xff;
        regs[Reg.CRCResultRegMSB] = crc >> 8;
        regs[Reg.DivIrqReg] |= Bit.CRCIRq;
        regs[Reg.Status1Reg] |= Bit.CRCReady | Bit.CRCOk;
        return;
      }
      case Cmd.Transmit:
        this.#send();
        this.#finish();
        return;
      case Cmd.Idle:
      case Cmd.Transceive: // waits for StartSend
      case Cmd.Receive: // nothing arrives unsent; only the driver's deadline ends it
        return;
      default:
        // MFAuthent and the rest: not modelled; the chip reports a protocol error
        regs[Reg.ErrorReg] |= Bit.ProtocolErr;
        regs[Reg.ComIrqReg] |= Bit.ErrIRq;
        this.#finish();
    }
  }

  #finish(): void {
    const regs = this.#regs;
    regs[Reg.CommandReg] &= 0xf0;
    regs[Reg.ComIrqReg] |= Bit.IdleIRq;
  }

  /** FIFO → air, with TxLastBits and (TxCRCEn) CRC_A. Answers only while the antenna is on. */
  #send(): RfFrame[] {
    const regs = this.#regs;
    const data = Uint8Array.from(this.#fifo.splice(0));
    const lastBits = regs[Reg.BitFramingReg] & 0x07;
    const crc = regs[Reg.TxModeReg] & Bit.TxCRCEn && lastBits === 0;
    const frame: RfFrame = crc
      ? frameOf(withCrcA(data))
      : { bytes: data, bits: lastBits ? (data.length - 1) * 8 + lastBits : data.length * 8 };
    regs[Reg.ComIrqReg] |= Bit.TxIRq;
    if (!this.antennaOn || frame.bits === 0) return [];
    this.sent.push(frame);
    if (this.sent.length > LOG_LIMIT) this.sent.shift();
    return this.field.deliver(frame);
  }

  #transceive(): void {
    const regs = this.#regs;
    const answers = this.#send();
    regs[Reg.BitFramingReg] &= ~Bit.StartSend;
    regs[Reg.ErrorReg] = 0; // cleared when the receiver starts
    if (answers.length === 0) {
      if (regs[Reg.TModeReg] & Bit.TAuto) regs[Reg.ComIrqReg] |= Bit.TimerIRq;
      return;
    }
    const valuesAfterColl = (regs[Reg.CollReg] & Bit.ValuesAfterColl) !== 0;
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
    if (collision >= 0) errors |= Bit.CollErr;
    else if (regs[Reg.RxModeReg] & Bit.RxCRCEn) {
      if (checkCrcA(frame)) frame = { bytes: received.subarray(0, received.length - 2), bits: bits - 16 };
      else errors |= Bit.CRCErr;
    }
    // RxAlign: the first received bit lands at that position of the first FIFO byte
    const rxAlign = (regs[Reg.BitFramingReg] >> 4) & 0x07;
    const total = rxAlign + frame.bits;
    const fifo = new Uint8Array((total + 7) >> 3);
    for (let i = 0; i < frame.bits; i++) {
      if (bitAt(frame, i)) fifo[(rxAlign + i) >> 3] |= 1 << ((rxAlign + i) & 7);
    }
    for (const byte of fifo) {
      if (this.#fifo.length >= FIFO_BYTES) {
        errors |= Bit.BufferOvfl;
        break;
      }
      this.#fifo.push(byte);
    }
    const position = collision >= 0 ? rxAlign + collision + 1 : 0;
    regs[Reg.CollReg] =
      (regs[Reg.CollReg] & Bit.ValuesAfterColl) |
      (collision >= 0 && position <= 32 ? position & Bit.CollPos : Bit.CollPosNotValid);
    regs[Reg.ControlReg] = (regs[Reg.ControlReg] & ~Bit.RxLastBits) | (total & 7);
    regs[Reg.ErrorReg] = errors;
    regs[Reg.ComIrqReg] |= Bit.RxIRq | (errors ? Bit.ErrIRq : 0);
  }
}
