// The hash chain over a meter's records: link(n) = SHA-256(link(n-1) || record bytes(n)), starting
// from a per-meter genesis value, so one altered, removed or reordered record breaks every later link.
import type { Crypto } from '../hal/crypto';
import { bytesEqual, concatBytes, utf8, writeUint32 } from './bytes';
import { ProtocolError } from './errors';

export const HASH_LENGTH = 32;

/** The link before a meter's first record: SHA-256("ParkLink chain v1" || meter id, 4 bytes big-endian). */
export function genesisHash(crypto: Crypto, meterId: number): Uint8Array {
  const id = new Uint8Array(4);
  writeUint32(id, 0, meterId);
  return crypto.sha256(concatBytes(utf8('ParkLink chain v1'), id));
}

export function chainLink(crypto: Crypto, previous: Uint8Array, recordBytes: Uint8Array): Uint8Array {
  if (previous.length !== HASH_LENGTH) throw new ProtocolError('bad-field', 'previous link is not 32 bytes');
  return crypto.sha256(concatBytes(previous, recordBytes));
}

/** Checks that `records` follow `previous` link by link; returns every link, or throws chain-broken. */
export function verifyChain(
  crypto: Crypto,
  previous: Uint8Array,
  records: readonly Uint8Array[],
  expectedLinks?: readonly Uint8Array[],
): Uint8Array[] {
  if (previous.length !== HASH_LENGTH) throw new ProtocolError('bad-field', 'previous link is not 32 bytes');
  let longest = 0;
  for (const bytes of records) if (bytes.length > longest) longest = bytes.length;
  // One buffer for every link's input (link || record), not one per record: ingest runs this for
  // every record the fleet uploads.
  const input = new Uint8Array(HASH_LENGTH + longest);
  // The links side by side in one buffer too, each a view of its 32 bytes.
  const all = new Uint8Array(HASH_LENGTH * records.length);
  const links: Uint8Array[] = [];
  let link = previous;
  for (let i = 0; i < records.length; i++) {
    const bytes = records[i];
    input.set(link, 0);
    input.set(bytes, HASH_LENGTH);
    const data = input.subarray(0, HASH_LENGTH + bytes.length);
    const at = i * HASH_LENGTH;
    if (crypto.sha256Into) crypto.sha256Into(data, all, at);
    else all.set(crypto.sha256(data), at);
    link = all.subarray(at, at + HASH_LENGTH);
    if (expectedLinks && !bytesEqual(link, expectedLinks[i])) {
      throw new ProtocolError('chain-broken', `record ${i} does not follow its predecessor`);
    }
    links.push(link);
  }
  return links;
}
