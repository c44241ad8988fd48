// The cryptographic primitives the firmware and protocol need. On the device these bind to
// Moddable's native `crypt` module; the pure-JS provider (hal/nobleCrypto.ts) serves the host and
// the XS test.

export interface Crypto {
  sha256(data: Uint8Array): Uint8Array;
  /**
   * SHA-256 of `data` written into `out` from `offset` (32 bytes), where a provider can do it without
   * a new buffer per call (the platform hashes every record it takes). Optional: without it, callers
   * copy sha256's result.
   */
  sha256Into?(data: Uint8Array, out: Uint8Array, offset: number): void;
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** AES-GCM with a 96-bit nonce and a 128-bit tag appended to the ciphertext. */
  aesGcmEncrypt(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array;
  /** Throws AuthenticationError when the tag does not verify. */
  aesGcmDecrypt(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array;
}

export class AuthenticationError extends Error {
  override readonly name: string = 'AuthenticationError';
  constructor(message = 'authentication tag mismatch') {
    super(message);
  }
}
