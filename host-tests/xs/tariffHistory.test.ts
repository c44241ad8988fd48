// The tariff engine's history rules (a cap per period, no return, a flat amount valid until a time)
// and the meter's PurchaseHistory under the real XS engine: the same answers as under Node.
import assert from 'node:assert/strict';
import { bundleForXs, type MeterUsage, startXs, type XsWorker, xsnapAvailable } from '../../sim/xs/xsnap';
import { historyScenario } from './tariffHistory.scenario';

describe('XS: the tariff history rules under the real XS engine', function () {
  this.timeout(60_000);
  let xs: XsWorker | undefined;
  let usage: MeterUsage;
  let results: unknown[] = [];

  before(async () => {
    const availability = xsnapAvailable();
    if (!availability.available) assert.fail(availability.reason);
    const script = await bundleForXs('host-tests/xs/tariffHistory.entry.ts');
    xs = await startXs({ name: 'tariff-history', onPrint: (line) => console.log(`    [xs] ${line}`) });
    usage = await xs.evaluate(script);
    const sent = (xs.messages as { results?: unknown[]; $xsError?: unknown }[]).find(
      (m) => m.results || m.$xsError,
    );
    assert.ok(sent?.results, JSON.stringify(sent));
    results = sent.results;
    console.log(
      `    bundle ${(script.length / 1024).toFixed(0)} KiB; compute ${usage.compute.toLocaleString('en')}, ` +
        `heap ${usage.currentHeapCount.toLocaleString('en')} slots`,
    );
  });

  after(async () => {
    await xs?.close();
  });

  it('prices the scenario exactly as Node does', () => {
    assert.deepEqual(results, historyScenario());
  });

  it('caps, refuses and sells as the rules say', () => {
    const node = results as { amount?: number; reason?: string }[];
    assert.deepEqual(
      node.slice(0, 6).map((r) => r.amount),
      [350, 350, 100, 0, 350, 350],
      '8.00 a day from 02:00: the third purchase pays what is left, the evening ticket is free, the next day pays again',
    );
    assert.equal(node[6].amount, 300, 'the evening ticket valid until 07:00, for a payer with no history');
    assert.equal(node[7].reason, 'no-return', 'back within the hour');
    assert.equal(node[8], 7, 'the meter history holds every share of the day');
  });
});
