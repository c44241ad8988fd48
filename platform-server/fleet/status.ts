// Meter status on the platform: ingest's route for uplink frames 0x04 (status reports and
// guard / power / monitor events), stored per meter; the settings downlink 0x84; and the HTTP side.
//
//   GET  /api/meters/:id/status    battery, sensors, module states, faults, fan, occupancy per bay, open alarms
//   GET  /api/meters/:id/alarms    alarms (alarm, warning, fault events) newest first, with time and state
//   POST /api/meters/:id/settings  body: GuardSettings → 202 { version, downlinkSeq } | 400 naming the field
// Reading needs the viewer role, settings the operator role.
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { Crypto } from '../../hal/crypto';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { ProtocolError } from '../../protocol/errors';
import { decodeHeader, openFrame } from '../../protocol/frame';
import type { OperatorGuard } from '../operators/service';
import {
  decodeSettings,
  decodeStatusMessage,
  encodeSettings,
  type GuardSettings,
  SETTINGS_FRAME,
  STATUS_FRAME,
  type StatusMessage,
} from '../../protocol/status';
import { meterIdOfTopic } from '../../protocol/topics';
import type { Database } from '../core/db';
import type { Logger } from '../ingest/gate';
import { frameKeys, type Keystore } from '../keys/keystore';
import { errorResponses, sendError } from '../core/errors';
import { meterIdParams, nullableTime, object, time } from '../core/schemas';
import type { MeterDirectory } from '../ingest/meters';

export { STATUS_FRAME };

export interface StatusDeps {
  db: Database;
  meters: Pick<MeterDirectory, 'exists' | 'epochs' | 'acceptUplinkFrame' | 'recordRefusal'>;
  keystore: Keystore;
  logger: Logger;
  /** Seals and publishes a downlink (Ingest.sendDownlink); returns its sequence number. */
  sendDownlink(meterId: number, type: number, body: Uint8Array): Promise<number>;
  crypto?: Crypto;
}

export type StatusOutcome =
  | { ok: true; meterId: number; frameSeq: number; message: StatusMessage }
  | { ok: false; reason: string; detail: string; meterId?: number; frameSeq?: number };

class Refused extends Error {
  constructor(
    readonly reason: string,
    readonly detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

const seconds = (s: number) => new Date(s * 1000);

export class StatusService {
  readonly #d: StatusDeps;
  readonly #crypto: Crypto;

  constructor(deps: StatusDeps) {
    this.#d = deps;
    this.#crypto = deps.crypto ?? nobleCrypto;
  }

  /** Ingest route for 0x04: authenticates, refuses replays, stores. Never throws. */
  onUplink = async (topic: string, frame: Uint8Array): Promise<void> => {
    await this.handle(topic, frame);
  };

  async handle(topic: string, frame: Uint8Array): Promise<StatusOutcome> {
    let meterId: number | undefined;
    let frameSeq: number | undefined;
    try {
      const header = decodeHeader(frame);
      frameSeq = header.seq;
      meterId = /\/up$/.test(topic) ? meterIdOfTopic(topic) : undefined;
      if (meterId === undefined) throw new Refused('bad-topic', `${topic} is not a meter uplink topic`);
      if (header.type !== STATUS_FRAME)
        throw new Refused('bad-type', `frame type 0x${header.type.toString(16)}`);
      if (header.meterId !== meterId)
        throw new Refused('topic-mismatch', `topic ${meterId}, header ${header.meterId}`);
      const epochs = await this.#d.meters.epochs(meterId);
      if (!epochs) throw new Refused('unknown-meter', `meter ${meterId} is not provisioned`);
      const epoch = epochs.current;
      if (header.epoch !== epoch)
        throw new Refused('stale-epoch', `frame epoch ${header.epoch}, meter's ${epoch}`);
      const keys = frameKeys(this.#d.keystore, meterId, epoch);
      keys.downlink.fill(0);
      let body: Uint8Array;
      try {
        body = openFrame(this.#crypto, keys.uplink, frame).body;
      } finally {
        keys.uplink.fill(0);
      }
      const message = decodeStatusMessage(body);
      const id = meterId;
      await this.#d.db.transaction(async (tx) => {
        // The meter numbers all its uplinks in one sequence: one window for every frame type.
        try {
          await this.#d.meters.acceptUplinkFrame(tx, id, header.seq);
        } catch (error) {
          if (error instanceof ProtocolError && error.code === 'replay')
            throw new Refused('replay', error.message);
          throw error;
        }
        if (message.kind === 'status') {
          const m = message;
          await tx.query(
            `INSERT INTO meter_status (meter_id, reported_at, received_at, battery, sensors, modules, faults, fan, settings_version)
             VALUES ($1, $2, now(), $3::jsonb, $4::jsonb, $5::jsonb, $6::jsonb, $7, $8)
             ON CONFLICT (meter_id) DO UPDATE SET reported_at = $2, received_at = now(), battery = $3::jsonb,
               sensors = $4::jsonb, modules = $5::jsonb, faults = $6::jsonb, fan = $7, settings_version = $8
             WHERE meter_status.reported_at <= $2`,
            [
              id,
              seconds(m.at),
              JSON.stringify(m.battery),
              JSON.stringify(m.sensors),
              JSON.stringify(m.modules),
              JSON.stringify(m.faults),
              m.fan,
              m.settings,
            ],
          );
          for (const b of m.bays)
            await this.#bay(tx, id, b.bayId, b.occupied, b.since ? seconds(b.since) : null, b.paid, m.at);
        } else {
          const e = message;
          await tx.query(
            `INSERT INTO meter_events (meter_id, frame_seq, occurred_at, event, severity, active, value, bay_id, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
            [
              id,
              header.seq,
              seconds(e.at),
              e.event,
              e.severity,
              e.active,
              e.value ?? null,
              e.bayId ?? null,
              e.detail,
            ],
          );
          if (e.bayId !== undefined && (e.event === 'bay-arrived' || e.event === 'bay-left'))
            await this.#bay(tx, id, e.bayId, e.event === 'bay-arrived', seconds(e.at), null, e.at);
        }
      });
      this.#d.logger.info({ meterId, frameSeq, kind: message.kind }, 'status stored');
      return { ok: true, meterId, frameSeq, message };
    } catch (error) {
      const { reason, detail } =
        error instanceof Refused
          ? error
          : error instanceof ProtocolError
            ? { reason: error.code, detail: error.message }
            : { reason: 'internal-error', detail: (error as Error).message };
      this.#d.logger.warn({ reason, detail, topic, meterId, frameSeq }, 'status frame refused');
      await this.#d.meters.recordRefusal({ topic, meterId, frameSeq, reason, detail }).catch(() => {});
      return { ok: false, reason, detail, meterId, frameSeq };
    }
  }

  async #bay(
    tx: Pick<Database, 'query'>,
    meterId: number,
    bayId: number,
    occupied: boolean,
    since: Date | null,
    paid: boolean | null,
    at: number,
  ): Promise<void> {
    await tx.query(
      `INSERT INTO bay_occupancy (meter_id, bay_id, occupied, since, paid, updated_at) VALUES ($1, $2, $3, $4, COALESCE($5, false), $6)
       ON CONFLICT (meter_id, bay_id) DO UPDATE SET occupied = $3, since = $4,
         paid = COALESCE($5, bay_occupancy.paid), updated_at = $6
       WHERE bay_occupancy.updated_at <= $6`,
      [meterId, bayId, occupied, since, paid, seconds(at)],
    );
  }

  /** Validates settings as the meter will, and sends them as a 0x84 downlink. */
  async pushSettings(meterId: number, settings: GuardSettings): Promise<number> {
    const body = encodeSettings(settings);
    decodeSettings(body); // the meter's own check: refuse here what it would refuse there
    return this.#d.sendDownlink(meterId, SETTINGS_FRAME, body);
  }
}

const idParams = meterIdParams;

const loose = { type: 'object', additionalProperties: true } as const;

const alarmSchema = object({
  id: { type: 'integer' },
  at: time,
  receivedAt: time,
  event: { type: 'string' },
  severity: { type: 'string' },
  state: { type: 'string', enum: ['raised', 'cleared'] },
  value: { type: 'number', nullable: true },
  bayId: { type: 'integer', nullable: true },
  detail: { type: 'string' },
});

const alarmsQuery = {
  type: 'object',
  properties: {
    state: { type: 'string', enum: ['raised', 'cleared', 'all'], default: 'all' },
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
  },
  additionalProperties: false,
} as const;

const settingsBody = {
  type: 'object',
  required: ['version', 'sampleSeconds', 'baySeconds', 'statusSeconds', 'thresholds'],
  properties: {
    version: { type: 'integer', minimum: 1, maximum: 0xffffffff },
    sampleSeconds: { type: 'integer', minimum: 1, maximum: 86_400 },
    baySeconds: { type: 'integer', minimum: 1, maximum: 3_600 },
    statusSeconds: { type: 'integer', minimum: 60, maximum: 604_800 },
    thresholds: {
      type: 'object',
      required: [
        'tiltDegrees',
        'vibrationG',
        'temperatureHigh',
        'fanOn',
        'fanOff',
        'humidityHigh',
        'aqi',
        'coverLux',
        'vehicleMicroTesla',
      ],
      properties: {
        tiltDegrees: { type: 'number', minimum: 1, maximum: 90 },
        vibrationG: { type: 'number', minimum: 0.1, maximum: 16 },
        temperatureHigh: { type: 'number', minimum: 0, maximum: 125 },
        fanOn: { type: 'number', minimum: -40, maximum: 125 },
        fanOff: { type: 'number', minimum: -40, maximum: 125 },
        humidityHigh: { type: 'number', minimum: 0, maximum: 100 },
        aqi: { type: 'integer', minimum: 1, maximum: 5 },
        coverLux: { type: 'number', minimum: 0.1, maximum: 100_000 },
        vehicleMicroTesla: { type: 'number', minimum: 1, maximum: 1000 },
      },
      additionalProperties: false,
    },
  },
  additionalProperties: false,
} as const;

interface EventRow {
  id: number;
  occurred_at: Date;
  received_at: Date;
  event: string;
  severity: string;
  active: boolean;
  value: number | null;
  bay_id: number | null;
  detail: string;
}

const alarmView = (r: EventRow) => ({
  id: r.id,
  at: r.occurred_at.toISOString(),
  receivedAt: r.received_at.toISOString(),
  event: r.event,
  severity: r.severity,
  state: r.active ? 'raised' : 'cleared',
  value: r.value,
  bayId: r.bay_id,
  detail: r.detail,
});

export interface StatusRoutesOptions {
  db: Database;
  meters: Pick<MeterDirectory, 'exists'>;
  guard: OperatorGuard;
  service: StatusService;
}

/** The status, alarms and settings routes of each meter. */
export const statusRoutes: FastifyPluginAsync<StatusRoutesOptions> = async (
  app,
  { db, meters, guard, service },
) => {
  const meterExists = (id: number) => meters.exists(id);

  app.get<{ Params: { id: number } }>(
    '/api/meters/:id/status',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: "A meter's last status report, bays and open alarms",
        params: idParams,
        response: {
          200: object(
            {
              meterId: { type: 'integer' },
              reportedAt: nullableTime,
              receivedAt: nullableTime,
              battery: { ...loose, nullable: true },
              sensors: { ...loose, nullable: true },
              modules: { ...loose, nullable: true },
              faults: { type: 'array', items: {} },
              fan: { type: 'boolean', nullable: true },
              settingsVersion: { type: 'integer', nullable: true },
              bays: { type: 'array', items: loose },
              openAlarms: { type: 'array', items: alarmSchema },
            },
            ['meterId', 'bays', 'openAlarms'],
          ),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      if (!(await meterExists(id))) return sendError(reply, 404, 'unknown-meter', `no meter ${id}`);
      const status = (
        await db.query<{
          reported_at: Date;
          received_at: Date;
          battery: unknown;
          sensors: unknown;
          modules: unknown;
          faults: unknown;
          fan: boolean;
          settings_version: number;
        }>('SELECT * FROM meter_status WHERE meter_id = $1', [id])
      ).rows[0];
      const bays = await db.query<{
        bay_id: number;
        occupied: boolean;
        since: Date | null;
        paid: boolean;
        updated_at: Date;
      }>(
        'SELECT bay_id, occupied, since, paid, updated_at FROM bay_occupancy WHERE meter_id = $1 ORDER BY bay_id',
        [id],
      );
      // Open alarms: the latest event of each alarm kind (and bay) that is still raised.
      const open = await db.query<EventRow>(
        `SELECT * FROM (
         SELECT DISTINCT ON (event, COALESCE(bay_id, -1)) * FROM meter_events
          WHERE meter_id = $1 AND severity IN ('alarm', 'warning', 'fault')
          ORDER BY event, COALESCE(bay_id, -1), occurred_at DESC, id DESC) latest
        WHERE active ORDER BY occurred_at DESC`,
        [id],
      );
      return {
        meterId: id,
        reportedAt: status?.reported_at.toISOString() ?? null,
        receivedAt: status?.received_at.toISOString() ?? null,
        battery: status?.battery ?? null,
        sensors: status?.sensors ?? null,
        modules: status?.modules ?? null,
        faults: status?.faults ?? [],
        fan: status?.fan ?? null,
        settingsVersion: status?.settings_version ?? null,
        bays: bays.rows.map((b) => ({
          bayId: b.bay_id,
          occupied: b.occupied,
          since: b.since?.toISOString() ?? null,
          paid: b.paid,
          updatedAt: b.updated_at.toISOString(),
        })),
        openAlarms: open.rows.map(alarmView),
      };
    },
  );

  app.get<{ Params: { id: number }; Querystring: { state: 'raised' | 'cleared' | 'all'; limit: number } }>(
    '/api/meters/:id/alarms',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: "A meter's alarms, warnings and faults, newest first",
        params: idParams,
        querystring: alarmsQuery,
        response: {
          200: object({ meterId: { type: 'integer' }, alarms: { type: 'array', items: alarmSchema } }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      if (!(await meterExists(id))) return sendError(reply, 404, 'unknown-meter', `no meter ${id}`);
      const { state, limit } = request.query;
      const rows = await db.query<EventRow>(
        `SELECT * FROM meter_events WHERE meter_id = $1 AND severity IN ('alarm', 'warning', 'fault')
           AND ($2 = 'all' OR active = ($2 = 'raised'))
         ORDER BY occurred_at DESC, id DESC LIMIT $3`,
        [id, state, limit],
      );
      return { meterId: id, alarms: rows.rows.map(alarmView) };
    },
  );

  app.post<{ Params: { id: number }; Body: GuardSettings }>(
    '/api/meters/:id/settings',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: "Send the meter's guard settings as a 0x84 downlink",
        params: idParams,
        body: settingsBody,
        response: {
          202: object({ version: { type: 'integer' }, downlinkSeq: { type: 'integer' } }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      if (!(await meterExists(id))) return sendError(reply, 404, 'unknown-meter', `no meter ${id}`);
      try {
        const downlinkSeq = await service.pushSettings(id, request.body);
        await guard.audit(request, {
          action: 'settings.push',
          meterId: id,
          detail: { version: request.body.version, downlinkSeq },
        });
        return reply.code(202).send({ version: request.body.version, downlinkSeq });
      } catch (error) {
        if (error instanceof ProtocolError) return sendError(reply, 400, error.code, error.message);
        throw error;
      }
    },
  );
};

/** Builds the service, routes ingest's 0x04 frames to it and registers its routes. */
export async function startStatus(
  app: FastifyInstance,
  deps: StatusDeps & {
    ingest: { route(type: number, handler: (topic: string, frame: Uint8Array) => Promise<void>): void };
    guard: OperatorGuard;
  },
): Promise<StatusService> {
  const service = new StatusService(deps);
  deps.ingest.route(STATUS_FRAME, service.onUplink);
  await app.register(statusRoutes, { db: deps.db, meters: deps.meters, guard: deps.guard, service });
  return service;
}
