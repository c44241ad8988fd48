// End to end, the meter's choice of link: a slave meter whose link is the A7670 modem twin (its MQTT
// bridged by the "operator's network" to the platform's broker), with a Zigbee neighbour (XBee
// twins on a virtual mesh; the master's own connection to the broker) and a handheld (BLE). The
// platform is real (PGlite + aedes, or PostgreSQL + Mosquitto). Phases:
//   cellular        the modem has coverage: the sets go over it;
//   no coverage     the monitor's ladder (power cycle, then fallback) moves the link to the relay;
//   coverage back   the modem connects again and the link goes back to it, the relay idle;
//   neither         no coverage and the neighbour gone: escalated, the ladder walks the paths, the
//                   sets wait on the meter and a handheld collects them and hands them in;
//   coverage back   what is left goes over the modem.
// Each record's path is read from the frames each path carried (opened with the meter's uplink key);
// at the end every record of the meter is stored exactly once at the platform, byte for byte.
import assert from 'node:assert/strict';
import { Meter } from '../../firmware/meter';
import type { FailoverLink } from '../../firmware/units/monitor';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import type { VirtualBroker } from '../../hal/mock/mqtt';
import { meterClientId, NodeMqttLink } from '../../hal/mock/mqtt.node';
import { ZigbeeMesh } from '../../hal/mock/zigbeeMesh';
import type { MqttLink } from '../../hal/mqtt';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { fromHex, toHex } from '../../protocol/bytes';
import { FrameType, openFrame } from '../../protocol/frame';
import { decodeRecordsMessage } from '../../protocol/messages';
import { decodeRecord } from '../../protocol/records';
import { uplinkTopic } from '../../protocol/topics';
import type { Platform } from '../../platform-server/platform';
import { forEachBackend, operatorLogin, randomMeterId, startPlatform } from '../../sim/fleet/platform';
import { Handheld, uploadOverHttp } from '../../sim/handheld/client';
import { bootRelayMeter, MASTER_ADDRESS, type RelayMeter, SLAVE_ADDRESS, tap } from '../radio/relayRig';

const MINUTE = 60_000;
type Path = 'cellular' | 'relay' | 'handheld';

forEachBackend(
  'link choice: cellular first, the Zigbee relay when it fails, a handheld when neither works',
  (backend) => {
    let platform: Platform;
    let drop: () => Promise<void>;
    const stops: (() => void)[] = [];

    before(async () => {
      ({ platform, drop } = await startPlatform(backend));
    });

    after(async () => {
      for (const stop of stops.reverse()) stop();
      await platform?.close();
      await drop?.();
    });

    it('sends each set over the path the ladder chose, goes back to cellular when it returns, and stores every record once', async function () {
      this.timeout(300_000);
      const slaveId = randomMeterId();
      const masterId = randomMeterId();
      // The meter's clock starts half an hour behind the platform's, so that the handheld's tokens
      // (valid an hour from their issue, by the platform's clock) cover the visits an hour on.
      const clock = new VirtualClock(new Date(Date.now() - 30 * MINUTE).toISOString());
      const mesh = new ZigbeeMesh({ timers: clock, loss: 0.05, ackLoss: 0.01, seed: 11 });
      const masterKeys = await platform.provisionMeter(masterId, 'link choice master');
      const slaveKeys = await platform.provisionMeter(slaveId, 'link choice slave');
      const uplinkKey = slaveKeys.uplink.slice();
      const admin = await operatorLogin(platform.operators, 'admin');
      const assigned = await platform.app.inject({
        method: 'PUT',
        url: `/api/meters/${masterId}/relay-slaves`,
        headers: admin.headers,
        payload: { slaves: [slaveId] },
      });
      assert.equal(assigned.statusCode, 200, assigned.body);

      // Which records each path carried, read from the frames themselves.
      const carried: Record<Path, Set<number>> = {
        cellular: new Set(),
        relay: new Set(),
        handheld: new Set(),
      };
      const note = (path: Path, frame: Uint8Array) => {
        try {
          const { header, body } = openFrame(nobleCrypto, uplinkKey, frame);
          if (header.type !== FrameType.Records) return;
          for (const bytes of decodeRecordsMessage(body).records) carried[path].add(decodeRecord(bytes).seq);
        } catch {
          // not one of the slave's record frames
        }
      };
      const brokerLink = (meterId: number, path?: Path): NodeMqttLink => {
        const link = new NodeMqttLink({
          url: platform.brokerUrl,
          clientId: meterClientId(meterId),
          ...platform.meterMqttCredentials(meterId),
        });
        stops.push(() => link.close());
        const publish = link.publish.bind(link);
        link.publish = (topic, payload) => {
          if (path && topic === uplinkTopic(slaveId)) note(path, payload);
          return publish(topic, payload);
        };
        return link;
      };

      // The master: a neighbour with its own connection, relaying for the slave.
      let master: RelayMeter | undefined = bootRelayMeter({
        meterId: masterId,
        clock,
        mesh,
        mqtt: brokerLink(masterId, 'relay'),
        address64: MASTER_ADDRESS,
        x: 0,
        role: 'master',
        keys: masterKeys,
      });
      stops.push(() => master?.meter.stop());

      // The slave: its modem's MQTT sessions reach the platform's broker through the operator's
      // network, a new broker session for each AT+CMQTTCONNECT, as the module opens them.
      const operatorNetwork = { link: (): MqttLink => brokerLink(slaveId, 'cellular') };
      const board = new VirtualBoard({
        modem: { broker: operatorNetwork as unknown as VirtualBroker },
        clock,
        seed: slaveId,
        zigbee: { mesh, address64: SLAVE_ADDRESS, position: { x: 40, y: 0 } },
      });
      provisionBoard(board.hardware, slaveKeys, slaveId);
      const meter = new Meter(board.hardware, {
        meterId: slaveId,
        bays: [1, 2],
        rate: { currency: 978, perHour: 300, minMinutes: 15, maxMinutes: 120, stepMinutes: 15 },
        relay: { role: 'slave', master: MASTER_ADDRESS },
        maintenance: { sequence: ['up', 'up', 'down', 'bay'] },
      });
      meter.start();
      stops.push(() => meter.stop());
      const radio = meter.radio as FailoverLink;
      const modem = board.modem!;

      /** Virtual time in `step` ms steps, real time in between for the broker and the database. */
      const run = async (ms: number, step: number, until?: () => boolean) => {
        for (let t = 0; t < ms; t += step) {
          if (until?.()) return true;
          clock.advance(step);
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
        return until ? until() : true;
      };
      const caughtUp = () => meter.ledger.acknowledgedSeq === meter.log.lastSeq;
      const sell = async (n: number) => {
        for (let i = 0; i < n; i++) {
          tap(board, clock, (i % 2) as 0 | 1);
          await run(20_000, 200);
        }
      };
      const seqs = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i + 1);

      // 1. Cellular.
      assert.ok(await run(5 * MINUTE, 200, () => radio.connected && master!.meter.radio.connected));
      assert.equal(radio.active, 'primary');
      const a0 = meter.log.lastSeq;
      await sell(3);
      assert.ok(await run(5 * MINUTE, 200, caughtUp), 'the cellular sets acknowledged');
      const a1 = meter.log.lastSeq;

      // 2. No coverage: the ladder power-cycles the radio, then falls back to the relay.
      modem.faults.noCoverage = true;
      modem.dropConnection();
      await run(MINUTE, 500);
      await sell(2);
      assert.ok(await run(30 * MINUTE, 1_000, () => radio.active === 'zigbee-relay' && radio.connected));
      await sell(3);
      assert.ok(await run(10 * MINUTE, 200, caughtUp), 'the relayed sets acknowledged');
      const b1 = meter.log.lastSeq;

      // 3. Coverage back: the modem connects again and the traffic goes back to it.
      modem.faults.noCoverage = false;
      assert.ok(await run(10 * MINUTE, 500, () => radio.active === 'primary' && radio.connected));
      const relayedBefore = carried.relay.size;
      await sell(3);
      assert.ok(await run(5 * MINUTE, 200, caughtUp), 'the sets after the return acknowledged');
      const c1 = meter.log.lastSeq;
      assert.equal(carried.relay.size, relayedBefore, 'the relay carried nothing once cellular was back');

      // 4. Neither: no coverage, and the neighbour gone. Escalated; the sets wait on the meter.
      modem.faults.noCoverage = true;
      modem.dropConnection();
      master.meter.stop();
      master = undefined;
      await sell(4);
      await run(35 * MINUTE, 1_000);
      assert.equal(meter.monitor.states.radio, 'failed', 'escalated: repairs did not help');
      assert.equal(radio.connected, false);
      const d1 = meter.log.lastSeq;
      assert.equal(meter.ledger.acknowledgedSeq, c1, 'nothing of this phase acknowledged over a radio');

      // A handheld visits, collects the sets and hands them in; on its next visit it carries the acks back.
      const { headers } = await operatorLogin(platform.operators, 'operator');
      const token = async () => {
        const response = await platform.app.inject({
          method: 'POST',
          url: `/api/meters/${slaveId}/maintenance-tokens`,
          headers,
          payload: { staff: 'warden.lee', seconds: 3600 },
        });
        assert.equal(response.statusCode, 201, response.body);
        const issued = response.json() as { token: string; secret: string };
        return { token: fromHex(issued.token), secret: fromHex(issued.secret), meterId: slaveId };
      };
      const post = uploadOverHttp(await platform.listen(0), headers.authorization.replace(/^Bearer /, ''));
      const handheld = new Handheld(nobleCrypto, { mtu: 64 });
      const visit = async () => {
        for (let i = 0; i < 3; i++) board.press('cancel');
        const report = handheld.visit(board.ble, await token());
        for (const set of handheld.uplinks) note('handheld', set.frame);
        return report;
      };
      const first = await visit();
      assert.ok(first.collected >= 1, 'the handheld collected the waiting sets');
      const uploaded = await handheld.upload(post);
      assert.ok(uploaded.stored > 0, 'the platform stored what the handheld handed in');
      await run(MINUTE, 500);
      const second = await visit();
      assert.ok(second.delivered >= 1 && second.acked >= d1, `acks carried back: ${JSON.stringify(second)}`);
      assert.ok(meter.ledger.acknowledgedSeq >= d1, 'the meter let the collected sets go on the acks');
      const cellularBefore = carried.cellular.size;
      const relayedThen = carried.relay.size;

      // 5. Coverage back: what is left (the visits' own records) goes over the modem.
      modem.faults.noCoverage = false;
      assert.ok(await run(15 * MINUTE, 500, () => radio.active === 'primary' && radio.connected));
      await sell(1);
      assert.ok(await run(5 * MINUTE, 200, caughtUp), 'all acknowledged at the end');
      assert.equal(carried.relay.size, relayedThen, 'the neighbour stayed gone');
      assert.ok(carried.cellular.size > cellularBefore);

      // Where each phase's records went.
      const only = (records: number[], path: Path, never: Path[]) => {
        for (const seq of records) {
          assert.ok(carried[path].has(seq), `record ${seq} went over ${path}`);
          for (const other of never)
            assert.ok(!carried[other].has(seq), `record ${seq} never went over ${other}`);
        }
      };
      only(seqs(a0, a1), 'cellular', ['relay', 'handheld']);
      only(seqs(a1, b1), 'relay', ['cellular', 'handheld']);
      only(seqs(b1, c1), 'cellular', ['relay', 'handheld']);
      only(seqs(c1, d1), 'handheld', ['relay', 'cellular']);

      // Every record of the meter stored exactly once, byte for byte.
      const rows = await platform.db.query<{ seq: string | number; bytes: Uint8Array }>(
        'SELECT seq, bytes FROM records WHERE meter_id = $1 ORDER BY seq',
        [slaveId],
      );
      const held = meter.log.read(1);
      const stored = rows.rows.map((r) => Number(r.seq));
      console.log(
        `      link choice: ${held.length} records; cellular carried ${carried.cellular.size}, relay ${carried.relay.size}, ` +
          `handheld ${carried.handheld.size}; ${rows.rows.length} stored, ${rows.rows.length - new Set(stored).size} duplicates; ` +
          `phases a ${a0}–${a1}, b –${b1}, c –${c1}, d –${d1}`,
      );
      assert.equal(new Set(stored).size, stored.length, 'no record stored twice');
      assert.deepEqual(
        stored,
        held.map((r) => r.seq),
      );
      assert.deepEqual(
        rows.rows.map((r) => toHex(new Uint8Array(r.bytes))),
        held.map((r) => toHex(r.bytes)),
      );
    });
  },
);
