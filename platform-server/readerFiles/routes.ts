// The reader files' HTTP API (414d):
//
//   POST /api/reader-files                          body: { name, kind, version, content (base64), signature? (hex), note? } → 201
//   GET  /api/reader-files                          every file stored, each name's versions newest first
//   GET  /api/reader-files/:name/:version           one file (without its content)
//   POST /api/reader-files/:name/:version/push      body: { target }   → 202 { name, version, meters: [{ meterId, downlinkSeq | error }] }
//   POST /api/reader-files/stale                    body: { target? }  → meters not holding the latest version of a file pushed to them
//   GET  /api/meters/:id/reader-files               what the meter reports holding, each delivery's state
//
// Reading needs the viewer role; uploading and pushing the admin role (reader firmware and settings
// can stop a meter's reader). Uploading and pushing are audited.
import type { FastifyPluginAsync } from 'fastify';
import { MAX_READER_FILE, READER_FILE_KINDS } from '../../protocol/readerFiles';
import { errorResponses, sendError, sendRefusal } from '../core/errors';
import { meterIdParams, nullableTime, object, time, u32 } from '../core/schemas';
import {
  describeTarget,
  type MeterTarget,
  pushedMetersSchema,
  targetBodySchema,
  optionalTargetBodySchema,
} from '../fleet/targets';
import type { OperatorGuard } from '../operators/service';
import type { ReaderFileService } from './service';

export interface ReaderFileRoutesOptions {
  service: ReaderFileService;
  guard: OperatorGuard;
}

const NAME = '^[a-z0-9][a-z0-9._-]{0,31}$';
/** Base64 of MAX_READER_FILE bytes. */
const MAX_BASE64 = Math.ceil(MAX_READER_FILE / 3) * 4;

const fileSchema = object({
  name: { type: 'string' },
  kind: { type: 'string', enum: [...READER_FILE_KINDS] },
  version: { type: 'integer' },
  length: { type: 'integer' },
  sha256: { type: 'string', description: 'SHA-256 of the content, hex' },
  signed: { type: 'boolean' },
  note: { type: 'string', nullable: true },
  uploadedBy: { type: 'string' },
  uploadedAt: time,
});

const heldSchema = {
  type: 'array',
  items: object({
    name: { type: 'string' },
    kind: { type: 'string', enum: [...READER_FILE_KINDS] },
    version: { type: 'integer' },
  }),
} as const;

const meterView = object({
  meterId: { type: 'integer' },
  held: { ...heldSchema, nullable: true },
  reportedAt: nullableTime,
  deliveries: {
    type: 'array',
    items: object({
      name: { type: 'string' },
      version: { type: 'integer' },
      state: { type: 'string', enum: ['offered', 'downloading', 'held', 'refused'] },
      nextOffset: { type: 'integer' },
      why: { type: 'string', nullable: true },
      pushedAt: time,
      updatedAt: time,
    }),
  },
});

const fileParams = {
  type: 'object',
  properties: { name: { type: 'string', pattern: NAME }, version: { ...u32, minimum: 1 } },
  required: ['name', 'version'],
} as const;

export const readerFileRoutes: FastifyPluginAsync<ReaderFileRoutesOptions> = async (
  app,
  { service, guard },
) => {
  app.post<{
    Body: { name: string; kind: string; version: number; content: string; signature?: string; note?: string };
  }>(
    '/api/reader-files',
    {
      onRequest: guard.requireRole('admin'),
      bodyLimit: MAX_BASE64 + 64 * 1024,
      schema: {
        summary:
          'Upload a reader file (document, settings or reader firmware; reader firmware with the release key signature, checked)',
        body: {
          type: 'object',
          required: ['name', 'kind', 'version', 'content'],
          properties: {
            name: { type: 'string', pattern: NAME },
            kind: { type: 'string', enum: [...READER_FILE_KINDS] },
            version: { ...u32, minimum: 1 },
            content: {
              type: 'string',
              contentEncoding: 'base64',
              pattern: '^[A-Za-z0-9+/]*={0,2}$',
              minLength: 4,
              maxLength: MAX_BASE64,
            },
            signature: {
              type: 'string',
              pattern: '^[0-9a-f]{128}$',
              description: 'Ed25519 by the release key, hex (reader firmware only)',
            },
            note: { type: 'string', maxLength: 200 },
          },
          additionalProperties: false,
        },
        response: { 201: fileSchema, ...errorResponses(400, 401, 403, 409, 413, 422) },
      },
    },
    async (request, reply) => {
      const b = request.body;
      try {
        const file = await service.upload({
          name: b.name,
          kind: b.kind,
          version: b.version,
          content: new Uint8Array(Buffer.from(b.content, 'base64')),
          ...(b.signature ? { signature: new Uint8Array(Buffer.from(b.signature, 'hex')) } : {}),
          note: b.note,
          by: request.operator?.username ?? 'unknown',
        });
        await guard.audit(request, {
          action: 'reader-files.upload',
          target: `${file.name} v${file.version}`,
          detail: { kind: file.kind, length: file.length, sha256: file.sha256 },
        });
        return reply.code(201).send(file);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.get(
    '/api/reader-files',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'Every reader file stored, each name with its versions newest first',
        response: {
          200: object({ files: { type: 'array', items: fileSchema } }),
          ...errorResponses(401, 403),
        },
      },
    },
    async () => ({ files: await service.list() }),
  );

  app.get<{ Params: { name: string; version: number } }>(
    '/api/reader-files/:name/:version',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'One reader file (its description, not its content)',
        params: fileParams,
        response: { 200: fileSchema, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) =>
      (await service.get(request.params.name, request.params.version)) ??
      sendError(
        reply,
        404,
        'unknown-reader-file',
        `no reader file ${request.params.name} version ${request.params.version}`,
      ),
  );

  app.post<{ Params: { name: string; version: number }; Body: { target: MeterTarget } }>(
    '/api/reader-files/:name/:version/push',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary:
          'Push a reader file (0x8B offer, then chunks as each meter asks) to listed meters, an area or the fleet',
        params: fileParams,
        body: targetBodySchema,
        response: {
          202: object({
            name: { type: 'string' },
            version: { type: 'integer' },
            meters: pushedMetersSchema,
          }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      try {
        const { name, version } = request.params;
        const outcome = await service.push(name, version, request.body.target);
        await guard.audit(request, {
          action: 'reader-files.push',
          target: describeTarget(request.body.target),
          detail: { name, version, meters: outcome.meters.length },
        });
        return reply.code(202).send(outcome);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.post<{ Body: { target?: MeterTarget } }>(
    '/api/reader-files/stale',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary:
          'Meters of a target (default the fleet) not reporting the latest version of a reader file pushed to them',
        body: optionalTargetBodySchema,
        response: {
          200: object({
            meters: {
              type: 'array',
              items: object({
                meterId: { type: 'integer' },
                reportedAt: nullableTime,
                behind: {
                  type: 'array',
                  items: object({
                    name: { type: 'string' },
                    latest: { type: 'integer' },
                    held: { type: 'integer', nullable: true },
                  }),
                },
              }),
            },
          }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      try {
        return await service.stale(request.body?.target);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.get<{ Params: { id: number } }>(
    '/api/meters/:id/reader-files',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'The reader files a meter reports holding and the state of each file pushed to it',
        params: meterIdParams,
        response: { 200: meterView, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) =>
      (await service.ofMeter(request.params.id)) ??
      sendError(reply, 404, 'no-reader-files', 'no reader file pushed to or reported by this meter'),
  );
};
