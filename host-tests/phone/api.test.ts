// Pay-by-phone API edges: schemas and 4xx messages, auth, password hashing, rate limits, the SMS and
// DTMF parsers, pricing refusals, and the renewal messages' codec.
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/mock/clock';
import { parseDtmf, parseSms } from '../../platform-server/phone/replies';
import { FlatRatePricing } from '../../platform-server/phone/pricing';
import { RateLimiter, verifyPassword } from '../../platform-server/phone/security';
import type { Platform } from '../../platform-server/platform';
import { ProtocolError } from '../../protocol/errors';
import { decodeRenewal, encodeRenewal } from '../../protocol/renewal';
import { apiOf, gatewayOf, phonePlatform } from './support';

describe('pay by phone API', () => {
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  let platform: Platform;
  before(async () => {
    platform = await phonePlatform({}, clock);
  });
  after(() => platform?.close());

  it('validates bodies with clear 4xx messages, and guards driver routes with a token', async () => {
    const api = apiOf(platform);
    const short = await api('POST', '/api/driver/register', {
      name: 'A',
      phone: '+447700900111',
      email: 'a@b.co',
      password: 'short',
    });
    assert.equal(short.status, 400);
    assert.equal(short.json.message, 'Choose a password of at least 10 characters.');
    assert.equal(short.json.field, 'password');
    const email = await api('POST', '/api/driver/register', {
      name: 'A',
      phone: '+447700900111',
      email: 'not an address',
      password: 'long enough pw',
    });
    assert.equal(email.status, 400);
    assert.equal(email.json.message, 'Enter an e-mail address such as name@example.com.');
    assert.equal(email.json.field, 'email');
    assert.equal((await api('GET', '/api/driver/sessions')).status, 401);
    const ok = await api('POST', '/api/driver/register', {
      name: 'A',
      phone: '+447700900111',
      email: 'a@b.co',
      password: 'long enough pw',
    });
    assert.equal(ok.status, 201);
    const again = await api('POST', '/api/driver/register', {
      name: 'B',
      phone: '+44 7700 900111',
      email: 'b@b.co',
      password: 'long enough pw',
    });
    assert.equal(again.status, 409);
    assert.match(again.json.message, /already registered/);
    const hash = await platform.db.query<{ password_hash: string }>('SELECT password_hash FROM drivers');
    assert.match(hash.rows[0].password_hash, /^scrypt\$/);
    assert.equal(await verifyPassword('long enough pw', hash.rows[0].password_hash), true);
    const authed = apiOf(platform, ok.json.token);
    assert.equal((await authed('POST', '/api/driver/sessions/999/extend', { minutes: 30 })).status, 404);
    assert.equal((await authed('POST', '/api/driver/cards', { cardNumber: '6280' })).status, 400);
    assert.equal((await authed('PATCH', '/api/driver/cards/77', { renewal: true })).status, 404);
    const noSession = await gatewayOf(platform, () => clock.now())('POST', '/api/phone/sms', {
      from: '+447700900111',
      text: 'EXTEND 30',
    });
    assert.match(noSession.json.reply, /no active parking session/);
  });

  it("reads national numbers in the city's country and logs in with any way of writing them", async () => {
    const api = apiOf(platform);
    const registered = await api('POST', '/api/driver/register', {
      name: 'National',
      phone: '07700 900123',
      email: 'national@b.co',
      password: 'long enough pw',
    });
    assert.equal(registered.status, 201, JSON.stringify(registered.json));
    const stored = await platform.db.query<{ phone: string }>(
      "SELECT phone FROM drivers WHERE email = 'national@b.co'",
    );
    assert.equal(stored.rows[0].phone, '+447700900123');
    for (const login of ['+44 7700 900123', '07700900123', '0044 7700 900123', '+447700900123']) {
      const answer = await api('POST', '/api/driver/login', { login, password: 'long enough pw' });
      assert.equal(answer.status, 200, `${login}: ${JSON.stringify(answer.json)}`);
    }
    // The SMS gateway's sender is matched the same way.
    const sms = await gatewayOf(platform, () => clock.now())('POST', '/api/phone/sms', {
      from: '+447700900123',
      text: 'HELP',
    });
    assert.doesNotMatch(sms.json.reply, /not registered/);
    const refused = await api('POST', '/api/driver/register', {
      name: 'Nobody',
      phone: '123',
      email: 'nobody@b.co',
      password: 'long enough pw',
    });
    assert.equal(refused.status, 400);
    assert.equal(refused.json.code, 'bad-phone');
    assert.match(
      refused.json.message,
      /not a phone number we can reach: write it as you would dial it in GB/,
    );
  });

  it('rate limits login attempts with 429 and retry-after', async () => {
    const api = apiOf(platform);
    let last = { status: 0, json: {} as { message?: string } };
    for (let i = 0; i < 11; i++)
      last = await api('POST', '/api/driver/login', { login: 'nobody@b.co', password: 'x' });
    assert.equal(last.status, 429);
    assert.match(last.json.message ?? '', /too many login attempts/);
  });

  it('parses replies and DTMF; limits per key', () => {
    assert.deepEqual(parseSms(' extend 30 '), { kind: 'extend', minutes: 30 });
    assert.deepEqual(parseSms('EXTEND'), { kind: 'extend', minutes: undefined });
    assert.deepEqual(parseSms('45 mins'), { kind: 'unknown', text: '45 mins' });
    assert.deepEqual(parseSms('renew by 45 minutes'), { kind: 'extend', minutes: 45 });
    assert.equal(parseSms('stop').kind, 'stop');
    assert.equal(parseSms('lol').kind, 'unknown');
    assert.deepEqual(parseDtmf('2'), { kind: 'extend', minutes: 60 });
    assert.equal(parseDtmf('').kind, 'help');
    assert.equal(parseDtmf('3').kind, 'status');
    const limiter = new RateLimiter(2, 1000, () => 0);
    assert.equal(limiter.hit('a'), 0);
    assert.equal(limiter.hit('a'), 0);
    assert.equal(limiter.hit('a'), 1);
    assert.equal(limiter.hit('b'), 0);
  });

  it('prices with refusals for the maximum stay and restricted periods', () => {
    const pricing = new FlatRatePricing({
      currency: 826,
      perHour: 240,
      maxStayMinutes: 120,
      minMinutes: 5,
      restricted: [{ from: 16 * 60, to: 18 * 60 }],
    });
    const start = Date.parse('2026-06-01T09:00:00Z') / 1000;
    assert.deepEqual(pricing.quote({ meterId: 1, bayId: 1, start, minutes: 30, paidMinutes: 60 }), {
      ok: true,
      amount: 120,
      currency: 826,
      minutes: 30,
    });
    const max = pricing.quote({ meterId: 1, bayId: 1, start, minutes: 90, paidMinutes: 60 });
    assert.equal(max.ok, false);
    assert.equal(!max.ok && max.reason, 'max-stay');
    const rush = pricing.quote({
      meterId: 1,
      bayId: 1,
      start: start + 6.75 * 3600,
      minutes: 30,
      paidMinutes: 0,
    });
    assert.equal(!rush.ok && rush.reason, 'restricted');
  });

  it('encodes renewals and refuses bad ones with typed errors', () => {
    const m = {
      id: 'abc123',
      bayId: 2,
      minutes: 30,
      charge: 120,
      currency: 826,
      authorisation: 'DX1',
      validUntil: 1,
    };
    assert.deepEqual(decodeRenewal(encodeRenewal(m)), m);
    assert.throws(() => encodeRenewal({ ...m, id: 'UPPER' }), ProtocolError);
    assert.throws(
      () => decodeRenewal(Uint8Array.of(0xa0)),
      (e: ProtocolError) => e.code === 'bad-field',
    );
  });
});
