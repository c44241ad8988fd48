// Pay-by-phone renewals under a tariff's maximum price per period: the platform looks up the
// driver's earlier purchases in the tariff's zone (the meter's transaction paid with the driver's
// card, the renewals the meter applied) and prices the renewal with them, as the meter prices a tap.
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/mock/clock';
import { Payments } from '../../platform-server/phone/payments';
import { TariffPricing } from '../../platform-server/phone/pricing';
import type { Platform } from '../../platform-server/platform';
import { parseInstant, Tariff, type TariffDocument } from '../../protocol/tariff';
import { forEachBackend, randomMeterId } from '../../sim/fleet/platform';
import { type Api, apiOf, type BootedMeter, bootMeter, card, phonePlatform, tapBay2, until } from './support';

const EVERY = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun', 'hol'] as const;

/** 2.40 an hour, at most 3.00 a day from 02:00, the least 20 minutes in steps of 10. */
const capped: TariffDocument = {
  id: 'capped-street',
  version: 1,
  currency: 826,
  timeZone: 'GMT0BST,M3.5.0/1,M10.5.0',
  rates: { hourly: [{ price: 240, per: 60, prorata: true }] },
  timetable: [{ days: [...EVERY], from: '00:00', to: '24:00', mode: 'charged', rate: 'hourly' }],
  maxStayMinutes: 480,
  minimum: { minutes: 20 },
  rounding: { stepMinutes: 10 },
  maxPrice: { amount: 300, resetAt: '02:00' },
};

describe('renewal pricing with the payer history (TariffPricing)', () => {
  const t = Tariff.from(capped);
  const plain = Tariff.from({ ...capped, id: 'plain', maxPrice: undefined });
  const zones: Record<number, number[]> = { 7: [7, 8], 9: [9] };
  const pricing = new TariffPricing(
    (meterId) => (meterId === 9 ? plain : t),
    undefined,
    (meterId) => zones[meterId] ?? [meterId],
  );
  const start = parseInstant('2026-06-01T10:00:00+01:00');

  it('asks for the history only where the tariff has a rule on it, over the tariff zone', () => {
    assert.deepEqual(pricing.historyZone(7), [7, 8]);
    assert.equal(pricing.historyZone(9), undefined);
  });

  it('prices a renewal under the cap with what the driver paid earlier in the period', () => {
    const history = [{ start: start - 1800, end: start, amount: 120 }];
    const q = pricing.quote({ meterId: 7, bayId: 1, start, minutes: 60, paidMinutes: 30, history });
    assert.deepEqual(q, { ok: true, amount: 180, currency: 826, minutes: 60 });
  });
});

describe('a renewal the cap makes free', () => {
  it('takes no payment and refunds none, touching neither the provider nor the ledger', async () => {
    const untouchable = new Proxy(
      {},
      {
        get: (_t, name) => {
          throw new Error(`touched ${String(name)}`);
        },
      },
    );
    const payments = new Payments(untouchable as never, untouchable as never, untouchable as never);
    for (const card_type of [1, 2, 3] as const) {
      const paid = await payments.pay(
        { id: 1, card_type, token: '00'.repeat(16), provider_customer: null, provider_payment_method: null },
        { amount: 0, currency: 826, reference: 'r1', description: 'free under the cap' },
      );
      assert.deepEqual(paid, { funding: 'direct', authorisation: 'none', provider: null, ledgerEntry: null });
    }
    const refund = await payments.refund({
      id: 'r1',
      funding: 'direct',
      authorisation: 'none',
      charge: 0,
      currency: 826,
      ledger_entry: null,
    });
    assert.equal(refund, 'none');
  });
});

forEachBackend('pay by phone renewals under a maximum price per period', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  // Monday 1 June 2026, 10:00 BST.
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  const meterId = randomMeterId();
  const phone = `+4477009${String(meterId).slice(-5)}`;
  let m: BootedMeter;
  let api: Api;
  let sessionId: number;

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await phonePlatform(fresh.config, clock);
    m = await bootMeter(platform, meterId, clock);
  });

  after(async () => {
    m?.meter.stop();
    await platform?.close();
    await drop?.();
  });

  it('counts the tap at the meter and the applied renewals towards the cap', async function () {
    this.timeout(120_000);
    await platform.tariffs.save(capped);
    await platform.tariffs.push(meterId, capped.id);
    await until(() => platform.tariffs.tariffOf(meterId)?.doc.id === capped.id, 'the tariff applied');
    assert.deepEqual(platform.tariffs.zoneOf(meterId), [meterId]);

    const reg = await apiOf(platform)('POST', '/api/driver/register', {
      name: 'Capped Driver',
      phone,
      email: `capped${meterId}@example.org`,
      password: 'correct horse battery',
    });
    api = apiOf(platform, reg.json.token);
    await api('POST', '/api/driver/cards', { cardNumber: '6280 1234 0003 0050' });
    tapBay2(m, clock, card('6280123400030050'));
    await until(
      async () => (await api('GET', '/api/driver/sessions?state=active')).json.sessions.length === 1,
      'the pairing',
    );
    const session = (await api('GET', '/api/driver/sessions?state=active')).json.sessions[0];
    sessionId = session.id;
    assert.equal(session.paidMinutes, 30, 'the meter sold 30 minutes: 1.20');

    // 60 minutes more would be 2.40; 1.20 was paid at the meter, so 1.80 is left under the cap.
    const first = await api('POST', `/api/driver/sessions/${sessionId}/extend`, { minutes: 60 });
    assert.equal(first.status, 202, JSON.stringify(first.json));
    assert.equal(first.json.renewal.charge, 180);
    await until(
      async () =>
        (await api('GET', `/api/driver/renewals/${first.json.renewal.id}`)).json.renewal.status === 'applied',
      'the first renewal applied',
    );
    // The cap is reached: 30 minutes more are priced at nothing until the period ends at 02:00.
    const quote = platform.tariffs
      .tariffOf(meterId)
      ?.quoteDuration({ bay: 2, start: m.meter.bays.paidUntil(2), minutes: 30, paidMinutes: 90 });
    assert.equal(quote?.ok && quote.amount, 120, 'without the history the same renewal costs 1.20');
    const second = await api('POST', `/api/driver/sessions/${sessionId}/extend`, { minutes: 30 });
    assert.equal(second.status, 202, JSON.stringify(second.json));
    assert.equal(second.json.renewal.charge, 0, 'the tap, 1.20, and the renewal, 1.80, reached the cap');
    await until(
      async () =>
        (await api('GET', `/api/driver/renewals/${second.json.renewal.id}`)).json.renewal.status ===
        'applied',
      'the free renewal applied',
    );
    assert.equal(m.meter.bays.paidUntil(2), parseInstant('2026-06-01T12:00:00+01:00'));
  });
});
