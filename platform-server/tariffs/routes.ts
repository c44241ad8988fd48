// The tariffs' HTTP API:
//
//   GET  /api/tariffs                 every tariff id with its latest version
//   POST /api/tariffs                 body: a tariff document      → 201 { id, version } | 400 naming the field
//   POST /api/tariffs/draft-quote     body: { document, bay, start, minutes | amount } → the quote of a document not stored
//   POST /api/tariffs/:id/assign      body: { target, version? }   → 202 each meter's downlink or why none
//   GET  /api/tariffs/:id             the latest version
//   POST /api/meters/:id/tariff       body: { tariffId, version? } → 202 { version, downlinkSeq }
//   GET  /api/meters/:id/tariff       pushed and acknowledged versions, the push's state
//   GET  /api/tariff-pushes           ?state=pending|applied|refused|timed-out &tariffId &limit
//   POST /api/quote                   body: { meterId | tariffId, bay, start (epoch s), minutes | amount, paidMinutes?,
//                                           history? [{ start, end, amount }] }
//
// Reading needs the viewer role, storing and assigning the operator role; the quote is public
// (drivers' price before they pay).
import type { FastifyPluginAsync } from 'fastify';
import { MAX_HISTORY, type PriorPurchase } from '../../protocol/tariff';
import { errorBody, errorResponses, RequestRefused, sendError } from '../core/errors';
import { meterIdParams, object, u32 } from '../core/schemas';
import { type MeterTarget, meterTargetSchema, pushedMetersSchema } from '../fleet/targets';
import type { OperatorGuard } from '../operators/service';
import {
  type QuoteRequest,
  TARIFF_ID_MAX,
  TariffRefused,
  type TariffPushState,
  type TariffService,
} from './service';

const tariffId = { type: 'string', minLength: 1, maxLength: TARIFF_ID_MAX } as const;
const PUSH_STATES = ['pending', 'applied', 'refused', 'timed-out'] as const;

const pushSchema = object(
  {
    meterId: { type: 'integer' },
    tariffId: { type: 'string' },
    pushedVersion: { type: 'integer' },
    state: {
      type: 'string',
      enum: [...PUSH_STATES],
      description: "the meter's answer to the version pushed; 'timed-out' when none came within the bound",
    },
    pushedAt: { type: 'string', format: 'date-time' },
    timesOutAt: { type: 'string', format: 'date-time' },
    appliedTariff: {
      type: 'string',
      nullable: true,
      description: 'the tariff the meter said it holds in its last acknowledgement',
    },
    appliedVersion: { type: 'integer', nullable: true },
    acknowledgedAt: { type: 'string', format: 'date-time', nullable: true },
    refused: { type: 'object', nullable: true, additionalProperties: true },
  },
  ['meterId', 'tariffId', 'pushedVersion', 'state', 'pushedAt'],
);

const REFUSAL_CODES: Record<number, string> = { 400: 'bad-tariff', 404: 'not-found', 409: 'version-exists' };

const savedSchema = object({ id: { type: 'string' }, version: { type: 'integer' } });

const tariffDocumentSchema = {
  type: 'object',
  description: 'a tariff document (protocol/tariff/tariff.schema.json)',
  additionalProperties: true,
} as const;

/** The quote's question: a bay, an arrival (epoch s), and minutes or an amount (minor units). */
const quoteProperties = {
  bay: u32,
  start: { type: 'integer', minimum: 0 },
  minutes: { type: 'integer', minimum: 1, maximum: 10080 },
  amount: { type: 'integer', minimum: 0 },
  paidMinutes: { type: 'integer', minimum: 0, maximum: 10080 },
  history: {
    type: 'array',
    maxItems: MAX_HISTORY,
    description:
      "the payer's earlier purchases in the tariff's zone (a cap per period, no return): epoch seconds and minor units",
    items: {
      type: 'object',
      properties: {
        start: { type: 'integer', minimum: 0 },
        end: { type: 'integer', minimum: 0 },
        amount: { type: 'integer', minimum: 0 },
      },
      required: ['start', 'end', 'amount'],
      additionalProperties: false,
    },
  },
} as const;

const quoteResponse = {
  type: 'object',
  description: 'the quote (protocol/tariff Quote)',
  additionalProperties: true,
} as const;

export interface TariffRoutesOptions {
  service: TariffService;
  guard: OperatorGuard;
}

/** Storing, reading and assigning tariffs (operators), and the public price quote. */
export const tariffRoutes: FastifyPluginAsync<TariffRoutesOptions> = async (app, { service, guard }) => {
  const send = (reply: { code(n: number): { send(b: unknown): unknown } }, error: unknown) => {
    if (error instanceof TariffRefused) {
      const code = REFUSAL_CODES[error.statusCode] ?? 'refused';
      return reply.code(error.statusCode).send(errorBody(error.statusCode, code, error.message, error.field));
    }
    if (error instanceof RequestRefused)
      return reply
        .code(error.statusCode)
        .send(errorBody(error.statusCode, error.code, error.message, error.field));
    throw error;
  };
  app.get(
    '/api/tariffs',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'Every stored tariff with its latest version and the meters last pushed it',
        response: {
          200: object({
            tariffs: {
              type: 'array',
              items: object({
                id: { type: 'string' },
                version: { type: 'integer' },
                versions: { type: 'integer' },
                currency: { type: 'integer' },
                updatedAt: { type: 'string', format: 'date-time' },
                meters: { type: 'integer', description: 'meters whose last push was this tariff' },
              }),
            },
          }),
          ...errorResponses(401, 403),
        },
      },
    },
    async () => ({ tariffs: await service.list() }),
  );
  app.post<{ Body: QuoteRequest & { document: unknown } }>(
    '/api/tariffs/draft-quote',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary:
          'Price a tariff document that is not stored (an editor preview), with the engine the meters run; 400 names the field',
        body: {
          type: 'object',
          properties: { document: tariffDocumentSchema, ...quoteProperties },
          required: ['document', 'bay', 'start'],
          oneOf: [{ required: ['minutes'] }, { required: ['amount'] }],
          additionalProperties: false,
        },
        response: { 200: quoteResponse, ...errorResponses(400, 401, 403) },
      },
    },
    async (request, reply) => {
      try {
        const { document, ...question } = request.body;
        return service.quoteDraft(document, question);
      } catch (error) {
        return send(reply, error);
      }
    },
  );
  app.post<{ Params: { id: string }; Body: { target: MeterTarget; version?: number } }>(
    '/api/tariffs/:id/assign',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: 'Push a stored tariff version to listed meters, an area or the fleet (0x85 each)',
        params: { type: 'object', properties: { id: tariffId }, required: ['id'] },
        body: {
          type: 'object',
          properties: { target: meterTargetSchema, version: u32 },
          required: ['target'],
          additionalProperties: false,
        },
        response: {
          202: object({ version: { type: 'integer' }, meters: pushedMetersSchema }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      try {
        const assigned = await service.assign(request.params.id, request.body.target, request.body.version);
        await guard.audit(request, {
          action: 'tariff.assign',
          target: request.params.id,
          detail: {
            version: assigned.version,
            target: request.body.target,
            sent: assigned.meters.filter((m) => 'downlinkSeq' in m).length,
            failed: assigned.meters.filter((m) => 'error' in m).length,
          },
        });
        return reply.code(202).send(assigned);
      } catch (error) {
        return send(reply, error);
      }
    },
  );
  app.post(
    '/api/tariffs',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: 'Store a tariff version (validated by the engine the meters run; 400 names the field)',
        body: {
          type: 'object',
          description: 'a tariff document (protocol/tariff/tariff.schema.json)',
          additionalProperties: true,
        },
        response: { 201: savedSchema, ...errorResponses(400, 401, 403, 409) },
      },
    },
    async (request, reply) => {
      try {
        const saved = await service.save(request.body);
        await guard.audit(request, { action: 'tariff.save', target: saved.id, detail: saved });
        return reply.code(201).send(saved);
      } catch (error) {
        return send(reply, error);
      }
    },
  );
  app.get<{ Params: { id: string } }>(
    '/api/tariffs/:id',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: "A tariff's latest version",
        params: { type: 'object', properties: { id: tariffId }, required: ['id'] },
        response: { 200: tariffDocumentSchema, ...errorResponses(401, 403, 404) },
      },
    },
    async (request, reply) => {
      const doc = await service.get(request.params.id);
      if (!doc) return sendError(reply, 404, 'unknown-tariff', 'no such tariff');
      return doc;
    },
  );
  app.post<{ Params: { id: number }; Body: { tariffId: string; version?: number } }>(
    '/api/meters/:id/tariff',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: 'Push a stored tariff version to a meter as a 0x85 downlink',
        params: meterIdParams,
        body: {
          type: 'object',
          properties: { tariffId, version: u32 },
          required: ['tariffId'],
          additionalProperties: false,
        },
        response: {
          202: object({ version: { type: 'integer' }, downlinkSeq: { type: 'integer' } }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      try {
        const pushed = await service.push(request.params.id, request.body.tariffId, request.body.version);
        await guard.audit(request, {
          action: 'tariff.assign',
          meterId: request.params.id,
          target: request.body.tariffId,
          detail: pushed,
        });
        return reply.code(202).send(pushed);
      } catch (error) {
        return send(reply, error);
      }
    },
  );
  app.get<{ Params: { id: number } }>(
    '/api/meters/:id/tariff',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'The tariff pushed to a meter, the version it applied, or why it refused one',
        params: meterIdParams,
        response: { 200: pushSchema, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) =>
      (await service.status(request.params.id)) ??
      sendError(reply, 404, 'no-tariff-pushed', 'no tariff pushed to this meter'),
  );
  app.get<{ Querystring: { state?: TariffPushState; tariffId?: string; limit: number } }>(
    '/api/tariff-pushes',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: "Each meter's last tariff push and its state, newest first (e.g. every push that timed out)",
        querystring: {
          type: 'object',
          properties: {
            state: { type: 'string', enum: [...PUSH_STATES] },
            tariffId,
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          },
          additionalProperties: false,
        },
        response: {
          200: object({ pushes: { type: 'array', items: pushSchema } }),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => ({ pushes: await service.pushes(request.query) }),
  );
  app.post<{
    Body: {
      meterId?: number;
      tariffId?: string;
      bay: number;
      start: number;
      minutes?: number;
      amount?: number;
      paidMinutes?: number;
      history?: PriorPurchase[];
    };
  }>(
    '/api/quote',
    {
      schema: {
        body: {
          type: 'object',
          properties: { meterId: u32, tariffId, ...quoteProperties },
          required: ['bay', 'start'],
          oneOf: [{ required: ['minutes'] }, { required: ['amount'] }],
          additionalProperties: false,
        },
        response: { 200: quoteResponse, ...errorResponses(400, 404) },
      },
    },
    async (request, reply) => {
      try {
        return await service.quote(request.body);
      } catch (error) {
        return send(reply, error);
      }
    },
  );
};
