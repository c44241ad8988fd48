// The APDS room's state: consumers' API keys (SHA-256 kept, the key shown once), the quotes,
// sessions and rights third-party apps write (idempotent on their own id and version), webhook
// subscriptions and their signed, retried deliveries, and the city snapshot.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { RequestRefused } from '../core/errors';
import type { Database, Queryable } from '../core/db';
import type { Quote } from '../../protocol/tariff/types';
import { observations } from './observations';
import {
  currencyCode,
  iso,
  meterSessions,
  occupancyChanges,
  places,
  rates,
  rightSpecifications,
} from './resources';

export const APDS_SCOPES = ['read', 'write', 'webhooks', 'export'] as const;
export type ApdsScope = (typeof APDS_SCOPES)[number];

/** The APDS event topics ParkLink raises (EventTypeEnum); a session's end is a SessionUpdated with actualEnd. */
export const APDS_TOPICS = [
  'AssignedRightCreated',
  'AssignedRightUpdated',
  'SessionCreated',
  'SessionUpdated',
] as const;
export type ApdsTopic = (typeof APDS_TOPICS)[number];

export interface ApiKeyIdentity {
  id: number;
  consumer: string;
  scopes: ApdsScope[];
}

export interface ApdsDeps {
  db: Database;
  /** Prices a quote with the meter's tariff (TariffService.quote). */
  quote(request: { meterId: number; bay: number; start: number; minutes: number }): Promise<Quote>;
  /** Delivery retries: the delay before attempt n + 1 (ms), and how many attempts in all. */
  retryDelayMs?: (attempt: number) => number;
  maxAttempts?: number;
  fetch?: typeof fetch;
  now?: () => Date;
  /** The IANA time zone of the city's places (APDS Place.timeZone), e.g. 'Europe/London'. */
  timeZone?: string;
  logger?: { warn(obj: unknown, msg: string): void };
}

type Json = Record<string, unknown>;
const hash = (key: string) => createHash('sha256').update(key).digest('hex');

export class ApdsService {
  readonly #db: Database;
  readonly #deps: ApdsDeps;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #delivering: Promise<void> | undefined;
  #closed = false;

  constructor(deps: ApdsDeps) {
    this.#db = deps.db;
    this.#deps = deps;
  }

  #now(): Date {
    return this.#deps.now?.() ?? new Date();
  }

  // ---- API keys ----

  async createKey(
    consumer: string,
    scopes: ApdsScope[],
    by: string,
  ): Promise<ApiKeyIdentity & { key: string }> {
    const key = `plapds_${randomBytes(24).toString('base64url')}`;
    const unique = [...new Set(scopes)];
    const { rows } = await this.#db.query<{ id: number }>(
      'INSERT INTO apds_keys (consumer, scopes, key_hash, created_by) VALUES ($1, $2::text[], $3, $4) RETURNING id',
      [consumer, unique, hash(key), by],
    );
    return { id: rows[0].id, consumer, scopes: unique, key };
  }

  async revokeKey(id: number): Promise<ApiKeyIdentity> {
    const { rows } = await this.#db.query<{ id: number; consumer: string; scopes: ApdsScope[] }>(
      'UPDATE apds_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING id, consumer, scopes',
      [id, this.#now()],
    );
    if (!rows[0]) throw new RequestRefused(404, 'unknown-key', `no live API key ${id}`);
    return rows[0];
  }

  async listKeys(): Promise<Json[]> {
    const { rows } = await this.#db.query<Json>(
      'SELECT id, consumer, scopes, created_by, created_at, revoked_at FROM apds_keys ORDER BY id',
    );
    return rows.map((r) => ({
      id: r.id,
      consumer: r.consumer,
      scopes: r.scopes,
      createdBy: r.created_by,
      createdAt: iso(r.created_at as Date),
      revokedAt: r.revoked_at ? iso(r.revoked_at as Date) : null,
    }));
  }

  /** The key's consumer and scopes, or undefined for an unknown or revoked key. */
  async authenticate(key: string): Promise<ApiKeyIdentity | undefined> {
    const { rows } = await this.#db.query<ApiKeyIdentity>(
      'SELECT id, consumer, scopes FROM apds_keys WHERE key_hash = $1 AND revoked_at IS NULL',
      [hash(key)],
    );
    return rows[0];
  }

  // ---- reads ----

  places = () => places(this.#db, this.#deps.timeZone ?? 'UTC');
  rates = () => rates(this.#db);
  rightSpecifications = () => rightSpecifications(this.#db);
  observations = () => observations(this.#db);

  async sessions(): Promise<Json[]> {
    const own = await meterSessions(this.#db);
    return [...own.sessions, ...(await this.#records('session'))];
  }

  async rights(): Promise<Json[]> {
    const own = await meterSessions(this.#db);
    return [...own.rights, ...(await this.#records('right'))];
  }

  quotes = () => this.#records('quote');

  async #records(kind: 'quote' | 'session' | 'right'): Promise<Json[]> {
    const { rows } = await this.#db.query<{ body: Json }>(
      'SELECT body FROM apds_records WHERE kind = $1 ORDER BY created_at, id',
      [kind],
    );
    return rows.map((r) => r.body);
  }

  // ---- writes ----

  /**
   * Prices a QuoteRightRequest with the tariff the bay's meter holds: the bay from
   * referencedRightSpecifications[0].elementId (bay:<meter>:<bay>), the stay from periodStart to
   * periodEnd (or periodStart plus timePeriods[0]). Stored under the request's id: asking again
   * with the same id and version returns the same quote.
   */
  async quote(request: Json, key: ApiKeyIdentity): Promise<Json> {
    const id = request.id as string;
    const version = request.version as number;
    const stored = await this.#stored('quote', id);
    if (stored) {
      if (stored.key_id !== key.id)
        throw new RequestRefused(409, 'not-yours', `quote ${id} was asked for by another consumer`);
      if ((stored.body.quoteRequestId as Json).version === version) return stored.body;
      throw new RequestRefused(409, 'quote-exists', `quote ${id} was already answered for another version`);
    }
    const refs = (request.referencedRightSpecifications as Json[] | undefined) ?? [];
    const element = (refs[0]?.elementId as Json | undefined)?.id;
    const bay = parseBay(element, 'referencedRightSpecifications.0.elementId');
    const start = Date.parse(request.periodStart as string);
    const end =
      request.periodEnd !== undefined
        ? Date.parse(request.periodEnd as string)
        : start + durationMs((request.timePeriods as string[] | undefined)?.[0]);
    const minutes = Math.round((end - start) / 60_000);
    if (!Number.isFinite(minutes) || minutes < 1)
      throw new RequestRefused(
        400,
        'bad-period',
        'the period must end at least a minute after it starts',
        'periodEnd',
      );
    const priced = await this.#deps.quote({
      meterId: bay.meter,
      bay: bay.bay,
      start: Math.floor(start / 1000),
      minutes,
    });
    if (!priced.ok) throw new RequestRefused(422, `quote-${priced.reason}`, priced.message);
    const now = this.#now();
    const body: Json = {
      id,
      version: 1,
      start: iso(priced.paidFrom),
      end: iso(priced.paidUntil),
      requestTime: (request.requestTime as string | undefined) ?? iso(now),
      responseTime: iso(now),
      quoteRequestId: { id, version },
      options: [
        {
          id: `${id}:1`,
          version: 1,
          elementId: { id: element, version: 1 },
          exact: priced.minutes === minutes,
          quoteExpiration: {
            firstComeFirstServed: true,
            expiresDateTime: iso(new Date(now.getTime() + 15 * 60_000)),
          },
          financialQuote: {
            taxIncluded: priced.tax ? priced.tax.included : true,
            value: { currencyType: currencyCode(priced.currency), currencyValue: priced.amount / 100 },
            transactionId: `${priced.tariff.id}:${priced.tariff.version}`,
          },
        },
      ],
    };
    await this.#db.query(
      `INSERT INTO apds_records (kind, id, key_id, version, body, created_at, updated_at) VALUES ('quote', $1, $2, 1, $3, $4, $4)
       ON CONFLICT (kind, id) DO NOTHING`,
      [id, key.id, JSON.stringify(body), now],
    );
    return (await this.#stored('quote', id))?.body ?? body;
  }

  /**
   * Stores a Session or AssignedRight a third-party app sends. The same id and version again is a
   * repeat (nothing changes, no event); a higher version replaces it (Updated; a session given
   * actualEnd has ended); a lower or equal version with other content is a conflict.
   */
  async write(
    kind: 'session' | 'right',
    body: Json,
    key: ApiKeyIdentity,
  ): Promise<{ created: boolean; changed: boolean }> {
    const id = body.id as string;
    const version = body.version as number;
    if (kind === 'session') {
      const end = body.actualEnd as string | undefined;
      if (end !== undefined && Date.parse(end) < Date.parse(body.actualStart as string))
        throw new RequestRefused(400, 'bad-period', 'actualEnd is before actualStart', 'actualEnd');
    }
    const result = await this.#db.transaction(async (tx) => {
      const { rows } = await tx.query<{ version: number; body: Json; key_id: number }>(
        'SELECT version, body, key_id FROM apds_records WHERE kind = $1 AND id = $2 FOR UPDATE',
        [kind, id],
      );
      const now = this.#now();
      const ended = kind === 'session' && body.actualEnd !== undefined ? now : null;
      const old = rows[0];
      if (!old) {
        await tx.query(
          `INSERT INTO apds_records (kind, id, key_id, version, body, created_at, updated_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)`,
          [kind, id, key.id, version, JSON.stringify(body), now, ended],
        );
        return { created: true, changed: true };
      }
      if (old.key_id !== key.id)
        throw new RequestRefused(409, 'not-yours', `${kind} ${id} was written by another consumer`);
      if (old.version === version && canonical(old.body) === canonical(body))
        return { created: false, changed: false };
      if (version <= old.version)
        throw new RequestRefused(
          409,
          'stale-version',
          `${kind} ${id} is at version ${old.version}; send a higher version`,
          'version',
        );
      await tx.query(
        'UPDATE apds_records SET version = $3, body = $4, updated_at = $5, ended_at = COALESCE(ended_at, $6) WHERE kind = $1 AND id = $2',
        [kind, id, version, JSON.stringify(body), now, ended],
      );
      return { created: false, changed: true };
    });
    if (result.changed) {
      const noun = kind === 'session' ? 'Session' : 'AssignedRight';
      await this.emit(`${noun}${result.created ? 'Created' : 'Updated'}` as ApdsTopic, body);
    }
    return result;
  }

  async #stored(kind: string, id: string): Promise<{ body: Json; key_id: number } | undefined> {
    const { rows } = await this.#db.query<{ body: Json; key_id: number }>(
      'SELECT body, key_id FROM apds_records WHERE kind = $1 AND id = $2',
      [kind, id],
    );
    return rows[0];
  }

  /**
   * Payment records stored from meters (one committed ingest batch): their Sessions and
   * AssignedRights, as created events. Built only when a webhook subscribes to them: ingest commits
   * thousands of records a second, and with no subscriber there is nothing to send.
   */
  async onMeterPayments(payments: readonly { meterId: number; seq: number }[]): Promise<void> {
    if (payments.length === 0) return;
    const { rows } = await this.#db.query<{ topic: string }>(
      `SELECT DISTINCT unnest(topics) AS topic FROM apds_webhooks
        WHERE deleted_at IS NULL AND topics && ARRAY['AssignedRightCreated', 'SessionCreated']`,
    );
    const wanted = new Set(rows.map((r) => r.topic));
    if (wanted.size === 0) return;
    const { sessions, rights } = await meterSessions(this.#db, {
      meterIds: payments.map((p) => p.meterId),
      seqs: payments.map((p) => p.seq),
    });
    if (wanted.has('AssignedRightCreated'))
      for (const right of rights) await this.emit('AssignedRightCreated', right);
    if (wanted.has('SessionCreated'))
      for (const session of sessions) await this.emit('SessionCreated', session);
  }

  // ---- webhooks ----

  async subscribe(
    sub: { endpoint: string; topics: ApdsTopic[] },
    key: ApiKeyIdentity,
  ): Promise<{ id: string; secret: string }> {
    let url: URL;
    try {
      url = new URL(sub.endpoint);
    } catch {
      throw new RequestRefused(400, 'bad-endpoint', 'the endpoint is not a URL', 'endpoint');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new RequestRefused(400, 'bad-endpoint', 'the endpoint must be http(s)', 'endpoint');
    const secret = randomBytes(32).toString('hex');
    const { rows } = await this.#db.query<{ id: number }>(
      'INSERT INTO apds_webhooks (key_id, endpoint, topics, secret) VALUES ($1, $2, $3::text[], $4) RETURNING id',
      [key.id, url.toString(), [...new Set(sub.topics)], secret],
    );
    return { id: String(rows[0].id), secret };
  }

  async subscription(id: number, key: ApiKeyIdentity): Promise<Json> {
    const { rows } = await this.#db.query<{ endpoint: string; topics: string[] }>(
      'SELECT endpoint, topics FROM apds_webhooks WHERE id = $1 AND key_id = $2 AND deleted_at IS NULL',
      [id, key.id],
    );
    if (!rows[0]) throw new RequestRefused(404, 'unknown-webhook', `no webhook ${id}`);
    return { endpoint: rows[0].endpoint, topics: rows[0].topics };
  }

  async unsubscribe(id: number, key: ApiKeyIdentity): Promise<void> {
    const { rowCount } = await this.#db.query(
      'UPDATE apds_webhooks SET deleted_at = $3 WHERE id = $1 AND key_id = $2 AND deleted_at IS NULL',
      [id, key.id, this.#now()],
    );
    if (rowCount === 0) throw new RequestRefused(404, 'unknown-webhook', `no webhook ${id}`);
  }

  /** Queues an EventData for every subscription to `topic`, then delivers. */
  async emit(topic: ApdsTopic, item: Json): Promise<void> {
    const { rows } = await this.#db.query<{ id: number }>(
      'SELECT id FROM apds_webhooks WHERE deleted_at IS NULL AND $1 = ANY(topics)',
      [topic],
    );
    if (rows.length === 0) return;
    const now = this.#now();
    for (const w of rows) {
      const event = { eventSubscriptionId: String(w.id), eventTime: iso(now), topic, data: [item] };
      await this.#db.query(
        'INSERT INTO apds_deliveries (webhook_id, topic, payload, next_at) VALUES ($1, $2, $3, $4)',
        [w.id, topic, JSON.stringify(event), now],
      );
    }
    this.deliver();
  }

  /** Sends what is due; a failure is retried after retryDelayMs(attempt), up to maxAttempts. */
  deliver(): Promise<void> {
    this.#delivering ??= this.#deliverDue().finally(() => {
      this.#delivering = undefined;
    });
    return this.#delivering;
  }

  async #deliverDue(): Promise<void> {
    const max = this.#deps.maxAttempts ?? 8;
    const delay = this.#deps.retryDelayMs ?? ((n: number) => Math.min(3_600_000, 30_000 * 2 ** (n - 1)));
    const doFetch = this.#deps.fetch ?? fetch;
    for (;;) {
      if (this.#closed) return;
      const { rows } = await this.#db.query<{
        id: number;
        payload: Json;
        attempts: number;
        endpoint: string;
        secret: string;
        topic: string;
      }>(
        `SELECT d.id, d.payload, d.attempts, d.topic, w.endpoint, w.secret FROM apds_deliveries d JOIN apds_webhooks w ON w.id = d.webhook_id
          WHERE d.delivered_at IS NULL AND d.failed_at IS NULL AND d.next_at <= $1 AND w.deleted_at IS NULL ORDER BY d.id LIMIT 20`,
        [new Date()],
      );
      if (rows.length === 0) break;
      for (const d of rows) {
        const body = JSON.stringify(d.payload);
        const timestamp = Math.floor(Date.now() / 1000);
        const signature = createHmac('sha256', Buffer.from(d.secret, 'hex'))
          .update(`${timestamp}.${body}`)
          .digest('hex');
        const attempt = d.attempts + 1;
        let error: string | undefined;
        try {
          const response = await doFetch(d.endpoint, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              'x-parklink-event': d.topic,
              'x-parklink-delivery': String(d.id),
              'x-parklink-signature': `t=${timestamp},v1=${signature}`,
            },
            body,
            signal: AbortSignal.timeout(10_000),
          });
          if (!response.ok) error = `answered ${response.status}`;
        } catch (e) {
          error = e instanceof Error ? e.message : String(e);
        }
        if (error === undefined)
          await this.#db.query(
            'UPDATE apds_deliveries SET attempts = $2, delivered_at = $3, last_error = NULL WHERE id = $1',
            [d.id, attempt, new Date()],
          );
        else if (attempt >= max)
          await this.#db.query(
            'UPDATE apds_deliveries SET attempts = $2, failed_at = $3, last_error = $4 WHERE id = $1',
            [d.id, attempt, new Date(), error],
          );
        else
          await this.#db.query(
            'UPDATE apds_deliveries SET attempts = $2, next_at = $3, last_error = $4 WHERE id = $1',
            [d.id, attempt, new Date(Date.now() + delay(attempt)), error],
          );
        if (error !== undefined)
          this.#deps.logger?.warn({ delivery: d.id, error }, 'APDS webhook delivery failed');
      }
    }
    this.#schedule();
  }

  async #schedule(): Promise<void> {
    if (this.#closed) return;
    const { rows } = await this.#db.query<{ next_at: Date }>(
      'SELECT min(next_at) AS next_at FROM apds_deliveries WHERE delivered_at IS NULL AND failed_at IS NULL',
    );
    const next = rows[0]?.next_at;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!next) return;
    this.#timer = setTimeout(
      () => void this.deliver().catch(() => {}),
      Math.max(0, new Date(next).getTime() - Date.now()),
    );
    this.#timer.unref?.();
  }

  async deliveries(webhookId: number): Promise<Json[]> {
    const { rows } = await this.#db.query<Json>(
      'SELECT id, topic, attempts, delivered_at, failed_at, last_error FROM apds_deliveries WHERE webhook_id = $1 ORDER BY id',
      [webhookId],
    );
    return rows;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#delivering?.catch(() => {});
  }

  // ---- export ----

  /** The whole city at one instant: every resource list, dated. */
  async snapshot(): Promise<Json> {
    const taken = this.#now();
    const own = await meterSessions(this.#db);
    return {
      snapshotTime: iso(taken),
      format: 'APDS resource lists (parkingdata/spec) and ParkLink occupancyChanges, one document',
      places: await this.places(),
      rates: await this.rates(),
      rightSpecifications: await this.rightSpecifications(),
      sessions: [...own.sessions, ...(await this.#records('session'))],
      assignedRights: [...own.rights, ...(await this.#records('right'))],
      observations: await this.observations(),
      // Not an APDS resource: the bay sensors' arrivals and departures (docs/apds.md).
      occupancyChanges: await occupancyChanges(this.#db),
    };
  }
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

function parseBay(id: unknown, field: string): { meter: number; bay: number } {
  const match = typeof id === 'string' ? /^bay:(\d{1,10}):(\d{1,10})$/.exec(id) : null;
  if (!match) throw new RequestRefused(400, 'bad-place', 'name a bay place (bay:<meter>:<bay>)', field);
  return { meter: Number(match[1]), bay: Number(match[2]) };
}

function durationMs(duration: string | undefined): number {
  const match = duration ? /^PT(?:(\d+)H)?(?:(\d+)M)?$/.exec(duration) : null;
  if (!match || (match[1] === undefined && match[2] === undefined))
    throw new RequestRefused(400, 'bad-period', 'give periodEnd or timePeriods[0] as PTnHnM', 'timePeriods');
  return (Number(match[1] ?? 0) * 60 + Number(match[2] ?? 0)) * 60_000;
}

export type { Queryable };
