// Pure-JS crypto (audited @noble libraries): the host's provider and the one the XS test runs.
// On the device, hal/moddable binds Moddable's native `crypt` module to the same interface.
import { gcm } from '@noble/ciphers/aes';
import { hmac } from '@noble/hashes/hmac';
import { sha256 } from '@noble/hashes/sha256';
import { AuthenticationError, type Crypto } from './crypto';

export const nobleCrypto: Crypto = {
  sha256: (data) => sha256(data),
  hmacSha256: (key, data) => hmac(sha256, key, data),
  aesGcmEncrypt: (key, nonce, plaintext, aad) => gcm(key, nonce, aad).encrypt(plaintext),
  aesGcmDecrypt(key, nonce, sealed, aad) {
    try {
      return gcm(key, nonce, aad).decrypt(sealed);
    } catch {
      throw new AuthenticationError();
    }
  },
};
