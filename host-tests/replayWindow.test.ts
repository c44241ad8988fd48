import assert from 'node:assert/strict';
import fc from 'fast-check';
import { REPLAY_WINDOW, ReplayWindow } from '../protocol/replayWindow';

describe('replay window (downlink anti-replay)', () => {
  it('accepts new numbers once, out of order within the window', () => {
    const w = new ReplayWindow();
    for (const seq of [1, 3, 2, 10, 5]) {
      assert.equal(w.check(seq), undefined, `first ${seq}`);
      w.accept(seq);
    }
    for (const seq of [1, 2, 3, 5, 10]) assert.match(w.check(seq) ?? '', /already accepted/);
    assert.equal(w.check(4), undefined, '4 was overtaken but never seen');
    assert.throws(() => w.accept(10), RangeError);
  });

  it('refuses what fell below the window, and non-positive numbers', () => {
    const w = new ReplayWindow();
    w.accept(100);
    assert.match(w.check(100 - REPLAY_WINDOW) ?? '', /older than the window/);
    assert.equal(w.check(100 - REPLAY_WINDOW + 1), undefined);
    assert.ok(w.check(0));
    assert.ok(w.check(-3));
  });

  it('treats everything up to an old high-water mark as spent', () => {
    const w = new ReplayWindow(20);
    for (let seq = 1; seq <= 20; seq++) assert.ok(w.check(seq), `seq ${seq}`);
    assert.equal(w.check(21), undefined);
  });

  it('survives encoding, and never accepts a number twice (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 200 }), (seqs) => {
        let w = new ReplayWindow();
        const accepted = new Set<number>();
        for (const seq of seqs) {
          if (w.check(seq) === undefined) {
            assert.ok(!accepted.has(seq), `accepted ${seq} twice`);
            accepted.add(seq);
            w.accept(seq);
            w = ReplayWindow.decode(w.encode());
          }
        }
        const highest = Math.max(0, ...accepted);
        assert.equal(w.highest, highest);
        for (const seq of seqs)
          if (seq > highest - REPLAY_WINDOW && !accepted.has(seq)) assert.equal(w.check(seq), undefined);
      }),
      { numRuns: 300 },
    );
  });
});
