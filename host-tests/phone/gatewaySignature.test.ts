// The SMS and voice gateway is never open: posts are checked against the provider-style signature
// (HMAC over URL and raw body, a timestamp in a window, no replays), and the platform refuses to
// start with the gateway on and no secret unless in demo mode.
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/mock/clock';
import { ConfigError } from '../../platform-server/core/errors';
import {
  GatewaySignatureError,
  GatewayVerifier,
  signGatewayRequest,
} from '../../platform-server/phone/gatewaySignature';
import { configFromEnv } from '../../platform-server/config';
import { createPlatform, type Platform } from '../../platform-server/platform';
import { quietLogger, TEST_GATEWAY_SECRET } from '../../sim/fleet/platform';
import { apiOf, gatewayOf, phonePlatform } from './support';
import { PaymentSimulator } from '../../platform-server/payments/simulator';

const URL_SMS = 'http://parklink.test/api/phone/sms';

describe('gateway signature (verifier)', () => {
  const now = Date.parse('2026-06-01T09:00:00Z');
  const verifier = () => new GatewayVerifier({ secret: TEST_GATEWAY_SECRET, now: () => now });
  const body = '{"from":"+447700900111","text":"STATUS"}';
  const fault = (fn: () => void) => {
    try {
      fn();
    } catch (error) {
      assert.ok(error instanceof GatewaySignatureError, String(error));
      return error.fault;
    }
    assert.fail('accepted');
  };

  it('accepts the signature of the URL and body it was made for, once', () => {
    const v = verifier();
    const headers = signGatewayRequest(TEST_GATEWAY_SECRET, URL_SMS, body, now);
    assert.match(headers['x-parklink-signature'], /^v1=[0-9a-f]{64}$/);
    v.verify(URL_SMS, Buffer.from(body), headers);
    assert.equal(
      fault(() => v.verify(URL_SMS, body, headers)),
      'replayed-signature',
    );
  });

  it('refuses another body, another URL, another secret, no headers, a malformed header', () => {
    const headers = signGatewayRequest(TEST_GATEWAY_SECRET, URL_SMS, body, now);
    const other = body.replace('STATUS', 'YES');
    assert.equal(
      fault(() => verifier().verify(URL_SMS, other, headers)),
      'bad-signature',
    );
    assert.equal(
      fault(() => verifier().verify('http://parklink.test/api/phone/voice', body, headers)),
      'bad-signature',
    );
    const forged = signGatewayRequest('a different secret of length', URL_SMS, body, now);
    assert.equal(
      fault(() => verifier().verify(URL_SMS, body, forged)),
      'bad-signature',
    );
    assert.equal(
      fault(() => verifier().verify(URL_SMS, body, {})),
      'missing-signature',
    );
    assert.equal(
      fault(() => verifier().verify(URL_SMS, body, { ...headers, 'x-parklink-signature': 'v1=zz' })),
      'bad-signature',
    );
    assert.equal(
      fault(() => verifier().verify(URL_SMS, body, { ...headers, 'x-parklink-timestamp': '-1' })),
      'bad-timestamp',
    );
  });

  it('refuses a timestamp outside the five-minute window, either way', () => {
    for (const skew of [-5 * 60_000 - 1000, 5 * 60_000 + 1000]) {
      const headers = signGatewayRequest(TEST_GATEWAY_SECRET, URL_SMS, body, now + skew);
      assert.equal(
        fault(() => verifier().verify(URL_SMS, body, headers)),
        'stale-timestamp',
      );
    }
    const inside = signGatewayRequest(TEST_GATEWAY_SECRET, URL_SMS, body, now - 4 * 60_000);
    verifier().verify(URL_SMS, body, inside);
  });

  it('refuses a secret shorter than 16 characters', () => {
    assert.throws(() => new GatewayVerifier({ secret: 'short' }), RangeError);
  });
});

describe('gateway signature (platform)', () => {
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  let platform: Platform;

  before(async () => {
    platform = await phonePlatform({}, clock);
  });
  after(async () => {
    await platform?.close();
  });

  it('an unsigned or wrongly signed post learns nothing and buys nothing; a signed one is answered', async () => {
    // An attacker who knows a driver's number: no signature, or one made without the secret.
    for (const [url, body] of [
      ['/api/phone/sms', { from: '+447700900111', text: 'STATUS' }],
      ['/api/phone/voice', { from: '+447700900111', digits: '1' }],
    ] as const) {
      const unsigned = await apiOf(platform)('POST', url, body);
      assert.equal(unsigned.status, 401, url);
      assert.equal(unsigned.json.code, 'missing-signature');
      assert.equal(unsigned.json.reply, undefined);
      const forged = await gatewayOf(platform, () => clock.now(), 'not the secret, but long')(
        'POST',
        url,
        body,
      );
      assert.equal(forged.status, 401, url);
      assert.equal(forged.json.code, 'bad-signature');
    }
    // Nothing reached the service: no reply was queued for the number.
    const queued = await platform.db.query("SELECT 1 FROM outbox WHERE recipient = '+447700900111'");
    assert.equal(queued.rows.length, 0);

    const signed = await gatewayOf(platform, () => clock.now())('POST', '/api/phone/sms', {
      from: '+447700900111',
      text: 'STATUS',
    });
    assert.equal(signed.status, 200);
    assert.match(signed.json.reply, /not registered/);
  });

  it('a signed post replayed is refused; signed at the platform clock minus ten minutes is stale', async () => {
    const body = JSON.stringify({ from: '+447700900222', text: 'HELP' });
    const headers = {
      host: 'parklink.test',
      'content-type': 'application/json',
      ...signGatewayRequest(TEST_GATEWAY_SECRET, URL_SMS, body, clock.now()),
    };
    const first = await platform.app.inject({
      method: 'POST',
      url: '/api/phone/sms',
      payload: body,
      headers,
    });
    assert.equal(first.statusCode, 200);
    const again = await platform.app.inject({
      method: 'POST',
      url: '/api/phone/sms',
      payload: body,
      headers,
    });
    assert.equal(again.statusCode, 401);
    assert.equal(again.json().code, 'replayed-signature');
    const old = await gatewayOf(platform, () => clock.now() - 10 * 60_000)('POST', '/api/phone/sms', {
      from: '+447700900222',
      text: 'HELP',
    });
    assert.equal(old.status, 401);
    assert.equal(old.json.code, 'stale-timestamp');
  });

  it('the signature covers the raw bytes: the same JSON re-spaced does not pass', async () => {
    const body = JSON.stringify({ from: '+447700900333', text: 'HELP' });
    const headers = signGatewayRequest(TEST_GATEWAY_SECRET, URL_SMS, body, clock.now());
    const respaced = JSON.stringify(JSON.parse(body), null, 1);
    const response = await platform.app.inject({
      method: 'POST',
      url: '/api/phone/sms',
      payload: respaced,
      headers: { host: 'parklink.test', 'content-type': 'application/json', ...headers },
    });
    assert.equal(response.statusCode, 401);
    assert.equal(response.json().code, 'bad-signature');
  });
});

describe('gateway secret at start', () => {
  it('refuses to start with the gateway on and no secret, with a typed error naming the setting', async () => {
    await assert.rejects(
      createPlatform({ httpLogger: false, logger: quietLogger }),
      (error: unknown) => error instanceof ConfigError && /PARKLINK_GATEWAY_SECRET/.test(error.message),
    );
    await assert.rejects(
      createPlatform({ httpLogger: false, logger: quietLogger, phone: { gatewaySecret: 'short' } }),
      ConfigError,
    );
  });

  it('starts with the gateway off and serves no gateway route', async () => {
    const platform = await createPlatform({
      httpLogger: false,
      logger: quietLogger,
      phone: { gateway: false, paymentProvider: new PaymentSimulator() },
    });
    try {
      const response = await apiOf(platform)('POST', '/api/phone/sms', { from: '+447700900111', text: 'HI' });
      assert.equal(response.status, 404);
    } finally {
      await platform.close();
    }
  });

  it('starts in demo mode (PARKLINK_DEMO=1) without a secret, the gateway taking unsigned posts', async () => {
    const config = configFromEnv({ PARKLINK_DEMO: '1' });
    assert.equal(config.demo, true);
    const platform = await createPlatform({ ...config, httpLogger: false, logger: quietLogger });
    try {
      const response = await apiOf(platform)('POST', '/api/phone/sms', { from: '+447700900111', text: 'HI' });
      assert.equal(response.status, 200);
      assert.match(response.json.reply, /not registered/);
    } finally {
      await platform.close();
    }
  });

  it('reads the secret from PARKLINK_GATEWAY_SECRET', async () => {
    const { phoneConfigFromEnv } = await import('../../platform-server/phone');
    assert.equal(
      phoneConfigFromEnv({ PARKLINK_GATEWAY_SECRET: TEST_GATEWAY_SECRET }).gatewaySecret,
      TEST_GATEWAY_SECRET,
    );
    assert.equal(phoneConfigFromEnv({ PARKLINK_PHONE_GATEWAY: '0' }).gateway, false);
  });
});
