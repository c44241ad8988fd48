// Security & environment (48) on a whole virtual meter, on virtual time: tilt, vibration (and the
// wake), temperature and fan hysteresis, humidity, air quality, the cover edge, bay occupancy with
// calibration, drift and debounce, unpaid occupancy, non-transferable time, the 0x84 settings and
// the 0x04 status report; sensor faults reach the monitoring engine.
import assert from 'node:assert/strict';
import { BayDetector } from '../../firmware/units/guard';
import { Validity } from '../../drivers/sensors/ens160';
import {
  DEFAULT_SETTINGS,
  encodeSettings,
  type GuardSettings,
  SETTINGS_FRAME,
  type StatusReport,
} from '../../protocol/status';
import type { MeterConfig } from '../../firmware/meter';
import type { TariffDocument } from '../../protocol/tariff';
import { Rig } from '../sensors/rig';

const MINUTE = 60_000;

function tiltBy(degrees: number) {
  const r = (degrees * Math.PI) / 180;
  return { x: 0, y: Math.sin(r), z: Math.cos(r) };
}

describe('guard (48): security and environment on virtual time', () => {
  it('boots with every sensor open and nothing raised', () => {
    const rig = new Rig();
    rig.clock.advance(2 * MINUTE);
    const states = rig.meter.guard!.sensorStates;
    assert.deepEqual(Object.values(states), Array(Object.keys(states).length).fill('ok'));
    assert.deepEqual(rig.named('guard-alarm'), []);
    assert.deepEqual(rig.named('fault'), []);
    assert.equal(rig.meter.monitor!.states.sensors, 'ok');
  });

  it('tilt: an alarm record, the tamper tone and an uplink alarm; cleared when upright again', () => {
    const rig = new Rig();
    rig.clock.advance(MINUTE); // first sample: the upright reference
    rig.sensors.motion.acceleration = tiltBy(30);
    rig.meter.guard!.sampleEnvironment();
    const overtime = 15; // the rear red light flashes with the alarm
    const flashes = [rig.board.pins.level(overtime)];
    for (let i = 0; i < 6; i++) {
      rig.clock.advance(250);
      flashes.push(rig.board.pins.level(overtime));
    }
    assert.deepEqual(flashes, [1, 0, 1, 0, 1, 0, 0]);
    const raised = rig.operations('security-tilt');
    assert.equal(raised.length, 1);
    assert.match(raised[0].detail, /tilt raised: (29|30)\.\d/);
    assert.ok(Math.abs((raised[0].quantity ?? 0) - 300) <= 3);
    assert.deepEqual(rig.named('tamper'), [{ source: 'tilt' }]);
    assert.ok(
      rig.board.buzzer.tones.some((t) => t.frequencyHz === 3200),
      'the tamper pattern played',
    );
    const up = rig.uplinkEvents('tilt');
    assert.equal(up.length, 1);
    assert.deepEqual([up[0].severity, up[0].active], ['alarm', true]);
    rig.sensors.motion.acceleration = tiltBy(2);
    rig.clock.advance(MINUTE);
    assert.match(rig.operations('security-tilt')[1].detail, /tilt cleared/);
    assert.equal(rig.uplinkEvents('tilt')[1].active, false);
  });

  it('vibration: the INT1 interrupt wakes a sleeping meter and raises a vibration alarm', () => {
    const rig = new Rig({ config: { sleep: { idleMs: 30_000 } } });
    rig.clock.advance(MINUTE);
    assert.equal(rig.named('sleep').length, 1, 'asleep after 30 s idle');
    assert.equal(rig.sensors.motion.shake(0.2), false, 'a light knock stays below 0.5 g');
    assert.equal(rig.sensors.motion.shake(1.5), true);
    assert.deepEqual(rig.named('wake'), [{ reason: 'motion' }]);
    assert.equal(rig.operations('security-vibration').length, 1);
    assert.deepEqual(rig.named('tamper'), [{ source: 'vibration' }]);
    assert.equal(rig.board.pins.level(40), 1, 'INT1 released (INT1_SRC read)');
    rig.sensors.motion.shake(1.5);
    assert.equal(rig.operations('security-vibration').length, 2, 'each knock is an event');
  });

  it('temperature drives the fan with hysteresis; over-temperature and humidity alarms', () => {
    const rig = new Rig();
    const { climate } = rig.sensors;
    const step = (t: number, rh = 50) => {
      climate.temperature = t;
      climate.humidity = rh;
      rig.clock.advance(MINUTE);
      return rig.sensors.fanOn;
    };
    assert.equal(step(30), false);
    assert.equal(step(46), true, 'on above 45 °C');
    assert.equal(step(42), true, 'still on between 40 and 45 °C');
    assert.equal(step(39), false, 'off below 40 °C');
    assert.equal(step(44), false, 'stays off below 45 °C');
    assert.deepEqual(
      rig.named('fan').map((f) => f.on),
      [true, false],
    );
    step(65, 95);
    assert.equal(rig.operations('environment-over-temperature').length, 1);
    assert.equal(rig.operations('environment-humidity').length, 1);
    assert.equal(rig.uplinkEvents('over-temperature')[0].severity, 'warning');
    assert.equal(rig.named('tamper').length, 0, 'environment alarms do not play the tamper pattern');
    step(25, 50);
    assert.equal(rig.operations('environment-over-temperature').length, 2, 'cleared');
    const air = rig.sensors.air.compensation;
    assert.ok(
      Math.abs(air.temperature - 25) < 0.1 && Math.abs(air.humidity - 50) < 0.1,
      'ENS160 compensated with SHT31 readings',
    );
  });

  it('air quality: an alarm at AQI 4, none while the ENS160 warms up', () => {
    const rig = new Rig();
    rig.sensors.air.validity = Validity.WARM_UP;
    rig.sensors.air.aqi = 5;
    rig.clock.advance(2 * MINUTE);
    assert.equal(rig.operations('environment-air-quality').length, 0);
    rig.sensors.air.validity = Validity.NORMAL;
    rig.clock.advance(MINUTE);
    assert.equal(rig.operations('environment-air-quality').length, 1);
    assert.equal(rig.meter.guard!.readings.aqi, 5);
  });

  it('the cover: light is a cover-opened edge (the security unit answers it) and dark a cover-closed one', () => {
    const rig = new Rig();
    rig.sensors.cover.lux = 250;
    rig.clock.advance(1_000);
    assert.equal(rig.named('cover-opened').length, 1);
    rig.clock.advance(5_000);
    assert.equal(rig.named('cover-opened').length, 1, 'one edge, not one per sample');
    rig.sensors.cover.lux = 0;
    rig.clock.advance(1_000);
    assert.equal(rig.named('cover-closed').length, 1);
  });
});

describe('bay occupancy (QMC5883L per bay)', () => {
  it('BayDetector: calibrates a baseline, follows drift while empty, debounces arrive and leave', () => {
    const d = new BayDetector(8, 3);
    for (let i = 0; i < 8; i++) assert.equal(d.feed(20, 5, -42, 12), undefined);
    assert.deepEqual(d.baseline, [20, 5, -42]);
    // 20 µT of slow drift over 800 samples: never a vehicle.
    for (let i = 1; i <= 800; i++) assert.equal(d.feed(20 + i * 0.025, 5, -42, 12), undefined);
    assert.ok(Math.abs(d.baseline![0] - 40) < 2, `baseline followed to ${d.baseline![0]}`);
    // A car: a 30 µT change; two samples are not enough, the third is.
    assert.equal(d.feed(40, 5, -12, 12), undefined);
    assert.equal(d.feed(40, 5, -12, 12), undefined);
    assert.equal(d.feed(40, 5, -12, 12), 'arrived');
    // A passing glitch back to empty does not end it.
    assert.equal(d.feed(40, 5, -42, 12), undefined);
    assert.equal(d.feed(40, 5, -12, 12), undefined);
    for (let i = 0; i < 2; i++) assert.equal(d.feed(40, 5, -42, 12), undefined);
    assert.equal(d.feed(40, 5, -42, 12), 'left');
  });

  it('a vehicle in an unpaid bay is reported after 10 minutes; one in a paid bay is not', () => {
    const rig = new Rig();
    rig.clock.advance(MINUTE); // calibration: 8 samples at 5 s
    const now = () => Math.floor(rig.clock.now() / 1000);
    rig.meter.bays.setPaidUntil(2, now() + 3600);
    rig.sensors.bays[0].field = { x: 20, y: 30, z: -10 }; // bay 1
    rig.sensors.bays[1].field = { x: 20, y: 30, z: -10 }; // bay 2
    rig.clock.advance(20_000);
    assert.deepEqual(
      rig.named('bay-occupancy').map((o) => [o.bayId, o.occupied, o.paid]),
      [
        [1, true, false],
        [2, true, true],
      ],
    );
    rig.clock.advance(10 * MINUTE);
    assert.deepEqual(
      rig.named('bay-unpaid').map((u) => u.bayId),
      [1],
    );
    assert.equal(rig.operations('bay-unpaid').length, 1);
    assert.equal(rig.uplinkEvents('bay-unpaid')[0].bayId, 1);
    assert.deepEqual(rig.meter.guard!.occupied.sort(), [1, 2]);
  });

  /** Bay 3 paid for an hour, then a vehicle comes and goes: whether its session ended early. */
  function vacate(config: Partial<MeterConfig>) {
    const rig = new Rig({ config });
    rig.clock.advance(MINUTE);
    const paidUntil = Math.floor(rig.clock.now() / 1000) + 3600;
    rig.meter.bays.setPaidUntil(3, paidUntil);
    const bay = rig.sensors.bays[2];
    const empty = { ...bay.field };
    bay.field = { x: 60, y: 5, z: -42 };
    rig.clock.advance(20_000);
    bay.field = empty;
    rig.clock.advance(20_000);
    return { rig, paidUntil, ended: rig.named('bay-session-ended') };
  }

  /** A whole-week charged tariff whose document (and optionally one entry) says non-transferable. */
  function tariff(document: boolean | undefined, entry?: boolean): TariffDocument {
    return {
      id: 'nt',
      version: 1,
      currency: 826,
      timeZone: 'GMT0BST,M3.5.0/1,M10.5.0',
      rates: { hour: [{ price: 60, per: 15 }] },
      timetable: [
        {
          days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'],
          from: '00:00',
          to: '24:00',
          mode: 'charged',
          rate: 'hour',
          ...(entry === undefined ? {} : { nonTransferable: entry }),
        },
      ],
      ...(document === undefined ? {} : { nonTransferable: document }),
    };
  }

  it('a vacated bay ends its session early where time is non-transferable, and not otherwise', () => {
    for (const nonTransferable of [true, false]) {
      const { rig, paidUntil, ended } = vacate({ nonTransferable });
      if (nonTransferable) {
        assert.equal(ended.length, 1);
        assert.equal(ended[0].paidUntil, paidUntil);
        assert.equal(rig.meter.bays.paidUntil(3), ended[0].at);
        const record = rig.operations('session-ended-early')[0];
        assert.deepEqual(record.period, { from: ended[0].at, to: paidUntil });
        assert.deepEqual(
          [rig.board.light('paid', 2), rig.board.light('expired', 2)],
          [0, 1],
          'bay 3 shows red',
        );
      } else {
        assert.equal(ended.length, 0);
        assert.equal(rig.meter.bays.paidUntil(3), paidUntil);
      }
    }
  });

  it('non-transferable time comes from the applied tariff (document, then entry); the config flag overrides it', () => {
    const cases: [string, Partial<MeterConfig>, boolean][] = [
      ['tariff document says so', { tariff: tariff(true) }, true],
      ['tariff silent', { tariff: tariff(undefined) }, false],
      ['the entry in force says no', { tariff: tariff(true, false) }, false],
      ['the entry in force says yes', { tariff: tariff(false, true) }, true],
      ['config override off', { tariff: tariff(true), nonTransferable: false }, false],
      ['config override on', { tariff: tariff(false), nonTransferable: true }, true],
    ];
    for (const [name, config, ends] of cases) {
      const { rig, paidUntil, ended } = vacate(config);
      assert.equal(ended.length, ends ? 1 : 0, name);
      assert.equal(rig.meter.bays.paidUntil(3) < paidUntil, ends, name);
      assert.equal(rig.operations('session-ended-early').length, ends ? 1 : 0, name);
    }
  });
});

describe('guard settings (0x84) and status (0x04)', () => {
  const settings = (
    over: Partial<GuardSettings['thresholds']> & { version: number; sampleSeconds?: number },
  ) => ({
    ...DEFAULT_SETTINGS,
    version: over.version,
    sampleSeconds: over.sampleSeconds ?? DEFAULT_SETTINGS.sampleSeconds,
    thresholds: {
      ...DEFAULT_SETTINGS.thresholds,
      ...over,
      version: undefined,
    } as GuardSettings['thresholds'],
  });

  it('applies a newer schedule and thresholds, keeps them across a restart, refuses a bad one whole', () => {
    const rig = new Rig();
    rig.clock.advance(MINUTE);
    rig.downlink(SETTINGS_FRAME, encodeSettings(settings({ version: 3, sampleSeconds: 10, tiltDegrees: 5 })));
    assert.equal(rig.meter.guard!.settings.version, 3);
    assert.equal(rig.uplinkEvents('settings-applied').at(-1)?.value, 3);
    rig.sensors.motion.acceleration = tiltBy(8);
    rig.clock.advance(10_000);
    assert.equal(rig.operations('security-tilt').length, 1, 'sampled within 10 s, over the 5° threshold');
    // fanOff above fanOn: refused, nothing changed.
    const bad = settings({ version: 4, fanOn: 40, fanOff: 45 });
    rig.downlink(SETTINGS_FRAME, encodeSettings(bad));
    assert.equal(rig.meter.guard!.settings.version, 3);
    assert.match(rig.uplinkEvents('settings-refused')[0].detail, /fan off threshold/);
    rig.meter.stop();
    const again = new Rig({ clock: rig.clock, broker: rig.broker, state: rig.board.state });
    assert.equal(again.meter.guard!.settings.version, 3);
    assert.equal(again.meter.guard!.settings.thresholds.tiltDegrees, 5);
  });

  it('sends the status report hourly: battery, sensors, modules, bays, fan, settings', () => {
    const rig = new Rig();
    rig.sensors.climate.temperature = 21.5;
    rig.sensors.bays[3].field = { x: 20, y: 5, z: -42 };
    rig.clock.advance(MINUTE);
    rig.sensors.bays[3].field = { x: 50, y: 5, z: -42 };
    rig.clock.advance(60 * MINUTE);
    const reports = rig.uplinks().filter((m): m is StatusReport => m.kind === 'status');
    assert.equal(reports.length, 1);
    const r = reports[0];
    assert.equal(r.battery.source, 'rechargeable');
    assert.deepEqual(r.battery.packs, { rechargeable: 80, disposable: 100, backup: 100 });
    assert.ok(Math.abs(r.sensors.temperature - 21.5) < 0.11);
    assert.equal(r.sensors.aqi, 1);
    assert.equal(r.modules.sensors, 'ok');
    assert.equal(r.modules['sensor:bay4'], 'ok');
    assert.deepEqual(r.faults, []);
    assert.deepEqual(
      r.bays.map((b) => [b.bayId, b.occupied]),
      [
        [1, false],
        [2, false],
        [3, false],
        [4, true],
      ],
    );
    assert.equal(r.fan, false);
    assert.equal(r.settings, 0);
  });
});

describe('sensor faults reach the monitoring engine (413)', () => {
  it('a stuck magnetometer is found (six equal samples), re-initialised, and escalated when it stays stuck', () => {
    const rig = new Rig();
    rig.clock.advance(MINUTE);
    rig.sensors.bays[0].fault = 'stuck';
    rig.clock.advance(40_000);
    const faults = rig.named('fault').filter((f) => f.unit === 'sensor:bay1');
    assert.ok(faults.length >= 1);
    assert.equal((faults[0].error as Error).name, 'SensorStuckError');
    assert.match(
      rig.operations('fault')[0].detail,
      /sensors\/bay1: bay1 output has not changed in 6 samples/,
    );
    assert.equal(rig.maintenance('repair')[0].detail, 'sensors/bay1: re-initialised');
    rig.clock.advance(10 * MINUTE);
    assert.ok(
      rig.operations('fault-escalated').some((o) => /bay1/.test(o.detail)),
      'still stuck after 3 repairs',
    );
    assert.equal(rig.meter.monitor!.states.sensors, 'failed');
    assert.equal(rig.uplinkEvents('escalation').length >= 1, true);
  });

  it('a dark cover and clean air read the same for an hour: steady, not stuck (the chips say they convert)', () => {
    const rig = new Rig();
    rig.sensors.cover.lux = 0; // the cover shut: 0 counts on every sample
    rig.clock.advance(60 * MINUTE);
    assert.deepEqual(
      rig.named('fault').map((f) => f.unit),
      [],
    );
    assert.equal(rig.meter.guard!.sensorStates.cover, 'ok');
    assert.equal(rig.meter.guard!.sensorStates.air, 'ok');
    assert.equal(rig.meter.guard!.readings.lux, 0);
  });

  it('a stuck cover sensor fails its window self-test; a stuck ENS160 shows no new data; both reach the monitor', () => {
    const rig = new Rig();
    rig.clock.advance(MINUTE);
    rig.sensors.cover.fault = 'stuck';
    rig.sensors.air.fault = 'stuck';
    rig.clock.advance(10_000);
    const cover = rig.named('fault').find((f) => f.unit === 'sensor:cover');
    assert.equal((cover?.error as Error)?.name, 'SensorStuckError');
    assert.match(
      String((cover?.error as Error)?.message),
      /cover failed its self-test after equal output in 6 samples/,
    );
    rig.clock.advance(8 * MINUTE); // one sample a minute: the flag raised before, then six without
    const air = rig.named('fault').find((f) => f.unit === 'sensor:air');
    assert.match(String((air?.error as Error)?.message), /air has had no new data in 6 samples/);
    assert.ok(
      rig.operations('fault').some((o) => /sensors\/cover: cover failed its self-test/.test(o.detail)),
    );
  });

  it('a corrupted ENS160 read fails the DATA_MISR checksum: a fault, and the reading is kept out', () => {
    const rig = new Rig();
    rig.clock.advance(MINUTE);
    rig.sensors.air.aqi = 5;
    rig.sensors.air.corruptReads = 1;
    rig.clock.advance(MINUTE);
    const air = rig.named('fault').find((f) => f.unit === 'sensor:air');
    assert.match(String((air?.error as Error)?.message), /air: data checksum/);
    assert.equal(rig.operations('environment-air-quality').length, 0, 'no alarm from a corrupted read');
    assert.equal(rig.maintenance('repair').at(-1)?.detail, 'sensors/air: re-initialised');
    rig.clock.advance(MINUTE);
    assert.equal(rig.operations('environment-air-quality').length, 1, 'the next clean read counts');
  });

  it('a latched-up climate sensor (no ACK) is repaired by power-cycling the sensor module', () => {
    const rig = new Rig();
    rig.clock.advance(MINUTE);
    rig.sensors.climate.fault = 'no-ack';
    rig.sensors.climate.latched = true;
    rig.clock.advance(MINUTE);
    assert.equal(rig.named('fault').filter((f) => f.unit === 'sensor:climate').length, 1);
    rig.clock.advance(1_000);
    assert.deepEqual(rig.rail.moduleLog.slice(-2), [
      ['sensors', false],
      ['sensors', true],
    ]);
    assert.equal(rig.maintenance('repair').at(-1)?.detail, 'sensors/climate: power-cycled');
    assert.equal(rig.meter.guard!.sensorStates.climate, 'ok');
    assert.equal(rig.meter.monitor!.states.sensors, 'ok');
    rig.sensors.climate.temperature = 33;
    rig.clock.advance(MINUTE);
    assert.ok(Math.abs((rig.meter.guard!.readings.temperature ?? 0) - 33) < 0.01, 'reading again');
  });

  it('a sensor with the wrong identity at boot is a fault, escalated when a power cycle does not help', () => {
    const rig = new Rig({ start: false });
    rig.sensors.air.fault = 'wrong-id';
    rig.meter.start();
    rig.clock.advance(2_000);
    assert.match(
      String((rig.named('fault').find((f) => f.unit === 'sensor:air')?.error as Error)?.message),
      /ENS160 not found/,
    );
    assert.ok(
      rig
        .operations('fault-escalated')
        .some((o) => /sensors\/air: no answer after a power cycle/.test(o.detail)),
    );
    assert.equal(rig.meter.guard!.sensorStates.air, 'failed');
    assert.equal(rig.meter.guard!.sensorStates.climate, 'ok', 'the others run on');
  });
});
