// The keys' operator routes: a meter's key rotation (supervisor: its keys change) and maintenance
// tokens for the handheld (operator; `staff` is who carries it, the audit names who issued it).
//
//   POST /meters/:id/key-rotation                              → 202 { epoch, downlinkSeq }
//   POST /meters/:id/maintenance-tokens { staff, seconds? }    → 201 { token, secret, tokenId, expiresAt }
import type { FastifyPluginAsync } from 'fastify';
import type { OperatorGuard } from '../operators/service';
import type { MaintenanceTokens } from './maintenance';
import { type KeyRotation, KeyRotationError } from './rotation';

export interface KeyRoutesOptions {
  rotation: KeyRotation;
  maintenance: MaintenanceTokens;
  guard: OperatorGuard;
}

export const keyRoutes: FastifyPluginAsync<KeyRoutesOptions> = async (
  app,
  { rotation, maintenance, guard },
) => {
  app.post<{ Params: { id: string } }>(
    '/meters/:id/key-rotation',
    { onRequest: guard.requireRole('supervisor') },
    async (request, reply) => {
      const id = Number(request.params.id);
      if (!Number.isInteger(id) || id < 0 || id > 0xffffffff)
        return reply.code(400).send({ error: 'meter id is not a u32' });
      try {
        const pushed = await rotation.push(id);
        await guard.audit(request, { action: 'key.rotate', meterId: id, detail: pushed });
        return reply.code(202).send(pushed);
      } catch (error) {
        if (error instanceof KeyRotationError) return reply.code(error.status).send({ error: error.message });
        throw error;
      }
    },
  );

  app.post<{ Params: { id: string }; Body: { staff?: unknown; seconds?: unknown } }>(
    '/meters/:id/maintenance-tokens',
    { onRequest: guard.requireRole('operator') },
    async (request, reply) => {
      const id = Number(request.params.id);
      const { staff, seconds } = request.body ?? {};
      if (!Number.isInteger(id) || id < 0 || id > 0xffffffff)
        return reply.code(400).send({ error: 'meter id is not a u32' });
      if (typeof staff !== 'string') return reply.code(400).send({ error: 'staff is required' });
      try {
        const issued = await maintenance.issue(id, staff, typeof seconds === 'number' ? seconds : undefined);
        await guard.audit(request, {
          action: 'maintenance-token.issue',
          meterId: id,
          target: staff,
          detail: { tokenId: issued.tokenId, expiresAt: issued.expiresAt },
        });
        return reply.code(201).send(issued);
      } catch (error) {
        if (error instanceof RangeError)
          return reply.code(/not provisioned/.test(error.message) ? 404 : 400).send({ error: error.message });
        throw error;
      }
    },
  );
};
