// The downlink outbox (migration 038): every downlink ingest seals with sendDownlink is kept here,
// the same sealed bytes as published, so that a handheld can carry it to a meter the broker cannot
// reach (GET /api/handheld/meters/:id/downlinks). Carrying a frame twice, or carrying one the broker
// delivered after all, is harmless: the meter's downlink replay window refuses the repeat.
//
// What a meter needs to catch up, and so what is kept:
// - a key rotation (0x83), settings (0x84), a tariff, a message or bay modes (0x85, by body kind):
//   each replaces the one before, so only the newest of its kind is kept;
// - a phone renewal (0x86): a resend is the same renewal, so only its newest frame is kept, until
//   the meter settles it or it is voided;
// - release tokens (0x82), blacklist deltas and pages (0x8A), firmware messages (0x87): each
//   counts on its own (a delta builds on the one before, a chunk is one piece of the image), so
//   each is kept, the newest 64 per meter (the width of the meter's downlink replay window: a frame
//   64 numbers below the newest it opened is refused anyway);
// - record-set acks (0x81) are not kept: the handheld gets the ack of each set in the answer to its
//   upload, and a set whose ack never reached the meter is collected again and acknowledged again.
// A frame goes when the meter's acknowledgement shows it arrived (its tariff ack names the version
// pushed; its blacklist ack a version at least the one pushed; its key epoch moved past a rotation),
// when it is sealed under a key epoch the meter no longer opens (its feature pushes again under the
// new keys), or after the retention period (30 days: a meter with no coverage is visited on a
// handheld's beat, weekly to monthly; a push older than that is pushed again by its feature).
import { decodeCbor } from '../../protocol/cbor';
import { BLACKLIST_DOWNLINK } from '../../protocol/blacklist';
import { KeyFrame } from '../../protocol/keys';
import { RENEWAL_FRAME } from '../../protocol/renewal';
import { REPLAY_WINDOW } from '../../protocol/replayWindow';
import { TARIFF_DOWNLINK } from '../../protocol/tariff/messages';
import type { Database, Queryable } from '../core/db';

export const OUTBOX_RETENTION_MS = 30 * 24 * 3600_000;
/** Frames kept per meter among those that each count on their own. */
export const OUTBOX_PER_METER = REPLAY_WINDOW;
const SETTINGS_DOWNLINK = 0x84;
/**
 * Downlink types whose newest frame (of one body kind) replaces the ones before, with the body field
 * that names the kind: a tariff push names a tariff, a message or bay modes (`k`); a phone renewal
 * resent is the same renewal (`id`).
 */
const SUPERSEDING = new Map<number, string>([
  [KeyFrame.ROTATION, 'k'],
  [SETTINGS_DOWNLINK, 'k'],
  [TARIFF_DOWNLINK, 'k'],
  [RENEWAL_FRAME, 'id'],
]);

/**
 * What a newer frame replaces: for a superseding type, the type and the body's kind; undefined when
 * each frame counts.
 */
export function supersessionKind(type: number, body: Uint8Array): string | undefined {
  const field = SUPERSEDING.get(type);
  if (field === undefined) return undefined;
  let kind = '';
  try {
    const value = decodeCbor(body);
    if (value && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Uint8Array)) {
      const k = (value as Record<string, unknown>)[field];
      if (typeof k === 'string') kind = k;
    }
  } catch {
    // not CBOR: the type alone is the kind
  }
  return `${type}:${kind}`;
}

export interface KeptDownlink {
  meterId: number;
  seq: number;
  type: number;
  epoch: number;
  frame: Uint8Array;
}

export interface OutboxOptions {
  retentionMs?: number;
}

export class DownlinkOutbox {
  readonly #db: Database;
  readonly #retentionS: number;

  constructor(db: Database, options: OutboxOptions = {}) {
    this.#db = db;
    this.#retentionS = (options.retentionMs ?? OUTBOX_RETENTION_MS) / 1000;
  }

  /** Keeps a sealed downlink, dropping the frames it supersedes and the oldest past the bound. */
  async keep(downlink: KeptDownlink, body: Uint8Array): Promise<void> {
    const kind = supersessionKind(downlink.type, body) ?? null;
    await this.#db.transaction(async (tx) => {
      if (kind !== null)
        await tx.query('DELETE FROM downlink_outbox WHERE meter_id = $1 AND kind = $2 AND seq < $3', [
          downlink.meterId,
          kind,
          downlink.seq,
        ]);
      await tx.query(
        `INSERT INTO downlink_outbox (meter_id, seq, type, epoch, kind, frame) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (meter_id, seq) DO NOTHING`,
        [downlink.meterId, downlink.seq, downlink.type, downlink.epoch, kind, downlink.frame],
      );
      if (kind === null)
        await tx.query(
          `DELETE FROM downlink_outbox WHERE meter_id = $1 AND kind IS NULL AND seq NOT IN (
             SELECT seq FROM downlink_outbox WHERE meter_id = $1 AND kind IS NULL ORDER BY seq DESC LIMIT $2)`,
          [downlink.meterId, OUTBOX_PER_METER],
        );
    });
  }

  /** Which of `meterIds` are provisioned, in the order given. */
  async known(meterIds: readonly number[]): Promise<number[]> {
    if (meterIds.length === 0) return [];
    const rows = await this.#db.query<{ id: string | number }>(
      'SELECT id FROM meters WHERE id = ANY($1::bigint[])',
      [meterIds],
    );
    const found = new Set(rows.rows.map((r) => Number(r.id)));
    return meterIds.filter((id) => found.has(id));
  }

  /** The frames waiting for each of `meterIds`, after pruning, in sequence order per meter. */
  async pending(meterIds: readonly number[]): Promise<KeptDownlink[]> {
    if (meterIds.length === 0) return [];
    await this.prune(meterIds);
    const rows = await this.#db.query<{
      meter_id: string | number;
      seq: string | number;
      type: number;
      epoch: string | number;
      frame: Uint8Array;
    }>(
      `SELECT meter_id, seq, type, epoch, frame FROM downlink_outbox
        WHERE meter_id = ANY($1::bigint[]) ORDER BY meter_id, seq`,
      [meterIds],
    );
    return rows.rows.map((r) => ({
      meterId: Number(r.meter_id),
      seq: Number(r.seq),
      type: Number(r.type),
      epoch: Number(r.epoch),
      frame: new Uint8Array(r.frame),
    }));
  }

  /**
   * Drops, for `meterIds`, what the meter no longer needs, and everywhere what is past the
   * retention period. Returns the number of frames dropped.
   */
  async prune(meterIds: readonly number[], tx: Queryable = this.#db): Promise<number> {
    let dropped = 0;
    const run = async (sql: string, params: (number | string | readonly number[])[]) => {
      dropped += (await tx.query(sql, params)).rowCount;
    };
    await run('DELETE FROM downlink_outbox WHERE created_at < now() - make_interval(secs => $1)', [
      this.#retentionS,
    ]);
    // Sealed under an epoch the meter no longer opens; a rotation once the epoch moved past it.
    await run(
      `DELETE FROM downlink_outbox o USING meters m
        WHERE o.meter_id = m.id AND m.id = ANY($1::bigint[]) AND o.epoch < m.key_epoch
          AND (o.type = $2 OR o.epoch IS DISTINCT FROM m.previous_key_epoch
               OR m.previous_epoch_until IS NULL OR m.previous_epoch_until <= now())`,
      [meterIds, KeyFrame.ROTATION],
    );
    // A tariff push the meter acknowledged (applied or refused: either way it arrived).
    await run(
      `DELETE FROM downlink_outbox o USING meter_tariffs t
        WHERE o.meter_id = t.meter_id AND t.meter_id = ANY($1::bigint[]) AND o.type = $2
          AND o.kind = $3 AND o.seq <= t.downlink_seq
          AND t.acked_at >= t.pushed_at AND t.acked_tariff_id = t.tariff_id AND t.acked_version = t.version`,
      [meterIds, TARIFF_DOWNLINK, `${TARIFF_DOWNLINK}:tariff`],
    );
    // Blacklist frames up to a push whose version the meter acknowledged holding.
    await run(
      `DELETE FROM downlink_outbox o USING blacklist_meters b
        WHERE o.meter_id = b.meter_id AND b.meter_id = ANY($1::bigint[]) AND o.type = $2
          AND o.seq <= b.pushed_seq AND b.acked_at >= b.pushed_at
          AND b.acked_version >= b.pushed_version`,
      [meterIds, BLACKLIST_DOWNLINK],
    );
    // A phone renewal once applied, refused or voided (a voided one the meter would refuse anyway).
    await run(
      `DELETE FROM downlink_outbox o USING renewals r
        WHERE o.meter_id = ANY($1::bigint[]) AND o.type = $2 AND o.kind = $3 || r.id
          AND r.status <> 'sent'`,
      [meterIds, RENEWAL_FRAME, `${RENEWAL_FRAME}:`],
    );
    return dropped;
  }
}
