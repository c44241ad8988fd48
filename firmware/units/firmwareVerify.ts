// Management service (414), signed firmware: before accepting a new image the meter
// checks an Ed25519 signature (RFC 8032) over SHA-256 of the image, made with the vendor's release
// key whose public half was pinned at provisioning (secure element slot 6, see security.ts). The
// signed message binds the hash to the image's version and length:
//   "ParkLink firmware v1" || version u32 || length u32 || SHA-256(image)
import { ed25519 } from '@noble/curves/ed25519';
import type { Crypto } from '../../hal/crypto';
import { concatBytes, utf8, writeUint32 } from '../../protocol/bytes';

export type FirmwareRefusal = 'no-pinned-key' | 'bad-signature' | 'malformed' | 'downgrade';

export class FirmwareRejected extends Error {
  override readonly name: string = 'FirmwareRejected';
  constructor(
    readonly reason: FirmwareRefusal,
    message: string,
  ) {
    super(`${reason}: ${message}`);
  }
}

export function firmwareMessage(
  crypto: Pick<Crypto, 'sha256'>,
  version: number,
  image: Uint8Array,
): Uint8Array {
  const head = new Uint8Array(8);
  writeUint32(head, 0, version);
  writeUint32(head, 4, image.length);
  return concatBytes(utf8('ParkLink firmware v1'), head, crypto.sha256(image));
}

/** Throws FirmwareRejected unless `signature` is the pinned key's over this image, newer than `running`. */
export function verifyFirmware(
  crypto: Pick<Crypto, 'sha256'>,
  pinnedKey: Uint8Array | undefined,
  image: Uint8Array,
  version: number,
  signature: Uint8Array,
  running = 0,
): void {
  if (pinnedKey?.length !== 32 || !pinnedKey)
    throw new FirmwareRejected('no-pinned-key', 'no release key pinned at provisioning');
  if (signature.length !== 64 || !Number.isInteger(version) || version < 0 || version > 0xffffffff)
    throw new FirmwareRejected('malformed', 'signature or version');
  if (version <= running)
    throw new FirmwareRejected('downgrade', `version ${version} is not after ${running}`);
  let ok = false;
  try {
    ok = ed25519.verify(signature, firmwareMessage(crypto, version, image), pinnedKey);
  } catch {
    ok = false;
  }
  if (!ok) throw new FirmwareRejected('bad-signature', `image of ${image.length} bytes, version ${version}`);
}
