// The firmware registry and rollouts. An image is stored only when the release key's signature
// over it (version, length, hardware target, SHA-256) verifies. A rollout offers an image to a set
// of meters in stages (cumulative percentages); each stage starts when the one before settled with a
// failure rate at or below the rollout's threshold, else the rollout halts by itself. The meters'
// progress uplinks (0x07) drive the delivery: each names the offset the meter wants next and the
// platform sends that chunk (0x87), or its ok once the new image booted pending. The uplink gate
// hands 0x07 frames here verified (onUplink); each meter's last report is kept (meter_firmware) and
// every change of a meter's state in a rollout is in firmware_rollout_events.
import type { Crypto } from '../../hal/crypto';
import { checkFirmwareSignature, FirmwareRejected } from '../../firmware/units/firmwareVerify';
import {
  decodeFirmwareProgress,
  encodeFirmwareDownlink,
  FIRMWARE_DOWNLINK,
  type FirmwareDownlink,
  type FirmwareProgress,
  MAX_CHUNK,
} from '../../protocol/firmware';
import type { Database, Queryable } from '../core/db';
import { RequestRefused } from '../core/errors';
import { nodeCrypto } from '../core/nodeCrypto';
import { describeTarget, type MeterTarget, resolveTarget } from '../fleet/targets';
import type { Logger, UplinkHandler } from '../ingest/gate';

export class FirmwareError extends RequestRefused {
  override readonly name: string = 'FirmwareError';
  /** The HTTP status (RequestRefused's statusCode). */
  get status(): number {
    return this.statusCode;
  }
}

export interface FirmwareDeps {
  db: Database;
  /**
   * The release key's public half (the one pinned in the meters; PARKLINK_FIRMWARE_RELEASE_KEY).
   * Without it no image is stored.
   */
  releaseKey?: Uint8Array;
  /** Seals and publishes a downlink (Ingest.sendDownlink). */
  sendDownlink(meterId: number, type: number, body: Uint8Array): Promise<number>;
  crypto?: Crypto;
  /** Bytes per chunk (default MAX_CHUNK). */
  chunkBytes?: number;
  /** Where a failed answer to a progress report is told (ingest's logger). */
  logger?: Pick<Logger, 'error'>;
}

/** A meter's last reported update state and its history across rollouts. */
export interface MeterFirmwareView {
  meterId: number;
  rolloutId: number;
  state: string;
  version: number;
  offset: number;
  reason: string;
  reportedAt: string;
  history: { at: string; rolloutId: number; event: string; detail: string }[];
}

export interface ImageView {
  id: number;
  version: number;
  target: string;
  length: number;
  sha256: string;
  notes: string;
  uploadedBy: string;
  uploadedAt: string;
}

export type RolloutState = 'running' | 'paused' | 'halted' | 'aborted' | 'done';
const FAILED = new Set(['rolled-back', 'refused']);
const SETTLED = new Set(['confirmed', 'rolled-back', 'refused']);

export class FirmwareService {
  readonly #d: FirmwareDeps;
  readonly #crypto: Crypto;

  constructor(deps: FirmwareDeps) {
    this.#d = deps;
    this.#crypto = deps.crypto ?? nodeCrypto;
  }

  /** Stores a signed image; FirmwareError 422 when the signature does not verify, 409 when the version exists. */
  async upload(input: {
    version: number;
    target: string;
    notes?: string;
    image: Uint8Array;
    signature: Uint8Array;
    by: string;
  }): Promise<ImageView> {
    const digest = this.#crypto.sha256(input.image);
    if (!this.#d.releaseKey)
      throw new FirmwareError(
        503,
        'no-release-key',
        'the platform has no firmware release key (PARKLINK_FIRMWARE_RELEASE_KEY)',
      );
    try {
      checkFirmwareSignature(
        this.#d.releaseKey,
        { version: input.version, length: input.image.length, target: input.target, digest },
        input.signature,
        { target: input.target, floor: 0 },
      );
    } catch (error) {
      if (error instanceof FirmwareRejected)
        throw new FirmwareError(422, error.reason, error.message, 'signature');
      throw error;
    }
    const exists = await this.#d.db.query(
      'SELECT 1 FROM firmware_images WHERE target = $1 AND version = $2',
      [input.target, input.version],
    );
    if (exists.rows.length > 0)
      throw new FirmwareError(
        409,
        'exists',
        `version ${input.version} for ${input.target} is registered`,
        'version',
      );
    const row = await this.#d.db.query<{ id: string }>(
      `INSERT INTO firmware_images (version, target, length, sha256, signature, notes, image, uploaded_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
      [
        input.version,
        input.target,
        input.image.length,
        digest,
        input.signature,
        input.notes ?? '',
        input.image,
        input.by,
      ],
    );
    const images = await this.images(Number(row.rows[0].id));
    return images[0];
  }

  async images(id?: number): Promise<ImageView[]> {
    const rows = await this.#d.db.query<{
      id: string;
      version: string;
      target: string;
      length: string;
      sha256: Uint8Array;
      notes: string;
      uploaded_by: string;
      uploaded_at: Date;
    }>(
      `SELECT id, version, target, length, sha256, notes, uploaded_by, uploaded_at FROM firmware_images
       WHERE $1::bigint IS NULL OR id = $1 ORDER BY id`,
      [id ?? null],
    );
    return rows.rows.map((r) => ({
      id: Number(r.id),
      version: Number(r.version),
      target: r.target,
      length: Number(r.length),
      sha256: Buffer.from(r.sha256).toString('hex'),
      notes: r.notes,
      uploadedBy: r.uploaded_by,
      uploadedAt: r.uploaded_at.toISOString(),
    }));
  }

  /**
   * Creates a rollout of `imageId` to the meters `target` names (listed meters, an area, the fleet),
   * in stages of cumulative percentages (e.g. [10, 50, 100]); the meters are ordered by id, so a
   * stage's meters are the same on every replay. Starts stage 0.
   */
  async createRollout(input: {
    imageId: number;
    target: MeterTarget;
    stages: number[];
    maxFailureRate: number;
    by: string;
  }): Promise<{ id: number; meters: number }> {
    const { stages } = input;
    if (
      stages.length === 0 ||
      stages.some((p, i) => !Number.isInteger(p) || p < 1 || p > 100 || (i > 0 && p <= stages[i - 1])) ||
      stages[stages.length - 1] !== 100
    )
      throw new FirmwareError(400, 'bad-stages', 'stages are rising percentages ending at 100', 'stages');
    if (!(input.maxFailureRate >= 0 && input.maxFailureRate <= 1))
      throw new FirmwareError(400, 'bad-threshold', 'maxFailureRate is between 0 and 1', 'maxFailureRate');
    const result = await this.#d.db.transaction(async (tx) => {
      const image = await tx.query('SELECT 1 FROM firmware_images WHERE id = $1', [input.imageId]);
      if (image.rows.length === 0)
        throw new FirmwareError(404, 'no-image', `no image ${input.imageId}`, 'imageId');
      const unique = await resolveTarget(tx, input.target);
      if (unique.length === 0)
        throw new FirmwareError(400, 'no-meters', `${describeTarget(input.target)} holds no meter`, 'target');
      const row = await tx.query<{ id: string }>(
        `INSERT INTO firmware_rollouts (image_id, state, stages, max_failure_rate, created_by, target)
         VALUES ($1, 'running', $2, $3, $4, $5) RETURNING id`,
        [input.imageId, stages.length, input.maxFailureRate, input.by, describeTarget(input.target)],
      );
      const rollout = Number(row.rows[0].id);
      let from = 0;
      for (let s = 0; s < stages.length; s++) {
        const to = Math.max(
          from + (s === stages.length - 1 ? 0 : 1),
          Math.ceil((unique.length * stages[s]) / 100),
        );
        for (const meter of unique.slice(from, Math.min(to, unique.length))) {
          await tx.query(
            'INSERT INTO firmware_rollout_meters (rollout_id, meter_id, stage) VALUES ($1, $2, $3)',
            [rollout, meter, s],
          );
        }
        from = Math.min(to, unique.length);
      }
      await this.#event(
        tx,
        rollout,
        null,
        'created',
        `${describeTarget(input.target)}: ${unique.length} meters, stages ${stages.join('/')}`,
      );
      return { id: rollout, meters: unique.length };
    });
    await this.#offerStage(result.id);
    return result;
  }

  async pause(id: number): Promise<void> {
    await this.#transition(id, ['running'], 'paused');
  }

  async resume(id: number): Promise<void> {
    await this.#transition(id, ['paused', 'halted'], 'running');
    await this.#offerStage(id, true);
    await this.#evaluate(id);
  }

  /** Stops offering; meters already switching finish (they confirm or roll back on their own). */
  async abort(id: number): Promise<void> {
    await this.#transition(id, ['running', 'paused', 'halted'], 'aborted');
    const waiting = await this.#d.db.query<{ meter_id: string }>(
      `SELECT meter_id FROM firmware_rollout_meters
       WHERE rollout_id = $1 AND state IN ('offer-sent', 'offered', 'downloading')`,
      [id],
    );
    for (const r of waiting.rows) await this.#send(Number(r.meter_id), { k: 'abort', id });
  }

  async rollout(id: number): Promise<{
    id: number;
    imageId: number;
    target: string;
    state: RolloutState;
    stage: number;
    stages: number;
    maxFailureRate: number;
    reason: string;
    meters: { meterId: number; stage: number; state: string; offset: number; reason: string }[];
    events: { at: string; meterId: number | null; event: string; detail: string }[];
  }> {
    const row = await this.#d.db.query<{
      image_id: string;
      state: RolloutState;
      stage: number;
      stages: number;
      max_failure_rate: number;
      reason: string;
      target: string;
    }>(
      'SELECT image_id, state, stage, stages, max_failure_rate, reason, target FROM firmware_rollouts WHERE id = $1',
      [id],
    );
    const r = row.rows[0];
    if (!r) throw new FirmwareError(404, 'no-rollout', `no rollout ${id}`);
    const meters = await this.#d.db.query<{
      meter_id: string;
      stage: number;
      state: string;
      next_offset: string;
      reason: string;
    }>(
      'SELECT meter_id, stage, state, next_offset, reason FROM firmware_rollout_meters WHERE rollout_id = $1 ORDER BY meter_id',
      [id],
    );
    const events = await this.#d.db.query<{
      at: Date;
      meter_id: string | null;
      event: string;
      detail: string;
    }>('SELECT at, meter_id, event, detail FROM firmware_rollout_events WHERE rollout_id = $1 ORDER BY id', [
      id,
    ]);
    return {
      id,
      imageId: Number(r.image_id),
      target: r.target,
      state: r.state,
      stage: r.stage,
      stages: r.stages,
      maxFailureRate: Number(r.max_failure_rate),
      reason: r.reason,
      meters: meters.rows.map((m) => ({
        meterId: Number(m.meter_id),
        stage: m.stage,
        state: m.state,
        offset: Number(m.next_offset),
        reason: m.reason,
      })),
      events: events.rows.map((e) => ({
        at: e.at.toISOString(),
        meterId: e.meter_id === null ? null : Number(e.meter_id),
        event: e.event,
        detail: e.detail,
      })),
    };
  }

  /**
   * The uplink gate's route for 0x07 (verified frames): the report is recorded in the frame's
   * transaction (a malformed body refuses the frame, nothing written); the answer (the next chunk,
   * the ok) and the stage's evaluation follow the commit.
   */
  onUplink: UplinkHandler = async ({ meterId, body }, tx) => {
    const p = decodeFirmwareProgress(body);
    const current = await this.#record(tx, meterId, p);
    return () => this.#respond(meterId, p, current);
  };

  /** A meter's progress handed in decoded (tests, a handheld's report): recorded, then answered. */
  async onProgress(meterId: number, p: FirmwareProgress): Promise<void> {
    const current = await this.#d.db.transaction((tx) => this.#record(tx, meterId, p));
    await this.#respond(meterId, p, current);
  }

  /** The meter's last report and its history across rollouts; 404 when it never reported. */
  async meterFirmware(meterId: number): Promise<MeterFirmwareView> {
    const row = await this.#d.db.query<{
      rollout_id: string;
      state: string;
      version: string;
      next_offset: string;
      reason: string;
      reported_at: Date;
    }>(
      'SELECT rollout_id, state, version, next_offset, reason, reported_at FROM meter_firmware WHERE meter_id = $1',
      [meterId],
    );
    const r = row.rows[0];
    if (!r)
      throw new FirmwareError(404, 'no-report', `meter ${meterId} has reported no firmware state`, 'id');
    const events = await this.#d.db.query<{ at: Date; rollout_id: string; event: string; detail: string }>(
      'SELECT at, rollout_id, event, detail FROM firmware_rollout_events WHERE meter_id = $1 ORDER BY id',
      [meterId],
    );
    return {
      meterId,
      rolloutId: Number(r.rollout_id),
      state: r.state,
      version: Number(r.version),
      offset: Number(r.next_offset),
      reason: r.reason,
      reportedAt: r.reported_at.toISOString(),
      history: events.rows.map((e) => ({
        at: e.at.toISOString(),
        rolloutId: Number(e.rollout_id),
        event: e.event,
        detail: e.detail,
      })),
    };
  }

  /** Keeps the meter's report; in a rollout that offered it, its state there and the history. */
  async #record(
    tx: Queryable,
    meterId: number,
    p: FirmwareProgress,
  ): Promise<{ state: string; rstate: RolloutState; image_id: string } | undefined> {
    await tx.query(
      `INSERT INTO meter_firmware (meter_id, rollout_id, state, version, next_offset, reason, reported_at)
       VALUES ($1, $2, $3, $4, $5, $6, now())
       ON CONFLICT (meter_id) DO UPDATE SET rollout_id = $2, state = $3, version = $4, next_offset = $5,
         reason = $6, reported_at = now()`,
      [meterId, p.id, p.state, p.version, p.offset, p.reason ?? ''],
    );
    if (p.id === 0) return undefined;
    const row = await tx.query<{ state: string; rstate: RolloutState; image_id: string }>(
      `SELECT m.state, r.state AS rstate, r.image_id FROM firmware_rollout_meters m
       JOIN firmware_rollouts r ON r.id = m.rollout_id WHERE m.rollout_id = $1 AND m.meter_id = $2
       FOR UPDATE OF m`,
      [p.id, meterId],
    );
    const current = row.rows[0];
    if (!current || current.state === 'waiting') return undefined; // not offered to this meter
    if (current.state !== p.state) {
      await tx.query(
        `UPDATE firmware_rollout_meters SET state = $3, next_offset = $4, reason = $5, updated_at = now()
         WHERE rollout_id = $1 AND meter_id = $2`,
        [p.id, meterId, p.state, p.offset, p.reason ?? ''],
      );
      await this.#event(tx, p.id, meterId, p.state, p.reason ?? '');
    } else {
      await tx.query(
        'UPDATE firmware_rollout_meters SET next_offset = $3, updated_at = now() WHERE rollout_id = $1 AND meter_id = $2',
        [p.id, meterId, p.offset],
      );
    }
    return current;
  }

  /** Answers a recorded report with the next chunk or the ok, and settles the stage. */
  async #respond(
    meterId: number,
    p: FirmwareProgress,
    current: { state: string; rstate: RolloutState; image_id: string } | undefined,
  ): Promise<void> {
    if (!current) return;
    if (p.state === 'booted-pending') {
      // the new image may confirm once it hears the platform, whatever the rollout's state
      await this.#send(meterId, { k: 'ok', id: p.id, version: p.version });
    } else if ((p.state === 'offered' || p.state === 'downloading') && current.rstate === 'running') {
      const chunk = this.#d.chunkBytes ?? MAX_CHUNK;
      const data = await this.#d.db.query<{ part: Uint8Array }>(
        'SELECT substring(image FROM $2::int + 1 FOR $3::int) AS part FROM firmware_images WHERE id = $1',
        [Number(current.image_id), p.offset, chunk],
      );
      const part = data.rows[0]?.part;
      if (part && part.length > 0)
        await this.#send(meterId, { k: 'chunk', id: p.id, offset: p.offset, data: new Uint8Array(part) });
    }
    if (SETTLED.has(p.state)) await this.#evaluate(p.id);
  }

  /**
   * Offers the image to the current stage's meters not offered it yet; `again`: also to those still
   * downloading (after a pause the same offer makes each meter say where it is).
   */
  async #offerStage(id: number, again = false): Promise<void> {
    const r = await this.#d.db.query<{
      state: RolloutState;
      stage: number;
      version: string;
      target: string;
      length: string;
      sha256: Uint8Array;
      signature: Uint8Array;
    }>(
      `SELECT r.state, r.stage, i.version, i.target, i.length, i.sha256, i.signature FROM firmware_rollouts r
       JOIN firmware_images i ON i.id = r.image_id WHERE r.id = $1`,
      [id],
    );
    const x = r.rows[0];
    if (x?.state !== 'running') return;
    const due = await this.#d.db.query<{ meter_id: string }>(
      `UPDATE firmware_rollout_meters SET state = CASE WHEN state = 'waiting' THEN 'offer-sent' ELSE state END,
         updated_at = now()
       WHERE rollout_id = $1 AND stage = $2
         AND (state = 'waiting' OR ($3 AND state IN ('offer-sent', 'offered', 'downloading')))
       RETURNING meter_id`,
      [id, x.stage, again],
    );
    const offer: FirmwareDownlink = {
      k: 'offer',
      id,
      version: Number(x.version),
      length: Number(x.length),
      target: x.target,
      sha256: new Uint8Array(x.sha256),
      signature: new Uint8Array(x.signature),
    };
    for (const m of due.rows) {
      await this.#event(this.#d.db, id, Number(m.meter_id), 'offer-sent', `stage ${x.stage}`);
      await this.#send(Number(m.meter_id), offer);
    }
  }

  /** Halts the rollout when the stage's failure rate passes the threshold; moves on when it settled. */
  async #evaluate(id: number): Promise<void> {
    const advanced = await this.#d.db.transaction(async (tx) => {
      const r = await tx.query<{
        state: RolloutState;
        stage: number;
        stages: number;
        max_failure_rate: number;
      }>('SELECT state, stage, stages, max_failure_rate FROM firmware_rollouts WHERE id = $1 FOR UPDATE', [
        id,
      ]);
      const x = r.rows[0];
      if (x?.state !== 'running') return false;
      const m = await tx.query<{ state: string }>(
        'SELECT state FROM firmware_rollout_meters WHERE rollout_id = $1 AND stage = $2',
        [id, x.stage],
      );
      const total = m.rows.length;
      const failed = m.rows.filter((s) => FAILED.has(s.state)).length;
      const settled = m.rows.filter((s) => SETTLED.has(s.state)).length;
      const rate = total === 0 ? 0 : failed / total;
      if (rate > x.max_failure_rate) {
        const why = `stage ${x.stage}: ${failed} of ${total} meters failed`;
        await tx.query("UPDATE firmware_rollouts SET state = 'halted', reason = $2 WHERE id = $1", [id, why]);
        await this.#event(tx, id, null, 'halted', why);
        return false;
      }
      if (settled < total) return false;
      if (x.stage + 1 >= x.stages) {
        await tx.query("UPDATE firmware_rollouts SET state = 'done' WHERE id = $1", [id]);
        await this.#event(tx, id, null, 'done', `${failed} of ${total} failed in the last stage`);
        return false;
      }
      await tx.query('UPDATE firmware_rollouts SET stage = stage + 1 WHERE id = $1', [id]);
      await this.#event(tx, id, null, 'stage', `stage ${x.stage + 1} starts`);
      return true;
    });
    if (advanced) await this.#offerStage(id);
  }

  async #transition(id: number, from: RolloutState[], to: RolloutState): Promise<void> {
    const row = await this.#d.db.query(
      'UPDATE firmware_rollouts SET state = $2 WHERE id = $1 AND state = ANY($3::text[]) RETURNING id',
      [id, to, from],
    );
    if (row.rows.length === 0) {
      const exists = await this.#d.db.query('SELECT state FROM firmware_rollouts WHERE id = $1', [id]);
      if (exists.rows.length === 0) throw new FirmwareError(404, 'no-rollout', `no rollout ${id}`);
      throw new FirmwareError(
        409,
        'bad-state',
        `rollout ${id} cannot go to ${to} from ${String(exists.rows[0].state)}`,
      );
    }
    await this.#event(this.#d.db, id, null, to, '');
  }

  async #event(
    tx: Queryable,
    rollout: number,
    meter: number | null,
    event: string,
    detail: string,
  ): Promise<void> {
    await tx.query(
      'INSERT INTO firmware_rollout_events (rollout_id, meter_id, event, detail) VALUES ($1, $2, $3, $4)',
      [rollout, meter, event, detail],
    );
  }

  async #send(meterId: number, m: FirmwareDownlink): Promise<void> {
    await this.#d.sendDownlink(meterId, FIRMWARE_DOWNLINK, encodeFirmwareDownlink(m));
  }
}
