// Fuzzing: 100,000 random and mutated inputs into the frame and APDU parsers.
import { fuzz } from '../../sim/fleet/fuzzer';

export const description = 'fuzz the frame and APDU parsers with 100,000 inputs: no crash, no acceptance';

export async function run(): Promise<void> {
  const started = performance.now();
  const report = fuzz(100_000, 7);
  const ms = performance.now() - started;
  console.log(
    `${report.inputs.toLocaleString('en')} inputs in ${(ms / 1000).toFixed(1)} s: ${report.accepted} accepted, ${report.crashes.length} crashes`,
  );
  console.log(`refusals: ${JSON.stringify(report.refused)}`);
  if (report.accepted) console.log(`accepted: ${JSON.stringify(report.acceptedBy)}`);
  if (report.crashes.length || report.accepted) {
    console.log(report.crashes.slice(0, 3).join('\n'));
    process.exitCode = 1;
  }
}
