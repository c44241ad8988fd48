// Operator accounts on both backends: the first admin from the config, logins (scrypt, tokens kept
// only as their SHA-256), lockout, expired and revoked sessions, 401 and 403 per role on each group
// of operator routes, the release signed with the logged-in operator's name, and the audit log.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import Fastify from 'fastify';
import { fromHex, toHex } from '../../protocol/bytes';
import { verifyReleaseToken } from '../../protocol/release';
import { DEFAULT_SETTINGS } from '../../protocol/status';
import { Operators, type Role, ROLES, roleAtLeast } from '../../platform-server/operators/service';
import { openDatabase } from '../../platform-server/core/db';
import { migrate } from '../../platform-server/core/migrations';
import type { Platform } from '../../platform-server/platform';
import { configFromEnv } from '../../platform-server/config';
import {
  crypto,
  forEachBackend,
  type OperatorLogin,
  operatorLogin,
  randomMeterId,
  startPlatform,
} from '../../sim/fleet/platform';

const ADMIN = { username: 'city-admin', password: 'first admin password' };
const SESSION_S = 3600;
const LOCKOUT_S = 600;

forEachBackend('operator accounts', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let now = Date.parse('2026-05-04T08:00:00Z');
  const as: Partial<Record<Role, OperatorLogin>> = {};
  let meterId: number;

  before(async () => {
    ({ platform, drop } = await startPlatform(backend, {
      operators: {
        now: () => now,
        sessionSeconds: SESSION_S,
        maxFailedLogins: 3,
        lockoutSeconds: LOCKOUT_S,
        loginsPerAddress: { limit: 20, windowSeconds: 15 * 60 },
        admin: ADMIN,
      },
    }));
    for (const role of ROLES) as[role] = await operatorLogin(platform.operators, role);
    meterId = randomMeterId();
    await platform.provisionMeter(meterId, 'Operators Street');
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  const inject = (
    method: 'GET' | 'POST' | 'PATCH',
    url: string,
    who?: OperatorLogin | { authorization: string },
    payload?: object,
  ) =>
    platform.app.inject({
      method,
      url,
      headers: who === undefined ? {} : 'headers' in who ? who.headers : who,
      ...(payload === undefined ? {} : { payload }),
    });
  const login = (username: string, password: string) =>
    inject('POST', '/api/operators/login', undefined, { username, password });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const audit = async (where: string, params: (string | number)[]) =>
    (
      await platform.db.query<{
        username: string;
        action: string;
        meter_id: number | null;
        detail: Record<string, unknown>;
      }>(`SELECT username, action, meter_id, detail FROM operator_audit WHERE ${where} ORDER BY id`, params)
    ).rows;

  it('creates the configured first admin once, with a salted scrypt hash; it logs in with a bearer token', async () => {
    assert.equal(platform.operators.bootstrapped, ADMIN.username);
    const stored = await platform.db.query<{ password_hash: string; role: string }>(
      'SELECT password_hash, role FROM operators WHERE username = $1',
      [ADMIN.username],
    );
    assert.equal(stored.rows[0].role, 'admin');
    assert.match(stored.rows[0].password_hash, /^scrypt\$15\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}$/);
    // A second start with other bootstrap settings changes nothing: operators exist.
    const again = new Operators(platform.db, {
      admin: { username: 'someone-else', password: 'another password' },
    });
    assert.equal(await again.bootstrap(), undefined);
    assert.equal(
      (await platform.db.query('SELECT 1 FROM operators WHERE username = $1', ['someone-else'])).rows.length,
      0,
    );

    const res = await login(ADMIN.username, ADMIN.password);
    assert.equal(res.statusCode, 200);
    const { token, expiresAt, operator } = res.json();
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(expiresAt, new Date(now + SESSION_S * 1000).toISOString());
    assert.deepEqual([operator.username, operator.role], [ADMIN.username, 'admin']);
    // Only the token's SHA-256 is kept.
    const sessions = await platform.db.query<{ token_hash: string }>(
      'SELECT s.token_hash FROM operator_sessions s JOIN operators o ON o.id = s.operator_id WHERE o.username = $1',
      [ADMIN.username],
    );
    assert.deepEqual(
      sessions.rows.map((r) => r.token_hash),
      [createHash('sha256').update(token).digest('hex')],
    );
    const me = await inject('GET', '/api/operators/me', bearer(token));
    assert.equal(me.statusCode, 200);
    assert.deepEqual(me.json().operator, {
      username: ADMIN.username,
      displayName: 'Administrator',
      role: 'admin',
    });
  });

  it('refuses a wrong password and an unknown name alike (401, WWW-Authenticate) and audits both', async () => {
    const wrong = await login(as.viewer!.username, 'not the password');
    const unknown = await login('nobody-here', 'not the password');
    for (const res of [wrong, unknown]) {
      assert.equal(res.statusCode, 401);
      assert.match(String(res.headers['www-authenticate']), /^Bearer/);
      assert.deepEqual(res.json(), {
        statusCode: 401,
        error: 'Unauthorized',
        code: 'bad-credentials',
        message: 'unknown username or wrong password',
      });
    }
    const rows = await audit("action = 'login.failed' AND username IN ($1, $2)", [
      as.viewer!.username,
      'nobody-here',
    ]);
    assert.deepEqual(
      rows.map((r) => [r.username, r.detail.reason]),
      [
        [as.viewer!.username, 'wrong-password'],
        ['nobody-here', 'unknown-username'],
      ],
    );
  });

  it('400 for a login without a password or with a too long name', async () => {
    for (const body of [{ username: ADMIN.username }, { username: 'x'.repeat(65), password: 'p' }, {}]) {
      const res = await inject('POST', '/api/operators/login', undefined, body);
      assert.equal(res.statusCode, 400, JSON.stringify(body));
      assert.equal(res.json().error, 'Bad Request');
    }
  });

  it('limits login attempts per network address across usernames (password spraying): 20 per 15 min here', async () => {
    now += 15 * 60 * 1000 + 1000; // a fresh window for every address
    const from = (remoteAddress: string, username: string) =>
      platform.app.inject({
        method: 'POST',
        url: '/api/operators/login',
        remoteAddress,
        payload: { username, password: 'Winter2026!' },
      });
    for (let i = 0; i < 20; i++) assert.equal((await from('203.0.113.7', `sprayed.${i}`)).statusCode, 401);
    const limited = await from('203.0.113.7', 'sprayed.20');
    assert.equal(limited.statusCode, 429);
    assert.equal(limited.json().code, 'too-many-logins');
    assert.equal(limited.headers['retry-after'], String(15 * 60));
    assert.equal((await from('203.0.113.8', 'sprayed.0')).statusCode, 401, 'another address is not limited');
    now += 15 * 60 * 1000;
    assert.equal(
      (await from('203.0.113.7', 'sprayed.21')).statusCode,
      401,
      'allowed again in the next window',
    );
  });

  it('limits the client behind a trusted proxy, not the proxy (PARKLINK_TRUST_PROXY)', async () => {
    assert.equal(
      configFromEnv({ PARKLINK_TRUST_PROXY: '10.0.0.0/8,127.0.0.1' }).trustProxy,
      '10.0.0.0/8,127.0.0.1',
    );
    assert.equal(configFromEnv({ PARKLINK_TRUST_PROXY: 'true' }).trustProxy, true);
    const { platform: proxied, drop: dropProxied } = await startPlatform(backend, {
      trustProxy: '127.0.0.1',
      operators: { loginsPerAddress: { limit: 2, windowSeconds: 60 }, scrypt: { logN: 10, r: 8, p: 1 } },
    });
    try {
      const through = (client: string) =>
        proxied.app.inject({
          method: 'POST',
          url: '/api/operators/login',
          remoteAddress: '127.0.0.1',
          headers: { 'x-forwarded-for': client },
          payload: { username: 'nobody', password: 'not a password' },
        });
      assert.equal((await through('198.51.100.1')).statusCode, 401);
      assert.equal((await through('198.51.100.1')).statusCode, 401);
      assert.equal((await through('198.51.100.1')).statusCode, 429, 'the client behind the proxy is limited');
      assert.equal(
        (await through('198.51.100.2')).statusCode,
        401,
        'another client through the same proxy is not',
      );
    } finally {
      await proxied.close();
      await dropProxied();
    }
  });

  it('locks an account after repeated failures, even for the right password, until the lockout ends or an admin unlocks it', async () => {
    const password = 'a clerk password';
    const created = await inject('POST', '/api/operators', as.admin, {
      username: 'clerk.lock',
      role: 'viewer',
      password,
    });
    assert.equal(created.statusCode, 201);
    const failThrice = async () => {
      for (let i = 0; i < 3; i++) assert.equal((await login('clerk.lock', 'guess')).statusCode, 401);
    };
    await failThrice();
    const locked = await login('clerk.lock', password);
    assert.equal(locked.statusCode, 429);
    assert.equal(locked.headers['retry-after'], String(LOCKOUT_S));
    assert.equal(locked.json().code, 'locked');
    now += (LOCKOUT_S + 1) * 1000;
    assert.equal((await login('clerk.lock', password)).statusCode, 200);

    await failThrice();
    assert.equal((await login('clerk.lock', password)).statusCode, 429);
    const unlocked = await inject('PATCH', '/api/operators/clerk.lock', as.admin, { unlock: true });
    assert.equal(unlocked.statusCode, 200);
    assert.equal(unlocked.json().operator.lockedUntil, null);
    assert.equal((await login('clerk.lock', password)).statusCode, 200);
    const reasons = (await audit("username = 'clerk.lock' AND action LIKE 'login%'", [])).map((r) =>
      r.action === 'login' ? 'ok' : String(r.detail.reason),
    );
    assert.deepEqual(reasons, [
      ...['wrong-password', 'wrong-password', 'wrong-password', 'locked', 'ok'],
      ...['wrong-password', 'wrong-password', 'wrong-password', 'locked', 'ok'],
    ]);
  });

  // One representative route per group, with the status it answers once let through; `:id` is the
  // test's meter.
  const groups: { need: Role; method: 'GET' | 'POST'; path: string; body?: object; through: number }[] = [
    { need: 'viewer', method: 'GET', path: '/api/meters/:id/gaps', through: 200 },
    // An invalid tariff: 400 once through; the validation is never reached without the role.
    { need: 'operator', method: 'POST', path: '/api/tariffs', body: { id: 'bad' }, through: 400 },
    {
      need: 'supervisor',
      method: 'POST',
      path: '/api/meters/4294967295/releases',
      body: { fromSeq: 1, toSeq: 2, reason: 'unknown meter' },
      through: 404,
    },
    { need: 'supervisor', method: 'POST', path: '/api/meters/4294967295/key-rotation', through: 404 },
    { need: 'supervisor', method: 'GET', path: '/api/operators/audit?limit=1', through: 200 },
  ];
  for (const group of groups) {
    it(`${group.method} ${group.path}: 401 without a login, 403 below ${group.need}`, async () => {
      const url = group.path.replace(':id', String(meterId));
      const anonymous = await inject(group.method, url, undefined, group.body);
      assert.equal(anonymous.statusCode, 401);
      for (const role of ROLES) {
        const res = await inject(group.method, url, as[role], group.body);
        const expected = roleAtLeast(role, group.need) ? group.through : 403;
        assert.equal(res.statusCode, expected, `${role}: ${res.body}`);
        if (expected === 403) {
          assert.equal(res.json().code, 'forbidden');
          assert.match(res.json().message, new RegExp(`needs the ${group.need} role`));
        }
      }
    });
  }

  it("guards every operator route; only the login, the quote, receipts and the drivers' routes are public", async () => {
    const routes = platform.operators.routes;
    const publicUrls = [...new Set(routes.filter((r) => r.role === undefined).map((r) => r.url))];
    for (const url of publicUrls)
      assert.match(url, /^\/api\/(driver\/|phone\/|quote$|receipts\/|operators\/login$)/, `${url} is public`);
    const need = (method: string, url: string) =>
      routes.find((r) => r.method === method && r.url === url)?.role;
    assert.equal(need('POST', '/api/meters/:id/releases'), 'supervisor');
    assert.equal(need('POST', '/api/meters/:id/key-rotation'), 'supervisor');
    assert.equal(need('POST', '/api/meters/:id/maintenance-tokens'), 'operator');
    assert.equal(need('POST', '/api/meters/:id/settings'), 'operator');
    assert.equal(need('POST', '/api/operators'), 'admin');
    assert.equal(need('HEAD', '/api/meters'), 'viewer');
    const guarded = routes.filter((r) => r.role !== undefined);
    assert.ok(guarded.length >= 20, `${guarded.length} guarded routes`);
    for (const route of guarded) {
      const url = route.url.replace(':id', String(meterId)).replace(':username', 'someone');
      const res = await platform.app.inject({ method: route.method as 'GET', url });
      assert.equal(res.statusCode, 401, `${route.method} ${route.url}`);
    }
    // And the public ones stay public.
    assert.equal((await inject('GET', '/healthz')).statusCode, 200);
    const quote = await inject('POST', '/api/quote', undefined, { meterId, bay: 1, start: 0, minutes: 30 });
    assert.equal(quote.statusCode, 404, 'no tariff, but not a 401');
  });

  it('refuses to register an operator route without a role', async () => {
    const app = Fastify({ logger: false });
    new Operators(platform.db).install(app);
    try {
      assert.throws(() => app.get('/api/unguarded', async () => 'open'), /without requireRole/);
      assert.throws(() => app.post('/api/meters/:id/unguarded', async () => 'open'), /without requireRole/);
      app.get('/elsewhere', async () => 'fine');
    } finally {
      await app.close();
    }
  });

  it('a release carries the logged-in supervisor: in the row, inside the signed token, in the audit', async () => {
    const supervisor = as.supervisor!;
    const res = await inject('POST', `/api/meters/${meterId}/releases`, supervisor, {
      fromSeq: 3,
      toSeq: 9,
      reason: 'upload store replaced after flood damage',
    });
    assert.equal(res.statusCode, 201, res.body);
    const body = res.json();
    assert.equal(body.operator, supervisor.username);
    const token = verifyReleaseToken(crypto, platform.releaseKeyFor(meterId), fromHex(body.token));
    assert.deepEqual(
      { ...token, issuedAt: 0 },
      { meterId, fromSeq: 3, toSeq: 9, issuedAt: 0, operator: supervisor.username },
    );
    const row = await platform.db.query<{ operator: string; username: string; reason: string }>(
      `SELECT r.operator, o.username, r.reason FROM upload_releases r JOIN operators o ON o.id = r.operator_id
        WHERE r.id = $1`,
      [body.id],
    );
    assert.deepEqual(row.rows[0], {
      operator: supervisor.username,
      username: supervisor.username,
      reason: 'upload store replaced after flood damage',
    });
    const [entry] = await audit("action = 'release.issue' AND meter_id = $1", [meterId]);
    assert.equal(entry.username, supervisor.username);
    assert.equal(entry.detail.releaseId, body.id);
    assert.equal(entry.detail.token, toHex(crypto.sha256(fromHex(body.token)).subarray(0, 8)));

    // The list shows the token to supervisors (the authority to discard records), not to viewers.
    const asViewer = (await inject('GET', `/api/meters/${meterId}/releases`, as.viewer)).json().releases;
    const asSupervisor = (await inject('GET', `/api/meters/${meterId}/releases`, supervisor)).json().releases;
    assert.equal(asViewer[0].operator, supervisor.username);
    assert.equal('token' in asViewer[0], false);
    assert.equal(asSupervisor[0].token, body.token);
  });

  it('a release refuses a client-supplied operator and bad bodies with 400, issues nothing and audits the refusal', async () => {
    const count = async () =>
      (
        await platform.db.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM upload_releases WHERE meter_id = $1',
          [meterId],
        )
      ).rows[0].n;
    const before = await count();
    const named = await inject('POST', `/api/meters/${meterId}/releases`, as.supervisor, {
      fromSeq: 1,
      toSeq: 2,
      reason: 'testing',
      operator: 'somebody-else',
    });
    assert.equal(named.statusCode, 400);
    assert.equal(named.json().code, 'operator-from-login');
    for (const body of [
      { fromSeq: 1, toSeq: 2 },
      { fromSeq: 1, toSeq: 2, reason: '   ' },
      { fromSeq: 1, toSeq: 2, reason: '' },
      { fromSeq: 0, toSeq: 2, reason: 'zero' },
      { fromSeq: 5, toSeq: 2, reason: 'backwards' },
      { fromSeq: '1', toSeq: 2.5, reason: 'fractions' },
    ]) {
      const res = await inject('POST', `/api/meters/${meterId}/releases`, as.supervisor, body);
      assert.equal(res.statusCode, 400, JSON.stringify(body));
      assert.equal(res.json().error, 'Bad Request');
    }
    assert.equal(await count(), before);
    const refused = await audit("action = 'refused' AND meter_id = $1 AND username = $2", [
      meterId,
      as.supervisor!.username,
    ]);
    assert.equal(refused.length, 7);
    assert.ok(refused.every((r) => r.detail.status === 400));
  });

  it('writes an audit row for each change and for each refused attempt', async () => {
    const op = as.operator!;
    const settings = await inject('POST', `/api/meters/${meterId}/settings`, op, {
      ...DEFAULT_SETTINGS,
      version: 3,
    });
    assert.equal(settings.statusCode, 202);
    const token = await inject('POST', `/api/meters/${meterId}/maintenance-tokens`, op, {
      staff: 'field.tech',
    });
    assert.equal(token.statusCode, 201);
    const denied = await inject('POST', `/api/meters/${meterId}/key-rotation`, op);
    assert.equal(denied.statusCode, 403);
    const rows = await audit('username = $1 AND meter_id = $2', [op.username, meterId]);
    assert.deepEqual(
      rows.map((r) => [r.action, r.detail.status ?? null]),
      [
        ['settings.push', null],
        ['maintenance-token.issue', null],
        ['refused', 403],
      ],
    );
    // Reads are not audited.
    await inject('GET', `/api/meters/${meterId}/status`, op);
    assert.equal((await audit('username = $1 AND meter_id = $2', [op.username, meterId])).length, 3);
  });

  it('admin: creates operators (400 for bad bodies, 409 for a taken name), changes roles at once, disabling ends sessions', async () => {
    const admin = as.admin!;
    for (const body of [
      { username: 'Upper Case', role: 'viewer', password: 'long enough password' },
      { username: 'clerk.short', role: 'viewer', password: 'short' },
      { username: 'clerk.role', role: 'root', password: 'long enough password' },
      { role: 'viewer', password: 'long enough password' },
    ]) {
      const res = await inject('POST', '/api/operators', admin, body);
      assert.equal(res.statusCode, 400, JSON.stringify(body));
    }
    const password = 'the clerk password';
    const made = await inject('POST', '/api/operators', admin, {
      username: 'clerk.roles',
      role: 'viewer',
      password,
      displayName: 'Clerk Roles',
    });
    assert.equal(made.statusCode, 201);
    assert.equal('passwordHash' in made.json().operator, false);
    const taken = await inject('POST', '/api/operators', admin, {
      username: 'clerk.roles',
      role: 'admin',
      password,
    });
    assert.equal(taken.statusCode, 409);
    const clerk = bearer((await login('clerk.roles', password)).json().token);
    const tariff = `/api/meters/${meterId}/tariff`;
    assert.equal((await inject('POST', tariff, clerk, { tariffId: 'none' })).statusCode, 403);
    assert.equal(
      (await inject('PATCH', '/api/operators/clerk.roles', admin, { role: 'operator' })).statusCode,
      200,
    );
    assert.equal(
      (await inject('POST', tariff, clerk, { tariffId: 'none' })).statusCode,
      404,
      'the new role applies',
    );
    assert.equal((await inject('PATCH', '/api/operators/clerk.roles', admin, {})).statusCode, 400);
    assert.equal(
      (await inject('PATCH', '/api/operators/nobody.here', admin, { role: 'viewer' })).statusCode,
      404,
    );
    const disabled = await inject('PATCH', '/api/operators/clerk.roles', admin, { disabled: true });
    assert.equal(disabled.statusCode, 200);
    assert.notEqual(disabled.json().operator.disabledAt, null);
    assert.equal((await inject('GET', '/api/meters', clerk)).statusCode, 401);
    assert.equal((await login('clerk.roles', password)).statusCode, 401);
    const list = (await inject('GET', '/api/operators', admin)).json().operators as { username: string }[];
    assert.ok(list.some((o) => o.username === 'clerk.roles'));
    assert.ok(!JSON.stringify(list).includes('scrypt'));
    const trail = (
      await inject('GET', `/api/operators/audit?operator=${admin.username}&action=operator.update`, admin)
    ).json();
    assert.deepEqual(
      trail.entries.map((e: { target: string; detail: Record<string, unknown> }) => [e.target, e.detail]),
      [
        ['clerk.roles', { disabled: true }],
        ['clerk.roles', { role: 'operator' }],
        ['clerk.lock', { unlock: true }],
      ],
    );
    assert.ok(
      !JSON.stringify((await inject('GET', '/api/operators/audit?limit=500', admin)).json()).includes(
        password,
      ),
    );
  });

  it('a new password ends the sessions; the last enabled admin cannot be demoted or disabled', async () => {
    const admin = as.admin!;
    const clerk = await operatorLogin(platform.operators, 'viewer');
    const reset = await inject('PATCH', `/api/operators/${clerk.username}`, admin, {
      password: 'a brand new password',
    });
    assert.equal(reset.statusCode, 200);
    assert.equal((await inject('GET', '/api/meters', clerk)).statusCode, 401);
    assert.equal((await login(clerk.username, 'a brand new password')).statusCode, 200);

    // Two admins: the bootstrap one and the test's. Disable the bootstrap one; the other is the last.
    assert.equal(
      (await inject('PATCH', `/api/operators/${ADMIN.username}`, admin, { disabled: true })).statusCode,
      200,
    );
    for (const change of [{ role: 'supervisor' }, { disabled: true }]) {
      const res = await inject('PATCH', `/api/operators/${admin.username}`, admin, change);
      assert.equal(res.statusCode, 409, JSON.stringify(change));
      assert.equal(res.json().code, 'last-admin');
    }
    assert.equal(
      (await inject('PATCH', `/api/operators/${ADMIN.username}`, admin, { disabled: false })).statusCode,
      200,
    );
    assert.equal((await login(ADMIN.username, ADMIN.password)).statusCode, 200);
  });
  // Last: it moves the clock past every session opened so far.
  it('401 with WWW-Authenticate for no token, a malformed one, an expired one and a revoked one', async () => {
    const none = await inject('GET', '/api/meters');
    assert.equal(none.statusCode, 401);
    assert.equal(none.headers['www-authenticate'], 'Bearer realm="parklink"');
    assert.deepEqual(Object.keys(none.json()).sort(), ['code', 'error', 'message', 'statusCode']);
    assert.equal(none.json().code, 'unauthenticated');
    for (const authorization of ['Basic YWRtaW46YWRtaW4=', 'Bearer short', `Bearer ${'A'.repeat(43)}`]) {
      const res = await inject('GET', '/api/meters', { authorization });
      assert.equal(res.statusCode, 401, authorization);
      assert.match(String(res.headers['www-authenticate']), /^Bearer realm="parklink"/);
    }

    const password = 'an expiring password';
    await inject('POST', '/api/operators', as.admin, { username: 'clerk.expiry', role: 'viewer', password });
    const token = (await login('clerk.expiry', password)).json().token as string;
    assert.equal((await inject('GET', '/api/meters', bearer(token))).statusCode, 200);
    now += SESSION_S * 1000 - 1000;
    assert.equal((await inject('GET', '/api/meters', bearer(token))).statusCode, 200, 'still current');
    now += 2000;
    const expired = await inject('GET', '/api/meters', bearer(token));
    assert.equal(expired.statusCode, 401);
    assert.equal(expired.json().code, 'invalid-token');
    assert.match(String(expired.headers['www-authenticate']), /error="invalid_token"/);

    const fresh = (await login('clerk.expiry', password)).json().token as string;
    assert.equal((await inject('POST', '/api/operators/logout', bearer(fresh))).statusCode, 204);
    const revoked = await inject('GET', '/api/meters', bearer(fresh));
    assert.equal(revoked.statusCode, 401);
    assert.equal(revoked.json().code, 'invalid-token');
    assert.equal((await audit("username = 'clerk.expiry' AND action = 'logout'", [])).length, 1);
  });
});

describe('the first admin from the environment', () => {
  it('PARKLINK_ADMIN_USER and PARKLINK_ADMIN_PASSWORD go together', () => {
    assert.deepEqual(
      configFromEnv({ PARKLINK_ADMIN_USER: 'city-admin', PARKLINK_ADMIN_PASSWORD: 'long enough password' })
        .operators,
      { admin: { username: 'city-admin', password: 'long enough password' } },
    );
    assert.throws(() => configFromEnv({ PARKLINK_ADMIN_USER: 'city-admin' }), /go together/);
    assert.throws(() => configFromEnv({ PARKLINK_ADMIN_PASSWORD: 'long enough password' }), /go together/);
    assert.equal(configFromEnv({}).operators, undefined);
  });

  it('an invalid first admin stops the start, naming the variables', async () => {
    const db = await openDatabase();
    try {
      await migrate(db);
      for (const admin of [
        { username: 'City Admin', password: 'long enough password' },
        { username: 'city-admin', password: 'short' },
      ]) {
        await assert.rejects(
          new Operators(db, { admin }).bootstrap(),
          /PARKLINK_ADMIN_USER, PARKLINK_ADMIN_PASSWORD/,
        );
      }
      assert.equal((await db.query('SELECT 1 FROM operators')).rows.length, 0);
    } finally {
      await db.close();
    }
  });
});
