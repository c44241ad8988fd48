// Call-in on the platform, on both backends: an operator sets a meter's SIM number and asks it to
// call in; the SMS goes through the sender (the simulator here), the request is stored and audited;
// without a number, a sender or a reachable meter the answer says so. End to end, the simulated SMS
// reaches a virtual meter's A7670 and the meter reports.
import assert from 'node:assert/strict';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { CALL_IN_TEXT, SimulatedSmsSender } from '../../platform-server/fleet/callIn';
import { createPlatform, type Platform } from '../../platform-server/platform';
import {
  CapturingLogger,
  forEachBackend,
  type OperatorLogin,
  operatorLogin,
  randomMeterId,
} from '../../sim/fleet/platform';
import { runUntil } from '../radio/support';

const PLATFORM_NUMBER = '+447700900100';

forEachBackend('call-in (POST /api/meters/:id/call-in)', (backend) => {
  let platform: Platform;
  let bare: Platform;
  let drop: () => Promise<void>;
  let dropBare: () => Promise<void>;
  let operator: OperatorLogin;
  let viewer: OperatorLogin;
  let meterId: number;
  let virtualMeter: { clock: VirtualClock; board: VirtualBoard; meter: Meter } | undefined;
  const sender = new SimulatedSmsSender((to, text) => {
    // The simulated network: a text to the virtual meter's number reaches its modem from the platform's number.
    if (virtualMeter && to === '+447700900555') virtualMeter.board.modem?.sms(PLATFORM_NUMBER, text);
  });

  const call = (p: Platform, id: number, who: OperatorLogin, reason?: string) =>
    p.app.inject({
      method: 'POST',
      url: `/api/meters/${id}/call-in`,
      headers: who.headers,
      payload: reason ? { reason } : {},
    });
  const setNumber = (id: number, msisdn: string, who = operator) =>
    platform.app.inject({
      method: 'PUT',
      url: `/api/meters/${id}/phone-number`,
      headers: who.headers,
      payload: { msisdn },
    });

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await createPlatform({
      ...fresh.config,
      httpLogger: false,
      logger: new CapturingLogger(),
      smsSender: sender,
    });
    operator = await operatorLogin(platform.operators, 'operator');
    viewer = await operatorLogin(platform.operators, 'viewer');
    meterId = randomMeterId();
    await platform.provisionMeter(meterId, 'Harbour Road');
    const other = await backend.fresh();
    dropBare = other.drop;
    bare = await createPlatform({ ...other.config, httpLogger: false, logger: new CapturingLogger() });
  });

  after(async () => {
    await platform?.close();
    await bare?.close();
    await drop?.();
    await dropBare?.();
  });

  it('refuses a meter without a SIM number (409) and an unknown meter (404)', async () => {
    const none = await call(platform, meterId, operator);
    assert.equal(none.statusCode, 409);
    assert.equal(none.json().code, 'no-phone-number');
    assert.equal((await call(platform, 999, operator)).statusCode, 404);
  });

  it('refuses a malformed number (400) and a viewer (403)', async () => {
    assert.equal((await setNumber(meterId, '07700 900555')).statusCode, 400);
    assert.equal((await setNumber(meterId, '+447700900555', viewer)).statusCode, 403);
    assert.equal((await call(platform, meterId, viewer)).statusCode, 403);
  });

  it('texts the meter, stores the call-in and audits both steps', async () => {
    assert.equal((await setNumber(meterId, '+447700900555')).statusCode, 200);
    const before = sender.sent.length;
    const response = await call(platform, meterId, operator, 'status report overdue');
    assert.equal(response.statusCode, 202, response.body);
    const { callInId, sentTo } = response.json();
    assert.equal(sentTo, '**********555');
    assert.deepEqual(sender.sent.slice(before), [{ to: '+447700900555', text: CALL_IN_TEXT }]);
    const row = (
      await platform.db.query<{ state: string; sender: string; requested_by: string }>(
        'SELECT state, sender, requested_by FROM call_ins WHERE id = $1',
        [callInId],
      )
    ).rows[0];
    assert.deepEqual(row, { state: 'sent', sender: 'simulated', requested_by: operator.username });
    const audit = await platform.operators.auditLog({ meterId });
    assert.deepEqual(
      audit.entries.map((e) => e.action).filter((a) => a.startsWith('meter.')),
      ['meter.call-in', 'meter.phone-number'],
    );
    const entry = audit.entries.find((e) => e.action === 'meter.call-in');
    assert.equal(entry?.detail.reason, 'status report overdue');
    assert.equal(entry?.detail.sentTo, '**********555');
  });

  it('a text the network does not deliver: 502, stored as failed', async () => {
    sender.unreachable.add('+447700900555');
    try {
      const response = await call(platform, meterId, operator);
      assert.equal(response.statusCode, 502);
      assert.equal(response.json().code, 'sms-failed');
      const failed = await platform.db.query<{ n: string | number }>(
        "SELECT count(*) AS n FROM call_ins WHERE meter_id = $1 AND state = 'failed'",
        [meterId],
      );
      assert.equal(Number(failed.rows[0].n), 1);
    } finally {
      sender.unreachable.delete('+447700900555');
    }
  });

  it('a platform with no SMS sender configured answers 503: nothing simulated by default', async () => {
    const id = randomMeterId();
    await bare.provisionMeter(id, 'Station Square');
    const staff = await operatorLogin(bare.operators, 'operator');
    await bare.app.inject({
      method: 'PUT',
      url: `/api/meters/${id}/phone-number`,
      headers: staff.headers,
      payload: { msisdn: '+447700900556' },
    });
    const response = await call(bare, id, staff);
    assert.equal(response.statusCode, 503);
    assert.equal(response.json().code, 'no-sms-sender');
  });

  it("end to end: the simulated SMS reaches a virtual meter's modem, which connects and reports", async () => {
    const clock = new VirtualClock('2026-03-02T07:30:00Z');
    const broker = new VirtualBroker(clock);
    const board = new VirtualBoard({ modem: { broker }, clock, sensors: true });
    const keys = await platform.provisionMeter(meterId + 1, 'Quay Street');
    provisionBoard(board.hardware, keys, meterId + 1);
    const meter = new Meter(board.hardware, {
      meterId: meterId + 1,
      bays: [1],
      rate: { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 },
      callIn: { numbers: [PLATFORM_NUMBER] },
      radioDuty: false,
    });
    virtualMeter = { clock, board, meter };
    meter.start();
    assert.ok(runUntil(clock, () => board.modemLink?.connected === true, 120_000));
    assert.equal((await setNumber(meterId + 1, '+447700900555')).statusCode, 200);
    assert.equal((await call(platform, meterId + 1, operator)).statusCode, 202);
    assert.ok(
      runUntil(clock, () => meter.callIn?.answered === 1, 10_000),
      'the meter answered the call-in',
    );
    meter.stop();
  });
});
