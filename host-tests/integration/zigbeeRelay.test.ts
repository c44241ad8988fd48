// End to end through a neighbour: the slave meter has no connection of its own (its cellular link
// has no signal); after the monitor's ladder it reaches the platform only through the master's
// Zigbee relay (XBee twins on a virtual mesh with loss), the master's own MQTT connection (aedes in
// process, or the real Mosquitto) and ingest (PGlite, or the real PostgreSQL). The master restarts
// in the middle. Every record of the slave is stored exactly once, byte for byte; a relayed frame
// with one byte flipped (what a dishonest master could do) is refused by ingest.
import assert from 'node:assert/strict';
import type { FailoverLink } from '../../firmware/units/monitor';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { meterClientId, NodeMqttLink } from '../../hal/mock/mqtt.node';
import { ZigbeeMesh } from '../../hal/mock/zigbeeMesh';
import { toHex } from '../../protocol/bytes';
import { FrameType } from '../../protocol/frame';
import { uplinkTopic } from '../../protocol/topics';
import type { Platform } from '../../platform-server/platform';
import { forEachBackend, operatorLogin, randomMeterId, startPlatform } from '../../sim/fleet/platform';
import { bootRelayMeter, MASTER_ADDRESS, type RelayMeter, SLAVE_ADDRESS, tap } from '../radio/relayRig';

const MINUTE = 60_000;

/** Virtual time in `step` ms steps, with real time in between for the broker and the database. */
async function run(clock: VirtualClock, ms: number, step: number, until?: () => Promise<boolean> | boolean) {
  for (let t = 0; t < ms; t += step) {
    if (until && (await until())) return true;
    clock.advance(step);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return until ? until() : true;
}

forEachBackend('a slave meter reaching the platform only through its neighbour’s Zigbee relay', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  const meters: RelayMeter[] = [];
  const links: NodeMqttLink[] = [];

  before(async () => {
    ({ platform, drop } = await startPlatform(backend));
  });

  after(async () => {
    for (const m of meters) m.meter.stop();
    for (const l of links) l.close();
    await platform?.close();
    await drop?.();
  });

  it('stores every record of the slave exactly once, through relay loss and a master restart; an altered relayed frame is refused', async function () {
    this.timeout(180_000);
    const slaveId = randomMeterId();
    const masterId = randomMeterId();
    const clock = new VirtualClock('2026-06-01T09:00:00Z');
    const mesh = new ZigbeeMesh({ timers: clock, loss: 0.2, ackLoss: 0.03, seed: 5 });
    // The slave's cellular modem sees no network here: a link on a broker nobody else is on, without signal.
    const nowhere = new VirtualBroker(clock).link();
    nowhere.setSignal(false);
    const masterLink = () => {
      const link = new NodeMqttLink({
        url: platform.brokerUrl,
        clientId: meterClientId(masterId),
        ...platform.meterMqttCredentials(masterId),
      });
      links.push(link);
      return link;
    };
    const first = masterLink();
    // What the master publishes for the slave, to try an altered copy on ingest at the end.
    const relayed: Uint8Array[] = [];
    const publish = first.publish.bind(first);
    first.publish = (topic, payload) => {
      if (topic === uplinkTopic(slaveId) && payload[1] === FrameType.Records) relayed.push(payload.slice());
      return publish(topic, payload);
    };
    // Both meters registered, then the slave assigned to the master, as an administrator does: the
    // broker lets the master use the slave's topics, and no other meter's.
    const masterKeys = await platform.provisionMeter(masterId, 'integration');
    const slaveKeys = await platform.provisionMeter(slaveId, 'integration');
    const admin = await operatorLogin(platform.operators, 'admin');
    const assigned = await platform.app.inject({
      method: 'PUT',
      url: `/api/meters/${masterId}/relay-slaves`,
      headers: admin.headers,
      payload: { slaves: [slaveId] },
    });
    assert.equal(assigned.statusCode, 200, assigned.body);
    const master = bootRelayMeter({
      meterId: masterId,
      clock,
      mesh,
      mqtt: first,
      address64: MASTER_ADDRESS,
      x: 0,
      role: 'master',
      keys: masterKeys,
    });
    meters.push(master);
    const slave = bootRelayMeter({
      meterId: slaveId,
      clock,
      mesh,
      mqtt: nowhere,
      address64: SLAVE_ADDRESS,
      x: 50,
      role: 'slave',
      keys: slaveKeys,
    });
    meters.push(slave);
    await run(clock, 10_000, 100, () => first.connected);
    assert.ok(first.connected, 'the master is connected');

    // Taps while the slave has no path; the monitor's ladder brings it to the relay.
    let taps = 0;
    for (let i = 0; i < 3; i++) {
      tap(slave.board, clock, (i % 2) as 0 | 1);
      taps++;
      await run(clock, 7 * MINUTE, 1_000);
    }
    assert.equal((slave.meter.radio as FailoverLink).active, 'zigbee-relay');
    for (let i = 0; i < 3; i++) {
      tap(slave.board, clock, (i % 2) as 0 | 1);
      taps++;
      await run(clock, 20_000, 50);
    }

    // The master loses power while relaying, and comes back on the same flash.
    tap(slave.board, clock, 0);
    taps++;
    await run(clock, 300, 50);
    const state = master.board.state;
    master.meter.stop();
    first.close();
    meters.splice(meters.indexOf(master), 1);
    const again = bootRelayMeter({
      meterId: masterId,
      clock,
      mesh,
      mqtt: masterLink(),
      address64: MASTER_ADDRESS,
      x: 0,
      role: 'master',
      state,
      seed: 1234,
    });
    meters.push(again);
    for (let i = 0; i < 3; i++) {
      tap(slave.board, clock, (i % 2) as 0 | 1);
      taps++;
      await run(clock, 20_000, 50);
    }
    const caughtUp = () => slave.meter.ledger.acknowledgedSeq === slave.meter.log.lastSeq;
    assert.ok(await run(clock, 40 * MINUTE, 50, caughtUp), 'every record of the slave acknowledged');

    const rows = await platform.db.query<{ seq: string | number; bytes: Uint8Array }>(
      'SELECT seq, bytes FROM records WHERE meter_id = $1 ORDER BY seq',
      [slaveId],
    );
    const held = slave.meter.log.read(slave.meter.log.firstSeq);
    const stored = new Set(rows.rows.map((r) => Number(r.seq)));
    const duplicates = rows.rows.length - stored.size;
    const losses = held.filter((r) => !stored.has(r.seq)).length;
    const transactions = await platform.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM transactions WHERE meter_id = $1',
      [slaveId],
    );
    console.log(
      `      relay figures: ${held.length} records of the slave, ${rows.rows.length} stored, duplicates ${duplicates}, ` +
        `losses ${losses}; ${transactions.rows[0].n} transactions; mesh: ${mesh.stats.sent} packets offered, ` +
        `${mesh.stats.failed} lost after retries, ${mesh.stats.ackLost} acknowledgements lost`,
    );
    assert.equal(duplicates, 0);
    assert.equal(losses, 0);
    assert.equal(rows.rows.length, held.length);
    assert.deepEqual(
      rows.rows.map((r) => toHex(r.bytes)),
      held.map((r) => toHex(r.bytes)),
      'byte for byte as the slave holds them',
    );
    assert.equal(transactions.rows[0].n, taps, 'every tap a transaction');
    assert.ok(mesh.stats.failed + mesh.stats.ackLost > 0, 'the mesh did lose packets on the way');
    // A message of the slave's (a status report) may be half across the mesh at this instant: the
    // master holds its fragments only until the message is whole and forwarded, or given up.
    const relay = again.meter.relayMaster;
    await run(clock, MINUTE, 50, () => relay?.heldBytes === 0);
    assert.equal(relay?.heldBytes, 0, 'the master holds nothing of the slave’s');

    // A master that flips one byte of a frame it relays gets it refused by ingest; nothing changes.
    assert.ok(relayed.length > 0);
    const altered = relayed[0].slice();
    altered[altered.length - 20] ^= 0x01;
    const outcome = await platform.ingest.handleUplink(uplinkTopic(slaveId), altered);
    assert.equal(outcome.ok, false);
    const after = await platform.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM records WHERE meter_id = $1',
      [slaveId],
    );
    assert.equal(after.rows[0].n, held.length);
  });
});
