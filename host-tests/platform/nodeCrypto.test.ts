import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AuthenticationError } from '../../hal/crypto';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { nodeCrypto } from '../../platform-server/core/nodeCrypto';
import { genesisHash, verifyChain } from '../../protocol/chain';

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

  it('hashes into a buffer what it hashes alone, leaving the bytes around it as they were', () => {
    fc.assert(
      fc.property(data, fc.nat({ max: 40 }), fc.nat({ max: 40 }), (d, before, after) => {
        const out = new Uint8Array(before + 32 + after).fill(0xa5);
        nodeCrypto.sha256Into?.(d, out, before);
        assert.deepEqual(out.subarray(before, before + 32), nobleCrypto.sha256(d));
        assert.ok(out.subarray(0, before).every((b) => b === 0xa5));
        assert.ok(out.subarray(before + 32).every((b) => b === 0xa5));
      }),
      { numRuns: 200 },
    );
  });

  it('chains records to the same links with either provider', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 120 }), { minLength: 1, maxLength: 20 }),
        (records) => {
          const previous = genesisHash(nobleCrypto, 7_000_001);
          const links = verifyChain(nodeCrypto, previous, records);
          assert.deepEqual(links, verifyChain(nobleCrypto, previous, records));
          let link = previous;
          records.forEach((bytes, i) => {
            link = nobleCrypto.sha256(Uint8Array.from([...link, ...bytes]));
            assert.deepEqual(links[i], link);
            assert.equal(links[i].length, 32);
          });
        },
      ),
      { numRuns: 100 },
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
