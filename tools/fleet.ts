// `npm start`: the platform on its embedded defaults (or DATABASE_URL / MQTT_URL) and three
// simulated meters — the real firmware on virtual hardware, in real time — whose simulated drivers
// tap simulated cards on a schedule. One line per record as the platform stores it; Ctrl-C stops
// everything cleanly. Without PARKLINK_ADMIN_USER / _PASSWORD and with no operator in the
// database, it creates an admin with a random password for the run and prints how to log in.
// PARKLINK_DATA_DIR keeps the demo across runs: the PGlite database in that directory, and in its
// fleet/ folder the keystore (master key) and each simulated meter's flash, preferences and
// secure parts, so the records stored before still verify and the meters carry on their chains.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { deserialize, serialize } from 'node:v8';
import { Meter } from '../firmware/meter';
import type { KeyName } from '../firmware/events';
import { type BoardState, VirtualBoard } from '../hal/mock/board';
import { CardType, purseCard } from '../hal/mock/cards';
import { meterClientId, NodeMqttLink } from '../hal/mock/mqtt.node';
import { RealTimeClock } from '../hal/mock/realtime.node';
import { createPlatform } from '../platform-server/platform';
import { configFromEnv, type PlatformConfig } from '../platform-server/config';
import { RecordKind } from '../protocol/records';
import { provisionVirtualMeter } from './factory';
import { AreaShapes, changeRegistryEntry } from '../platform-server/console/registry';
import type { Queryable } from '../platform-server/core/db';
import { formatMoney } from './money';
import { SIMULATED_PAYMENTS_NOTICE } from '../platform-server/phone';

export const USAGE = `usage: npm start -- [--seconds N] [--meters N] [--tap-every S]
  runs the platform and N simulated meters (default 3) whose simulated drivers tap simulated
  cards every S seconds (default 4); --seconds N stops after N seconds and prints the count
environment:
  PORT               HTTP port (default 8080; when 8080 is taken, a free port, printed)
  HOST               address to listen on (default 127.0.0.1)
  PARKLINK_DATA_DIR  keep the database, the master key and the simulated meters across runs
  DATABASE_URL, MQTT_URL, PARKLINK_ADMIN_USER and PARKLINK_ADMIN_PASSWORD: see README.md`;

function fail(message: string): never {
  console.error(`npm start: ${message}\n${USAGE}`);
  process.exit(2);
}

let values: { seconds?: string; meters?: string; 'tap-every'?: string; help?: boolean };
try {
  ({ values } = parseArgs({
    options: {
      seconds: { type: 'string' },
      meters: { type: 'string', default: '3' },
      'tap-every': { type: 'string', default: '4' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (error) {
  fail((error as Error).message);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const meterCount = Number(values.meters);
if (!Number.isInteger(meterCount) || meterCount < 1 || meterCount > 500) fail('--meters takes 1 to 500');
const tapEveryMs = Number(values['tap-every']) * 1000;
if (!(tapEveryMs > 0)) fail('--tap-every takes a number of seconds above 0');
const runSeconds = values.seconds === undefined ? undefined : Number(values.seconds);
if (runSeconds !== undefined && !(runSeconds > 0)) fail('--seconds takes a number above 0');

let stored = 0;
let transactions = 0;
const fromEnv = configFromEnv();
const dataDir = process.env.PARKLINK_DATA_DIR;
const fleetDir = dataDir ? path.join(dataDir, 'fleet') : undefined;
if (fleetDir) mkdirSync(fleetDir, { recursive: true });
const keyConfigured = fromEnv.masterKey || fromEnv.keystoreFile || fromEnv.hsm;
const persistentKeys: Partial<PlatformConfig> =
  fleetDir && !keyConfigured
    ? {
        keystoreFile: path.join(fleetDir, 'keystore.json'),
        keystorePassphrase: process.env.PARKLINK_KEYSTORE_PASSPHRASE ?? demoPassphrase(fleetDir),
        createKeystoreFile: true,
      }
    : {};

/** The demo keystore's passphrase, kept beside it (0600): a demo convenience, not a production setup. */
function demoPassphrase(dir: string): string {
  const file = path.join(dir, 'keystore.passphrase');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const passphrase = randomBytes(24).toString('base64url');
  writeFileSync(file, `${passphrase}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return passphrase;
}
// A demo admin only when none is configured; created only if the database has no operator yet.
const demoAdmin = fromEnv.operators?.admin
  ? undefined
  : { username: 'admin', password: randomBytes(15).toString('base64url'), displayName: 'Demo admin' };
const platform = await createPlatform({
  ...fromEnv,
  ...persistentKeys,
  // Demo mode: the SMS and voice gateway may go without its secret (printed below when it does).
  demo: true,
  operators: { ...fromEnv.operators, admin: fromEnv.operators?.admin ?? demoAdmin },
  httpLogger: false,
  logger: {
    info() {},
    warn: (o: unknown, m?: string) => console.warn('platform:', m ?? o),
    error: (o: unknown, m?: string) => console.error('platform:', m ?? o),
  },
  onStored({ meterId, record }) {
    stored++;
    const at = new Date(record.time * 1000).toISOString().slice(11, 19);
    if (record.kind === RecordKind.Transaction) {
      transactions++;
      const d = record.data;
      console.log(
        `${at}  meter ${meterId}  #${String(record.seq).padStart(3)}  bay ${d.bayId}  ${String(d.minutes).padStart(3)} min  ` +
          `${formatMoney(d.charge, d.currency)} (${d.charge})  card …${d.card.last4}  left ${formatMoney(d.remainingValue, d.currency)}  stored, chain verified`,
      );
    } else {
      console.log(
        `${at}  meter ${meterId}  #${String(record.seq).padStart(3)}  ${record.kind === RecordKind.Operation ? 'operation' : 'maintenance'}: ${record.data.code} (${record.data.detail})`,
      );
    }
  },
});

if (platform.phone.service.paymentProvider.simulated)
  console.warn(`\n*** ${SIMULATED_PAYMENTS_NOTICE} ***\n`);

const wantedPort = fromEnv.port ?? 8080;
let http: string;
try {
  http = await platform.listen(wantedPort);
} catch (error) {
  if ((error as { code?: string }).code !== 'EADDRINUSE' || fromEnv.port !== undefined) {
    await platform.close();
    console.error(`npm start: cannot listen on port ${wantedPort}: ${(error as Error).message}`);
    process.exit(1);
  }
  http = await platform.listen(0);
  console.log(
    `Port ${wantedPort} is in use: listening on port ${new URL(http).port} instead (PORT=… chooses one).`,
  );
}
// A wildcard address is not one to browse to.
const base = http.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//localhost:');
const database =
  platform.db.kind === 'pglite'
    ? `PGlite ${dataDir ? `in ${dataDir}` : 'in memory (PARKLINK_DATA_DIR keeps it)'}`
    : platform.db.kind;
console.log(`ParkLink platform: ${base}  broker ${platform.brokerUrl}  database ${database}`);

/** Whether the platform answers this page (the console, say, may not be built yet). */
async function served(page: string): Promise<boolean> {
  try {
    const response = await fetch(`${base}${page}`, { redirect: 'manual' });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}
if (await served('/app/')) console.log(`Driver app (pay by phone): ${base}/app/`);
if (!(fromEnv.phone?.gatewaySecret ?? process.env.PARKLINK_GATEWAY_SECRET)) {
  console.log(
    `Demo mode: the SMS and voice gateway (${base}/api/phone/sms, /api/phone/voice) is OPEN, taking unsigned posts ` +
      '(set PARKLINK_GATEWAY_SECRET to require signed ones; a deployment refuses to start without it).',
  );
}
const consoleServed = await served('/console/');

const created = platform.operators.bootstrapped;
const username = created ?? fromEnv.operators?.admin?.username ?? '<your operator>';
const password = created && demoAdmin ? demoAdmin.password : '<password>';
if (created && demoAdmin) {
  console.log(
    `Operator API: admin account '${created}' created with password ${password} (this run's demo admin${dataDir ? '; PARKLINK_DATA_DIR keeps the account, so note the password' : ''}).`,
  );
} else if (created) {
  console.log(`Operator API: admin account '${created}' created from PARKLINK_ADMIN_USER.`);
} else {
  console.log('Operator API: log in with an existing operator account.');
}
if (consoleServed)
  console.log(`Operator console: ${base}/console/  (sign in as ${username}, password ${password})`);
else console.log('Operator console: not built (npm run build:console)');
console.log(
  "Log in, then list the meters and the first meter's transactions:\n" +
    `  TOKEN=$(curl -s -X POST ${base}/api/operators/login -H 'content-type: application/json' ` +
    `-d '{"username":"${username}","password":"${password}"}' | node -pe 'JSON.parse(require("fs").readFileSync(0)).token')\n` +
    `  curl -H "Authorization: Bearer $TOKEN" ${base}/api/meters\n` +
    `  curl -H "Authorization: Bearer $TOKEN" ${base}/api/meters/1001/transactions`,
);
console.log(
  `Simulated: ${meterCount === 1 ? 'the meter runs' : `the ${meterCount} meters run`} the real firmware on simulated hardware, and the drivers, their ` +
    'taps and the purse cards are simulated too; no real card or money is involved.',
);

const DEMO_STATUS_SECONDS = 60;
const DEMO_AREAS: { name: string; outline: [number, number][] }[] = [
  {
    name: 'Old Town',
    outline: [
      [-0.1305, 51.5065],
      [-0.1245, 51.5065],
      [-0.1245, 51.5095],
      [-0.1305, 51.5095],
    ],
  },
  {
    name: 'Harbour',
    outline: [
      [-0.1245, 51.5035],
      [-0.1185, 51.5035],
      [-0.1185, 51.5065],
      [-0.1245, 51.5065],
    ],
  },
];
const shapes = new AreaShapes(platform.db);
for (const area of DEMO_AREAS)
  if (!(await shapes.list()).some((a) => a.name === area.name && a.outline))
    await shapes.draw(platform.db, area.name, [[...area.outline, area.outline[0]]], 'npm start');

/** The demo street plan: meters alternate between the two areas, a few dozen metres apart. */
async function placeDemoMeter(db: Queryable, meterId: number, n: number): Promise<void> {
  const area = DEMO_AREAS[n % 2];
  const [lon, lat] = area.outline[0];
  await changeRegistryEntry(db, meterId, {
    address: `${n + 1} ${n % 2 === 0 ? 'High Street' : 'Quay Road'}`,
    latitude: lat + 0.0008 + 0.0004 * Math.floor(n / 2),
    longitude: lon + 0.001 + 0.0007 * Math.floor(n / 2),
    area: area.name,
    bays: 3,
    contactSeconds: DEMO_STATUS_SECONDS,
  });
}

const statusTimers: NodeJS.Timeout[] = [];
const clock = new RealTimeClock();
const rate = { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 };
const cardBase = { expiry: { year: 2030, month: 12 }, counter: 0, currency: 826, limit: 0 };
interface Fleet {
  board: VirtualBoard;
  saved: string | undefined;
  meter: Meter;
  cards: ReturnType<typeof purseCard>[];
}
const fleet: Fleet[] = [];
for (let n = 0; n < meterCount; n++) {
  const meterId = 1001 + n;
  const saved = fleetDir ? path.join(fleetDir, `meter-${meterId}.v8`) : undefined;
  const state = saved && existsSync(saved) ? (deserialize(readFileSync(saved)) as BoardState) : undefined;
  const known = (await platform.db.query('SELECT 1 FROM meters WHERE id = $1', [meterId])).rows.length > 0;
  if (known !== (state !== undefined)) {
    await platform.close();
    console.error(
      `npm start: meter ${meterId} is ${known ? 'in the database but its simulated board is not saved' : 'saved but not in the database'}` +
        `${fleetDir ? ` (${fleetDir})` : ''}; start with an empty PARKLINK_DATA_DIR`,
    );
    process.exit(1);
  }
  const board = new VirtualBoard({
    mqtt: new NodeMqttLink({
      url: platform.brokerUrl,
      clientId: meterClientId(meterId),
      ...platform.meterMqttCredentials(meterId),
    }),
    clock,
    seed: meterId,
    state,
    // Guard sensors, battery packs and module switches: status reports, alarms and occupancy.
    sensors: true,
  });
  if (!state) {
    await provisionVirtualMeter(platform, board.hardware, meterId, `Virtual meter ${n + 1}`);
    await placeDemoMeter(platform.db, meterId, n);
  }
  const cards = Array.from({ length: 4 }, (_, c) =>
    purseCard([0x04, n, c, 0x33], {
      ...cardBase,
      cardNumber: `6280${String(meterId).padStart(6, '0')}${String(c).padStart(6, '0')}`,
      cardType: [CardType.DEBIT, CardType.CREDIT, CardType.PREPAID][c % 3],
      balance: c === 1 ? 0 : 50_000,
      limit: c === 0 ? 0 : 20_000,
    }),
  );
  // Time management on, as on a device: the platform's time exchange sets each meter's clock.
  const meter = new Meter(board.hardware, { meterId, bays: [1, 2, 3], rate, time: {} });
  // Listed by token, as the platform would send it: the meter has the fleet's card-token key.
  if (!state) {
    const stolen = meter.security.cardRef(cards[3].applet.data.cardNumber);
    meter.blacklist.replace([{ token: stolen.token, reason: 'reported stolen' }]);
  }
  meter.start();
  // A status report soon after start and then each minute (a deployed meter reports hourly, on its
  // guard's schedule), so the console's fleet view has status, battery and occupancy to show.
  const report = () => meter.guard?.sendStatus();
  statusTimers.push(setTimeout(report, 5_000), setInterval(report, DEMO_STATUS_SECONDS * 1000));
  fleet.push({ board, saved, meter, cards });
  if (saved) save(board, saved);
}

/** Writes a simulated meter's flash, preferences and secure parts, whole or not at all. */
function save(board: VirtualBoard, file: string): void {
  writeFileSync(`${file}.new`, serialize(board.state));
  renameSync(`${file}.new`, file);
}
const saving = setInterval(() => {
  for (const { board, saved } of fleet) if (saved) save(board, saved);
}, 10_000);

const started = Date.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let stopping = false;
let tapNumber = 0;

/** A driver at the meter: wake it, choose bay and time, present a card, take it away. */
async function drive({ board, cards }: Fleet): Promise<void> {
  const i = tapNumber++;
  const keys: KeyName[] = [
    'ok',
    ...Array<KeyName>(i % 3).fill('bay'),
    ...Array<KeyName>(i % 5).fill('up'),
    'ok',
  ];
  for (const key of keys) {
    board.press(key);
    await sleep(60);
  }
  const { card } = cards[i % cards.length];
  board.field.add(card);
  await sleep(700); // the reader polls every 250 ms
  board.field.remove(card);
}

const schedules = fleet.map((meter, n) => {
  let busy = false;
  return setInterval(
    () => {
      if (busy || stopping) return;
      busy = true;
      drive(meter).finally(() => {
        busy = false;
      });
    },
    tapEveryMs + n * 700,
  );
});

async function stop(reason: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const schedule of schedules) clearInterval(schedule);
  for (const timer of statusTimers) clearTimeout(timer);
  clearInterval(saving);
  for (const { meter } of fleet) meter.stop();
  for (const { board, saved } of fleet) if (saved) save(board, saved);
  clock.clearAll();
  await platform.close();
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  console.log(
    `${reason}: ${stored} records stored (${transactions} transactions) from ${fleet.length} meters in ${seconds} s`,
  );
}

process.on('SIGINT', () => void stop('stopped').then(() => process.exit(0)));
process.on('SIGTERM', () => void stop('stopped').then(() => process.exit(0)));
if (runSeconds !== undefined) {
  setTimeout(() => void stop('done').then(() => process.exit(0)), runSeconds * 1000);
}
