// tools/manifest.ts reads manifests as the Moddable SDK's mcconfig does: checked here on small
// fixture manifests written to a temporary directory.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  type ModuleMap,
  ManifestError,
  matchPlatform,
  moddableSpecifier,
  readManifest,
  specifierOfFile,
} from '../tools/manifest';

/** Writes `files` (path → text; JSON for objects) under a new temporary directory. */
async function fixture(files: Record<string, string | object>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'parklink-manifest-'));
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(dir, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

/** specifier → file relative to `dir`, or `sdk:<source>`. */
function table(map: ModuleMap, dir: string): Record<string, string> {
  return Object.fromEntries(
    [...map.modules.values()].map((m) => [
      m.specifier,
      m.kind === 'project' ? path.relative(dir, m.file) : `sdk:${m.source}`,
    ]),
  );
}

describe('manifest reader (mcconfig semantics)', () => {
  const dirs: string[] = [];
  const make = async (files: Record<string, string | object>): Promise<string> => {
    const dir = await fixture(files);
    dirs.push(dir);
    return dir;
  };
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('maps named modules, "*" lists by file name, and records SDK modules and manifests without reading them', async () => {
    const dir = await make({
      'manifest.json': {
        include: ['$(MODDABLE)/examples/manifest_base.json', '$(MODULES)/data/text/decoder/manifest.json'],
        modules: {
          '*': ['./app/main', './app/assets'],
          'protocol/cbor': './protocol/cbor',
          gcm: '$(MODULES)/crypt/etc/gcm',
        },
        preload: ['protocol/cbor'],
        creation: { main: 'main' },
      },
      'app/main.ts': '',
      'app/assets.js': '',
      'protocol/cbor.ts': '',
      'protocol/cbor.d.ts': '',
    });
    const map = readManifest(path.join(dir, 'manifest.json'), 'esp32');
    assert.deepEqual(table(map, dir), {
      main: 'app/main.ts',
      assets: 'app/assets.js',
      'protocol/cbor': 'protocol/cbor.ts',
      gcm: 'sdk:$(MODULES)/crypt/etc/gcm',
    });
    assert.deepEqual(map.sdkManifests, [
      '$(MODDABLE)/examples/manifest_base.json',
      '$(MODULES)/data/text/decoder/manifest.json',
    ]);
    assert.deepEqual(map.preload, ['protocol/cbor']);
    assert.equal(map.main, 'main');
    assert.deepEqual(map.errors, []);
    assert.equal(specifierOfFile(map, path.join(dir, 'protocol/cbor.ts')), 'protocol/cbor');
    assert.equal(specifierOfFile(map, path.join(dir, 'protocol/cbor.d.ts')), undefined);
  });

  it('expands wildcards: "cborg/lib/*" over a directory, a name prefix before "*", scripts only', async () => {
    const dir = await make({
      'manifest.json': {
        modules: {
          cborg: './node_modules/cborg/cborg',
          'cborg/lib/*': './node_modules/cborg/lib/*',
          'text/*': './text/en*',
        },
      },
      'node_modules/cborg/cborg.js': '',
      'node_modules/cborg/lib/encode.js': '',
      'node_modules/cborg/lib/decode.js': '',
      'node_modules/cborg/lib/decode.d.ts': '',
      'node_modules/cborg/lib/README.md': '',
      'node_modules/cborg/lib/.hidden.js': '',
      'node_modules/cborg/lib/json/encode.js': '',
      'text/encoder.ts': '',
      'text/entities.json': '{}',
      'text/decoder.ts': '',
    });
    const map = readManifest(path.join(dir, 'manifest.json'), 'lin');
    assert.deepEqual(table(map, dir), {
      cborg: 'node_modules/cborg/cborg.js',
      'cborg/lib/decode': 'node_modules/cborg/lib/decode.js',
      'cborg/lib/encode': 'node_modules/cborg/lib/encode.js',
      'text/coder': 'text/encoder.ts',
      'text/tities': 'text/entities.json',
    });
  });

  it('merges the platform section that matches, with "/*", "*/" and "..." as mcconfig matches them', async () => {
    const dir = await make({
      'manifest.json': {
        modules: { 'hal/clock': './hal/clock' },
        preload: ['hal/clock'],
        platforms: {
          esp32: { modules: { 'hal/board': './hal/moddable/board' }, preload: ['hal/board'] },
          lin: { modules: { 'hal/board': './hal/host/board' } },
          'mac/*': { modules: { 'hal/board': './hal/mac/board' } },
          '*/sim': { warning: 'simulated' },
          '...': { error: 'no board for this platform' },
        },
      },
      'hal/clock.ts': '',
      'hal/moddable/board.ts': '',
      'hal/host/board.ts': '',
      'hal/mac/board.ts': '',
    });
    const file = path.join(dir, 'manifest.json');
    const board = (platform: string): string | undefined =>
      table(readManifest(file, platform), dir)['hal/board'];
    assert.equal(board('esp32'), 'hal/moddable/board.ts');
    assert.equal(board('esp32/moddable_two'), 'hal/moddable/board.ts');
    assert.equal(board('lin'), 'hal/host/board.ts');
    assert.equal(board('mac/cli'), 'hal/mac/board.ts');
    assert.deepEqual(readManifest(file, 'esp32').preload, ['hal/clock', 'hal/board']);
    assert.deepEqual(readManifest(file, 'win/sim').warnings, ['simulated']);
    const other = readManifest(file, 'pico');
    assert.equal(table(other, dir)['hal/board'], undefined);
    assert.deepEqual(other.errors, ['no board for this platform']);
    assert.equal(matchPlatform({ esp32: 1 }, 'pico'), undefined);
  });

  it("reads project includes (also a platform section's and through a build variable) before the includer", async () => {
    const dir = await make({
      'manifest.json': {
        build: { SHARED: './shared' },
        include: ['./drivers/manifest.json', '$(SHARED)/manifest.json'],
        modules: { 'drivers/lcd': './app/lcd' },
        platforms: { esp32: { include: './board/manifest.json' } },
      },
      'drivers/manifest.json': { modules: { 'drivers/lcd': './lcd', 'drivers/bus': './bus' } },
      'drivers/lcd.ts': '',
      'drivers/bus.ts': '',
      'shared/manifest.json': { modules: { '*': './util' } },
      'shared/util.ts': '',
      'board/manifest.json': { include: '../drivers/manifest.json', modules: { board: './board' } },
      'board/board.ts': '',
      'app/lcd.ts': '',
    });
    const map = readManifest(path.join(dir, 'manifest.json'), 'esp32');
    assert.deepEqual(
      map.manifests.map((m) => path.relative(dir, m)),
      ['drivers/manifest.json', 'shared/manifest.json', 'board/manifest.json', 'manifest.json'],
    );
    // The included manifest's "drivers/lcd" came first, so mcconfig keeps it.
    assert.deepEqual(table(map, dir), {
      'drivers/lcd': 'drivers/lcd.ts',
      'drivers/bus': 'drivers/bus.ts',
      util: 'shared/util.ts',
      board: 'board/board.ts',
    });
    assert.match(map.warnings.join('\n'), /module "drivers\/lcd" is already .*drivers\/lcd\.ts/);
    assert.equal(table(readManifest(path.join(dir, 'manifest.json'), 'lin'), dir).board, undefined);
  });

  it('takes each file once: "~" leaves files out and a file claimed by one specifier is not claimed again', async () => {
    const dir = await make({
      'manifest.json': {
        modules: {
          '~': './lib/test',
          'lib/*': './lib/*',
          again: './lib/a',
        },
      },
      'lib/a.js': '',
      'lib/b.js': '',
      'lib/test.js': '',
    });
    assert.deepEqual(table(readManifest(path.join(dir, 'manifest.json'), 'lin'), dir), {
      'lib/a': 'lib/a.js',
      'lib/b': 'lib/b.js',
    });
  });

  it('refuses a missing project manifest, invalid JSON and a missing directory; warns when nothing matches', async () => {
    const dir = await make({
      'missing-include.json': { include: './nowhere/manifest.json' },
      'invalid.json': '{ "modules": ',
      'missing-dir.json': { modules: { x: './nowhere/x' } },
      'no-match.json': { modules: { x: './src/x' } },
      'src/y.ts': '',
    });
    const read = (name: string): ModuleMap => readManifest(path.join(dir, name), 'esp32');
    assert.throws(() => read('missing-include.json'), ManifestError);
    assert.throws(() => read('missing-include.json'), /nowhere\/manifest\.json: manifest not found/);
    assert.throws(() => read('invalid.json'), /invalid manifest/);
    assert.throws(() => read('missing-dir.json'), /directory not found/);
    assert.deepEqual(read('no-match.json').warnings, [`no modules match: ${path.join(dir, 'src/x')}`]);
  });

  it("resolves imports against the importing module's specifier, as the Moddable runtime does", () => {
    assert.equal(moddableSpecifier('firmware/units/comms', '../../protocol/cbor'), 'protocol/cbor');
    assert.equal(moddableSpecifier('firmware/units/comms', './records'), 'firmware/units/records');
    assert.equal(moddableSpecifier('cborg', './lib/encode.js'), 'lib/encode');
    assert.equal(moddableSpecifier('cborg/cborg', './lib/encode.js'), 'cborg/lib/encode');
    assert.equal(moddableSpecifier('cborg/lib/encode', './is.mjs'), 'cborg/lib/is');
    assert.equal(moddableSpecifier('x', 'cborg'), 'cborg');
    assert.equal(moddableSpecifier('x', 'text/decoder.js'), 'text/decoder');
    assert.equal(moddableSpecifier('cborg', '../up'), undefined);
  });

  it("reads the project's manifest.json for esp32", () => {
    const map = readManifest('manifest.json', 'esp32');
    assert.deepEqual(map.errors, []);
    assert.ok(map.modules.get('protocol/cbor')?.kind === 'project', 'protocol/cbor is listed');
  });
});
