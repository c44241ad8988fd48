// `npm run typecheck:device`: the firmware's TypeScript checked as mcconfig checks it, against the
// Moddable SDK's own typings and with the TypeScript the SDK needs (6: its tsconfig targets es2025).
// For each platform of the image (esp32, x-cli-lin) mcconfig generates its tsconfig without
// building; one tsc run then checks every TypeScript module of that platform with those options.
// Without MODDABLE there is nothing faithful to check against: it says so and checks nothing.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { generateBuild } from './device';

const ROOT = path.resolve(import.meta.dirname, '..');
export const DEVICE_PLATFORMS = Object.freeze(['esp32', 'x-cli-lin']);

const USAGE = `usage: npm run typecheck:device [-- --platform esp32|x-cli-lin]

Checks the firmware's TypeScript with the options and typings mcconfig uses, for each platform of
the image. Needs MODDABLE pointing at a Moddable SDK whose Linux tools are built.`;

function perFileConfigs(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...perFileConfigs(full));
    else if (entry.name.endsWith('-tsconfig.json')) found.push(full);
  }
  return found;
}

export interface DeviceCheck {
  platform: string;
  files: number;
  errors: string;
  ok: boolean;
}

export function checkPlatform(moddable: string, platform: string): DeviceCheck {
  let build: ReturnType<typeof generateBuild>;
  try {
    build = generateBuild(moddable, platform, path.join(ROOT, '.device', `typecheck-${platform}`));
  } catch (error) {
    return { platform, files: 0, ok: false, errors: (error as Error).message };
  }
  const modules = path.join(build.appDir, 'modules');
  if (!existsSync(path.join(modules, 'tsconfig-base.json'))) {
    return { platform, files: 0, ok: false, errors: `mcconfig -p ${platform} wrote no tsconfig-base.json` };
  }
  const files = perFileConfigs(modules).flatMap(
    (file) => JSON.parse(readFileSync(file, 'utf8')).files as string[],
  );
  const config = path.join(modules, 'tsconfig-check.json');
  writeFileSync(
    config,
    JSON.stringify(
      { extends: './tsconfig-base.json', compilerOptions: { noEmit: true, sourceMap: false }, files },
      null,
      2,
    ),
  );
  const tsc = path.join(ROOT, 'node_modules', 'typescript6', 'bin', 'tsc');
  const checked = spawnSync(process.execPath, [tsc, '-p', config], { cwd: ROOT, encoding: 'utf8' });
  const errors = `${checked.stdout}${checked.stderr}`.trim();
  return { platform, files: files.length, ok: checked.status === 0, errors };
}

function main(argv: string[]): number {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  const moddable = process.env.MODDABLE;
  if (!moddable) {
    console.log(
      "typecheck:device skipped: MODDABLE is not set, and only the SDK's own typings make a faithful device check",
    );
    return 0;
  }
  const at = argv.indexOf('--platform');
  const platforms = at >= 0 ? [argv[at + 1]] : DEVICE_PLATFORMS;
  let failed = false;
  for (const platform of platforms) {
    const result = checkPlatform(moddable, platform);
    console.log(`${platform}: ${result.files} TypeScript modules, ${result.ok ? 'no errors' : 'errors:'}`);
    if (!result.ok) {
      console.log(result.errors);
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exit(main(process.argv.slice(2)));
