// Alarm forwarding: rules by severity and area to e-mail (SMTP through nodemailer), a webhook (the
// platform's JSON POST with a bearer secret, core/webhook.ts) or SMS (an SmsSender: the gateway
// webhook, or the named simulator in tests and the demo). Deliveries are written in the transaction
// that raises or reopens the alarm, then tried by a worker (right after the commit, and every
// `retrySeconds`) until sent; a failed attempt is counted with its error and tried again later with
// a growing delay; after `maxAttempts` the delivery is 'failed', shown in the list and the alarm's
// history, and an operator may try it again.
import type { Database, Queryable } from '../core/db';
import type { MailSender } from '../core/mail';
import { postWebhook } from '../core/webhook';
import type { Logger } from '../ingest/gate';
import type { SmsSender } from '../fleet/callIn';
import { type AlarmSeverity, SEVERITIES } from './classify';
import { AlarmRefused, type AlarmService, type AlarmView } from './service';

export type ForwardChannel = 'email' | 'webhook' | 'sms';

export { type MailSender, SmtpMailSender } from '../core/mail';

export interface ForwardingOptions {
  db: Database;
  alarms: AlarmService;
  logger: Logger;
  /** E-mail rules need one (PARKLINK_SMTP_URL, PARKLINK_ALARM_MAIL_FROM); without it they are refused. */
  mail?: MailSender;
  /** SMS rules need one (the platform's smsSender); without it they are refused. */
  sms?: SmsSender;
  now?: () => number;
  /** Attempts before a delivery is given up (default 6). */
  maxAttempts?: number;
  /** Delay after the first failed attempt, doubling each time up to an hour (default 30 s). */
  retrySeconds?: number;
  /** How often due deliveries are looked for (default 15 s); 0: only after alarm changes and deliverDue(). */
  pollSeconds?: number;
  /** A webhook's time to answer (default 10 s). */
  webhookTimeoutMs?: number;
}

export interface RuleInput {
  name: string;
  channel: ForwardChannel;
  destination: string;
  minSeverity: AlarmSeverity;
  area?: string | null;
  secret?: string;
}

export interface RuleView {
  id: number;
  name: string;
  channel: ForwardChannel;
  destination: string;
  hasSecret: boolean;
  minSeverity: AlarmSeverity;
  area: string | null;
  enabled: boolean;
  createdBy: string;
  createdAt: string;
}

export interface DeliveryView {
  id: number;
  ruleId: number;
  ruleName: string;
  channel: ForwardChannel;
  destination: string;
  alarmId: number;
  action: string;
  state: 'pending' | 'sent' | 'failed';
  attempts: number;
  nextAttemptAt: string | null;
  lastError: string | null;
  createdAt: string;
  sentAt: string | null;
}

const EMAIL = /^[^\s@<>(),;:"]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$/;
const PHONE = /^\+[1-9][0-9]{6,14}$/;

interface RuleRow {
  id: number;
  name: string;
  channel: ForwardChannel;
  destination: string;
  secret: string | null;
  min_severity: AlarmSeverity;
  area: string | null;
  enabled: boolean;
  created_by: string;
  created_at: Date;
}

const ruleView = (r: RuleRow): RuleView => ({
  id: r.id,
  name: r.name,
  channel: r.channel,
  destination: r.destination,
  hasSecret: r.secret !== null,
  minSeverity: r.min_severity,
  area: r.area,
  enabled: r.enabled,
  createdBy: r.created_by,
  createdAt: r.created_at.toISOString(),
});

interface DeliveryRow {
  id: number;
  rule_id: number;
  rule_name: string;
  channel: ForwardChannel;
  destination: string;
  secret: string | null;
  alarm_id: number;
  action: string;
  state: DeliveryView['state'];
  attempts: number;
  next_attempt_at: Date;
  last_error: string | null;
  created_at: Date;
  sent_at: Date | null;
}

const deliveryView = (r: DeliveryRow): DeliveryView => ({
  id: r.id,
  ruleId: r.rule_id,
  ruleName: r.rule_name,
  channel: r.channel,
  destination: r.destination,
  alarmId: r.alarm_id,
  action: r.action,
  state: r.state,
  attempts: r.attempts,
  nextAttemptAt: r.state === 'pending' ? r.next_attempt_at.toISOString() : null,
  lastError: r.last_error,
  createdAt: r.created_at.toISOString(),
  sentAt: r.sent_at?.toISOString() ?? null,
});

const SELECT_DELIVERY = `SELECT d.*, r.name AS rule_name, r.channel, r.destination, r.secret
  FROM alarm_deliveries d JOIN alarm_forward_rules r ON r.id = d.rule_id`;

/** SQL rank of a severity (1 most severe). */
const rank = (expr: string) => `array_position(ARRAY['${SEVERITIES.join("','")}']::text[], ${expr})`;

/** The one line an SMS carries and an e-mail's subject. */
export function alarmLine(alarm: AlarmView, action: string): string {
  const where = alarm.area ? ` (${alarm.area})` : '';
  const what = alarm.subject ? `${alarm.kind} ${alarm.subject}` : alarm.kind;
  return `[ParkLink ${alarm.severity}] ${action === 'reopened' ? 'again: ' : ''}meter ${alarm.meterId} ${alarm.meterName}${where}: ${what}`;
}

function alarmText(alarm: AlarmView, action: string): string {
  return [
    alarmLine(alarm, action),
    '',
    `Detail: ${alarm.detail}`,
    `Severity: ${alarm.severity}`,
    `Meter: ${alarm.meterId} ${alarm.meterName}${alarm.area ? `, area ${alarm.area}` : ''}`,
    `Occurred (meter's time): ${alarm.occurredAt}`,
    `Raised: ${alarm.raisedAt}`,
    `Occurrences: ${alarm.occurrences}`,
    `Alarm: ${alarm.id}`,
  ].join('\n');
}

export class AlarmForwarding {
  readonly #o: ForwardingOptions;
  readonly #now: () => number;
  readonly #maxAttempts: number;
  readonly #retryMs: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  readonly #unsubscribe: () => void;

  constructor(options: ForwardingOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#maxAttempts = options.maxAttempts ?? 6;
    this.#retryMs = (options.retrySeconds ?? 30) * 1000;
    options.alarms.onRaise((tx, alarmId, action) => this.#enqueue(tx, alarmId, action));
    // After the commit of a raise: try the new deliveries at once.
    this.#unsubscribe = options.alarms.subscribe((change) => {
      if (change.action === 'raised' || change.action === 'reopened') this.kick();
    });
  }

  /** One delivery per enabled rule the alarm matches, in the raising transaction. */
  async #enqueue(
    tx: Pick<Queryable, 'query'>,
    alarmId: number,
    action: 'raised' | 'reopened',
  ): Promise<void> {
    const now = new Date(this.#now());
    await tx.query(
      `INSERT INTO alarm_deliveries (rule_id, alarm_id, action, next_attempt_at, created_at)
       SELECT r.id, a.id, $2, $3, $3
         FROM alarms a JOIN meters m ON m.id = a.meter_id, alarm_forward_rules r
        WHERE a.id = $1 AND r.enabled
          AND ${rank('a.severity')} <= ${rank('r.min_severity')}
          AND (r.area IS NULL OR r.area = m.area)`,
      [alarmId, action, now],
    );
  }

  // ---- Rules ---------------------------------------------------------------------------------

  async createRule(input: RuleInput, by: string, audit?: (tx: Queryable, rule: RuleView) => Promise<void>) {
    const destination = input.destination.trim();
    if (input.channel === 'email') {
      if (!this.#o.mail)
        throw new AlarmRefused(
          409,
          'no-mail-server',
          'no SMTP server is configured (PARKLINK_SMTP_URL)',
          'channel',
        );
      if (!EMAIL.test(destination))
        throw new AlarmRefused(400, 'bad-destination', 'not an e-mail address', 'destination');
    } else if (input.channel === 'sms') {
      if (!this.#o.sms)
        throw new AlarmRefused(
          409,
          'no-sms-sender',
          'no SMS gateway is configured (PARKLINK_SMS_WEBHOOK)',
          'channel',
        );
      if (!PHONE.test(destination))
        throw new AlarmRefused(
          400,
          'bad-destination',
          'a phone number in E.164 form (+447700900123)',
          'destination',
        );
    } else {
      let url: URL | undefined;
      try {
        url = new URL(destination);
      } catch {
        url = undefined;
      }
      if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password)
        throw new AlarmRefused(
          400,
          'bad-destination',
          'an http(s) URL without credentials in it',
          'destination',
        );
    }
    if (input.secret !== undefined && input.channel !== 'webhook')
      throw new AlarmRefused(400, 'bad-secret', 'only a webhook takes a secret', 'secret');
    return this.#o.db.transaction(async (tx) => {
      const rows = await tx.query<RuleRow>(
        `INSERT INTO alarm_forward_rules (name, channel, destination, secret, min_severity, area, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
        [
          input.name,
          input.channel,
          destination,
          input.secret ?? null,
          input.minSeverity,
          input.area ?? null,
          by,
          new Date(this.#now()),
        ],
      );
      const rule = ruleView(rows.rows[0]);
      await audit?.(tx, rule);
      return rule;
    });
  }

  async rules(): Promise<RuleView[]> {
    const rows = await this.#o.db.query<RuleRow>('SELECT * FROM alarm_forward_rules ORDER BY id');
    return rows.rows.map(ruleView);
  }

  /** Disables a rule (kept for its deliveries' history); its pending deliveries are not sent. */
  async disableRule(id: number, audit?: (tx: Queryable, rule: RuleView) => Promise<void>): Promise<RuleView> {
    return this.#o.db.transaction(async (tx) => {
      const rows = await tx.query<RuleRow>(
        'UPDATE alarm_forward_rules SET enabled = false WHERE id = $1 RETURNING *',
        [id],
      );
      if (rows.rows.length === 0) throw new AlarmRefused(404, 'unknown-rule', `no forwarding rule ${id}`);
      await tx.query(
        `UPDATE alarm_deliveries SET state = 'failed', last_error = 'rule disabled' WHERE rule_id = $1 AND state = 'pending'`,
        [id],
      );
      const rule = ruleView(rows.rows[0]);
      await audit?.(tx, rule);
      return rule;
    });
  }

  // ---- Deliveries ----------------------------------------------------------------------------

  async deliveries(query: {
    state?: DeliveryView['state'];
    alarmId?: number;
    limit?: number;
  }): Promise<DeliveryView[]> {
    const rows = await this.#o.db.query<DeliveryRow>(
      `${SELECT_DELIVERY} WHERE ($1::text IS NULL OR d.state = $1) AND ($2::bigint IS NULL OR d.alarm_id = $2)
        ORDER BY d.id DESC LIMIT $3`,
      [query.state ?? null, query.alarmId ?? null, query.limit ?? 100],
    );
    return rows.rows.map(deliveryView);
  }

  /** A delivery given up is tried again (from its first delay). */
  async retry(id: number, audit?: (tx: Queryable, d: DeliveryView) => Promise<void>): Promise<DeliveryView> {
    const delivery = await this.#o.db.transaction(async (tx) => {
      const rows = await tx.query<DeliveryRow>(`${SELECT_DELIVERY} WHERE d.id = $1 FOR UPDATE OF d`, [id]);
      const row = rows.rows[0];
      if (!row) throw new AlarmRefused(404, 'unknown-delivery', `no delivery ${id}`);
      if (row.state !== 'failed')
        throw new AlarmRefused(
          409,
          'not-failed',
          `delivery ${id} is ${row.state}: only a failed one is tried again`,
        );
      const now = new Date(this.#now());
      await tx.query(
        `UPDATE alarm_deliveries SET state = 'pending', attempts = 0, next_attempt_at = $2 WHERE id = $1`,
        [id, now],
      );
      const view = deliveryView({ ...row, state: 'pending', attempts: 0, next_attempt_at: now });
      await audit?.(tx, view);
      return view;
    });
    this.kick();
    return delivery;
  }

  /** Runs a delivery pass soon (one at a time; a request during a pass runs another after it). */
  kick(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.deliverDue()
      .then(() => undefined)
      .catch((error) => this.#o.logger.error({ err: error }, 'alarm forwarding pass failed'))
      .finally(() => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.kick();
        }
      });
  }

  /** Waits for the pass under way, if any (tests, close). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /**
   * Tries every pending delivery that is due. Each is claimed first (its next attempt moved past the
   * send's time limit) so another instance's pass does not send it twice meanwhile.
   */
  async deliverDue(): Promise<{ sent: number; failed: number }> {
    const now = new Date(this.#now());
    const lease = new Date(now.getTime() + 5 * 60_000);
    const claimed = await this.#o.db.transaction(async (tx) => {
      const rows = await tx.query<{ id: number }>(
        `UPDATE alarm_deliveries SET next_attempt_at = $2
          WHERE id IN (SELECT id FROM alarm_deliveries WHERE state = 'pending' AND next_attempt_at <= $1
                        ORDER BY next_attempt_at LIMIT 50 FOR UPDATE SKIP LOCKED)
          RETURNING id`,
        [now, lease],
      );
      return rows.rows.map((r) => r.id);
    });
    let sent = 0;
    let failed = 0;
    for (const id of claimed) {
      const row = (await this.#o.db.query<DeliveryRow>(`${SELECT_DELIVERY} WHERE d.id = $1`, [id])).rows[0];
      const alarm = row && (await this.#o.alarms.get(row.alarm_id).catch(() => undefined));
      if (!row || !alarm) continue;
      try {
        await this.#send(row, alarm);
        sent++;
        await this.#o.db.transaction(async (tx) => {
          await tx.query(
            `UPDATE alarm_deliveries SET state = 'sent', attempts = attempts + 1, sent_at = $2, last_error = NULL WHERE id = $1`,
            [id, new Date(this.#now())],
          );
          await this.#history(tx, row, 'forwarded', `${row.channel} to ${row.destination}`);
        });
      } catch (error) {
        failed++;
        const reason = String((error as Error)?.message ?? error).slice(0, 500);
        const attempts = row.attempts + 1;
        const givenUp = attempts >= this.#maxAttempts;
        const delay = Math.min(this.#retryMs * 2 ** (attempts - 1), 3600_000);
        await this.#o.db.transaction(async (tx) => {
          await tx.query(
            `UPDATE alarm_deliveries SET attempts = $2, last_error = $3, state = $4, next_attempt_at = $5 WHERE id = $1`,
            [id, attempts, reason, givenUp ? 'failed' : 'pending', new Date(this.#now() + delay)],
          );
          if (givenUp)
            await this.#history(tx, row, 'forward-failed', `${row.channel} to ${row.destination}: ${reason}`);
        });
        this.#o.logger.warn(
          { deliveryId: id, alarmId: row.alarm_id, attempts, givenUp, err: reason },
          'alarm delivery failed',
        );
      }
    }
    return { sent, failed };
  }

  async #history(tx: Queryable, row: DeliveryRow, action: string, note: string): Promise<void> {
    await tx.query(
      'INSERT INTO alarm_history (alarm_id, at, action, actor, note) VALUES ($1, $2, $3, $4, $5)',
      [row.alarm_id, new Date(this.#now()), action, 'platform', `${row.rule_name}: ${note}`],
    );
  }

  async #send(row: DeliveryRow, alarm: AlarmView): Promise<void> {
    if (row.channel === 'email') {
      if (!this.#o.mail) throw new Error('no SMTP server is configured');
      await this.#o.mail.send({
        to: row.destination,
        subject: alarmLine(alarm, row.action),
        text: alarmText(alarm, row.action),
      });
    } else if (row.channel === 'sms') {
      if (!this.#o.sms) throw new Error('no SMS gateway is configured');
      await this.#o.sms.send(
        row.destination,
        `${alarmLine(alarm, row.action)}: ${alarm.detail}`.slice(0, 320),
      );
    } else {
      const { history: _history, ...shown } = alarm as AlarmView & { history?: unknown };
      await postWebhook(
        {
          url: row.destination,
          ...(row.secret ? { secret: row.secret } : {}),
          timeoutMs: this.#o.webhookTimeoutMs ?? 10_000,
        },
        { event: 'alarm', action: row.action, alarm: shown },
        'alarm webhook',
      );
    }
  }

  /** Starts the periodic pass (pollSeconds, default 15; 0 starts none). */
  start(): void {
    const every = this.#o.pollSeconds ?? 15;
    if (every <= 0 || this.#timer) return;
    this.#timer = setInterval(() => this.kick(), every * 1000);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#unsubscribe();
    await this.idle();
  }
}
