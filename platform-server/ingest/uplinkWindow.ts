// The platform's anti-replay for a meter's uplink frames (every uplink type shares one frame counter
// per meter): the sliding window of protocol/replayWindow.ts over meters.last_uplink_seq and
// meters.uplink_seen (migration 008), checked by the gate (verify.ts, gate.ts, store.ts).
import { ReplayWindow } from '../../protocol/replayWindow';

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
