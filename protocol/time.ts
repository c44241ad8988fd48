// The platform time exchange, NTP's four timestamps (RFC 5905 §8) over the sealed frames:
//   0x08 (uplink)   { id, t1, st, src?, off?, dr?, at? }   the meter's request, carrying its clock
//   0x88 (downlink) { id, t1, t2, t3 }                     the platform's answer, echoing id and t1
// t1 is the meter's clock when it sent the request, t2 the platform's when it took the request, t3
// the platform's when it sealed the answer; the meter notes t4 on arrival. Times are epoch
// milliseconds (whole seconds are too coarse for an offset). The request also reports the meter's
// clock state, so the platform shows it without a status report: st (TimeState), src (the source
// of the last correction), off (its offset, ms), dr (drift estimate, tenths of ppm), at (epoch s).
// Also the clock state a record carries (protocol/records.ts, 7th field).
import { badField, int, uint } from './fields';
import { decodeCbor, encodeCbor } from './cbor';

export const TIME_REQUEST_UPLINK = 0x08;
export const TIME_ANSWER_DOWNLINK = 0x88;

/** What the meter's clock was worth when a record was written (and in the 0x08 request). */
export const TimeState = Object.freeze({
  /** Never set since the meter started: the time is the board's own count (1970 after a power cut). */
  Unset: 0,
  /** Set by a time source within the holdover period. */
  Synced: 1,
  /** Set once, but no source has confirmed it within the holdover period: drift may have grown. */
  Holdover: 2,
} as const);
export type TimeState = (typeof TimeState)[keyof typeof TimeState];

export const TIME_STATE_NAMES: Readonly<Record<TimeState, 'unset' | 'synced' | 'holdover'>> = Object.freeze({
  0: 'unset',
  1: 'synced',
  2: 'holdover',
});

export type TimeSourceName = 'platform' | 'sntp' | 'cellular';
const SOURCE_NAMES: readonly string[] = ['platform', 'sntp', 'cellular'];

export interface TimeRequest {
  id: number;
  /** The meter's clock at sending, epoch ms. */
  t1: number;
  state: TimeState;
  /** The last correction: its source, offset (ms) and when (epoch s); absent while unset. */
  source?: TimeSourceName;
  offsetMs?: number;
  syncedAt?: number;
  /** Drift estimate of the meter's oscillator, tenths of ppm (positive: it runs fast). */
  driftTenthsPpm?: number;
}

export interface TimeAnswer {
  id: number;
  t1: number;
  /** The platform's clock when it took the request and when it sealed the answer, epoch ms. */
  t2: number;
  t3: number;
}

export function encodeTimeRequest(r: TimeRequest): Uint8Array {
  const body: Record<string, unknown> = { id: r.id, t1: r.t1, st: r.state };
  if (r.source !== undefined) body.src = r.source;
  if (r.offsetMs !== undefined) body.off = Math.round(r.offsetMs);
  if (r.syncedAt !== undefined) body.at = r.syncedAt;
  if (r.driftTenthsPpm !== undefined) body.dr = Math.round(r.driftTenthsPpm);
  return encodeCbor(body);
}

export function decodeTimeRequest(bytes: Uint8Array): TimeRequest {
  const m = map(decodeCbor(bytes));
  const st = uint(m.st, 'st');
  if (st > 2) throw badField(`st ${st} is not 0, 1 or 2`);
  const r: TimeRequest = { id: u32(m.id, 'id'), t1: uint(m.t1, 't1'), state: st as TimeState };
  if (m.src !== undefined) {
    if (typeof m.src !== 'string' || !SOURCE_NAMES.includes(m.src))
      throw badField('src is not a time source');
    r.source = m.src as TimeSourceName;
  }
  if (m.off !== undefined) r.offsetMs = int(m.off, 'off');
  if (m.at !== undefined) r.syncedAt = uint(m.at, 'at');
  if (m.dr !== undefined) r.driftTenthsPpm = int(m.dr, 'dr');
  return r;
}

export function encodeTimeAnswer(a: TimeAnswer): Uint8Array {
  return encodeCbor({ id: a.id, t1: a.t1, t2: a.t2, t3: a.t3 });
}

export function decodeTimeAnswer(bytes: Uint8Array): TimeAnswer {
  const m = map(decodeCbor(bytes));
  const a = { id: u32(m.id, 'id'), t1: uint(m.t1, 't1'), t2: uint(m.t2, 't2'), t3: uint(m.t3, 't3') };
  if (a.t3 < a.t2) throw badField('t3 is before t2');
  return a;
}

/**
 * NTP's on-wire arithmetic (RFC 5905 §8): the offset of the server's clock from the client's and
 * the round-trip delay, from the four timestamps (t4: the client's clock on arrival).
 */
export function exchangeOffset(
  t1: number,
  t2: number,
  t3: number,
  t4: number,
): { offsetMs: number; delayMs: number } {
  return { offsetMs: (t2 - t1 + (t3 - t4)) / 2, delayMs: t4 - t1 - (t3 - t2) };
}

function map(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array)
    throw badField('message is not a map');
  return value as Record<string, unknown>;
}

function u32(value: unknown, name: string): number {
  const n = uint(value, name);
  if (n > 0xffffffff) throw badField(`${name} is not a 32-bit number`);
  return n;
}
