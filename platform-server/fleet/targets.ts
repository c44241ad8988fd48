// Which meters a push or a rollout addresses: listed meters, every meter of an area, or the whole
// fleet. One shape and one resolver, so the rooms that push (tariffs, messages, parameters,
// blacklists, firmware) agree on what "an area" means; the area of a meter is set here too.
import type { FastifyPluginAsync } from 'fastify';
import type { Queryable } from '../core/db';
import { errorResponses, RequestRefused, sendError } from '../core/errors';
import { meterIdParams, object, u32 } from '../core/schemas';
import type { OperatorGuard } from '../operators/service';

export type MeterTarget = { meters: readonly number[] } | { area: string } | { fleet: true };

const areaName = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[^\\u0000-\\u001f]+$' } as const;

/** JSON schema of a MeterTarget, for request bodies. */
export const meterTargetSchema = {
  oneOf: [
    {
      type: 'object',
      required: ['meters'],
      properties: { meters: { type: 'array', minItems: 1, maxItems: 10_000, uniqueItems: true, items: u32 } },
      additionalProperties: false,
    },
    { type: 'object', required: ['area'], properties: { area: areaName }, additionalProperties: false },
    {
      type: 'object',
      required: ['fleet'],
      properties: { fleet: { type: 'boolean', const: true } },
      additionalProperties: false,
    },
  ],
} as const;

/** The body of a question about a target, `{ target? }`: without one, the fleet. */
export const optionalTargetBodySchema = {
  type: 'object',
  properties: { target: meterTargetSchema },
  additionalProperties: false,
} as const;

/** The body of a push to a target: `{ target }`. */
export const targetBodySchema = {
  type: 'object',
  required: ['target'],
  properties: { target: meterTargetSchema },
  additionalProperties: false,
} as const;

/** Each meter a push went to: the sequence number of its downlink, or why none was sent. */
export const pushedMetersSchema = {
  type: 'array',
  items: {
    type: 'object',
    properties: {
      meterId: { type: 'integer' },
      downlinkSeq: { type: 'integer' },
      error: { type: 'string' },
    },
  },
} as const;

/** A target naming meters that are not registered. */
export class UnknownMetersError extends RequestRefused {
  override readonly name: string = 'UnknownMetersError';
  constructor(readonly meterIds: readonly number[]) {
    super(404, 'unknown-meter', `no meter ${meterIds.join(', ')}`, 'target');
  }
}

/**
 * The registered meters a target addresses, in id order. Listed meters must all exist (a typo
 * should not silently shrink a rollout); an area with no meters resolves to none.
 */
export async function resolveTarget(db: Queryable, target: MeterTarget): Promise<number[]> {
  if ('meters' in target) {
    const wanted = [...new Set(target.meters)].sort((a, b) => a - b);
    const { rows } = await db.query<{ id: number }>('SELECT id FROM meters WHERE id = ANY($1::bigint[])', [
      wanted,
    ]);
    const found = new Set(rows.map((r) => Number(r.id)));
    const missing = wanted.filter((id) => !found.has(id));
    if (missing.length > 0) throw new UnknownMetersError(missing);
    return wanted;
  }
  const { rows } =
    'area' in target
      ? await db.query<{ id: number }>('SELECT id FROM meters WHERE area = $1 ORDER BY id', [target.area])
      : await db.query<{ id: number }>('SELECT id FROM meters ORDER BY id');
  return rows.map((r) => Number(r.id));
}

/** The target as an audit log or a stored push describes it. */
export function describeTarget(target: MeterTarget): string {
  if ('meters' in target) return `meters ${target.meters.join(',')}`;
  return 'area' in target ? `area ${target.area}` : 'fleet';
}

export interface AreaRoutesOptions {
  db: Queryable;
  meters: { exists(id: number): Promise<boolean> };
  guard: OperatorGuard;
}

const areaView = object({ area: { type: 'string' }, meters: { type: 'integer' } });

/** GET /api/areas (viewers) and PUT /api/meters/:id/area (admins). */
export const areaRoutes: FastifyPluginAsync<AreaRoutesOptions> = async (app, { db, meters, guard }) => {
  app.get(
    '/api/areas',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'The areas meters are placed in, with how many meters each holds',
        response: { 200: object({ areas: { type: 'array', items: areaView } }), ...errorResponses(401, 403) },
      },
    },
    async () => {
      const { rows } = await db.query<{ area: string; meters: number }>(
        'SELECT area, count(*)::int AS meters FROM meters WHERE area IS NOT NULL GROUP BY area ORDER BY area',
      );
      return { areas: rows.map((r) => ({ area: r.area, meters: Number(r.meters) })) };
    },
  );

  app.put<{ Params: { id: number }; Body: { area: string | null } }>(
    '/api/meters/:id/area',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary: 'Places a meter in an area (null takes it out of any area)',
        params: meterIdParams,
        body: {
          type: 'object',
          required: ['area'],
          properties: { area: { ...areaName, nullable: true } },
          additionalProperties: false,
        },
        response: {
          200: object({ meterId: { type: 'integer' }, area: { type: 'string', nullable: true } }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      if (!(await meters.exists(id))) return sendError(reply, 404, 'unknown-meter', `no meter ${id}`);
      const area = request.body.area;
      await db.query('UPDATE meters SET area = $2 WHERE id = $1', [id, area]);
      await guard.audit(request, { action: 'meter.area', meterId: id, detail: { area } });
      return { meterId: id, area };
    },
  );
};
