// Pay by phone (issue 6; seed claims 18–19, Fig. 7 steps 701–718): registered drivers and cards,
// first-tap pairing from uplinked transactions, alerts at the driver's lead time, the three renewal
// options, renewals priced through Pricing and paid directly (credit, prepaid) or through the
// real-time path (debit), the renewal downlink 0x86 and its ack 0x06, offline meters (resent until
// the validity window ends, then voided and refunded), and the final confirmation only after the
// meter has applied the renewal.
import { createHmac, randomBytes, randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import mqtt, { type MqttClient } from 'mqtt';
import type { Crypto } from '../../hal/crypto';
import { nodeCrypto } from '../core/nodeCrypto';
import { formatClock, formatMoney } from '../../firmware/units/format';
import { decodeHeader, FRAME_VERSION, openFrame, sealFrame } from '../../protocol/frame';
import { ProtocolError } from '../../protocol/errors';
import { decodeRecord, type MeterRecord, RecordKind } from '../../protocol/records';
import { decodeRenewalAck, encodeRenewal, RENEWAL_FRAME } from '../../protocol/renewal';
import { downlinkTopic, meterIdOfTopic } from '../../protocol/topics';
import type { Database, Queryable } from '../core/db';
import type { Logger, StoredRecord } from '../ingest/gate';
import { frameKeys, type Keystore } from '../keys/keystore';
import { acceptUplinkFrame } from '../ingest/uplinkWindow';
import { type Channel, type ChannelAdapter, Outbox } from './channels';
import type { Pricing } from './pricing';
import { type Intent, ivrMenu, parseDtmf, parseSms, SMS_HELP } from './replies';
import {
  DEFAULT_PASSWORD_SCRYPT,
  hashPassword,
  newToken,
  type ScryptParams,
  tokenHash,
  verifyPassword,
} from './security';

/** A 4xx for the API: the status, a stable code and a message a driver can act on. */
export class PhoneError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    /** The most minutes that could still be added, when a renewal was refused at a limit. */
    readonly maxMinutes?: number,
  ) {
    super(message);
    this.name = 'PhoneError';
  }
}

export interface PhoneClock {
  /** Epoch milliseconds. */
  now(): number;
}

export type AuthorisationResult =
  | { approved: true; authorisation: string }
  | { approved: false; reason: string };

/** The real-time path for debit cards (step 712): an acquirer that authorises while the driver waits. */
export interface RealtimeAuthoriser {
  authorise(request: {
    cardToken: string;
    amount: number;
    currency: number;
    reference: string;
  }): Promise<AuthorisationResult>;
  refund(request: { authorisation: string; amount: number; currency: number }): Promise<void>;
}

/** The embedded default acquirer: approves, except tokens listed in `declined`. */
export class SimulatedAcquirer implements RealtimeAuthoriser {
  readonly declined = new Set<string>();
  readonly refunds: string[] = [];
  async authorise(request: { cardToken: string }): Promise<AuthorisationResult> {
    if (this.declined.has(request.cardToken))
      return { approved: false, reason: 'declined by the card issuer' };
    return { approved: true, authorisation: `R${randomBytes(5).toString('hex').toUpperCase()}` };
  }
  async refund(request: { authorisation: string }): Promise<void> {
    this.refunds.push(request.authorisation);
  }
}

export type RenewOption = 'auto' | 'phone' | 'app';
export type AlertChannel = 'sms' | 'voice' | 'app';

export interface DriverView {
  id: number;
  accountNumber: string;
  name: string;
  phone: string;
  email: string;
  renewalPhone: string | null;
  renewalEmail: string | null;
  alertChannel: AlertChannel;
  leadMinutes: number;
  renewOption: RenewOption;
  autoMinutes: number;
  graceMinutes: number;
}

export interface CardView {
  id: number;
  last4: string;
  cardType: number;
  cardTypeName: string;
  label: string;
  renewal: boolean;
  paysWith: number | null;
}

export interface SessionView {
  id: number;
  meterId: number;
  meterName: string;
  bayId: number;
  cardLast4: string;
  paidFrom: string;
  paidUntil: string;
  graceUntil: string;
  paidMinutes: number;
  status: 'active' | 'ended' | 'expired';
  endReason: string | null;
  pendingRenewal: string | null;
  currency: number;
}

export interface RenewalView {
  id: string;
  sessionId: number;
  meterId: number;
  bayId: number;
  minutes: number;
  charge: number;
  currency: number;
  chargeText: string;
  cardLast4: string;
  funding: 'direct' | 'realtime';
  authorisation: string;
  channel: string;
  status: 'sent' | 'applied' | 'refused' | 'voided';
  reason: string | null;
  requestedAt: string;
  validUntil: string;
  appliedAt: string | null;
  paidUntil: string | null;
  refunded: boolean;
}

export interface MessageView {
  id: number;
  channel: Channel;
  recipient: string;
  kind: string;
  body: string;
  status: string;
  attempts: number;
  createdAt: string;
  deliveredAt: string | null;
}

export interface PhoneEvents {
  paired: [{ sessionId: number; driverId: number; meterId: number; bayId: number }];
  'renewal-sent': [{ id: string; meterId: number }];
  'renewal-applied': [{ id: string; meterId: number; paidUntil: number }];
  'renewal-refused': [{ id: string; reason: string }];
  'renewal-voided': [{ id: string }];
  alert: [{ sessionId: number; kind: string }];
}

export interface PhoneOptions {
  db: Database;
  keystore: Keystore;
  brokerUrl: string;
  logger: Logger;
  clock?: PhoneClock;
  pricing: Pricing;
  acquirer?: RealtimeAuthoriser;
  adapters?: Partial<Record<Channel, ChannelAdapter>>;
  /** The tokenisation key (32 bytes); derived from the keystore when absent (see README). */
  tokenKey?: Uint8Array;
  crypto?: Crypto;
  /** How long the meter may still apply a renewal after it was requested, default 10 min. */
  renewalValidityMs?: number;
  /** A renewal not acknowledged is sent again after this long (and on every uplink of its meter). */
  resendAfterMs?: number;
  /** Lifetime of a login token, default 12 h. */
  tokenTtlMs?: number;
  passwordScrypt?: ScryptParams;
  /** Offset of the meters' local time from UTC for the times in messages, default 0. */
  utcOffsetMinutes?: number;
  /**
   * Records stored this long ago (database time) that pairing has not looked at are looked at by the
   * scheduler's sweep (default 60 s: the live path looks within milliseconds).
   */
  pairingSweepAfterMs?: number;
}

const CARD_TYPE_NAMES: Record<number, string> = { 1: 'debit', 2: 'credit', 3: 'prepaid' };
/** A pairing failing for a reason other than a lost connection is tried this many times. */
/** What cardToken accepts as a card number. */
const CARD_NUMBER = /^[0-9]{8,19}$/;

const MAX_PAIRING_ATTEMPTS = 5;
/** Records kept for a pairing retry at most (an outage longer than this many records loses pairings). */
const MAX_PAIRING_BACKLOG = 100_000;
/** After its validity the platform waits this long more before voiding (clock skew allowance). */
const VOID_MARGIN_MS = 60_000;

type DriverRow = {
  id: number;
  account_number: string;
  name: string;
  phone: string;
  email: string;
  password_hash: string;
  renewal_phone: string | null;
  renewal_email: string | null;
  alert_channel: AlertChannel;
  lead_minutes: number;
  renew_option: RenewOption;
  auto_minutes: number;
  grace_minutes: number;
};

type SessionRow = {
  id: number;
  driver_id: number;
  card_id: number;
  meter_id: number;
  bay_id: number;
  tx_seq: number;
  paid_from: Date;
  paid_until: Date;
  paid_minutes: number;
  currency: number;
  status: 'active' | 'ended' | 'expired';
  end_reason: string | null;
  alerted_for: Date | null;
  grace_alerted_for: Date | null;
};

type RenewalRow = {
  id: string;
  session_id: number;
  driver_id: number;
  meter_id: number;
  bay_id: number;
  minutes: number;
  charge: number;
  currency: number;
  card_id: number;
  funding: 'direct' | 'realtime';
  authorisation: string;
  channel: string;
  status: 'sent' | 'applied' | 'refused' | 'voided';
  reason: string | null;
  requested_at: Date;
  valid_until: Date;
  sent_at: Date | null;
  applied_at: Date | null;
  paid_until: Date | null;
  refunded_at: Date | null;
};

export class PhoneService extends EventEmitter<PhoneEvents> {
  readonly outbox: Outbox;
  readonly clock: PhoneClock;
  readonly acquirer: RealtimeAuthoriser;
  readonly #o: PhoneOptions;
  readonly #db: Database;
  readonly #crypto: Crypto;
  readonly #tokenKey: Uint8Array;
  #client: MqttClient | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  readonly #inFlight = new Set<Promise<unknown>>();
  #retry: { stored: StoredRecord; failures: number }[] = [];
  #closed = false;

  constructor(options: PhoneOptions) {
    super();
    this.#o = options;
    this.#db = options.db;
    this.#crypto = options.crypto ?? nodeCrypto;
    this.clock = options.clock ?? { now: () => Date.now() };
    this.acquirer = options.acquirer ?? new SimulatedAcquirer();
    this.#tokenKey = options.tokenKey ?? deriveTokenKey(this.#crypto, options.keystore);
    this.outbox = new Outbox({
      db: options.db,
      now: () => this.clock.now(),
      adapters: options.adapters,
      onError: (error, m) =>
        options.logger.warn({ err: error, outbox: m.id, channel: m.channel }, 'delivery failed'),
    });
  }

  /** Connects the downlink publisher. */
  async start(): Promise<void> {
    const client = mqtt.connect(this.#o.brokerUrl, {
      clientId: `parklink-phone-${process.pid}-${randomBytes(4).toString('hex')}`,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
    });
    client.on('error', (error) => this.#o.logger.error({ err: error }, 'phone MQTT error'));
    this.#client = client;
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([this.#chain, ...this.#inFlight]);
    const client = this.#client;
    this.#client = undefined;
    if (client) await client.endAsync();
  }

  /**
   * The token of a card number: protocol/renewal.ts cardToken under this platform's key, computed
   * by OpenSSL in one call because pairing takes one per sale the fleet uploads (same bytes: tested).
   */
  tokenOf(cardNumber: string): string {
    if (!CARD_NUMBER.test(cardNumber)) throw new ProtocolError('bad-field', 'card number is not 8-19 digits');
    return createHmac('sha256', this.#tokenKey).update(cardNumber, 'latin1').digest('hex');
  }

  #now(): number {
    return this.clock.now();
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#inFlight.add(promise);
    promise.finally(() => this.#inFlight.delete(promise)).catch(() => {});
    return promise;
  }

  // ---- Registration (step a) -------------------------------------------------------------------

  async register(input: {
    name: string;
    phone: string;
    email: string;
    password: string;
    alertChannel?: AlertChannel;
    leadMinutes?: number;
    renewOption?: RenewOption;
  }): Promise<{ driver: DriverView; token: string }> {
    const phone = normalisePhone(input.phone);
    const email = input.email.trim().toLowerCase();
    const taken = await this.#db.query<{ phone: string; email: string }>(
      'SELECT phone, email FROM drivers WHERE phone = $1 OR email = $2',
      [phone, email],
    );
    if (taken.rows.some((r) => r.phone === phone))
      throw new PhoneError(409, 'phone-taken', 'this phone number is already registered: log in instead');
    if (taken.rows.length > 0)
      throw new PhoneError(409, 'email-taken', 'this e-mail address is already registered: log in instead');
    const hash = await hashPassword(input.password, this.#o.passwordScrypt ?? DEFAULT_PASSWORD_SCRYPT);
    for (let attempt = 0; ; attempt++) {
      const account = `PL${String(randomInt(0, 10_000_000_000)).padStart(10, '0')}`;
      try {
        const row = await this.#db.query<DriverRow>(
          `INSERT INTO drivers (account_number, name, phone, email, password_hash, alert_channel, lead_minutes, renew_option)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
          [
            account,
            input.name.trim(),
            phone,
            email,
            hash,
            input.alertChannel ?? 'sms',
            input.leadMinutes ?? 10,
            input.renewOption ?? 'phone',
          ],
        );
        const driver = driverView(row.rows[0]);
        return { driver, token: await this.#issueToken(driver.id) };
      } catch (error) {
        if (attempt < 3 && /account_number/.test(String((error as Error).message))) continue;
        if (/drivers_(phone|email)_key/.test(String((error as Error).message)))
          throw new PhoneError(409, 'taken', 'this phone number or e-mail address is already registered');
        throw error;
      }
    }
  }

  /** Logs in with phone number, e-mail or account number. */
  async login(identifier: string, password: string): Promise<{ driver: DriverView; token: string }> {
    const id = identifier.trim();
    const phone = /^[+0-9 ()-]{8,20}$/.test(id) ? safePhone(id) : null;
    const row = await this.#db.query<DriverRow>(
      'SELECT * FROM drivers WHERE phone = $1 OR email = $2 OR account_number = $3 LIMIT 1',
      [phone, id.toLowerCase(), id.toUpperCase()],
    );
    const driver = row.rows[0];
    // The hash is computed even for an unknown login, so timing does not tell which exist.
    const ok = await verifyPassword(password, driver?.password_hash ?? DUMMY_HASH);
    if (!driver || !ok) throw new PhoneError(401, 'bad-credentials', 'wrong phone, e-mail or password');
    return { driver: driverView(driver), token: await this.#issueToken(driver.id) };
  }

  async #issueToken(driverId: number): Promise<string> {
    const token = newToken();
    await this.#db.query(
      'INSERT INTO driver_tokens (token_hash, driver_id, expires_at) VALUES ($1, $2, $3)',
      [tokenHash(token), driverId, new Date(Date.now() + (this.#o.tokenTtlMs ?? 12 * 3600_000))],
    );
    return token;
  }

  /** The driver a bearer token belongs to, or undefined. Token lifetimes run on real time. */
  async authenticate(token: string): Promise<number | undefined> {
    const row = await this.#db.query<{ driver_id: number }>(
      'SELECT driver_id FROM driver_tokens WHERE token_hash = $1 AND expires_at > $2',
      [tokenHash(token), new Date()],
    );
    return row.rows[0]?.driver_id;
  }

  async logout(token: string): Promise<void> {
    await this.#db.query('DELETE FROM driver_tokens WHERE token_hash = $1', [tokenHash(token)]);
  }

  async driver(driverId: number): Promise<DriverView> {
    const row = await this.#db.query<DriverRow>('SELECT * FROM drivers WHERE id = $1', [driverId]);
    if (!row.rows[0]) throw new PhoneError(404, 'no-driver', 'account not found');
    return driverView(row.rows[0]);
  }

  async updateSettings(
    driverId: number,
    s: Partial<{
      renewalPhone: string | null;
      renewalEmail: string | null;
      alertChannel: AlertChannel;
      leadMinutes: number;
      renewOption: RenewOption;
      autoMinutes: number;
      graceMinutes: number;
      name: string;
    }>,
  ): Promise<DriverView> {
    const current = await this.driver(driverId);
    const next = { ...current, ...s };
    const renewalPhone = s.renewalPhone
      ? normalisePhone(s.renewalPhone)
      : s.renewalPhone === ''
        ? null
        : next.renewalPhone;
    const renewalEmail = s.renewalEmail
      ? s.renewalEmail.trim().toLowerCase()
      : s.renewalEmail === ''
        ? null
        : next.renewalEmail;
    const row = await this.#db.query<DriverRow>(
      `UPDATE drivers SET name = $2, renewal_phone = $3, renewal_email = $4, alert_channel = $5, lead_minutes = $6,
              renew_option = $7, auto_minutes = $8, grace_minutes = $9 WHERE id = $1 RETURNING *`,
      [
        driverId,
        next.name,
        renewalPhone ?? null,
        renewalEmail ?? null,
        next.alertChannel,
        next.leadMinutes,
        next.renewOption,
        next.autoMinutes,
        next.graceMinutes,
      ],
    );
    return driverView(row.rows[0]);
  }

  // ---- Cards (steps a, c) ----------------------------------------------------------------------

  async addCard(
    driverId: number,
    input: { cardNumber: string; cardType: number; label?: string; renewal?: boolean },
  ): Promise<CardView> {
    const number = input.cardNumber.replace(/[\s-]/g, '');
    if (!/^[0-9]{12,19}$/.test(number))
      throw new PhoneError(400, 'bad-card', 'a card number is 12 to 19 digits');
    const token = this.tokenOf(number);
    return this.#db.transaction(async (tx) => {
      const held = await tx.query<{ driver_id: number }>(
        'SELECT driver_id FROM driver_cards WHERE token = $1 AND removed_at IS NULL',
        [token],
      );
      if (held.rows.length > 0)
        throw new PhoneError(
          409,
          'card-registered',
          held.rows[0].driver_id === driverId
            ? 'this card is already on your account'
            : 'this card is registered to another account',
        );
      if (input.renewal)
        await tx.query('UPDATE driver_cards SET renewal = false WHERE driver_id = $1', [driverId]);
      const row = await tx.query<CardRow>(
        `INSERT INTO driver_cards (driver_id, token, last4, card_type, label, renewal)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
        [
          driverId,
          token,
          number.slice(-4),
          input.cardType,
          (input.label ?? '').trim(),
          input.renewal ?? false,
        ],
      );
      return cardView(row.rows[0]);
    });
  }

  async cards(driverId: number): Promise<CardView[]> {
    const rows = await this.#db.query<CardRow>(
      'SELECT * FROM driver_cards WHERE driver_id = $1 AND removed_at IS NULL ORDER BY id',
      [driverId],
    );
    return rows.rows.map(cardView);
  }

  async #card(driverId: number, cardId: number, q: Queryable = this.#db): Promise<CardRow> {
    const row = await q.query<CardRow>(
      'SELECT * FROM driver_cards WHERE id = $1 AND driver_id = $2 AND removed_at IS NULL',
      [cardId, driverId],
    );
    if (!row.rows[0]) throw new PhoneError(404, 'no-card', `card ${cardId} is not on your account`);
    return row.rows[0];
  }

  async removeCard(driverId: number, cardId: number): Promise<void> {
    await this.#card(driverId, cardId);
    await this.#db.query('UPDATE driver_cards SET pays_with = NULL WHERE pays_with = $1', [cardId]);
    await this.#db.query(
      'UPDATE driver_cards SET removed_at = $2, renewal = false, pays_with = NULL WHERE id = $1',
      [cardId, new Date(this.#now())],
    );
  }

  /** Step c: renewals of sessions started with `cardId` are paid from `paysWith` (null: itself). */
  async updateCard(
    driverId: number,
    cardId: number,
    change: { paysWith?: number | null; renewal?: boolean; label?: string },
  ): Promise<CardView> {
    const card = await this.#card(driverId, cardId);
    if (change.paysWith !== undefined && change.paysWith !== null) {
      if (change.paysWith === cardId)
        throw new PhoneError(400, 'bad-link', 'a card cannot be linked to itself');
      await this.#card(driverId, change.paysWith);
    }
    if (change.renewal)
      await this.#db.query('UPDATE driver_cards SET renewal = false WHERE driver_id = $1', [driverId]);
    const row = await this.#db.query<CardRow>(
      'UPDATE driver_cards SET pays_with = $2, renewal = $3, label = $4 WHERE id = $1 RETURNING *',
      [
        cardId,
        change.paysWith === undefined ? card.pays_with : change.paysWith,
        change.renewal ?? card.renewal,
        change.label?.trim() ?? card.label,
      ],
    );
    return cardView(row.rows[0]);
  }

  // ---- Pairing (steps b, d, 704–706) -----------------------------------------------------------

  /**
   * Ingest's 'stored' listener: pairs first taps, reconciles renewal records. In order, never throws.
   * A record whose pairing fails (the database went away mid-ingest) is kept and tried again on the
   * next tick, so no pairing is lost to an outage: it is in the database already, only its pairing
   * is late. A record that keeps failing for another reason is dropped after MAX_PAIRING_ATTEMPTS.
   */
  onStored = (stored: StoredRecord): void => {
    this.onStoredBatch([stored]);
  };

  /**
   * The same for a batch of stored records (ingest's 'committed' event), in their order. One query
   * finds the few that concern pay by phone (a registered card, a bay with an active session, a
   * remote renewal); only those take a transaction each, so a fleet's uplinks cost one round trip
   * per batch here.
   */
  onStoredBatch(records: readonly StoredRecord[]): void {
    if (this.#closed || records.length === 0) return;
    this.#queueBatch(records.map((stored) => ({ stored, failures: 0 })));
  }

  #queueBatch(batch: readonly { stored: StoredRecord; failures: number }[]): void {
    const run = async () => {
      let relevant: Set<StoredRecord>;
      try {
        relevant = new Set(await this.#concerningPhone(batch.map((b) => b.stored)));
      } catch (error) {
        for (const { stored, failures } of batch) this.#pairingFailed(stored, failures, error);
        return;
      }
      let allDone = true;
      for (const { stored, failures } of batch) {
        if (relevant.has(stored)) allDone = (await this.#pairOne(stored, failures)) && allDone;
      }
      if (allDone) await this.#markLookedAt(batch.map((b) => b.stored)).catch(() => {}); // the sweep covers it
    };
    this.#chain = this.#chain.then(run, run);
  }

  /**
   * Advances each meter's pairing mark over a batch it continues without a hole (a batch after a
   * lost one leaves the mark for the sweep). A meter's first batch sets its mark.
   */
  async #markLookedAt(batch: readonly StoredRecord[]): Promise<void> {
    const spans = new Map<number, { first: number; last: number }>();
    for (const { meterId, record } of batch) {
      const span = spans.get(meterId);
      if (!span) spans.set(meterId, { first: record.seq, last: record.seq });
      else {
        span.first = Math.min(span.first, record.seq);
        span.last = Math.max(span.last, record.seq);
      }
    }
    const columns = [
      [...spans.keys()],
      [...spans.values()].map((s) => s.first),
      [...spans.values()].map((s) => s.last),
    ];
    await this.#db.query(
      `INSERT INTO phone_pairing_marks (meter_id, last_seq)
       SELECT m, CASE WHEN f = 1 THEN l ELSE 0 END FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(m, f, l)
       ON CONFLICT (meter_id) DO NOTHING`,
      columns,
    );
    await this.#db.query(
      `UPDATE phone_pairing_marks p SET last_seq = u.l FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(m, f, l)
        WHERE p.meter_id = u.m AND p.last_seq >= u.f - 1 AND p.last_seq < u.l`,
      columns,
    );
  }

  /**
   * Looks at stored records pairing never looked at (an instance stopped between ingest's commit and
   * pairing), older than pairingSweepAfterMs, in order, and advances the marks over them. Returns how
   * many records it looked at.
   */
  async sweepPairings(): Promise<number> {
    const rows = await this.#db.query<{ meter_id: number; seq: number; bytes: Uint8Array; link: Uint8Array }>(
      `SELECT r.meter_id, r.seq, r.bytes, r.link FROM phone_pairing_marks p
         CROSS JOIN LATERAL (SELECT * FROM records r WHERE r.meter_id = p.meter_id AND r.seq > p.last_seq
                               AND r.received_at < now() - make_interval(secs => $1) ORDER BY r.seq LIMIT 1000) r
        ORDER BY r.meter_id, r.seq LIMIT 5000`,
      [(this.#o.pairingSweepAfterMs ?? 60_000) / 1000],
    );
    if (rows.rows.length === 0) return 0;
    const batch: StoredRecord[] = rows.rows.map((r) => ({
      meterId: r.meter_id,
      record: decodeRecord(r.bytes),
      bytes: r.bytes,
      link: r.link,
    }));
    const relevant = new Set(await this.#concerningPhone(batch));
    for (const stored of batch) {
      if (relevant.has(stored) && !(await this.#pairOne(stored, 0))) return batch.length; // mark kept
    }
    const last = new Map<number, number>();
    for (const { meterId, record } of batch) last.set(meterId, Math.max(last.get(meterId) ?? 0, record.seq));
    await this.#db.query(
      `UPDATE phone_pairing_marks p SET last_seq = greatest(p.last_seq, u.l)
         FROM unnest($1::bigint[], $2::bigint[]) AS u(m, l) WHERE p.meter_id = u.m`,
      [[...last.keys()], [...last.values()]],
    );
    this.#o.logger.warn(
      { records: batch.length, meters: last.size },
      'pairing swept records it had not looked at',
    );
    return batch.length;
  }

  /** Pairs one record; false when it failed (then kept for a retry or dropped, and logged). */
  async #pairOne(stored: StoredRecord, failures: number): Promise<boolean> {
    try {
      await this.#handleStored(stored);
      return true;
    } catch (error) {
      this.#pairingFailed(stored, failures, error);
      return false;
    }
  }

  #pairingFailed(stored: StoredRecord, failures: number, error: unknown): void {
    const transient = isConnectionError(error);
    const where = { err: error, meterId: stored.meterId, seq: stored.record.seq, failures: failures + 1 };
    if (this.#closed || (!transient && failures + 1 >= MAX_PAIRING_ATTEMPTS)) {
      this.#o.logger.error(where, 'pairing failed; record dropped from pairing');
    } else if (this.#retry.length >= MAX_PAIRING_BACKLOG) {
      this.#o.logger.error(where, 'pairing failed; retry backlog full, record dropped from pairing');
    } else {
      this.#o.logger.warn(where, 'pairing failed; will retry on the next tick');
      this.#retry.push({ stored, failures: failures + 1 });
    }
  }

  /**
   * The records of a batch that pay by phone must look at, in order: sales with a registered card or
   * at a bay with an active session (the next user ends it), sales at a bay an earlier record of the
   * batch looked at, and remote-renewal operation records.
   */
  async #concerningPhone(batch: readonly StoredRecord[]): Promise<StoredRecord[]> {
    const sales = batch.filter((s) => s.record.kind === RecordKind.Transaction);
    const tokens = new Map<StoredRecord, string>();
    for (const s of sales) {
      if (s.record.kind === RecordKind.Transaction) tokens.set(s, this.tokenOf(s.record.data.cardNumber));
    }
    const hits =
      sales.length === 0
        ? { rows: [] }
        : await this.#db.query<{ hit: string }>(
            `SELECT token AS hit FROM driver_cards WHERE token = ANY($1::text[]) AND removed_at IS NULL
             UNION ALL
             SELECT meter_id || ':' || bay_id FROM phone_sessions WHERE status = 'active' AND meter_id = ANY($2::bigint[])`,
            [[...new Set(tokens.values())], [...new Set(sales.map((s) => s.meterId))]],
          );
    const watched = new Set(hits.rows.map((r) => r.hit));
    const relevant: StoredRecord[] = [];
    for (const stored of batch) {
      const { record } = stored;
      if (record.kind === RecordKind.Operation) {
        if (record.data.code === 'remote-renewal') relevant.push(stored);
        continue;
      }
      if (record.kind !== RecordKind.Transaction) continue;
      const bay = `${stored.meterId}:${record.data.bayId}`;
      if (watched.has(tokens.get(stored) as string) || watched.has(bay)) {
        relevant.push(stored);
        watched.add(bay); // a session may start here: a later sale at the bay must be looked at too
      }
    }
    return relevant;
  }

  /** Records whose pairing failed, waiting for the next tick (in arrival order). */
  get pairingBacklog(): number {
    return this.#retry.length;
  }

  /** Resolves when every stored record handed so far has been processed. */
  settled(): Promise<void> {
    return this.#chain.then(() => {});
  }

  async #handleStored({ meterId, record }: StoredRecord): Promise<void> {
    if (record.kind === RecordKind.Operation) return this.#reconcileRenewalRecord(meterId, record);
    if (record.kind !== RecordKind.Transaction) return;
    const d = record.data;
    const token = this.tokenOf(d.cardNumber);
    const now = this.#now();
    const paired = await this.#db.transaction(async (tx) => {
      const card = await tx.query<CardRow>(
        'SELECT * FROM driver_cards WHERE token = $1 AND removed_at IS NULL',
        [token],
      );
      const active = await tx.query<SessionRow>(
        "SELECT * FROM phone_sessions WHERE meter_id = $1 AND bay_id = $2 AND status = 'active' FOR UPDATE",
        [meterId, d.bayId],
      );
      const earlier = active.rows[0];
      if (earlier && earlier.tx_seq >= record.seq) return undefined; // an older record arriving late
      const own = card.rows[0];
      if (earlier && own && earlier.card_id === own.id) {
        // The same card tops up at the meter: the session goes on.
        await tx.query(
          `UPDATE phone_sessions SET paid_until = $2, paid_minutes = paid_minutes + $3, tx_seq = $4,
                  alerted_for = NULL, grace_alerted_for = NULL WHERE id = $1`,
          [earlier.id, seconds(d.paidUntil), d.minutes, record.seq],
        );
        return undefined;
      }
      if (earlier) {
        // The next user overrides: a new first payment at the bay ends the earlier pairing.
        await tx.query(
          "UPDATE phone_sessions SET status = 'ended', end_reason = 'next-user', ended_at = $2 WHERE id = $1",
          [earlier.id, new Date(now)],
        );
      }
      if (!own) return undefined;
      await tx.query('UPDATE driver_cards SET card_type = $2 WHERE id = $1', [own.id, d.cardType]);
      const session = await tx.query<{ id: number }>(
        `INSERT INTO phone_sessions (driver_id, card_id, meter_id, bay_id, tx_seq, paid_from, paid_until, paid_minutes,
                                     first_charge, currency, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
        [
          own.driver_id,
          own.id,
          meterId,
          d.bayId,
          record.seq,
          seconds(d.paidFrom),
          seconds(d.paidUntil),
          d.minutes,
          d.charge,
          d.currency,
          new Date(now),
        ],
      );
      const driver = (await tx.query<DriverRow>('SELECT * FROM drivers WHERE id = $1', [own.driver_id]))
        .rows[0];
      const channel = driver.alert_channel;
      await this.outbox.enqueue(tx, {
        driverId: driver.id,
        channel,
        recipient: recipientOf(driver, channel),
        kind: 'receipt',
        body:
          `ParkLink receipt: bay ${d.bayId} at meter ${meterId} paid until ${this.#hhmm(d.paidUntil)} ` +
          `(${formatMoney(d.charge, d.currency)}, card ending ${own.last4}). ` +
          `We will alert you ${driver.lead_minutes} min before it ends.` +
          (channel === 'sms' ? ' Reply EXTEND 30 at any time to add 30 minutes.' : ''),
      });
      return { sessionId: session.rows[0].id, driverId: driver.id };
    });
    if (paired) {
      this.emit('paired', { ...paired, meterId, bayId: d.bayId });
      void this.#track(this.outbox.deliverDue());
    }
  }

  async #reconcileRenewalRecord(meterId: number, record: Extract<MeterRecord, { kind: 2 }>): Promise<void> {
    if (record.data.code !== 'remote-renewal') return;
    const id = /(?:^| )id=([0-9a-z]+)/.exec(record.data.detail)?.[1];
    if (!id) return;
    await this.#db.query('UPDATE renewals SET record_seq = $3 WHERE id = $1 AND meter_id = $2', [
      id,
      meterId,
      record.seq,
    ]);
  }

  // ---- Sessions --------------------------------------------------------------------------------

  async sessions(driverId: number, which: 'active' | 'all' = 'all'): Promise<SessionView[]> {
    const rows = await this.#db.query<
      SessionRow & { last4: string; meter_name: string; grace_minutes: number; pending: string | null }
    >(
      `SELECT s.*, c.last4, m.name AS meter_name, d.grace_minutes,
              (SELECT r.id FROM renewals r WHERE r.session_id = s.id AND r.status = 'sent' LIMIT 1) AS pending
         FROM phone_sessions s JOIN driver_cards c ON c.id = s.card_id JOIN meters m ON m.id = s.meter_id
         JOIN drivers d ON d.id = s.driver_id
        WHERE s.driver_id = $1 AND ($2::text = 'all' OR s.status = 'active')
        ORDER BY s.created_at DESC, s.id DESC LIMIT 100`,
      [driverId, which],
    );
    return rows.rows.map((s) => ({
      id: s.id,
      meterId: s.meter_id,
      meterName: s.meter_name,
      bayId: s.bay_id,
      cardLast4: s.last4,
      paidFrom: s.paid_from.toISOString(),
      paidUntil: s.paid_until.toISOString(),
      graceUntil: new Date(s.paid_until.getTime() + s.grace_minutes * 60_000).toISOString(),
      paidMinutes: s.paid_minutes,
      status: s.status,
      endReason: s.end_reason,
      pendingRenewal: s.pending,
      currency: s.currency,
    }));
  }

  // ---- Renewal (steps i–k, o–q, 709–717) -------------------------------------------------------

  /** Prices, pays and sends a renewal to the meter; the confirmation follows the meter's ack. */
  async renew(
    driverId: number,
    request: { sessionId?: number; minutes?: number; channel: 'app' | 'sms' | 'voice' | 'auto' },
  ): Promise<RenewalView> {
    const driver = (await this.#db.query<DriverRow>('SELECT * FROM drivers WHERE id = $1', [driverId]))
      .rows[0];
    if (!driver) throw new PhoneError(404, 'no-driver', 'account not found');
    const minutes = request.minutes ?? driver.auto_minutes;
    const now = this.#now();
    const sessions = await this.#db.query<SessionRow>(
      `SELECT * FROM phone_sessions WHERE driver_id = $1 AND status = 'active' AND ($2::bigint IS NULL OR id = $2)
        ORDER BY created_at DESC, id DESC LIMIT 1`,
      [driverId, request.sessionId ?? null],
    );
    const session = sessions.rows[0];
    if (!session) {
      throw new PhoneError(
        404,
        'no-session',
        request.sessionId === undefined
          ? 'you have no active parking session: tap a registered card at a meter first'
          : `session ${request.sessionId} is not an active session of yours`,
      );
    }
    if (now > session.paid_until.getTime() + driver.grace_minutes * 60_000)
      throw new PhoneError(409, 'session-over', 'this session has ended: pay at the meter to park again');
    const pending = await this.#db.query('SELECT id FROM renewals WHERE session_id = $1 AND status = $2', [
      session.id,
      'sent',
    ]);
    if (pending.rows.length > 0)
      throw new PhoneError(
        409,
        'renewal-pending',
        'a renewal for this session is already on its way to the meter',
      );
    const start = Math.max(Math.floor(now / 1000), Math.floor(session.paid_until.getTime() / 1000));
    const quote = this.#o.pricing.quote({
      meterId: session.meter_id,
      bayId: session.bay_id,
      start,
      minutes,
      paidMinutes: session.paid_minutes,
    });
    if (!quote.ok)
      throw new PhoneError(422, quote.reason, `cannot extend: ${quote.message}`, quote.maxMinutes);

    const card = await this.#fundingCard(session);
    const id = newRenewalId();
    let funding: 'direct' | 'realtime';
    let authorisation: string;
    if (card.card_type === 1) {
      // Step 712: a debit card is charged in real time, while the driver waits.
      funding = 'realtime';
      const result = await this.acquirer.authorise({
        cardToken: card.token,
        amount: quote.amount,
        currency: quote.currency,
        reference: id,
      });
      if (!result.approved) throw new PhoneError(402, 'card-declined', `payment refused: ${result.reason}`);
      authorisation = result.authorisation;
    } else {
      // Step 711: credit and prepaid accounts are updated directly on the platform.
      funding = 'direct';
      authorisation = `D${randomBytes(5).toString('hex').toUpperCase()}`;
    }
    const validUntil = now + (this.#o.renewalValidityMs ?? 10 * 60_000);
    await this.#db.query(
      `INSERT INTO renewals (id, session_id, driver_id, meter_id, bay_id, minutes, charge, currency, card_id, funding,
                             authorisation, channel, status, requested_at, valid_until)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'sent', $13, $14)`,
      [
        id,
        session.id,
        driverId,
        session.meter_id,
        session.bay_id,
        minutes,
        quote.amount,
        quote.currency,
        card.id,
        funding,
        authorisation,
        request.channel,
        new Date(now),
        new Date(validUntil),
      ],
    );
    await this.#sendRenewal(id);
    return this.renewal(driverId, id);
  }

  async #fundingCard(session: SessionRow): Promise<CardRow> {
    const rows = await this.#db.query<CardRow>(
      `SELECT c.* FROM driver_cards c
        WHERE c.removed_at IS NULL AND c.driver_id = $1
          AND (c.id = (SELECT pays_with FROM driver_cards WHERE id = $2) OR c.renewal OR c.id = $2)
        ORDER BY (c.id = (SELECT pays_with FROM driver_cards WHERE id = $2)) DESC NULLS LAST, c.renewal DESC, c.id`,
      [session.driver_id, session.card_id],
    );
    if (!rows.rows[0]) throw new PhoneError(409, 'no-card', 'no card on your account can pay this renewal');
    return rows.rows[0];
  }

  /** Seals and publishes the renewal downlink (again, for a resend); no-op unless still 'sent'. */
  async #sendRenewal(id: string): Promise<void> {
    const row = await this.#db.query<RenewalRow & { key_epoch: number }>(
      'SELECT r.*, m.key_epoch FROM renewals r JOIN meters m ON m.id = r.meter_id WHERE r.id = $1',
      [id],
    );
    const r = row.rows[0];
    if (r?.status !== 'sent' || !this.#client) return;
    const seq = await this.#db.query<{ downlink_seq: number }>(
      'UPDATE meters SET downlink_seq = downlink_seq + 1 WHERE id = $1 RETURNING downlink_seq',
      [r.meter_id],
    );
    const keys = frameKeys(this.#o.keystore, r.meter_id, r.key_epoch);
    keys.uplink.fill(0);
    const frame = sealFrame(
      this.#crypto,
      keys.downlink,
      {
        version: FRAME_VERSION,
        type: RENEWAL_FRAME,
        meterId: r.meter_id,
        epoch: r.key_epoch,
        seq: seq.rows[0].downlink_seq,
      },
      encodeRenewal({
        id: r.id,
        bayId: r.bay_id,
        minutes: r.minutes,
        charge: r.charge,
        currency: r.currency,
        authorisation: r.authorisation,
        validUntil: Math.floor(r.valid_until.getTime() / 1000),
      }),
    );
    keys.downlink.fill(0);
    await this.#db.query('UPDATE renewals SET sent_at = $2, send_count = send_count + 1 WHERE id = $1', [
      id,
      new Date(this.#now()),
    ]);
    await this.#client.publishAsync(downlinkTopic(r.meter_id), Buffer.from(frame), { qos: 1 });
    this.emit('renewal-sent', { id, meterId: r.meter_id });
  }

  /** Ingest route for uplink frames 0x06: the meter's answer to a renewal. Never throws. */
  onRenewalAck = async (topic: string, frame: Uint8Array): Promise<void> => {
    try {
      await this.#track(this.#handleAck(topic, frame));
    } catch (error) {
      this.#o.logger.warn({ err: error, topic }, 'renewal ack refused');
    }
  };

  async #handleAck(topic: string, frame: Uint8Array): Promise<void> {
    const header = decodeHeader(frame);
    const meterId = meterIdOfTopic(topic);
    if (meterId === undefined || meterId !== header.meterId) throw new Error('ack topic and header disagree');
    const meter = await this.#db.query<{ key_epoch: number }>('SELECT key_epoch FROM meters WHERE id = $1', [
      meterId,
    ]);
    if (!meter.rows[0]) throw new Error(`meter ${meterId} is not provisioned`);
    const epoch = meter.rows[0].key_epoch;
    if (header.epoch !== epoch) throw new Error(`stale epoch ${header.epoch}`);
    const keys = frameKeys(this.#o.keystore, meterId, epoch);
    keys.downlink.fill(0);
    let body: Uint8Array;
    try {
      body = openFrame(this.#crypto, keys.uplink, frame).body;
    } finally {
      keys.uplink.fill(0);
    }
    const ack = decodeRenewalAck(body);
    // One anti-replay window for all of a meter's uplinks (they share one sequence).
    await this.#db.transaction((tx) => acceptUplinkFrame(tx, meterId, header.seq));
    await this.#settle(meterId, ack.id, ack.status, ack.paidUntil, ack.reason);
  }

  async #settle(
    meterId: number,
    id: string,
    status: string,
    paidUntil: number,
    reason: string,
  ): Promise<void> {
    const now = this.#now();
    const applied = status === 'applied' || status === 'duplicate';
    const outcome = await this.#db.transaction(async (tx) => {
      const row = await tx.query<RenewalRow>(
        'SELECT * FROM renewals WHERE id = $1 AND meter_id = $2 FOR UPDATE',
        [id, meterId],
      );
      const r = row.rows[0];
      if (!r) throw new Error(`meter ${meterId} acknowledged unknown renewal ${id}`);
      if (r.status !== 'sent') {
        if (r.status === 'voided' && applied)
          this.#o.logger.error({ renewal: id, meterId }, 'a voided renewal was applied by the meter');
        return undefined;
      }
      const driver = (await tx.query<DriverRow>('SELECT * FROM drivers WHERE id = $1', [r.driver_id]))
        .rows[0];
      const channel: AlertChannel =
        r.channel === 'sms' || r.channel === 'voice' || r.channel === 'app'
          ? r.channel
          : driver.alert_channel;
      if (applied) {
        await tx.query(
          "UPDATE renewals SET status = 'applied', applied_at = $2, paid_until = $3 WHERE id = $1",
          [id, new Date(now), seconds(paidUntil)],
        );
        await tx.query(
          `UPDATE phone_sessions SET paid_until = $2, paid_minutes = paid_minutes + $3, alerted_for = NULL,
                  grace_alerted_for = NULL WHERE id = $1`,
          [r.session_id, seconds(paidUntil), r.minutes],
        );
        // Step 718: the final confirmation, only now that the meter has applied it.
        await this.outbox.enqueue(tx, {
          driverId: driver.id,
          channel,
          recipient: recipientOf(driver, channel),
          kind: 'confirmation',
          renewalId: id,
          body:
            `ParkLink: confirmed. Bay ${r.bay_id} at meter ${meterId} now paid until ${this.#hhmm(paidUntil)}. ` +
            `Charged ${formatMoney(r.charge, r.currency)} (auth ${r.authorisation}).`,
        });
        return { applied: true as const, r };
      }
      await tx.query("UPDATE renewals SET status = 'refused', reason = $2, refunded_at = $3 WHERE id = $1", [
        id,
        reason || 'refused by the meter',
        new Date(now),
      ]);
      await this.outbox.enqueue(tx, {
        driverId: driver.id,
        channel,
        recipient: recipientOf(driver, channel),
        kind: 'refund',
        renewalId: id,
        body: `ParkLink: the meter could not apply your renewal of bay ${r.bay_id} (${reason}). ${formatMoney(r.charge, r.currency)} refunded.`,
      });
      return { applied: false as const, r };
    });
    if (!outcome) return;
    if (outcome.applied) this.emit('renewal-applied', { id, meterId, paidUntil });
    else {
      await this.#refund(outcome.r);
      this.emit('renewal-refused', { id, reason });
    }
    void this.#track(this.outbox.deliverDue());
  }

  async #refund(r: RenewalRow): Promise<void> {
    if (r.funding === 'realtime')
      await this.acquirer.refund({ authorisation: r.authorisation, amount: r.charge, currency: r.currency });
    // Direct (credit, prepaid): the charge was posted on the platform; refunded_at reverses it.
  }

  /** The meter came back (ingest accepted an uplink from it): send what it has not acknowledged. */
  onMeterSeen = (meterId: number): void => {
    this.onMetersSeen([meterId]);
  };

  /** Meters just heard from (one query for a batch): renewals they have not acknowledged go again. */
  onMetersSeen(meterIds: readonly number[]): void {
    if (this.#closed || meterIds.length === 0) return;
    void this.#track(
      (async () => {
        const pending = await this.#db.query<{ id: string }>(
          "SELECT id FROM renewals WHERE meter_id = ANY($1::bigint[]) AND status = 'sent' AND sent_at < $2",
          [[...new Set(meterIds)], new Date(this.#now() - 2_000)],
        );
        for (const { id } of pending.rows) await this.#sendRenewal(id);
      })().catch((error) => this.#o.logger.warn({ err: error, meterIds }, 'renewal resend failed')),
    );
  }

  async renewal(driverId: number, id: string): Promise<RenewalView> {
    const rows = await this.#renewalRows('r.driver_id = $1 AND r.id = $2', [driverId, id]);
    if (!rows[0]) throw new PhoneError(404, 'no-renewal', `renewal ${id} is not yours`);
    return rows[0];
  }

  async renewals(driverId: number): Promise<RenewalView[]> {
    return this.#renewalRows('r.driver_id = $1', [driverId]);
  }

  async #renewalRows(where: string, params: (string | number)[]): Promise<RenewalView[]> {
    const rows = await this.#db.query<RenewalRow & { last4: string }>(
      `SELECT r.*, c.last4 FROM renewals r JOIN driver_cards c ON c.id = r.card_id WHERE ${where}
        ORDER BY r.requested_at DESC, r.id LIMIT 200`,
      params,
    );
    return rows.rows.map((r) => ({
      id: r.id,
      sessionId: r.session_id,
      meterId: r.meter_id,
      bayId: r.bay_id,
      minutes: r.minutes,
      charge: r.charge,
      currency: r.currency,
      chargeText: formatMoney(r.charge, r.currency),
      cardLast4: r.last4,
      funding: r.funding,
      authorisation: r.authorisation,
      channel: r.channel,
      status: r.status,
      reason: r.reason,
      requestedAt: r.requested_at.toISOString(),
      validUntil: r.valid_until.toISOString(),
      appliedAt: r.applied_at?.toISOString() ?? null,
      paidUntil: r.paid_until?.toISOString() ?? null,
      refunded: r.refunded_at !== null,
    }));
  }

  async messages(driverId: number): Promise<MessageView[]> {
    const rows = await this.#db.query<{
      id: number;
      channel: Channel;
      recipient: string;
      kind: string;
      body: string;
      status: string;
      attempts: number;
      created_at: Date;
      delivered_at: Date | null;
    }>('SELECT * FROM outbox WHERE driver_id = $1 ORDER BY id DESC LIMIT 100', [driverId]);
    return rows.rows.map((m) => ({
      id: m.id,
      channel: m.channel,
      recipient: m.recipient,
      kind: m.kind,
      body: m.body,
      status: m.status,
      attempts: m.attempts,
      createdAt: m.created_at.toISOString(),
      deliveredAt: m.delivered_at?.toISOString() ?? null,
    }));
  }

  // ---- Incoming SMS and voice (steps 707–708) --------------------------------------------------

  async #driverByPhone(from: string): Promise<DriverRow | undefined> {
    const phone = safePhone(from);
    if (!phone) return undefined;
    const row = await this.#db.query<DriverRow>(
      'SELECT * FROM drivers WHERE phone = $1 OR renewal_phone = $1 ORDER BY (phone = $1) DESC LIMIT 1',
      [phone],
    );
    return row.rows[0];
  }

  /** An SMS from a driver; returns the reply, which also goes out through the outbox. */
  async handleSms(from: string, text: string): Promise<string> {
    const driver = await this.#driverByPhone(from);
    const reply = driver
      ? await this.#answer(driver, parseSms(text), 'sms')
      : 'ParkLink: this number is not registered. Register in the ParkLink app to renew your parking by text.';
    await this.outbox.enqueue(this.#db, {
      driverId: driver?.id ?? null,
      channel: 'sms',
      recipient: driver ? recipientOf(driver, 'sms') : (safePhone(from) ?? from.slice(0, 32)),
      kind: 'reply',
      body: reply,
    });
    void this.#track(this.outbox.deliverDue());
    return reply;
  }

  /** One step of the voice menu: the caller's digits (empty on answer) → what to say next. */
  async handleVoice(from: string, digits: string): Promise<{ say: string; gather: boolean }> {
    const driver = await this.#driverByPhone(from);
    if (!driver) return { say: 'This number is not registered with ParkLink. Goodbye.', gather: false };
    const intent = parseDtmf(digits);
    if (intent.kind === 'help') {
      const session = await this.#activeSession(driver.id);
      const intro = session
        ? `Your parking at bay ${session.bay_id} is paid until ${this.#hhmm(session.paid_until.getTime() / 1000)}. `
        : 'You have no active parking session. ';
      return { say: `${intro}${session ? ivrMenu() : 'Goodbye.'}`, gather: Boolean(session) };
    }
    if (intent.kind === 'unknown')
      return { say: `Sorry, ${digits} is not an option. ${ivrMenu()}`, gather: true };
    const say = await this.#answer(driver, intent, 'voice');
    return { say, gather: intent.kind === 'status' };
  }

  async #activeSession(driverId: number): Promise<SessionRow | undefined> {
    const row = await this.#db.query<SessionRow>(
      "SELECT * FROM phone_sessions WHERE driver_id = $1 AND status = 'active' ORDER BY created_at DESC, id DESC LIMIT 1",
      [driverId],
    );
    return row.rows[0];
  }

  async #answer(driver: DriverRow, intent: Intent, channel: 'sms' | 'voice'): Promise<string> {
    switch (intent.kind) {
      case 'extend':
        try {
          const r = await this.renew(driver.id, { minutes: intent.minutes, channel });
          return `ParkLink: extending bay ${r.bayId} by ${r.minutes} min for ${r.chargeText}. We will confirm as soon as the meter has it.`;
        } catch (error) {
          if (!(error instanceof PhoneError)) throw error;
          // Refused (maximum stay, restricted period, …): the reason, and what the driver can do.
          const more = error.maxMinutes ?? 0;
          if (channel === 'voice')
            return `Sorry, your parking ${error.message.replace(/^cannot extend: /, 'cannot be extended: ')}.`;
          return `ParkLink: ${capitalise(error.message)}.${
            more > 0 ? ` Reply EXTEND ${more} to add what is left.` : ''
          }`;
        }
      case 'status': {
        const s = await this.#activeSession(driver.id);
        return s
          ? `ParkLink: bay ${s.bay_id} at meter ${s.meter_id} is paid until ${this.#hhmm(s.paid_until.getTime() / 1000)}.`
          : 'ParkLink: you have no active parking session.';
      }
      case 'stop': {
        const s = await this.#activeSession(driver.id);
        if (s)
          await this.#db.query(
            'UPDATE phone_sessions SET alerted_for = paid_until, grace_alerted_for = paid_until WHERE id = $1',
            [s.id],
          );
        return 'ParkLink: no more alerts for this parking session. Reply EXTEND 30 if you change your mind.';
      }
      case 'help':
        return SMS_HELP;
      default:
        return `ParkLink: sorry, we did not understand "${intent.text.slice(0, 40)}". ${SMS_HELP.slice('ParkLink: '.length)}`;
    }
  }

  // ---- Scheduler (steps f, l, 706, 708, 713) ---------------------------------------------------

  /**
   * One pass of the scheduler at the injected clock's time: lead-time alerts and auto-extensions,
   * grace alerts, expiries, resends, voids and refunds past the validity window, outbox delivery.
   */
  async tick(): Promise<void> {
    if (this.#closed) return;
    const now = this.#now();
    const at = new Date(now);
    // Pairings that failed (database outage) go again first, in their order, before newer records.
    const again = this.#retry;
    this.#retry = [];
    if (again.length > 0) this.#queueBatch(again);
    await this.settled();
    // In the pairing chain, so a swept record and a live one of the same bay never interleave.
    const sweep = this.#chain.then(() => this.sweepPairings());
    this.#chain = sweep.catch(() => {});
    await sweep;

    const due = await this.#db.query<SessionRow & DriverRow & { session_id: number }>(
      `SELECT s.*, s.id AS session_id, d.account_number, d.name, d.phone, d.email, d.renewal_phone, d.renewal_email,
              d.alert_channel, d.lead_minutes, d.renew_option, d.auto_minutes, d.grace_minutes
         FROM phone_sessions s JOIN drivers d ON d.id = s.driver_id
        WHERE s.status = 'active' AND s.alerted_for IS DISTINCT FROM s.paid_until
          AND s.paid_until - make_interval(mins => d.lead_minutes) <= $1 AND s.paid_until > $1`,
      [at],
    );
    for (const s of due.rows) await this.#leadAlert(s, s.session_id);

    const grace = await this.#db.query<SessionRow & DriverRow & { session_id: number }>(
      `SELECT s.*, s.id AS session_id, d.account_number, d.name, d.phone, d.email, d.renewal_phone, d.renewal_email,
              d.alert_channel, d.lead_minutes, d.renew_option, d.auto_minutes, d.grace_minutes
         FROM phone_sessions s JOIN drivers d ON d.id = s.driver_id
        WHERE s.status = 'active' AND d.renew_option = 'phone' AND d.grace_minutes > 0
          AND s.grace_alerted_for IS DISTINCT FROM s.paid_until
          AND s.paid_until <= $1 AND s.paid_until + make_interval(mins => d.grace_minutes) > $1`,
      [at],
    );
    for (const s of grace.rows) {
      const graceEnd = s.paid_until.getTime() / 1000 + s.grace_minutes * 60;
      await this.#db.query('UPDATE phone_sessions SET grace_alerted_for = paid_until WHERE id = $1', [
        s.session_id,
      ]);
      await this.#alert(s, s.session_id, 'grace', {
        sms: `ParkLink: your time at bay ${s.bay_id} has run out. The grace period ends at ${this.#hhmm(graceEnd)}: reply EXTEND 30 now to add 30 minutes.`,
        voice: `Your paid time at bay ${s.bay_id} has run out. The grace period ends at ${this.#hhmm(graceEnd)}. ${ivrMenu()}`,
        app: `Time is up at bay ${s.bay_id}. Grace period until ${this.#hhmm(graceEnd)}: open ParkLink to extend.`,
      });
    }

    await this.#db.query(
      `UPDATE phone_sessions s SET status = 'expired', end_reason = 'expired', ended_at = $1
         FROM drivers d WHERE d.id = s.driver_id AND s.status = 'active'
          AND s.paid_until + make_interval(mins => d.grace_minutes) <= $1
          AND NOT EXISTS (SELECT 1 FROM renewals r WHERE r.session_id = s.id AND r.status = 'sent')`,
      [at],
    );

    const stale = await this.#db.query<RenewalRow>(
      "SELECT * FROM renewals WHERE status = 'sent' AND valid_until < $1",
      [new Date(now - VOID_MARGIN_MS)],
    );
    for (const r of stale.rows) await this.#void(r);

    const resend = await this.#db.query<{ id: string }>(
      "SELECT id FROM renewals WHERE status = 'sent' AND valid_until > $1 AND sent_at < $2",
      [at, new Date(now - (this.#o.resendAfterMs ?? 30_000))],
    );
    for (const { id } of resend.rows) await this.#sendRenewal(id).catch(() => {});

    await this.outbox.deliverDue();
  }

  async #leadAlert(s: SessionRow & DriverRow, sessionId: number): Promise<void> {
    await this.#db.query('UPDATE phone_sessions SET alerted_for = paid_until WHERE id = $1', [sessionId]);
    const until = this.#hhmm(s.paid_until.getTime() / 1000);
    if (s.renew_option === 'auto') {
      // Option 1: the automatic extension, accepted in advance, before the time runs out.
      try {
        const r = await this.renew(s.driver_id, { sessionId, minutes: s.auto_minutes, channel: 'auto' });
        await this.#alert(s, sessionId, 'auto-extension', {
          sms: `ParkLink: your parking at bay ${s.bay_id} ends at ${until}; extending it automatically by ${r.minutes} min for ${r.chargeText}. We will confirm when the meter has it.`,
          voice: `Your parking at bay ${s.bay_id} ends at ${until}. It is being extended automatically by ${r.minutes} minutes.`,
          app: `Bay ${s.bay_id} ends at ${until}: auto-extending by ${r.minutes} min (${r.chargeText}).`,
        });
      } catch (error) {
        const why = error instanceof PhoneError ? error.message : 'the extension failed';
        await this.#alert(s, sessionId, 'auto-extension-failed', {
          sms: `ParkLink: your parking at bay ${s.bay_id} ends at ${until} and could not be extended automatically: ${why}.`,
          voice: `Your parking at bay ${s.bay_id} ends at ${until} and could not be extended automatically.`,
          app: `Bay ${s.bay_id} ends at ${until}; automatic extension failed: ${why}.`,
        });
        if (!(error instanceof PhoneError)) throw error;
      }
      return;
    }
    await this.#alert(s, sessionId, 'expiry', {
      sms: `ParkLink: your parking at bay ${s.bay_id} (meter ${s.meter_id}) ends at ${until}. Reply EXTEND 30 to add 30 minutes, or EXTEND and any minutes.`,
      voice: `Your parking at bay ${s.bay_id} ends at ${until}. ${ivrMenu()}`,
      app: `Your parking at bay ${s.bay_id} ends at ${until}. Open ParkLink to extend.`,
    });
  }

  /** `s` is a session row joined with its driver's columns (so `s.id` is the session's). */
  async #alert(
    s: SessionRow & DriverRow,
    sessionId: number,
    kind: string,
    bodies: Record<AlertChannel, string>,
  ): Promise<void> {
    const channel = s.alert_channel;
    await this.outbox.enqueue(this.#db, {
      driverId: s.driver_id,
      channel,
      recipient: recipientOf(s, channel),
      kind,
      body: bodies[channel],
    });
    this.emit('alert', { sessionId, kind });
  }

  async #void(r: RenewalRow): Promise<void> {
    const voided = await this.#db.query(
      "UPDATE renewals SET status = 'voided', reason = 'meter unreachable', refunded_at = $2 WHERE id = $1 AND status = 'sent' RETURNING id",
      [r.id, new Date(this.#now())],
    );
    if (voided.rowCount === 0) return;
    await this.#refund(r);
    const driver = (await this.#db.query<DriverRow>('SELECT * FROM drivers WHERE id = $1', [r.driver_id]))
      .rows[0];
    const channel: AlertChannel =
      r.channel === 'sms' || r.channel === 'voice' || r.channel === 'app' ? r.channel : driver.alert_channel;
    await this.outbox.enqueue(this.#db, {
      driverId: driver.id,
      channel,
      recipient: recipientOf(driver, channel),
      kind: 'voided',
      renewalId: r.id,
      body: `ParkLink: the meter at bay ${r.bay_id} could not be reached, so your renewal was cancelled and ${formatMoney(r.charge, r.currency)} refunded. Please pay at the meter.`,
    });
    this.emit('renewal-voided', { id: r.id });
  }

  #hhmm(epochSeconds: number): string {
    return formatClock(Math.floor(epochSeconds), this.#o.utcOffsetMinutes ?? 0);
  }
}

type CardRow = {
  id: number;
  driver_id: number;
  token: string;
  last4: string;
  card_type: number;
  label: string;
  renewal: boolean;
  pays_with: number | null;
};

function cardView(c: CardRow): CardView {
  return {
    id: c.id,
    last4: c.last4,
    cardType: c.card_type,
    cardTypeName: CARD_TYPE_NAMES[c.card_type] ?? String(c.card_type),
    label: c.label,
    renewal: c.renewal,
    paysWith: c.pays_with,
  };
}

function driverView(d: DriverRow): DriverView {
  return {
    id: d.id,
    accountNumber: d.account_number,
    name: d.name,
    phone: d.phone,
    email: d.email,
    renewalPhone: d.renewal_phone,
    renewalEmail: d.renewal_email,
    alertChannel: d.alert_channel,
    leadMinutes: d.lead_minutes,
    renewOption: d.renew_option,
    autoMinutes: d.auto_minutes,
    graceMinutes: d.grace_minutes,
  };
}

function recipientOf(
  d: Pick<DriverRow, 'phone' | 'renewal_phone' | 'account_number'>,
  channel: Channel,
): string {
  return channel === 'app' ? d.account_number : (d.renewal_phone ?? d.phone);
}

/** "+44 7700 900123" → "+447700900123"; a 4xx for anything that is not 8–15 digits. */
export function normalisePhone(raw: string): string {
  const phone = safePhone(raw);
  if (!phone)
    throw new PhoneError(400, 'bad-phone', 'a phone number is 8 to 15 digits, with its country code');
  return phone;
}

function safePhone(raw: string): string | null {
  const digits = raw.replace(/[\s()-]/g, '');
  const m = /^\+?([0-9]{8,15})$/.exec(digits);
  return m ? `+${m[1]}` : null;
}

/** A lost or refused database connection (pg, PostgreSQL's class 08 and 57P0x, sockets): worth retrying. */
export function isConnectionError(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : '';
  if (/^(08...|57P0[123]|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND)$/.test(code))
    return true;
  const message = typeof e?.message === 'string' ? e.message : '';
  return /connection (terminated|ended|refused|reset)|terminating connection|Connection terminated|client has encountered a connection error|timeout exceeded when trying to connect|Client was closed|PGlite is closed/i.test(
    message,
  );
}

function newRenewalId(): string {
  let id = '';
  for (const b of randomBytes(12)) id += (b % 36).toString(36);
  return id;
}

function seconds(s: number): Date {
  return new Date(s * 1000);
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/**
 * The default tokenisation key: HMAC-SHA-256 keyed with the keystore's keys of the reserved
 * (meter 0, epoch 0) slot, which no provisioned meter uses (meters start at epoch 1). Stable for as
 * long as the master key is; PARKLINK_TOKEN_KEY overrides it.
 */
function deriveTokenKey(crypto: Crypto, keystore: Keystore): Uint8Array {
  const slot = keystore.meterKeys(0, 0);
  const key = crypto.hmacSha256(slot.uplink, new TextEncoder().encode('ParkLink card token key v1'));
  slot.uplink.fill(0);
  slot.downlink.fill(0);
  return key;
}

const DUMMY_HASH = 'scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
