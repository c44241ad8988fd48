// The meter's records (the seed's main record unit, 410), as CBOR arrays: compact on flash and on
// the air, byte-exact for the hash chain. Layouts are documented in protocol/README.md.
// Format 2 carries a card as its keyed token and last four digits (protocol/cardToken.ts); format 1
// carried the card number and is read only to convert it (legacyRecordToCurrent).
import { badField, int, uint, text } from './fields';
import { CARD_TOKEN_LENGTH, type CardRef } from './cardToken';
import { decodeCbor, encodeCbor } from './cbor';
import { ProtocolError } from './errors';
import type { TimeState } from './time';

export const RECORD_FORMAT = 2;
/** The format before card tokens: the card number as text. Never written any more. */
export const LEGACY_RECORD_FORMAT = 1;

export const RecordKind = Object.freeze({ Transaction: 1, Operation: 2, Maintenance: 3 } as const);
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

/** The transaction data of seed claim 8; date and time are the record's `time`. */
export interface TransactionData {
  transactionNumber: number;
  /** The card paid with: its keyed token and last four digits, never its number. */
  card: CardRef;
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
  /**
   * The service charge rate rule applied (claim 10a): the tariff's version number. Optional 12th
   * field, absent when the meter prices with an unversioned flat rate.
   */
  tariffRule?: number;
}

/** Operation records (seed claim 10b): refusals, restarts, downtime, notices. */
export interface OperationData {
  code: string;
  detail: string;
  /** The card the operation concerns (a refusal), or null. */
  card: CardRef | null;
  /** The period the record covers (downtime, free or not-provided service, an operating day), epoch s. */
  period?: { from: number; to: number };
  /** A count the code defines: seconds operating, battery percent... */
  quantity?: number;
}

/** Maintenance records (seed claim 10c): diagnosis, repairs, battery replacements. */
export interface MaintenanceData {
  code: string;
  detail: string;
}

/** Operation record codes (claim 10b). Units may add their own; these are the ones the platform reads. */
export const OperationCode = Object.freeze({
  /**
   * Every start: detail begins "first restart", "planned restart" or "abnormal restart" (no clean
   * stop before it) and says what storage found; the period is the downtime before the start, from
   * the meter's last sign of life (hourly checkpoint or newest record).
   */
  Boot: 'boot',
  /** A unit out of service over the period (detail names it). */
  Downtime: 'downtime',
  /** Parking was free (tariff timetable) over the period. */
  ServiceFree: 'service-free',
  /** The meter could not sell over the period (storage full, fault); detail says why. */
  ServiceNotProvided: 'service-not-provided',
  CardBlacklisted: 'card-blacklisted',
  /** Cumulative operating time of a day: period = the UTC day, quantity = seconds operating. */
  DailyOperatingHours: 'daily-operating-hours',
  /** Battery low notice: quantity = state of charge in percent; detail names the pack. */
  BatteryLow: 'battery-low',
  /** Sales stopped: too little storage left for records until uploads are acknowledged. */
  StorageFull: 'storage-full',
} as const);

/** Maintenance record codes (claim 10c). */
export const MaintenanceCode = Object.freeze({
  Diagnosis: 'diagnosis',
  Repair: 'repair',
  /** A battery pack replaced; detail names the pack. The record's time is the replacement date. */
  BatteryReplaced: 'battery-replaced',
  /** A record store found damaged or behind and rebuilt from the other. */
  StorageRestored: 'storage-restored',
  /** The backup brought level with the main store after a power cut between the two writes. */
  StorageCaughtUp: 'storage-caught-up',
  /** Records damaged in every copy: the platform will see them as missing. */
  RecordsLost: 'records-lost',
  /** Unacknowledged records discarded from the upload queue under an operator's release token. */
  UploadReleased: 'upload-released',
} as const);

interface RecordHeader {
  seq: number;
  /** Seconds since 1970-01-01T00:00:00Z. */
  time: number;
  meterId: number;
  /**
   * Whether `time` came from a synchronised clock (protocol/time.ts TimeState): the optional 7th
   * field. Absent in records written before meters reported it: their clock state is not known.
   */
  timeState?: TimeState;
}

export type MeterRecord =
  | (RecordHeader & { kind: typeof RecordKind.Transaction; data: TransactionData })
  | (RecordHeader & { kind: typeof RecordKind.Operation; data: OperationData })
  | (RecordHeader & { kind: typeof RecordKind.Maintenance; data: MaintenanceData });

export function encodeRecord(record: MeterRecord): Uint8Array {
  const fields: unknown[] = [
    RECORD_FORMAT,
    record.kind,
    record.seq,
    record.time,
    record.meterId,
    bodyOf(record),
  ];
  if (record.timeState !== undefined) fields.push(timeStateOf(record.timeState));
  return encodeCbor(fields);
}

/** The 7th field: 0 unset, 1 synchronised, 2 holdover (protocol/time.ts). */
function timeStateOf(value: unknown): TimeState {
  if (value !== 0 && value !== 1 && value !== 2) throw badField('timeState is not 0, 1 or 2');
  return value;
}

function bodyOf(record: MeterRecord): unknown[] {
  switch (record.kind) {
    case RecordKind.Transaction: {
      const d = record.data;
      return [
        d.transactionNumber,
        d.card.token,
        d.card.last4,
        d.cardExpiry,
        d.cardType,
        d.bayId,
        d.minutes,
        d.paidFrom,
        d.paidUntil,
        d.charge,
        d.currency,
        d.remainingValue,
        ...(d.tariffRule === undefined ? [] : [d.tariffRule]),
      ];
    }
    case RecordKind.Operation: {
      const d = record.data;
      const base = [d.code, d.detail, d.card === null ? null : [d.card.token, d.card.last4]];
      if (d.period === undefined && d.quantity === undefined) return base;
      return [...base, d.period?.from ?? null, d.period?.to ?? null, d.quantity ?? null];
    }
    case RecordKind.Maintenance:
      return [record.data.code, record.data.detail];
  }
}

/** The header fields of a record of any format, without reading its body (the meter's own log). */
export function recordHeader(bytes: Uint8Array): {
  format: number;
  kind: number;
  seq: number;
  time: number;
  meterId: number;
  timeState?: TimeState;
} {
  const value = decodeCbor(bytes);
  if (!Array.isArray(value) || (value.length !== 6 && value.length !== 7))
    throw badField('record is not a 6- or 7-element array');
  const [format, kind, seq, time, meterId] = value;
  const header: {
    format: number;
    kind: number;
    seq: number;
    time: number;
    meterId: number;
    timeState?: TimeState;
  } = {
    format: uint(format, 'format'),
    kind: uint(kind, 'kind'),
    seq: uint(seq, 'seq'),
    time: uint(time, 'time'),
    meterId: uint(meterId, 'meterId'),
  };
  if (value.length === 7) header.timeState = timeStateOf(value[6]);
  return header;
}

/**
 * Decodes a format 2 record. A format 1 record (card number inside) is refused with `bad-version`:
 * only legacyRecordToCurrent reads it, with the key that tokenises its card number.
 */
export function decodeRecord(bytes: Uint8Array): MeterRecord {
  const value = decodeCbor(bytes);
  if (!Array.isArray(value) || (value.length !== 6 && value.length !== 7))
    throw badField('record is not a 6- or 7-element array');
  const [format, kind, seq, time, meterId, body] = value;
  if (format !== RECORD_FORMAT) throw new ProtocolError('bad-version', `record format ${String(format)}`);
  const header = recordHeaderOf(seq, time, meterId, value);
  if (!Array.isArray(body)) throw badField('record body is not an array');
  switch (kind) {
    case RecordKind.Transaction: {
      if (body.length !== 12 && body.length !== 13) throw badField('transaction body needs 12 or 13 fields');
      const transactionNumber = uint(body[0], 'transactionNumber');
      const card = { token: token(body[1], 'cardToken'), last4: digits(body[2], 'cardLast4', 4) };
      return withData(header, kind, transactionData(body, transactionNumber, card, 3));
    }
    case RecordKind.Operation: {
      const card = body[2];
      let ref: CardRef | null = null;
      if (card !== null) {
        if (!Array.isArray(card) || card.length !== 2) throw badField('operation card is not [token, last4]');
        ref = { token: token(card[0], 'cardToken'), last4: digits(card[1], 'cardLast4', 4) };
      }
      return withData(header, kind, operationData(body, ref));
    }
    case RecordKind.Maintenance:
      return withData(header, kind, maintenanceData(body));
    default:
      throw new ProtocolError('bad-type', `record kind ${String(kind)}`);
  }
}

// Records are built field by field, not with object spread: the platform decodes every record it
// takes, and V8 spends several times the CBOR decoding itself on spreading these small objects.

function recordHeaderOf(seq: unknown, time: unknown, meterId: unknown, value: unknown[]): RecordHeader {
  const header: RecordHeader = {
    seq: uint(seq, 'seq'),
    time: uint(time, 'time'),
    meterId: uint(meterId, 'meterId'),
  };
  if (value.length === 7) header.timeState = timeStateOf(value[6]);
  return header;
}

/** The record of `header`, `kind` and `data`, its fields in the order decoding always gave them. */
function withData<K extends RecordKind>(
  header: RecordHeader,
  kind: K,
  data: Extract<MeterRecord, { kind: K }>['data'],
): MeterRecord {
  const record =
    header.timeState === undefined
      ? { seq: header.seq, time: header.time, meterId: header.meterId, kind, data }
      : {
          seq: header.seq,
          time: header.time,
          meterId: header.meterId,
          timeState: header.timeState,
          kind,
          data,
        };
  return record as MeterRecord;
}

/**
 * A format 1 record (card number as text) as the format 2 record it would be today, its card
 * number replaced by `tokenise`'s token and last four digits. Its bytes differ from the original's,
 * so the original's chain link no longer follows from them: the platform keeps the link it computed
 * on arrival. Throws `bad-version` on any other format.
 */
export function legacyRecordToCurrent(
  bytes: Uint8Array,
  tokenise: (cardNumber: string) => CardRef,
): MeterRecord {
  const value = decodeCbor(bytes);
  if (!Array.isArray(value) || value.length !== 6) throw badField('record is not a 6-element array');
  const [format, kind, seq, time, meterId, body] = value;
  if (format !== LEGACY_RECORD_FORMAT)
    throw new ProtocolError('bad-version', `record format ${String(format)}`);
  const header: RecordHeader = {
    seq: uint(seq, 'seq'),
    time: uint(time, 'time'),
    meterId: uint(meterId, 'meterId'),
  };
  if (!Array.isArray(body)) throw badField('record body is not an array');
  switch (kind) {
    case RecordKind.Transaction: {
      if (body.length !== 11 && body.length !== 12) throw badField('transaction body needs 11 or 12 fields');
      const transactionNumber = uint(body[0], 'transactionNumber');
      const card = tokenise(digits(body[1], 'cardNumber'));
      return withData(header, kind, transactionData(body, transactionNumber, card, 2));
    }
    case RecordKind.Operation: {
      const card = body[2] === null ? null : tokenise(digits(body[2], 'cardNumber'));
      return withData(header, kind, operationData(body, card));
    }
    case RecordKind.Maintenance:
      return withData(header, kind, maintenanceData(body));
    default:
      throw new ProtocolError('bad-type', `record kind ${String(kind)}`);
  }
}

/** A sale's data: its number and card, then the fields from `at` on (expiry ... tariff rule). */
function transactionData(
  body: unknown[],
  transactionNumber: number,
  card: CardRef,
  at: number,
): TransactionData {
  const data: TransactionData = {
    transactionNumber,
    card,
    cardExpiry: digits(body[at], 'cardExpiry', 4),
    cardType: uint(body[at + 1], 'cardType'),
    bayId: uint(body[at + 2], 'bayId'),
    minutes: uint(body[at + 3], 'minutes'),
    paidFrom: uint(body[at + 4], 'paidFrom'),
    paidUntil: uint(body[at + 5], 'paidUntil'),
    charge: uint(body[at + 6], 'charge'),
    currency: uint(body[at + 7], 'currency'),
    remainingValue: int(body[at + 8], 'remainingValue'),
  };
  if (body.length === at + 10) data.tariffRule = uint(body[at + 9], 'tariffRule');
  return data;
}

function operationData(body: unknown[], card: CardRef | null): OperationData {
  if (body.length !== 3 && body.length !== 6) throw badField('operation body needs 3 or 6 fields');
  const data: OperationData = { code: text(body[0], 'code'), detail: text(body[1], 'detail'), card };
  if (body.length === 6) {
    if ((body[3] === null) !== (body[4] === null)) throw badField('period needs both ends');
    if (body[3] !== null) {
      const period = { from: uint(body[3], 'period.from'), to: uint(body[4], 'period.to') };
      if (period.to < period.from) throw badField('period ends before it starts');
      data.period = period;
    }
    if (body[5] !== null) data.quantity = uint(body[5], 'quantity');
    if (data.period === undefined && data.quantity === undefined)
      throw badField('6-field body with nothing in 4-6');
  }
  return data;
}

function maintenanceData(body: unknown[]): MaintenanceData {
  if (body.length !== 2) throw badField('maintenance body needs 2 fields');
  return { code: text(body[0], 'code'), detail: text(body[1], 'detail') };
}

function token(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== CARD_TOKEN_LENGTH)
    throw badField(`${name} is not 16 bytes`);
  return value;
}

function digits(value: unknown, name: string, length?: number): string {
  const s = text(value, name);
  if (!/^[0-9]+$/.test(s) || (length !== undefined && s.length !== length))
    throw badField(`${name} is not digits`);
  return s;
}
