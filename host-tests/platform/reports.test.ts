// Reports on demand (414b, 0x8C/0x0C) on the platform, on both backends, with virtual meters on
// the broker: an operator asks a meter for its status now and gets the report and the answer; asks
// for a range of records and sees the runs the meter re-sent arrive as duplicates of what ingest
// holds (no refusal), the part not recorded named with its reason; records the platform lost come
// back as new; a time range; bad requests, roles and unknown meters are refused; sending is audited.
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/mock/clock';
import { recordHeader } from '../../protocol/records';
import { STATUS_FRAME } from '../../protocol/status';
import type { Refusal } from '../../platform-server/ingest/gate';
import type { Platform } from '../../platform-server/platform';
import { ReportRefused, ReportService } from '../../platform-server/reports';
import { forEachBackend, type OperatorLogin, operatorLogin, randomMeterId } from '../../sim/fleet/platform';
import { type BootedMeter, bootMeter, phonePlatform, until } from '../phone/support';

forEachBackend('reports on demand (0x8C/0x0C)', (backend) => {
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  let platform: Platform;
  let drop: () => Promise<void>;
  let operator: OperatorLogin;
  let viewer: OperatorLogin;
  let m: BootedMeter;
  let id: number;
  const refusals: Refusal[] = [];
  const statusFrames: number[] = [];

  const api = (method: 'GET' | 'POST', url: string, who: OperatorLogin, payload?: object) =>
    platform.app.inject({ method, url, headers: who.headers, ...(payload === undefined ? {} : { payload }) });
  const ask = (payload: object) => api('POST', `/api/meters/${id}/report-requests`, operator, payload);
  const view = async (requestId: number) =>
    (await api('GET', `/api/report-requests/${requestId}`, viewer)).json();
  const acknowledgedUpTo = (seq: number) =>
    until(() => m.meter.ledger.acknowledgedSeq >= seq, `the platform to acknowledge record ${seq}`);

  before(async function () {
    this.timeout(60_000); // a fresh database, a platform, a meter booted and its records acknowledged
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await phonePlatform(fresh.config, clock);
    operator = await operatorLogin(platform.operators, 'operator');
    viewer = await operatorLogin(platform.operators, 'viewer');
    id = randomMeterId();
    m = await bootMeter(platform, id, clock);
    platform.ingest.on('refused', (r) => refusals.push(r));
    platform.ingest.on('outcome', (o) => {
      if (o.ok && 'type' in o && o.type === STATUS_FRAME && o.meterId === id) statusFrames.push(o.frameSeq);
    });
    for (let i = 0; i < 5; i++) m.meter.records.appendMaintenance('test', `entry ${i}`);
    await acknowledgedUpTo(m.meter.log.lastSeq);
  });

  after(async () => {
    m?.meter.stop();
    await platform?.close();
    await drop?.();
  });

  it('a status request: the meter sends its status report now and answers; the request is complete', async () => {
    const before = statusFrames.length;
    const sent = await ask({ kind: 'status' });
    assert.equal(sent.statusCode, 202, sent.body);
    const { requestId, state } = sent.json();
    assert.equal(state, 'sent');
    await until(async () => (await view(requestId)).complete === true, 'the status answer');
    const answered = await view(requestId);
    assert.equal(answered.state, 'answered');
    assert.equal(answered.statusSent, true);
    assert.equal(statusFrames.length, before + 1, 'one status report reached ingest');
  });

  it('a records request: the runs re-sent arrive as duplicates, not refusals; the part not recorded is named', async () => {
    const last = m.meter.log.lastSeq;
    const sent = await ask({ kind: 'records', fromSeq: 2, toSeq: last + 4 });
    assert.equal(sent.statusCode, 202, sent.body);
    const { requestId } = sent.json();
    await until(async () => (await view(requestId)).complete === true, 'the records and the answer');
    const v = await view(requestId);
    assert.deepEqual(v.sent, [{ from: 2, to: last }]);
    assert.deepEqual(v.missing, [{ from: last + 1, to: last + 4, reason: 'not-recorded' }]);
    assert.equal(v.receivedDuplicate, last - 1);
    assert.equal(v.receivedNew, 0);
    assert.deepEqual(v.outstanding, []);
    assert.deepEqual(v.held, { from: 1, to: last });
    assert.deepEqual(
      refusals.filter((r) => r.meterId === id),
      [],
      'no re-sent frame was refused',
    );
    const { rows } = await platform.db.query<{ n: string | number }>(
      'SELECT count(*) AS n FROM records WHERE meter_id = $1',
      [id],
    );
    assert.equal(Number(rows[0].n), last, 'nothing stored twice');
  });

  it('records the platform lost come back as new records when asked for', async () => {
    const last = m.meter.log.lastSeq;
    // As if restored from an older backup: records 3 and 4 (maintenance records) are gone.
    await platform.db.query('DELETE FROM maintenance WHERE meter_id = $1 AND seq IN (3, 4)', [id]);
    await platform.db.query('DELETE FROM records WHERE meter_id = $1 AND seq IN (3, 4)', [id]);
    const { requestId } = (await ask({ kind: 'records', fromSeq: 1, toSeq: last })).json();
    await until(async () => (await view(requestId)).complete === true, 'the records and the answer');
    const v = await view(requestId);
    assert.equal(v.receivedNew, 2);
    assert.equal(v.receivedDuplicate, last - 2);
    const { rows } = await platform.db.query<{ seq: string | number }>(
      'SELECT seq FROM records WHERE meter_id = $1 AND seq IN (3, 4) ORDER BY seq',
      [id],
    );
    assert.deepEqual(
      rows.map((r) => Number(r.seq)),
      [3, 4],
    );
  });

  it('a time range: only the records of the period are re-sent', async () => {
    clock.advance(7_200_000);
    const from = new Date(clock.now() - 60_000).toISOString();
    m.meter.records.appendMaintenance('test', 'in the period');
    const inside = m.meter.log.lastSeq;
    await acknowledgedUpTo(inside);
    const to = new Date(clock.now() + 60_000).toISOString();
    const { requestId } = (await ask({ kind: 'records', since: from, until: to })).json();
    await until(async () => (await view(requestId)).complete === true, 'the records and the answer');
    const v = await view(requestId);
    // Whatever else the meter wrote in the period (an hourly checkpoint) goes too: expected from its log.
    const [sinceS, untilS] = [Date.parse(from) / 1000, Date.parse(to) / 1000].map(Math.floor);
    const expected = m.meter.log
      .read(1)
      .map((r) => ({ seq: r.seq, time: recordHeader(r.bytes).time }))
      .filter((r) => r.time >= sinceS && r.time <= untilS)
      .map((r) => r.seq);
    assert.ok(expected.includes(inside));
    assert.deepEqual(
      v.sent.flatMap((run: { from: number; to: number }) =>
        Array.from({ length: run.to - run.from + 1 }, (_, i) => run.from + i),
      ),
      expected,
    );
    assert.equal(v.since, from.replace(/\.\d+Z$/, '.000Z'));
  });

  it('refuses a bad range (400), a viewer (403) and an unknown meter (404); sending is audited', async () => {
    const backwards = await ask({ kind: 'records', fromSeq: 9, toSeq: 3 });
    assert.equal(backwards.statusCode, 400);
    assert.equal(backwards.json().code, 'bad-range');
    const none = await ask({ kind: 'records' });
    assert.equal(none.statusCode, 400);
    const statusWithRange = await ask({ kind: 'status', fromSeq: 1, toSeq: 2 });
    assert.equal(statusWithRange.statusCode, 400);
    const viewerAsks = await api('POST', `/api/meters/${id}/report-requests`, viewer, { kind: 'status' });
    assert.equal(viewerAsks.statusCode, 403);
    const unknown = await api('POST', '/api/meters/4000000001/report-requests', operator, { kind: 'status' });
    assert.equal(unknown.statusCode, 404);
    assert.equal((await api('GET', '/api/report-requests/999999', viewer)).statusCode, 404);
    // A downlink that cannot be sent (the broker gone): refused, and no request kept for it.
    const unsent = new ReportService({
      db: platform.db,
      sendDownlink: async () => {
        throw new Error('ingest is not connected');
      },
    });
    await assert.rejects(unsent.request(id, { kind: 'status' }, 'test'), (error: unknown) => {
      assert.ok(error instanceof ReportRefused);
      assert.equal(error.statusCode, 502);
      assert.equal(error.code, 'downlink-failed');
      return true;
    });
    const list = (await api('GET', `/api/meters/${id}/report-requests`, viewer)).json();
    assert.equal(list.requests.length, 4, 'only the requests sent were kept');
    const audit = await platform.operators.auditLog({ action: 'reports.request' });
    assert.equal(audit.entries.length, 4);
    assert.equal(audit.entries[0].target, `meter ${id}`);
  });
});
