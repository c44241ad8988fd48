// HTTP side of the firmware registry (414a):
//
//   POST /api/firmware/images                  admin       body: { version, target, notes?, image (base64), signature (hex) }
//                                                          → 201 the image | 422 the signature does not verify | 409 exists
//   GET  /api/firmware/images                  viewer      the registered images
//   POST /api/firmware/rollouts                supervisor  body: { imageId, target: {meters}|{area}|{fleet}, stages, maxFailureRate }
//                                                          → 201 { id, meters }
//   POST /api/firmware/rollouts/:id/pause      supervisor  body: { reason? } → the rollout (also resume, abort)
//   GET  /api/firmware/rollouts/:id            viewer      state, each meter's update state and offset, history
//   GET  /api/meters/:id/firmware              viewer      the meter's last report and its history
//
// Every change is audited.
import type { FastifyPluginAsync } from 'fastify';
import { errorResponses, sendRefusal } from '../core/errors';
import { meterIdParams, object, time } from '../core/schemas';
import { describeTarget, type MeterTarget, meterTargetSchema } from '../fleet/targets';
import type { OperatorGuard } from '../operators/service';
import type { FirmwareService } from './service';

const uploadBody = {
  type: 'object',
  required: ['version', 'target', 'image', 'signature'],
  properties: {
    version: { type: 'integer', minimum: 1, maximum: 0xffffffff },
    target: { type: 'string', pattern: '^[a-z0-9-]{1,32}$' },
    notes: { type: 'string', maxLength: 2000 },
    /** The image, base64. */
    image: { type: 'string', contentEncoding: 'base64', maxLength: 4 * 1024 * 1024 },
    /** The Ed25519 signature, 64 bytes in hex. */
    signature: { type: 'string', pattern: '^[0-9a-f]{128}$' },
  },
  additionalProperties: false,
} as const;

const rolloutBody = {
  type: 'object',
  required: ['imageId', 'target', 'stages', 'maxFailureRate'],
  properties: {
    imageId: { type: 'integer', minimum: 1 },
    target: meterTargetSchema,
    stages: {
      type: 'array',
      minItems: 1,
      maxItems: 20,
      description: 'cumulative percentages of the target, rising, ending at 100 (e.g. [10, 50, 100])',
      items: { type: 'integer', minimum: 1, maximum: 100 },
    },
    maxFailureRate: {
      type: 'number',
      minimum: 0,
      maximum: 1,
      description: "a stage whose failed meters' share passes this halts the rollout",
    },
  },
  additionalProperties: false,
} as const;

const actionBody = {
  type: 'object',
  properties: { reason: { type: 'string', maxLength: 200 } },
  additionalProperties: false,
} as const;

const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'integer', minimum: 1 } },
} as const;

const imageView = object({
  id: { type: 'integer' },
  version: { type: 'integer' },
  target: { type: 'string' },
  length: { type: 'integer' },
  sha256: { type: 'string' },
  notes: { type: 'string' },
  uploadedBy: { type: 'string' },
  uploadedAt: time,
});

const rolloutView = object({
  id: { type: 'integer' },
  imageId: { type: 'integer' },
  target: { type: 'string' },
  state: { type: 'string', enum: ['running', 'paused', 'halted', 'aborted', 'done'] },
  stage: { type: 'integer' },
  stages: { type: 'integer' },
  maxFailureRate: { type: 'number' },
  reason: { type: 'string' },
  meters: {
    type: 'array',
    items: object({
      meterId: { type: 'integer' },
      stage: { type: 'integer' },
      state: { type: 'string' },
      offset: { type: 'integer' },
      reason: { type: 'string' },
    }),
  },
  events: {
    type: 'array',
    items: object({
      at: time,
      meterId: { type: 'integer', nullable: true },
      event: { type: 'string' },
      detail: { type: 'string' },
    }),
  },
});

const meterView = object({
  meterId: { type: 'integer' },
  rolloutId: { type: 'integer' },
  state: { type: 'string' },
  version: { type: 'integer' },
  offset: { type: 'integer' },
  reason: { type: 'string' },
  reportedAt: time,
  history: {
    type: 'array',
    items: object({
      at: time,
      rolloutId: { type: 'integer' },
      event: { type: 'string' },
      detail: { type: 'string' },
    }),
  },
});

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
      schema: {
        summary: 'Register a signed firmware image (stored only when the release signature verifies)',
        body: uploadBody,
        response: { 201: imageView, ...errorResponses(400, 401, 403, 409, 422, 503) },
      },
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
          target: `${image.target} v${image.version}`,
          detail: { id: image.id, version: image.version, target: image.target, sha256: image.sha256 },
        });
        return reply.code(201).send(image);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.get(
    '/api/firmware/images',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'The registered firmware images',
        response: {
          200: object({ images: { type: 'array', items: imageView } }),
          ...errorResponses(401, 403),
        },
      },
    },
    async () => ({ images: await service.images() }),
  );

  app.post<{ Body: { imageId: number; target: MeterTarget; stages: number[]; maxFailureRate: number } }>(
    '/api/firmware/rollouts',
    {
      onRequest: guard.requireRole('supervisor'),
      schema: {
        summary: 'Roll an image out to listed meters, an area or the fleet, in stages',
        body: rolloutBody,
        response: {
          201: object({ id: { type: 'integer' }, meters: { type: 'integer' } }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      try {
        const created = await service.createRollout({
          ...request.body,
          by: request.operator?.username ?? '',
        });
        await guard.audit(request, {
          action: 'firmware.rollout',
          target: describeTarget(request.body.target),
          detail: {
            id: created.id,
            imageId: request.body.imageId,
            meters: created.meters,
            stages: request.body.stages,
            maxFailureRate: request.body.maxFailureRate,
          },
        });
        return reply.code(201).send(created);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  for (const action of ['pause', 'resume', 'abort'] as const) {
    app.post<{ Params: { id: number }; Body: { reason?: string } | undefined }>(
      `/api/firmware/rollouts/:id/${action}`,
      {
        onRequest: guard.requireRole('supervisor'),
        schema: {
          summary: `${action[0].toUpperCase()}${action.slice(1)} a rollout`,
          params: idParams,
          body: actionBody,
          response: { 200: rolloutView, ...errorResponses(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        try {
          await service[action](request.params.id);
          await guard.audit(request, {
            action: `firmware.${action}`,
            target: `rollout ${request.params.id}`,
            detail: { id: request.params.id, reason: request.body?.reason ?? '' },
          });
          return reply.send(await service.rollout(request.params.id));
        } catch (error) {
          return sendRefusal(reply, error);
        }
      },
    );
  }

  app.get<{ Params: { id: number } }>(
    '/api/firmware/rollouts/:id',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: "A rollout's state, each meter's update state and the history",
        params: idParams,
        response: { 200: rolloutView, ...errorResponses(401, 403, 404) },
      },
    },
    async (request, reply) => {
      try {
        return reply.send(await service.rollout(request.params.id));
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.get<{ Params: { id: number } }>(
    '/api/meters/:id/firmware',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: "A meter's last reported update state (0x07) and its history across rollouts",
        params: meterIdParams,
        response: { 200: meterView, ...errorResponses(401, 403, 404) },
      },
    },
    async (request, reply) => {
      try {
        return reply.send(await service.meterFirmware(request.params.id));
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );
};
