// Tariff engine: the cost of one quote for a three-band tariff with ten timetable entries
// under XS (deterministic compute units, the figure to compare between versions) and on Node
// (quotes per second), and their ratio (Node quotes/s per XS compute unit is not a time: the ratio
// printed is XS compute units per Node microsecond, a rough engine-to-engine scale).
//
//   npm run bench -- tariff
import { Tariff } from '../../protocol/tariff';
import { BENCH_TARIFF, benchQuote } from '../../host-tests/tariff/benchTariff';
import { bundleForXs, startXs } from '../../host-tests/xs/xsnap';

export const description =
  'one quote, 3-band tariff with 10 timetable entries: XS compute per quote, Node quotes/s';

const QUOTES = 200;

export async function run(): Promise<void> {
  const script = await bundleForXs('host-tests/tariff/quote.entry.ts');
  const xs = await startXs({ name: 'bench-tariff' });
  let perQuoteXs: number;
  try {
    await xs.evaluate(script);
    const compile = await xs.evaluate('tariffBench.compile()');
    const one = await xs.evaluate('tariffBench.quotes(1)');
    const many = await xs.evaluate(`tariffBench.quotes(${QUOTES})`);
    // The cost of an evaluate itself cancels out in the difference.
    perQuoteXs = (many.compute - one.compute) / (QUOTES - 1);
    console.log(
      `XS: compile the tariff ${compile.compute.toLocaleString('en')} compute; one quote ` +
        `${Math.round(perQuoteXs).toLocaleString('en')} compute (mean of ${QUOTES}); heap ` +
        `${many.currentHeapCount.toLocaleString('en')} slots after`,
    );
  } finally {
    await xs.close();
  }
  const tariff = new Tariff(BENCH_TARIFF);
  let sink = 0;
  for (let i = 0; i < 2000; i++) sink += benchQuote(tariff, i); // warm up
  const rounds = 20_000;
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) sink += benchQuote(tariff, i);
  const seconds = (performance.now() - t0) / 1000;
  const perSecond = rounds / seconds;
  console.log(
    `Node: ${Math.round(perSecond).toLocaleString('en')} quotes/s (${((seconds / rounds) * 1e6).toFixed(1)} µs each; checksum ${sink})`,
  );
  console.log(
    `ratio: ${Math.round(perQuoteXs / ((seconds / rounds) * 1e6)).toLocaleString('en')} XS compute units per Node µs of the same quote`,
  );
}
