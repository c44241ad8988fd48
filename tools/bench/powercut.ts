// The long run of the power-cut test (tools/powercut.ts): 100,000 random cuts during append,
// backup, upload-set copy, ack handling and sector erase, every invariant checked after each reboot.
//
//   npm run bench -- powercut [--cuts=100000] [--seed=2026]
import { formatResult, runPowerCuts } from '../powercut';

export const description = 'power cuts at random bytes of storage operations, 100,000 reboots checked';

function option(args: string[], name: string, fallback: number): number {
  const found = args.find((a) => a.startsWith(`--${name}=`));
  return found ? Number(found.split('=')[1]) : fallback;
}

export function run(args: string[]): void {
  const seed = option(args, 'seed', 2026);
  const cuts = option(args, 'cuts', 100_000);
  const started = performance.now();
  const messages: string[] = [];
  const result = runPowerCuts({ seed, cuts, onViolation: (m) => messages.push(m) });
  console.log(formatResult(result));
  console.log(
    `seed ${seed}; by target ${JSON.stringify(result.cutsByTarget)}; ${result.records.toLocaleString('en')} records ` +
      `written, other violations ${result.violations}; ${((performance.now() - started) / cuts).toFixed(2)} ms per cut`,
  );
  for (const m of messages.slice(0, 20)) console.log(`  ${m}`);
  console.log(`replay: npm run test:powercut -- --seed ${seed} --cuts ${cuts}`);
  if (messages.length > 0) process.exitCode = 1;
}
