// The tap scenario: cost per tap of the real firmware on virtual hardware, under XS
// (deterministic compute units and heap slots) and on Node (taps per second).
import { bundleForXs, startXs } from '../../host-tests/xs/xsnap';
import { TapScenario } from '../../host-tests/support/tapScenario';

export const description =
  'one card tap end to end (select, read, debit, record, upload, ack): XS compute and Node taps/s';

export async function run(): Promise<void> {
  const taps = 100;
  const script = await bundleForXs('host-tests/xs/taps.entry.ts');
  const xs = await startXs({ name: 'bench-taps' });
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
    console.log(
      `XS: ${taps} taps, compute per tap mean ${Math.round(mean).toLocaleString('en')}, ` +
        `median ${compute[taps >> 1].toLocaleString('en')}, max ${compute[taps - 1].toLocaleString('en')}; ` +
        `heap ${heap.toLocaleString('en')} slots after the last tap (the harness keeps every message)`,
    );
  } finally {
    await xs.close();
  }
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
