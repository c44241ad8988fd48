// Builds the firmware with the real Moddable SDK and runs it.
//
//   npm run device -- --platform lin [--meter 1101] [--taps 3] [--tap-every 3] [--seconds 600]
//
// --platform lin builds the host program (mcconfig -p x-cli-lin): the real firmware on the real
// Moddable runtime, with hal/mock's virtual reader, cards and secure parts and a simulated driver
// tapping cards. It starts the platform as `npm start` does (DATABASE_URL, MQTT_URL and the master
// key settings apply; embedded defaults otherwise), registers the meter there, writes the meter's
// preferences (tools/provisioning.ts), builds, runs the program in .device/meter-<id>/ and prints
// every record the platform stores from it. With --taps N it stops once N taps are paid and
// acknowledged, and exits non-zero if that did not happen.
//
// For a real ESP32 board, `npm run flash` builds the esp32 image and writes the same preferences.
// Needs MODDABLE (an SDK with its Linux tools built) and TypeScript 6 (the typescript6 dev
// dependency), which the SDK's tsconfig (target es2025) requires.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { configFromEnv } from '../platform-server/config';
import { createPlatform } from '../platform-server/platform';
import { RecordKind } from '../protocol/records';
import { formatMoney } from '../firmware/units/format';
import type { XsMemory } from '../hal/moddable/host/memory';
import { linPreferencesJson, preferenceEntries } from './provisioning';
import { PaymentSimulator } from '../platform-server/payments/simulator';

const ROOT = path.resolve(import.meta.dirname, '..');
const USAGE = `usage: npm run device -- --platform lin [--meter ID] [--taps N] [--tap-every S] [--seconds S] [--clean]

  --platform lin   build the host program (mcconfig -p x-cli-lin) and run it against the platform
  --meter ID       the meter id to register and provision (default 1101)
  --taps N         stop after N paid and acknowledged taps (default 3; 0 runs until Ctrl-C)
  --tap-every S    seconds between the simulated driver's taps (default 3)
  --seconds S      give up after S seconds of running (default 300)
  --clean          forget the meter's stores and secure parts (a meter fresh from the factory)

Needs MODDABLE pointing at a Moddable SDK whose Linux tools are built. For an ESP32 board use
npm run flash.`;

export interface HostBuild {
  /** The program mcconfig linked. */
  program: string;
  log: string;
}

/** A directory whose `tsc` is TypeScript 6, which the SDK's generated tsconfig (es2025) needs. */
function typescript6Path(): string {
  const tsc = path.join(ROOT, 'node_modules', 'typescript6', 'bin', 'tsc');
  if (!existsSync(tsc))
    throw new Error('TypeScript 6 missing: run npm install (the typescript6 dev dependency)');
  const dir = path.join(ROOT, '.device', 'bin');
  mkdirSync(dir, { recursive: true });
  const link = path.join(dir, 'tsc');
  rmSync(link, { force: true });
  symlinkSync(tsc, link);
  return dir;
}

export function sdkEnvironment(moddable: string): NodeJS.ProcessEnv {
  const tools = path.join(moddable, 'build', 'bin', 'lin', 'release');
  if (!existsSync(path.join(tools, 'mcconfig'))) {
    throw new Error(`no mcconfig under ${tools}: build the SDK's Linux tools first`);
  }
  return { ...process.env, MODDABLE: moddable, PATH: [typescript6Path(), tools, process.env.PATH].join(':') };
}

export interface GeneratedBuild {
  env: NodeJS.ProcessEnv;
  /** mcconfig's folder for the app: its makefile, modules/ and the generated tsconfigs. */
  appDir: string;
  /** True when IDF_PATH was a stand-in: nothing that needs the ESP-IDF may run. */
  placeholderIdf: boolean;
}

/**
 * `mcconfig -p PLATFORM -o DIR` without -m: writes the makefile and tsconfigs, builds nothing. mcconfig
 * refuses esp32 without IDF_PATH even then, so a stand-in folder is given when none is set.
 */
export function generateBuild(moddable: string, platform: string, outputDir: string): GeneratedBuild {
  const env = sdkEnvironment(moddable);
  const placeholderIdf = platform === 'esp32' && !env.IDF_PATH;
  if (placeholderIdf) {
    env.IDF_PATH = path.join(ROOT, '.device', 'no-idf');
    mkdirSync(env.IDF_PATH, { recursive: true });
  }
  mkdirSync(outputDir, { recursive: true });
  const generated = spawnSync('mcconfig', ['-p', platform, '-o', outputDir, './manifest.json'], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
  });
  if (generated.status !== 0)
    throw new Error(`mcconfig -p ${platform}: ${generated.stdout}${generated.stderr}`);
  // manifest.json's build.NAME names the app's folder; x-cli-lin builds under lin.
  const appDir = path.join(outputDir, 'tmp', platform.replace(/^x-cli-/, ''), 'release', 'parklink');
  return { env, appDir, placeholderIdf };
}

/** mcconfig -m -p x-cli-lin: tsc, xsc and xsl over every module, then cc and link. */
export function buildHost(moddable: string, outputDir: string, extra: string[] = []): HostBuild {
  mkdirSync(outputDir, { recursive: true });
  const log = path.join(outputDir, 'build.log');
  const result = spawnSync(
    'mcconfig',
    ['-m', '-p', 'x-cli-lin', ...extra, '-o', outputDir, './manifest.json'],
    {
      cwd: ROOT,
      env: sdkEnvironment(moddable),
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  writeFileSync(log, `${result.stdout ?? ''}${result.stderr ?? ''}`);
  const variant = extra.includes('-d') ? 'debug' : extra.includes('-i') ? 'instrument' : 'release';
  const program = path.join(outputDir, 'bin', 'lin', variant, 'parklink'); // manifest.json's build.NAME
  if (result.status !== 0 || !existsSync(program)) {
    const errors = `${result.stdout}${result.stderr}`
      .split('\n')
      .filter((line) => /error|Error|###/.test(line))
      .slice(0, 20)
      .join('\n');
    throw new Error(`mcconfig failed (exit ${result.status}); see ${log}\n${errors}`);
  }
  return { program, log };
}

export interface HostRunOptions {
  moddable: string;
  meterId: number;
  /** Taps before the program ends by itself (0: until stopped). */
  taps: number;
  tapEveryMs: number;
  seconds: number;
  clean?: boolean;
  /** Each line the program and the platform print. */
  onLine?: (line: string) => void;
}

export interface HostRun {
  code: number;
  /** Records and transactions the platform stored from the meter. */
  stored: number;
  transactions: number;
  buildSeconds: number;
  /** The program's closing `budget {…}` line, parsed, when it printed one. */
  budget?: HostBudget;
}

export interface HostBudget {
  taps: number;
  paid: number;
  boot: XsMemory;
  end: XsMemory;
}

/** Builds the host program (instrumented: it reports its stack peak), provisions it, runs it. */
export async function runHostMeter(options: HostRunOptions): Promise<HostRun> {
  const { moddable, meterId, taps } = options;
  const print = options.onLine ?? ((line: string) => console.log(line));
  const buildDir = path.join(ROOT, '.device', 'build-lin');
  print(
    `building the host program: mcconfig -m -i -p x-cli-lin -o ${path.relative(ROOT, buildDir)} ./manifest.json`,
  );
  const started = Date.now();
  const { program } = buildHost(moddable, buildDir, ['-i']);
  const buildSeconds = (Date.now() - started) / 1000;
  print(`built ${path.relative(ROOT, program)} in ${buildSeconds.toFixed(0)} s`);

  let stored = 0;
  let transactions = 0;
  const fromEnv = configFromEnv();
  const platform = await createPlatform({
    ...fromEnv,
    // The meter on the host talks to ingest only: no SMS and voice gateway.
    // No HTTP here, so no renewal can be paid: the payment simulator stands in for a provider.
    phone: { ...fromEnv.phone, gateway: false, paymentProvider: new PaymentSimulator() },
    port: 0,
    httpLogger: false,
    logger: {
      info() {},
      warn: (o: unknown, m?: string) => print(`platform: ${m ?? String(o)}`),
      error: (o: unknown, m?: string) => print(`platform: ${m ?? String(o)}`),
    },
    onStored({ meterId: from, record }) {
      if (from !== meterId) return;
      stored++;
      if (record.kind === RecordKind.Transaction) {
        transactions++;
        const d = record.data;
        print(
          `platform │ stored #${record.seq} from meter ${from}: bay ${d.bayId}, ${d.minutes} min, ${formatMoney(d.charge, d.currency)} (${d.charge}), card …${d.card.last4}, chain verified`,
        );
      } else {
        print(`platform │ stored #${record.seq} from meter ${from}: ${record.data.code}`);
      }
    },
  });
  const broker = new URL(platform.brokerUrl);
  print(`platform: broker ${platform.brokerUrl}, database ${platform.db.kind}`);

  const runDir = path.join(ROOT, '.device', `meter-${meterId}`);
  // A platform on an in-memory database forgets the meter between runs: so does the meter then.
  const persistent = Boolean(process.env.DATABASE_URL || process.env.PARKLINK_DATA_DIR);
  if (options.clean || !persistent) rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  const keys = await platform.provisionMeter(meterId, `Host build meter ${meterId}`);
  const releaseKey = platform.releaseKeyFor(meterId);
  const login = platform.meterMqttCredentials(meterId); // as the factory writes them
  const entries = preferenceEntries({
    meterId,
    bays: [1, 2, 3],
    broker: {
      host: broker.hostname,
      port: Number(broker.port),
      user: login.username,
      password: login.password,
    },
    keys,
    releaseKey,
  });
  releaseKey.fill(0);
  writeFileSync(path.join(runDir, 'modpreferences.json'), linPreferencesJson(entries), { mode: 0o600 });
  print(`provisioned meter ${meterId} (key epoch ${keys.epoch}) in ${path.relative(ROOT, runDir)}`);

  const child = spawn(program, [], {
    cwd: runDir,
    env: {
      ...process.env,
      PARKLINK_TAPS: String(taps),
      PARKLINK_TAP_EVERY_MS: String(options.tapEveryMs),
      PARKLINK_RUN_SECONDS: String(options.seconds),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let budget: HostBudget | undefined;
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      if (line.startsWith('budget ')) budget = JSON.parse(line.slice('budget '.length)) as HostBudget;
      print(`meter    │ ${line}`);
    });
  }
  const stop = () => child.kill('SIGTERM');
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const code: number = await new Promise((resolve) =>
    child.on('exit', (status, signal) => resolve(status ?? (signal ? 130 : 1))),
  );
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  // Let the platform finish storing what the meter sent last.
  await new Promise((resolve) => setTimeout(resolve, 500));
  await platform.close();
  print(
    `meter exited with ${code}; the platform stored ${stored} records (${transactions} transactions) from meter ${meterId}`,
  );
  return { code, stored, transactions, buildSeconds, ...(budget ? { budget } : {}) };
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      platform: { type: 'string' },
      meter: { type: 'string', default: '1101' },
      taps: { type: 'string', default: '3' },
      'tap-every': { type: 'string', default: '3' },
      seconds: { type: 'string', default: '300' },
      clean: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.platform !== 'lin') {
    console.error(values.platform === 'esp32' ? 'for an ESP32 board use npm run flash' : USAGE);
    return 2;
  }
  const moddable = process.env.MODDABLE;
  if (!moddable) {
    console.error('MODDABLE is not set: point it at a Moddable SDK whose Linux tools are built');
    return 2;
  }
  const taps = Number(values.taps);
  const run = await runHostMeter({
    moddable,
    meterId: Number(values.meter),
    taps,
    tapEveryMs: Number(values['tap-every']) * 1000,
    seconds: Number(values.seconds),
    clean: values.clean,
  });
  if (taps > 0) return run.code === 0 && run.transactions >= taps ? 0 : 1;
  return run.code;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: Error) => {
      console.error(error.message);
      process.exit(1);
    },
  );
}
