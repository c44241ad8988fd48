// The enforcement room (penalty notices, 412g):
//
//   GET  /api/enforcement/beat?area=&meters=1,2&bayId=   each bay's validity (enforcement)
//   POST /api/enforcement/notices                        issue a notice, idempotent on its id (enforcement)
//   GET  /api/enforcement/notices?status=                notices (supervisor)
//   GET  /api/enforcement/notices/:id                    the case file: notice, appeal, payments (supervisor)
//   POST /api/enforcement/notices/:id/decision           upheld or cancelled with a reason (supervisor, audited)
//   GET  /api/driver/enforcement/notices/:code           the notice as the driver sees it (public)
//   POST /api/driver/enforcement/notices/:code/appeal    the driver's statement (public)
//   GET  /enforcement/notices/:code                      the appeal page (public HTML)
//   GET  /enforcement/                                   the officer web app (app/: shell, service worker,
//                                                        manifest; idb's ESM build at /enforcement/idb.js;
//                                                        the handheld built at /enforcement/collect.js)
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Database } from '../core/db';
import { errorResponses, RequestRefused, sendError, sendRefusal } from '../core/errors';
import { object } from '../core/schemas';
import type { OperatorGuard } from '../operators/service';
import { type DriverMessages, Enforcement, type NoticeInput } from './service';

export { Enforcement, validityOf } from './service';

export interface EnforcementDeps {
  db: Database;
  guard: OperatorGuard;
  now?: () => number;
  graceSeconds?: number;
  /** The phone room's outbox: a notice on a bay with a registered driver's session tells them. */
  driverMessages?: DriverMessages;
}

const noticeBody = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'meterId', 'bayId', 'observedAt'],
  properties: {
    id: { type: 'string', pattern: '^[A-Za-z0-9_-]{8,64}$' },
    meterId: { type: 'integer', minimum: 0, maximum: 4294967295 },
    bayId: { type: 'integer', minimum: 0, maximum: 65535 },
    plate: { type: 'string', minLength: 1, maxLength: 16 },
    observedAt: { type: 'string', format: 'date-time' },
    latitude: { type: 'number', minimum: -90, maximum: 90 },
    longitude: { type: 'number', minimum: -180, maximum: 180 },
    note: { type: 'string', maxLength: 500 },
  },
} as const;

const loose = { type: 'object', additionalProperties: true } as const;
const noticeIdParams = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{8,64}$' } },
  required: ['id'],
} as const;
const codeParams = {
  type: 'object',
  required: ['code'],
  properties: { code: { type: 'string', pattern: '^[0-9A-Za-z]{5}-[0-9A-Za-z]{5}$' } },
} as const;

export async function startEnforcement(app: FastifyInstance, deps: EnforcementDeps): Promise<Enforcement> {
  const enforcement = new Enforcement(deps.db, {
    now: deps.now,
    graceSeconds: deps.graceSeconds,
    driverMessages: deps.driverMessages,
  });
  const officer = deps.guard.requireRole('enforcement');
  const supervisor = deps.guard.requireRole('supervisor');
  const refuse = (reply: FastifyReply, e: unknown) => sendRefusal(reply, e);

  app.get<{ Querystring: { area?: string; meters?: string; bayId?: number } }>(
    '/api/enforcement/beat',
    {
      onRequest: officer,
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            area: { type: 'string', minLength: 1, maxLength: 64 },
            meters: { type: 'string', pattern: '^[0-9]+(,[0-9]+)*$' },
            bayId: { type: 'integer', minimum: 0 },
          },
        },
        response: {
          200: object({ bays: { type: 'array', items: loose } }),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => ({
      bays: await enforcement.beat({
        area: request.query.area,
        meters: request.query.meters?.split(',').map(Number),
        bayId: request.query.bayId,
      }),
    }),
  );

  app.get<{ Params: { plate: string } }>(
    '/api/enforcement/plates/:plate',
    {
      onRequest: officer,
      schema: {
        params: {
          type: 'object',
          properties: { plate: { type: 'string', minLength: 1, maxLength: 20 } },
          required: ['plate'],
        },
        response: {
          200: object({
            plate: { type: 'string' },
            bays: { type: 'array', items: loose },
            notices: { type: 'array', items: { type: 'string' } },
          }),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request, reply) => {
      try {
        return await enforcement.plate(request.params.plate);
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  app.post<{ Body: NoticeInput }>(
    '/api/enforcement/notices',
    {
      onRequest: officer,
      schema: {
        body: noticeBody,
        response: { 200: loose, 201: loose, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const who = request.operator;
      if (!who) return sendError(reply, 401, 'no-operator', 'no operator');
      try {
        const { notice, created } = await enforcement.issue(request.body, who);
        return reply.code(created ? 201 : 200).send(notice);
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  app.get<{ Querystring: { status?: string } }>(
    '/api/enforcement/notices',
    {
      onRequest: supervisor,
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { status: { type: 'string', enum: ['issued', 'appealed', 'upheld', 'cancelled'] } },
        },
        response: {
          200: object({ notices: { type: 'array', items: loose } }),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => ({ notices: await enforcement.list({ status: request.query.status }) }),
  );

  app.get<{ Params: { id: string } }>(
    '/api/enforcement/notices/:id',
    {
      onRequest: supervisor,
      schema: { params: noticeIdParams, response: { 200: loose, ...errorResponses(401, 403, 404) } },
    },
    async (request, reply) => {
      const file = await enforcement.caseFile(request.params.id);
      if (!file) return sendError(reply, 404, 'unknown-notice', `no notice ${request.params.id}`, 'id');
      return file;
    },
  );

  app.post<{ Params: { id: string }; Body: { decision: 'upheld' | 'cancelled'; reason: string } }>(
    '/api/enforcement/notices/:id/decision',
    {
      onRequest: supervisor,
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['decision', 'reason'],
          properties: {
            decision: { type: 'string', enum: ['upheld', 'cancelled'] },
            reason: { type: 'string', minLength: 3, maxLength: 1000 },
          },
        },
        params: noticeIdParams,
        response: { 200: loose, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      try {
        const notice = await enforcement.decide(
          request.params.id,
          request.body,
          request.operator?.username ?? '?',
        );
        await deps.guard.audit(request, {
          action: `enforcement.notice.${request.body.decision}`,
          target: request.params.id,
          detail: { reason: request.body.reason },
        });
        return notice;
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  // The driver's side: the code printed on the notice is the only key.
  const driverView = (n: Awaited<ReturnType<Enforcement['notice']>>) =>
    n && {
      code: n.code,
      meterId: n.meterId,
      bayId: n.bayId,
      plate: n.plate,
      observedAt: n.observedAt,
      validity: n.evidence.bay?.validity ?? null,
      paidUntil: n.evidence.bay?.paidUntil ?? null,
      status: n.status,
      appeal: n.appeal,
    };
  app.get<{ Params: { code: string } }>(
    '/api/driver/enforcement/notices/:code',
    { schema: { params: codeParams, response: { 200: loose, ...errorResponses(400, 404) } } },
    async (request, reply) => {
      const n = await enforcement.notice({ code: request.params.code });
      if (!n) return sendError(reply, 404, 'unknown-notice', 'no notice with this code', 'code');
      return driverView(n);
    },
  );
  app.post<{ Params: { code: string }; Body: { statement: string; contact?: string } }>(
    '/api/driver/enforcement/notices/:code/appeal',
    {
      schema: {
        params: codeParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['statement'],
          properties: {
            statement: { type: 'string', minLength: 10, maxLength: 4000 },
            contact: { type: 'string', maxLength: 200 },
          },
        },
        response: { 201: loose, ...errorResponses(400, 404, 409) },
      },
    },
    async (request, reply) => {
      try {
        return reply.code(201).send(driverView(await enforcement.appeal(request.params.code, request.body)));
      } catch (e) {
        if (e instanceof RequestRefused) return refuse(reply, e);
        throw e;
      }
    },
  );
  app.get<{ Params: { code: string } }>('/enforcement/notices/:code', async (request, reply) =>
    reply.type('text/html; charset=utf-8').send(appealPage(request.params.code)),
  );
  const appDir = join(import.meta.dirname, 'app');
  const files: Record<string, [string, string]> = {
    '/enforcement/': [join(appDir, 'index.html'), 'text/html; charset=utf-8'],
    '/enforcement/app.js': [join(appDir, 'app.js'), 'text/javascript; charset=utf-8'],
    '/enforcement/sw.js': [join(appDir, 'sw.js'), 'text/javascript; charset=utf-8'],
    '/enforcement/manifest.webmanifest': [join(appDir, 'manifest.webmanifest'), 'application/manifest+json'],
    '/enforcement/icon.svg': [join(appDir, 'icon.svg'), 'image/svg+xml'],
    '/enforcement/idb.js': [
      createRequire(import.meta.url)
        .resolve('idb')
        .replace(/index\.cjs$/, 'index.js'),
      'text/javascript; charset=utf-8',
    ],
  };
  for (const [url, [file, type]] of Object.entries(files)) {
    const body = readFileSync(file);
    app.get(url, async (_request, reply) => reply.type(type).header('cache-control', 'no-cache').send(body));
  }
  // The handheld (Web Bluetooth collection) is built from TypeScript by `npm run build:console`.
  const collect = join(import.meta.dirname, '..', '..', 'build', 'enforcement', 'collect.js');
  app.get('/enforcement/collect.js', async (_request, reply) => {
    if (!existsSync(collect))
      return sendError(
        reply,
        503,
        'not-built',
        "the officer app's handheld is not built: run npm run build:console",
      );
    return reply
      .type('text/javascript; charset=utf-8')
      .header('cache-control', 'no-cache')
      .send(readFileSync(collect));
  });
  return enforcement;
}

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );

/** The appeal page: shows the notice (from the public API) and sends the driver's statement. */
function appealPage(code: string): string {
  const c = escapeHtml(code);
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Penalty notice ${c}</title>
<style>body{font-family:system-ui,sans-serif;margin:1rem;max-width:40rem}textarea{width:100%;min-height:8rem}
button{padding:.6rem 1.2rem}dt{font-weight:600}</style></head><body>
<h1>Penalty notice <span id="code">${c}</span></h1><dl id="notice">Loading…</dl>
<form id="appeal" hidden><label>Your statement<br><textarea name="statement" required minlength="10"></textarea></label>
<p><label>How to reach you (optional)<br><input name="contact" maxlength="200"></label></p>
<button type="submit">Submit appeal</button></form><p id="result" role="status"></p>
<script>
const code = ${JSON.stringify(code)};
const api = '/api/driver/enforcement/notices/' + encodeURIComponent(code);
const show = (n) => {
  const rows = [['Meter', n.meterId], ['Bay', n.bayId], ['Observed', n.observedAt], ['Bay state', n.validity],
    ['Paid until', n.paidUntil || '—'], ['Status', n.status]];
  if (n.appeal) rows.push(['Your statement', n.appeal.statement], ['Decision', n.appeal.decision || 'pending'],
    ['Reason', n.appeal.reason || '—']);
  const dl = document.getElementById('notice'); dl.textContent = '';
  for (const [k, v] of rows) { const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = String(v); dl.append(dt, dd); }
  document.getElementById('appeal').hidden = !!n.appeal;
};
fetch(api).then(async (r) => { const b = await r.json(); if (r.ok) show(b);
  else document.getElementById('notice').textContent = b.message; });
document.getElementById('appeal').addEventListener('submit', async (ev) => {
  ev.preventDefault(); const f = new FormData(ev.target);
  const body = { statement: f.get('statement') }; if (f.get('contact')) body.contact = f.get('contact');
  const r = await fetch(api + '/appeal', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const b = await r.json();
  document.getElementById('result').textContent = r.ok ? 'Appeal received.' : b.message;
  if (r.ok) show(b);
});
</script></body></html>`;
}
