// The API's one shape: every route is in the OpenAPI document (/api/openapi.json) with the role it
// needs, declares its schemas, and every refusal (a route's own, Fastify's validation and 404) has
// the error shape { statusCode, error, code, message, field? }. The readable page at /api/docs needs
// nothing from outside this server.
import assert from 'node:assert/strict';
import type { Platform } from '../../platform-server/platform';
import {
  embedded,
  type OperatorLogin,
  operatorLogin,
  randomMeterId,
  startPlatform,
} from '../../sim/fleet/platform';

interface Operation {
  'x-role'?: string;
  security?: Record<string, string[]>[];
  parameters?: { in: string; name: string }[];
  requestBody?: { content: Record<string, { schema: unknown }> };
  responses: Record<string, { content?: Record<string, { schema: { required?: string[] } }> }>;
}

type Document = { openapi: string; paths: Record<string, Record<string, Operation>> };

const openapiPath = (url: string) => url.replace(/:([A-Za-z]+)/g, '{$1}');

/** The error shape, checked key by key: nothing missing, nothing else. */
function assertErrorShape(body: Record<string, unknown>, status: number, code?: string): void {
  assert.equal(body.statusCode, status);
  assert.equal(typeof body.error, 'string');
  assert.equal(typeof body.code, 'string');
  assert.equal(typeof body.message, 'string');
  if (code) assert.equal(body.code, code);
  for (const key of Object.keys(body))
    assert.ok(['statusCode', 'error', 'code', 'message', 'field'].includes(key), `unexpected key ${key}`);
}

describe('OpenAPI document and the one error shape', () => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let doc: Document;
  let supervisor: OperatorLogin;
  const meterId = randomMeterId();

  before(async () => {
    ({ platform, drop } = await startPlatform(embedded));
    supervisor = await operatorLogin(platform.operators, 'supervisor');
    await platform.provisionMeter(meterId, 'OpenAPI Street');
    const res = await platform.app.inject({ method: 'GET', url: '/api/openapi.json' });
    assert.equal(res.statusCode, 200);
    doc = res.json();
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  it('is an OpenAPI 3 document with every API route, its role and its security requirement', () => {
    assert.match(doc.openapi, /^3\./);
    const routes = platform.operators.routes.filter((r) => r.method !== 'HEAD');
    assert.ok(routes.length >= 30, `${routes.length} routes`);
    for (const route of routes) {
      const operation = doc.paths[openapiPath(route.url)]?.[route.method.toLowerCase()];
      assert.ok(operation, `${route.method} ${route.url} is missing from the document`);
      // Operator routes need their role; drivers' routes a driver's token (but registering,
      // logging in and a notice's page); the gateway's posts its secret; the rest (login, quote) nobody's.
      // A penalty notice's page is the driver's by its printed code alone (no account needed).
      const driverRoute =
        /^\/api\/driver\//.test(route.url) &&
        !/\/(register|login)$/.test(route.url) &&
        !/^\/api\/driver\/enforcement\//.test(route.url);
      const expected =
        route.role ?? (driverRoute ? 'driver' : /^\/api\/phone\//.test(route.url) ? 'gateway' : 'public');
      assert.equal(operation['x-role'], expected, `${route.method} ${route.url}`);
      if (route.role)
        assert.deepEqual(operation.security, [{ operatorBearer: [] }], `${route.method} ${route.url}`);
    }
    assert.equal(doc.paths['/healthz']?.get?.['x-role'], 'public');
    // Nothing in the document without a role: the routes outside /api/ (the web app) are public.
    for (const [path, methods] of Object.entries(doc.paths))
      for (const [method, operation] of Object.entries(methods))
        assert.ok(operation['x-role'], `${method.toUpperCase()} ${path} has no x-role`);
    assert.equal(
      doc.paths['/api/meters/{id}/key-rotation']?.post?.['x-role'],
      'supervisor',
      'key rotation is under /api/',
    );
    assert.equal(doc.paths['/api/meters/{id}/maintenance-tokens']?.post?.['x-role'], 'operator');
  });

  it('every operation declares its parameters, body and responses, errors in the one shape', () => {
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        const where = `${method.toUpperCase()} ${path}`;
        for (const name of path.match(/\{([A-Za-z]+)\}/g) ?? []) {
          const param = name.slice(1, -1);
          assert.ok(
            operation.parameters?.some((p) => p.in === 'path' && p.name === param),
            `${where}: path parameter ${param}`,
          );
        }
        const statuses = Object.keys(operation.responses);
        assert.ok(
          statuses.some((s) => /^[23]\d\d$/.test(s)),
          `${where}: no success response declared (${statuses.join(', ')})`,
        );
        // The health check's 503 is its probe answer ({ status, database }), not a refused request.
        const errors = path === '/healthz' ? [] : statuses.filter((s) => /^[45]\d\d$/.test(s));
        // The APDS API (/apds/) refuses in the APDS standard's ResponseStatus ({ status, code,
        // message }), which host-tests/apds validates against the APDS document.
        const shape = path.startsWith('/apds/') ? ['status'] : ['statusCode', 'error', 'code', 'message'];
        for (const status of errors) {
          const schema = operation.responses[status].content?.['application/json']?.schema;
          assert.deepEqual(schema?.required, shape, `${where} ${status}`);
        }
        const bodyless =
          /\/(logout|key-rotation|retry|me\/totp|recovery-codes|delivery|responses\/fetch)$/.test(path) ||
          method === 'get' ||
          method === 'delete';
        if (!bodyless) assert.ok(operation.requestBody, `${where}: no body schema`);
      }
    }
  });

  it("refuses an invalid body, Fastify's 404 and a route's own refusal in the one error shape", async () => {
    const login = await platform.app.inject({ method: 'POST', url: '/api/operators/login', payload: {} });
    assert.equal(login.statusCode, 400);
    assertErrorShape(login.json(), 400, 'FST_ERR_VALIDATION');
    assert.equal(login.json().error, 'Bad Request');
    assert.equal(login.json().field, 'username');

    const settings = await platform.app.inject({
      method: 'POST',
      url: `/api/meters/${meterId}/settings`,
      headers: supervisor.headers,
      payload: { version: 1, sampleSeconds: 10, baySeconds: 10, statusSeconds: 600, thresholds: { aqi: 9 } },
    });
    assert.equal(settings.statusCode, 400);
    assertErrorShape(settings.json(), 400, 'FST_ERR_VALIDATION');
    assert.match(settings.json().field, /^thresholds\./);

    const token = await platform.app.inject({
      method: 'POST',
      url: `/api/meters/${meterId}/maintenance-tokens`,
      headers: supervisor.headers,
      payload: { staff: 'bad name!' },
    });
    assert.equal(token.statusCode, 400);
    assertErrorShape(token.json(), 400, 'FST_ERR_VALIDATION');
    assert.equal(token.json().field, 'staff');

    const noRoute = await platform.app.inject({ method: 'GET', url: '/api/no/such/route' });
    assertErrorShape(noRoute.json(), 404, 'no-route');
    const old = await platform.app.inject({
      method: 'POST',
      url: `/meters/${meterId}/key-rotation`,
      headers: supervisor.headers,
    });
    assertErrorShape(old.json(), 404, 'no-route');

    const unknown = await platform.app.inject({
      method: 'POST',
      url: '/api/meters/4294967295/key-rotation',
      headers: supervisor.headers,
    });
    assertErrorShape(unknown.json(), 404, 'unknown-meter');
    const unauthenticated = await platform.app.inject({ method: 'GET', url: '/api/meters' });
    assertErrorShape(unauthenticated.json(), 401, 'unauthenticated');
    const driver = await platform.app.inject({ method: 'GET', url: '/api/driver/me' });
    assertErrorShape(driver.json(), 401, 'unauthenticated');
  });

  it('serves a readable page at /api/docs from this server alone', async () => {
    const page = await platform.app.inject({ method: 'GET', url: '/api/docs/' });
    assert.equal(page.statusCode, 200);
    assert.match(page.headers['content-type'] as string, /text\/html/);
    const assets = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    assert.ok(assets.length >= 3, page.body);
    for (const asset of assets) {
      assert.doesNotMatch(asset, /^(https?:)?\/\//, `${asset} comes from elsewhere`);
      const res = await platform.app.inject({
        method: 'GET',
        url: new URL(asset, 'http://x/api/docs/').pathname,
      });
      assert.equal(res.statusCode, 200, asset);
    }
    const init = await platform.app.inject({ method: 'GET', url: '/api/docs/static/swagger-initializer.js' });
    assert.equal(init.statusCode, 200);
    assert.doesNotMatch(init.body, /["'`]https?:\/\//, 'the initializer loads nothing from elsewhere');
  });
});
