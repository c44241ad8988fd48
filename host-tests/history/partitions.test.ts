// Records and sales by month: rows land in their month's partition (or the default one, moved once
// their month is made), a record sent twice is still stored once, a month past the retention period
// is archived to files whose sums and chain anchors check and is then dropped whole, a report's
// time range reads only its months, and an existing database is converted with its rows.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { openDatabase } from '../../platform-server/core/db';
import { ConfigError } from '../../platform-server/core/errors';
import { loadMigrations, migrate } from '../../platform-server/core/migrations';
import {
  archiveExpired,
  monthPartitions,
  monthStart,
  partitionName,
  preparePartitions,
} from '../../platform-server/history/partitions';
import type { Platform } from '../../platform-server/platform';
import { toHex } from '../../protocol/bytes';
import { uplinkTopic } from '../../protocol/topics';
import { forEachBackend, randomMeterId, startPlatform, TestMeter } from '../../sim/fleet/platform';

const seconds = (d: Date) => Math.floor(d.getTime() / 1000);

forEachBackend('records and sales by month', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let archiveDir: string;
  const now = Date.now();
  const thisMonth = monthStart(now);

  before(async () => {
    ({ platform, drop } = await startPlatform(backend));
    archiveDir = await mkdtemp(join(tmpdir(), 'parklink-archive-'));
  });
  after(async () => {
    await platform?.close();
    await drop?.();
    await rm(archiveDir, { recursive: true, force: true });
  });

  async function meter(): Promise<TestMeter> {
    const id = randomMeterId();
    return new TestMeter(id, await platform.provisionMeter(id, `month ${id}`));
  }

  async function send(m: TestMeter, from: number, to: number) {
    const outcome = await platform.ingest.handleUplink(uplinkTopic(m.id), m.frame(from, to));
    assert.equal(outcome.ok, true, JSON.stringify(outcome));
    return outcome;
  }

  const partitionOf = async (table: string, meterId: number, seq: number) =>
    (
      await platform.db.query<{ p: string }>(
        `SELECT tableoid::regclass::text AS p FROM ${table} WHERE meter_id = $1 AND seq = $2`,
        [meterId, seq],
      )
    ).rows.map((r) => r.p);

  it('files each record and sale under its month, and a stray month in the default until its partition is made', async () => {
    const m = await meter();
    const stray = new Date(Date.UTC(2019, 2, 14, 10)); // March 2019: no partition yet
    m.transaction({}, seconds(stray));
    m.transaction({}, seconds(thisMonth) + 3600);
    m.transaction({}, seconds(thisMonth) + 7200);
    await send(m, 1, 3);
    assert.deepEqual(await partitionOf('records', m.id, 1), ['records_default']);
    assert.deepEqual(await partitionOf('transactions', m.id, 1), ['transactions_default']);
    assert.deepEqual(await partitionOf('records', m.id, 2), [partitionName('records', thisMonth)]);
    assert.deepEqual(await partitionOf('transactions', m.id, 3), [partitionName('transactions', thisMonth)]);

    const made = await preparePartitions(platform.db, now);
    assert.ok(made.includes('records_p201903') && made.includes('transactions_p201903'), made.join());
    assert.deepEqual(await partitionOf('records', m.id, 1), ['records_p201903']);
    assert.deepEqual(await partitionOf('transactions', m.id, 1), ['transactions_p201903']);
    assert.deepEqual(await preparePartitions(platform.db, now), [], 'nothing more to make');
  });

  it('stores a record sent again once, across partitions, and the key refuses a copy', async () => {
    const m = await meter();
    m.transaction({}, seconds(new Date(Date.UTC(2019, 2, 20))));
    m.transaction({}, seconds(thisMonth) + 60);
    await send(m, 1, 2);
    const again = await send(m, 1, 2);
    assert.ok(again.ok && 'stored' in again);
    const held = await platform.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM records WHERE meter_id = $1',
      [m.id],
    );
    assert.equal(held.rows[0].n, 2);
    await assert.rejects(
      platform.db.query(
        `INSERT INTO records (meter_id, seq, kind, recorded_at, bytes, link)
         SELECT meter_id, seq, kind, recorded_at, bytes, link FROM records WHERE meter_id = $1 AND seq = 2`,
        [m.id],
      ),
      /duplicate key|unique/,
    );
  });

  it('archives a month past the retention period to checked files, then drops it; newer months stay', async () => {
    const m = await meter();
    const old = new Date(Date.UTC(2016, 4, 3, 8)); // May 2016: past 96 months
    await platform.db.query("SELECT parklink_month_partition('records', 'recorded_at', $1)", [old]);
    await platform.db.query("SELECT parklink_month_partition('transactions', 'recorded_at', $1)", [old]);
    m.transaction({}, seconds(old));
    m.operation('card-refused', 'blacklisted', '6280000000000099', seconds(old) + 60);
    m.transaction({}, seconds(old) + 120);
    m.transaction({}, seconds(thisMonth) + 60);
    await send(m, 1, 4);

    await assert.rejects(
      archiveExpired(platform.db, { now, retentionMonths: 60, archiveDir }),
      (e: unknown) => e instanceof ConfigError && /seven years/.test((e as Error).message),
    );
    const archived = await archiveExpired(platform.db, { now, retentionMonths: 96, archiveDir });
    const may = archived.find((a) => a.month === '2016-05');
    assert.ok(may, JSON.stringify(archived.map((a) => a.month)));
    assert.ok(!archived.some((a) => a.month === '2019-03'), 'a month inside the period is kept');

    const manifest = JSON.parse(await readFile(join(archiveDir, '201605', 'manifest.json'), 'utf8'));
    assert.deepEqual(manifest, may);
    const rowsOf = async (name: string) => {
      const entry = may.files.find((f) => f.file === `${name}.jsonl.gz`);
      assert.ok(entry, name);
      const gz = await readFile(join(archiveDir, '201605', entry.file));
      assert.equal(createHash('sha256').update(gz).digest('hex'), entry.sha256);
      const rows = gunzipSync(gz)
        .toString('utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l));
      assert.equal(rows.length, entry.rows);
      return rows.filter((r) => Number(r.meter_id) === m.id);
    };
    assert.deepEqual(
      (await rowsOf('records')).map((r) => Number(r.seq)),
      [1, 2, 3],
    );
    assert.equal((await rowsOf('records'))[2].link, `\\x${toHex(m.links[2])}`);
    assert.deepEqual(
      (await rowsOf('transactions')).map((r) => Number(r.seq)),
      [1, 3],
    );
    assert.deepEqual(
      (await rowsOf('operations')).map((r) => Number(r.seq)),
      [2],
    );
    assert.deepEqual(
      may.chainAnchors.find((a) => a.meterId === m.id),
      { meterId: m.id, seq: 3, link: toHex(m.links[2]) },
    );

    const left = await platform.db.query<{ seq: number }>(
      'SELECT seq FROM records WHERE meter_id = $1 ORDER BY seq',
      [m.id],
    );
    assert.deepEqual(
      left.rows.map((r) => Number(r.seq)),
      [4],
    );
    const ops = await platform.db.query('SELECT 1 FROM operations WHERE meter_id = $1', [m.id]);
    assert.equal(ops.rows.length, 0);
    const names = (await monthPartitions(platform.db, 'records')).map((p) => p.name);
    assert.ok(!names.includes('records_p201605'));
    assert.ok(names.includes(partitionName('records', thisMonth)) && names.includes('records_p201903'));
  });

  it("reads only a report's months", async () => {
    const plan = await platform.db.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN SELECT sum(charge) FROM transactions WHERE recorded_at >= $1 AND recorded_at < $2`,
      [thisMonth, monthStart(now, 1)],
    );
    const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
    const scanned = [...text.matchAll(/transactions_(p\d{6}|default)/g)].map((x) => x[0]);
    // The month's partition covers the range whole: not even the default partition is read.
    assert.deepEqual([...new Set(scanned)], [partitionName('transactions', thisMonth)], text);
  });
});

describe('records by month: converting a database that has rows (PGlite)', () => {
  it('moves every record and sale into its month, keeping each row', async () => {
    const db = await openDatabase({});
    try {
      const all = await loadMigrations();
      await migrate(
        db,
        all.filter((m) => m.version < 110),
      );
      await db.query("INSERT INTO meters (id, name) VALUES (42, 'old')");
      for (const [seq, at] of [
        [1, '2024-01-31T23:59:59Z'],
        [2, '2024-02-01T00:00:00Z'],
      ] as const) {
        await db.query(
          `INSERT INTO records (meter_id, seq, kind, recorded_at, bytes, link) VALUES (42, $1, 1, $2, '\\x01', $3)`,
          [seq, at, new Uint8Array(32).fill(seq)],
        );
        await db.query(
          `INSERT INTO transactions (meter_id, seq, transaction_number, card_token, card_last4, card_expiry, card_type,
             bay_id, minutes, paid_from, paid_until, charge, currency, remaining_value)
           VALUES (42, $1, $1, $2, '0017', '2812', 1, 1, 30, $3::timestamptz + interval '1 month', $3, 120, 826, 0)`,
          [seq, 'ab'.repeat(16), at],
        );
      }
      await migrate(db, all);
      const rows = await db.query<{ seq: number; p: string }>(
        'SELECT seq, tableoid::regclass::text AS p FROM records ORDER BY seq',
      );
      assert.deepEqual(
        rows.rows.map((r) => [Number(r.seq), r.p]),
        [
          [1, 'records_p202401'],
          [2, 'records_p202402'],
        ],
      );
      const sales = await db.query<{ p: string }>(
        'SELECT tableoid::regclass::text AS p FROM transactions ORDER BY seq',
      );
      assert.deepEqual(
        sales.rows.map((r) => r.p),
        ['transactions_p202401', 'transactions_p202402'],
      );
    } finally {
      await db.close();
    }
  });
});
