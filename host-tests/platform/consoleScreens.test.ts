// The routes the console's alarm, tariff, account and audit screens added, on both backends: the
// tariff list, a draft tariff's quote by the engine (a refusal naming the field), assigning a
// tariff to an area or listed meters and each meter's push timing out visibly, an identical tariff
// posted again (201, not 409); the audit log for supervisors with a date range; whether an account
// has a second factor, and whether the platform requires one of the role.
import assert from 'node:assert/strict';
import { flatTariff, type TariffDocument } from '../../protocol/tariff';
import type { Platform } from '../../platform-server/platform';
import {
  forEachBackend,
  type OperatorLogin,
  operatorLogin,
  randomMeterId,
  startPlatform,
} from '../../sim/fleet/platform';

const TIMEOUT_S = 600;

const doc: TariffDocument = {
  ...flatTariff({ currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 }),
  id: 'console-zone',
  version: 3,
};

forEachBackend('console screens API', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let viewer: OperatorLogin;
  let operator: OperatorLogin;
  let supervisor: OperatorLogin;
  let admin: OperatorLogin;
  let nowMs = Date.now();
  const area = `Quay ${randomMeterId()}`;
  const ids: number[] = [];

  const call = (
    method: 'GET' | 'POST' | 'DELETE',
    url: string,
    who: OperatorLogin | undefined,
    payload?: unknown,
  ) => platform.app.inject({ method, url, headers: who?.headers, payload: payload as object | undefined });

  before(async function () {
    this.timeout(120_000);
    ({ platform, drop } = await startPlatform(backend, {
      tariffs: { now: () => nowMs, pushTimeoutSeconds: TIMEOUT_S },
      operators: { scrypt: { logN: 10, r: 8, p: 1 }, requireMfa: true },
    }));
    viewer = await operatorLogin(platform.operators, 'viewer');
    operator = await operatorLogin(platform.operators, 'operator');
    const base = randomMeterId();
    for (let i = 0; i < 3; i++) {
      ids.push(base + i);
      await platform.provisionMeter(base + i, `Quay ${i}`);
    }
    await platform.db.query('UPDATE meters SET area = $2 WHERE id = ANY($1::bigint[])', [
      ids.slice(0, 2),
      area,
    ]);
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  it('takes an identical tariff posted again (201, not 409) and lists each tariff at its latest version', async () => {
    assert.equal((await call('POST', '/api/tariffs', operator, doc)).statusCode, 201);
    const again = await call('POST', '/api/tariffs', operator, doc);
    assert.equal(again.statusCode, 201, again.body);
    assert.deepEqual(again.json(), { id: doc.id, version: 3 });
    assert.equal((await call('POST', '/api/tariffs', operator, { ...doc, version: 4 })).statusCode, 201);
    const list = await call('GET', '/api/tariffs', viewer);
    assert.equal(list.statusCode, 200, list.body);
    const mine = list.json().tariffs.find((t: { id: string }) => t.id === doc.id);
    assert.deepEqual(
      { ...mine, updatedAt: typeof mine.updatedAt },
      { id: doc.id, version: 4, versions: 2, currency: 826, meters: 0, updatedAt: 'string' },
    );
    assert.equal((await call('GET', '/api/tariffs', undefined)).statusCode, 401);
  });

  it("quotes a draft with the meters' engine; a refused draft is a 400 naming its field, nothing stored", async () => {
    const start = Date.UTC(2026, 5, 1, 10, 0, 0) / 1000;
    const quote = await call('POST', '/api/tariffs/draft-quote', operator, {
      document: { ...doc, id: 'draft-only' },
      bay: 1,
      start,
      minutes: 60,
    });
    assert.equal(quote.statusCode, 200, quote.body);
    assert.equal(quote.json().ok, true);
    assert.equal(quote.json().amount, 240);
    assert.equal(quote.json().paidUntil, start + 3600);
    const byAmount = await call('POST', '/api/tariffs/draft-quote', operator, {
      document: doc,
      bay: 1,
      start,
      amount: 120,
    });
    assert.equal(byAmount.json().minutes, 30);

    const bad = await call('POST', '/api/tariffs/draft-quote', operator, {
      document: { ...doc, id: 'draft-only', rates: { hourly: [{ price: -5, per: 60 }] } },
      bay: 1,
      start,
      minutes: 60,
    });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().code, 'bad-tariff');
    assert.match(bad.json().field, /^rates\.hourly/);
    const stored = await platform.db.query("SELECT count(*)::int AS n FROM tariffs WHERE id = 'draft-only'");
    assert.equal(stored.rows[0].n, 0);
    assert.equal(
      (await call('POST', '/api/tariffs/draft-quote', viewer, { document: doc, bay: 1, start, minutes: 60 }))
        .statusCode,
      403,
    );
  });

  it('assigns a tariff to an area: a push per meter, pending, then timed out when no meter answers', async () => {
    const assigned = await call('POST', `/api/tariffs/${doc.id}/assign`, operator, { target: { area } });
    assert.equal(assigned.statusCode, 202, assigned.body);
    assert.equal(assigned.json().version, 4);
    assert.deepEqual(
      assigned
        .json()
        .meters.map((m: { meterId: number; downlinkSeq?: number }) => [m.meterId, typeof m.downlinkSeq]),
      [
        [ids[0], 'number'],
        [ids[1], 'number'],
      ],
    );
    const pushes = async () =>
      (await call('GET', `/api/tariff-pushes?tariffId=${doc.id}`, viewer))
        .json()
        .pushes.map((p: { meterId: number; state: string }) => [p.meterId, p.state])
        .sort();
    assert.deepEqual(await pushes(), [
      [ids[0], 'pending'],
      [ids[1], 'pending'],
    ]);
    nowMs += (TIMEOUT_S + 1) * 1000;
    assert.deepEqual(await pushes(), [
      [ids[0], 'timed-out'],
      [ids[1], 'timed-out'],
    ]);
    const audit = await platform.db.query<{ detail: { sent: number } }>(
      "SELECT detail FROM operator_audit WHERE action = 'tariff.assign' AND target = $1",
      [doc.id],
    );
    assert.equal(audit.rows.at(-1)?.detail.sent, 2);
    const listed = (await call('GET', '/api/tariffs', viewer))
      .json()
      .tariffs.find((t: { id: string }) => t.id === doc.id);
    assert.equal(listed.meters, 2);
  });

  it('assigns to listed meters; an unknown meter refuses the whole target with a 404 on the target', async () => {
    const listed = await call('POST', `/api/tariffs/${doc.id}/assign`, operator, {
      target: { meters: [ids[2]] },
      version: 3,
    });
    assert.equal(listed.statusCode, 202, listed.body);
    assert.equal(listed.json().version, 3);
    assert.equal(listed.json().meters[0].meterId, ids[2]);
    const unknown = await call('POST', `/api/tariffs/${doc.id}/assign`, operator, {
      target: { meters: [ids[2], 4_294_967_295] },
    });
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json().code, 'unknown-meter');
    assert.equal(unknown.json().field, 'target');
    const none = await call('POST', '/api/tariffs/no-such-tariff/assign', operator, { target: { area } });
    assert.equal(none.statusCode, 404);
    assert.equal(
      (await call('POST', `/api/tariffs/${doc.id}/assign`, viewer, { target: { area } })).statusCode,
      403,
    );
  });

  it('tells whether the platform requires the second factor of the role, and lists who has one', async () => {
    const me = await call('GET', '/api/operators/me', operator);
    assert.equal(me.json().mfa.required, false);
    // With the factor required, a supervisor and an admin without one are refused supervisor routes.
    supervisor = await operatorLogin(platform.operators, 'supervisor');
    admin = await operatorLogin(platform.operators, 'admin');
    const sme = await call('GET', '/api/operators/me', supervisor);
    assert.deepEqual(sme.json().mfa, {
      enrolled: false,
      session: false,
      recoveryCodesLeft: 0,
      required: true,
    });
    const refused = await call('GET', '/api/operators', admin);
    assert.equal(refused.statusCode, 403);
    assert.equal(refused.json().code, 'mfa-required');
    await platform.db.query('UPDATE operator_sessions SET mfa = true WHERE mfa = false');
    const list = await call('GET', '/api/operators', admin);
    assert.equal(list.statusCode, 200, list.body);
    const row = list.json().operators.find((o: { username: string }) => o.username === supervisor.username);
    assert.equal(row.mfaEnrolled, false);
  });

  it('gives the audit log to supervisors, filtered by a date range, and pages it', async () => {
    const all = await call('GET', `/api/operators/audit?operator=${operator.username}&limit=1`, supervisor);
    assert.equal(all.statusCode, 200, all.body);
    assert.equal(all.json().entries.length, 1);
    assert.equal(typeof all.json().nextBefore, 'number');
    const older = await call(
      'GET',
      `/api/operators/audit?operator=${operator.username}&limit=1&before=${all.json().nextBefore}`,
      supervisor,
    );
    assert.ok(older.json().entries[0].id < all.json().entries[0].id);
    const future = new Date(Date.now() + 86_400_000).toISOString();
    const none = await call(
      'GET',
      `/api/operators/audit?operator=${operator.username}&since=${future}`,
      supervisor,
    );
    assert.deepEqual(none.json().entries, []);
    const past = new Date(Date.now() - 86_400_000).toISOString();
    const before = await call(
      'GET',
      `/api/operators/audit?operator=${operator.username}&until=${past}`,
      supervisor,
    );
    assert.deepEqual(before.json().entries, []);
    const today = await call(
      'GET',
      `/api/operators/audit?operator=${operator.username}&since=${past}&until=${future}&action=tariff.assign`,
      supervisor,
    );
    assert.ok(today.json().entries.length >= 2);
    assert.equal((await call('GET', '/api/operators/audit', operator)).statusCode, 403);
    assert.equal((await call('GET', '/api/operators/audit?since=yesterday', supervisor)).statusCode, 400);
  });
});
