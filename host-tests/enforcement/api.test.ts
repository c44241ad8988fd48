// The enforcement API on both backends: the beat's validity per bay from a real status report (sent
// through the ingest gate) and stored payments, roles (a viewer cannot issue, an officer cannot use
// admin routes nor list notices), typed refusals of bad input, idempotent issuing by the client's
// id (same body: stored once; another body: 409), the driver's appeal and the supervisor's decision.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { FRAME_VERSION, sealFrame } from '../../protocol/frame';
import { encodeStatusMessage, STATUS_FRAME, type StatusMessage } from '../../protocol/status';
import { uplinkTopic } from '../../protocol/topics';
import { validityOf } from '../../platform-server/enforcement';
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

describe('enforcement validity rule', () => {
  const now = new Date('2026-06-01T12:00:00Z');
  const ago = (s: number) => new Date(now.getTime() - s * 1000);
  it('is paid before paid-until, then grace, then overtime; unpaid or free without payment', () => {
    assert.equal(validityOf(true, ago(-60), now, 600), 'paid');
    assert.equal(validityOf(true, ago(300), now, 600), 'grace');
    assert.equal(validityOf(true, ago(601), now, 600), 'overtime');
    assert.equal(validityOf(true, null, now, 600), 'unpaid');
    assert.equal(validityOf(false, ago(300), now, 600), 'free');
    assert.equal(validityOf(false, null, now, 600), 'free');
  });
});

forEachBackend('enforcement API', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let admin: OperatorLogin;
  let viewer: OperatorLogin;
  let officer: OperatorLogin;
  let supervisor: OperatorLogin;
  let meter: TestMeter;
  const nowS = () => Math.floor(Date.now() / 1000);
  const call = (
    method: 'GET' | 'POST' | 'PATCH',
    url: string,
    who: OperatorLogin | null,
    payload?: unknown,
  ) =>
    platform.app.inject({ method, url, headers: who?.headers ?? {}, payload: payload as object | undefined });

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await createPlatform({
      ...fresh.config,
      httpLogger: false,
      logger: new CapturingLogger(),
      operators: { scrypt: { logN: 10, r: 8, p: 1 } },
    });
    admin = await operatorLogin(platform.operators, 'admin');
    viewer = await operatorLogin(platform.operators, 'viewer');
    officer = await operatorLogin(platform.operators, 'enforcement');
    supervisor = await operatorLogin(platform.operators, 'supervisor');
    const id = randomMeterId();
    meter = new TestMeter(id, await platform.provisionMeter(id, 'High Street 1'));
    const at = nowS();
    const report: StatusMessage = {
      kind: 'status',
      at,
      battery: { source: 'disposable', packs: { disposable: 80, backup: 100 }, millivolts: 3600 },
      sensors: { temperature: 215 },
      modules: { reader: 'ok' },
      faults: [],
      bays: [
        { bayId: 1, occupied: true, since: at - 3600, paid: true },
        { bayId: 2, occupied: true, since: at - 3600, paid: false },
        { bayId: 3, occupied: true, since: at - 3600, paid: false },
        { bayId: 4, occupied: false, since: 0, paid: false },
      ],
      fan: false,
      settings: 1,
    };
    const frame = sealFrame(
      crypto,
      meter.keys.uplink,
      { version: FRAME_VERSION, type: STATUS_FRAME, meterId: meter.id, epoch: 1, seq: ++meter.frameSeq },
      encodeStatusMessage(report),
    );
    assert.equal((await platform.ingest.handleUplink(uplinkTopic(meter.id), frame)).ok, true);
    // Stored payments (test setup written straight into ingest's tables): bay 1 paid for another
    // half hour, bay 3 expired an hour ago; bay 2 never paid.
    const pay = async (seq: number, bay: number, from: number, until: number) => {
      await platform.db.query(
        `INSERT INTO records (meter_id, seq, kind, recorded_at, bytes, link) VALUES ($1, $2, 1, $3, $4, $5)`,
        [meter.id, seq, new Date(from * 1000), Buffer.from([seq]), Buffer.alloc(32, seq)],
      );
      await platform.db.query(
        `INSERT INTO transactions (meter_id, seq, transaction_number, card_token, card_last4, card_expiry, card_type,
                                   bay_id, minutes, paid_from, paid_until, charge, currency, remaining_value, recorded_at)
         VALUES ($1, $2, $2, 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '0000', '2812', 1, $3, 60, $4, $5, 200, 978, 0, $4)`,
        [meter.id, seq, bay, new Date(from * 1000), new Date(until * 1000)],
      );
    };
    await pay(1, 1, at - 1800, at + 1800);
    await pay(2, 3, at - 7200, at - 3600);
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  it('shows the beat with each bay validity to an officer and by bay', async () => {
    const res = await call('GET', `/api/enforcement/beat?meters=${meter.id}`, officer);
    assert.equal(res.statusCode, 200);
    const bays = res.json().bays as { bayId: number; validity: string; paidUntil: string | null }[];
    assert.deepEqual(
      bays.map((b) => [b.bayId, b.validity]),
      [
        [1, 'paid'],
        [2, 'unpaid'],
        [3, 'overtime'],
        [4, 'free'],
      ],
    );
    assert.ok(bays[0]?.paidUntil);
    const one = await call('GET', `/api/enforcement/beat?meters=${meter.id}&bayId=3`, officer);
    assert.deepEqual(
      one.json().bays.map((b: { bayId: number }) => b.bayId),
      [3],
    );
    // An officer reads the fleet but changes nothing of it.
    assert.equal((await call('GET', '/api/console/fleet', officer)).statusCode, 200);
    assert.equal(
      (await call('POST', '/api/meters', officer, { id: randomMeterId(), name: 'x' })).statusCode,
      403,
    );
    assert.equal((await call('GET', '/api/operators', officer)).statusCode, 403);
    assert.equal((await call('GET', '/api/enforcement/beat', null)).statusCode, 401);
    assert.equal((await call('GET', '/api/enforcement/beat', admin)).statusCode, 200);
    assert.equal((await call('GET', '/api/enforcement/beat', viewer)).statusCode, 403);
  });

  it('refuses a viewer from issuing and bad input with typed errors, storing nothing', async () => {
    const body = { id: randomUUID(), meterId: meter.id, bayId: 3, observedAt: new Date().toISOString() };
    const v = await call('POST', '/api/enforcement/notices', viewer, body);
    assert.equal(v.statusCode, 403);
    const badId = await call('POST', '/api/enforcement/notices', officer, { ...body, id: 'x' });
    assert.equal(badId.statusCode, 400);
    assert.equal(badId.json().field, 'id');
    const badTime = await call('POST', '/api/enforcement/notices', officer, {
      ...body,
      observedAt: 'yesterday',
    });
    assert.equal(badTime.statusCode, 400);
    assert.equal(badTime.json().field, 'observedAt');
    const unknown = await call('POST', '/api/enforcement/notices', officer, { ...body, meterId: 4294967295 });
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json().code, 'unknown-meter');
    const stored = await platform.db.query('SELECT 1 FROM penalty_notices');
    assert.equal(stored.rows.length, 0);
  });

  it('issues a notice with evidence once per id; another body under the id is a 409', async () => {
    const body = {
      id: randomUUID(),
      meterId: meter.id,
      bayId: 3,
      plate: 'AB12CDE',
      observedAt: new Date().toISOString(),
      latitude: 51.5,
      longitude: -0.12,
    };
    const first = await call('POST', '/api/enforcement/notices', officer, body);
    assert.equal(first.statusCode, 201);
    const n = first.json();
    assert.match(n.code, /^[0-9A-Z]{5}-[0-9A-Z]{5}$/);
    assert.equal(n.officer, officer.username);
    assert.equal(n.evidence.bay.validity, 'overtime');
    assert.equal(n.evidence.record.seq, 2);
    assert.equal(n.evidence.record.link, Buffer.alloc(32, 2).toString('hex'));
    // The same body again (keys in another order): the stored notice, not a second one.
    const reordered = Object.fromEntries(Object.entries(body).reverse());
    const again = await call('POST', '/api/enforcement/notices', officer, reordered);
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().code, n.code);
    const other = await call('POST', '/api/enforcement/notices', officer, { ...body, bayId: 2 });
    assert.equal(other.statusCode, 409);
    assert.equal(other.json().code, 'notice-id-conflict');
    const count = await platform.db.query('SELECT 1 FROM penalty_notices WHERE id = $1', [body.id]);
    assert.equal(count.rows.length, 1);
    // Supervisors list notices; an officer does not.
    assert.equal((await call('GET', '/api/enforcement/notices', officer)).statusCode, 403);
    const list = await call('GET', '/api/enforcement/notices', supervisor);
    assert.equal(list.statusCode, 200);
    assert.equal(list.json().notices.filter((x: { id: string }) => x.id === body.id).length, 1);
  });

  it("tells the driver of the bay's phone session through the phone room's outbox", async () => {
    // A registered driver whose phone session on bay 2 ended an hour ago (test setup in the phone tables).
    const at = nowS();
    const d = await platform.db.query<{ id: number }>(
      `INSERT INTO drivers (account_number, name, phone, email, password_hash)
       VALUES ('PL0000000001', 'Dana', '+447700900123', 'dana@example.org', 'x') RETURNING id`,
    );
    const driverId = Number(d.rows[0]?.id);
    const c = await platform.db.query<{ id: number }>(
      `INSERT INTO driver_cards (driver_id, token, last4, card_type) VALUES ($1, $2, '4242', 1) RETURNING id`,
      [driverId, 'b'.repeat(32)],
    );
    await platform.db.query(
      `INSERT INTO phone_sessions (driver_id, card_id, meter_id, bay_id, tx_seq, paid_from, paid_until, paid_minutes,
                                   first_charge, currency, status, created_at)
       VALUES ($1, $2, $3, 2, 9, $4, $5, 60, 200, 978, 'expired', $4)`,
      [driverId, Number(c.rows[0]?.id), meter.id, new Date((at - 7200) * 1000), new Date((at - 3600) * 1000)],
    );
    const body = { id: randomUUID(), meterId: meter.id, bayId: 2, observedAt: new Date().toISOString() };
    const issued = await call('POST', '/api/enforcement/notices', officer, body);
    assert.equal(issued.statusCode, 201);
    assert.equal(issued.json().evidence.bay.validity, 'overtime');
    const sent = await platform.db.query<{ channel: string; recipient: string; body: string }>(
      "SELECT channel, recipient, body FROM outbox WHERE driver_id = $1 AND kind = 'penalty-notice'",
      [driverId],
    );
    assert.equal(sent.rows.length, 1);
    assert.equal(sent.rows[0]?.channel, 'sms');
    assert.equal(sent.rows[0]?.recipient, '+447700900123');
    assert.match(sent.rows[0]?.body ?? '', new RegExp(issued.json().code));
    // Sent again (the same id and body): no second message.
    assert.equal((await call('POST', '/api/enforcement/notices', officer, body)).statusCode, 200);
    const again = await platform.db.query(
      "SELECT 1 FROM outbox WHERE driver_id = $1 AND kind = 'penalty-notice'",
      [driverId],
    );
    assert.equal(again.rows.length, 1);
  });

  it('takes a driver appeal by the printed code and a supervisor decision, audited', async () => {
    const body = { id: randomUUID(), meterId: meter.id, bayId: 1, observedAt: new Date().toISOString() };
    const n = (await call('POST', '/api/enforcement/notices', officer, body)).json();
    const page = await call('GET', `/enforcement/notices/${n.code}`, null);
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /Penalty notice/);
    const short = await call('POST', `/api/driver/enforcement/notices/${n.code}/appeal`, null, {
      statement: 'no',
    });
    assert.equal(short.statusCode, 400);
    assert.equal(short.json().field, 'statement');
    const missing = await call('POST', '/api/driver/enforcement/notices/ZZZZZ-ZZZZZ/appeal', null, {
      statement: 'I had paid for this bay.',
    });
    assert.equal(missing.statusCode, 404);
    const appeal = await call('POST', `/api/driver/enforcement/notices/${n.code}/appeal`, null, {
      statement: 'I had paid for this bay until later.',
    });
    assert.equal(appeal.statusCode, 201);
    assert.equal(appeal.json().status, 'appealed');
    const twice = await call('POST', `/api/driver/enforcement/notices/${n.code}/appeal`, null, {
      statement: 'Once more, I had paid.',
    });
    assert.equal(twice.statusCode, 409);
    const file = await call('GET', `/api/enforcement/notices/${body.id}`, supervisor);
    assert.equal(file.statusCode, 200);
    assert.equal(file.json().notice.appeal.statement, 'I had paid for this bay until later.');
    assert.equal(file.json().payments.length, 1);
    assert.equal(file.json().payments[0].source, 'meter');
    assert.equal(
      (
        await call('POST', `/api/enforcement/notices/${body.id}/decision`, officer, {
          decision: 'cancelled',
          reason: 'paid',
        })
      ).statusCode,
      403,
    );
    const decided = await call('POST', `/api/enforcement/notices/${body.id}/decision`, supervisor, {
      decision: 'cancelled',
      reason: 'The meter record shows the bay paid at the time.',
    });
    assert.equal(decided.statusCode, 200);
    assert.equal(decided.json().status, 'cancelled');
    assert.equal(decided.json().appeal.decidedBy, supervisor.username);
    const audit = await platform.db.query(
      "SELECT 1 FROM operator_audit WHERE action = 'enforcement.notice.cancelled' AND target = $1",
      [body.id],
    );
    assert.equal(audit.rows.length, 1);
    const driver = await call('GET', `/api/driver/enforcement/notices/${n.code}`, null);
    assert.equal(driver.json().appeal.decision, 'cancelled');
  });
});
