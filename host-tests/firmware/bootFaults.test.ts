// Parts that do not answer when the meter is built: the meter boots degraded instead of throwing out
// of `new Meter`, the monitor records the fault and reports it to the platform, its repair ladder
// retries, and the module is back in service once the chip answers; only the sales that need the
// part stop, and nothing stored is lost.
import assert from 'node:assert/strict';
import type { MeterEvents } from '../../firmware/events';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { purseCard } from '../../hal/mock/cards';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { deriveMeterKeys } from '../../protocol/keys';
import { FRAME_VERSION, sealFrame } from '../../protocol/frame';
import { decodeRecord, RecordKind } from '../../protocol/records';
import { encodeRenewal, RENEWAL_FRAME } from '../../protocol/renewal';
import { downlinkTopic } from '../../protocol/topics';
import { Rig, RIG_METER } from '../sensors/rig';
import { VirtualPlatform } from '../../sim/fleet/virtualPlatform';
import { deriveCardTokenKey } from '../../protocol/cardToken';

const MINUTE = 60_000;
/** The monitor tries a failed module again every 5 minutes. */
const RETRY_MS = 5 * MINUTE;

function card(cardNumber: string) {
  return purseCard([0x04, 0x51, 0x62, 0x73], {
    cardNumber,
    cardType: 1,
    balance: 20_000,
    limit: 0,
    expiry: { year: 2028, month: 12 },
    counter: 0,
    currency: 826,
  }).card;
}

/** Bay 1, the first step, a card held to the reader: what the meter said. */
function payAtBay1(rig: { board: VirtualBoard; clock: VirtualClock; meter: Meter }, cardNumber: string) {
  const outcomes: string[] = [];
  const subscriptions = [
    rig.meter.bus.on('payment-accepted', () => outcomes.push('accepted')),
    rig.meter.bus.on('payment-refused', (r) => outcomes.push(`refused: ${r.reason}`)),
  ];
  const held = card(cardNumber);
  rig.board.press('ok');
  rig.board.press('ok');
  rig.board.field.add(held);
  rig.clock.advance(300);
  rig.board.field.remove(held);
  for (const s of subscriptions) s.cancel();
  return outcomes;
}

/**
 * A downlink sealed as the platform would, numbered 50: above the virtual platform's acks (it
 * numbers them from 1) and within the meter's replay window, so both are accepted.
 */
function platformDownlink(rig: Rig, type: number, body: Uint8Array): void {
  const frame = sealFrame(
    nobleCrypto,
    rig.keys.downlink,
    { version: FRAME_VERSION, type, meterId: RIG_METER, epoch: rig.keys.epoch, seq: 50 },
    body,
  );
  const link = rig.broker.link();
  link.open({ onConnect() {}, onDisconnect() {}, onMessage() {} });
  link.publish(downlinkTopic(RIG_METER), frame);
  rig.clock.advance(10);
}

function transactions(meter: Meter) {
  return meter.log
    .read(meter.log.firstSeq)
    .map((r) => decodeRecord(r.bytes))
    .filter((r) => r.kind === RecordKind.Transaction);
}

/** The chain of the meter's stored records verifies from its first record to its last. */
function assertChainWhole(meter: Meter): void {
  const stored = meter.log.read(meter.log.firstSeq);
  assert.equal(stored.length, meter.log.lastSeq - meter.log.firstSeq + 1, 'no gap in the store');
  assert.equal(meter.records.verifyChain(), stored.length, 'every stored record verifies');
}

describe('parts that fail at boot leave a degraded meter that reports and repairs itself', () => {
  it('no reader at boot: the meter builds, records and reports the fault, refuses card sales, takes renewals, and sells again once the reader answers', () => {
    const rig = new Rig({
      start: false,
      prepare: (board) => {
        board.readerAbsent = true;
      },
    });
    const platform = new VirtualPlatform(rig.broker, nobleCrypto);
    platform.register(RIG_METER, rig.keys);
    rig.meter.start();
    rig.clock.advance(2_000);

    const monitor = rig.meter.monitor;
    assert.equal(monitor.states.reader, 'failed');
    assert.ok(
      rig
        .operations('fault')
        .some((o) => /^reader\/reader: MFRC522 not found: VersionReg 0x00/.test(o.detail)),
      rig
        .operations('fault')
        .map((o) => o.detail)
        .join('; '),
    );
    assert.match(
      rig.operations('fault-escalated').at(-1)?.detail ?? '',
      /^reader\/reader: no answer after a power cycle/,
    );
    const switched = rig.rail.moduleLog.map(([module, on]) => `${module} ${on ? 'on' : 'off'}`);
    const off = switched.indexOf('reader off');
    assert.ok(
      off >= 0 && switched[off + 1] === 'reader on',
      `the ladder power-cycled the reader: ${switched}`,
    );
    assert.ok(
      rig.uplinkEvents('module-fault').some((e) => e.detail.startsWith('reader/reader')),
      'fault reported',
    );
    assert.ok(
      rig.uplinkEvents('escalation').some((e) => e.detail.startsWith('reader/reader')),
      'escalated',
    );

    // No card sales: refused before the antenna comes on, nothing debited, an operation record.
    assert.deepEqual(payAtBay1(rig, '6280000000000033'), ['refused: cards-unavailable']);
    assert.equal(rig.board.reader.antennaOn, false);
    assert.equal(transactions(rig.meter).length, 0);
    assert.match(rig.operations('cards-unavailable').at(-1)?.detail ?? '', /MFRC522 not found/);

    // A renewal (pay by phone) still applies, and the records reach the platform.
    const now = Math.floor(rig.clock.now() / 1000);
    platformDownlink(
      rig,
      RENEWAL_FRAME,
      encodeRenewal({
        id: 'r1',
        bayId: 2,
        minutes: 30,
        charge: 120,
        currency: 826,
        authorisation: 'A1',
        validUntil: now + 600,
      }),
    );
    assert.ok(rig.meter.bays.paidUntil(2) >= now + 30 * 60, 'bay 2 renewed');
    rig.clock.advance(MINUTE);
    assert.equal(
      rig.meter.ledger.acknowledgedSeq,
      rig.meter.log.lastSeq,
      `every record acknowledged; ${platform.refused}`,
    );

    // The reader is plugged back in: the next retry finds it, and a card pays.
    const faultsBefore = rig.operations('fault').length;
    rig.board.readerAbsent = false;
    rig.clock.advance(RETRY_MS);
    assert.equal(monitor.states.reader, 'ok');
    assert.match(rig.maintenance('repair').at(-1)?.detail ?? '', /^reader\/reader: answers again/);
    assert.ok(rig.uplinkEvents('module-repaired').some((e) => e.detail.startsWith('reader/reader')));
    assert.equal(rig.operations('fault').length, faultsBefore, 'the quiet retries wrote no fault records');
    assert.deepEqual(payAtBay1(rig, '6280000000000033'), ['accepted']);
    assert.equal(transactions(rig.meter).length, 1);
    assertChainWhole(rig.meter);
    rig.clock.advance(MINUTE);
    assert.equal(
      platform.records(RIG_METER).length,
      rig.meter.log.lastSeq,
      'the platform holds every record',
    );
  });

  it('no reader at boot on a board without load switches or watchdog: the monitor still runs, escalates and retries', () => {
    const clock = new VirtualClock('2026-03-02T07:30:00Z');
    const broker = new VirtualBroker(clock);
    const board = new VirtualBoard({ mqtt: broker.link(), clock });
    const master = new Uint8Array(32).fill(3);
    const keys = deriveMeterKeys(nobleCrypto, master, 41, 1);
    provisionBoard(board.hardware, { ...keys, cardTokenKey: deriveCardTokenKey(nobleCrypto, master) }, 41);
    board.readerAbsent = true;
    const meter = new Meter(board.hardware, {
      meterId: 41,
      bays: [1, 2],
      rate: { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 },
    });
    const states: MeterEvents['module-state'][] = [];
    meter.bus.on('module-state', (m) => states.push(m));
    meter.start();
    clock.advance(1_000);
    assert.equal(meter.monitor.states.reader, 'failed');
    assert.equal(meter.monitor.states.sensors, 'absent', 'a board without sensors reports none');
    assert.equal(meter.monitor.states.power, 'absent');
    assert.ok(
      states.some(
        (m) => m.module === 'reader' && m.state === 'failed' && m.detail === 're-initialisation failed',
      ),
    );
    board.readerAbsent = false;
    clock.advance(RETRY_MS);
    assert.equal(meter.monitor.states.reader, 'ok');
    assert.deepEqual(payAtBay1({ board, clock, meter }, '6280000000000041'), ['accepted']);
    assertChainWhole(meter);
  });

  it('no secure element at boot: no keys and no card sales, the records kept; once it answers the keys load and what waited is sent', () => {
    const rig = new Rig({
      start: false,
      prepare: (board) => {
        board.secureElementAbsent = true;
      },
    });
    const platform = new VirtualPlatform(rig.broker, nobleCrypto);
    platform.register(RIG_METER, rig.keys);
    rig.meter.start();
    rig.clock.advance(2_000);
    assert.equal(rig.meter.security.provisioned, false);
    assert.equal(rig.meter.monitor.states.secure, 'failed');
    assert.ok(rig.operations('fault').some((o) => o.detail.startsWith('secure/secure:')));
    assert.deepEqual(payAtBay1(rig, '6280000000000058'), ['refused: cards-unavailable']);
    assert.match(rig.operations('cards-unavailable').at(-1)?.detail ?? '', /^secure parts out of service/);
    assert.equal(platform.records(RIG_METER).length, 0, 'nothing can be sealed without the keys');
    const held = rig.meter.log.lastSeq;

    rig.board.secureElementAbsent = false;
    rig.clock.advance(RETRY_MS);
    assert.equal(rig.meter.monitor.states.secure, 'ok');
    assert.equal(rig.meter.security.provisioned, true, 'the keys in the parts are usable again');
    rig.clock.advance(MINUTE);
    assert.ok(platform.records(RIG_METER).length > held, 'the records kept meanwhile reached the platform');
    assert.equal(rig.meter.ledger.acknowledgedSeq, rig.meter.log.lastSeq);
    const reported = rig.uplinkEvents().map((e) => `${e.event} ${e.detail.split(':')[0]}`);
    assert.ok(reported.includes('module-fault secure/secure'), `kept and sent late: ${reported.join(', ')}`);
    assert.ok(reported.includes('module-repaired secure/secure'));
    assert.deepEqual(payAtBay1(rig, '6280000000000058'), ['accepted']);
    assertChainWhole(rig.meter);
  });

  it('a silent SAM at boot: no keys and no card sales until it answers, then both come back', () => {
    const rig = new Rig({
      prepare: (board) => {
        board.samAbsent = true;
      },
    });
    rig.clock.advance(2_000);
    assert.equal(rig.meter.monitor.states.secure, 'failed');
    assert.deepEqual(payAtBay1(rig, '6280000000000066'), ['refused: cards-unavailable']);
    rig.board.samAbsent = false;
    rig.clock.advance(RETRY_MS);
    assert.equal(rig.meter.monitor.states.secure, 'ok');
    assert.deepEqual(payAtBay1(rig, '6280000000000066'), ['accepted']);
    assert.ok(rig.uplinkEvents('module-repaired').some((e) => e.detail.startsWith('secure/')));
  });

  it('a display that does not answer: a fault, sales go on, and it is back once it answers', () => {
    const rig = new Rig({
      prepare: (board) => {
        board.display.fault = 'LCD backpack did not acknowledge';
      },
    });
    rig.clock.advance(1_000);
    assert.equal(rig.meter.monitor.states.display, 'failed');
    assert.ok(
      rig.operations('fault').some((o) => o.detail === 'display/display: LCD backpack did not acknowledge'),
    );
    assert.deepEqual(payAtBay1(rig, '6280000000000074'), ['accepted'], 'a sale needs no display');
    rig.board.display.fault = undefined;
    rig.clock.advance(RETRY_MS);
    assert.equal(rig.meter.monitor.states.display, 'ok');
    assert.ok(rig.board.display.text.length > 0, 'the screen shows again');
  });

  it('a BLE stack that does not start: a fault; the handheld can connect once it opens', () => {
    const rig = new Rig({
      prepare: (board) => {
        board.ble.openFault = 'BLE controller did not start';
      },
    });
    rig.clock.advance(1_000);
    assert.equal(rig.meter.monitor.states.ble, 'failed');
    assert.equal(rig.board.ble.advertising, false);
    rig.board.ble.openFault = undefined;
    rig.clock.advance(RETRY_MS);
    assert.equal(rig.meter.monitor.states.ble, 'ok');
    rig.meter.bus.emit('maintenance-entry', {}); // the mode key switches the handheld link on
    assert.equal(rig.board.ble.connect(), true);
  });

  it('an MQTT link that does not open: sales are recorded, and uploaded once the link opens', () => {
    const rig = new Rig({ start: false });
    const platform = new VirtualPlatform(rig.broker, nobleCrypto);
    platform.register(RIG_METER, rig.keys);
    rig.cellular.openFault = 'modem did not start';
    assert.doesNotThrow(() => rig.meter.start());
    rig.clock.advance(2_000);
    assert.ok(rig.operations('fault').some((o) => o.detail === 'radio/link: modem did not start'));
    assert.deepEqual(payAtBay1(rig, '6280000000000082'), ['accepted']);
    assert.equal(platform.records(RIG_METER).length, 0);
    rig.cellular.openFault = undefined;
    rig.clock.advance(RETRY_MS);
    rig.clock.advance(MINUTE);
    assert.equal(
      platform.records(RIG_METER).length,
      rig.meter.log.lastSeq,
      'every record reached the platform',
    );
    assert.equal(transactions(rig.meter).length, 1);
    assertChainWhole(rig.meter);
  });

  it('a bay sensor and a fuel gauge that do not answer at boot: their modules fail, the rest runs, and both come back', () => {
    const rig = new Rig({
      prepare: (board) => {
        if (!board.sensors || !board.power) throw new Error('the rig fits sensors and packs');
        board.sensors.bays[0].fault = 'no-ack';
        board.power.gauges.backup.fault = 'no-ack';
      },
    });
    rig.clock.advance(2 * MINUTE);
    assert.equal(rig.meter.guard?.sensorStates.bay1, 'failed');
    assert.equal(rig.meter.monitor.states.sensors, 'failed');
    assert.ok(rig.operations('fault').some((o) => o.detail.startsWith('sensors/bay1')));
    assert.deepEqual(payAtBay1(rig, '6280000000000090'), ['accepted']);
    rig.sensors.bays[0].fault = 'none';
    rig.rail.gauges.backup.fault = 'none';
    rig.clock.advance(RETRY_MS + MINUTE);
    assert.equal(rig.meter.guard?.sensorStates.bay1, 'ok');
    assert.equal(rig.meter.monitor.states.sensors, 'ok');
    assert.equal(rig.meter.power?.gaugeStates['gauge:backup'], 'ok');
    assert.equal(rig.meter.monitor.states.power, 'ok');
  });

  it('a meter rebuilt over the same flash after a degraded run holds every record', () => {
    const rig = new Rig({
      prepare: (board) => {
        board.readerAbsent = true;
      },
    });
    rig.clock.advance(2_000);
    const lastSeq = rig.meter.log.lastSeq;
    rig.meter.stop();
    const after = new Rig({ clock: rig.clock, broker: rig.broker, state: rig.board.state });
    assert.ok(after.meter.log.lastSeq > lastSeq, 'the old records and the new boot record');
    assertChainWhole(after.meter);
    assert.equal(after.meter.monitor.states.reader, 'ok', 'a reader present at this boot');
  });
});
