// The fleet-wide alarm inbox, on both backends: alarms raised from the meters' security events
// (0x03) and status events and reports (0x04) as ingest stores them, and by the overdue sweep;
// repeats counted, not duplicated; cleared by the meter, reopened; acknowledged, assigned, resolved
// with a note, each step in the history and the audit log; time to acknowledge and to repair per
// meter and area; the change hook.
import assert from 'node:assert/strict';
import { FRAME_VERSION, sealFrame } from '../../protocol/frame';
import { encodeSecurityEvent, KeyFrame } from '../../protocol/keys';
import {
  encodeStatusMessage,
  STATUS_FRAME,
  type StatusMessage,
  type StatusReport,
} from '../../protocol/status';
import { uplinkTopic } from '../../protocol/topics';
import type { AlarmChange, AlarmView } from '../../platform-server/alarms';
import type { Platform } from '../../platform-server/platform';
import {
  crypto,
  forEachBackend,
  type OperatorLogin,
  operatorLogin,
  randomMeterId,
  startPlatform,
  TestMeter,
} from '../../sim/fleet/platform';

const T0 = 1_772_440_200; // 2026-03-02T08:30:00Z

forEachBackend('alarm inbox', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let meter: TestMeter;
  let other: TestMeter;
  let viewer: OperatorLogin;
  let operator: OperatorLogin;
  let supervisor: OperatorLogin;
  let nowMs = Date.now();
  const changes: AlarmChange[] = [];

  const send = async (m: TestMeter, type: number, body: Uint8Array) => {
    const frame = sealFrame(
      crypto,
      m.keys.uplink,
      { version: FRAME_VERSION, type, meterId: m.id, epoch: 1, seq: ++m.frameSeq },
      body,
    );
    const outcome = await platform.ingest.handleUplink(uplinkTopic(m.id), frame);
    assert.equal(outcome.ok, true, JSON.stringify(outcome));
  };
  const security = (m: TestMeter, ev: string, detail: string, at = T0) =>
    send(m, KeyFrame.SECURITY, encodeSecurityEvent({ ev, epoch: 1, kcv: new Uint8Array(0), at, detail }));
  const status = (m: TestMeter, message: StatusMessage) =>
    send(m, STATUS_FRAME, encodeStatusMessage(message));
  const event = (
    m: TestMeter,
    e: string,
    severity: 'alarm' | 'warning' | 'info' | 'fault',
    active: boolean,
    detail: string,
    extra: { bayId?: number; value?: number } = {},
  ) => status(m, { kind: 'event', at: T0, event: e, severity, active, detail, ...extra });
  const report = (packs: Record<string, number>, modules: StatusReport['modules'] = {}): StatusReport => ({
    kind: 'status',
    at: T0,
    battery: { source: 'disposable', packs },
    sensors: { temperature: 21 },
    modules,
    faults: [],
    bays: [],
    fan: false,
    settings: 1,
  });

  const inject = (login: OperatorLogin, method: 'GET' | 'POST', url: string, payload?: object) =>
    platform.app.inject({ method, url, headers: login.headers, ...(payload ? { payload } : {}) });
  const alarmsOf = async (meterId: number, state = 'all'): Promise<AlarmView[]> => {
    const res = await inject(viewer, 'GET', `/api/alarms?meterId=${meterId}&state=${state}`);
    assert.equal(res.statusCode, 200, res.body);
    return res.json().alarms;
  };
  const find = async (meterId: number, kind: string, subject = '') => {
    const found = (await alarmsOf(meterId)).filter((a) => a.kind === kind && a.subject === subject);
    assert.ok(found.length > 0, `no ${kind} alarm on ${subject || 'the meter'}`);
    return found;
  };

  before(async function () {
    this.timeout(60_000); // a fresh database on a machine shared with other work
    ({ platform, drop } = await startPlatform(backend, {
      alarms: { now: () => nowMs, sweepSeconds: 0, overdueAfterSeconds: 3600 },
    }));
    viewer = await operatorLogin(platform.operators, 'viewer');
    operator = await operatorLogin(platform.operators, 'operator');
    supervisor = await operatorLogin(platform.operators, 'supervisor');
    const id = randomMeterId();
    meter = new TestMeter(id, await platform.provisionMeter(id, 'Market Square'));
    const id2 = id + 1;
    other = new TestMeter(id2, await platform.provisionMeter(id2, 'Harbour Road'));
    await platform.db.query("UPDATE meters SET area = 'centre' WHERE id = $1", [meter.id]);
    await platform.db.query("UPDATE meters SET area = 'harbour' WHERE id = $1", [other.id]);
    platform.alarms.subscribe((c) => changes.push(c));
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  it('raises a security alarm for a tamper event (0x03); a repeat while open counts on it', async () => {
    changes.length = 0;
    await security(meter, 'tamper', 'cover opened without a maintenance session; keys wiped');
    await security(meter, 'tamper', 'again', T0 + 60);
    const tamper = await find(meter.id, 'tamper');
    assert.equal(tamper.length, 1, 'one alarm, not two');
    assert.equal(tamper[0].severity, 'security');
    assert.equal(tamper[0].source, 'security-event');
    assert.equal(tamper[0].occurrences, 2);
    assert.equal(tamper[0].detail, 'again');
    assert.equal(tamper[0].occurredAt, new Date(T0 * 1000).toISOString());
    assert.equal(tamper[0].state, 'open');
    assert.equal(tamper[0].area, 'centre');
    assert.deepEqual(
      changes.map((c) => [c.action, c.alarm.kind, c.alarm.occurrences]),
      [
        ['raised', 'tamper', 1],
        ['repeated', 'tamper', 2],
      ],
    );
    const stored = await platform.db.query(
      'SELECT count(*)::int AS n FROM security_events WHERE meter_id = $1',
      [meter.id],
    );
    assert.equal(stored.rows[0].n, 2, 'the events are stored as before');
  });

  it('raises every other security event (replay, decrypt-failed) but not a rotation acknowledgement', async () => {
    await security(other, 'replay', 'downlink refused');
    await security(other, 'decrypt-failed', 'downlink refused');
    const kinds = (await alarmsOf(other.id)).map((a) => [a.kind, a.severity]).sort();
    assert.deepEqual(kinds, [
      ['decrypt-failed', 'security'],
      ['replay', 'security'],
    ]);
  });

  it("raises the guard's security alarms; the meter's clear marks them cleared; a new one reopens", async () => {
    changes.length = 0;
    await event(meter, 'cover-opened', 'alarm', true, 'cover sensor 40.0 lx', { value: 40 });
    await event(meter, 'cover-closed', 'info', false, 'cover sensor 1.0 lx', { value: 1 });
    let [cover] = await find(meter.id, 'cover-opened');
    assert.equal(cover.severity, 'security');
    assert.ok(cover.clearedAt, 'cleared by the meter');
    assert.equal(cover.state, 'open', 'still in the inbox until resolved');
    await event(meter, 'cover-opened', 'alarm', true, 'cover sensor 55.0 lx', { value: 55 });
    [cover] = await find(meter.id, 'cover-opened');
    assert.equal(cover.clearedAt, null);
    assert.equal(cover.occurrences, 2);
    assert.deepEqual(
      changes.map((c) => c.action),
      ['raised', 'cleared', 'reopened'],
    );
    const history = (await inject(viewer, 'GET', `/api/alarms/${cover.id}`)).json().history;
    assert.deepEqual(
      history.map((h: { action: string; actor: string }) => [h.action, h.actor]),
      [
        ['raised', 'meter'],
        ['cleared', 'meter'],
        ['reopened', 'meter'],
      ],
    );
  });

  it('battery low from the event and the status report is one alarm per pack; a report again does not count', async () => {
    await event(meter, 'battery-low', 'warning', true, 'rechargeable pack at 12 %', { value: 12 });
    await status(meter, report({ rechargeable: 11, disposable: 80 }));
    await status(meter, report({ rechargeable: 10, disposable: 80 }));
    const [low] = await find(meter.id, 'battery-low', 'rechargeable');
    assert.equal(low.severity, 'warning');
    assert.equal(low.occurrences, 1, 'the same condition in later reports is not a new occurrence');
    assert.equal((await alarmsOf(meter.id)).filter((a) => a.kind === 'battery-low').length, 1);
    await event(meter, 'battery-replaced', 'info', false, 'rechargeable pack (swapped)');
    assert.ok((await find(meter.id, 'battery-low', 'rechargeable'))[0].clearedAt);
  });

  it('a stuck sensor, a failed reader (total fault) and a watchdog restart (technical); repairs clear', async () => {
    await event(
      meter,
      'module-fault',
      'fault',
      true,
      'sensors/humidity: humidity output has not changed in 6 samples',
    );
    await event(meter, 'escalation', 'fault', true, 'reader/nfc: 3 repairs in the last hour');
    await event(meter, 'escalation', 'fault', true, 'radio/link: no automatic repair');
    await event(meter, 'watchdog-restart', 'fault', false, 'abnormal restart by the watchdog');
    const [stuck] = await find(meter.id, 'sensor-stuck', 'humidity');
    assert.equal(stuck.severity, 'partial-fault');
    const [reader] = await find(meter.id, 'module-failed', 'reader');
    assert.equal(reader.severity, 'total-fault');
    assert.equal((await find(meter.id, 'module-failed', 'radio'))[0].severity, 'partial-fault');
    assert.equal((await find(meter.id, 'watchdog-restart'))[0].severity, 'technical');
    await event(meter, 'module-repaired', 'info', false, 'reader/nfc: power-cycled');
    await event(meter, 'module-repaired', 'info', false, 'sensors/humidity: re-initialised');
    assert.ok((await find(meter.id, 'module-failed', 'reader'))[0].clearedAt);
    assert.ok((await find(meter.id, 'sensor-stuck', 'humidity'))[0].clearedAt);
    assert.equal((await find(meter.id, 'module-failed', 'radio'))[0].clearedAt, null);
  });

  it('an unpaid bay is enforcement, not an alarm; a malformed frame stores nothing and raises nothing', async () => {
    const before = (await alarmsOf(meter.id)).length;
    await event(meter, 'bay-unpaid', 'warning', true, 'occupied without a paid session', { bayId: 2 });
    const refused = await platform.ingest.handleUplink(
      uplinkTopic(meter.id),
      sealFrame(
        crypto,
        meter.keys.uplink,
        {
          version: FRAME_VERSION,
          type: KeyFrame.SECURITY,
          meterId: meter.id,
          epoch: 1,
          seq: ++meter.frameSeq,
        },
        new Uint8Array([0xa1, 0x61, 0x78, 0x01]),
      ),
    );
    assert.equal(refused.ok, false);
    assert.equal((await alarmsOf(meter.id)).length, before);
  });

  it('the sweep raises overdue for a meter silent past its interval, once, and clears it when it reports', async () => {
    await platform.db.query('UPDATE meters SET last_seen_at = $2 WHERE id = $1', [
      other.id,
      new Date(nowMs - 2 * 3600_000),
    ]);
    await platform.db.query('UPDATE meters SET last_seen_at = $2 WHERE id = $1', [meter.id, new Date(nowMs)]);
    const first = await platform.alarms.sweep();
    assert.equal(first.raised, 1);
    const again = await platform.alarms.sweep();
    assert.equal(again.raised, 0, 'no second alarm and no count for the same silence');
    const [overdue] = await find(other.id, 'overdue');
    assert.equal(overdue.severity, 'technical');
    assert.equal(overdue.source, 'sweep');
    assert.equal(overdue.occurrences, 1);
    assert.equal((await alarmsOf(meter.id)).filter((a) => a.kind === 'overdue').length, 0);
    await status(other, report({ disposable: 90 }));
    assert.ok((await find(other.id, 'overdue'))[0].clearedAt, 'a status report clears it');
  });

  it('acknowledge, assign and resolve with a note: roles, refusals, history and audit', async () => {
    const [tamper] = await find(meter.id, 'tamper');
    const url = `/api/alarms/${tamper.id}`;
    assert.equal((await inject(viewer, 'POST', `${url}/acknowledge`, {})).statusCode, 403);
    nowMs += 90_000;
    const acked = await inject(operator, 'POST', `${url}/acknowledge`, { note: 'on my way' });
    assert.equal(acked.statusCode, 200, acked.body);
    assert.equal(acked.json().state, 'acknowledged');
    assert.equal(acked.json().acknowledgedBy, operator.username);
    const twice = await inject(operator, 'POST', `${url}/acknowledge`, {});
    assert.equal(twice.statusCode, 409);
    assert.equal(twice.json().code, 'already-acknowledged');

    assert.equal(
      (await inject(operator, 'POST', `${url}/assign`, { operator: operator.username })).statusCode,
      403,
    );
    const nobody = await inject(supervisor, 'POST', `${url}/assign`, { operator: 'nobody-here' });
    assert.equal(nobody.statusCode, 400);
    assert.equal(nobody.json().code, 'unknown-operator');
    assert.equal(nobody.json().field, 'operator');
    const assigned = await inject(supervisor, 'POST', `${url}/assign`, { operator: operator.username });
    assert.equal(assigned.statusCode, 200, assigned.body);
    assert.equal(assigned.json().assignedTo, operator.username);
    const mine = (await inject(viewer, 'GET', `/api/alarms?assignedTo=${operator.username}`)).json().alarms;
    assert.deepEqual(
      mine.map((a: AlarmView) => a.id),
      [tamper.id],
    );

    const noNote = await inject(operator, 'POST', `${url}/resolve`, {});
    assert.equal(noNote.statusCode, 400);
    nowMs += 510_000;
    const resolved = await inject(operator, 'POST', `${url}/resolve`, {
      note: 'cover refitted, meter re-keyed',
    });
    assert.equal(resolved.statusCode, 200, resolved.body);
    assert.equal(resolved.json().state, 'resolved');
    assert.equal(resolved.json().resolution, 'cover refitted, meter re-keyed');
    const late = await inject(operator, 'POST', `${url}/acknowledge`, {});
    assert.equal(late.statusCode, 409);
    assert.equal(late.json().code, 'alarm-resolved');
    assert.equal((await inject(viewer, 'GET', '/api/alarms/999999999')).statusCode, 404);

    const detail = (await inject(viewer, 'GET', url)).json();
    assert.deepEqual(
      detail.history.map((h: { action: string; actor: string; note: string | null }) => [
        h.action,
        h.actor,
        h.note,
      ]),
      [
        ['raised', 'meter', 'cover opened without a maintenance session; keys wiped'],
        ['acknowledged', operator.username, 'on my way'],
        ['assigned', supervisor.username, operator.username],
        ['resolved', operator.username, 'cover refitted, meter re-keyed'],
      ],
    );
    const audit = await platform.operators.auditLog({ meterId: meter.id });
    assert.deepEqual(
      audit.entries
        .filter((e) => e.target === `alarm ${tamper.id}`)
        .map((e) => e.action)
        .reverse(),
      ['alarm.acknowledge', 'alarm.assign', 'alarm.resolve'],
    );

    // Resolved: the next tamper is a new alarm.
    await security(meter, 'tamper', 'opened again', T0 + 3600);
    const tampers = await find(meter.id, 'tamper');
    assert.equal(tampers.length, 2);
    assert.equal(tampers[0].state, 'open');
    assert.equal(tampers[0].occurrences, 1);
  });

  it('time to acknowledge and to repair, per meter and per area', async () => {
    const since = new Date(nowMs - 86_400_000).toISOString();
    const until = new Date(nowMs + 86_400_000).toISOString();
    const byMeter = await inject(
      viewer,
      'GET',
      `/api/alarms/response-times?by=meter&since=${since}&until=${until}`,
    );
    assert.equal(byMeter.statusCode, 200, byMeter.body);
    const row = byMeter.json().rows.find((r: { key: number }) => r.key === meter.id);
    assert.equal(row.acknowledged, 1);
    assert.equal(row.resolved, 1);
    assert.equal(row.meanAcknowledgeSeconds, 90);
    assert.equal(row.meanRepairSeconds, 600);
    const byArea = (
      await inject(viewer, 'GET', `/api/alarms/response-times?by=area&since=${since}&until=${until}`)
    ).json();
    const areas = byArea.rows.map((r: { key: string; alarms: number }) => r.key);
    assert.deepEqual(areas, ['centre', 'harbour']);
    assert.equal(byArea.rows[0].maxRepairSeconds, 600);
    assert.equal(byArea.rows[1].resolved, 0);
    assert.equal(byArea.rows[1].meanRepairSeconds, null);
    const backwards = await inject(viewer, 'GET', `/api/alarms/response-times?since=${until}&until=${since}`);
    assert.equal(backwards.statusCode, 400);
    assert.equal(backwards.json().field, 'since');
  });

  it('lists by state, severity and area, pages, and counts the unresolved per severity', async () => {
    const list = (
      await inject(viewer, 'GET', '/api/alarms?state=active&severity=security&area=harbour')
    ).json();
    assert.deepEqual(list.alarms.map((a: AlarmView) => a.kind).sort(), ['decrypt-failed', 'replay']);
    assert.ok(list.active.security >= 4);
    assert.equal(typeof list.active['total-fault'], 'number');
    const page = (await inject(viewer, 'GET', '/api/alarms?state=all&limit=2')).json();
    assert.equal(page.alarms.length, 2);
    assert.ok(page.nextBefore);
    const next = (
      await inject(viewer, 'GET', `/api/alarms?state=all&limit=2&before=${page.nextBefore}`)
    ).json();
    assert.ok(next.alarms.every((a: AlarmView) => a.id < page.nextBefore));
    const resolved = (await inject(viewer, 'GET', '/api/alarms?state=resolved')).json().alarms;
    assert.deepEqual(
      resolved.map((a: AlarmView) => a.kind),
      ['tamper'],
    );
    const bad = await inject(viewer, 'GET', '/api/alarms?severity=critical');
    assert.equal(bad.statusCode, 400);
    assert.equal((await platform.app.inject({ method: 'GET', url: '/api/alarms' })).statusCode, 401);
  });
});
