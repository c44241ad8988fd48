// Firmware-side code must not import a Node module or use a Node global (DESIGN.md, rules of the
// house). The checker lives in tools/purity.ts so the CLI / pre-commit hook runs the same rules.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  checkFiles,
  checkRepository,
  checkSources,
  firmwareFiles,
  formatViolation,
  isFirmwareSide,
  type PurityViolation,
  typecheckFirmware,
} from '../tools/purity';

const root = fileURLToPath(new URL('../', import.meta.url));

describe('purity: firmware side uses no Node module and no Node global', function () {
  this.timeout(30_000);

  it('finds the firmware-side files: firmware, protocol, drivers, hal with hal/mock but not *.node.ts', () => {
    assert.equal(isFirmwareSide('hal/nobleCrypto.ts'), true);
    assert.equal(isFirmwareSide('hal/mock/flash.ts'), true);
    assert.equal(isFirmwareSide('hal/mock/broker.node.ts'), false);
    assert.equal(isFirmwareSide('hal/moddable/clock.ts'), true);
    assert.equal(isFirmwareSide('protocol/x.ts'), true);
    assert.equal(isFirmwareSide('platform-server/x.ts'), false);
    assert.equal(isFirmwareSide('host-tests/x.test.ts'), false);
    const files = firmwareFiles(root).map((f) => path.relative(root, f).split(path.sep).join('/'));
    assert.ok(files.includes('hal/mock/flash.ts') && files.includes('hal/nobleCrypto.ts'), files.join(' '));
    assert.ok(files.every((f) => isFirmwareSide(f)));
  });

  it('no firmware-side file imports a Node module or uses a Node global', () => {
    const violations = checkRepository(root);
    assert.deepEqual(violations.map(formatViolation), []);
  });

  it('the XS harness script side (bundled with the firmware) is pure too', () => {
    const files = [
      'sim/xs/guest.ts',
      'sim/xs/hostText.ts',
      'sim/xs/moddableRuntime.entry.ts',
      'sim/standins/text/encoder.ts',
      'sim/standins/text/decoder.ts',
    ];
    assert.deepEqual(checkFiles(root, files).map(formatViolation), []);
  });

  it('the firmware side type-checks without Node types (tsconfig.firmware.json)', () => {
    assert.deepEqual(typecheckFirmware(root), []);
  });

  describe('the checker', () => {
    // One program for all fixtures (each program loads @types/node once).
    let found: PurityViolation[] = [];
    const at = (file: string): string[] =>
      found.filter((v) => v.file === file).map((v) => `${v.kind} ${v.name} @${v.line}`);

    before(() => {
      found = checkSources(root, {
        'firmware/__fixtures__/buffer.ts': "export const b = Buffer.from('meter');\n",
        'firmware/__fixtures__/fs.ts': "import fs from 'fs';\nexport const read = fs.readFileSync;\n",
        'firmware/__fixtures__/require.ts': "const net = require('net');\nexport { net };\n",
        'firmware/__fixtures__/timer.ts': 'setTimeout(() => {}, 1000);\nexport {};\n',
        'firmware/__fixtures__/more-imports.ts': [
          "import { randomBytes } from 'node:crypto';",
          "export * from 'pg';",
          "import leftPad from 'left-pad';",
          "import Digital from 'embedded:io/digital';",
          "import { x } from '../../platform-server/ingest';",
          "import { y } from '../../hal/mock/broker.node';",
          'export const later = () => import("node:os");',
          'export const computed = (name: string) => import(name);',
          'export const all = [randomBytes, leftPad, Digital, x, y];',
        ].join('\n'),
        'protocol/__fixtures__/globals.ts': [
          '/// <reference types="node" />',
          'export const env = globalThis.process.env;',
          'export let handle: NodeJS.Timeout | undefined;',
          'queueMicrotask(() => {});',
          'export const copy = structuredClone({ a: 1 });',
          "console.log('x');",
          'export const dir = __dirname;',
        ].join('\n'),
        'firmware/__fixtures__/clean-script.ts': 'const process = 1; process + 1;\n',
        'firmware/__fixtures__/clean.ts': [
          "import { sha256 } from '@noble/hashes/sha256';",
          "import { gcm } from '@noble/ciphers/aes';",
          "import { encode } from 'cborg';",
          "import type { Clock } from '../../hal/clock';",
          'const process = 1;',
          'export const sum = process + 1;',
          'declare const obj: any;',
          'export const b = obj.Buffer;',
          'export const t = { setTimeout: 1, process: 2, Buffer: 3 };',
          'export function later(setTimeout: (f: () => void) => void) { setTimeout(() => {}); }',
          'export class Unit { process(): void {} static Buffer = 1; require = 2; }',
          'export interface Shape { Buffer: Uint8Array; global: number }',
          'export const { require: req } = { require: 1 };',
          'export const text = String(obj.console);',
          'export const all = [sha256, gcm, encode] as const;',
          'export type C = Clock;',
        ].join('\n'),
        'protocol/__fixtures__/text.ts': [
          "export const bytes = new TextEncoder().encode('x');",
          'export const decoder = globalThis.TextDecoder;',
          "import SdkTextEncoder from 'text/encoder';",
          'export const own = { TextEncoder: SdkTextEncoder };',
        ].join('\n'),
        'firmware/setup/text.ts': [
          "import SdkTextEncoder from 'text/encoder';",
          "import SdkTextDecoder from 'text/decoder';",
          'if (typeof TextEncoder !== "function") (globalThis as any).TextEncoder = SdkTextEncoder;',
          'if (typeof globalThis.TextDecoder !== "function") (globalThis as any).TextDecoder = SdkTextDecoder;',
        ].join('\n'),
        'drivers/__fixtures__/error-name.ts': [
          "export class Assigned extends Error { constructor() { super('x'); this.name = 'Assigned'; } }",
          "export class Field extends Error { override name = 'Field'; }",
          "export class Own extends Error { declare name: string; constructor() { super('x'); this.name = 'Own'; } }",
          "export class Plain { name = ''; rename() { this.name = 'plain'; } }",
          "export class Later extends Error { relabel() { const f = () => { this.name = 'Later'; }; f(); } }",
          "export const literal = { name: '', set() { this.name = 'literal'; } };",
        ].join('\n'),
        'hal/moddable/__fixture.ts':
          "import Digital from 'embedded:io/digital';\nimport Timer from 'timer';\nexport const d = [Digital, Timer];\n",
      });
    });

    it('flags Buffer.from (and only Buffer, not its member)', () => {
      assert.deepEqual(at('firmware/__fixtures__/buffer.ts'), ['global Buffer @1']);
    });

    it("flags import fs from 'fs'", () => {
      assert.deepEqual(at('firmware/__fixtures__/fs.ts'), ['import fs @1']);
    });

    it("flags require('net'), both the module and the require global", () => {
      assert.deepEqual(at('firmware/__fixtures__/require.ts').sort(), ['global require @1', 'import net @1']);
    });

    it('flags this.name = in a class that inherits name (frozen Error.prototype on the device), not a declared field', () => {
      assert.deepEqual(at('drivers/__fixtures__/error-name.ts'), [
        'primordial name @1',
        'primordial name @5',
      ]);
    });

    it('flags setTimeout (timers come from hal/clock)', () => {
      assert.deepEqual(at('firmware/__fixtures__/timer.ts'), ['global setTimeout @1']);
    });

    it('flags node: and Node-only packages, unlisted packages, embedded: outside hal/moddable, Node-side paths, dynamic imports', () => {
      assert.deepEqual(at('firmware/__fixtures__/more-imports.ts'), [
        'import node:crypto @1',
        'import pg @2',
        'import left-pad @3',
        'import embedded:io/digital @4',
        'import ../../platform-server/ingest @5',
        'import ../../hal/mock/broker.node @6',
        'import node:os @7',
        'import import() @8',
      ]);
    });

    it('flags globalThis.process, NodeJS types, queueMicrotask, structuredClone, console, __dirname, reference types', () => {
      assert.deepEqual(at('protocol/__fixtures__/globals.ts'), [
        'import node @1',
        'global process @2',
        'global NodeJS @3',
        'global queueMicrotask @4',
        'global structuredClone @5',
        'global console @6',
        'global __dirname @7',
      ]);
    });

    it('flags TextEncoder and TextDecoder (the Moddable runtime has neither) and the SDK text modules outside firmware/setup/text', () => {
      assert.deepEqual(at('protocol/__fixtures__/text.ts'), [
        'global TextEncoder @1',
        'global TextDecoder @2',
        'import text/encoder @3',
      ]);
      assert.deepEqual(at('firmware/setup/text.ts'), []);
    });

    it('does not flag a local named process, member names like obj.Buffer, XS packages', () => {
      assert.deepEqual(at('firmware/__fixtures__/clean-script.ts'), []);
      assert.deepEqual(at('firmware/__fixtures__/clean.ts'), []);
    });

    it('lets hal/moddable import Moddable modules', () => {
      assert.deepEqual(at('hal/moddable/__fixture.ts'), []);
    });

    it('reports file:line:column', () => {
      const v = found.find((f) => f.file === 'firmware/__fixtures__/timer.ts');
      assert.ok(v);
      assert.equal(
        formatViolation(v),
        'firmware/__fixtures__/timer.ts:1:1: uses the Node global "setTimeout"',
      );
    });
  });

  it('the CLI prints file:line of each offence and exits 1', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'parklink-purity-'));
    try {
      await symlink(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
      for (const config of ['tsconfig.json', 'tsconfig.firmware.json']) {
        await symlink(path.join(root, config), path.join(dir, config));
      }
      await mkdir(path.join(dir, 'firmware'));
      await writeFile(
        path.join(dir, 'firmware/bad.ts'),
        "export const when = process.hrtime();\nimport 'mqtt';\n",
      );
      const run = promisify(execFile)(
        process.execPath,
        ['--import', './tools/ts-register.js', '--no-warnings=ExperimentalWarning', 'tools/purity.ts', dir],
        { cwd: root },
      );
      const failure = (await run.then(
        () => assert.fail('the CLI exited 0'),
        (error: unknown) => error,
      )) as { code: number; stdout: string };
      assert.equal(failure.code, 1);
      assert.match(failure.stdout, /^firmware\/bad\.ts:1:21: uses the Node global "process"$/m);
      assert.match(failure.stdout, /^firmware\/bad\.ts:2:8: imports the Node-only package "mqtt"$/m);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
