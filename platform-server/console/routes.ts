// The operator console's server side:
//
//   GET   /console/…                      the built console (build/console/, made by tools/buildConsole.ts)
//   GET   /api/console/fleet              every meter with its live state (viewer)
//   GET   /api/console/fleet/events       the same as server-sent events: a snapshot, then changed rows (viewer)
//   POST  /api/meters                     registers a meter for the factory to provision (admin)
//   PATCH /api/meters/:id/registry        name, address, coordinates, area, bays, contact interval (admin)
//   GET   /api/console/areas              areas with their outlines and meter counts (viewer)
//   PUT   /api/areas/:name/outline        an area's polygon (admin)
//   GET   /api/meters/:id/status-history  the figures of each status report, for charts (viewer)
//   GET   /api/meters/:id/records         transactions, operation and maintenance records, filtered (viewer)
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply } from 'fastify';
import type { Database } from '../core/db';
import { errorResponses, RequestRefused, sendError, sendRefusal } from '../core/errors';
import { meterIdParams, nullableTime, object, time, u32 } from '../core/schemas';
import type { MeterDirectory } from '../ingest/meters';
import type { OperatorGuard } from '../operators/service';
import { type FleetFeed, type FleetRow, FleetView } from './fleet';
import { AreaShapes, MeterRegistry, type RegistryChange } from './registry';

/** Where tools/buildConsole.ts writes the console (gitignored). */
export const CONSOLE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'build', 'console');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json',
};

const CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

const areaName = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[^\\u0000-\\u001f]+$' } as const;
const meterName = { type: 'string', minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f]+$' } as const;
const registryFields = {
  name: meterName,
  address: { type: 'string', minLength: 1, maxLength: 200, pattern: '^[^\\u0000-\\u001f]+$', nullable: true },
  latitude: { type: 'number', minimum: -90, maximum: 90, nullable: true },
  longitude: { type: 'number', minimum: -180, maximum: 180, nullable: true },
  area: { ...areaName, nullable: true },
  bays: { type: 'integer', minimum: 1, maximum: 64, nullable: true },
  contactSeconds: { type: 'integer', minimum: 60, maximum: 604_800 },
} as const;

const fleetRowSchema = object({
  id: { type: 'integer' },
  name: { type: 'string' },
  area: { type: 'string', nullable: true },
  address: { type: 'string', nullable: true },
  latitude: { type: 'number', nullable: true },
  longitude: { type: 'number', nullable: true },
  bays: { type: 'integer', nullable: true },
  provisioned: { type: 'boolean' },
  keyEpoch: { type: 'integer' },
  lastContactAt: nullableTime,
  contactSeconds: { type: 'integer' },
  contact: { type: 'string', enum: ['online', 'overdue', 'never'] },
  light: { type: 'string', enum: ['green', 'amber', 'red', 'grey'] },
  battery: { type: 'number', nullable: true },
  openAlarms: { type: 'integer' },
  worstAlarm: { type: 'string', nullable: true },
  occupiedBays: { type: 'integer' },
  reportedBays: { type: 'integer' },
  firmwareVersion: { type: 'integer', nullable: true },
  revenueToday: { type: 'integer' },
  currency: { type: 'integer', nullable: true },
});

const outlineSchema = {
  type: 'array',
  description: "a GeoJSON Polygon's coordinates: rings of [longitude, latitude], each closed",
  minItems: 1,
  maxItems: 16,
  items: {
    type: 'array',
    minItems: 4,
    maxItems: 1000,
    items: {
      type: 'array',
      minItems: 2,
      maxItems: 2,
      items: { type: 'number', minimum: -180, maximum: 180 },
    },
  },
} as const;

const recordsQuery = {
  type: 'object',
  properties: {
    kind: { type: 'string', enum: ['all', 'transaction', 'operation', 'maintenance'], default: 'all' },
    bay: u32,
    from: time,
    to: time,
    before: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
  },
  additionalProperties: false,
} as const;

const recordSchema = object(
  {
    seq: { type: 'integer' },
    kind: { type: 'string' },
    recordedAt: time,
    receivedAt: time,
    summary: { type: 'string' },
    bayId: { type: 'integer', nullable: true },
    charge: { type: 'integer', nullable: true },
    currency: { type: 'integer', nullable: true },
    channel: {
      type: 'string',
      nullable: true,
      enum: ['card', 'app', 'sms', 'voice', 'auto', null],
      description:
        "a transaction's channel: card at the meter, or the phone channel of a renewal paid on the platform (the meter's remote-renewal record)",
    },
    renewalId: {
      type: 'string',
      nullable: true,
      description: 'the phone renewal a remote-renewal record applied',
    },
  },
  ['seq', 'kind', 'recordedAt', 'receivedAt', 'summary'],
);

export interface ConsoleRoutesOptions {
  db: Database;
  meters: Pick<MeterDirectory, 'exists' | 'register'>;
  guard: OperatorGuard;
  feed: FleetFeed;
  /** After a meter is registered: ingest forgets what it cached of an unknown id. */
  onRegistered(id: number): void;
  /** Where the built console is; default CONSOLE_DIR. */
  consoleDir?: string;
  /** The city's time zone, for the fleet's "today". Default UTC. */
  timeZone?: string;
}

export const consoleRoutes: FastifyPluginAsync<ConsoleRoutesOptions> = async (app, options) => {
  const { db, meters, guard, feed } = options;
  const view = new FleetView(db, undefined, options.timeZone);
  const registry = new MeterRegistry(meters);
  const shapes = new AreaShapes(db);
  staticConsole(app, options.consoleDir ?? CONSOLE_DIR);

  app.get(
    '/api/console/fleet',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary:
          'Every meter with its live state: contact, light, battery, open alarms, bays, firmware, revenue',
        response: {
          200: object({ at: time, meters: { type: 'array', items: fleetRowSchema } }),
          ...errorResponses(401, 403),
        },
      },
    },
    async () => ({ at: new Date().toISOString(), meters: await view.rows() }),
  );

  app.get(
    '/api/console/fleet/events',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary:
          'Server-sent events: `snapshot` (every meter), then `update` (the rows of the meters that changed); a comment every 15 s keeps it open',
        response: {
          200: {
            description: 'an event stream',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
          ...errorResponses(401, 403),
        },
      },
    },
    async (request, reply) => {
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      const send = (event: string, rows: FleetRow[]) =>
        raw.write(
          `event: ${event}\ndata: ${JSON.stringify({ at: new Date().toISOString(), meters: rows })}\n\n`,
        );
      // Subscribed before the snapshot is read, so nothing stored in between is missed.
      const updates: FleetRow[][] = [];
      let ready = false;
      const unsubscribe = feed.subscribe((rows) => (ready ? send('update', rows) : updates.push(rows)));
      const keepAlive = setInterval(() => raw.write(': keep-alive\n\n'), 15_000);
      keepAlive.unref();
      const end = () => {
        clearInterval(keepAlive);
        unsubscribe();
      };
      request.raw.on('close', end);
      raw.on('error', end);
      try {
        send('snapshot', await view.rows());
        for (const rows of updates.splice(0)) send('update', rows);
        ready = true;
      } catch (error) {
        request.log.error({ error }, 'fleet snapshot failed');
        end();
        raw.end();
      }
    },
  );

  app.post<{ Body: RegistryChange & { id: number; name: string } }>(
    '/api/meters',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary:
          'Registers a meter (id, name, address, coordinates, area, bays) for the factory to provision',
        body: {
          type: 'object',
          required: ['id', 'name'],
          properties: { id: u32, ...registryFields },
          additionalProperties: false,
        },
        response: { 201: fleetRowSchema, ...errorResponses(400, 401, 403, 409) },
      },
    },
    async (request, reply) => {
      try {
        const body = request.body;
        await db.transaction(async (tx) => {
          await registry.register(tx, body);
          await guard.audit(request, { action: 'meter.register', meterId: body.id, detail: { ...body } }, tx);
        });
        options.onRegistered(body.id);
        const [row] = await view.rows([body.id]);
        return reply.code(201).send(row);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.patch<{ Params: { id: number }; Body: RegistryChange }>(
    '/api/meters/:id/registry',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary: "Changes a meter's registry entry: name, address, coordinates, area, bays, contact interval",
        params: meterIdParams,
        body: { type: 'object', minProperties: 1, properties: registryFields, additionalProperties: false },
        response: { 200: fleetRowSchema, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      try {
        await db.transaction(async (tx) => {
          await registry.update(tx, id, request.body);
          await guard.audit(
            request,
            { action: 'meter.registry', meterId: id, detail: { ...request.body } },
            tx,
          );
        });
        const [row] = await view.rows([id]);
        return row;
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.get(
    '/api/console/areas',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary:
          'Every area (named by a meter or drawn): its outline when drawn, and how many meters it holds',
        response: {
          200: object({
            areas: {
              type: 'array',
              items: object({
                name: { type: 'string' },
                meters: { type: 'integer' },
                outline: { ...outlineSchema, nullable: true },
              }),
            },
          }),
          ...errorResponses(401, 403),
        },
      },
    },
    async () => ({ areas: await shapes.list() }),
  );

  app.put<{ Params: { name: string }; Body: { outline: number[][][] } }>(
    '/api/areas/:name/outline',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary: "Draws an area: its outline as a GeoJSON Polygon's coordinates",
        params: { type: 'object', required: ['name'], properties: { name: areaName } },
        body: {
          type: 'object',
          required: ['outline'],
          properties: { outline: outlineSchema },
          additionalProperties: false,
        },
        response: {
          200: object({ name: { type: 'string' }, outline: outlineSchema }),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      try {
        await db.transaction(async (tx) => {
          await shapes.draw(tx, name, request.body.outline, request.operator!.username);
          await guard.audit(request, { action: 'area.outline', target: name }, tx);
        });
        return { name, outline: request.body.outline };
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.get<{ Params: { id: number }; Querystring: { hours: number } }>(
    '/api/meters/:id/status-history',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary:
          "A meter's status reports as figures (battery, temperature, occupied bays, faults), oldest first",
        params: meterIdParams,
        querystring: {
          type: 'object',
          properties: { hours: { type: 'integer', minimum: 1, maximum: 24 * 90, default: 48 } },
          additionalProperties: false,
        },
        response: {
          200: object({
            meterId: { type: 'integer' },
            reports: {
              type: 'array',
              items: object({
                at: time,
                battery: { type: 'number', nullable: true },
                millivolts: { type: 'integer', nullable: true },
                temperature: { type: 'number', nullable: true },
                occupiedBays: { type: 'integer' },
                faults: { type: 'integer' },
              }),
            },
          }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      if (!(await meters.exists(id))) return sendError(reply, 404, 'unknown-meter', `no meter ${id}`);
      const { rows } = await db.query<{
        reported_at: Date;
        battery_percent: number | null;
        millivolts: number | null;
        temperature: number | null;
        occupied_bays: number;
        faults: number;
      }>(
        `SELECT * FROM (SELECT * FROM meter_status_history WHERE meter_id = $1 AND reported_at >= now() - make_interval(hours => $2)
          ORDER BY reported_at DESC LIMIT 2000) latest ORDER BY reported_at`,
        [id, request.query.hours],
      );
      return {
        meterId: id,
        reports: rows.map((r) => ({
          at: r.reported_at.toISOString(),
          battery: r.battery_percent,
          millivolts: r.millivolts,
          temperature: r.temperature,
          occupiedBays: r.occupied_bays,
          faults: r.faults,
        })),
      };
    },
  );

  app.get<{
    Params: { id: number };
    Querystring: { kind: string; bay?: number; from?: string; to?: string; before?: number; limit: number };
  }>(
    '/api/meters/:id/records',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary:
          "A meter's records newest first (transactions, operation and maintenance), by kind, bay and time; `before` pages back",
        params: meterIdParams,
        querystring: recordsQuery,
        response: {
          200: object({
            meterId: { type: 'integer' },
            records: { type: 'array', items: recordSchema },
            nextBefore: { type: 'integer', nullable: true },
          }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      if (!(await meters.exists(id))) return sendError(reply, 404, 'unknown-meter', `no meter ${id}`);
      const q = request.query;
      const { rows } = await db.query<{
        seq: string | number;
        recorded_at: Date;
        received_at: Date;
        kind: string;
        bay_id: string | number | null;
        minutes: number | null;
        charge: string | number | null;
        currency: number | null;
        code: string | null;
        detail: string | null;
        channel: string | null;
        renewal_id: string | null;
      }>(
        // A renewal paid by phone is a transaction too: the meter's remote-renewal operation record,
        // with the renewal's bay, minutes, charge and channel (renewals.record_seq links them).
        `SELECT r.seq, r.recorded_at, r.received_at,
                CASE WHEN t.seq IS NOT NULL OR rn.id IS NOT NULL THEN 'transaction' WHEN o.seq IS NOT NULL THEN 'operation'
                     WHEN m.seq IS NOT NULL THEN 'maintenance' ELSE 'other' END AS kind,
                COALESCE(t.bay_id, rn.bay_id) AS bay_id, COALESCE(t.minutes, rn.minutes) AS minutes,
                COALESCE(t.charge, rn.charge) AS charge, COALESCE(t.currency, rn.currency) AS currency,
                COALESCE(o.code, m.code) AS code, COALESCE(o.detail, m.detail) AS detail,
                CASE WHEN t.seq IS NOT NULL THEN 'card' ELSE rn.channel END AS channel, rn.id AS renewal_id
           FROM records r
           LEFT JOIN transactions t ON t.meter_id = r.meter_id AND t.seq = r.seq AND t.recorded_at = r.recorded_at
           LEFT JOIN operations o ON o.meter_id = r.meter_id AND o.seq = r.seq
           LEFT JOIN maintenance m ON m.meter_id = r.meter_id AND m.seq = r.seq
           LEFT JOIN renewals rn ON rn.meter_id = r.meter_id AND rn.record_seq = r.seq
          WHERE r.meter_id = $1
            AND ($2 = 'all' OR ($2 = 'transaction' AND (t.seq IS NOT NULL OR rn.id IS NOT NULL))
                 OR ($2 = 'operation' AND o.seq IS NOT NULL AND rn.id IS NULL)
                 OR ($2 = 'maintenance' AND m.seq IS NOT NULL))
            AND ($3::bigint IS NULL OR COALESCE(t.bay_id, rn.bay_id) = $3)
            AND ($4::timestamptz IS NULL OR r.recorded_at >= $4)
            AND ($5::timestamptz IS NULL OR r.recorded_at < $5)
            AND ($6::bigint IS NULL OR r.seq < $6)
          ORDER BY r.seq DESC LIMIT $7`,
        [id, q.kind, q.bay ?? null, q.from ?? null, q.to ?? null, q.before ?? null, q.limit + 1],
      );
      const page = rows.slice(0, q.limit);
      return {
        meterId: id,
        records: page.map((r) => ({
          seq: Number(r.seq),
          kind: r.kind,
          recordedAt: r.recorded_at.toISOString(),
          receivedAt: r.received_at.toISOString(),
          summary:
            r.kind === 'transaction'
              ? `bay ${r.bay_id}, ${r.minutes} min${r.renewal_id ? `, renewed by phone (${r.channel})` : ''}`
              : r.code
                ? `${r.code}${r.detail ? `: ${r.detail}` : ''}`
                : r.kind,
          bayId: r.bay_id === null ? null : Number(r.bay_id),
          charge: r.charge === null ? null : Number(r.charge),
          currency: r.currency,
          channel: r.kind === 'transaction' ? r.channel : null,
          renewalId: r.renewal_id,
        })),
        nextBefore: rows.length > q.limit ? Number(page[page.length - 1].seq) : null,
      };
    },
  );
};

/** The built console's files, read once at start; without a build, a 503 saying how to make one. */
function staticConsole(app: FastifyInstance, dir: string): void {
  const files = new Map<string, Buffer>();
  if (existsSync(dir))
    for (const name of readdirSync(dir))
      if (CONTENT_TYPES[extname(name)]) files.set(name, readFileSync(join(dir, name)));
  const serve = (name: string) => {
    const body = files.get(name);
    if (!body) {
      if (files.size === 0)
        throw new RequestRefused(
          503,
          'console-not-built',
          'the console is not built: run npm run build:console',
        );
      throw new RequestRefused(404, 'not-found', `no file ${name} in the console`);
    }
    return { body, type: CONTENT_TYPES[extname(name)] };
  };
  const send = (reply: FastifyReply, name: string) => {
    try {
      const { body, type } = serve(name);
      return reply
        .header('content-type', type)
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', CSP)
        .send(body);
    } catch (error) {
      return sendRefusal(reply, error);
    }
  };
  const staticFile = { type: 'string', description: 'the file (HTML, JavaScript, CSS)' } as const;
  app.get(
    '/console',
    { schema: { summary: 'The operator console (redirect)', response: { 302: { type: 'null' } } } },
    async (_request, reply) => reply.redirect('/console/'),
  );
  app.get<{ Params: { file?: string } }>(
    '/console/',
    { schema: { summary: 'The operator console', response: { 200: staticFile, ...errorResponses(503) } } },
    async (_request, reply) => send(reply, 'index.html'),
  );
  app.get<{ Params: { file?: string } }>(
    '/console/:file',
    {
      schema: {
        summary: "The operator console's files",
        params: { type: 'object', properties: { file: { type: 'string', maxLength: 100 } } },
        response: { 200: staticFile, ...errorResponses(404, 503) },
      },
    },
    async (request, reply) => send(reply, request.params.file || 'index.html'),
  );
}
