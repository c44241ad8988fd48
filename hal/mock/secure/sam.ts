// A virtual SAM behind a virtual UART: ISO 7816-3 T=1 blocks and the ParkLink SAM application of
// drivers/secure/sam.ts, with its keys in `state` (what survives a power cycle). Can be made to
// answer a bad LRC, stay silent or ask for waiting time.
import { hmac } from '@noble/hashes/hmac';
import { sha256 } from '@noble/hashes/sha256';
import {
  purseCardKey,
  purseCardProof,
  purseMac,
  purseReaderProof,
  purseSessionKey,
} from '../../../drivers/secure/cmac';
import {
  decodeT1Block,
  encodeT1Block,
  SAM_CLA,
  SamInstruction,
  SamStatus,
  T1,
} from '../../../drivers/secure/sam';
import { bytesEqual, readUint32, writeUint32 } from '../../../protocol/bytes';
import { downlinkKeyFromSalt, maintenanceSecret } from '../../../protocol/keys';
import type { VirtualSerialDevice } from '../serial';
import { CardNotGenuine } from '../../../drivers/rfid/purse';
import { nobleAesBlock } from './aes';

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
    let block: ReturnType<typeof decodeT1Block>;
    try {
      block = decodeT1Block(bytes);
    } catch {
      line.send(encodeT1Block(0x81, new Uint8Array(0))); // R-block: EDC error
      return;
    }
    const fault = this.fault;
    this.fault = undefined;
    if (fault === 'silent') return;
    const send = (pcb: number, inf: Uint8Array) => {
      const out = encodeT1Block(pcb, inf);
      if (fault === 'lrc') out[out.length - 1] ^= 0x5a;
      line.send(out);
    };
    if (block.pcb === T1.RESYNCH) {
      this.#sequence = 0;
      this.#card = undefined;
      send(T1.RESYNCH_RESPONSE, new Uint8Array(0));
      return;
    }
    if (block.pcb === T1.WTX_RESPONSE) return; // the reader granted time: the answer follows below
    if ((block.pcb & 0x80) !== 0) {
      send(0x82, new Uint8Array(0)); // R-block: other error
      return;
    }
    const ns = (block.pcb >> 6) & 1;
    if (ns !== this.#sequence) {
      send(0x80 | (this.#sequence << 4) | 0x02, new Uint8Array(0));
      return;
    }
    this.#sequence ^= 1;
    if (fault === 'wtx') line.send(encodeT1Block(T1.WTX, Uint8Array.of(1)));
    send(ns << 6, this.process(block.inf));
  }

  /** One command APDU in, one response APDU out. */
  process(apdu: Uint8Array): Uint8Array {
    this.apdus++;
    if (apdu.length < 4) return sw(SamStatus.WRONG_LENGTH);
    const [cla, ins, p1, p2] = apdu;
    if (cla !== SAM_CLA) return sw(SamStatus.UNKNOWN_CLA);
    let data: Uint8Array;
    if (apdu.length === 4 || apdu.length === 5) data = new Uint8Array(0);
    else if (apdu.length === 5 + apdu[4] || apdu.length === 6 + apdu[4]) data = apdu.subarray(5, 5 + apdu[4]);
    else return sw(SamStatus.WRONG_LENGTH);
    if (p2 !== 0) return sw(SamStatus.BAD_P1P2);
    const state = this.state;
    const bankIns: number[] = [
      SamInstruction.LOAD_KEYS,
      SamInstruction.DERIVE_D,
      SamInstruction.MAINTENANCE_SECRET,
      SamInstruction.ERASE_BANK,
    ];
    if (bankIns.includes(ins) && p1 > 1) return sw(SamStatus.BAD_P1P2);
    switch (ins) {
      case SamInstruction.GET_INFO: {
        const out = new Uint8Array(15);
        writeUint32(out, 0, state.meterId);
        writeUint32(out, 4, state.banks[0]?.epoch ?? 0);
        writeUint32(out, 8, state.banks[1]?.epoch ?? 0);
        out[12] = state.wiped ? 1 : 0;
        out.set(sw(SamStatus.OK), 13);
        return out;
      }
      case SamInstruction.SET_METER_ID:
        if (data.length !== 4) return sw(SamStatus.WRONG_LENGTH);
        state.meterId = readUint32(data, 0);
        return sw(SamStatus.OK);
      case SamInstruction.LOAD_CARD_MASTER:
        if (data.length !== 16) return sw(SamStatus.WRONG_LENGTH);
        state.cardMaster = data.slice();
        state.wiped = false;
        return sw(SamStatus.OK);
      case SamInstruction.LOAD_KEYS:
        if (data.length !== 68) return sw(SamStatus.WRONG_LENGTH);
        state.banks[p1] = { epoch: readUint32(data, 0), a: data.slice(4, 36), m: data.slice(36, 68) };
        state.wiped = false;
        return sw(SamStatus.OK);
      case SamInstruction.DERIVE_D: {
        const bank = state.banks[p1];
        if (data.length !== 32) return sw(SamStatus.WRONG_LENGTH);
        if (!bank) return sw(SamStatus.KEY_NOT_FOUND);
        return Uint8Array.of(
          ...downlinkKeyFromSalt(hmacProvider, bank.a, data, state.meterId, bank.epoch),
          0x90,
          0,
        );
      }
      case SamInstruction.MAINTENANCE_SECRET: {
        const bank = state.banks[p1];
        if (data.length === 0) return sw(SamStatus.WRONG_LENGTH);
        if (!bank) return sw(SamStatus.KEY_NOT_FOUND);
        return Uint8Array.of(...maintenanceSecret(hmacProvider, bank.m, data), 0x90, 0);
      }
      case SamInstruction.ERASE_BANK:
        state.banks[p1]?.a.fill(0);
        state.banks[p1]?.m.fill(0);
        state.banks[p1] = undefined;
        return sw(SamStatus.OK);
      case SamInstruction.WIPE:
        for (const bank of state.banks) {
          bank?.a.fill(0);
          bank?.m.fill(0);
        }
        state.banks = [undefined, undefined];
        state.cardMaster?.fill(0);
        state.cardMaster = undefined;
        state.wiped = true;
        this.#card = undefined;
        return sw(SamStatus.OK);
      case SamInstruction.CARD_AUTH_BEGIN: {
        if (data.length !== 4 && data.length !== 7 && data.length !== 10) return sw(SamStatus.WRONG_LENGTH);
        if (!state.cardMaster) return sw(SamStatus.KEY_NOT_FOUND);
        const rndR = this.#random(16);
        this.#card = { key: purseCardKey(nobleAesBlock, state.cardMaster, data), rndR };
        return Uint8Array.of(...rndR, 0x90, 0);
      }
      case SamInstruction.CARD_AUTH_PROVE: {
        const card = this.#card;
        if (!card || card.session) return sw(SamStatus.CONDITIONS);
        if (data.length !== 32) return sw(SamStatus.WRONG_LENGTH);
        const rndC = data.subarray(0, 16);
        const expected = purseCardProof(nobleAesBlock, card.key, card.rndR, rndC);
        if (!bytesEqual(expected, data.subarray(16, 32))) {
          this.#card = undefined;
          return sw(SamStatus.SECURITY_STATUS);
        }
        card.session = purseSessionKey(nobleAesBlock, card.key, card.rndR, rndC);
        return Uint8Array.of(...purseReaderProof(nobleAesBlock, card.key, card.rndR, rndC), 0x90, 0);
      }
      case SamInstruction.CARD_MAC: {
        const session = this.#card?.session;
        if (!session) return sw(SamStatus.CONDITIONS);
        if (p1 === 0) return Uint8Array.of(...purseMac(nobleAesBlock, session, data), 0x90, 0);
        if (p1 !== 1) return sw(SamStatus.BAD_P1P2);
        if (data.length < 8) return sw(SamStatus.WRONG_LENGTH);
        const mac = purseMac(nobleAesBlock, session, data.subarray(0, data.length - 8));
        return sw(bytesEqual(mac, data.subarray(data.length - 8)) ? SamStatus.OK : SamStatus.BAD_MAC);
      }
      default:
        return sw(SamStatus.UNKNOWN_INS);
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

/** The SAM's purse half in software (tests of the purse protocol without a serial line). */
export class SoftwarePurseAuthenticator {
  readonly #sam: VirtualSam;

  constructor(cardMaster: Uint8Array) {
    this.#sam = new VirtualSam({ state: blankSamState(cardMaster) });
  }

  #call(ins: number, p1: number, data: Uint8Array): { data: Uint8Array; sw: number } {
    const r = this.#sam.process(Uint8Array.of(SAM_CLA, ins, p1, 0, data.length, ...data, 0));
    return { data: r.subarray(0, r.length - 2), sw: (r[r.length - 2] << 8) | r[r.length - 1] };
  }

  begin(uid: Uint8Array): Uint8Array {
    return this.#call(SamInstruction.CARD_AUTH_BEGIN, 0, uid).data.slice();
  }

  prove(rndC: Uint8Array, proof: Uint8Array): Uint8Array {
    const r = this.#call(SamInstruction.CARD_AUTH_PROVE, 0, Uint8Array.of(...rndC, ...proof));
    if (r.sw !== SamStatus.OK) throw new CardNotGenuine('the card cannot prove its diversified key');
    return r.data.slice();
  }

  mac(data: Uint8Array): Uint8Array {
    return this.#call(SamInstruction.CARD_MAC, 0, data).data.slice();
  }

  verify(data: Uint8Array, mac: Uint8Array): boolean {
    return this.#call(SamInstruction.CARD_MAC, 1, Uint8Array.of(...data, ...mac)).sw === SamStatus.OK;
  }
}
