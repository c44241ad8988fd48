// The purity check: firmware-side code (what is bundled for XS) must not import a Node module or use a
// Node global. Run as a CLI (pre-commit, CI):
//
//   node --import ./tools/ts-register.js tools/purity.ts [root]
//
// prints each offence as file:line:column and exits 1. host-tests/purity.test.ts runs the same check.
//
// Firmware side: every .ts under firmware/, protocol/, drivers/, hal/ — hal/mock/ included, because
// the virtual hardware is bundled for the XS test too, except files named *.node.ts there (Node-only
// adapters: they may import what they like, and firmware-side files may not import them).
//
// How globals are judged: the files are type-checked together with @types/node, and an identifier
// is a Node global when the TypeScript checker resolves it to a declaration that exists only in
// @types/node. A local variable, parameter or import named `process` resolves to that declaration
// instead, and a member name (`obj.Buffer`, `{ setTimeout: f }`, `NodeJS.Timeout`'s `Timeout`) is not a
// free identifier, so neither is flagged. `globalThis.process` is. If @types/node is missing, the
// NODE_GLOBALS names are flagged when they resolve to nothing.
//
// Frozen primordials: Moddable preloads the firmware's modules and then freezes the primordials, so
// `this.name = 'X'` in a class that extends another (an Error) throws "set name: not writable" on the
// device. Such an assignment is flagged unless the class declares its own `name` member (a class field,
// `override name = 'X'`, defines the property instead of assigning it).
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** Packages that only run on Node (they need its modules, sockets or native code). */
export const NODE_ONLY_PACKAGES: readonly string[] = Object.freeze([
  'mqtt',
  'aedes',
  'pg',
  '@electric-sql/pglite',
  'fastify',
  'ws',
  'tmp',
  'esbuild',
  'typescript',
  'ts-node',
  'mocha',
  'sinon',
  '@agoric/xsnap',
  '@endo/init',
  '@biomejs/biome',
]);

/** Packages checked to run under XS (pure ECMAScript, no host API). Add one only after trying it there. */
export const XS_PACKAGES: readonly string[] = Object.freeze([
  '@noble/hashes',
  '@noble/ciphers',
  '@noble/curves',
  'cborg',
]);

/** Where Moddable modules (`embedded:*`, `timer`, `flash`, Moddable's own `mqtt`, `net`, …) may be imported. */
export const MODDABLE_DIRS: readonly string[] = Object.freeze(['hal/moddable/', 'drivers/display/']);

/**
 * Moddable SDK module specifiers (from @moddable/typings, plus the crypt family: gcm, hmac, ctr, cbc,
 * cmac, hkdf), besides `embedded:*` and the prefixes below. Extend it when hal/moddable needs another.
 */
export const MODDABLE_MODULES: readonly string[] = Object.freeze([
  'Resource',
  'base64',
  'bleclient',
  'bleserver',
  'btutils',
  'cbc',
  'cmac',
  'connection',
  'console',
  'crc',
  'crypt',
  'debug',
  'deepEqual',
  'dns',
  'ctr',
  'file',
  'flash',
  'gap',
  'gatt',
  'gcm',
  'headers',
  'hex',
  'hidclient',
  'hkdf',
  'hmac',
  'http',
  'instrumentation',
  'mc/config',
  'mdns',
  'modules',
  'mqtt',
  'net',
  'ping',
  'preference',
  'qrcode',
  'securesocket',
  'sm',
  'sntp',
  'socket',
  'structuredClone',
  'telnet',
  'time',
  'timer',
  'url',
  'uuid',
  'websocket',
  'wifi',
  'worker',
  'zip',
]);
const MODDABLE_PREFIXES = ['embedded:', 'commodetto/', 'piu/', 'pins/', 'text/', 'dns/', 'mqtt/', 'mc/'];

/** Whether a specifier names a Moddable SDK module (MODDABLE_MODULES, `embedded:*` and the prefixes above). */
export function isModdableModule(specifier: string): boolean {
  return MODDABLE_PREFIXES.some((p) => specifier.startsWith(p)) || MODDABLE_MODULES.includes(specifier);
}

/**
 * Names flagged as Node globals when nothing declares them (the fallback without @types/node).
 * With @types/node loaded, anything declared only there is flagged, which covers these and more
 * (`console`, `fetch`, `URL`, `crypto`, `performance`, `AbortController`, `atob`, …): under xsnap XS
 * has none of them, and on the device only what the HAL hands in exists.
 * - timers (`setTimeout` & co., `setImmediate`): time comes from hal/clock's Timers, which the
 *   virtual clock drives in tests; xsnap has `setImmediate` but the device does not.
 * - `queueMicrotask`, `structuredClone`: absent under xsnap XS (checked); use
 *   `Promise.resolve().then(f)` and an explicit copy.
 * - `global`: xsnap happens to define it, Moddable does not: use `globalThis`.
 */
export const NODE_GLOBALS: readonly string[] = Object.freeze([
  'Buffer',
  'process',
  'require',
  'module',
  'exports',
  '__dirname',
  '__filename',
  'global',
  'setTimeout',
  'setInterval',
  'setImmediate',
  'clearTimeout',
  'clearInterval',
  'clearImmediate',
  'queueMicrotask',
  'structuredClone',
  'console',
  'NodeJS',
]);

/**
 * Globals the Moddable runtime does not have (xsnap does): firmware/setup/text.ts installs them from
 * the SDK's `text/encoder` and `text/decoder` for the packages that need them (cborg). Firmware-side
 * code does not use them itself: protocol/bytes.ts has the UTF-8 helpers.
 */
export const INSTALLED_TEXT_GLOBALS: readonly string[] = Object.freeze(['TextEncoder', 'TextDecoder']);

/** The one firmware-side file that may name INSTALLED_TEXT_GLOBALS and import the SDK's text modules. */
export const TEXT_SETUP_FILE = 'firmware/setup/text.ts';
const TEXT_SETUP_IMPORTS = ['text/encoder', 'text/decoder'];

const FIRMWARE_DIRS = ['firmware', 'protocol', 'drivers', 'hal'];

/** The XS harness's script side, bundled with the firmware: pure too, and it may import itself. */
const XS_SCRIPT_DIRS = ['sim/xs/', 'sim/standins/'];

export interface PurityViolation {
  /** Path relative to the root, with forward slashes. */
  file: string;
  line: number;
  column: number;
  kind: 'import' | 'global' | 'primordial';
  /** The specifier, the identifier, or the property assigned. */
  name: string;
  message: string;
}

const builtins = new Set(builtinModules);

export function isNodeBuiltin(specifier: string): boolean {
  return specifier.startsWith('node:') || builtins.has(specifier) || builtins.has(specifier.split('/')[0]);
}

/** `@scope/name/sub` → `@scope/name`; `name/sub` → `name`. */
export function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

function toPosix(p: string): string {
  return p.split(path.sep).join('/');
}

/** Whether a path relative to the root is firmware side (and so must be pure). */
export function isFirmwareSide(relative: string): boolean {
  const rel = toPosix(relative);
  if (!rel.endsWith('.ts') || rel.endsWith('.d.ts')) return false;
  if (!FIRMWARE_DIRS.some((d) => rel.startsWith(`${d}/`))) return false;
  if (rel.startsWith('hal/mock/') && rel.endsWith('.node.ts')) return false;
  return true;
}

/** Every firmware-side .ts file under `root`, sorted. */
export function firmwareFiles(root: string): string[] {
  const out: string[] = [];
  for (const dir of FIRMWARE_DIRS) {
    const abs = path.join(root, dir);
    if (!ts.sys.directoryExists(abs)) continue;
    for (const file of ts.sys.readDirectory(abs, ['.ts'], ['**/node_modules'], undefined)) {
      if (isFirmwareSide(path.relative(root, file))) out.push(path.resolve(file));
    }
  }
  return out.sort();
}

function checkSpecifier(rel: string, fileAbs: string, root: string, specifier: string): string | undefined {
  const inModdableDir = MODDABLE_DIRS.some((d) => rel.startsWith(d));
  if (specifier.startsWith('.') || specifier.startsWith('/')) {
    const target = toPosix(path.relative(root, path.resolve(path.dirname(fileAbs), specifier)));
    if (target.endsWith('.node') || target.endsWith('.node.ts')) {
      return `imports the Node-only adapter ${target}.ts`;
    }
    const harness =
      XS_SCRIPT_DIRS.some((d) => rel.startsWith(d)) && XS_SCRIPT_DIRS.some((d) => target.startsWith(d));
    if (!harness && !FIRMWARE_DIRS.some((d) => target === d || target.startsWith(`${d}/`))) {
      return `imports ${target}, which is not firmware side`;
    }
    return undefined;
  }
  const isModdable = isModdableModule(specifier);
  if (isModdable && inModdableDir) return undefined;
  if (rel === TEXT_SETUP_FILE && TEXT_SETUP_IMPORTS.includes(specifier)) return undefined;
  if (specifier.startsWith('embedded:')) {
    return `imports the Moddable module "${specifier}" outside ${MODDABLE_DIRS.join(' and ')}`;
  }
  if (isNodeBuiltin(specifier)) return `imports the Node builtin "${specifier}"`;
  const pkg = packageName(specifier);
  if (NODE_ONLY_PACKAGES.includes(pkg)) return `imports the Node-only package "${specifier}"`;
  if (XS_PACKAGES.includes(pkg)) return undefined;
  if (isModdable) {
    return `imports the Moddable module "${specifier}" outside ${MODDABLE_DIRS.join(' and ')}`;
  }
  return `imports "${specifier}", which is not on the list of packages that run under XS (XS_PACKAGES)`;
}

function isNodeTypesFile(fileName: string): boolean {
  return toPosix(fileName).includes('/node_modules/@types/node/');
}

/** Whether an identifier names a member or label (not a free reference); `globalThis.x` counts as free. */
function isMemberName(id: ts.Identifier): boolean {
  const p = id.parent;
  if (ts.isPropertyAccessExpression(p) && p.name === id) {
    return !(ts.isIdentifier(p.expression) && ['globalThis', 'global'].includes(p.expression.text));
  }
  if (ts.isQualifiedName(p) && p.right === id) return true;
  if (ts.isPropertyAssignment(p) && p.name === id) return true;
  if (ts.isBindingElement(p) && p.propertyName === id) return true;
  if (
    (ts.isPropertyDeclaration(p) ||
      ts.isPropertySignature(p) ||
      ts.isMethodDeclaration(p) ||
      ts.isMethodSignature(p) ||
      ts.isGetAccessor(p) ||
      ts.isSetAccessor(p) ||
      ts.isEnumMember(p)) &&
    p.name === id
  ) {
    return true;
  }
  if (ts.isLabeledStatement(p) || ts.isBreakOrContinueStatement(p)) return true;
  if (ts.isImportSpecifier(p) || ts.isExportSpecifier(p)) return p.propertyName === id;
  if (ts.isImportTypeNode(p) || ts.isJsxAttribute(p)) return true;
  return false;
}

function isDeclarationName(id: ts.Identifier): boolean {
  const p = id.parent as ts.Node & { name?: ts.Node };
  return (
    p.name === id &&
    (ts.isVariableDeclaration(p) || ts.isParameter(p) || ts.isFunctionLike(p) || ts.isClassLike(p))
  );
}

/** `this.name = …` inside a class that extends another and declares no `name` member of its own. */
function assignsInheritedName(node: ts.Node): boolean {
  if (!ts.isBinaryExpression(node) || node.operatorToken.kind !== ts.SyntaxKind.EqualsToken) return false;
  const target = node.left;
  if (!ts.isPropertyAccessExpression(target) || target.expression.kind !== ts.SyntaxKind.ThisKeyword) {
    return false;
  }
  if (target.name.text !== 'name') return false;
  let scope: ts.Node | undefined = node.parent;
  const ownsThis = (n: ts.Node): boolean =>
    ts.isClassLike(n) ||
    ts.isFunctionDeclaration(n) ||
    ts.isFunctionExpression(n) ||
    ts.isObjectLiteralExpression(n);
  while (scope && !ownsThis(scope)) {
    scope = scope.parent;
  }
  if (!scope || !ts.isClassLike(scope)) return false;
  const extendsClause = scope.heritageClauses?.some((h) => h.token === ts.SyntaxKind.ExtendsKeyword);
  const ownName = scope.members.some(
    (m) =>
      m.name !== undefined && ts.isIdentifier(m.name) && m.name.text === 'name' && !ts.isMethodDeclaration(m),
  );
  return Boolean(extendsClause) && !ownName;
}

function referencedSymbol(checker: ts.TypeChecker, id: ts.Identifier): ts.Symbol | undefined {
  if (ts.isShorthandPropertyAssignment(id.parent) && id.parent.name === id) {
    return checker.getShorthandAssignmentValueSymbol(id.parent);
  }
  return checker.getSymbolAtLocation(id);
}

function checkSourceFile(
  sourceFile: ts.SourceFile,
  checker: ts.TypeChecker,
  root: string,
  out: PurityViolation[],
): void {
  const rel = toPosix(path.relative(root, sourceFile.fileName));
  const report = (node: ts.Node, kind: PurityViolation['kind'], name: string, message: string): void => {
    const { line, character } = sourceFile.getLineAndCharacterOfPosition(node.getStart(sourceFile));
    out.push({ file: rel, line: line + 1, column: character + 1, kind, name, message });
  };
  const specifier = (node: ts.Node, text: string): void => {
    const problem = checkSpecifier(rel, sourceFile.fileName, root, text);
    if (problem) report(node, 'import', text, problem);
  };

  for (const ref of sourceFile.typeReferenceDirectives) {
    const { line, character } = sourceFile.getLineAndCharacterOfPosition(ref.pos);
    out.push({
      file: rel,
      line: line + 1,
      column: character + 1,
      kind: 'import',
      name: ref.fileName,
      message: `references the types "${ref.fileName}" (/// <reference types>)`,
    });
  }

  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      specifier(node.moduleSpecifier, node.moduleSpecifier.text);
    } else if (
      ts.isImportEqualsDeclaration(node) &&
      ts.isExternalModuleReference(node.moduleReference) &&
      ts.isStringLiteral(node.moduleReference.expression)
    ) {
      specifier(node.moduleReference.expression, node.moduleReference.expression.text);
    } else if (ts.isImportTypeNode(node)) {
      const arg = node.argument;
      if (ts.isLiteralTypeNode(arg) && ts.isStringLiteral(arg.literal))
        specifier(arg.literal, arg.literal.text);
    } else if (ts.isCallExpression(node)) {
      const isImport = node.expression.kind === ts.SyntaxKind.ImportKeyword;
      const isRequire = ts.isIdentifier(node.expression) && node.expression.text === 'require';
      if (isImport || isRequire) {
        const arg = node.arguments[0];
        if (arg && ts.isStringLiteralLike(arg)) specifier(arg, arg.text);
        else if (isImport) {
          report(
            node,
            'import',
            'import()',
            'dynamic import() with a computed specifier cannot be bundled for XS',
          );
        }
      }
    } else if (ts.isIdentifier(node)) {
      checkIdentifier(node);
    } else if (assignsInheritedName(node)) {
      report(
        node,
        'primordial',
        'name',
        'assigns this.name, which the frozen Error.prototype makes read-only on the device: declare a class field `override name = ...` instead',
      );
    }
    ts.forEachChild(node, visit);
  };

  const checkIdentifier = (id: ts.Identifier): void => {
    const name = id.text;
    if (isMemberName(id) || isDeclarationName(id)) return;
    const symbol = referencedSymbol(checker, id);
    const declarations = symbol?.declarations ?? [];
    if (INSTALLED_TEXT_GLOBALS.includes(name)) {
      const global = declarations.every((d) => d.getSourceFile().isDeclarationFile);
      if (global && isFirmwareSide(rel) && rel !== TEXT_SETUP_FILE) {
        report(
          id,
          'global',
          name,
          `uses the global "${name}", which the Moddable runtime lacks (only ${TEXT_SETUP_FILE} installs it)`,
        );
      }
      return;
    }
    const nodeOnly =
      declarations.length > 0 && declarations.every((d) => isNodeTypesFile(d.getSourceFile().fileName));
    if (nodeOnly || (!symbol && NODE_GLOBALS.includes(name))) {
      report(id, 'global', name, `uses the Node global "${name}"`);
    }
  };

  visit(sourceFile);
}

// Parsed library files (lib.*.d.ts, @types/node) are shared by every program this process builds.
const sourceFileCache = new Map<string, ts.SourceFile>();

function purityOptions(root: string): ts.CompilerOptions {
  return {
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts'],
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    // Every file is a module, as esbuild and XS treat it: a top-level `const process` is then local
    // to the file rather than a clash with the global one.
    moduleDetection: ts.ModuleDetectionKind.Force,
    // Node's types are loaded on purpose: a Node global must resolve to them to be recognised.
    types: ['node'],
    typeRoots: [path.join(root, 'node_modules/@types')],
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    allowJs: false,
    resolveJsonModule: true,
  };
}

function createHost(options: ts.CompilerOptions, overlay: Map<string, string>): ts.CompilerHost {
  const host = ts.createCompilerHost(options, true);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    const text = overlay.get(path.resolve(fileName));
    if (text !== undefined) return ts.createSourceFile(fileName, text, languageVersion, true);
    const cached = sourceFileCache.get(fileName);
    if (cached) return cached;
    const file = getSourceFile(fileName, languageVersion, onError, shouldCreate);
    if (file && fileName.includes('/node_modules/')) sourceFileCache.set(fileName, file);
    return file;
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (fileName) => overlay.has(path.resolve(fileName)) || fileExists(fileName);
  const readFile = host.readFile.bind(host);
  host.readFile = (fileName) => overlay.get(path.resolve(fileName)) ?? readFile(fileName);
  return host;
}

function check(root: string, files: string[], overlay: Map<string, string>): PurityViolation[] {
  const options = purityOptions(root);
  const program = ts.createProgram({ rootNames: files, options, host: createHost(options, overlay) });
  const checker = program.getTypeChecker();
  const out: PurityViolation[] = [];
  for (const file of files) {
    const sourceFile = program.getSourceFile(file);
    if (sourceFile) checkSourceFile(sourceFile, checker, root, out);
  }
  return out;
}

/** Checks the given files (absolute, or relative to root); firmware-side or not, every file is judged. */
export function checkFiles(root: string, files: readonly string[]): PurityViolation[] {
  return check(
    root,
    files.map((f) => path.resolve(root, f)),
    new Map(),
  );
}

/** Checks every firmware-side file under `root`. */
export function checkRepository(root: string): PurityViolation[] {
  return check(root, firmwareFiles(root), new Map());
}

/**
 * Checks source texts as if they were files at the given paths under `root` (the path decides the
 * rules: e.g. `hal/moddable/x.ts` may import `embedded:*`). Other files they import are read from disk.
 */
export function checkSources(root: string, sources: Readonly<Record<string, string>>): PurityViolation[] {
  const overlay = new Map(Object.entries(sources).map(([rel, text]) => [path.resolve(root, rel), text]));
  return check(root, [...overlay.keys()], overlay);
}

export function formatViolation(v: PurityViolation): string {
  return `${v.file}:${v.line}:${v.column}: ${v.message}`;
}

/**
 * Type-checks the firmware side as XS sees it (tsconfig.firmware.json: the language, no Node types),
 * as `tsc -p tsconfig.firmware.json` would. Returns the formatted diagnostics; none is a pass.
 */
export function typecheckFirmware(root: string, configFile = 'tsconfig.firmware.json'): string[] {
  const configPath = path.resolve(root, configFile);
  const problems: string[] = [];
  const parsed = ts.getParsedCommandLineOfConfigFile(
    configPath,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        problems.push(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (!parsed) return problems.length ? problems : [`cannot read ${configFile}`];
  const program = ts.createProgram({
    rootNames: parsed.fileNames,
    options: parsed.options,
    projectReferences: parsed.projectReferences,
  });
  const diagnostics = [...parsed.errors, ...ts.getPreEmitDiagnostics(program)];
  const host: ts.FormatDiagnosticsHost = {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => root,
    getNewLine: () => '\n',
  };
  return diagnostics.map((d) => ts.formatDiagnostic(d, host).trimEnd());
}

function main(argv: readonly string[]): number {
  const root = path.resolve(argv[0] ?? '.');
  const violations = checkRepository(root);
  for (const v of violations) process.stdout.write(`${formatViolation(v)}\n`);
  const diagnostics = typecheckFirmware(root);
  for (const d of diagnostics) process.stdout.write(`${d}\n`);
  if (violations.length || diagnostics.length) {
    process.stderr.write(
      `purity: ${violations.length} Node import(s)/global(s)/primordial write(s), ${diagnostics.length} firmware type error(s)\n`,
    );
    return 1;
  }
  process.stderr.write(`purity: ${firmwareFiles(root).length} firmware-side files are clean\n`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
