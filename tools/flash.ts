// Builds the ESP32 image with the Moddable SDK, flashes it, and provisions the board.
//
//   npm run flash -- [--dry-run] [--port /dev/ttyUSB0] [--board esp32]
//                    [--meter ID --broker [mqtts://]HOST:PORT [--broker-ca CA.pem] [--bays 1,2,3]
//                     [--mqtt-user U --mqtt-password P] [--ssid S --wifi-password W | --apn APN]]
//
// The manifest check (also the whole of --dry-run) reads manifest.json for the board as mcconfig
// does (tools/manifest.ts) and follows every import from its preload modules and creation.main
// through the module map (sim/xs/xsnap.ts deviceGraph): a module the image would not find, bare
// (cborg) or relative, fails it. With --meter the factory station registers the meter with the
// platform (DATABASE_URL, the master key settings: see README), writes what firmware/boot.ts reads
// (with the meter's own broker user name and password, derived from the master key unless
// --mqtt-user/--mqtt-password name other ones; for mqtts the CA certificate) into an NVS partition image (ESP-IDF's nvs_partition_gen.py) and writes it to the board's nvs
// partition with esptool. The key material lives on disk only for that step, in a 0600 file.
import { spawnSync } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { pathToFileURL } from 'node:url';
import { parseBroker } from '../firmware/boot';
import { deviceGraph } from '../sim/xs/xsnap';
import { readManifest } from './manifest';
import { nvsCsv, type PreferenceEntry, preferenceEntries, type ProvisioningInput } from './provisioning';
import { PaymentSimulator } from '../platform-server/payments/simulator';

const ROOT = path.resolve(import.meta.dirname, '..');

export const USAGE = `usage: npm run flash -- [--dry-run] [--port /dev/ttyUSB0] [--board esp32] [--manifest ./manifest.json]
                       [--meter ID --broker [mqtts://]HOST:PORT [--broker-ca CA.pem] [--bays 1,2,3]
                        [--mqtt-user U] [--mqtt-password P] [--ssid S] [--wifi-password W] [--apn APN]]
  builds the ESP32 image with the Moddable SDK (mcconfig) and flashes it; with --meter, registers the
  meter with the platform and writes its identity, broker, network and keys to the board's nvs
  partition. --apn provisions a cellular meter (LilyGO T-A7670E profile: the modem carries MQTT and
  TLS) instead of a Wi-Fi one. --dry-run checks manifest.json against the files and prints the commands, changing nothing.`;

export interface ManifestCheck {
  ok: boolean;
  errors: string[];
  /** Specifiers the manifest lists for the board. */
  listed: string[];
  /** Project files in the order the device evaluates them. */
  reachable: string[];
}

/** The manifest for `platform` as mcconfig reads it, and every import the image needs resolved. */
export async function checkManifest(manifestPath: string, platform = 'esp32'): Promise<ManifestCheck> {
  let map: ReturnType<typeof readManifest>;
  try {
    map = readManifest(manifestPath, platform);
  } catch (error) {
    return { ok: false, errors: [(error as Error).message], listed: [], reachable: [] };
  }
  // SDK wildcards are not read here (mcconfig expands them); every other warning is the image's problem.
  const errors = [
    ...map.errors.map((error) => `manifest.json refuses ${platform}: ${error}`),
    ...map.warnings.filter((warning) => !warning.startsWith('SDK modules not listed')),
  ];
  const listed = [...map.modules.keys()];
  if (errors.length > 0) return { ok: false, errors, listed, reachable: [] };
  const graph = await deviceGraph(manifestPath, platform);
  errors.push(...graph.problems);
  return { ok: errors.length === 0, errors, listed, reachable: graph.order };
}

export interface Toolchain {
  moddable?: string;
  mcconfig?: string;
  idfPath?: string;
  /** What is missing and how to install it; empty when the build can run. */
  problems: string[];
}

function isFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
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
  const built = moddable ? path.join(moddable, 'build', 'bin', 'lin', 'release', 'mcconfig') : undefined;
  const mcconfig = findOnPath('mcconfig', env) ?? (built && isFile(built) ? built : undefined);
  if (!moddable) {
    problems.push(
      `${env.MODDABLE ? `MODDABLE=${env.MODDABLE} does not exist` : 'MODDABLE is not set'}` +
        `${mcconfig ? ` (mcconfig found at ${mcconfig}, but it needs MODDABLE)` : ' and mcconfig is not on PATH'}.\n` +
        '  Install the Moddable SDK (github.com/Moddable-OpenSource/moddable), export MODDABLE, build its\n' +
        '  Linux tools as its Getting Started guide says and add $MODDABLE/build/bin/lin/release to PATH.',
    );
  } else if (!mcconfig) {
    problems.push(
      `mcconfig is neither on PATH nor in ${path.dirname(built!)}: build the Moddable tools first.`,
    );
  }
  let idfPath: string | undefined;
  if (board.startsWith('esp32')) {
    idfPath = env.IDF_PATH && existsSync(env.IDF_PATH) ? env.IDF_PATH : undefined;
    if (!idfPath) {
      problems.push(
        `${env.IDF_PATH ? `IDF_PATH=${env.IDF_PATH} does not exist` : 'IDF_PATH is not set'}: the ESP32 build needs the ESP-IDF\n` +
          '  ($MODDABLE/documentation/devices/esp32.md): export IDF_PATH and source $IDF_PATH/export.sh.',
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
  provision?: {
    meterId: number;
    bays: number[];
    broker: { host: string; port: number; tls?: boolean; user?: string; password?: string };
    /** The CA certificate (PEM or DER) an mqtts broker is verified against. */
    brokerCaFile?: string;
    network?: { ssid: string; password?: string };
    /** A cellular meter: the SIM's APN (network.link = cellular). */
    cellular?: { apn: string };
  };
}

export class FlashUsageError extends Error {
  override readonly name: string = 'FlashUsageError';
}

const BUILD_OPTIONS = Object.freeze(['--port', '--board', '--manifest']);
const PROVISION_OPTIONS = Object.freeze([
  '--meter',
  '--bays',
  '--broker',
  '--broker-ca',
  '--mqtt-user',
  '--mqtt-password',
  '--ssid',
  '--wifi-password',
  '--apn',
]);

export function parseArguments(argv: readonly string[]): FlashOptions {
  const options: FlashOptions = { dryRun: false, board: 'esp32', manifest: './manifest.json' };
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const argument = argv[i];
    if (argument === '--dry-run') {
      options.dryRun = true;
      continue;
    }
    if (![...BUILD_OPTIONS, ...PROVISION_OPTIONS].includes(argument))
      throw new FlashUsageError(`unknown argument ${argument}`);
    const next = argv[++i];
    if (next === undefined || next.startsWith('--')) throw new FlashUsageError(`${argument} needs a value`);
    given.set(argument, next);
  }
  if (given.has('--port')) options.port = given.get('--port');
  if (given.has('--board')) options.board = given.get('--board')!;
  if (given.has('--manifest')) options.manifest = given.get('--manifest')!;
  const meter = given.get('--meter');
  if (meter === undefined) {
    const stray = PROVISION_OPTIONS.filter((option) => option !== '--meter' && given.has(option));
    if (stray.length > 0)
      throw new FlashUsageError(`${stray.join(', ')} provision a meter: give --meter too`);
    return options;
  }
  const meterId = Number(meter);
  if (!Number.isInteger(meterId) || meterId <= 0)
    throw new FlashUsageError(`--meter ${meter} is not a meter id`);
  const brokerText = given.get('--broker');
  if (!brokerText)
    throw new FlashUsageError('--meter needs --broker HOST:PORT (the broker the meter connects to)');
  let broker: { host: string; port: number; tls?: boolean };
  try {
    broker = parseBroker(brokerText); // as the meter itself reads meter.broker
  } catch {
    throw new FlashUsageError(`--broker ${brokerText} is not [mqtts://]HOST:PORT`);
  }
  if (broker.tls && !given.has('--broker-ca'))
    throw new FlashUsageError('an mqtts --broker needs --broker-ca (the CA the meter verifies it with)');
  if (!broker.tls && given.has('--broker-ca'))
    throw new FlashUsageError('--broker-ca goes with an mqtts --broker');
  const bays = (given.get('--bays') ?? '1,2').split(',').map(Number);
  options.provision = {
    meterId,
    bays,
    broker: {
      ...broker,
      ...(given.has('--mqtt-user') ? { user: given.get('--mqtt-user') } : {}),
      ...(given.has('--mqtt-password') ? { password: given.get('--mqtt-password') } : {}),
    },
  };
  if (given.has('--broker-ca')) options.provision.brokerCaFile = given.get('--broker-ca');
  if (given.has('--wifi-password') && !given.has('--ssid'))
    throw new FlashUsageError('--wifi-password needs --ssid');
  if (given.has('--apn') && given.has('--ssid'))
    throw new FlashUsageError('--apn (cellular) and --ssid (Wi-Fi) name two links: give one');
  if (given.has('--apn')) options.provision.cellular = { apn: given.get('--apn')! };
  if (given.has('--ssid')) {
    options.provision.network = {
      ssid: given.get('--ssid')!,
      ...(given.has('--wifi-password') ? { password: given.get('--wifi-password') } : {}),
    };
  }
  return options;
}

/** The mcconfig invocation; the serial port goes in UPLOAD_PORT, as the SDK's ESP32 build reads it. */
export function mcconfigCommand(options: FlashOptions): {
  args: string[];
  env: Record<string, string>;
  text: string;
} {
  const args = ['-m', '-p', options.board, options.manifest];
  const env: Record<string, string> = options.port ? { UPLOAD_PORT: options.port } : {};
  const prefix = options.port ? `UPLOAD_PORT=${options.port} ` : '';
  return { args, env, text: `${prefix}mcconfig ${args.join(' ')}` };
}

/** The nvs partition's offset and size from partitions.csv. */
export function nvsPartition(csv: string): { offset: string; size: string } {
  for (const line of csv.split('\n')) {
    const fields = line.split(',').map((field) => field.trim());
    if (fields[0] === 'nvs' && fields[2] === 'nvs') return { offset: fields[3], size: fields[4] };
  }
  throw new Error('partitions.csv has no nvs partition');
}

/** The NVS CSV with every key's bytes replaced, for printing. */
export function redactedCsv(entries: readonly PreferenceEntry[]): string {
  return nvsCsv(
    entries.map((entry) =>
      entry.type === 'blob' ? { ...entry, type: 'string', value: `<${entry.value.length} bytes>` } : entry,
    ),
  );
}

/** The commands that turn the NVS CSV into a partition image and write it at the nvs partition. */
export function nvsCommands(idfPath: string, csvFile: string, port: string | undefined): string[][] {
  const { offset, size } = nvsPartition(readFileSync(path.join(ROOT, 'partitions.csv'), 'utf8'));
  const image = csvFile.replace(/\.csv$/, '.bin');
  const generator = path.join(
    idfPath,
    'components',
    'nvs_flash',
    'nvs_partition_generator',
    'nvs_partition_gen.py',
  );
  return [
    ['python', generator, 'generate', csvFile, image, size],
    ['esptool.py', ...(port ? ['--port', port] : []), 'write_flash', offset, image],
  ];
}

export interface Output {
  log(line: string): void;
  error(line: string): void;
}

/** What the factory writes for the meter: the platform registers it and hands over its keys. */
async function factoryEntries(provision: NonNullable<FlashOptions['provision']>): Promise<PreferenceEntry[]> {
  const { configFromEnv } = await import('../platform-server/config');
  const { createPlatform } = await import('../platform-server/platform');
  // A provisioning station serves no HTTP: the phone gateway (and its secret) has no part here.
  const fromEnv = configFromEnv();
  const platform = await createPlatform({
    ...fromEnv,
    // No HTTP here, so no renewal can be paid: the payment simulator stands in for a provider.
    phone: { ...fromEnv.phone, gateway: false, paymentProvider: new PaymentSimulator() },
    httpLogger: false,
  });
  try {
    const keys = await platform.provisionMeter(provision.meterId, `Meter ${provision.meterId}`);
    const releaseKey = platform.releaseKeyFor(provision.meterId);
    const { brokerCaFile, ...rest } = provision;
    const mqtt = platform.meterMqttCredentials(provision.meterId);
    const broker = { user: mqtt.username, password: mqtt.password, ...provision.broker };
    const input: ProvisioningInput = {
      ...rest,
      broker: brokerCaFile ? { ...broker, ca: certificateDer(readFileSync(brokerCaFile)) } : broker,
      keys,
      releaseKey,
      // the firmware release key the platform checks uploads with, pinned in the meter (414a)
      ...(fromEnv.firmwareReleaseKey ? { firmwareKey: fromEnv.firmwareReleaseKey } : {}),
    };
    try {
      return preferenceEntries(input);
    } finally {
      releaseKey.fill(0);
    }
  } finally {
    await platform.close();
  }
}

/** A certificate file as DER: the first PEM block decoded, or the bytes as they are. */
export function certificateDer(file: Uint8Array): Uint8Array {
  const text = Buffer.from(file).toString('latin1');
  const pem = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(text);
  return pem ? new Uint8Array(Buffer.from(pem[1].replace(/\s+/g, ''), 'base64')) : file;
}

/** Runs the tool; returns the exit code (0 done, 1 manifest or usage error, 2 toolchain missing). */
export async function run(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  out: Output = console,
): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    out.log(USAGE);
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
    const check = await checkManifest(options.manifest, options.board);
    for (const error of check.errors) out.error(`error: ${error}`);
    if (options.provision) {
      const { meterId, bays, network, cellular, brokerCaFile } = options.provision;
      // As factoryEntries writes it: the meter's own user name and derived password, unless named.
      const broker = {
        user: String(meterId),
        password: '<derived from the master key>',
        ...options.provision.broker,
        ...(brokerCaFile ? { ca: certificateDer(readFileSync(brokerCaFile)) } : {}),
      };
      out.log(`would register meter ${meterId} with the platform and write its nvs partition:`);
      const placeholder = new Uint8Array(32);
      const keys = {
        epoch: 1,
        uplink: placeholder,
        downlink: placeholder,
        secrets: { a: placeholder, b: placeholder, m: placeholder },
        cardTokenKey: placeholder,
      };
      const entries = preferenceEntries({
        meterId,
        bays,
        broker,
        ...(network ? { network } : {}),
        ...(cellular ? { cellular } : {}),
        keys,
        releaseKey: placeholder,
      });
      out.log(redactedCsv(entries).trimEnd());
      for (const line of nvsCommands(
        toolchain.idfPath ?? '$IDF_PATH',
        `.device/meter-${meterId}/nvs.csv`,
        options.port,
      )) {
        out.log(line.join(' '));
      }
    }
    if (!check.ok) return 1;
    out.log(
      `manifest ok for ${options.board}: ${check.listed.length} modules listed, ${check.reachable.length} project files reachable from preload and creation.main`,
    );
    return 0;
  }

  if (toolchain.problems.length > 0) {
    for (const problem of toolchain.problems) out.error(`flash: ${problem}`);
    return 2;
  }
  const check = await checkManifest(options.manifest, options.board);
  if (!check.ok) {
    for (const error of check.errors) out.error(`error: ${error}`);
    return 1;
  }
  out.log(command.text);
  const built = spawnSync(toolchain.mcconfig!, command.args, {
    stdio: 'inherit',
    env: { ...env, ...command.env },
  });
  if (built.error || built.status !== 0) {
    out.error(`flash: mcconfig ${built.error ? built.error.message : `exited with ${built.status}`}`);
    return 1;
  }
  if (!options.provision) return 0;

  const entries = await factoryEntries(options.provision);
  const dir = path.join(ROOT, '.device', `meter-${options.provision.meterId}`);
  mkdirSync(dir, { recursive: true });
  const csvFile = path.join(dir, 'nvs.csv');
  writeFileSync(csvFile, nvsCsv(entries), { mode: 0o600 });
  try {
    for (const line of nvsCommands(toolchain.idfPath!, csvFile, options.port)) {
      out.log(line.join(' '));
      const step = spawnSync(line[0], line.slice(1), { stdio: 'inherit', env });
      if (step.error || step.status !== 0) {
        out.error(`flash: ${line[0]} ${step.error ? step.error.message : `exited with ${step.status}`}`);
        return 1;
      }
    }
  } finally {
    // The keys are in the board now (or nowhere): none stays on this disk.
    rmSync(csvFile, { force: true });
    rmSync(csvFile.replace(/\.csv$/, '.bin'), { force: true });
  }
  out.log(
    `meter ${options.provision.meterId} provisioned: it moves its keys into the secure parts at its first start`,
  );
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  run(process.argv.slice(2), process.env).then((code) => {
    process.exitCode = code;
  });
}
