// Pay-by-phone renewals priced by the tariff engine. Unit: TariffPricing over the worked
// examples' town-centre tariff (price, maximum stay, non-cumulative evening, the default tariff when
// the meter has none). End to end: a tariff with a restricted hour is pushed to the real firmware as
// 0x85; once the meter has applied it, renewals are priced by it, and one reaching the restricted
// hour is refused with the engine's reason in the app (422), by SMS and by the voice menu.
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/mock/clock';
import { DEFAULT_TARIFF } from '../../platform-server/phone';
import { extensionChoices, TariffPricing } from '../../platform-server/phone/pricing';
import type { Platform } from '../../platform-server/platform';
import { parseInstant, Tariff, type TariffDocument } from '../../protocol/tariff';
import { forEachBackend, randomMeterId } from '../../sim/fleet/platform';
import { townCentre } from '../tariff/fixtures';
import {
  type Api,
  apiOf,
  gatewayOf,
  type BootedMeter,
  bootMeter,
  card,
  phonePlatform,
  tapBay2,
  until,
} from './support';

/** The same street with a market hour: no parking 11:00-12:00 on weekdays. */
const marketDay: TariffDocument = {
  ...townCentre,
  id: 'town-market',
  version: 1,
  timetable: [
    {
      days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
      from: '08:00',
      to: '11:00',
      mode: 'charged',
      rate: 'street',
    },
    { days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '11:00', to: '12:00', mode: 'no-parking' },
    { days: ['sat'], from: '11:00', to: '12:00', mode: 'charged', rate: 'street' },
    {
      days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
      from: '12:00',
      to: '18:00',
      mode: 'charged',
      rate: 'street',
    },
  ],
};

describe('renewal pricing by the tariff engine (TariffPricing)', () => {
  const town = Tariff.from(townCentre);
  const fallback = Tariff.from(DEFAULT_TARIFF);
  const pricing = new TariffPricing((meterId) => (meterId === 7 ? town : undefined), fallback);
  // Wednesday 4 March 2026, 09:00 GMT.
  const start = parseInstant('2026-03-04T09:00:00Z');

  it("prices with the meter's tariff: 45 minutes are five started 10-minute units, and give the 50 paid for", () => {
    const q = pricing.quote({ meterId: 7, bayId: 2, start, minutes: 45, paidMinutes: 30 });
    assert.deepEqual(q, { ok: true, amount: 150, currency: 826, minutes: 50 });
    const seven = pricing.quote({ meterId: 7, bayId: 2, start, minutes: 7, paidMinutes: 30 });
    assert.deepEqual(seven, { ok: true, amount: 30, currency: 826, minutes: 10 });
    // 95 paid: the unit the 7 minutes start ends at 110 minutes, so they give 15.
    const across = pricing.quote({ meterId: 7, bayId: 2, start, minutes: 7, paidMinutes: 95 });
    assert.equal(across.ok && across.minutes, 15);
    assert.equal(across.ok && across.amount, 30);
  });

  it('offers the extensions the tariff sells: rounded to its units and capped by what is left of the stay', () => {
    const request = { meterId: 7, bayId: 2, start, paidMinutes: 95 };
    assert.equal(pricing.maxMinutes(request), 25);
    assert.deepEqual(
      extensionChoices(pricing, request).map((c) => [c.minutes, c.amount]),
      [[25, 60]],
      'units count over the whole stay (95 paid): 15 ends at 110 and 25 at the 120 limit are both two units, so only the longer is offered',
    );
    assert.deepEqual(extensionChoices(pricing, { ...request, paidMinutes: 120 }), []);
  });

  it('refuses past the maximum stay with the reason and what is left', () => {
    const q = pricing.quote({ meterId: 7, bayId: 2, start, minutes: 60, paidMinutes: 90 });
    assert.equal(q.ok, false);
    assert.equal(!q.ok && q.reason, 'max-stay');
    assert.equal(!q.ok && q.maxMinutes, 30);
    assert.match(!q.ok ? q.message : '', /maximum stay 120 min: you can add 30 more minutes/);
  });

  it('refuses time running into the free evening (non-cumulative), saying how much fits', () => {
    // Saturday 7 March 2026 at 17:20: only the 40 minutes to 18:00 can be sold.
    const late = parseInstant('2026-03-07T17:20:00Z');
    const q = pricing.quote({ meterId: 7, bayId: 2, start: late, minutes: 60, paidMinutes: 20 });
    assert.equal(!q.ok && q.reason, 'non-cumulative');
    assert.equal(!q.ok && q.maxMinutes, 40);
    assert.match(!q.ok ? q.message : '', /you can add 40 more minutes/);
  });

  it('falls back to the default tariff at a meter with none applied', () => {
    const q = pricing.quote({ meterId: 8, bayId: 2, start, minutes: 30, paidMinutes: 0 });
    assert.deepEqual(q, { ok: true, amount: 120, currency: 826, minutes: 30 });
    const none = new TariffPricing(() => undefined).quote({
      meterId: 8,
      bayId: 2,
      start,
      minutes: 30,
      paidMinutes: 0,
    });
    assert.equal(!none.ok && none.reason, 'no-tariff');
  });
});

forEachBackend('pay by phone renewals priced by the meter tariff', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  // Monday 1 June 2026, 10:00 BST.
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  const meterId = randomMeterId();
  const phone = `+4477008${String(meterId).slice(-5)}`;
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

  it('the meter applies the tariff pushed as 0x85; the platform then prices its renewals with it', async function () {
    // Several round trips through the real broker and database: past mocha's 20 s, each wait below
    // fails on its own deadline and names the step that did not happen.
    this.timeout(90_000);
    assert.equal(platform.tariffs.tariffOf(meterId), undefined);
    await platform.tariffs.save(marketDay);
    await platform.tariffs.push(meterId, marketDay.id);
    await until(() => platform.tariffs.tariffOf(meterId)?.doc.id === marketDay.id, 'the tariff applied');

    const reg = await apiOf(platform)('POST', '/api/driver/register', {
      name: 'Tariff Driver',
      phone,
      email: `tariff${meterId}@example.org`,
      password: 'correct horse battery',
    });
    api = apiOf(platform, reg.json.token);
    await api('POST', '/api/driver/cards', { cardNumber: '6280 1234 0003 0043' });
    tapBay2(m, clock, card('6280123400030043'));
    await until(
      async () => (await api('GET', '/api/driver/sessions?state=active')).json.sessions.length === 1,
      'the pairing',
    );
    const session = (await api('GET', '/api/driver/sessions?state=active')).json.sessions[0];
    sessionId = session.id;
    // The meter sold 30 minutes by the same tariff (the least, 20, and one 10-minute step).
    assert.equal(session.paidUntil, '2026-06-01T09:30:00.000Z');
    assert.equal(session.paidMinutes, 30);
  });

  it('refuses a renewal reaching the market hour with the reason (422), and sells what fits', async () => {
    const refused = await api('POST', `/api/driver/sessions/${sessionId}/extend`, { minutes: 60 });
    assert.equal(refused.status, 422);
    assert.equal(refused.json.code, 'restricted');
    assert.match(
      refused.json.message,
      /^cannot extend: no parking from .*11:00.*: you can add 30 more minutes$/,
    );
    assert.equal((await api('GET', '/api/driver/renewals')).json.renewals.length, 0, 'nothing charged');

    // What the app offers: only what fits before the market hour, in the tariff's 10-minute units.
    const offer = await api('GET', `/api/driver/sessions/${sessionId}/extensions`);
    assert.equal(offer.status, 200);
    assert.equal(offer.json.maxMinutes, 30);
    assert.deepEqual(
      offer.json.choices.map((c: { minutes: number; amount: number }) => [c.minutes, c.amount]),
      [
        [20, 60],
        [30, 90],
      ],
    );
    assert.equal((await api('GET', '/api/driver/sessions/999999/extensions')).status, 404);

    const sent = await api('POST', `/api/driver/sessions/${sessionId}/extend`, { minutes: 30 });
    assert.equal(sent.status, 202);
    // Three 10-minute units at 0.30: the tariff's price, not the default tariff's 1.20.
    assert.equal(sent.json.renewal.charge, 90);
    await until(
      async () =>
        (await api('GET', `/api/driver/renewals/${sent.json.renewal.id}`)).json.renewal.status === 'applied',
      'the renewal applied',
    );
    assert.equal(m.meter.bays.paidUntil(2), parseInstant('2026-06-01T10:00:00Z'));
  });

  it('answers a refused SMS or IVRS renewal helpfully, with the reason', async () => {
    const gateway = gatewayOf(platform, () => clock.now());
    const sms = await gateway('POST', '/api/phone/sms', { from: phone, text: 'EXTEND 30' });
    assert.equal(sms.status, 200);
    assert.match(
      sms.json.reply,
      /^ParkLink: Cannot extend: no parking in this period: no more time can be added\.$/,
    );
    const voice = await gateway('POST', '/api/phone/voice', { from: phone, digits: '1' });
    assert.equal(voice.status, 200);
    assert.match(voice.json.say, /^Sorry, your parking cannot be extended: no parking in this period/);
    assert.equal(voice.json.gather, false);
    const renewals = (await api('GET', '/api/driver/renewals')).json.renewals;
    assert.equal(renewals.length, 1, 'only the renewal that fitted');
  });
});

describe('default tariff (DEFAULT_TARIFF)', () => {
  it('is a valid tariff: GBP 2.40 an hour, 4 hours at most', () => {
    const t = Tariff.from(DEFAULT_TARIFF);
    const start = parseInstant('2026-06-01T09:00:00Z');
    const q = t.quoteDuration({ bay: 1, start, minutes: 60 });
    assert.equal(q.ok && q.amount, 240);
    const long = t.quoteDuration({ bay: 1, start, minutes: 30, paidMinutes: 225 });
    assert.equal(!long.ok && long.reason, 'max-stay');
    assert.equal(!long.ok && long.maxMinutes, 15);
  });
});
