// Reads a Moddable manifest.json as the SDK's mcconfig does, for one platform, and returns its module
// map: the specifier each module is imported by, and the file that provides it. The XS harness
// (sim/xs/xsnap.ts) bundles through this map, so a module missing from the manifest fails there as it
// fails the real build.
//
// The semantics follow the SDK's documentation/tools/manifest.md and tools/mcmanifest.js:
// - `include` entries are read depth first; a manifest's own properties merge after those of the
//   manifests it includes. An include that names a variable the project does not define in a
//   `build` section ($(MODDABLE), $(MODULES), …) is an SDK manifest: it is recorded, not read.
// - `platforms`: the section whose key matches the platform is merged after the manifest's top
//   level. "esp32/moddable_two" tries "esp32/moddable_two", then "esp32"; keys "x/*" and "*/y" match
//   by prefix and suffix; "..." is the fallback when nothing else matches. A matched section's
//   `include` and `build` apply, and its `error` entries make the platform unbuildable.
// - `modules`: each key is a specifier, each value a path or a list of paths (relative to the
//   manifest that lists them, without extension). A key with `*` ("cborg/lib/*") maps each file
//   the path matches to the key's prefix plus the file's name; a path with `*` ("./lib/*") matches
//   every file whose name starts with what precedes the `*`. "~" lists files to leave out. A file
//   is taken once: the first key that claims it keeps it, and a specifier keeps its first file.
// - Only .js, .mjs, .ts (not .d.ts) and .json (not manifest*.json) files are script modules.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/** A module the manifest provides. */
export type ModuleEntry =
  | {
      specifier: string;
      kind: 'project';
      /** Absolute path of the file. */
      file: string;
      /** The manifest that listed it. */
      manifest: string;
    }
  | {
      specifier: string;
      kind: 'sdk';
      /** The path as the manifest wrote it, e.g. `$(MODULES)/crypt/etc/gcm`. */
      source: string;
      manifest: string;
    };

export interface ModuleMap {
  /** The platform the map is for, as given (e.g. `esp32`, `lin`). */
  platform: string;
  /** Specifier → module, in the order mcconfig lists them. */
  modules: Map<string, ModuleEntry>;
  /** Project manifests read, absolute, in mcconfig's merge order (includes before includers). */
  manifests: string[];
  /** SDK manifests included (recorded as written, e.g. `$(MODULES)/data/text/decoder/manifest.json`). */
  sdkManifests: string[];
  /** `creation.main`: the module the device runs after set-up (the last manifest to set it wins). */
  main: string | undefined;
  /** Module specifiers to preload, in order (from the project manifests only). */
  preload: string[];
  /** The matched platform sections' `error` entries: mcconfig refuses to build with any. */
  errors: string[];
  /** The matched platform sections' `warning` entries, and paths that matched no file. */
  warnings: string[];
}

/** The file-system calls the reader needs (tests may pass their own). */
export interface ManifestFileSystem {
  readText(file: string): string;
  /** Names in a directory, or undefined if it does not exist. */
  list(directory: string): string[] | undefined;
  isDirectory(file: string): boolean;
}

export const nodeFileSystem: ManifestFileSystem = {
  readText: (file) => readFileSync(file, 'utf8'),
  list: (directory) => {
    try {
      return readdirSync(directory).sort();
    } catch {
      return undefined;
    }
  },
  isDirectory: (file) => {
    try {
      return statSync(file).isDirectory();
    } catch {
      return false;
    }
  },
};

export class ManifestError extends Error {
  override name = 'ManifestError';
}

type Source = string | { source: string };
type Sources = Source | Source[];

interface PlatformSection {
  include?: string | string[];
  creation?: { main?: string };
  build?: Record<string, string>;
  modules?: Record<string, Sources>;
  preload?: string | string[];
  error?: string | string[];
  warning?: string | string[];
}

interface ManifestJson extends PlatformSection {
  platforms?: Record<string, PlatformSection>;
}

interface ParsedManifest {
  file: string;
  json: ManifestJson;
  platform: PlatformSection | undefined;
}

/** A source path after variables: a project path, or one that needs the SDK. */
type Resolved = { kind: 'project'; path: string } | { kind: 'sdk'; path: string };

/** mcconfig's matchPlatform: the section for `platform`, else the "..." section. */
export function matchPlatform<T>(platforms: Record<string, T>, platform: string): T | undefined {
  const parts = platform.split('/');
  while (parts.length) {
    const partial = parts.join('/');
    for (const [key, section] of Object.entries(platforms)) {
      if (key.endsWith('/*')) {
        if (partial.startsWith(key.slice(0, -1))) return section;
      } else if (key.startsWith('*/')) {
        if (partial.endsWith(key.slice(1))) return section;
      } else if (key === partial) return section;
    }
    parts.length -= 1;
  }
  return platforms['...'];
}

function asList<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** `name.ext` → { name, extension }, with `.d.ts` as one extension, as mcconfig splits a file name. */
function splitName(fileName: string): { name: string; extension: string } {
  const dot = fileName.lastIndexOf('.');
  if (dot <= 0) return { name: fileName, extension: '' };
  const name = fileName.slice(0, dot);
  const extension = fileName.slice(dot);
  if (extension === '.ts' && name.endsWith('.d')) return { name: name.slice(0, -2), extension: '.d.ts' };
  return { name, extension };
}

/** Files the modules rule takes (scripts, types, native code): one of them makes a path match. */
const MODULE_EXTENSIONS = new Set([
  '.js',
  '.mjs',
  '.ts',
  '.d.ts',
  '.json',
  '.c',
  '.cc',
  '.cpp',
  '.m',
  '.h',
  '.java',
  '.pio',
]);

function isScriptModule(fileName: string): boolean {
  const { name, extension } = splitName(fileName);
  if (extension === '.json') return !name.startsWith('manifest');
  return extension === '.js' || extension === '.mjs' || extension === '.ts';
}

/**
 * Reads `manifestFile` for `platform` and returns its module map. Throws ManifestError when a
 * project manifest is missing or not JSON, or a module path names a directory that does not exist.
 */
export function readManifest(
  manifestFile: string,
  platform: string,
  fs: ManifestFileSystem = nodeFileSystem,
): ModuleMap {
  const environment = new Map<string, string>();
  const parsed: ParsedManifest[] = [];
  const seen = new Set<string>();
  const sdkManifests: string[] = [];

  /** Replaces $(NAME) with the project's build variables; a name it lacks makes the path the SDK's. */
  const resolveVariables = (value: string): Resolved => {
    let sdk = false;
    const resolved = value.replace(/\$\(([^)]+)\)/g, (whole, name: string) => {
      const known = environment.get(name);
      if (known === undefined) {
        sdk = true;
        return whole;
      }
      return known;
    });
    return sdk ? { kind: 'sdk', path: value } : { kind: 'project', path: resolved };
  };

  const parseBuild = (section: PlatformSection | undefined, directory: string): void => {
    for (const [rawName, rawValue] of Object.entries(section?.build ?? {})) {
      if (typeof rawValue !== 'string') continue;
      let name = rawName;
      if (name.endsWith(' ?=')) {
        name = name.slice(0, -3);
        if (environment.has(name)) continue;
      }
      const resolved = resolveVariables(rawValue);
      // A variable built on the SDK's stays unknown, so paths that use it stay the SDK's.
      if (resolved.kind === 'sdk') continue;
      const value = resolved.path.startsWith('./') ? path.join(directory, resolved.path) : resolved.path;
      environment.set(name, value);
    }
  };

  const parse = (file: string): void => {
    const absolute = path.resolve(file);
    if (seen.has(absolute)) return;
    seen.add(absolute);
    let text: string;
    try {
      text = fs.readText(absolute);
    } catch {
      throw new ManifestError(`${absolute}: manifest not found`);
    }
    let json: ManifestJson;
    try {
      json = JSON.parse(text) as ManifestJson;
    } catch (error) {
      throw new ManifestError(`${absolute}: invalid manifest: ${(error as Error).message}`);
    }
    const directory = path.dirname(absolute);
    parseBuild(json, directory);
    const section = json.platforms ? matchPlatform(json.platforms, platform) : undefined;
    parseBuild(section, directory);
    for (const include of [...asList(json.include), ...asList(section?.include)]) {
      if (typeof include !== 'string') {
        throw new ManifestError(`${absolute}: git includes are not supported here`);
      }
      const resolved = resolveVariables(include);
      if (resolved.kind === 'sdk') {
        if (!sdkManifests.includes(include)) sdkManifests.push(include);
      } else parse(path.resolve(directory, resolved.path));
    }
    parsed.push({ file: absolute, json, platform: section });
  };

  parse(manifestFile);

  // Merge as mcconfig does: each manifest's top level, then its platform section.
  const moduleSources = new Map<string, { source: Resolved; written: string; manifest: string }[]>();
  const preload: string[] = [];
  let main: string | undefined;
  const errors: string[] = [];
  const warnings: string[] = [];
  for (const { file, json, platform: section } of parsed) {
    const directory = path.dirname(file);
    for (const part of [json, section]) {
      if (!part) continue;
      for (const [target, sources] of Object.entries(part.modules ?? {})) {
        const list = moduleSources.get(target) ?? [];
        for (const source of asList(sources)) {
          const written = typeof source === 'string' ? source : source.source;
          const resolved = resolveVariables(written);
          list.push({
            source:
              resolved.kind === 'project'
                ? { kind: 'project', path: path.resolve(directory, resolved.path) }
                : resolved,
            written,
            manifest: file,
          });
        }
        moduleSources.set(target, list);
      }
      if (typeof part.creation?.main === 'string') main = part.creation.main;
      preload.push(...asList(part.preload));
      errors.push(...asList(part.error));
      warnings.push(...asList(part.warning));
    }
  }

  // Apply the modules rule.
  const modules = new Map<string, ModuleEntry>();
  const claimed = new Set<string>();
  const add = (entry: ModuleEntry, file?: string): void => {
    if (file !== undefined) {
      if (claimed.has(file)) return;
      claimed.add(file);
    }
    if (!modules.has(entry.specifier)) modules.set(entry.specifier, entry);
    else if (entry.kind === 'project') {
      warnings.push(`module "${entry.specifier}" is already ${describe(modules.get(entry.specifier)!)}`);
    }
  };

  /** Calls `each(name, file)` for every file the source path matches, as mcconfig's Rule.iterate. */
  const iterate = (sourcePath: string, each: (name: string, file: string) => void): void => {
    const directory = path.dirname(sourcePath);
    const base = path.basename(sourcePath);
    const names = fs.list(directory);
    if (!names) throw new ManifestError(`directory not found: ${directory} (for ${sourcePath})`);
    const star = base.lastIndexOf('*');
    const prefix = star >= 0 ? base.slice(0, star) : base;
    let count = 0;
    for (const fileName of names) {
      if (fileName.startsWith('.')) continue;
      const file = path.join(directory, fileName);
      const { name, extension } = splitName(fileName);
      let matched: string;
      if (star >= 0) {
        if (!name.startsWith(prefix)) continue;
        matched = name.slice(prefix.length);
      } else if (name === prefix) matched = prefix;
      else if (name + extension === prefix) matched = splitName(prefix).name;
      else continue;
      if (fs.isDirectory(file) || !MODULE_EXTENSIONS.has(extension)) continue;
      count++;
      if (isScriptModule(fileName)) each(matched, file);
    }
    if (count === 0) warnings.push(`no modules match: ${sourcePath}`);
  };

  for (const { source } of moduleSources.get('~') ?? []) {
    if (source.kind === 'project') iterate(source.path, (_name, file) => claimed.add(file));
  }
  for (const [target, sources] of moduleSources) {
    if (target === '~') continue;
    const star = target.lastIndexOf('*');
    for (const { source, written, manifest } of sources) {
      if (source.kind === 'sdk') {
        // The SDK's files are not read: a named file is recorded, a wildcard over them cannot be.
        const base = written.slice(written.lastIndexOf('/') + 1);
        if (star < 0) add({ specifier: target, kind: 'sdk', source: written, manifest });
        else if (!base.includes('*')) {
          add({
            specifier: target.slice(0, star) + splitName(base).name,
            kind: 'sdk',
            source: written,
            manifest,
          });
        } else warnings.push(`SDK modules not listed (not read): ${target}: ${written}`);
        continue;
      }
      if (star >= 0) {
        const head = target.slice(0, star);
        iterate(source.path, (name, file) =>
          add({ specifier: head + name, kind: 'project', file, manifest }, file),
        );
      } else {
        iterate(source.path, (_name, file) =>
          add({ specifier: target, kind: 'project', file, manifest }, file),
        );
      }
    }
  }

  return {
    platform,
    modules,
    manifests: parsed.map((p) => p.file),
    sdkManifests,
    main,
    preload,
    errors,
    warnings,
  };
}

function describe(entry: ModuleEntry): string {
  return entry.kind === 'project' ? entry.file : entry.source;
}

/** The specifier a module's file is listed under, if any (the first, if several). */
export function specifierOfFile(map: ModuleMap, file: string): string | undefined {
  const absolute = path.resolve(file);
  for (const entry of map.modules.values()) {
    if (entry.kind === 'project' && entry.file === absolute) return entry.specifier;
  }
  return undefined;
}

/**
 * Resolves an import the way the Moddable runtime's fxFindModule does (xs/platforms/mc/xsHosts.c):
 * a trailing .js or .mjs is dropped, and a relative specifier is taken against the importing
 * module's specifier, not its file: `../x` from `firmware/units/comms` is `firmware/x`, and `./lib/a.js`
 * from `cborg` is `lib/a`. Returns undefined when the path climbs above the root.
 */
export function moddableSpecifier(importerSpecifier: string, specifier: string): string | undefined {
  let name = specifier;
  const lastSlash = name.lastIndexOf('/');
  const lastDot = name.lastIndexOf('.');
  if (lastDot > lastSlash) {
    const extension = name.slice(lastDot);
    if (extension === '.js' || extension === '.mjs') name = name.slice(0, lastDot);
  }
  if (!name.startsWith('./') && !name.startsWith('../')) return name;
  const parts = importerSpecifier.split('/');
  parts.pop();
  let rest = name;
  if (rest.startsWith('./')) rest = rest.slice(2);
  else {
    while (rest.startsWith('../')) {
      if (parts.length === 0) return undefined;
      parts.pop();
      rest = rest.slice(3);
    }
  }
  return [...parts, rest].join('/');
}
