// The operating parameters that reach the radio, on whole virtual meters with a platform double on
// the virtual broker: brokerHost/brokerPort move the link to a new endpoint after the acknowledgement
// has left, and back to the last working one when the new one does not connect within its trial
// (the endpoint taken out of the set in force, the platform told why); preferredLink makes the
// failover link prefer the other path; sleepRadio decides whether key input's sleep switches the
// radio off. (sleepRadio on a Zigbee slave's XBee: host-tests/radio/relay.test.ts.)
import assert from 'node:assert/strict';
import { Meter } from '../../firmware/meter';
import { FailoverLink } from '../../firmware/units/monitor';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { VIRTUAL_BROKER_ENDPOINT, VirtualBroker, type VirtualMqttLink } from '../../hal/mock/mqtt';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { deriveCardTokenKey } from '../../protocol/cardToken';
import { chainLink } from '../../protocol/chain';
import { FrameType, openFrame, sealFrame } from '../../protocol/frame';
import { deriveMeterKeys } from '../../protocol/keys';
import { decodeRecordsMessage, encodeAckMessage } from '../../protocol/messages';
import {
  decodeParametersAck,
  encodeParametersPush,
  PARAMETERS_ACK_UPLINK,
  PARAMETERS_DOWNLINK,
  type ParameterSet,
} from '../../protocol/parameters';
import { recordHeader } from '../../protocol/records';
import { decodeStatusMessage, STATUS_FRAME } from '../../protocol/status';
import { downlinkTopic, uplinkTopic } from '../../protocol/topics';

const METER = 5151;
const MASTER = new Uint8Array(32).fill(0x51);
const RATE = { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 };
const NEW = { host: 'mqtt2.parklink.example', port: 8884 };
const NOWHERE = { host: 'nowhere.parklink.example', port: 8885 };
const SECOND = 1000;

function rig(options: { fallback?: boolean; sleep?: { idleMs: number; radio?: boolean } } = {}) {
  const clock = new VirtualClock('2026-05-01T08:00:00Z');
  const broker = new VirtualBroker(clock);
  const link = broker.link();
  const fallback = options.fallback ? broker.link() : undefined;
  const board = new VirtualBoard({
    mqtt: link,
    clock,
    ...(fallback ? { fallbackMqtt: { name: 'second', link: fallback } } : {}),
  });
  const keys = deriveMeterKeys(crypto, MASTER, METER, 1);
  provisionBoard(board.hardware, { ...keys, cardTokenKey: deriveCardTokenKey(crypto, MASTER) }, METER);
  broker.refuse(NOWHERE); // nobody answers there
  const meter = new Meter(board.hardware, {
    meterId: METER,
    bays: [1, 2],
    rate: RATE,
    ...(options.sleep ? { sleep: options.sleep } : {}),
  });
  const platform = broker.link();
  const uplinks: { type: number; body: Uint8Array }[] = [];
  let downSeq = 1000;
  const down = (type: number, body: Uint8Array) => {
    platform.publish(
      downlinkTopic(METER),
      sealFrame(crypto, keys.downlink, { version: 1, type, meterId: METER, epoch: 1, seq: ++downSeq }, body),
    );
    clock.advance(10);
  };
  platform.open({
    onConnect() {},
    onDisconnect() {},
    onMessage: (_t, frame) => {
      const opened = openFrame(crypto, keys.uplink, frame);
      uplinks.push({ type: opened.header.type, body: opened.body });
      if (opened.header.type !== FrameType.Records) return;
      const set = decodeRecordsMessage(opened.body);
      let hash = set.previous;
      for (const r of set.records) hash = chainLink(crypto, hash, r);
      const seq = recordHeader(set.records[set.records.length - 1]).seq;
      clock.setTimeout(() => down(FrameType.Ack, encodeAckMessage({ seq, hash })), 0);
    },
  });
  platform.subscribe(uplinkTopic(METER));
  meter.start();
  clock.advance(10);
  const push = async (version: number, values: ParameterSet) => {
    down(PARAMETERS_DOWNLINK, encodeParametersPush({ version, values }));
    await Promise.resolve(); // the meter schedules an endpoint switch once the set is in
  };
  const acks = () =>
    uplinks.filter((u) => u.type === PARAMETERS_ACK_UPLINK).map((u) => decodeParametersAck(u.body));
  const events = () =>
    uplinks
      .filter((u) => u.type === STATUS_FRAME)
      .map((u) => decodeStatusMessage(u.body))
      .flatMap((m) => (m.kind === 'event' ? [m] : []));
  const caughtUp = () => meter.ledger.acknowledgedSeq === meter.log.lastSeq;
  return { clock, broker, link, fallback, board, meter, uplinks, push, acks, events, caughtUp };
}

describe('operating parameters that reach the radio (brokerHost/brokerPort, preferredLink, sleepRadio)', () => {
  it('moves to a new broker endpoint after acknowledging the set, and uploads go on there', async () => {
    const r = rig();
    await r.push(1, { brokerHost: NEW.host, brokerPort: NEW.port });
    const ack = r.acks().at(-1);
    assert.equal(ack?.ok, true);
    assert.deepEqual(r.link.endpoint, VIRTUAL_BROKER_ENDPOINT, 'the ack left on the endpoint that works');
    r.clock.advance(3 * SECOND);
    assert.deepEqual(r.link.endpoint, NEW);
    assert.equal(r.link.connected, true);
    assert.equal(r.meter.comms.brokerTrialPending, false, 'the trial ended: connected');
    assert.ok(r.events().some((e) => e.event === 'broker-switched'));
    r.meter.records.appendMaintenance('test', 'after the switch');
    r.clock.advance(SECOND);
    assert.ok(r.caughtUp(), 'records are acknowledged over the new endpoint');
  });

  it('goes back to the last working endpoint when the new one does not connect within the trial, and says why', async () => {
    const r = rig();
    await r.push(1, { brokerHost: NEW.host, brokerPort: NEW.port });
    r.clock.advance(3 * SECOND);
    assert.deepEqual(r.link.endpoint, NEW);
    await r.push(2, { brokerHost: NOWHERE.host, brokerPort: NOWHERE.port, uploadBatchBytes: 1024 });
    r.clock.advance(3 * SECOND);
    assert.deepEqual(r.link.endpoint, NOWHERE);
    assert.equal(r.link.connected, false);
    r.meter.records.appendMaintenance('test', 'while the endpoint is tried');
    r.clock.advance(60 * SECOND);
    assert.equal(r.caughtUp(), false, 'the record waits for a broker');
    r.clock.advance(61 * SECOND);
    assert.deepEqual(r.link.endpoint, NEW, 'back on the endpoint that worked, not the provisioned one');
    assert.equal(r.link.connected, true);
    r.clock.advance(SECOND);
    assert.ok(r.caughtUp(), 'the record waiting went up once back');
    const ack = r.acks().at(-1);
    assert.equal(ack?.ok, false);
    assert.equal(ack?.refused, 2);
    assert.match(ack?.why ?? '', /nowhere\.parklink\.example:8885 not reached within 120 s/);
    assert.deepEqual(ack?.values, { brokerHost: NEW.host, brokerPort: NEW.port, uploadBatchBytes: 1024 });
    assert.deepEqual(r.meter.parameters.values, ack?.values, 'the rest of the set stays in force');
    assert.ok(r.events().some((e) => e.event === 'broker-rolled-back' && e.severity === 'warning'));
    assert.deepEqual(
      (r.link as VirtualMqttLink).endpointsTried.map((e) => e.host),
      [VIRTUAL_BROKER_ENDPOINT.host, NEW.host, NOWHERE.host, NEW.host],
    );
  });

  it('a first endpoint that never answers leaves the provisioned one in force, also after a restart', async () => {
    const r = rig();
    await r.push(1, { brokerHost: NOWHERE.host, brokerPort: NOWHERE.port });
    r.clock.advance(125 * SECOND);
    assert.deepEqual(r.link.endpoint, VIRTUAL_BROKER_ENDPOINT);
    assert.equal(r.link.connected, true);
    assert.deepEqual(r.meter.parameters.values, {}, 'the endpoint left the set in force');
    // A restart hands the stored set to the units again: nothing tries the bad endpoint.
    r.meter.stop();
    const again = new Meter(r.board.hardware, { meterId: METER, bays: [1, 2], rate: RATE });
    again.start();
    await Promise.resolve();
    r.clock.advance(5 * SECOND);
    assert.deepEqual(r.link.endpoint, VIRTUAL_BROKER_ENDPOINT);
    assert.equal(again.comms.brokerTrialPending, false);
    again.stop();
  });

  it('a set that leaves the endpoint as it is does not move the link', async () => {
    const r = rig();
    const tried = (r.link as VirtualMqttLink).endpointsTried.length;
    await r.push(1, { brokerHost: VIRTUAL_BROKER_ENDPOINT.host, brokerPort: VIRTUAL_BROKER_ENDPOINT.port });
    r.clock.advance(5 * SECOND);
    assert.equal((r.link as VirtualMqttLink).endpointsTried.length, tried);
    assert.equal(r.meter.comms.brokerTrialPending, false);
    assert.equal(r.acks().at(-1)?.ok, true);
  });

  it('preferredLink fallback moves the traffic to the second path once it is connected, and primary back', async () => {
    const r = rig({ fallback: true });
    const radio = r.meter.radio;
    assert.ok(radio instanceof FailoverLink);
    assert.equal(radio.active, 'primary');
    await r.push(1, { preferredLink: 'fallback' });
    r.clock.advance(SECOND);
    assert.equal(radio.active, 'second');
    assert.equal(radio.preferred, 'second');
    r.meter.records.appendMaintenance('test', 'on the preferred path');
    r.clock.advance(SECOND);
    assert.ok(r.caughtUp());
    // The preferred path lost: the monitor's ladder falls back to the other one; it returns on connect.
    r.fallback!.setSignal(false);
    r.clock.advance(25 * 60 * SECOND);
    assert.equal(radio.active, 'primary', 'a preferred path that is down strands nothing');
    r.fallback!.setSignal(true);
    r.clock.advance(SECOND);
    assert.equal(radio.active, 'second', 'back on the preferred path as soon as it connects');
    await r.push(2, { preferredLink: 'primary' });
    r.clock.advance(SECOND);
    assert.equal(radio.active, 'primary');
    assert.equal(r.fallback!.connected, false, 'the path no longer preferred is closed');
  });

  it('sleepRadio decides whether key input’s sleep switches the radio off', async () => {
    const r = rig({ sleep: { idleMs: 60 * SECOND } });
    r.clock.advance(61 * SECOND);
    assert.equal(r.link.powered, true, 'provisioned without the radio in sleep');
    r.board.press('ok');
    r.clock.advance(SECOND);
    await r.push(1, { sleepRadio: true, sleepIdleSeconds: 30 });
    r.clock.advance(31 * SECOND);
    assert.equal(r.link.powered, false, 'the radio sleeps with display and reader');
    r.board.press('ok');
    r.clock.advance(SECOND);
    assert.equal(r.link.powered, true, 'a key wakes it');
    await r.push(2, { sleepRadio: false, sleepIdleSeconds: 30 });
    r.clock.advance(31 * SECOND);
    assert.equal(r.link.powered, true, 'switched off by parameter: the radio stays on');
  });
});
