// Each meter's status on the HTTP API:
//
//   GET  /api/meters/:id/status    battery, sensors, module states, faults, fan, occupancy per bay, open alarms
//   GET  /api/meters/:id/alarms    alarms (alarm, warning, fault events) newest first, with time and state
//   POST /api/meters/:id/settings  body: GuardSettings → 202 { version, downlinkSeq } | 400 naming the field
// Reading needs the viewer role, settings the operator role.
import type { FastifyPluginAsync } from 'fastify';
import { ProtocolError } from '../../protocol/errors';
import type { GuardSettings } from '../../protocol/status';
import type { Database } from '../core/db';
import { errorResponses, sendError } from '../core/errors';
import { meterIdParams, nullableTime, object, time } from '../core/schemas';
import type { MeterDirectory } from '../ingest/meters';
import type { OperatorGuard } from '../operators/service';
import type { StatusService } from './status';

const idParams = meterIdParams;

const loose = { type: 'object', additionalProperties: true } as const;

const alarmSchema = object({
  id: { type: 'integer' },
  at: time,
  receivedAt: time,
  event: { type: 'string' },
  severity: { type: 'string' },
  state: { type: 'string', enum: ['raised', 'cleared'] },
  value: { type: 'number', nullable: true },
  bayId: { type: 'integer', nullable: true },
  detail: { type: 'string' },
});

const alarmsQuery = {
  type: 'object',
  properties: {
    state: { type: 'string', enum: ['raised', 'cleared', 'all'], default: 'all' },
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
  },
  additionalProperties: false,
} as const;

const settingsBody = {
  type: 'object',
  required: ['version', 'sampleSeconds', 'baySeconds', 'statusSeconds', 'thresholds'],
  properties: {
    version: { type: 'integer', minimum: 1, maximum: 0xffffffff },
    sampleSeconds: { type: 'integer', minimum: 1, maximum: 86_400 },
    baySeconds: { type: 'integer', minimum: 1, maximum: 3_600 },
    statusSeconds: { type: 'integer', minimum: 60, maximum: 604_800 },
    thresholds: {
      type: 'object',
      required: [
        'tiltDegrees',
        'vibrationG',
        'temperatureHigh',
        'fanOn',
        'fanOff',
        'humidityHigh',
        'aqi',
        'coverLux',
        'vehicleMicroTesla',
      ],
      properties: {
        tiltDegrees: { type: 'number', minimum: 1, maximum: 90 },
        vibrationG: { type: 'number', minimum: 0.1, maximum: 16 },
        temperatureHigh: { type: 'number', minimum: 0, maximum: 125 },
        fanOn: { type: 'number', minimum: -40, maximum: 125 },
        fanOff: { type: 'number', minimum: -40, maximum: 125 },
        humidityHigh: { type: 'number', minimum: 0, maximum: 100 },
        aqi: { type: 'integer', minimum: 1, maximum: 5 },
        coverLux: { type: 'number', minimum: 0.1, maximum: 100_000 },
        vehicleMicroTesla: { type: 'number', minimum: 1, maximum: 1000 },
      },
      additionalProperties: false,
    },
  },
  additionalProperties: false,
} as const;

interface EventRow {
  id: number;
  occurred_at: Date;
  received_at: Date;
  event: string;
  severity: string;
  active: boolean;
  value: number | null;
  bay_id: number | null;
  detail: string;
}

const alarmView = (r: EventRow) => ({
  id: r.id,
  at: r.occurred_at.toISOString(),
  receivedAt: r.received_at.toISOString(),
  event: r.event,
  severity: r.severity,
  state: r.active ? 'raised' : 'cleared',
  value: r.value,
  bayId: r.bay_id,
  detail: r.detail,
});

export interface StatusRoutesOptions {
  db: Database;
  meters: Pick<MeterDirectory, 'exists'>;
  guard: OperatorGuard;
  service: StatusService;
  /** The meter's clock as its last time request (0x08) showed it: last sync, offset, drift. */
  clock?: (meterId: number) => Promise<object | null>;
}

/** The status, alarms and settings routes of each meter. */
export const statusRoutes: FastifyPluginAsync<StatusRoutesOptions> = async (
  app,
  { db, meters, guard, service, clock },
) => {
  const meterExists = (id: number) => meters.exists(id);

  app.get<{ Params: { id: number } }>(
    '/api/meters/:id/status',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: "A meter's last status report, bays and open alarms",
        params: idParams,
        response: {
          200: object(
            {
              meterId: { type: 'integer' },
              reportedAt: nullableTime,
              receivedAt: nullableTime,
              battery: { ...loose, nullable: true },
              sensors: { ...loose, nullable: true },
              modules: { ...loose, nullable: true },
              faults: { type: 'array', items: {} },
              fan: { type: 'boolean', nullable: true },
              settingsVersion: { type: 'integer', nullable: true },
              bays: { type: 'array', items: loose },
              openAlarms: { type: 'array', items: alarmSchema },
              clock: { ...loose, nullable: true },
            },
            ['meterId', 'bays', 'openAlarms'],
          ),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      if (!(await meterExists(id))) return sendError(reply, 404, 'unknown-meter', `no meter ${id}`);
      const status = (
        await db.query<{
          reported_at: Date;
          received_at: Date;
          battery: unknown;
          sensors: unknown;
          modules: unknown;
          faults: unknown;
          fan: boolean;
          settings_version: number;
        }>('SELECT * FROM meter_status WHERE meter_id = $1', [id])
      ).rows[0];
      const bays = await db.query<{
        bay_id: number;
        occupied: boolean;
        since: Date | null;
        paid: boolean;
        updated_at: Date;
      }>(
        'SELECT bay_id, occupied, since, paid, updated_at FROM bay_occupancy WHERE meter_id = $1 ORDER BY bay_id',
        [id],
      );
      // Open alarms: the latest event of each alarm kind (and bay) that is still raised.
      const open = await db.query<EventRow>(
        `SELECT * FROM (
         SELECT DISTINCT ON (event, COALESCE(bay_id, -1)) * FROM meter_events
          WHERE meter_id = $1 AND severity IN ('alarm', 'warning', 'fault')
          ORDER BY event, COALESCE(bay_id, -1), occurred_at DESC, id DESC) latest
        WHERE active ORDER BY occurred_at DESC`,
        [id],
      );
      return {
        meterId: id,
        reportedAt: status?.reported_at.toISOString() ?? null,
        receivedAt: status?.received_at.toISOString() ?? null,
        battery: status?.battery ?? null,
        sensors: status?.sensors ?? null,
        modules: status?.modules ?? null,
        faults: status?.faults ?? [],
        fan: status?.fan ?? null,
        settingsVersion: status?.settings_version ?? null,
        bays: bays.rows.map((b) => ({
          bayId: b.bay_id,
          occupied: b.occupied,
          since: b.since?.toISOString() ?? null,
          paid: b.paid,
          updatedAt: b.updated_at.toISOString(),
        })),
        openAlarms: open.rows.map(alarmView),
        clock: clock ? ((await clock(id)) ?? null) : null,
      };
    },
  );

  app.get<{ Params: { id: number }; Querystring: { state: 'raised' | 'cleared' | 'all'; limit: number } }>(
    '/api/meters/:id/alarms',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: "A meter's alarms, warnings and faults, newest first",
        params: idParams,
        querystring: alarmsQuery,
        response: {
          200: object({ meterId: { type: 'integer' }, alarms: { type: 'array', items: alarmSchema } }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      if (!(await meterExists(id))) return sendError(reply, 404, 'unknown-meter', `no meter ${id}`);
      const { state, limit } = request.query;
      const rows = await db.query<EventRow>(
        `SELECT * FROM meter_events WHERE meter_id = $1 AND severity IN ('alarm', 'warning', 'fault')
           AND ($2 = 'all' OR active = ($2 = 'raised'))
         ORDER BY occurred_at DESC, id DESC LIMIT $3`,
        [id, state, limit],
      );
      return { meterId: id, alarms: rows.rows.map(alarmView) };
    },
  );

  app.post<{ Params: { id: number }; Body: GuardSettings }>(
    '/api/meters/:id/settings',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: "Send the meter's guard settings as a 0x84 downlink",
        params: idParams,
        body: settingsBody,
        response: {
          202: object({ version: { type: 'integer' }, downlinkSeq: { type: 'integer' } }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      if (!(await meterExists(id))) return sendError(reply, 404, 'unknown-meter', `no meter ${id}`);
      try {
        const downlinkSeq = await service.pushSettings(id, request.body);
        await guard.audit(request, {
          action: 'settings.push',
          meterId: id,
          detail: { version: request.body.version, downlinkSeq },
        });
        return reply.code(202).send({ version: request.body.version, downlinkSeq });
      } catch (error) {
        if (error instanceof ProtocolError) return sendError(reply, 400, error.code, error.message);
        throw error;
      }
    },
  );
};
