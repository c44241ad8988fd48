// The operator console's server side, on both backends: registering a meter (then provisioned by
// the factory path with its registry entry kept), the fleet summary's live state (contact,
// light, battery, open alarms, bays, revenue today), the server-sent events (a snapshot, then the
// rows of a meter that reported), area outlines, status history and the records filters.
import assert from 'node:assert/strict';
import { FRAME_VERSION, sealFrame } from '../../protocol/frame';
import { encodeStatusMessage, STATUS_FRAME, type StatusMessage } from '../../protocol/status';
import { uplinkTopic } from '../../protocol/topics';
import { contactState, trafficLight } from '../../platform-server/console/fleet';
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

interface Row {
  id: number;
  name: string;
  address: string | null;
  latitude: number | null;
  area: string | null;
  bays: number | null;
  provisioned: boolean;
  contact: string;
  light: string;
  battery: number | null;
  openAlarms: number;
  worstAlarm: string | null;
  occupiedBays: number;
  reportedBays: number;
  revenueToday: number;
  currency: number | null;
}

describe('console fleet state rules', () => {
  const now = new Date('2026-06-01T12:00:00Z');
  it('is overdue past twice the expected interval, never without contact', () => {
    assert.equal(contactState(null, 900, now), 'never');
    assert.equal(contactState(new Date(now.getTime() - 1800_000), 900, now), 'online');
    assert.equal(contactState(new Date(now.getTime() - 1801_000), 900, now), 'overdue');
  });
  it('lights red for an alarm, a fault or overdue; amber for a warning, a report fault or low battery', () => {
    const none = { alarms: 0, faults: 0, warnings: 0, reportFaults: 0 };
    assert.equal(trafficLight('never', none, null), 'grey');
    assert.equal(trafficLight('online', none, 80), 'green');
    assert.equal(trafficLight('overdue', none, 80), 'red');
    assert.equal(trafficLight('online', { ...none, alarms: 1 }, 80), 'red');
    assert.equal(trafficLight('online', { ...none, warnings: 1 }, 80), 'amber');
    assert.equal(trafficLight('online', { ...none, reportFaults: 1 }, 80), 'amber');
    assert.equal(trafficLight('online', none, 20), 'amber');
  });
});

forEachBackend('operator console API', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let admin: OperatorLogin;
  let viewer: OperatorLogin;
  let meter: TestMeter;
  const registeredId = randomMeterId();
  const silentId = randomMeterId();
  const nowS = () => Math.floor(Date.now() / 1000);

  const call = (
    method: 'GET' | 'POST' | 'PATCH' | 'PUT',
    url: string,
    who: OperatorLogin,
    payload?: unknown,
  ) => platform.app.inject({ method, url, headers: who.headers, payload: payload as object | undefined });
  const fleet = async (): Promise<Map<number, Row>> => {
    const res = await call('GET', '/api/console/fleet', viewer);
    assert.equal(res.statusCode, 200);
    return new Map(res.json().meters.map((r: Row) => [r.id, r]));
  };
  const statusFrame = (message: StatusMessage) =>
    sealFrame(
      crypto,
      meter.keys.uplink,
      { version: FRAME_VERSION, type: STATUS_FRAME, meterId: meter.id, epoch: 1, seq: ++meter.frameSeq },
      encodeStatusMessage(message),
    );
  const report = (at: number, battery: number, faults: string[] = []): StatusMessage => ({
    kind: 'status',
    at,
    battery: { source: 'disposable', packs: { disposable: battery, backup: 100 }, millivolts: 3600 },
    sensors: { temperature: 215 },
    modules: { reader: 'ok', power: faults.length > 0 ? 'failed' : 'ok' },
    faults,
    bays: [
      { bayId: 1, occupied: true, since: at - 60, paid: true },
      { bayId: 2, occupied: false, since: 0, paid: false },
    ],
    fan: false,
    settings: 1,
  });

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await createPlatform({
      ...fresh.config,
      httpLogger: false,
      logger: new CapturingLogger(),
      consolePollMs: 100,
      operators: { scrypt: { logN: 10, r: 8, p: 1 } },
    });
    admin = await operatorLogin(platform.operators, 'admin');
    viewer = await operatorLogin(platform.operators, 'viewer');
    const id = randomMeterId();
    meter = new TestMeter(id, await platform.provisionMeter(id, 'Market Square'));
    await platform.provisionMeter(silentId, 'Silent Street');
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  it('registers a meter with its place for the factory, refusing a viewer, a taken id and half coordinates', async () => {
    const entry = {
      id: registeredId,
      name: 'Harbour Road 3',
      address: '3 Harbour Road',
      latitude: 51.501,
      longitude: -0.12,
      area: 'Harbour',
      bays: 4,
    };
    assert.equal((await call('POST', '/api/meters', viewer, entry)).statusCode, 403);
    const half = await call('POST', '/api/meters', admin, { id: registeredId, name: 'x', latitude: 51 });
    assert.equal(half.statusCode, 400);
    assert.equal(half.json().field, 'longitude');
    const created = await call('POST', '/api/meters', admin, entry);
    assert.equal(created.statusCode, 201);
    assert.equal(created.json().provisioned, false);
    assert.equal(created.json().contact, 'never');
    const again = await call('POST', '/api/meters', admin, entry);
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().code, 'meter-exists');
    // The factory provisions it (tools/factory.ts goes through provisionMeter): the entry stays.
    const keys = await platform.provisionMeter(registeredId, 'Factory name');
    assert.equal(keys.epoch, 1);
    const row = (await fleet()).get(registeredId)!;
    assert.equal(row.provisioned, true);
    assert.equal(row.name, 'Harbour Road 3');
    assert.equal(row.address, '3 Harbour Road');
    assert.equal(row.bays, 4);
    // A provisioned meter cannot be provisioned twice.
    await assert.rejects(platform.provisionMeter(registeredId, 'again'));
    const audit = await platform.db.query("SELECT 1 FROM operator_audit WHERE action = 'meter.register'");
    assert.equal(audit.rows.length, 1);
  });

  it('edits the registry entry (admin only) and refuses an unknown meter', async () => {
    const patch = { address: '5 Harbour Road', latitude: 51.502, longitude: -0.121 };
    assert.equal(
      (await call('PATCH', `/api/meters/${registeredId}/registry`, viewer, patch)).statusCode,
      403,
    );
    const res = await call('PATCH', `/api/meters/${registeredId}/registry`, admin, patch);
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().address, '5 Harbour Road');
    assert.equal((await call('PATCH', '/api/meters/4294967295/registry', admin, patch)).statusCode, 404);
    assert.equal((await call('PATCH', `/api/meters/${registeredId}/registry`, admin, {})).statusCode, 400);
  });

  it('shows each meter live: contact, light, battery, open alarms, bays and revenue today', async () => {
    const at = nowS();
    assert.equal(
      (await platform.ingest.handleUplink(uplinkTopic(meter.id), statusFrame(report(at, 64)))).ok,
      true,
    );
    const tx = meter.transaction({ charge: 180 }, at - 30);
    meter.transaction({ charge: 999 }, at - 3 * 86_400); // not today
    assert.equal(
      (await platform.ingest.handleUplink(uplinkTopic(meter.id), meter.frame(tx.seq, tx.seq + 1))).ok,
      true,
    );
    let rows = await fleet();
    const row = rows.get(meter.id)!;
    assert.equal(row.contact, 'online');
    assert.equal(row.light, 'green');
    assert.equal(row.battery, 64);
    assert.equal(row.occupiedBays, 1);
    assert.equal(row.reportedBays, 2);
    assert.equal(row.revenueToday, 180);
    assert.equal(row.currency, 826);
    assert.equal(rows.get(silentId)!.light, 'grey');

    // A raised alarm event turns it red; a report fault counts among the open alarms.
    const alarm: StatusMessage = {
      kind: 'event',
      at: at + 1,
      event: 'tilt',
      severity: 'alarm',
      active: true,
      value: 40,
      detail: 'tilted 40 degrees',
    };
    await platform.ingest.handleUplink(uplinkTopic(meter.id), statusFrame(alarm));
    await platform.ingest.handleUplink(uplinkTopic(meter.id), statusFrame(report(at + 2, 15, ['power'])));
    rows = await fleet();
    assert.equal(rows.get(meter.id)!.light, 'red');
    assert.equal(rows.get(meter.id)!.openAlarms, 2);
    assert.equal(rows.get(meter.id)!.worstAlarm, 'alarm');

    // Silent for longer than twice its interval: overdue.
    await platform.db.query(
      "UPDATE meters SET last_seen_at = now() - interval '1 hour', contact_seconds = 600 WHERE id = $1",
      [silentId],
    );
    assert.equal((await fleet()).get(silentId)!.contact, 'overdue');
  });

  it('streams a snapshot, then the rows of a meter that reported, to a viewer only', async () => {
    const base = await platform.listen(0);
    const refused = await fetch(`${base}/api/console/fleet/events`);
    assert.equal(refused.status, 401);
    await refused.body?.cancel();
    const abort = new AbortController();
    const res = await fetch(`${base}/api/console/fleet/events`, {
      headers: viewer.headers,
      signal: abort.signal,
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    const nextEvent = async (): Promise<{ event: string; meters: Row[] }> => {
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.startsWith(':')) continue;
          const event = /^event: (.*)$/m.exec(block)![1];
          const data = /^data: (.*)$/m.exec(block)![1];
          return { event, meters: JSON.parse(data).meters };
        }
        const { value, done } = await reader.read();
        assert.equal(done, false, 'the stream ended');
        buffer += value;
      }
    };
    const snapshot = await nextEvent();
    assert.equal(snapshot.event, 'snapshot');
    assert.ok(snapshot.meters.some((r) => r.id === silentId));
    await platform.ingest.handleUplink(uplinkTopic(meter.id), statusFrame(report(nowS() + 5, 55)));
    let update = await nextEvent();
    while (!update.meters.some((r) => r.id === meter.id && r.battery === 55)) update = await nextEvent();
    assert.equal(update.event, 'update');
    abort.abort();
  });

  it('keeps area outlines: closed rings only, admins only, listed with the meter counts', async () => {
    const outline = [
      [
        [-0.13, 51.5],
        [-0.11, 51.5],
        [-0.11, 51.51],
        [-0.13, 51.5],
      ],
    ];
    assert.equal((await call('PUT', '/api/areas/Harbour/outline', viewer, { outline })).statusCode, 403);
    const open = await call('PUT', '/api/areas/Harbour/outline', admin, {
      outline: [outline[0].slice(0, 3).concat([[0, 0]])],
    });
    assert.equal(open.statusCode, 400);
    assert.equal(open.json().code, 'outline-not-closed');
    assert.equal((await call('PUT', '/api/areas/Harbour/outline', admin, { outline })).statusCode, 200);
    assert.equal((await call('PUT', '/api/areas/Empty%20Park/outline', admin, { outline })).statusCode, 200);
    const areas = (await call('GET', '/api/console/areas', viewer)).json().areas;
    assert.deepEqual(
      areas.map((a: { name: string; meters: number; outline: unknown }) => [
        a.name,
        a.meters,
        a.outline !== null,
      ]),
      [
        ['Empty Park', 0, true],
        ['Harbour', 1, true],
      ],
    );
  });

  it('charts status history and filters records by kind, bay and time', async () => {
    const history = (await call('GET', `/api/meters/${meter.id}/status-history`, viewer)).json();
    assert.deepEqual(
      history.reports.map((r: { battery: number }) => r.battery),
      [64, 15, 55],
    );
    const op = meter.operation();
    await platform.ingest.handleUplink(uplinkTopic(meter.id), meter.frame(op.seq, op.seq));
    const all = (await call('GET', `/api/meters/${meter.id}/records`, viewer)).json().records;
    assert.deepEqual(
      all.map((r: { kind: string }) => r.kind),
      ['operation', 'transaction', 'transaction'],
    );
    const ops = (await call('GET', `/api/meters/${meter.id}/records?kind=operation`, viewer)).json().records;
    assert.equal(ops.length, 1);
    assert.match(ops[0].summary, /card-refused/);
    const since = new Date((nowS() - 86_400) * 1000).toISOString();
    const recent = (
      await call('GET', `/api/meters/${meter.id}/records?kind=transaction&from=${since}`, viewer)
    ).json();
    assert.deepEqual(
      recent.records.map((r: { charge: number }) => r.charge),
      [180],
    );
    const bay = recent.records[0].bayId;
    const byBay = (await call('GET', `/api/meters/${meter.id}/records?bay=${bay}`, viewer)).json().records;
    assert.ok(byBay.every((r: { bayId: number }) => r.bayId === bay));
    assert.equal((await call('GET', '/api/meters/4294967295/records', viewer)).statusCode, 404);
  });
});
