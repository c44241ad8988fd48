// The tariffs-and-modes downlink (frame type 0x85) and its acknowledgement (uplink 0x05), as CBOR
// maps with short text keys like the other messages (protocol/messages.ts).
//   0x85 { k: 'tariff', v: version, t: tariff document }
//        { k: 'message', v: version, text, until? }        a line for the display (weather, works)
//        { k: 'bays', v: version, bays: { "<id>": 'available' | 'unavailable' } }
//   0x05 { k, v: version applied (or refused), ok: bool, why?: text }
// The version is the platform's: a meter applies a version above the one it holds and acknowledges
// the version it holds either way, so a repeated push is harmless.
import { decodeCbor, encodeCbor } from '../cbor';
import { ProtocolError } from '../errors';
import type { TariffDocument } from './types';

export const TARIFF_DOWNLINK = 0x85;
export const TARIFF_ACK_UPLINK = 0x05;

export type BayMode = 'available' | 'unavailable';

export type TariffPush =
  | { kind: 'tariff'; version: number; tariff: TariffDocument }
  | { kind: 'message'; version: number; text: string; until?: number }
  | { kind: 'bays'; version: number; bays: Record<string, BayMode> };

export interface TariffAck {
  kind: TariffPush['kind'];
  version: number;
  ok: boolean;
  why?: string;
}

export function encodeTariffPush(push: TariffPush): Uint8Array {
  if (push.kind === 'tariff') return encodeCbor({ k: push.kind, v: push.version, t: push.tariff });
  if (push.kind === 'message') {
    const body: Record<string, unknown> = { k: push.kind, v: push.version, text: push.text };
    if (push.until !== undefined) body.until = push.until;
    return encodeCbor(body);
  }
  return encodeCbor({ k: push.kind, v: push.version, bays: push.bays });
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

/** Decodes the envelope; the tariff document inside is checked by validateTariff, not here. */
export function decodeTariffPush(body: Uint8Array): TariffPush {
  const m = map(decodeCbor(body));
  const v = version(m.v);
  if (m.k === 'tariff') return { kind: 'tariff', version: v, tariff: map(m.t) as unknown as TariffDocument };
  if (m.k === 'message') {
    if (typeof m.text !== 'string') throw new ProtocolError('bad-field', 'text is not a string');
    if (m.until !== undefined && typeof m.until !== 'number') throw new ProtocolError('bad-field', 'until');
    return m.until === undefined
      ? { kind: 'message', version: v, text: m.text }
      : { kind: 'message', version: v, text: m.text, until: m.until as number };
  }
  if (m.k === 'bays') {
    const bays = map(m.bays) as Record<string, unknown>;
    for (const [id, mode] of Object.entries(bays)) {
      if (mode !== 'available' && mode !== 'unavailable')
        throw new ProtocolError('bad-field', `bays.${id} is not available or unavailable`);
    }
    return { kind: 'bays', version: v, bays: bays as Record<string, BayMode> };
  }
  throw new ProtocolError('bad-field', `k ${String(m.k)} is not tariff, message or bays`);
}

export function encodeTariffAck(ack: TariffAck): Uint8Array {
  const body: Record<string, unknown> = { k: ack.kind, v: ack.version, ok: ack.ok };
  if (ack.why !== undefined) body.why = ack.why;
  return encodeCbor(body);
}

export function decodeTariffAck(body: Uint8Array): TariffAck {
  const m = map(decodeCbor(body));
  if (m.k !== 'tariff' && m.k !== 'message' && m.k !== 'bays') throw new ProtocolError('bad-field', 'k');
  if (typeof m.ok !== 'boolean') throw new ProtocolError('bad-field', 'ok is not a boolean');
  const ack: TariffAck = { kind: m.k, version: version(m.v), ok: m.ok };
  if (typeof m.why === 'string') ack.why = m.why;
  return ack;
}
