// CBOR (RFC 8949) through cborg: deterministic encoding on the way out, strict decoding on the
// way in; malformed input becomes a ProtocolError, never a crash.
import { decode, encode, rfc8949EncodeOptions } from 'cborg';
import { ProtocolError } from './errors';

/** RFC 8949 §4.2.1 core deterministic encoding: map keys in bytewise order of their encoding.
 * (cborg's default length-first sorter also calls console.warn on a self-compare, which XS's sort
 * does and XS has no console: see the XS smoke test.) */
export function encodeCbor(value: unknown): Uint8Array {
  return encode(value, rfc8949EncodeOptions);
}

export function decodeCbor(bytes: Uint8Array): unknown {
  try {
    return decode(bytes, { strict: true, allowUndefined: false, rejectDuplicateMapKeys: true });
  } catch (error) {
    throw new ProtocolError('bad-cbor', (error as Error).message);
  }
}
