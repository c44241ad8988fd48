// The CI slice of the firmware-update power-cut test (tools/updatePowercut.ts): 300 updates, each
// with power cut at a random byte of its download, switch or first boot, then rebooted until it
// settles. `npm run bench -- update-powercut` runs 10,000.
import assert from 'node:assert/strict';
import { CUT_PHASES, formatUpdateResult, runUpdatePowerCuts } from '../../tools/updatePowercut';

describe('power cuts during a firmware update', () => {
  it('300 cuts over download, switch and first boot: never bricked, no record lost, every update settles', function () {
    this.timeout(300_000);
    const violations: string[] = [];
    const result = runUpdatePowerCuts({ seed: 2026, cuts: 300, onViolation: (m) => violations.push(m) });
    assert.deepEqual(violations.slice(0, 5), []);
    assert.equal(result.cuts, 300);
    assert.equal(result.bricked, 0);
    assert.equal(result.recordsLost, 0);
    assert.equal(result.violations, 0);
    for (const phase of CUT_PHASES) assert.ok(result.cutsByPhase[phase] > 60, `cuts during ${phase}`);
    assert.ok(result.landed > 200, `most cuts fell on a write or erase (${result.landed})`);
    assert.ok(result.confirmed > 50, `updates went through between cuts (${result.confirmed})`);
    assert.ok(result.rolledBack > 20, `images were rolled back (${result.rolledBack})`);
    assert.match(
      formatUpdateResult(result),
      /^cuts 300 \(\d+ during a write or erase\), bricked 0, records lost 0/,
    );
  });

  it('replays: the same seed gives the same run', () => {
    assert.deepEqual(runUpdatePowerCuts({ seed: 9, cuts: 20 }), runUpdatePowerCuts({ seed: 9, cuts: 20 }));
  });
});
