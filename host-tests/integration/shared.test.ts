// Ingest at fleet scale: two platform instances share the uplinks through an MQTT shared
// subscription ($share/<group>/parklink/v1/meters/+/up) on the real Mosquitto, writing to the same
// real PostgreSQL. One is killed mid-batch (its connection dropped, no clean close); the meters
// resend what went unacknowledged and the survivor stores it: every record exactly once.
// aedes has no shared subscriptions, so this runs on the real services only (required in CI).
import assert from 'node:assert/strict';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { meterClientId, NodeMqttLink } from '../../hal/mock/mqtt.node';
import { createPlatform, type Platform } from '../../platform-server/platform';
import { randomMeterId, real, requireRealServices } from '../../sim/fleet/platform';
import { until } from '../support/until';

describe(`two ingest instances on a shared subscription — ${real.name}`, () => {
  let drop: (() => Promise<void>) | undefined;
  const platforms: Platform[] = [];
  const meters: Meter[] = [];
  const pumps: NodeJS.Timeout[] = [];

  before(async function () {
    await requireRealServices(this);
  });

  after(async () => {
    for (const pump of pumps) clearInterval(pump);
    for (const meter of meters) meter.stop();
    for (const platform of platforms) await platform.close().catch(() => {});
    await drop?.();
  });

  it('splits the load, survives one instance killed mid-batch, stores every record once', async function () {
    this.timeout(120_000);
    const fresh = await real.fresh();
    drop = fresh.drop;
    const config = {
      ...fresh.config,
      httpLogger: false,
      logger: { info() {}, warn() {}, error() {} },
      masterKey: '11'.repeat(32),
    };
    const a = await createPlatform(config);
    platforms.push(a);
    const b = await createPlatform(config);
    platforms.push(b);
    assert.match(a.ingest.subscription, /^\$share\//);
    const storedBy = new Map<Platform, number>([
      [a, 0],
      [b, 0],
    ]);
    for (const p of [a, b]) p.ingest.on('stored', () => storedBy.set(p, (storedBy.get(p) ?? 0) + 1));

    const fleet: { id: number; meter: Meter }[] = [];
    for (let i = 0; i < 8; i++) {
      const id = randomMeterId();
      const link = new NodeMqttLink({
        url: config.mqttUrl as string,
        clientId: meterClientId(id),
        ...a.meterMqttCredentials(id),
        reconnectPeriodMs: 100,
      });
      const clock = new VirtualClock('2026-06-01T09:00:00Z');
      const board = new VirtualBoard({ mqtt: link, clock });
      provisionBoard(board.hardware, await a.provisionMeter(id, `shared ${i}`), id);
      const meter = new Meter(board.hardware, {
        meterId: id,
        bays: [1, 2],
        rate: { currency: 978, perHour: 300, minMinutes: 15, maxMinutes: 120, stepMinutes: 15 },
      });
      meters.push(meter);
      meter.start();
      pumps.push(setInterval(() => clock.advance(1000), 10));
      await until(() => link.connected, 'a meter to connect', 60_000);
      fleet.push({ id, meter });
    }
    const sell = (n: number) => {
      for (const { meter } of fleet) {
        for (let i = 0; i < n; i++) {
          meter.records.appendOperation('load', `operation ${meter.log.lastSeq + 1} ${'x'.repeat(120)}`);
        }
      }
    };
    sell(60);
    // Kill instance B once it has stored part of the batch: its MQTT connection is dropped without
    // a clean close (messages in flight to it are never acknowledged), its database pool abandoned.
    await until(() => (storedBy.get(b) ?? 0) > 20, 'instance B to take a share', 60_000);
    const client = (
      b.ingest as unknown as { client?: { end(force: boolean): void; stream: { destroy(): void } } }
    ).client;
    client?.stream.destroy();
    client?.end(true);
    sell(60);
    for (const { meter } of fleet) {
      await until(
        () => meter.ledger.acknowledgedSeq === meter.log.lastSeq,
        `meter ${meter.config.meterId} acknowledged`,
        60_000,
      );
    }
    for (const { id, meter } of fleet) {
      const rows = await a.db.query<{ n: number; d: number; max: number }>(
        'SELECT count(*)::int AS n, count(DISTINCT seq)::int AS d, max(seq)::int AS max FROM records WHERE meter_id = $1',
        [id],
      );
      assert.deepEqual(rows.rows[0], { n: meter.log.lastSeq, d: meter.log.lastSeq, max: meter.log.lastSeq });
    }
    assert.ok((storedBy.get(a) ?? 0) > 0 && (storedBy.get(b) ?? 0) > 0, 'both instances took a share');
  });
});
