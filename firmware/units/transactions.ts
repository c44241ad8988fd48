// Transaction management (46): one sale at a time — the bay and service chosen on the buttons, the
// card presented, the blacklist checked, the card debited, the transaction recorded (seed claim 8),
// the bay's paid-until time extended. Every refusal is an operation record. The card number is read
// from the card and turned at once into its keyed token and last four digits (protocol/cardToken.ts):
// records, the blacklist and the bus see only those.
import type { Clock, TimerHandle, Timers } from '../../hal/clock';
import type { Preferences } from '../../hal/preferences';
import type { CardRef } from '../../protocol/cardToken';
import type { EventBus } from '../bus';
import type { KeyName, MeterEvents } from '../events';
import type { Bays } from './bays';
import type { BlacklistUnit } from './blacklist';
import { formatLocal } from '../../protocol/tariff/index';
import { formatReceiptCode, receiptCodeOf } from '../../protocol/receiptCode';
import type { ChargingUnit } from './charging';
import type { PurchaseHistory } from './purchaseHistory';
import type { MainRecord } from './records';
import {
  CardNotGenuine,
  type CardReaderPort,
  type CardSession,
  canPay,
  DebitUncertain,
  isExpired,
} from './rfid';

const POLL_MS = 250;
const CARD_WAIT_MS = 30_000;
const SELECTION_IDLE_MS = 60_000;

export interface TransactionOptions {
  bus: EventBus<MeterEvents>;
  bays: Bays;
  charging: ChargingUnit;
  /**
   * The card tokens' earlier purchases at this meter, for a tariff's maximum price per period and
   * "no return" rule; without it the meter prices every tap as a payer with no history.
   */
  history?: PurchaseHistory;
  blacklist: BlacklistUnit;
  records: MainRecord;
  /** Why payments are refused now (a tamper wipe until the re-key), from security management (47). */
  paymentBlock?: () => string | undefined;
  reader: CardReaderPort;
  /**
   * A card number's token and last four digits, under the fleet's card-token key (security
   * management); throws when the meter has no key. `cardTokensReady` says whether it has one.
   */
  cardRef: (cardNumber: string) => CardRef;
  cardTokensReady: () => boolean;
  /** Why cards cannot be authenticated now (the secure parts are out of service), or undefined. */
  cardsOutOfService?: () => string | undefined;
  clock: Clock;
  timers: Timers;
  preferences: Preferences;
}

type State =
  | { name: 'idle' }
  | { name: 'selecting'; bayIndex: number; minutes: number }
  | {
      name: 'awaiting-card';
      bayIndex: number;
      minutes: number;
      charge: number;
      since: number;
      /** Card type chosen on the buttons (0: any). */
      cardType: number;
    };

export class TransactionUnit {
  readonly #o: TransactionOptions;
  #state: State = { name: 'idle' };
  #poll: TimerHandle | undefined;
  #idle: TimerHandle | undefined;

  constructor(options: TransactionOptions) {
    this.#o = options;
    options.bus.on('key', ({ key }) => this.#onKey(key));
    options.bus.on('card-type-selected', ({ cardType }) => {
      if (this.#state.name === 'awaiting-card') this.#state.cardType = cardType;
    });
  }

  get state(): State['name'] {
    return this.#state.name;
  }

  #onKey(key: KeyName): void {
    const { bays, charging } = this.#o;
    const s = this.#state;
    if (s.name === 'awaiting-card') {
      if (key === 'cancel') this.#cancel('cancelled');
      return;
    }
    if (key === 'cancel') {
      if (s.name === 'selecting') this.#cancel('cancelled');
      return;
    }
    if (s.name === 'idle') {
      const blocked = this.#o.paymentBlock?.();
      if (blocked) {
        this.#o.bus.emit('service-unavailable', { reason: blocked });
        return;
      }
      // Storage full (seed: "must not allow access to purchase service time"): no sale starts.
      if (!this.#o.records.available) {
        this.#o.bus.emit('service-unavailable', { reason: 'storage full' });
        return;
      }
      this.#select(0, charging.initialMinutes(bays.ids[0], this.#nowSeconds(), bays.paidUntil(bays.ids[0])));
      return;
    }
    if (key === 'bay') this.#select((s.bayIndex + 1) % bays.ids.length, s.minutes);
    else if (key === 'up' || key === 'down') {
      const bayId = bays.ids[s.bayIndex];
      const now = this.#nowSeconds();
      const direction = key === 'up' ? 1 : -1;
      this.#select(s.bayIndex, charging.step(bayId, now, s.minutes, direction, bays.paidUntil(bayId)));
    } else if (key === 'ok') this.#awaitCard(s.bayIndex, s.minutes);
  }

  #nowSeconds(): number {
    return Math.floor(this.#o.clock.now() / 1000);
  }

  /** The first-payment price of `minutes` on a bay now (charging unit 43). */
  #quote(bayIndex: number, minutes: number) {
    const { bays, charging } = this.#o;
    const bayId = bays.ids[bayIndex];
    return charging.firstPayment(bayId, this.#nowSeconds(), minutes, bays.paidUntil(bayId));
  }

  #select(bayIndex: number, minutes: number): void {
    this.#state = { name: 'selecting', bayIndex, minutes };
    const q = this.#quote(bayIndex, minutes);
    this.#o.bus.emit('selection-changed', {
      bayId: this.#o.bays.ids[bayIndex],
      minutes,
      charge: q.ok ? q.amount : 0,
      ...(q.ok ? {} : { refusal: { reason: q.reason, message: q.message } }),
    });
    this.#armIdle(SELECTION_IDLE_MS);
  }

  #awaitCard(bayIndex: number, minutes: number): void {
    const { reader, timers, clock, bus, bays } = this.#o;
    const q = this.#quote(bayIndex, minutes);
    if (!q.ok) {
      this.#select(bayIndex, minutes); // nothing to sell here now: the display says why
      return;
    }
    const outOfService =
      reader.outOfService?.()?.message ??
      this.#o.cardsOutOfService?.() ??
      (this.#o.cardTokensReady() ? undefined : 'no card-token key: cards cannot be recorded');
    if (outOfService) {
      // No reader (or no SAM, or no card-token key), no card sale; renewals, downlinks and records
      // go on while the monitor repairs it.
      this.#refuse('cards-unavailable', 'Card payments unavailable.', null, outOfService);
      return;
    }
    const charge = q.amount;
    this.#state = { name: 'awaiting-card', bayIndex, minutes, charge, since: clock.monotonic(), cardType: 0 };
    reader.antenna(true);
    bus.emit('awaiting-card', { bayId: bays.ids[bayIndex], minutes, charge });
    this.#armIdle(CARD_WAIT_MS);
    this.#poll = timers.setInterval(() => this.#pollReader(), POLL_MS);
  }

  #pollReader(): void {
    const s = this.#state;
    if (s.name !== 'awaiting-card') return;
    let session: CardSession | undefined;
    try {
      session = this.#o.reader.detect();
    } catch (error) {
      if (error instanceof CardNotGenuine) {
        // Right UID, wrong key: refused, and the operation record reports the UID for the blacklist.
        this.#refuse('card-cloned', 'Card not accepted.', null, error.message);
        return;
      }
      this.#refuse('card-unreadable', `Card not accepted: ${(error as Error).message}`, null);
      return;
    }
    if (!session) return;
    try {
      this.#pay(s, session);
    } finally {
      session.end();
    }
  }

  #pay(s: Extract<State, { name: 'awaiting-card' }>, session: CardSession): void {
    const { blacklist, records, bays, clock, bus, charging } = this.#o;
    const card = session.card;
    const bayId = bays.ids[s.bayIndex];
    const now = clock.now();
    let ref: CardRef;
    try {
      ref = this.#o.cardRef(card.cardNumber);
    } catch (error) {
      this.#refuse('card-unreadable', 'Card not accepted.', null, (error as Error).message);
      return;
    }
    const reason = blacklist.check(ref.token);
    if (reason !== undefined) {
      this.#refuse('card-blacklisted', 'Card blocked. Please use another card.', ref, reason);
      return;
    }
    if (isExpired(card, now)) {
      this.#refuse('card-expired', 'Card expired.', ref);
      return;
    }
    if (s.cardType !== 0 && card.cardType !== s.cardType) {
      this.#refuse('card-type', 'Not the card type chosen.', ref);
      return;
    }
    if (card.currency !== charging.currency) {
      this.#refuse('card-currency', 'Card currency not accepted here.', ref);
      return;
    }
    // Priced again now: the price shown may no longer hold if a period boundary passed meanwhile.
    const nowSeconds = Math.floor(now / 1000);
    const shown = charging.firstPayment(bayId, nowSeconds, s.minutes, bays.paidUntil(bayId));
    if (!shown.ok || shown.amount !== s.charge) {
      this.#refuse('tariff-changed', 'Price changed. Please choose again.', ref);
      return;
    }
    // The card is known now: its earlier purchases here may refuse it (no return) or lower the price
    // (the cap per period), never raise it.
    const doc = charging.tariff.doc;
    const history =
      this.#o.history && (doc.maxPrice || doc.noReturnMinutes !== undefined)
        ? this.#o.history.of(ref.token, nowSeconds)
        : undefined;
    const q = history
      ? charging.firstPayment(bayId, nowSeconds, s.minutes, bays.paidUntil(bayId), history)
      : shown;
    if (!q.ok) {
      const back = q.at === undefined ? '' : ` before ${formatLocal(charging.tariff.tz, q.at).slice(11, 16)}`;
      this.#refuse(q.reason, q.reason === 'no-return' ? `No return${back}.` : q.message, ref, q.message);
      return;
    }
    const charge = q.amount;
    if (!canPay(card, charge)) {
      this.#refuse('insufficient-funds', 'Not enough value on the card.', ref);
      return;
    }
    if (!records.available) {
      this.#refuse('service-unavailable', 'Meter unavailable. No charge made.', ref);
      return;
    }
    const blocked = this.#o.paymentBlock?.();
    if (blocked) {
      this.#refuse('service-unavailable', 'Meter unavailable. No charge made.', ref, blocked);
      return;
    }
    let debited: { balance: number; counter: number };
    try {
      // Nothing to take once the cap is reached: the card is not written, the sale is recorded.
      debited = charge > 0 ? session.debit(charge) : { balance: card.balance, counter: card.counter };
    } catch (error) {
      if (error instanceof DebitUncertain) {
        // Torn by the card leaving: the card debited whole or not at all. Keep waiting for it; the
        // reader resolves the debit when it comes back (drivers/rfid/purse.ts anti-tearing).
        records.appendOperation('debit-uncertain', (error as Error).message, ref);
        bus.emit('payment-refused', {
          reason: 'debit-uncertain',
          message: 'Hold the card to the reader again.',
          cardLast4: ref.last4,
        });
        return;
      }
      this.#refuse('debit-failed', 'Card not debited. Please try again.', ref, (error as Error).message);
      return;
    }
    const { paidFrom, paidUntil } = q;
    const record = records.appendTransaction({
      transactionNumber: this.#nextTransactionNumber(),
      card: ref,
      cardExpiry: `${pad2(card.expiry.year % 100)}${pad2(card.expiry.month)}`,
      cardType: card.cardType,
      bayId,
      minutes: q.minutes,
      paidFrom,
      paidUntil,
      charge,
      currency: card.currency,
      remainingValue: debited.balance,
      tariffRule: q.tariff.version,
    });
    this.#o.history?.add(ref.token, q.capShares ?? [{ start: paidFrom, end: paidUntil, amount: charge }]);
    bays.setPaidUntil(bayId, paidUntil);
    this.#finish();
    const link = records.linkOf(record.seq);
    bus.emit('payment-accepted', {
      bayId,
      minutes: q.minutes,
      charge,
      paidUntil,
      remainingValue: debited.balance,
      cardLast4: ref.last4,
      ...(link ? { receiptCode: formatReceiptCode(receiptCodeOf(record.meterId, record.seq, link)) } : {}),
    });
  }

  #refuse(reason: string, message: string, card: CardRef | null, detail = ''): void {
    this.#o.records.appendOperation(reason, detail || message, card);
    this.#finish();
    this.#o.bus.emit('payment-refused', { reason, message, cardLast4: card?.last4 ?? null });
  }

  #cancel(reason: string): void {
    this.#finish();
    this.#o.bus.emit('selection-cancelled', { reason });
  }

  #finish(): void {
    const { timers, reader } = this.#o;
    timers.clear(this.#poll);
    timers.clear(this.#idle);
    this.#poll = undefined;
    this.#idle = undefined;
    if (this.#state.name === 'awaiting-card') reader.antenna(false);
    this.#state = { name: 'idle' };
  }

  #armIdle(ms: number): void {
    this.#o.timers.clear(this.#idle);
    this.#idle = this.#o.timers.setTimeout(() => this.#cancel('timeout'), ms);
  }

  #nextTransactionNumber(): number {
    const { preferences } = this.#o;
    const last = preferences.get('tx', 'number');
    const next = (typeof last === 'number' ? last : 0) + 1;
    preferences.set('tx', 'number', next);
    return next;
  }
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}
