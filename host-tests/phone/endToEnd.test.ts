// Pay by phone end to end: the real firmware on a virtual board and the real platform (embedded, and
// PostgreSQL + Mosquitto). A registered card taps; the session is paired; the alert fires at the
// lead time on the virtual clock; the driver extends in the app, by SMS reply and by IVRS digits;
// each time the meter shows the new expiry and the confirmation is in the outbox. Then an offline
// meter: a renewal queued and delivered on reconnect, applied once; another voided and refunded.
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/mock/clock';
import type { Platform } from '../../platform-server/platform';
import { RENEWAL_FRAME } from '../../protocol/renewal';
import { forEachBackend, operatorLogin, randomMeterId } from '../../sim/fleet/platform';
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

forEachBackend('pay by phone end to end', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
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

  async function renewalApplied(id: string) {
    await until(
      async () => (await api('GET', `/api/driver/renewals/${id}`)).json.renewal.status === 'applied',
      `renewal ${id}`,
    );
    return (await api('GET', `/api/driver/renewals/${id}`)).json.renewal;
  }

  async function outbox(kind: string) {
    return (await api('GET', '/api/driver/messages')).json.messages.filter(
      (x: { kind: string }) => x.kind === kind,
    );
  }

  it('registers a driver with a card; the first tap pairs the session the platform finds by itself', async () => {
    const reg = await apiOf(platform)('POST', '/api/driver/register', {
      name: 'Ada Driver',
      phone,
      email: `ada${meterId}@example.org`,
      password: 'correct horse battery',
    });
    assert.equal(reg.status, 201);
    assert.match(reg.json.driver.accountNumber, /^PL\d{10}$/);
    api = apiOf(platform, reg.json.token);
    const added = await api('POST', '/api/driver/cards', { cardNumber: '6280 1234 0003 0019' });
    assert.equal(added.status, 201);
    assert.equal(added.json.card.last4, '0019');
    // Only the token is stored.
    const stored = await platform.db.query<{ token: string }>('SELECT token FROM driver_cards');
    assert.ok(stored.rows.every((r) => /^[0-9a-f]{32}$/.test(r.token)));
    assert.ok(stored.rows.some((r) => r.token === platform.phone.service.tokenOf('6280123400030019')));

    tapBay2(m, clock, card('6280123400030019'));
    await until(
      async () => (await api('GET', '/api/driver/sessions?state=active')).json.sessions.length === 1,
      'the pairing',
    );
    const { sessions } = (await api('GET', '/api/driver/sessions?state=active')).json;
    sessionId = sessions[0].id;
    assert.equal(sessions[0].meterId, meterId);
    assert.equal(sessions[0].bayId, 2);
    assert.equal(sessions[0].paidUntil, '2026-06-01T09:30:00.000Z');
    assert.equal((await outbox('receipt')).length, 1);
  });

  it('alerts by SMS at the lead time (10 min before expiry), not before', async () => {
    clock.advance(18 * 60_000); // 09:18
    await platform.phone.tick();
    assert.equal((await outbox('expiry')).length, 0);
    clock.advance(3 * 60_000); // 09:21
    await platform.phone.tick();
    const alerts = await outbox('expiry');
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0].channel, 'sms');
    assert.equal(alerts[0].recipient, phone);
    assert.match(alerts[0].body, /ends at 09:30\. Reply EXTEND 30/);
    assert.equal(alerts[0].status, 'delivered');
    await platform.phone.tick();
    assert.equal((await outbox('expiry')).length, 1, 'one alert per expiry');
  });

  it('extends in the app: the meter applies it, shows the new expiry, and only then confirms', async () => {
    const before = m.meter.bays.paidUntil(2);
    const sent = await api('POST', `/api/driver/sessions/${sessionId}/extend`, { minutes: 30 });
    assert.equal(sent.status, 202);
    assert.equal(sent.json.renewal.status, 'sent');
    assert.equal(sent.json.renewal.charge, 120);
    assert.equal(sent.json.renewal.funding, 'direct');
    const applied = await renewalApplied(sent.json.renewal.id);
    assert.equal(m.meter.bays.paidUntil(2), before + 30 * 60);
    assert.equal(applied.paidUntil, '2026-06-01T10:00:00.000Z');
    assert.match(m.board.display.text, /RENEWED bay 2/);
    assert.match(m.board.display.text, /until 10:00/);
    await until(async () => (await outbox('confirmation')).length === 1, 'the confirmation');
    const [confirmation] = await outbox('confirmation');
    assert.equal(confirmation.channel, 'app');
    assert.match(confirmation.body, /now paid until 10:00/);
    // The meter recorded it with the platform's authorisation id, and uploaded the record.
    await until(async () => {
      const r = await platform.db.query<{ record_seq: number | null }>(
        'SELECT record_seq FROM renewals WHERE id = $1',
        [applied.id],
      );
      return r.rows[0].record_seq !== null;
    }, 'the renewal record');
    const op = await platform.db.query<{ detail: string }>(
      "SELECT detail FROM operations WHERE meter_id = $1 AND code = 'remote-renewal'",
      [meterId],
    );
    assert.match(op.rows[0].detail, new RegExp(`auth=${applied.authorisation}`));
    // The meter's records list shows it among the transactions, with its channel and charge.
    const viewer = await operatorLogin(platform.operators, 'viewer');
    const list = async (kind: string) =>
      (
        await platform.app.inject({
          method: 'GET',
          url: `/api/meters/${meterId}/records?kind=${kind}`,
          headers: viewer.headers,
        })
      ).json().records as {
        kind: string;
        channel: string | null;
        renewalId: string | null;
        charge: number;
        bayId: number;
      }[];
    const renewed = (await list('transaction')).filter((r) => r.renewalId === applied.id);
    assert.equal(renewed.length, 1);
    assert.deepEqual(
      {
        kind: renewed[0].kind,
        channel: renewed[0].channel,
        charge: renewed[0].charge,
        bay: renewed[0].bayId,
      },
      { kind: 'transaction', channel: 'app', charge: 120, bay: 2 },
    );
    assert.ok(
      (await list('transaction')).some((r) => r.channel === 'card'),
      'the first tap is there too, by card',
    );
    assert.equal((await list('operation')).filter((r) => r.renewalId === applied.id).length, 0);
    const session = (await api('GET', '/api/driver/sessions?state=active')).json.sessions[0];
    assert.equal(session.paidUntil, '2026-06-01T10:00:00.000Z');
  });

  it('extends by SMS reply ("EXTEND 15"), and answers anything else helpfully', async () => {
    const gateway = gatewayOf(platform, () => clock.now());
    const odd = await gateway('POST', '/api/phone/sms', { from: phone, text: 'what is this' });
    assert.equal(odd.status, 200);
    assert.match(odd.json.reply, /did not understand.*EXTEND 30/);
    const before = m.meter.bays.paidUntil(2);
    const reply = await gateway('POST', '/api/phone/sms', { from: phone, text: 'extend 15' });
    assert.match(reply.json.reply, /extending bay 2 by 15 min for GBP 0\.60/);
    const pending = (await api('GET', '/api/driver/renewals')).json.renewals.find(
      (r: { channel: string }) => r.channel === 'sms',
    );
    await renewalApplied(pending.id);
    assert.equal(m.meter.bays.paidUntil(2), before + 15 * 60);
    assert.match(m.board.display.text, /until 10:15/);
    await until(
      async () => (await outbox('confirmation')).some((c: { channel: string }) => c.channel === 'sms'),
      'SMS confirmation',
    );
  });

  it('extends through the voice menu (IVRS): 1 adds 30 minutes; other keys repeat the menu', async () => {
    const gateway = gatewayOf(platform, () => clock.now());
    const menu = await gateway('POST', '/api/phone/voice', { from: phone, digits: '' });
    assert.match(menu.json.say, /paid until 10:15\. Press 1 to extend 30 minutes/);
    assert.equal(menu.json.gather, true);
    const wrong = await gateway('POST', '/api/phone/voice', { from: phone, digits: '7' });
    assert.match(wrong.json.say, /7 is not an option\. Press 1/);
    const before = m.meter.bays.paidUntil(2);
    const pressed = await gateway('POST', '/api/phone/voice', { from: phone, digits: '1' });
    assert.match(pressed.json.say, /extending bay 2 by 30 min/);
    const pending = (await api('GET', '/api/driver/renewals')).json.renewals.find(
      (r: { channel: string }) => r.channel === 'voice',
    );
    await renewalApplied(pending.id);
    assert.equal(m.meter.bays.paidUntil(2), before + 30 * 60);
    assert.match(m.board.display.text, /until 10:45/);
    await until(
      async () => (await outbox('confirmation')).some((c: { channel: string }) => c.channel === 'voice'),
      'voice confirmation',
    );
  });

  it('refuses past the maximum stay with the reason, and charges nothing', async () => {
    const refused = await api('POST', `/api/driver/sessions/${sessionId}/extend`, { minutes: 200 });
    assert.equal(refused.status, 422);
    assert.equal(refused.json.code, 'max-stay');
    // Priced by the tariff engine with the platform's default tariff (this meter has applied none).
    assert.match(refused.json.message, /maximum stay 240 min: you can add 135 more minutes/);
  });

  it('offline meter: a renewal waits and is applied once on reconnect; one past its validity is voided and refunded', async () => {
    await m.link.closeAsync(); // the signal goes
    const before = m.meter.bays.paidUntil(2);
    const sent = await api('POST', `/api/driver/sessions/${sessionId}/extend`, { minutes: 15 });
    assert.equal(sent.status, 202);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(m.meter.bays.paidUntil(2), before, 'nothing applied while offline');
    const renewalsKept = async () =>
      (await platform.ingest.outbox.pending([meterId])).filter((d) => d.type === RENEWAL_FRAME);
    assert.equal((await renewalsKept()).length, 1, 'the renewal waits in the outbox for a handheld');
    m = await bootMeter(platform, meterId, clock, m.board.state);
    // Delivered by the broker's session and resent when the meter's uplink shows it is back.
    await renewalApplied(sent.json.renewal.id);
    assert.equal(m.meter.bays.paidUntil(2), before + 15 * 60);
    await platform.phone.tick(); // a resend after apply changes nothing
    clock.advance(31_000);
    await platform.phone.tick();
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(m.meter.bays.paidUntil(2), before + 15 * 60, 'applied once');
    assert.equal(m.meter.registration.handled.filter((id) => id === sent.json.renewal.id).length, 1);
    assert.deepEqual(await renewalsKept(), [], 'an applied renewal leaves the outbox, resends included');

    // Second renewal: the meter stays away past the validity window.
    await m.link.closeAsync();
    const late = await api('POST', `/api/driver/sessions/${sessionId}/extend`, { minutes: 15 });
    clock.advance(11 * 60_000 + 1_000);
    await platform.phone.tick();
    const voided = (await api('GET', `/api/driver/renewals/${late.json.renewal.id}`)).json.renewal;
    assert.equal(voided.status, 'voided');
    assert.equal(voided.refunded, true);
    assert.equal((await outbox('voided')).length, 1);
    // When it does come back, the meter refuses the stale renewal: never applied.
    const paid = m.meter.bays.paidUntil(2);
    m = await bootMeter(platform, meterId, clock, m.board.state);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(m.meter.bays.paidUntil(2), paid);
  });

  it('a new first payment at the bay ends the pairing (the next user overrides)', async () => {
    m.board.display.show(['']);
    tapBay2(m, clock, card('6280999900010027', 3));
    await until(
      async () => (await api('GET', '/api/driver/sessions?state=active')).json.sessions.length === 0,
      'the pairing to end',
    );
    const all = (await api('GET', '/api/driver/sessions')).json.sessions;
    assert.equal(all[0].endReason, 'next-user');
  });
});
