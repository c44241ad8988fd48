// What the other rooms may know of ingest's tables (meters, records, transactions, record_gaps), as
// two interfaces they are handed: MeterDirectory (a meter's identity, key epochs and downlink
// counter) and RecordReader (what the records say). No other room queries those tables itself, and
// none checks an uplink: the gate (gate.ts) verifies every frame, window included, before a
// feature's handler sees it.
import type { Database, Queryable } from '../core/db';

export interface MeterEpochs {
  current: number;
  /** The epoch before, still accepted until its window ends (key rotation); null when none. */
  previous: number | null;
}

export interface MeterDirectory {
  /**
   * Registers a meter at key epoch 1 for the factory to load its keys; a meter registered earlier
   * (register) and not provisioned yet keeps its entry and becomes provisioned.
   */
  provision(id: number, name: string): Promise<void>;
  /** Registers a meter at key epoch 1 that the factory has not provisioned yet (the console's registry). */
  register(id: number, name: string, tx?: Queryable): Promise<void>;
  exists(id: number): Promise<boolean>;
  /** The meter's key epochs; undefined for a meter not provisioned. */
  epochs(id: number): Promise<MeterEpochs | undefined>;
  /** Names of the meters among `ids` that exist. */
  names(ids: readonly number[]): Promise<Map<number, string>>;
  /** Takes the meter's next downlink sequence number, with the epoch to seal under; undefined if unknown. */
  nextDownlink(id: number): Promise<{ seq: number; epoch: number } | undefined>;
  /** In the caller's transaction: the meter moves to `epoch`; the one before stays accepted `windowSeconds`. */
  advanceEpoch(tx: Queryable, id: number, epoch: number, windowSeconds: number): Promise<void>;
}

export interface MeterRecordsSummary {
  id: number;
  name: string;
  /** The area it is placed in (fleet/targets.ts), null when none. */
  area: string | null;
  keyEpoch: number;
  createdAt: Date;
  lastSeenAt: Date | null;
  recordsHeld: number;
  /** Highest record sequence number held, 0 when none. */
  lastSeq: number;
  /** Records known to be missing (recorded gaps). */
  missingRecords: number;
}

export interface TransactionRow {
  seq: number;
  recorded_at: Date;
  /** The meter's clock state when it wrote the record (protocol/time.ts TimeState); null: not reported. */
  time_state: number | null;
  received_at: Date;
  transaction_number: number;
  /** The card's token (32 hex digits, protocol/cardToken.ts); the platform keeps no card number. */
  card_token: string;
  card_last4: string;
  card_expiry: string;
  card_type: number;
  bay_id: number;
  minutes: number;
  paid_from: Date;
  paid_until: Date;
  charge: number;
  currency: number;
  remaining_value: number;
}

export interface RecordGap {
  fromSeq: number;
  toSeq: number;
  detectedAt: Date;
}

export interface RawRecord {
  meterId: number;
  seq: number;
  bytes: Uint8Array;
  link: Uint8Array;
}

export interface RecordReader {
  /** Every meter with what ingest holds of it, by id. */
  summaries(): Promise<MeterRecordsSummary[]>;
  /** Up to `limit` transactions below `before` (all when null), newest first. */
  transactions(meterId: number, limit: number, before: number | null): Promise<TransactionRow[]>;
  /** The meter's recorded gaps, in order. */
  gaps(meterId: number): Promise<RecordGap[]>;
  /**
   * For each (meter, after) mark, the records above `after` received more than `olderThanSeconds`
   * ago, in order: at most `perMeter` a meter and `limit` in all.
   */
  recordsAfter(
    marks: readonly { meterId: number; after: number }[],
    options: { olderThanSeconds: number; perMeter: number; limit: number },
  ): Promise<RawRecord[]>;
}

export class MeterTables implements MeterDirectory, RecordReader {
  constructor(private readonly db: Database) {}

  async provision(id: number, name: string): Promise<void> {
    const registered = await this.db.query(
      'UPDATE meters SET provisioned_at = now() WHERE id = $1 AND provisioned_at IS NULL RETURNING id',
      [id],
    );
    if (registered.rows.length > 0) return;
    await this.db.query('INSERT INTO meters (id, name, key_epoch) VALUES ($1, $2, 1)', [id, name]);
  }

  async register(id: number, name: string, tx: Queryable = this.db): Promise<void> {
    await tx.query('INSERT INTO meters (id, name, key_epoch, provisioned_at) VALUES ($1, $2, 1, NULL)', [
      id,
      name,
    ]);
  }

  async exists(id: number): Promise<boolean> {
    return (await this.db.query('SELECT 1 FROM meters WHERE id = $1', [id])).rows.length > 0;
  }

  async epochs(id: number): Promise<MeterEpochs | undefined> {
    const row = await this.db.query<{ key_epoch: number; previous_key_epoch: number | null }>(
      'SELECT key_epoch, previous_key_epoch FROM meters WHERE id = $1',
      [id],
    );
    const r = row.rows[0];
    return (
      r && {
        current: Number(r.key_epoch),
        previous: r.previous_key_epoch === null ? null : Number(r.previous_key_epoch),
      }
    );
  }

  async names(ids: readonly number[]): Promise<Map<number, string>> {
    if (ids.length === 0) return new Map();
    const rows = await this.db.query<{ id: number; name: string }>(
      'SELECT id, name FROM meters WHERE id = ANY($1::bigint[])',
      [[...new Set(ids)]],
    );
    return new Map(rows.rows.map((r) => [Number(r.id), r.name]));
  }

  async nextDownlink(id: number): Promise<{ seq: number; epoch: number } | undefined> {
    const row = await this.db.query<{ downlink_seq: number; key_epoch: number }>(
      'UPDATE meters SET downlink_seq = downlink_seq + 1 WHERE id = $1 RETURNING downlink_seq, key_epoch',
      [id],
    );
    const r = row.rows[0];
    return r && { seq: Number(r.downlink_seq), epoch: Number(r.key_epoch) };
  }

  async advanceEpoch(tx: Queryable, id: number, epoch: number, windowSeconds: number): Promise<void> {
    await tx.query(
      `UPDATE meters SET previous_key_epoch = key_epoch, key_epoch = $2,
         previous_epoch_until = now() + make_interval(secs => $3) WHERE id = $1`,
      [id, epoch, windowSeconds],
    );
  }

  async summaries(): Promise<MeterRecordsSummary[]> {
    const result = await this.db.query<{
      id: number;
      name: string;
      area: string | null;
      key_epoch: number;
      created_at: Date;
      last_seen_at: Date | null;
      records_held: number;
      last_seq: number | null;
      missing: number | null;
    }>(
      `SELECT m.id, m.name, m.area, m.key_epoch, m.created_at, m.last_seen_at,
              (SELECT count(*) FROM records r WHERE r.meter_id = m.id) AS records_held,
              (SELECT max(seq) FROM records r WHERE r.meter_id = m.id) AS last_seq,
              (SELECT sum(g.to_seq - g.from_seq + 1) FROM record_gaps g WHERE g.meter_id = m.id)::bigint AS missing
         FROM meters m ORDER BY m.id`,
    );
    return result.rows.map((row) => ({
      id: row.id,
      name: row.name,
      area: row.area,
      keyEpoch: row.key_epoch,
      createdAt: row.created_at,
      lastSeenAt: row.last_seen_at,
      recordsHeld: row.records_held,
      lastSeq: row.last_seq ?? 0,
      missingRecords: row.missing ?? 0,
    }));
  }

  async transactions(meterId: number, limit: number, before: number | null): Promise<TransactionRow[]> {
    const result = await this.db.query<TransactionRow>(
      `SELECT t.*, r.received_at, r.time_state
         FROM transactions t JOIN records r ON r.meter_id = t.meter_id AND r.seq = t.seq AND r.recorded_at = t.recorded_at
        WHERE t.meter_id = $1 AND ($2::bigint IS NULL OR t.seq < $2::bigint)
        ORDER BY t.seq DESC
        LIMIT $3`,
      [meterId, before, limit],
    );
    return result.rows;
  }

  async gaps(meterId: number): Promise<RecordGap[]> {
    const rows = await this.db.query<{ from_seq: number; to_seq: number; detected_at: Date }>(
      'SELECT from_seq, to_seq, detected_at FROM record_gaps WHERE meter_id = $1 ORDER BY from_seq',
      [meterId],
    );
    return rows.rows.map((g) => ({ fromSeq: g.from_seq, toSeq: g.to_seq, detectedAt: g.detected_at }));
  }

  async recordsAfter(
    marks: readonly { meterId: number; after: number }[],
    options: { olderThanSeconds: number; perMeter: number; limit: number },
  ): Promise<RawRecord[]> {
    if (marks.length === 0) return [];
    const rows = await this.db.query<{ meter_id: number; seq: number; bytes: Uint8Array; link: Uint8Array }>(
      `SELECT r.meter_id, r.seq, r.bytes, r.link FROM unnest($1::bigint[], $2::bigint[]) AS p(meter_id, last_seq)
         CROSS JOIN LATERAL (SELECT * FROM records r WHERE r.meter_id = p.meter_id AND r.seq > p.last_seq
                               AND r.received_at < now() - make_interval(secs => $3) ORDER BY r.seq LIMIT $4) r
        ORDER BY r.meter_id, r.seq LIMIT $5`,
      [
        marks.map((m) => m.meterId),
        marks.map((m) => m.after),
        options.olderThanSeconds,
        options.perMeter,
        options.limit,
      ],
    );
    return rows.rows.map((r) => ({ meterId: r.meter_id, seq: r.seq, bytes: r.bytes, link: r.link }));
  }
}
