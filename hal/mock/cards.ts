// Virtual ISO/IEC 14443 type A cards for the virtual MFRC522's field: the ISO 14443-3 PICC state
// machine (IDLE, READY, ACTIVE, HALT, and PROTOCOL once ISO-DEP is on), ISO 14443-4 blocks with
// chaining, and applets behind them, the ParkLink purse among them. Runs under Node and XS.
import { bytesEqual } from '../../protocol/bytes';
import {
  AID,
  Apdu,
  cardKey,
  cardProof,
  Kind,
  lowestBalance,
  MacInput,
  type PurseRecord,
  readerProof,
  readRecord,
  sessionKey,
  sessionMac,
  Sw,
  writeRecord,
} from './purse';
import { checkCrcA, frameOf, type RfFrame, type VirtualPicc, withCrcA } from './mfrc522';

export const PiccState = Object.freeze({
  IDLE: 'IDLE',
  READY: 'READY',
  ACTIVE: 'ACTIVE',
  HALT: 'HALT',
  PROTOCOL: 'PROTOCOL',
});
export type PiccStateValue = (typeof PiccState)[keyof typeof PiccState];

/** An application on the card: one command APDU in, one response APDU out. */
export interface Applet {
  process(apdu: Uint8Array): Uint8Array;
  /** The card was powered off or deselected. */
  reset?(): void;
}

export interface VirtualCardOptions {
  uid: Uint8Array | number[];
  /** Default from the UID size (§6.3.2): 0x0004, 0x0044, 0x0084. */
  atqa?: number;
  /** SAK of the last cascade level; default 0x20 (ISO 14443-4) with an applet, else 0x08. */
  sak?: number;
  applet?: Applet;
  /** ATS: FSCI (default 5, 64 bytes), FWI (default 7), SFGI (default 0). */
  fsci?: number;
  fwi?: number;
  sfgi?: number;
  historical?: number[];
  /** S(WTX) requests before each response, and their WTXM. */
  wtxRequests?: number;
  wtxm?: number;
}

const FRAME_SIZES = [16, 24, 32, 40, 48, 64, 96, 128, 256];

function sw(word: number): Uint8Array {
  return Uint8Array.of(word >> 8, word & 0xff);
}

export class VirtualCard implements VirtualPicc {
  readonly uid: Uint8Array;
  readonly atqa: number;
  readonly sak: number;
  readonly applet: Applet | undefined;
  #state: PiccStateValue = PiccState.IDLE;
  #halted = false; // IDLE/READY/ACTIVE reached through WUPA from HALT fall back to HALT
  #level = 0;
  readonly #levels: Uint8Array[]; // UID CLn + BCC per cascade level
  readonly #options: VirtualCardOptions;
  // ISO-DEP
  #blockNumber = 1;
  #fsd = 16;
  #last: RfFrame | undefined;
  #command: number[] = [];
  #response: Uint8Array | undefined;
  #responseAt = 0;
  #wtxLeft = 0;
  /** APDUs processed by the applet (tests: a retransmission must not run a command twice). */
  apdus = 0;
  /** The applet tore a command: the card left the field (tests take it out of the RfField). */
  torn = false;

  constructor(options: VirtualCardOptions) {
    const uid = Uint8Array.from(options.uid);
    if (uid.length !== 4 && uid.length !== 7 && uid.length !== 10)
      throw new RangeError(`UID of ${uid.length} bytes`);
    this.uid = uid;
    this.#options = options;
    this.applet = options.applet;
    const size = uid.length === 4 ? 0 : uid.length === 7 ? 1 : 2;
    this.atqa = options.atqa ?? (size << 6) | 0x04;
    this.sak = options.sak ?? (options.applet ? 0x20 : 0x08);
    const parts =
      size === 0
        ? [Array.from(uid)]
        : size === 1
          ? [[0x88, ...uid.subarray(0, 3)], Array.from(uid.subarray(3))]
          : [[0x88, ...uid.subarray(0, 3)], [0x88, ...uid.subarray(3, 6)], Array.from(uid.subarray(6))];
    this.#levels = parts.map((cl) => Uint8Array.of(...cl, cl[0] ^ cl[1] ^ cl[2] ^ cl[3]));
  }

  get state(): PiccStateValue {
    return this.#state;
  }

  get isoDep(): boolean {
    return (this.sak & 0x20) !== 0;
  }

  powerOff(): void {
    this.torn = false;
    this.#state = PiccState.IDLE;
    this.#halted = false;
    this.#level = 0;
    this.#resetProtocol();
  }

  receive(frame: RfFrame): RfFrame | undefined {
    if (this.torn) return undefined;
    if (frame.bits === 7) return this.#shortFrame(frame.bytes[0] & 0x7f);
    if (this.#state === PiccState.PROTOCOL) return this.#block(frame);
    const first = frame.bytes[0];
    if (
      this.#state === PiccState.READY &&
      (first === 0x93 || first === 0x95 || first === 0x97) &&
      frame.bits >= 16
    ) {
      return this.#anticollision(frame);
    }
    if (this.#state === PiccState.ACTIVE) {
      if (!checkCrcA(frame)) return this.#error(); // a frame the card cannot read
      if (frame.bytes.length === 4 && first === 0x50 && frame.bytes[1] === 0x00) {
        this.#state = PiccState.HALT; // HLTA: no answer
        return undefined;
      }
      if (frame.bytes.length === 4 && first === 0xe0 && this.isoDep) return this.#rats(frame.bytes[1]);
    }
    return this.#error();
  }

  /** §6.1 "any other command": back to IDLE, or to HALT when woken from it. */
  #error(): undefined {
    if (this.#state === PiccState.HALT) return undefined;
    this.#state = this.#halted ? PiccState.HALT : PiccState.IDLE;
    this.#level = 0;
    return undefined;
  }

  #shortFrame(command: number): RfFrame | undefined {
    const woken = command === 0x52 && this.#state === PiccState.HALT;
    if ((command === 0x26 || command === 0x52) && (this.#state === PiccState.IDLE || woken)) {
      this.#halted = woken;
      this.#state = PiccState.READY;
      this.#level = 0;
      return frameOf([this.atqa & 0xff, this.atqa >> 8]);
    }
    if (this.#state === PiccState.PROTOCOL) return undefined; // ISO-DEP cards ignore short frames
    return this.#error();
  }

  #anticollision(frame: RfFrame): RfFrame | undefined {
    const bytes = frame.bytes;
    const sel = [0x93, 0x95, 0x97].indexOf(bytes[0]);
    if (sel !== this.#level) return undefined; // not this card's cascade level: stays READY
    const cl = this.#levels[this.#level];
    const nvb = bytes[1];
    if (nvb === 0x70) {
      if (frame.bits !== 9 * 8 || !checkCrcA(frame)) return undefined;
      for (let i = 0; i < 5; i++) if (bytes[2 + i] !== cl[i]) return undefined; // another card's UID
      if (this.#level < this.#levels.length - 1) {
        this.#level++;
        return frameOf(withCrcA(Uint8Array.of(0x04))); // cascade bit: UID not complete
      }
      this.#state = PiccState.ACTIVE;
      return frameOf(withCrcA(Uint8Array.of(this.sak)));
    }
    const known = ((nvb >> 4) - 2) * 8 + (nvb & 0x0f);
    if (known < 0 || known >= 40 || frame.bits !== 16 + known) return this.#error();
    for (let i = 0; i < known; i++) {
      const sent = (bytes[2 + (i >> 3)] >> (i & 7)) & 1;
      if (sent !== ((cl[i >> 3] >> (i & 7)) & 1)) return undefined; // other branch: stay silent, READY
    }
    const rest = 40 - known;
    const answer = new Uint8Array((rest + 7) >> 3);
    for (let i = 0; i < rest; i++) {
      const j = known + i;
      if ((cl[j >> 3] >> (j & 7)) & 1) answer[i >> 3] |= 1 << (i & 7);
    }
    return { bytes: answer, bits: rest };
  }

  #rats(param: number): RfFrame {
    const options = this.#options;
    this.#fsd = FRAME_SIZES[Math.min(8, param >> 4)];
    this.#state = PiccState.PROTOCOL;
    this.#resetProtocol();
    const fsci = options.fsci ?? 5;
    const fwi = options.fwi ?? 7;
    const sfgi = options.sfgi ?? 0;
    const historical = options.historical ?? [0x80];
    // T0: TA, TB and TC present; TA = 0 (106 kBd only); TC = 0 (no NAD, no CID)
    const body = [0x70 | fsci, 0x00, (fwi << 4) | sfgi, 0x00, ...historical];
    return this.#send([body.length + 1, ...body]);
  }

  #resetProtocol(): void {
    this.#blockNumber = 1; // §7.5.3.2 rule C
    this.#last = undefined;
    this.#command = [];
    this.#response = undefined;
    this.#responseAt = 0;
    this.#wtxLeft = 0;
    this.applet?.reset?.();
  }

  #send(bytes: number[] | Uint8Array): RfFrame {
    const frame = frameOf(withCrcA(Uint8Array.from(bytes)));
    this.#last = frame;
    return frame;
  }

  #block(frame: RfFrame): RfFrame | undefined {
    if (!checkCrcA(frame)) return undefined; // §7.5.5: a block with a transmission error is ignored
    const bytes = frame.bytes.subarray(0, frame.bytes.length - 2);
    const pcb = bytes[0];
    if ((pcb & 0b1110_0010) === 0b0000_0010) {
      // I-block: rule D
      this.#blockNumber ^= 1;
      for (const byte of bytes.subarray(1)) this.#command.push(byte);
      if (pcb & 0x10) return this.#send([0xa2 | this.#blockNumber]); // R(ACK): send more
      const apdu = Uint8Array.from(this.#command);
      this.#command = [];
      this.apdus++;
      try {
        this.#response = this.applet ? this.applet.process(apdu) : sw(Sw.INS_NOT_SUPPORTED);
      } catch (error) {
        if (!(error instanceof CardTorn)) throw error;
        this.powerOff();
        this.torn = true; // the card is out of the field: it answers nothing until powered again
        return undefined;
      }
      this.#responseAt = 0;
      this.#wtxLeft = this.#options.wtxRequests ?? 0;
      return this.#next();
    }
    if ((pcb & 0b1110_0110) === 0b1010_0010) {
      const number = pcb & 1;
      if (number === this.#blockNumber) return this.#last; // rule 11: send the last block again
      if (pcb & 0x10) return this.#send([0xa2 | this.#blockNumber]); // rule 12: R(NAK) → R(ACK)
      // rule 13: R(ACK) for our chained block → the next part
      if (!this.#response || this.#responseAt >= this.#response.length) return undefined;
      this.#blockNumber ^= 1;
      return this.#next();
    }
    if (pcb === 0xf2 && bytes.length === 2) return this.#next(); // the reader granted S(WTX)
    if (pcb === 0xc2 && bytes.length === 1) {
      this.#resetProtocol();
      this.#state = PiccState.HALT;
      this.#halted = true;
      return frameOf(withCrcA(Uint8Array.of(0xc2)));
    }
    return undefined;
  }

  /** The next block of the response, or an S(WTX) first when the applet asked for time. */
  #next(): RfFrame | undefined {
    if (this.#wtxLeft > 0) {
      this.#wtxLeft--;
      return this.#send([0xf2, this.#options.wtxm ?? 1]);
    }
    const response = this.#response;
    if (!response) return undefined;
    const room = this.#fsd - 3;
    const part = response.subarray(this.#responseAt, this.#responseAt + room);
    this.#responseAt += part.length;
    const chaining = this.#responseAt < response.length;
    if (!chaining) this.#response = undefined;
    return this.#send([0x02 | (chaining ? 0x10 : 0) | this.#blockNumber, ...part]);
  }
}

/** A card that stops at ISO 14443-3 (SAK 0x08, like a MIFARE Classic 1K). */
export function classicCard(uid: Uint8Array | number[]): VirtualCard {
  return new VirtualCard({ uid, sak: 0x08 });
}

/** The scheme's card master key on the virtual fleet's SAMs and cards (a test value). */
export const DEMO_CARD_MASTER = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

export interface PurseAppletOptions {
  /** The card's own key K (default: diversified from DEMO_CARD_MASTER and the card's UID). */
  key?: Uint8Array;
  /** The card's random challenges (default: a counter-seeded sequence). */
  random?: (length: number) => Uint8Array;
}

/**
 * Where the next DEBIT is torn (tests of anti-tearing): 'before-commit' (the new record is half
 * written when the card leaves: it stays invalid), 'after-commit' (the debit is done, the answer is
 * lost).
 */
export type TearPoint = 'before-commit' | 'after-commit';

/** The card left the field inside the applet: the virtual card answers nothing. */
export class CardTorn extends Error {
  override readonly name: string = 'CardTorn';
  constructor() {
    super('card left the field');
  }
}

/**
 * The ParkLink purse applet (docs/purse.md): mutual
 * authentication with its AN10922 key, MACs under the session key, and two purse records with a
 * one-byte pointer flipped last, so a debit torn mid-write is all or nothing.
 */
export class PurseApplet implements Applet {
  readonly #records: [Uint8Array, Uint8Array];
  #current = 0;
  #selected = false;
  #key: Uint8Array | undefined;
  readonly #random: (length: number) => Uint8Array;
  #challenge: { rndR: Uint8Array; rndC: Uint8Array } | undefined;
  #session: Uint8Array | undefined;
  /** Tear the next DEBIT at this point (one shot). */
  tear: TearPoint | undefined;
  /** Debits committed (tests). */
  debits = 0;

  constructor(data: PurseRecord, options: PurseAppletOptions = {}) {
    this.#records = [writeRecord(data), writeRecord(data)];
    this.#key = options.key ? Uint8Array.from(options.key) : undefined;
    let seed = data.counter * 7919 + Number(data.cardNumber.slice(-6));
    this.#random =
      options.random ??
      ((length) => {
        const out = new Uint8Array(length);
        for (let i = 0; i < length; i++) {
          seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
          out[i] = seed >>> 24;
        }
        return out;
      });
  }

  /** Sets K from the UID (VirtualCard calls it when the applet is installed). */
  personalise(uid: Uint8Array, master: Uint8Array = DEMO_CARD_MASTER): void {
    this.#key ??= cardKey(master, uid);
  }

  /** The purse as the card holds it now. */
  get data(): PurseRecord {
    return readRecord(this.#records[this.#current]);
  }

  get selected(): boolean {
    return this.#selected;
  }

  get authenticated(): boolean {
    return this.#session !== undefined;
  }

  reset(): void {
    this.#selected = false;
    this.#challenge = undefined;
    this.#session?.fill(0);
    this.#session = undefined;
  }

  process(apdu: Uint8Array): Uint8Array {
    if (apdu.length < 4) return sw(Sw.WRONG_LENGTH);
    const [cla, ins, p1, p2] = apdu;
    if (cla === Apdu.CLA_ISO) {
      if (ins !== Apdu.SELECT) return sw(Sw.INS_NOT_SUPPORTED);
      if (p1 !== 0x04 || p2 !== 0x00) return sw(Sw.WRONG_P1_P2);
      const lc = apdu[4];
      if (apdu.length < 5 || (apdu.length !== 5 + lc && apdu.length !== 6 + lc)) return sw(Sw.WRONG_LENGTH);
      const aid = apdu.subarray(5, 5 + lc);
      this.reset();
      this.#selected = aid.length === AID.length && AID.every((b, i) => aid[i] === b);
      return sw(this.#selected ? Sw.OK : Sw.FILE_NOT_FOUND);
    }
    if (cla !== Apdu.CLA_PURSE) return sw(Sw.CLA_NOT_SUPPORTED);
    const known: number[] = [Apdu.AUTH_1, Apdu.AUTH_2, Apdu.READ_PURSE, Apdu.DEBIT];
    if (!known.includes(ins)) return sw(Sw.INS_NOT_SUPPORTED);
    if (!this.#selected) return sw(Sw.NO_APPLICATION_SELECTED);
    if (p1 !== 0 || p2 !== 0) return sw(Sw.WRONG_P1_P2);
    const key = this.#key;
    if (!key) return sw(Sw.SECURITY_STATUS_NOT_SATISFIED);
    if (ins === Apdu.AUTH_1) {
      if (apdu.length !== 22 || apdu[4] !== 16) return sw(Sw.WRONG_LENGTH);
      this.reset();
      this.#selected = true;
      const rndR = apdu.slice(5, 21);
      const rndC = this.#random(16);
      this.#challenge = { rndR, rndC };
      return Uint8Array.of(...rndC, ...cardProof(key, rndR, rndC), 0x90, 0x00);
    }
    if (ins === Apdu.AUTH_2) {
      const challenge = this.#challenge;
      this.#challenge = undefined;
      if (apdu.length !== 21 || apdu[4] !== 16) return sw(Sw.WRONG_LENGTH);
      if (!challenge) return sw(Sw.SECURITY_STATUS_NOT_SATISFIED);
      const expected = readerProof(key, challenge.rndR, challenge.rndC);
      if (!bytesEqual(expected, apdu.subarray(5, 21))) return sw(Sw.SECURITY_STATUS_NOT_SATISFIED);
      this.#session = sessionKey(key, challenge.rndR, challenge.rndC);
      return sw(Sw.OK);
    }
    const session = this.#session;
    if (!session) return sw(Sw.SECURITY_STATUS_NOT_SATISFIED);
    const current = this.#records[this.#current];
    if (ins === Apdu.READ_PURSE) {
      if (apdu.length !== 5 || apdu[4] !== 0) return sw(Sw.WRONG_LENGTH);
      return Uint8Array.of(...current, ...sessionMac(session, MacInput.readAnswer(current)), 0x90, 0x00);
    }
    if (apdu.length !== 22 || apdu[4] !== 16 || apdu[21] !== 0) return sw(Sw.WRONG_LENGTH);
    const view = new DataView(apdu.buffer, apdu.byteOffset, apdu.byteLength);
    const amount = view.getUint32(5);
    const expected = view.getUint32(9);
    const mac = sessionMac(session, MacInput.debitCommand(amount, expected));
    if (!bytesEqual(mac, apdu.subarray(13, 21))) {
      this.reset();
      return sw(Sw.WRONG_MAC);
    }
    const purse = readRecord(current);
    if (amount === 0 || expected !== purse.counter) return sw(Sw.WRONG_DATA);
    const balance = purse.balance - amount;
    const floor = Math.max(lowestBalance(purse), -0x8000_0000);
    if (balance < floor || purse.counter === 0xffff_ffff) return sw(Sw.CONDITIONS_NOT_SATISFIED);
    const next = { ...purse, balance, counter: purse.counter + 1 };
    // Write the inactive record, then flip the pointer: the flip is the commit.
    const spare = 1 - this.#current;
    const tear = this.tear;
    this.tear = undefined;
    const bytes = writeRecord(next);
    if (tear === 'before-commit') {
      this.#records[spare].set(bytes.subarray(0, 12)); // half written; the pointer never moves
      throw new CardTorn();
    }
    this.#records[spare] = bytes;
    this.#current = spare;
    this.debits++;
    if (tear === 'after-commit') throw new CardTorn();
    const answerMac = sessionMac(session, MacInput.debitAnswer(amount, next.balance, next.counter));
    const answer = new Uint8Array(8 + answerMac.length + 2);
    const out = new DataView(answer.buffer);
    out.setInt32(0, next.balance);
    out.setUint32(4, next.counter);
    answer.set(answerMac, 8);
    answer.set([0x90, 0x00], 8 + answerMac.length);
    return answer;
  }
}

export function purseCard(
  uid: Uint8Array | number[],
  data: PurseRecord,
  options: Partial<VirtualCardOptions> & PurseAppletOptions & { master?: Uint8Array } = {},
) {
  const applet = new PurseApplet(data, options);
  applet.personalise(Uint8Array.from(uid), options.master);
  return { card: new VirtualCard({ ...options, uid, applet }), applet };
}

/** The purse's card types, for building cards. */
export const CardType = Kind;
