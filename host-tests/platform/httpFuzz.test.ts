// Bad input never gives a 500: values no schema should let through (a NUL byte, 1e22 and Infinity
// in path and query parameters) are refused with a 400 naming the field, and a schema-driven fuzz
// over every route of the OpenAPI document (sim/fleet/httpFuzz.ts) finds no 5xx, no 2xx without
// credentials on a route that needs them, and no refusal outside the error shape. The long run:
// `npm run bench -- http-fuzz`.
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { DATABASE_REFUSED, httpBasics } from '../../platform-server/core/http';
import { describeFailures, fuzzPlatform } from '../../sim/fleet/httpFuzz';
import type { Platform } from '../../platform-server/platform';
import {
  embedded,
  type OperatorLogin,
  operatorLogin,
  randomMeterId,
  startPlatform,
  TEST_GATEWAY_SECRET,
} from '../../sim/fleet/platform';

describe('bad input gets a 400, never a 500', () => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let admin: OperatorLogin;
  const meterId = randomMeterId();

  before(async () => {
    ({ platform, drop } = await startPlatform(embedded, {
      operators: { scrypt: { logN: 10, r: 8, p: 1 } },
      phone: { passwordScrypt: { logN: 10, r: 8, p: 1 }, gatewaySecret: TEST_GATEWAY_SECRET },
    }));
    admin = await operatorLogin(platform.operators, 'admin');
    await platform.provisionMeter(meterId, 'Edge Street');
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  const call = async (
    method: 'GET' | 'POST' | 'DELETE',
    url: string,
    payload?: unknown,
    headers: Record<string, string> = admin.headers,
  ) => {
    const res = await platform.app.inject({ method, url, headers, payload: payload as string });
    return { status: res.statusCode, body: res.json() as { code: string; message: string; field?: string } };
  };

  it('refuses before=1e22 in the audit log query with the field named', async () => {
    const res = await call('GET', '/api/operators/audit?before=1e22');
    assert.equal(res.status, 400);
    assert.equal(res.body.code, 'FST_ERR_VALIDATION');
    assert.equal(res.body.field, 'before');
    assert.match(res.body.message, /before must be <= 9007199254740991/);
  });

  it('refuses Infinity and 1E400 as a meter id, and -Infinity as a card id', async () => {
    for (const id of ['Infinity', '1E400']) {
      const res = await call('GET', `/api/meters/${id}/status`);
      assert.equal(res.status, 400, id);
      assert.equal(res.body.code, 'number-out-of-range');
      assert.equal(res.body.field, 'id');
      assert.match(res.body.message, /path parameter id is not a number this API takes/);
    }
    const driver = await platform.app.inject({
      method: 'POST',
      url: '/api/driver/register',
      payload: { name: 'E', phone: '+447700900123', email: 'e@example.com', password: 'an edge password' },
    });
    const res = await call('DELETE', '/api/driver/cards/-Infinity', undefined, {
      authorization: `Bearer ${driver.json().token}`,
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.code, 'number-out-of-range');
  });

  it('refuses a NUL byte in a path parameter, a body field and a body key', async () => {
    const path = await call('GET', '/api/tariffs/a%00b');
    assert.equal(path.status, 400);
    assert.equal(path.body.code, 'nul-character');
    assert.equal(path.body.field, 'id');
    const login = await call('POST', '/api/operators/login', { username: 'admin\u0000', password: 'x' }, {});
    assert.equal(login.status, 400);
    assert.equal(login.body.code, 'nul-character');
    assert.equal(login.body.field, 'username');
    assert.match(login.body.message, /body field username contains a NUL character \(U\+0000\)/);
    const tariff = await call('POST', '/api/tariffs', { id: 'nul', rules: { 'a\u0000': 1 } });
    assert.equal(tariff.status, 400);
    assert.equal(tariff.body.code, 'nul-character');
    // Deep inside a free-form body too (the guard walks with its own stack, at any depth).
    const depth = 5000;
    const deep = await platform.app.inject({
      method: 'POST',
      url: '/api/tariffs',
      headers: { 'content-type': 'application/json', ...admin.headers },
      payload: `{"id":"deep","x":${'['.repeat(depth)}"a\\u0000"${']'.repeat(depth)}}`,
    });
    assert.equal(deep.statusCode, 400);
    assert.equal(deep.json().code, 'nul-character');
    assert.equal(deep.json().field, ['x', ...Array(depth).fill('0')].join('.'));
    // Nothing was stored from the refused requests.
    const audit = await platform.db.query(
      "SELECT 1 FROM operator_audit WHERE username LIKE 'admin%\\u0000%'",
    );
    assert.equal(audit.rows.length, 0);
  });

  it('refuses a number beyond 2^53 in a free-form body (JSON 1e400 parses as Infinity)', async () => {
    for (const n of ['1e400', '1e22']) {
      const res = await platform.app.inject({
        method: 'POST',
        url: '/api/tariffs',
        headers: { 'content-type': 'application/json', ...admin.headers },
        payload: `{"id":"big","periods":[{"rate":${n}}]}`,
      });
      assert.equal(res.statusCode, 400, n);
      assert.equal(res.json().code, 'number-out-of-range');
      assert.equal(res.json().field, 'periods.0.rate');
    }
  });

  it("answers PostgreSQL's refusal of a value with a 400, not a 500", async () => {
    // A route outside the platform, on the platform's HTTP basics and database: a value no schema
    // kept out reaches the database.
    const app = Fastify({ logger: false });
    await app.register(httpBasics, { db: platform.db });
    app.get<{ Querystring: { n: string } }>('/cast', async (request) => {
      await platform.db.query('SELECT $1::bigint', [request.query.n]);
      return { ok: true };
    });
    try {
      for (const n of ['x', '99999999999999999999']) {
        const res = await app.inject({ method: 'GET', url: `/cast?n=${n}` });
        assert.equal(res.statusCode, 400, n);
        assert.equal(res.json().code, DATABASE_REFUSED);
        assert.equal(res.json().message, 'a value in the request is out of range or not valid');
      }
      assert.equal((await app.inject({ method: 'GET', url: '/cast?n=7' })).statusCode, 200);
    } finally {
      await app.close();
    }
  });
});

describe('HTTP fuzz of every route (CI slice)', () => {
  it('finds no 5xx, no unauthenticated 2xx and no refusal outside the error shape', async function () {
    this.timeout(120_000);
    const report = await fuzzPlatform(embedded, { perRoute: 10, seed: 20261204 });
    const { registered, ...runs } = report;
    for (const [mode, r] of Object.entries(runs)) {
      console.log(
        `      ${mode}: ${r.requests} requests over ${r.routes} routes, ${r.serverErrors} 5xx, statuses ${JSON.stringify(r.statuses)}`,
      );
      assert.ok(r.routes >= 45, `${r.routes} routes`);
      assert.equal(r.requests, r.routes * 10);
      assert.deepEqual(r.failures, [], `${mode}:\n${describeFailures(r.failures)}`);
      assert.equal(r.serverErrors, 0);
    }
    // Every route fastify has was fuzzed, the ones the document hides too.
    assert.ok(registered.length >= 45);
    for (const route of registered) assert.ok(report.anonymous.operations.includes(route), route);
    // The anonymous run reached the operators' guard, and the authenticated one got past it.
    assert.ok((report.anonymous.statuses[401] ?? 0) > 0);
    assert.ok((report.authenticated.statuses[200] ?? 0) > 0);
  });
});
