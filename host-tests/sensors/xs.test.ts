// The guard's XS run: the guard and power scenario (sensors, fan, occupancy, packs) on the firmware
// bundled with its virtual chips, under the real XS engine; the records and chain links must equal
// those of the same scenario under Node. Prints the XS compute per minute of sampling (figures,
// never assertions on their size).
import assert from 'node:assert/strict';
import { bundleForXs, type MeterUsage, startXs, type XsWorker, xsnapAvailable } from '../../sim/xs/xsnap';
import { GuardScenario, type StepOutcome } from './scenario';

const STEPS = 40;

describe('guard and power scenario under the real XS engine', function () {
  this.timeout(120_000);
  let xs: XsWorker | undefined;
  const usages: MeterUsage[] = [];
  let xsSteps: StepOutcome[] = [];
  let xsSummary: ReturnType<GuardScenario['summary']>;
  let nodeSteps: StepOutcome[] = [];
  let nodeSummary: ReturnType<GuardScenario['summary']>;

  before(async () => {
    const availability = xsnapAvailable();
    if (!availability.available) assert.fail(availability.reason);
    const script = await bundleForXs('host-tests/sensors/guard.entry.ts');
    xs = await startXs({ name: 'guard' });
    await xs.evaluate(script);
    await xs.evaluate('scenario.start()');
    for (let i = 0; i < STEPS; i++) usages.push(await xs.evaluate(`scenario.step(${i})`));
    await xs.evaluate('scenario.finish()');
    const messages = xs.messages as { step?: StepOutcome; summary?: typeof xsSummary }[];
    xsSteps = messages.flatMap((m) => (m.step ? [m.step] : []));
    xsSummary = messages.find((m) => m.summary)!.summary!;
    const node = new GuardScenario();
    nodeSteps = Array.from({ length: STEPS }, (_, i) => node.step(i));
    nodeSummary = node.summary();
  });

  after(async () => {
    await xs?.close();
  });

  it('runs every step under XS and does what Node does, minute by minute', () => {
    assert.equal(xsSteps.length, STEPS);
    assert.deepEqual(xsSteps, nodeSteps);
  });

  it('raises alarms, cycles the fan, sees vehicles and switches packs without a gap', () => {
    const last = nodeSteps[STEPS - 1];
    assert.ok(last.alarms > 4, `${last.alarms} alarms`);
    assert.ok(nodeSteps.some((s) => s.fan) && nodeSteps.some((s) => !s.fan));
    assert.ok(nodeSteps.some((s) => s.occupied.length > 0));
    assert.equal(last.source, 'disposable');
    assert.equal(nodeSummary.gaps, 0);
  });

  it('stores the same records and chain links as Node, byte for byte', () => {
    assert.ok(nodeSummary.records.length > 10);
    assert.deepEqual(xsSummary, nodeSummary);
  });

  it('reports the XS meter per minute of sampling', () => {
    const compute = usages.map((u) => u.compute);
    const mean = compute.reduce((a, b) => a + b, 0) / compute.length;
    const sorted = [...compute].sort((a, b) => a - b);
    console.log(
      `    XS per minute (1 guard round, 12 bay rounds x 4 bays, 60 cover reads, 1 gauge round): compute mean ` +
        `${Math.round(mean).toLocaleString('en')}, median ${sorted[sorted.length >> 1].toLocaleString('en')}, ` +
        `max ${sorted[sorted.length - 1].toLocaleString('en')}; heap slots after the last ${usages[usages.length - 1].currentHeapCount.toLocaleString('en')}`,
    );
    assert.ok(compute.every((c) => Number.isInteger(c) && c > 0));
  });
});
