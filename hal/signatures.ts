// Signature checks a board can make: Ed25519 (RFC 8032) for files signed by the vendor's release
// key. Optional on a board: without a native one (the ESP32's crypto has no Ed25519) the meter checks
// in pure JavaScript (hal/nobleSignatures.ts), as it checks firmware images.
export interface SignatureVerifier {
  /** True when `signature` is `publicKey`'s Ed25519 signature over `message`; false otherwise, never a throw. */
  ed25519(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
}
