// Upload release tokens: the seed's "special password". A meter keeps an unacknowledged upload set
// and sends it again until the platform acknowledges it; only an operator-authorised release lets it
// discard the set (records lost to the platform, e.g. after a damaged store or a platform that will
// never accept them). The platform issues the token, signed with HMAC-SHA-256 under the meter's
// release key R; the meter verifies it, records a maintenance record and moves its acknowledged
// point to `toSeq`. The token travels in a 0x82 storage-control downlink or on a handheld.
//
//   R     = HKDF-SHA-256(ikm = D of key epoch 1, salt = "ParkLink release v1", info = meterId u32, 32)
//   body  = CBOR [ "PLR1", meterId, fromSeq, toSeq, issuedAt (epoch s), operator (text) ]
//   token = CBOR [ body (bstr), HMAC-SHA-256(R, body) (bstr 32) ]
import type { Crypto } from '../hal/crypto';
import { bytesEqual, utf8, writeUint32 } from './bytes';
import { decodeCbor, encodeCbor } from './cbor';
import { ProtocolError } from './errors';
import { hkdf } from './keys';

/** Downlink frame type of storage and upload control (0x02/0x82 are reserved for storage). */
export const STORAGE_CONTROL_FRAME = 0x82;
const TOKEN_TAG = 'PLR1';

export interface ReleaseToken {
  meterId: number;
  /** The first unacknowledged record: the release applies only while it is. */
  fromSeq: number;
  /** The last record released; the meter must hold its chain link. */
  toSeq: number;
  issuedAt: number;
  /** Who authorised it (operator account), kept in the meter's maintenance record. */
  operator: string;
}

export function deriveReleaseKey(crypto: Crypto, downlinkKeyEpoch1: Uint8Array, meterId: number): Uint8Array {
  const id = new Uint8Array(4);
  writeUint32(id, 0, meterId);
  return hkdf(crypto, downlinkKeyEpoch1, utf8('ParkLink release v1'), id, 32);
}

export function signReleaseToken(crypto: Crypto, key: Uint8Array, token: ReleaseToken): Uint8Array {
  check(token);
  const body = encodeCbor([
    TOKEN_TAG,
    token.meterId,
    token.fromSeq,
    token.toSeq,
    token.issuedAt,
    token.operator,
  ]);
  return encodeCbor([body, crypto.hmacSha256(key, body)]);
}

/** Decodes and authenticates a token; throws ProtocolError (`bad-cbor`, `bad-field`, `decrypt-failed`). */
export function verifyReleaseToken(crypto: Crypto, key: Uint8Array, bytes: Uint8Array): ReleaseToken {
  const outer = decodeCbor(bytes);
  if (!Array.isArray(outer) || outer.length !== 2) throw bad('token is not [body, tag]');
  const [body, tag] = outer;
  if (!(body instanceof Uint8Array) || !(tag instanceof Uint8Array) || tag.length !== 32)
    throw bad('token body or tag is not a byte string');
  if (!bytesEqual(crypto.hmacSha256(key, body), tag))
    throw new ProtocolError('decrypt-failed', 'release token signature does not verify');
  const fields = decodeCbor(body);
  if (!Array.isArray(fields) || fields.length !== 6 || fields[0] !== TOKEN_TAG)
    throw bad('not a release token');
  const token: ReleaseToken = {
    meterId: fields[1] as number,
    fromSeq: fields[2] as number,
    toSeq: fields[3] as number,
    issuedAt: fields[4] as number,
    operator: fields[5] as string,
  };
  check(token);
  return token;
}

function check(t: ReleaseToken): void {
  for (const [name, v] of [
    ['meterId', t.meterId],
    ['fromSeq', t.fromSeq],
    ['toSeq', t.toSeq],
    ['issuedAt', t.issuedAt],
  ] as const) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`${name} is not a uint`);
  }
  if (t.fromSeq < 1 || t.toSeq < t.fromSeq) throw bad('release range is empty');
  if (typeof t.operator !== 'string' || t.operator.length === 0 || t.operator.length > 64)
    throw bad('operator must be 1-64 characters');
}

function bad(message: string): ProtocolError {
  return new ProtocolError('bad-field', message);
}
