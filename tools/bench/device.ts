// `npm run bench -- device [--taps=N]`: the device budget measured on the real Moddable build.
// - Module sizes: the esp32 image's modules through mcconfig's tsc, xsc and xsl (the compiled .xsb
//   bytes per module, the project's, cborg's and the SDK's). Where no ESP-IDF is installed the
//   generated makefile is run only up to xsl, which needs none.
// - Stack and heap: the host program (x-cli-lin, instrumented) boots the meter and takes N paid taps
//   end to end against the platform, then reports the XS stack peak at boot and after the taps, and
//   the slot and chunk heaps at boot, at the end and at their peaks.
// Compared with MicroOcpp's published figures for its whole OCPP client on an ESP32 (118 KB flash,
// 22 KB peak heap). Without MODDABLE it says so and measures nothing.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateBuild, runHostMeter } from '../device';

export const description =
  'the device budget on the real Moddable build: module sizes, stack, XS heap over N taps';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const MICROOCPP = { flashKB: 118, peakHeapKB: 22 };
/** A slot is four pointers' worth: 16 bytes on the ESP32's 32-bit core, 32 on a 64-bit host. */
const ESP32_SLOT_BYTES = 16;

function xsbFiles(dir: string, prefix = ''): { module: string; bytes: number }[] {
  const found: { module: string; bytes: number }[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...xsbFiles(full, `${prefix}${entry.name}/`));
    else if (entry.name.endsWith('.xsb'))
      found.push({ module: `${prefix}${entry.name.slice(0, -4)}`, bytes: statSync(full).size });
  }
  return found;
}

/** Compiles the esp32 image's modules as mcconfig does; returns the .xsb sizes by module. */
function esp32Modules(moddable: string): { module: string; bytes: number }[] {
  const out = path.join(ROOT, '.device', 'build-esp32');
  const { env, appDir: tmp, placeholderIdf } = generateBuild(moddable, 'esp32', out);
  if (placeholderIdf) {
    // The xsl target waits on the IDF's sdkconfig.h only by file dependency; xsl itself needs none.
    const config = path.join(tmp, 'xsProj-esp32', 'build', 'config');
    mkdirSync(config, { recursive: true });
    writeFileSync(path.join(config, 'sdkconfig.h'), '');
  }
  const make = spawnSync(
    'make',
    ['-j2', ...(placeholderIdf ? ['IDF_VERSION=v6.0'] : []), '-f', 'makefile', path.join(tmp, 'mc.xs.c')],
    {
      cwd: tmp,
      env,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  writeFileSync(path.join(out, 'xs-build.log'), `${make.stdout}${make.stderr}`);
  if (make.status !== 0)
    throw new Error(`esp32 modules did not build; see ${path.join(out, 'xs-build.log')}`);
  return xsbFiles(path.join(tmp, 'modules'));
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;

export async function run(args: string[]): Promise<void> {
  const moddable = process.env.MODDABLE;
  if (!moddable) {
    console.log('skipped: MODDABLE is not set (this benchmark builds with the real Moddable SDK)');
    return;
  }
  const tapsArg = args.find((arg) => arg.startsWith('--taps='));
  const taps = tapsArg ? Number(tapsArg.slice('--taps='.length)) : 1000;

  const modules = esp32Modules(moddable);
  const sum = (list: { bytes: number }[]) => list.reduce((total, { bytes }) => total + bytes, 0);
  const project = modules.filter(({ module }) => /^(firmware|protocol|drivers|hal)\//.test(module));
  const cborg = modules.filter(({ module }) => module === 'cborg' || module.startsWith('lib/'));
  const sdk = modules.filter((m) => !project.includes(m) && !cborg.includes(m));
  console.log(
    `esp32 compiled modules (.xsb, mcconfig tsc → xsc → xsl): ${modules.length} modules, ${kb(sum(modules))}`,
  );
  console.log(
    `  project ${project.length} modules ${kb(sum(project))}, cborg ${cborg.length} ${kb(sum(cborg))}, SDK ${sdk.length} ${kb(sum(sdk))}`,
  );
  console.log(
    `  largest: ${[...modules]
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, 8)
      .map(({ module, bytes }) => `${module} ${kb(bytes)}`)
      .join(', ')}`,
  );
  console.log(
    `  ratio to MicroOcpp's whole client (${MICROOCPP.flashKB} KB flash): ${(sum(modules) / 1024 / MICROOCPP.flashKB).toFixed(2)}`,
  );

  const result = await runHostMeter({
    moddable,
    meterId: 1190,
    taps,
    tapEveryMs: 0,
    seconds: Math.max(300, taps * 5),
    clean: true,
    onLine: (line) => {
      if (/^(built|building)|budget|memory|done:|gave up|exited/.test(line.replace(/^meter +│ /, '')))
        console.log(line);
    },
  });
  const budget = result.budget;
  if (result.code !== 0 || !budget) {
    console.log(`host run failed (exit ${result.code}); no budget figures`);
    return;
  }
  const { boot, end } = budget;
  console.log(
    `host program (x-cli-lin, instrumented), ${budget.taps} taps, ${budget.paid} paid, ${result.transactions} stored by the platform:`,
  );
  console.log(
    `  stack peak: ${boot.peakStack} slots at boot, ${end.peakStack} after the taps, of ${end.stackSlots} (creation.stack)`,
  );
  console.log(
    `  slot heap, live after a collection: ${boot.slots} slots at boot, ${end.slots} after the taps (${kb(end.slots * ESP32_SLOT_BYTES)} at 16 B a slot on the ESP32); peak ${end.peakSlots}`,
  );
  console.log(
    `  chunk heap, live after a collection: ${kb(boot.chunks)} at boot, ${kb(end.chunks)} after the taps; most allocated between collections ${kb(end.peakChunks)} (64-bit host)`,
  );
  const peakHeap = end.peakSlots * ESP32_SLOT_BYTES + end.peakChunks;
  console.log(
    `  ratio of peak XS heap (slots at 16 B + chunks) to MicroOcpp's 22 KB: ${(peakHeap / 1024 / MICROOCPP.peakHeapKB).toFixed(1)}`,
  );
  console.log(
    '  (the heap holds the virtual chips and cards of the host build too: the reader, SAM, secure element and sensors)',
  );
}
