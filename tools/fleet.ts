// `npm start`: the platform on its embedded defaults (or DATABASE_URL / MQTT_URL) and three virtual
// meters — the real firmware on virtual hardware, in real time — whose drivers tap virtual cards on
// a schedule. One line per transaction as the platform stores it; Ctrl-C stops everything cleanly.
// Without PARKLINK_ADMIN_USER / _PASSWORD and with no operator in the database, it creates an admin
// with a random password for the run and prints how to log in with curl.
//
//   npm start                      run until Ctrl-C
//   npm start -- --seconds 60      run for a minute, then print what was stored
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Meter } from '../firmware/meter';
import type { KeyName } from '../firmware/events';
import { VirtualBoard } from '../hal/mock/board';
import { CardType, purseCard } from '../hal/mock/cards';
import { meterClientId, NodeMqttLink } from '../hal/mock/mqtt.node';
import { RealTimeClock } from '../hal/mock/realtime.node';
import { createPlatform } from '../platform-server/platform';
import { configFromEnv } from '../platform-server/config';
import { RecordKind } from '../protocol/records';
import { formatMoney } from '../firmware/units/format';
import { provisionVirtualMeter } from './factory';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string' },
    meters: { type: 'string', default: '3' },
    'tap-every': { type: 'string', default: '4' },
  },
});
const meterCount = Number(values.meters);
const tapEveryMs = Number(values['tap-every']) * 1000;
const runSeconds = values.seconds === undefined ? undefined : Number(values.seconds);

let stored = 0;
let transactions = 0;
const fromEnv = configFromEnv();
// A demo admin only when none is configured; created only if the database has no operator yet.
const demoAdmin = fromEnv.operators?.admin
  ? undefined
  : { username: 'admin', password: randomBytes(15).toString('base64url'), displayName: 'Demo admin' };
const platform = await createPlatform({
  port: 8080,
  ...fromEnv,
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
          `${formatMoney(d.charge, d.currency)}  card …${d.cardNumber.slice(-4)}  left ${formatMoney(d.remainingValue, d.currency)}  stored, chain verified`,
      );
    } else {
      console.log(
        `${at}  meter ${meterId}  #${String(record.seq).padStart(3)}  ${record.kind === RecordKind.Operation ? 'operation' : 'maintenance'}: ${record.data.code} (${record.data.detail})`,
      );
    }
  },
});

let http: string;
try {
  http = await platform.listen();
} catch {
  http = await platform.listen(0); // 8080 taken: any free port
}
console.log(`ParkLink platform: ${http}  broker ${platform.brokerUrl}  database ${platform.db.kind}`);
const created = platform.operators.bootstrapped;
if (created) {
  const password = demoAdmin ? demoAdmin.password : '<PARKLINK_ADMIN_PASSWORD>';
  console.log(
    `Operator API: admin account '${created}' created${demoAdmin ? ` with password ${password} (this run's demo admin)` : ''}. Log in and list the meters:\n` +
      `  TOKEN=$(curl -s -X POST ${http}/api/operators/login -H 'content-type: application/json' ` +
      `-d '{"username":"${created}","password":"${password}"}' | node -pe 'JSON.parse(require("fs").readFileSync(0)).token')\n` +
      `  curl -H "Authorization: Bearer $TOKEN" ${http}/api/meters`,
  );
} else {
  console.log('Operator API: log in with your operator account (POST /api/operators/login).');
}

const clock = new RealTimeClock();
const rate = { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 };
const base = { expiry: { year: 2030, month: 12 }, counter: 0, currency: 826, limit: 0 };
interface Fleet {
  board: VirtualBoard;
  meter: Meter;
  cards: ReturnType<typeof purseCard>[];
}
const fleet: Fleet[] = [];
for (let n = 0; n < meterCount; n++) {
  const meterId = 1001 + n;
  const board = new VirtualBoard({
    mqtt: new NodeMqttLink({ url: platform.brokerUrl, clientId: meterClientId(meterId) }),
    clock,
    seed: meterId,
  });
  await provisionVirtualMeter(platform, board.hardware, meterId, `Virtual meter ${n + 1}`);
  const cards = Array.from({ length: 4 }, (_, c) =>
    purseCard([0x04, n, c, 0x33], {
      ...base,
      cardNumber: `6280${String(meterId).padStart(6, '0')}${String(c).padStart(6, '0')}`,
      cardType: [CardType.DEBIT, CardType.CREDIT, CardType.PREPAID][c % 3],
      balance: c === 1 ? 0 : 50_000,
      limit: c === 0 ? 0 : 20_000,
    }),
  );
  const meter = new Meter(board.hardware, { meterId, bays: [1, 2, 3], rate });
  meter.blacklist.replace([{ cardNumber: cards[3].applet.data.cardNumber, reason: 'reported stolen' }]);
  meter.start();
  fleet.push({ board, meter, cards });
}

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
  for (const { meter } of fleet) meter.stop();
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
