// The meter's fleet blacklist under the real XS engine (frozen primordials, no text globals but
// those firmware/setup/text installs): deltas, pages and refusals as under Node.
import assert from 'node:assert/strict';
import { bundleForXs, startXs, type XsWorker, xsnapAvailable } from '../../sim/xs/xsnap';

describe('XS: the blacklist unit', function () {
  this.timeout(60_000);
  let xs: XsWorker | undefined;

  after(async () => {
    await xs?.close();
  });

  it('applies a delta and a paged full list, refuses a wrong base and a malformed body, keeps the list, on one sector a slot and on 32', async () => {
    const availability = xsnapAvailable();
    if (!availability.available) assert.fail(availability.reason);
    xs = await startXs({ name: 'blacklist', onPrint: (line) => console.log(`    [xs] ${line}`) });
    await xs.evaluate(await bundleForXs('host-tests/xs/blacklist.entry.ts'));
    const m = (xs.messages as Record<string, unknown>[]).find((x) => x.test === 'blacklist');
    assert.ok(m, 'the script sent its result');
    assert.equal(m.afterDelta, 'stolen');
    assert.deepEqual(m.acks, [
      { type: 0x0a, version: 1, ok: true },
      { type: 0x0a, version: 5, ok: true },
      { type: 0x0a, version: 5, ok: false, why: 'base-mismatch' },
      { type: 0x0a, version: 5, ok: false, why: 'malformed' },
    ]);
    assert.deepEqual([m.size, m.version, m.removed], [60, 5, true]);
    assert.deepEqual(m.reloaded, [5, 60, 'stolen']);
    assert.deepEqual(m.table, [4, 1000, 'stolen', 'stolen', null]);
  });
});
