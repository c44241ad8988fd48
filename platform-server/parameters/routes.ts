// The operating parameters' HTTP API:
//
//   POST /api/parameter-sets                  body: { values, note? }   → 201 the set with its version | 400 naming the value
//   GET  /api/parameter-sets/latest           the latest set
//   GET  /api/parameter-sets/:version         one set
//   POST /api/parameter-sets/:version/push    body: { target }          → 202 { version, meters: [{ meterId, downlinkSeq | error }] }
//   GET  /api/meters/:id/parameters           pushed, applied (and local change), values in force, last refusal
//   POST /api/parameter-sets/behind           body: { target? }         → meters not running the latest set
//
// Reading needs the viewer role; defining and pushing the admin role (a set reaches links and
// endpoints, so a wrong one can cut meters off). Defining and pushing are audited.
import type { FastifyPluginAsync } from 'fastify';
import { PARAMETER_RULES } from '../../protocol/parameters';
import { errorResponses, sendError, sendRefusal } from '../core/errors';
import { meterIdParams, object, u32 } from '../core/schemas';
import {
  describeTarget,
  type MeterTarget,
  pushedMetersSchema,
  targetBodySchema,
  optionalTargetBodySchema,
} from '../fleet/targets';
import type { OperatorGuard } from '../operators/service';
import type { ParameterService } from './service';

export interface ParameterRoutesOptions {
  service: ParameterService;
  guard: OperatorGuard;
}

const valuesSchema = {
  type: 'object',
  description: `operating parameters, each optional: ${Object.keys(PARAMETER_RULES).join(', ')} (protocol/parameters.ts gives the ranges)`,
  additionalProperties: true,
} as const;

const setSchema = object({
  version: { type: 'integer' },
  values: valuesSchema,
  note: { type: 'string', nullable: true },
  createdBy: { type: 'string' },
});

const meterView = {
  type: 'object',
  additionalProperties: false,
  properties: {
    meterId: { type: 'integer' },
    pushedVersion: { type: 'integer', nullable: true },
    appliedVersion: { type: 'integer', nullable: true },
    localChange: { type: 'boolean' },
    values: { ...valuesSchema, nullable: true },
    refused: {
      type: 'object',
      nullable: true,
      properties: { version: { type: 'integer' }, why: { type: 'string', nullable: true } },
    },
  },
} as const;

const versionParams = {
  type: 'object',
  properties: { version: { ...u32, minimum: 1 } },
  required: ['version'],
} as const;

export const parameterRoutes: FastifyPluginAsync<ParameterRoutesOptions> = async (
  app,
  { service, guard },
) => {
  app.post<{ Body: { values: unknown; note?: string } }>(
    '/api/parameter-sets',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary: 'Define a parameter set (checked whole; 400 names the value out of range)',
        body: {
          type: 'object',
          required: ['values'],
          properties: { values: valuesSchema, note: { type: 'string', maxLength: 200 } },
          additionalProperties: false,
        },
        response: { 201: setSchema, ...errorResponses(400, 401, 403) },
      },
    },
    async (request, reply) => {
      try {
        const who = request.operator?.username ?? 'unknown';
        const set = await service.define(request.body.values, who, request.body.note);
        await guard.audit(request, {
          action: 'parameters.define',
          target: `v${set.version}`,
          detail: { values: set.values },
        });
        return reply.code(201).send(set);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.get(
    '/api/parameter-sets/latest',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'The latest parameter set',
        response: { 200: setSchema, ...errorResponses(401, 403, 404) },
      },
    },
    async (_request, reply) =>
      (await service.get()) ?? sendError(reply, 404, 'unknown-parameter-set', 'no parameter set defined'),
  );

  app.get<{ Params: { version: number } }>(
    '/api/parameter-sets/:version',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'One parameter set',
        params: versionParams,
        response: { 200: setSchema, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) =>
      (await service.get(request.params.version)) ??
      sendError(reply, 404, 'unknown-parameter-set', `no parameter set ${request.params.version}`),
  );

  app.post<{ Params: { version: number }; Body: { target: MeterTarget } }>(
    '/api/parameter-sets/:version/push',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary: 'Push a parameter set (0x89) to listed meters, an area or the fleet',
        params: versionParams,
        body: targetBodySchema,
        response: {
          202: object({
            version: { type: 'integer' },
            meters: pushedMetersSchema,
          }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      try {
        const outcome = await service.push(request.params.version, request.body.target);
        await guard.audit(request, {
          action: 'parameters.push',
          target: describeTarget(request.body.target),
          detail: { version: outcome.version, meters: outcome.meters.length },
        });
        return reply.code(202).send(outcome);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.post<{ Body: { target?: MeterTarget } }>(
    '/api/parameter-sets/behind',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary:
          'Meters of a target (default the fleet) not running the latest set, or changed locally since',
        body: optionalTargetBodySchema,
        response: {
          200: object({
            latest: { type: 'integer', nullable: true },
            meters: { type: 'array', items: meterView },
          }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      try {
        return await service.behind(request.body?.target);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.get<{ Params: { id: number } }>(
    '/api/meters/:id/parameters',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary:
          'The parameter set pushed to a meter, the one it runs (and whether changed locally), its last refusal',
        params: meterIdParams,
        response: { 200: meterView, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) =>
      (await service.ofMeter(request.params.id)) ??
      sendError(reply, 404, 'no-parameters', 'no parameter set pushed to or reported by this meter'),
  );
};
