// CBOR (RFC 8949) through cborg: deterministic encoding on the way out, strict decoding on the
// way in; malformed input becomes a ProtocolError, never a crash.
import { decode, encode } from 'cborg';
import { ProtocolError } from './errors';

export function encodeCbor(value: unknown): Uint8Array {
  return encode(value);
}

export function decodeCbor(bytes: Uint8Array): unknown {
  try {
    return decode(bytes, { strict: true, allowUndefined: false, rejectDuplicateMapKeys: true });
  } catch (error) {
    throw new ProtocolError('bad-cbor', (error as Error).message);
  }
}
