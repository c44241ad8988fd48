// A virtual ATECC608 on a virtual I2C bus: asleep until the wake pulse on address 0, then command
// packets with their CRC, answering Info, Random, Read, Write and SHA (plain and HMAC with a slot
// key). Slots marked secret cannot be read, as with SlotConfig.IsSecret; `failNext` makes the next
// answer a given status or a corrupted CRC. Word addresses, opcodes, modes, status codes and the
// CRC are written here from the datasheet, not taken from drivers/secure/atecc608.ts;
// host-tests/twins/secure.test.ts compares the two.
import { hmac } from '@noble/hashes/hmac';
import { sha256 } from '@noble/hashes/sha256';
import type { VirtualI2cBus, VirtualI2cChip } from '../bus';

/** ATECC608A datasheet (DS40001977) §6.2.1: the word address byte that starts each write. */
export const Word = Object.freeze({ Reset: 0x00, Sleep: 0x01, Idle: 0x02, Command: 0x03 });

/** §11 opcodes of the commands modelled. */
export const Op = Object.freeze({ Read: 0x02, Write: 0x12, Random: 0x1b, Info: 0x30, SHA: 0x47 });

/**
 * §11.13 SHA Mode[2:0]. The 608 ends plain and HMAC digests alike with End (0x02), as Microchip's
 * CryptoAuthLib does for it; 0x05 is the ATECC508A's HMAC End.
 */
export const Sha = Object.freeze({ Start: 0x00, Update: 0x01, End: 0x02, Public: 0x03, HmacStart: 0x04 });

/** §11.11 Read / §11.20 Write Param1: Zone[1:0], bit 7 for 32 bytes. */
export const Param1 = Object.freeze({ Config: 0x00, OTP: 0x01, Data: 0x02, ThirtyTwoBytes: 0x80 });

/** §6.3 status codes in a 4-byte answer. */
export const StatusCode = Object.freeze({
  Success: 0x00,
  CheckMacOrVerifyMiscompare: 0x01,
  ParseError: 0x03,
  EccFault: 0x05,
  ExecutionError: 0x0f,
  AfterWake: 0x11,
  WatchdogAboutToExpire: 0xee,
  CrcOrCommunicationError: 0xff,
});

/** §11.7 Info mode Revision: 00 00 60 02 for the ATECC608A. */
export const REVISION_608A = 0x6002;

/** §6.3: CRC-16, polynomial 0x8005, initial value 0, data bits taken LSB first, sent low byte first. */
export function packetCrc(data: Uint8Array, length = data.length): number {
  let crc = 0;
  for (let i = 0; i < length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const feedback = ((data[i] >> bit) & 1) ^ (crc >> 15);
      crc = (crc << 1) & 0xffff;
      if (feedback) crc ^= 0x8005;
    }
  }
  return crc;
}

/** §6.2.5: the answer to a wake, status After Wake with its CRC. */
function wakeAnswer(): Uint8Array {
  const out = Uint8Array.of(4, StatusCode.AfterWake, 0, 0);
  const crc = packetCrc(out, 2);
  out[2] = crc & 0xff;
  out[3] = crc >> 8;
  return out;
}

/** What survives a power cycle: the data zone and which slots are secret. */
export interface Atecc608State {
  slots: Uint8Array[];
  secret: boolean[];
}

export function blankAtecc608State(): Atecc608State {
  return {
    slots: Array.from({ length: 16 }, () => new Uint8Array(32)),
    secret: Array.from({ length: 16 }, () => false),
  };
}

export class VirtualAtecc608 implements VirtualI2cChip {
  readonly state: Atecc608State;
  readonly address: number;
  #awake = false;
  #out: Uint8Array = new Uint8Array(0);
  #sha: { key?: Uint8Array; chunks: Uint8Array[] } | undefined;
  #counter = 0;
  /** Commands executed (tests). */
  commands = 0;
  /** Fails the next answer: a status byte, or 'crc' for a corrupted CRC. */
  failNext: number | 'crc' | undefined;
  revision = REVISION_608A;

  constructor(options: { state?: Atecc608State; address?: number; seed?: number } = {}) {
    this.state = options.state ?? blankAtecc608State();
    this.address = options.address ?? 0x60;
    this.#counter = options.seed ?? 1;
  }

  /** Attaches the chip and its wake detector (address 0) to a bus. */
  attachTo(bus: VirtualI2cBus): void {
    bus.attach(this.address, this);
    bus.attach(0x00, {
      acknowledge: () => {
        this.#awake = true;
        this.#out = wakeAnswer();
        return false;
      },
      receive() {},
      transmit: () => new Uint8Array(0),
    });
  }

  get awake(): boolean {
    return this.#awake;
  }

  acknowledge(): boolean {
    return this.#awake;
  }

  receive(bytes: Uint8Array): undefined {
    const word = bytes[0];
    if (word === Word.Sleep || word === Word.Idle) {
      this.#awake = false; // idle keeps TempKey on the real chip; nothing here depends on it
      return undefined;
    }
    if (word !== Word.Command) return undefined;
    const count = bytes[1];
    if (count < 7 || bytes.length !== count + 1) return this.#status(StatusCode.ParseError);
    const crc = bytes[count - 1] | (bytes[count] << 8);
    if (packetCrc(bytes.subarray(1), count - 2) !== crc)
      return this.#status(StatusCode.CrcOrCommunicationError);
    this.commands++;
    const [opcode, p1, p2lo, p2hi] = bytes.subarray(2, 6);
    const p2 = p2lo | (p2hi << 8);
    const data = bytes.slice(6, count - 1);
    return this.#execute(opcode, p1, p2, data);
  }

  transmit(byteLength: number): Uint8Array {
    const out = this.#out.subarray(0, byteLength);
    this.#out = this.#out.subarray(byteLength);
    return out;
  }

  #execute(opcode: number, p1: number, p2: number, data: Uint8Array): undefined {
    switch (opcode) {
      case Op.Info:
        return p1 === 0
          ? this.#answer(Uint8Array.of(0, 0, this.revision >> 8, this.revision & 0xff))
          : this.#status(StatusCode.ParseError);
      case Op.Random: {
        const out = new Uint8Array(32);
        for (let i = 0; i < 32; i++) {
          this.#counter = (Math.imul(this.#counter, 1_103_515_245) + 12_345) >>> 0;
          out[i] = this.#counter >>> 24;
        }
        return this.#answer(sha256(out));
      }
      case Op.Read:
      case Op.Write: {
        const slot = p2 >> 3;
        if (p1 !== (Param1.Data | Param1.ThirtyTwoBytes) || (p2 & 0x7) !== 0 || slot > 15)
          return this.#status(StatusCode.ParseError);
        if (opcode === Op.Read) {
          if (this.state.secret[slot]) return this.#status(StatusCode.ExecutionError);
          return this.#answer(this.state.slots[slot].slice());
        }
        if (data.length !== 32) return this.#status(StatusCode.ParseError);
        this.state.slots[slot] = data.slice();
        return this.#status(StatusCode.Success);
      }
      case Op.SHA:
        return this.#shaCommand(p1, p2, data);
      default:
        return this.#status(StatusCode.ParseError);
    }
  }

  #shaCommand(mode: number, p2: number, data: Uint8Array): undefined {
    if (mode === Sha.Start || mode === Sha.HmacStart) {
      if (mode === Sha.HmacStart && p2 > 15) return this.#status(StatusCode.ParseError);
      this.#sha = { key: mode === Sha.HmacStart ? this.state.slots[p2].slice() : undefined, chunks: [] };
      return this.#status(StatusCode.Success);
    }
    const sha = this.#sha;
    if (!sha) return this.#status(StatusCode.ExecutionError);
    if (mode === Sha.Update) {
      if (data.length !== 64 || p2 !== 64) return this.#status(StatusCode.ParseError);
      sha.chunks.push(data);
      return this.#status(StatusCode.Success);
    }
    // The 508's HMAC End (0x05) is not a 608 mode: the chip refuses it.
    if (mode !== Sha.End) return this.#status(StatusCode.ParseError);
    if (data.length !== p2 || data.length > 63) return this.#status(StatusCode.ParseError);
    sha.chunks.push(data);
    let length = 0;
    for (const c of sha.chunks) length += c.length;
    const message = new Uint8Array(length);
    let at = 0;
    for (const c of sha.chunks) {
      message.set(c, at);
      at += c.length;
    }
    const digest = sha.key ? hmac(sha256, sha.key, message) : sha256(message);
    sha.key?.fill(0);
    this.#sha = undefined;
    return this.#answer(digest);
  }

  #status(status: number): undefined {
    return this.#answer(Uint8Array.of(status));
  }

  #answer(body: Uint8Array): undefined {
    let data = body;
    const fail = this.failNext;
    this.failNext = undefined;
    if (typeof fail === 'number') data = Uint8Array.of(fail);
    const out = new Uint8Array(data.length + 3);
    out[0] = out.length;
    out.set(data, 1);
    const crc = packetCrc(out, out.length - 2);
    out[out.length - 2] = crc & 0xff;
    out[out.length - 1] = crc >> 8;
    if (fail === 'crc') out[out.length - 1] ^= 0xff;
    this.#out = out;
    return undefined;
  }
}
