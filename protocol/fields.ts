// Checks of decoded CBOR fields shared by the message codecs: a field of the wrong kind is a
// ProtocolError 'bad-field' that names it.
import { ProtocolError } from './errors';

export function badField(message: string): ProtocolError {
  return new ProtocolError('bad-field', message);
}

/** A safe integer. */
export function int(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw badField(`${name} is not an integer`);
  return value;
}

/** A safe integer, not negative. */
export function uint(value: unknown, name: string): number {
  const n = int(value, name);
  if (n < 0) throw badField(`${name} is negative`);
  return n;
}

/** Text, at most `maxLength` characters when one is given. */
export function text(value: unknown, name: string, maxLength?: number): string {
  if (typeof value !== 'string') throw badField(`${name} is not text`);
  if (maxLength !== undefined && value.length > maxLength)
    throw badField(`${name} is longer than ${maxLength} characters`);
  return value;
}

/** A CBOR map with text keys (not an array, a byte string or null). */
export function map(value: unknown, name = 'message'): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array)
    throw badField(`${name} is not a map`);
  return value as Record<string, unknown>;
}
