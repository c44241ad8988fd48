// Parking started from the phone by the bay code on the meter, with the plate: priced before the
// driver confirms, at that price or not at all, limited by the tariff, paid, and applied by the
// meter (its bay paid, its display saying so), with plain-words refusals that leave nothing behind.
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/mock/clock';
import type { Platform } from '../../platform-server/platform';
import { forEachBackend, operatorLogin, randomMeterId } from '../../sim/fleet/platform';
import { type Api, apiOf, type BootedMeter, bootMeter, card, phonePlatform, tapBay2, until } from './support';

forEachBackend('parking started from the phone', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let m: BootedMeter;
  let api: Api;
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  const meterId = randomMeterId();
  const number = '6280123400030019';

  before(async function () {
    this.timeout(60_000);
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await phonePlatform(fresh.config, clock);
    m = await bootMeter(platform, meterId, clock);
    const reg = await apiOf(platform)('POST', '/api/driver/register', {
      name: 'Park Driver',
      phone: `+4477007${String(meterId).slice(-5)}`,
      email: `park${meterId}@example.org`,
      password: 'correct horse battery',
    });
    api = apiOf(platform, reg.json.token);
    assert.equal((await api('POST', '/api/driver/cards', { cardNumber: number })).status, 201);
  });

  after(async () => {
    m?.meter.stop();
    await platform?.close();
    await drop?.();
  });

  const renewalsCount = async () => (await api('GET', '/api/driver/renewals')).json.renewals.length;

  it('refuses a card no meter has read yet, and a code or plate it cannot read, in plain words', async () => {
    const code = `${meterId}-1`;
    const quote = await api('POST', '/api/driver/parking/quote', { code, minutes: 30 });
    assert.equal(quote.status, 200, JSON.stringify(quote.json));
    const unread = await api('POST', '/api/driver/parking', {
      code,
      plate: 'AB12 CDE',
      minutes: 30,
      amount: quote.json.amount,
    });
    assert.equal(unread.status, 409);
    assert.equal(unread.json.code, 'card-type-unknown');

    const bad = await api('POST', '/api/driver/parking/quote', { code: 'bay two' });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.field, 'code');
    assert.match(bad.json.message, /bay code printed on the meter/);
    const unknown = await api('POST', '/api/driver/parking/quote', { code: '4294967295-1' });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.field, 'code');
    const plate = await api('POST', '/api/driver/parking', { code, plate: 'A!', minutes: 30, amount: 1 });
    assert.equal(plate.status, 400);
    assert.equal(plate.json.field, 'plate');
    const sessions = (await api('GET', '/api/driver/sessions?state=all')).json.sessions;
    assert.equal(sessions.length, 0, 'no session left behind');
    assert.equal(await renewalsCount(), 0, 'nothing charged');
  });

  it('prices the bay before the driver confirms, and charges only that price', async function () {
    this.timeout(60_000);
    // The card's first tap (bay 2) tells the platform it is a credit card.
    tapBay2(m, clock, card(number));
    await until(
      async () => (await api('GET', '/api/driver/cards')).json.cards[0].cardType === 2,
      'the first tap',
    );
    const code = ` ${meterId} / 1 `;
    const offer = await api('POST', '/api/driver/parking/quote', { code });
    assert.equal(offer.status, 200);
    assert.equal(offer.json.bayId, 1);
    assert.equal(offer.json.meterName, `Meter ${meterId}`);
    assert.ok(offer.json.choices.length > 0);
    assert.ok(offer.json.choices.every((c: { minutes: number }) => c.minutes <= offer.json.maxMinutes));
    const priced = await api('POST', '/api/driver/parking/quote', { code, minutes: 30 });
    assert.equal(priced.json.minutes, 30);

    const stale = await api('POST', '/api/driver/parking', {
      code,
      plate: 'ab12 cde',
      minutes: 30,
      amount: priced.json.amount + 10,
    });
    assert.equal(stale.status, 409);
    assert.equal(stale.json.code, 'price-changed');
    const before = await renewalsCount();

    const tooLong = await api('POST', '/api/driver/parking', {
      code,
      plate: 'AB12CDE',
      minutes: offer.json.maxMinutes + 10,
      amount: 0,
    });
    assert.equal(tooLong.status, 422, 'the stay is limited by the tariff');
    assert.equal(await renewalsCount(), before);

    const started = await api('POST', '/api/driver/parking', {
      code,
      plate: 'ab12 cde',
      minutes: 30,
      amount: priced.json.amount,
    });
    assert.equal(started.status, 202, JSON.stringify(started.json));
    assert.equal(started.json.renewal.charge, priced.json.amount);
    await until(
      async () =>
        (await api('GET', `/api/driver/renewals/${started.json.renewal.id}`)).json.renewal.status ===
        'applied',
      'the meter to apply the start',
    );
    // The meter applies it from now: bay 1 paid 30 minutes, and its display says so.
    const now = Math.floor(clock.now() / 1000);
    assert.ok(Math.abs(m.meter.bays.paidUntil(1) - (now + 30 * 60)) <= 1);
    assert.match(m.board.display.text, /RENEWED bay 1/);
    const session = (await api('GET', '/api/driver/sessions?state=active')).json.sessions.find(
      (s: { id: number }) => s.id === started.json.sessionId,
    );
    assert.equal(session.plate, 'AB12CDE');
    assert.equal(session.bayId, 1);
    assert.equal(session.paidMinutes, 30);
    assert.equal(Date.parse(session.paidUntil) / 1000, m.meter.bays.paidUntil(1));
  });

  it('lets an enforcement officer find the vehicle by its plate, paid at the bay it was parked from the phone', async () => {
    const officer = await operatorLogin(platform.operators, 'enforcement');
    const viewer = await operatorLogin(platform.operators, 'viewer');
    const lookup = (plate: string, who = officer) =>
      platform.app.inject({ method: 'GET', url: `/api/enforcement/plates/${plate}`, headers: who.headers });
    const found = await lookup('ab12-cde');
    assert.equal(found.statusCode, 200, found.body);
    const body = found.json();
    assert.equal(body.plate, 'AB12CDE');
    assert.deepEqual(
      body.bays.map((b: { meterId: number; bayId: number; validity: string }) => [
        b.meterId,
        b.bayId,
        b.validity,
      ]),
      [[meterId, 1, 'paid']],
    );
    assert.equal((await lookup('ZZ99ZZZ')).json().bays.length, 0);
    assert.equal((await lookup('A!')).statusCode, 400);
    assert.equal((await lookup('AB12CDE', viewer)).statusCode, 403);
  });
});
