import assert from 'node:assert/strict';
import { uplinkTopic } from '../../protocol/topics';
import type { TransactionView } from '../../platform-server/fleet/meters';
import { createPlatform, type Platform } from '../../platform-server/platform';
import {
  CapturingLogger,
  forEachBackend,
  type OperatorLogin,
  operatorLogin,
  randomMeterId,
  TestMeter,
} from '../../sim/fleet/platform';

forEachBackend('HTTP API', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let busy: TestMeter;
  let silentId: number;
  let viewer: OperatorLogin;

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await createPlatform({ ...fresh.config, httpLogger: false, logger: new CapturingLogger() });
    viewer = await operatorLogin(platform.operators, 'viewer');
    const busyId = randomMeterId();
    busy = new TestMeter(busyId, await platform.provisionMeter(busyId, 'High Street 1'));
    silentId = busyId + 1;
    await platform.provisionMeter(silentId, 'High Street 2');
    // Frames handed to ingest directly: the HTTP side only needs what is stored.
    for (let i = 0; i < 7; i++) busy.transaction({ minutes: 10 * (i + 1) });
    busy.operation();
    for (let i = 0; i < 2; i++) busy.transaction();
    for (const [from, to] of [
      [1, 4],
      [5, 10],
    ]) {
      const outcome = await platform.ingest.handleUplink(uplinkTopic(busy.id), busy.frame(from, to));
      assert.equal(outcome.ok, true);
    }
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  const get = (url: string) => platform.app.inject({ method: 'GET', url, headers: viewer.headers });

  it('GET /healthz', async () => {
    const res = await get('/healthz');
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { status: 'ok', database: backend.real ? 'postgres' : 'pglite' });
  });

  it('GET /api/meters lists each meter with its epoch, last contact and records held', async () => {
    const res = await get('/api/meters');
    assert.equal(res.statusCode, 200);
    const meters = res.json().meters as Record<string, unknown>[];
    const busyRow = meters.find((m) => m.id === busy.id);
    const silentRow = meters.find((m) => m.id === silentId);
    assert.ok(busyRow && silentRow);
    assert.equal(busyRow.name, 'High Street 1');
    assert.equal(busyRow.keyEpoch, 1);
    assert.equal(busyRow.recordsHeld, 10);
    assert.equal(busyRow.lastSeq, 10);
    assert.equal(busyRow.missingRecords, 0);
    assert.equal(typeof busyRow.lastSeenAt, 'string');
    assert.ok(!Number.isNaN(Date.parse(busyRow.lastSeenAt as string)));
    assert.deepEqual(
      { recordsHeld: silentRow.recordsHeld, lastSeq: silentRow.lastSeq, lastSeenAt: silentRow.lastSeenAt },
      { recordsHeld: 0, lastSeq: 0, lastSeenAt: null },
    );
  });

  it('GET /api/meters/:id/transactions: newest first, default limit, masked card numbers', async () => {
    const res = await get(`/api/meters/${busy.id}/transactions`);
    assert.equal(res.statusCode, 200);
    const body = res.json() as {
      meterId: number;
      transactions: TransactionView[];
      nextBefore: number | null;
    };
    assert.equal(body.meterId, busy.id);
    // Records 1..7 and 9..10 are transactions; 8 is an operation.
    assert.deepEqual(
      body.transactions.map((t) => t.seq),
      [10, 9, 7, 6, 5, 4, 3, 2, 1],
    );
    assert.equal(body.nextBefore, null);
    const t7 = body.transactions.find((t) => t.seq === 7)!;
    assert.equal(t7.minutes, 70);
    assert.equal(t7.charge, 280);
    assert.equal(t7.currency, 826);
    assert.equal(t7.cardNumberMasked, '**** 0017');
    assert.equal(t7.cardLast4, '0017');
    assert.equal(t7.cardExpiry, '2812');
    assert.equal(t7.transactionNumber, 7);
    assert.equal(Date.parse(t7.paidUntil) - Date.parse(t7.paidFrom), 70 * 60 * 1000);
    assert.equal(t7.recordedAt, new Date((1_767_600_000 + 7 * 60) * 1000).toISOString());
    assert.ok(!JSON.stringify(body).includes('6280000000000017'), 'no full card number leaves the API');
  });

  it('pages with ?limit= and ?before=', async () => {
    const seen: number[] = [];
    let before: number | null = null;
    let pages = 0;
    do {
      const res = await get(
        `/api/meters/${busy.id}/transactions?limit=4${before === null ? '' : `&before=${before}`}`,
      );
      assert.equal(res.statusCode, 200);
      const body = res.json() as { transactions: TransactionView[]; nextBefore: number | null };
      assert.ok(body.transactions.length <= 4);
      seen.push(...body.transactions.map((t) => t.seq));
      before = body.nextBefore;
      pages++;
    } while (before !== null && pages < 10);
    assert.equal(pages, 3);
    assert.deepEqual(seen, [10, 9, 7, 6, 5, 4, 3, 2, 1]);
    const older = await get(`/api/meters/${busy.id}/transactions?before=3`);
    assert.deepEqual(
      (older.json().transactions as TransactionView[]).map((t) => t.seq),
      [2, 1],
    );
  });

  it('an empty list for a meter without transactions, 404 for an unknown meter', async () => {
    const silent = await get(`/api/meters/${silentId}/transactions`);
    assert.equal(silent.statusCode, 200);
    assert.deepEqual(silent.json().transactions, []);
    const unknown = await get(`/api/meters/${busy.id + 7}/transactions`);
    assert.equal(unknown.statusCode, 404);
    assert.match(unknown.json().message, /unknown/);
    const route = await get('/api/nothing-here');
    assert.equal(route.statusCode, 404);
    assert.equal(typeof route.json().message, 'string');
  });

  for (const [what, url] of [
    ['a non-numeric id', '/api/meters/abc/transactions'],
    ['a negative id', '/api/meters/-1/transactions'],
    ['an id beyond u32', '/api/meters/4294967296/transactions'],
    ['a fractional id', '/api/meters/1.5/transactions'],
    ['limit 0', '/api/meters/1/transactions?limit=0'],
    ['limit 501', '/api/meters/1/transactions?limit=501'],
    ['a non-numeric limit', '/api/meters/1/transactions?limit=ten'],
    ['before 0', '/api/meters/1/transactions?before=0'],
  ] as const) {
    it(`400 with a JSON message for ${what}`, async () => {
      const res = await get(url);
      assert.equal(res.statusCode, 400);
      const body = res.json();
      assert.equal(body.statusCode, 400);
      assert.equal(body.error, 'Bad Request');
      assert.match(body.message, /(params|querystring)\/(id|limit|before)/);
    });
  }
});
