// Composition root of the platform server: the shared infrastructure (core/: database, broker,
// HTTP basics), the keystore, then each room (operators, fleet, keys, ingest, storage, tariffs,
// phone) handed what it needs, with one close() for all of them.
import Fastify, { type FastifyInstance } from 'fastify';
import type { MeterKeys } from '../protocol/keys';
import { type Broker, startBroker } from './core/broker';
import { BrokerCredentials, PLATFORM_MQTT_USER, withCredentials } from './core/brokerAuth';
import { type Database, openDatabase } from './core/db';
import { migrate } from './core/migrations';
import { httpBasics } from './core/http';
import { openapi } from './core/openapi';
import { startFleet } from './fleet';
import { RelayAssignments } from './fleet/relay';
import type { StatusService } from './fleet/status';
import { startHandheld } from './handheld';
import { Ingest } from './ingest/gate';
import { MeterTables } from './ingest/meters';
import { convertStoredCards } from './ingest/cardTokens';
import { startKeys } from './keys';
import { CardTokens, resolveCardTokenKey } from './keys/cardToken';
import { nodeCrypto } from './core/nodeCrypto';
import { type Keystore, loadKeystore } from './keys/keystore';
import { type Operators, startOperators } from './operators';
import { gatewayCheck, type Phone, paymentsCheck, phoneConfigFromEnv, startPhone } from './phone';
import { startHistory } from './history';
import { releaseKeyFor, startStorage } from './storage';
import { startTariffs, type TariffService } from './tariffs';
import { type BlacklistService, startBlacklist } from './blacklist';
import { type MeterClocks, startTime } from './time';
import { startParameters } from './parameters';
import { type AlarmForwarding, AlarmService, startAlarms } from './alarms';
import { startConsole } from './console';
import { startEnforcement } from './enforcement';
import { type FirmwareService, startFirmware } from './firmware';
import { type ReaderFileService, startReaderFiles } from './readerFiles';
import { type ReportService, startReports } from './reports';
import { type ApdsService, startApds } from './apds';
import { auditRoutes } from './audit/routes';
import { ReportingService, reportingRoutes } from './reporting';
import { EmailAdapter, ReceiptService, receiptRoutes } from './receipts';
import { ClearanceService, clearanceRoutes, sftpTransport } from './clearance';
import { configFromEnv, type PlatformConfig } from './config';

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
  /** The fleet blacklist: pushed as 0x8A, acknowledged by 0x0A, fed by cloned-card reports. */
  readonly blacklist: BlacklistService;
  /** Reader files (414d): uploaded, pushed as 0x8B, each meter's 0x0B report recorded. */
  readonly readerFiles: ReaderFileService;
  /** Reports on demand (414b): status and record ranges asked of a meter (0x8C), answered by 0x0C. */
  readonly reports: ReportService;
  /** Each meter's clock: ingest's 0x08 route answered with 0x88, /api/meters/:id/clock. */
  readonly clocks: MeterClocks;
  /** The fleet-wide alarm inbox: raised from security events, status and the overdue sweep; `subscribe` for live changes. */
  readonly alarms: AlarmService;
  /** Alarm forwarding rules and their deliveries (e-mail, webhook, SMS). */
  readonly alarmForwarding: AlarmForwarding;
  /** Firmware (414a): signed images, staged rollouts, ingest's 0x07 route, 0x87 offers and chunks. */
  readonly firmware: FirmwareService;
  /** Operator accounts, sessions and the audit log; the guard of every operator route. */
  readonly operators: Operators;
  /** The APDS API under /apds/: the city's data in the APDS model, API keys, webhooks, export. */
  readonly apds: ApdsService;
  /** The meter's own MQTT user name and password, which the factory writes into it. */
  meterMqttCredentials(id: number): { username: string; password: string };
  /**
   * Registers a meter at key epoch 1 and returns the keys a factory loads into it, with the fleet's
   * card-token key (provisionBoard loads it; the caller wipes it).
   */
  provisionMeter(id: number, name: string): Promise<MeterKeys & { cardTokenKey: Uint8Array }>;
  /** The meter's release key, which the factory loads beside its keys (RecordStore.provisionReleaseKey). */
  releaseKeyFor(id: number): Uint8Array;
  /** Starts the HTTP server; returns its address. */
  listen(port?: number): Promise<string>;
  /** Stops ingest, HTTP, broker and database; safe to call twice. */
  close(): Promise<void>;
}

export async function createPlatform(config: PlatformConfig = configFromEnv()): Promise<Platform> {
  // Built up step by step so a failure half-way releases what was already opened.
  const opened: (() => Promise<void>)[] = [];
  const unwind = async () => {
    for (const close of opened.reverse()) await close().catch(() => {});
  };
  try {
    // Refused before anything is opened: a gateway without its secret is open to anyone.
    gatewayCheck({ ...phoneConfigFromEnv(), ...config.phone }, config.demo ?? false);
    // Refused before anything is opened too: without a provider, debit renewals could not be paid.
    paymentsCheck({ ...phoneConfigFromEnv(), ...config.phone }, config.demo ?? false);
    const keystore = await loadKeystore(config);
    opened.push(async () => keystore.close());

    // The fleet's card-token key (PARKLINK_TOKEN_KEY, else derived from the master key): meters get
    // it at the factory; ingest, the stored-card conversion and pay by phone tokenise with it.
    const cardTokenKey = resolveCardTokenKey(
      config.phone?.tokenKey ?? phoneConfigFromEnv().tokenKey,
      nodeCrypto,
      keystore,
    );
    const cardTokens = new CardTokens(cardTokenKey);

    const db = await openDatabase({
      url: config.databaseUrl,
      dataDir: config.dataDir,
      pgliteSnapshot: config.pgliteSnapshot,
    });
    opened.push(() => db.close());
    await migrate(db);
    await convertStoredCards(db, cardTokens);
    // The city's days (PARKLINK_APDS_TIME_ZONE) are the reports' and the daily sales roll-up's.
    const cityTimeZone = config.apds?.timeZone ?? 'UTC';
    const history = await startHistory(
      { db, logger: config.logger },
      { timeZone: cityTimeZone, ...config.history },
    );
    opened.push(() => history.close());

    const relays = new RelayAssignments(db);
    await relays.load();
    const credentials = new BrokerCredentials(keystore);
    opened.push(async () => credentials.close());
    const broker = await startBroker({
      url: config.mqttUrl,
      sharedSubscriptions: config.sharedSubscriptions,
      credentials,
      tls: config.tls,
      relaySlaves: (masterId) => relays.slavesOf(masterId),
    });
    opened.push(() => broker.close());
    // The platform's own clients log in as the platform (unless MQTT_URL carries its credentials).
    const platformBrokerUrl = withCredentials(
      broker.platformUrl,
      PLATFORM_MQTT_USER,
      credentials.platformPassword(),
    );

    const app = Fastify({
      logger: config.httpLogger ?? true,
      trustProxy: config.trustProxy ?? false,
      ...(config.tls ? { https: { cert: config.tls.cert, key: config.tls.key } } : {}),
    });
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
      brokerUrl: platformBrokerUrl,
      sharedSubscription: broker.sharedSubscriptions,
      group: config.shareGroup,
      onStored: config.onStored,
      cardTokens,
      timeZone: cityTimeZone,
    });
    opened.push(() => ingest.close());
    const sendDownlink = (m: number, t: number, body: Uint8Array) => ingest.sendDownlink(m, t, body);
    // Ingest's tables, as the other rooms may know them.
    const meters = new MeterTables(db);
    // Before the rooms that store the meters' security events and status: they hand it each one.
    const alarms = new AlarmService({ db, logger, ...config.alarms });
    opened.push(() => alarms.stop());
    const clocks = await startTime(app, { db, ingest, meters, guard: operators, sendDownlink, logger });
    const { status } = await startFleet(app, {
      db,
      meters,
      records: meters,
      keystore,
      ingest,
      logger,
      sendDownlink,
      guard: operators,
      smsSender: config.smsSender,
      relays,
      clock: (id) => clocks.clockOf(id),
      observer: (tx, meterId, message) => alarms.onStatusMessage(tx, meterId, message),
    });
    await startKeys(app, {
      db,
      meters,
      keystore,
      ingest,
      guard: operators,
      securityObserver: (tx, meterId, event) => alarms.onSecurityEvent(tx, meterId, event),
    });
    await ingest.start();
    await startStorage(app, { db, meters, records: meters, keystore, ingest, guard: operators });
    await startHandheld(app, { ingest, guard: operators });
    const tariffs = await startTariffs(app, {
      db,
      meters,
      keystore,
      ingest,
      sendDownlink,
      guard: operators,
      ...config.tariffs,
    });
    const blacklist = await startBlacklist(app, {
      db,
      keystore,
      cardTokens,
      ingest,
      sendDownlink,
      guard: operators,
      logger,
    });
    await startParameters(app, { db, ingest, sendDownlink, guard: operators });
    const { forwarding: alarmForwarding } = await startAlarms(app, {
      db,
      logger,
      service: alarms,
      guard: operators,
      sms: config.smsSender,
      forwarding: config.alarmForwarding,
    });
    opened.push(() => alarmForwarding.stop());
    await startConsole(app, {
      db,
      meters,
      guard: operators,
      onRegistered: (id) => ingest.forgetMeter(id),
      ingest,
      pollMs: config.consolePollMs,
      timeZone: cityTimeZone,
    });
    const firmware = await startFirmware(app, {
      db,
      ingest,
      sendDownlink,
      guard: operators,
      releaseKey: config.firmwareReleaseKey,
      crypto: ingest.crypto,
      logger,
    });
    // Reader firmware is signed with the same release key as the meter's own images.
    const readerFiles = await startReaderFiles(app, {
      db,
      ingest,
      sendDownlink,
      guard: operators,
      releaseKey: config.firmwareReleaseKey,
      logger,
    });
    const reports = await startReports(app, { db, ingest, sendDownlink, guard: operators, logger });
    await app.register(auditRoutes, { db, guard: operators });
    // The reports' days are the city's.
    await app.register(reportingRoutes, {
      service: new ReportingService(db, cityTimeZone),
      guard: operators,
    });
    const clearance = new ClearanceService(db, keystore, {
      acquirer: config.clearance?.acquirer ?? 'acquirer',
      timeZone: cityTimeZone,
      ...(config.clearance?.sftp
        ? { sftp: { target: config.clearance.sftp, transport: config.clearance.transport ?? sftpTransport } }
        : {}),
    });
    await app.register(clearanceRoutes, { service: clearance, guard: operators });
    const receipts = new ReceiptService(db, ingest.crypto);
    const phone = await startPhone({
      db,
      meters,
      app,
      ingest,
      keystore,
      brokerUrl: platformBrokerUrl,
      logger,
      tariffs,
      config: {
        ...config.phone,
        tokenKey: cardTokenKey,
        // Drivers' e-mails (receipts with their PDF) over SMTP when a mail server is configured.
        ...(config.mail
          ? {
              adapters: {
                email: new EmailAdapter(config.mail, receipts, cityTimeZone),
                ...config.phone?.adapters,
              },
            }
          : {}),
      },
      demo: config.demo,
    });
    opened.push(() => phone.close());
    await app.register(receiptRoutes, {
      service: receipts,
      timeZone: cityTimeZone,
      outbox: phone.service.outbox,
      db,
      emailEnabled: config.mail !== undefined || config.phone?.adapters?.email !== undefined,
      ...(config.receiptLimits ? { limits: config.receiptLimits } : {}),
    });
    // Validity compares with the phone sessions' times: one clock for both (a test's virtual one).
    const phoneClock = config.phone?.clock;
    await startEnforcement(app, {
      db,
      guard: operators,
      driverMessages: phone.service.outbox,
      ...(phoneClock ? { now: () => phoneClock.now() } : {}),
    });
    const apds = await startApds(app, {
      db,
      guard: operators,
      ingest,
      logger,
      quote: (request) => tariffs.quote(request),
      ...config.apds,
    });
    opened.push(() => apds.close());

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
      blacklist,
      readerFiles,
      reports,
      clocks,
      alarms,
      alarmForwarding,
      firmware,
      operators,
      apds,
      async provisionMeter(id, name) {
        if (!Number.isInteger(id) || id < 0 || id > 0xffffffff)
          throw new RangeError(`meter id ${id} is not a u32`);
        await meters.provision(id, name);
        ingest.forgetMeter(id);
        return { ...keystore.meterKeys(id, 1), cardTokenKey: cardTokens.key() };
      },
      releaseKeyFor: (id) => releaseKeyFor(keystore, ingest.crypto, id),
      meterMqttCredentials: (id) => ({
        username: BrokerCredentials.meterUser(id),
        password: credentials.meterPassword(id),
      }),
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
