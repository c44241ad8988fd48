// Pay by phone's pairing: a registered card's first tap at a meter (an uplinked sale) opens a
// parking session the driver can then follow and renew; the next user at the bay ends it; remote
// renewal records are reconciled. Records are looked at in order, in batches, and a pairing lost to
// a database outage is tried again on the next tick (and swept up from the records if the instance
// stopped in between).
import { toHex } from '../../protocol/bytes';
import { CARD_TOKEN_LENGTH } from '../../protocol/cardToken';
import { decodeRecord, type MeterRecord, RecordKind } from '../../protocol/records';
import { formatMoney } from '../../firmware/units/format';
import type { StoredRecord } from '../ingest/gate';
import { arrayLiteral } from '../ingest/store';
import type { PhoneContext } from './context';
import {
  type CardRow,
  type DriverRow,
  isConnectionError,
  MAX_PAIRING_ATTEMPTS,
  MAX_PAIRING_BACKLOG,
  recipientOf,
  type SessionRow,
  type SessionView,
  seconds,
} from './model';

export class Pairing {
  readonly #c: PhoneContext;
  #chain: Promise<unknown> = Promise.resolve();
  #retry: { stored: StoredRecord; failures: number }[] = [];

  constructor(context: PhoneContext) {
    this.#c = context;
  }

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
    if (this.#c.closed || records.length === 0) return;
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
    await this.#c.db.query(
      `INSERT INTO phone_pairing_marks (meter_id, last_seq)
       SELECT m, CASE WHEN f = 1 THEN l ELSE 0 END FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(m, f, l)
       ON CONFLICT (meter_id) DO NOTHING`,
      columns,
    );
    await this.#c.db.query(
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
    const marks = await this.#c.db.query<{ meter_id: number; last_seq: number }>(
      'SELECT meter_id, last_seq FROM phone_pairing_marks',
    );
    const rows = await this.#c.options.meters.recordsAfter(
      marks.rows.map((m) => ({ meterId: m.meter_id, after: m.last_seq })),
      {
        olderThanSeconds: (this.#c.options.pairingSweepAfterMs ?? 60_000) / 1000,
        perMeter: 1000,
        limit: 5000,
      },
    );
    if (rows.length === 0) return 0;
    const batch: StoredRecord[] = rows.map((r) => ({
      meterId: r.meterId,
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
    await this.#c.db.query(
      `UPDATE phone_pairing_marks p SET last_seq = greatest(p.last_seq, u.l)
         FROM unnest($1::bigint[], $2::bigint[]) AS u(m, l) WHERE p.meter_id = u.m`,
      [[...last.keys()], [...last.values()]],
    );
    this.#c.options.logger.warn(
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
    if (this.#c.closed || (!transient && failures + 1 >= MAX_PAIRING_ATTEMPTS)) {
      this.#c.options.logger.error(where, 'pairing failed; record dropped from pairing');
    } else if (this.#retry.length >= MAX_PAIRING_BACKLOG) {
      this.#c.options.logger.error(where, 'pairing failed; retry backlog full, record dropped from pairing');
    } else {
      this.#c.options.logger.warn(where, 'pairing failed; will retry on the next tick');
      this.#retry.push({ stored, failures: failures + 1 });
    }
  }

  /**
   * The records of a batch that pay by phone must look at, in order: sales with a registered card or
   * at a bay with an active session (the next user ends it), sales at a bay an earlier record of the
   * batch looked at, and remote-renewal operation records.
   */
  async #concerningPhone(batch: readonly StoredRecord[]): Promise<StoredRecord[]> {
    // The batch's sales, their card tokens side by side in one byte string: the database says which
    // of them are registered cards by position, so no token is turned into text here (this runs
    // for every sale the fleet uploads).
    const sales: number[] = [];
    const cards: Uint8Array[] = [];
    const meters = new Set<number>();
    for (let i = 0; i < batch.length; i++) {
      const { record, meterId } = batch[i];
      if (record.kind !== RecordKind.Transaction) continue;
      sales.push(i);
      cards.push(record.data.card.token);
      meters.add(meterId);
    }
    const registered = new Set<number>();
    const watchedBays = new Set<string>();
    if (sales.length > 0) {
      // Every token is CARD_TOKEN_LENGTH bytes (decodeRecord checks), so sale k's starts at k times it.
      const tokens = Buffer.concat(cards);
      // The tokens as an array first, so the cards are found through their index by token (a
      // probe per sale), not by hashing the whole table against the sales.
      const hits = await this.#c.db.query<{ sale: number | null; bay: string | null }>(
        `WITH sale AS (
           SELECT k, encode(substring($1::bytea FROM k * $3::int + 1 FOR $3::int), 'hex') AS token
             FROM generate_series(0, length($1::bytea) / $3::int - 1) AS k),
         held AS (
           SELECT DISTINCT token FROM driver_cards
            WHERE removed_at IS NULL AND token = ANY (ARRAY(SELECT token FROM sale)))
         SELECT s.k AS sale, NULL AS bay FROM sale s JOIN held USING (token)
         UNION ALL
         SELECT NULL, meter_id || ':' || bay_id FROM phone_sessions WHERE status = 'active' AND meter_id = ANY($2::bigint[])`,
        [tokens, arrayLiteral([...meters]), CARD_TOKEN_LENGTH],
      );
      for (const { sale, bay } of hits.rows) {
        if (sale !== null) registered.add(sales[sale]);
        else if (bay !== null) watchedBays.add(bay);
      }
    }
    const relevant: StoredRecord[] = [];
    for (let i = 0; i < batch.length; i++) {
      const stored = batch[i];
      const { record } = stored;
      if (record.kind === RecordKind.Operation) {
        if (record.data.code === 'remote-renewal') relevant.push(stored);
        continue;
      }
      // Nothing watched (the usual batch): none of its sales concerns pay by phone.
      if (record.kind !== RecordKind.Transaction || (registered.size === 0 && watchedBays.size === 0))
        continue;
      const bay = `${stored.meterId}:${record.data.bayId}`;
      if (registered.has(i) || watchedBays.has(bay)) {
        relevant.push(stored);
        watchedBays.add(bay); // a session may start here: a later sale at the bay must be looked at too
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
    const token = toHex(d.card.token);
    const now = this.#c.now();
    const paired = await this.#c.db.transaction(async (tx) => {
      // Only the verified holder of the token pairs. With none (the holder removed the card), the
      // oldest claim is verified by this tap, as a registration with no holder would have been.
      let card = await tx.query<CardRow>(
        'SELECT * FROM driver_cards WHERE token = $1 AND removed_at IS NULL AND verified_at IS NOT NULL',
        [token],
      );
      if (card.rows.length === 0)
        card = await tx.query<CardRow>(
          `UPDATE driver_cards SET verified_at = $2 WHERE id = (
             SELECT id FROM driver_cards WHERE token = $1 AND removed_at IS NULL AND verified_at IS NULL
              ORDER BY created_at, id LIMIT 1 FOR UPDATE)
           RETURNING *`,
          [token, new Date(now)],
        );
      const active = await tx.query<SessionRow>(
        "SELECT * FROM phone_sessions WHERE meter_id = $1 AND bay_id = $2 AND status = 'active' FOR UPDATE",
        [meterId, d.bayId],
      );
      const earlier = active.rows[0];
      // An older record arriving late: before the session's first sale, or (started from the app,
      // with no sale) before the session started.
      const older = earlier
        ? earlier.tx_seq !== null
          ? earlier.tx_seq >= record.seq
          : record.time * 1000 < earlier.paid_from.getTime()
        : false;
      if (older) return undefined;
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
      await this.#c.outbox.enqueue(tx, {
        driverId: driver.id,
        channel,
        recipient: recipientOf(driver, channel),
        kind: 'receipt',
        body:
          `ParkLink receipt: bay ${d.bayId} at meter ${meterId} paid until ${this.#c.hhmm(d.paidUntil)} ` +
          `(${formatMoney(d.charge, d.currency)}, card ending ${own.last4}). ` +
          `We will alert you ${driver.lead_minutes} min before it ends.` +
          (channel === 'sms' ? ' Reply EXTEND 30 at any time to add 30 minutes.' : ''),
      });
      return { sessionId: session.rows[0].id, driverId: driver.id };
    });
    if (paired) {
      this.#c.emit('paired', { ...paired, meterId, bayId: d.bayId });
      void this.#c.track(this.#c.outbox.deliverDue());
    }
  }

  async #reconcileRenewalRecord(meterId: number, record: Extract<MeterRecord, { kind: 2 }>): Promise<void> {
    if (record.data.code !== 'remote-renewal') return;
    const id = /(?:^| )id=([0-9a-z]+)/.exec(record.data.detail)?.[1];
    if (!id) return;
    await this.#c.db.query('UPDATE renewals SET record_seq = $3 WHERE id = $1 AND meter_id = $2', [
      id,
      meterId,
      record.seq,
    ]);
  }

  async sessions(driverId: number, which: 'active' | 'all' = 'all'): Promise<SessionView[]> {
    const rows = await this.#c.db.query<
      SessionRow & { last4: string; grace_minutes: number; pending: string | null }
    >(
      `SELECT s.*, c.last4, d.grace_minutes,
              (SELECT r.id FROM renewals r WHERE r.session_id = s.id AND r.status = 'sent' LIMIT 1) AS pending
         FROM phone_sessions s JOIN driver_cards c ON c.id = s.card_id
         JOIN drivers d ON d.id = s.driver_id
        WHERE s.driver_id = $1 AND ($2::text = 'all' OR s.status = 'active')
        ORDER BY s.created_at DESC, s.id DESC LIMIT 100`,
      [driverId, which],
    );
    const names = await this.#c.options.meters.names(rows.rows.map((s) => s.meter_id));
    return rows.rows.map((s) => ({
      id: s.id,
      meterId: s.meter_id,
      meterName: names.get(Number(s.meter_id)) ?? '',
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
      plate: s.plate,
    }));
  }

  async activeSession(driverId: number): Promise<SessionRow | undefined> {
    const row = await this.#c.db.query<SessionRow>(
      "SELECT * FROM phone_sessions WHERE driver_id = $1 AND status = 'active' ORDER BY created_at DESC, id DESC LIMIT 1",
      [driverId],
    );
    return row.rows[0];
  }

  /**
   * The scheduler's part: pairings that failed (database outage) go again first, in their order,
   * before newer records; then the sweep, in the pairing chain, so a swept record and a live one of
   * the same bay never interleave.
   */
  async retryAndSweep(): Promise<void> {
    const again = this.#retry;
    this.#retry = [];
    if (again.length > 0) this.#queueBatch(again);
    await this.settled();
    const sweep = this.#chain.then(() => this.sweepPairings());
    this.#chain = sweep.catch(() => {});
    await sweep;
  }

  /** Waits for the records in hand. */
  async close(): Promise<void> {
    await this.#chain.catch(() => {});
  }
}
