// Message bodies carried inside frames (CBOR maps with short text keys).
import { HASH_LENGTH } from './chain';
import { decodeCbor, encodeCbor } from './cbor';
import { ProtocolError } from './errors';
import { map, uint } from './fields';

/** Uplink 0x01: a contiguous run of records and the chain link before the first of them. */
export interface RecordsMessage {
  previous: Uint8Array;
  records: Uint8Array[];
}

/** Downlink 0x81: the platform holds every record up to `seq`, whose chain link is `hash`. */
export interface AckMessage {
  seq: number;
  hash: Uint8Array;
}

export function encodeRecordsMessage(message: RecordsMessage): Uint8Array {
  return encodeCbor({ prev: message.previous, recs: message.records });
}

export function decodeRecordsMessage(body: Uint8Array): RecordsMessage {
  const value = map(decodeCbor(body));
  const previous = hash(value.prev, 'prev');
  if (!Array.isArray(value.recs) || value.recs.length === 0) {
    throw new ProtocolError('bad-field', 'recs is not a non-empty array');
  }
  const records = value.recs.map((r, i) => {
    if (!(r instanceof Uint8Array)) throw new ProtocolError('bad-field', `recs[${i}] is not a byte string`);
    return r;
  });
  return { previous, records };
}

export function encodeAckMessage(message: AckMessage): Uint8Array {
  return encodeCbor({ seq: message.seq, hash: message.hash });
}

export function decodeAckMessage(body: Uint8Array): AckMessage {
  const value = map(decodeCbor(body));
  return { seq: uint(value.seq, 'seq'), hash: hash(value.hash, 'hash') };
}

function hash(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== HASH_LENGTH) {
    throw new ProtocolError('bad-field', `${name} is not a 32-byte hash`);
  }
  return value;
}
