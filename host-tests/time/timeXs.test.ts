// Time management under the real XS engine: the same scenario as on Node, the same results byte for
// byte (the request, the records flagged before and after the sync) and the same clock.
import assert from 'node:assert/strict';
import { TimeState } from '../../protocol/time';
import { bundleForXs, startXs, type XsWorker, xsnapAvailable } from '../../sim/xs/xsnap';
import { type TimeScenarioResult, timeScenario } from './timeScenario';

describe('time management under XS', function () {
  this.timeout(20_000);
  let xs: XsWorker | undefined;

  after(async () => {
    await xs?.close();
  });

  it('runs the scenario under XS exactly as on Node', async () => {
    const availability = xsnapAvailable();
    if (!availability.available) assert.fail(availability.reason);
    xs = await startXs({ name: 'time', onPrint: (line) => console.log(`    [xs] ${line}`) });
    const usage = await xs.evaluate(await bundleForXs('host-tests/time/timeXs.entry.ts'));
    console.log(
      `    time scenario under XS: compute ${usage.compute.toLocaleString('en')}, heap ${usage.currentHeapCount.toLocaleString('en')} slots`,
    );
    const message = (xs.messages as (TimeScenarioResult & { test: string })[]).find((m) => m.test === 'time');
    assert.ok(message, 'the scenario sent its result');
    const { test: _test, ...underXs } = message;
    const onNode = timeScenario();
    assert.deepEqual(underXs, onNode);
    // And the scenario itself says what it should.
    assert.equal(onNode.stateBefore, TimeState.Unset);
    assert.equal(onNode.stateAfter, TimeState.Synced);
    assert.deepEqual(onNode.refused, ['unsolicited']);
    assert.equal(onNode.recordBefore[onNode.recordBefore.length - 1], TimeState.Unset);
    assert.equal(onNode.recordAfter[onNode.recordAfter.length - 1], TimeState.Synced);
    assert.equal(onNode.nowAfterSlew - onNode.nowAfterStep, 1_060_000 - 400);
  });
});
