// Builds the ESP32 image with the Moddable SDK and flashes it to a board.
//
//   node --import ./tools/ts-register.js tools/flash.ts [--dry-run] [--port /dev/ttyUSB0] [--board esp32]
//
// --dry-run prints the mcconfig command and checks manifest.json without building: every module the
// manifest lists from this repository resolves to a .ts or .js file, its specifier equals its path
// (so that relative imports resolve under XS), and every module reachable from the entry
// (firmware/main) by a runtime import is listed.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';

export interface ManifestCheck {
  ok: boolean;
  errors: string[];
  /** Specifiers of the repository's modules the manifest lists. */
  listed: string[];
  /** Specifiers reachable from the entry by runtime imports, the entry first. */
  reachable: string[];
}

const SOURCE_EXTENSIONS = ['.ts', '.js'];

type Manifest = {
  creation?: { main?: string };
  modules?: Record<string, string | string[]>;
  platforms?: Record<string, { modules?: Record<string, string | string[]> }>;
};

function isFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function resolveSource(base: string): string | undefined {
  if (SOURCE_EXTENSIONS.some((extension) => base.endsWith(extension)) && isFile(base)) return base;
  for (const extension of SOURCE_EXTENSIONS) if (isFile(base + extension)) return base + extension;
  return undefined;
}

function toSpecifier(root: string, file: string): string {
  return path
    .relative(root, file)
    .split(path.sep)
    .join('/')
    .replace(/\.(ts|js)$/, '');
}

/** Runtime module specifiers of a source file: imports and re-exports that are not type-only, dynamic imports. */
export function runtimeImports(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined &&
            clause.namedBindings !== undefined &&
            ts.isNamedImports(clause.namedBindings) &&
            clause.namedBindings.elements.length > 0 &&
            clause.namedBindings.elements.every((element) => element.isTypeOnly)));
      if (!typeOnly) found.push(node.moduleSpecifier.text);
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      if (!node.isTypeOnly) found.push(node.moduleSpecifier.text);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments.length === 1 &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      found.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** Checks a Moddable manifest against the sources beside it (see the header). */
export function checkManifest(manifestPath: string): ManifestCheck {
  const errors: string[] = [];
  const root = path.dirname(path.resolve(manifestPath));
  const manifestName = path.basename(manifestPath);
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
  } catch (error) {
    return { ok: false, errors: [`${manifestPath}: ${(error as Error).message}`], listed: [], reachable: [] };
  }

  // Local modules: values starting with "./" in the top-level and esp32 module maps.
  const listed = new Map<string, string>(); // specifier -> file
  const maps = [manifest.modules ?? {}, manifest.platforms?.esp32?.modules ?? {}];
  for (const modules of maps) {
    for (const [specifier, value] of Object.entries(modules)) {
      for (const entry of Array.isArray(value) ? value : [value]) {
        if (!entry.startsWith('./')) continue;
        const file = resolveSource(path.join(root, entry));
        if (!file) {
          errors.push(`${manifestName}: module "${specifier}" -> ${entry}(.ts|.js): no such file`);
          continue;
        }
        if (specifier.includes('*')) continue;
        if (specifier !== toSpecifier(root, file)) {
          errors.push(
            `${manifestName}: module "${specifier}" maps to ${entry}; name it "${toSpecifier(root, file)}" so relative imports resolve`,
          );
        }
        listed.set(specifier, file);
      }
    }
  }

  const entry = manifest.creation?.main ?? 'main';
  const entryFile = listed.get(entry) ?? resolveSource(path.join(root, entry));
  const reachable: string[] = [];
  if (!entryFile) {
    errors.push(`${manifestName}: entry module "${entry}" (${entry}.ts) does not exist`);
  } else {
    if (!listed.has(entry))
      errors.push(`${manifestName}: entry module "${entry}" is not listed in "modules"`);
    const seen = new Set<string>([entryFile]);
    const queue = [entryFile];
    while (queue.length > 0) {
      const file = queue.shift()!;
      const from = toSpecifier(root, file);
      reachable.push(from);
      for (const specifier of runtimeImports(file)) {
        if (!specifier.startsWith('./') && !specifier.startsWith('../')) continue; // SDK or package module
        const target = resolveSource(path.resolve(path.dirname(file), specifier));
        if (!target) {
          errors.push(`${path.relative(root, file)}: import "${specifier}" resolves to no .ts or .js file`);
          continue;
        }
        const name = toSpecifier(root, target);
        if (name.startsWith('..')) {
          errors.push(`${path.relative(root, file)}: import "${specifier}" leaves the project`);
          continue;
        }
        if (!listed.has(name)) {
          errors.push(`${manifestName}: "${name}" (imported by ${from}) is not listed in "modules"`);
        }
        if (!seen.has(target)) {
          seen.add(target);
          queue.push(target);
        }
      }
    }
  }
  return { ok: errors.length === 0, errors, listed: [...listed.keys()], reachable };
}

export interface Toolchain {
  moddable?: string;
  mcconfig?: string;
  idfPath?: string;
  /** What is missing and how to install it; empty when the build can run. */
  problems: string[];
}

function findOnPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const directory of (env.PATH ?? '').split(path.delimiter)) {
    if (!directory) continue;
    const candidate = path.join(directory, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (isFile(candidate)) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Finds the Moddable SDK (MODDABLE, mcconfig) and, for ESP32 boards, the ESP-IDF. */
export function findToolchain(env: NodeJS.ProcessEnv, board: string): Toolchain {
  const problems: string[] = [];
  const moddable = env.MODDABLE && existsSync(env.MODDABLE) ? env.MODDABLE : undefined;
  const host = process.platform === 'darwin' ? 'mac' : process.platform === 'win32' ? 'win' : 'lin';
  const built = moddable ? path.join(moddable, 'build', 'bin', host, 'release', 'mcconfig') : undefined;
  const mcconfig = findOnPath('mcconfig', env) ?? (built && isFile(built) ? built : undefined);
  if (!moddable) {
    problems.push(
      `${env.MODDABLE ? `MODDABLE=${env.MODDABLE} does not exist` : 'MODDABLE is not set'}` +
        `${mcconfig ? ` (mcconfig found at ${mcconfig}, but it needs MODDABLE)` : ' and mcconfig is not on PATH'}.\n` +
        '  Install the Moddable SDK: git clone https://github.com/Moddable-OpenSource/moddable ~/Projects/moddable,\n' +
        '  export MODDABLE=~/Projects/moddable, build the tools (cd $MODDABLE/build/makefiles/lin && make) and add\n' +
        '  $MODDABLE/build/bin/lin/release to PATH (documentation/Moddable SDK - Getting Started.md).',
    );
  } else if (!mcconfig) {
    problems.push(
      `mcconfig is neither on PATH nor in ${path.dirname(built!)}: build the Moddable tools\n` +
        `  (cd ${moddable}/build/makefiles/${host} && make) and add ${path.dirname(built!)} to PATH.`,
    );
  }
  let idfPath: string | undefined;
  if (board.startsWith('esp32')) {
    idfPath = env.IDF_PATH && existsSync(env.IDF_PATH) ? env.IDF_PATH : undefined;
    if (!idfPath) {
      problems.push(
        `${env.IDF_PATH ? `IDF_PATH=${env.IDF_PATH} does not exist` : 'IDF_PATH is not set'}: the ESP32 build needs the ESP-IDF.\n` +
          '  Install it as $MODDABLE/documentation/devices/esp32.md says (git clone -b <version> --recursive\n' +
          '  https://github.com/espressif/esp-idf.git, ./install.sh), export IDF_PATH and source $IDF_PATH/export.sh.',
      );
    } else if (!findOnPath('idf.py', env)) {
      problems.push(`idf.py is not on PATH: run "source ${idfPath}/export.sh" in this shell first.`);
    }
  }
  return { moddable, mcconfig, idfPath, problems };
}

export interface FlashOptions {
  dryRun: boolean;
  port?: string;
  board: string;
  manifest: string;
}

export function parseArguments(argv: readonly string[]): FlashOptions {
  const options: FlashOptions = { dryRun: false, board: 'esp32', manifest: './manifest.json' };
  for (let i = 0; i < argv.length; i++) {
    const argument = argv[i];
    const value = (): string => {
      const next = argv[++i];
      if (next === undefined || next.startsWith('--')) throw new Error(`${argument} needs a value`);
      return next;
    };
    if (argument === '--dry-run') options.dryRun = true;
    else if (argument === '--port') options.port = value();
    else if (argument === '--board') options.board = value();
    else if (argument === '--manifest') options.manifest = value();
    else throw new Error(`unknown argument ${argument}`);
  }
  return options;
}

/** The mcconfig invocation; the serial port goes in UPLOAD_PORT, as the SDK's ESP32 build reads it. */
export function mcconfigCommand(options: FlashOptions): {
  args: string[];
  env: Record<string, string>;
  text: string;
} {
  const args = ['-d', '-m', '-p', options.board, options.manifest];
  const env: Record<string, string> = options.port ? { UPLOAD_PORT: options.port } : {};
  const prefix = options.port ? `UPLOAD_PORT=${options.port} ` : '';
  return { args, env, text: `${prefix}mcconfig ${args.join(' ')}` };
}

export interface Output {
  log(line: string): void;
  error(line: string): void;
}

/** Runs the tool; returns the exit code (0 done, 1 manifest or usage error, 2 toolchain missing). */
const USAGE =
  'usage: npm run flash -- [--dry-run] [--port /dev/ttyUSB0] [--board esp32] [--manifest ./manifest.json]';

export function run(argv: readonly string[], env: NodeJS.ProcessEnv, out: Output = console): number {
  if (argv.includes('--help') || argv.includes('-h')) {
    out.log(
      `${USAGE}\n  builds the ESP32 image with the Moddable SDK (mcconfig) and flashes it; --dry-run prints the\n  command and checks manifest.json against the files`,
    );
    return 0;
  }
  let options: FlashOptions;
  try {
    options = parseArguments(argv);
  } catch (error) {
    out.error(`flash: ${(error as Error).message}`);
    out.error(USAGE);
    return 1;
  }
  const command = mcconfigCommand(options);
  const toolchain = findToolchain(env, options.board);

  if (options.dryRun) {
    out.log(command.text);
    for (const problem of toolchain.problems) out.log(`note: ${problem}`);
    const check = checkManifest(options.manifest);
    for (const error of check.errors) out.error(`error: ${error}`);
    if (!check.ok) return 1;
    out.log(
      `manifest ok: ${check.listed.length} modules listed, ${check.reachable.length} reachable from the entry`,
    );
    return 0;
  }

  if (toolchain.problems.length > 0) {
    for (const problem of toolchain.problems) out.error(`flash: ${problem}`);
    return 2;
  }
  const check = checkManifest(options.manifest);
  if (!check.ok) {
    for (const error of check.errors) out.error(`error: ${error}`);
    return 1;
  }
  out.log(command.text);
  const result = spawnSync(toolchain.mcconfig!, command.args, {
    stdio: 'inherit',
    env: { ...env, ...command.env },
  });
  if (result.error) {
    out.error(`flash: ${result.error.message}`);
    return 1;
  }
  return result.status ?? 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exitCode = run(process.argv.slice(2), process.env);
}
