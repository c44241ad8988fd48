// Reports on demand (414b), the HTTP API:
//
//   POST /api/meters/:id/report-requests   body: { kind, fromSeq?, toSeq?, since?, until? }
//                                          → 202 the request as sent (0x8C) | 400 naming the range | 404
//                                            | 502 when the downlink could not be sealed and sent
//   GET  /api/meters/:id/report-requests   the meter's requests, newest first
//   GET  /api/report-requests/:requestId   one request: its answer (0x0C), the runs re-sent, the part
//                                          the meter no longer holds and why, what arrived, what is out
//
// Reading needs the viewer role; sending a request the operator role (it costs the meter's radio
// time). Sending is audited.
import type { FastifyPluginAsync } from 'fastify';
import { MISSING_REASONS } from '../../protocol/reports';
import { errorResponses, sendError, sendRefusal } from '../core/errors';
import { meterIdParams, nullableTime, object, time, u32 } from '../core/schemas';
import type { OperatorGuard } from '../operators/service';
import type { ReportAsk, ReportService } from './service';

export interface ReportRoutesOptions {
  service: ReportService;
  guard: OperatorGuard;
}

const run = object({ from: { type: 'integer' }, to: { type: 'integer' } });
const nullableRun = { ...run, nullable: true };
const nullableInt = { type: 'integer', nullable: true } as const;

const requestView = object({
  requestId: { type: 'integer' },
  meterId: { type: 'integer' },
  kind: { type: 'string', enum: ['status', 'records'] },
  fromSeq: nullableInt,
  toSeq: nullableInt,
  since: nullableTime,
  until: nullableTime,
  requestedBy: { type: 'string' },
  requestedAt: time,
  downlinkSeq: nullableInt,
  state: { type: 'string', enum: ['sent', 'answered', 'refused'] },
  answeredAt: nullableTime,
  refusal: {
    type: 'object',
    nullable: true,
    properties: { code: { type: 'string' }, why: { type: 'string', nullable: true } },
  },
  statusSent: { type: 'boolean', nullable: true },
  held: nullableRun,
  acknowledged: nullableInt,
  sent: { type: 'array', items: run },
  missing: {
    type: 'array',
    items: object({
      from: { type: 'integer' },
      to: { type: 'integer' },
      reason: { type: 'string', enum: [...MISSING_REASONS] },
    }),
  },
  receivedNew: { type: 'integer' },
  receivedDuplicate: { type: 'integer' },
  outstanding: { type: 'array', items: run },
  complete: { type: 'boolean' },
});

export const reportRoutes: FastifyPluginAsync<ReportRoutesOptions> = async (app, { service, guard }) => {
  app.post<{ Params: { id: number }; Body: ReportAsk }>(
    '/api/meters/:id/report-requests',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary:
          'Ask a meter for a status report now, or to re-send a range of its records (by sequence number and/or time)',
        params: meterIdParams,
        body: {
          type: 'object',
          required: ['kind'],
          properties: {
            kind: { type: 'string', enum: ['status', 'records'] },
            fromSeq: { ...u32, minimum: 1 },
            toSeq: { ...u32, minimum: 1 },
            since: time,
            until: time,
          },
          additionalProperties: false,
        },
        response: { 202: requestView, ...errorResponses(400, 401, 403, 404, 502) },
      },
    },
    async (request, reply) => {
      try {
        const who = request.operator?.username ?? 'unknown';
        const sent = await service.request(request.params.id, request.body, who);
        await guard.audit(request, {
          action: 'reports.request',
          target: `meter ${request.params.id}`,
          detail: { requestId: sent.requestId, ...request.body },
        });
        return reply.code(202).send(sent);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.get<{ Params: { id: number } }>(
    '/api/meters/:id/report-requests',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'A meter’s report requests, newest first (at most 50)',
        params: meterIdParams,
        response: {
          200: object({ requests: { type: 'array', items: requestView } }),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => ({ requests: await service.ofMeter(request.params.id) }),
  );

  app.get<{ Params: { requestId: number } }>(
    '/api/report-requests/:requestId',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary:
          'One report request: the meter’s answer, the runs re-sent, the part no longer held and why, what arrived',
        params: {
          type: 'object',
          properties: { requestId: { ...u32, minimum: 1 } },
          required: ['requestId'],
        },
        response: { 200: requestView, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) =>
      (await service.get(request.params.requestId)) ??
      sendError(reply, 404, 'unknown-report-request', `no report request ${request.params.requestId}`),
  );
};
