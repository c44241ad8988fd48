// Management service (414d), signed reader firmware: before a reader firmware file is downloaded,
// and again once its bytes are on flash, the meter checks the Ed25519 signature (RFC 8032) of the
// release key pinned at provisioning (the key meter images are signed with, security.ts) over the
// file's name, version, length and SHA-256 (protocol/readerFiles.ts readerFirmwareMessage). The
// platform runs the same check when an administrator uploads the file. The Ed25519 check itself is
// the board's (hal/signatures.ts): a meter without one takes no reader firmware ('unsupported').
import type { SignatureVerifier } from '../../hal/signatures';
import { ProtocolError } from '../../protocol/errors';
import { type ReaderFileRefusal, readerFirmwareMessage } from '../../protocol/readerFiles';

/** A reader file refused, with the typed reason the meter reports in its 0x0B. */
export class ReaderFileRefused extends Error {
  override readonly name: string = 'ReaderFileRefused';
  constructor(
    readonly reason: ReaderFileRefusal,
    message: string,
  ) {
    super(`${reason}: ${message}`);
  }
}

/**
 * Throws ReaderFileRefused ('unsupported', 'no-pinned-key', 'malformed', 'bad-signature') unless the
 * signature verifies.
 */
export function checkReaderFirmwareSignature(
  verifier: SignatureVerifier | undefined,
  pinnedKey: Uint8Array | undefined,
  file: { name: string; version: number; length: number; sha256: Uint8Array },
  signature: Uint8Array | undefined,
): void {
  if (!verifier) throw new ReaderFileRefused('unsupported', 'this meter cannot check Ed25519 signatures');
  if (pinnedKey?.length !== 32 || !pinnedKey)
    throw new ReaderFileRefused('no-pinned-key', 'no release key pinned at provisioning');
  if (signature?.length !== 64 || !signature || file.sha256.length !== 32)
    throw new ReaderFileRefused('malformed', 'a reader firmware file needs a 64-byte signature');
  let message: Uint8Array;
  try {
    message = readerFirmwareMessage(file);
  } catch (error) {
    if (error instanceof ProtocolError) throw new ReaderFileRefused('malformed', error.message);
    throw error;
  }
  if (!verifier.ed25519(signature, message, pinnedKey))
    throw new ReaderFileRefused(
      'bad-signature',
      `reader firmware ${file.name} v${file.version} is not signed by the release key`,
    );
}
