// Management service (414), signed firmware: before accepting a new image the meter checks an
// Ed25519 signature (RFC 8032) made with the vendor's release key, whose public half was pinned at
// provisioning (secure element slot 6, see security.ts). The signed message binds the image's
// SHA-256 to its version, length and hardware target, after a version tag:
//   "ParkLink firmware v2" || version u32 || length u32 || target length u8 || target UTF-8 || SHA-256(image)
// The digest is all the check needs, so an image streamed to flash is verified without holding it.
import { ed25519 } from '@noble/curves/ed25519';
import type { Crypto } from '../../hal/crypto';
import { concatBytes, utf8, writeUint32 } from '../../protocol/bytes';

export type FirmwareRefusal = 'no-pinned-key' | 'bad-signature' | 'malformed' | 'downgrade' | 'wrong-target';

export class FirmwareRejected extends Error {
  override readonly name: string = 'FirmwareRejected';
  constructor(
    readonly reason: FirmwareRefusal,
    message: string,
  ) {
    super(`${reason}: ${message}`);
  }
}

/** What the release key signs about an image. */
export interface FirmwareManifest {
  version: number;
  length: number;
  /** Hardware target, e.g. "esp32-parklink-r2": 1-32 bytes of [a-z0-9-]. */
  target: string;
  /** SHA-256 of the image. */
  digest: Uint8Array;
}

const TAG = 'ParkLink firmware v2';
const TARGET = /^[a-z0-9-]{1,32}$/;

export function isFirmwareTarget(target: unknown): target is string {
  return typeof target === 'string' && TARGET.test(target);
}

export function firmwareMessage(m: FirmwareManifest): Uint8Array {
  if (!isFirmwareTarget(m.target)) throw new FirmwareRejected('malformed', 'hardware target');
  const head = new Uint8Array(9);
  writeUint32(head, 0, m.version);
  writeUint32(head, 4, m.length);
  head[8] = m.target.length;
  return concatBytes(utf8(TAG), head, utf8(m.target), m.digest);
}

/**
 * Throws FirmwareRejected unless `signature` is the pinned key's over this manifest, the target is
 * `target` and the version is after `floor` (the running version or the anti-rollback floor).
 */
export function checkFirmwareSignature(
  pinnedKey: Uint8Array | undefined,
  m: FirmwareManifest,
  signature: Uint8Array,
  expected: { target: string; floor: number },
): void {
  if (pinnedKey?.length !== 32 || !pinnedKey)
    throw new FirmwareRejected('no-pinned-key', 'no release key pinned at provisioning');
  const u32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
  if (signature.length !== 64 || !u32(m.version) || !u32(m.length) || m.digest.length !== 32)
    throw new FirmwareRejected('malformed', 'signature, version, length or digest');
  if (!isFirmwareTarget(m.target)) throw new FirmwareRejected('malformed', 'hardware target');
  if (m.target !== expected.target)
    throw new FirmwareRejected('wrong-target', `image for ${m.target}, this meter is ${expected.target}`);
  if (m.version <= expected.floor)
    throw new FirmwareRejected('downgrade', `version ${m.version} is not after ${expected.floor}`);
  let ok = false;
  try {
    ok = ed25519.verify(signature, firmwareMessage(m), pinnedKey);
  } catch {
    ok = false;
  }
  if (!ok) throw new FirmwareRejected('bad-signature', `image of ${m.length} bytes, version ${m.version}`);
}

/** Whole-image form: throws FirmwareRejected unless the image is signed, for `target`, newer than `running`. */
export function verifyFirmware(
  crypto: Pick<Crypto, 'sha256'>,
  pinnedKey: Uint8Array | undefined,
  image: Uint8Array,
  version: number,
  signature: Uint8Array,
  running: number,
  target: string,
): void {
  const m = { version, length: image.length, target, digest: crypto.sha256(image) };
  checkFirmwareSignature(pinnedKey, m, signature, { target, floor: running });
}
