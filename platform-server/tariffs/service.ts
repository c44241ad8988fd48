// Tariffs on the platform: stored versioned after validation by the same engine the
// meters run (protocol/tariff), pushed to a meter as a 0x85 downlink, acknowledged by the meter's
// 0x05 uplink with the version applied; and quotes priced by that engine, so a renewal at the
// platform costs what it would at the meter. `tariffOf(meterId)` gives the tariff the meter holds
// (the last acknowledged push) to the phone service's TariffPricing.
//
// Its HTTP API is routes.ts; index.ts wires the room (the 0x05 route, the routes).
import type { Crypto } from '../../hal/crypto';
import {
  decodeTariffAck,
  encodeTariffPush,
  type PriorPurchase,
  type Quote,
  TARIFF_DOWNLINK,
  Tariff,
  type TariffAck,
  type TariffDocument,
  TariffError,
  validateTariff,
} from '../../protocol/tariff';
import type { Database } from '../core/db';
import { type MeterTarget, resolveTarget } from '../fleet/targets';
import type { Keystore } from '../keys/keystore';
import type { UplinkHandler } from '../ingest/gate';
import type { MeterDirectory } from '../ingest/meters';

export interface TariffDeps {
  db: Database;
  meters: Pick<MeterDirectory, 'exists' | 'epochs'>;
  keystore: Keystore;
  /** Seals and publishes a downlink (Ingest.sendDownlink); returns its sequence number. */
  sendDownlink(meterId: number, type: number, body: Uint8Array): Promise<number>;
  crypto?: Crypto;
  /** A push no acknowledgement answers within this is 'timed-out' (default 7200 s: two hourly contacts). */
  pushTimeoutSeconds?: number;
  /** The platform's clock in ms (tests move it); Date.now by default. */
  now?: () => number;
}

/** The longest tariff id: it is stored, pushed to meters and shown on their pages. */
export const TARIFF_ID_MAX = 64;

export type TariffPushState = 'pending' | 'applied' | 'refused' | 'timed-out';

export interface TariffPushView {
  meterId: number;
  tariffId: string;
  pushedVersion: number;
  state: TariffPushState;
  pushedAt: string;
  /** When a push still pending stops waiting (then 'timed-out'). */
  timesOutAt: string;
  /** The tariff the meter said it holds in its last acknowledgement, and that tariff's version. */
  appliedTariff: string | null;
  appliedVersion: number | null;
  acknowledgedAt: string | null;
  refused: { version: number | null; why: string | null } | null;
}

/** JSON with every object's keys sorted: two documents equal as data give the same text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export class TariffRefused extends Error {
  override readonly name: string = 'TariffRefused';
  constructor(
    readonly statusCode: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

interface PushRow {
  meter_id: number;
  tariff_id: string;
  version: number;
  pushed_at: Date;
  acked_tariff_id: string | null;
  acked_version: number | null;
  acked_ok: boolean | null;
  acked_why: string | null;
  acked_at: Date | null;
  state: TariffPushState;
}

/** A stored tariff in the list: its latest version and how many meters were last pushed it. */
export interface TariffSummary {
  id: string;
  version: number;
  versions: number;
  currency: number;
  updatedAt: string;
  meters: number;
}

/** Each meter an assignment addressed: the downlink sent, or why none was. */
export type AssignedMeter = { meterId: number; downlinkSeq: number } | { meterId: number; error: string };

export interface QuoteRequest {
  bay: number;
  start: number;
  minutes?: number;
  amount?: number;
  paidMinutes?: number;
  /** The payer's earlier purchases in the tariff's zone (a cap per period, no return). */
  history?: PriorPurchase[];
}

export class TariffService {
  readonly #deps: TariffDeps;
  /** The tariff each meter acknowledged applying, compiled. */
  readonly #held = new Map<number, Tariff>();
  readonly #compiled = new Map<string, Tariff>();

  readonly #now: () => number;
  readonly #timeoutMs: number;

  constructor(deps: TariffDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#timeoutMs = (deps.pushTimeoutSeconds ?? 7200) * 1000;
  }

  /** Loads what each meter acknowledged (at start). */
  async load(): Promise<void> {
    const rows = await this.#deps.db.query<{ meter_id: number; document: TariffDocument }>(
      `SELECT m.meter_id, t.document FROM meter_tariffs m
         JOIN tariffs t ON t.id = m.acked_tariff_id AND t.version = m.acked_version
        WHERE m.acked_ok`,
    );
    for (const row of rows.rows) this.#held.set(row.meter_id, this.#compile(row.document));
  }

  #compile(doc: TariffDocument): Tariff {
    const key = `${doc.id}@${doc.version}`;
    let t = this.#compiled.get(key);
    if (!t) {
      t = Tariff.from(doc);
      this.#compiled.set(key, t);
    }
    return t;
  }

  /** Validates and stores a tariff version; a version already stored must be identical. */
  async save(value: unknown): Promise<{ id: string; version: number }> {
    let doc: TariffDocument;
    try {
      doc = validateTariff(value);
    } catch (error) {
      if (error instanceof TariffError) throw new TariffRefused(400, error.message, error.field);
      throw error;
    }
    if (doc.id.length > TARIFF_ID_MAX)
      throw new TariffRefused(400, `id: at most ${TARIFF_ID_MAX} characters (${doc.id.length} given)`, 'id');
    const existing = await this.#deps.db.query<{ document: TariffDocument }>(
      'SELECT document FROM tariffs WHERE id = $1 AND version = $2',
      [doc.id, doc.version],
    );
    if (existing.rows.length > 0) {
      // As data, not as text: the database keeps the document as jsonb, with its keys reordered.
      if (canonicalJson(existing.rows[0].document) !== canonicalJson(doc))
        throw new TariffRefused(
          409,
          `tariff ${doc.id} version ${doc.version} exists with other content`,
          'version',
        );
      return { id: doc.id, version: doc.version };
    }
    await this.#deps.db.query('INSERT INTO tariffs (id, version, document) VALUES ($1, $2, $3)', [
      doc.id,
      doc.version,
      JSON.stringify(doc),
    ]);
    return { id: doc.id, version: doc.version };
  }

  /** Every stored tariff id with its latest version, newest change first. */
  async list(): Promise<TariffSummary[]> {
    const rows = await this.#deps.db.query<{
      id: string;
      version: string | number;
      versions: number;
      document: TariffDocument;
      updated_at: Date;
      meters: number;
    }>(
      `SELECT t.id, t.version, t.document, v.versions, v.updated_at,
              (SELECT count(*)::int FROM meter_tariffs m WHERE m.tariff_id = t.id) AS meters
         FROM tariffs t
         JOIN (SELECT id, max(version) AS version, count(*)::int AS versions, max(created_at) AS updated_at
                 FROM tariffs GROUP BY id) v ON v.id = t.id AND v.version = t.version
        ORDER BY v.updated_at DESC, t.id`,
    );
    return rows.rows.map((r) => ({
      id: r.id,
      version: Number(r.version),
      versions: r.versions,
      currency: r.document.currency,
      updatedAt: r.updated_at.toISOString(),
      meters: r.meters,
    }));
  }

  /**
   * Prices a tariff document that is not stored (an editor's draft) with the engine the meters
   * run: a document the validator refuses is a 400 naming its field, as when it is stored.
   */
  quoteDraft(value: unknown, request: QuoteRequest): Quote {
    let tariff: Tariff;
    try {
      tariff = Tariff.from(validateTariff(value));
    } catch (error) {
      if (error instanceof TariffError) throw new TariffRefused(400, error.message, error.field);
      throw error;
    }
    return this.#quoteWith(tariff, request);
  }

  #quoteWith(tariff: Tariff, request: QuoteRequest): Quote {
    const { bay, start, paidMinutes } = request;
    const history = request.history ?? [];
    return request.minutes !== undefined
      ? tariff.quoteDuration({ bay, start, minutes: request.minutes, paidMinutes, history })
      : tariff.quoteAmount({ bay, start, amount: request.amount ?? 0, paidMinutes, history });
  }

  /**
   * Pushes a stored version to every meter of a target (listed meters, an area, the fleet); a
   * meter whose downlink cannot be sent is reported with its reason, the others still go.
   */
  async assign(
    tariffId: string,
    target: MeterTarget,
    version?: number,
  ): Promise<{ version: number; meters: AssignedMeter[] }> {
    const doc = await this.get(tariffId, version);
    if (!doc)
      throw new TariffRefused(
        404,
        `no tariff ${tariffId}${version === undefined ? '' : ` version ${version}`}`,
      );
    const meterIds = await resolveTarget(this.#deps.db, target);
    const meters: AssignedMeter[] = [];
    for (const meterId of meterIds) {
      try {
        meters.push({ meterId, downlinkSeq: (await this.push(meterId, doc.id, doc.version)).downlinkSeq });
      } catch (error) {
        meters.push({ meterId, error: error instanceof Error ? error.message : String(error) });
      }
    }
    return { version: doc.version, meters };
  }

  async get(id: string, version?: number): Promise<TariffDocument | undefined> {
    const rows = await this.#deps.db.query<{ document: TariffDocument }>(
      `SELECT document FROM tariffs WHERE id = $1 AND ($2::bigint IS NULL OR version = $2::bigint)
        ORDER BY version DESC LIMIT 1`,
      [id, version ?? null],
    );
    return rows.rows[0]?.document;
  }

  /** Sends a stored tariff version to a meter (0x85); the meter acknowledges with 0x05. */
  async push(
    meterId: number,
    tariffId: string,
    version?: number,
  ): Promise<{ version: number; downlinkSeq: number }> {
    const doc = await this.get(tariffId, version);
    if (!doc)
      throw new TariffRefused(
        404,
        `no tariff ${tariffId}${version === undefined ? '' : ` version ${version}`}`,
      );
    if (!(await this.#deps.meters.exists(meterId)))
      throw new TariffRefused(404, `meter ${meterId} is unknown`);
    const body = encodeTariffPush({ kind: 'tariff', version: doc.version, tariff: doc });
    const db = this.#deps.db;
    // The push as it stood, put back if this one cannot be sent: nothing went out.
    const before = await db.query<{
      tariff_id: string;
      version: number;
      pushed_at: Date;
      downlink_seq: number | null;
    }>('SELECT tariff_id, version, pushed_at, downlink_seq FROM meter_tariffs WHERE meter_id = $1', [
      meterId,
    ]);
    // Recorded before it is sent: a meter acknowledging at once must find the push to answer.
    await db.query(
      `INSERT INTO meter_tariffs (meter_id, tariff_id, version, pushed_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (meter_id) DO UPDATE SET tariff_id = $2, version = $3, downlink_seq = NULL, pushed_at = $4`,
      [meterId, doc.id, doc.version, new Date(this.#now())],
    );
    // This push's row, unless another push to the meter has been recorded since.
    const ours = 'meter_id = $1 AND tariff_id = $2 AND version = $3';
    let downlinkSeq: number;
    try {
      downlinkSeq = await this.#deps.sendDownlink(meterId, TARIFF_DOWNLINK, body);
    } catch (error) {
      const prior = before.rows[0];
      if (prior)
        await db.query(
          `UPDATE meter_tariffs SET tariff_id = $4, version = $5, pushed_at = $6, downlink_seq = $7 WHERE ${ours}`,
          [meterId, doc.id, doc.version, prior.tariff_id, prior.version, prior.pushed_at, prior.downlink_seq],
        );
      else await db.query(`DELETE FROM meter_tariffs WHERE ${ours}`, [meterId, doc.id, doc.version]);
      throw error;
    }
    await db.query(`UPDATE meter_tariffs SET downlink_seq = $4 WHERE ${ours}`, [
      meterId,
      doc.id,
      doc.version,
      downlinkSeq,
    ]);
    return { version: doc.version, downlinkSeq };
  }

  /**
   * Ingest's handler for 0x05 (route): a frame the gate verified (authenticated, not a replay),
   * recorded in the transaction that accepts it; the tariff the meter holds is updated after the commit.
   */
  onAck: UplinkHandler = async ({ meterId, body }, tx) => {
    const ack: TariffAck = decodeTariffAck(body);
    if (ack.kind !== 'tariff') return;
    // A meter from before acknowledgements named the tariff answers the tariff pushed to it.
    const acked = await tx.query<{ acked_tariff_id: string }>(
      `UPDATE meter_tariffs SET acked_tariff_id = coalesce($5, tariff_id), acked_version = $2, acked_ok = $3,
              acked_why = $4, acked_at = now()
        WHERE meter_id = $1 RETURNING acked_tariff_id`,
      [meterId, ack.version, ack.ok, ack.why ?? null, ack.tariff ?? null],
    );
    if (!ack.ok || acked.rows.length === 0) return;
    const held = await tx.query<{ document: TariffDocument }>(
      'SELECT document FROM tariffs WHERE id = $1 AND version = $2',
      [acked.rows[0].acked_tariff_id, ack.version],
    );
    const document = held.rows[0]?.document;
    if (!document) return;
    const tariff = this.#compile(document);
    return async () => {
      this.#held.set(meterId, tariff);
    };
  };

  /**
   * The state of each push, from the acknowledgement that answers the version pushed: applied,
   * refused, or none yet: pending until pushTimeoutSeconds after the push, then timed out (a late
   * acknowledgement still moves it on).
   */
  #pushState = `CASE WHEN m.acked_tariff_id = m.tariff_id AND m.acked_version = m.version AND m.acked_ok THEN 'applied'
                     WHEN m.acked_tariff_id = m.tariff_id AND m.acked_version = m.version AND NOT m.acked_ok THEN 'refused'
                     WHEN m.pushed_at <= $1 THEN 'timed-out' ELSE 'pending' END`;

  #pushView = (r: PushRow): TariffPushView => ({
    meterId: r.meter_id,
    tariffId: r.tariff_id,
    pushedVersion: r.version,
    state: r.state,
    pushedAt: r.pushed_at.toISOString(),
    timesOutAt: new Date(r.pushed_at.getTime() + this.#timeoutMs).toISOString(),
    appliedTariff: r.acked_ok ? r.acked_tariff_id : null,
    appliedVersion: r.acked_ok ? r.acked_version : null,
    acknowledgedAt: r.acked_at?.toISOString() ?? null,
    refused: r.acked_ok === false ? { version: r.acked_version, why: r.acked_why } : null,
  });

  async status(meterId: number): Promise<TariffPushView | undefined> {
    const rows = await this.#deps.db.query<PushRow>(
      `SELECT m.*, ${this.#pushState} AS state FROM meter_tariffs m WHERE m.meter_id = $2`,
      [new Date(this.#now() - this.#timeoutMs), meterId],
    );
    const r = rows.rows[0];
    return r ? this.#pushView(r) : undefined;
  }

  /** Pushes by state (e.g. every 'timed-out' one), most recent push first. */
  async pushes(query: {
    state?: TariffPushState;
    tariffId?: string;
    limit?: number;
  }): Promise<TariffPushView[]> {
    const rows = await this.#deps.db.query<PushRow>(
      `SELECT * FROM (SELECT m.*, ${this.#pushState} AS state FROM meter_tariffs m) m
        WHERE ($2::text IS NULL OR m.state = $2) AND ($3::text IS NULL OR m.tariff_id = $3)
        ORDER BY m.pushed_at DESC, m.meter_id LIMIT $4`,
      [
        new Date(this.#now() - this.#timeoutMs),
        query.state ?? null,
        query.tariffId ?? null,
        query.limit ?? 100,
      ],
    );
    return rows.rows.map(this.#pushView);
  }

  /** The tariff a meter holds (its last acknowledged push), for pricing renewals. */
  tariffOf(meterId: number): Tariff | undefined {
    return this.#held.get(meterId);
  }

  /**
   * The meter's tariff zone: the meters holding the same tariff (by id) as this one, itself
   * included; a payer's earlier purchases there count for the tariff's cap and no-return rules.
   */
  zoneOf(meterId: number): number[] {
    const id = this.#held.get(meterId)?.id;
    if (id === undefined) return [meterId];
    const zone: number[] = [];
    for (const [meter, tariff] of this.#held) if (tariff.id === id) zone.push(meter);
    return zone.sort((a, b) => a - b);
  }

  async quote(request: QuoteRequest & { meterId?: number; tariffId?: string }): Promise<Quote> {
    let tariff: Tariff | undefined;
    if (request.tariffId !== undefined) {
      const doc = await this.get(request.tariffId);
      tariff = doc && this.#compile(doc);
    } else if (request.meterId !== undefined) tariff = this.tariffOf(request.meterId);
    if (!tariff) throw new TariffRefused(404, 'no such tariff (or the meter has acknowledged none)');
    return this.#quoteWith(tariff, request);
  }
}
