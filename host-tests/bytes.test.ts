import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fromHex, ownBuffer, toHex, utf8 } from '../protocol/bytes';

// The firmware's byte helpers (no Buffer, no TextEncoder under XS) against Node's own.
describe('protocol byte helpers', () => {
  it('utf8 encodes as TextEncoder does, ASCII and beyond', () => {
    const encoder = new TextEncoder();
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' })),
        (text) => {
          // Lone surrogates are not text TextEncoder can round-trip; the records never carry them.
          fc.pre(!/\p{Surrogate}/u.test(text));
          assert.deepEqual(utf8(text), encoder.encode(text));
        },
      ),
      { numRuns: 500 },
    );
    assert.deepEqual(utf8('6280123400000050'), encoder.encode('6280123400000050'));
    assert.deepEqual(utf8('£2.40 · Zone B'), encoder.encode('£2.40 · Zone B'));
  });

  it('toHex and fromHex agree with Buffer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const hex = toHex(bytes);
        assert.equal(hex, Buffer.from(bytes).toString('hex'));
        assert.deepEqual(fromHex(hex), bytes);
      }),
      { numRuns: 500 },
    );
  });

  it('ownBuffer copies exactly the bytes, also from a Buffer that is a view of a larger pool', () => {
    const pooled = Buffer.from([1, 2, 3, 4, 5]).subarray(1, 4);
    assert.ok(pooled.buffer.byteLength > 3, 'a view of a larger buffer');
    const own = ownBuffer(pooled);
    assert.equal(own.byteLength, 3);
    assert.deepEqual([...new Uint8Array(own)], [2, 3, 4]);
    pooled[0] = 9;
    assert.equal(new Uint8Array(own)[0], 2, 'a copy, not a view');
  });
});
