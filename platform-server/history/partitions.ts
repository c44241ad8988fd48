// Records and sales partitioned by month (migration 110): the months ahead made before they start,
// rows that landed in the default partition moved into their month once it exists, and a month past
// the retention period archived to files and then detached and dropped whole. Dropping a partition
// frees its space at once: no DELETE of millions of rows, no VACUUM FULL.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { toHex } from '../../protocol/bytes';
import type { Database, Queryable } from '../core/db';
import { ConfigError } from '../core/errors';

/** The partitioned tables and the time each is partitioned by. */
export const PARTITIONED = Object.freeze([
  { table: 'records', key: 'recorded_at' },
  { table: 'transactions', key: 'recorded_at' },
] as const);

/** Records are kept at least seven years for audit. */
export const MIN_RETENTION_MONTHS = 84;
export const DEFAULT_RETENTION_MONTHS = 96;
/** Months made ahead of the current one. */
export const MONTHS_AHEAD = 3;
/**
 * Arbitrary constant identifying partition upkeep among the database's advisory locks: instances
 * starting or running their daily upkeep at once make and drop each partition once.
 */
const UPKEEP_LOCK = 0x504c4854; // "PLHT"
/** Rows this many rows at a time from a partition to its archive file. */
const ARCHIVE_CHUNK = 5000;

const MONTH_NAME = /_p(\d{4})(\d{2})$/;

/** The first instant (UTC) of the month `at` falls in, `offset` months on. */
export function monthStart(at: Date | number, offset = 0): Date {
  const d = new Date(at);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + offset, 1));
}

export interface MonthPartition {
  table: string;
  name: string;
  /** First instant of the month (UTC). */
  month: Date;
}

/** The monthly partitions of `table`, oldest first. */
export async function monthPartitions(db: Queryable, table: string): Promise<MonthPartition[]> {
  const { rows } = await db.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i
       JOIN pg_class c ON c.oid = i.inhrelid
       JOIN pg_class p ON p.oid = i.inhparent
      WHERE p.relname = $1 AND p.relnamespace = current_schema()::regnamespace`,
    [table],
  );
  return rows
    .flatMap(({ name }) => {
      const m = MONTH_NAME.exec(name);
      return m ? [{ table, name, month: new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, 1)) }] : [];
    })
    .sort((a, b) => a.month.getTime() - b.month.getTime());
}

/**
 * Makes this month's partition and the next MONTHS_AHEAD, and one for every month (within the
 * retention period) that has rows in a default partition, moving them out of it. Returns the
 * partitions made.
 */
export async function preparePartitions(
  db: Database,
  now: number,
  retentionMonths = DEFAULT_RETENTION_MONTHS,
): Promise<string[]> {
  const made: string[] = [];
  for (const { table, key } of PARTITIONED) {
    const have = new Set((await monthPartitions(db, table)).map((p) => p.name));
    const months = new Set<number>();
    for (let i = 0; i <= MONTHS_AHEAD; i++) months.add(monthStart(now, i).getTime());
    const strays = await db.query<{ month: Date }>(
      `SELECT DISTINCT date_trunc('month', ${key} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS month
         FROM ${table}_default WHERE ${key} >= $1 AND ${key} < $2`,
      [monthStart(now, -retentionMonths), monthStart(now, MONTHS_AHEAD + 1)],
    );
    for (const { month } of strays.rows) months.add(new Date(month).getTime());
    for (const month of [...months].sort((a, b) => a - b)) {
      const name = partitionName(table, new Date(month));
      if (have.has(name)) continue;
      await db.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1)', [UPKEEP_LOCK]);
        // Made by another instance while this one waited: the function then returns its name.
        await tx.query('SELECT parklink_month_partition($1, $2, $3)', [table, key, new Date(month)]);
      });
      made.push(name);
    }
  }
  return made;
}

export function partitionName(table: string, month: Date): string {
  return `${table}_p${month.getUTCFullYear()}${String(month.getUTCMonth() + 1).padStart(2, '0')}`;
}

export interface ArchivedMonth {
  month: string;
  /** The archive's files, each with its SHA-256 and row count. */
  files: { file: string; sha256: string; rows: number }[];
  /** Per meter, its last record in the month: where the chain that stays in the database resumes. */
  chainAnchors: { meterId: number; seq: number; link: string }[];
}

/**
 * Archives every month older than `retentionMonths` to `archiveDir` (gzipped JSON lines of its
 * records, sales, operations and maintenance rows, with a manifest of SHA-256 sums and each meter's
 * last link), then in one transaction deletes the month's operations and maintenance rows and
 * detaches and drops its partitions. A month is dropped only after its files are written and synced.
 */
export async function archiveExpired(
  db: Database,
  options: { now: number; retentionMonths: number; archiveDir: string },
): Promise<ArchivedMonth[]> {
  if (options.retentionMonths < MIN_RETENTION_MONTHS)
    throw new ConfigError(
      `records are kept at least ${MIN_RETENTION_MONTHS} months (seven years); ${options.retentionMonths} was asked`,
    );
  const cutoff = monthStart(options.now, -options.retentionMonths).getTime();
  const expired = (await monthPartitions(db, 'records')).filter((p) => p.month.getTime() < cutoff);
  const done: ArchivedMonth[] = [];
  for (const partition of expired) done.push(await archiveMonth(db, partition, options.archiveDir));
  return done;
}

async function archiveMonth(
  db: Database,
  records: MonthPartition,
  archiveDir: string,
): Promise<ArchivedMonth> {
  const label = partitionName('', records.month).slice(2);
  const dir = join(archiveDir, label);
  await mkdir(dir, { recursive: true });
  const transactions = partitionName('transactions', records.month);
  const hasTransactions =
    (await db.query('SELECT 1 FROM pg_class WHERE relname = $1', [transactions])).rows.length > 0;
  const ofMonth = `EXISTS (SELECT 1 FROM ${records.name} r WHERE r.meter_id = x.meter_id AND r.seq = x.seq)`;
  const files = [
    await dump(db, dir, 'records', records.name, 'true'),
    ...(hasTransactions ? [await dump(db, dir, 'transactions', transactions, 'true')] : []),
    await dump(db, dir, 'operations', 'operations', ofMonth),
    await dump(db, dir, 'maintenance', 'maintenance', ofMonth),
  ];
  const anchors = await db.query<{ meter_id: number; seq: number; link: Uint8Array }>(
    `SELECT DISTINCT ON (meter_id) meter_id, seq, link FROM ${records.name} ORDER BY meter_id, seq DESC`,
  );
  const archived: ArchivedMonth = {
    month: `${label.slice(0, 4)}-${label.slice(4)}`,
    files,
    chainAnchors: anchors.rows.map((r) => ({
      meterId: Number(r.meter_id),
      seq: Number(r.seq),
      link: toHex(r.link),
    })),
  };
  await writeFile(join(dir, 'manifest.json'), `${JSON.stringify(archived, null, 2)}\n`, { flush: true });
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [UPKEEP_LOCK]);
    // Another instance archived and dropped the month while this one wrote the same files.
    const still = await tx.query<{ here: boolean }>('SELECT to_regclass($1) IS NOT NULL AS here', [
      records.name,
    ]);
    if (!still.rows[0].here) return;
    await tx.query(`DELETE FROM operations x WHERE ${ofMonth}`);
    await tx.query(`DELETE FROM maintenance x WHERE ${ofMonth}`);
    await tx.query(`ALTER TABLE records DETACH PARTITION ${records.name}`);
    await tx.query(`DROP TABLE ${records.name}`);
    if (hasTransactions) {
      await tx.query(`ALTER TABLE transactions DETACH PARTITION ${transactions}`);
      await tx.query(`DROP TABLE ${transactions}`);
    }
  });
  return archived;
}

/**
 * The rows of `table` (as `x`) that `where` keeps, as gzipped JSON lines (bytea as \\x hex), in
 * (meter, seq) order, a chunk at a time from where the last one ended.
 */
async function dump(
  db: Queryable,
  dir: string,
  name: string,
  table: string,
  where: string,
): Promise<{ file: string; sha256: string; rows: number }> {
  const file = `${name}.jsonl.gz`;
  const hash = createHash('sha256');
  let rows = 0;
  async function* lines() {
    let after: [number, number] = [-1, 0];
    for (;;) {
      const chunk = await db.query<Record<string, unknown> & { meter_id: number; seq: number }>(
        `SELECT * FROM ${table} x WHERE ${where} AND (x.meter_id, x.seq) > ($1, $2)
          ORDER BY x.meter_id, x.seq LIMIT ${ARCHIVE_CHUNK}`,
        after,
      );
      for (const row of chunk.rows) {
        rows++;
        yield `${JSON.stringify(row, (_k, v) => (v instanceof Uint8Array ? `\\x${toHex(v)}` : v))}\n`;
      }
      if (chunk.rows.length < ARCHIVE_CHUNK) return;
      const last = chunk.rows[chunk.rows.length - 1];
      after = [Number(last.meter_id), Number(last.seq)];
    }
  }
  const partial = join(dir, `${file}.partial`);
  const gzip = createGzip();
  gzip.on('data', (data: Buffer) => hash.update(data));
  await pipeline(lines(), gzip, createWriteStream(partial, { flush: true }));
  await rename(partial, join(dir, file));
  return { file, sha256: hash.digest('hex'), rows };
}
