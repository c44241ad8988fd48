import assert from 'node:assert/strict';
import sinon from 'sinon';
import { EventBus } from '../../firmware/bus';
import type { MeterEvents } from '../../firmware/events';
import { CommsUnit } from '../../firmware/units/comms';
import { MainRecord } from '../../firmware/units/records';
import { SecurityUnit } from '../../firmware/units/security';
import { RecordLog, UploadLedger } from '../../firmware/units/storage';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualNorFlash } from '../../hal/mock/flash';
import { MemoryPreferences } from '../../hal/mock/preferences';
import type { MqttEvents, MqttLink } from '../../hal/mqtt';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { FRAME_VERSION, FrameType, openFrame, sealFrame } from '../../protocol/frame';
import { deriveMeterKeys } from '../../protocol/keys';
import { decodeRecordsMessage, encodeAckMessage } from '../../protocol/messages';
import { downlinkTopic } from '../../protocol/topics';

describe('event bus', () => {
  it('delivers in order and reports a failing subscriber as a fault without stopping the others', () => {
    const bus = new EventBus<MeterEvents>();
    const first = sinon.spy();
    const failing = sinon.stub().throws(new Error('boom'));
    const last = sinon.spy();
    const faults = sinon.spy();
    bus.on('key', first);
    bus.on('key', failing);
    bus.on('key', last);
    bus.on('fault', faults);
    bus.emit('key', { key: 'ok' });
    sinon.assert.callOrder(first, failing, last);
    sinon.assert.calledOnceWithExactly(last, { key: 'ok' });
    sinon.assert.calledOnce(faults);
    assert.equal((faults.firstCall.args[0].error as Error).message, 'boom');
  });

  it('stops delivering after cancel', () => {
    const bus = new EventBus<MeterEvents>();
    const handler = sinon.spy();
    bus.on('key', handler).cancel();
    bus.emit('key', { key: 'ok' });
    sinon.assert.notCalled(handler);
  });
});

/** A link the test drives by hand, with sinon spies on what the meter does with it. */
function fakeLink() {
  let events: MqttEvents | undefined;
  const state = { connected: false };
  const link = {
    get connected() {
      return state.connected;
    },
    open: sinon.spy((e: MqttEvents) => {
      events = e;
    }),
    subscribe: sinon.spy(),
    publish: sinon.spy((_topic: string, _payload: Uint8Array): boolean => state.connected),
    close: sinon.spy(),
  };
  return {
    link: link as typeof link & MqttLink,
    connect() {
      state.connected = true;
      events!.onConnect();
    },
    deliver(topic: string, payload: Uint8Array) {
      events!.onMessage(topic, payload);
    },
  };
}

describe('communication management (412)', () => {
  const keys = deriveMeterKeys(crypto, new Uint8Array(32).fill(9), 5, 1);

  function setup() {
    const clock = new VirtualClock();
    const preferences = new MemoryPreferences();
    SecurityUnit.provision(preferences, keys);
    const log = new RecordLog(new VirtualNorFlash({ byteLength: 4 * 4096 }));
    const ledger = new UploadLedger(preferences);
    const bus = new EventBus<MeterEvents>();
    const records = new MainRecord({ log, ledger, crypto, clock, meterId: 5 });
    const security = new SecurityUnit({ preferences, crypto, meterId: 5 });
    const fake = fakeLink();
    const comms = new CommsUnit({
      link: fake.link,
      security,
      log,
      ledger,
      crypto,
      clock,
      timers: clock,
      bus,
      ackTimeoutMs: 1000,
    });
    return { clock, log, ledger, bus, records, comms, fake, preferences };
  }

  function ackFor(payload: Uint8Array, downlinkSeq: number) {
    const up = openFrame(crypto, keys.uplink, payload);
    const message = decodeRecordsMessage(up.body);
    return {
      message,
      seal: (seq: number, hash: Uint8Array) =>
        sealFrame(
          crypto,
          keys.downlink,
          { version: FRAME_VERSION, type: FrameType.Ack, meterId: 5, epoch: 1, seq: downlinkSeq },
          encodeAckMessage({ seq, hash }),
        ),
    };
  }

  it('sends nothing while the link is down, then one set at a time once it is up', () => {
    const { records, comms, fake } = setup();
    comms.start();
    records.appendOperation('a', '1');
    records.appendOperation('a', '2');
    comms.flush();
    sinon.assert.notCalled(fake.link.publish);
    fake.connect();
    sinon.assert.calledOnceWithExactly(fake.link.subscribe, downlinkTopic(5));
    sinon.assert.calledOnce(fake.link.publish);
    records.appendOperation('a', '3');
    comms.flush();
    sinon.assert.calledOnce(fake.link.publish); // stop and wait: the first set is not acknowledged yet
    const { message } = ackFor(fake.link.publish.firstCall.args[1], 1);
    assert.equal(message.records.length, 2);
  });

  it('resends with doubling backoff until acknowledged, then sends the rest', () => {
    const { records, comms, fake, clock, log, ledger } = setup();
    comms.start();
    fake.connect();
    const times: number[] = [];
    fake.link.publish = sinon.spy((_t: string, _p: Uint8Array) => {
      times.push(clock.monotonic());
      return true;
    }) as typeof fake.link.publish;
    records.appendOperation('a', '1');
    comms.flush();
    clock.advance(1000 + 2000 + 4000 + 10);
    assert.deepEqual(times, [0, 1000, 3000, 7000]);
    const last = fake.link.publish.lastCall.args[1];
    const up = openFrame(crypto, keys.uplink, last);
    assert.ok(up.header.seq > 1, 'each resend is a new frame with a new sequence number');
    records.appendOperation('a', '2');
    comms.flush(); // waiting for the ack: sends nothing
    assert.equal(times.length, 4);
    fake.deliver(downlinkTopic(5), ackFor(last, 1).seal(1, log.linkOf(1)!));
    assert.equal(ledger.acknowledgedSeq, 1);
    const next = decodeRecordsMessage(
      openFrame(crypto, keys.uplink, fake.link.publish.lastCall.args[1]).body,
    );
    assert.equal(next.records.length, 1, 'the record appended meanwhile goes next');
  });

  it('refuses an ack whose link the meter does not hold, and keeps the records', () => {
    const { records, comms, fake, ledger, bus } = setup();
    const refused = sinon.spy();
    bus.on('downlink-refused', refused);
    comms.start();
    fake.connect();
    records.appendOperation('a', '1');
    comms.flush();
    fake.deliver(downlinkTopic(5), ackFor(fake.link.publish.lastCall.args[1], 1).seal(1, new Uint8Array(32)));
    sinon.assert.calledOnceWithExactly(refused, { reason: 'chain-broken' });
    assert.equal(ledger.acknowledgedSeq, 0);
  });

  it('never reuses an uplink frame sequence number across restarts', () => {
    const { preferences } = setup();
    const seen = new Set<number>();
    for (let boot = 0; boot < 3; boot++) {
      const security = new SecurityUnit({ preferences, crypto, meterId: 5 });
      for (let i = 0; i < 70; i++) {
        const seq = openFrame(crypto, keys.uplink, security.sealUplink(FrameType.Records, new Uint8Array(1)))
          .header.seq;
        assert.ok(!seen.has(seq), `sequence ${seq} reused after restart ${boot}`);
        seen.add(seq);
      }
    }
  });
});
