// Phone renewals paid for real, on both backends: debit cards charged off-session through the Stripe
// adapter (against the local server with Stripe's documented responses), credit and prepaid cards
// charged on the ledger; a renewal voided when its meter stays away is refunded for real (a Stripe
// refund, a ledger reversal), and a refund that fails is tried again until it is done. Also: the
// platform refuses to start outside demo mode without a payment provider.
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/mock/clock';
import { ConfigError } from '../../platform-server/core/errors';
import { type Database, openDatabase } from '../../platform-server/core/db';
import { migrate } from '../../platform-server/core/migrations';
import { keystoreFromHex } from '../../platform-server/keys/keystore';
import type { PaymentProvider, RefundRequest, RefundResult } from '../../platform-server/payments/provider';
import { PaymentSimulator } from '../../platform-server/payments/simulator';
import { StripeProvider } from '../../platform-server/payments/stripe';
import { paymentsCheck, phoneConfigFromEnv, SIMULATED_PAYMENTS_NOTICE } from '../../platform-server/phone';
import { type PhoneService, PhoneError } from '../../platform-server/phone/service';
import { createPlatform } from '../../platform-server/platform';
import { forEachBackend, quietLogger, randomMeterId } from '../../sim/fleet/platform';
import { withCheckDigit } from '../../sim/fleet/cards';
import { standalonePhoneService } from '../phone/support';
import { StripeDouble } from './stripeDouble';

/** The simulator, whose refunds fail (no answer) the first `failures` times. */
class FlakyRefunds extends PaymentSimulator {
  constructor(public failures: number) {
    super();
  }
  override async refund(request: RefundRequest): Promise<RefundResult> {
    if (this.failures-- > 0) return { outcome: 'unavailable', message: 'no answer' };
    return super.refund(request);
  }
}

const refusedWith =
  (code: string, status = 402) =>
  (error: unknown) =>
    error instanceof PhoneError && error.code === code && error.statusCode === status;

forEachBackend('payments: phone renewals paid through the provider and the ledger', (backend) => {
  const keystore = keystoreFromHex('42'.repeat(32));
  let clock: VirtualClock;
  let drop: () => Promise<void>;
  let db: Database;
  let stripeApi: StripeDouble;
  let driverId: number;
  let cardCount = 0;

  before(async function () {
    this.timeout(120_000);
    const fresh = await backend.fresh();
    drop = fresh.drop;
    db = await openDatabase({ url: fresh.config.databaseUrl });
    await migrate(db);
    stripeApi = new StripeDouble();
    await stripeApi.start();
  });
  after(async () => {
    await stripeApi?.close();
    await db?.close();
    await drop?.();
  });

  function serviceWith(provider: PaymentProvider): PhoneService {
    clock = new VirtualClock('2026-06-01T09:00:00Z');
    return standalonePhoneService(db, keystore, {
      clock,
      paymentProvider: provider,
      defaultCreditLimit: 1_000,
    });
  }

  const stripe = () =>
    new StripeProvider({
      secretKey: 'sk_test_parklink',
      host: '127.0.0.1',
      port: stripeApi.port,
      protocol: 'http',
      timeoutMs: 2_000,
      maxNetworkRetries: 0,
    });

  /** A new card of the driver with an active session at a new meter, paid until 15 minutes from now. */
  async function parked(
    service: PhoneService,
    cardType: 1 | 2 | 3,
  ): Promise<{ cardId: number; sessionId: number }> {
    if (driverId === undefined) {
      const { driver } = await service.register({
        name: 'Paying Driver',
        phone: '+447700900555',
        email: 'pays@example.org',
        password: 'correct horse battery',
      });
      driverId = driver.id;
    }
    cardCount++;
    const card = await service.addCard(driverId, {
      cardNumber: withCheckDigit(`62801234${String(cardCount).padStart(7, '0')}`),
    });
    // What the card's first tap at a meter would have told (pairing.ts).
    await db.query('UPDATE driver_cards SET card_type = $2 WHERE id = $1', [card.id, cardType]);
    const meterId = randomMeterId();
    await db.query('INSERT INTO meters (id, name, key_epoch) VALUES ($1, $2, 1)', [meterId, 'pay']);
    const now = clock.now();
    const session = await db.query<{ id: number }>(
      `INSERT INTO phone_sessions (driver_id, card_id, meter_id, bay_id, tx_seq, paid_from, paid_until, paid_minutes,
                                   first_charge, currency, created_at)
       VALUES ($1, $2, $3, 2, 1, $4, $5, 15, 60, 826, $4) RETURNING id`,
      [driverId, card.id, meterId, new Date(now), new Date(now + 15 * 60_000)],
    );
    return { cardId: card.id, sessionId: session.rows[0].id };
  }

  /** Past the renewal's validity and the void margin: the scheduler voids and refunds it. */
  async function meterStaysAway(service: PhoneService): Promise<void> {
    clock.advance(12 * 60_000);
    await service.tick();
  }

  it('a debit renewal is charged off-session on the card on file; voided, it is refunded at Stripe', async () => {
    const service = serviceWith(stripe());
    try {
      const { cardId, sessionId } = await parked(service, 1);
      await service.saveCardOnFile(driverId, cardId, {
        customer: 'cus_driver',
        paymentMethod: 'pm_card_visa',
      });
      const renewal = await service.renew(driverId, { sessionId, minutes: 30, channel: 'app' });
      assert.equal(renewal.funding, 'realtime');
      assert.match(renewal.authorisation, /^pi_/);
      assert.equal(stripeApi.intents.get(renewal.authorisation)?.amount, renewal.charge);
      const request = stripeApi.requests.at(-1);
      assert.equal(request?.form.get('off_session'), 'true');
      assert.equal(request?.headers['idempotency-key'], `renewal-${renewal.id}`);
      const kept = await db.query<{ status: string; charge_id: string }>(
        'SELECT status, charge_id FROM provider_charges WHERE renewal_id = $1',
        [renewal.id],
      );
      assert.deepEqual(kept.rows, [{ status: 'succeeded', charge_id: renewal.authorisation }]);

      await meterStaysAway(service);
      const voided = await service.renewal(driverId, renewal.id);
      assert.equal(voided.status, 'voided');
      assert.equal(voided.refunded, true);
      assert.equal(
        stripeApi.intents.get(renewal.authorisation)?.refunded,
        renewal.charge,
        'refunded at Stripe',
      );
      const refund = stripeApi.requests.at(-1);
      assert.equal(refund?.path, '/v1/refunds');
      assert.equal(refund?.headers['idempotency-key'], `refund-${renewal.id}`);
    } finally {
      await service.close();
    }
  });

  it('a declined debit card, one asking for authentication, one not saved at Stripe: 402, nothing sent', async () => {
    const service = serviceWith(stripe());
    try {
      for (const [paymentMethod, code] of [
        ['pm_card_chargeDeclined', 'card-declined'],
        ['pm_card_authenticationRequired', 'authentication-required'],
        [null, 'card-declined'],
      ] as const) {
        const { cardId, sessionId } = await parked(service, 1);
        if (paymentMethod)
          await service.saveCardOnFile(driverId, cardId, { customer: 'cus_driver', paymentMethod });
        await assert.rejects(
          service.renew(driverId, { sessionId, minutes: 30, channel: 'app' }),
          refusedWith(code),
        );
        const sent = await db.query('SELECT 1 FROM renewals WHERE session_id = $1', [sessionId]);
        assert.equal(sent.rows.length, 0, `no renewal sent after ${code}`);
      }
      await assert.rejects(
        service.saveCardOnFile(driverId, (await parked(service, 2)).cardId, {
          customer: 'cus_x',
          paymentMethod: 'pm_x',
        }),
        refusedWith('not-debit', 409),
      );
    } finally {
      await service.close();
    }
  });

  it('a charge whose answer is lost is asked again with the same key: paid once, renewal sent', async () => {
    const service = serviceWith(
      new StripeProvider({
        secretKey: 'sk_test_parklink',
        host: '127.0.0.1',
        port: stripeApi.port,
        protocol: 'http',
        timeoutMs: 300,
        maxNetworkRetries: 0,
      }),
    );
    try {
      const { cardId, sessionId } = await parked(service, 1);
      await service.saveCardOnFile(driverId, cardId, {
        customer: 'cus_driver',
        paymentMethod: 'pm_card_slow',
      });
      const intentsBefore = stripeApi.intents.size;
      const renewal = await service.renew(driverId, { sessionId, minutes: 30, channel: 'app' });
      assert.equal(stripeApi.intents.size, intentsBefore + 1, 'one PaymentIntent');
      assert.equal(renewal.authorisation, [...stripeApi.intents.keys()].at(-1));
    } finally {
      await service.close();
    }
  });

  it('a provider that does not answer at all: 503 payment-unavailable, the attempt kept, nothing sent', async () => {
    const service = serviceWith(
      new StripeProvider({
        secretKey: 'sk_test_parklink',
        host: '127.0.0.1',
        port: 1,
        protocol: 'http',
        maxNetworkRetries: 0,
      }),
    );
    try {
      const { cardId, sessionId } = await parked(service, 1);
      await service.saveCardOnFile(driverId, cardId, {
        customer: 'cus_driver',
        paymentMethod: 'pm_card_visa',
      });
      await assert.rejects(
        service.renew(driverId, { sessionId, minutes: 30, channel: 'app' }),
        refusedWith('payment-unavailable', 503),
      );
      const kept = await db.query<{ status: string }>(
        `SELECT c.status FROM provider_charges c WHERE NOT EXISTS (SELECT 1 FROM renewals r WHERE r.id = c.renewal_id)
           AND c.status = 'unavailable'`,
      );
      assert.equal(kept.rows.length, 1);
      assert.equal(
        (await db.query('SELECT 1 FROM renewals WHERE session_id = $1', [sessionId])).rows.length,
        0,
      );
    } finally {
      await service.close();
    }
  });

  it('a credit renewal is posted on the ledger; voided, it is reversed; past the limit it is refused', async () => {
    const service = serviceWith(new PaymentSimulator());
    try {
      const { cardId, sessionId } = await parked(service, 2);
      const renewal = await service.renew(driverId, { sessionId, minutes: 30, channel: 'sms' });
      assert.equal(renewal.funding, 'direct');
      const entry = Number(renewal.authorisation.slice(1));
      assert.match(renewal.authorisation, /^L[0-9]+$/);
      const account = await service.ledger.accountFor({ id: cardId, kind: 'credit' }, 826);
      assert.equal(account.balance, -renewal.charge);
      assert.deepEqual(
        (await service.ledger.postings(account.id)).map((p) => [p.kind, p.entryId, p.amount]),
        [['charge', entry, -renewal.charge]],
      );

      await meterStaysAway(service);
      const voided = await service.renewal(driverId, renewal.id);
      assert.equal(voided.refunded, true);
      assert.equal((await service.ledger.account(account.id))?.balance, 0, 'reversed');
      assert.deepEqual(
        (await service.ledger.postings(account.id)).map((p) => [p.kind, p.amount]),
        [
          ['reversal', renewal.charge],
          ['charge', -renewal.charge],
        ],
      );

      // 1 000 of credit: 4 hours at 2.40 (9.60) fit, then nothing more.
      const next = await parked(service, 2);
      await service.renew(driverId, { sessionId: next.sessionId, minutes: 225, channel: 'app' });
      const another = await parked(service, 2);
      await db.query('UPDATE driver_cards SET renewal = false WHERE driver_id = $1', [driverId]);
      await db.query('UPDATE driver_cards SET pays_with = $2 WHERE id = $1', [another.cardId, next.cardId]);
      await assert.rejects(
        service.renew(driverId, { sessionId: another.sessionId, minutes: 30, channel: 'app' }),
        refusedWith('insufficient-funds'),
      );
      assert.deepEqual(await service.ledger.check(), []);
    } finally {
      await service.close();
    }
  });

  it('a prepaid renewal spends only what was topped up', async () => {
    const service = serviceWith(new PaymentSimulator());
    try {
      const { cardId, sessionId } = await parked(service, 3);
      await assert.rejects(
        service.renew(driverId, { sessionId, minutes: 30, channel: 'app' }),
        refusedWith('insufficient-funds'),
      );
      const account = await service.ledger.accountFor({ id: cardId, kind: 'prepaid' }, 826);
      await service.ledger.topUp(account.id, 500, 'counter-1');
      const renewal = await service.renew(driverId, { sessionId, minutes: 30, channel: 'app' });
      assert.equal((await service.ledger.account(account.id))?.balance, 500 - renewal.charge);
      assert.deepEqual(await service.ledger.check(), []);
    } finally {
      await service.close();
    }
  });

  it('a refund that fails is not called done, and is tried again until it is done', async () => {
    // The void's refund and the tick's retry of it both go unanswered; the next tick's succeeds.
    const provider = new FlakyRefunds(2);
    const service = serviceWith(provider);
    try {
      const { sessionId } = await parked(service, 1);
      const renewal = await service.renew(driverId, { sessionId, minutes: 30, channel: 'app' });
      await meterStaysAway(service);
      const first = await service.renewal(driverId, renewal.id);
      assert.equal(first.status, 'voided');
      assert.equal(first.refunded, false, 'the provider did not answer: not refunded yet');
      await service.tick();
      assert.equal((await service.renewal(driverId, renewal.id)).refunded, true);
      assert.deepEqual(provider.refunds, [renewal.authorisation]);
    } finally {
      await service.close();
    }
  });
});

describe('payments: production mode needs a payment provider', () => {
  it('refuses to start outside demo mode without one, naming the setting', async () => {
    await assert.rejects(
      createPlatform({ httpLogger: false, logger: quietLogger, phone: { gateway: false } }),
      (error) => error instanceof ConfigError && /PARKLINK_STRIPE_SECRET_KEY/.test(error.message),
    );
  });

  it('takes Stripe from PARKLINK_STRIPE_SECRET_KEY; the demo falls back to the simulator, named', () => {
    const env = { PARKLINK_STRIPE_SECRET_KEY: 'sk_test_abc' };
    const provider = paymentsCheck(phoneConfigFromEnv(env), false);
    assert.equal(provider.name, 'stripe');
    assert.equal(provider.simulated, false);
    const demo = paymentsCheck({}, true);
    assert.equal(demo.simulated, true);
    assert.match(SIMULATED_PAYMENTS_NOTICE, /SIMULATED/);
  });

  it('a demo platform starts on simulated payments and says so in its log', async () => {
    const warnings: string[] = [];
    const platform = await createPlatform({
      demo: true,
      httpLogger: false,
      logger: { info() {}, error() {}, warn: (_o: unknown, m?: string) => warnings.push(String(m)) },
      phone: { gateway: false },
    });
    try {
      assert.equal(platform.phone.service.paymentProvider.simulated, true);
      assert.ok(warnings.includes(SIMULATED_PAYMENTS_NOTICE));
    } finally {
      await platform.close();
    }
  });
});
