import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AuthenticationError } from '../../hal/crypto';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { nodeCrypto } from '../../platform-server/core/nodeCrypto';

// The platform seals and opens with OpenSSL, the firmware with @noble: they must agree byte for byte.
describe('platform crypto (node:crypto) against the firmware provider (@noble)', () => {
  const key = fc.oneof(
    fc.uint8Array({ minLength: 16, maxLength: 16 }),
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
  );
  const nonce = fc.uint8Array({ minLength: 12, maxLength: 12 });
  const data = fc.uint8Array({ maxLength: 300 });

  it('hashes and MACs alike', () => {
    fc.assert(
      fc.property(key, data, (k, d) => {
        assert.deepEqual(nodeCrypto.sha256(d), nobleCrypto.sha256(d));
        assert.deepEqual(nodeCrypto.hmacSha256(k, d), nobleCrypto.hmacSha256(k, d));
      }),
      { numRuns: 200 },
    );
  });

  it('seals alike, and each opens what the other sealed', () => {
    fc.assert(
      fc.property(key, nonce, data, data, (k, n, plaintext, aad) => {
        const sealed = nodeCrypto.aesGcmEncrypt(k, n, plaintext, aad);
        assert.deepEqual(sealed, nobleCrypto.aesGcmEncrypt(k, n, plaintext, aad));
        assert.deepEqual(nobleCrypto.aesGcmDecrypt(k, n, sealed, aad), plaintext);
        assert.deepEqual(nodeCrypto.aesGcmDecrypt(k, n, sealed, aad), plaintext);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a flipped bit anywhere, a wrong key or AAD, and a short input with AuthenticationError', () => {
    const k = new Uint8Array(32).fill(7);
    const n = new Uint8Array(12).fill(1);
    const aad = Uint8Array.of(1, 2, 3);
    const sealed = nodeCrypto.aesGcmEncrypt(k, n, Uint8Array.of(10, 20, 30, 40), aad);
    for (let i = 0; i < sealed.length * 8; i++) {
      const bad = sealed.slice();
      bad[i >> 3] ^= 1 << (i & 7);
      assert.throws(() => nodeCrypto.aesGcmDecrypt(k, n, bad, aad), AuthenticationError);
    }
    assert.throws(() => nodeCrypto.aesGcmDecrypt(new Uint8Array(32), n, sealed, aad), AuthenticationError);
    assert.throws(() => nodeCrypto.aesGcmDecrypt(k, n, sealed, Uint8Array.of(1, 2)), AuthenticationError);
    assert.throws(() => nodeCrypto.aesGcmDecrypt(k, n, sealed.subarray(0, 15), aad), AuthenticationError);
  });
});
