// Shared by the platform tests: a meter played with the protocol functions, the two backends
// (embedded PGlite + aedes; real PostgreSQL + Mosquitto), a capturing logger, event waits, and
// operators logged in with a given role for the operator routes.
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import mqtt from 'mqtt';
import pg from 'pg';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { chainLink, genesisHash } from '../../protocol/chain';
import { FRAME_VERSION, FrameType, type FrameHeader, openFrame, sealFrame } from '../../protocol/frame';
import type { MeterKeys } from '../../protocol/keys';
import { type AckMessage, decodeAckMessage, encodeRecordsMessage } from '../../protocol/messages';
import { type CardRef, cardRef } from '../../protocol/cardToken';
import { encodeRecord, type MeterRecord, RecordKind, type TransactionData } from '../../protocol/records';
import type { Logger } from '../../platform-server/ingest/gate';
import type { Operators, Role } from '../../platform-server/operators/service';
import { pgliteSnapshot } from '../../platform-server/core/db';
import { migrate } from '../../platform-server/core/migrations';
import { createPlatform, type Platform } from '../../platform-server/platform';
import type { PlatformConfig } from '../../platform-server/config';
import { PaymentSimulator } from '../../platform-server/payments/simulator';

export { crypto };

export interface OperatorLogin {
  username: string;
  /** For inject(): the session's bearer token. */
  headers: { authorization: string };
}

/**
 * Creates an operator with `role` (a fresh username) and logs it in: the headers that let
 * inject() through requireRole.
 */
export async function operatorLogin(operators: Operators, role: Role = 'admin'): Promise<OperatorLogin> {
  const username = `${role}-${randomBytes(4).toString('hex')}`;
  const password = randomBytes(16).toString('base64url');
  await operators.create({ username, role, password }, { id: null, username: 'test-setup' });
  const { token } = await operators.login(username, password);
  return { username, headers: { authorization: `Bearer ${token}` } };
}

/** A meter id unlikely to collide with another run on a shared broker. */
export function randomMeterId(): number {
  return 1_000_000 + (randomBytes(4).readUInt32BE(0) % 3_000_000_000);
}

export interface FrameOptions {
  /** Frame sequence number (default: the next one). */
  seq?: number;
  epoch?: number;
  key?: Uint8Array;
  headerMeterId?: number;
  type?: number;
  previous?: Uint8Array;
  /** Record bytes to send instead of the meter's own. */
  records?: Uint8Array[];
  /** Raw body instead of a records message. */
  body?: Uint8Array;
}

/** Plays a meter: its records, their chain links and its uplink frame sequence, built as the firmware does. */
export class TestMeter {
  readonly records: Uint8Array[] = [];
  readonly links: Uint8Array[] = [];
  frameSeq = 0;
  private transactionNumber = 0;

  /** `keys.cardTokenKey` (platform.provisionMeter gives it) tokenises the cards of its records. */
  constructor(
    readonly id: number,
    readonly keys: MeterKeys & { cardTokenKey?: Uint8Array },
  ) {}

  /** A card number as this meter's records carry it: token and last four digits. */
  card(cardNumber: string): CardRef {
    if (!this.keys.cardTokenKey) throw new Error('this test meter has no card-token key');
    return cardRef(crypto, this.keys.cardTokenKey, cardNumber);
  }

  get nextSeq(): number {
    return this.records.length + 1;
  }

  /** The chain link after record `seq` (genesis for 0). */
  link(seq: number): Uint8Array {
    return seq === 0 ? genesisHash(crypto, this.id) : this.links[seq - 1];
  }

  bytes(seq: number): Uint8Array {
    return this.records[seq - 1];
  }

  append(record: MeterRecord): Uint8Array {
    if (record.seq !== this.nextSeq) throw new Error(`record seq ${record.seq} is not ${this.nextSeq}`);
    const bytes = encodeRecord(record);
    this.links.push(chainLink(crypto, this.link(record.seq - 1), bytes));
    this.records.push(bytes);
    return bytes;
  }

  /** A sale; `cardNumber` (default 6280000000000017) is tokenised unless `card` is given. */
  transaction(
    { cardNumber, ...data }: Partial<TransactionData> & { cardNumber?: string } = {},
    time = 1_767_600_000 + this.nextSeq * 60,
  ): MeterRecord {
    const minutes = data.minutes ?? 30;
    const record: MeterRecord = {
      kind: RecordKind.Transaction,
      seq: this.nextSeq,
      time,
      meterId: this.id,
      data: {
        transactionNumber: ++this.transactionNumber,
        card: data.card ?? this.card(cardNumber ?? '6280000000000017'),
        cardExpiry: '2812',
        cardType: 1,
        bayId: 1 + (this.nextSeq % 4),
        minutes,
        paidFrom: time,
        paidUntil: time + minutes * 60,
        charge: minutes * 4,
        currency: 826,
        remainingValue: 5000 - this.nextSeq * 120,
        ...data,
      },
    };
    this.append(record);
    return record;
  }

  operation(
    code = 'card-refused',
    detail = 'blacklisted',
    cardNumber: string | null = '6280000000000099',
    time = 1_767_600_000 + this.nextSeq * 60,
  ): MeterRecord {
    const record: MeterRecord = {
      kind: RecordKind.Operation,
      seq: this.nextSeq,
      time,
      meterId: this.id,
      data: { code, detail, card: cardNumber === null ? null : this.card(cardNumber) },
    };
    this.append(record);
    return record;
  }

  /** Appends `count` transactions; returns the range. */
  transactions(count: number): { from: number; to: number } {
    const from = this.nextSeq;
    for (let i = 0; i < count; i++) this.transaction();
    return { from, to: this.nextSeq - 1 };
  }

  /** An uplink frame carrying records from..to (inclusive) of this meter. */
  frame(from: number, to: number, options: FrameOptions = {}): Uint8Array {
    const header: FrameHeader = {
      version: FRAME_VERSION,
      type: options.type ?? FrameType.Records,
      meterId: options.headerMeterId ?? this.id,
      epoch: options.epoch ?? this.keys.epoch,
      seq: options.seq ?? ++this.frameSeq,
    };
    if (options.seq !== undefined) this.frameSeq = Math.max(this.frameSeq, options.seq);
    const body =
      options.body ??
      encodeRecordsMessage({
        previous: options.previous ?? this.link(from - 1),
        records: options.records ?? this.records.slice(from - 1, to),
      });
    return sealFrame(crypto, options.key ?? this.keys.uplink, header, body);
  }

  /** Opens an ack downlink with this meter's downlink key. */
  openAck(frame: Uint8Array): { header: FrameHeader; ack: AckMessage } {
    const { header, body } = openFrame(crypto, this.keys.downlink, frame);
    return { header, ack: decodeAckMessage(body) };
  }
}

export interface LogEntry {
  level: 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg?: string;
}

export class CapturingLogger implements Logger {
  readonly entries: LogEntry[] = [];
  info(obj: object, msg?: string) {
    this.entries.push({ level: 'info', obj: obj as Record<string, unknown>, msg });
  }
  warn(obj: object, msg?: string) {
    this.entries.push({ level: 'warn', obj: obj as Record<string, unknown>, msg });
  }
  error(obj: object, msg?: string) {
    this.entries.push({ level: 'error', obj: obj as Record<string, unknown>, msg });
  }
  refusals(meterId?: number): LogEntry[] {
    return this.entries.filter(
      (e) => e.msg === 'uplink refused' && (meterId === undefined || e.obj.meterId === meterId),
    );
  }
}

/** Resolves with the first `event` whose arguments satisfy `match`; rejects after `ms`. */
export function waitForEvent<T>(
  emitter: EventEmitter,
  event: string,
  match: (value: T) => boolean,
  ms = 10_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`no matching '${event}' event within ${ms} ms`));
    }, ms);
    const listener = (value: T) => {
      if (!match(value)) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(value);
    };
    emitter.on(event, listener);
  });
}

// ---- Backends ---------------------------------------------------------------------------------

export const CI = process.env.CI === 'true';
export const ADMIN_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const TEST_MQTT_URL = process.env.TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';

export interface Backend {
  name: string;
  real: boolean;
  /** Checks the services answer; throws with the reason when one does not. */
  check(): Promise<void>;
  /** A fresh, empty database (and the broker) for one platform or several sharing it. */
  fresh(): Promise<{ config: PlatformConfig; drop(): Promise<void> }>;
}

/** The SMS and voice gateway's secret in tests (the platform refuses to start without one). */
export const TEST_GATEWAY_SECRET = 'test gateway secret, never deployed';

/**
 * A migrated PGlite cluster, made once per process: each embedded platform starts from a copy of
 * it instead of running initdb and the migrations again (its own start finds them applied).
 */
let migratedCluster: Promise<Blob> | undefined;

export const embedded: Backend = {
  name: 'embedded (PGlite + aedes)',
  real: false,
  async check() {},
  async fresh() {
    migratedCluster ??= pgliteSnapshot(async (db) => {
      await migrate(db);
    });
    // A failed set-up is not kept: the next platform tries again.
    migratedCluster.catch(() => {
      migratedCluster = undefined;
    });
    return {
      config: {
        pgliteSnapshot: await migratedCluster,
        phone: { gatewaySecret: TEST_GATEWAY_SECRET, paymentProvider: new PaymentSimulator() },
      },
      drop: async () => {},
    };
  },
};

export const real: Backend = {
  name: 'real (PostgreSQL + Mosquitto)',
  real: true,
  async check() {
    const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
    } catch (error) {
      throw new Error(
        `PostgreSQL at ${redact(ADMIN_DATABASE_URL)} does not answer: ${(error as Error).message}`,
      );
    } finally {
      await client.end().catch(() => {});
    }
    try {
      const probe = await mqtt.connectAsync(TEST_MQTT_URL, {
        connectTimeout: 3000,
        reconnectPeriod: 0,
        clientId: `parklink-probe-${randomBytes(4).toString('hex')}`,
      });
      await probe.endAsync();
    } catch (error) {
      throw new Error(`MQTT broker at ${TEST_MQTT_URL} does not answer: ${(error as Error).message}`);
    }
  },
  async fresh() {
    const name = `parklink_test_${randomBytes(6).toString('hex')}`;
    await adminQuery(`CREATE DATABASE ${name}`);
    const url = new URL(ADMIN_DATABASE_URL);
    url.pathname = `/${name}`;
    return {
      config: {
        databaseUrl: url.toString(),
        mqttUrl: TEST_MQTT_URL,
        shareGroup: `test-${name}`,
        phone: { gatewaySecret: TEST_GATEWAY_SECRET, paymentProvider: new PaymentSimulator() },
      },
      drop: () => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
    };
  },
};

/** A statement on the real server's administrative database (create or drop a database, a checkpoint). */
export async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function redact(url: string) {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

/**
 * For a suite that needs the real PostgreSQL and MQTT broker: under CI=true a missing service fails
 * it; otherwise it is skipped with the reason.
 */
export async function requireRealServices(context: Mocha.Context): Promise<void> {
  try {
    await real.check();
  } catch (error) {
    if (CI) throw new Error(`CI=true and a service is missing: ${(error as Error).message}`);
    console.log(`      skipped: ${(error as Error).message} (set CI=true to make this a failure)`);
    context.skip();
  }
}

/**
 * Runs `suite` once per backend. The real backend always runs under CI=true (a missing service
 * fails the suite); otherwise it runs only when its services answer and is skipped with the reason.
 */
export function forEachBackend(title: string, suite: (backend: Backend) => void): void {
  for (const backend of [embedded, real]) {
    describe(`${title} — ${backend.name}`, () => {
      before(async function () {
        if (backend.real) await requireRealServices(this);
      });
      suite(backend);
    });
  }
}

/** A logger that keeps nothing. */
export const quietLogger = { info() {}, warn() {}, error() {} };

/**
 * A platform on a fresh database of `backend`, with quiet logs and `config` on top; `drop` removes
 * the database once the platform is closed.
 */
export async function startPlatform(
  backend: Backend,
  config: Partial<PlatformConfig> = {},
): Promise<{ platform: Platform; drop: () => Promise<void> }> {
  const fresh = await backend.fresh();
  try {
    const platform = await createPlatform({
      ...fresh.config,
      httpLogger: false,
      logger: quietLogger,
      ...config,
      // A test's own phone settings go on top of the backend's (its payment provider included).
      phone: { ...fresh.config.phone, ...config.phone },
    });
    return { platform, drop: fresh.drop };
  } catch (error) {
    await fresh.drop();
    throw error;
  }
}
