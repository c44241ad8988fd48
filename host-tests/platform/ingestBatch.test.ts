// Ingest stores frames from many meters in one transaction (platform-server/ingest/store.ts). A
// batch must behave exactly as the frames would one by one: a refused frame writes nothing and does
// not hold back the others, a meter's frames keep their order, text of any kind is stored verbatim,
// and a database failure loses nothing (every frame of the batch refused, the meters send again).
import assert from 'node:assert/strict';
import { type Accepted, Ingest, type IngestOutcome, type Refusal } from '../../platform-server/ingest/gate';
import { arrayLiteral } from '../../platform-server/ingest/store';
import { createPlatform, type Platform } from '../../platform-server/platform';
import { RecordKind } from '../../protocol/records';
import { uplinkTopic } from '../../protocol/topics';
import { CapturingLogger, forEachBackend, randomMeterId, TestMeter } from '../../sim/fleet/platform';

describe('arrayLiteral', () => {
  it('quotes text, escapes quotes and backslashes, writes NULL, refuses non-finite numbers', () => {
    assert.equal(arrayLiteral([1, null, 4294967295]), '{1,NULL,4294967295}');
    assert.equal(arrayLiteral(['a"b', 'c\\d', 'NULL', '']), '{"a\\"b","c\\\\d","NULL",""}');
    assert.equal(arrayLiteral([]), '{}');
    assert.throws(() => arrayLiteral([Number.NaN]), RangeError);
    assert.throws(() => arrayLiteral([Number.POSITIVE_INFINITY]), RangeError);
  });
});

forEachBackend('ingest in batches', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let ingest: Ingest;
  const batches: Accepted[][] = [];

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await createPlatform({ ...fresh.config, httpLogger: false, logger: new CapturingLogger() });
    // A second ingest on the same database, fed directly (no broker), one batch at a time so the
    // frames handed while the first batch runs all go into the next.
    ingest = new Ingest({
      db: platform.db,
      keystore: platform.keystore,
      logger: new CapturingLogger(),
      batchesInFlight: 1,
    });
    ingest.on('committed', (sets) => batches.push(sets));
  });

  after(async () => {
    await ingest?.close();
    await platform?.close();
    await drop?.();
  });

  async function newMeter(): Promise<TestMeter> {
    const id = randomMeterId();
    return new TestMeter(id, await platform.provisionMeter(id, 'batch'));
  }

  const count = async (table: string, meterId: number) =>
    (
      await platform.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE meter_id = $1`, [
        meterId,
      ])
    ).rows[0].n;

  it('stores several meters in one transaction and refuses only the bad frame', async () => {
    const opener = await newMeter();
    const good = [await newMeter(), await newMeter(), await newMeter()];
    const bad = await newMeter();
    opener.transactions(1);
    for (const m of [...good, bad]) m.transactions(5);
    batches.length = 0;
    const outcomes = [
      // Runs alone; the rest wait for it and go together.
      ingest.handleUplink(uplinkTopic(opener.id), opener.frame(1, 1)),
      ingest.handleUplink(uplinkTopic(good[0].id), good[0].frame(1, 5)),
      ingest.handleUplink(uplinkTopic(bad.id), bad.frame(1, 5, { previous: good[0].link(0) })),
      ingest.handleUplink(uplinkTopic(good[1].id), good[1].frame(1, 5)),
      ingest.handleUplink(uplinkTopic(good[2].id), good[2].frame(1, 5)),
    ];
    const [first, ...rest] = await Promise.all(outcomes);
    assert.equal(first.ok, true, first.ok ? '' : first.detail);
    assert.deepEqual(
      rest.map((o) => (o.ok ? 'ok' : o.reason)),
      ['ok', 'chain-broken', 'ok', 'ok'],
    );
    assert.equal(batches.length, 2);
    assert.deepEqual(
      batches[1].map((a) => a.meterId),
      good.map((m) => m.id),
      'the three good frames committed together',
    );
    for (const m of good) {
      assert.equal(await count('records', m.id), 5);
      assert.equal(await count('transactions', m.id), 5);
    }
    assert.equal(await count('records', bad.id), 0, 'the refused frame wrote nothing');
    const marks = await platform.db.query<{ id: number; last_uplink_seq: number; downlink_seq: number }>(
      'SELECT id, last_uplink_seq, downlink_seq FROM meters WHERE id = ANY($1::bigint[]) ORDER BY id',
      [[bad.id, ...good.map((m) => m.id)]],
    );
    for (const row of marks.rows) {
      const refused = row.id === bad.id;
      assert.equal(row.last_uplink_seq, refused ? 0 : 1);
      assert.equal(row.downlink_seq, refused ? 0 : 1);
    }
  });

  it('refuses alone a set with a value its table cannot hold, naming the column; the batch stores the rest', async () => {
    const opener = await newMeter();
    const good = [await newMeter(), await newMeter()];
    const wide = await newMeter();
    const nul = await newMeter();
    opener.transactions(1);
    for (const m of good) m.transactions(3);
    // Currency is a smallint column, but the record's field is any unsigned integer.
    wide.transactions(2);
    wide.transaction({ currency: 40_000 });
    nul.transactions(1);
    nul.operation('card-refused', 'black\0listed');
    batches.length = 0;
    const outcomes = [
      ingest.handleUplink(uplinkTopic(opener.id), opener.frame(1, 1)),
      ingest.handleUplink(uplinkTopic(good[0].id), good[0].frame(1, 3)),
      ingest.handleUplink(uplinkTopic(wide.id), wide.frame(1, 3)),
      ingest.handleUplink(uplinkTopic(nul.id), nul.frame(1, 2)),
      ingest.handleUplink(uplinkTopic(good[1].id), good[1].frame(1, 3)),
    ];
    const [first, ...rest] = await Promise.all(outcomes);
    assert.equal(first.ok, true, first.ok ? '' : first.detail);
    assert.deepEqual(
      rest.map((o) => (o.ok ? 'ok' : `${o.reason}: ${o.detail}`)),
      [
        'ok',
        'bad-field: transactions.currency: 40000 is not a 16-bit integer',
        'bad-field: operations.detail: text cannot hold a NUL character',
        'ok',
      ],
    );
    assert.deepEqual(
      batches[1].map((a) => a.meterId),
      good.map((m) => m.id),
      'the good frames committed together',
    );
    for (const m of good) assert.equal(await count('records', m.id), 3);
    for (const m of [wide, nul]) {
      assert.equal(await count('records', m.id), 0, 'the refused set wrote nothing');
      assert.equal(await count('transactions', m.id), 0);
    }
    const marks = await platform.db.query<{ last_uplink_seq: number }>(
      'SELECT last_uplink_seq FROM meters WHERE id = ANY($1::bigint[])',
      [[wide.id, nul.id]],
    );
    assert.deepEqual(
      marks.rows.map((r) => r.last_uplink_seq),
      [0, 0],
      'a refused set does not move the meter on',
    );
  });

  it("keeps a meter's frames in order, the second waiting for the first's batch", async () => {
    const meter = await newMeter();
    meter.transactions(6);
    batches.length = 0;
    const [a, b] = await Promise.all([
      ingest.handleUplink(uplinkTopic(meter.id), meter.frame(1, 3)),
      ingest.handleUplink(uplinkTopic(meter.id), meter.frame(4, 6)),
    ]);
    assert.ok(a.ok && b.ok, 'both accepted, no replay refusal');
    assert.equal((a as Accepted).ack.seq, 3);
    assert.equal((b as Accepted).ack.seq, 6);
    assert.equal(batches.length, 2);
    assert.equal(await count('records', meter.id), 6);
  });

  it("keeps each meter's newest record on its row, and checks a continuing set against it", async () => {
    const meter = await newMeter();
    meter.transactions(9);
    assert.equal((await ingest.handleUplink(uplinkTopic(meter.id), meter.frame(1, 3))).ok, true);
    const newest = async () =>
      (
        await platform.db.query<{ last_record_seq: string; last_record_link: Uint8Array }>(
          'SELECT last_record_seq, last_record_link FROM meters WHERE id = $1',
          [meter.id],
        )
      ).rows[0];
    assert.equal(Number((await newest()).last_record_seq), 3);
    assert.deepEqual(Buffer.from((await newest()).last_record_link), Buffer.from(meter.link(3)));
    // Continuing from record 3 with a previous link that is not record 3's: refused, nothing stored.
    const forged = await ingest.handleUplink(
      uplinkTopic(meter.id),
      meter.frame(4, 6, { previous: meter.link(1) }),
    );
    assert.equal(forged.ok ? 'ok' : forged.reason, 'chain-broken');
    assert.equal(await count('records', meter.id), 3);
    assert.equal(Number((await newest()).last_record_seq), 3, 'a refused set moves nothing');
    assert.equal((await ingest.handleUplink(uplinkTopic(meter.id), meter.frame(4, 6))).ok, true);
    // A resend of stored records (duplicates) leaves the newest where it is.
    assert.equal((await ingest.handleUplink(uplinkTopic(meter.id), meter.frame(1, 3))).ok, true);
    assert.equal(Number((await newest()).last_record_seq), 6);
    assert.deepEqual(Buffer.from((await newest()).last_record_link), Buffer.from(meter.link(6)));
    assert.equal(await count('records', meter.id), 6);
  });

  it('stores operation and maintenance text verbatim, quotes, backslashes, braces and all', async () => {
    const meter = await newMeter();
    const awkward = [
      'quote " and \\ backslash, comma {brace} NULL',
      "single ' quote; £2.40 · Zone B ✓ 🅿️",
      '',
      'NULL',
    ];
    for (const text of awkward) meter.operation('awkward', text, null);
    meter.append({
      kind: RecordKind.Maintenance,
      seq: meter.nextSeq,
      time: 1_767_700_000,
      meterId: meter.id,
      data: { code: 'repair', detail: 'reader "B" replaced \\ tested' },
    });
    const outcome = await ingest.handleUplink(uplinkTopic(meter.id), meter.frame(1, meter.nextSeq - 1));
    assert.equal(outcome.ok, true, outcome.ok ? '' : outcome.detail);
    const ops = await platform.db.query<{ detail: string; card_token: string | null }>(
      'SELECT detail, card_token FROM operations WHERE meter_id = $1 ORDER BY seq',
      [meter.id],
    );
    assert.deepEqual(
      ops.rows.map((r) => r.detail),
      awkward,
    );
    assert.ok(ops.rows.every((r) => r.card_token === null));
    const kept = await platform.db.query<{ detail: string }>(
      'SELECT detail FROM maintenance WHERE meter_id = $1',
      [meter.id],
    );
    assert.equal(kept.rows[0].detail, 'reader "B" replaced \\ tested');
  });

  it('refuses every frame of a batch the database fails, as internal-error, and stores them when sent again', async () => {
    const meters = [await newMeter(), await newMeter()];
    for (const m of meters) m.transactions(3);
    const broken = new Ingest({
      db: {
        ...platform.db,
        kind: platform.db.kind,
        transaction: () => Promise.reject(new Error('Connection terminated unexpectedly')),
      },
      keystore: platform.keystore,
      logger: new CapturingLogger(),
    });
    const failed: IngestOutcome[] = await Promise.all(
      meters.map((m) => broken.handleUplink(uplinkTopic(m.id), m.frame(1, 3))),
    );
    await broken.close();
    assert.ok(failed.every((o) => !o.ok && o.reason === 'internal-error'));
    for (const m of meters) assert.equal(await count('records', m.id), 0);
    const again = await Promise.all(meters.map((m) => ingest.handleUplink(uplinkTopic(m.id), m.frame(1, 3))));
    assert.ok(again.every((o) => o.ok));
    for (const m of meters) assert.equal(await count('records', m.id), 3);
  });

  describe('uplink anti-replay window (64 frames, as the meter keeps for downlinks)', () => {
    const send = (meter: TestMeter, seq: number, from = 1, to = 3) =>
      ingest.handleUplink(uplinkTopic(meter.id), meter.frame(from, to, { seq }));
    const reason = (o: IngestOutcome) => (o.ok ? 'ok' : o.reason);

    it('accepts a frame overtaken by a later one once, and refuses it the second time', async () => {
      const meter = await newMeter();
      meter.transactions(3);
      assert.equal(reason(await send(meter, 5)), 'ok');
      const late = await send(meter, 4);
      assert.equal(reason(late), 'ok', 'frame 4 arrived after 5: in the window, not seen');
      assert.equal((late as Accepted).duplicates, 3);
      assert.equal(reason(await send(meter, 4)), 'replay');
      assert.equal(reason(await send(meter, 5)), 'replay');
      assert.equal(await count('records', meter.id), 3);
    });

    it('refuses a frame older than the window, and keeps the edge of the mask (bit 63) across a reload', async () => {
      const meter = await newMeter();
      meter.transactions(3);
      assert.equal(reason(await send(meter, 1)), 'ok');
      assert.equal(reason(await send(meter, 64)), 'ok'); // frame 1 is now bit 63: the sign bit of the column
      const row = await platform.db.query<{ seen: string }>(
        'SELECT uplink_seen::text AS seen FROM meters WHERE id = $1',
        [meter.id],
      );
      assert.ok(row.rows[0].seen.startsWith('-'), 'stored as a negative bigint');
      assert.equal(reason(await send(meter, 1)), 'replay');
      assert.equal(reason(await send(meter, 2)), 'ok', 'frame 2, never seen, 62 below');
      assert.equal(reason(await send(meter, 130)), 'ok');
      const stale = await send(meter, 66);
      assert.equal(reason(stale), 'replay');
      assert.match((stale as Refusal).detail, /older than the window/);
    });

    it('treats a meter from before the window (no mask) as having seen every frame up to its mark', async () => {
      const meter = await newMeter();
      meter.transactions(3);
      await platform.db.query('UPDATE meters SET last_uplink_seq = 10, uplink_seen = NULL WHERE id = $1', [
        meter.id,
      ]);
      assert.equal(reason(await send(meter, 9)), 'replay');
      assert.equal(reason(await send(meter, 11)), 'ok');
      assert.equal(reason(await send(meter, 10)), 'replay');
    });
  });
});
