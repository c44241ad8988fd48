// A whole meter whose link is the (virtual) A7670: it connects through the modem, uploads, sleeps
// the modem between uploads (power unit), and answers a call-in from the platform's number with its
// status, while calls and texts from anyone else are refused and reported.
import assert from 'node:assert/strict';
import { ProvisioningError, readProvisioning } from '../../firmware/boot';
import { Meter } from '../../firmware/meter';
import { MemoryPreferences } from '../../hal/mock/preferences';
import type { MeterEvents } from '../../firmware/events';
import { normaliseNumber } from '../../firmware/units/callIn';
import { CURRENT_FIGURES, projectBatteryLife } from '../../firmware/units/power';
import { provisionBoard } from '../../firmware/units/security';
import { deriveCardTokenKey } from '../../protocol/cardToken';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { openFrame } from '../../protocol/frame';
import { deriveMeterKeys } from '../../protocol/keys';
import { decodeStatusMessage, STATUS_FRAME } from '../../protocol/status';
import { uplinkTopic } from '../../protocol/topics';
import { VirtualPlatform } from '../../sim/fleet/virtualPlatform';
import { PLATFORM_CA, runUntil } from './support';

const METER = 4242;
const PLATFORM_NUMBER = '+447700900100';
const MASTER = Uint8Array.from({ length: 32 }, (_, i) => i * 3);

function cellularMeter(config: { radioDuty?: false | { idleMs?: number } } = {}) {
  const clock = new VirtualClock('2026-03-02T07:30:00Z');
  const broker = new VirtualBroker(clock);
  const keys = deriveMeterKeys(nobleCrypto, MASTER, METER, 1);
  const platform = new VirtualPlatform(broker, nobleCrypto);
  platform.register(METER, keys);
  const board = new VirtualBoard({
    modem: { broker, ca: PLATFORM_CA, brokerCa: PLATFORM_CA, clientId: `meter-${METER}` },
    clock,
    sensors: true,
  });
  provisionBoard(board.hardware, { ...keys, cardTokenKey: deriveCardTokenKey(nobleCrypto, MASTER) }, METER);
  const meter = new Meter(board.hardware, {
    meterId: METER,
    bays: [1, 2],
    rate: { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 },
    callIn: { numbers: [PLATFORM_NUMBER] },
    ...config,
  });
  const callIns: MeterEvents['call-in'][] = [];
  meter.bus.on('call-in', (c) => callIns.push(c));
  meter.start();
  const statusFrames = () =>
    broker.published
      .filter((m) => m.topic === uplinkTopic(METER) && m.payload[1] === STATUS_FRAME)
      .map((m) => decodeStatusMessage(openFrame(nobleCrypto, keys.uplink, m.payload).body));
  return {
    clock,
    broker,
    platform,
    board,
    meter,
    callIns,
    statusFrames,
    modem: board.modem!,
    link: board.modemLink!,
  };
}

describe('call-in and the modem duty cycle on a whole meter', () => {
  it('connects through the modem and uploads its boot record to the broker', () => {
    const m = cellularMeter({ radioDuty: false });
    assert.ok(
      runUntil(m.clock, () => m.link.connected, 120_000),
      String(m.link.lastError),
    );
    assert.ok(
      runUntil(m.clock, () => m.broker.published.some((p) => p.topic === uplinkTopic(METER)), 10_000),
      'an uplink went out through the module',
    );
    assert.ok(m.modem.commands.some((c) => c.startsWith('AT+CMQTTPUB=0,1')));
  });

  it('sleeps the modem once the link is idle and wakes it for a new record', () => {
    const m = cellularMeter({ radioDuty: { idleMs: 30_000 } });
    assert.ok(runUntil(m.clock, () => m.link.connected, 120_000));
    const duty = m.meter.power!.radioDuty!;
    assert.ok(
      runUntil(m.clock, () => m.modem.asleep, 10 * 60_000),
      'modem asleep after the idle time',
    );
    assert.equal(duty.sleeps, 1);
    assert.equal(m.link.connected, false);
    runUntil(m.clock, () => false, 10 * 60_000); // ten minutes asleep
    m.meter.records.recordBoot('planned', 'a record to upload');
    assert.ok(
      runUntil(m.clock, () => m.link.connected, 120_000),
      'awake again for the upload',
    );
    assert.equal(duty.wakes, 1);
    assert.ok(
      runUntil(m.clock, () => m.modem.asleep, 10 * 60_000),
      'and asleep again after it',
    );
    const duty2 = m.modem.duty();
    assert.ok(duty2.asleep >= 10 * 60_000 && duty2.awake > 0, JSON.stringify(duty2));
  });

  it("a call from the platform's number while the modem sleeps: hung up, connects, sends its status", () => {
    const m = cellularMeter({ radioDuty: { idleMs: 30_000 } });
    assert.ok(runUntil(m.clock, () => m.modem.asleep, 10 * 60_000));
    const before = m.statusFrames().length;
    m.modem.call(PLATFORM_NUMBER);
    assert.ok(
      runUntil(m.clock, () => m.meter.callIn!.answered === 1, 120_000),
      String(m.link.lastError),
    );
    assert.deepEqual(m.callIns, [{ kind: 'call', number: PLATFORM_NUMBER, accepted: true }]);
    assert.ok(m.modem.commands.includes('ATH'), 'the call was hung up, never answered');
    assert.ok(!m.modem.commands.includes('ATA'));
    runUntil(m.clock, () => false, 2_000);
    const sent = m.statusFrames().slice(before);
    assert.ok(
      sent.some((s) => s.kind === 'status'),
      `a status report went out (${JSON.stringify(sent)})`,
    );
  });

  it('an SMS from the platform number (any text) makes the meter report; from anyone else it is refused', () => {
    const m = cellularMeter({ radioDuty: false });
    assert.ok(runUntil(m.clock, () => m.link.connected, 120_000));
    m.modem.sms('+447700900999', 'PAY BAY 1 60 MIN');
    m.modem.call('+447700900998');
    runUntil(m.clock, () => false, 5_000);
    assert.deepEqual(
      m.callIns.map((c) => [c.kind, c.accepted]),
      [
        ['sms', false],
        ['call', false],
      ],
    );
    assert.equal(m.meter.callIn!.accepted, 0);
    assert.equal(m.meter.callIn!.refused, 2);
    const refused = () => m.statusFrames().filter((s) => s.kind === 'event' && s.event === 'call-in-refused');
    assert.equal(refused().length, 1, 'reported once, the second counted (no battery drain by strangers)');
    const first = refused()[0];
    assert.ok(first.kind === 'event' && first.detail === 'sms from **********999', 'number masked');
    runUntil(m.clock, () => false, 10 * 60_000);
    m.modem.sms('+447700900997', 'x');
    assert.ok(runUntil(m.clock, () => refused().length === 2, 5_000));
    const second = refused()[1];
    assert.ok(
      second.kind === 'event' && /997 \(and 1 more before\)$/.test(second.detail),
      JSON.stringify(second),
    );
    m.modem.sms('0044 7700 900100', 'anything');
    assert.ok(runUntil(m.clock, () => m.meter.callIn!.answered === 1, 10_000));
  });

  it('one call-in a minute: a second ring within the minute does nothing more', () => {
    const m = cellularMeter({ radioDuty: false });
    assert.ok(runUntil(m.clock, () => m.link.connected, 120_000));
    m.modem.sms(PLATFORM_NUMBER, '');
    m.modem.sms(PLATFORM_NUMBER, '');
    runUntil(m.clock, () => false, 5_000);
    assert.equal(m.meter.callIn!.accepted, 1);
    runUntil(m.clock, () => false, 60_000);
    m.modem.sms(PLATFORM_NUMBER, '');
    runUntil(m.clock, () => false, 5_000);
    assert.equal(
      m.meter.callIn!.accepted,
      2,
      `${m.link.state} ${m.callIns.length} ${m.modem.transcript.slice(-8).join(' ')}`,
    );
  });

  it('normalises numbers: spaces, dashes and a 00 prefix', () => {
    assert.equal(normaliseNumber('+44 7700-900 100'), '+447700900100');
    assert.equal(normaliseNumber('0044 7700 900100'), '+447700900100');
    assert.equal(normaliseNumber('07700+900100'), '07700900100');
  });

  it('reads the call-in numbers and the APN from the provisioning; a malformed number is refused', () => {
    const preferences = new MemoryPreferences();
    preferences.set('meter', 'id', 9);
    preferences.set('meter', 'bays', '1,2');
    preferences.set('meter', 'broker', 'mqtt.example:8883');
    preferences.set('meter', 'callIn', '+447700900100,+33612345678');
    preferences.set('network', 'apn', 'iot.example');
    const p = readProvisioning(preferences);
    assert.deepEqual(p.config.callIn, { numbers: ['+447700900100', '+33612345678'] });
    assert.deepEqual(p.cellular, { apn: 'iot.example' });
    preferences.set('meter', 'callIn', '+447700900100,07700 900100');
    assert.throws(() => readProvisioning(preferences), ProvisioningError);
  });
});

describe('battery projection with the modem', () => {
  it('counts the modem per state over the whole day in place of the Wi-Fi radio', () => {
    const cellular = projectBatteryLife({
      taps: 50,
      uploads: 4,
      radio: 'cellular',
      modemWakes: 74,
      modemIdleSeconds: 30,
    });
    const f = CURRENT_FIGURES;
    assert.equal(cellular.perDay.radio, undefined);
    const awake = 74 * (15 + 30);
    assert.ok(
      Math.abs(cellular.perDay['modem data (uploads)'] - (f.modemData.milliamps * 74 * 15) / 3600) < 1e-9,
    );
    assert.ok(
      Math.abs(cellular.perDay['modem idle, connected'] - (f.modemIdle.milliamps * 74 * 30) / 3600) < 1e-9,
    );
    assert.ok(
      Math.abs(
        cellular.perDay['modem asleep, registered'] - (f.modemSleep.milliamps * (86_400 - awake)) / 3600,
      ) < 1e-9,
    );
    const wifi = projectBatteryLife({ taps: 50, uploads: 4 });
    assert.ok(wifi.perDay.radio > 0);
    assert.ok(cellular.totalPerDay > wifi.totalPerDay, 'the modem costs more than Wi-Fi uploads');
  });
});
