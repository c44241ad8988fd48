// HTTP side of the firmware registry: images (upload: admin; list: viewer) and rollouts (create,
// pause, resume, abort: supervisor; state and history: viewer). Every change is audited.
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { sendError } from '../core/errors';
import type { OperatorGuard } from '../operators/service';
import { FirmwareError, type FirmwareService } from './service';

const HEX = '^([0-9a-f]{2})+$';

const uploadBody = {
  type: 'object',
  required: ['version', 'target', 'image', 'signature'],
  properties: {
    version: { type: 'integer', minimum: 1, maximum: 0xffffffff },
    target: { type: 'string', pattern: '^[a-z0-9-]{1,32}$' },
    notes: { type: 'string', maxLength: 2000 },
    /** The image, base64. */
    image: { type: 'string', contentEncoding: 'base64', maxLength: 4 * 1024 * 1024 },
    signature: { type: 'string', pattern: HEX, minLength: 128, maxLength: 128 },
  },
  additionalProperties: false,
} as const;

const rolloutBody = {
  type: 'object',
  required: ['imageId', 'meters', 'stages', 'maxFailureRate'],
  properties: {
    imageId: { type: 'integer', minimum: 1 },
    meters: {
      type: 'array',
      minItems: 1,
      maxItems: 100_000,
      items: { type: 'integer', minimum: 0, maximum: 0xffffffff },
    },
    stages: {
      type: 'array',
      minItems: 1,
      maxItems: 20,
      items: { type: 'integer', minimum: 1, maximum: 100 },
    },
    maxFailureRate: { type: 'number', minimum: 0, maximum: 1 },
  },
  additionalProperties: false,
} as const;

const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'integer', minimum: 1 } },
} as const;

function fail(reply: FastifyReply, error: unknown): FastifyReply {
  if (error instanceof FirmwareError) return sendError(reply, error.status, error.code, error.message);
  throw error;
}

export const firmwareRoutes: FastifyPluginAsync<{ service: FirmwareService; guard: OperatorGuard }> = async (
  app,
  { service, guard },
) => {
  app.post<{
    Body: { version: number; target: string; notes?: string; image: string; signature: string };
  }>(
    '/api/firmware/images',
    {
      onRequest: guard.requireRole('admin'),
      schema: { summary: 'Register a signed firmware image', body: uploadBody },
    },
    async (request, reply) => {
      const b = request.body;
      try {
        const image = await service.upload({
          version: b.version,
          target: b.target,
          notes: b.notes,
          image: new Uint8Array(Buffer.from(b.image, 'base64')),
          signature: new Uint8Array(Buffer.from(b.signature, 'hex')),
          by: request.operator?.username ?? '',
        });
        await guard.audit(request, {
          action: 'firmware.upload',
          detail: { id: image.id, version: image.version, target: image.target, sha256: image.sha256 },
        });
        return reply.code(201).send(image);
      } catch (error) {
        return fail(reply, error);
      }
    },
  );

  app.get(
    '/api/firmware/images',
    { onRequest: guard.requireRole('viewer'), schema: { summary: 'The registered firmware images' } },
    async () => ({ images: await service.images() }),
  );

  app.post<{ Body: { imageId: number; meters: number[]; stages: number[]; maxFailureRate: number } }>(
    '/api/firmware/rollouts',
    {
      onRequest: guard.requireRole('supervisor'),
      schema: { summary: 'Roll an image out in stages', body: rolloutBody },
    },
    async (request, reply) => {
      try {
        const id = await service.createRollout({ ...request.body, by: request.operator?.username ?? '' });
        await guard.audit(request, {
          action: 'firmware.rollout',
          detail: {
            id,
            imageId: request.body.imageId,
            meters: request.body.meters.length,
            stages: request.body.stages,
          },
        });
        return reply.code(201).send({ id });
      } catch (error) {
        return fail(reply, error);
      }
    },
  );

  for (const action of ['pause', 'resume', 'abort'] as const) {
    app.post<{ Params: { id: number } }>(
      `/api/firmware/rollouts/:id/${action}`,
      {
        onRequest: guard.requireRole('supervisor'),
        schema: { summary: `${action} a rollout`, params: idParams },
      },
      async (request, reply) => {
        try {
          await service[action](request.params.id);
          await guard.audit(request, { action: `firmware.${action}`, detail: { id: request.params.id } });
          return reply.send(await service.rollout(request.params.id));
        } catch (error) {
          return fail(reply, error);
        }
      },
    );
  }

  app.get<{ Params: { id: number } }>(
    '/api/firmware/rollouts/:id',
    {
      onRequest: guard.requireRole('viewer'),
      schema: { summary: "A rollout's state, each meter's update state and the history", params: idParams },
    },
    async (request, reply) => {
      try {
        return reply.send(await service.rollout(request.params.id));
      } catch (error) {
        return fail(reply, error);
      }
    },
  );
};
