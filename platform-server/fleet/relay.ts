// Zigbee relay assignments: the slaves whose frames a master meter carries (protocol/relay.ts). The
// embedded broker asks slavesOf() on every publish and subscription of a meter, so the answer is
// held in memory and written through to relay_assignments.
//
//   PUT /api/meters/:id/relay-slaves  body { slaves: [id, …] } → 200 { meterId, slaves } (admin; audited)
//   GET /api/meters/:id/relay-slaves  → 200 { meterId, slaves } (operator)
import type { FastifyPluginAsync } from 'fastify';
import type { Database } from '../core/db';
import { errorResponses, sendError } from '../core/errors';
import { meterIdParams, object } from '../core/schemas';
import type { MeterDirectory } from '../ingest/meters';
import type { OperatorGuard } from '../operators/service';

const NONE: readonly number[] = Object.freeze([]);

export class RelayAssignments {
  #slaves = new Map<number, readonly number[]>();

  constructor(private readonly db: Database) {}

  /** Reads every assignment (at start). */
  async load(): Promise<void> {
    const rows = await this.db.query<{ master_id: string; slave_id: string }>(
      'SELECT master_id::text, slave_id::text FROM relay_assignments ORDER BY master_id, slave_id',
    );
    const slaves = new Map<number, number[]>();
    for (const row of rows.rows) {
      const master = Number(row.master_id);
      slaves.set(master, [...(slaves.get(master) ?? []), Number(row.slave_id)]);
    }
    this.#slaves = new Map([...slaves].map(([m, s]) => [m, Object.freeze(s)]));
  }

  /** The slaves `masterId` relays for (none unless assigned). */
  slavesOf(masterId: number): readonly number[] {
    return this.#slaves.get(masterId) ?? NONE;
  }

  /** Makes `slaves` the master's slaves; a slave another master had moves to this one. */
  async assign(masterId: number, slaves: readonly number[]): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('DELETE FROM relay_assignments WHERE master_id = $1', [masterId]);
      for (const slave of slaves)
        await tx.query(
          `INSERT INTO relay_assignments (slave_id, master_id) VALUES ($1, $2)
           ON CONFLICT (slave_id) DO UPDATE SET master_id = $2, assigned_at = now()`,
          [slave, masterId],
        );
    });
    await this.load();
  }
}

export interface RelayRoutesOptions {
  relays: RelayAssignments;
  meters: Pick<MeterDirectory, 'exists'>;
  guard: OperatorGuard;
}

const slavesBody = {
  type: 'object',
  required: ['slaves'],
  properties: {
    slaves: {
      type: 'array',
      maxItems: 64,
      uniqueItems: true,
      items: { type: 'integer', minimum: 0, maximum: 0xffffffff },
    },
  },
  additionalProperties: false,
} as const;

const assignment = object({
  meterId: { type: 'integer' },
  slaves: { type: 'array', items: { type: 'integer' } },
});

export const relayRoutes: FastifyPluginAsync<RelayRoutesOptions> = async (app, { relays, meters, guard }) => {
  app.get<{ Params: { id: number } }>(
    '/api/meters/:id/relay-slaves',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: 'The slave meters whose sealed frames this meter relays over Zigbee',
        params: meterIdParams,
        response: { 200: assignment, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      if (!(await meters.exists(id))) return sendError(reply, 404, 'unknown-meter', `no meter ${id}`);
      return { meterId: id, slaves: [...relays.slavesOf(id)] };
    },
  );

  app.put<{ Params: { id: number }; Body: { slaves: number[] } }>(
    '/api/meters/:id/relay-slaves',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary: 'Sets the slave meters this meter relays for (the broker then lets it use their topics)',
        params: meterIdParams,
        body: slavesBody,
        response: { 200: assignment, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      if (!(await meters.exists(id))) return sendError(reply, 404, 'unknown-meter', `no meter ${id}`);
      const slaves = request.body.slaves;
      if (slaves.includes(id))
        return sendError(reply, 400, 'bad-relay', 'a meter cannot relay for itself', 'slaves');
      for (const slave of slaves)
        if (!(await meters.exists(slave)))
          return sendError(reply, 404, 'unknown-meter', `no meter ${slave}`, 'slaves');
      await relays.assign(id, slaves);
      await guard.audit(request, { action: 'meter.relay-slaves', meterId: id, detail: { slaves } });
      return { meterId: id, slaves: [...relays.slavesOf(id)] };
    },
  );
};
