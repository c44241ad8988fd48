// The platform's side of tariffs on PGlite: stored after validation (400 naming the field), pushed
// as 0x85 to a meter whose charging unit applies it and answers 0x05 through ingest's gate,
// recorded as applied, replays refused; quotes priced by the same engine over HTTP (public), the
// rest behind operator logins.
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { ChargingUnit } from '../../firmware/units/charging';
import { FRAME_VERSION, openFrame, sealFrame } from '../../protocol/frame';
import { flatTariff, type TariffDocument } from '../../protocol/tariff';
import { uplinkTopic } from '../../protocol/topics';
import { type Database, openDatabase } from '../../platform-server/core/db';
import { migrate } from '../../platform-server/core/migrations';
import { keystoreFromHex } from '../../platform-server/keys/keystore';
import { Operators } from '../../platform-server/operators/service';
import { Ingest } from '../../platform-server/ingest/gate';
import { MeterTables } from '../../platform-server/ingest/meters';
import { startTariffs } from '../../platform-server/tariffs';
import { type OperatorLogin, operatorLogin, quietLogger } from '../../sim/fleet/platform';

const METER = 4242;
const keystore = keystoreFromHex('11'.repeat(32));
const doc: TariffDocument = {
  ...flatTariff({
    currency: 978,
    perHour: 300,
    minMinutes: 15,
    maxMinutes: 120,
    stepMinutes: 15,
    timeZone: 'CET-1CEST,M3.5.0,M10.5.0/3',
  }),
  id: 'zone-a',
  version: 2,
};

describe('platform tariffs (PGlite)', () => {
  let db: Database;
  const app = Fastify({ logger: false });
  const downlinks: { type: number; body: Uint8Array; seq: number }[] = [];
  let seq = 0;
  let service: Awaited<ReturnType<typeof startTariffs>>;
  let staff: OperatorLogin;
  let ingest: Ingest;

  before(async () => {
    db = await openDatabase();
    await migrate(db);
    await db.query('INSERT INTO meters (id, name, key_epoch) VALUES ($1, $2, 1)', [METER, 'test']);
    const operators = new Operators(db);
    operators.install(app);
    staff = await operatorLogin(operators, 'operator');
    // The uplink gate without a broker: frames are handed to handleUplink.
    ingest = new Ingest({ db, keystore, logger: quietLogger });
    service = await startTariffs(app, {
      db,
      meters: new MeterTables(db),
      keystore,
      ingest,
      guard: operators,
      async sendDownlink(_meterId, type, body) {
        downlinks.push({ type, body, seq: ++seq });
        return seq;
      },
    });
  });
  after(async () => {
    await ingest.close();
    await app.close();
    await db.close();
  });

  it('refuses a bad tariff with 400 naming the field, stores a good one', async () => {
    const bad = await app.inject({
      method: 'POST',
      url: '/api/tariffs',
      headers: staff.headers,
      payload: { ...doc, rounding: { money: 'sideways' } },
    });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().field, 'rounding.money');
    const good = await app.inject({
      method: 'POST',
      url: '/api/tariffs',
      headers: staff.headers,
      payload: doc,
    });
    assert.equal(good.statusCode, 201);
    assert.deepEqual(good.json(), { id: 'zone-a', version: 2 });
    const clash = await app.inject({
      method: 'POST',
      url: '/api/tariffs',
      headers: staff.headers,
      payload: { ...doc, graceMinutes: 5 },
    });
    assert.equal(clash.statusCode, 409);
  });

  it('pushes 0x85, the meter applies it and acknowledges 0x05, and the platform records it', async () => {
    const pushed = await app.inject({
      method: 'POST',
      url: `/api/meters/${METER}/tariff`,
      headers: staff.headers,
      payload: { tariffId: 'zone-a' },
    });
    assert.equal(pushed.statusCode, 202);
    assert.equal(downlinks[0].type, 0x85);
    // The meter side: its charging unit applies the body and sends the ack through comms.send.
    const keys = keystore.meterKeys(METER, 1);
    let uplinkSeq = 10;
    const frames: Uint8Array[] = [];
    const charging = new ChargingUnit({
      tariff: { currency: 978, perHour: 100, minMinutes: 15, maxMinutes: 60, stepMinutes: 15 },
      send: (type, body) => {
        frames.push(
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
    charging.applyDownlink(downlinks[0].body);
    assert.equal(charging.tariff.version, 2);
    assert.equal(openFrame(nobleCrypto, keys.uplink, frames[0]).header.type, 0x05);
    const ack = await ingest.handleUplink(uplinkTopic(METER), frames[0]);
    assert.deepEqual(ack, { ok: true, routed: true, type: 0x05, meterId: METER, frameSeq: 11 });
    const replay = await ingest.handleUplink(uplinkTopic(METER), frames[0]);
    assert.deepEqual([replay.ok, !replay.ok && replay.reason], [false, 'replay']);
    const status = await app.inject({
      method: 'GET',
      url: `/api/meters/${METER}/tariff`,
      headers: staff.headers,
    });
    const { pushedAt, timesOutAt, acknowledgedAt, ...shown } = status.json();
    assert.deepEqual(shown, {
      meterId: METER,
      tariffId: 'zone-a',
      pushedVersion: 2,
      state: 'applied',
      appliedTariff: 'zone-a',
      appliedVersion: 2,
      refused: null,
    });
    assert.ok(Date.parse(acknowledgedAt) >= Date.parse(pushedAt));
    assert.ok(Date.parse(timesOutAt) > Date.parse(pushedAt));
    // Renewals at the platform price with the tariff the meter holds: the same answer as the meter's.
    assert.equal(service.tariffOf(METER)?.version, 2);
    const start = Date.parse('2026-06-01T10:00:00Z') / 1000;
    const platformQuote = service
      .tariffOf(METER)!
      .quoteDuration({ bay: 1, start, minutes: 30, paidMinutes: 15 });
    const meterQuote = charging.renewal(1, start, start, 15, 30);
    assert.deepEqual(platformQuote, meterQuote);
  });

  it('quotes over HTTP, both directions, with refusals as answers', async () => {
    const start = Date.parse('2026-06-01T10:00:00Z') / 1000;
    const q = await app.inject({
      method: 'POST',
      url: '/api/quote',
      payload: { meterId: METER, bay: 3, start, minutes: 45 },
    });
    assert.equal(q.statusCode, 200);
    assert.equal(q.json().amount, 225);
    const a = await app.inject({
      method: 'POST',
      url: '/api/quote',
      payload: { tariffId: 'zone-a', bay: 3, start, amount: 400 },
    });
    assert.deepEqual([a.json().minutes, a.json().amount], [75, 375]);
    const long = await app.inject({
      method: 'POST',
      url: '/api/quote',
      payload: { tariffId: 'zone-a', bay: 3, start, minutes: 150 },
    });
    assert.equal(long.json().reason, 'max-stay');
    const none = await app.inject({
      method: 'POST',
      url: '/api/quote',
      payload: { meterId: 1, bay: 3, start, minutes: 15 },
    });
    assert.equal(none.statusCode, 404);
  });

  it("quotes with the payer's history: a cap per period and no return, a bad history refused on its field", async () => {
    await service.save({
      ...doc,
      id: 'zone-cap',
      version: 1,
      maxPrice: { amount: 300, resetAt: '02:00' },
      noReturnMinutes: 60,
    });
    const start = Date.parse('2026-06-01T10:00:00Z') / 1000;
    const history = [{ start: start - 3 * 3600, end: start - 2 * 3600, amount: 200 }];
    const capped = await app.inject({
      method: 'POST',
      url: '/api/quote',
      payload: { tariffId: 'zone-cap', bay: 3, start, minutes: 45, history },
    });
    assert.equal(capped.statusCode, 200);
    assert.equal(capped.json().amount, 100, '2.00 paid earlier: 1.00 left under the cap');
    assert.deepEqual(capped.json().capShares, [{ start, end: start + 45 * 60, amount: 100 }]);
    const back = await app.inject({
      method: 'POST',
      url: '/api/quote',
      payload: { tariffId: 'zone-cap', bay: 3, start: start - 5400, minutes: 45, history },
    });
    assert.equal(back.json().reason, 'no-return');
    const bad = await app.inject({
      method: 'POST',
      url: '/api/quote',
      payload: { tariffId: 'zone-cap', bay: 3, start, minutes: 45, history: [{ start, end: start }] },
    });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().message, /history\/0.*amount/);
  });
});
