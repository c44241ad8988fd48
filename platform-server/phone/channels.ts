// Messages to drivers (alerts, receipts, confirmations, replies) go through the outbox table: a row
// per message, delivered by the adapter of its channel, retried with backoff, its state kept
// (queued, delivered, failed). The embedded default adapter is the local outbox itself — a
// delivered row is what the driver web app shows under Messages. WebhookAdapter hands SMS and voice
// to a real gateway over HTTP.
import { postWebhook, type WebhookOptions } from '../core/webhook';
import type { Queryable } from '../core/db';

export type Channel = 'sms' | 'voice' | 'app' | 'email';
export const CHANNELS: readonly Channel[] = ['sms', 'voice', 'app', 'email'];

export interface OutgoingMessage {
  id: number;
  channel: Channel;
  recipient: string;
  kind: string;
  body: string;
  /** A sale's receipt code when the message is its receipt (an e-mail attaches the PDF). */
  receiptCode?: string | null;
}

export interface ChannelAdapter {
  readonly name: string;
  /** Resolves when the message is handed over; throws (with the reason) to be retried. */
  deliver(message: OutgoingMessage): Promise<void>;
}

/** The embedded default: the outbox row is the delivered message (shown in the web app). */
export class LocalOutboxAdapter implements ChannelAdapter {
  readonly name = 'local';
  async deliver(): Promise<void> {}
}

export type { WebhookOptions } from '../core/webhook';

/** POSTs `{ id, channel, to, kind, text }` as JSON; any 2xx is delivered, anything else is retried. */
export class WebhookAdapter implements ChannelAdapter {
  readonly name = 'webhook';
  constructor(readonly options: WebhookOptions) {}

  deliver(message: OutgoingMessage): Promise<void> {
    return postWebhook(
      this.options,
      {
        id: message.id,
        channel: message.channel,
        to: message.recipient,
        kind: message.kind,
        text: message.body,
      },
      'gateway',
    );
  }
}

export interface NewMessage {
  driverId: number | null;
  channel: Channel;
  recipient: string;
  kind: string;
  body: string;
  renewalId?: string;
  receiptCode?: string;
}

export interface OutboxOptions {
  db: Queryable;
  now: () => number;
  adapters?: Partial<Record<Channel, ChannelAdapter>>;
  maxAttempts?: number;
  /** First retry delay; doubles each attempt. */
  retryMs?: number;
  onError?: (error: unknown, message: OutgoingMessage) => void;
}

export class Outbox {
  readonly #o: Required<Omit<OutboxOptions, 'onError'>> & Pick<OutboxOptions, 'onError'>;
  readonly #local = new LocalOutboxAdapter();
  #running: Promise<number> | undefined;
  #again = false;

  constructor(options: OutboxOptions) {
    this.#o = { maxAttempts: 5, retryMs: 5_000, ...options, adapters: options.adapters ?? {} };
  }

  adapterOf(channel: Channel): ChannelAdapter {
    return this.#o.adapters[channel] ?? this.#local;
  }

  async enqueue(q: Queryable, m: NewMessage): Promise<number> {
    const now = new Date(this.#o.now());
    const row = await q.query<{ id: number }>(
      `INSERT INTO outbox (driver_id, channel, recipient, kind, body, renewal_id, next_attempt_at, created_at, adapter,
                           receipt_code)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9) RETURNING id`,
      [
        m.driverId,
        m.channel,
        m.recipient,
        m.kind,
        m.body,
        m.renewalId ?? null,
        now,
        this.adapterOf(m.channel).name,
        m.receiptCode ?? null,
      ],
    );
    return row.rows[0].id;
  }

  /** Delivers every due message; runs once at a time (a call during a run makes it run again). */
  deliverDue(): Promise<number> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    const run = async () => {
      let total = 0;
      do {
        this.#again = false;
        total += await this.#deliverBatch();
      } while (this.#again);
      return total;
    };
    this.#running = run().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #deliverBatch(): Promise<number> {
    const { db, now, maxAttempts, retryMs } = this.#o;
    const at = now();
    // Claim due rows with a lease, so two platform instances never send the same message at once.
    const claimed = await db.query<OutgoingMessage & { attempts: number }>(
      `UPDATE outbox SET next_attempt_at = $2
        WHERE id IN (SELECT id FROM outbox WHERE status = 'queued' AND next_attempt_at <= $1
                      ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED)
        RETURNING id, channel, recipient, kind, body, receipt_code AS "receiptCode", attempts`,
      [new Date(at), new Date(at + 60_000)],
    );
    for (const m of claimed.rows) {
      const adapter = this.adapterOf(m.channel);
      try {
        await adapter.deliver(m);
        await db.query(
          `UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = $2, adapter = $3,
                  last_error = NULL WHERE id = $1`,
          [m.id, new Date(now()), adapter.name],
        );
      } catch (error) {
        this.#o.onError?.(error, m);
        const attempts = m.attempts + 1;
        const failed = attempts >= maxAttempts;
        await db.query(
          `UPDATE outbox SET attempts = $2, status = $3, next_attempt_at = $4, last_error = $5, adapter = $6
            WHERE id = $1`,
          [
            m.id,
            attempts,
            failed ? 'failed' : 'queued',
            new Date(now() + retryMs * 2 ** (attempts - 1)),
            String((error as Error)?.message ?? error).slice(0, 300),
            adapter.name,
          ],
        );
      }
    }
    return claimed.rows.length;
  }
}
