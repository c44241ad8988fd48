// Ed25519 checks in pure JavaScript (@noble/curves) for virtual boards on the host: tests and the
// virtual fleet give it to a VirtualBoard (options.signatures). Not part of any device build.
import { ed25519 } from '@noble/curves/ed25519';
import type { SignatureVerifier } from '../../hal/signatures';

export const nobleSignatures: SignatureVerifier = Object.freeze({
  ed25519(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
    try {
      return ed25519.verify(signature, message, publicKey);
    } catch {
      return false; // a malformed key or signature verifies nothing
    }
  },
});
