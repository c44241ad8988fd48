// Operating parameters on the platform: versioned sets checked by the same rules the meters run
// (protocol/parameters), pushed as 0x89 to listed meters, an area or the fleet, and acknowledged by
// each meter's 0x09 with the set it runs (a local change made in a maintenance session included).
//
// Its HTTP API is routes.ts; index.ts wires the room (the 0x09 route, the routes).
import {
  decodeParametersAck,
  encodeParametersPush,
  PARAMETERS_DOWNLINK,
  ParameterError,
  type ParameterSet,
  validateParameters,
} from '../../protocol/parameters';
import { RequestRefused } from '../core/errors';
import type { Database } from '../core/db';
import { type MeterTarget, resolveTarget } from '../fleet/targets';
import type { UplinkHandler } from '../ingest/gate';

export interface ParameterDeps {
  db: Database;
  /** Seals and publishes a downlink (Ingest.sendDownlink); returns its sequence number. */
  sendDownlink(meterId: number, type: number, body: Uint8Array): Promise<number>;
}

export class ParametersRefused extends RequestRefused {
  override readonly name: string = 'ParametersRefused';
}

export interface ParameterSetView {
  version: number;
  values: ParameterSet;
  note: string | null;
  createdBy: string;
}

export interface MeterParametersView {
  meterId: number;
  pushedVersion: number | null;
  /** The platform version the meter's set in force started from (null: never acknowledged). */
  appliedVersion: number | null;
  /** Changed at the meter in a maintenance session after appliedVersion. */
  localChange: boolean;
  values: ParameterSet | null;
  refused: { version: number; why: string | null } | null;
}

export interface PushOutcome {
  version: number;
  meters: { meterId: number; downlinkSeq?: number; error?: string }[];
}

export class ParameterService {
  readonly #deps: ParameterDeps;

  constructor(deps: ParameterDeps) {
    this.#deps = deps;
  }

  /** Checks a set whole and stores it as the next version. */
  async define(values: unknown, createdBy: string, note?: string): Promise<ParameterSetView> {
    let checked: ParameterSet;
    try {
      checked = validateParameters(values);
    } catch (error) {
      if (error instanceof ParameterError)
        throw new ParametersRefused(400, 'bad-parameters', error.message, `values.${error.field}`);
      throw error;
    }
    return this.#deps.db.transaction(async (tx) => {
      // One writer at a time takes the next number (the primary key refuses a second).
      const { rows } = await tx.query<{ next: number }>(
        'SELECT coalesce(max(version), 0) + 1 AS next FROM parameter_sets',
      );
      const version = Number(rows[0].next);
      await tx.query(
        'INSERT INTO parameter_sets (version, parameter_values, note, created_by) VALUES ($1, $2, $3, $4)',
        [version, JSON.stringify(checked), note ?? null, createdBy],
      );
      return { version, values: checked, note: note ?? null, createdBy };
    });
  }

  async get(version?: number): Promise<ParameterSetView | undefined> {
    const { rows } = await this.#deps.db.query<{
      version: number;
      parameter_values: ParameterSet;
      note: string | null;
      created_by: string;
    }>(
      `SELECT version, parameter_values, note, created_by FROM parameter_sets
        WHERE $1::bigint IS NULL OR version = $1::bigint ORDER BY version DESC LIMIT 1`,
      [version ?? null],
    );
    const r = rows[0];
    return (
      r && { version: Number(r.version), values: r.parameter_values, note: r.note, createdBy: r.created_by }
    );
  }

  /** Sends a stored set to every meter of the target; a meter the broker cannot reach is named, the rest still go. */
  async push(version: number, target: MeterTarget): Promise<PushOutcome> {
    const set = await this.get(version);
    if (!set) throw new ParametersRefused(404, 'unknown-parameter-set', `no parameter set ${version}`);
    const meterIds = await resolveTarget(this.#deps.db, target);
    const body = encodeParametersPush({ version: set.version, values: set.values });
    const meters: PushOutcome['meters'] = [];
    for (const meterId of meterIds) {
      try {
        // The push is recorded before it is sent. Recorded after, its first insert (which checks the
        // meter's row for the foreign key) could meet the meter's acknowledgement, which holds that
        // row under ingest's lock and waits for this row: PostgreSQL ends one as a deadlock, and the
        // acknowledgement was lost. Once the row exists, setting the sequence number waits at most.
        const db = this.#deps.db;
        // The push as it stood, put back if this one cannot be sent: nothing went out.
        const before = await db.query<{
          pushed_version: number;
          pushed_at: Date;
          downlink_seq: number | null;
        }>('SELECT pushed_version, pushed_at, downlink_seq FROM meter_parameters WHERE meter_id = $1', [
          meterId,
        ]);
        await db.query(
          `INSERT INTO meter_parameters (meter_id, pushed_version, pushed_at) VALUES ($1, $2, now())
           ON CONFLICT (meter_id) DO UPDATE SET pushed_version = $2, pushed_at = now(), downlink_seq = NULL`,
          [meterId, set.version],
        );
        let downlinkSeq: number;
        try {
          downlinkSeq = await this.#deps.sendDownlink(meterId, PARAMETERS_DOWNLINK, body);
        } catch (error) {
          const prior = before.rows[0];
          const ours = 'meter_id = $1 AND pushed_version = $2';
          // No push before: the row goes, unless an acknowledgement has been recorded on it since.
          if (!prior)
            await db.query(`DELETE FROM meter_parameters WHERE ${ours} AND acked_at IS NULL`, [
              meterId,
              set.version,
            ]);
          await db.query(
            `UPDATE meter_parameters SET pushed_version = $3, pushed_at = $4, downlink_seq = $5 WHERE ${ours}`,
            [
              meterId,
              set.version,
              prior?.pushed_version ?? null,
              prior?.pushed_at ?? null,
              prior?.downlink_seq ?? null,
            ],
          );
          throw error;
        }
        // Only while the row is still this push: a later push sent meanwhile keeps its own number.
        await db.query(
          'UPDATE meter_parameters SET downlink_seq = $3 WHERE meter_id = $1 AND pushed_version = $2',
          [meterId, set.version, downlinkSeq],
        );
        meters.push({ meterId, downlinkSeq });
      } catch (error) {
        meters.push({ meterId, error: (error as Error).message });
      }
    }
    return { version: set.version, meters };
  }

  /** Ingest's handler for 0x09: what the meter runs, recorded in the transaction that accepts the frame. */
  onAck: UplinkHandler = async ({ meterId, body }, tx) => {
    const ack = decodeParametersAck(body);
    await tx.query(
      `INSERT INTO meter_parameters (meter_id, acked_version, local_change, values_in_force, refused_version, refused_why, acked_at)
       VALUES ($1, $2, $3, $4, $5, $6, now())
       ON CONFLICT (meter_id) DO UPDATE SET acked_version = $2, local_change = $3, values_in_force = $4,
         refused_version = CASE WHEN NOT $7::boolean THEN $5::bigint
           WHEN meter_parameters.refused_version > $2::bigint THEN meter_parameters.refused_version END,
         refused_why = CASE WHEN NOT $7::boolean THEN $6::text
           WHEN meter_parameters.refused_version > $2::bigint THEN meter_parameters.refused_why END,
         acked_at = now()`,
      [
        meterId,
        ack.version,
        ack.local,
        JSON.stringify(ack.values),
        ack.refused ?? null,
        ack.why ?? null,
        ack.ok,
      ],
    );
  };

  async ofMeter(meterId: number): Promise<MeterParametersView | undefined> {
    const { rows } = await this.#deps.db.query<{
      pushed_version: number | null;
      acked_version: number | null;
      local_change: boolean;
      values_in_force: ParameterSet | null;
      refused_version: number | null;
      refused_why: string | null;
    }>(
      `SELECT pushed_version, acked_version, local_change, values_in_force, refused_version, refused_why
         FROM meter_parameters WHERE meter_id = $1`,
      [meterId],
    );
    const r = rows[0];
    if (!r) return undefined;
    return {
      meterId,
      pushedVersion: r.pushed_version === null ? null : Number(r.pushed_version),
      appliedVersion: r.acked_version === null ? null : Number(r.acked_version),
      localChange: r.local_change,
      values: r.values_in_force,
      refused: r.refused_version === null ? null : { version: Number(r.refused_version), why: r.refused_why },
    };
  }

  /**
   * Meters of the target not running the latest set as defined: never acknowledged, on an older
   * version, or changed locally since.
   */
  async behind(
    target: MeterTarget = { fleet: true },
  ): Promise<{ latest: number | null; meters: MeterParametersView[] }> {
    const latest = (await this.get())?.version ?? null;
    const meterIds = await resolveTarget(this.#deps.db, target);
    const meters: MeterParametersView[] = [];
    if (latest === null) return { latest, meters };
    for (const meterId of meterIds) {
      const view = (await this.ofMeter(meterId)) ?? {
        meterId,
        pushedVersion: null,
        appliedVersion: null,
        localChange: false,
        values: null,
        refused: null,
      };
      if (view.appliedVersion !== latest || view.localChange) meters.push(view);
    }
    return { latest, meters };
  }
}
