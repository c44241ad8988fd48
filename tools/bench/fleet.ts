// A city's fleet against one platform instance (sim/fleet/fleetRun.ts): N meters each on its own MQTT
// connection under its own credentials, status every 15 min, 50 taps a day, a set per 10 taps, drivers
// renewing by phone at a set rate, the console's live feed watched. Real PostgreSQL (127.0.0.1:5432)
// and a Mosquitto of the run's own with the deployment's password file and ACL; the platform in its
// own process. Renewals are paid through the payment simulator: no money moves.
//
//   npm run bench -- fleet --meters=10000 --seconds=120 --renewals=100 --renewal-seconds=30 --drivers=200 --speed=1
import type { HeapProbeAnswer } from '../../sim/fleet/heapProbe';
import { heapGrowth, summariseHeapSnapshot } from '../../sim/fleet/heapSnapshot';
import { CITY, type FleetRunResult, type Percentiles, runFleet } from '../../sim/fleet/fleetRun';
import { real } from '../../sim/fleet/platform';

export const description =
  'city load on one platform instance: connections held, memory per meter, platform CPU, ingest lag, renewal p50/p99, status to console feed';

function option(args: string[], name: string, fallback: number): number {
  const found = args.find((a) => a.startsWith(`--${name}=`));
  if (!found) return fallback;
  const value = Number(found.slice(name.length + 3));
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} is not a number ≥ 0`);
  return value;
}

const ms = (p: Percentiles) =>
  p.count === 0
    ? 'none'
    : `p50 ${p.p50.toFixed(1)} ms, p99 ${p.p99.toFixed(1)} ms, max ${p.max.toFixed(1)} ms (${p.count})`;

export function report(r: FleetRunResult, log: (line: string) => void): void {
  log(`connections held: ${r.connectionsHeld} of ${r.metersConnected}`);
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
  const perMeter = (m: { before: number; after: number }) =>
    `${mib(m.before)} → ${mib(m.after)} MiB, ${((m.after - m.before) / r.metersConnected / 1024).toFixed(1)} KiB per meter`;
  const { before, after } = r.platformHeap;
  log(
    `memory: broker ${perMeter(r.brokerBytes)}; platform ${perMeter(r.platformBytes)} (resident` +
      `${before.snapshot ? ', which writing the first heap snapshot grew' : ''})`,
  );
  const heap = (pick: (a: HeapProbeAnswer) => number) => ({ before: pick(before), after: pick(after) });
  log(
    `platform heap after a full GC: ${perMeter(heap((a) => a.heapUsed))}; ` +
      `external ${perMeter(heap((a) => a.external))}`,
  );
  if (before.snapshot && after.snapshot) {
    log(`heap snapshots: ${before.snapshot}, ${after.snapshot}; what grew most (self size):`);
    for (const kind of heapGrowth(
      summariseHeapSnapshot(before.snapshot),
      summariseHeapSnapshot(after.snapshot),
    ))
      log(
        `  ${kind.kind}: ${kind.count >= 0 ? '+' : ''}${kind.count} nodes, ${(kind.selfSize / 1024).toFixed(1)} KiB`,
      );
  }
  log(
    `CPU, city load: platform ${r.city.platformCores.toFixed(3)} cores, broker ${r.city.brokerCores.toFixed(3)} cores`,
  );
  log(
    `CPU, evening peak (renewals on top): platform ${r.peak.platformCores.toFixed(3)} cores, broker ${r.peak.brokerCores.toFixed(3)} cores`,
  );
  log(
    `records: ${r.recordsSent} sent in ${r.setsSent} sets, ${r.recordsStored} stored, ${r.recordsAcknowledged} acknowledged`,
  );
  log(
    `drain (every meter uploads what it holds, at once): ${r.drained.seconds.toFixed(1)} s, ${r.drained.resent} sets sealed again (no ack within 10 s, then backing off as the firmware does)${r.drained.complete ? '' : ', NOT complete after 300 s'}`,
  );
  log(`status reports: ${r.statusSent} sent, ${r.statusStored} stored`);
  log(`ingest lag (set published → ack at the meter): ${ms(r.ackLatency)}`);
  log(`status → console live feed: ${ms(r.feedLatency)}`);
  log(
    `renewals: ${r.renewalsRequested} requested, ${r.renewalsApplied} applied at the meters, refused: ${JSON.stringify(r.renewalsRefused)}`,
  );
  log(`renewal request → 202: ${ms(r.renewalAnswer)}`);
  log(`renewal request → frame at the meter: ${ms(r.renewalAtMeter)}`);
  if (r.badDownlinks > 0) log(`downlinks that did not open: ${r.badDownlinks}`);
}

export async function run(args: string[]): Promise<void> {
  await real.check(); // PostgreSQL and Mosquitto's binary are the point of this run
  const options = {
    ...CITY,
    meters: option(args, 'meters', CITY.meters),
    bays: option(args, 'bays', CITY.bays),
    seconds: option(args, 'seconds', CITY.seconds),
    speed: option(args, 'speed', CITY.speed),
    renewalsPerSecond: option(args, 'renewals', CITY.renewalsPerSecond),
    renewalSeconds: option(args, 'renewal-seconds', CITY.renewalSeconds),
    drivers: option(args, 'drivers', CITY.drivers),
    connectPerSecond: option(args, 'connect-rate', CITY.connectPerSecond),
    log: (line: string) => console.log(line),
  };
  console.log(
    `${options.meters} meters × ${options.bays} bays, status every ${options.statusSeconds} s, ${options.tapsPerDay} taps/day, a set per ${options.setEvery} taps, ` +
      `speed ×${options.speed}; ${options.seconds} s of city load, then ${options.renewalSeconds} s with ${options.renewalsPerSecond} renewals/s from ${options.drivers} drivers; ` +
      'payments through the payment simulator (no money moves)',
  );
  report(await runFleet(options), (line) => console.log(line));
}
