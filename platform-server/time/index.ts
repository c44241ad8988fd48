// The time room: answers each meter's time request (uplink 0x08) with the platform's time (downlink
// 0x88, protocol/time.ts), and keeps what the request said of the meter's clock for the API:
//
//   GET /api/meters/:id/clock    the meter's clock as its last time request showed it (viewer)
//
// The request reaches the handler only through the ingest gate (sealed, the meter's key, its
// uplink window), so a forged or replayed request is never answered; the answer is sealed under the
// meter's key D and passes the meter's downlink window.
import type { FastifyInstance } from 'fastify';
import type { Database, Queryable } from '../core/db';
import { errorResponses, sendError } from '../core/errors';
import { meterIdParams, nullableTime, object } from '../core/schemas';
import type { UplinkHandler } from '../ingest/gate';
import type { MeterDirectory } from '../ingest/meters';
import type { OperatorGuard } from '../operators/service';
import {
  decodeTimeRequest,
  encodeTimeAnswer,
  TIME_ANSWER_DOWNLINK,
  TIME_REQUEST_UPLINK,
  TIME_STATE_NAMES,
  type TimeState,
} from '../../protocol/time';

export interface MeterClockView {
  meterId: number;
  /** What the meter reported: unset (never set since it started), synced or holdover. */
  state: 'unset' | 'synced' | 'holdover';
  synced: boolean;
  /** The source and offset (ms) of its last correction, when it last synchronised, its drift (ppm). */
  source: string | null;
  lastOffsetMs: number | null;
  lastSyncAt: string | null;
  driftPpm: number | null;
  /** The platform's clock when it took the last request, and the meter's when it sent it. */
  requestedAt: string;
  meterTime: string;
  /** Platform minus meter at the request, transit time included (the meter computes the exact offset). */
  apparentOffsetMs: number;
  answeredAt: string | null;
  requests: number;
}

interface ClockRow {
  meter_id: number;
  requested_at: Date;
  meter_time_ms: number;
  apparent_offset_ms: number;
  state: number;
  source: string | null;
  last_offset_ms: number | null;
  synced_at: Date | null;
  drift_tenths_ppm: number | null;
  requests: number;
  answered_at: Date | null;
}

export interface TimeDeps {
  db: Database;
  sendDownlink: (meterId: number, type: number, body: Uint8Array) => Promise<number>;
  /** The platform's clock, epoch ms (Date.now; a test's clock). */
  now?: () => number;
  logger?: { warn(obj: object, msg?: string): void };
}

export class MeterClocks {
  readonly #deps: TimeDeps;
  readonly #now: () => number;

  constructor(deps: TimeDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
  }

  /** The 0x08 route: records the meter's clock, then (after the commit) seals and sends the answer. */
  onRequest: UplinkHandler = async ({ meterId, body }, tx: Queryable) => {
    const t2 = this.#now();
    const request = decodeTimeRequest(body);
    await tx.query(
      `INSERT INTO meter_clocks (meter_id, requested_at, meter_time_ms, apparent_offset_ms, state, source,
                                 last_offset_ms, synced_at, drift_tenths_ppm)
       VALUES ($1, to_timestamp($2::float8 / 1000), $3, $4, $5, $6, $7, to_timestamp($8::float8), $9)
       ON CONFLICT (meter_id) DO UPDATE SET requested_at = EXCLUDED.requested_at,
         meter_time_ms = EXCLUDED.meter_time_ms, apparent_offset_ms = EXCLUDED.apparent_offset_ms,
         state = EXCLUDED.state, source = EXCLUDED.source, last_offset_ms = EXCLUDED.last_offset_ms,
         synced_at = EXCLUDED.synced_at, drift_tenths_ppm = EXCLUDED.drift_tenths_ppm,
         requests = meter_clocks.requests + 1`,
      [
        meterId,
        t2,
        request.t1,
        t2 - request.t1,
        request.state,
        request.source ?? null,
        request.offsetMs ?? null,
        request.syncedAt ?? null,
        request.driftTenthsPpm ?? null,
      ],
    );
    return async () => {
      const t3 = this.#now();
      try {
        await this.#deps.sendDownlink(
          meterId,
          TIME_ANSWER_DOWNLINK,
          encodeTimeAnswer({ id: request.id, t1: request.t1, t2, t3 }),
        );
        await this.#deps.db.query('UPDATE meter_clocks SET answered_at = now() WHERE meter_id = $1', [
          meterId,
        ]);
      } catch (error) {
        // The meter asks again when no answer comes; nothing is lost.
        this.#deps.logger?.warn({ err: error, meterId }, 'time answer not sent');
      }
    };
  };

  async clockOf(meterId: number): Promise<MeterClockView | null> {
    const row = (
      await this.#deps.db.query<ClockRow>('SELECT * FROM meter_clocks WHERE meter_id = $1', [meterId])
    ).rows[0];
    if (!row) return null;
    const state = TIME_STATE_NAMES[row.state as TimeState];
    return {
      meterId,
      state,
      synced: state === 'synced',
      source: row.source,
      lastOffsetMs: row.last_offset_ms === null ? null : Number(row.last_offset_ms),
      lastSyncAt: row.synced_at?.toISOString() ?? null,
      driftPpm: row.drift_tenths_ppm === null ? null : row.drift_tenths_ppm / 10,
      requestedAt: row.requested_at.toISOString(),
      meterTime: new Date(Number(row.meter_time_ms)).toISOString(),
      apparentOffsetMs: Number(row.apparent_offset_ms),
      answeredAt: row.answered_at?.toISOString() ?? null,
      requests: Number(row.requests),
    };
  }
}

export const clockSchema = object(
  {
    meterId: { type: 'integer' },
    state: { type: 'string', enum: ['unset', 'synced', 'holdover'] },
    synced: { type: 'boolean' },
    source: { type: 'string', nullable: true },
    lastOffsetMs: { type: 'integer', nullable: true },
    lastSyncAt: nullableTime,
    driftPpm: { type: 'number', nullable: true },
    requestedAt: { type: 'string', format: 'date-time' },
    meterTime: { type: 'string', format: 'date-time' },
    apparentOffsetMs: { type: 'integer' },
    answeredAt: nullableTime,
    requests: { type: 'integer' },
  },
  ['meterId', 'state', 'synced', 'requestedAt'],
);

/** Routes 0x08 to the service and registers GET /api/meters/:id/clock. */
export async function startTime(
  app: FastifyInstance,
  deps: TimeDeps & {
    ingest: { route(type: number, handler: UplinkHandler): void };
    meters: Pick<MeterDirectory, 'exists'>;
    guard: OperatorGuard;
  },
): Promise<MeterClocks> {
  const clocks = new MeterClocks(deps);
  deps.ingest.route(TIME_REQUEST_UPLINK, clocks.onRequest);
  app.get<{ Params: { id: number } }>(
    '/api/meters/:id/clock',
    {
      onRequest: deps.guard.requireRole('viewer'),
      schema: {
        summary: "A meter's clock as its last time request showed it: state, last sync, offset, drift",
        params: meterIdParams,
        response: { 200: clockSchema, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      if (!(await deps.meters.exists(id))) return sendError(reply, 404, 'unknown-meter', `no meter ${id}`);
      const clock = await clocks.clockOf(id);
      if (!clock) return sendError(reply, 404, 'no-clock', `meter ${id} has not asked for the time`);
      return clock;
    },
  );
  return clocks;
}
