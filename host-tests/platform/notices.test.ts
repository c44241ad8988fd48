// Notices on the platform, on both backends, with virtual meters on the broker: an operator
// schedules a message and bay modes with a window for an area; every meter of the area and only
// those apply them and acknowledge; the message shows only in its window; a suspended bay refuses a
// sale with a clear message; a cancellation puts the bay back in service; viewers cannot schedule.
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/mock/clock';
import type { Platform } from '../../platform-server/platform';
import { forEachBackend, type OperatorLogin, operatorLogin, randomMeterId } from '../../sim/fleet/platform';
import { type BootedMeter, bootMeter, phonePlatform, until } from '../phone/support';

forEachBackend('notices: messages and bay modes (0x85)', (backend) => {
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  let platform: Platform;
  let drop: () => Promise<void>;
  let admin: OperatorLogin;
  let operator: OperatorLogin;
  let viewer: OperatorLogin;
  const meters: BootedMeter[] = [];
  const ids: number[] = [];
  const now = () => Math.floor(clock.now() / 1000);

  const api = (
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    url: string,
    who: OperatorLogin,
    payload?: object,
  ) =>
    platform.app.inject({ method, url, headers: who.headers, ...(payload === undefined ? {} : { payload }) });
  const notice = async (id: number) => (await api('GET', `/api/notices/${id}`, viewer)).json();
  const allAcked = async (id: number, version = id) => {
    const view = await notice(id);
    const pushes = view.meters.filter((m: { version: number }) => m.version === version);
    return pushes.length > 0 && pushes.every((m: { acked: boolean | null }) => m.acked === true);
  };

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await phonePlatform(fresh.config, clock);
    admin = await operatorLogin(platform.operators, 'admin');
    operator = await operatorLogin(platform.operators, 'operator');
    viewer = await operatorLogin(platform.operators, 'viewer');
    while (ids.length < 3) {
      const id = randomMeterId();
      if (!ids.includes(id)) ids.push(id);
    }
    for (const id of ids) meters.push(await bootMeter(platform, id, clock));
    for (const id of ids.slice(0, 2))
      assert.equal((await api('PUT', `/api/meters/${id}/area`, admin, { area: 'Market' })).statusCode, 200);
  });

  after(async () => {
    for (const m of meters) m.meter.stop();
    await platform?.close();
    await drop?.();
  });

  it('refuses a viewer, an end before the start and an unknown mode', async () => {
    const target = { area: 'Market' };
    assert.equal((await api('POST', '/api/notices', viewer, { target, text: 'hi' })).statusCode, 403);
    const backwards = await api('POST', '/api/notices', operator, {
      target,
      text: 'hi',
      start: 200,
      end: 100,
    });
    assert.equal(backwards.statusCode, 400);
    assert.equal(backwards.json().field, 'end');
    assert.equal(
      (await api('POST', '/api/notices', operator, { target, bays: { '1': 'closed' } })).statusCode,
      400,
    );
    assert.equal((await api('GET', '/api/notices', viewer)).json().notices.length, 0, 'nothing stored');
  });

  it('a message for an area reaches its meters only, acknowledged, shown only in its window', async () => {
    const start = now() + 3600;
    const res = await api('POST', '/api/notices', operator, {
      target: { area: 'Market' },
      text: 'Market on Sunday',
      start,
      end: start + 3600,
    });
    assert.equal(res.statusCode, 202, res.body);
    const { id, meters: sent } = res.json();
    assert.deepEqual(
      sent.map((m: { meterId: number }) => m.meterId),
      ids.slice(0, 2).sort((a, b) => a - b),
    );
    await until(() => allAcked(id), 'both meters to acknowledge the message');
    const m = meters[0];
    m.meter.information.showIdle();
    assert.doesNotMatch(m.board.display.text, /Market on Sunday/, 'not before its start');
    clock.advance(3600_000);
    m.meter.information.showIdle();
    assert.match(m.board.display.text, /Market on Sunday/);
    meters[2].meter.information.showIdle();
    assert.doesNotMatch(meters[2].board.display.text, /Market on Sunday/, 'outside the area');
    clock.advance(3600_000);
    m.meter.information.showIdle();
    assert.doesNotMatch(m.board.display.text, /Market on Sunday/, 'not after its end');
  });

  it('a bay suspended for works refuses a sale with a clear message; cancelling puts it back', async () => {
    const res = await api('POST', '/api/notices', operator, {
      target: { meters: [ids[0]] },
      bays: { '2': 'suspended' },
      start: now(),
      end: now() + 86_400,
    });
    assert.equal(res.statusCode, 202, res.body);
    const { id } = res.json();
    await until(() => allAcked(id), 'the meter to acknowledge the bay mode');
    const m = meters[0];
    m.board.press('ok'); // wakes the display if asleep, or selects bay 1
    m.board.press('cancel');
    m.board.press('ok');
    m.board.press('bay'); // bay 2
    assert.match(m.board.display.text.replace(/\n/g, ' '), /Bay 2 Suspended for works\. No sale\./);
    m.board.press('ok');
    assert.equal(m.meter.transactions.state, 'selecting', 'no card is asked for');
    m.board.press('cancel');

    const cancelled = await api('DELETE', `/api/notices/${id}`, operator);
    assert.equal(cancelled.statusCode, 202, cancelled.body);
    const { version } = cancelled.json();
    await until(() => allAcked(id, version), 'the meter to acknowledge the cancellation');
    assert.equal(m.meter.charging.bayMode(2, now()), undefined);
    assert.equal((await api('DELETE', `/api/notices/${id}`, operator)).statusCode, 409);
    const active = (await api('GET', '/api/notices?active=true', viewer)).json().notices;
    assert.ok(!active.some((n: { id: number }) => n.id === id));
    const audit = await platform.operators.auditLog({ action: 'notice.cancel' });
    assert.equal(audit.entries.length, 1);
  });
});
