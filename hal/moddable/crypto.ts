// The Crypto interface on Moddable's native `crypt` module (modules/crypt/digest/modCrypt.c, KCL):
// SHA-256 by Digest, HMAC by the SDK's `hmac` module over that Digest, AES-GCM by the SDK's `gcm`
// module over BlockCipher("AES") (CTR and GHASH run natively). Nothing falls back to nobleCrypto.
/// <reference path="./typings.d.ts" />
import { BlockCipher, Digest } from 'crypt';
import GCM from 'gcm';
import HMAC from 'hmac';
import { AuthenticationError, type Crypto } from '../crypto';

const TAG_LENGTH = 16;
const NONCE_LENGTH = 12;

/** A fresh ArrayBuffer holding the bytes: the natives read keys, IVs and AAD with xsmcToArrayBuffer. */
function arrayBufferOf(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer as ArrayBuffer;
}

function aesGcm(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array): GCM {
  if (nonce.byteLength !== NONCE_LENGTH) throw new RangeError('AES-GCM nonce must be 12 bytes');
  const gcm = new GCM(new BlockCipher('AES', arrayBufferOf(key)), TAG_LENGTH);
  gcm.init(arrayBufferOf(nonce), arrayBufferOf(aad));
  return gcm;
}

export class ModdableCrypto implements Crypto {
  readonly #sha256 = new Digest('SHA256');

  sha256(data: Uint8Array): Uint8Array {
    return new Uint8Array(this.#sha256.process(data));
  }

  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
    return new Uint8Array(new HMAC(new Digest('SHA256'), key).process(data));
  }

  aesGcmEncrypt(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
    const gcm = aesGcm(key, nonce, aad);
    // The SDK's CTR mode cannot take an empty buffer (examples/crypt/cryptblockcipher); GHASH of no
    // ciphertext is simply not updated.
    const sealed = new Uint8Array(plaintext.byteLength + TAG_LENGTH);
    if (plaintext.byteLength > 0) sealed.set(new Uint8Array(gcm.encrypt(plaintext)), 0);
    sealed.set(new Uint8Array(gcm.close()), plaintext.byteLength);
    return sealed;
  }

  aesGcmDecrypt(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
    if (sealed.byteLength < TAG_LENGTH) throw new AuthenticationError('sealed data shorter than the tag');
    const length = sealed.byteLength - TAG_LENGTH;
    const gcm = aesGcm(key, nonce, aad);
    const plaintext =
      length > 0 ? new Uint8Array(gcm.decrypt(sealed.subarray(0, length))) : new Uint8Array(0);
    // GCM.process() compares tags with Bin.comp, which stops at the first difference: compare in
    // constant time here instead.
    const tag = new Uint8Array(gcm.close());
    let difference = 0;
    for (let i = 0; i < TAG_LENGTH; i++) difference |= tag[i] ^ sealed[length + i];
    if (difference !== 0) {
      plaintext.fill(0);
      throw new AuthenticationError();
    }
    return plaintext;
  }
}
