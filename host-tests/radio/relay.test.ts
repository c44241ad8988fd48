// The Zigbee relay: its fragments, the slave's link and the master's unit over XBee twins on a
// virtual mesh, and whole meters where the slave reaches the platform only through the master —
// through relay loss, a master reboot, a master that alters frames, and with no path at all.
import assert from 'node:assert/strict';
import { address64Hex, XBee } from '../../drivers/radio/xbee';
import { RelayLink, RelayMaster, SharedLink } from '../../firmware/units/relay';
import type { FailoverLink } from '../../firmware/units/monitor';
import { RelaySleepDuty, type SleepyLink } from '../../firmware/units/power';
import { EventBus } from '../../firmware/bus';
import type { MeterEvents } from '../../firmware/events';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker, type VirtualMqttLink } from '../../hal/mock/mqtt';
import { VirtualSerialPort } from '../../hal/mock/serial';
import { VirtualXBee } from '../../hal/mock/xbee';
import { ZigbeeMesh } from '../../hal/mock/zigbeeMesh';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { toHex } from '../../protocol/bytes';
import { encodeParametersPush } from '../../protocol/parameters';
import { RecordKind } from '../../protocol/records';
import { ProtocolError } from '../../protocol/errors';
import {
  decodeRelay,
  encodeHello,
  encodeReady,
  FRAGMENT_HEADER,
  fragment,
  MAX_RELAY_MESSAGE,
  Reassembler,
  RelayKind,
  relayMayUse,
} from '../../protocol/relay';
import { downlinkTopic, uplinkTopic } from '../../protocol/topics';
import { VirtualPlatform } from '../../sim/fleet/virtualPlatform';
import { bootRelayMeter, keysOf, MASTER_ADDRESS, pass, passUntil, SLAVE_ADDRESS, tap } from './relayRig';

const SLAVE = 41_001;
const MASTER = 41_002;

function frameOf(n: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
}

describe('relay fragments (protocol/relay.ts)', () => {
  it('cuts a frame into payload-sized fragments and puts them back together in any order, once', () => {
    const frame = frameOf(700);
    const parts = fragment(RelayKind.UP, SLAVE, 9, frame, 84);
    assert.equal(parts.length, Math.ceil(700 / (84 - FRAGMENT_HEADER)));
    assert.ok(parts.every((p) => p.length <= 84));
    const r = new Reassembler();
    const order = parts.map((_, i) => i).reverse();
    let whole: Uint8Array | undefined;
    for (const i of order) {
      const f = decodeRelay(parts[i]);
      assert.ok(f.kind === RelayKind.UP);
      assert.equal(whole, undefined);
      whole = r.add('a', f, 0) ?? whole;
      if (i === 3) assert.equal(r.add('a', f, 0), undefined, 'a repeated fragment adds nothing');
    }
    assert.deepEqual(whole, frame);
    assert.equal(r.heldBytes, 0, 'nothing kept once the frame is handed on');
    // The last fragment resent after a lost acknowledgement does not deliver the frame twice.
    assert.equal(r.add('a', decodeRelay(parts[0]) as never, 1), undefined);
    assert.equal(r.dropped.duplicate, 2);
  });

  it('drops an assembly that does not complete in time, and one whose fragment count changes', () => {
    const r = new Reassembler({ timeoutMs: 1_000 });
    const parts = fragment(RelayKind.DOWN, SLAVE, 1, frameOf(200), 50);
    r.add('m', decodeRelay(parts[0]) as never, 0);
    assert.equal(r.pending, 1);
    r.expire(1_000);
    assert.deepEqual([r.pending, r.dropped.expired], [0, 1]);
    r.add('m', decodeRelay(parts[0]) as never, 2_000);
    const other = fragment(RelayKind.DOWN, SLAVE, 1, frameOf(100), 50);
    r.add('m', decodeRelay(other[1]) as never, 2_000);
    assert.equal(r.dropped.conflicting, 1);
  });

  it('refuses malformed relay messages with a typed error, and impossible fragmenting with a RangeError', () => {
    const bad = [
      Uint8Array.of(1, 0, 0),
      Uint8Array.of(9, 0, 0, 0, 1),
      Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0, 1, 7), // meter id 0
      Uint8Array.of(1, 0, 0, 0, 1, 0, 0, 2, 2, 7), // index 2 of 2
      Uint8Array.of(1, 0, 0, 0, 1, 0, 0, 0, 1), // no data
      Uint8Array.of(4, 0, 0, 0, 1, 2, 0, 0), // READY up 2
      Uint8Array.of(3, 0, 0, 0, 1), // HELLO without its session
    ];
    for (const b of bad) assert.throws(() => decodeRelay(b), ProtocolError, toHex(b));
    assert.throws(() => fragment(RelayKind.UP, SLAVE, 1, frameOf(10), FRAGMENT_HEADER), RangeError);
    assert.throws(() => fragment(RelayKind.UP, SLAVE, 1, new Uint8Array(0), 84), RangeError);
    assert.throws(() => fragment(RelayKind.UP, SLAVE, 1, frameOf(MAX_RELAY_MESSAGE + 1), 255), RangeError);
    assert.throws(() => fragment(RelayKind.UP, 0, 1, frameOf(10), 84), RangeError);
    assert.deepEqual(decodeRelay(encodeHello(SLAVE, 0xbeef)), {
      kind: RelayKind.HELLO,
      meterId: SLAVE,
      session: 0xbeef,
    });
    assert.deepEqual(decodeRelay(encodeReady(SLAVE, true, 7)), {
      kind: RelayKind.READY,
      meterId: SLAVE,
      up: true,
      session: 7,
    });
  });

  it('the broker rule for masters: own topics, and the assigned slaves’ uplink and downlink only', () => {
    assert.equal(relayMayUse(MASTER, [SLAVE], uplinkTopic(MASTER), 'publish'), true);
    assert.equal(relayMayUse(MASTER, [SLAVE], uplinkTopic(SLAVE), 'publish'), true);
    assert.equal(relayMayUse(MASTER, [SLAVE], downlinkTopic(SLAVE), 'subscribe'), true);
    assert.equal(relayMayUse(MASTER, [SLAVE], downlinkTopic(SLAVE), 'publish'), false);
    assert.equal(relayMayUse(MASTER, [SLAVE], uplinkTopic(SLAVE + 7), 'publish'), false);
    assert.equal(relayMayUse(MASTER, [], uplinkTopic(SLAVE), 'publish'), false);
    assert.equal(relayMayUse(MASTER, [SLAVE], 'parklink/v1/#', 'subscribe'), false);
  });
});

/** A slave RelayLink and a master RelayMaster over twins, the master on a VirtualBroker. */
function unitRig(options: { sleepySlave?: boolean } = {}) {
  const clock = new VirtualClock();
  const mesh = new ZigbeeMesh({ timers: clock, seed: 3 });
  const broker = new VirtualBroker(clock);
  const radio = (address64: string, x: number, sleepy = false) => {
    const serial = new VirtualSerialPort();
    const twin = new VirtualXBee({ mesh, address64, position: { x, y: 0 } });
    serial.attach(1, twin);
    const sleep = sleepy
      ? { request: { io: twin.sleepRequestLine(), pin: 23 }, status: { io: twin.onSleepLine(), pin: 24 } }
      : undefined;
    // The master waits the extended timeout for a Transmit Status to a sleeping slave.
    const transmitTimeoutMs = address64 === MASTER_ADDRESS && options.sleepySlave ? 100_000 : undefined;
    return {
      twin,
      driver: new XBee({
        serial: { io: serial.io, port: 1, baud: 115_200 },
        timers: clock,
        sleep,
        transmitTimeoutMs,
      }),
    };
  };
  const m = radio(MASTER_ADDRESS, 0);
  const s = radio(SLAVE_ADDRESS, 40, options.sleepySlave);
  const masterLink = broker.link();
  const master = new RelayMaster({ radio: m.driver, link: masterLink, timers: clock, clock });
  const master64 = Uint8Array.from(MASTER_ADDRESS.match(/../g)!.map((h) => Number.parseInt(h, 16)));
  const slave = new RelayLink({
    radio: s.driver,
    master: master64,
    meterId: SLAVE,
    timers: clock,
    clock,
    helloMs: 1_000,
  });
  const events = { connects: 0, disconnects: 0, messages: [] as { topic: string; payload: Uint8Array }[] };
  const open = () =>
    slave.open({
      onConnect: () => events.connects++,
      onDisconnect: () => events.disconnects++,
      onMessage: (topic, payload) => events.messages.push({ topic, payload }),
    });
  return { clock, mesh, broker, m, s, masterLink, master, slave, events, open };
}

describe('relay link (slave) and relay master over XBee twins', () => {
  it('carries a sealed frame up byte for byte and a downlink back, and the master keeps nothing', async () => {
    const rig = unitRig();
    rig.master.start();
    rig.open();
    await pass(rig.clock, 2_000, 20);
    assert.equal(rig.slave.connected, true, 'READY up after HELLO');
    assert.deepEqual(rig.master.slaves, [SLAVE]);
    const frame = frameOf(1_500, 7);
    assert.equal(rig.slave.publish(uplinkTopic(SLAVE), frame), true);
    await pass(rig.clock, 3_000, 20);
    const up = rig.broker.published.filter((p) => p.topic === uplinkTopic(SLAVE));
    assert.equal(up.length, 1);
    assert.deepEqual(up[0].payload, frame);
    assert.equal(rig.master.heldBytes, 0);

    const down = frameOf(300, 9);
    const platform = rig.broker.link();
    platform.open({ onConnect() {}, onDisconnect() {}, onMessage() {} });
    platform.publish(downlinkTopic(SLAVE), down);
    await pass(rig.clock, 2_000, 20);
    assert.deepEqual(rig.events.messages, [{ topic: downlinkTopic(SLAVE), payload: down }]);
    assert.equal(rig.master.heldBytes, 0, 'nothing kept after forwarding');
    assert.deepEqual([rig.master.stats.up, rig.master.stats.down], [1, 1]);
  });

  it('a sleeping slave stays connected; a publish wakes its module first; a downlink waits at the master until it wakes; closed, it sleeps', async () => {
    const rig = unitRig({ sleepySlave: true });
    rig.master.start();
    rig.open();
    await pass(rig.clock, 3_000, 20);
    assert.equal(rig.slave.connected, true);
    assert.equal(rig.s.twin.endDevice, true, 'configured for pin sleep (SM = 1)');
    assert.equal(rig.m.twin.endDevice, false, 'the master a router');
    assert.equal(rig.slave.sleep(), true);
    await pass(rig.clock, 100, 20);
    assert.equal(rig.s.twin.asleep, true);
    await pass(rig.clock, 10_000, 100);
    assert.equal(rig.slave.connected, true, 'asleep is not gone: no HELLO expected');
    const platform = rig.broker.link();
    platform.open({ onConnect() {}, onDisconnect() {}, onMessage() {} });
    const down = frameOf(200, 3);
    platform.publish(downlinkTopic(SLAVE), down);
    await pass(rig.clock, 5_000, 50);
    assert.equal(rig.events.messages.length, 0, 'nothing reaches it asleep');
    assert.ok(rig.mesh.heldForSleepers > 0, 'the master’s module holds it');
    const frame = frameOf(300, 5);
    assert.equal(rig.slave.publish(uplinkTopic(SLAVE), frame), true, 'a publish wakes the module');
    await pass(rig.clock, 3_000, 20);
    assert.equal(rig.s.twin.asleep, false);
    assert.deepEqual(
      rig.broker.published.filter((p) => p.topic === uplinkTopic(SLAVE)).map((p) => p.payload),
      [frame],
    );
    assert.deepEqual(
      rig.events.messages.map((m) => m.payload),
      [down],
      'the held downlink came at the wake',
    );
    assert.equal(rig.s.twin.counters.uartWhileAsleep, 0);
    rig.slave.close();
    await pass(rig.clock, 100, 20);
    assert.equal(rig.s.twin.asleep, true, 'a closed link leaves its module asleep');
    rig.open();
    await pass(rig.clock, 3_000, 20);
    assert.equal(rig.s.twin.asleep, false);
    assert.equal(rig.slave.connected, true);
  });

  it('refuses other topics, and says it is down while the master’s own connection is down', async () => {
    const rig = unitRig();
    rig.master.start();
    rig.open();
    await pass(rig.clock, 2_000, 20);
    assert.throws(() => rig.slave.publish(uplinkTopic(SLAVE + 1), frameOf(10)), RangeError);
    assert.throws(() => rig.slave.subscribe('parklink/v1/meters/+/down'), RangeError);
    (rig.masterLink as VirtualMqttLink).setSignal(false);
    await pass(rig.clock, 200, 20);
    assert.equal(rig.slave.connected, false);
    assert.equal(rig.slave.publish(uplinkTopic(SLAVE), frameOf(10)), false);
    (rig.masterLink as VirtualMqttLink).setSignal(true);
    await pass(rig.clock, 200, 20);
    assert.equal(rig.slave.connected, true);
    assert.deepEqual([rig.events.connects, rig.events.disconnects], [2, 1]);
  });

  it('goes down when the master stops answering (out of range), is forgotten by the master after a minute, and comes back when in range', async () => {
    const rig = unitRig();
    rig.master.start();
    rig.open();
    await pass(rig.clock, 2_000, 20);
    rig.s.twin.position = { x: 5_000, y: 0 };
    await pass(rig.clock, 4_500, 50);
    assert.equal(rig.slave.connected, false, 'three HELLOs unanswered');
    await pass(rig.clock, 62_000, 500);
    assert.deepEqual(rig.master.slaves, [], 'the master forgets a slave silent for a minute');
    rig.s.twin.position = { x: 40, y: 0 };
    await pass(rig.clock, 1_500, 20);
    assert.equal(rig.slave.connected, true);
  });

  it('a reset of the slave’s module takes the link down until the module is configured and the master answers again', async () => {
    const rig = unitRig();
    rig.master.start();
    rig.open();
    await pass(rig.clock, 2_000, 20);
    rig.s.twin.reset();
    await pass(rig.clock, 60, 20);
    assert.equal(rig.slave.connected, false);
    assert.equal(rig.slave.publish(uplinkTopic(SLAVE), frameOf(10)), false, 'nothing taken while down');
    await pass(rig.clock, 2_000, 20);
    assert.equal(rig.slave.connected, true);
    assert.deepEqual([rig.events.connects, rig.events.disconnects], [2, 1]);
    assert.equal(rig.slave.publish(uplinkTopic(SLAVE), frameOf(300)), true);
    await pass(rig.clock, 1_000, 20);
    assert.deepEqual(
      rig.broker.published.filter((p) => p.topic === uplinkTopic(SLAVE)).map((p) => p.payload),
      [frameOf(300)],
    );
  });

  it('a frame with a fragment lost on air is not published in part; the master drops the rest in time', async () => {
    const rig = unitRig();
    rig.master.start();
    rig.open();
    await pass(rig.clock, 2_000, 20);
    rig.s.twin.faults.deliveryFailure = { status: 0x21, count: 1 };
    rig.slave.publish(uplinkTopic(SLAVE), frameOf(400));
    await pass(rig.clock, 1_000, 20);
    assert.equal(rig.broker.published.filter((p) => p.topic === uplinkTopic(SLAVE)).length, 0);
    assert.equal(rig.slave.stats.failed, 1);
    await pass(rig.clock, 31_000, 500);
    assert.equal(rig.master.heldBytes, 0);
  });

  it('a master relays only the slaves assigned to it, and a meter’s frames only from the node that said HELLO for it', async () => {
    const clock = new VirtualClock();
    const mesh = new ZigbeeMesh({ timers: clock, seed: 4 });
    const broker = new VirtualBroker(clock);
    const node = (address64: string, x: number) => {
      const serial = new VirtualSerialPort();
      serial.attach(1, new VirtualXBee({ mesh, address64, position: { x, y: 0 } }));
      return new XBee({ serial: { io: serial.io, port: 1, baud: 115_200 }, timers: clock });
    };
    const masterRadio = node(MASTER_ADDRESS, 0);
    const slaveRadio = node(SLAVE_ADDRESS, 30);
    const intruder = node('0013a20041a70009', 20);
    const master = new RelayMaster({
      radio: masterRadio,
      link: broker.link(),
      timers: clock,
      clock,
      slaves: [SLAVE],
    });
    master.start();
    await pass(clock, 300, 20);
    const to = Uint8Array.from(MASTER_ADDRESS.match(/../g)!.map((h) => Number.parseInt(h, 16)));
    const send = async (radio: XBee, payload: Uint8Array) => {
      const status = radio.transmit(to, payload);
      await pass(clock, 100, 20);
      assert.equal((await status).ok, true);
    };
    // Not assigned: refused, however well formed.
    await send(slaveRadio, encodeHello(SLAVE + 5, 1));
    assert.deepEqual(master.slaves, []);
    // Assigned, from its node: accepted. The same meter id from another node: refused.
    await send(slaveRadio, encodeHello(SLAVE, 1));
    assert.deepEqual(master.slaves, [SLAVE]);
    const [only] = fragment(RelayKind.UP, SLAVE, 1, frameOf(20), 84);
    await send(intruder, only);
    assert.equal(broker.published.filter((p) => p.topic === uplinkTopic(SLAVE)).length, 0);
    assert.equal(master.stats.refused, 2);
    await send(slaveRadio, only);
    assert.equal(broker.published.filter((p) => p.topic === uplinkTopic(SLAVE)).length, 1);
  });

  it('the shared connection gives each user its own topics', () => {
    const clock = new VirtualClock();
    const broker = new VirtualBroker(clock);
    const shared = new SharedLink(broker.link());
    const a = shared.client();
    const b = shared.client();
    const got: string[] = [];
    a.open({ onConnect: () => a.subscribe('t/a'), onDisconnect() {}, onMessage: (t) => got.push(`a:${t}`) });
    b.open({ onConnect: () => b.subscribe('t/b'), onDisconnect() {}, onMessage: (t) => got.push(`b:${t}`) });
    const other = broker.link();
    other.open({ onConnect() {}, onDisconnect() {}, onMessage() {} });
    other.publish('t/a', Uint8Array.of(1));
    other.publish('t/b', Uint8Array.of(2));
    clock.advance(1);
    assert.deepEqual(got, ['a:t/a', 'b:t/b']);
  });
});

/** Two whole meters and a virtual platform: the slave's cellular link has no signal. */
function meterRig(
  options: {
    loss?: number;
    ackLoss?: number;
    relaySleep?: Parameters<typeof bootRelayMeter>[0]['relaySleep'];
    childSleepPeriodMs?: number;
  } = {},
) {
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  const mesh = new ZigbeeMesh({
    timers: clock,
    loss: options.loss ?? 0,
    ackLoss: options.ackLoss ?? 0,
    seed: 11,
  });
  const broker = new VirtualBroker(clock);
  const platform = new VirtualPlatform(broker, nobleCrypto);
  platform.register(SLAVE, keysOf(SLAVE));
  platform.register(MASTER, keysOf(MASTER));
  const slaveCellular = broker.link();
  slaveCellular.setSignal(false);
  const masterCellular = broker.link();
  const master = bootRelayMeter({
    meterId: MASTER,
    clock,
    mesh,
    mqtt: masterCellular,
    address64: MASTER_ADDRESS,
    x: 0,
    role: 'master',
    keys: keysOf(MASTER),
    childSleepPeriodMs: options.childSleepPeriodMs,
  });
  const slave = bootRelayMeter({
    meterId: SLAVE,
    clock,
    mesh,
    mqtt: slaveCellular,
    address64: SLAVE_ADDRESS,
    x: 45,
    role: 'slave',
    keys: keysOf(SLAVE),
    relaySleep: options.relaySleep ?? false,
  });
  const caughtUp = () => slave.meter.ledger.acknowledgedSeq === slave.meter.log.lastSeq;
  /** The slave's records at the platform: each once, in order, byte for byte. */
  const assertStoredOnce = () => {
    const held = platform.records(SLAVE);
    const mine = slave.meter.log.read(slave.meter.log.firstSeq);
    assert.deepEqual(
      held.map((h) => h.record.seq),
      mine.map((r) => r.seq),
    );
    assert.deepEqual(
      held.map((h) => toHex(h.bytes)),
      mine.map((r) => toHex(r.bytes)),
    );
  };
  return {
    clock,
    mesh,
    broker,
    platform,
    slaveCellular,
    masterCellular,
    master,
    slave,
    caughtUp,
    assertStoredOnce,
  };
}

const MINUTE = 60_000;

describe('whole meters: a slave on its master’s Zigbee relay', function () {
  this.timeout(120_000);

  it('falls back to the relay through the monitor’s ladder and gets every record stored once', async () => {
    const rig = meterRig();
    tap(rig.slave.board, rig.clock, 0);
    await pass(rig.clock, 21 * MINUTE, 1_000);
    const radio = rig.slave.meter.radio as FailoverLink;
    assert.equal(radio.active, 'zigbee-relay');
    tap(rig.slave.board, rig.clock, 1);
    assert.ok(
      await passUntil(rig.clock, rig.caughtUp, 5 * MINUTE),
      'every record acknowledged over the relay',
    );
    rig.assertStoredOnce();
    assert.ok(rig.platform.records(SLAVE).some((h) => h.record.kind === RecordKind.Transaction));
    assert.equal(rig.master.meter.relayMaster!.heldBytes, 0);
    // The master's own records went up on its own topic, untouched by the relaying.
    assert.ok(rig.platform.records(MASTER).length > 0);
  });

  it('through a lossy mesh (30 % per hop, lost acknowledgements) and a master reboot mid-relay, the slave’s XBee asleep between uploads: exactly once', async () => {
    const rig = meterRig({ loss: 0.3, ackLoss: 0.05, relaySleep: {} });
    await pass(rig.clock, 21 * MINUTE, 1_000);
    for (let i = 0; i < 4; i++) {
      tap(rig.slave.board, rig.clock, (i % 2) as 0 | 1);
      await pass(rig.clock, 5_000, 50);
    }
    // The master loses power in the middle of relaying: its board restarts from its flash.
    tap(rig.slave.board, rig.clock, 0);
    await pass(rig.clock, 400, 50);
    rig.master.meter.stop();
    rig.masterCellular.close();
    const state = rig.master.board.state;
    const again = bootRelayMeter({
      meterId: MASTER,
      clock: rig.clock,
      mesh: rig.mesh,
      mqtt: rig.broker.link(),
      address64: MASTER_ADDRESS,
      x: 0,
      role: 'master',
      state,
      seed: 99, // the board's random source gives a new relay session after the restart
    });
    tap(rig.slave.board, rig.clock, 1);
    const ok = await passUntil(rig.clock, rig.caughtUp, 30 * MINUTE);
    assert.ok(ok, 'every record acknowledged after the losses and the reboot');
    rig.assertStoredOnce();
    assert.ok(rig.mesh.stats.failed + rig.mesh.stats.ackLost > 0, 'the mesh did lose packets');
    assert.ok(rig.slave.board.xbee!.counters.sleeps > 0, 'the slave’s module slept between uploads');
    // A downlink (a repeated ack) may still wait at the master for the sleeping slave's next poll;
    // after a minute of polls the master holds nothing.
    await pass(rig.clock, MINUTE, 1_000);
    assert.equal(again.meter.relayMaster!.heldBytes, 0);
  });

  it('a master that alters a relayed frame gets it refused by the platform; nothing is stored from it', async () => {
    const rig = meterRig();
    // The master's connection flips one byte of every frame it publishes for the slave.
    const publish = rig.masterCellular.publish.bind(rig.masterCellular);
    let flipped = 0;
    let tamper = true;
    rig.masterCellular.publish = (topic, payload) => {
      if (tamper && topic === uplinkTopic(SLAVE)) {
        const altered = payload.slice();
        altered[altered.length - 20] ^= 0x01;
        flipped++;
        return publish(topic, altered);
      }
      return publish(topic, payload);
    };
    tap(rig.slave.board, rig.clock, 0);
    await pass(rig.clock, 23 * MINUTE, 1_000);
    assert.ok(flipped > 0);
    assert.equal(rig.platform.records(SLAVE).length, 0, 'no altered record stored');
    assert.ok(rig.platform.refused.some((r) => /does not authenticate/.test(r)));
    assert.equal(rig.caughtUp(), false, 'the slave keeps its records');
    tamper = false;
    assert.ok(await passUntil(rig.clock, rig.caughtUp, 15 * MINUTE));
    rig.assertStoredOnce();
  });

  it('with neither cellular nor relay the slave keeps its sets; they all go up once a path returns', async () => {
    const rig = meterRig();
    rig.masterCellular.setSignal(false); // the master has no connection either
    for (let i = 0; i < 4; i++) {
      tap(rig.slave.board, rig.clock, (i % 2) as 0 | 1);
      await pass(rig.clock, 10 * MINUTE, 1_000);
    }
    assert.equal(rig.slave.meter.monitor.states.radio, 'failed', 'escalated once the ladder is exhausted');
    assert.equal(rig.slave.meter.ledger.acknowledgedSeq, 0);
    const held = rig.slave.meter.log.lastSeq;
    assert.ok(held > 3, 'the records wait on the meter');
    rig.masterCellular.setSignal(true);
    assert.ok(await passUntil(rig.clock, rig.caughtUp, 15 * MINUTE));
    rig.assertStoredOnce();
  });
});

describe('whole meters: a slave whose XBee sleeps (pin sleep, the power unit’s RelaySleepDuty)', function () {
  this.timeout(120_000);

  /** Holds the master's publishes of the slave's frames back `ms` while `when()` says so. */
  function slowUplinks(rig: ReturnType<typeof meterRig>, ms: number, when: () => boolean): () => number {
    const publish = rig.masterCellular.publish.bind(rig.masterCellular);
    let held = 0;
    rig.masterCellular.publish = (topic, payload) => {
      if (topic === uplinkTopic(SLAVE) && when()) {
        held++;
        rig.clock.setTimeout(() => publish(topic, payload), ms);
        return true;
      }
      return publish(topic, payload);
    };
    return () => held;
  }

  it('an ack that comes while the slave sleeps waits at the master and is collected at its next poll: every record once, asleep most of the time', async () => {
    const rig = meterRig({ relaySleep: { idleMs: 500, pollEveryMs: 10_000, pollAwakeMs: 300 } });
    await pass(rig.clock, 21 * MINUTE, 1_000);
    assert.equal((rig.slave.meter.radio as FailoverLink).active, 'zigbee-relay');
    const xbee = rig.slave.board.xbee!;
    assert.equal(xbee.endDevice, true, 'the slave’s module is an end device');
    assert.equal(rig.master.board.xbee!.endDevice, false, 'the master’s is a router: it never sleeps');
    const delayed = slowUplinks(rig, 2_000, () => true); // the platform answers after the slave slept
    const heldBefore = rig.mesh.stats.held;
    const duty = rig.slave.meter.relaySleep!;
    const before = duty.times;
    for (let i = 0; i < 3; i++) {
      tap(rig.slave.board, rig.clock, (i % 2) as 0 | 1);
      await pass(rig.clock, 30_000, 50);
    }
    assert.ok(await passUntil(rig.clock, rig.caughtUp, 5 * MINUTE), 'every record acknowledged');
    rig.assertStoredOnce();
    assert.ok(delayed() > 0);
    assert.ok(rig.mesh.stats.held > heldBefore, 'the master held downlinks for its sleeping slave');
    assert.equal(rig.mesh.stats.heldLost, 0, 'none was held past its time');
    assert.ok(xbee.counters.sleeps > 3 && xbee.counters.wakes > 3);
    assert.equal(xbee.counters.uartWhileAsleep, 0, 'the driver never wrote to a sleeping module');
    const after = duty.times;
    const awake = after.awakeMs - before.awakeMs;
    const fraction = awake / (awake + after.asleepMs - before.asleepMs);
    console.log(
      `      slave XBee awake ${(100 * fraction).toFixed(1)} % of the time (3 sales, polls every 10 s)`,
    );
    assert.ok(fraction < 0.5, `awake ${(100 * fraction).toFixed(1)} % of the time`);
    assert.equal(rig.master.board.xbee!.counters.sleeps, 0);
  });

  it('the operating parameter sleepRadio switches the slave’s XBee duty cycle off (module awake) and on again', async () => {
    // Provisioned with its duty cycle on; a 0x89 body as the parameters unit takes it from the bus.
    const rig = meterRig({ relaySleep: { idleMs: 500, pollEveryMs: 10_000, pollAwakeMs: 300 } });
    await pass(rig.clock, 21 * MINUTE, 1_000);
    assert.equal((rig.slave.meter.radio as FailoverLink).active, 'zigbee-relay');
    const xbee = rig.slave.board.xbee!;
    const duty = rig.slave.meter.relaySleep!;
    assert.ok(xbee.counters.sleeps > 0, 'the module sleeps on its cycle');
    rig.slave.meter.parameters.applyDownlink(
      encodeParametersPush({ version: 1, values: { sleepRadio: false } }),
    );
    assert.equal(duty.enabled, false);
    await pass(rig.clock, 1_000, 100);
    const sleepsOff = xbee.counters.sleeps;
    assert.equal(xbee.asleep, false, 'woken when the cycle is switched off');
    tap(rig.slave.board, rig.clock, 0);
    await pass(rig.clock, 2 * MINUTE, 1_000);
    assert.equal(xbee.counters.sleeps, sleepsOff, 'and never put to sleep while it is off');
    assert.ok(await passUntil(rig.clock, rig.caughtUp, 5 * MINUTE), 'records go up with the module awake');
    rig.slave.meter.parameters.applyDownlink(
      encodeParametersPush({ version: 2, values: { sleepRadio: true } }),
    );
    await pass(rig.clock, 30_000, 500);
    assert.ok(xbee.counters.sleeps > sleepsOff, 'back on its cycle');
    rig.assertStoredOnce();
  });

  it('an ack held past the master’s buffering time is lost; the slave sends the set again and the platform stores it once', async () => {
    // The master holds a packet 1.2 s per attempt; the slave polls every 40 s: a held ack is lost.
    const rig = meterRig({
      relaySleep: { idleMs: 500, pollEveryMs: 40_000, pollAwakeMs: 300 },
      childSleepPeriodMs: 1_000,
    });
    await pass(rig.clock, 21 * MINUTE, 1_000);
    assert.ok(await passUntil(rig.clock, rig.caughtUp, 5 * MINUTE));
    let first = true;
    slowUplinks(rig, 2_000, () => {
      const now = first;
      first = false;
      return now;
    });
    const lostBefore = rig.mesh.stats.heldLost;
    const sentBefore = rig.slave.meter.relaySleep!.wakes;
    const upBefore = rig.master.meter.relayMaster!.stats.up;
    tap(rig.slave.board, rig.clock, 0);
    assert.ok(await passUntil(rig.clock, rig.caughtUp, 10 * MINUTE), 'acknowledged after the resend');
    assert.ok(rig.mesh.stats.heldLost > lostBefore, 'the first ack was held too long and lost');
    assert.ok(rig.slave.meter.relaySleep!.wakes > sentBefore);
    rig.assertStoredOnce();
    assert.ok(
      rig.master.meter.relayMaster!.stats.up - upBefore >= 2,
      'the set went up again after its ack was lost, and was not stored twice',
    );
  });
});

/** A link whose module sleeps when asked, unless busy. */
class FakeSleepyLink implements SleepyLink {
  asleep = false;
  busy = false;
  sleep(): boolean {
    if (this.busy) return false;
    this.asleep = true;
    return true;
  }
  wake(): void {
    this.asleep = false;
  }
}

describe('RelaySleepDuty (power unit): the slave module’s duty cycle', () => {
  function dutyRig() {
    const clock = new VirtualClock();
    const bus = new EventBus<MeterEvents>();
    const link = new FakeSleepyLink();
    const duty = new RelaySleepDuty({
      link,
      bus,
      timers: clock,
      clock,
      idleMs: 3_000,
      pollEveryMs: 20_000,
      pollAwakeMs: 500,
    });
    return { clock, bus, link, duty };
  }

  it('sleeps when idle, not while busy; wakes for an upload and to poll; counts the time awake', () => {
    const { clock, bus, link, duty } = dutyRig();
    duty.start();
    link.busy = true;
    clock.advance(3_000);
    assert.equal(link.asleep, false, 'a transmission under way is not cut short');
    link.busy = false;
    clock.advance(500);
    assert.equal(link.asleep, true);
    clock.advance(16_500); // 20 s since the start: the poll
    assert.equal(link.asleep, false, 'awake to poll the parent');
    clock.advance(500);
    assert.equal(link.asleep, true, 'back asleep after the poll');
    bus.emit('upload-sent', { firstSeq: 1, lastSeq: 2, frameSeq: 3 });
    assert.equal(link.asleep, false);
    clock.advance(2_999);
    assert.equal(link.asleep, false, 'idle time after the upload');
    clock.advance(1);
    assert.equal(link.asleep, true);
    const { awakeMs, asleepMs } = duty.times;
    assert.equal(awakeMs + asleepMs, clock.monotonic());
    assert.equal(awakeMs, 3_500 + 500 + 3_000);
    assert.deepEqual([duty.sleeps, duty.wakes], [3, 2]);
    duty.stop();
    clock.advance(60_000);
    assert.equal(link.asleep, true, 'stopped: no more polls');
  });
});

describe('relay addresses', () => {
  it('a 64-bit address reads as 16 hex digits', () => {
    assert.equal(address64Hex(Uint8Array.of(0, 0x13, 0xa2, 0, 0x41, 0xa7, 0, 1)), MASTER_ADDRESS);
  });
});
