// The XS harness runs bundles as the Moddable runtime would (sim/xs/xsnap.ts): these tests show it
// fails where the real build or device fails — frozen primordials, no TextEncoder/TextDecoder unless
// firmware/setup/text installs them, no module the manifest does not list — and that each failure
// comes from the harness, not from xsnap (the same scripts pass with `runtime: 'xsnap'`).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  bundleForXs,
  deviceGraph,
  startXs,
  unlistedDeviceImports,
  type XsWorker,
  xsnapAvailable,
} from '../../sim/xs/xsnap';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

const TEXT_MANIFESTS = [
  '$(MODULES)/data/text/encoder/manifest.json',
  '$(MODULES)/data/text/decoder/manifest.json',
];

/** A fixture project: its files, and a manifest whose `$(REPO)` is this repository. */
async function project(dir: string, manifest: object, files: Record<string, string>): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const [rel, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), text);
  }
  const file = path.join(dir, 'manifest.json');
  await writeFile(file, JSON.stringify({ build: { REPO: repoRoot.replace(/\/$/, '') }, ...manifest }));
  return file;
}

describe('XS harness: the Moddable runtime where xsnap differs', function () {
  this.timeout(60_000);
  let moddable: XsWorker;
  let xsnap: XsWorker;
  let dir: string;

  before(async () => {
    const availability = xsnapAvailable();
    if (!availability.available) assert.fail(availability.reason);
    dir = await mkdtemp(path.join(os.tmpdir(), 'parklink-moddable-'));
    moddable = await startXs({ name: 'moddable' });
    xsnap = await startXs({ name: 'xsnap', runtime: 'xsnap' });
  });

  after(async () => {
    await moddable?.close();
    await xsnap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** What `print`ed `expression` evaluates to in `worker`. */
  const value = async (worker: XsWorker, expression: string): Promise<string> => {
    const before = worker.output.length;
    await worker.evaluate(`print(String(${expression}))`);
    return worker.output.slice(before).join('\n');
  };

  describe('frozen primordials', () => {
    it('freezes the built-ins, their prototypes and intrinsics reached only through syntax; leaves the global object open', async () => {
      const frozen = [
        'Error.prototype',
        'Array.prototype',
        'Object',
        'JSON',
        'Promise.prototype',
        'Object.getPrototypeOf(Uint8Array).prototype',
        'Object.getPrototypeOf(function* () {}).prototype',
        'Object.getPrototypeOf([][Symbol.iterator]())',
        'Object.getPrototypeOf(async () => {})',
      ];
      for (const expression of frozen) {
        assert.equal(await value(moddable, `Object.isFrozen(${expression})`), 'true', expression);
        assert.equal(
          await value(xsnap, `Object.isFrozen(${expression})`),
          'false',
          `${expression} under xsnap`,
        );
      }
      assert.equal(await value(moddable, 'Object.isExtensible(globalThis)'), 'true');
    });

    const errorClass = (field: boolean): string =>
      field
        ? "{ class MeterError extends Error { name = 'MeterError'; }\nprint(new MeterError('x').name); }"
        : "{ class MeterError extends Error { constructor(m) { super(m); this.name = 'MeterError'; } }\nprint(new MeterError('x').name); }";

    it("fails an error class that assigns this.name, as the device does ('set name: not writable')", async () => {
      await assert.rejects(moddable.evaluate(errorClass(false)), /TypeError.*set name: not writable/);
      await xsnap.evaluate(errorClass(false));
      assert.equal(xsnap.output.at(-1), 'MeterError');
    });

    it('runs the same class with name as a class field', async () => {
      await moddable.evaluate(errorClass(true));
      assert.equal(moddable.output.at(-1), 'MeterError');
    });
  });

  describe('TextEncoder and TextDecoder', () => {
    it('has neither global', async () => {
      assert.equal(
        await value(moddable, 'typeof TextEncoder + " " + typeof TextDecoder'),
        'undefined undefined',
      );
      assert.equal(await value(xsnap, 'typeof TextEncoder + " " + typeof TextDecoder'), 'function function');
    });

    it('fails a module that makes a TextEncoder at load; firmware/setup/text imported first makes it run', async () => {
      const manifest = await project(
        path.join(dir, 'text'),
        {
          include: TEXT_MANIFESTS,
          modules: {
            'firmware/setup/text': '$(REPO)/firmware/setup/text',
            encodes: './encodes',
            'without-setup': './without-setup',
            'with-setup': './with-setup',
            'setup-after': './setup-after',
          },
        },
        {
          'encodes.ts':
            "const encoder = new TextEncoder();\nexport const bytes = encoder.encode('€').length;\n",
          'without-setup.ts': "import { bytes } from './encodes';\n(globalThis as any).print(bytes);\n",
          'with-setup.ts':
            "import './firmware/setup/text';\nimport { bytes } from './encodes';\n(globalThis as any).print(bytes);\n",
          'setup-after.ts':
            "import { bytes } from './encodes';\nimport './firmware/setup/text';\n(globalThis as any).print(bytes);\n",
        },
      );
      const bundle = (name: string): Promise<string> =>
        bundleForXs(path.join(dir, 'text', `${name}.ts`), { manifest });
      // The fixture's modules sit at the top of its module tree, so `./firmware/setup/text` from
      // `with-setup` is the specifier `firmware/setup/text`, as on Moddable.
      const without = await bundle('without-setup');
      await assert.rejects(moddable.evaluate(without), /ReferenceError.*TextEncoder/);
      await xsnap.evaluate(without);
      assert.equal(xsnap.output.at(-1), '3');

      const withSetup = await startXs({ name: 'with-setup' });
      try {
        await withSetup.evaluate(await bundle('with-setup'));
        assert.equal(withSetup.output.at(-1), '3');
        assert.equal(await value(withSetup, 'typeof TextEncoder'), 'function');
      } finally {
        await withSetup.close();
      }
      // ECMAScript evaluates imports in order: set up after the module that needs it is too late.
      const late = await startXs({ name: 'setup-after' });
      try {
        await assert.rejects(late.evaluate(await bundle('setup-after')), /ReferenceError.*TextEncoder/);
      } finally {
        await late.close();
      }
    });

    it("cborg fails at load without firmware/setup/text and runs with it (the SDK's text modules, stood in)", async () => {
      const manifest = await project(
        path.join(dir, 'cborg'),
        {
          include: TEXT_MANIFESTS,
          modules: {
            'firmware/setup/text': '$(REPO)/firmware/setup/text',
            cborg: '$(REPO)/node_modules/cborg/cborg',
            'lib/*': '$(REPO)/node_modules/cborg/lib/*',
            main: './main',
            bare: './bare',
          },
        },
        {
          'bare.ts': "import { encode } from 'cborg';\n(globalThis as any).print(encode(['€']).length);\n",
          'main.ts':
            "import './firmware/setup/text';\nimport { decode, encode } from 'cborg';\n(globalThis as any).print(decode(encode(['€']))[0]);\n",
        },
      );
      const bare = await bundleForXs(path.join(dir, 'cborg', 'bare.ts'), { manifest });
      const fresh = await startXs({ name: 'cborg' });
      try {
        await assert.rejects(fresh.evaluate(bare), /ReferenceError.*Text(En|De)coder/);
      } finally {
        await fresh.close();
      }
      const main = await bundleForXs(path.join(dir, 'cborg', 'main.ts'), { manifest });
      const withSetup = await startXs({ name: 'cborg-setup' });
      try {
        await withSetup.evaluate(main);
        assert.equal(withSetup.output.at(-1), '€');
      } finally {
        await withSetup.close();
      }
    });

    it("stands in for the SDK's text modules as they behave: utf-8 only, fatal, ignoreBOM", async () => {
      const manifest = await project(
        path.join(dir, 'standins'),
        { include: TEXT_MANIFESTS, modules: { probe: './probe' } },
        {
          'probe.ts': [
            "import TextDecoder from 'text/decoder';",
            "import TextEncoder from 'text/encoder';",
            'const print = (globalThis as any).print;',
            'const attempt = (f: () => unknown) => { try { return String(f()); } catch (e) { return (e as Error).name; } };',
            "print(attempt(() => new (TextDecoder as any)('utf8')));",
            "print(attempt(() => new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.of(0xff))));",
            'print(attempt(() => new TextDecoder().decode(Uint8Array.of(0xef, 0xbb, 0xbf, 0x41))));',
            "print(attempt(() => new TextDecoder('utf-8', { ignoreBOM: true }).decode(Uint8Array.of(0xef, 0xbb, 0xbf, 0x41)).length));",
            "print(attempt(() => new TextEncoder().encode('€').join()));",
          ].join('\n'),
        },
      );
      const before = moddable.output.length;
      await moddable.evaluate(await bundleForXs(path.join(dir, 'standins', 'probe.ts'), { manifest }));
      assert.deepEqual(moddable.output.slice(before), ['RangeError', 'TypeError', 'A', '2', '226,130,172']);
    });
  });

  describe('the module map', () => {
    it('fails the bundle when a listed module imports a package the manifest does not list, naming the importer', async () => {
      const manifest = await project(
        path.join(dir, 'unlisted'),
        { modules: { 'protocol/wire': './protocol/wire' } },
        { 'protocol/wire.ts': "import { encode } from 'cborg';\nexport const wire = encode;\n" },
      );
      await assert.rejects(
        bundleForXs(path.join(dir, 'unlisted', 'protocol/wire.ts'), { manifest }),
        /"cborg" imported by .*unlisted\/protocol\/wire\.ts is not in manifest\.json's modules for platform x-cli-lin: the Moddable build would fail/,
      );
    });

    it("fails a relative import of a module the manifest does not list, resolved as Moddable does (from the importer's specifier)", async () => {
      const manifest = await project(
        path.join(dir, 'relative'),
        {
          modules: {
            'firmware/units/comms': './firmware/units/comms',
            // mcconfig lists cborg's main as "cborg": its `./lib/*.js` imports are then `lib/*`, not `cborg/lib/*`.
            cborg: '$(REPO)/node_modules/cborg/cborg',
            'cborg/lib/*': '$(REPO)/node_modules/cborg/lib/*',
          },
        },
        {
          'firmware/units/comms.ts':
            "import { chain } from '../../protocol/chain';\nexport const c = chain;\n",
          'protocol/chain.ts': 'export const chain = 1;\n',
          'uses-cborg.ts': "import { encode } from 'cborg';\nexport const e = encode;\n",
        },
      );
      await assert.rejects(
        bundleForXs(path.join(dir, 'relative', 'firmware/units/comms.ts'), { manifest }),
        /"\.\.\/\.\.\/protocol\/chain" imported by .*comms\.ts is not in .* \(Moddable resolves it to "protocol\/chain"\)/,
      );
      await assert.rejects(
        bundleForXs(path.join(dir, 'relative', 'uses-cborg.ts'), { manifest }),
        /"\.\/lib\/encode\.js" imported by node_modules\/cborg\/cborg\.js is not in .* \(Moddable resolves it to "lib\/encode"\)/,
      );
    });

    it('fails an SDK module whose manifest the project does not include, and one that has no stand-in', async () => {
      const manifest = await project(
        path.join(dir, 'sdk'),
        { modules: { setup: './setup', crypto: './crypto', gcm: '$(MODULES)/crypt/etc/gcm' } },
        {
          'setup.ts': "import TextEncoder from 'text/encoder';\nexport const E = TextEncoder;\n",
          'crypto.ts': "import GCM from 'gcm';\nexport const G = GCM;\n",
        },
      );
      await assert.rejects(
        bundleForXs(path.join(dir, 'sdk', 'setup.ts'), { manifest }),
        /"text\/encoder" imported by .*setup\.ts is not in .*Include \$\(MODULES\)\/data\/text\/encoder\/manifest\.json in manifest\.json/,
      );
      await assert.rejects(
        bundleForXs(path.join(dir, 'sdk', 'crypto.ts'), { manifest }),
        /SDK module "gcm" \(\$\(MODULES\)\/crypt\/etc\/gcm\) imported by .*crypto\.ts has no stand-in/,
      );
    });

    it("checks every import reachable from creation.main, SDK modules taken on trust unless a stand-in's manifest is missing", async () => {
      const files = {
        'main.ts': "import { board } from './hal/board';\nimport './setup';\nexport const b = board;\n",
        'hal/board.ts':
          "import Digital from 'embedded:io/digital';\nimport { pin } from './pin';\nexport const board = [Digital, pin];\n",
        'hal/pin.ts': 'export const pin = 1;\n',
        'setup.ts': "import TextEncoder from 'text/encoder';\nexport const E = TextEncoder;\n",
      };
      const modules = { main: './main', 'hal/board': './hal/board', setup: './setup' };
      const missing = await project(path.join(dir, 'graph'), { creation: { main: 'main' }, modules }, files);
      const problems = await unlistedDeviceImports(missing, 'esp32');
      assert.equal(problems.length, 2, problems.join('\n'));
      assert.match(
        problems.join('\n'),
        /"\.\/pin" imported by .*hal\/board\.ts is not in .* \(Moddable resolves it to "hal\/pin"\)/,
      );
      assert.match(
        problems.join('\n'),
        /"text\/encoder" imported by .*setup\.ts .*Include \$\(MODULES\)\/data\/text\/encoder/,
      );
      const complete = await project(
        path.join(dir, 'graph-complete'),
        {
          include: TEXT_MANIFESTS,
          creation: { main: 'main' },
          modules: { ...modules, 'hal/pin': './hal/pin' },
        },
        files,
      );
      assert.deepEqual(await unlistedDeviceImports(complete, 'esp32'), []);
    });

    it("resolves every import reachable from the project manifest's creation.main, for esp32 and for the host build (x-cli-lin)", async () => {
      for (const platform of ['esp32', 'x-cli-lin']) {
        assert.deepEqual(await unlistedDeviceImports('manifest.json', platform), [], platform);
      }
    });

    /** Whether firmware/setup/text runs before the first cborg module in an evaluation order. */
    const setupBeforeCborg = (order: string[]): boolean => {
      const setup = order.indexOf('firmware/setup/text.ts');
      const cborg = order.findIndex((file) => file.startsWith('node_modules/cborg/'));
      assert.ok(cborg >= 0, 'cborg is evaluated');
      return setup >= 0 && setup < cborg;
    };

    it('orders evaluation as the device does: preloaded modules first, then main, each after its imports', async () => {
      const modules = {
        'firmware/setup/text': '$(REPO)/firmware/setup/text',
        cborg: '$(REPO)/node_modules/cborg/cborg',
        'lib/*': '$(REPO)/node_modules/cborg/lib/*',
        main: './main',
        wire: './wire',
      };
      const files = {
        'main.ts':
          "import './firmware/setup/text';\nimport { wire } from './wire';\nexport const w = wire;\n",
        'wire.ts': "import { encode } from 'cborg';\nexport const wire = encode;\n",
      };
      const base = { include: TEXT_MANIFESTS, creation: { main: 'main' }, modules };
      const inOrder = await deviceGraph(await project(path.join(dir, 'order'), base, files), 'esp32');
      assert.deepEqual(inOrder.problems, []);
      assert.equal(setupBeforeCborg(inOrder.order), true, inOrder.order.join(' '));
      // A preloaded module runs before main: preloading cborg's user runs cborg before the set-up.
      const preloaded = await deviceGraph(
        await project(path.join(dir, 'order-preload'), { ...base, preload: ['wire'] }, files),
        'esp32',
      );
      assert.equal(setupBeforeCborg(preloaded.order), false, preloaded.order.join(' '));
    });

    it("evaluates firmware/setup/text before cborg on the device, from the project manifest's preload and main", async () => {
      for (const platform of ['esp32', 'x-cli-lin']) {
        const { problems, order } = await deviceGraph('manifest.json', platform);
        assert.deepEqual(problems, [], platform);
        assert.equal(setupBeforeCborg(order), true, `${platform}: ${order.join(' ')}`);
      }
    });

    it('refuses a platform the manifest refuses', async () => {
      const manifest = await project(
        path.join(dir, 'platform'),
        { modules: { main: './main' }, platforms: { esp32: {}, '...': { error: 'esp32 only' } } },
        { 'main.ts': 'export {};\n' },
      );
      await assert.rejects(
        bundleForXs(path.join(dir, 'platform', 'main.ts'), { manifest }),
        /refuses platform x-cli-lin: esp32 only/,
      );
      await bundleForXs(path.join(dir, 'platform', 'main.ts'), { manifest, platform: 'esp32' });
    });
  });
});
