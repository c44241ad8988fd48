// Composition root of the platform server: the shared infrastructure (core/: database, broker,
// HTTP basics), the keystore, then each room (operators, fleet, keys, ingest, storage, tariffs,
// phone) handed what it needs, with one close() for all of them.
import Fastify, { type FastifyInstance } from 'fastify';
import type { MeterKeys } from '../protocol/keys';
import { type Broker, startBroker } from './core/broker';
import { type Database, openDatabase } from './core/db';
import { migrate } from './core/migrations';
import { httpBasics } from './core/http';
import { openapi } from './core/openapi';
import { startFleet } from './fleet';
import type { StatusService } from './fleet/status';
import { Ingest, type Logger, type StoredRecord } from './ingest/gate';
import { MeterTables } from './ingest/meters';
import { startKeys } from './keys';
import type { HsmConfig } from './keys/hsm';
import { type Keystore, loadKeystore } from './keys/keystore';
import { type Operators, type OperatorsConfig, startOperators } from './operators';
import { type Phone, type PhoneConfig, startPhone } from './phone';
import { releaseKeyFor, startStorage } from './storage';
import { startTariffs, type TariffService } from './tariffs';

export interface PlatformConfig {
  /** postgres://… (DATABASE_URL); PGlite when absent. */
  databaseUrl?: string;
  /** PGlite data directory (PARKLINK_DATA_DIR); in memory when absent. */
  dataDir?: string;
  /** mqtt://… (MQTT_URL); an embedded aedes broker when absent. */
  mqttUrl?: string;
  /** Whether the external broker delivers `$share/…` subscriptions (MQTT_SHARED=0 to disable). */
  sharedSubscriptions?: boolean;
  /** The ingest instances' shared-subscription group (MQTT_SHARE_GROUP), default "ingest". */
  shareGroup?: string;
  /**
   * Which proxies to believe about the client's address (PARKLINK_TRUST_PROXY): `true` (any), or a
   * comma-separated list of addresses and CIDRs, as Fastify's trustProxy takes them. Behind a
   * reverse proxy it must be set, or every client (and the per-address login limit) shares one address.
   */
  trustProxy?: boolean | string;
  /** HTTP port for listen() (PORT), default 8080. */
  port?: number;
  host?: string;
  /**
   * The master key in an HSM through PKCS#11 (PARKLINK_HSM_MODULE, PARKLINK_HSM_TOKEN or
   * PARKLINK_HSM_SLOT, PARKLINK_HSM_PIN, PARKLINK_HSM_KEY_LABEL); wins over the options below.
   */
  hsm?: HsmConfig;
  /** Master key: 64 hex digits (PARKLINK_MASTER_KEY) or 32 bytes. */
  masterKey?: string | Uint8Array;
  /** Passphrase-protected keystore file (PARKLINK_KEYSTORE_FILE, PARKLINK_KEYSTORE_PASSPHRASE). */
  keystoreFile?: string;
  keystorePassphrase?: string;
  /** Create the keystore file with a new master key when missing (PARKLINK_KEYSTORE_CREATE=1). */
  createKeystoreFile?: boolean;
  /** Fastify's logger: true (pino, info), false (silent) or pino options. Default true. */
  httpLogger?: boolean | { level: string };
  /** Ingest's logger; fastify's when absent. */
  logger?: Logger;
  /** Called once per record newly stored. */
  onStored?: (stored: StoredRecord) => void;
  /** Pay by phone: clock, pricing, channels; see platform-server/phone/README.md. */
  phone?: PhoneConfig;
  /** Operator accounts: the first admin (PARKLINK_ADMIN_USER, PARKLINK_ADMIN_PASSWORD), sessions, lockout. */
  operators?: OperatorsConfig;
}

export interface Platform {
  readonly db: Database;
  readonly brokerUrl: string;
  readonly broker: Broker;
  readonly app: FastifyInstance;
  readonly ingest: Ingest;
  readonly keystore: Keystore;
  /** Pay by phone: drivers, pairing, renewals, alerts, the driver web app at /app/. */
  readonly phone: Phone;
  /** Meter status, events and alarms: ingest's 0x04 route, 0x84 settings, /api/meters/:id/status. */
  readonly status: StatusService;
  /** Tariffs: stored, pushed as 0x85, the one each meter applied (prices renewals too). */
  readonly tariffs: TariffService;
  /** Operator accounts, sessions and the audit log; the guard of every operator route. */
  readonly operators: Operators;
  /** Registers a meter at key epoch 1 and returns the keys a factory loads into it. */
  provisionMeter(id: number, name: string): Promise<MeterKeys>;
  /** The meter's release key, which the factory loads beside its keys (RecordStore.provisionReleaseKey). */
  releaseKeyFor(id: number): Uint8Array;
  /** Starts the HTTP server; returns its address. */
  listen(port?: number): Promise<string>;
  /** Stops ingest, HTTP, broker and database; safe to call twice. */
  close(): Promise<void>;
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): PlatformConfig {
  const config: PlatformConfig = {};
  if (env.DATABASE_URL) config.databaseUrl = env.DATABASE_URL;
  if (env.PARKLINK_DATA_DIR) config.dataDir = env.PARKLINK_DATA_DIR;
  if (env.MQTT_URL) config.mqttUrl = env.MQTT_URL;
  if (env.MQTT_SHARED === '0' || env.MQTT_SHARED === 'false') config.sharedSubscriptions = false;
  if (env.MQTT_SHARE_GROUP) config.shareGroup = env.MQTT_SHARE_GROUP;
  if (env.PORT) {
    const port = Number(env.PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new Error(`PORT ${env.PORT} is not a port`);
    config.port = port;
  }
  if (env.HOST) config.host = env.HOST;
  if (env.PARKLINK_TRUST_PROXY) {
    const trust = env.PARKLINK_TRUST_PROXY;
    config.trustProxy = trust === 'true' ? true : trust;
  }
  if (env.PARKLINK_HSM_MODULE) {
    if (!env.PARKLINK_HSM_PIN) throw new Error('PARKLINK_HSM_MODULE needs PARKLINK_HSM_PIN');
    config.hsm = { module: env.PARKLINK_HSM_MODULE, pin: env.PARKLINK_HSM_PIN };
    if (env.PARKLINK_HSM_TOKEN) config.hsm.tokenLabel = env.PARKLINK_HSM_TOKEN;
    if (env.PARKLINK_HSM_SLOT) config.hsm.slot = env.PARKLINK_HSM_SLOT;
    if (env.PARKLINK_HSM_KEY_LABEL) config.hsm.keyLabel = env.PARKLINK_HSM_KEY_LABEL;
  }
  if (env.PARKLINK_MASTER_KEY) config.masterKey = env.PARKLINK_MASTER_KEY;
  if (env.PARKLINK_KEYSTORE_FILE) config.keystoreFile = env.PARKLINK_KEYSTORE_FILE;
  if (env.PARKLINK_KEYSTORE_PASSPHRASE) config.keystorePassphrase = env.PARKLINK_KEYSTORE_PASSPHRASE;
  if (env.PARKLINK_KEYSTORE_CREATE === '1') config.createKeystoreFile = true;
  if (env.LOG_LEVEL) config.httpLogger = { level: env.LOG_LEVEL };
  if (env.PARKLINK_ADMIN_USER || env.PARKLINK_ADMIN_PASSWORD) {
    if (!env.PARKLINK_ADMIN_USER || !env.PARKLINK_ADMIN_PASSWORD)
      throw new Error('PARKLINK_ADMIN_USER and PARKLINK_ADMIN_PASSWORD go together');
    config.operators = {
      admin: { username: env.PARKLINK_ADMIN_USER, password: env.PARKLINK_ADMIN_PASSWORD },
    };
  }
  return config;
}

export async function createPlatform(config: PlatformConfig = configFromEnv()): Promise<Platform> {
  // Built up step by step so a failure half-way releases what was already opened.
  const opened: (() => Promise<void>)[] = [];
  const unwind = async () => {
    for (const close of opened.reverse()) await close().catch(() => {});
  };
  try {
    const keystore = await loadKeystore(config);
    opened.push(async () => keystore.close());

    const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
    opened.push(() => db.close());
    await migrate(db);

    const broker = await startBroker({
      url: config.mqttUrl,
      sharedSubscriptions: config.sharedSubscriptions,
    });
    opened.push(() => broker.close());

    const app = Fastify({ logger: config.httpLogger ?? true, trustProxy: config.trustProxy ?? false });
    opened.push(() => app.close());
    const logger = config.logger ?? app.log;
    // Before any route: the OpenAPI document sees every route registered after it.
    await app.register(openapi);
    await app.register(httpBasics, { db });
    // Before any other room: the operators' route check refuses an operator route without a role.
    const operators = await startOperators(app, db, config.operators);

    const ingest = new Ingest({
      db,
      keystore,
      logger,
      brokerUrl: broker.url,
      sharedSubscription: broker.sharedSubscriptions,
      group: config.shareGroup,
      onStored: config.onStored,
    });
    opened.push(() => ingest.close());
    const sendDownlink = (m: number, t: number, body: Uint8Array) => ingest.sendDownlink(m, t, body);
    // Ingest's tables, as the other rooms may know them.
    const meters = new MeterTables(db);
    const { status } = await startFleet(app, {
      db,
      meters,
      records: meters,
      keystore,
      ingest,
      logger,
      sendDownlink,
      guard: operators,
    });
    await startKeys(app, { db, meters, keystore, ingest, guard: operators });
    await ingest.start();
    await startStorage(app, { db, meters, records: meters, keystore, ingest, guard: operators });
    const tariffs = await startTariffs(app, { db, meters, keystore, ingest, sendDownlink, guard: operators });
    const phone = await startPhone({
      db,
      meters,
      app,
      ingest,
      keystore,
      brokerUrl: broker.url,
      logger,
      tariffs,
      config: config.phone,
    });
    opened.push(() => phone.close());

    let closing: Promise<void> | undefined;
    return {
      db,
      broker,
      brokerUrl: broker.url,
      app,
      ingest,
      keystore,
      phone,
      status,
      tariffs,
      operators,
      async provisionMeter(id, name) {
        if (!Number.isInteger(id) || id < 0 || id > 0xffffffff)
          throw new RangeError(`meter id ${id} is not a u32`);
        await meters.provision(id, name);
        return keystore.meterKeys(id, 1);
      },
      releaseKeyFor: (id) => releaseKeyFor(keystore, ingest.crypto, id),
      async listen(port = config.port ?? 8080) {
        return app.listen({ port, host: config.host ?? '127.0.0.1' });
      },
      close() {
        // Ingest first (finishes the frames in hand), then HTTP, broker, database, keys.
        closing ??= unwind();
        return closing;
      },
    };
  } catch (error) {
    await unwind();
    throw error;
  }
}
