// Operating parameters (0x89/0x09) and the platform's messages and bay modes (0x85) on whole
// virtual meters: a set is applied by the units that own its values and acknowledged; a set with a
// value out of range is refused whole; a power cut during the write leaves the old set; a local
// change in a maintenance session is reported; a message shows only in its window; a suspended
// bay refuses a sale with a clear message, a free bay sells nothing and says free.
import assert from 'node:assert/strict';
import { Meter } from '../../firmware/meter';
import { ParametersUnit } from '../../firmware/units/parameters';
import { StorageWatch } from '../../firmware/units/storageWatch';
import { EventBus } from '../../firmware/bus';
import type { MeterEvents } from '../../firmware/events';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { MemoryPreferences } from '../../hal/mock/preferences';
import type { PreferenceValue } from '../../hal/preferences';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { deriveCardTokenKey } from '../../protocol/cardToken';
import { openFrame, sealFrame } from '../../protocol/frame';
import {
  deriveMeterKeys,
  encodeMaintenanceToken,
  maintenanceProof,
  maintenanceSecret,
} from '../../protocol/keys';
import {
  decodeParametersAck,
  encodeParametersPush,
  PARAMETERS_ACK_UPLINK,
  PARAMETERS_DOWNLINK,
  ParameterError,
  validateParameters,
} from '../../protocol/parameters';
import {
  decodeTariffAck,
  decodeTariffPush,
  encodeTariffPush,
  TARIFF_ACK_UPLINK,
  TARIFF_DOWNLINK,
} from '../../protocol/tariff';
import { encodeCbor } from '../../protocol/cbor';
import { downlinkTopic, uplinkTopic } from '../../protocol/topics';
import { HandheldConnection } from '../../sim/handheld/client';

const METER = 4343;
const MASTER = new Uint8Array(32).fill(0x43);
const RATE = { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 };

function rig() {
  const clock = new VirtualClock('2026-05-01T08:00:00Z');
  const broker = new VirtualBroker(clock);
  const board = new VirtualBoard({ mqtt: broker.link(), clock, sensors: true });
  const keys = deriveMeterKeys(crypto, MASTER, METER, 1);
  provisionBoard(board.hardware, { ...keys, cardTokenKey: deriveCardTokenKey(crypto, MASTER) }, METER);
  const meter = new Meter(board.hardware, {
    meterId: METER,
    bays: [1, 2],
    rate: RATE,
    sleep: { idleMs: 60_000 },
  });
  meter.start();
  const platform = broker.link();
  const uplinks: { type: number; body: Uint8Array }[] = [];
  platform.open({
    onConnect() {},
    onDisconnect() {},
    onMessage: (_t, frame) => {
      const opened = openFrame(crypto, keys.uplink, frame);
      uplinks.push({ type: opened.header.type, body: opened.body });
    },
  });
  platform.subscribe(uplinkTopic(METER));
  let seq = 1000;
  const down = (type: number, body: Uint8Array) => {
    const frame = sealFrame(
      crypto,
      keys.downlink,
      { version: 1, type, meterId: METER, epoch: 1, seq: ++seq },
      body,
    );
    platform.publish(downlinkTopic(METER), frame);
    clock.advance(10);
  };
  const acks = () =>
    uplinks.filter((u) => u.type === PARAMETERS_ACK_UPLINK).map((u) => decodeParametersAck(u.body));
  clock.advance(10);
  return { clock, board, meter, keys, down, uplinks, acks };
}

describe('operating parameters on a meter (0x89/0x09)', () => {
  it('applies a set in the units that own each value and acknowledges the values in force', () => {
    const r = rig();
    r.down(
      PARAMETERS_DOWNLINK,
      encodeParametersPush({ version: 3, values: { statusIntervalSeconds: 900, uploadBatchBytes: 1024 } }),
    );
    assert.equal(r.meter.guard?.settings.statusSeconds, 900);
    assert.equal(r.meter.parameters.version, 3);
    const ack = r.acks().at(-1);
    assert.deepEqual(ack, {
      version: 3,
      ok: true,
      local: false,
      values: { statusIntervalSeconds: 900, uploadBatchBytes: 1024 },
    });
  });

  it('refuses a set with one value out of range whole, naming it, and keeps the set in force', () => {
    const r = rig();
    r.down(PARAMETERS_DOWNLINK, encodeParametersPush({ version: 3, values: { statusIntervalSeconds: 900 } }));
    r.down(
      PARAMETERS_DOWNLINK,
      encodeParametersPush({ version: 4, values: { statusIntervalSeconds: 1200, sleepIdleSeconds: 1 } }),
    );
    const ack = r.acks().at(-1);
    assert.equal(ack?.ok, false);
    assert.equal(ack?.refused, 4);
    assert.equal(ack?.version, 3);
    assert.match(ack?.why ?? '', /sleepIdleSeconds/);
    assert.equal(r.meter.guard?.settings.statusSeconds, 900, 'nothing of the refused set was applied');
    assert.deepEqual(r.meter.parameters.values, { statusIntervalSeconds: 900 });
  });

  it('answers a repeated or older version with the set it holds, without applying it again', () => {
    const r = rig();
    r.down(PARAMETERS_DOWNLINK, encodeParametersPush({ version: 5, values: { statusIntervalSeconds: 900 } }));
    r.down(PARAMETERS_DOWNLINK, encodeParametersPush({ version: 4, values: { statusIntervalSeconds: 600 } }));
    assert.equal(r.meter.guard?.settings.statusSeconds, 900);
    assert.deepEqual(
      r.acks().map((a) => [a.version, a.ok]),
      [
        [5, true],
        [5, true],
      ],
    );
  });

  it('a malformed body is refused with a reason and the set in force kept', () => {
    const r = rig();
    r.down(PARAMETERS_DOWNLINK, encodeCbor({ v: 'two', p: {} }));
    const ack = r.acks().at(-1);
    assert.equal(ack?.ok, false);
    assert.match(ack?.why ?? '', /version/);
  });

  it('keeps the set across a restart and hands it to the units again', () => {
    const r = rig();
    r.down(
      PARAMETERS_DOWNLINK,
      encodeParametersPush({ version: 2, values: { statusIntervalSeconds: 1800 } }),
    );
    const again = new Meter(r.board.hardware, { meterId: METER, bays: [1, 2], rate: RATE });
    assert.equal(again.parameters.version, 2);
    assert.equal(again.guard?.settings.statusSeconds, 1800);
  });

  it('a local change needs a maintenance session, and is reported to the platform as local', () => {
    const r = rig();
    r.down(PARAMETERS_DOWNLINK, encodeParametersPush({ version: 3, values: { statusIntervalSeconds: 900 } }));
    assert.throws(() => r.meter.parameters.setLocal({ statusIntervalSeconds: 600 }), ParameterError);
    assert.equal(r.meter.guard?.settings.statusSeconds, 900);
    r.meter.bus.emit('maintenance-entry', {}); // the mode key switches the handheld link on
    const early = new HandheldConnection(r.board.ble).request({
      t: 'params',
      set: { statusIntervalSeconds: 600 },
    });
    assert.deepEqual(early, { t: 'refused', why: 'not authorised' });
    r.board.ble.disconnect();
    // The technician's handheld proves its token: the authenticated maintenance session.
    const now = Math.floor(r.clock.now() / 1000);
    const token = encodeMaintenanceToken({
      meterId: METER,
      staff: 'alice',
      tokenId: 1,
      notBefore: now - 10,
      expiresAt: now + 600,
    });
    const secret = maintenanceSecret(crypto, r.keys.secrets!.m, token);
    r.meter.bus.emit('maintenance-entry', {});
    const conn = new HandheldConnection(r.board.ble);
    const challenge = conn.request({ t: 'hello', token }) as { t: string; c: Uint8Array };
    conn.request({ t: 'proof', p: maintenanceProof(crypto, secret, challenge.c, METER) });
    assert.equal(r.meter.securityManagement.handheldStaff, 'alice');
    // The technician's handheld sends the change in its session: a bad value is refused whole.
    const bad = conn.request({ t: 'params', set: { statusIntervalSeconds: 5 } }) as {
      ok: boolean;
      why: string;
    };
    assert.equal(bad.ok, false);
    assert.match(bad.why, /statusIntervalSeconds/);
    assert.equal(r.meter.guard?.settings.statusSeconds, 900);
    const answer = conn.request({ t: 'params', set: { statusIntervalSeconds: 600 } });
    assert.deepEqual(answer, { t: 'params', ok: true, v: 3, local: true, p: { statusIntervalSeconds: 600 } });
    r.clock.advance(10);
    assert.equal(r.meter.guard?.settings.statusSeconds, 600);
    const ack = { version: 3, ok: true, local: true, values: { statusIntervalSeconds: 600 } };
    assert.deepEqual(r.acks().at(-1), ack, 'the local change went to the platform');
    // The next platform set replaces the local change.
    r.down(
      PARAMETERS_DOWNLINK,
      encodeParametersPush({ version: 4, values: { statusIntervalSeconds: 1200 } }),
    );
    assert.deepEqual(r.acks().at(-1), {
      version: 4,
      ok: true,
      local: false,
      values: { statusIntervalSeconds: 1200 },
    });
  });
});

describe('operating parameters across a power cut', () => {
  /** Preferences whose next write of the parameter set never happens: power lost during it. */
  class CutPreferences extends MemoryPreferences {
    cut = false;
    override set(domain: string, key: string, value: PreferenceValue): void {
      if (this.cut && domain === 'params') {
        this.cut = false;
        throw new Error('power lost');
      }
      super.set(domain, key, value);
    }
  }
  const applied: number[] = [];
  const unit = (prefs: MemoryPreferences, sent: Uint8Array[] = []) =>
    new ParametersUnit({
      preferences: prefs,
      send: (_t, body) => sent.push(body) > 0,
      sessionStaff: () => undefined,
      appliers: { statusIntervalSeconds: (s) => applied.push(s) },
    });

  it('a cut during the write leaves the old set in force and unacknowledged; the push again applies it', () => {
    const prefs = new CutPreferences();
    const before = unit(prefs);
    before.applyDownlink(encodeParametersPush({ version: 1, values: { statusIntervalSeconds: 600 } }));
    prefs.cut = true;
    const sent: Uint8Array[] = [];
    const during = unit(prefs, sent);
    assert.throws(
      () =>
        during.applyDownlink(encodeParametersPush({ version: 2, values: { statusIntervalSeconds: 900 } })),
      /power lost/,
    );
    assert.equal(sent.length, 0, 'no acknowledgement: the platform still sees version 1');
    applied.length = 0;
    const after = unit(new MemoryPreferences(prefs.entries), sent);
    assert.equal(after.version, 1);
    assert.deepEqual(applied, [600], 'the old set is handed to the units at boot');
    after.applyDownlink(encodeParametersPush({ version: 2, values: { statusIntervalSeconds: 900 } }));
    assert.equal(decodeParametersAck(sent.at(-1)!).version, 2);
  });

  it('a cut after the write, before the units took it: the boot hands them the new set', () => {
    const prefs = new MemoryPreferences();
    let throwInApplier = true;
    const first = new ParametersUnit({
      preferences: prefs,
      sessionStaff: () => undefined,
      appliers: {
        statusIntervalSeconds: () => {
          if (throwInApplier) throw new Error('power lost');
        },
      },
    });
    assert.throws(() =>
      first.applyDownlink(encodeParametersPush({ version: 7, values: { statusIntervalSeconds: 900 } })),
    );
    throwInApplier = false;
    applied.length = 0;
    const booted = unit(new MemoryPreferences(prefs.entries));
    assert.equal(booted.version, 7);
    assert.deepEqual(applied, [900]);
  });
});

describe('storage threshold (storageNearlyFullPercent)', () => {
  it('raises a nearly-full warning when unacknowledged records cross it, clears it below', () => {
    const clock = new VirtualClock('2026-05-01T08:00:00Z');
    const bus = new EventBus<MeterEvents>();
    const events: MeterEvents['status-event'][] = [];
    bus.on('status-event', (e) => events.push(e));
    let free = 1000;
    const watch = new StorageWatch({ bus, clock, freeBytes: () => free, totalBytes: 1000 });
    free = 250; // 75% used: below the default 80%
    bus.emit('upload-acknowledged', { seq: 1 });
    assert.equal(events.length, 0);
    watch.setThreshold(70);
    assert.deepEqual(
      events.map((e) => [e.event, e.active, e.value]),
      [['storage-nearly-full', true, 750]],
    );
    free = 600;
    bus.emit('upload-acknowledged', { seq: 2 });
    assert.deepEqual(events.at(-1)?.active, false);
    assert.equal(watch.nearlyFull, false);
  });

  it('a meter hands the parameter to its watch', () => {
    const r = rig();
    r.down(
      PARAMETERS_DOWNLINK,
      encodeParametersPush({ version: 1, values: { storageNearlyFullPercent: 60 } }),
    );
    assert.equal(r.meter.storageWatch.threshold, 60);
  });
});

describe('parameter rules', () => {
  it('refuses unknown names, values out of range, a host without a port', () => {
    assert.throws(() => validateParameters({ colour: 'red' }), /colour is not a parameter/);
    assert.throws(() => validateParameters({ uploadIntervalSeconds: 9 }), /uploadIntervalSeconds/);
    assert.throws(() => validateParameters({ storageNearlyFullPercent: 100 }), /storageNearlyFullPercent/);
    assert.throws(() => validateParameters({ preferredLink: 'pigeon' }), /preferredLink/);
    assert.throws(() => validateParameters({ brokerHost: 'mqtt.example.net' }), /brokerPort/);
    assert.throws(() => validateParameters({ brokerHost: 'bad host', brokerPort: 8883 }), /brokerHost/);
    assert.deepEqual(
      validateParameters({ brokerHost: 'mqtt.example.net', brokerPort: 8883, sleepRadio: true }),
      {
        brokerHost: 'mqtt.example.net',
        brokerPort: 8883,
        sleepRadio: true,
      },
    );
  });
});

describe('messages and bay modes on a meter (0x85)', () => {
  const at = (clock: VirtualClock) => Math.floor(clock.now() / 1000);

  it('shows a message only within its window', () => {
    const r = rig();
    const now = at(r.clock);
    r.down(
      TARIFF_DOWNLINK,
      encodeTariffPush({
        kind: 'message',
        version: 1,
        text: 'Market Sunday',
        start: now + 3600,
        until: now + 7200,
      }),
    );
    r.meter.information.showIdle();
    assert.doesNotMatch(r.board.display.text, /Market Sunday/);
    r.clock.advance(3600_000);
    r.meter.information.showIdle();
    assert.match(r.board.display.text, /Market Sunday/);
    r.clock.advance(3600_000);
    r.meter.information.showIdle();
    assert.doesNotMatch(r.board.display.text, /Market Sunday/);
  });

  it('a suspended bay refuses a sale with a clear message, only within its window', () => {
    const r = rig();
    const now = at(r.clock);
    r.down(
      TARIFF_DOWNLINK,
      encodeTariffPush({
        kind: 'bays',
        version: 1,
        bays: { '1': { mode: 'suspended', start: now, end: now + 3600 } },
      }),
    );
    const ack = decodeTariffAck(r.uplinks.filter((u) => u.type === TARIFF_ACK_UPLINK).at(-1)!.body);
    assert.deepEqual(ack, { kind: 'bays', version: 1, ok: true });
    assert.match(r.board.display.text, /Bay 1 suspended/);
    r.board.press('ok'); // bay 1 selected
    assert.match(r.board.display.text.replace(/\n/g, ' '), /Bay 1 Suspended for works\. No sale\./);
    r.board.press('ok'); // no card is asked for
    assert.equal(r.meter.transactions.state, 'selecting');
    r.board.press('cancel');
    r.clock.advance(3600_000);
    r.board.press('ok'); // wakes the meter from its sleep
    r.board.press('ok');
    assert.match(r.board.display.text, /Fee/, 'sold again once the works are over');
  });

  it('no parking refuses, free sells nothing and says free; modes survive a restart', () => {
    const r = rig();
    r.down(
      TARIFF_DOWNLINK,
      encodeTariffPush({ kind: 'bays', version: 1, bays: { '1': 'no-parking', '2': 'free' } }),
    );
    r.board.press('ok');
    assert.match(r.board.display.text.replace(/\n/g, ' '), /Bay 1 No parking\. No sale\./);
    r.board.press('bay');
    assert.match(r.board.display.text.replace(/\n/g, ' '), /Bay 2 Free parking: no payment needed\./);
    r.board.press('ok');
    assert.equal(r.meter.transactions.state, 'selecting');
    const again = new Meter(r.board.hardware, { meterId: METER, bays: [1, 2], rate: RATE });
    assert.equal(again.charging.bayMode(1, at(r.clock)), 'no-parking');
    assert.equal(again.charging.firstPayment(2, at(r.clock), 30).ok, false);
  });

  it('old bodies still decode; an end before the start is refused', () => {
    assert.deepEqual(decodeTariffPush(encodeCbor({ k: 'bays', v: 2, bays: { '3': 'unavailable' } })), {
      kind: 'bays',
      version: 2,
      bays: { '3': 'unavailable' },
    });
    assert.deepEqual(decodeTariffPush(encodeCbor({ k: 'message', v: 2, text: 'hi', until: 10 })), {
      kind: 'message',
      version: 2,
      text: 'hi',
      until: 10,
    });
    assert.throws(
      () =>
        decodeTariffPush(encodeCbor({ k: 'bays', v: 2, bays: { '3': { m: 'free', start: 10, end: 5 } } })),
      /end/,
    );
    assert.throws(() => decodeTariffPush(encodeCbor({ k: 'bays', v: 2, bays: { '3': 'closed' } })), /bays.3/);
  });
});
