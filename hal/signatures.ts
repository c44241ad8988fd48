// Signature checks a board can make: Ed25519 (RFC 8032) for files signed by the vendor's release
// key. Optional on a board: the ESP32 build binds none yet (its native crypto has no Ed25519), so a
// meter without one refuses signed reader firmware as 'unsupported' rather than take it unchecked.
export interface SignatureVerifier {
  /** True when `signature` is `publicKey`'s Ed25519 signature over `message`; false otherwise, never a throw. */
  ed25519(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
}
