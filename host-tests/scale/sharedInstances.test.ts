// The scale-out path in small: three platform instances on one Mosquitto, sharing the meters'
// uplinks through a shared subscription, one killed (SIGKILL) in the middle of the load. The meters
// seal again what was never acknowledged, as the firmware does; every record is stored exactly once
// and every meter's chain is whole.
import assert from 'node:assert/strict';
import pg from 'pg';
import { BrokerCredentials, mosquittoPasswordFile } from '../../platform-server/core/brokerAuth';
import { openDatabase } from '../../platform-server/core/db';
import { migrate } from '../../platform-server/core/migrations';
import { nodeCrypto } from '../../platform-server/core/nodeCrypto';
import { deriveCardTokenKey } from '../../platform-server/keys/cardToken';
import { loadKeystore } from '../../platform-server/keys/keystore';
import { LoadMeter } from '../../sim/fleet/loadMeter';
import { requireRealServices } from '../../sim/fleet/platform';
import {
  type Broker,
  freshDatabase,
  type Instance,
  startInstance,
  startMosquitto,
  stopInstance,
} from '../../sim/fleet/processes';
import { requireTools } from '../support/tlsCa';

const MASTER_KEY = '7c'.repeat(32);
const METERS = 30;
const FIRST = 8_500_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('three platform instances on one broker, one killed under load (real PostgreSQL, Mosquitto)', function () {
  this.timeout(300_000);
  let database: Awaited<ReturnType<typeof freshDatabase>> | undefined;
  let broker: Broker | undefined;
  const instances: Instance[] = [];
  const meters: LoadMeter[] = [];

  before(async function () {
    requireTools(this, 'mosquitto');
    await requireRealServices(this);
  });

  after(async () => {
    await Promise.all(meters.map((m) => m.end()));
    await Promise.all(instances.map(stopInstance));
    await broker?.stop();
    await database?.drop();
  });

  it('shares the uplinks, and loses or duplicates nothing when an instance dies', async () => {
    const keystore = await loadKeystore({ masterKey: MASTER_KEY });
    const credentials = new BrokerCredentials(keystore);
    const cardTokenKey = deriveCardTokenKey(nodeCrypto, keystore);
    const ids = Array.from({ length: METERS }, (_, i) => FIRST + i);
    database = await freshDatabase();
    const db = await openDatabase({ url: database.url, maxConnections: 1 });
    try {
      await migrate(db);
      await db.query(
        "INSERT INTO meters (id, name, key_epoch) SELECT id, 'shared ' || id, 1 FROM unnest($1::bigint[]) AS id",
        [ids],
      );
    } finally {
      await db.close();
    }
    broker = await startMosquitto(mosquittoPasswordFile(credentials, ids));
    const env = {
      DATABASE_URL: database.url,
      MQTT_URL: broker.url,
      MQTT_SHARE_GROUP: 'ingest',
      PARKLINK_MASTER_KEY: MASTER_KEY,
      PARKLINK_DEMO: '1', // no renewals here; the demo flag only lets the platform start without a payment provider
      PORT: '0',
      LOG_LEVEL: 'error',
    };
    for (let i = 0; i < 3; i++) instances.push(await startInstance(env));

    for (const id of ids) {
      const meter = new LoadMeter(id, { ...keystore.meterKeys(id, 1), cardTokenKey }, 2);
      await meter.connect(broker.url, {
        username: BrokerCredentials.meterUser(id),
        password: credentials.meterPassword(id),
      });
      meters.push(meter);
    }
    credentials.close();
    keystore.close();

    // Every meter sells 5 every 100 ms (a set goes when the one before is acknowledged); the second
    // instance dies after a second.
    const sell = async (rounds: number) => {
      for (let round = 0; round < rounds; round++) {
        for (const meter of meters) for (let k = 0; k < 5; k++) meter.tap(Date.now(), 5);
        await sleep(100);
      }
    };
    await sell(10);
    const killed = instances[1];
    killed.child.kill('SIGKILL');
    await new Promise((resolve) => killed.child.once('exit', resolve));
    await sell(20);

    // Whatever the dead instance held is sealed again after 10 s without an ack, as the firmware does.
    let resent = 0;
    const deadline = Date.now() + 60_000;
    while (meters.some((m) => m.setsInFlight > 0 || m.recordsWaiting > 0)) {
      assert.ok(Date.now() < deadline, 'every set acknowledged within a minute');
      for (const meter of meters) {
        resent += meter.resendUnacknowledged();
        meter.flush();
      }
      await sleep(250);
    }

    const sent = meters.reduce((n, m) => n + m.chain.records.length, 0);
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const stored = await client.query<{ n: number; meters: number }>(
        'SELECT count(*)::int AS n, count(DISTINCT meter_id)::int AS meters FROM records',
      );
      const perMeter = await client.query<{ meter_id: string; n: number; top: string }>(
        'SELECT meter_id, count(*)::int AS n, max(seq) AS top FROM records GROUP BY meter_id',
      );
      const gaps = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM record_gaps');
      const transactions = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM transactions');
      console.log(
        `      ${METERS} meters, 3 instances (one killed after 1 s): ${sent} records sent, ${stored.rows[0].n} stored, ${resent} sets sealed again`,
      );
      assert.equal(stored.rows[0].n, sent, 'every record stored, none twice');
      assert.equal(stored.rows[0].meters, METERS);
      for (const row of perMeter.rows)
        assert.equal(Number(row.top), row.n, `meter ${row.meter_id}: seq 1..n, whole`);
      assert.equal(gaps.rows[0].n, 0, 'no gap left open');
      assert.equal(transactions.rows[0].n, sent, 'one transaction row per record');
    } finally {
      await client.end();
    }
    assert.equal(
      meters.reduce((n, m) => n + m.acknowledged, 0),
      sent,
      'every record acknowledged to its meter',
    );
  });
});
