// The database half of ingest: checks and stores a batch of record-set frames, from different
// meters, in one transaction with a fixed number of statements whatever the batch holds (lock and
// read the meters, read the held records around each set, one binary COPY for every table), so the
// cost of a round trip and a commit is shared by every record of the batch. Frames are refused one
// by one (a refused frame writes nothing and does not hold the others back); a database failure
// refuses the whole batch as 'internal-error' and the meters send their sets again.
import type { Crypto } from '../../hal/crypto';
import { bytesEqual } from '../../protocol/bytes';
import { chainLink, genesisHash, verifyChain } from '../../protocol/chain';
import { ProtocolError, type ProtocolErrorCode } from '../../protocol/errors';
import type { FrameHeader } from '../../protocol/frame';
import { type AckMessage, decodeRecordsMessage } from '../../protocol/messages';
import {
  decodeRecord,
  encodeRecord,
  LEGACY_RECORD_FORMAT,
  legacyRecordToCurrent,
  type MeterRecord,
  RecordKind,
} from '../../protocol/records';
import type { ReplayWindow } from '../../protocol/replayWindow';
import { type CopyTable, CopyRows, CopyValueError } from '../core/copyBinary';
import type { Database, Queryable } from '../core/db';
import { CityDays } from '../history/cityDay';
import type { CardTokens } from '../keys/cardToken';
import { downlinkKey as derivedDownlinkKey, type Keystore } from '../keys/keystore';
import {
  UPLINK_WINDOW_COLUMNS,
  type UplinkWindowRow,
  uplinkSeenColumn,
  uplinkWindowOf,
} from './uplinkWindow';

export type RefusalReason =
  | ProtocolErrorCode
  /** The topic is not a meter's uplink topic. */
  | 'bad-topic'
  /** The meter id in the topic is not the one in the frame header. */
  | 'topic-mismatch'
  /** A record inside the frame belongs to another meter. */
  | 'record-meter-mismatch'
  /** The records of the set are not a contiguous run of sequence numbers. */
  | 'not-contiguous'
  /** The platform failed (database down…); the meter will send the set again. */
  | 'internal-error';

/** Thrown to refuse one frame; the frame writes nothing. */
export class FrameRefused extends Error {
  constructor(
    readonly reason: RefusalReason,
    readonly detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

export interface StoredRecord {
  meterId: number;
  record: MeterRecord;
  bytes: Uint8Array;
  /** Chain link after this record. */
  link: Uint8Array;
  /** Converted from format 1 on arrival: `bytes` are not the bytes the link was computed over. */
  redacted?: boolean;
}

/** A record the platform holds, as read around a new set. */
interface HeldRecord {
  bytes: Uint8Array;
  link: Uint8Array;
  redacted: boolean;
}

/** A record-set frame that passed the gate's checks (verify.ts): authenticated, decrypted. */
export interface UplinkFrame {
  topic: string;
  header: FrameHeader;
  /** The plaintext body. */
  body: Uint8Array;
  /** The frame as it arrived (header, ciphertext, tag): kept so an audit can check its MAC again. */
  sealed?: Uint8Array;
}

export interface StoredSet {
  ok: true;
  meterId: number;
  frameSeq: number;
  /** Key epoch the frame was sealed under (the ack is sealed under the same). */
  epoch: number;
  /** Key D of that epoch, for sealing the ack; the caller wipes it. */
  downlinkKey: Uint8Array;
  /** Records new to the platform, in sequence order. */
  stored: StoredRecord[];
  /** Records of the set the platform already held with the same bytes. */
  duplicates: number;
  /** Missing records detected before this set, reported the first time only. */
  gap?: { from: number; to: number };
  ack: AckMessage;
  downlinkSeq: number;
}

export interface RefusedSet {
  ok: false;
  error: unknown;
}

interface MeterRow extends UplinkWindowRow {
  id: number;
  key_epoch: number;
  old_epoch: number | null;
  has_gaps: boolean;
  last_record_seq: number | string;
  last_record_link: Uint8Array | null;
}

/** A frame opened and chain-checked on its own; what remains needs the records already held. */
interface OpenedSet {
  index: number;
  meterId: number;
  frameSeq: number;
  /** The meter's uplink window with this frame accepted, written back if the set is stored. */
  window: ReplayWindow;
  epoch: number;
  downlinkKey: Uint8Array;
  hasGaps: boolean;
  previous: Uint8Array;
  /** The records as stored: format 1 records converted (see atRest). */
  bytes: Uint8Array[];
  /** Per record: converted from format 1, so its link is not SHA-256(previous link || bytes). */
  redacted: boolean[];
  records: MeterRecord[];
  links: Uint8Array[];
  first: number;
  last: number;
  /** The sealed frame, kept in record_sets; absent when it carries format 1 records (card numbers). */
  sealed?: Uint8Array;
}

export interface StoreBatchOptions {
  db: Database;
  keystore: Keystore;
  crypto: Crypto;
  /** Tokenises the card numbers of format 1 records; without it they are refused (bad-version). */
  cardTokens?: CardTokens;
  /**
   * Key D of a meter's epoch, a copy the caller wipes: the gate's cache of derived keys
   * (verify.ts). Default: derived from the keystore for every set.
   */
  downlinkKey?: (meterId: number, epoch: number) => Uint8Array;
  /** The city's days: a sale from before today marks its day's totals stale. Default UTC. */
  cityDays?: CityDays;
  now?: () => number;
}

const UTC_DAYS = new CityDays('UTC');

/**
 * A record as the platform keeps it: format 2 as it came; format 1 (a meter's records written before
 * card tokens) converted to format 2 with the card number tokenised, so no card number is stored.
 */
function atRest(
  bytes: Uint8Array,
  cardTokens: CardTokens | undefined,
): { record: MeterRecord; bytes: Uint8Array; redacted: boolean } {
  // A record is a CBOR array of 6 (0x86) whose first element is its format, a small uint.
  if (bytes[0] === 0x86 && bytes[1] === LEGACY_RECORD_FORMAT && cardTokens) {
    const record = legacyRecordToCurrent(bytes, (n) => cardTokens.ref(n));
    return { record, bytes: encodeRecord(record), redacted: true };
  }
  return { record: decodeRecord(bytes), bytes, redacted: false };
}

/**
 * Checks and stores `frames` (at most one per meter) in one transaction. Returns, in the same order,
 * each frame's stored set or why it was refused. Throws only when the database fails; then nothing
 * of the batch is stored.
 */
export async function storeBatch(
  options: StoreBatchOptions,
  frames: readonly UplinkFrame[],
): Promise<(StoredSet | RefusedSet)[]> {
  const { db, crypto, cardTokens } = options;
  const downlinkKey =
    options.downlinkKey ??
    ((meterId: number, epoch: number) => derivedDownlinkKey(options.keystore, meterId, epoch));
  const cityDays = options.cityDays ?? UTC_DAYS;
  // Before today in seconds, as record times are.
  const todayStart = cityDays.todayStart((options.now ?? Date.now)()) / 1000;
  const results: (StoredSet | RefusedSet | undefined)[] = frames.map(() => undefined);
  const refuse = (index: number, error: unknown) => {
    results[index] = { ok: false, error };
  };
  const keysHanded: Uint8Array[] = [];
  try {
    await db.transaction(async (tx) => {
      // Locks every meter of the batch, in id order (two instances' batches then never deadlock),
      // until the commit: a meter's frames are handled one at a time across instances.
      const meterIds = [...new Set(frames.map((f) => f.header.meterId))];
      const meters = new Map<number, MeterRow>();
      const locked = await tx.query<MeterRow>(
        `SELECT id, key_epoch, ${UPLINK_WINDOW_COLUMNS},
                CASE WHEN previous_epoch_until > now() THEN previous_key_epoch END AS old_epoch,
                EXISTS (SELECT 1 FROM record_gaps g WHERE g.meter_id = meters.id) AS has_gaps,
                last_record_seq, last_record_link
           FROM meters WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE`,
        [meterIds],
      );
      for (const row of locked.rows) meters.set(Number(row.id), row);

      const opened: OpenedSet[] = [];
      frames.forEach((frame, index) => {
        try {
          opened.push(
            openSet(crypto, downlinkKey, cardTokens, frame, index, meters.get(frame.header.meterId)),
          );
        } catch (error) {
          refuse(index, error);
        }
      });
      keysHanded.push(...opened.map((s) => s.downlinkKey));

      // The held records from first - 1 to last + 1 of every set. A set that continues from the
      // meter's newest stored record (the usual case) needs only that record's link, kept on the
      // meter's row; the others are looked up in one query.
      const held = new Map<number, Map<number, HeldRecord>>();
      const lookUp: OpenedSet[] = [];
      for (const set of opened) {
        const meter = meters.get(set.meterId) as MeterRow;
        if (
          !set.hasGaps &&
          meter.last_record_link &&
          Number(meter.last_record_seq) === set.first - 1 &&
          set.first > 1
        )
          held.set(
            set.meterId,
            new Map([
              [set.first - 1, { bytes: new Uint8Array(0), link: meter.last_record_link, redacted: false }],
            ]),
          );
        else lookUp.push(set);
      }
      if (lookUp.length > 0) {
        const around = await tx.query<{
          meter_id: number;
          seq: number;
          bytes: Uint8Array;
          link: Uint8Array;
          redacted: boolean;
        }>(
          `SELECT r.meter_id, r.seq, r.bytes, r.link, r.redacted
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS f(meter_id, lo, hi)
             CROSS JOIN LATERAL (SELECT * FROM records r WHERE r.meter_id = f.meter_id AND r.seq BETWEEN f.lo AND f.hi
                                 LIMIT f.hi - f.lo + 1) r`,
          [lookUp.map((s) => s.meterId), lookUp.map((s) => s.first - 1), lookUp.map((s) => s.last + 1)],
        );
        for (const row of around.rows) {
          const meter = held.get(row.meter_id) ?? new Map();
          meter.set(row.seq, { bytes: row.bytes, link: row.link, redacted: row.redacted });
          held.set(row.meter_id, meter);
        }
      }

      const checked: { set: OpenedSet; stored: StoredRecord[]; duplicates: number; gapBelow: boolean }[] = [];
      for (const set of opened) {
        try {
          checked.push(checkAgainstHeld(crypto, set, held.get(set.meterId) ?? new Map()));
        } catch (error) {
          refuse(set.index, error);
        }
      }
      // Every record's rows, built before anything is written: a set with a value its table cannot
      // hold (a field beyond its column's range, a NUL in its text) is refused alone, not the batch.
      const built = recordRows(
        checked.map((c) => c.stored),
        todayStart,
      );
      const accepted = checked.filter((c, i) => {
        const error = built.refused.get(i);
        if (error) refuse(c.set.index, new FrameRefused('bad-field', error.message));
        return !error;
      });
      if (accepted.length === 0) return;

      // A set that starts after records the platform never had: the gap starts after the highest held.
      const gaps = new Map<number, { from: number; to: number }>();
      const below = accepted.filter((a) => a.gapBelow);
      if (below.length > 0) {
        const highest = await tx.query<{ meter_id: number; seq: number | null }>(
          `SELECT f.meter_id, (SELECT max(r.seq) FROM records r WHERE r.meter_id = f.meter_id AND r.seq < f.first) AS seq
             FROM unnest($1::bigint[], $2::bigint[]) AS f(meter_id, first)`,
          [below.map((a) => a.set.meterId), below.map((a) => a.set.first)],
        );
        for (const row of highest.rows) {
          const set = below.find((a) => a.set.meterId === row.meter_id)?.set as OpenedSet;
          gaps.set(row.meter_id, { from: (row.seq ?? 0) + 1, to: set.first - 1 });
        }
      }

      const downlinkSeqs = await writeSets(tx, accepted, built, cityDays.timeZone);

      for (const { set, stored } of accepted) {
        if (stored.length > 0 && set.hasGaps) await closeGaps(tx, set.meterId, set.first, set.last);
      }
      // Each gap is reported once, when first detected.
      const reported = new Set<number>();
      if (gaps.size > 0) {
        const inserted = await tx.query<{ meter_id: number }>(
          `INSERT INTO record_gaps (meter_id, from_seq, to_seq)
           SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])
           ON CONFLICT (meter_id, from_seq) DO NOTHING RETURNING meter_id`,
          [[...gaps.keys()], [...gaps.values()].map((g) => g.from), [...gaps.values()].map((g) => g.to)],
        );
        for (const row of inserted.rows) reported.add(row.meter_id);
      }

      for (const { set, stored, duplicates } of accepted) {
        const result: StoredSet = {
          ok: true,
          meterId: set.meterId,
          frameSeq: set.frameSeq,
          epoch: set.epoch,
          downlinkKey: set.downlinkKey,
          stored,
          duplicates,
          ack: { seq: set.last, hash: set.links[set.links.length - 1] },
          downlinkSeq: downlinkSeqs.get(set.meterId) as number,
        };
        const gap = gaps.get(set.meterId);
        if (gap && reported.has(set.meterId)) result.gap = gap;
        results[set.index] = result;
      }
    });
  } catch (error) {
    for (const key of keysHanded) key.fill(0);
    throw error;
  }
  // Keys of refused frames are not handed out.
  const kept = new Set(results.flatMap((r) => (r?.ok ? [r.downlinkKey] : [])));
  for (const key of keysHanded) if (!kept.has(key)) key.fill(0);
  return results.map(
    (r, i) => r ?? { ok: false, error: new Error(`frame ${i} of the batch was not handled`) },
  );
}

/** Checks one verified frame's epoch and window against its meter's locked row, decodes and chain-checks it; throws to refuse it. */
function openSet(
  crypto: Crypto,
  downlinkKeyOf: (meterId: number, epoch: number) => Uint8Array,
  cardTokens: CardTokens | undefined,
  { header, body: plaintext, sealed }: UplinkFrame,
  index: number,
  meter: MeterRow | undefined,
): OpenedSet {
  const meterId = header.meterId;
  if (!meter) throw new FrameRefused('unknown-meter', `meter ${meterId} is not provisioned`);
  // The previous key epoch stays accepted until previous_epoch_until (keys/rotation.ts).
  let epoch = Number(meter.key_epoch);
  if (header.epoch !== epoch) {
    if (meter.old_epoch === null || header.epoch !== Number(meter.old_epoch))
      throw new FrameRefused('stale-epoch', `frame key epoch ${header.epoch}, meter's epoch ${epoch}`);
    epoch = header.epoch;
  }
  // Authenticated and decrypted by the gate's checks (verify.ts); D of the epoch seals the ack.
  const downlinkKey = downlinkKeyOf(meterId, epoch);
  const body = plaintext;
  try {
    // Checked again here, under the meter's row lock: the gate's copy of the window may lag.
    const window = uplinkWindowOf(meter);
    const replayed = window.check(header.seq);
    if (replayed) throw new FrameRefused('replay', `uplink frame of meter ${meterId}: ${replayed}`);
    window.accept(header.seq);
    const message = decodeRecordsMessage(body);
    const kept = message.records.map((bytes) => atRest(bytes, cardTokens));
    const records = kept.map((k) => k.record);
    const first = records[0].seq;
    records.forEach((record, i) => {
      if (record.meterId !== meterId) {
        throw new FrameRefused(
          'record-meter-mismatch',
          `record ${record.seq} belongs to meter ${record.meterId}`,
        );
      }
      if (record.seq !== first + i) {
        throw new FrameRefused(
          'not-contiguous',
          `record ${i} of the set has seq ${record.seq}, not ${first + i}`,
        );
      }
    });
    if (first < 1) throw new ProtocolError('bad-field', 'record sequence numbers start at 1');
    if (first === 1 && !bytesEqual(message.previous, genesisHash(crypto, meterId))) {
      throw new FrameRefused('chain-broken', 'set starts at record 1 but previous is not the genesis hash');
    }
    return {
      index,
      meterId,
      frameSeq: header.seq,
      window,
      epoch,
      downlinkKey,
      hasGaps: meter.has_gaps === true,
      previous: message.previous,
      bytes: kept.map((k) => k.bytes),
      redacted: kept.map((k) => k.redacted),
      records,
      // Over the bytes as the meter chained them, before any conversion.
      links: verifyChain(crypto, message.previous, message.records),
      first,
      last: first + records.length - 1,
      // A frame with format 1 records holds card numbers under the meter's key: not kept.
      ...(sealed && !kept.some((k) => k.redacted) ? { sealed } : {}),
    };
  } catch (error) {
    downlinkKey.fill(0);
    throw error;
  }
}

/**
 * The set against the records held around it: the link before it, records already held (a re-upload
 * carries the same bytes; other bytes are a conflict) and the record after it (a set filling a gap
 * must lead into it). Throws to refuse the set.
 */
function checkAgainstHeld(
  crypto: Crypto,
  set: OpenedSet,
  held: Map<number, HeldRecord>,
): { set: OpenedSet; stored: StoredRecord[]; duplicates: number; gapBelow: boolean } {
  const { first, last, links } = set;
  const before = held.get(first - 1);
  if (first > 1 && before && !bytesEqual(before.link, set.previous)) {
    throw new FrameRefused('chain-broken', `previous does not match the held link of record ${first - 1}`);
  }
  const stored: StoredRecord[] = [];
  let duplicates = 0;
  for (let i = 0; i < set.records.length; i++) {
    const seq = first + i;
    const already = held.get(seq);
    if (already) {
      if (!bytesEqual(already.bytes, set.bytes[i])) {
        throw new FrameRefused('duplicate-conflict', `record ${seq} is held with different bytes`);
      }
      if (!bytesEqual(already.link, links[i])) {
        throw new FrameRefused('chain-broken', `record ${seq} is held with a different chain link`);
      }
      duplicates++;
      continue;
    }
    const record: StoredRecord = {
      meterId: set.meterId,
      record: set.records[i],
      bytes: set.bytes[i],
      link: links[i],
    };
    // Set only when true, not spread in: this runs for every record.
    if (set.redacted[i]) record.redacted = true;
    stored.push(record);
  }
  const after = held.get(last + 1);
  // A converted format 1 record no longer hashes to its link: only its own arrival checked it.
  if (
    after &&
    !after.redacted &&
    !bytesEqual(chainLink(crypto, links[links.length - 1], after.bytes), after.link)
  ) {
    throw new FrameRefused(
      'chain-broken',
      `held record ${last + 1} does not follow record ${last} of the set`,
    );
  }
  return { set, stored, duplicates, gapBelow: first > 1 && !before };
}

// The tables a batch writes with COPY, their columns in COPY order with their types (the schema's:
// host-tests/platform/copyBinary.test.ts checks them against it).
export const RECORDS_COPY: CopyTable = {
  name: 'records',
  columns: [
    ['meter_id', 'int8'],
    ['seq', 'int8'],
    ['kind', 'int2'],
    ['recorded_at', 'timestamptz'],
    ['redacted', 'bool'],
    ['time_state', 'int2'],
    ['bytes', 'bytea'],
    ['link', 'bytea'],
  ],
};

export const TRANSACTIONS_COPY: CopyTable = {
  name: 'transactions',
  columns: [
    ['meter_id', 'int8'],
    ['seq', 'int8'],
    ['transaction_number', 'int8'],
    ['card_token', 'text'],
    ['card_last4', 'text'],
    ['card_expiry', 'text'],
    ['card_type', 'int2'],
    ['bay_id', 'int8'],
    ['minutes', 'int4'],
    ['paid_from', 'timestamptz'],
    ['paid_until', 'timestamptz'],
    ['charge', 'int8'],
    ['currency', 'int2'],
    ['remaining_value', 'int8'],
    ['tariff_rule', 'int8'],
    ['recorded_at', 'timestamptz'],
  ],
};

export const OPERATIONS_COPY: CopyTable = {
  name: 'operations',
  columns: [
    ['meter_id', 'int8'],
    ['seq', 'int8'],
    ['code', 'text'],
    ['detail', 'text'],
    ['card_token', 'text'],
    ['card_last4', 'text'],
    ['period_from', 'timestamptz'],
    ['period_to', 'timestamptz'],
    ['quantity', 'int8'],
  ],
};

export const MAINTENANCE_COPY: CopyTable = {
  name: 'maintenance',
  columns: [
    ['meter_id', 'int8'],
    ['seq', 'int8'],
    ['code', 'text'],
    ['detail', 'text'],
  ],
};

export const RECORD_SETS_COPY: CopyTable = {
  name: 'record_sets',
  columns: [
    ['meter_id', 'int8'],
    ['frame_seq', 'int8'],
    ['epoch', 'int8'],
    ['first_seq', 'int8'],
    ['last_seq', 'int8'],
    ['frame', 'bytea'],
  ],
};

/**
 * The rows for COPY of the records of each group (a set's new records), every record with its sale,
 * operation or maintenance row, in binary form (the rows ingest writes). A group with a value its
 * column cannot hold leaves no row and is named in `refused` with the error. `late`: the times of
 * the sales from before `todayStart`.
 */
export function recordRows(
  groups: readonly (readonly Pick<StoredRecord, 'record' | 'bytes' | 'link' | 'redacted'>[])[],
  todayStart: number,
): { rows: CopyRows[]; late: number[]; refused: Map<number, CopyValueError> } {
  let count = 0;
  let recordBytes = 0;
  for (const stored of groups) {
    count += stored.length;
    for (const { bytes } of stored) recordBytes += bytes.length;
  }
  // Room for every row at once (a record's fixed fields take under 100 bytes, a sale's under 200):
  // the buffers are not grown record by record.
  const records = new CopyRows(RECORDS_COPY, recordBytes + 100 * count);
  const transactions = new CopyRows(TRANSACTIONS_COPY, 200 * count);
  const operations = new CopyRows(OPERATIONS_COPY, 4096);
  const maintenance = new CopyRows(MAINTENANCE_COPY, 1024);
  const written: RecordTables = { records, transactions, operations, maintenance };
  const tables = [records, transactions, operations, maintenance];
  // Sales from before today (a meter uploading late, a handheld collection): their days' totals.
  const late: number[] = [];
  const refused = new Map<number, CopyValueError>();
  groups.forEach((stored, group) => {
    const marks = tables.map((rows) => rows.mark());
    const lateBefore = late.length;
    try {
      writeRecordRows(stored, todayStart, written, late);
    } catch (error) {
      if (!(error instanceof CopyValueError)) throw error;
      for (let i = 0; i < tables.length; i++) tables[i].rewind(marks[i]);
      late.length = lateBefore;
      refused.set(group, error);
    }
  });
  return { rows: tables, late, refused };
}

interface RecordTables {
  records: CopyRows;
  transactions: CopyRows;
  operations: CopyRows;
  maintenance: CopyRows;
}

/** One group's records into the rows (recordRows). */
function writeRecordRows(
  stored: readonly Pick<StoredRecord, 'record' | 'bytes' | 'link' | 'redacted'>[],
  todayStart: number,
  { records, transactions, operations, maintenance }: RecordTables,
  late: number[],
): void {
  // Straight into the rows, no objects per record: this loop runs for every record of the fleet.
  for (const { record, bytes, link, redacted } of stored) {
    records.row().int8(record.meterId).int8(record.seq).int2(record.kind).timestamptz(record.time);
    records.bool(redacted === true);
    // No clock state: written before meters reported their clock.
    if (record.timeState === undefined) records.null();
    else records.int2(record.timeState);
    records.bytea(bytes).bytea(link);
    switch (record.kind) {
      case RecordKind.Transaction: {
        const d = record.data;
        transactions.row().int8(record.meterId).int8(record.seq).int8(d.transactionNumber);
        transactions.hex(d.card.token).text(d.card.last4).text(d.cardExpiry).int2(d.cardType);
        transactions.int8(d.bayId).int4(d.minutes).timestamptz(d.paidFrom).timestamptz(d.paidUntil);
        transactions.int8(d.charge).int2(d.currency).int8(d.remainingValue);
        if (d.tariffRule === undefined) transactions.null();
        else transactions.int8(d.tariffRule);
        transactions.timestamptz(record.time);
        if (record.time < todayStart) late.push(record.time);
        break;
      }
      case RecordKind.Operation: {
        const d = record.data;
        operations.row().int8(record.meterId).int8(record.seq).text(d.code).text(d.detail);
        if (d.card === null) operations.null().null();
        else operations.hex(d.card.token).text(d.card.last4);
        if (d.period === undefined) operations.null().null();
        else operations.timestamptz(d.period.from).timestamptz(d.period.to);
        if (d.quantity === undefined) operations.null();
        else operations.int8(d.quantity);
        break;
      }
      case RecordKind.Maintenance:
        maintenance.row().int8(record.meterId).int8(record.seq);
        maintenance.text(record.data.code).text(record.data.detail);
        break;
    }
  }
}

/**
 * Writes the batch: one COPY per table for every row of the batch (binary rows, as the server
 * stores them: the cheapest way in for both sides, and a fixed number of round trips however many
 * rows), then each meter's replay mark and downlink sequence advanced in one statement. Returns the
 * ack's downlink sequence number per meter.
 */
async function writeSets(
  tx: Queryable,
  sets: readonly { set: OpenedSet; stored: readonly StoredRecord[] }[],
  { rows, late }: { rows: CopyRows[]; late: number[] },
  timeZone: string,
): Promise<Map<number, number>> {
  // The sealed frames that brought new records, for the audit.
  const frames = new CopyRows(RECORD_SETS_COPY, 1024);
  for (const { set, stored } of sets) {
    if (!set.sealed || stored.length === 0) continue;
    frames.row().int8(set.meterId).int8(set.frameSeq).int8(set.epoch).int8(set.first).int8(set.last);
    frames.bytea(set.sealed);
  }
  for (const table of [...rows, frames]) if (table.rowCount > 0) await tx.copyIn(table);
  if (late.length > 0) {
    // The normal batch (every sale today's) writes nothing here. In day order, so two batches
    // marking the same days do not deadlock; the row lock orders this against a roll-up of the day.
    await tx.query(
      `INSERT INTO daily_sales_days AS d (day, time_zone, stale)
       SELECT DISTINCT (to_timestamp(t) AT TIME ZONE $2::text)::date, $2::text, true FROM unnest($1::float8[]) AS u(t) ORDER BY 1
       ON CONFLICT (day) DO UPDATE SET stale = true WHERE NOT d.stale`,
      [arrayLiteral(late), timeZone],
    );
  }
  // Each meter's newest stored record after this batch (stored in sequence order; 0 and no link:
  // nothing new stored).
  const newest = sets.map(({ stored }): StoredRecord | undefined => stored[stored.length - 1]);
  const advanced = await tx.query<{ id: number; downlink_seq: number }>(
    `UPDATE meters SET last_uplink_seq = f.highest, uplink_seen = f.seen, last_seen_at = now(),
         downlink_seq = meters.downlink_seq + 1,
         last_record_link = CASE WHEN f.newest > meters.last_record_seq
                                 THEN substring($5::bytea FROM (f.i::integer - 1) * 32 + 1 FOR 32)
                                 ELSE meters.last_record_link END,
         last_record_seq = GREATEST(meters.last_record_seq, f.newest)
       FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS f(id, highest, seen, newest, i)
       WHERE meters.id = f.id
       RETURNING meters.id, meters.downlink_seq`,
    [
      arrayLiteral(sets.map(({ set }) => set.meterId)),
      arrayLiteral(sets.map(({ set }) => set.window.highest)),
      arrayLiteral(sets.map(({ set }) => uplinkSeenColumn(set.window))),
      arrayLiteral(newest.map((r) => r?.record.seq ?? 0)),
      Buffer.concat(newest.map((r) => r?.link ?? new Uint8Array(32))),
    ],
  );
  return new Map(advanced.rows.map((r) => [Number(r.id), Number(r.downlink_seq)]));
}

/**
 * A PostgreSQL array literal (`{1,2,NULL}`, `{"ab","c\\"d"}`), sent as one text parameter and cast in
 * the statement: the driver's own array encoding escapes element by element and costs more than the
 * insert itself at batch sizes.
 */
export function arrayLiteral(values: readonly (string | number | null)[]): string {
  let text = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) text += ',';
    if (v === null) text += 'NULL';
    else if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new RangeError(`${v} in an array parameter`);
      text += v;
    } else text += `"${/["\\]/.test(v) ? v.replace(/["\\]/g, '\\$&') : v}"`;
  }
  return `${text}}`;
}

/** Removes [first, last] from the meter's recorded gaps, splitting a gap the set lands inside. */
async function closeGaps(tx: Queryable, meterId: number, first: number, last: number) {
  const overlapping = await tx.query<{ from_seq: number; to_seq: number; detected_at: Date }>(
    'DELETE FROM record_gaps WHERE meter_id = $1 AND from_seq <= $3 AND to_seq >= $2 RETURNING from_seq, to_seq, detected_at',
    [meterId, first, last],
  );
  for (const gap of overlapping.rows) {
    const pieces: [number, number][] = [];
    if (gap.from_seq < first) pieces.push([gap.from_seq, first - 1]);
    if (gap.to_seq > last) pieces.push([last + 1, gap.to_seq]);
    for (const [from, to] of pieces) {
      await tx.query(
        'INSERT INTO record_gaps (meter_id, from_seq, to_seq, detected_at) VALUES ($1, $2, $3, $4)',
        [meterId, from, to, gap.detected_at],
      );
    }
  }
}
