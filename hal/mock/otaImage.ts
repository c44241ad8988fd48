// Virtual firmware images for the virtual A/B slots (hal/mock/ota.ts), laid out like an ESP32 app
// image as far as the bootloader cares: a header (magic "PLIM", version, payload length, flags),
// the payload, and the SHA-256 of both appended. The bootloader's check (readImage) refuses a slot
// whose hash does not match, as ESP-IDF's image verification does. A simulator's format: a real
// board boots real images and never reads these.
import { bytesEqual, readUint32, writeUint32 } from '../../protocol/bytes';
import type { NorFlash } from '../flash';
import { nobleCrypto as crypto } from '../nobleCrypto';

const MAGIC = 0x504c494d;

/** Flags a virtual image carries in its header: this one fails its self-test (a broken build). */
export const IMAGE_FAILS_SELF_TEST = 1;

export interface ImageInfo {
  version: number;
  flags: number;
}

/** A virtual image of `version` with `payloadBytes` of seeded filler. */
export function makeImage(version: number, payloadBytes: number, flags = 0, seed = version): Uint8Array {
  const image = new Uint8Array(16 + payloadBytes + 32);
  writeUint32(image, 0, MAGIC);
  writeUint32(image, 4, version);
  writeUint32(image, 8, payloadBytes);
  writeUint32(image, 12, flags);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < payloadBytes; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    image[16 + i] = x >>> 24;
  }
  image.set(crypto.sha256(image.subarray(0, 16 + payloadBytes)), 16 + payloadBytes);
  return image;
}

/** The bootloader's image check: a header and a matching appended hash, else undefined. */
export function readImage(slot: NorFlash): ImageInfo | undefined {
  const head = slot.read(0, 16);
  const length = readUint32(head, 8);
  if (readUint32(head, 0) !== MAGIC || 16 + length + 32 > slot.byteLength) return undefined;
  const body = slot.read(0, 16 + length);
  if (!bytesEqual(crypto.sha256(body), slot.read(16 + length, 32))) return undefined;
  return { version: readUint32(head, 4), flags: readUint32(head, 12) };
}
