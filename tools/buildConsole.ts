// Builds the operator console (console/) into build/console/ with esbuild: one JavaScript bundle
// (Preact, Leaflet and the screens), one stylesheet (the console's and Leaflet's) and index.html.
// Runs from `npm install` (prepare) and `npm start`; nothing is fetched when the console runs.
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CONSOLE_SOURCE = join(root, 'console');
export const CONSOLE_OUTPUT = join(root, 'build', 'console');
/** The officer app's handheld module (Web Bluetooth collection), served at /enforcement/collect.js. */
export const OFFICER_HANDHELD_OUTPUT = join(root, 'build', 'enforcement');

/** Builds the console; returns the milliseconds it took. */
export async function buildConsole(options: { outdir?: string; quiet?: boolean } = {}): Promise<number> {
  const started = performance.now();
  const outdir = options.outdir ?? CONSOLE_OUTPUT;
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  await build({
    entryPoints: {
      app: join(CONSOLE_SOURCE, 'src', 'main.tsx'),
      style: join(CONSOLE_SOURCE, 'src', 'style.css'),
    },
    outdir,
    bundle: true,
    minify: true,
    sourcemap: true,
    format: 'esm',
    target: ['chrome110', 'firefox110', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: join(CONSOLE_SOURCE, 'tsconfig.json'),
    loader: { '.png': 'dataurl', '.svg': 'dataurl' },
    logLevel: options.quiet ? 'silent' : 'warning',
    legalComments: 'linked',
  });
  copyFileSync(join(CONSOLE_SOURCE, 'index.html'), join(outdir, 'index.html'));
  // The officer app is plain files; only its handheld (CBOR, chunks, the token's proof) is built.
  await build({
    entryPoints: { collect: join(CONSOLE_SOURCE, 'src', 'handheld', 'collect.ts') },
    outdir: options.outdir ? join(outdir, 'enforcement') : OFFICER_HANDHELD_OUTPUT,
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['chrome110'],
    tsconfig: join(CONSOLE_SOURCE, 'tsconfig.json'),
    logLevel: options.quiet ? 'silent' : 'warning',
  });
  const ms = performance.now() - started;
  if (!options.quiet) console.log(`console built in ${Math.round(ms)} ms: ${outdir}`);
  return ms;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await buildConsole();
