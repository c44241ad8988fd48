// Drivers' login limits: failed logins are counted per address and per account; successful logins
// count for neither, so many drivers behind one carrier NAT address all get in, while a guesser
// hopping addresses still stops at the account's limit. Over a limit: 429 with retry-after, before
// any password is checked.
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/mock/clock';
import { RateLimiter } from '../../platform-server/core/rateLimiter';
import { LoginLimits } from '../../platform-server/phone/security';
import type { Platform } from '../../platform-server/platform';
import { phonePlatform } from './support';

const NAT = '100.64.0.1';
const PASSWORD = 'a driver password';

describe('drivers login limits', () => {
  let platform: Platform;
  let now = 0;
  const window = 15 * 60_000;
  // 5 failures per address, 3 per account, in a window; on a clock the test moves.
  const limits = new LoginLimits(
    new RateLimiter(5, window, () => now),
    new RateLimiter(3, window, () => now),
  );
  const NO_LIMIT = () => new RateLimiter(1_000_000, 60_000);

  before(async () => {
    platform = await phonePlatform({}, new VirtualClock('2026-06-01T09:00:00Z'), {
      rateLimits: { login: limits, register: NO_LIMIT(), sms: NO_LIMIT(), voice: NO_LIMIT() },
    });
    for (let i = 0; i < 12; i++) {
      const res = await platform.app.inject({
        method: 'POST',
        url: '/api/driver/register',
        payload: {
          name: `Driver ${i}`,
          phone: `+4477009002${String(i).padStart(2, '0')}`,
          email: `driver${i}@example.com`,
          password: PASSWORD,
        },
      });
      assert.equal(res.statusCode, 201);
    }
  });
  after(() => platform?.close());
  beforeEach(() => {
    // A new window for each test.
    now += 2 * window;
  });

  const login = (login: string, password: string, address = NAT) =>
    platform.app.inject({
      method: 'POST',
      url: '/api/driver/login',
      payload: { login, password },
      remoteAddress: address,
    });

  it('lets any number of drivers behind one address log in: successes are not counted', async () => {
    for (let round = 0; round < 3; round++)
      for (let i = 0; i < 12; i++) {
        const res = await login(`driver${i}@example.com`, PASSWORD);
        assert.equal(res.statusCode, 200, `driver ${i}, round ${round}`);
      }
  });

  it('counts failures per address: past the limit the address gets 429 with retry-after', async () => {
    // Failures spread over accounts, so no account reaches its own limit.
    for (let i = 0; i < 5; i++)
      assert.equal((await login(`driver${i}@example.com`, 'wrong password')).statusCode, 401);
    const refused = await login('driver9@example.com', PASSWORD);
    assert.equal(refused.statusCode, 429);
    assert.equal(refused.json().code, 'too-many-requests');
    assert.match(refused.json().message, /too many login attempts/);
    assert.equal(Number(refused.headers['retry-after']), 15 * 60);
    // Another address is not held back by this one's failures.
    assert.equal((await login('driver9@example.com', PASSWORD, '198.51.100.7')).statusCode, 200);
    // After the window the address may log in again.
    now += window;
    assert.equal((await login('driver9@example.com', PASSWORD)).statusCode, 200);
  });

  it('locks an account after its failures, whatever the address and the identifier typed', async () => {
    // Three failures from three addresses, with the e-mail, the phone number and the phone again.
    assert.equal((await login('driver3@example.com', 'wrong', '203.0.113.1')).statusCode, 401);
    assert.equal((await login('+447700900203', 'wrong', '203.0.113.2')).statusCode, 401);
    assert.equal((await login('+44 7700 900203', 'wrong', '203.0.113.3')).statusCode, 401);
    // The right password from a fourth address is refused too: the account is locked.
    const locked = await login('driver3@example.com', PASSWORD, '203.0.113.4');
    assert.equal(locked.statusCode, 429);
    assert.ok(Number(locked.headers['retry-after']) > 0);
    // Other accounts are not.
    assert.equal((await login('driver4@example.com', PASSWORD, '203.0.113.4')).statusCode, 200);
    now += window;
    assert.equal((await login('driver3@example.com', PASSWORD, '203.0.113.4')).statusCode, 200);
  });

  it("clears an account's failures on a successful login, but not the address's", async () => {
    const address = '192.0.2.50';
    assert.equal((await login('driver5@example.com', 'wrong', address)).statusCode, 401);
    assert.equal((await login('driver5@example.com', 'wrong', address)).statusCode, 401);
    assert.equal((await login('driver5@example.com', PASSWORD, address)).statusCode, 200);
    // Two more failures: the account starts from 0 again (3 allowed), so it is not locked.
    assert.equal((await login('driver5@example.com', 'wrong', '192.0.2.51')).statusCode, 401);
    assert.equal((await login('driver5@example.com', 'wrong', '192.0.2.51')).statusCode, 401);
    assert.equal((await login('driver5@example.com', PASSWORD, '192.0.2.52')).statusCode, 200);
    // The first address's two failures still count: three more reach its limit of five.
    for (let i = 6; i < 9; i++)
      assert.equal((await login(`driver${i}@example.com`, 'wrong', address)).statusCode, 401);
    assert.equal((await login('driver10@example.com', PASSWORD, address)).statusCode, 429);
  });

  it('counts concurrent guesses as they start: no more than the limit reach a password check', async () => {
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => login('driver7@example.com', `guess ${i}`, `198.51.100.${i}`)),
    );
    const statuses = answers.map((a) => a.statusCode).sort();
    assert.deepEqual(statuses, [...Array(3).fill(401), ...Array(9).fill(429)]);
  });

  it('locks an unknown login as it locks a known one (no telling which exist)', async () => {
    for (let i = 0; i < 3; i++)
      assert.equal((await login('nobody@example.com', 'wrong', `198.18.0.${i}`)).statusCode, 401);
    const unknown = await login('nobody@example.com', 'wrong', '198.18.0.9');
    for (let i = 0; i < 3; i++)
      assert.equal((await login('driver11@example.com', 'wrong', `198.18.1.${i}`)).statusCode, 401);
    const known = await login('driver11@example.com', 'wrong', '198.18.1.9');
    assert.equal(unknown.statusCode, 429);
    assert.equal(known.statusCode, 429);
    assert.deepEqual(unknown.json(), known.json());
  });
});
