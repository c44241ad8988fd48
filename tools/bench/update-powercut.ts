// The long run of the firmware-update power-cut test (tools/updatePowercut.ts): power fails at a
// random byte of the download, the switch or the first boot of the new image, update after update
// (a fifth of the images fail their self-test), the link loses 5% of downlinks; every reboot is
// checked for a bootable slot, the running version and the records.
//
//   npm run bench -- update-powercut [--cuts=10000] [--seed=2026]
import { formatUpdateResult, runUpdatePowerCuts } from '../updatePowercut';

export const description =
  'power cuts during firmware download, switch and first boot: bricked, records lost';

function option(args: string[], name: string, fallback: number): number {
  const found = args.find((a) => a.startsWith(`--${name}=`));
  return found ? Number(found.split('=')[1]) : fallback;
}

export function run(args: string[]): void {
  const seed = option(args, 'seed', 2026);
  const cuts = option(args, 'cuts', 10_000);
  const started = performance.now();
  const messages: string[] = [];
  const result = runUpdatePowerCuts({ seed, cuts, onViolation: (m) => messages.push(m) });
  console.log(formatUpdateResult(result));
  console.log(
    `seed ${seed}; by phase ${JSON.stringify(result.cutsByPhase)}; other violations ${result.violations}; ` +
      `${((performance.now() - started) / cuts).toFixed(1)} ms per cut`,
  );
  for (const m of messages.slice(0, 20)) console.log(`  ${m}`);
  if (messages.length > 0) process.exitCode = 1;
}
