// `npm run bench [name ...]`: runs every benchmark module in tools/bench/ (or the ones named), each
// of which prints its own figures and ratios. Benchmarks measure; tests never assert on timings.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface BenchModule {
  /** One line saying what the benchmark measures. */
  description?: string;
  run(args: string[]): Promise<void> | void;
}

const folder = fileURLToPath(new URL('./bench/', import.meta.url));
const available = readdirSync(folder)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3))
  .sort();
const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(
    `usage: npm run bench -- [NAME ...] [--option=value ...]\n  runs the named benchmarks (all when none is named), each printing its own figures\n  available: ${available.join(', ')}`,
  );
  process.exit(0);
}
const named = args.filter((a) => !a.startsWith('-'));
const options = args.filter((a) => a.startsWith('-'));
const unknown = named.filter((n) => !available.includes(n));
if (unknown.length > 0) {
  console.error(`no benchmark ${unknown.join(', ')}; available: ${available.join(', ')}`);
  process.exit(2);
}
for (const name of named.length > 0 ? named : available) {
  const module = (await import(pathToFileURL(path.join(folder, `${name}.ts`)).href)) as BenchModule;
  console.log(`\n== ${name}${module.description ? `: ${module.description}` : ''}`);
  const started = performance.now();
  await module.run(options);
  console.log(`(${name} took ${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
