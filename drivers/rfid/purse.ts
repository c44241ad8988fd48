// Client of the ParkLink purse, our stored-value card application, over ISO 7816-4 APDUs.
//
// The application (proprietary; the card issuer installs it on ISO 14443-4 cards):
//   AID  F0 50 4B 4C 4E 4B 01  ("PKLNK" behind the proprietary-RID marker F0, version 01)
//
//   SELECT      00 A4 04 00 07 <AID> 00              → 90 00; another AID → 6A 82
//   AUTH 1      80 82 00 00 10 <RndR 16> 00          → <RndC 16> <CMAC(K, 43 RndR RndC) 16> 90 00
//   AUTH 2      80 84 00 00 10 <CMAC(K, 52 RndC RndR)> → 90 00; a wrong proof → 69 82
//   READ PURSE  80 B0 00 00 00                       → <25 bytes> <MAC 8> 90 00
//   DEBIT       80 D0 00 00 10 <amount u32> <expected counter u32> <MAC 8> 00
//                                                    → <new balance i32> <new counter u32> <MAC 8> 90 00
//   All integers big-endian. K is the card's key, diversified from the scheme's master key (in the
//   meter's SAM) and the UID by NXP AN10922 (drivers/secure/cmac.ts); the session key is
//   Ks = CMAC(K, 53 RndR RndC), and every MAC is the first 8 bytes of CMAC(Ks, ...):
//     READ PURSE answer  CMAC(Ks, B0 purse)
//     DEBIT command      CMAC(Ks, D0 amount counter)
//     DEBIT answer       CMAC(Ks, 90 amount balance counter)
//   READ PURSE and DEBIT need the mutual authentication first (69 82 otherwise); a wrong command
//   MAC is 69 88 and ends the session. A card that cannot prove K (a clone: right UID, wrong key)
//   fails AUTH 1's check at the meter's SAM.
//
//   The 25 purse bytes:
//     0  8  card number, 16 digits packed BCD
//     8  2  expiry YY MM, BCD (20YY)
//    10  1  card type: 1 debit, 2 credit, 3 prepaid
//    11  4  balance, int32, minor currency units (negative allowed for credit and prepaid)
//    15  4  limit, uint32; the floor is -limit (a debit card's floor is 0 whatever its limit)
//    19  4  transaction counter, uint32, +1 per debit
//    23  2  currency, ISO 4217 numeric as 4 BCD digits (08 26 GBP, 09 78 EUR)
//
//   Anti-tearing: the card writes a debit into the inactive one of two purse records and then
//   flips one byte to make it current, so a debit torn by the card leaving the field either
//   happened whole or not at all.
//
//   Refusals leave the value unchanged:
//     69 85  the debit would take the balance below the floor (or the counter is exhausted)
//     6A 80  counter mismatch, zero amount or other bad data
//     6A 86  P1 P2 not 00 00
//     67 00  wrong length
//     6D 00  unknown INS
//     6E 00  unknown CLA
//     69 86  no application selected
//     69 82  not authenticated, or the reader's proof is wrong
//     69 88  wrong command MAC
//
//   The counter makes a debit idempotent across a lost answer: the meter reads the purse, debits
//   with the counter it read, and after a failure reads again; a counter that moved means the
//   debit happened, an unchanged one means it did not.

export type Transceive = (apdu: Uint8Array) => Uint8Array;

export const PURSE_AID: readonly number[] = Object.freeze([0xf0, 0x50, 0x4b, 0x4c, 0x4e, 0x4b, 0x01]);

export const PURSE_LENGTH = 25;

export const CardType = Object.freeze({ DEBIT: 1, CREDIT: 2, PREPAID: 3 });
export type CardTypeValue = (typeof CardType)[keyof typeof CardType];

export const Instruction = Object.freeze({
  SELECT: 0xa4,
  AUTH_1: 0x82,
  AUTH_2: 0x84,
  READ_PURSE: 0xb0,
  DEBIT: 0xd0,
});

export const MAC_LENGTH = 8;
export const CHALLENGE_LENGTH = 16;

export const Cla = Object.freeze({ ISO: 0x00, PROPRIETARY: 0x80 });

export const StatusWord = Object.freeze({
  OK: 0x9000,
  BELOW_FLOOR: 0x6985,
  NOT_SELECTED: 0x6986,
  BAD_DATA: 0x6a80,
  NOT_FOUND: 0x6a82,
  BAD_P1P2: 0x6a86,
  WRONG_LENGTH: 0x6700,
  UNKNOWN_INS: 0x6d00,
  UNKNOWN_CLA: 0x6e00,
  SECURITY_STATUS: 0x6982,
  BAD_MAC: 0x6988,
});

/**
 * The reader's half of the purse security: on a meter, the SAM (drivers/secure/sam.ts), which holds
 * the master key; card keys and session keys never reach the meter's heap.
 */
export interface PurseAuthenticator {
  /** Starts an authentication with the card of `uid`: returns the reader's challenge RndR. */
  begin(uid: Uint8Array): Uint8Array;
  /** Checks the card's proof; returns the reader's proof. Throws CardNotGenuine when the card's is wrong. */
  prove(rndC: Uint8Array, cardProof: Uint8Array): Uint8Array;
  /** The 8-byte session MAC of `data`. */
  mac(data: Uint8Array): Uint8Array;
  /** Whether `mac` is the session MAC of `data` (constant time). */
  verify(data: Uint8Array, mac: Uint8Array): boolean;
}

/** A mutually authenticated purse session: what READ PURSE and DEBIT need. */
export interface PurseSession {
  mac(data: Uint8Array): Uint8Array;
  verify(data: Uint8Array, mac: Uint8Array): boolean;
}

export interface PurseData {
  /** 16 digits. */
  cardNumber: string;
  expiry: { year: number; month: number };
  cardType: CardTypeValue;
  /** Minor currency units. */
  balance: number;
  limit: number;
  counter: number;
  /** ISO 4217 numeric (826 GBP, 978 EUR). */
  currency: number;
}

export interface DebitResult {
  balance: number;
  counter: number;
}

export class PurseError extends Error {
  override readonly name: string = 'PurseError';
  constructor(message: string) {
    super(message);
  }
}

/** The card answered with a status word other than 90 00. */
export class CardRefused extends PurseError {
  override readonly name: string = 'CardRefused';
  readonly sw: number;
  constructor(sw: number, what: string) {
    super(`${what} refused: SW ${sw.toString(16).padStart(4, '0')}`);
    this.sw = sw;
  }
  /** The debit would take the value below the card's floor. */
  get insufficientFunds(): boolean {
    return this.sw === StatusWord.BELOW_FLOOR;
  }
}

/** The card could not prove the key its UID should have: a clone, to be reported for the blacklist. */
export class CardNotGenuine extends PurseError {
  override readonly name: string = 'CardNotGenuine';
  constructor(message: string) {
    super(message);
  }
}

/** The card's answer does not follow the purse layout. */
export class MalformedResponse extends PurseError {
  override readonly name: string = 'MalformedResponse';
  constructor(message: string) {
    super(message);
  }
}

/** The lowest balance the card may reach. */
export function floorOf(data: Pick<PurseData, 'cardType' | 'limit'>): number {
  return data.cardType === CardType.DEBIT ? 0 : -data.limit;
}

export function encodeSelect(aid: readonly number[] = PURSE_AID): Uint8Array {
  return Uint8Array.of(Cla.ISO, Instruction.SELECT, 0x04, 0x00, aid.length, ...aid, 0x00);
}

export function encodeReadPurse(): Uint8Array {
  return Uint8Array.of(Cla.PROPRIETARY, Instruction.READ_PURSE, 0x00, 0x00, 0x00);
}

export function encodeDebit(session: PurseSession, amount: number, expectedCounter: number): Uint8Array {
  checkUint32(amount, 'amount');
  checkUint32(expectedCounter, 'expectedCounter');
  const apdu = new Uint8Array(22);
  apdu.set([Cla.PROPRIETARY, Instruction.DEBIT, 0x00, 0x00, 0x10]);
  const view = new DataView(apdu.buffer);
  view.setUint32(5, amount);
  view.setUint32(9, expectedCounter);
  apdu.set(session.mac(debitCommandMacInput(amount, expectedCounter)), 13);
  return apdu;
}

/** What the DEBIT command's MAC covers: D0 amount counter. */
export function debitCommandMacInput(amount: number, counter: number): Uint8Array {
  const out = new Uint8Array(9);
  const view = new DataView(out.buffer);
  out[0] = Instruction.DEBIT;
  view.setUint32(1, amount);
  view.setUint32(5, counter);
  return out;
}

/** What the DEBIT answer's MAC covers: 90 amount balance counter. */
export function debitResponseMacInput(amount: number, result: DebitResult): Uint8Array {
  const out = new Uint8Array(13);
  const view = new DataView(out.buffer);
  out[0] = 0x90;
  view.setUint32(1, amount);
  view.setInt32(5, result.balance);
  view.setUint32(9, result.counter);
  return out;
}

/** What the READ PURSE answer's MAC covers: B0 purse. */
export function readMacInput(purse: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + purse.length);
  out[0] = Instruction.READ_PURSE;
  out.set(purse, 1);
  return out;
}

/**
 * Mutual authentication (AUTH 1, AUTH 2) with the card `uid`, its proofs checked and made by
 * `authenticator`. Throws CardNotGenuine when the card cannot prove its key.
 */
export function authenticatePurse(
  transceive: Transceive,
  uid: Uint8Array,
  authenticator: PurseAuthenticator,
): PurseSession {
  const rndR = authenticator.begin(uid);
  const first = transceive(Uint8Array.of(Cla.PROPRIETARY, Instruction.AUTH_1, 0, 0, 16, ...rndR, 0));
  const sw1 = statusWord(first);
  if (sw1 !== StatusWord.OK) throw new CardRefused(sw1, 'AUTH 1');
  if (first.length !== 2 + 2 * CHALLENGE_LENGTH) {
    throw new MalformedResponse(`AUTH 1 answered ${first.length - 2} data bytes`);
  }
  const proof = authenticator.prove(first.subarray(0, 16), first.subarray(16, 32));
  const second = transceive(Uint8Array.of(Cla.PROPRIETARY, Instruction.AUTH_2, 0, 0, 16, ...proof));
  const sw2 = statusWord(second);
  if (sw2 !== StatusWord.OK) throw new CardRefused(sw2, 'AUTH 2');
  if (second.length !== 2) throw new MalformedResponse(`AUTH 2 answered ${second.length - 2} data bytes`);
  return { mac: (data) => authenticator.mac(data), verify: (data, mac) => authenticator.verify(data, mac) };
}

/** The 25-byte purse record (the virtual card's READ PURSE answer and this client's parser agree here). */
export function encodePurse(data: PurseData): Uint8Array {
  const { cardNumber, expiry, cardType, balance, limit, counter, currency } = data;
  if (!/^\d{16}$/.test(cardNumber)) throw new RangeError(`card number ${cardNumber}`);
  if (!(Number.isInteger(expiry.year) && expiry.year >= 2000 && expiry.year <= 2099)) {
    throw new RangeError(`expiry year ${expiry.year}`);
  }
  if (!(Number.isInteger(expiry.month) && expiry.month >= 1 && expiry.month <= 12)) {
    throw new RangeError(`expiry month ${expiry.month}`);
  }
  if (!isCardType(cardType)) throw new RangeError(`card type ${cardType}`);
  if (!(Number.isInteger(balance) && balance >= -0x8000_0000 && balance <= 0x7fff_ffff)) {
    throw new RangeError(`balance ${balance}`);
  }
  checkUint32(limit, 'limit');
  checkUint32(counter, 'counter');
  if (!(Number.isInteger(currency) && currency >= 0 && currency <= 9999))
    throw new RangeError(`currency ${currency}`);
  const out = new Uint8Array(PURSE_LENGTH);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) out[i] = (digit(cardNumber, 2 * i) << 4) | digit(cardNumber, 2 * i + 1);
  out[8] = toBcd(expiry.year - 2000);
  out[9] = toBcd(expiry.month);
  out[10] = cardType;
  view.setInt32(11, balance);
  view.setUint32(15, limit);
  view.setUint32(19, counter);
  out[23] = toBcd(Math.floor(currency / 100));
  out[24] = toBcd(currency % 100);
  return out;
}

export function decodePurse(bytes: Uint8Array): PurseData {
  if (bytes.length !== PURSE_LENGTH) throw new MalformedResponse(`purse of ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let cardNumber = '';
  for (let i = 0; i < 8; i++) cardNumber += fromBcd(bytes[i], 'card number').toString().padStart(2, '0');
  const year = 2000 + fromBcd(bytes[8], 'expiry');
  const month = fromBcd(bytes[9], 'expiry');
  if (month < 1 || month > 12) throw new MalformedResponse(`expiry month ${month}`);
  const cardType = bytes[10];
  if (!isCardType(cardType)) throw new MalformedResponse(`card type ${cardType}`);
  return {
    cardNumber,
    expiry: { year, month },
    cardType,
    balance: view.getInt32(11),
    limit: view.getUint32(15),
    counter: view.getUint32(19),
    currency: fromBcd(bytes[23], 'currency') * 100 + fromBcd(bytes[24], 'currency'),
  };
}

/** The status word of a response APDU (SW1 SW2); a response shorter than two bytes is malformed. */
export function statusWord(response: Uint8Array): number {
  if (response.length < 2) throw new MalformedResponse(`response of ${response.length} bytes`);
  return (response[response.length - 2] << 8) | response[response.length - 1];
}

export function selectPurse(transceive: Transceive): void {
  const response = transceive(encodeSelect());
  const sw = statusWord(response);
  if (sw !== StatusWord.OK) throw new CardRefused(sw, 'SELECT');
  if (response.length !== 2) throw new MalformedResponse(`SELECT answered ${response.length - 2} data bytes`);
}

export function readPurse(transceive: Transceive, session: PurseSession): PurseData {
  const response = transceive(encodeReadPurse());
  const sw = statusWord(response);
  if (sw !== StatusWord.OK) throw new CardRefused(sw, 'READ PURSE');
  if (response.length !== PURSE_LENGTH + MAC_LENGTH + 2) {
    throw new MalformedResponse(`READ PURSE answered ${response.length - 2} data bytes`);
  }
  const purse = response.subarray(0, PURSE_LENGTH);
  if (!session.verify(readMacInput(purse), response.subarray(PURSE_LENGTH, PURSE_LENGTH + MAC_LENGTH))) {
    throw new CardNotGenuine('READ PURSE answer MAC does not verify');
  }
  return decodePurse(purse);
}

/** Debits `amount` minor units; the card refuses unless its counter is `expectedCounter`. */
export function debitPurse(
  transceive: Transceive,
  session: PurseSession,
  amount: number,
  expectedCounter: number,
): DebitResult {
  if (amount === 0) throw new RangeError('amount 0');
  const response = transceive(encodeDebit(session, amount, expectedCounter));
  const sw = statusWord(response);
  if (sw !== StatusWord.OK) throw new CardRefused(sw, 'DEBIT');
  if (response.length !== 8 + MAC_LENGTH + 2)
    throw new MalformedResponse(`DEBIT answered ${response.length - 2} data bytes`);
  const view = new DataView(response.buffer, response.byteOffset, response.byteLength);
  const result = { balance: view.getInt32(0), counter: view.getUint32(4) };
  if (!session.verify(debitResponseMacInput(amount, result), response.subarray(8, 8 + MAC_LENGTH))) {
    throw new CardNotGenuine('DEBIT answer MAC does not verify');
  }
  if (result.counter !== expectedCounter + 1) {
    throw new MalformedResponse(`DEBIT counter ${result.counter}, expected ${expectedCounter + 1}`);
  }
  return result;
}

export function encodeDebitResponse(result: DebitResult, mac: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + MAC_LENGTH + 2);
  const view = new DataView(out.buffer);
  view.setInt32(0, result.balance);
  view.setUint32(4, result.counter);
  out.set(mac.subarray(0, MAC_LENGTH), 8);
  out[8 + MAC_LENGTH] = 0x90;
  return out;
}

function isCardType(value: number): value is CardTypeValue {
  return value === CardType.DEBIT || value === CardType.CREDIT || value === CardType.PREPAID;
}

function checkUint32(value: number, what: string): void {
  if (!(Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff))
    throw new RangeError(`${what} ${value}`);
}

function digit(text: string, index: number): number {
  return text.charCodeAt(index) - 0x30;
}

function toBcd(value: number): number {
  return (Math.floor(value / 10) << 4) | (value % 10);
}

function fromBcd(byte: number, what: string): number {
  const high = byte >> 4;
  const low = byte & 0x0f;
  if (high > 9 || low > 9) throw new MalformedResponse(`${what}: 0x${byte.toString(16)} is not BCD`);
  return high * 10 + low;
}
