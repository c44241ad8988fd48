// Tariffs on the whole platform, both backends: re-posting a stored version is compared as data
// (keys in any order), not as the stored text; a tariff id has a length limit, refused with a 400
// naming the field; a push no meter acknowledges is 'timed-out' after the bound, listed as such,
// and moved on by a late acknowledgement; an acknowledgement that arrives before the push returns
// is not lost.
import assert from 'node:assert/strict';
import { FRAME_VERSION, sealFrame } from '../../protocol/frame';
import { encodeTariffAck, flatTariff, TARIFF_ACK_UPLINK, type TariffDocument } from '../../protocol/tariff';
import { uplinkTopic } from '../../protocol/topics';
import { MeterTables } from '../../platform-server/ingest/meters';
import type { Platform } from '../../platform-server/platform';
import { TARIFF_ID_MAX, TariffService } from '../../platform-server/tariffs/service';
import {
  crypto,
  forEachBackend,
  type OperatorLogin,
  operatorLogin,
  randomMeterId,
  startPlatform,
  TestMeter,
} from '../../sim/fleet/platform';

const TIMEOUT_S = 600;

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

/** The same data with every object's keys in reverse order. */
function reordered(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reordered);
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(
      Object.entries(value)
        .reverse()
        .map(([k, v]) => [k, reordered(v)]),
    );
  return value;
}

forEachBackend('tariffs: re-posting, id length, push timeout', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let staff: OperatorLogin;
  let nowMs = Date.now();
  const meters: TestMeter[] = [];

  const post = (payload: unknown) =>
    platform.app.inject({
      method: 'POST',
      url: '/api/tariffs',
      headers: staff.headers,
      payload: payload as object,
    });
  const get = (url: string) => platform.app.inject({ method: 'GET', url, headers: staff.headers });
  const push = (meterId: number, tariffId: string) =>
    platform.app.inject({
      method: 'POST',
      url: `/api/meters/${meterId}/tariff`,
      headers: staff.headers,
      payload: { tariffId },
    });
  /** The meter's acknowledgement; naming no tariff, as meters did before acknowledgements named it. */
  const ack = async (m: TestMeter, version: number, ok: boolean, tariff?: string) => {
    const frame = sealFrame(
      crypto,
      m.keys.uplink,
      { version: FRAME_VERSION, type: TARIFF_ACK_UPLINK, meterId: m.id, epoch: 1, seq: ++m.frameSeq },
      encodeTariffAck({
        kind: 'tariff',
        version,
        ok,
        ...(tariff === undefined ? {} : { tariff }),
        ...(ok ? {} : { why: 'bad-field' }),
      }),
    );
    assert.equal((await platform.ingest.handleUplink(uplinkTopic(m.id), frame)).ok, true);
  };

  before(async function () {
    this.timeout(60_000); // a fresh database on a machine shared with other work
    ({ platform, drop } = await startPlatform(backend, {
      tariffs: { now: () => nowMs, pushTimeoutSeconds: TIMEOUT_S },
    }));
    staff = await operatorLogin(platform.operators, 'operator');
    const base = randomMeterId();
    for (let i = 0; i < 3; i++)
      meters.push(new TestMeter(base + i, await platform.provisionMeter(base + i, `Street ${i}`)));
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  it('takes an identical tariff posted again, its keys in any order; other content is still a 409', async () => {
    assert.equal((await post(doc)).statusCode, 201);
    const same = await post(doc);
    assert.equal(same.statusCode, 201, same.body);
    assert.deepEqual(same.json(), { id: 'zone-a', version: 2 });
    const shuffled = await post(reordered(doc));
    assert.equal(shuffled.statusCode, 201, shuffled.body);
    const clash = await post({ ...doc, graceMinutes: 5 });
    assert.equal(clash.statusCode, 409);
    assert.equal(clash.json().code, 'version-exists');
    const stored = await platform.db.query('SELECT count(*)::int AS n FROM tariffs WHERE id = $1', [
      'zone-a',
    ]);
    assert.equal(stored.rows[0].n, 1);
  });

  it(`limits a tariff id to ${TARIFF_ID_MAX} characters with a 400 naming the field`, async () => {
    const long = 'z'.repeat(TARIFF_ID_MAX + 1);
    const refused = await post({ ...doc, id: long });
    assert.equal(refused.statusCode, 400);
    assert.equal(refused.json().code, 'bad-tariff');
    assert.equal(refused.json().field, 'id');
    const stored = await platform.db.query('SELECT count(*)::int AS n FROM tariffs WHERE id = $1', [long]);
    assert.equal(stored.rows[0].n, 0, 'nothing stored');
    assert.equal((await post({ ...doc, id: 'z'.repeat(TARIFF_ID_MAX) })).statusCode, 201);
    const pushLong = await push(meters[0].id, long);
    assert.equal(pushLong.statusCode, 400);
    assert.equal(pushLong.json().field, 'tariffId');
    assert.equal((await get(`/api/tariffs/${long}`)).statusCode, 400);
  });

  it('a push no meter acknowledges times out after the bound and is listed; acknowledged ones are applied or refused', async () => {
    const [a, b, c] = meters;
    for (const m of meters) assert.equal((await push(m.id, 'zone-a')).statusCode, 202);
    let status = (await get(`/api/meters/${b.id}/tariff`)).json();
    assert.equal(status.state, 'pending');
    assert.equal(status.timesOutAt, new Date(Date.parse(status.pushedAt) + TIMEOUT_S * 1000).toISOString());
    await ack(a, 2, true);
    await ack(c, 2, false);
    nowMs += (TIMEOUT_S - 1) * 1000;
    assert.equal((await get(`/api/meters/${b.id}/tariff`)).json().state, 'pending', 'inside the bound');
    nowMs += 2000;
    const states = Object.fromEntries(
      await Promise.all(
        meters.map(async (m) => [m.id, (await get(`/api/meters/${m.id}/tariff`)).json().state]),
      ),
    );
    assert.deepEqual(states, { [a.id]: 'applied', [b.id]: 'timed-out', [c.id]: 'refused' });
    const timedOut = (await get('/api/tariff-pushes?state=timed-out')).json().pushes;
    assert.deepEqual(
      timedOut.map((p: { meterId: number }) => p.meterId),
      [b.id],
    );
    assert.equal((await get('/api/tariff-pushes?state=pending')).json().pushes.length, 0);
    const refused = (await get(`/api/meters/${c.id}/tariff`)).json();
    assert.deepEqual(refused.refused, { version: 2, why: 'bad-field' });

    // A late acknowledgement still counts.
    await ack(b, 2, true);
    status = (await get(`/api/meters/${b.id}/tariff`)).json();
    assert.equal(status.state, 'applied');
    assert.equal(status.appliedVersion, 2);
    assert.ok(status.acknowledgedAt);
    assert.equal((await get('/api/tariff-pushes?state=timed-out')).json().pushes.length, 0);
    assert.equal((await get('/api/tariff-pushes?state=stuck')).statusCode, 400);
  });

  it("a meter's acknowledgement that arrives before its first push returns is recorded: applied", async () => {
    const id = randomMeterId();
    const meter = new TestMeter(id, await platform.provisionMeter(id, 'Quick Street'));
    // The broker has the push and the meter answers, all before sendDownlink resolves: the
    // acknowledgement goes through the platform's own ingest to its own tariff service.
    const pusher = new TariffService({
      db: platform.db,
      meters: new MeterTables(platform.db),
      keystore: platform.keystore,
      now: () => nowMs,
      sendDownlink: async (meterId, type, body) => {
        const seq = await platform.ingest.sendDownlink(meterId, type, body);
        await ack(meter, 2, true);
        return seq;
      },
    });
    const pushed = await pusher.push(id, 'zone-a');
    const status = (await get(`/api/meters/${id}/tariff`)).json();
    assert.equal(status.state, 'applied');
    assert.equal(status.appliedVersion, 2);
    const row = await platform.db.query<{ downlink_seq: number }>(
      'SELECT downlink_seq FROM meter_tariffs WHERE meter_id = $1',
      [id],
    );
    assert.equal(row.rows[0].downlink_seq, pushed.downlinkSeq);
  });

  it('a push of another tariff in the version the meter holds is applied only when the meter names it', async () => {
    const [meter] = meters; // applied zone-a version 2 above, by an acknowledgement naming no tariff
    const before = (await get(`/api/meters/${meter.id}/tariff`)).json();
    assert.deepEqual([before.state, before.appliedTariff], ['applied', 'zone-a']);
    assert.equal((await post({ ...doc, id: 'zone-b', graceMinutes: 5 })).statusCode, 201);
    assert.equal((await push(meter.id, 'zone-b')).statusCode, 202);
    let status = (await get(`/api/meters/${meter.id}/tariff`)).json();
    assert.deepEqual([status.tariffId, status.pushedVersion, status.state], ['zone-b', 2, 'pending']);
    // A late acknowledgement of the tariff it held: still zone-a at the meter, and for renewals.
    await ack(meter, 2, true, 'zone-a');
    status = (await get(`/api/meters/${meter.id}/tariff`)).json();
    assert.deepEqual([status.state, status.appliedTariff], ['pending', 'zone-a']);
    assert.equal(platform.tariffs.tariffOf(meter.id)?.doc.id, 'zone-a');
    await ack(meter, 2, true, 'zone-b');
    status = (await get(`/api/meters/${meter.id}/tariff`)).json();
    assert.deepEqual([status.state, status.appliedTariff, status.appliedVersion], ['applied', 'zone-b', 2]);
    assert.equal(platform.tariffs.tariffOf(meter.id)?.doc.id, 'zone-b');
    assert.equal(platform.tariffs.tariffOf(meter.id)?.doc.graceMinutes, 5);
    // Back to zone-a for the test below, applied as a meter from before named tariffs answers.
    assert.equal((await push(meter.id, 'zone-a')).statusCode, 202);
    await ack(meter, 2, true);
    assert.equal((await get(`/api/meters/${meter.id}/tariff`)).json().state, 'applied');
  });

  it('a push the broker cannot take leaves the meter as it was: its earlier push, or none', async () => {
    const unreachable = new TariffService({
      db: platform.db,
      meters: new MeterTables(platform.db),
      keystore: platform.keystore,
      now: () => nowMs,
      sendDownlink: async () => {
        throw new Error('broker down');
      },
    });
    const [applied] = meters; // applied version 2 in the test above
    const earlier = (await get(`/api/meters/${applied.id}/tariff`)).json();
    assert.equal(earlier.state, 'applied');
    await assert.rejects(unreachable.push(applied.id, 'zone-a'), /broker down/);
    assert.deepEqual((await get(`/api/meters/${applied.id}/tariff`)).json(), earlier);

    const id = randomMeterId();
    await platform.provisionMeter(id, 'Unreachable Street');
    await assert.rejects(unreachable.push(id, 'zone-a'), /broker down/);
    assert.equal((await get(`/api/meters/${id}/tariff`)).statusCode, 404, 'no push recorded');
  });
});
