// The meter's secure access module (SAM) over ISO/IEC 7816-3 T=1 on a UART, speaking the ParkLink
// SAM application's ISO 7816-4 APDUs. The SAM holds the meter id, key A (two banks, one per live
// key epoch), the maintenance key M and the card scheme's master key; it derives D = KDF(A, B)
// from the secure element's HMAC, maintenance-token secrets, and runs the card side of the purse's
// mutual authentication and MACs, so none of those keys enters the heap (D does: it opens frames).
//
// T=1 block (ISO 7816-3 §11.3): NAD | PCB | LEN | INF (0..254) | LRC (XOR of the rest).
//   I-block PCB 0b0N00_0000 (N = send sequence), R-block 0b100N_00ee, S-block 0b11xx_xxxx
//   (RESYNCH request C0 / response E0, WTX request C3 / response E3).
// APDUs (CLA 80):
//   10 GET INFO                      → meter id u32, epoch bank 0 u32, epoch bank 1 u32, flags
//   12 SET METER ID      04 <id>     → 90 00
//   14 LOAD CARD MASTER  10 <key>    → 90 00
//   20 LOAD KEYS  P1 bank 44 <epoch u32> <A 32> <M 32> → 90 00
//   22 DERIVE D   P1 bank 20 <salt s 32>                → D 32
//   24 MAINTENANCE SECRET P1 bank <token>              → HMAC(M, "maintenance token" token) 32
//   26 ERASE BANK P1 bank                               → 90 00
//   2E WIPE                                             → 90 00 (every key, the meter id stays)
//   40 CARD AUTH BEGIN   <uid>                          → RndR 16
//   42 CARD AUTH PROVE   20 <RndC 16> <card proof 16>   → reader proof 16; a wrong card proof 69 82
//   44 CARD MAC P1 0 <data> → MAC 8;  P1 1 <data> <MAC 8> → 90 00 or 69 88
// Status words: 90 00 ok, 67 00 length, 69 82 security status, 69 85 conditions (no session),
// 69 88 wrong MAC, 6A 86 P1/P2, 6A 88 key not loaded, 6D 00 INS, 6E 00 CLA.
import type { Clock } from '../../hal/clock';
import type { IOClass, Serial, SerialOptions } from '../../hal/io';
import { concatBytes, readUint32, writeUint32 } from '../../protocol/bytes';
import { CardNotGenuine, type PurseAuthenticator } from '../rfid/purse';

export const SamInstruction = Object.freeze({
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

export const SamStatus = Object.freeze({
  OK: 0x9000,
  WRONG_LENGTH: 0x6700,
  SECURITY_STATUS: 0x6982,
  CONDITIONS: 0x6985,
  BAD_MAC: 0x6988,
  BAD_P1P2: 0x6a86,
  KEY_NOT_FOUND: 0x6a88,
  UNKNOWN_INS: 0x6d00,
  UNKNOWN_CLA: 0x6e00,
});

export const SAM_CLA = 0x80;
export const T1 = Object.freeze({
  RESYNCH: 0xc0,
  RESYNCH_RESPONSE: 0xe0,
  WTX: 0xc3,
  WTX_RESPONSE: 0xe3,
  MAX_INF: 254,
});

export class SamError extends Error {
  override readonly name: string = 'SamError';
  readonly sw: number | undefined;
  constructor(message: string, sw?: number) {
    super(message);
    this.sw = sw;
  }
}

/** A T=1 block read off the line, or why it is not one. */
export interface T1Block {
  nad: number;
  pcb: number;
  inf: Uint8Array;
}

export function lrc(bytes: Uint8Array, length = bytes.length): number {
  let x = 0;
  for (let i = 0; i < length; i++) x ^= bytes[i];
  return x;
}

export function encodeT1Block(pcb: number, inf: Uint8Array, nad = 0): Uint8Array {
  if (inf.length > T1.MAX_INF) throw new RangeError(`T=1 INF of ${inf.length} bytes`);
  const block = new Uint8Array(4 + inf.length);
  block[0] = nad;
  block[1] = pcb;
  block[2] = inf.length;
  block.set(inf, 3);
  block[3 + inf.length] = lrc(block, 3 + inf.length);
  return block;
}

/** Parses exactly one block; throws SamError for a bad length or LRC (ISO 7816-3 §11.3.1). */
export function decodeT1Block(bytes: Uint8Array): T1Block {
  if (bytes.length < 4) throw new SamError(`T=1 block of ${bytes.length} bytes`);
  const len = bytes[2];
  if (len === 0xff || bytes.length !== 4 + len) throw new SamError(`T=1 LEN ${len} in ${bytes.length} bytes`);
  if (lrc(bytes, 3 + len) !== bytes[3 + len]) throw new SamError('T=1 LRC mismatch');
  return { nad: bytes[0], pcb: bytes[1], inf: bytes.subarray(3, 3 + len) };
}

/** A response APDU's data and status word; fewer than two bytes is an error. */
export function splitResponse(apdu: Uint8Array): { data: Uint8Array; sw: number } {
  if (apdu.length < 2) throw new SamError(`response APDU of ${apdu.length} bytes`);
  return {
    data: apdu.subarray(0, apdu.length - 2),
    sw: (apdu[apdu.length - 2] << 8) | apdu[apdu.length - 1],
  };
}

export interface SamOptions {
  sam: { io: IOClass<Serial, SerialOptions> } & Partial<SerialOptions>;
  clock: Clock;
  /** How long to wait for a block, ms of monotonic time (default 1000; a WTX extends it). */
  timeoutMs?: number;
}

export interface SamInfo {
  meterId: number;
  epochs: [number, number];
  wiped: boolean;
}

export class SecureAccessModule implements PurseAuthenticator {
  readonly #serial: Serial;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  #sequence = 0;
  #closed = false;

  constructor(options: SamOptions) {
    const { io, ...line } = options.sam;
    this.#serial = new io({ baud: 115_200, ...line });
    this.#clock = options.clock;
    this.#timeoutMs = options.timeoutMs ?? 1000;
    try {
      this.resynch();
    } catch (error) {
      this.close();
      throw error;
    }
  }

  /** S(RESYNCH): both ends restart their sequence numbers. */
  resynch(): void {
    this.#drain();
    this.#serial.write(encodeT1Block(T1.RESYNCH, new Uint8Array(0)));
    const answer = this.#receive();
    if (answer.pcb !== T1.RESYNCH_RESPONSE)
      throw new SamError(`no RESYNCH answer (PCB 0x${answer.pcb.toString(16)})`);
    this.#sequence = 0;
  }

  info(): SamInfo {
    const data = this.#ok(SamInstruction.GET_INFO, 0, new Uint8Array(0), 13, 'GET INFO');
    return {
      meterId: readUint32(data, 0),
      epochs: [readUint32(data, 4), readUint32(data, 8)],
      wiped: (data[12] & 1) !== 0,
    };
  }

  setMeterId(meterId: number): void {
    const id = new Uint8Array(4);
    writeUint32(id, 0, meterId);
    this.#ok(SamInstruction.SET_METER_ID, 0, id, 0, 'SET METER ID');
  }

  loadCardMaster(key: Uint8Array): void {
    this.#ok(SamInstruction.LOAD_CARD_MASTER, 0, key, 0, 'LOAD CARD MASTER');
  }

  loadKeys(bank: number, epoch: number, a: Uint8Array, m: Uint8Array): void {
    const head = new Uint8Array(4);
    writeUint32(head, 0, epoch);
    const data = concatBytes(head, a, m);
    try {
      this.#ok(SamInstruction.LOAD_KEYS, bank, data, 0, 'LOAD KEYS');
    } finally {
      data.fill(0);
    }
  }

  /** D = HKDF(A of `bank`, s, ...): the SAM's half of KDF(A, B). */
  deriveDownlinkKey(bank: number, salt: Uint8Array): Uint8Array {
    return this.#ok(SamInstruction.DERIVE_D, bank, salt, 32, 'DERIVE D');
  }

  maintenanceSecret(bank: number, token: Uint8Array): Uint8Array {
    return this.#ok(SamInstruction.MAINTENANCE_SECRET, bank, token, 32, 'MAINTENANCE SECRET');
  }

  eraseBank(bank: number): void {
    this.#ok(SamInstruction.ERASE_BANK, bank, new Uint8Array(0), 0, 'ERASE BANK');
  }

  wipe(): void {
    this.#ok(SamInstruction.WIPE, 0, new Uint8Array(0), 0, 'WIPE');
  }

  begin(uid: Uint8Array): Uint8Array {
    return this.#ok(SamInstruction.CARD_AUTH_BEGIN, 0, uid, 16, 'CARD AUTH BEGIN');
  }

  prove(rndC: Uint8Array, cardProof: Uint8Array): Uint8Array {
    const { data, sw } = this.transmit(SamInstruction.CARD_AUTH_PROVE, 0, concatBytes(rndC, cardProof));
    if (sw === SamStatus.SECURITY_STATUS)
      throw new CardNotGenuine('the card cannot prove its diversified key');
    if (sw !== SamStatus.OK) throw new SamError(`CARD AUTH PROVE: SW ${hex16(sw)}`, sw);
    if (data.length !== 16) throw new SamError(`CARD AUTH PROVE answered ${data.length} bytes`);
    return data;
  }

  mac(data: Uint8Array): Uint8Array {
    return this.#ok(SamInstruction.CARD_MAC, 0, data, 8, 'CARD MAC');
  }

  verify(data: Uint8Array, mac: Uint8Array): boolean {
    if (mac.length !== 8) return false;
    const { sw } = this.transmit(SamInstruction.CARD_MAC, 1, concatBytes(data, mac));
    if (sw === SamStatus.BAD_MAC) return false;
    if (sw !== SamStatus.OK) throw new SamError(`CARD MAC verify: SW ${hex16(sw)}`, sw);
    return true;
  }

  /** One command APDU (CLA 80, Lc and Le as needed) in an I-block; its response APDU. */
  transmit(ins: number, p1: number, data: Uint8Array): { data: Uint8Array; sw: number } {
    if (this.#closed) throw new SamError('closed');
    if (data.length > 250) throw new RangeError(`APDU data of ${data.length} bytes`);
    const apdu = new Uint8Array(5 + data.length + 1);
    apdu.set([SAM_CLA, ins, p1, 0, data.length]);
    apdu.set(data, 5);
    const command = data.length ? apdu : apdu.subarray(0, 5); // case 2: Le 00 in place of Lc
    const pcb = this.#sequence << 6;
    this.#serial.write(encodeT1Block(pcb, command));
    apdu.fill(0);
    let answer = this.#receive();
    while (answer.pcb === T1.WTX) {
      this.#serial.write(encodeT1Block(T1.WTX_RESPONSE, answer.inf));
      answer = this.#receive(this.#timeoutMs * Math.max(1, answer.inf[0] ?? 1));
    }
    if ((answer.pcb & 0x80) !== 0) throw new SamError(`SAM answered PCB 0x${answer.pcb.toString(16)}`);
    if ((answer.pcb & 0x20) !== 0) throw new SamError('chained answers are not supported');
    this.#sequence ^= 1;
    return splitResponse(answer.inf);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#serial.close();
  }

  #ok(ins: number, p1: number, data: Uint8Array, length: number, what: string): Uint8Array {
    const answer = this.transmit(ins, p1, data);
    if (answer.sw !== SamStatus.OK) throw new SamError(`${what}: SW ${hex16(answer.sw)}`, answer.sw);
    if (answer.data.length !== length) throw new SamError(`${what} answered ${answer.data.length} bytes`);
    return answer.data.slice();
  }

  #drain(): void {
    while (this.#serial.read() !== undefined) {
      // stale bytes from before a reset
    }
  }

  #receive(timeoutMs = this.#timeoutMs): T1Block {
    const deadline = this.#clock.monotonic() + timeoutMs;
    const bytes: number[] = [];
    let idle = 0;
    for (;;) {
      const chunk = this.#serial.read(bytes.length < 3 ? 3 - bytes.length : 4 + bytes[2] - bytes.length);
      if (chunk) for (const b of new Uint8Array(chunk)) bytes.push(b);
      if (bytes.length >= 3 && bytes.length === 4 + bytes[2]) return decodeT1Block(Uint8Array.from(bytes));
      if (!chunk && (this.#clock.monotonic() >= deadline || ++idle > 100_000)) {
        throw new SamError('SAM did not answer in time');
      }
    }
  }
}

function hex16(n: number): string {
  return n.toString(16).padStart(4, '0');
}
