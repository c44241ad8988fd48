// Monitoring engine (413) on virtual time: module states, the fault log as records, the repair
// ladder for the radio (power cycle, then the other path), escalation to the platform, and the
// watchdog that restarts a hung firmware — the restart recorded as abnormal, a planned one not.
import assert from 'node:assert/strict';
import { EventBus } from '../../firmware/bus';
import type { MeterEvents } from '../../firmware/events';
import { MainRecord } from '../../firmware/units/records';
import { FailoverLink, MonitorUnit, moduleOf } from '../../firmware/units/monitor';
import { RecordStore } from '../../firmware/units/storage';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualNorFlash } from '../../hal/mock/flash';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { MemoryPreferences } from '../../hal/mock/preferences';
import { VirtualWatchdog } from '../../hal/mock/watchdog';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { purseCard } from '../../hal/mock/cards';
import { decodeRecord, RecordKind } from '../../protocol/records';
import { FrameType } from '../../protocol/frame';
import { toHex } from '../../protocol/bytes';
import { Rig, RIG_METER } from '../sensors/rig';
import { VirtualPlatform } from '../../sim/fleet/virtualPlatform';

const MINUTE = 60_000;

/** A monitor alone, over real records, with the bus events it emits. */
function standalone(
  options: { radio?: FailoverLink; watchdog?: VirtualWatchdog; clock?: VirtualClock } = {},
) {
  const clock = options.clock ?? new VirtualClock();
  const preferences = new MemoryPreferences();
  const flash = () => new VirtualNorFlash({ byteLength: 64 * 1024 });
  const log = new RecordStore({
    records: flash(),
    backup: flash(),
    upload: flash(),
    preferences,
    crypto: nobleCrypto,
  });
  const bus = new EventBus<MeterEvents>();
  const records = new MainRecord({
    log,
    ledger: log.ledger,
    crypto: nobleCrypto,
    clock,
    meterId: 9,
    bus,
    preferences,
  });
  const events: MeterEvents['status-event'][] = [];
  bus.on('status-event', (e) => events.push(e));
  const monitor = new MonitorUnit({
    bus,
    records,
    clock,
    timers: clock,
    radio: options.radio,
    watchdog: options.watchdog,
  });
  const ops = () =>
    log.read(log.firstSeq).flatMap((r) => {
      const rec = decodeRecord(r.bytes);
      return rec.kind === RecordKind.Transaction ? [] : [`${rec.data.code}: ${rec.data.detail}`];
    });
  /** The periods of the operation records of `code`, epoch seconds. */
  const periods = (code: string) =>
    log.read(log.firstSeq).flatMap((r) => {
      const rec = decodeRecord(r.bytes);
      return rec.kind === RecordKind.Operation && rec.data.code === code && rec.data.period
        ? [rec.data.period]
        : [];
    });
  return { clock, bus, monitor, events, ops, periods };
}

describe('monitoring engine (413)', () => {
  it('maps fault sources to modules', () => {
    assert.deepEqual(
      [
        'sensor:bay2',
        'power:gauge:backup',
        'power:display',
        'rfid',
        'comms',
        'storage',
        'records',
        'tariff',
        'reader',
        'radio:link',
        'secure',
        'display',
        'ble',
        'security',
      ].map(moduleOf),
      [
        'sensors',
        'power',
        'power',
        'reader',
        'radio',
        'storage',
        'storage',
        undefined,
        'reader',
        'radio',
        'secure',
        'display',
        'ble',
        undefined,
      ],
    );
  });

  it('radio down: power-cycled after 10 minutes, then the other path; repaired once it connects', () => {
    const clock = new VirtualClock();
    const broker = new VirtualBroker(clock);
    const cellular = broker.link();
    const wifi = broker.link();
    const radio = new FailoverLink([
      { name: 'cellular', link: cellular },
      { name: 'wifi', link: wifi },
    ]);
    let connects = 0;
    radio.open({ onConnect: () => connects++, onDisconnect() {}, onMessage() {} });
    radio.subscribe('parklink/v1/meters/9/down');
    const { monitor, events, ops } = standalone({ radio, clock });
    monitor.start();
    clock.advance(MINUTE);
    assert.equal(radio.connected, true);
    cellular.setSignal(false);
    clock.advance(11 * MINUTE);
    assert.equal(monitor.states.radio, 'repairing');
    assert.match(ops().join('\n'), /fault: radio\/radio: link down for 6\d\d s/);
    assert.equal(radio.active, 'cellular', 'first the power cycle');
    clock.advance(10 * MINUTE);
    assert.equal(radio.active, 'wifi');
    assert.equal(radio.connected, true);
    assert.ok(wifi.wants('parklink/v1/meters/9/down'), 'subscriptions carried over');
    clock.advance(MINUTE);
    assert.equal(monitor.states.radio, 'ok');
    assert.ok(ops().some((o) => o === 'repair: radio/radio: fell back to wifi'));
    assert.ok(connects >= 2);
    assert.equal(events.find((e) => e.event === 'module-repaired')?.detail, 'radio/radio: fell back to wifi');
  });

  it('neither path: escalated, then it keeps walking the paths; the fallback that comes back first carries the traffic', () => {
    const clock = new VirtualClock();
    const broker = new VirtualBroker(clock);
    const cellular = broker.link();
    const relay = broker.link();
    const radio = new FailoverLink([
      { name: 'cellular', link: cellular },
      { name: 'relay', link: relay },
    ]);
    radio.open({ onConnect() {}, onDisconnect() {}, onMessage() {} });
    const { monitor, events, ops, periods } = standalone({ radio, clock });
    monitor.start();
    clock.advance(MINUTE);
    cellular.setSignal(false);
    relay.setSignal(false);
    clock.advance(21 * MINUTE);
    assert.equal(radio.active, 'relay', 'the ladder fell back');
    const fellBack = Math.floor(clock.now() / 1000);
    clock.advance(10 * MINUTE);
    assert.equal(monitor.states.radio, 'failed', 'escalated after the fallback did not help');
    const failed = Math.floor(clock.now() / 1000);
    assert.ok(
      events.some((e) => e.event === 'escalation' && /^radio\/radio: link down/.test(e.detail ?? '')),
    );
    clock.advance(10 * MINUTE);
    assert.equal(radio.active, 'cellular', 'walked on to the next path');
    relay.setSignal(true); // the neighbour is back before the cell
    clock.advance(11 * MINUTE);
    assert.equal(radio.active, 'relay');
    assert.equal(radio.connected, true);
    clock.advance(MINUTE);
    assert.equal(monitor.states.radio, 'ok');
    assert.ok(ops().includes('repair: radio/radio: fell back to relay'), ops().join('\n'));
    // The time it was given up on is a downtime record (claim 10b), dated by the escalation.
    const downtime = periods('downtime');
    assert.equal(downtime.length, 1, ops().join('\n'));
    const [{ from, to }] = downtime;
    assert.ok(from > fellBack && from <= failed, 'from the escalation');
    assert.ok(
      to > failed + 10 * 60 && to <= Math.floor(clock.now() / 1000),
      'to the repair, once the relay was back',
    );
    cellular.setSignal(true); // and the preferred path takes the traffic back once it connects
    clock.advance(MINUTE);
    assert.equal(radio.active, 'cellular');
    assert.ok(ops().includes('repair: radio/radio: back on the cellular path'), ops().join('\n'));
  });

  it('a whole meter with a Zigbee relay: uploads go on over the relay while cellular is down and come back when it recovers, every record once', () => {
    const rig = new Rig({ relay: true, start: false });
    const platform = new VirtualPlatform(rig.broker, nobleCrypto);
    platform.register(RIG_METER, rig.keys);
    const recordFrames = (link: { publish: (t: string, p: Uint8Array) => boolean }) => {
      const sent: number[] = [];
      const publish = link.publish.bind(link);
      link.publish = (topic, payload) => {
        const ok = publish(topic, payload);
        if (ok && payload[1] === FrameType.Records) sent.push(rig.meter.log.lastSeq);
        return ok;
      };
      return sent;
    };
    const onCellular = recordFrames(rig.cellular);
    const onRelay = recordFrames(rig.relay!);
    rig.meter.start();
    const radio = rig.meter.radio;
    assert.ok(radio instanceof FailoverLink, 'a board with two links gets a FailoverLink');
    rig.clock.advance(MINUTE);
    const caughtUp = () => rig.meter.ledger.acknowledgedSeq === rig.meter.log.lastSeq;
    assert.equal(radio.active, 'primary');
    assert.ok(caughtUp() && onCellular.length > 0 && onRelay.length === 0);

    rig.cellular.setSignal(false);
    rig.clock.advance(15 * MINUTE);
    assert.equal(radio.active, 'primary', 'first the power cycle');
    assert.equal(caughtUp(), false, 'the fault record waits for a path');
    rig.clock.advance(10 * MINUTE);
    assert.equal(radio.active, 'zigbee-relay');
    assert.ok(onRelay.length > 0, 'records went over the relay');
    assert.ok(caughtUp(), 'and were acknowledged over it (downlink subscribed on the relay)');
    assert.equal(rig.meter.monitor!.states.radio, 'ok');
    assert.ok(rig.maintenance('repair').some((r) => r.detail === 'radio/radio: fell back to zigbee-relay'));

    const cellularBefore = onCellular.length;
    rig.cellular.setSignal(true);
    rig.clock.advance(MINUTE);
    assert.equal(radio.active, 'primary', 'back on cellular as soon as it connects');
    assert.equal(rig.relay!.connected, false, 'the relay is closed again');
    assert.ok(rig.maintenance('repair').some((r) => r.detail === 'radio/radio: back on the primary path'));
    assert.ok(onCellular.length > cellularBefore, 'the recovery record went over cellular');
    assert.ok(caughtUp());

    // Every record reached the platform once, in order, byte for byte as the meter holds it.
    const held = platform.records(RIG_METER);
    const mine = rig.meter.log.read(rig.meter.log.firstSeq);
    assert.deepEqual(
      held.map((h) => h.record.seq),
      mine.map((r) => r.seq),
    );
    assert.deepEqual(
      held.map((h) => toHex(h.bytes)),
      mine.map((r) => toHex(r.bytes)),
    );
    assert.deepEqual(platform.refused, [], 'nothing refused (no chain break, no replay)');
  });

  it('a hung card reader: found by its self-test, re-initialised after a power cycle of the reader module, and a card pays afterwards', () => {
    const rig = new Rig();
    rig.clock.advance(MINUTE);
    assert.equal(rig.meter.monitor!.states.reader, 'ok');
    assert.deepEqual(rig.operations('fault'), [], 'a healthy reader passes its self-test');
    rig.board.readerHung = true; // MISO held low: VersionReg 0x00, CalcCRC never finishes
    rig.clock.advance(10_000);
    assert.ok(
      rig.operations('fault').some((o) => /^reader\/reader: MFRC522 did not finish: CRC/.test(o.detail)),
      'the self-test found it',
    );
    assert.equal(rig.board.readerHung, true, 're-initialising alone cannot wake a hung chip');
    const resetsBefore = rig.board.reader.softResets;
    rig.clock.advance(1_000);
    assert.deepEqual(rig.rail.moduleLog.slice(-2), [
      ['reader', false],
      ['reader', true],
    ]);
    assert.equal(rig.board.readerHung, false);
    assert.ok(rig.board.reader.softResets > resetsBefore, 'the new driver soft-reset the chip');
    assert.equal(rig.maintenance('repair').at(-1)?.detail, 'reader/reader: power-cycled');
    assert.equal(rig.meter.monitor!.states.reader, 'ok');
    assert.equal(rig.board.reader.antennaOn, false, 'antenna state restored (off while idle)');
    rig.clock.advance(MINUTE);
    assert.equal(rig.operations('fault-escalated').length, 0);

    // A driver pays with a card through the re-created driver.
    const { card } = purseCard([0x04, 0x11, 0x22, 0x33], {
      cardNumber: '6280000000000017',
      cardType: 1,
      balance: 20_000,
      limit: 0,
      expiry: { year: 2028, month: 12 },
      counter: 0,
      currency: 826,
    });
    rig.board.press('ok');
    rig.board.press('ok');
    assert.equal(rig.board.reader.antennaOn, true, 'waiting for a card');
    rig.board.field.add(card);
    rig.clock.advance(300);
    rig.board.field.remove(card);
    const now = Math.floor(rig.clock.now() / 1000);
    assert.ok(rig.meter.bays.paidUntil(1) > now, 'bay 1 paid');
    assert.equal(
      rig.records().filter((r) => r.kind === RecordKind.Transaction).length,
      1,
      'one transaction record',
    );
  });

  it('escalates what it cannot repair: a record and an uplink event', () => {
    const clock = new VirtualClock();
    const broker = new VirtualBroker(clock);
    const only = broker.link();
    const radio = new FailoverLink([{ name: 'cellular', link: only }]);
    radio.open({ onConnect() {}, onDisconnect() {}, onMessage() {} });
    const { monitor, events, ops } = standalone({ radio, clock });
    monitor.start();
    only.setSignal(false);
    clock.advance(25 * MINUTE);
    assert.equal(monitor.states.radio, 'failed');
    assert.ok(ops().some((o) => /^fault-escalated: radio\/radio: link down/.test(o)));
    const escalation = events.find((e) => e.event === 'escalation');
    assert.equal(escalation?.severity, 'fault');
    assert.equal(escalation?.active, true);
  });

  it('feeds the watchdog while every probe is alive; a hung unit stops the feeding and the watchdog bites', () => {
    const clock = new VirtualClock();
    const watchdog = new VirtualWatchdog(clock);
    let bitten = 0;
    watchdog.onBite = () => bitten++;
    const { monitor } = standalone({ watchdog, clock });
    let alive = true;
    monitor.addProbe('comms', () => alive);
    monitor.start();
    clock.advance(10 * MINUTE);
    assert.equal(bitten, 0);
    assert.ok(watchdog.feeds >= 60);
    alive = false;
    clock.advance(59_000);
    assert.equal(bitten, 0);
    clock.advance(2_000);
    assert.equal(bitten, 1);
    monitor.stop();
  });

  it('a watchdog restart of a whole meter is an abnormal restart and a watchdog-restart record; a planned one is not', () => {
    const rig = new Rig();
    rig.meter.monitor!.addProbe('hung', () => false);
    let restarted = false;
    rig.board.watchdog!.onBite = () => {
      restarted = true;
    };
    rig.clock.advance(2 * MINUTE);
    assert.equal(restarted, true);
    // The board restarts: no clean stop, the watchdog says why.
    const after = new Rig({
      clock: rig.clock,
      broker: rig.broker,
      state: rig.board.state,
      lastReset: 'watchdog',
    });
    const boots = after.operations('boot').map((o) => o.detail);
    assert.match(boots.at(-1) ?? '', /^abnormal restart/);
    assert.equal(after.operations('watchdog-restart').length, 1);
    assert.equal(after.uplinkEvents('watchdog-restart').length, 1);
    after.meter.stop();
    assert.equal(after.board.watchdog!.running, false, 'a planned stop disarms the watchdog');
    const planned = new Rig({
      clock: rig.clock,
      broker: rig.broker,
      state: after.board.state,
      lastReset: 'software',
    });
    assert.match(planned.operations('boot').at(-1)?.detail ?? '', /^planned restart/);
    assert.equal(planned.operations('watchdog-restart').length, 1, 'only the earlier one');
  });

  it('reports module states on the bus and in the status report', () => {
    const rig = new Rig();
    rig.rail.gauges.backup.fault = 'no-ack';
    rig.clock.advance(61 * MINUTE);
    assert.equal(rig.meter.monitor!.states.power, 'failed');
    const report = rig.uplinks().find((m) => m.kind === 'status');
    assert.ok(report && report.kind === 'status');
    assert.equal(report.modules.power, 'failed');
    assert.ok(report.faults.includes('power'));
    assert.ok(report.faults.includes('gauge:backup'));
  });
});
