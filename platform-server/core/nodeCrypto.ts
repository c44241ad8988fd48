// The platform's crypto provider: the same primitives as hal/nobleCrypto.ts (which the firmware and
// its tests use), bound to OpenSSL through node:crypto. Ingest opens and chain-checks every uplink,
// and the pure-JS AES-GCM and SHA-256 cost about ten times more per byte than OpenSSL's.
import { type CipherGCMTypes, createCipheriv, createDecipheriv, createHmac, hash } from 'node:crypto';
import { AuthenticationError, type Crypto } from '../../hal/crypto';

const TAG_BYTES = 16;

/** AES-128, -192 or -256 by key length, as @noble/ciphers' gcm takes them. */
const gcmName = (key: Uint8Array) => `aes-${key.length * 8}-gcm` as CipherGCMTypes;

const bytes = (buffer: Buffer): Uint8Array => new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);

export const nodeCrypto: Crypto = {
  // One-shot: a third of createHash's cost on record-sized inputs (ingest hashes every record).
  sha256: (data) => bytes(hash('sha256', data, 'buffer')),
  // Through a one-byte string ('binary' is latin1), not a Buffer: half the cost per record (a
  // Buffer is a new ArrayBuffer each, which the garbage collector then tracks).
  sha256Into(data, out, offset) {
    const digest = hash('sha256', data, 'binary');
    for (let i = 0; i < 32; i++) out[offset + i] = digest.charCodeAt(i);
  },
  hmacSha256: (key, data) => bytes(createHmac('sha256', key).update(data).digest()),
  aesGcmEncrypt(key, nonce, plaintext, aad) {
    const cipher = createCipheriv(gcmName(key), key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad);
    return bytes(Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]));
  },
  aesGcmDecrypt(key, nonce, sealed, aad) {
    if (sealed.length < TAG_BYTES) throw new AuthenticationError('sealed data shorter than its tag');
    try {
      const decipher = createDecipheriv(gcmName(key), key, nonce, { authTagLength: TAG_BYTES });
      decipher.setAAD(aad);
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      return bytes(
        Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)), decipher.final()]),
      );
    } catch {
      throw new AuthenticationError();
    }
  },
};
