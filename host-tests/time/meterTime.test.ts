// Time management on a whole meter (the real firmware on a virtual board): a meter that boots at
// 1970 says so on its display and in its records until the platform's sealed time exchange sets
// its clock; SNTP (the NTP-packet twin) corrects it too, but a wildly wrong SNTP answer is refused
// and the sealed exchange wins; replayed, forged and unsolicited answers change nothing; the
// oscillator's drift is estimated and the error stays bounded; a clock no source confirms goes
// into holdover.
import assert from 'node:assert/strict';
import type { MeterEvents } from '../../firmware/events';
import { Meter, type TimeConfig } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { PacketSntpClient, VirtualDatagramNetwork, VirtualSntpServer } from '../../hal/mock/sntp';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { deriveCardTokenKey } from '../../protocol/cardToken';
import { FRAME_VERSION, sealFrame } from '../../protocol/frame';
import { deriveMeterKeys } from '../../protocol/keys';
import { decodeRecord } from '../../protocol/records';
import { encodeTimeAnswer, TIME_ANSWER_DOWNLINK, TimeState } from '../../protocol/time';
import { VirtualPlatform } from '../../sim/fleet/virtualPlatform';

const METER_ID = 2001;
const MASTER = Uint8Array.from({ length: 32 }, (_, i) => i + 3);
const TRUE_START = Date.parse('2026-06-01T12:00:00Z');

interface RigOptions {
  /** The board's clock at power-on. */
  boardStart?: string;
  /** How fast the board's oscillator runs against true time, ppm. */
  fastPpm?: number;
  sntp?: boolean;
  /** What the SNTP server adds to the true time from the start, ms. */
  sntpLiesByMs?: number;
  time?: TimeConfig;
}

function rig(options: RigOptions = {}) {
  const clock = new VirtualClock(options.boardStart ?? '1970-01-01T00:00:00Z');
  const broker = new VirtualBroker(clock);
  const platform = new VirtualPlatform(broker, nobleCrypto);
  const keys = deriveMeterKeys(nobleCrypto, MASTER, METER_ID, 1);
  platform.register(METER_ID, keys);
  const fast = (options.fastPpm ?? 0) / 1e6;
  const trueNow = () => TRUE_START + clock.monotonic() / (1 + fast);
  platform.timeNow = () => Math.round(trueNow());
  const board = new VirtualBoard({ mqtt: broker.link(), clock });
  provisionBoard(
    board.hardware,
    { ...keys, cardTokenKey: deriveCardTokenKey(nobleCrypto, MASTER) },
    METER_ID,
  );
  const network = new VirtualDatagramNetwork();
  const sntpServer = new VirtualSntpServer(() => trueNow());
  network.servers.set('ntp.test', sntpServer);
  sntpServer.faults.liesByMs = options.sntpLiesByMs ?? 0;
  if (options.sntp) {
    board.hardware.sntp = new PacketSntpClient({
      port: network,
      clientNow: () => clock.now(),
      retry: (again) => {
        const handle = clock.setTimeout(again, 5_000);
        return { cancel: () => clock.clear(handle) };
      },
    });
  }
  const meter = new Meter(board.hardware, {
    meterId: METER_ID,
    bays: [1, 2],
    rate: { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 },
    time: { sntpHosts: ['ntp.test'], ...options.time },
  });
  const synced: MeterEvents['time-synced'][] = [];
  const refused: MeterEvents['time-refused'][] = [];
  const statusEvents: MeterEvents['status-event'][] = [];
  meter.bus.on('time-synced', (e) => synced.push(e));
  meter.bus.on('time-refused', (e) => refused.push(e));
  meter.bus.on('status-event', (e) => statusEvents.push(e));
  meter.start();
  const time = meter.time;
  if (!time) throw new Error('time management is configured');
  const error = () => meter.clock.now() - trueNow();
  const lastRecordState = () => decodeRecord(meter.log.read(meter.log.lastSeq)[0].bytes).timeState;
  return {
    clock,
    board,
    meter,
    time,
    platform,
    keys,
    sntpServer,
    synced,
    refused,
    statusEvents,
    trueNow,
    error,
    lastRecordState,
  };
}

describe('time on the meter', () => {
  it('boots at 1970, says so on the display and in its records, then the sealed exchange sets the clock', () => {
    const r = rig();
    // Before anything answers: the boot record is flagged unset and the display shows no clock.
    assert.equal(r.meter.log.read(1)[0].seq, 1);
    assert.equal(decodeRecord(r.meter.log.read(1)[0].bytes).time < 60, true, 'the board counts from 1970');
    assert.equal(decodeRecord(r.meter.log.read(1)[0].bytes).timeState, TimeState.Unset);
    assert.equal(r.time.state, TimeState.Unset);
    r.meter.information.showIdle();
    assert.match(r.board.display.text, /Time not set/);
    // The boot record goes up, its ack comes back, the meter asks for the time and gets the answer.
    r.clock.advance(1_000);
    assert.equal(r.platform.timeAnswers.length, 1, 'one time answer sent');
    assert.equal(r.time.state, TimeState.Synced);
    assert.equal(r.synced[0].source, 'platform');
    assert.equal(r.synced[0].how, 'stepped');
    assert.ok(Math.abs(r.error()) <= 2, `clock within 2 ms of true time, is ${r.error()} ms off`);
    assert.doesNotMatch(r.board.display.text, /Time not set/);
    assert.match(r.board.display.text, /ParkLink \d\d:\d\d/);
    // Records from now on carry the true time, flagged synchronised; the platform got the first one flagged unset.
    r.meter.records.appendOperation('test', 'after the sync');
    const after = decodeRecord(r.meter.log.read(r.meter.log.lastSeq)[0].bytes);
    assert.equal(after.timeState, TimeState.Synced);
    assert.ok(Math.abs(after.time - Math.floor(r.trueNow() / 1000)) <= 1);
    assert.equal(r.platform.records(METER_ID)[0].record.timeState, TimeState.Unset);
    assert.ok(
      r.statusEvents.some((e) => e.event === 'clock-synced' && /stepped/.test(e.detail)),
      'the sync is reported as a status event',
    );
    assert.deepEqual(r.refused, []);
  });

  it('refuses a wildly wrong SNTP answer once the platform set the clock: the sealed exchange wins', () => {
    const r = rig({ sntp: true, sntpLiesByMs: 3 * 3_600_000 }); // a hostile or broken server, three hours ahead
    // At boot SNTP answers first and, with nothing better known, sets the clock three hours ahead…
    assert.equal(r.synced[0]?.source, 'sntp');
    assert.ok(Math.abs(r.error() - 3 * 3_600_000) < 1_000);
    // …until the sealed exchange answers and steps it back.
    r.clock.advance(1_000);
    const fromPlatform = r.synced.find((e) => e.source === 'platform');
    assert.equal(fromPlatform?.how, 'stepped');
    assert.ok(Math.abs(r.error()) < 5, `error ${r.error()} ms after the platform's answer`);
    // The next SNTP answer disagrees with the clock the platform set: refused, the clock stays.
    r.clock.advance(3_600_000 + 30_000);
    const refusal = r.refused.find((e) => e.source === 'sntp');
    assert.equal(refusal?.reason, 'disagrees-with-platform');
    assert.ok(Math.abs(r.error()) < 5);
    assert.ok(r.statusEvents.some((e) => e.event === 'clock-source-refused' && e.severity === 'warning'));
    // Three more hourly polls of the same wrong server: refused each time, reported to the platform once.
    r.clock.advance(3 * 3_600_000);
    assert.ok(r.refused.filter((e) => e.reason === 'disagrees-with-platform').length >= 4);
    assert.equal(r.statusEvents.filter((e) => e.event === 'clock-source-refused').length, 1);
    assert.ok(Math.abs(r.error()) < 5);
  });

  it('refuses an SNTP time before the firmware was built and never moves a synced clock far on SNTP alone', () => {
    const r = rig({ sntp: true, sntpLiesByMs: -(TRUE_START - Date.parse('1999-01-01T00:00:00Z')) });
    r.platform.timeNow = undefined; // no platform exchange in this test: SNTP alone
    assert.equal(r.refused[0]?.reason, 'implausible');
    assert.equal(r.time.state, TimeState.Unset);
    r.sntpServer.faults.liesByMs = 0;
    r.clock.advance(31_000); // the next poll while unset
    assert.equal(r.time.state, TimeState.Synced);
    assert.equal(r.time.report().source, 'sntp');
    // A server that jumps ten minutes is not believed by a synchronised clock.
    r.sntpServer.faults.liesByMs = 600_000;
    r.clock.advance(3_700_000);
    assert.ok(r.refused.some((e) => e.source === 'sntp' && e.reason === 'too-far'));
    assert.ok(Math.abs(r.error()) < 1_500, `error ${r.error()} ms`);
  });

  it('refuses a replayed, a forged and an unsolicited time answer', () => {
    const r = rig();
    r.clock.advance(1_000);
    assert.equal(r.time.state, TimeState.Synced);
    const answer = r.platform.timeAnswers[0];
    const before = r.error();
    // The frame layer refuses the replay and the forgery before the time unit sees them.
    assert.deepEqual(r.meter.comms.receiveDownlink(answer), { ok: false, reason: 'replay' });
    const forged = answer.slice();
    forged[forged.length - 20] ^= 0x01;
    assert.deepEqual(r.meter.comms.receiveDownlink(forged), { ok: false, reason: 'decrypt-failed' });
    // An authentic frame that answers no request in flight (a platform bug, a late duplicate).
    const lying = sealFrame(
      nobleCrypto,
      r.keys.downlink,
      { version: FRAME_VERSION, type: TIME_ANSWER_DOWNLINK, meterId: METER_ID, epoch: 1, seq: 50 },
      encodeTimeAnswer({ id: 77, t1: 1, t2: TRUE_START + 86_400_000, t3: TRUE_START + 86_400_000 }),
    );
    assert.equal(r.meter.comms.receiveDownlink(lying).ok, true, 'the seal is good');
    assert.equal(r.refused.at(-1)?.reason, 'unsolicited');
    assert.equal(r.error(), before, 'the clock did not move');
    // A body that is not an answer at all: a typed refusal, nothing changed.
    assert.equal(r.time.receiveAnswer(new Uint8Array([0xa1, 0x62, 0x69, 0x64, 0x61, 0x78])), false);
    assert.equal(r.refused.at(-1)?.reason, 'bad-answer');
    assert.equal(r.error(), before);
    assert.equal(r.time.state, TimeState.Synced);
  });

  it('estimates a fast oscillator and keeps the error bounded between syncs', () => {
    const r = rig({ fastPpm: 200, time: { platformPollMs: 3_600_000 } });
    r.clock.advance(1_000);
    let worst = 0;
    let worstAfterSettling = 0;
    let previous = r.meter.clock.now();
    for (let minute = 1; minute <= 48 * 60; minute++) {
      r.clock.advance(60_000);
      const now = r.meter.clock.now();
      assert.ok(now > previous, `the clock went back at minute ${minute}`);
      previous = now;
      worst = Math.max(worst, Math.abs(r.error()));
      if (minute > 6 * 60) worstAfterSettling = Math.max(worstAfterSettling, Math.abs(r.error()));
    }
    const drift = r.time.report().driftPpm;
    assert.ok(Math.abs(drift - 200) < 10, `drift estimate ${drift} ppm`);
    // Uncompensated, 200 ppm is 720 ms an hour; compensated, the hourly sync finds next to nothing.
    assert.ok(worst < 800, `worst error ${worst} ms`);
    assert.ok(worstAfterSettling < 50, `worst error after six hours ${worstAfterSettling} ms`);
    assert.ok(
      r.synced.slice(1).every((e) => e.how !== 'stepped'),
      'no step after the first sync',
    );
  });

  it('goes into holdover when no source confirms the clock, and its records say so', () => {
    const r = rig({ time: { holdoverMs: 3_600_000 } });
    r.clock.advance(1_000);
    assert.equal(r.time.state, TimeState.Synced);
    r.platform.timeNow = undefined; // the platform stops answering
    r.clock.advance(3_600_000 + 60_000);
    assert.equal(r.time.state, TimeState.Holdover);
    r.meter.records.appendOperation('test', 'in holdover');
    assert.equal(r.lastRecordState(), TimeState.Holdover);
    assert.ok(r.statusEvents.some((e) => e.event === 'clock-holdover'));
    // The display still shows the time it keeps: the meter knew it once.
    r.meter.information.showIdle();
    assert.match(r.board.display.text, /ParkLink \d\d:\d\d/);
  });

  it("sets a cellular meter's clock from the network's time, and the platform's answer confirms it", () => {
    const clock = new VirtualClock('1970-01-01T00:00:00Z');
    const broker = new VirtualBroker(clock);
    const keys = deriveMeterKeys(nobleCrypto, MASTER, METER_ID, 1);
    const platform = new VirtualPlatform(broker, nobleCrypto);
    platform.register(METER_ID, keys);
    const trueNow = () => TRUE_START + clock.monotonic();
    const board = new VirtualBoard({
      modem: { broker, clientId: `meter-${METER_ID}`, network: { now: trueNow, zoneQuarters: 4 } },
      clock,
    });
    provisionBoard(
      board.hardware,
      { ...keys, cardTokenKey: deriveCardTokenKey(nobleCrypto, MASTER) },
      METER_ID,
    );
    const meter = new Meter(board.hardware, {
      meterId: METER_ID,
      bays: [1],
      rate: { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 },
      radioDuty: false,
      time: {},
    });
    const synced: MeterEvents['time-synced'][] = [];
    meter.bus.on('time-synced', (e) => synced.push(e));
    meter.start();
    for (let i = 0; i < 1_200 && meter.time?.state !== TimeState.Synced; i++) clock.advance(100);
    assert.equal(meter.time?.state, TimeState.Synced);
    assert.equal(synced[0].source, 'cellular');
    assert.ok(Math.abs(meter.clock.now() - trueNow()) <= 1_000, `error ${meter.clock.now() - trueNow()} ms`);
    assert.equal(
      decodeRecord(meter.log.read(1)[0].bytes).timeState,
      TimeState.Unset,
      'the boot record came before',
    );
    // The platform's answer agrees within the network time's resolution: it only confirms.
    platform.timeNow = () => Math.round(trueNow());
    for (let i = 0; i < 1_500 && !synced.some((e) => e.source === 'platform'); i++) clock.advance(100);
    const fromPlatform = synced.find((e) => e.source === 'platform');
    assert.ok(fromPlatform, 'the platform answered');
    assert.equal(fromPlatform.how, 'confirmed');
    assert.equal(meter.time?.report().source, 'cellular');
  });
});
