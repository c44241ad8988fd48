// The meter's records (the seed's main record unit, 410), as CBOR arrays: compact on flash and on
// the air, byte-exact for the hash chain. Layouts are documented in protocol/README.md.
import { decodeCbor, encodeCbor } from './cbor';
import { ProtocolError } from './errors';

export const RECORD_FORMAT = 1;

export const RecordKind = Object.freeze({ Transaction: 1, Operation: 2, Maintenance: 3 } as const);
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

/** The transaction data of seed claim 8; date and time are the record's `time`. */
export interface TransactionData {
  transactionNumber: number;
  cardNumber: string;
  /** Card expiry as YYMM digits, e.g. "2812". */
  cardExpiry: string;
  /** 1 debit, 2 credit, 3 prepaid. */
  cardType: number;
  bayId: number;
  /** The service bought: minutes of parking, from paidFrom to paidUntil (epoch seconds). */
  minutes: number;
  paidFrom: number;
  paidUntil: number;
  /** Charge in minor currency units (pence, cents). */
  charge: number;
  /** ISO 4217 numeric currency code. */
  currency: number;
  /** Value left on the card after the debit, minor units (negative within an overdraft). */
  remainingValue: number;
}

/** Operation records (seed claim 10b): refusals, restarts, downtime, notices. */
export interface OperationData {
  code: string;
  detail: string;
  cardNumber: string | null;
}

/** Maintenance records (seed claim 10c): diagnosis, repairs, battery replacements. */
export interface MaintenanceData {
  code: string;
  detail: string;
}

interface RecordHeader {
  seq: number;
  /** Seconds since 1970-01-01T00:00:00Z. */
  time: number;
  meterId: number;
}

export type MeterRecord =
  | (RecordHeader & { kind: typeof RecordKind.Transaction; data: TransactionData })
  | (RecordHeader & { kind: typeof RecordKind.Operation; data: OperationData })
  | (RecordHeader & { kind: typeof RecordKind.Maintenance; data: MaintenanceData });

export function encodeRecord(record: MeterRecord): Uint8Array {
  return encodeCbor([RECORD_FORMAT, record.kind, record.seq, record.time, record.meterId, bodyOf(record)]);
}

function bodyOf(record: MeterRecord): unknown[] {
  switch (record.kind) {
    case RecordKind.Transaction: {
      const d = record.data;
      return [
        d.transactionNumber,
        d.cardNumber,
        d.cardExpiry,
        d.cardType,
        d.bayId,
        d.minutes,
        d.paidFrom,
        d.paidUntil,
        d.charge,
        d.currency,
        d.remainingValue,
      ];
    }
    case RecordKind.Operation:
      return [record.data.code, record.data.detail, record.data.cardNumber];
    case RecordKind.Maintenance:
      return [record.data.code, record.data.detail];
  }
}

export function decodeRecord(bytes: Uint8Array): MeterRecord {
  const value = decodeCbor(bytes);
  if (!Array.isArray(value) || value.length !== 6) throw bad('record is not a 6-element array');
  const [format, kind, seq, time, meterId, body] = value;
  if (format !== RECORD_FORMAT) throw new ProtocolError('bad-version', `record format ${String(format)}`);
  const header = { seq: uint(seq, 'seq'), time: uint(time, 'time'), meterId: uint(meterId, 'meterId') };
  if (!Array.isArray(body)) throw bad('record body is not an array');
  switch (kind) {
    case RecordKind.Transaction: {
      if (body.length !== 11) throw bad('transaction body needs 11 fields');
      return {
        ...header,
        kind,
        data: {
          transactionNumber: uint(body[0], 'transactionNumber'),
          cardNumber: digits(body[1], 'cardNumber'),
          cardExpiry: digits(body[2], 'cardExpiry', 4),
          cardType: uint(body[3], 'cardType'),
          bayId: uint(body[4], 'bayId'),
          minutes: uint(body[5], 'minutes'),
          paidFrom: uint(body[6], 'paidFrom'),
          paidUntil: uint(body[7], 'paidUntil'),
          charge: uint(body[8], 'charge'),
          currency: uint(body[9], 'currency'),
          remainingValue: int(body[10], 'remainingValue'),
        },
      };
    }
    case RecordKind.Operation:
      if (body.length !== 3) throw bad('operation body needs 3 fields');
      return {
        ...header,
        kind,
        data: {
          code: text(body[0], 'code'),
          detail: text(body[1], 'detail'),
          cardNumber: body[2] === null ? null : digits(body[2], 'cardNumber'),
        },
      };
    case RecordKind.Maintenance:
      if (body.length !== 2) throw bad('maintenance body needs 2 fields');
      return { ...header, kind, data: { code: text(body[0], 'code'), detail: text(body[1], 'detail') } };
    default:
      throw new ProtocolError('bad-type', `record kind ${String(kind)}`);
  }
}

function bad(message: string): ProtocolError {
  return new ProtocolError('bad-field', message);
}

function int(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw bad(`${name} is not an integer`);
  return value;
}

function uint(value: unknown, name: string): number {
  const n = int(value, name);
  if (n < 0) throw bad(`${name} is negative`);
  return n;
}

function text(value: unknown, name: string): string {
  if (typeof value !== 'string') throw bad(`${name} is not text`);
  return value;
}

function digits(value: unknown, name: string, length?: number): string {
  const s = text(value, name);
  if (!/^[0-9]+$/.test(s) || (length !== undefined && s.length !== length))
    throw bad(`${name} is not digits`);
  return s;
}
