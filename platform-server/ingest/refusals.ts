// The trail every refused uplink leaves, whatever its type, bounded however many arrive: a count per
// (meter, reason) in refusal_counts, added up in memory and written in one statement a second; a
// sample of the refusals themselves, each a row in refused_frames and a log line (at most
// `sampleRows` a minute for one meter and reason, `maxRowsPerMinute` in all); the rest named in one
// summary log line per flush; rows older than the retention period pruned.
import type { Database } from '../core/db';
import { arrayLiteral, type RefusalReason } from './store';

export interface RefusalEntry {
  reason: RefusalReason;
  detail: string;
  topic: string;
  meterId?: number;
  frameSeq?: number;
}

export interface RefusalTrailOptions {
  db: Database;
  logger: {
    warn(obj: object, msg?: string): void;
    error(obj: object, msg?: string): void;
  };
  /** Rows (and log lines) kept per meter and reason a minute (default 10). */
  sampleRows?: number;
  /** Rows kept a minute in all, across meters (default 600). */
  maxRowsPerMinute?: number;
  /** How often the counts are written (default 1 s). */
  flushMs?: number;
  /** refused_frames rows older than this are deleted (default 14 days). */
  retentionDays?: number;
  /** How often the prune runs (default hourly; the first at start). */
  pruneEveryMs?: number;
}

/** Distinct (meter, reason) pairs counted in memory between flushes; past it, counted without meter. */
const MAX_PENDING_KEYS = 10_000;
const MINUTE = 60_000;

interface Pending {
  meterId: number | null;
  reason: string;
  count: number;
  firstAt: number;
  lastAt: number;
}

export class RefusalTrail {
  readonly #o: RefusalTrailOptions;
  readonly #sampleRows: number;
  readonly #maxRows: number;
  #pending = new Map<string, Pending>();
  /** Rows written this minute per (meter, reason), and in all. */
  #sampled = new Map<string, number>();
  #rowsThisMinute = 0;
  #minuteStart = Date.now();
  #suppressed = new Map<string, number>();
  #flushTimer: NodeJS.Timeout | undefined;
  #pruneTimer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(options: RefusalTrailOptions) {
    this.#o = options;
    this.#sampleRows = Math.max(1, options.sampleRows ?? 10);
    this.#maxRows = Math.max(1, options.maxRowsPerMinute ?? 600);
  }

  /** Starts the timed flush and prune (not needed when flush() and prune() are called directly). */
  start(): void {
    if (this.#flushTimer) return;
    this.#flushTimer = setInterval(() => void this.flush(), this.#o.flushMs ?? 1000);
    this.#flushTimer.unref();
    const prune = () =>
      this.prune().catch((error) => this.#o.logger.error({ err: error }, 'could not prune refused frames'));
    void prune();
    this.#pruneTimer = setInterval(prune, this.#o.pruneEveryMs ?? 3_600_000);
    this.#pruneTimer.unref();
  }

  /** Stops the timers and writes what is counted. */
  async close(): Promise<void> {
    clearInterval(this.#flushTimer);
    clearInterval(this.#pruneTimer);
    this.#flushTimer = undefined;
    this.#pruneTimer = undefined;
    await this.flush();
  }

  /**
   * Counts a refusal; when it is sampled, logs it and writes its row before resolving (so a caller
   * that awaits it finds the row). Never throws.
   */
  async record(refusal: RefusalEntry, error?: unknown): Promise<void> {
    const now = Date.now();
    const meterId = refusal.meterId ?? null;
    const key = `${meterId ?? ''}|${refusal.reason}`;
    const counted = this.#pending.get(key) ?? this.#newPending(key, meterId, refusal.reason, now);
    counted.count++;
    counted.lastAt = now;

    if (now - this.#minuteStart >= MINUTE) {
      this.#minuteStart = now;
      this.#rowsThisMinute = 0;
      this.#sampled.clear();
    }
    const rows = this.#sampled.get(key) ?? 0;
    if (
      rows >= this.#sampleRows ||
      this.#rowsThisMinute >= this.#maxRows ||
      this.#sampled.size >= MAX_PENDING_KEYS
    ) {
      this.#suppressed.set(refusal.reason, (this.#suppressed.get(refusal.reason) ?? 0) + 1);
      return;
    }
    this.#sampled.set(key, rows + 1);
    this.#rowsThisMinute++;
    const fields = {
      reason: refusal.reason,
      detail: refusal.detail,
      topic: refusal.topic,
      meterId: refusal.meterId,
      frameSeq: refusal.frameSeq,
    };
    if (refusal.reason === 'internal-error')
      this.#o.logger.error({ ...fields, err: error }, 'uplink refused');
    else this.#o.logger.warn(fields, 'uplink refused');
    try {
      await this.#o.db.query(
        'INSERT INTO refused_frames (topic, meter_id, frame_seq, reason, detail) VALUES ($1, $2, $3, $4, $5)',
        [
          refusal.topic.slice(0, 200),
          meterId,
          refusal.frameSeq ?? null,
          refusal.reason,
          refusal.detail.slice(0, 500),
        ],
      );
    } catch (dbError) {
      this.#o.logger.error({ err: dbError }, 'could not record the refused frame');
    }
  }

  #newPending(key: string, meterId: number | null, reason: string, now: number): Pending {
    // Past the cap the counts go on, without the meter id, so memory stays bounded.
    const [k, id] = this.#pending.size < MAX_PENDING_KEYS ? [key, meterId] : [`|${reason}`, null];
    const held = this.#pending.get(k);
    if (held) return held;
    const entry: Pending = { meterId: id, reason, count: 0, firstAt: now, lastAt: now };
    this.#pending.set(k, entry);
    return entry;
  }

  /**
   * Adds the counts to refusal_counts in one statement. A meter id not provisioned is counted under
   * NULL: made-up ids cannot grow the table.
   */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#flush());
    return this.#flushing;
  }

  async #flush(): Promise<void> {
    const pending = [...this.#pending.values()];
    this.#pending = new Map();
    const suppressed = this.#suppressed;
    this.#suppressed = new Map();
    if (suppressed.size > 0) {
      this.#o.logger.warn(
        { byReason: Object.fromEntries(suppressed) },
        'uplink refusals counted in refusal_counts, not logged one by one',
      );
    }
    if (pending.length === 0) return;
    try {
      await this.#o.db.query(
        `INSERT INTO refusal_counts AS c (meter_id, reason, refused, first_at, last_at)
         SELECT m.id, f.reason, sum(f.n), to_timestamp(min(f.first) / 1000.0), to_timestamp(max(f.last) / 1000.0)
           FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::float8[], $5::float8[]) AS f(meter_id, reason, n, first, last)
           LEFT JOIN meters m ON m.id = f.meter_id
          GROUP BY m.id, f.reason
         ON CONFLICT (meter_id, reason) DO UPDATE
           SET refused = c.refused + excluded.refused, last_at = greatest(c.last_at, excluded.last_at)`,
        [
          arrayLiteral(pending.map((p) => p.meterId)),
          arrayLiteral(pending.map((p) => p.reason)),
          arrayLiteral(pending.map((p) => p.count)),
          arrayLiteral(pending.map((p) => p.firstAt)),
          arrayLiteral(pending.map((p) => p.lastAt)),
        ],
      );
    } catch (error) {
      this.#o.logger.error({ err: error, refusals: pending.length }, 'could not write the refusal counts');
    }
  }

  /** Deletes refused_frames rows past the retention period; returns how many. */
  async prune(): Promise<number> {
    const result = await this.#o.db.query<{ n: number }>(
      `WITH gone AS (DELETE FROM refused_frames WHERE received_at < now() - make_interval(days => $1) RETURNING 1)
       SELECT count(*)::int AS n FROM gone`,
      [this.#o.retentionDays ?? 14],
    );
    return Number(result.rows[0]?.n ?? 0);
  }
}
