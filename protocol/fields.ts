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

export function text(value: unknown, name: string): string {
  if (typeof value !== 'string') throw badField(`${name} is not text`);
  return value;
}
