// Key derivation with HKDF-SHA-256 (RFC 5869) over the HAL's HMAC, so the device can use its
// native HMAC. The platform derives each meter's uplink key (C) and downlink key (D) per epoch from
// a master key; the meter is provisioned with the pair (issue 5 moves A/B/C/D into the secure parts).
import type { Crypto } from '../hal/crypto';
import { concatBytes, utf8, writeUint32 } from './bytes';

export function hkdf(
  crypto: Crypto,
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
  return out;
}

export interface MeterKeys {
  epoch: number;
  /** C: encrypts uplinks (meter → platform). */
  uplink: Uint8Array;
  /** D: encrypts downlinks (platform → meter). */
  downlink: Uint8Array;
}

export function deriveMeterKeys(
  crypto: Crypto,
  master: Uint8Array,
  meterId: number,
  epoch: number,
): MeterKeys {
  const idAndEpoch = new Uint8Array(8);
  writeUint32(idAndEpoch, 0, meterId);
  writeUint32(idAndEpoch, 4, epoch);
  const salt = utf8('ParkLink meter keys v1');
  return {
    epoch,
    uplink: hkdf(crypto, master, salt, concatBytes(utf8('uplink C'), idAndEpoch), 32),
    downlink: hkdf(crypto, master, salt, concatBytes(utf8('downlink D'), idAndEpoch), 32),
  };
}
