// Ed25519 checks in pure JavaScript (@noble/curves, which also checks firmware images on the
// device): the meter's check wherever the board binds no native one, the ESP32 included.
import { ed25519 } from '@noble/curves/ed25519';
import type { SignatureVerifier } from './signatures';

export const nobleSignatures: SignatureVerifier = Object.freeze({
  ed25519(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
    try {
      return ed25519.verify(signature, message, publicKey);
    } catch {
      return false; // a malformed key or signature verifies nothing
    }
  },
});
