// The tap scenario: cost per tap of the real firmware on virtual hardware, under XS
// (deterministic compute units and heap slots) and on Node (taps per second).
import { bundleForXs, startXs } from '../../sim/xs/xsnap';
import { TapScenario } from '../../sim/fleet/tapScenario';
import { nodeCrypto } from '../../platform-server/core/nodeCrypto';

export const description =
  'one card tap end to end (select, read, debit, record, upload, ack): XS compute and Node taps/s';

interface XsTaps {
  mean: number;
  median: number;
  max: number;
  heap: number;
}

/** 100 taps under XS, one evaluate each: the compute of each tap and the heap after the last. */
async function xsTaps(entry: string, taps: number, nativeCrypto: boolean): Promise<XsTaps> {
  const script = await bundleForXs(entry);
  const xs = await startXs({ name: 'bench-taps', ...(nativeCrypto ? { nativeCrypto: nodeCrypto } : {}) });
  try {
    await xs.evaluate(script);
    await xs.evaluate('scenario.start()');
    const compute: number[] = [];
    let heap = 0;
    for (let i = 0; i < taps; i++) {
      const usage = await xs.evaluate(`scenario.tap(${i})`);
      compute.push(usage.compute);
      heap = usage.currentHeapCount;
    }
    compute.sort((a, b) => a - b);
    const mean = compute.reduce((a, b) => a + b, 0) / taps;
    return { mean, median: compute[taps >> 1], max: compute[taps - 1], heap };
  } finally {
    await xs.close();
  }
}

export async function run(): Promise<void> {
  const taps = 100;
  const format = (n: number) => Math.round(n).toLocaleString('en');
  const pure = await xsTaps('sim/entries/taps.entry.ts', taps, false);
  const native = await xsTaps('sim/entries/tapsNative.entry.ts', taps, true);
  for (const [label, r] of [
    ['crypto in pure JS (@noble)', pure],
    ['crypto native, as on the device', native],
  ] as const) {
    console.log(
      `XS, ${label}: ${taps} taps, compute per tap mean ${format(r.mean)}, median ${format(r.median)}, ` +
        `max ${format(r.max)}; heap ${format(r.heap)} slots after the last tap (the harness keeps every message)`,
    );
  }
  console.log(
    `native / pure-JS compute per tap: ${(native.mean / pure.mean).toFixed(3)} (both include the virtual platform and the virtual chips running in the same XS machine)`,
  );
  const rounds = 5;
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    const scenario = new TapScenario();
    const started = performance.now();
    for (let i = 0; i < taps; i++) scenario.tap(i);
    best = Math.min(best, performance.now() - started);
  }
  console.log(
    `Node: ${(taps / (best / 1000)).toFixed(0)} taps/s (best of ${rounds} runs of ${taps}), ${(best / taps).toFixed(2)} ms per tap`,
  );
}
