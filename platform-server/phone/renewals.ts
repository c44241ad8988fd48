// Pay by phone's renewals: priced through Pricing, paid (payments.ts), sent to the meter as downlink
// 0x86 and resent while the meter is unreachable, settled by its ack 0x06 (the final confirmation
// only once the meter has applied it), voided and refunded when its validity window ends first.
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { formatMoney } from '../../firmware/units/format';
import { FRAME_VERSION, sealFrame } from '../../protocol/frame';
import { MAX_HISTORY, type PriorPurchase } from '../../protocol/tariff';
import { decodeRenewalAck, encodeRenewal, RENEWAL_FRAME } from '../../protocol/renewal';
import { downlinkTopic } from '../../protocol/topics';
import { frameKeys } from '../keys/keystore';
import type { UplinkHandler } from '../ingest/gate';
import { sendPacketsAtOnce } from '../core/broker';
import type { Queryable } from '../core/db';
import type { PhoneContext } from './context';
import {
  type AlertChannel,
  type CardRow,
  type DriverRow,
  newRenewalId,
  PhoneError,
  type RenewalRow,
  type RenewalView,
  recipientOf,
  type SessionRow,
  seconds,
  VOID_MARGIN_MS,
} from './model';
import type { Payments } from './payments';
import { type ExtensionChoice, extensionChoices } from './pricing';

export class Renewals {
  readonly #c: PhoneContext;
  readonly #payments: Payments;
  #client: MqttClient | undefined;

  constructor(context: PhoneContext, payments: Payments) {
    this.#c = context;
    this.#payments = payments;
  }

  /** Connects the downlink publisher. */
  async start(): Promise<void> {
    const client = mqtt.connect(this.#c.options.brokerUrl, {
      clientId: `parklink-phone-${process.pid}-${randomBytes(4).toString('hex')}`,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
    });
    sendPacketsAtOnce(client);
    client.on('error', (error) => this.#c.options.logger.error({ err: error }, 'phone MQTT error'));
    this.#client = client;
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
  }

  /** Disconnects the downlink publisher (after the service's work in flight). */
  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (client) await client.endAsync();
  }

  /**
   * The extensions a driver's active session can be given now, priced by the meter's tariff: the
   * usual durations that fit what is left of the stay, and the most that can be added.
   */
  async extensionChoices(
    driverId: number,
    sessionId: number,
  ): Promise<{ choices: ExtensionChoice[]; maxMinutes: number }> {
    const session = (
      await this.#c.db.query<SessionRow>(
        "SELECT * FROM phone_sessions WHERE id = $1 AND driver_id = $2 AND status = 'active'",
        [sessionId, driverId],
      )
    ).rows[0];
    if (!session)
      throw new PhoneError(404, 'no-session', `session ${sessionId} is not an active session of yours`);
    const now = this.#c.now();
    const { pricing } = this.#c.options;
    const zone = pricing.historyZone?.(session.meter_id);
    const request = {
      meterId: session.meter_id,
      bayId: session.bay_id,
      start: Math.max(Math.floor(now / 1000), Math.floor(session.paid_until.getTime() / 1000)),
      paidMinutes: session.paid_minutes,
      ...(zone ? { history: await this.#history(driverId, zone, now) } : {}),
    };
    return { choices: extensionChoices(pricing, request), maxMinutes: pricing.maxMinutes(request) };
  }

  /** Prices, pays and sends a renewal to the meter; the confirmation follows the meter's ack. */
  async renew(
    driverId: number,
    request: { sessionId?: number; minutes?: number; channel: 'app' | 'sms' | 'voice' | 'auto' },
  ): Promise<RenewalView> {
    const driver = (await this.#c.db.query<DriverRow>('SELECT * FROM drivers WHERE id = $1', [driverId]))
      .rows[0];
    if (!driver) throw new PhoneError(404, 'no-driver', 'account not found');
    const minutes = request.minutes ?? driver.auto_minutes;
    const now = this.#c.now();
    const sessions = await this.#c.db.query<SessionRow>(
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
    const pending = await this.#c.db.query('SELECT id FROM renewals WHERE session_id = $1 AND status = $2', [
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
    const { pricing } = this.#c.options;
    const zone = pricing.historyZone?.(session.meter_id);
    const quote = pricing.quote({
      meterId: session.meter_id,
      bayId: session.bay_id,
      start,
      minutes,
      paidMinutes: session.paid_minutes,
      ...(zone ? { history: await this.#history(driverId, zone, now) } : {}),
    });
    if (!quote.ok)
      throw new PhoneError(422, quote.reason, `cannot extend: ${quote.message}`, quote.maxMinutes);
    // What the charge buys: a tariff selling in units gives the whole unit it charges for.
    const sold = quote.minutes;

    const card = await this.#fundingCard(session);
    const id = newRenewalId();
    const { funding, authorisation, provider, ledgerEntry } = await this.#payments.pay(card, {
      amount: quote.amount,
      currency: quote.currency,
      reference: id,
      description: `ParkLink: ${sold} min at bay ${session.bay_id}, meter ${session.meter_id}`,
    });
    const validUntil = now + (this.#c.options.renewalValidityMs ?? 10 * 60_000);
    await this.#c.db.query(
      `INSERT INTO renewals (id, session_id, driver_id, meter_id, bay_id, minutes, charge, currency, card_id, funding,
                             authorisation, channel, status, requested_at, valid_until, payment_provider, ledger_entry)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'sent', $13, $14, $15, $16)`,
      [
        id,
        session.id,
        driverId,
        session.meter_id,
        session.bay_id,
        sold,
        quote.amount,
        quote.currency,
        card.id,
        funding,
        authorisation,
        request.channel,
        new Date(now),
        new Date(validUntil),
        provider,
        ledgerEntry,
      ],
    );
    await this.#sendRenewal(id);
    return this.renewal(driverId, id);
  }

  /**
   * The driver's earlier purchases in the zone's meters (a tariff's cap per period and no-return
   * rules): the meters' transactions paid with any of the driver's cards, and the renewals the meters
   * applied, over the last eight days, at most MAX_HISTORY of the latest. A meter's transaction counts
   * whole in the cap period its paid time starts in, as the meter counts it after a restart.
   */
  async #history(driverId: number, zone: readonly number[], now: number): Promise<PriorPurchase[]> {
    const rows = await this.#c.db.query<{ start: Date; end: Date; amount: string | number }>(
      `SELECT * FROM (
         SELECT t.paid_from AS start, t.paid_until AS "end", t.charge AS amount
           FROM transactions t
          WHERE t.meter_id = ANY($2::bigint[]) AND t.paid_until > $3
            AND t.card_token IN (SELECT token FROM driver_cards WHERE driver_id = $1)
         UNION ALL
         SELECT r.paid_until - make_interval(mins => r.minutes), r.paid_until, r.charge
           FROM renewals r
          WHERE r.driver_id = $1 AND r.status = 'applied' AND r.paid_until IS NOT NULL
            AND r.meter_id = ANY($2::bigint[]) AND r.paid_until > $3
       ) h ORDER BY "end" DESC LIMIT $4`,
      [driverId, [...zone], new Date(now - 8 * 86_400_000), MAX_HISTORY],
    );
    return rows.rows.map((r) => ({
      start: Math.floor(r.start.getTime() / 1000),
      end: Math.floor(r.end.getTime() / 1000),
      amount: Number(r.amount),
    }));
  }

  async #fundingCard(session: SessionRow): Promise<CardRow> {
    const rows = await this.#c.db.query<CardRow>(
      `SELECT c.* FROM driver_cards c
        WHERE c.removed_at IS NULL AND c.driver_id = $1 AND c.verified_at IS NOT NULL
          AND (c.id = (SELECT pays_with FROM driver_cards WHERE id = $2) OR c.renewal OR c.id = $2)
        ORDER BY (c.id = (SELECT pays_with FROM driver_cards WHERE id = $2)) DESC NULLS LAST, c.renewal DESC, c.id`,
      [session.driver_id, session.card_id],
    );
    if (!rows.rows[0]) throw new PhoneError(409, 'no-card', 'no card on your account can pay this renewal');
    return rows.rows[0];
  }

  /** Seals and publishes the renewal downlink (again, for a resend); no-op unless still 'sent'. */
  async #sendRenewal(id: string): Promise<void> {
    const row = await this.#c.db.query<RenewalRow>('SELECT * FROM renewals WHERE id = $1', [id]);
    const r = row.rows[0];
    if (r?.status !== 'sent' || !this.#client) return;
    const downlink = await this.#c.options.meters.nextDownlink(r.meter_id);
    if (!downlink) return;
    const keys = frameKeys(this.#c.options.keystore, r.meter_id, downlink.epoch);
    keys.uplink.fill(0);
    const body = encodeRenewal({
      id: r.id,
      bayId: r.bay_id,
      minutes: r.minutes,
      charge: r.charge,
      currency: r.currency,
      authorisation: r.authorisation,
      validUntil: Math.floor(r.valid_until.getTime() / 1000),
    });
    const header = {
      version: FRAME_VERSION,
      type: RENEWAL_FRAME,
      meterId: r.meter_id,
      epoch: downlink.epoch,
      seq: downlink.seq,
    };
    const frame = sealFrame(this.#c.crypto, keys.downlink, header, body);
    keys.downlink.fill(0);
    await this.#c.options.keepDownlink?.({ ...header, frame }, body);
    await this.#c.db.query('UPDATE renewals SET sent_at = $2, send_count = send_count + 1 WHERE id = $1', [
      id,
      new Date(this.#c.now()),
    ]);
    await this.#client.publishAsync(downlinkTopic(r.meter_id), Buffer.from(frame), { qos: 1 });
    this.#c.emit('renewal-sent', { id, meterId: r.meter_id });
  }

  /** Ingest route for uplink frames 0x06: the meter's answer to a renewal. Never throws. */
  /**
   * Ingest's handler for 0x06 (route): a frame the gate verified (authenticated, not a replay) is
   * decoded in the transaction that accepts it; the renewal is settled after that commit, in its own.
   */
  onRenewalAck: UplinkHandler = async ({ meterId, body }) => {
    const ack = decodeRenewalAck(body);
    return async () => {
      try {
        await this.#c.track(this.#settle(meterId, ack.id, ack.status, ack.paidUntil, ack.reason));
      } catch (error) {
        this.#c.options.logger.warn({ err: error, meterId, renewal: ack.id }, 'renewal ack not settled');
      }
    };
  };

  async #settle(
    meterId: number,
    id: string,
    status: string,
    paidUntil: number,
    reason: string,
  ): Promise<void> {
    const now = this.#c.now();
    const applied = status === 'applied' || status === 'duplicate';
    const outcome = await this.#c.db.transaction(async (tx) => {
      const row = await tx.query<RenewalRow>(
        'SELECT * FROM renewals WHERE id = $1 AND meter_id = $2 FOR UPDATE',
        [id, meterId],
      );
      const r = row.rows[0];
      if (!r) throw new Error(`meter ${meterId} acknowledged unknown renewal ${id}`);
      if (r.status !== 'sent') {
        if (r.status === 'voided' && applied)
          this.#c.options.logger.error({ renewal: id, meterId }, 'a voided renewal was applied by the meter');
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
        await this.#c.outbox.enqueue(tx, {
          driverId: driver.id,
          channel,
          recipient: recipientOf(driver, channel),
          kind: 'confirmation',
          renewalId: id,
          body:
            `ParkLink: confirmed. Bay ${r.bay_id} at meter ${meterId} now paid until ${this.#c.hhmm(paidUntil)}. ` +
            `Charged ${formatMoney(r.charge, r.currency)} (auth ${r.authorisation}).`,
        });
        return { applied: true as const, r };
      }
      await tx.query("UPDATE renewals SET status = 'refused', reason = $2 WHERE id = $1", [
        id,
        reason || 'refused by the meter',
      ]);
      await endUnstarted(tx, r.session_id, now);
      await this.#c.outbox.enqueue(tx, {
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
    if (outcome.applied) this.#c.emit('renewal-applied', { id, meterId, paidUntil });
    else {
      await this.#refund(outcome.r);
      this.#c.emit('renewal-refused', { id, reason });
    }
    void this.#c.track(this.#c.outbox.deliverDue());
  }

  /** The meter came back (ingest accepted an uplink from it): send what it has not acknowledged. */
  onMeterSeen = (meterId: number): void => {
    this.onMetersSeen([meterId]);
  };

  /** Meters just heard from (one query for a batch): renewals they have not acknowledged go again. */
  onMetersSeen(meterIds: readonly number[]): void {
    if (this.#c.closed || meterIds.length === 0) return;
    void this.#c.track(
      (async () => {
        const pending = await this.#c.db.query<{ id: string }>(
          "SELECT id FROM renewals WHERE meter_id = ANY($1::bigint[]) AND status = 'sent' AND sent_at < $2",
          [[...new Set(meterIds)], new Date(this.#c.now() - 2_000)],
        );
        for (const { id } of pending.rows) await this.#sendRenewal(id);
      })().catch((error) => this.#c.options.logger.warn({ err: error, meterIds }, 'renewal resend failed')),
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
    const rows = await this.#c.db.query<RenewalRow & { last4: string }>(
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

  async #void(r: RenewalRow): Promise<void> {
    const voided = await this.#c.db.query(
      "UPDATE renewals SET status = 'voided', reason = 'meter unreachable' WHERE id = $1 AND status = 'sent' RETURNING id",
      [r.id],
    );
    if (voided.rowCount === 0) return;
    await endUnstarted(this.#c.db, r.session_id, this.#c.now());
    await this.#refund(r);
    const driver = (await this.#c.db.query<DriverRow>('SELECT * FROM drivers WHERE id = $1', [r.driver_id]))
      .rows[0];
    const channel: AlertChannel =
      r.channel === 'sms' || r.channel === 'voice' || r.channel === 'app' ? r.channel : driver.alert_channel;
    await this.#c.outbox.enqueue(this.#c.db, {
      driverId: driver.id,
      channel,
      recipient: recipientOf(driver, channel),
      kind: 'voided',
      renewalId: r.id,
      body: `ParkLink: the meter at bay ${r.bay_id} could not be reached, so your renewal was cancelled and ${formatMoney(r.charge, r.currency)} refunded. Please pay at the meter.`,
    });
    this.#c.emit('renewal-voided', { id: r.id });
  }

  /**
   * Refunds a voided or refused renewal for real (provider refund or ledger reversal) and marks it
   * refunded only once that is done; a refund that could not be done now stays for the next tick.
   */
  async #refund(r: RenewalRow): Promise<void> {
    try {
      const refundId = await this.#payments.refund(r);
      if (refundId === null) return;
      await this.#c.db.query(
        'UPDATE renewals SET refunded_at = $2, refund_id = $3 WHERE id = $1 AND refunded_at IS NULL',
        [r.id, new Date(this.#c.now()), refundId],
      );
    } catch (error) {
      this.#c.options.logger.error(
        { err: error, renewal: r.id },
        'renewal refund failed: tried again on the next tick',
      );
    }
  }

  /**
   * The scheduler's part: renewals past their validity are voided, refunds not yet done are tried
   * again, the unacknowledged are sent again.
   */
  async tick(now: number): Promise<void> {
    const stale = await this.#c.db.query<RenewalRow>(
      "SELECT * FROM renewals WHERE status = 'sent' AND valid_until < $1",
      [new Date(now - VOID_MARGIN_MS)],
    );
    for (const r of stale.rows) await this.#void(r);

    const unrefunded = await this.#c.db.query<RenewalRow>(
      "SELECT * FROM renewals WHERE status IN ('voided', 'refused') AND refunded_at IS NULL LIMIT 100",
    );
    for (const r of unrefunded.rows) await this.#refund(r);

    const resend = await this.#c.db.query<{ id: string }>(
      "SELECT id FROM renewals WHERE status = 'sent' AND valid_until > $1 AND sent_at < $2",
      [new Date(now), new Date(now - (this.#c.options.resendAfterMs ?? 30_000))],
    );
    for (const { id } of resend.rows) await this.#sendRenewal(id).catch(() => {});
  }
}

/**
 * A session started from the app (no tap: no transaction record) whose first time never reached
 * the meter ends: nothing was parked on it.
 */
async function endUnstarted(q: Queryable, sessionId: number, now: number): Promise<void> {
  await q.query(
    `UPDATE phone_sessions SET status = 'ended', end_reason = 'not-started', ended_at = $2
      WHERE id = $1 AND tx_seq IS NULL AND paid_minutes = 0 AND status = 'active'`,
    [sessionId, new Date(now)],
  );
}
