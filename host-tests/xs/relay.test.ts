// The Zigbee relay under the real XS engine (frozen primordials as on the device): a frame goes up
// through the master unchanged, a downlink comes back, a corrupted UART frame is survived.
import assert from 'node:assert/strict';
import { bundleForXs, startXs, type XsWorker, xsnapAvailable } from '../../sim/xs/xsnap';

describe('XS: the Zigbee relay over XBee twins', function () {
  this.timeout(60_000);
  let xs: XsWorker | undefined;

  after(async () => {
    await xs?.close();
  });

  it('carries a frame up byte for byte and a downlink back, keeping nothing, through a bad checksum', async () => {
    const availability = xsnapAvailable();
    if (!availability.available) assert.fail(availability.reason);
    xs = await startXs({ name: 'relay', onPrint: (line) => console.log(`    [xs] ${line}`) });
    await xs.evaluate(await bundleForXs('host-tests/xs/relay.entry.ts'));
    const m = (xs.messages as Record<string, unknown>[]).find((x) => x.test === 'relay') as {
      connected: boolean;
      frame: Uint8Array;
      up: Uint8Array[];
      down: Uint8Array;
      downlinks: Uint8Array[];
      held: number;
      lineErrors: Record<string, number>;
    };
    assert.ok(m, 'the script sent its result');
    assert.equal(m.connected, true);
    assert.equal(m.lineErrors.checksum, 1, 'the corrupted frame was seen and dropped');
    assert.deepEqual(m.up, [m.frame], 'published once, unchanged');
    assert.deepEqual(m.downlinks, [m.down]);
    assert.equal(m.held, 0);
  });
});
