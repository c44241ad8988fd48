// The notices' HTTP API (display messages and bay modes with a window, to a target):
//
//   POST   /api/notices        body: { target, text | bays, start?, end? }  → 202 { id, meters: [{ meterId, downlinkSeq | error }] }
//   GET    /api/notices        ?active=true leaves out the cancelled           → { notices }
//   GET    /api/notices/:id    the notice with each meter's acknowledgement
//   DELETE /api/notices/:id    cancels it (pushed to its meters)             → 202 { id, version, meters }
//
// start and end are epoch seconds. Reading needs the viewer role; scheduling and cancelling the
// operator role, both audited.
import type { FastifyPluginAsync } from 'fastify';
import { BAY_MODES, type BayMode } from '../../protocol/tariff';
import { errorResponses, sendError, sendRefusal } from '../core/errors';
import { object, u32 } from '../core/schemas';
import { describeTarget, type MeterTarget, meterTargetSchema } from '../fleet/targets';
import type { OperatorGuard } from '../operators/service';
import type { NoticeService } from './notices';

export interface NoticeRoutesOptions {
  notices: NoticeService;
  guard: OperatorGuard;
}

const epochSeconds = { type: 'integer', minimum: 0, maximum: 0xffffffff } as const;
const noticeView = {
  type: 'object',
  additionalProperties: true,
  description: 'a notice and its meters',
} as const;
const sentList = {
  type: 'array',
  items: {
    type: 'object',
    properties: { meterId: { type: 'integer' }, downlinkSeq: { type: 'integer' }, error: { type: 'string' } },
  },
} as const;
const idParams = { type: 'object', properties: { id: { ...u32, minimum: 1 } }, required: ['id'] } as const;

export const noticeRoutes: FastifyPluginAsync<NoticeRoutesOptions> = async (app, { notices, guard }) => {
  app.post<{
    Body: {
      target: MeterTarget;
      text?: string;
      bays?: Record<string, BayMode>;
      start?: number;
      end?: number;
    };
  }>(
    '/api/notices',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: 'Schedule a display message or bay modes for listed meters, an area or the fleet (0x85)',
        body: {
          type: 'object',
          required: ['target'],
          properties: {
            target: meterTargetSchema,
            text: { type: 'string', minLength: 1, maxLength: 60, pattern: '^[^\\u0000-\\u001f]+$' },
            bays: {
              type: 'object',
              minProperties: 1,
              maxProperties: 64,
              additionalProperties: { type: 'string', enum: [...BAY_MODES] },
            },
            start: epochSeconds,
            end: epochSeconds,
          },
          oneOf: [{ required: ['text'] }, { required: ['bays'] }],
          additionalProperties: false,
        },
        response: {
          202: object({ id: { type: 'integer' }, meters: sentList }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const { target, text, bays, start, end } = request.body;
      try {
        const scheduled = await notices.schedule(
          { target, content: text !== undefined ? { text } : { bays: bays ?? {} }, start, end },
          request.operator?.username ?? 'unknown',
        );
        await guard.audit(request, {
          action: 'notice.schedule',
          target: describeTarget(target),
          detail: { id: scheduled.id, text, bays, start, end, meters: scheduled.meters.length },
        });
        return reply.code(202).send(scheduled);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.get<{ Querystring: { active?: boolean } }>(
    '/api/notices',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'Notices, newest first, with each meter’s acknowledgement',
        querystring: {
          type: 'object',
          properties: { active: { type: 'boolean' } },
          additionalProperties: false,
        },
        response: {
          200: object({ notices: { type: 'array', items: noticeView } }),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => ({ notices: await notices.list({ active: request.query.active }) }),
  );

  app.get<{ Params: { id: number } }>(
    '/api/notices/:id',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'One notice with each meter’s acknowledgement',
        params: idParams,
        response: { 200: noticeView, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) =>
      (await notices.get(request.params.id)) ??
      sendError(reply, 404, 'unknown-notice', `no notice ${request.params.id}`),
  );

  app.delete<{ Params: { id: number } }>(
    '/api/notices/:id',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: 'Cancel a notice: its meters clear the message or put the bays back in service',
        params: idParams,
        response: {
          202: object({ id: { type: 'integer' }, version: { type: 'integer' }, meters: sentList }),
          ...errorResponses(400, 401, 403, 404, 409),
        },
      },
    },
    async (request, reply) => {
      try {
        const cancelled = await notices.cancel(request.params.id, request.operator?.username ?? 'unknown');
        await guard.audit(request, {
          action: 'notice.cancel',
          target: `notice ${cancelled.id}`,
          detail: { version: cancelled.version, meters: cancelled.meters.length },
        });
        return reply.code(202).send(cancelled);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );
};
