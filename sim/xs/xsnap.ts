// Runs firmware under the real XS engine (Moddable's, via @agoric/xsnap) from host tests and benchmarks,
// as the Moddable runtime would run it.
//
//   const script = await bundleForXs('host-tests/xs/smoke.entry.ts');
//   const xs = await startXs({ onMessage: (m) => console.log(m) });
//   const usage = await xs.evaluate(script);  // { compute, allocate, currentHeapCount }
//   xs.messages;                               // what the script sent with guest.ts `send`
//   await xs.close();
//
// Where xsnap is not the Moddable runtime, the harness makes it so:
// - bundleForXs resolves imports through manifest.json's module map for the platform (tools/manifest.ts),
//   as the Moddable build does: a module the manifest does not list fails the bundle. SDK modules
//   resolve to the stand-ins under sim/standins/.
// - startXs first evaluates moddableRuntime.entry.ts: frozen primordials, no TextEncoder/TextDecoder.
//
// The XS worker is driven from a child Node process (driver.ts) because @agoric/xsnap needs
// `@endo/init`, and its lockdown() in the mocha process breaks sinon's fake timers and Error stacks
// of every other test. What globals a script has under XS is listed in guest.ts.
import type { Crypto } from '../../hal/crypto';
import { answerCryptoCall, CRYPTO_MARK } from './hostCrypto';
import { type ChildProcess, fork } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildOptions, build, type Plugin } from 'esbuild';
import { type ModuleEntry, type ModuleMap, moddableSpecifier, readManifest } from '../../tools/manifest';
import { isModdableModule, NODE_ONLY_PACKAGES, packageName, XS_PACKAGES } from '../../tools/purity';
import { SDK_STAND_INS } from '../standins';
import type { FromDriver, ToDriver } from './driver';
import { decodeMessage, encodeMessage, type XsErrorMessage } from './guest';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Same as driver.ts SYNC_LINE (not imported: importing driver.ts would run it, and lock down this process). */
const SYNC_LINE = '\u0001parklink-xs-sync ';

/** What one `evaluate` cost, as xsnap's meter reports it. */
export interface MeterUsage {
  /** Deterministic count of XS work: the same on every run and machine. Quote this, not milliseconds. */
  compute: number;
  /** Bytes the XS heap has allocated from the system (chunks and slots). */
  allocate: number;
  /** Heap slots in use after the evaluate. */
  currentHeapCount: number;
}

export interface BundleOptions {
  minify?: boolean;
  /** esbuild `define`, e.g. `{ 'DEBUG': 'false' }`. */
  define?: Record<string, string>;
  /** The manifest whose module map imports resolve through (default: the repository's manifest.json). */
  manifest?: string;
  /** The platform whose module map applies (default `x-cli-lin`, the host build of the firmware). */
  platform?: string;
}

/** The platform the XS runs stand for: the Moddable host build (`mcconfig -p x-cli-lin`). */
export const XS_TEST_PLATFORM = 'x-cli-lin';

const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

function isNodeBuiltin(specifier: string): boolean {
  return specifier.startsWith('node:') || builtins.has(specifier) || builtins.has(specifier.split('/')[0]);
}

/** Why a Node builtin or a Node-only package, imported however deep, cannot be bundled for XS. */
function nodeImportProblem(specifier: string, from: string): string | undefined {
  if (isNodeBuiltin(specifier))
    return `Node builtin "${specifier}" imported by ${from}: XS has no Node modules`;
  if (NODE_ONLY_PACKAGES.includes(packageName(specifier))) {
    return `Node-only package "${specifier}" imported by ${from}: it cannot run under XS`;
  }
  return undefined;
}

/**
 * Resolves imports as the Moddable build and runtime do, through the manifest's module map:
 * - An import from a module the manifest lists (a device module) is resolved against that module's
 *   specifier, relative ones included (`../x` from `firmware/units/comms` is `firmware/x`), and must
 *   land on a listed module.
 * - SDK modules resolve to their stand-ins (sim/standins/), and only where the manifest provides them.
 * - Test scaffolding (entries, hal/mock, sim/) is not on the device: its relative imports resolve as
 *   usual, and its bare imports through the map or, for packages that run under XS, from node_modules.
 * With `sdk: 'unverified'` (checking the device's whole import graph, not bundling to run), SDK
 * modules are left external instead: those with a stand-in still need their SDK manifest included,
 * and other Moddable modules (tools/purity.ts isModdableModule) are taken on trust, as the SDK's
 * manifests are not read here.
 */
function moddableModules(
  map: ModuleMap,
  manifestName: string,
  sdk: 'stand-ins' | 'unverified' = 'stand-ins',
): Plugin {
  const where = `${manifestName}'s modules for platform ${map.platform}`;
  const specifierOf = new Map<string, string>();
  for (const entry of [...map.modules.values()].reverse()) {
    if (entry.kind === 'project') specifierOf.set(entry.file, entry.specifier);
  }
  const standIn = (specifier: string, entry: ModuleEntry | undefined): string | undefined => {
    const known = SDK_STAND_INS[specifier];
    if (!known) return undefined;
    if (entry?.kind === 'sdk' || map.sdkManifests.includes(known.sdkManifest)) {
      return path.join(repoRoot, known.file);
    }
    return undefined;
  };
  const resolveListed = (specifier: string, from: string, importedAs: string) => {
    const entry = map.modules.get(specifier);
    if (entry?.kind === 'project') return { path: entry.file };
    const file = standIn(specifier, entry);
    if (sdk === 'unverified') {
      const trusted = !SDK_STAND_INS[specifier] && isModdableModule(specifier);
      if (file || entry?.kind === 'sdk' || trusted) return { path: specifier, external: true };
    } else if (file) return { path: file };
    if (entry?.kind === 'sdk') {
      return {
        errors: [
          {
            text: `SDK module "${specifier}" (${entry.source}) imported by ${from} has no stand-in under sim/standins/`,
          },
        ],
      };
    }
    const known = SDK_STAND_INS[specifier];
    const hint = known ? `Include ${known.sdkManifest}` : 'List it (and its files)';
    return {
      errors: [
        {
          text:
            `"${importedAs}" imported by ${from} is not in ${where}` +
            (importedAs === specifier ? '' : ` (Moddable resolves it to "${specifier}")`) +
            `: the Moddable build would fail. ${hint} in ${manifestName}.`,
        },
      ],
    };
  };
  return {
    name: 'parklink-moddable-modules',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        if (args.kind === 'entry-point') return undefined;
        if (!path.isAbsolute(args.importer)) {
          // deviceGraph's root: the manifest's preload and creation.main, which must be listed.
          return resolveListed(args.path, `${manifestName}'s preload or creation.main`, args.path);
        }
        const from = path.relative(repoRoot, args.importer);
        const bare = !args.path.startsWith('.') && !args.path.startsWith('/');
        if (bare && !(sdk === 'unverified' && isModdableModule(args.path))) {
          const problem = nodeImportProblem(args.path, from);
          if (problem) return { errors: [{ text: problem }] };
        }
        const importer = specifierOf.get(args.importer);
        if (importer !== undefined) {
          const specifier = moddableSpecifier(importer, args.path);
          if (specifier === undefined) {
            return {
              errors: [
                { text: `"${args.path}" imported by ${from} climbs above the module root on Moddable` },
              ],
            };
          }
          return resolveListed(specifier, from, args.path);
        }
        if (!bare) return undefined;
        const specifier = moddableSpecifier('', args.path)!;
        if (map.modules.has(specifier) || SDK_STAND_INS[specifier]) {
          return resolveListed(specifier, from, args.path);
        }
        if (XS_PACKAGES.includes(packageName(args.path))) return undefined;
        return {
          errors: [
            {
              text: `"${args.path}" imported by ${from} is neither in ${where} nor a package that runs under XS (tools/purity.ts XS_PACKAGES)`,
            },
          ],
        };
      });
    },
  };
}

/** The module map bundles resolve through; throws if the manifest refuses the platform. */
export function xsModuleMap(manifest = 'manifest.json', platform = XS_TEST_PLATFORM): ModuleMap {
  const map = readManifest(path.resolve(repoRoot, manifest), platform);
  if (map.errors.length) {
    throw new Error(`${manifest} refuses platform ${platform}: ${map.errors.join('; ')}`);
  }
  return map;
}

/**
 * How every bundle for XS resolves and targets code. `neutral` has no main fields and no conditions
 * of its own: pick ESM builds (cborg is ESM only) and never the "node" condition (@noble/*'s crypto
 * shim would import node:crypto).
 */
export const XS_RESOLUTION: Readonly<
  Pick<BuildOptions, 'target' | 'platform' | 'mainFields' | 'conditions' | 'resolveExtensions'>
> = Object.freeze({
  target: 'es2022',
  platform: 'neutral',
  mainFields: ['module', 'main'],
  conditions: ['module', 'import', 'default'],
  resolveExtensions: ['.ts', '.js', '.mjs', '.json'],
});

/**
 * Bundles a TypeScript entry and everything it imports into one IIFE script for `evaluate`, resolving
 * imports through the manifest's module map. Throws (listing each offending import) if anything pulls
 * in a Node builtin or Node-only package, or a device module imports something the manifest lacks.
 */
export async function bundleForXs(entry: string, options: BundleOptions = {}): Promise<string> {
  const map = xsModuleMap(options.manifest, options.platform);
  const result = await build({
    entryPoints: [path.resolve(repoRoot, entry)],
    absWorkingDir: repoRoot,
    bundle: true,
    write: false,
    format: 'iife',
    ...XS_RESOLUTION,
    minify: options.minify ?? false,
    define: options.define ?? {},
    legalComments: 'none',
    logLevel: 'silent',
    plugins: [moddableModules(map, path.basename(options.manifest ?? 'manifest.json'))],
  });
  const file = result.outputFiles[0];
  if (!file) throw new Error(`esbuild produced no output for ${entry}`);
  return file.text;
}

export interface DeviceGraph {
  /** Imports the device would fail to find: empty when all resolve. */
  problems: string[];
  /**
   * Project files (relative to the repository) in the order the device evaluates them: the
   * `preload` modules in their order, then `creation.main`. Empty when there are problems.
   */
  order: string[];
}

/**
 * Every import reachable from the manifest's `preload` modules and `creation.main` for `platform`,
 * resolved through its module map as the Moddable build resolves them (moddableModules with
 * `sdk: 'unverified'`), and the order the device evaluates the project's modules in.
 */
export async function deviceGraph(manifest: string, platform: string): Promise<DeviceGraph> {
  const map = xsModuleMap(manifest, platform);
  const main = map.main === undefined ? undefined : map.modules.get(map.main);
  if (main?.kind !== 'project') {
    const problem = `creation.main ${JSON.stringify(map.main)} is not a project module in ${manifest} for ${platform}`;
    return { problems: [problem], order: [] };
  }
  const roots = [...map.preload, map.main].map((specifier) => `import ${JSON.stringify(specifier)};`);
  try {
    const result = await build({
      stdin: { contents: roots.join('\n'), resolveDir: repoRoot },
      absWorkingDir: repoRoot,
      bundle: true,
      write: false,
      format: 'esm',
      ...XS_RESOLUTION,
      logLevel: 'silent',
      metafile: true,
      plugins: [moddableModules(map, path.basename(manifest), 'unverified')],
    });
    // ECMAScript evaluates a module after its imports, in the order its import statements appear
    // (each module once): a post-order walk of the import graph, which the metafile records in order.
    const { inputs } = result.metafile;
    const order: string[] = [];
    const visited = new Set<string>();
    const visit = (file: string): void => {
      if (visited.has(file)) return;
      visited.add(file);
      for (const dependency of inputs[file]?.imports ?? []) {
        if (!dependency.external && dependency.kind === 'import-statement') visit(dependency.path);
      }
      order.push(file);
    };
    const root = Object.keys(inputs).find((file) => file.startsWith('<stdin>'));
    if (root) visit(root);
    return { problems: [], order: order.filter((file) => file !== root) };
  } catch (error) {
    const errors = (error as { errors?: { text: string }[] }).errors;
    if (!errors) throw error;
    return { problems: errors.map((e) => e.text), order: [] };
  }
}

/** deviceGraph's problems: what the device would fail to find. Empty when all resolve. */
export async function unlistedDeviceImports(manifest: string, platform: string): Promise<string[]> {
  return (await deviceGraph(manifest, platform)).problems;
}

export type XsnapAvailability =
  | { available: true; binary: string }
  | { available: false; binary: string; reason: string };

/** Whether the XS worker binary that @agoric/xsnap's install script builds is there. */
export function xsnapAvailable(): XsnapAvailability {
  const platform = ({ Linux: 'lin', Darwin: 'mac' } as Record<string, string>)[os.type()];
  let packageDir: string;
  try {
    packageDir = path.dirname(path.dirname(createRequire(import.meta.url).resolve('@agoric/xsnap')));
  } catch {
    return { available: false, binary: '', reason: '@agoric/xsnap is not installed: run `npm install`' };
  }
  const binary = path.join(
    packageDir,
    `xsnap-native/xsnap/build/bin/${platform ?? 'unknown'}/release/xsnap-worker`,
  );
  if (!platform) return { available: false, binary, reason: `xsnap does not support ${os.type()}` };
  try {
    accessSync(binary, constants.X_OK);
    return { available: true, binary };
  } catch {
    return {
      available: false,
      binary,
      reason:
        `XS worker not built: ${path.relative(repoRoot, binary)} is missing. npm did not run ` +
        '@agoric/xsnap\'s install script (npm 11 "allowScripts"); run `npm rebuild @agoric/xsnap` ' +
        '(or `npm run build:from-env` in node_modules/@agoric/xsnap), about 40 s.',
    };
  }
}

export interface StartXsOptions {
  /** Shown in XS error messages. */
  name?: string;
  /**
   * Called with each message the script sends with guest.ts `send` (JSON decoded, Uint8Array and
   * bigint restored); what it returns goes back to the script as `send`'s result.
   */
  onMessage?: (message: unknown) => unknown;
  /**
   * Answer hostCrypto's calls (sim/xs/hostCrypto.ts) with this provider, as the device's native
   * `crypt` would: the script's crypto then costs no XS compute.
   */
  nativeCrypto?: Crypto;
  /** Raw `issueCommand` handler: replaces the JSON decoding (and `messages`) when given. */
  handleCommand?: (bytes: Uint8Array) => Uint8Array | undefined | Promise<Uint8Array | undefined>;
  /** Each line the script prints (`print`); by default they are only collected in `output`. */
  onPrint?: (line: string) => void;
  /** XS compute units allowed per evaluate (the worker dies past it); 0, the default, is no limit. */
  meteringLimit?: number;
  /**
   * `moddable` (the default) first evaluates moddableRuntime.entry.ts: frozen primordials, no
   * TextEncoder/TextDecoder, as on the device. `xsnap` leaves xsnap's globals as they are: only the
   * harness's own tests use it, to show what the Moddable runtime changes.
   */
  runtime?: 'moddable' | 'xsnap';
}

let moddableRuntimeScript: Promise<string> | undefined;

/** The prelude that makes xsnap's globals the Moddable runtime's (bundled once per process). */
function moddableRuntime(): Promise<string> {
  moddableRuntimeScript ??= build({
    entryPoints: [fileURLToPath(new URL('./moddableRuntime.entry.ts', import.meta.url))],
    bundle: true,
    write: false,
    format: 'iife',
    target: 'es2022',
    platform: 'neutral',
    legalComments: 'none',
    logLevel: 'silent',
  }).then((result) => result.outputFiles[0]!.text);
  return moddableRuntimeScript;
}

export interface XsWorker {
  /** Runs a script (not a module) to idle, promise jobs included; resolves with its meter usage. */
  evaluate(code: string): Promise<MeterUsage>;
  /** Everything the script has sent with `send`, in order (unless `handleCommand` was given). */
  readonly messages: unknown[];
  /** Lines the script printed. */
  readonly output: string[];
  /** Stops the XS worker and its driver process. */
  close(): Promise<void>;
}

const driverPath = fileURLToPath(new URL('./driver.ts', import.meta.url));
const tsRegister = path.join(repoRoot, 'tools/ts-register.js');

function lines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (!stream) return;
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop() ?? '';
    for (const line of parts) onLine(line);
  });
  stream.on('end', () => {
    if (rest) onLine(rest);
  });
}

/** Starts an XS worker (in its own driver process). Always `close()` it. */
export async function startXs(options: StartXsOptions = {}): Promise<XsWorker> {
  const availability = xsnapAvailable();
  if (!availability.available) throw new Error(availability.reason);

  const child: ChildProcess = fork(driverPath, [], {
    cwd: repoRoot,
    execArgv: ['--import', tsRegister, '--no-warnings=ExperimentalWarning'],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    serialization: 'advanced',
    env: {
      ...process.env,
      PARKLINK_XS_NAME: options.name ?? 'parklink-xs',
      PARKLINK_XS_METERING_LIMIT: String(options.meteringLimit ?? 0),
    },
  });

  const messages: unknown[] = [];
  const output: string[] = [];
  const errors: string[] = [];
  const synced = new Set<number>();
  const syncWaiters = new Map<number, () => void>();
  lines(child.stdout, (line) => {
    if (line.startsWith(SYNC_LINE)) {
      const id = Number(line.slice(SYNC_LINE.length));
      const waiter = syncWaiters.get(id);
      syncWaiters.delete(id);
      if (waiter) waiter();
      else synced.add(id);
      return;
    }
    output.push(line);
    options.onPrint?.(line);
  });
  /** Resolves once the evaluate's sync line has been read from the worker's stdout. */
  const printedUpTo = (id: number): Promise<void> => {
    if (synced.delete(id)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        syncWaiters.delete(id);
        resolve();
      }, 2000);
      syncWaiters.set(id, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  };
  lines(child.stderr, (line) => errors.push(line));

  let exited = false;
  let nextEvaluate = 1;
  let xsError: XsErrorMessage['$xsError'] | undefined;
  const pending = new Map<number, { resolve: (usage: MeterUsage) => void; reject: (error: Error) => void }>();

  const stderrTail = (): string => (errors.length ? `\n${errors.slice(-20).join('\n')}` : '');

  // Keep the parent alive only while something is awaited, so a forgotten close() cannot hang mocha.
  const hold = (on: boolean): void => {
    for (const h of [child, child.channel, child.stdout, child.stderr] as ({
      ref?: () => void;
      unref?: () => void;
    } | null)[]) {
      if (on) h?.ref?.();
      else h?.unref?.();
    }
  };

  const ready = new Promise<void>((resolve, reject) => {
    child.once('message', (m: FromDriver) => (m.type === 'ready' ? resolve() : reject(new Error(m.type))));
    child.once('exit', (code) =>
      reject(new Error(`xsnap driver exited (${code}) before it was ready${stderrTail()}`)),
    );
    child.once('error', reject);
  });

  child.on('exit', (code, signal) => {
    exited = true;
    for (const { reject } of pending.values()) {
      reject(new Error(`xsnap driver exited (${code ?? signal})${stderrTail()}`));
    }
    pending.clear();
  });

  const answer = async (bytes: Uint8Array): Promise<Uint8Array> => {
    if (options.nativeCrypto && bytes[0] === CRYPTO_MARK)
      return answerCryptoCall(bytes, options.nativeCrypto);
    if (options.handleCommand) return (await options.handleCommand(bytes)) ?? new Uint8Array(0);
    const message = decodeMessage(bytes);
    if (message && typeof message === 'object' && '$xsError' in message) {
      xsError ??= (message as XsErrorMessage).$xsError;
      return new Uint8Array(0);
    }
    messages.push(message);
    const reply = await options.onMessage?.(message);
    return reply === undefined ? new Uint8Array(0) : encodeMessage(reply);
  };

  child.on('message', (m: FromDriver) => {
    if (m.type === 'command') {
      answer(m.bytes).then(
        (bytes) => child.send({ type: 'reply', id: m.id, bytes } satisfies ToDriver),
        (error: unknown) => {
          xsError ??= { name: 'HostError', message: `command handler threw: ${String(error)}` };
          child.send({ type: 'reply', id: m.id, bytes: new Uint8Array(0) } satisfies ToDriver);
        },
      );
    } else if (m.type === 'evaluated' || m.type === 'failed') {
      const failure = xsError;
      xsError = undefined;
      const settle = (): void => {
        const p = pending.get(m.id);
        pending.delete(m.id);
        if (pending.size === 0) hold(false);
        if (!p) return;
        if (m.type === 'failed') p.reject(new Error(`${m.message}${stderrTail()}`));
        else if (failure) {
          const error = new Error(`under XS: ${failure.name}: ${failure.message}`);
          if (failure.stack) error.stack = `${error.message}\n--- XS stack ---\n${failure.stack}`;
          p.reject(error);
        } else p.resolve(m.meterUsage);
      };
      if (m.synced) void printedUpTo(m.id).then(settle);
      else settle();
    }
  });

  const evaluate = (code: string): Promise<MeterUsage> => {
    if (exited) return Promise.reject(new Error(`xsnap driver has exited${stderrTail()}`));
    const id = nextEvaluate++;
    return new Promise<MeterUsage>((resolve, reject) => {
      pending.set(id, { resolve, reject });
      hold(true);
      child.send({ type: 'evaluate', id, code } satisfies ToDriver);
    });
  };

  try {
    await ready;
    if ((options.runtime ?? 'moddable') === 'moddable') await evaluate(await moddableRuntime());
  } catch (error) {
    child.kill();
    throw error;
  }
  hold(false);

  return {
    messages,
    output,
    evaluate,
    async close(): Promise<void> {
      if (exited) return;
      hold(true);
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const timer = setTimeout(() => child.kill(), 5000);
      child.send({ type: 'close' } satisfies ToDriver);
      await gone;
      clearTimeout(timer);
    },
  };
}
