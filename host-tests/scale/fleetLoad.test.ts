// A slice of the fleet load run (`npm run bench -- fleet` runs a city): a few dozen protocol-level
// meters, each on its own connection to a Mosquitto with the deployment's password file and ACL,
// the platform in its own process on the real PostgreSQL, a day compressed into seconds, drivers
// renewing by phone. Everything sent is stored once and every renewal reaches its meter; the
// figures are printed, never asserted (timings belong to the benchmark).
import assert from 'node:assert/strict';
import { CITY, runFleet } from '../../sim/fleet/fleetRun';
import { requireRealServices } from '../../sim/fleet/platform';
import { requireTools } from '../support/tlsCa';
import { report } from '../../tools/bench/fleet';

describe('fleet load, a slice (real PostgreSQL, Mosquitto, the platform in its own process)', function () {
  this.timeout(300_000);

  before(async function () {
    requireTools(this, 'mosquitto');
    await requireRealServices(this);
  });

  it('holds every connection, stores every record and status report once, and delivers every renewal', async () => {
    const lines: string[] = [];
    const result = await runFleet({
      ...CITY,
      meters: 40,
      seconds: 5,
      renewalSeconds: 4,
      // A day in about five minutes: each meter reports and sells many times in the window.
      speed: 300,
      renewalsPerSecond: 4,
      drivers: 6,
      connectPerSecond: 200,
      log: (line) => lines.push(line),
    });
    report(result, (line) => lines.push(line));
    console.log(lines.map((l) => `      ${l}`).join('\n'));

    assert.equal(result.metersConnected, 40);
    assert.equal(result.connectionsHeld, 40);
    assert.ok(result.setsSent > 0 && result.statusSent > 0, 'the window sent sets and status reports');
    assert.ok(result.drained.complete, 'the drain got every record through');
    assert.equal(result.recordsStored, result.recordsSent, 'every record stored, none twice');
    assert.equal(result.statusStored, result.statusSent, 'every status report stored once');
    assert.equal(result.recordsAcknowledged, result.recordsSent, 'every record acknowledged to its meter');
    assert.ok(result.renewalsRequested > 0);
    assert.deepEqual(result.renewalsRefused, {});
    assert.equal(result.renewalsApplied, result.renewalsRequested, 'every renewal applied at its meter');
    assert.equal(result.renewalAtMeter.count, result.renewalsRequested);
    assert.ok(result.feedLatency.count > 0, 'status reports reached the console feed');
    assert.equal(result.badDownlinks, 0);
  });
});
