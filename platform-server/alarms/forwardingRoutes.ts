// Alarm forwarding on the HTTP API:
//
//   GET    /api/alarm-rules                         the rules (a webhook's secret is never shown)
//   POST   /api/alarm-rules                         body: { name, channel, destination, minSeverity, area?, secret? } → 201
//   DELETE /api/alarm-rules/:ruleId                 disables the rule (kept for its deliveries)
//   GET    /api/alarm-deliveries                    ?state=pending|sent|failed &alarmId &limit
//   POST   /api/alarm-deliveries/:deliveryId/retry  a failed delivery tried again
//
// Reading needs the supervisor role; rules and retries the admin role (a rule sends alarm data to
// an address outside the platform). Every change is audited in its transaction.
import type { FastifyPluginAsync } from 'fastify';
import { errorResponses, sendRefusal } from '../core/errors';
import { nullableTime, object, time, u32 } from '../core/schemas';
import type { OperatorGuard } from '../operators/service';
import { type AlarmSeverity, SEVERITIES } from './classify';
import type { AlarmForwarding, ForwardChannel } from './forwarding';

const CHANNELS = ['email', 'webhook', 'sms'] as const;

const ruleSchema = object({
  id: { type: 'integer' },
  name: { type: 'string' },
  channel: { type: 'string', enum: [...CHANNELS] },
  destination: { type: 'string' },
  hasSecret: { type: 'boolean' },
  minSeverity: { type: 'string', enum: [...SEVERITIES] },
  area: { type: 'string', nullable: true },
  enabled: { type: 'boolean' },
  createdBy: { type: 'string' },
  createdAt: time,
});

const deliverySchema = object({
  id: { type: 'integer' },
  ruleId: { type: 'integer' },
  ruleName: { type: 'string' },
  channel: { type: 'string', enum: [...CHANNELS] },
  destination: { type: 'string' },
  alarmId: { type: 'integer' },
  action: { type: 'string' },
  state: { type: 'string', enum: ['pending', 'sent', 'failed'] },
  attempts: { type: 'integer' },
  nextAttemptAt: nullableTime,
  lastError: { type: 'string', nullable: true },
  createdAt: time,
  sentAt: nullableTime,
});

const idParams = (name: string) =>
  ({
    type: 'object',
    properties: { [name]: { ...u32, minimum: 1 } },
    required: [name],
  }) as const;

export const forwardingRoutes: FastifyPluginAsync<{
  forwarding: AlarmForwarding;
  guard: OperatorGuard;
}> = async (app, { forwarding, guard }) => {
  app.get(
    '/api/alarm-rules',
    {
      onRequest: guard.requireRole('supervisor'),
      schema: {
        summary: 'Alarm forwarding rules',
        response: {
          200: object({ rules: { type: 'array', items: ruleSchema } }),
          ...errorResponses(401, 403),
        },
      },
    },
    async () => ({ rules: await forwarding.rules() }),
  );

  app.post<{
    Body: {
      name: string;
      channel: ForwardChannel;
      destination: string;
      minSeverity: AlarmSeverity;
      area?: string | null;
      secret?: string;
    };
  }>(
    '/api/alarm-rules',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary: 'Forward alarms of a severity or above (in an area) by e-mail, webhook or SMS',
        body: {
          type: 'object',
          required: ['name', 'channel', 'destination', 'minSeverity'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 100 },
            channel: { type: 'string', enum: [...CHANNELS] },
            destination: { type: 'string', minLength: 1, maxLength: 500 },
            minSeverity: { type: 'string', enum: [...SEVERITIES] },
            area: { type: 'string', minLength: 1, maxLength: 64, nullable: true },
            secret: {
              type: 'string',
              minLength: 16,
              maxLength: 200,
              description: "a webhook's bearer secret",
            },
          },
          additionalProperties: false,
        },
        response: { 201: ruleSchema, ...errorResponses(400, 401, 403, 409) },
      },
    },
    async (request, reply) => {
      try {
        const rule = await forwarding.createRule(
          request.body,
          request.operator?.username ?? 'unknown',
          (tx, r) =>
            guard.audit(
              request,
              {
                action: 'alarm-rule.create',
                target: `alarm rule ${r.id}`,
                detail: { ...r },
              },
              tx,
            ),
        );
        return reply.code(201).send(rule);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.delete<{ Params: { ruleId: number } }>(
    '/api/alarm-rules/:ruleId',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary: 'Disable a forwarding rule (its pending deliveries are not sent)',
        params: idParams('ruleId'),
        response: { 200: ruleSchema, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      try {
        return await forwarding.disableRule(request.params.ruleId, (tx, r) =>
          guard.audit(request, { action: 'alarm-rule.disable', target: `alarm rule ${r.id}` }, tx),
        );
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.get<{ Querystring: { state?: 'pending' | 'sent' | 'failed'; alarmId?: number; limit: number } }>(
    '/api/alarm-deliveries',
    {
      onRequest: guard.requireRole('supervisor'),
      schema: {
        summary: 'Alarm deliveries, newest first: pending (with the attempts so far), sent, failed',
        querystring: {
          type: 'object',
          properties: {
            state: { type: 'string', enum: ['pending', 'sent', 'failed'] },
            alarmId: { ...u32, minimum: 1 },
            limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
          },
          additionalProperties: false,
        },
        response: {
          200: object({ deliveries: { type: 'array', items: deliverySchema } }),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => ({ deliveries: await forwarding.deliveries(request.query) }),
  );

  app.post<{ Params: { deliveryId: number } }>(
    '/api/alarm-deliveries/:deliveryId/retry',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary: 'Try a failed delivery again',
        params: idParams('deliveryId'),
        response: { 200: deliverySchema, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      try {
        return await forwarding.retry(request.params.deliveryId, (tx, d) =>
          guard.audit(request, { action: 'alarm-delivery.retry', target: `alarm delivery ${d.id}` }, tx),
        );
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );
};
