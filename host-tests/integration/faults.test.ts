// Network faults: the real firmware on a virtual board uploads through the broker into the
// platform while the broker goes down, acks are lost, the platform restarts mid-batch and the
// database is unreachable for a while. After recovery every record is in the database exactly once.
// Runs on the embedded services and on the real PostgreSQL + Mosquitto (required under CI=true).
// Outages are made with TCP proxies in front of the broker and the database, so the real services
// stay up for everyone else.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sinon from 'sinon';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { meterClientId, NodeMqttLink } from '../../hal/mock/mqtt.node';
import { type Broker, startBroker } from '../../platform-server/core/broker';
import { BrokerCredentials } from '../../platform-server/core/brokerAuth';
import { keystoreFromHex } from '../../platform-server/keys/keystore';
import { createPlatform, type Platform } from '../../platform-server/platform';
import type { PlatformConfig } from '../../platform-server/config';
import { forEachBackend, operatorLogin, randomMeterId } from '../../sim/fleet/platform';
import { OutageProxy } from '../support/outageProxy';
import { until } from '../support/until';

const silent = { info() {}, warn() {}, error() {} };

forEachBackend('network faults: every record in the database exactly once', (backend) => {
  let drop: () => Promise<void>;
  let config: PlatformConfig;
  let broker: Broker | undefined;
  let dataDir: string | undefined;
  let brokerProxy: OutageProxy;
  let dbProxy: OutageProxy | undefined;
  const platforms: Platform[] = [];
  const meters: Meter[] = [];
  const pumps: NodeJS.Timeout[] = [];

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    // The broker and the database must outlive a platform restart: external ones for both backends.
    let mqttUrl = fresh.config.mqttUrl;
    if (!mqttUrl) {
      // As an external broker would be configured: the credentials of the platforms' master key.
      broker = await startBroker({ credentials: new BrokerCredentials(keystoreFromHex('00'.repeat(32))) });
      mqttUrl = broker.url;
    }
    const brokerAddress = new URL(mqttUrl);
    brokerProxy = new OutageProxy(brokerAddress.hostname, Number(brokerAddress.port || 1883));
    await brokerProxy.start();
    let databaseUrl = fresh.config.databaseUrl;
    if (databaseUrl) {
      const url = new URL(databaseUrl);
      dbProxy = new OutageProxy(url.hostname, Number(url.port || 5432));
      await dbProxy.start();
      url.host = `127.0.0.1:${dbProxy.port}`;
      databaseUrl = url.toString();
    } else {
      dataDir = mkdtempSync(join(tmpdir(), 'parklink-faults-'));
    }
    config = {
      ...fresh.config,
      mqttUrl,
      sharedSubscriptions: backend.real,
      databaseUrl,
      dataDir,
      httpLogger: false,
      logger: silent,
      masterKey: '00'.repeat(32),
    };
  });

  afterEach(async () => {
    for (const pump of pumps.splice(0)) clearInterval(pump);
    for (const meter of meters.splice(0)) meter.stop();
    for (const platform of platforms.splice(0)) await platform.close();
  });

  after(async () => {
    await brokerProxy?.close();
    await dbProxy?.close();
    await broker?.close();
    await drop?.();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  async function startPlatform(): Promise<Platform> {
    const platform = await createPlatform(config);
    platforms.push(platform);
    return platform;
  }

  /** A meter that reaches the broker through the outage proxy; its virtual time runs 100x real. */
  async function bootMeter(platform: Platform, meterId: number) {
    const link = new NodeMqttLink({
      url: `mqtt://127.0.0.1:${brokerProxy.port}`,
      clientId: meterClientId(meterId),
      ...platform.meterMqttCredentials(meterId),
      reconnectPeriodMs: 100,
    });
    const clock = new VirtualClock('2026-06-01T09:00:00Z');
    const board = new VirtualBoard({ mqtt: link, clock });
    provisionBoard(board.hardware, await platform.provisionMeter(meterId, 'faults'), meterId);
    const meter = new Meter(board.hardware, {
      meterId,
      bays: [1, 2],
      rate: { currency: 978, perHour: 300, minMinutes: 15, maxMinutes: 120, stepMinutes: 15 },
    });
    meters.push(meter);
    meter.start();
    pumps.push(setInterval(() => clock.advance(1000), 10));
    await until(() => link.connected, 'the meter to connect');
    return { meter, link, clock };
  }

  function sell(meter: Meter, n: number, from = 0): void {
    for (let i = 0; i < n; i++) {
      meter.records.appendTransaction({
        transactionNumber: from + i + 1,
        card: meter.security.cardRef('6280123400000019'),
        cardExpiry: '2901',
        cardType: 1,
        bayId: 1 + (i % 2),
        minutes: 30,
        paidFrom: 1_780_304_400 + i * 60,
        paidUntil: 1_780_306_200 + i * 60,
        charge: 150,
        currency: 978,
        remainingValue: 10_000 - (from + i) * 150,
      });
    }
  }

  async function assertExactlyOnce(
    platform: Platform,
    meter: Meter,
    meterId: number,
    sales = 30,
  ): Promise<void> {
    await until(() => meter.ledger.acknowledgedSeq === meter.log.lastSeq, 'every record to be acknowledged');
    const rows = await platform.db.query<{ n: number; distinct_seqs: number; max: number }>(
      'SELECT count(*)::int AS n, count(DISTINCT seq)::int AS distinct_seqs, max(seq)::int AS max FROM records WHERE meter_id = $1',
      [meterId],
    );
    const { n, distinct_seqs, max } = rows.rows[0];
    assert.equal(n, meter.log.lastSeq, 'every record is in the database');
    assert.equal(distinct_seqs, n, 'once');
    assert.equal(max, meter.log.lastSeq);
    const { headers } = await operatorLogin(platform.operators, 'viewer');
    const gaps = await platform.app.inject({ method: 'GET', url: `/api/meters/${meterId}/gaps`, headers });
    assert.equal(gaps.statusCode, 200);
    assert.deepEqual(gaps.json().gaps, []);
    const txs = await platform.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM transactions WHERE meter_id = $1',
      [meterId],
    );
    assert.equal(txs.rows[0].n, sales);
  }

  it('broker down while the meter sells: it keeps selling and uploads everything once when the broker is back', async function () {
    this.timeout(60_000);
    const platform = await startPlatform();
    const meterId = randomMeterId();
    const { meter, link } = await bootMeter(platform, meterId);
    sell(meter, 10);
    brokerProxy.down();
    await until(() => !link.connected, 'the link to drop');
    sell(meter, 20, 10);
    assert.ok(meter.ledger.acknowledgedSeq < meter.log.lastSeq);
    brokerProxy.up();
    await assertExactlyOnce(platform, meter, meterId);
  });

  it('acks lost: the meter resends the same sets and the platform stores nothing twice', async function () {
    this.timeout(60_000);
    const platform = await startPlatform();
    const meterId = randomMeterId();
    // The first five acks never leave the platform.
    const ingest = platform.ingest as unknown as { publish(topic: string, payload: Uint8Array): void };
    const original = ingest.publish.bind(ingest);
    let lost = 0;
    const stub = sinon.stub(ingest, 'publish').callsFake((topic, payload) => {
      if (topic.includes(`/${meterId}/`) && lost < 5) lost++;
      else original(topic, payload);
    });
    try {
      const { meter } = await bootMeter(platform, meterId);
      sell(meter, 30);
      await assertExactlyOnce(platform, meter, meterId);
      assert.equal(lost, 5);
      const duplicates = await platform.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM refused_frames WHERE meter_id = $1 AND reason <> 'replay'",
        [meterId],
      );
      assert.equal(duplicates.rows[0].n, 0);
    } finally {
      stub.restore();
    }
  });

  it('platform restarted mid-batch: the new instance takes over and every record is stored once', async function () {
    this.timeout(90_000);
    const first = await startPlatform();
    const meterId = randomMeterId();
    const { meter } = await bootMeter(first, meterId);
    // The platform goes down right after it stored the first set of the batch.
    let closing: Promise<void> | undefined;
    first.ingest.on('accepted', (accepted) => {
      if (accepted.meterId === meterId && accepted.ack.seq > 1) closing ??= first.close();
    });
    sell(meter, 90); // about three sets
    await until(() => closing !== undefined, 'the first set of the batch stored');
    await closing;
    platforms.splice(platforms.indexOf(first), 1);
    assert.ok(meter.ledger.acknowledgedSeq < meter.log.lastSeq, 'the batch was not finished');
    const second = await startPlatform();
    await assertExactlyOnce(second, meter, meterId, 90);
  });

  it('database briefly unavailable: frames are refused unacknowledged, then stored once', async function () {
    this.timeout(90_000);
    const platform = await startPlatform();
    const meterId = randomMeterId();
    const { meter } = await bootMeter(platform, meterId);
    sell(meter, 5);
    await until(() => meter.ledger.acknowledgedSeq === meter.log.lastSeq, 'the first records acknowledged');
    // Let the platform's own follow-up work on those records (listeners of 'stored') finish first.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // The outage: the real database behind a proxy that drops every connection; PGlite (in process)
    // by failing every transaction for the same time.
    const stub = dbProxy
      ? undefined
      : sinon.stub(platform.db, 'transaction').rejects(new Error('database down'));
    dbProxy?.down();
    sell(meter, 25, 5);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.ok(
      meter.ledger.acknowledgedSeq < meter.log.lastSeq,
      'nothing acknowledged while the database is down',
    );
    dbProxy?.up();
    stub?.restore();
    await assertExactlyOnce(platform, meter, meterId);
  });
});
