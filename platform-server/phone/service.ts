// Pay by phone, seed claims 18–19 and Fig. 7 steps 701–718: registered drivers and cards
// (accounts.ts), first-tap pairing from uplinked transactions (pairing.ts), alerts at the driver's
// lead time and SMS and voice replies (alerts.ts), the three renewal options and renewals priced
// through Pricing, sent as downlink 0x86 and settled by the ack 0x06, resent to offline meters until
// the validity window ends, then voided and refunded (renewals.ts), paid directly (credit, prepaid)
// or through the real-time path (debit) (payments.ts). This class is the one face of those parts.
import { EventEmitter } from 'node:events';
import { Accounts } from './accounts';
import { Alerts } from './alerts';
import type { Outbox } from './channels';
import { type Emit, PhoneContext } from './context';
import { deriveTokenKey, type PhoneClock, type PhoneEvents, type PhoneOptions } from './model';
import { Pairing } from './pairing';
import type { PaymentProvider } from '../payments/provider';
import { Payments } from './payments';
import { Starts } from './starts';
import { Renewals } from './renewals';

export {
  type AlertChannel,
  type CardView,
  type DriverView,
  isConnectionError,
  type MessageView,
  normalisePhone,
  type PhoneClock,
  PhoneError,
  type PhoneEvents,
  type PhoneOptions,
  type RenewalView,
  type RenewOption,
  type SessionView,
} from './model';
export type { PaymentProvider } from '../payments/provider';
export { PaymentSimulator } from '../payments/simulator';

export class PhoneService extends EventEmitter<PhoneEvents> {
  readonly outbox: Outbox;
  readonly clock: PhoneClock;
  readonly paymentProvider: PaymentProvider;
  /** The ledger of credit and prepaid accounts. */
  readonly ledger: Payments['ledger'];
  readonly #c: PhoneContext;
  readonly #accounts: Accounts;
  readonly #pairing: Pairing;
  readonly #renewals: Renewals;
  readonly #starts: Starts;
  readonly #alerts: Alerts;

  constructor(options: PhoneOptions) {
    super();
    const emit: Emit = (event, ...args) => {
      (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
    };
    this.#c = new PhoneContext(options, emit);
    this.outbox = this.#c.outbox;
    this.clock = this.#c.clock;
    const payments = new Payments(options.db, options.paymentProvider, options.logger, {
      defaultCreditLimit: options.defaultCreditLimit,
    });
    this.paymentProvider = payments.provider;
    this.ledger = payments.ledger;
    this.#accounts = new Accounts(
      this.#c,
      options.tokenKey ?? deriveTokenKey(this.#c.crypto, options.keystore),
    );
    this.#pairing = new Pairing(this.#c);
    this.#renewals = new Renewals(this.#c, payments);
    this.#starts = new Starts(this.#c, this.#renewals);
    this.#alerts = new Alerts(this.#c, {
      accounts: this.#accounts,
      pairing: this.#pairing,
      renewals: this.#renewals,
    });
    const a = this.#accounts;
    const p = this.#pairing;
    const r = this.#renewals;
    const al = this.#alerts;
    // Accounts and cards.
    this.tokenOf = a.tokenOf.bind(a);
    this.register = a.register.bind(a);
    this.login = a.login.bind(a);
    this.authenticate = a.authenticate.bind(a);
    this.logout = a.logout.bind(a);
    this.driver = a.driver.bind(a);
    this.updateSettings = a.updateSettings.bind(a);
    this.addCard = a.addCard.bind(a);
    this.cards = a.cards.bind(a);
    this.removeCard = a.removeCard.bind(a);
    this.updateCard = a.updateCard.bind(a);
    this.saveCardOnFile = a.saveCardOnFile.bind(a);
    // Pairing and sessions.
    this.onStored = p.onStored;
    this.onStoredBatch = p.onStoredBatch.bind(p);
    this.sweepPairings = p.sweepPairings.bind(p);
    this.settled = p.settled.bind(p);
    this.sessions = p.sessions.bind(p);
    // Renewals.
    this.renew = r.renew.bind(r);
    this.extensionChoices = r.extensionChoices.bind(r);
    this.quoteStart = this.#starts.quote.bind(this.#starts);
    this.startParking = this.#starts.start.bind(this.#starts);
    this.onRenewalAck = r.onRenewalAck;
    this.onMeterSeen = r.onMeterSeen;
    this.onMetersSeen = r.onMetersSeen.bind(r);
    this.renewal = r.renewal.bind(r);
    this.renewals = r.renewals.bind(r);
    // Alerts and replies.
    this.messages = al.messages.bind(al);
    this.handleSms = al.handleSms.bind(al);
    this.handleVoice = al.handleVoice.bind(al);
  }

  readonly tokenOf: Accounts['tokenOf'];
  readonly register: Accounts['register'];
  readonly login: Accounts['login'];
  readonly authenticate: Accounts['authenticate'];
  readonly logout: Accounts['logout'];
  readonly driver: Accounts['driver'];
  readonly updateSettings: Accounts['updateSettings'];
  readonly addCard: Accounts['addCard'];
  readonly cards: Accounts['cards'];
  readonly removeCard: Accounts['removeCard'];
  readonly updateCard: Accounts['updateCard'];
  readonly saveCardOnFile: Accounts['saveCardOnFile'];
  readonly onStored: Pairing['onStored'];
  readonly onStoredBatch: Pairing['onStoredBatch'];
  readonly sweepPairings: Pairing['sweepPairings'];
  readonly settled: Pairing['settled'];
  readonly sessions: Pairing['sessions'];
  readonly renew: Renewals['renew'];
  readonly extensionChoices: Renewals['extensionChoices'];
  readonly quoteStart: Starts['quote'];
  readonly startParking: Starts['start'];
  readonly onRenewalAck: Renewals['onRenewalAck'];
  readonly onMeterSeen: Renewals['onMeterSeen'];
  readonly onMetersSeen: Renewals['onMetersSeen'];
  readonly renewal: Renewals['renewal'];
  readonly renewals: Renewals['renewals'];
  readonly messages: Alerts['messages'];
  readonly handleSms: Alerts['handleSms'];
  readonly handleVoice: Alerts['handleVoice'];

  /** Records whose pairing failed, waiting for the next tick (in arrival order). */
  get pairingBacklog(): number {
    return this.#pairing.pairingBacklog;
  }

  /** Connects the downlink publisher. */
  async start(): Promise<void> {
    await this.#renewals.start();
  }

  async close(): Promise<void> {
    this.#c.closed = true;
    await Promise.allSettled([this.#pairing.close(), this.#c.inFlight()]);
    await this.#renewals.close();
  }

  /**
   * One pass of the scheduler at the injected clock's time: pairings to retry and sweep, lead-time
   * alerts and auto-extensions, grace alerts, expiries, resends, voids and refunds past the
   * validity window, outbox delivery.
   */
  async tick(): Promise<void> {
    if (this.#c.closed) return;
    const now = this.#c.now();
    await this.#pairing.retryAndSweep();
    await this.#alerts.tick(now);
    await this.#renewals.tick(now);
    await this.#c.outbox.deliverDue();
  }
}
