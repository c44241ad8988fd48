// Meter status on the platform: ingest's route for uplink frames 0x04 (status reports and
// guard / power / monitor events), stored per meter, and the settings downlink 0x84. Its HTTP side
// is statusRoutes.ts.
import type { Crypto } from '../../hal/crypto';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { ProtocolError } from '../../protocol/errors';
import { decodeHeader, openFrame } from '../../protocol/frame';
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
