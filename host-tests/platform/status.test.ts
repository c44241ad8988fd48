// Meter status on the platform, on both backends: 0x04 frames through ingest's gate and route
// (status reports and events), replays and forgeries refused with nothing stored,
// GET /api/meters/:id/status, the alarms with time and state, and settings pushed as 0x84.
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { FRAME_VERSION, openFrame, sealFrame } from '../../protocol/frame';
import {
  DEFAULT_SETTINGS,
  decodeSettings,
  encodeStatusMessage,
  SETTINGS_FRAME,
  STATUS_FRAME,
  type StatusMessage,
} from '../../protocol/status';
import { downlinkTopic, meterClientId, uplinkTopic } from '../../protocol/topics';
import { createPlatform, type Platform } from '../../platform-server/platform';
import {
  CapturingLogger,
  crypto,
  forEachBackend,
  type OperatorLogin,
  operatorLogin,
  randomMeterId,
  TestMeter,
} from '../../sim/fleet/platform';

const T0 = 1_772_440_200; // 2026-03-02T08:30:00Z

forEachBackend('meter status (0x04) and alarms', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let meter: TestMeter;
  let logger: CapturingLogger;
  let staff: OperatorLogin;

  const frame = (message: StatusMessage, options: { seq?: number; key?: Uint8Array } = {}) =>
    sealFrame(
      crypto,
      options.key ?? meter.keys.uplink,
      {
        version: FRAME_VERSION,
        type: STATUS_FRAME,
        meterId: meter.id,
        epoch: 1,
        seq: options.seq ?? ++meter.frameSeq,
      },
      encodeStatusMessage(message),
    );
  const get = (url: string) => platform.app.inject({ method: 'GET', url, headers: staff.headers });

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    logger = new CapturingLogger();
    platform = await createPlatform({ ...fresh.config, httpLogger: false, logger });
    staff = await operatorLogin(platform.operators, 'operator');
    const id = randomMeterId();
    meter = new TestMeter(id, await platform.provisionMeter(id, 'Market Square'));
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  it('stores a status report and shows it: battery, sensors, modules, faults, occupancy per bay', async () => {
    const outcome = await platform.ingest.handleUplink(
      uplinkTopic(meter.id),
      frame({
        kind: 'status',
        at: T0,
        battery: {
          source: 'disposable',
          packs: { rechargeable: 2, disposable: 64, backup: 100 },
          millivolts: 3610,
        },
        sensors: { temperature: 21.5, humidity: 48, aqi: 2, tilt: 0.4 },
        modules: { reader: 'ok', sensors: 'ok', radio: 'ok', storage: 'ok', power: 'failed' },
        faults: ['power', 'gauge:rechargeable'],
        bays: [
          { bayId: 1, occupied: true, since: T0 - 600, paid: true },
          { bayId: 2, occupied: false, since: 0, paid: false },
        ],
        fan: false,
        settings: 3,
      }),
    );
    assert.equal(outcome.ok, true);
    const res = await get(`/api/meters/${meter.id}/status`);
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.equal(body.reportedAt, new Date(T0 * 1000).toISOString());
    assert.deepEqual(body.battery, {
      source: 'disposable',
      packs: { rechargeable: 2, disposable: 64, backup: 100 },
      millivolts: 3610,
    });
    assert.deepEqual(body.sensors, { temperature: 21.5, humidity: 48, aqi: 2, tilt: 0.4 });
    assert.equal(body.modules.power, 'failed');
    assert.deepEqual(body.faults, ['power', 'gauge:rechargeable']);
    assert.equal(body.settingsVersion, 3);
    assert.deepEqual(
      body.bays.map((b: { bayId: number; occupied: boolean; paid: boolean; since: string | null }) => [
        b.bayId,
        b.occupied,
        b.paid,
        b.since,
      ]),
      [
        [1, true, true, new Date((T0 - 600) * 1000).toISOString()],
        [2, false, false, null],
      ],
    );
  });

  it('stores events; alarms listed newest first with time and state; open alarms on the status', async () => {
    const events: StatusMessage[] = [
      {
        kind: 'event',
        at: T0 + 60,
        event: 'tilt',
        severity: 'alarm',
        active: true,
        value: 31.2,
        detail: 'tilt raised: 31.2',
      },
      {
        kind: 'event',
        at: T0 + 120,
        event: 'bay-arrived',
        severity: 'info',
        active: true,
        bayId: 2,
        detail: 'vehicle in bay 2',
      },
      {
        kind: 'event',
        at: T0 + 720,
        event: 'bay-unpaid',
        severity: 'warning',
        active: true,
        bayId: 2,
        detail: 'unpaid',
      },
      {
        kind: 'event',
        at: T0 + 900,
        event: 'tilt',
        severity: 'alarm',
        active: false,
        value: 1,
        detail: 'tilt cleared: 1.0',
      },
      {
        kind: 'event',
        at: T0 + 960,
        event: 'over-temperature',
        severity: 'warning',
        active: true,
        value: 66,
        detail: 'hot',
      },
    ];
    for (const e of events)
      assert.equal((await platform.ingest.handleUplink(uplinkTopic(meter.id), frame(e))).ok, true);
    const all = (await get(`/api/meters/${meter.id}/alarms`)).json().alarms;
    assert.deepEqual(
      all.map((a: { event: string; state: string; at: string }) => [a.event, a.state, a.at]),
      [
        ['over-temperature', 'raised', new Date((T0 + 960) * 1000).toISOString()],
        ['tilt', 'cleared', new Date((T0 + 900) * 1000).toISOString()],
        ['bay-unpaid', 'raised', new Date((T0 + 720) * 1000).toISOString()],
        ['tilt', 'raised', new Date((T0 + 60) * 1000).toISOString()],
      ],
    );
    assert.equal(all[1].value, 1);
    const raised = (await get(`/api/meters/${meter.id}/alarms?state=raised&limit=1`)).json().alarms;
    assert.deepEqual(
      raised.map((a: { event: string }) => a.event),
      ['over-temperature'],
    );
    const status = (await get(`/api/meters/${meter.id}/status`)).json();
    assert.deepEqual(
      status.openAlarms.map((a: { event: string; bayId: number | null }) => [a.event, a.bayId]),
      [
        ['over-temperature', null],
        ['bay-unpaid', 2],
      ],
      'tilt was cleared',
    );
    const bay2 = status.bays.find((b: { bayId: number }) => b.bayId === 2);
    assert.equal(bay2.occupied, true, 'the arrival event updated the bay');
  });

  it('refuses a replayed, a forged and a malformed frame, storing nothing', async () => {
    const before = (
      await platform.db.query('SELECT count(*)::int AS n FROM meter_events WHERE meter_id = $1', [meter.id])
    ).rows[0];
    const e: StatusMessage = {
      kind: 'event',
      at: T0,
      event: 'vibration',
      severity: 'alarm',
      active: true,
      detail: 'x',
    };
    const replay = await platform.ingest.handleUplink(uplinkTopic(meter.id), frame(e, { seq: 1 }));
    assert.deepEqual([replay.ok, !replay.ok && replay.reason], [false, 'replay']);
    const forged = await platform.ingest.handleUplink(
      uplinkTopic(meter.id),
      frame(e, { key: new Uint8Array(32) }),
    );
    assert.deepEqual([forged.ok, !forged.ok && forged.reason], [false, 'decrypt-failed']);
    const bad = sealFrame(
      crypto,
      meter.keys.uplink,
      { version: FRAME_VERSION, type: STATUS_FRAME, meterId: meter.id, epoch: 1, seq: ++meter.frameSeq },
      Uint8Array.of(0xa1, 0x61, 0x6b, 0x61, 0x78),
    );
    const malformed = await platform.ingest.handleUplink(uplinkTopic(meter.id), bad);
    assert.deepEqual([malformed.ok, !malformed.ok && malformed.reason], [false, 'bad-field']);
    const other = await platform.ingest.handleUplink(uplinkTopic(meter.id + 1), frame(e));
    assert.deepEqual([other.ok, !other.ok && other.reason], [false, 'topic-mismatch']);
    const after = (
      await platform.db.query('SELECT count(*)::int AS n FROM meter_events WHERE meter_id = $1', [meter.id])
    ).rows[0];
    assert.deepEqual(after, before);
    const refused = await platform.db.query<{ reason: string }>(
      'SELECT reason FROM refused_frames WHERE meter_id = $1 ORDER BY id',
      [meter.id],
    );
    assert.deepEqual(
      refused.rows.map((r) => r.reason),
      ['replay', 'decrypt-failed', 'bad-field', 'topic-mismatch'],
    );
  });

  it("shares one uplink window with the meter's record sets: a number is used once, whatever the frame type", async () => {
    const e: StatusMessage = {
      kind: 'event',
      at: T0,
      event: 'tilt',
      severity: 'alarm',
      active: true,
      detail: 'w',
    };
    meter.transactions(1);
    const recordSeq = meter.frameSeq + 2;
    const records = await platform.ingest.handleUplink(
      uplinkTopic(meter.id),
      meter.frame(meter.nextSeq - 1, meter.nextSeq - 1, { seq: recordSeq }),
    );
    assert.equal(records.ok, true, records.ok ? '' : records.detail);
    const sameNumber = await platform.ingest.handleUplink(
      uplinkTopic(meter.id),
      frame(e, { seq: recordSeq }),
    );
    assert.deepEqual([sameNumber.ok, !sameNumber.ok && sameNumber.reason], [false, 'replay']);
    const overtaken = await platform.ingest.handleUplink(
      uplinkTopic(meter.id),
      frame(e, { seq: recordSeq - 1 }),
    );
    assert.equal(overtaken.ok, true, 'sealed before the record set, arriving after it');
    const again = await platform.ingest.handleUplink(uplinkTopic(meter.id), frame(e, { seq: recordSeq - 1 }));
    assert.equal(again.ok, false);
  });

  it('takes 0x04 frames off the broker through ingest', async () => {
    const client = await mqtt.connectAsync(platform.brokerUrl, {
      clientId: meterClientId(meter.id),
      ...platform.meterMqttCredentials(meter.id),
    });
    try {
      await client.publishAsync(
        uplinkTopic(meter.id),
        Buffer.from(
          frame({
            kind: 'event',
            at: T0 + 2000,
            event: 'cover-opened',
            severity: 'alarm',
            active: true,
            detail: 'lux 250',
          }),
        ),
        { qos: 1 },
      );
      for (let i = 0; i < 100; i++) {
        const rows = await platform.db.query(
          "SELECT 1 FROM meter_events WHERE meter_id = $1 AND event = 'cover-opened'",
          [meter.id],
        );
        if (rows.rows.length > 0) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.fail('the cover-opened event never reached the database');
    } finally {
      await client.endAsync();
    }
  });

  it('pushes settings as a 0x84 downlink sealed for the meter; refuses bad ones with a 400 naming the field', async () => {
    const client = await mqtt.connectAsync(platform.brokerUrl, {
      clientId: meterClientId(meter.id),
      ...platform.meterMqttCredentials(meter.id),
    });
    try {
      await client.subscribeAsync(downlinkTopic(meter.id), { qos: 1 });
      const received = new Promise<Uint8Array>((resolve) =>
        client.on('message', (_topic, payload) => resolve(new Uint8Array(payload))),
      );
      const settings = { ...DEFAULT_SETTINGS, version: 7, sampleSeconds: 30 };
      const res = await platform.app.inject({
        method: 'POST',
        url: `/api/meters/${meter.id}/settings`,
        headers: staff.headers,
        payload: settings,
      });
      assert.equal(res.statusCode, 202);
      const { header, body } = openFrame(crypto, meter.keys.downlink, await received);
      assert.equal(header.type, SETTINGS_FRAME);
      assert.deepEqual(decodeSettings(body), { ...settings, thresholds: { ...settings.thresholds } });
      const bad = await platform.app.inject({
        method: 'POST',
        url: `/api/meters/${meter.id}/settings`,
        headers: staff.headers,
        payload: { ...settings, thresholds: { ...settings.thresholds, fanOn: 30, fanOff: 35 } },
      });
      assert.equal(bad.statusCode, 400);
      assert.match(bad.json().message, /fan off threshold/);
      const missing = await platform.app.inject({
        method: 'POST',
        url: `/api/meters/${meter.id}/settings`,
        headers: staff.headers,
        payload: { ...settings, sampleSeconds: 0 },
      });
      assert.equal(missing.statusCode, 400);
      assert.match(missing.json().message, /sampleSeconds/);
    } finally {
      await client.endAsync();
    }
  });

  it('404 for an unknown meter, 400 for a bad id or query', async () => {
    assert.equal((await get('/api/meters/4294967295/status')).statusCode, 404);
    assert.equal((await get('/api/meters/abc/status')).statusCode, 400);
    assert.equal((await get(`/api/meters/${meter.id}/alarms?state=maybe`)).statusCode, 400);
  });
});
