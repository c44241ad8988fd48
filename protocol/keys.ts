// Key derivation with HKDF-SHA-256 (RFC 5869) over the HAL's HMAC, so the device can use its
// native HMAC. The meter's key hierarchy (seed Fig. 8, security management 47):
//   A  in the secure access module (SAM), with the meter id and the derivation of D;
//   B  and C in the crypto memory (the ATECC608-class secure element);
//   D  = KDF(A, B): the secure element computes s = HMAC(B, "downlink salt" || id || epoch) with B
//        in its key slot, the SAM computes D = HKDF(ikm A, salt s, info "downlink D" || id || epoch)
//        with A in its memory, so neither A nor B enters the meter's heap; D opens downlinks;
//   C  seals uplinks (AES-256-GCM needs it in RAM: the chip cannot do AES-256);
//   M  in the SAM: the per-meter maintenance key behind the handheld's session tokens.
// The platform derives A, B, C and M per meter and epoch from its master key (HKDF Expand only, so
// an HSM holding the master's Extract can run it) and D from A and B exactly as the two chips do.
import type { Crypto } from '../hal/crypto';
import { concatBytes, utf8, writeUint32 } from './bytes';
import { decodeCbor, encodeCbor } from './cbor';
import { ProtocolError } from './errors';

type Hmac = Pick<Crypto, 'hmacSha256'>;

export function hkdf(
  crypto: Hmac,
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Uint8Array {
  if (length > 255 * 32) throw new RangeError('HKDF output too long');
  const prk = crypto.hmacSha256(salt.length ? salt : new Uint8Array(32), ikm);
  const out = new Uint8Array(length);
  let block: Uint8Array = new Uint8Array(0);
  for (let i = 0, filled = 0; filled < length; i++) {
    block = crypto.hmacSha256(prk, concatBytes(block, info, Uint8Array.of(i + 1)));
    out.set(block.subarray(0, Math.min(32, length - filled)), filled);
    filled += 32;
  }
  prk.fill(0);
  return out;
}

export const KEY_LENGTH = 32;

export interface MeterKeys {
  epoch: number;
  /** C: encrypts uplinks (meter → platform). */
  uplink: Uint8Array;
  /** D = KDF(A, B): encrypts downlinks (platform → meter). */
  downlink: Uint8Array;
  /** What a factory (or a re-key) loads into the meter's secure parts; absent on keys held for ingest. */
  secrets?: MeterSecrets;
}

/** The keys a meter is loaded with for one epoch. */
export interface MeterSecrets {
  /** A, for the SAM. */
  a: Uint8Array;
  /** B, for the secure element. */
  b: Uint8Array;
  /** M, the SAM's maintenance-token key. */
  m: Uint8Array;
}

function idAndEpoch(meterId: number, epoch: number): Uint8Array {
  const bytes = new Uint8Array(8);
  writeUint32(bytes, 0, meterId);
  writeUint32(bytes, 4, epoch);
  return bytes;
}

const SALT = 'ParkLink meter keys v1';

/** What the secure element computes with B in its slot: s = HMAC-SHA-256(B, "downlink salt" || id || epoch). */
export function downlinkSaltMessage(meterId: number, epoch: number): Uint8Array {
  return concatBytes(utf8('downlink salt'), idAndEpoch(meterId, epoch));
}

/** What the SAM computes with A in its memory: D = HKDF(A, s, "downlink D" || id || epoch). */
export function downlinkKeyFromSalt(
  crypto: Hmac,
  a: Uint8Array,
  salt: Uint8Array,
  meterId: number,
  epoch: number,
): Uint8Array {
  return hkdf(crypto, a, salt, concatBytes(utf8('downlink D'), idAndEpoch(meterId, epoch)), KEY_LENGTH);
}

/** D = KDF(A, B), the two chips' steps in one (platform, tests). */
export function combineDownlinkKey(
  crypto: Hmac,
  a: Uint8Array,
  b: Uint8Array,
  meterId: number,
  epoch: number,
) {
  const salt = crypto.hmacSha256(b, downlinkSaltMessage(meterId, epoch));
  const d = downlinkKeyFromSalt(crypto, a, salt, meterId, epoch);
  salt.fill(0);
  return d;
}

/** The maintenance token's per-session secret: HMAC(M, token bytes), computed inside the SAM. */
export function maintenanceSecret(crypto: Hmac, m: Uint8Array, token: Uint8Array): Uint8Array {
  return crypto.hmacSha256(m, concatBytes(utf8('maintenance token'), token));
}

/**
 * Every key of one meter for one epoch from the platform's master key. `crypto` runs the HKDF
 * steps over the master (an HSM's Crypto can); the combination D = KDF(A, B) runs in software
 * (`combine`, by default this module's own HMAC-SHA-256), since A and B leave the HSM anyway to be
 * loaded into the meter.
 */
export function deriveMeterKeys(
  crypto: Crypto,
  master: Uint8Array,
  meterId: number,
  epoch: number,
  combine: Hmac = softwareHmac,
): MeterKeys {
  const ie = idAndEpoch(meterId, epoch);
  const salt = utf8(SALT);
  const expand = (label: string) => hkdf(crypto, master, salt, concatBytes(utf8(label), ie), KEY_LENGTH);
  const uplink = expand('uplink C');
  const a = expand('key A');
  const b = expand('key B');
  const m = expand('maintenance M');
  return { epoch, uplink, downlink: combineDownlinkKey(combine, a, b, meterId, epoch), secrets: { a, b, m } };
}

/** Zeroes every key of a MeterKeys in place. */
export function wipeMeterKeys(keys: MeterKeys): void {
  keys.uplink.fill(0);
  keys.downlink.fill(0);
  keys.secrets?.a.fill(0);
  keys.secrets?.b.fill(0);
  keys.secrets?.m.fill(0);
}

// ---- SHA-256 (FIPS 180-4) and HMAC (RFC 2104) in plain ECMAScript -------------------------------
// Only for the KDF(A, B) step of deriveMeterKeys, which must not go through the caller's Crypto:
// the platform's HSM Crypto answers HMAC only under its master. Checked against @noble/hashes in
// host-tests/security/keys.test.ts.

const K256 = Uint32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);

export function sha256(data: Uint8Array): Uint8Array {
  const h = Uint32Array.from([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const blocks = Math.ceil((data.length + 9) / 64);
  const padded = new Uint8Array(blocks * 64);
  padded.set(data);
  padded[data.length] = 0x80;
  const bits = data.length * 8;
  writeUint32(padded, padded.length - 8, Math.floor(bits / 0x1_0000_0000));
  writeUint32(padded, padded.length - 4, bits >>> 0);
  const w = new Uint32Array(64);
  const rotr = (x: number, n: number) => (x >>> n) | (x << (32 - n));
  for (let offset = 0; offset < padded.length; offset += 64) {
    for (let i = 0; i < 16; i++) {
      const j = offset + i * 4;
      w[i] = (padded[j] << 24) | (padded[j + 1] << 16) | (padded[j + 2] << 8) | padded[j + 3];
    }
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
      const t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
  }
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) writeUint32(out, i * 4, h[i]);
  return out;
}

export const softwareHmac: Hmac = {
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
    const block = new Uint8Array(64);
    block.set(key.length > 64 ? sha256(key) : key);
    const inner = new Uint8Array(64);
    const outer = new Uint8Array(64);
    for (let i = 0; i < 64; i++) {
      inner[i] = block[i] ^ 0x36;
      outer[i] = block[i] ^ 0x5c;
    }
    return sha256(concatBytes(outer, sha256(concatBytes(inner, data))));
  },
};

// ---- Key rotation (downlink 0x83) and the security uplink (0x03) ------------------------------
// 0x83 body: { "epoch": new epoch, "keys": AES-256-GCM(KEK, nonce, C || A || B || M, aad) } with
//   KEK   = HKDF(current D, "ParkLink key wrap v1", meterId || new epoch)
//   nonce = "PLKW" || new epoch || 00 00 00 00, aad = "ParkLink key wrap v1" || meterId || new epoch
// so the new keys travel wrapped under the current epoch's downlink key, inside a frame sealed with
// it. 0x03 body: { "ev": text, "epoch": uint, "kcv": bstr(3), "at": uint, "detail": text }, where
// "key-epoch" acknowledges a rotation (kcv = first 3 bytes of SHA-256 of the new C) and other
// events ("tamper", "replay", ...) report security incidents.

export const KeyFrame = Object.freeze({ ROTATION: 0x83, SECURITY: 0x03 });
export const WRAPPED_LENGTH = 4 * KEY_LENGTH + 16;

const WRAP_LABEL = 'ParkLink key wrap v1';

function wrapParameters(crypto: Crypto, currentDownlink: Uint8Array, meterId: number, epoch: number) {
  const ie = idAndEpoch(meterId, epoch);
  const kek = hkdf(crypto, currentDownlink, utf8(WRAP_LABEL), ie, KEY_LENGTH);
  const nonce = new Uint8Array(12);
  nonce.set(utf8('PLKW'));
  writeUint32(nonce, 4, epoch);
  return { kek, nonce, aad: concatBytes(utf8(WRAP_LABEL), ie) };
}

export function wrapEpochKeys(
  crypto: Crypto,
  currentDownlink: Uint8Array,
  meterId: number,
  next: MeterKeys,
): Uint8Array {
  const secrets = next.secrets;
  if (!secrets) throw new RangeError('the new epoch keys carry no secrets to wrap');
  const { kek, nonce, aad } = wrapParameters(crypto, currentDownlink, meterId, next.epoch);
  const plain = concatBytes(next.uplink, secrets.a, secrets.b, secrets.m);
  const sealed = crypto.aesGcmEncrypt(kek, nonce, plain, aad);
  plain.fill(0);
  kek.fill(0);
  return sealed;
}

/** The new epoch's C, A, B and M; throws ProtocolError('decrypt-failed') when the wrap does not open. */
export function unwrapEpochKeys(
  crypto: Crypto,
  currentDownlink: Uint8Array,
  meterId: number,
  epoch: number,
  wrapped: Uint8Array,
): { uplink: Uint8Array; secrets: MeterSecrets } {
  if (wrapped.length !== WRAPPED_LENGTH)
    throw new ProtocolError('bad-field', `wrapped keys of ${wrapped.length} bytes`);
  const { kek, nonce, aad } = wrapParameters(crypto, currentDownlink, meterId, epoch);
  let plain: Uint8Array;
  try {
    plain = crypto.aesGcmDecrypt(kek, nonce, wrapped, aad);
  } catch {
    throw new ProtocolError('decrypt-failed', `wrapped keys of epoch ${epoch} do not authenticate`);
  } finally {
    kek.fill(0);
  }
  const part = (i: number) => plain.slice(i * KEY_LENGTH, (i + 1) * KEY_LENGTH);
  const out = { uplink: part(0), secrets: { a: part(1), b: part(2), m: part(3) } };
  plain.fill(0);
  return out;
}

/** Key check value of an uplink key: the first 3 bytes of its SHA-256. */
export function keyCheckValueOf(crypto: Pick<Crypto, 'sha256'>, uplink: Uint8Array): Uint8Array {
  return crypto.sha256(uplink).slice(0, 3);
}

export interface RotationMessage {
  epoch: number;
  keys: Uint8Array;
}

export function encodeRotation(m: RotationMessage): Uint8Array {
  return encodeCbor({ epoch: m.epoch, keys: m.keys });
}

export function decodeRotation(body: Uint8Array): RotationMessage {
  const m = decodeCbor(body) as Record<string, unknown>;
  if (!m || typeof m !== 'object' || Array.isArray(m) || Object.keys(m).length !== 2)
    throw new ProtocolError('bad-field', 'rotation is not a map of 2');
  const { epoch, keys } = m;
  if (!isU32(epoch) || epoch === 0) throw new ProtocolError('bad-field', 'rotation epoch');
  if (!(keys instanceof Uint8Array) || keys.length !== WRAPPED_LENGTH)
    throw new ProtocolError('bad-field', 'rotation keys');
  return { epoch, keys };
}

export interface SecurityEvent {
  /** "key-epoch" (rotation acknowledged), "tamper", "replay", "maintenance-opened", ... */
  ev: string;
  epoch: number;
  /** Key check value of the epoch's C ("key-epoch"), else empty. */
  kcv: Uint8Array;
  /** Epoch seconds. */
  at: number;
  detail: string;
}

export function encodeSecurityEvent(e: SecurityEvent): Uint8Array {
  return encodeCbor({ ev: e.ev, epoch: e.epoch, kcv: e.kcv, at: e.at, detail: e.detail });
}

export function decodeSecurityEvent(body: Uint8Array): SecurityEvent {
  const m = decodeCbor(body) as Record<string, unknown>;
  if (!m || typeof m !== 'object' || Array.isArray(m) || Object.keys(m).length !== 5)
    throw new ProtocolError('bad-field', 'security event is not a map of 5');
  const { ev, epoch, kcv, at, detail } = m;
  if (typeof ev !== 'string' || !/^[a-z-]{1,32}$/.test(ev))
    throw new ProtocolError('bad-field', 'security event name');
  if (!isU32(epoch) || !isU32(at)) throw new ProtocolError('bad-field', 'security event epoch or time');
  if (!(kcv instanceof Uint8Array) || kcv.length > 3)
    throw new ProtocolError('bad-field', 'security event kcv');
  if (typeof detail !== 'string' || detail.length > 200)
    throw new ProtocolError('bad-field', 'security event detail');
  return { ev, epoch, kcv, at, detail };
}

function isU32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

// ---- Maintenance tokens (platform → staff handheld → meter over BLE) ---------------------------
// token  = CBOR [meterId, staff (text), tokenId (uint, increasing per meter), notBefore, expiresAt]
// secret = HMAC(M, "maintenance token" || token)   (the platform gives it to the handheld over TLS;
//                                                   the meter's SAM recomputes it)
// proof  = HMAC(secret, "ParkLink maintenance proof" || challenge(16) || meterId u32)
// BLE messages, CBOR maps: handheld {"t":"hello","token":bstr} → meter {"t":"challenge","c":bstr}
// → handheld {"t":"proof","p":bstr} → meter {"t":"ok"} or {"t":"refused","why":text}.

export interface MaintenanceToken {
  meterId: number;
  staff: string;
  tokenId: number;
  notBefore: number;
  expiresAt: number;
}

export function encodeMaintenanceToken(t: MaintenanceToken): Uint8Array {
  return encodeCbor([t.meterId, t.staff, t.tokenId, t.notBefore, t.expiresAt]);
}

export function decodeMaintenanceToken(bytes: Uint8Array): MaintenanceToken {
  const v = decodeCbor(bytes);
  if (!Array.isArray(v) || v.length !== 5) throw new ProtocolError('bad-field', 'token is not an array of 5');
  const [meterId, staff, tokenId, notBefore, expiresAt] = v;
  if (!isU32(meterId) || !isU32(tokenId) || !isU32(notBefore) || !isU32(expiresAt))
    throw new ProtocolError('bad-field', 'token numbers');
  if (typeof staff !== 'string' || staff.length === 0 || staff.length > 64)
    throw new ProtocolError('bad-field', 'token staff');
  if (expiresAt <= notBefore) throw new ProtocolError('bad-field', 'token expires before it starts');
  return { meterId, staff, tokenId, notBefore, expiresAt };
}

export function maintenanceProof(
  crypto: Hmac,
  secret: Uint8Array,
  challenge: Uint8Array,
  meterId: number,
): Uint8Array {
  const id = new Uint8Array(4);
  writeUint32(id, 0, meterId);
  return crypto.hmacSha256(secret, concatBytes(utf8('ParkLink maintenance proof'), challenge, id));
}
