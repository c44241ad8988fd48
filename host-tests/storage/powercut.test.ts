// The CI slice of the power-cut test (tools/powercut.ts): 2,000 cuts spread over append, backup,
// upload-set copy, ack handling and sector erase, each followed by a reboot and every invariant.
// `npm run test:powercut -- --seed S --cuts N` replays or extends it; the benchmark runs 100,000.
import assert from 'node:assert/strict';
import { CUT_TARGETS, formatResult, runPowerCuts } from '../../tools/powercut';

describe('power cuts during storage operations', () => {
  it('2,000 random cuts: no committed or acknowledged record lost, no duplicate, stores in step', function () {
    this.timeout(180_000);
    const violations: string[] = [];
    const result = runPowerCuts({ seed: 2026, cuts: 2000, onViolation: (m) => violations.push(m) });
    assert.deepEqual(violations.slice(0, 5), []);
    assert.equal(result.cuts, 2000);
    assert.equal(result.acknowledgedLost, 0);
    assert.equal(result.duplicates, 0);
    assert.equal(result.violations, 0);
    for (const target of CUT_TARGETS) assert.ok(result.cutsByTarget[target] > 300, `cuts during ${target}`);
    assert.ok(result.recovered > 0, 'some boots had something to repair');
    assert.ok(result.acknowledged > 10_000, `uploads went on between cuts (${result.acknowledged})`);
    assert.match(formatResult(result), /^cuts 2000, acknowledged lost 0, duplicates 0, recovered \d+$/);
  });

  it('replays: the same seed gives the same run', () => {
    const a = runPowerCuts({ seed: 7, cuts: 40 });
    const b = runPowerCuts({ seed: 7, cuts: 40 });
    assert.deepEqual(a, b);
  });
});
