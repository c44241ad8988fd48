// The clearance unit's API (docs/clearance.md): operators read batches, files and exceptions;
// supervisors import responses and work the exception queue; admins settle a day and deliver.
import type { FastifyPluginAsync } from 'fastify';
import { errorResponses, sendRefusal } from '../core/errors';
import { object } from '../core/schemas';
import type { OperatorGuard } from '../operators/service';
import type { ClearanceService } from './service';

export interface ClearanceRoutesOptions {
  service: ClearanceService;
  guard: OperatorGuard;
}

const idParams = {
  type: 'object',
  properties: { id: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER } },
  required: ['id'],
} as const;
const loose = { type: 'object', additionalProperties: true } as const;

export const clearanceRoutes: FastifyPluginAsync<ClearanceRoutesOptions> = async (
  app,
  { service, guard },
) => {
  const who = (request: { operator?: { username: string } }) => request.operator?.username ?? 'unknown';

  app.get(
    '/api/clearance/public-key',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'The Ed25519 public key settlement files are signed with (hex), for the acquirer',
        response: {
          200: object({ algorithm: { type: 'string' }, publicKey: { type: 'string' } }),
          ...errorResponses(401, 403),
        },
      },
    },
    async () => ({ algorithm: 'Ed25519', publicKey: service.publicKey }),
  );

  app.post<{ Body: { businessDay: string } }>(
    '/api/clearance/settlements',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary:
          'Settles a business day: a signed batch per card type and currency of everything not yet settled up to it',
        body: {
          type: 'object',
          properties: { businessDay: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' } },
          required: ['businessDay'],
          additionalProperties: false,
        },
        response: {
          201: object({ batches: { type: 'array', items: loose } }),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request, reply) => {
      try {
        const batches = await service.settle(request.body.businessDay);
        await guard.audit(request, {
          action: 'clearance.settle',
          target: request.body.businessDay,
          detail: {
            batches: batches.map((b) => ({ id: b.id, cardType: b.cardType, items: b.items, total: b.total })),
          },
        });
        return reply.code(201).send({ batches });
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.get(
    '/api/clearance/batches',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: 'Settlement batches, newest first',
        response: { 200: object({ batches: { type: 'array', items: loose } }), ...errorResponses(401, 403) },
      },
    },
    async () => ({ batches: await service.batches() }),
  );

  app.get<{ Params: { id: number } }>(
    '/api/clearance/batches/:id/file',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: "A batch's settlement file as delivered",
        params: idParams,
        response: { 200: { type: 'string' }, ...errorResponses(401, 403, 404) },
      },
    },
    async (request, reply) => {
      try {
        const batch = await service.batch(request.params.id);
        return reply.header('content-type', 'text/plain; charset=utf-8').send(batch.content);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.post<{ Params: { id: number } }>(
    '/api/clearance/batches/:id/delivery',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary: "Delivers a batch's file, its SHA-256 and its signature to the acquirer over SFTP",
        params: idParams,
        response: { 200: loose, ...errorResponses(401, 403, 404, 409, 502) },
      },
    },
    async (request, reply) => {
      try {
        const batch = await service.deliver(request.params.id);
        await guard.audit(request, { action: 'clearance.deliver', target: batch.fileName, detail: {} });
        return batch;
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.post<{ Body: string; Querystring: { name?: string } }>(
    '/api/clearance/responses',
    {
      onRequest: guard.requireRole('supervisor'),
      schema: {
        summary: "Imports an acquirer's response file (text/plain) and reconciles its batch",
        querystring: {
          type: 'object',
          properties: { name: { type: 'string', maxLength: 200 } },
          additionalProperties: false,
        },
        body: { type: 'string', maxLength: 50_000_000 },
        response: { 201: loose, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      try {
        const result = await service.importResponse(
          request.body,
          request.query.name ?? 'uploaded',
          who(request),
        );
        await guard.audit(request, {
          action: 'clearance.import',
          target: `batch ${result.batchId}`,
          detail: { matched: result.matched, exceptions: result.exceptions },
        });
        return reply.code(201).send(result);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.post(
    '/api/clearance/responses/fetch',
    {
      onRequest: guard.requireRole('supervisor'),
      schema: {
        summary: "Imports every new response in the acquirer's SFTP inbox",
        response: { 200: loose, ...errorResponses(401, 403, 409) },
      },
    },
    async (request, reply) => {
      try {
        const result = await service.fetchResponses(who(request));
        await guard.audit(request, {
          action: 'clearance.fetch',
          target: 'sftp',
          detail: { imported: result.imported.map((r) => r.batchId), skipped: result.skipped },
        });
        return result;
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.get<{ Querystring: { status: 'open' | 'resolved' | 'all' } }>(
    '/api/clearance/exceptions',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: 'The exception queue: what reconciliation did not match, with its evidence',
        querystring: {
          type: 'object',
          properties: { status: { type: 'string', enum: ['open', 'resolved', 'all'], default: 'open' } },
          additionalProperties: false,
        },
        response: {
          200: object({ exceptions: { type: 'array', items: loose } }),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => ({ exceptions: await service.exceptions(request.query.status) }),
  );

  app.post<{ Params: { id: number }; Body: { outcome: string; note: string } }>(
    '/api/clearance/exceptions/:id/resolution',
    {
      onRequest: guard.requireRole('supervisor'),
      schema: {
        summary: 'Resolves an exception with an outcome and a note',
        params: idParams,
        body: {
          type: 'object',
          properties: {
            outcome: { type: 'string', enum: ['accepted', 'resubmit', 'refund', 'written-off'] },
            note: { type: 'string', minLength: 1, maxLength: 500 },
          },
          required: ['outcome', 'note'],
          additionalProperties: false,
        },
        response: { 204: { type: 'null' }, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      try {
        await service.resolve(request.params.id, request.body.outcome, request.body.note, who(request));
        await guard.audit(request, {
          action: 'clearance.resolve',
          target: `exception ${request.params.id}`,
          detail: { outcome: request.body.outcome, note: request.body.note },
        });
        return reply.code(204).send();
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );
};
