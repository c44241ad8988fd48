// The firmware built by the real Moddable SDK (mcconfig -p x-cli-lin) and run on the real Moddable
// runtime: it boots, takes taps from the simulated driver and publishes over TCP to the platform,
// which stores every record with its chain verified. Needs MODDABLE (an SDK with its Linux tools
// built); the SDK cannot be installed from a package registry, so without it the test says so and
// is skipped. The first build compiles every module and takes minutes; later ones reuse it.
import assert from 'node:assert/strict';
import { runHostMeter } from '../../tools/device';

describe('the host build on the real Moddable runtime', function () {
  this.timeout(30 * 60_000);

  it('boots, takes three taps and the platform stores them with their chain verified', async function () {
    const moddable = process.env.MODDABLE;
    if (!moddable) {
      console.log('      skipped: MODDABLE is not set, so there is no Moddable SDK to build with');
      this.skip();
    }
    const lines: string[] = [];
    const run = await runHostMeter({
      moddable: moddable!,
      meterId: 1177,
      taps: 3,
      tapEveryMs: 500,
      seconds: 180,
      clean: true,
      onLine: (line) => lines.push(line),
    });
    const output = lines.join('\n');
    assert.equal(run.code, 0, output);
    assert.match(output, /meter 1177: personalised/);
    assert.match(output, /meter 1177: booted \(first start\)/);
    assert.equal(run.transactions, 3, output);
    assert.ok(run.stored >= 4, 'the boot record and the three sales');
    assert.equal(run.budget?.paid, 3);
    assert.ok((run.budget?.end.peakStack ?? 0) > 0, 'the instrumented build reports its stack peak');
    assert.ok((run.budget?.end.peakStack ?? Infinity) < (run.budget?.end.stackSlots ?? 0));
  });
});
