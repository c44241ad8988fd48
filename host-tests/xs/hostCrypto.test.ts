// The native crypto binding of the XS harness: what crosses issueCommand and what comes back.
import assert from 'node:assert/strict';
import { AuthenticationError } from '../../hal/crypto';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { nodeCrypto } from '../../platform-server/core/nodeCrypto';
import {
  answerCryptoCall,
  CRYPTO_MARK,
  CryptoOp,
  decodeCryptoCall,
  encodeCryptoCall,
} from '../../sim/xs/hostCrypto';

const key = Uint8Array.from({ length: 32 }, (_, i) => i);
const nonce = Uint8Array.from({ length: 12 }, (_, i) => 100 + i);
const aad = Uint8Array.of(1, 2, 3);
const plaintext = Uint8Array.from({ length: 70 }, (_, i) => i * 3);

describe('sim/xs/hostCrypto: the Crypto HAL bound to the host', () => {
  it('frames a call with its mark, op and every field, empty ones included', () => {
    const message = encodeCryptoCall(CryptoOp.GCM_ENCRYPT, [key, nonce, new Uint8Array(0), aad]);
    assert.equal(message[0], CRYPTO_MARK);
    const { op, fields } = decodeCryptoCall(message);
    assert.equal(op, CryptoOp.GCM_ENCRYPT);
    assert.deepEqual(
      fields.map((f) => [...f]),
      [[...key], [...nonce], [], [...aad]],
    );
  });

  it('answers each operation as the pure-JS provider computes it', () => {
    const answer = (op: number, fields: Uint8Array[]) =>
      answerCryptoCall(encodeCryptoCall(op, fields), nodeCrypto);
    assert.deepEqual(
      answer(CryptoOp.SHA256, [plaintext]),
      Uint8Array.of(0, ...nobleCrypto.sha256(plaintext)),
    );
    assert.deepEqual(
      answer(CryptoOp.HMAC, [key, plaintext]),
      Uint8Array.of(0, ...nobleCrypto.hmacSha256(key, plaintext)),
    );
    const sealed = nobleCrypto.aesGcmEncrypt(key, nonce, plaintext, aad);
    assert.deepEqual(answer(CryptoOp.GCM_ENCRYPT, [key, nonce, plaintext, aad]), Uint8Array.of(0, ...sealed));
    assert.deepEqual(answer(CryptoOp.GCM_DECRYPT, [key, nonce, sealed, aad]), Uint8Array.of(0, ...plaintext));
  });

  it('says a tag did not verify (status 1) and an unknown op failed (status 2)', () => {
    const sealed = nobleCrypto.aesGcmEncrypt(key, nonce, plaintext, aad);
    sealed[5] ^= 1;
    assert.deepEqual(
      answerCryptoCall(encodeCryptoCall(CryptoOp.GCM_DECRYPT, [key, nonce, sealed, aad]), nodeCrypto),
      Uint8Array.of(1),
    );
    assert.deepEqual(answerCryptoCall(encodeCryptoCall(99, []), nodeCrypto), Uint8Array.of(2));
    assert.ok(new AuthenticationError() instanceof Error);
  });
});
