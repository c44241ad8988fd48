// The tariffs-and-modes downlink (frame type 0x85) and its acknowledgement (uplink 0x05), as CBOR
// maps with short text keys like the other messages (protocol/messages.ts).
//   0x85 { k: 'tariff', v: version, t: tariff document }
//        { k: 'message', v: version, text, start?, until? } a line for the display (weather, works),
//                                                          shown from `start` until `until` (epoch s)
//        { k: 'bays', v: version, bays: { "<id>": mode | { m: mode, start?, end? } } }
//          mode: 'available' | 'unavailable' | 'suspended' (works) | 'free' | 'no-parking';
//          a bare mode holds from now on; a map holds it from start until end (epoch s)
//   0x05 { k, v: version applied (or refused), t?: tariff id (k 'tariff'), ok: bool, why?: text }
// The version is the platform's: a meter applies a version above the one it holds (for k 'tariff',
// also any version of another tariff) and acknowledges what it holds either way, so a repeated push
// is harmless. Meters before `t` acknowledged a tariff by its version alone.
import { decodeCbor, encodeCbor } from '../cbor';
import { ProtocolError } from '../errors';
import type { TariffDocument } from './types';

export const TARIFF_DOWNLINK = 0x85;
export const TARIFF_ACK_UPLINK = 0x05;

export type BayMode = 'available' | 'unavailable' | 'suspended' | 'free' | 'no-parking';

export const BAY_MODES: readonly BayMode[] = Object.freeze([
  'available',
  'unavailable',
  'suspended',
  'free',
  'no-parking',
]);

/** A bay's mode, from `start` (absent: now) until `end` (absent: until replaced), epoch seconds. */
export interface BayModeWindow {
  mode: BayMode;
  start?: number;
  end?: number;
}

export type TariffPush =
  | { kind: 'tariff'; version: number; tariff: TariffDocument }
  | { kind: 'message'; version: number; text: string; start?: number; until?: number }
  | { kind: 'bays'; version: number; bays: Record<string, BayMode | BayModeWindow> };

export interface TariffAck {
  kind: TariffPush['kind'];
  version: number;
  /** For 'tariff': the id of the tariff held, or of the one refused (absent from older meters). */
  tariff?: string;
  ok: boolean;
  why?: string;
}

export function encodeTariffPush(push: TariffPush): Uint8Array {
  if (push.kind === 'tariff') return encodeCbor({ k: push.kind, v: push.version, t: push.tariff });
  if (push.kind === 'message') {
    const body: Record<string, unknown> = { k: push.kind, v: push.version, text: push.text };
    if (push.start !== undefined) body.start = push.start;
    if (push.until !== undefined) body.until = push.until;
    return encodeCbor(body);
  }
  const bays: Record<string, unknown> = {};
  for (const [id, entry] of Object.entries(push.bays)) {
    if (typeof entry === 'string') bays[id] = entry;
    else {
      const w: Record<string, unknown> = { m: entry.mode };
      if (entry.start !== undefined) w.start = entry.start;
      if (entry.end !== undefined) w.end = entry.end;
      bays[id] = w;
    }
  }
  return encodeCbor({ k: push.kind, v: push.version, bays });
}

function map(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array)
    throw new ProtocolError('bad-field', 'message is not a map');
  return value as Record<string, unknown>;
}

function version(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffffffff)
    throw new ProtocolError('bad-field', 'v is not a 32-bit version');
  return value;
}

function epoch(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0)
    throw new ProtocolError('bad-field', `${name} is not an epoch second`);
  return value;
}

function bayMode(value: unknown, name: string): BayMode {
  if (typeof value !== 'string' || !(BAY_MODES as readonly string[]).includes(value))
    throw new ProtocolError('bad-field', `${name} is not one of ${BAY_MODES.join(', ')}`);
  return value as BayMode;
}

/** Decodes the envelope; the tariff document inside is checked by validateTariff, not here. */
export function decodeTariffPush(body: Uint8Array): TariffPush {
  const m = map(decodeCbor(body));
  const v = version(m.v);
  if (m.k === 'tariff') return { kind: 'tariff', version: v, tariff: map(m.t) as unknown as TariffDocument };
  if (m.k === 'message') {
    if (typeof m.text !== 'string') throw new ProtocolError('bad-field', 'text is not a string');
    const start = epoch(m.start, 'start');
    const until = epoch(m.until, 'until');
    if (start !== undefined && until !== undefined && until <= start)
      throw new ProtocolError('bad-field', 'until is not after start');
    const push: TariffPush = { kind: 'message', version: v, text: m.text };
    if (start !== undefined) push.start = start;
    if (until !== undefined) push.until = until;
    return push;
  }
  if (m.k === 'bays') {
    const given = map(m.bays);
    const bays: Record<string, BayMode | BayModeWindow> = {};
    for (const [id, entry] of Object.entries(given)) {
      if (typeof entry === 'string') {
        bays[id] = bayMode(entry, `bays.${id}`);
        continue;
      }
      const w = map(entry);
      const window: BayModeWindow = { mode: bayMode(w.m, `bays.${id}.m`) };
      const start = epoch(w.start, `bays.${id}.start`);
      const end = epoch(w.end, `bays.${id}.end`);
      if (start !== undefined) window.start = start;
      if (end !== undefined) window.end = end;
      if (start !== undefined && end !== undefined && end <= start)
        throw new ProtocolError('bad-field', `bays.${id}.end is not after start`);
      bays[id] = window;
    }
    return { kind: 'bays', version: v, bays };
  }
  throw new ProtocolError('bad-field', `k ${String(m.k)} is not tariff, message or bays`);
}

export function encodeTariffAck(ack: TariffAck): Uint8Array {
  const body: Record<string, unknown> = { k: ack.kind, v: ack.version, ok: ack.ok };
  if (ack.tariff !== undefined) body.t = ack.tariff;
  if (ack.why !== undefined) body.why = ack.why;
  return encodeCbor(body);
}

export function decodeTariffAck(body: Uint8Array): TariffAck {
  const m = map(decodeCbor(body));
  if (m.k !== 'tariff' && m.k !== 'message' && m.k !== 'bays') throw new ProtocolError('bad-field', 'k');
  if (typeof m.ok !== 'boolean') throw new ProtocolError('bad-field', 'ok is not a boolean');
  const ack: TariffAck = { kind: m.k, version: version(m.v), ok: m.ok };
  if (m.t !== undefined) {
    if (typeof m.t !== 'string' || m.t.length === 0)
      throw new ProtocolError('bad-field', 't is not a tariff id');
    ack.tariff = m.t;
  }
  if (typeof m.why === 'string') ack.why = m.why;
  return ack;
}
