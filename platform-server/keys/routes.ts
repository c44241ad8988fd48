// The keys' operator routes: a meter's key rotation (supervisor: its keys change) and maintenance
// tokens for the handheld (operator; `staff` is who carries it, the audit names who issued it).
//
//   POST /api/meters/:id/key-rotation                              → 202 { epoch, downlinkSeq }
//   POST /api/meters/:id/maintenance-tokens { staff, seconds? }    → 201 { token, secret, tokenId, expiresAt }
import type { FastifyPluginAsync } from 'fastify';
import { errorResponses, sendError } from '../core/errors';
import { meterIdParams, object } from '../core/schemas';
import type { OperatorGuard } from '../operators/service';
import { MAX_TOKEN_SECONDS, type MaintenanceTokens } from './maintenance';
import { type KeyRotation, KeyRotationError } from './rotation';

export interface KeyRoutesOptions {
  rotation: KeyRotation;
  maintenance: MaintenanceTokens;
  guard: OperatorGuard;
}

const tokenBody = {
  type: 'object',
  properties: {
    staff: { type: 'string', pattern: '^[\\w.@-]{1,64}$', description: 'who carries the handheld' },
    seconds: { type: 'integer', minimum: 60, maximum: MAX_TOKEN_SECONDS, default: 900 },
  },
  required: ['staff'],
  additionalProperties: false,
} as const;

export const keyRoutes: FastifyPluginAsync<KeyRoutesOptions> = async (
  app,
  { rotation, maintenance, guard },
) => {
  app.post<{ Params: { id: number } }>(
    '/api/meters/:id/key-rotation',
    {
      onRequest: guard.requireRole('supervisor'),
      schema: {
        summary: "Push the meter's next key epoch (0x83); the meter's 0x03 acknowledgement moves it on",
        params: meterIdParams,
        response: {
          202: object({ epoch: { type: 'integer' }, downlinkSeq: { type: 'integer' } }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      try {
        const pushed = await rotation.push(id);
        await guard.audit(request, { action: 'key.rotate', meterId: id, detail: pushed });
        return reply.code(202).send(pushed);
      } catch (error) {
        if (error instanceof KeyRotationError)
          return sendError(
            reply,
            error.status,
            error.status === 404 ? 'unknown-meter' : 'key-rotation',
            error.message,
          );
        throw error;
      }
    },
  );

  app.post<{ Params: { id: number }; Body: { staff: string; seconds: number } }>(
    '/api/meters/:id/maintenance-tokens',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: "Issue a maintenance token and its secret for a handheld, under the meter's maintenance key",
        params: meterIdParams,
        body: tokenBody,
        response: {
          201: object({
            token: { type: 'string', description: 'CBOR, hex' },
            secret: { type: 'string', description: 'HMAC(M, token), hex' },
            tokenId: { type: 'integer' },
            expiresAt: { type: 'integer', description: 'epoch seconds' },
          }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      const { staff, seconds } = request.body;
      try {
        const issued = await maintenance.issue(id, staff, seconds);
        await guard.audit(request, {
          action: 'maintenance-token.issue',
          meterId: id,
          target: staff,
          detail: { tokenId: issued.tokenId, expiresAt: issued.expiresAt },
        });
        return reply.code(201).send(issued);
      } catch (error) {
        if (error instanceof RangeError) {
          return /not provisioned/.test(error.message)
            ? sendError(reply, 404, 'unknown-meter', error.message)
            : sendError(reply, 400, 'bad-token-request', error.message);
        }
        throw error;
      }
    },
  );
};
