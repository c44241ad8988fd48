// The Crypto HAL bound to native code for runs under xsnap, as Moddable's `crypt` binds it on the
// device: each call crosses to the host (issueCommand) as one binary message and OpenSSL does the
// work there, so the XS compute of a tap counts the firmware's own work, not pure-JS SHA-256 or AES.
// Message: CRYPTO_MARK + op, then length-prefixed fields; reply: status (0 ok, 1 tag mismatch) + bytes.
import { AuthenticationError, type Crypto } from '../../hal/crypto';

export const CRYPTO_MARK = 0xc0;
export const CryptoOp = Object.freeze({ SHA256: 1, HMAC: 2, GCM_ENCRYPT: 3, GCM_DECRYPT: 4 });

type IssueCommand = (message: ArrayBuffer) => ArrayBuffer;

export function encodeCryptoCall(op: number, fields: readonly Uint8Array[]): Uint8Array {
  let length = 2;
  for (const field of fields) length += 4 + field.length;
  const out = new Uint8Array(length);
  out[0] = CRYPTO_MARK;
  out[1] = op;
  let at = 2;
  for (const field of fields) {
    out[at] = field.length >>> 24;
    out[at + 1] = (field.length >>> 16) & 0xff;
    out[at + 2] = (field.length >>> 8) & 0xff;
    out[at + 3] = field.length & 0xff;
    out.set(field, at + 4);
    at += 4 + field.length;
  }
  return out;
}

export function decodeCryptoCall(bytes: Uint8Array): { op: number; fields: Uint8Array[] } {
  const fields: Uint8Array[] = [];
  let at = 2;
  while (at < bytes.length) {
    const length = ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
    fields.push(bytes.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return { op: bytes[1], fields };
}

function call(op: number, fields: readonly Uint8Array[]): Uint8Array {
  const issue = (globalThis as { issueCommand?: IssueCommand }).issueCommand;
  if (typeof issue !== 'function') throw new Error('hostCrypto: not running under xsnap');
  const message = encodeCryptoCall(op, fields);
  const reply = new Uint8Array(issue(message.buffer as ArrayBuffer));
  if (reply[0] === 1) throw new AuthenticationError();
  if (reply[0] !== 0) throw new Error('hostCrypto: the host could not compute');
  return reply.slice(1);
}

export const hostCrypto: Crypto = Object.freeze({
  sha256: (data: Uint8Array) => call(CryptoOp.SHA256, [data]),
  hmacSha256: (key: Uint8Array, data: Uint8Array) => call(CryptoOp.HMAC, [key, data]),
  aesGcmEncrypt: (key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array) =>
    call(CryptoOp.GCM_ENCRYPT, [key, nonce, plaintext, aad]),
  aesGcmDecrypt: (key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array) =>
    call(CryptoOp.GCM_DECRYPT, [key, nonce, sealed, aad]),
});

/** The host's side: answers one call with the given provider (OpenSSL on Node). */
export function answerCryptoCall(bytes: Uint8Array, crypto: Crypto): Uint8Array {
  const { op, fields } = decodeCryptoCall(bytes);
  const ok = (result: Uint8Array) => {
    const out = new Uint8Array(result.length + 1);
    out.set(result, 1);
    return out;
  };
  try {
    switch (op) {
      case CryptoOp.SHA256:
        return ok(crypto.sha256(fields[0]));
      case CryptoOp.HMAC:
        return ok(crypto.hmacSha256(fields[0], fields[1]));
      case CryptoOp.GCM_ENCRYPT:
        return ok(crypto.aesGcmEncrypt(fields[0], fields[1], fields[2], fields[3]));
      case CryptoOp.GCM_DECRYPT:
        return ok(crypto.aesGcmDecrypt(fields[0], fields[1], fields[2], fields[3]));
      default:
        return Uint8Array.of(2);
    }
  } catch (error) {
    return Uint8Array.of(error instanceof AuthenticationError ? 1 : 2);
  }
}
