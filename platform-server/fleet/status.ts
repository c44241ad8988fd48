// Meter status on the platform: ingest's route for uplink frames 0x04 (status reports and
// guard / power / monitor events; the gate verifies them first), stored per meter, and the
// settings downlink 0x84. Its HTTP side is statusRoutes.ts.
import type { Crypto } from '../../hal/crypto';
import {
  decodeSettings,
  decodeStatusMessage,
  encodeSettings,
  type GuardSettings,
  SETTINGS_FRAME,
  STATUS_FRAME,
  type StatusMessage,
} from '../../protocol/status';
import type { Database } from '../core/db';
import type { Logger, UplinkHandler } from '../ingest/gate';
import type { Keystore } from '../keys/keystore';
import type { MeterDirectory } from '../ingest/meters';

export { STATUS_FRAME };

export interface StatusDeps {
  db: Database;
  meters: Pick<MeterDirectory, 'exists' | 'epochs'>;
  keystore: Keystore;
  logger: Logger;
  /** Seals and publishes a downlink (Ingest.sendDownlink); returns its sequence number. */
  sendDownlink(meterId: number, type: number, body: Uint8Array): Promise<number>;
  crypto?: Crypto;
  /**
   * Sees each status message in the transaction that stores it (the alarm inbox); returns work for
   * after the commit.
   */
  observer?: StatusObserver;
}

export type StatusObserver = (
  tx: Pick<Database, 'query'>,
  meterId: number,
  message: StatusMessage,
) => Promise<() => Promise<void>>;

const seconds = (s: number) => new Date(s * 1000);

export class StatusService {
  readonly #d: StatusDeps;

  constructor(deps: StatusDeps) {
    this.#d = deps;
  }

  /**
   * Ingest's handler for 0x04 (route): a frame the gate verified, stored in the transaction that
   * accepts it. A body that does not decode throws (the frame is refused, nothing stored).
   */
  onUplink: UplinkHandler = async ({ meterId, header, body }, tx) => {
    const message = decodeStatusMessage(body);
    const id = meterId;
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
      // The figures the meter page charts; a report sent twice is kept once.
      const sourcePack = m.battery.packs[m.battery.source];
      await tx.query(
        `INSERT INTO meter_status_history (meter_id, reported_at, battery_percent, millivolts, temperature, occupied_bays, faults)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
        [
          id,
          seconds(m.at),
          Number.isFinite(sourcePack) ? sourcePack : null,
          m.battery.millivolts ?? null,
          m.sensors.temperature ?? null,
          m.bays.filter((b) => b.occupied).length,
          m.faults.length,
        ],
      );
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
    const observed = await this.#d.observer?.(tx, id, message);
    return async () => {
      this.#d.logger.info({ meterId, frameSeq: header.seq, kind: message.kind }, 'status stored');
      await observed?.();
    };
  };

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
