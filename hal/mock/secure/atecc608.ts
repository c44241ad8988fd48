// A virtual ATECC608 on a virtual I2C bus: asleep until the wake pulse on address 0, then the
// command packets of drivers/secure/atecc608.ts with their CRC, answering Info, Random, Read,
// Write and SHA (plain and HMAC with a slot key). Slots marked secret cannot be read, as with
// SlotConfig.IsSecret; `failNext` makes the next answer a given status or a corrupted CRC.
import { hmac } from '@noble/hashes/hmac';
import { sha256 } from '@noble/hashes/sha256';
import {
  crc16,
  Opcode,
  ShaMode,
  Status,
  WAKE_RESPONSE,
  WordAddress,
  Zone,
} from '../../../drivers/secure/atecc608';
import type { VirtualI2cBus, VirtualI2cChip } from '../bus';

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
  revision = 0x6002;

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
        this.#out = Uint8Array.from(WAKE_RESPONSE);
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
    if (word === WordAddress.SLEEP || word === WordAddress.IDLE) {
      this.#awake = false; // idle keeps TempKey on the real chip; nothing here depends on it
      return undefined;
    }
    if (word !== WordAddress.COMMAND) return undefined;
    const count = bytes[1];
    if (count < 7 || bytes.length !== count + 1) return this.#status(Status.PARSE_ERROR);
    const crc = bytes[count - 1] | (bytes[count] << 8);
    if (crc16(bytes.subarray(1), count - 2) !== crc) return this.#status(Status.CRC_ERROR);
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
      case Opcode.INFO:
        return p1 === 0
          ? this.#answer(Uint8Array.of(0, 0, this.revision >> 8, this.revision & 0xff))
          : this.#status(Status.PARSE_ERROR);
      case Opcode.RANDOM: {
        const out = new Uint8Array(32);
        for (let i = 0; i < 32; i++) {
          this.#counter = (Math.imul(this.#counter, 1_103_515_245) + 12_345) >>> 0;
          out[i] = this.#counter >>> 24;
        }
        return this.#answer(sha256(out));
      }
      case Opcode.READ:
      case Opcode.WRITE: {
        const slot = p2 >> 3;
        if (p1 !== (Zone.DATA | Zone.BLOCK_32) || (p2 & 0x7) !== 0 || slot > 15)
          return this.#status(Status.PARSE_ERROR);
        if (opcode === Opcode.READ) {
          if (this.state.secret[slot]) return this.#status(Status.EXECUTION_ERROR);
          return this.#answer(this.state.slots[slot].slice());
        }
        if (data.length !== 32) return this.#status(Status.PARSE_ERROR);
        this.state.slots[slot] = data.slice();
        return this.#status(Status.SUCCESS);
      }
      case Opcode.SHA:
        return this.#shaCommand(p1, p2, data);
      default:
        return this.#status(Status.PARSE_ERROR);
    }
  }

  #shaCommand(mode: number, p2: number, data: Uint8Array): undefined {
    if (mode === ShaMode.START || mode === ShaMode.HMAC_START) {
      if (mode === ShaMode.HMAC_START && p2 > 15) return this.#status(Status.PARSE_ERROR);
      this.#sha = { key: mode === ShaMode.HMAC_START ? this.state.slots[p2].slice() : undefined, chunks: [] };
      return this.#status(Status.SUCCESS);
    }
    const sha = this.#sha;
    if (!sha) return this.#status(Status.EXECUTION_ERROR);
    if (mode === ShaMode.UPDATE) {
      if (data.length !== 64 || p2 !== 64) return this.#status(Status.PARSE_ERROR);
      sha.chunks.push(data);
      return this.#status(Status.SUCCESS);
    }
    if (mode === ShaMode.END || mode === ShaMode.HMAC_END) {
      if (data.length !== p2 || data.length > 63 || (mode === ShaMode.HMAC_END) !== (sha.key !== undefined))
        return this.#status(Status.PARSE_ERROR);
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
    return this.#status(Status.PARSE_ERROR);
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
    const crc = crc16(out, out.length - 2);
    out[out.length - 2] = crc & 0xff;
    out[out.length - 1] = crc >> 8;
    if (fail === 'crc') out[out.length - 1] ^= 0xff;
    this.#out = out;
    return undefined;
  }
}
