// Operating parameters (management service): a versioned set pushed by the platform as downlink
// 0x89 and acknowledged by the meter with uplink 0x09, as CBOR maps like the other messages.
//   0x89 { v: version, p: { <name>: value, ... } }   names absent keep the meter's provisioned value
//   0x09 { v: version in force, ok, why?, refused?: version refused, local: bool, p: values in force }
// A set is validated whole: one value out of range refuses the set (ok false, why names the value)
// and the set in force stays. `local` says the set in force was changed at the meter in a
// maintenance session after version v, so the platform knows what the meter runs. A broker endpoint
// that does not connect within its trial is taken back out of the set in force and reported the
// same way (ok false, refused the version in force, why).
import { decodeCbor, encodeCbor } from './cbor';
import { ProtocolError } from './errors';

export const PARAMETERS_DOWNLINK = 0x89;
export const PARAMETERS_ACK_UPLINK = 0x09;

export type PreferredLink = 'primary' | 'fallback';

export interface ParameterValues {
  /** Seconds between upload attempts when records wait. */
  uploadIntervalSeconds: number;
  /** Largest record payload per upload set, bytes. */
  uploadBatchBytes: number;
  /** Idle seconds before display and reader antenna sleep. */
  sleepIdleSeconds: number;
  /** Whether the radio sleeps with them. */
  sleepRadio: boolean;
  /** The link used first when both are fitted. */
  preferredLink: PreferredLink;
  /** A new broker endpoint, tried while the last working one is kept. */
  brokerHost: string;
  brokerPort: number;
  /** Percentage of the upload store in use from which it counts as nearly full. */
  storageNearlyFullPercent: number;
  /** Seconds between the guard's status reports. */
  statusIntervalSeconds: number;
}

export type ParameterSet = Partial<ParameterValues>;

type Rule =
  | { kind: 'int'; min: number; max: number }
  | { kind: 'bool' }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'host' };

/** Each parameter's range; the platform and the meter check against the same table. */
export const PARAMETER_RULES: Readonly<Record<keyof ParameterValues, Rule>> = Object.freeze({
  uploadIntervalSeconds: { kind: 'int', min: 10, max: 86_400 },
  uploadBatchBytes: { kind: 'int', min: 256, max: 65_536 },
  sleepIdleSeconds: { kind: 'int', min: 5, max: 3_600 },
  sleepRadio: { kind: 'bool' },
  preferredLink: { kind: 'enum', values: ['primary', 'fallback'] },
  brokerHost: { kind: 'host' },
  brokerPort: { kind: 'int', min: 1, max: 65_535 },
  storageNearlyFullPercent: { kind: 'int', min: 50, max: 99 },
  statusIntervalSeconds: { kind: 'int', min: 60, max: 86_400 },
});

export const PARAMETER_NAMES = Object.freeze(Object.keys(PARAMETER_RULES) as (keyof ParameterValues)[]);

/** A parameter set refused: `field` names the value, the message says why. */
export class ParameterError extends Error {
  override readonly name: string = 'ParameterError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field} ${message}`);
  }
}

const HOST = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;

/** Checks a whole set; throws ParameterError on the first value out of range or name unknown. */
export function validateParameters(value: unknown): ParameterSet {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array)
    throw new ParameterError('p', 'is not a map');
  const input = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(input)) {
    const rule = (PARAMETER_RULES as Record<string, Rule | undefined>)[name];
    if (!rule) throw new ParameterError(name, 'is not a parameter');
    const v = input[name];
    if (rule.kind === 'int') {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < rule.min || v > rule.max)
        throw new ParameterError(name, `must be a whole number from ${rule.min} to ${rule.max}`);
    } else if (rule.kind === 'bool') {
      if (typeof v !== 'boolean') throw new ParameterError(name, 'must be true or false');
    } else if (rule.kind === 'enum') {
      if (typeof v !== 'string' || !rule.values.includes(v))
        throw new ParameterError(name, `must be one of ${rule.values.join(', ')}`);
    } else if (typeof v !== 'string' || !HOST.test(v)) {
      throw new ParameterError(name, 'must be a host name or address');
    }
    out[name] = v;
  }
  if ((out.brokerHost === undefined) !== (out.brokerPort === undefined))
    throw new ParameterError('brokerHost', 'and brokerPort come together');
  return out as ParameterSet;
}

export interface ParametersPush {
  version: number;
  values: ParameterSet;
}

export interface ParametersAck {
  /** The version in force. */
  version: number;
  ok: boolean;
  why?: string;
  /** The version refused, when ok is false. */
  refused?: number;
  /** The set in force was changed at the meter after `version`. */
  local: boolean;
  values: ParameterSet;
}

function map(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array)
    throw new ProtocolError('bad-field', 'message is not a map');
  return value as Record<string, unknown>;
}

function version(value: unknown, name = 'v'): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffffffff)
    throw new ProtocolError('bad-field', `${name} is not a 32-bit version`);
  return value;
}

export function encodeParametersPush(push: ParametersPush): Uint8Array {
  return encodeCbor({ v: push.version, p: push.values });
}

/** Decodes the envelope; the values are checked by validateParameters, so a refusal can name one. */
export function decodeParametersPush(body: Uint8Array): { version: number; values: unknown } {
  const m = map(decodeCbor(body));
  return { version: version(m.v), values: m.p };
}

export function encodeParametersAck(ack: ParametersAck): Uint8Array {
  const body: Record<string, unknown> = { v: ack.version, ok: ack.ok, local: ack.local, p: ack.values };
  if (ack.why !== undefined) body.why = ack.why;
  if (ack.refused !== undefined) body.refused = ack.refused;
  return encodeCbor(body);
}

export function decodeParametersAck(body: Uint8Array): ParametersAck {
  const m = map(decodeCbor(body));
  if (typeof m.ok !== 'boolean') throw new ProtocolError('bad-field', 'ok is not a boolean');
  if (typeof m.local !== 'boolean') throw new ProtocolError('bad-field', 'local is not a boolean');
  let values: ParameterSet;
  try {
    values = validateParameters(m.p);
  } catch (error) {
    throw new ProtocolError('bad-field', `p: ${(error as Error).message}`);
  }
  const ack: ParametersAck = { version: version(m.v), ok: m.ok, local: m.local, values };
  if (typeof m.why === 'string') ack.why = m.why;
  if (m.refused !== undefined) ack.refused = version(m.refused, 'refused');
  return ack;
}
