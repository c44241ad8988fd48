// The ParkLink purse application as the virtual card and the virtual SAM hold it, written from the
// application's specification (docs/purse.md), not from drivers/rfid/purse.ts:
// host-tests/twins/purse.test.ts compares the two and runs the driver against the card.
import { cmac, diversify } from './secure/cmac';

/** docs/purse.md "Application": proprietary RID marker F0, "PKLNK", version 01. */
export const AID: readonly number[] = Object.freeze([0xf0, 0x50, 0x4b, 0x4c, 0x4e, 0x4b, 0x01]);
/** docs/purse.md "Keys": the system identifier in the AN10922 diversification input. */
export const SYSTEM_IDENTIFIER: readonly number[] = Object.freeze([0x50, 0x4b, 0x4c, 0x4e, 0x4b]);

/** docs/purse.md "Commands": CLA and INS bytes. */
export const Apdu = Object.freeze({
  CLA_ISO: 0x00,
  CLA_PURSE: 0x80,
  SELECT: 0xa4,
  AUTH_1: 0x82,
  AUTH_2: 0x84,
  READ_PURSE: 0xb0,
  DEBIT: 0xd0,
});

/** docs/purse.md "Status words". */
export const Sw = Object.freeze({
  OK: 0x9000,
  WRONG_LENGTH: 0x6700,
  SECURITY_STATUS_NOT_SATISFIED: 0x6982,
  CONDITIONS_NOT_SATISFIED: 0x6985,
  NO_APPLICATION_SELECTED: 0x6986,
  WRONG_MAC: 0x6988,
  WRONG_DATA: 0x6a80,
  FILE_NOT_FOUND: 0x6a82,
  WRONG_P1_P2: 0x6a86,
  INS_NOT_SUPPORTED: 0x6d00,
  CLA_NOT_SUPPORTED: 0x6e00,
});

/** docs/purse.md "Record": card type byte. */
export const Kind = Object.freeze({ DEBIT: 1, CREDIT: 2, PREPAID: 3 });
export type Kind = (typeof Kind)[keyof typeof Kind];

/** docs/purse.md "Keys": the tag byte before each CMAC input. */
const Tag = Object.freeze({ CARD_PROOF: 0x43, READER_PROOF: 0x52, SESSION: 0x53 });

export const RECORD_BYTES = 25;
export const MAC_BYTES = 8;

/** The 25-byte purse record, decoded. */
export interface PurseRecord {
  cardNumber: string;
  expiry: { year: number; month: number };
  cardType: Kind;
  balance: number;
  limit: number;
  counter: number;
  currency: number;
}

const bcd = (n: number) => (Math.floor(n / 10) << 4) | (n % 10);
const unbcd = (b: number) => (b >> 4) * 10 + (b & 0x0f);

/**
 * docs/purse.md "Record": 0 card number (8, BCD), 8 expiry YY MM (BCD), 10 type, 11 balance
 * (int32), 15 limit (uint32), 19 counter (uint32), 23 currency (ISO 4217 numeric, 4 BCD digits);
 * big-endian.
 */
export function writeRecord(purse: PurseRecord): Uint8Array {
  if (!/^\d{16}$/.test(purse.cardNumber)) throw new RangeError(`card number ${purse.cardNumber}`);
  const out = new Uint8Array(RECORD_BYTES);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) out[i] = bcd(Number(purse.cardNumber.slice(2 * i, 2 * i + 2)));
  out[8] = bcd(purse.expiry.year % 100);
  out[9] = bcd(purse.expiry.month);
  out[10] = purse.cardType;
  view.setInt32(11, purse.balance);
  view.setUint32(15, purse.limit);
  view.setUint32(19, purse.counter);
  out[23] = bcd(Math.floor(purse.currency / 100));
  out[24] = bcd(purse.currency % 100);
  return out;
}

export function readRecord(bytes: Uint8Array): PurseRecord {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let cardNumber = '';
  for (let i = 0; i < 8; i++) cardNumber += String(unbcd(bytes[i])).padStart(2, '0');
  return {
    cardNumber,
    expiry: { year: 2000 + unbcd(bytes[8]), month: unbcd(bytes[9]) },
    cardType: bytes[10] as Kind,
    balance: view.getInt32(11),
    limit: view.getUint32(15),
    counter: view.getUint32(19),
    currency: unbcd(bytes[23]) * 100 + unbcd(bytes[24]),
  };
}

/** docs/purse.md "Record": a debit card stops at 0; credit and prepaid cards at -limit. */
export function lowestBalance(purse: PurseRecord): number {
  return purse.cardType === Kind.DEBIT ? 0 : -purse.limit;
}

function tagged(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const out: number[] = [tag];
  for (const part of parts) out.push(...part);
  return Uint8Array.from(out);
}

/** docs/purse.md "Keys": K = AN10922(master, UID || AID || system identifier). */
export function cardKey(master: Uint8Array, uid: Uint8Array): Uint8Array {
  return diversify(master, Uint8Array.of(...uid, ...AID, ...SYSTEM_IDENTIFIER));
}

/** AUTH 1's card proof: CMAC(K, 43 RndR RndC). */
export const cardProof = (k: Uint8Array, rndR: Uint8Array, rndC: Uint8Array) =>
  cmac(k, tagged(Tag.CARD_PROOF, rndR, rndC));
/** AUTH 2's reader proof: CMAC(K, 52 RndC RndR). */
export const readerProof = (k: Uint8Array, rndR: Uint8Array, rndC: Uint8Array) =>
  cmac(k, tagged(Tag.READER_PROOF, rndC, rndR));
/** Ks = CMAC(K, 53 RndR RndC). */
export const sessionKey = (k: Uint8Array, rndR: Uint8Array, rndC: Uint8Array) =>
  cmac(k, tagged(Tag.SESSION, rndR, rndC));
/** A session MAC: the first 8 bytes of CMAC(Ks, data). */
export const sessionMac = (ks: Uint8Array, data: Uint8Array) => cmac(ks, data).slice(0, MAC_BYTES);

function u32(n: number): number[] {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/** What each MAC covers (docs/purse.md "Commands"). */
export const MacInput = Object.freeze({
  readAnswer: (record: Uint8Array) => Uint8Array.of(Apdu.READ_PURSE, ...record),
  debitCommand: (amount: number, counter: number) =>
    Uint8Array.of(Apdu.DEBIT, ...u32(amount), ...u32(counter)),
  debitAnswer: (amount: number, balance: number, counter: number) =>
    Uint8Array.of(0x90, ...u32(amount), ...u32(balance >>> 0), ...u32(counter)),
});
