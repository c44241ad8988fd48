// tools/flash.ts: the manifest check for the board (bare and relative imports through the module
// map), its arguments, the provisioning dry run, the missing-SDK message; npm run typecheck:device.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  checkManifest,
  FlashUsageError,
  mcconfigCommand,
  nvsPartition,
  parseArguments,
  run,
} from '../tools/flash';

const repo = path.resolve(import.meta.dirname, '..');

function project(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(repo, '.flash-test-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    writeFileSync(path.join(root, name), text);
  }
  return root;
}

function manifest(modules: Record<string, string>): string {
  return JSON.stringify({
    include: ['$(MODDABLE)/examples/manifest_base.json'],
    creation: { main: 'firmware/main' },
    modules: { gcm: '$(MODULES)/crypt/etc/gcm', ...modules },
    platforms: { esp32: {}, '...': { error: 'esp32 only' } },
  });
}

const sources = {
  'firmware/main.ts': "import { Meter } from './meter';\nimport Timer from 'timer';\nnew Meter(Timer);\n",
  'firmware/meter.ts':
    "import { bytesOf } from '../hal/io';\nimport type { Shape } from './shape';\nexport class Meter { constructor(public t: unknown, public s?: Shape) { bytesOf(new Uint8Array(1)); } }\n",
  'firmware/shape.ts': 'export interface Shape { a: number }\n',
  'hal/io.js': 'export function bytesOf(b) { return b; }\n',
};

const listed = {
  'firmware/main': './firmware/main',
  'firmware/meter': './firmware/meter',
  'hal/io': './hal/io',
};

describe('tools/flash.ts', () => {
  const roots: string[] = [];
  after(() => {
    for (const root of roots) rmSync(root, { recursive: true, force: true });
  });
  function make(files: Record<string, string>): string {
    const root = project(files);
    roots.push(root);
    return path.join(root, 'manifest.json');
  }

  it('passes a manifest whose modules cover every runtime import (type-only imports need no module)', async () => {
    const check = await checkManifest(make({ ...sources, 'manifest.json': manifest(listed) }), 'esp32');
    assert.deepEqual(check.errors, []);
    assert.ok(check.ok);
    assert.deepEqual(
      check.reachable.map((file) => path.basename(file)),
      ['io.js', 'meter.ts', 'main.ts'],
    );
  });

  it('fails on a bare import the manifest does not list, naming it', async () => {
    const files = {
      ...sources,
      'firmware/meter.ts':
        "import { encode } from 'cborg';\nexport class Meter { constructor(public t: unknown) { encode(1); } }\n",
    };
    const check = await checkManifest(make({ ...files, 'manifest.json': manifest(listed) }), 'esp32');
    assert.equal(check.ok, false);
    assert.match(check.errors.join('\n'), /cborg/);
  });

  it('fails on a relative import of a module the manifest does not list', async () => {
    const { 'hal/io': _, ...unlisted } = listed;
    const check = await checkManifest(make({ ...sources, 'manifest.json': manifest(unlisted) }), 'esp32');
    assert.equal(check.ok, false);
    assert.match(check.errors.join('\n'), /hal\/io/);
  });

  it('fails for a platform the manifest refuses', async () => {
    const check = await checkManifest(make({ ...sources, 'manifest.json': manifest(listed) }), 'nrf52');
    assert.equal(check.ok, false);
    assert.match(check.errors.join('\n'), /esp32 only/);
  });

  it('passes on the real manifest for the board and for the host build', async function () {
    this.timeout(60_000);
    for (const platform of ['esp32', 'x-cli-lin']) {
      const check = await checkManifest(path.join(repo, 'manifest.json'), platform);
      assert.deepEqual(check.errors, [], platform);
      assert.ok(check.listed.includes('cborg'), `${platform}: cborg is listed`);
      assert.ok(
        check.reachable.some((file) => file.endsWith('firmware/setup/text.ts')),
        platform,
      );
    }
  });

  it('dry run prints the exact mcconfig command, with the port in UPLOAD_PORT, and exits 0 on a good manifest', async () => {
    const manifestPath = make({ ...sources, 'manifest.json': manifest(listed) });
    const lines: string[] = [];
    const out = { log: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
    const code = await run(['--dry-run', '--port', '/dev/ttyUSB0', '--manifest', manifestPath], {}, out);
    assert.equal(code, 0, lines.join('\n'));
    assert.equal(lines[0], `UPLOAD_PORT=/dev/ttyUSB0 mcconfig -m -p esp32 ${manifestPath}`);
    assert.deepEqual(mcconfigCommand({ dryRun: false, board: 'esp32', manifest: './manifest.json' }).args, [
      '-m',
      '-p',
      'esp32',
      './manifest.json',
    ]);
  });

  it('dry run of a provisioning shows what the nvs partition gets, with no key bytes, and the commands', async () => {
    const lines: string[] = [];
    const out = { log: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
    const argv = [
      '--dry-run',
      '--port',
      '/dev/ttyUSB1',
      '--meter',
      '4101',
      '--bays',
      '7,8',
      '--broker',
      'mqtt.city.example:8883',
    ];
    argv.push(
      '--mqtt-user',
      'meter-4101',
      '--mqtt-password',
      'secret',
      '--ssid',
      'Kerbside',
      '--wifi-password',
      'wpa2',
    );
    const code = await run(argv, {}, out);
    const text = lines.join('\n');
    assert.equal(code, 0, text);
    assert.match(text, /^id,data,i32,4101$/m);
    assert.match(text, /^bays,data,string,"7,8"$/m);
    assert.match(text, /^broker,data,string,mqtt\.city\.example:8883$/m);
    assert.match(text, /^mqttUser,data,string,meter-4101$/m);
    assert.match(text, /^ssid,data,string,Kerbside$/m);
    assert.match(text, /^keyA,data,string,<32 bytes>$/m);
    const { offset, size } = nvsPartition(readFileSync(path.join(repo, 'partitions.csv'), 'utf8'));
    assert.match(text, new RegExp(`nvs_partition_gen\\.py generate \\S+nvs\\.csv \\S+nvs\\.bin ${size}`));
    assert.match(text, new RegExp(`esptool\\.py --port /dev/ttyUSB1 write_flash ${offset} \\S+nvs\\.bin`));
  });

  it('without --mqtt-user the meter gets its own broker user name (its id) and derived password', async () => {
    const lines: string[] = [];
    const out = { log: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
    const argv = ['--dry-run', '--meter', '4102', '--broker', 'mqtt.city.example:1883'];
    const code = await run(argv, {}, out);
    const text = lines.join('\n');
    assert.equal(code, 0, text);
    assert.match(text, /^mqttUser,data,string,4102$/m);
    assert.match(text, /^mqttPass,data,string,<derived from the master key>$/m);
  });

  it('refuses incomplete or contradictory provisioning arguments with a typed error', () => {
    assert.throws(() => parseArguments(['--meter', '5']), FlashUsageError);
    assert.throws(() => parseArguments(['--meter', 'x', '--broker', 'h:1']), /not a meter id/);
    assert.throws(
      () => parseArguments(['--meter', '5', '--broker', 'h:70000']),
      /not \[mqtts:\/\/\]HOST:PORT/,
    );
    assert.throws(() => parseArguments(['--meter', '5', '--broker', 'mqtts://h']), /needs --broker-ca/);
    assert.throws(
      () => parseArguments(['--meter', '5', '--broker', 'h', '--broker-ca', 'ca.pem']),
      /goes with an mqtts --broker/,
    );
    assert.deepEqual(
      parseArguments(['--meter', '5', '--broker', 'mqtts://h', '--broker-ca', 'ca.pem']).provision?.broker,
      { host: 'h', port: 8883, tls: true },
    );
    assert.throws(() => parseArguments(['--ssid', 'x']), /give --meter too/);
    assert.throws(
      () => parseArguments(['--meter', '5', '--broker', 'h', '--wifi-password', 'p']),
      /needs --ssid/,
    );
    assert.throws(() => parseArguments(['--bogus']), /unknown argument/);
    assert.deepEqual(parseArguments(['--meter', '5', '--broker', 'h']).provision?.broker, {
      host: 'h',
      port: 1883,
    });
  });

  it('without the Moddable SDK, exits non-zero with a message naming MODDABLE and IDF_PATH', () => {
    const { MODDABLE: _m, IDF_PATH: _i, ...env } = process.env;
    const result = spawnSync(
      process.execPath,
      ['--import', './tools/ts-register.js', '--no-warnings=ExperimentalWarning', 'tools/flash.ts'],
      { cwd: repo, env: { ...env, PATH: '' }, encoding: 'utf8' },
    );
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /MODDABLE is not set/);
    assert.match(result.stderr, /IDF_PATH/);
  });

  it('npm run typecheck:device checks against the SDK when MODDABLE is set, and says it checked nothing when not', function () {
    this.timeout(600_000);
    const script = [
      '--import',
      './tools/ts-register.js',
      '--no-warnings=ExperimentalWarning',
      'tools/typecheckDevice.ts',
    ];
    const { MODDABLE, ...without } = process.env;
    const skipped = spawnSync(process.execPath, script, { cwd: repo, env: without, encoding: 'utf8' });
    assert.equal(skipped.status, 0);
    assert.match(skipped.stdout, /skipped: MODDABLE is not set/);
    if (!MODDABLE) return;
    const checked = spawnSync(process.execPath, script, { cwd: repo, env: process.env, encoding: 'utf8' });
    assert.equal(checked.status, 0, checked.stdout + checked.stderr);
    assert.match(checked.stdout, /esp32: \d+ TypeScript modules, no errors/);
    assert.match(checked.stdout, /x-cli-lin: \d+ TypeScript modules, no errors/);
  });
});
