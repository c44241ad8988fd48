// Hybrid power (416) on a whole virtual meter: the source pack, make-before-break switching with
// the backup covering it (no gap on the rail), low and replaced packs as records, state of charge
// to the display and the status, a failed gauge, and the sleep budget's projection.
import assert from 'node:assert/strict';
import { CURRENT_FIGURES, projectBatteryLife } from '../../firmware/units/power';
import { VIRTUAL_SENSOR_PINS } from '../../hal/mock/sensors/kit';
import { MaintenanceCode, OperationCode } from '../../protocol/records';
import { Rig } from '../sensors/rig';

const MINUTE = 60_000;

describe('hybrid power (416) on virtual time', () => {
  it('runs from the rechargeable pack and shows its charge on the display and in power-status', () => {
    const rig = new Rig();
    assert.equal(rig.meter.power!.source, 'rechargeable');
    assert.deepEqual(rig.rail.feeding, ['rechargeable']);
    assert.deepEqual(rig.named('battery')[0], { percent: 80, charging: false });
    assert.deepEqual(rig.named('power-status')[0].packs, { rechargeable: 80, disposable: 100, backup: 100 });
    assert.equal(
      rig.maintenance(MaintenanceCode.BatteryReplaced).length,
      0,
      'packs present at the first boot are not replacements',
    );
    assert.match(rig.board.display.text, /80%/);
  });

  it('a low pack is recorded once; an empty one is switched out make-before-break with the backup covering', () => {
    const rig = new Rig();
    const { rechargeable } = rig.rail.gauges;
    const levels: string[] = [];
    rig.meter.bus.on('power-source', () => levels.push(rig.rail.feeding.join('+')));
    rechargeable.percent = 14;
    rig.clock.advance(MINUTE);
    rig.clock.advance(MINUTE);
    const low = rig.operations(OperationCode.BatteryLow);
    assert.equal(low.length, 1);
    assert.equal(low[0].quantity, 14);
    assert.equal(rig.uplinkEvents('battery-low')[0].value, 14);
    rechargeable.percent = 2;
    rig.clock.advance(MINUTE);
    // At the switch: backup, the new pack and the old one all on; 50 ms later only the new one.
    assert.deepEqual(levels, ['rechargeable+disposable+backup']);
    rig.clock.advance(100);
    assert.deepEqual(rig.rail.feeding, ['disposable']);
    assert.equal(rig.rail.gaps, 0, 'never a moment without a pack');
    assert.deepEqual(rig.named('power-source').at(-1), {
      from: 'rechargeable',
      to: 'disposable',
      reason: 'rechargeable pack at 2 %',
    });
    assert.match(rig.operations('power-source')[0].detail, /rechargeable to disposable/);
  });

  it('falls to the backup when both packs are empty, and back to the rechargeable once the sun has charged it', () => {
    const rig = new Rig();
    const g = rig.rail.gauges;
    g.rechargeable.percent = 1;
    g.disposable.percent = 2;
    rig.clock.advance(MINUTE + 100);
    assert.deepEqual(rig.rail.feeding, ['backup']);
    assert.equal(rig.uplinkEvents('pack-switched').at(-1)?.severity, 'warning');
    g.rechargeable.percent = 40;
    g.rechargeable.rate = 3.5;
    rig.clock.advance(MINUTE + 100);
    assert.deepEqual(rig.rail.feeding, ['rechargeable']);
    assert.deepEqual(rig.named('battery').at(-1), { percent: 40, charging: true });
    assert.equal(rig.rail.gaps, 0);
  });

  it('a pack swapped while running is a battery-replaced maintenance record (RI and VR alerts)', () => {
    const rig = new Rig();
    rig.rail.gauges.disposable.percent = 5;
    rig.clock.advance(MINUTE);
    rig.rail.gauges.disposable.insertPack(100, 3.65); // new gauge power-up: RI
    rig.clock.advance(MINUTE);
    rig.rail.gauges.backup.dropOut(); // swapped under load: VR
    rig.clock.advance(MINUTE);
    const replaced = rig.maintenance(MaintenanceCode.BatteryReplaced).map((m) => m.detail);
    assert.deepEqual(replaced, ['disposable pack (power-up)', 'backup pack (voltage reset)']);
    assert.equal(rig.rail.gauges.disposable.quickStarts, 1, 'fuel gauge restarted on the new pack');
    rig.clock.advance(MINUTE);
    assert.equal(rig.maintenance(MaintenanceCode.BatteryReplaced).length, 2, 'flags cleared: recorded once');
  });

  it('a pack replaced while the meter was off is found at boot from the charge it had', () => {
    const rig = new Rig();
    rig.rail.gauges.disposable.percent = 8;
    rig.clock.advance(MINUTE);
    rig.meter.stop();
    const next = new Rig({ clock: rig.clock, broker: rig.broker, state: rig.board.state, start: false });
    next.rail.gauges.disposable.insertPack(100, 3.65);
    next.meter.start();
    next.clock.advance(10);
    assert.deepEqual(
      next.maintenance(MaintenanceCode.BatteryReplaced).map((m) => m.detail),
      ['disposable pack (found at boot, 8 % before)'],
    );
  });

  it('a gauge that stops answering is a power fault, escalated, while the others keep the meter running', () => {
    const rig = new Rig();
    rig.rail.gauges.disposable.fault = 'no-ack';
    rig.clock.advance(MINUTE);
    const fault = rig.named('fault').find((f) => f.unit === 'power:gauge:disposable');
    assert.ok(fault);
    assert.match(rig.operations('fault')[0].detail, /power\/gauge:disposable/);
    assert.ok(
      rig
        .operations('fault-escalated')
        .some((o) => /gauge:disposable: no automatic repair|re-initialisation failed/.test(o.detail)),
    );
    assert.equal(rig.meter.power!.gaugeStates['gauge:disposable'], 'failed');
    assert.equal(rig.meter.power!.source, 'rechargeable');
    rig.rail.gauges.disposable.fault = 'none';
    assert.equal(rig.meter.power!.reinitialise('gauge:disposable'), true);
    assert.equal(rig.meter.power!.gaugeStates['gauge:disposable'], 'ok');
  });

  it('power-cycles a module through its load switch', () => {
    const rig = new Rig();
    let done = false;
    assert.equal(
      rig.meter.power!.powerCycle('reader', 200, () => (done = true)),
      true,
    );
    assert.equal(rig.board.pins.level(VIRTUAL_SENSOR_PINS.modules.reader), 0);
    rig.clock.advance(200);
    assert.equal(rig.board.pins.level(VIRTUAL_SENSOR_PINS.modules.reader), 1);
    assert.equal(done, true);
  });
});

describe('the sleep budget', () => {
  it('adds up each part in each state from the datasheet figures', () => {
    const p = projectBatteryLife({ taps: 50, uploads: 4, airMinutesPerDay: 0, bays: 0, packs: 0 });
    const f = CURRENT_FIGURES;
    const awake = 50 * 20 + 4 * 15;
    const expected =
      (f.mcuLightSleep.milliamps * (86_400 - awake) +
        f.mcuActive.milliamps * awake +
        f.display.milliamps * 1000 +
        f.readerOn.milliamps * 250 +
        f.readerPowerDown.milliamps * (86_400 - 250) +
        f.radioTx.milliamps * 60 +
        (f.accelerometer.milliamps + f.light.milliamps + f.climate.milliamps) * 86_400) /
      3600;
    assert.ok(Math.abs(p.totalPerDay - expected) < 1e-9);
    assert.ok(Math.abs(p.days(19_000, 100) - 19_000 / expected) < 1e-6);
    const busier = projectBatteryLife({ taps: 200, uploads: 4 });
    assert.ok(busier.days(19_000) < projectBatteryLife({ taps: 50, uploads: 4 }).days(19_000));
  });
});
