// The platform's anti-replay for a meter's uplink frames (record sets, tariff acks, security events
// share one frame counter per meter): the sliding window of protocol/replayWindow.ts over
// meters.last_uplink_seq and meters.uplink_seen (migration 008).
import { ProtocolError } from '../../protocol/errors';
import { ReplayWindow } from '../../protocol/replayWindow';
import type { Queryable } from '../core/db';

/** The meter row's window columns, uplink_seen read as text (a 64-bit mask does not fit a number). */
export interface UplinkWindowRow {
  last_uplink_seq: number;
  uplink_seen: string | null;
}

/** `uplink_seen::text AS uplink_seen` beside last_uplink_seq in a SELECT of meters. */
export const UPLINK_WINDOW_COLUMNS = 'last_uplink_seq, uplink_seen::text AS uplink_seen';

export function uplinkWindowOf(row: UplinkWindowRow): ReplayWindow {
  const highest = Number(row.last_uplink_seq);
  // NULL: a meter from before the window, every number up to the highest counts as seen.
  return row.uplink_seen === null
    ? new ReplayWindow(highest)
    : new ReplayWindow(highest, BigInt.asUintN(64, BigInt(row.uplink_seen)));
}

/** The mask as the signed bigint the column holds, in decimal. */
export function uplinkSeenColumn(window: ReplayWindow): string {
  return BigInt.asIntN(64, window.seen).toString();
}

/**
 * In a transaction: locks the meter's row, accepts uplink frame `seq` or throws ProtocolError
 * 'replay', and records it (with last_seen_at). Throws 'unknown-meter' for a meter not provisioned.
 */
export async function acceptUplinkFrame(tx: Queryable, meterId: number, seq: number): Promise<void> {
  const row = await tx.query<UplinkWindowRow>(
    `SELECT ${UPLINK_WINDOW_COLUMNS} FROM meters WHERE id = $1 FOR UPDATE`,
    [meterId],
  );
  if (row.rows.length === 0) throw new ProtocolError('unknown-meter', `meter ${meterId} is not provisioned`);
  const window = uplinkWindowOf(row.rows[0]);
  const refused = window.check(seq);
  if (refused) throw new ProtocolError('replay', `uplink frame of meter ${meterId}: ${refused}`);
  window.accept(seq);
  await tx.query(
    'UPDATE meters SET last_uplink_seq = $2, uplink_seen = $3::bigint, last_seen_at = now() WHERE id = $1',
    [meterId, window.highest, uplinkSeenColumn(window)],
  );
}
