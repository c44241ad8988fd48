// The alarm inbox on the HTTP API:
//
//   GET  /api/alarms                      ?state=active|open|acknowledged|resolved|all &severity &area &meterId &assignedTo &limit &before
//   GET  /api/alarms/response-times       ?by=meter|area &since &until → time to acknowledge and to repair
//   GET  /api/alarms/:alarmId             one alarm with its history
//   POST /api/alarms/:alarmId/acknowledge body: { note? }
//   POST /api/alarms/:alarmId/assign      body: { operator: username | null }
//   POST /api/alarms/:alarmId/resolve     body: { note }
//
// Reading needs the viewer role; acknowledging and resolving the operator role; assigning work to
// someone the supervisor role. Every change is audited in its transaction.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Queryable } from '../core/db';
import { errorResponses, sendRefusal } from '../core/errors';
import { nullableTime, object, time, u32 } from '../core/schemas';
import { USERNAME, type OperatorGuard } from '../operators/service';
import { type AlarmSeverity, SEVERITIES } from './classify';
import { AlarmRefused, type AlarmService, type AlarmState, type AlarmView } from './service';

export interface AlarmRoutesOptions {
  service: AlarmService;
  guard: OperatorGuard;
}

const nullableText = { type: 'string', nullable: true } as const;

export const alarmSchema = object({
  id: { type: 'integer' },
  meterId: { type: 'integer' },
  meterName: { type: 'string' },
  area: nullableText,
  kind: { type: 'string' },
  subject: {
    type: 'string',
    description: "what it happened to: a pack, module, sensor, bay; '' for the meter",
  },
  severity: { type: 'string', enum: [...SEVERITIES] },
  source: { type: 'string', enum: ['security-event', 'status-event', 'status-report', 'sweep'] },
  detail: { type: 'string' },
  state: { type: 'string', enum: ['open', 'acknowledged', 'resolved'] },
  occurredAt: { ...time, description: "the meter's time of the first occurrence" },
  raisedAt: time,
  lastAt: time,
  occurrences: { type: 'integer', minimum: 1 },
  clearedAt: { ...nullableTime, description: 'when the meter reported the condition gone' },
  acknowledgedAt: nullableTime,
  acknowledgedBy: nullableText,
  assignedTo: nullableText,
  assignedAt: nullableTime,
  resolvedAt: nullableTime,
  resolvedBy: nullableText,
  resolution: nullableText,
});

const historySchema = object({
  at: time,
  action: { type: 'string' },
  actor: { type: 'string' },
  note: nullableText,
});

const alarmParams = {
  type: 'object',
  properties: { alarmId: { ...u32, minimum: 1 } },
  required: ['alarmId'],
} as const;

const severityCounts = object(Object.fromEntries(SEVERITIES.map((s) => [s, { type: 'integer' }])));

const listQuery = {
  type: 'object',
  properties: {
    state: { type: 'string', enum: ['active', 'open', 'acknowledged', 'resolved', 'all'], default: 'active' },
    severity: { type: 'string', enum: [...SEVERITIES] },
    area: { type: 'string', minLength: 1, maxLength: 64 },
    meterId: u32,
    assignedTo: { type: 'string', pattern: USERNAME },
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
    before: { ...u32, minimum: 1 },
  },
  additionalProperties: false,
} as const;

const DAY_MS = 86_400_000;

const timesQuery = {
  type: 'object',
  properties: {
    by: { type: 'string', enum: ['meter', 'area'], default: 'meter' },
    since: { ...time, description: 'alarms raised from (default: 30 days before until)' },
    until: { ...time, description: 'alarms raised before (default: now)' },
  },
  additionalProperties: false,
} as const;

const noteBody = (required: boolean) =>
  ({
    type: 'object',
    properties: { note: { type: 'string', minLength: 1, maxLength: 1000 } },
    required: required ? ['note'] : [],
    additionalProperties: false,
  }) as const;

export const alarmRoutes: FastifyPluginAsync<AlarmRoutesOptions> = async (app, { service, guard }) => {
  app.get<{
    Querystring: {
      state: AlarmState | 'active' | 'all';
      severity?: AlarmSeverity;
      area?: string;
      meterId?: number;
      assignedTo?: string;
      limit: number;
      before?: number;
    };
  }>(
    '/api/alarms',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'The fleet-wide alarm inbox, newest first, with the unresolved count per severity',
        querystring: listQuery,
        response: {
          200: object({
            alarms: { type: 'array', items: alarmSchema },
            nextBefore: { type: 'integer', nullable: true },
            active: severityCounts,
          }),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => service.list(request.query),
  );

  app.get<{ Querystring: { by: 'meter' | 'area'; since?: string; until?: string } }>(
    '/api/alarms/response-times',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'Time to acknowledge and time to repair, per meter or per area',
        querystring: timesQuery,
        response: {
          200: object({
            by: { type: 'string' },
            since: time,
            until: time,
            rows: {
              type: 'array',
              items: object({
                key: { description: 'the meter id, or the area (null: meters in no area)', nullable: true },
                alarms: { type: 'integer' },
                acknowledged: { type: 'integer' },
                resolved: { type: 'integer' },
                meanAcknowledgeSeconds: { type: 'integer', nullable: true },
                maxAcknowledgeSeconds: { type: 'integer', nullable: true },
                meanRepairSeconds: { type: 'integer', nullable: true },
                maxRepairSeconds: { type: 'integer', nullable: true },
              }),
            },
          }),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request, reply) => {
      const until = request.query.until ? new Date(request.query.until) : new Date();
      const since = request.query.since
        ? new Date(request.query.since)
        : new Date(until.getTime() - 30 * DAY_MS);
      if (!(since < until))
        return sendRefusal(reply, new AlarmRefused(400, 'bad-range', 'since must be before until', 'since'));
      const rows = await service.responseTimes(request.query.by, since, until);
      return { by: request.query.by, since: since.toISOString(), until: until.toISOString(), rows };
    },
  );

  app.get<{ Params: { alarmId: number } }>(
    '/api/alarms/:alarmId',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'One alarm with its history',
        params: alarmParams,
        response: {
          200: {
            ...alarmSchema,
            properties: { ...alarmSchema.properties, history: { type: 'array', items: historySchema } },
          },
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      try {
        return await service.get(request.params.alarmId);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  /** Runs an operator's change with its audit row in the change's transaction. */
  const change =
    (
      action: string,
      run: (id: number, who: string, body: ChangeBody, audit: AuditIn) => Promise<AlarmView>,
    ) =>
    async (
      request: FastifyRequest<{ Params: { alarmId: number }; Body: ChangeBody }>,
      reply: FastifyReply,
    ) => {
      const id = request.params.alarmId;
      const who = request.operator?.username ?? 'unknown';
      try {
        return await run(id, who, request.body, (tx, alarm) =>
          guard.audit(
            request,
            {
              action,
              meterId: alarm.meterId,
              target: `alarm ${id}`,
              detail: { ...(request.body ?? {}), kind: alarm.kind },
            },
            tx,
          ),
        );
      } catch (error) {
        return sendRefusal(reply, error);
      }
    };

  const changeSchema = (summary: string, body: object) => ({
    summary,
    params: alarmParams,
    body,
    response: { 200: alarmSchema, ...errorResponses(400, 401, 403, 404, 409) },
  });

  app.post<{ Params: { alarmId: number }; Body: ChangeBody }>(
    '/api/alarms/:alarmId/acknowledge',
    {
      onRequest: guard.requireRole('operator'),
      schema: changeSchema('Acknowledge an alarm', noteBody(false)),
    },
    change('alarm.acknowledge', (id, who, body, audit) =>
      service.acknowledge(id, who, body?.note ?? null, audit),
    ),
  );

  app.post<{ Params: { alarmId: number }; Body: ChangeBody }>(
    '/api/alarms/:alarmId/assign',
    {
      onRequest: guard.requireRole('supervisor'),
      schema: changeSchema('Assign an alarm to an operator (null: unassign)', {
        type: 'object',
        properties: { operator: { type: 'string', pattern: USERNAME, nullable: true } },
        required: ['operator'],
        additionalProperties: false,
      }),
    },
    change('alarm.assign', (id, who, body, audit) => service.assign(id, who, body?.operator ?? null, audit)),
  );

  app.post<{ Params: { alarmId: number }; Body: ChangeBody }>(
    '/api/alarms/:alarmId/resolve',
    {
      onRequest: guard.requireRole('operator'),
      schema: changeSchema('Resolve an alarm with a note', noteBody(true)),
    },
    change('alarm.resolve', (id, who, body, audit) => service.resolve(id, who, body?.note ?? '', audit)),
  );
};

type ChangeBody = { note?: string; operator?: string | null } | undefined;
type AuditIn = (tx: Queryable, alarm: AlarmView) => Promise<void>;
