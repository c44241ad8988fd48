// Pay-by-phone paths beyond the app renewal, on the virtual clock with the real firmware: option (1), the
// automatic extension accepted in advance, applied before expiry with app alerts; option (2), renew
// by phone, with voice alerts at the lead time and again when the paid time runs out, before the
// grace period ends, then renewed through the voice menu. SMS and voice go through the webhook
// adapter to a local HTTP server in the test, which answers 500 at first: retried with backoff
// until delivered, or failed after the last attempt.
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { VirtualClock } from '../../hal/mock/clock';
import type { Platform } from '../../platform-server/platform';
import { forEachBackend, randomMeterId } from '../../sim/fleet/platform';
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

interface Posted {
  headers: IncomingHttpHeaders;
  body: { id: number; channel: string; to: string; kind: string; text: string };
  status: number;
}

/** The SMS/voice gateway: records every POST; answers the next status queued, else 200. */
class Gateway {
  readonly posts: Posted[] = [];
  readonly statuses: number[] = [];
  #server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.#server = createServer((request, response) => {
      let text = '';
      request.on('data', (chunk) => {
        text += chunk;
      });
      request.on('end', () => {
        const status = this.statuses.shift() ?? 200;
        this.posts.push({ headers: request.headers, body: JSON.parse(text), status });
        response.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, '127.0.0.1', () => resolve()));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/send`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}

forEachBackend('pay by phone options, alerts and the webhook gateway', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  const gateway = new Gateway();
  const autoMeterId = randomMeterId();
  const phoneMeterId = randomMeterId();
  let auto: BootedMeter;
  let byPhone: BootedMeter;
  let autoApi: Api;
  let phoneApi: Api;
  const phoneNumber = `+4477007${String(phoneMeterId).slice(-5)}`;

  before(async () => {
    await gateway.start();
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await phonePlatform(fresh.config, clock, {
      webhookUrl: gateway.url,
      webhookSecret: 'gateway-secret-1234',
    });
    auto = await bootMeter(platform, autoMeterId, clock);
    byPhone = await bootMeter(platform, phoneMeterId, clock);
  });

  after(async () => {
    auto?.meter.stop();
    byPhone?.meter.stop();
    await platform?.close();
    await drop?.();
    await gateway.close();
  });

  async function driver(name: string, phone: string, cardNumber: string, settings: object): Promise<Api> {
    const reg = await apiOf(platform)('POST', '/api/driver/register', {
      name,
      phone,
      email: `${name.replace(/\W/g, '').toLowerCase()}${autoMeterId}@example.org`,
      password: 'correct horse battery',
    });
    assert.equal(reg.status, 201);
    const api = apiOf(platform, reg.json.token);
    assert.equal((await api('PATCH', '/api/driver/me', settings)).status, 200);
    assert.equal((await api('POST', '/api/driver/cards', { cardNumber })).status, 201);
    return api;
  }

  async function messages(api: Api, kind: string) {
    return (await api('GET', '/api/driver/messages')).json.messages.filter(
      (x: { kind: string }) => x.kind === kind,
    );
  }

  async function activeSession(api: Api) {
    await until(
      async () => (await api('GET', '/api/driver/sessions?state=active')).json.sessions.length === 1,
      'the pairing',
    );
    return (await api('GET', '/api/driver/sessions?state=active')).json.sessions[0];
  }

  it('pairs two drivers: option 1 (auto, app alerts) and option 2 (phone, voice alerts)', async () => {
    autoApi = await driver('Auto Driver', `+4477006${String(autoMeterId).slice(-5)}`, '6280123400030068', {
      renewOption: 'auto',
      autoMinutes: 30,
      alertChannel: 'app',
      leadMinutes: 10,
    });
    phoneApi = await driver('Phone Driver', phoneNumber, '6280123400030076', {
      renewOption: 'phone',
      alertChannel: 'voice',
      leadMinutes: 10,
      graceMinutes: 10,
    });
    tapBay2(auto, clock, card('6280123400030068'));
    tapBay2(byPhone, clock, card('6280123400030076'));
    assert.equal((await activeSession(autoApi)).paidUntil, '2026-06-01T09:30:00.000Z');
    // The second tap came a moment later (the card held 300 ms at the first meter).
    assert.match((await activeSession(phoneApi)).paidUntil, /^2026-06-01T09:30:0[01]\.000Z$/);
    // The voice driver's receipt went to the gateway (the app driver's stayed in the local outbox).
    await until(() => gateway.posts.some((p) => p.body.kind === 'receipt'), 'the receipt at the gateway');
    const receipt = gateway.posts.find((p) => p.body.kind === 'receipt');
    assert.equal(receipt?.body.channel, 'voice');
    assert.equal(receipt?.body.to, phoneNumber);
    assert.equal(receipt?.headers.authorization, 'Bearer gateway-secret-1234');
    assert.equal((await messages(autoApi, 'receipt'))[0].channel, 'app');
  });

  it('option 1: the automatic extension is sent at the lead time and applied before expiry; app alerts', async () => {
    gateway.statuses.push(500); // the voice lead alert's first attempt fails
    clock.advance(21 * 60_000); // 09:21, nine minutes before expiry
    await platform.phone.tick();
    const [alert] = await messages(autoApi, 'auto-extension');
    assert.equal(alert.channel, 'app');
    assert.match(alert.recipient, /^PL\d{10}$/);
    assert.match(alert.body, /Bay 2 ends at 09:30: auto-extending by 30 min \(GBP 1\.20\)/);
    const [renewal] = (await autoApi('GET', '/api/driver/renewals')).json.renewals;
    assert.equal(renewal.channel, 'auto');
    assert.equal(renewal.minutes, 30);
    await until(
      async () =>
        (await autoApi('GET', `/api/driver/renewals/${renewal.id}`)).json.renewal.status === 'applied',
      'the automatic extension applied',
    );
    const applied = (await autoApi('GET', `/api/driver/renewals/${renewal.id}`)).json.renewal;
    assert.ok(Date.parse(applied.appliedAt) < Date.parse('2026-06-01T09:30:00Z'), 'before expiry');
    assert.equal(applied.paidUntil, '2026-06-01T10:00:00.000Z');
    assert.equal(auto.meter.bays.paidUntil(2), Date.parse('2026-06-01T10:00:00Z') / 1000);
    await until(async () => (await messages(autoApi, 'confirmation')).length === 1, 'the confirmation');
    assert.equal((await messages(autoApi, 'confirmation'))[0].channel, 'app');
    // No second automatic extension for the same expiry.
    await platform.phone.tick();
    assert.equal((await autoApi('GET', '/api/driver/renewals')).json.renewals.length, 1);
  });

  it('option 2: a voice alert at the lead time, through the webhook, retried after the gateway answered 500', async () => {
    const [alert] = await messages(phoneApi, 'expiry');
    assert.equal(alert.channel, 'voice');
    await until(() => gateway.posts.some((p) => p.body.kind === 'expiry'), 'the first attempt');
    const attempts = () => gateway.posts.filter((p) => p.body.kind === 'expiry');
    assert.deepEqual(
      attempts().map((p) => p.status),
      [500],
    );
    let row = (await messages(phoneApi, 'expiry'))[0];
    assert.equal(row.status, 'queued');
    assert.equal(row.attempts, 1);
    await platform.phone.tick(); // not due yet: the first retry waits 5 s on the platform clock
    assert.equal(attempts().length, 1);
    clock.advance(5_000);
    await platform.phone.tick();
    assert.deepEqual(
      attempts().map((p) => p.status),
      [500, 200],
    );
    row = (await messages(phoneApi, 'expiry'))[0];
    assert.equal(row.status, 'delivered');
    assert.equal(row.attempts, 2);
    const posted = attempts()[1].body;
    assert.equal(posted.to, phoneNumber);
    assert.equal(posted.channel, 'voice');
    assert.equal(posted.id, row.id);
    assert.match(posted.text, /ends at 09:30\. Press 1 to extend 30 minutes/);
  });

  it('option 2: when the time runs out, a voice alert before the grace period ends; renewed by IVRS', async () => {
    clock.advance(Date.parse('2026-06-01T09:31:00Z') - clock.now()); // one minute past expiry
    await platform.phone.tick();
    const graces = await messages(phoneApi, 'grace');
    assert.equal(graces.length, 1);
    assert.equal(graces[0].channel, 'voice');
    assert.match(graces[0].body, /has run out\. The grace period ends at 09:40\. Press 1/);
    await until(() => gateway.posts.some((p) => p.body.kind === 'grace'), 'the grace alert at the gateway');
    await platform.phone.tick();
    assert.equal((await messages(phoneApi, 'grace')).length, 1, 'one grace alert per expiry');
    // The auto driver (option 1) gets no grace alert.
    assert.equal((await messages(autoApi, 'grace')).length, 0);

    const pressed = await gatewayOf(platform, () => clock.now())('POST', '/api/phone/voice', {
      from: phoneNumber,
      digits: '1',
    });
    assert.match(pressed.json.say, /extending bay 2 by 30 min/);
    const [renewal] = (await phoneApi('GET', '/api/driver/renewals')).json.renewals;
    assert.equal(renewal.channel, 'voice');
    await until(
      async () =>
        (await phoneApi('GET', `/api/driver/renewals/${renewal.id}`)).json.renewal.status === 'applied',
      'the IVRS renewal applied',
    );
    // The renewal starts now (the paid time had run out), not at the old expiry.
    assert.equal(byPhone.meter.bays.paidUntil(2) >= Date.parse('2026-06-01T10:00:00Z') / 1000, true);
    await until(() => gateway.posts.some((p) => p.body.kind === 'confirmation'), 'the voice confirmation');
    assert.equal((await activeSession(phoneApi)).status, 'active');
  });

  it('a message the gateway keeps refusing is marked failed after the last attempt', async () => {
    gateway.statuses.push(500, 500, 500, 500, 500);
    const reply = await gatewayOf(platform, () => clock.now())('POST', '/api/phone/sms', {
      from: '+447700900999',
      text: 'hi',
    });
    assert.match(reply.json.reply, /not registered/);
    const rowOf = async () =>
      (
        await platform.db.query<{ status: string; attempts: number; last_error: string }>(
          "SELECT status, attempts, last_error FROM outbox WHERE recipient = '+447700900999'",
        )
      ).rows[0];
    await until(async () => (await rowOf()).attempts === 1, 'the first attempt');
    for (const wait of [5_000, 10_000, 20_000, 40_000]) {
      clock.advance(wait);
      await platform.phone.tick();
    }
    const row = await rowOf();
    assert.equal(row.status, 'failed');
    assert.equal(row.attempts, 5);
    assert.match(row.last_error, /gateway answered 500/);
    assert.equal(gateway.posts.filter((p) => p.body.to === '+447700900999').length, 5);
  });
});
