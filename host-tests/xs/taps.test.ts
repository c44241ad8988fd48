// The firmware and its virtual hardware, bundled, run 100 taps under the real XS
// engine; records and chain links must equal those of the same scenario under Node. Prints the XS
// compute meter and heap per tap (figures, never assertions on their size).
import assert from 'node:assert/strict';
import { type ScenarioSummary, TapScenario, type TapOutcome } from '../../sim/fleet/tapScenario';
import { bundleForXs, type MeterUsage, startXs, type XsWorker, xsnapAvailable } from '../../sim/xs/xsnap';

const TAPS = 100;

describe('100 taps under the real XS engine', function () {
  this.timeout(120_000);
  let xs: XsWorker | undefined;
  const usages: MeterUsage[] = [];
  let xsTaps: TapOutcome[] = [];
  let xsSummary: ScenarioSummary;
  let nodeTaps: TapOutcome[] = [];
  let nodeSummary: ScenarioSummary;
  let bundleKiB = 0;

  before(async () => {
    const availability = xsnapAvailable();
    if (!availability.available) assert.fail(availability.reason);
    const script = await bundleForXs('sim/entries/taps.entry.ts');
    bundleKiB = script.length / 1024;
    xs = await startXs({ name: 'taps' });
    await xs.evaluate(script);
    await xs.evaluate('scenario.start()');
    for (let i = 0; i < TAPS; i++) usages.push(await xs.evaluate(`scenario.tap(${i})`));
    await xs.evaluate('scenario.finish()');
    const messages = xs.messages as { tap?: TapOutcome; summary?: ScenarioSummary }[];
    xsTaps = messages.flatMap((m) => (m.tap ? [m.tap] : []));
    xsSummary = messages.find((m) => m.summary)!.summary!;

    const node = new TapScenario();
    nodeTaps = Array.from({ length: TAPS }, (_, i) => node.tap(i));
    nodeSummary = node.summary();
  });

  after(async () => {
    await xs?.close();
  });

  it('runs every tap under XS', () => {
    assert.equal(xsTaps.length, TAPS);
    assert.ok(xsSummary, 'XS sent its summary');
  });

  it('stores the same records and chain links as Node, byte for byte', () => {
    assert.ok(nodeSummary.records.length > TAPS, 'a record per tap plus the boot record');
    assert.deepEqual(xsSummary.records, nodeSummary.records);
  });

  it('shows the same screens as Node', () => {
    assert.deepEqual(xsTaps, nodeTaps);
  });

  it('gets every record to the (virtual) platform and acknowledged, under XS too', () => {
    for (const summary of [xsSummary, nodeSummary]) {
      assert.deepEqual(summary.refusedByPlatform, []);
      assert.equal(summary.platformRecords, summary.records.length);
      assert.equal(summary.acknowledgedSeq, summary.records.length);
    }
  });

  it('reports the XS meter per tap', () => {
    const compute = usages.map((u) => u.compute);
    const heap = usages.map((u) => u.currentHeapCount);
    const mean = compute.reduce((a, b) => a + b, 0) / compute.length;
    console.log(
      `    XS per tap: compute mean ${Math.round(mean).toLocaleString('en')}, ` +
        `min ${Math.min(...compute).toLocaleString('en')}, max ${Math.max(...compute).toLocaleString('en')}; ` +
        `heap slots after first tap ${heap[0].toLocaleString('en')}, after last ${heap[heap.length - 1].toLocaleString('en')}; ` +
        `bundle ${bundleKiB.toFixed(0)} KiB`,
    );
    assert.ok(compute.every((c) => Number.isInteger(c) && c > 0));
  });
});
