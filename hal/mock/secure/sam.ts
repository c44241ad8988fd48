// A virtual SAM behind a virtual UART: ISO/IEC 7816-3 T=1 blocks and the ParkLink SAM application
// (docs/secure-parts.md), with its keys in `state` (what survives a power cycle). Can be made to
// answer a bad LRC, stay silent or ask for waiting time. Its block format, instructions and status
// words are written here from those two documents, not taken from drivers/secure/sam.ts;
// host-tests/twins/secure.test.ts compares the two.
import { hmac } from '@noble/hashes/hmac';
import { sha256 } from '@noble/hashes/sha256';
import { bytesEqual, readUint32, writeUint32 } from '../../../protocol/bytes';
import { downlinkKeyFromSalt, maintenanceSecret } from '../../../protocol/keys';
import { cardKey, cardProof, readerProof, sessionKey, sessionMac } from '../purse';
import type { VirtualSerialDevice } from '../serial';

/** ISO/IEC 7816-3 §11.3.2: PCB codings of the blocks the SAM sends or understands. */
export const Pcb = Object.freeze({
  I_SEQUENCE: 0b0100_0000, // I-block N(S)
  R_BLOCK: 0b1000_0000, // R-block 100N 00ee
  R_SEQUENCE: 0b0001_0000,
  R_EDC_ERROR: 0b01,
  R_OTHER_ERROR: 0b10,
  RESYNCH_REQUEST: 0xc0,
  RESYNCH_RESPONSE: 0xe0,
  WTX_REQUEST: 0xc3,
  WTX_RESPONSE: 0xe3,
});

/** ISO/IEC 7816-3 §11.3.1: NAD PCB LEN INF LRC, LRC the XOR of every byte before it. */
export function t1Block(pcb: number, inf: Uint8Array): Uint8Array {
  const out = Uint8Array.of(0x00, pcb, inf.length, ...inf, 0);
  let lrc = 0;
  for (let i = 0; i < out.length - 1; i++) lrc ^= out[i];
  out[out.length - 1] = lrc;
  return out;
}

/** One whole block with a good LRC, or undefined. */
function parseT1Block(bytes: Uint8Array): { pcb: number; inf: Uint8Array } | undefined {
  if (bytes.length < 4 || bytes[2] === 0xff || bytes.length !== bytes[2] + 4) return undefined;
  let lrc = 0;
  for (const byte of bytes) lrc ^= byte;
  return lrc === 0 ? { pcb: bytes[1], inf: bytes.subarray(3, bytes.length - 1) } : undefined;
}

/** docs/secure-parts.md "SAM application": CLA 80 and the instructions. */
export const SamApdu = Object.freeze({
  CLA: 0x80,
  GET_INFO: 0x10,
  SET_METER_ID: 0x12,
  LOAD_CARD_MASTER: 0x14,
  LOAD_KEYS: 0x20,
  DERIVE_D: 0x22,
  MAINTENANCE_SECRET: 0x24,
  ERASE_BANK: 0x26,
  WIPE: 0x2e,
  CARD_AUTH_BEGIN: 0x40,
  CARD_AUTH_PROVE: 0x42,
  CARD_MAC: 0x44,
});

/** docs/secure-parts.md "SAM application": the status words (ISO/IEC 7816-4 §5.6 meanings). */
export const SamSw = Object.freeze({
  OK: 0x9000,
  WRONG_LENGTH: 0x6700,
  SECURITY_STATUS_NOT_SATISFIED: 0x6982,
  CONDITIONS_NOT_SATISFIED: 0x6985,
  WRONG_MAC: 0x6988,
  WRONG_P1_P2: 0x6a86,
  REFERENCED_DATA_NOT_FOUND: 0x6a88,
  INS_NOT_SUPPORTED: 0x6d00,
  CLA_NOT_SUPPORTED: 0x6e00,
});

const hmacProvider = { hmacSha256: (key: Uint8Array, data: Uint8Array) => hmac(sha256, key, data) };

export interface SamBank {
  epoch: number;
  a: Uint8Array;
  m: Uint8Array;
}

/** What survives a power cycle. */
export interface SamState {
  meterId: number;
  banks: [SamBank | undefined, SamBank | undefined];
  cardMaster: Uint8Array | undefined;
  wiped: boolean;
}

export function blankSamState(cardMaster?: Uint8Array): SamState {
  return { meterId: 0, banks: [undefined, undefined], cardMaster: cardMaster?.slice(), wiped: false };
}

function sw(word: number): Uint8Array {
  return Uint8Array.of(word >> 8, word & 0xff);
}

export class VirtualSam implements VirtualSerialDevice {
  readonly state: SamState;
  #sequence = 0;
  #counter: number;
  #card: { key: Uint8Array; rndR: Uint8Array; session?: Uint8Array } | undefined;
  /** APDUs processed (tests). */
  apdus = 0;
  /** One-shot faults: a corrupted LRC, silence, or one S(WTX) request before the answer. */
  fault: 'lrc' | 'silent' | 'wtx' | undefined;

  constructor(options: { state?: SamState; seed?: number } = {}) {
    this.state = options.state ?? blankSamState();
    this.#counter = options.seed ?? 7;
  }

  receive(bytes: Uint8Array, line: { send(bytes: Uint8Array): void }): void {
    const block = parseT1Block(bytes);
    if (!block) {
      line.send(t1Block(Pcb.R_BLOCK | Pcb.R_EDC_ERROR, new Uint8Array(0)));
      return;
    }
    const fault = this.fault;
    this.fault = undefined;
    if (fault === 'silent') return;
    const send = (pcb: number, inf: Uint8Array) => {
      const out = t1Block(pcb, inf);
      if (fault === 'lrc') out[out.length - 1] ^= 0x5a;
      line.send(out);
    };
    if (block.pcb === Pcb.RESYNCH_REQUEST) {
      this.#sequence = 0;
      this.#card = undefined;
      send(Pcb.RESYNCH_RESPONSE, new Uint8Array(0));
      return;
    }
    if (block.pcb === Pcb.WTX_RESPONSE) return; // the reader granted time: the answer follows below
    if ((block.pcb & Pcb.R_BLOCK) !== 0) {
      send(Pcb.R_BLOCK | Pcb.R_OTHER_ERROR, new Uint8Array(0));
      return;
    }
    const ns = block.pcb & Pcb.I_SEQUENCE ? 1 : 0;
    if (ns !== this.#sequence) {
      send(Pcb.R_BLOCK | (this.#sequence ? Pcb.R_SEQUENCE : 0) | Pcb.R_OTHER_ERROR, new Uint8Array(0));
      return;
    }
    this.#sequence ^= 1;
    if (fault === 'wtx') line.send(t1Block(Pcb.WTX_REQUEST, Uint8Array.of(1)));
    send(ns ? Pcb.I_SEQUENCE : 0, this.process(block.inf));
  }

  /** One command APDU in, one response APDU out. */
  process(apdu: Uint8Array): Uint8Array {
    this.apdus++;
    if (apdu.length < 4) return sw(SamSw.WRONG_LENGTH);
    const [cla, ins, p1, p2] = apdu;
    if (cla !== SamApdu.CLA) return sw(SamSw.CLA_NOT_SUPPORTED);
    let data: Uint8Array;
    if (apdu.length === 4 || apdu.length === 5) data = new Uint8Array(0);
    else if (apdu.length === 5 + apdu[4] || apdu.length === 6 + apdu[4]) data = apdu.subarray(5, 5 + apdu[4]);
    else return sw(SamSw.WRONG_LENGTH);
    if (p2 !== 0) return sw(SamSw.WRONG_P1_P2);
    const state = this.state;
    const bankIns: number[] = [
      SamApdu.LOAD_KEYS,
      SamApdu.DERIVE_D,
      SamApdu.MAINTENANCE_SECRET,
      SamApdu.ERASE_BANK,
    ];
    if (bankIns.includes(ins) && p1 > 1) return sw(SamSw.WRONG_P1_P2);
    switch (ins) {
      case SamApdu.GET_INFO: {
        const out = new Uint8Array(15);
        writeUint32(out, 0, state.meterId);
        writeUint32(out, 4, state.banks[0]?.epoch ?? 0);
        writeUint32(out, 8, state.banks[1]?.epoch ?? 0);
        out[12] = state.wiped ? 1 : 0;
        out.set(sw(SamSw.OK), 13);
        return out;
      }
      case SamApdu.SET_METER_ID:
        if (data.length !== 4) return sw(SamSw.WRONG_LENGTH);
        state.meterId = readUint32(data, 0);
        return sw(SamSw.OK);
      case SamApdu.LOAD_CARD_MASTER:
        if (data.length !== 16) return sw(SamSw.WRONG_LENGTH);
        state.cardMaster = data.slice();
        state.wiped = false;
        return sw(SamSw.OK);
      case SamApdu.LOAD_KEYS:
        if (data.length !== 68) return sw(SamSw.WRONG_LENGTH);
        state.banks[p1] = { epoch: readUint32(data, 0), a: data.slice(4, 36), m: data.slice(36, 68) };
        state.wiped = false;
        return sw(SamSw.OK);
      case SamApdu.DERIVE_D: {
        const bank = state.banks[p1];
        if (data.length !== 32) return sw(SamSw.WRONG_LENGTH);
        if (!bank) return sw(SamSw.REFERENCED_DATA_NOT_FOUND);
        return Uint8Array.of(
          ...downlinkKeyFromSalt(hmacProvider, bank.a, data, state.meterId, bank.epoch),
          0x90,
          0,
        );
      }
      case SamApdu.MAINTENANCE_SECRET: {
        const bank = state.banks[p1];
        if (data.length === 0) return sw(SamSw.WRONG_LENGTH);
        if (!bank) return sw(SamSw.REFERENCED_DATA_NOT_FOUND);
        return Uint8Array.of(...maintenanceSecret(hmacProvider, bank.m, data), 0x90, 0);
      }
      case SamApdu.ERASE_BANK:
        state.banks[p1]?.a.fill(0);
        state.banks[p1]?.m.fill(0);
        state.banks[p1] = undefined;
        return sw(SamSw.OK);
      case SamApdu.WIPE:
        for (const bank of state.banks) {
          bank?.a.fill(0);
          bank?.m.fill(0);
        }
        state.banks = [undefined, undefined];
        state.cardMaster?.fill(0);
        state.cardMaster = undefined;
        state.wiped = true;
        this.#card = undefined;
        return sw(SamSw.OK);
      case SamApdu.CARD_AUTH_BEGIN: {
        if (data.length !== 4 && data.length !== 7 && data.length !== 10) return sw(SamSw.WRONG_LENGTH);
        if (!state.cardMaster) return sw(SamSw.REFERENCED_DATA_NOT_FOUND);
        const rndR = this.#random(16);
        this.#card = { key: cardKey(state.cardMaster, data), rndR };
        return Uint8Array.of(...rndR, 0x90, 0);
      }
      case SamApdu.CARD_AUTH_PROVE: {
        const card = this.#card;
        if (!card || card.session) return sw(SamSw.CONDITIONS_NOT_SATISFIED);
        if (data.length !== 32) return sw(SamSw.WRONG_LENGTH);
        const rndC = data.subarray(0, 16);
        const expected = cardProof(card.key, card.rndR, rndC);
        if (!bytesEqual(expected, data.subarray(16, 32))) {
          this.#card = undefined;
          return sw(SamSw.SECURITY_STATUS_NOT_SATISFIED);
        }
        card.session = sessionKey(card.key, card.rndR, rndC);
        return Uint8Array.of(...readerProof(card.key, card.rndR, rndC), 0x90, 0);
      }
      case SamApdu.CARD_MAC: {
        const session = this.#card?.session;
        if (!session) return sw(SamSw.CONDITIONS_NOT_SATISFIED);
        if (p1 === 0) return Uint8Array.of(...sessionMac(session, data), 0x90, 0);
        if (p1 !== 1) return sw(SamSw.WRONG_P1_P2);
        if (data.length < 8) return sw(SamSw.WRONG_LENGTH);
        const mac = sessionMac(session, data.subarray(0, data.length - 8));
        return sw(bytesEqual(mac, data.subarray(data.length - 8)) ? SamSw.OK : SamSw.WRONG_MAC);
      }
      default:
        return sw(SamSw.INS_NOT_SUPPORTED);
    }
  }

  #random(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      this.#counter = (Math.imul(this.#counter, 1_103_515_245) + 12_345) >>> 0;
      out[i] = this.#counter >>> 24;
    }
    return sha256(out).subarray(0, length);
  }
}
