// Firmware update messages (CBOR bodies of frame types 0x87 downlink and 0x07 uplink). The platform
// offers an image, then sends it in chunks at the offsets the meter asks for; the meter answers each
// step with its progress, so a dropped link or a power cut resumes where the meter's flash is.
import { decodeCbor, encodeCbor } from './cbor';
import { ProtocolError } from './errors';

/** Downlink: offers, chunks, the platform's contact after a new image boots, aborts. */
export const FIRMWARE_DOWNLINK = 0x87;
/** Uplink: the meter's update progress. */
export const FIRMWARE_UPLINK = 0x07;
/** Largest chunk a downlink carries (fits a small MQTT packet of a cellular modem). */
export const MAX_CHUNK = 1024;

export type FirmwareDownlink =
  | {
      k: 'offer';
      /** The rollout's delivery id (the meter echoes it in its progress). */
      id: number;
      version: number;
      length: number;
      target: string;
      sha256: Uint8Array;
      signature: Uint8Array;
    }
  | { k: 'chunk'; id: number; offset: number; data: Uint8Array }
  /** The platform heard the new image: the meter may confirm it. */
  | { k: 'ok'; id: number; version: number }
  | { k: 'abort'; id: number };

export const UPDATE_STATES = [
  'idle',
  'offered',
  'downloading',
  'verified',
  'pending-switch',
  'booted-pending',
  'confirmed',
  'rolled-back',
  'refused',
] as const;
export type UpdateState = (typeof UPDATE_STATES)[number];

export interface FirmwareProgress {
  id: number;
  state: UpdateState;
  /** The offer's version (or the running one when idle). */
  version: number;
  /** Next byte the meter wants (downloading), else 0. */
  offset: number;
  /** Why: a refusal reason, a rollback cause. */
  reason?: string;
}

export function encodeFirmwareDownlink(m: FirmwareDownlink): Uint8Array {
  switch (m.k) {
    case 'offer':
      return encodeCbor({
        k: 'offer',
        id: m.id,
        v: m.version,
        len: m.length,
        tgt: m.target,
        sha: m.sha256,
        sig: m.signature,
      });
    case 'chunk':
      return encodeCbor({ k: 'chunk', id: m.id, off: m.offset, d: m.data });
    case 'ok':
      return encodeCbor({ k: 'ok', id: m.id, v: m.version });
    default:
      return encodeCbor({ k: 'abort', id: m.id });
  }
}

export function decodeFirmwareDownlink(body: Uint8Array): FirmwareDownlink {
  const v = asMap(decodeCbor(body));
  const id = uint(v.id, 'id');
  switch (v.k) {
    case 'offer': {
      const target = v.tgt;
      if (typeof target !== 'string' || !/^[a-z0-9-]{1,32}$/.test(target))
        throw new ProtocolError('bad-field', 'tgt is not a hardware target');
      return {
        k: 'offer',
        id,
        version: uint(v.v, 'v'),
        length: uint(v.len, 'len'),
        target,
        sha256: bstr(v.sha, 'sha', 32, 32),
        signature: bstr(v.sig, 'sig', 64, 64),
      };
    }
    case 'chunk':
      return { k: 'chunk', id, offset: uint(v.off, 'off'), data: bstr(v.d, 'd', 1, MAX_CHUNK) };
    case 'ok':
      return { k: 'ok', id, version: uint(v.v, 'v') };
    case 'abort':
      return { k: 'abort', id };
    default:
      throw new ProtocolError('bad-field', `k ${String(v.k)} is not a firmware message`);
  }
}

export function encodeFirmwareProgress(p: FirmwareProgress): Uint8Array {
  return encodeCbor({
    id: p.id,
    st: p.state,
    v: p.version,
    off: p.offset,
    ...(p.reason === undefined ? {} : { why: p.reason.slice(0, 64) }),
  });
}

export function decodeFirmwareProgress(body: Uint8Array): FirmwareProgress {
  const v = asMap(decodeCbor(body));
  const state = v.st;
  if (typeof state !== 'string' || !(UPDATE_STATES as readonly string[]).includes(state))
    throw new ProtocolError('bad-field', 'st is not an update state');
  if (v.why !== undefined && (typeof v.why !== 'string' || v.why.length > 64))
    throw new ProtocolError('bad-field', 'why is not text');
  return {
    id: uint(v.id, 'id'),
    state: state as UpdateState,
    version: uint(v.v, 'v'),
    offset: uint(v.off, 'off'),
    ...(v.why === undefined ? {} : { reason: v.why as string }),
  };
}

function asMap(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array)
    throw new ProtocolError('bad-field', 'message is not a map');
  return value as Record<string, unknown>;
}

function uint(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffffffff)
    throw new ProtocolError('bad-field', `${name} is not a 32-bit unsigned integer`);
  return value;
}

function bstr(value: unknown, name: string, min: number, max: number): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length < min || value.length > max)
    throw new ProtocolError('bad-field', `${name} is not ${min}-${max} bytes`);
  return value;
}
