// The Stripe adapter through the official `stripe` library, pointed (host, port, protocol) at a local
// server answering with Stripe's documented responses (stripeDouble.ts).
import assert from 'node:assert/strict';
import { StripeProvider } from '../../platform-server/payments/stripe';
import type { ChargeRequest } from '../../platform-server/payments/provider';
import { StripeDouble } from './stripeDouble';

describe('payments: the Stripe adapter against a local server with Stripe API responses', () => {
  let stripeApi: StripeDouble;
  let provider: StripeProvider;

  beforeEach(async () => {
    stripeApi = new StripeDouble();
    await stripeApi.start();
    provider = new StripeProvider({
      secretKey: 'sk_test_parklink',
      host: '127.0.0.1',
      port: stripeApi.port,
      protocol: 'http',
      timeoutMs: 500,
      maxNetworkRetries: 0,
    });
  });
  afterEach(() => stripeApi.close());

  const charge = (paymentMethod: string, key = `renewal-${paymentMethod}`): ChargeRequest => ({
    card: { token: 'ab'.repeat(16), onFile: { customer: 'cus_driver1', paymentMethod } },
    amount: 240,
    currency: 826,
    idempotencyKey: key,
    description: 'ParkLink renewal, bay 2 at meter 7',
    reference: 'r1',
  });

  it('charges off-session: a confirmed PaymentIntent on the saved card, with the idempotency key', async () => {
    const result = await provider.charge(charge('pm_card_visa'));
    assert.equal(result.outcome, 'succeeded');
    assert.ok(result.outcome === 'succeeded' && result.chargeId.startsWith('pi_'));
    const [request] = stripeApi.requests;
    assert.equal(request.path, '/v1/payment_intents');
    assert.equal(request.headers['idempotency-key'], 'renewal-pm_card_visa');
    assert.equal(request.headers.authorization, 'Bearer sk_test_parklink');
    assert.equal(request.form.get('off_session'), 'true');
    assert.equal(request.form.get('confirm'), 'true');
    assert.equal(request.form.get('customer'), 'cus_driver1');
    assert.equal(request.form.get('payment_method'), 'pm_card_visa');
    assert.equal(request.form.get('amount'), '240');
    assert.equal(request.form.get('currency'), 'gbp');
    assert.equal(request.form.get('metadata[renewal]'), 'r1');
  });

  it('a retry with the same idempotency key gets the same charge; Stripe charged once', async () => {
    const first = await provider.charge(charge('pm_card_visa', 'renewal-abc'));
    const again = await provider.charge(charge('pm_card_visa', 'renewal-abc'));
    assert.deepEqual(again, first);
    assert.equal(stripeApi.intents.size, 1);
  });

  it('a declined card is declined with the decline code', async () => {
    const declined = await provider.charge(charge('pm_card_chargeDeclined'));
    assert.equal(declined.outcome === 'declined' && declined.code, 'generic_decline');
    assert.match(declined.outcome === 'declined' ? declined.message : '', /Your card was declined\./);
    const funds = await provider.charge(charge('pm_card_chargeDeclinedInsufficientFunds'));
    assert.equal(funds.outcome === 'declined' && funds.code, 'insufficient_funds');
    assert.equal(stripeApi.intents.size, 0);
  });

  it('authentication_required on an off-session charge is its own outcome, with the PaymentIntent', async () => {
    const result = await provider.charge(charge('pm_card_authenticationRequired'));
    assert.equal(result.outcome, 'authentication-required');
    assert.match(String(result.outcome === 'authentication-required' && result.chargeId), /^pi_/);
  });

  it('a timeout is unavailable; the retry with the same key returns the charge made meanwhile', async () => {
    const first = await provider.charge(charge('pm_card_slow', 'renewal-slow'));
    assert.equal(first.outcome, 'unavailable');
    assert.equal(stripeApi.intents.size, 1, 'Stripe did charge, the answer was lost');
    const retry = await provider.charge(charge('pm_card_slow', 'renewal-slow'));
    assert.equal(retry.outcome, 'succeeded');
    assert.equal(stripeApi.intents.size, 1, 'not charged twice');
    assert.equal(retry.outcome === 'succeeded' && stripeApi.intents.has(retry.chargeId), true);
  });

  it('refunds a charge in full, idempotently, and refuses refunding it again', async () => {
    const paid = await provider.charge(charge('pm_card_visa'));
    assert.ok(paid.outcome === 'succeeded');
    const request = {
      chargeId: paid.chargeId,
      amount: 240,
      currency: 826,
      idempotencyKey: 'refund-r1',
      reference: 'r1',
    };
    const refund = await provider.refund(request);
    assert.equal(refund.outcome, 'refunded');
    assert.match(String(refund.outcome === 'refunded' && refund.refundId), /^re_/);
    assert.deepEqual(await provider.refund(request), refund, 'the same refund on a retry');
    assert.equal(stripeApi.intents.get(paid.chargeId)?.refunded, 240);
    const twice = await provider.refund({ ...request, idempotencyKey: 'refund-r1-again' });
    assert.deepEqual(twice.outcome === 'failed' && twice.code, 'charge_already_refunded');
  });

  it('a card not saved with Stripe is declined without a request', async () => {
    const result = await provider.charge({
      ...charge('pm_card_visa'),
      card: { token: 'ab'.repeat(16), onFile: null },
    });
    assert.equal(result.outcome === 'declined' && result.code, 'no_card_on_file');
    assert.equal(stripeApi.requests.length, 0);
  });

  it('a wrong API key is thrown (the platform is misconfigured), not taken for a decline', async () => {
    const wrong = new StripeProvider({
      secretKey: 'sk_live_wrong',
      host: '127.0.0.1',
      port: stripeApi.port,
      protocol: 'http',
      maxNetworkRetries: 0,
    });
    await assert.rejects(wrong.charge(charge('pm_card_visa')), /Invalid API Key/);
    assert.throws(() => new StripeProvider({ secretKey: 'not a key' }), /sk_live_/);
  });
});
