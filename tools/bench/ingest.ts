// Ingest at fleet scale: virtual meters publish hash-chained upload sets, sealed
// as the firmware seals them, through the broker; platform instances (one, then two on a shared
// subscription) decrypt, verify the chains, de-duplicate and write to PostgreSQL, and acknowledge.
// Each meter keeps one set in flight (the next set goes when the last is acknowledged), as a meter
// does. Each meter's first sets (--warm-up, 2 by default) go before the clock starts: a deployed
// platform is warm and its meters continue chains it holds, while a fresh instance runs its first
// sets at about half speed (its code not yet compiled, every meter's chain starting at its genesis
// record); the figure with them counted is printed too. Each instance is its own process running
// platform-server/main.ts, as deployed; this process only drives the fleet. Then, in the same run, PostgreSQL COPY of the same rows into a fresh
// schema: the limit.
// Real PostgreSQL (127.0.0.1:5432), one fresh database per phase, dropped after, and a Mosquitto
// of the run's own configured as deployed, every meter under its own credentials; the embedded
// PGlite + aedes only when PostgreSQL and Mosquitto (127.0.0.1:1883) do not answer (then one
// instance and no COPY figure, said so).
//
//   npm run bench:ingest -- --meters=200 --records=1000 --set=50 --warm-up=2 --instances=1,2 --connections=1 --runs=1
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import mqtt, { type MqttClient } from 'mqtt';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { sendPacketsAtOnce } from '../../platform-server/core/broker';
import { type Database, openDatabase } from '../../platform-server/core/db';
import { migrate } from '../../platform-server/core/migrations';
import { createPlatform } from '../../platform-server/platform';
import type { PlatformConfig } from '../../platform-server/config';
import { nodeCrypto } from '../../platform-server/core/nodeCrypto';
import { recordRows } from '../../platform-server/ingest/store';
import { deriveCardTokenKey } from '../../platform-server/keys/cardToken';
import { toHex } from '../../protocol/bytes';
import { decodeRecord, RecordKind } from '../../protocol/records';
import { downlinkTopic, meterClientId, meterIdOfTopic, uplinkTopic } from '../../protocol/topics';
import { real, TestMeter } from '../../sim/fleet/platform';
import { BrokerCredentials, mosquittoPasswordFile } from '../../platform-server/core/brokerAuth';
import { loadKeystore } from '../../platform-server/keys/keystore';
import {
  type Broker,
  checkpoint,
  cpuSeconds,
  cpuSpent,
  programCpu,
  freshDatabase,
  type Instance,
  startInstance,
  startMosquitto,
  stopInstance,
} from '../../sim/fleet/processes';
import { PaymentSimulator } from '../../platform-server/payments/simulator';

export const description =
  'verified records/s into PostgreSQL through the broker, one and two instances, against COPY of the same rows';

const MASTER_KEY = '5a'.repeat(32);
const FIRST_METER = 7_000_000;
const silent = { info() {}, warn() {}, error() {} };

function option(args: string[], name: string, fallback: string): string {
  const found = args.find((a) => a.startsWith(`--${name}=`));
  return found ? found.slice(name.length + 3) : fallback;
}

interface Fleet {
  meters: TestMeter[];
  /** Per meter, its upload-set frames in order. */
  frames: Uint8Array[][];
  records: number;
  /** Sets per meter sent before the clock starts. */
  warmUp: number;
  /** Records per meter in those sets. */
  warmRecords: number;
}

/** The records the clock counts: those after each meter's warm-up sets. */
const timedRecords = (fleet: Fleet) => fleet.records - fleet.meters.length * fleet.warmRecords;

function buildFleet(
  keysOf: (id: number) => TestMeter['keys'],
  count: number,
  records: number,
  set: number,
  warmUp: number,
): Fleet {
  const meters: TestMeter[] = [];
  const frames: Uint8Array[][] = [];
  // Today's records, spread over the day so far (UTC, the platform's default city day), as a
  // meter's uploads are: a sale from an earlier day is the exception ingest handles apart.
  const now = Date.now() / 1000;
  const todayStart = Math.floor(now / 86_400) * 86_400;
  const spacing = (now - todayStart) / (records + 1);
  for (let m = 0; m < count; m++) {
    const meter = new TestMeter(FIRST_METER + m, keysOf(FIRST_METER + m));
    for (let i = 0; i < records; i++) {
      const time = Math.floor(todayStart + (i + 1) * spacing);
      // Mostly sales, an operation record now and then (blacklisted card), as a day looks.
      if (i % 25 === 24) meter.operation(undefined, undefined, undefined, time);
      else meter.transaction({}, time);
    }
    const own: Uint8Array[] = [];
    for (let from = 1; from <= records; from += set)
      own.push(meter.frame(from, Math.min(records, from + set - 1)));
    meters.push(meter);
    frames.push(own);
  }
  return { meters, frames, records: count * records, warmUp, warmRecords: Math.min(records, warmUp * set) };
}

/**
 * Publishes every meter's sets, each after the previous one's ack, each meter on its own connection
 * under its own credentials: first each meter's warm-up sets, then, once every meter's are
 * acknowledged, the rest. Resolves with the seconds the whole run took and those the rest took.
 */
async function drive(
  brokerUrl: string,
  fleet: Fleet,
  login: (meterId: number) => { username: string; password: string },
  /** Called once every meter has its warm-up sets acknowledged: where the timed part starts. */
  onStart?: () => void,
): Promise<{ seconds: number; timedSeconds: number }> {
  const clients: MqttClient[] = [];
  try {
    for (const meter of fleet.meters) {
      const client = await mqtt.connectAsync(brokerUrl, {
        clean: true,
        reconnectPeriod: 0,
        clientId: meterClientId(meter.id),
        ...login(meter.id),
      });
      sendPacketsAtOnce(client);
      clients.push(client);
      await client.subscribeAsync(downlinkTopic(meter.id), { qos: 1 });
    }
    const next = new Map<number, number>();
    let pending = fleet.meters.length;
    let warming = fleet.meters.length;
    const started = performance.now();
    let timed = started;
    const done = new Promise<void>((resolve) => {
      const send = (index: number) => {
        const k = next.get(index) ?? 0;
        const frames = fleet.frames[index];
        if (k === fleet.warmUp && warming > 0) {
          // Held until every meter is warm, then all go at once: the clock starts there.
          if (--warming > 0) return;
          onStart?.();
          timed = performance.now();
          for (let i = 0; i < fleet.meters.length; i++) if (i !== index) send(i);
        }
        if (k >= frames.length) {
          if (--pending === 0) resolve();
          return;
        }
        next.set(index, k + 1);
        clients[index].publish(uplinkTopic(fleet.meters[index].id), Buffer.from(frames[k]), { qos: 1 });
      };
      for (const client of clients) {
        client.on('message', (topic) => {
          const index = (meterIdOfTopic(topic) ?? -1) - FIRST_METER;
          if (index >= 0 && index < fleet.meters.length) send(index);
        });
      }
      for (let i = 0; i < fleet.meters.length; i++) send(i);
    });
    await done;
    const ended = performance.now();
    return { seconds: (ended - started) / 1000, timedSeconds: (ended - timed) / 1000 };
  } finally {
    for (const client of clients) await client.endAsync();
  }
}

interface PhaseResult {
  /** Records per second after the warm-up. */
  rate: number;
  /** Records per second over the whole run, warm-up included. */
  coldRate: number;
  /** CPU seconds the platform instances spent per record stored, in microseconds. */
  cpuPerRecord?: number;
  /** The same for the other programs on this machine: PostgreSQL, Mosquitto, this load generator. */
  others?: { postgres: number; mosquitto: number; generator: number };
}

/** The CPU spent so far by the platform instances, PostgreSQL, Mosquitto and this process. */
function cpuReading(children: Instance[]) {
  return {
    instances: children.map((c) => cpuSeconds(c.child.pid as number)),
    postgres: programCpu('postgres'),
    mosquitto: programCpu('mosquitto'),
    generator: process.cpuUsage(),
  };
}

/** CPU per record of each program since `start`, microseconds. */
function cpuPerRecord(
  children: Instance[],
  start: ReturnType<typeof cpuReading>,
  records: number,
): Required<Pick<PhaseResult, 'cpuPerRecord' | 'others'>> {
  const platform = children.reduce(
    (sum, c, i) => sum + cpuSeconds(c.child.pid as number) - start.instances[i],
    0,
  );
  const generator = process.cpuUsage(start.generator);
  return {
    cpuPerRecord: (platform / records) * 1e6,
    others: {
      postgres: (cpuSpent(start.postgres, programCpu('postgres')) / records) * 1e6,
      mosquitto: (cpuSpent(start.mosquitto, programCpu('mosquitto')) / records) * 1e6,
      generator: (generator.user + generator.system) / records,
    },
  };
}

/**
 * Platform instances in their own processes on the real PostgreSQL and a Mosquitto of the run's
 * own, configured as deployed (deploy/mosquitto: credentials, ACL, queue limit), each meter on its
 * own connection under its own credentials.
 */
async function realPhase(
  instances: number,
  fleet: Fleet,
  connections: string,
  nodeFlags: string[],
): Promise<PhaseResult> {
  const database = await freshDatabase();
  const children: Instance[] = [];
  const keystore = await loadKeystore({ masterKey: MASTER_KEY });
  const credentials = new BrokerCredentials(keystore);
  let broker: Broker | undefined;
  try {
    broker = await startMosquitto(
      mosquittoPasswordFile(
        credentials,
        fleet.meters.map((m) => m.id),
      ),
    );
    const db = await openDatabase({ url: database.url, maxConnections: 1 });
    try {
      await migrate(db);
      await db.query(
        "INSERT INTO meters (id, name, key_epoch) SELECT id, 'bench ' || id, 1 FROM unnest($1::bigint[]) AS id",
        [fleet.meters.map((m) => m.id)],
      );
    } finally {
      await db.close();
    }
    const env = {
      DATABASE_URL: database.url,
      MQTT_URL: broker.url,
      PARKLINK_MASTER_KEY: MASTER_KEY,
      PARKLINK_INGEST_CONNECTIONS: connections,
      // The platform refuses to start without a payment provider; nothing is paid in this run.
      PARKLINK_DEMO: '1',
      PORT: '0',
      LOG_LEVEL: 'warn',
    };
    // As before each COPY: the run starts with no checkpoint due.
    await checkpoint();
    for (let i = 0; i < instances; i++) children.push(await startInstance(env, nodeFlags));
    // CPU from the end of the warm-up on: the meters' connections (a password check each) are not
    // ingest, and the warm-up is not counted.
    let start: ReturnType<typeof cpuReading> | undefined;
    const { seconds, timedSeconds } = await drive(
      broker.url,
      fleet,
      (id) => ({ username: BrokerCredentials.meterUser(id), password: credentials.meterPassword(id) }),
      () => {
        start = cpuReading(children);
      },
    );
    const cpu = cpuPerRecord(children, start as ReturnType<typeof cpuReading>, timedRecords(fleet));
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const held = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM records');
      const refused = await client.query<{ reason: string; n: number }>(
        'SELECT reason, count(*)::int AS n FROM refused_frames WHERE meter_id BETWEEN $1 AND $2 GROUP BY reason',
        [FIRST_METER, FIRST_METER + fleet.meters.length - 1],
      );
      if (held.rows[0].n !== fleet.records || refused.rows.length > 0) {
        const why = refused.rows.map((r) => `${r.n} ${r.reason}`).join(', ');
        throw new Error(
          `stored ${held.rows[0].n} of ${fleet.records} records; frames refused: ${why || 'none'}`,
        );
      }
    } finally {
      await client.end();
    }
    return { rate: timedRecords(fleet) / timedSeconds, coldRate: fleet.records / seconds, ...cpu };
  } finally {
    await Promise.all(children.map(stopInstance));
    await broker?.stop();
    credentials.close();
    await database.drop();
  }
}

/** Without the real services: one instance in this process on PGlite and aedes. */
async function embeddedPhase(base: PlatformConfig, fleet: Fleet): Promise<PhaseResult> {
  const platform = await createPlatform(base);
  try {
    for (const meter of fleet.meters) await platform.provisionMeter(meter.id, `bench ${meter.id}`);
    const refusals: string[] = [];
    platform.ingest.on('refused', (r) => refusals.push(r.reason));
    const { seconds, timedSeconds } = await drive(platform.brokerUrl, fleet, (id) =>
      platform.meterMqttCredentials(id),
    );
    const held = await platform.db.query<{ n: number }>('SELECT count(*)::int AS n FROM records');
    if (held.rows[0].n !== fleet.records || refusals.length > 0) {
      throw new Error(
        `stored ${held.rows[0].n} of ${fleet.records} records; frames refused: ${refusals.join(', ') || 'none'}`,
      );
    }
    return { rate: timedRecords(fleet) / timedSeconds, coldRate: fleet.records / seconds };
  } finally {
    await platform.close();
  }
}

/**
 * COPY of the rows ingest writes (records and their decoded rows) into a fresh schema, in text
 * format or in binary (the rows ingest itself sends, from the same code): the warm-up's rows first,
 * untimed, then the rows ingest's clock counts, timed.
 */
interface CopyResult {
  rate: number;
  /** PostgreSQL's CPU per record, microseconds. */
  postgres: number;
}

async function copyPhase(fleet: Fleet, form: 'text' | 'binary'): Promise<CopyResult> {
  const database = await freshDatabase();
  try {
    const db = await openDatabase({ url: database.url, maxConnections: 1 });
    try {
      await migrate(db);
      await db.query(
        "INSERT INTO meters (id, name) SELECT id, 'bench ' || id FROM unnest($1::bigint[]) AS id",
        [fleet.meters.map((m) => m.id)],
      );
      const rowsOf = (part: Part) =>
        form === 'text' ? textCopy(fleet, part, database.url) : binaryCopy(fleet, part, db);
      const warm = await rowsOf('warm-up');
      try {
        await warm.write();
      } finally {
        await warm.close();
      }
      // Ready before the clock starts: the rows built, the connection made.
      const copy = await rowsOf('timed');
      try {
        const records = timedRecords(fleet);
        const postgresBefore = programCpu('postgres');
        const started = performance.now();
        await copy.write();
        const seconds = (performance.now() - started) / 1000;
        // Read before the connection closes: a backend that has exited is not counted.
        const postgres = (cpuSpent(postgresBefore, programCpu('postgres')) / records) * 1e6;
        const held = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM records');
        if (held.rows[0].n !== fleet.records) throw new Error(`COPY stored ${held.rows[0].n} records`);
        return { rate: records / seconds, postgres };
      } finally {
        await copy.close();
      }
    } finally {
      await db.close();
    }
  } finally {
    await database.drop();
  }
}

/** Each meter's records in its warm-up sets, or those after them. */
type Part = 'warm-up' | 'timed';

function partOf(fleet: Fleet, part: Part): { meter: TestMeter; index: number }[] {
  return fleet.meters.flatMap((meter) =>
    meter.records.flatMap((_, index) =>
      index < fleet.warmRecords === (part === 'warm-up') ? [{ meter, index }] : [],
    ),
  );
}

interface CopyRun {
  write(): Promise<void>;
  close(): Promise<void>;
}

/** The fleet's rows as COPY text, ready to send in one transaction on a connection of its own. */
async function textCopy(fleet: Fleet, part: Part, url: string): Promise<CopyRun> {
  const iso = (s: number) => new Date(s * 1000).toISOString();
  const hex = (b: Uint8Array) => `\\\\x${Buffer.from(b).toString('hex')}`;
  const records: string[] = [];
  const transactions: string[] = [];
  const operations: string[] = [];
  for (const { meter, index: i } of partOf(fleet, part)) {
    const bytes = meter.records[i];
    const r = decodeRecord(bytes);
    records.push(
      `${r.meterId}\t${r.seq}\t${r.kind}\t${iso(r.time)}\t${hex(bytes)}\t${hex(meter.links[i])}\n`,
    );
    if (r.kind === RecordKind.Transaction) {
      const d = r.data;
      transactions.push(
        `${r.meterId}\t${r.seq}\t${d.transactionNumber}\t${toHex(d.card.token)}\t${d.card.last4}\t${d.cardExpiry}\t${d.cardType}\t${d.bayId}\t${d.minutes}\t${iso(d.paidFrom)}\t${iso(d.paidUntil)}\t${d.charge}\t${d.currency}\t${d.remainingValue}\t${d.tariffRule ?? '\\N'}\t${iso(r.time)}\n`,
      );
    } else if (r.kind === RecordKind.Operation) {
      const d = r.data;
      operations.push(
        `${r.meterId}\t${r.seq}\t${d.code}\t${d.detail}\t${d.card ? toHex(d.card.token) : '\\N'}\t${d.card?.last4 ?? '\\N'}\n`,
      );
    }
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const copy = async (sql: string, lines: string[]) => {
    const chunks: Buffer[] = [];
    for (let i = 0; i < lines.length; i += 2000) chunks.push(Buffer.from(lines.slice(i, i + 2000).join('')));
    await pipeline(Readable.from(chunks), client.query(copyFrom(sql)));
  };
  return {
    async write() {
      await client.query('BEGIN');
      await copy('COPY records (meter_id, seq, kind, recorded_at, bytes, link) FROM STDIN', records);
      await copy(
        `COPY transactions (meter_id, seq, transaction_number, card_token, card_last4, card_expiry, card_type, bay_id,
           minutes, paid_from, paid_until, charge, currency, remaining_value, tariff_rule, recorded_at) FROM STDIN`,
        transactions,
      );
      await copy(
        'COPY operations (meter_id, seq, code, detail, card_token, card_last4) FROM STDIN',
        operations,
      );
      await client.query('COMMIT');
    },
    close: () => client.end(),
  };
}

/** The fleet's rows in binary, as ingest builds them (store.ts recordRows), sent in one transaction. */
function binaryCopy(fleet: Fleet, part: Part, db: Database): CopyRun {
  const stored = partOf(fleet, part).map(({ meter, index }) => ({
    record: decodeRecord(meter.records[index]),
    bytes: meter.records[index],
    link: meter.links[index],
  }));
  const { rows, refused } = recordRows([stored], 0);
  if (refused.size > 0)
    throw new Error(`the fleet's records do not fit their tables: ${[...refused.values()][0]}`);
  return {
    write: () =>
      db.transaction(async (tx) => {
        for (const table of rows) if (table.rowCount > 0) await tx.copyIn(table);
      }),
    async close() {},
  };
}

const format = (n: number) => Math.round(n).toLocaleString('en-GB');

export async function run(args: string[]): Promise<void> {
  const meterCount = Number(option(args, 'meters', '200'));
  const perMeter = Number(option(args, 'records', '1000'));
  const set = Number(option(args, 'set', '50'));
  const runs = Number(option(args, 'runs', '1'));
  if (!Number.isInteger(runs) || runs < 1)
    throw new RangeError(`--runs=${runs}: a whole number of runs, 1 or more`);
  const warmUp = Number(option(args, 'warm-up', '2'));
  const setsPerMeter = Math.ceil(perMeter / set);
  if (!Number.isInteger(warmUp) || warmUp < 0 || warmUp >= setsPerMeter)
    throw new RangeError(`--warm-up=${warmUp}: a whole number of sets per meter, 0 to ${setsPerMeter - 1}`);
  const instanceCounts = option(args, 'instances', '1,2').split(',').map(Number);
  // Connections per instance in the shared-subscription group (platform-server/ingest/gate.ts).
  const connections = option(args, 'connections', '1');
  // Extra node flags for the platform processes, e.g. --instance-flags="--cpu-prof --cpu-prof-dir=/tmp/p".
  const nodeFlags = option(args, 'instance-flags', '').split(' ').filter(Boolean);

  let realServices = true;
  try {
    await real.check();
  } catch (error) {
    realServices = false;
    console.log(`real services unavailable (${(error as Error).message}): embedded PGlite + aedes instead`);
  }
  const base: PlatformConfig = {
    phone: { gateway: false, paymentProvider: new PaymentSimulator() },
    httpLogger: false,
    logger: silent,
    masterKey: MASTER_KEY,
  };

  // The keys the platform derives from its master key, so the frames are sealed once for every phase.
  const keyring = await createPlatform(base);
  let fleet: Fleet;
  const built = performance.now();
  try {
    const cardTokenKey = deriveCardTokenKey(nodeCrypto, keyring.keystore);
    fleet = buildFleet(
      (id) => ({ ...keyring.keystore.meterKeys(id, 1), cardTokenKey }),
      meterCount,
      perMeter,
      set,
      warmUp,
    );
  } finally {
    await keyring.close();
  }
  const frames = fleet.frames.reduce((n, f) => n + f.length, 0);
  console.log(
    `fleet: ${meterCount} meters × ${perMeter} records = ${format(fleet.records)} records in ${format(frames)} sets of ≤${set}` +
      ` (built in ${((performance.now() - built) / 1000).toFixed(1)} s); the first ${warmUp} set(s) of each meter` +
      ` (${format(fleet.records - timedRecords(fleet))} records) untimed; ` +
      (realServices
        ? `PostgreSQL 127.0.0.1:5432 + Mosquitto 127.0.0.1:1883, ${connections} connection(s) per instance`
        : 'PGlite + aedes'),
  );

  // Ingest's figure moves by 10 % and more from run to run on a small machine, and COPY's as much
  // (a shared virtual machine has slow minutes): each run is ingest for every instance count, then
  // one COPY of each form right after, so each ratio compares neighbouring minutes. --runs=N repeats
  // that and holds the median ingest to the median COPY; COPY runs at least three times.
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];
  const counts = realServices ? instanceCounts : [1];
  const ingestRuns = new Map(counts.map((n) => [n, [] as PhaseResult[]]));
  const copyRuns = { text: [] as CopyResult[], binary: [] as CopyResult[] };
  const perRunRatios = new Map(counts.map((n) => [n, [] as number[]]));
  const plural = (n: number) => `${n} instance${n > 1 ? 's' : ''}`;
  for (let run = 1; run <= Math.max(runs, realServices ? 3 : 1); run++) {
    const which = runs > 1 ? ` run ${run} of ${runs}` : '';
    const ingested = new Map<number, PhaseResult>();
    if (run <= runs) {
      for (const n of counts) {
        const result = realServices
          ? await realPhase(n, fleet, connections, nodeFlags)
          : await embeddedPhase(base, fleet);
        ingestRuns.get(n)?.push(result);
        ingested.set(n, result);
        const cpu =
          result.cpuPerRecord === undefined
            ? ''
            : ` (platform CPU ${result.cpuPerRecord.toFixed(1)} µs per record)`;
        console.log(
          `ingest, ${plural(n)}${which}: ${format(result.rate)} verified records/s${cpu}; ` +
            `${format(result.coldRate)} records/s with the warm-up counted`,
        );
        if (result.others && result.cpuPerRecord !== undefined) {
          const { postgres, mosquitto, generator } = result.others;
          const total = result.cpuPerRecord + postgres + mosquitto + generator;
          // Every process of these programs on the machine: quiet it for these to be the run's alone.
          console.log(
            `  CPU per record: platform ${result.cpuPerRecord.toFixed(1)} µs, PostgreSQL ${postgres.toFixed(1)} µs, ` +
              `Mosquitto ${mosquitto.toFixed(1)} µs, this load generator ${generator.toFixed(1)} µs; ` +
              `${total.toFixed(1)} µs in all (${(total * result.rate * 1e-6).toFixed(2)} cores busy)`,
          );
        }
      }
    }
    if (!realServices) break;
    // COPY after a CHECKPOINT, into a fresh database each time.
    let fastest = 0;
    for (const form of ['text', 'binary'] as const) {
      await checkpoint();
      const copied = await copyPhase(fleet, form);
      copyRuns[form].push(copied);
      fastest = Math.max(fastest, copied.rate);
      console.log(
        `PostgreSQL COPY of the same rows, ${form}, run ${run}: ${format(copied.rate)} records/s; ` +
          `PostgreSQL CPU ${copied.postgres.toFixed(1)} µs per record`,
      );
    }
    for (const [n, result] of ingested) {
      const ratio = result.rate / fastest;
      perRunRatios.get(n)?.push(ratio);
      console.log(`  this run's ratio ingest/COPY (the faster form), ${plural(n)}: ${ratio.toFixed(2)}`);
    }
  }
  const medians = new Map(
    counts.map((n) => {
      const results = ingestRuns.get(n) ?? [];
      return [
        n,
        { rate: median(results.map((r) => r.rate)), coldRate: median(results.map((r) => r.coldRate)) },
      ];
    }),
  );
  for (const [n, { rate, coldRate }] of medians) {
    if (runs > 1)
      console.log(
        `ingest, ${plural(n)}, median of ${runs}: ${format(rate)} verified records/s; ` +
          `${format(coldRate)} with the warm-up counted`,
      );
  }
  if (!realServices) {
    console.log('COPY: not measured (needs the real PostgreSQL)');
    return;
  }
  const copyMedians = (['text', 'binary'] as const).map((form) => {
    const rates = copyRuns[form].map((c) => c.rate);
    const middle = median(rates);
    const postgres = copyRuns[form].find((c) => c.rate === middle)?.postgres ?? 0;
    console.log(
      `PostgreSQL COPY of the same rows, ${form}: ${format(middle)} records/s (median of ${rates.length}: ` +
        `${[...rates]
          .sort((a, b) => a - b)
          .map(format)
          .join(', ')}); PostgreSQL CPU ${postgres.toFixed(1)} µs per record`,
    );
    return middle;
  });
  const copy = Math.max(...copyMedians);
  for (const [n, { rate, coldRate }] of medians) {
    const paired = perRunRatios.get(n) ?? [];
    console.log(
      `ratio ingest/COPY (the faster form), ${plural(n)}: ${(rate / copy).toFixed(2)}; ` +
        `${(coldRate / copy).toFixed(2)} with the warm-up counted` +
        (paired.length > 1 ? `; run by run ${paired.map((r) => r.toFixed(2)).join(', ')}` : ''),
    );
  }
}
