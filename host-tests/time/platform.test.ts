// The platform's side of time, on PGlite and on PostgreSQL: a 0x08 request through ingest's gate is answered with a
// sealed 0x88 echoing it, the meter's time unit turns the answer into its offset, the meter's clock
// shows in GET /api/meters/:id/clock and in its status; a replayed request is refused and not
// answered; records keep the clock state they carry (7th field), older ones show it as unknown.
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { EventBus } from '../../firmware/bus';
import type { MeterEvents } from '../../firmware/events';
import { DisciplinedClock, TimeUnit } from '../../firmware/units/time';
import { VirtualClock } from '../../hal/mock/clock';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { FRAME_VERSION, openFrame, sealFrame } from '../../protocol/frame';
import { decodeTimeAnswer, TIME_ANSWER_DOWNLINK, TIME_REQUEST_UPLINK, TimeState } from '../../protocol/time';
import { uplinkTopic } from '../../protocol/topics';
import { type Database, openDatabase } from '../../platform-server/core/db';
import { migrate } from '../../platform-server/core/migrations';
import { meterRoutes } from '../../platform-server/fleet/meters';
import { StatusService } from '../../platform-server/fleet/status';
import { statusRoutes } from '../../platform-server/fleet/statusRoutes';
import { Ingest } from '../../platform-server/ingest/gate';
import { MeterTables } from '../../platform-server/ingest/meters';
import { keystoreFromHex } from '../../platform-server/keys/keystore';
import { Operators } from '../../platform-server/operators/service';
import { startTime } from '../../platform-server/time';
import {
  forEachBackend,
  type OperatorLogin,
  operatorLogin,
  quietLogger,
  TestMeter,
} from '../../sim/fleet/platform';

const METER = 4343;
const keystore = keystoreFromHex('22'.repeat(32));
const PLATFORM_NOW = Date.parse('2026-06-01T12:00:00Z');

forEachBackend('platform time exchange', (backend) => {
  let db: Database;
  let drop: () => Promise<void>;
  const app = Fastify({ logger: false });
  const downlinks: { meterId: number; type: number; body: Uint8Array }[] = [];
  let ingest: Ingest;
  let viewer: OperatorLogin;
  let platformNow = PLATFORM_NOW;

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    db = await openDatabase({ url: fresh.config.databaseUrl });
    await migrate(db);
    await db.query('INSERT INTO meters (id, name, key_epoch) VALUES ($1, $2, 1)', [METER, 'test']);
    const operators = new Operators(db);
    operators.install(app);
    viewer = await operatorLogin(operators, 'viewer');
    ingest = new Ingest({ db, keystore, logger: quietLogger });
    const meters = new MeterTables(db);
    const sendDownlink = async (meterId: number, type: number, body: Uint8Array) => {
      downlinks.push({ meterId, type, body });
      return downlinks.length;
    };
    const clocks = await startTime(app, {
      db,
      ingest,
      meters,
      guard: operators,
      sendDownlink,
      now: () => platformNow,
    });
    await app.register(meterRoutes, { meters, records: meters, guard: operators });
    const status = new StatusService({ db, meters, keystore, logger: quietLogger, sendDownlink });
    await app.register(statusRoutes, {
      db,
      meters,
      guard: operators,
      service: status,
      clock: (id) => clocks.clockOf(id),
    });
  });
  after(async () => {
    await ingest?.close();
    await app.close();
    await db?.close();
    await drop?.();
  });

  it('answers a sealed 0x08 with 0x88, and the meter computes its offset from it', async () => {
    const keys = keystore.meterKeys(METER, 1);
    const clock = new VirtualClock('1970-01-01T00:00:10Z');
    const bus = new EventBus<MeterEvents>();
    const sent: Uint8Array[] = [];
    let uplinkSeq = 0;
    const unit = new TimeUnit({
      clock: new DisciplinedClock(clock),
      timers: clock,
      bus,
      send: (type, body) => {
        sent.push(
          sealFrame(
            nobleCrypto,
            keys.uplink,
            { version: FRAME_VERSION, type, meterId: METER, epoch: 1, seq: ++uplinkSeq },
            body,
          ),
        );
        return true;
      },
    });
    assert.equal(unit.requestPlatformTime(), true);
    assert.equal(openFrame(nobleCrypto, keys.uplink, sent[0]).header.type, TIME_REQUEST_UPLINK);
    // 40 ms of transit each way: the platform takes it at 12:00:00.000 and answers 5 ms later.
    clock.advance(40);
    const outcome = await ingest.handleUplink(uplinkTopic(METER), sent[0]);
    assert.deepEqual(outcome, {
      ok: true,
      routed: true,
      type: TIME_REQUEST_UPLINK,
      meterId: METER,
      frameSeq: 1,
    });
    assert.equal(downlinks.length, 1);
    assert.equal(downlinks[0].type, TIME_ANSWER_DOWNLINK);
    const answer = decodeTimeAnswer(downlinks[0].body);
    assert.equal(answer.id, 1);
    assert.equal(answer.t1, 10_000, 'the meter clock echoed');
    assert.equal(answer.t2, PLATFORM_NOW);
    clock.advance(40);
    assert.equal(unit.receiveAnswer(downlinks[0].body), true);
    assert.equal(unit.state, TimeState.Synced);
    // The platform's clock stood still in this test (t2 = t3): the meter lands within the transit's half.
    assert.ok(Math.abs(unit.clock.now() - (PLATFORM_NOW + 40)) <= 1, `meter at ${unit.clock.now()}`);

    // A replayed request is refused by the gate and not answered.
    const replay = await ingest.handleUplink(uplinkTopic(METER), sent[0]);
    assert.deepEqual([replay.ok, !replay.ok && replay.reason], [false, 'replay']);
    assert.equal(downlinks.length, 1);

    // The next request reports the clock's state; the API shows it.
    platformNow += 60_000;
    clock.advance(60_000);
    unit.requestPlatformTime();
    await ingest.handleUplink(uplinkTopic(METER), sent[1]);
    const view = await app.inject({
      method: 'GET',
      url: `/api/meters/${METER}/clock`,
      headers: viewer.headers,
    });
    assert.equal(view.statusCode, 200);
    const c = view.json();
    assert.equal(c.state, 'synced');
    assert.equal(c.synced, true);
    assert.equal(c.source, 'platform');
    assert.equal(c.lastOffsetMs, PLATFORM_NOW - 10_040, 'true time minus the meter clock at the midpoint');
    assert.equal(c.requests, 2);
    // t2 - t1: this test's platform clock does not move during the 40 ms of transit.
    assert.equal(c.apparentOffsetMs, -40);
    const status = await app.inject({
      method: 'GET',
      url: `/api/meters/${METER}/status`,
      headers: viewer.headers,
    });
    assert.equal(status.statusCode, 200);
    assert.equal(status.json().clock.state, 'synced');
    assert.equal(status.json().clock.lastOffsetMs, c.lastOffsetMs);
  });

  it('refuses a malformed time request with a typed reason and stores nothing', async () => {
    const keys = keystore.meterKeys(METER, 1);
    const before = (
      await db.query<{ requests: number }>('SELECT requests FROM meter_clocks WHERE meter_id = $1', [METER])
    ).rows[0];
    const frame = sealFrame(
      nobleCrypto,
      keys.uplink,
      { version: FRAME_VERSION, type: TIME_REQUEST_UPLINK, meterId: METER, epoch: 1, seq: 50 },
      new Uint8Array([0xa1, 0x62, 0x69, 0x64, 0x20]), // { "id": -1 }
    );
    const outcome = await ingest.handleUplink(uplinkTopic(METER), frame);
    assert.deepEqual([outcome.ok, !outcome.ok && outcome.reason], [false, 'bad-field']);
    const afterwards = (
      await db.query<{ requests: number }>('SELECT requests FROM meter_clocks WHERE meter_id = $1', [METER])
    ).rows[0];
    assert.equal(Number(afterwards.requests), Number(before.requests));
  });

  it("stores each record's clock state and shows it in the transactions API, unknown for older records", async () => {
    const meter = new TestMeter(METER, {
      ...keystore.meterKeys(METER, 1),
      cardTokenKey: new Uint8Array(32).fill(5),
    });
    meter.frameSeq = 100;
    meter.transaction(); // written as before meters reported their clock: no 7th field
    const unset = meter.transaction();
    meter.records.pop();
    meter.links.pop();
    meter.append({ ...unset, timeState: TimeState.Unset });
    const synced = meter.transaction();
    meter.records.pop();
    meter.links.pop();
    meter.append({ ...synced, timeState: TimeState.Synced });
    const stored = await ingest.handleUplink(uplinkTopic(METER), meter.frame(1, 3));
    assert.equal(stored.ok, true);
    const rows = await db.query<{ seq: number; time_state: number | null }>(
      'SELECT seq, time_state FROM records WHERE meter_id = $1 ORDER BY seq',
      [METER],
    );
    assert.deepEqual(
      rows.rows.map((r) => [Number(r.seq), r.time_state]),
      [
        [1, null],
        [2, 0],
        [3, 1],
      ],
    );
    const api = await app.inject({
      method: 'GET',
      url: `/api/meters/${METER}/transactions`,
      headers: viewer.headers,
    });
    const bySeq = new Map(api.json().transactions.map((t: { seq: number }) => [t.seq, t]));
    assert.deepEqual(
      [1, 2, 3].map((s) => {
        const t = bySeq.get(s) as { timeSynced: boolean | null; timeState: string | null };
        return [t.timeSynced, t.timeState];
      }),
      [
        [null, null],
        [false, 'unset'],
        [true, 'synced'],
      ],
    );
  });
});
