// A city's fleet against one platform instance: N protocol-level meters (sim/fleet/loadMeter.ts),
// each on its own MQTT connection under its own credentials, sending status reports at their interval
// and upload sets at a tap rate, drivers renewing by phone at a set rate, an operator's console
// watching the live fleet feed. Real PostgreSQL and a Mosquitto of its own (the deployment's password
// file and ACL) with the platform in its own process, as deployed; figures from /proc and the clock.
// Used by `npm run bench -- fleet` (sizes of a city) and by a test (a slice of it).
import http from 'node:http';
import path from 'node:path';
import pg from 'pg';
import { BrokerCredentials, mosquittoPasswordFile } from '../../platform-server/core/brokerAuth';
import { migrate } from '../../platform-server/core/migrations';
import { openDatabase } from '../../platform-server/core/db';
import { nodeCrypto } from '../../platform-server/core/nodeCrypto';
import { deriveCardTokenKey } from '../../platform-server/keys/cardToken';
import { loadKeystore } from '../../platform-server/keys/keystore';
import type { HeapProbeAnswer } from './heapProbe';
import { LoadMeter } from './loadMeter';
import {
  type Broker,
  cpuSeconds,
  freshDatabase,
  type Instance,
  instanceHeap,
  residentBytes,
  startInstance,
  startMosquitto,
  stopInstance,
} from './processes';
import { withCheckDigit } from './cards';

export interface FleetRunOptions {
  meters: number;
  /** Bays per meter. */
  bays: number;
  /** Length of the city's window, seconds of wall clock. */
  seconds: number;
  /** Simulated seconds per second: 1 is a city's real load; more compresses the day. */
  speed: number;
  /** A meter's status report period, simulated seconds (15 min in the street). */
  statusSeconds: number;
  /** Sales per meter per simulated day. */
  tapsPerDay: number;
  /** Sales per upload set. */
  setEvery: number;
  /** Phone renewals per second (wall clock) during the evening peak that follows, and its length. */
  renewalsPerSecond: number;
  renewalSeconds: number;
  drivers: number;
  /** Meters connecting per second while the fleet comes up. */
  connectPerSecond: number;
  log(line: string): void;
}

export const CITY: Omit<FleetRunOptions, 'log'> = {
  meters: 10_000,
  bays: 4,
  seconds: 120,
  speed: 1,
  statusSeconds: 900,
  tapsPerDay: 50,
  setEvery: 10,
  renewalsPerSecond: 100,
  renewalSeconds: 30,
  drivers: 200,
  connectPerSecond: 1000,
};

export interface Percentiles {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface WindowFigures {
  seconds: number;
  /** CPU during the window, in cores (1 = one core busy all the time). */
  platformCores: number;
  brokerCores: number;
}

export interface FleetRunResult {
  metersConnected: number;
  /** Meters still connected at the end of the window. */
  connectionsHeld: number;
  statusSent: number;
  setsSent: number;
  recordsSent: number;
  recordsStored: number;
  /** Every meter uploading what it held at once after the windows: how long, sets sealed again, whether all got through. */
  drained: { seconds: number; resent: number; complete: boolean };
  /** Records the meters hold acknowledged by the platform (after the drain). */
  recordsAcknowledged: number;
  /** Status reports stored by the platform (fleet room) during the run. */
  statusStored: number;
  /** Resident memory before the fleet connected and at the end of the window, bytes. */
  brokerBytes: { before: number; after: number };
  platformBytes: { before: number; after: number };
  /**
   * The platform's heap after a full collection, at the same two moments (and their heap snapshots'
   * files, with BENCH_HEAP_DIR=<dir>).
   */
  platformHeap: { before: HeapProbeAnswer; after: HeapProbeAnswer };
  /** The city's load alone, then with the renewals of an evening peak on top. */
  city: WindowFigures;
  peak: WindowFigures;
  /** Publish of a set in the windows → its ack at the meter, ms. */
  ackLatency: Percentiles;
  /** Publish of a status report → the meter's row in the console's live feed, ms. */
  feedLatency: Percentiles;
  /** Driver's extend request → the 202 answer, and → the renewal frame at the meter, ms. */
  renewalAnswer: Percentiles;
  renewalAtMeter: Percentiles;
  renewalsRequested: number;
  renewalsRefused: Record<string, number>;
  renewalsApplied: number;
  badDownlinks: number;
}

const MASTER_KEY = '6b'.repeat(32);
const FIRST_METER = 8_000_000;
const ADMIN = { username: 'bench-admin', password: 'bench admin password 1' };

export function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { count: 0, p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
  return { count: sorted.length, p50: at(50), p99: at(99), max: sorted[sorted.length - 1] };
}

/** A JSON request to the platform, from `localAddress` (a driver's own address on loopback). */
async function request<T>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
  localAddress?: string,
): Promise<{ status: number; body: T }> {
  const url = new URL(path, base);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method,
        agent: requestAgent,
        ...(localAddress ? { localAddress } : {}),
        headers: {
          ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: (text ? JSON.parse(text) : undefined) as T });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
const requestAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/** Reads the console's fleet feed (server-sent events); calls `onRows` with each update's meter ids. */
function watchFeed(base: string, token: string, onRows: (ids: number[]) => void): () => void {
  const req = http.request(new URL('/api/console/fleet/events', base), {
    headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
  });
  req.on('response', (res) => {
    let buffer = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!event.startsWith('event: update')) continue;
        const data = event.slice(event.indexOf('data: ') + 6);
        onRows((JSON.parse(data) as { meters: { id: number }[] }).meters.map((m) => m.id));
      }
    });
  });
  req.on('error', () => {});
  req.end();
  return () => req.destroy();
}

export async function runFleet(options: FleetRunOptions): Promise<FleetRunResult> {
  const { log } = options;
  const keystore = await loadKeystore({ masterKey: MASTER_KEY });
  const credentials = new BrokerCredentials(keystore);
  const cardTokenKey = deriveCardTokenKey(nodeCrypto, keystore);
  const ids = Array.from({ length: options.meters }, (_, i) => FIRST_METER + i);
  const database = await freshDatabase();
  let broker: Broker | undefined;
  let instance: Instance | undefined;
  const meters: LoadMeter[] = [];
  let stopFeed = () => {};
  try {
    const db = await openDatabase({ url: database.url, maxConnections: 1 });
    try {
      await migrate(db);
      await db.query(
        "INSERT INTO meters (id, name, key_epoch) SELECT id, 'load ' || id, 1 FROM unnest($1::bigint[]) AS id",
        [ids],
      );
    } finally {
      await db.close();
    }
    broker = await startMosquitto(mosquittoPasswordFile(credentials, ids));
    const brokerBefore = residentBytes(broker.pid);
    instance = await startInstance(
      {
        DATABASE_URL: database.url,
        MQTT_URL: broker.url,
        PARKLINK_MASTER_KEY: MASTER_KEY,
        // Renewals are paid with the payment simulator: a load run, no money moves.
        PARKLINK_DEMO: '1',
        PARKLINK_ADMIN_USER: ADMIN.username,
        PARKLINK_ADMIN_PASSWORD: ADMIN.password,
        PORT: '0',
        LOG_LEVEL: 'warn',
      },
      [],
      { heapProbe: true },
    );
    const platformPid = instance.child.pid as number;
    const base = instance.http;
    const platformBefore = residentBytes(platformPid);
    const heapDir = process.env.BENCH_HEAP_DIR;
    const heapBefore = await instanceHeap(
      instance,
      heapDir && path.join(heapDir, 'platform-before.heapsnapshot'),
    );

    const ackLatencies: number[] = [];
    let windowsStart = Number.POSITIVE_INFINITY;
    let windowsEnd = Number.POSITIVE_INFINITY;
    let badDownlinks = 0;
    // A renewal's frame can reach the meter before the driver's answer names its id: either side
    // waits for the other in these maps.
    const renewalSentAt = new Map<string, number>();
    const renewalReachedAt = new Map<string, number>();
    const renewalAtMeter: number[] = [];
    const events = {
      // Sets published in the windows only: the drain's flush of every meter's last records at once
      // is not a load a city makes.
      onAck: (_m: LoadMeter, ms: number) => {
        const publishedAt = performance.now() - ms;
        if (publishedAt >= windowsStart && publishedAt <= windowsEnd) ackLatencies.push(ms);
      },
      onRenewal: (_m: LoadMeter, id: string) => {
        const sent = renewalSentAt.get(id);
        if (sent === undefined) renewalReachedAt.set(id, performance.now());
        else {
          renewalAtMeter.push(performance.now() - sent);
          renewalSentAt.delete(id);
        }
      },
      onBadDownlink: () => badDownlinks++,
    };

    // The fleet comes up at connectPerSecond.
    const connectStarted = performance.now();
    const batch = Math.max(1, Math.round(options.connectPerSecond / 10));
    for (let i = 0; i < ids.length; i += batch) {
      const slice = ids.slice(i, i + batch);
      const tick = new Promise((r) => setTimeout(r, 100));
      await Promise.all(
        slice.map(async (id) => {
          const meter = new LoadMeter(
            id,
            { ...keystore.meterKeys(id, 1), cardTokenKey },
            options.bays,
            events,
          );
          await meter.connect(broker!.url, {
            username: BrokerCredentials.meterUser(id),
            password: credentials.meterPassword(id),
          });
          meters.push(meter);
        }),
      );
      await tick;
    }
    log(
      `${meters.length} meters connected in ${((performance.now() - connectStarted) / 1000).toFixed(1)} s, each under its own credentials`,
    );

    // Drivers: registered from addresses of their own (the registration limit is per address),
    // a card each, paired with a bay by a first tap at their meter.
    const login = await request<{ token: string }>(base, 'POST', '/api/operators/login', ADMIN);
    if (login.status !== 200) throw new Error(`operator login answered ${login.status}`);
    if (options.drivers > meters.length) throw new RangeError('at most one renewing driver per meter');
    if (options.drivers > 0 && options.bays < 2)
      throw new RangeError('renewing drivers need two bays per meter');
    const drivers: { token: string; session: number; localAddress: string; busy: boolean }[] = [];
    const driverStarted = performance.now();
    for (let d = 0; d < options.drivers; d++) {
      const localAddress = `127.0.${1 + Math.floor(d / 15)}.${1 + (d % 15)}`;
      const registered = await request<{ token: string }>(
        base,
        'POST',
        '/api/driver/register',
        {
          name: `Load driver ${d}`,
          phone: `+4477009${String(d).padStart(5, '0')}`,
          email: `load${d}@bench.invalid`,
          password: 'load driver password',
        },
        undefined,
        localAddress,
      );
      if (registered.status !== 201)
        throw new Error(
          `driver registration answered ${registered.status} ${JSON.stringify(registered.body)}`,
        );
      const cardNumber = `4000${String(d).padStart(11, '0')}`;
      const card = await request(
        base,
        'POST',
        '/api/driver/cards',
        { cardNumber: withCheckDigit(cardNumber) },
        registered.body.token,
      );
      if (card.status !== 201)
        throw new Error(`adding a card answered ${card.status} ${JSON.stringify(card.body)}`);
      const meter = meters[d % meters.length];
      meter.tap(Date.now(), 1, withCheckDigit(cardNumber), options.bays);
      drivers.push({ token: registered.body.token, session: 0, localAddress, busy: false });
    }
    // The taps' sets are stored and paired: each driver has a session.
    const pairDeadline = Date.now() + 60_000;
    for (const driver of drivers) {
      while (driver.session === 0) {
        const sessions = await request<{ sessions: { id: number }[] }>(
          base,
          'GET',
          '/api/driver/sessions',
          undefined,
          driver.token,
        );
        if (sessions.body?.sessions?.[0]) driver.session = sessions.body.sessions[0].id;
        else if (Date.now() > pairDeadline) throw new Error('a driver was not paired within 60 s of the tap');
        else await new Promise((r) => setTimeout(r, 200));
      }
    }
    if (drivers.length > 0)
      log(
        `${drivers.length} drivers registered, a card each, paired by a tap in ${((performance.now() - driverStarted) / 1000).toFixed(1)} s`,
      );

    // The window: every meter on its schedule, renewals at their rate, the console watching.
    const feedLatencies: number[] = [];
    const statusPublishedAt = new Map<number, number>();
    stopFeed = watchFeed(base, login.body.token, (rowIds) => {
      const now = performance.now();
      for (const id of rowIds) {
        const at = statusPublishedAt.get(id);
        if (at !== undefined) {
          feedLatencies.push(now - at);
          statusPublishedAt.delete(id);
        }
      }
    });
    await new Promise((r) => setTimeout(r, 1000)); // the snapshot first

    const statusEvery = (options.statusSeconds / options.speed) * 1000;
    const tapEvery = (86_400 / options.tapsPerDay / options.speed) * 1000;
    const started = performance.now();
    const nextStatus = meters.map(() => started + Math.random() * statusEvery);
    const nextTap = meters.map(() => started - Math.log(1 - Math.random()) * tapEvery);
    let statusSent = 0;
    let taps = 0;
    const setsBefore = meters.reduce((n, m) => n + m.setsPublished, 0);
    const renewalAnswers: number[] = [];
    const renewalsRefused: Record<string, number> = {};
    let renewalsRequested = 0;
    let nextRenewal = 0;
    let driverCursor = 0;
    const pendingRenewals: Promise<void>[] = [];

    const renew = async (driver: (typeof drivers)[number]) => {
      driver.busy = true;
      const sentAt = performance.now();
      renewalsRequested++;
      try {
        const answer = await request<{ renewal?: { id: string }; code?: string }>(
          base,
          'POST',
          `/api/driver/sessions/${driver.session}/extend`,
          { minutes: 5 },
          driver.token,
        );
        renewalAnswers.push(performance.now() - sentAt);
        if (answer.status === 202 && answer.body.renewal) {
          const id = answer.body.renewal.id;
          const reached = renewalReachedAt.get(id);
          if (reached === undefined) renewalSentAt.set(id, sentAt);
          else {
            renewalAtMeter.push(reached - sentAt);
            renewalReachedAt.delete(id);
          }
        } else {
          const why = `${answer.status} ${answer.body?.code ?? ''}`.trim();
          renewalsRefused[why] = (renewalsRefused[why] ?? 0) + 1;
        }
      } finally {
        // One renewal per driver on its way at a time, as the platform allows.
        setTimeout(() => {
          driver.busy = false;
        }, 500);
      }
    };

    /** Runs the fleet's schedule for `seconds`, renewals at `renewalsPerSecond`; the CPU it cost. */
    const runWindow = async (seconds: number, renewalsPerSecond: number): Promise<WindowFigures> => {
      const from = performance.now();
      const cpuBefore = cpuSeconds(platformPid);
      const brokerCpuBefore = cpuSeconds(broker!.pid);
      const until = from + seconds * 1000;
      const renewalInterval = renewalsPerSecond > 0 ? 1000 / renewalsPerSecond : Number.POSITIVE_INFINITY;
      nextRenewal = from;
      while (performance.now() < until) {
        const now = performance.now();
        for (let i = 0; i < meters.length; i++) {
          if (nextStatus[i] <= now) {
            meters[i].status(Date.now(), (bay) => (meters[i].id + bay + Math.floor(now / 60_000)) % 3 === 0);
            statusPublishedAt.set(meters[i].id, now);
            statusSent++;
            nextStatus[i] += statusEvery;
          }
          while (nextTap[i] <= now) {
            meters[i].tap(Date.now(), options.setEvery);
            taps++;
            nextTap[i] += -Math.log(1 - Math.random()) * tapEvery;
          }
        }
        while (nextRenewal <= now && drivers.length > 0) {
          nextRenewal += renewalInterval;
          for (let k = 0; k < drivers.length; k++) {
            const driver = drivers[driverCursor++ % drivers.length];
            if (driver.busy) continue;
            pendingRenewals.push(renew(driver));
            break;
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      const elapsed = (performance.now() - from) / 1000;
      return {
        seconds: elapsed,
        platformCores: (cpuSeconds(platformPid) - cpuBefore) / elapsed,
        brokerCores: (cpuSeconds(broker!.pid) - brokerCpuBefore) / elapsed,
      };
    };

    // The day so far: each meter holds some of its next set's sales already, so sets go all through
    // the window instead of after the first setEvery taps of every meter.
    for (const meter of meters) {
      const held = Math.floor(Math.random() * options.setEvery);
      for (let k = 0; k < held; k++) meter.tap(Date.now(), Number.POSITIVE_INFINITY);
    }
    windowsStart = performance.now();
    const city = await runWindow(options.seconds, 0);
    log(`city load: ${city.seconds.toFixed(1)} s, ${taps} taps, ${statusSent} status reports`);
    const peak = await runWindow(options.renewalSeconds, options.renewalsPerSecond);
    log(`evening peak: ${peak.seconds.toFixed(1)} s, the same with ${renewalsRequested} renewals`);
    windowsEnd = performance.now();
    const connectionsHeld = meters.filter((m) => m.connected).length;
    const platformAfter = residentBytes(platformPid);
    const brokerAfter = residentBytes(broker.pid);
    const heapAfter = await instanceHeap(
      instance,
      heapDir && path.join(heapDir, 'platform-after.heapsnapshot'),
    );

    // Drain: every meter uploads what it holds at once (as after a network outage), sealing again a
    // set not acknowledged in time as the firmware does (10 s, then backing off); every renewal answered.
    await Promise.all(pendingRenewals);
    const drainStarted = performance.now();
    const drainDeadline = drainStarted + 300_000;
    let resent = 0;
    while (
      meters.some((m) => m.setsInFlight > 0 || m.recordsWaiting > 0) &&
      performance.now() < drainDeadline
    ) {
      for (const meter of meters) {
        resent += meter.resendUnacknowledged();
        meter.flush();
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const drained = {
      seconds: (performance.now() - drainStarted) / 1000,
      resent,
      complete: !meters.some((m) => m.setsInFlight > 0 || m.recordsWaiting > 0),
    };
    await new Promise((r) => setTimeout(r, 1000));

    const check = new pg.Client({ connectionString: database.url });
    await check.connect();
    let recordsStored: number;
    let statusStored: number;
    let renewalsApplied: number;
    try {
      recordsStored = (await check.query<{ n: number }>('SELECT count(*)::int AS n FROM records')).rows[0].n;
      statusStored = (await check.query<{ n: number }>('SELECT count(*)::int AS n FROM meter_status_history'))
        .rows[0].n;
      renewalsApplied = (
        await check.query<{ n: number }>("SELECT count(*)::int AS n FROM renewals WHERE status = 'applied'")
      ).rows[0].n;
    } finally {
      await check.end();
    }
    return {
      metersConnected: meters.length,
      connectionsHeld,
      statusSent,
      setsSent: meters.reduce((n, m) => n + m.setsPublished, 0) - setsBefore,
      recordsSent: meters.reduce((n, m) => n + m.chain.records.length, 0),
      recordsStored,
      recordsAcknowledged: meters.reduce((n, m) => n + m.acknowledged, 0),
      drained,
      statusStored,
      brokerBytes: { before: brokerBefore, after: brokerAfter },
      platformBytes: { before: platformBefore, after: platformAfter },
      platformHeap: { before: heapBefore, after: heapAfter },
      city,
      peak,
      ackLatency: percentiles(ackLatencies),
      feedLatency: percentiles(feedLatencies),
      renewalAnswer: percentiles(renewalAnswers),
      renewalAtMeter: percentiles(renewalAtMeter),
      renewalsRequested,
      renewalsRefused,
      renewalsApplied,
      badDownlinks,
    };
  } finally {
    stopFeed();
    await Promise.all(meters.map((m) => m.end()));
    requestAgent.destroy();
    if (instance) await stopInstance(instance);
    await broker?.stop();
    await database.drop();
    credentials.close();
    keystore.close();
  }
}
