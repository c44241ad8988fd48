// Bundled by tools/bench/tariff.ts and run under XS: builds the benchmark tariff and prices quotes;
// the Node side evaluates `tariffBench.quotes(n)` and reads the compute meter.
import '../../firmware/setup/text'; // first, as on the device: cborg needs the text globals at load
import { Tariff } from '../../protocol/tariff';
import { BENCH_TARIFF, benchQuote } from '../fleet/benchTariff';

const tariff = new Tariff(BENCH_TARIFF);
let checksum = 0;

(globalThis as unknown as { tariffBench: unknown }).tariffBench = {
  quotes(n: number): number {
    for (let i = 0; i < n; i++) checksum += benchQuote(tariff, i);
    return checksum;
  },
  compile(): void {
    new Tariff(BENCH_TARIFF);
  },
};
