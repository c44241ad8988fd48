// Daily sales totals (migration 112): per closed city day, meter, card type and currency, the count,
// minutes and amount of the card sales, so a report over days reads a few rows per meter instead of
// every sale. A day is rolled up once it has closed; a sale of a rolled-up day arriving later marks
// the day stale (ingest/store.ts) and the next roll-up does it again. Reports read transactions for
// every day that is not rolled up and fresh (reporting/service.ts), so the totals never lag the sales.
import type { Database } from '../core/db';
import { pruneLiveSales } from './liveSales';
import { monthPartitions } from './partitions';

/**
 * A day is rolled up only this long after it closed: a batch that ingest began before midnight, or
 * an instance whose clock is a little behind, has then committed what it took for today.
 */
export const ROLLUP_GRACE_MS = 15 * 60 * 1000;
/** Arbitrary constant identifying the roll-up among the advisory locks: one instance at a time. */
const ROLLUP_LOCK = 0x504c5253; // "PLRS"

/**
 * Rolls up every closed day (in `timeZone`, ending at least ROLLUP_GRACE_MS before `now`) that is
 * not rolled up yet, is stale, or was rolled up in another zone: from the first day with sales in
 * the database's oldest month partition, and any day ingest marked. Each day in its own
 * transaction. Returns the days this call rolled up (YYYY-MM-DD), oldest first.
 */
export async function rollUpDays(
  db: Database,
  timeZone: string,
  now: number,
  options: { signal?: AbortSignal } = {},
): Promise<string[]> {
  const oldest = (await monthPartitions(db, 'transactions'))[0];
  const cutoff = new Date(now - ROLLUP_GRACE_MS);
  const { rows } = await db.query<{ day: string }>(
    `WITH first AS (
       SELECT (min(recorded_at) AT TIME ZONE $2)::date AS day FROM transactions WHERE recorded_at >= $3
     ), closed AS (
       SELECT ($1::timestamptz AT TIME ZONE $2)::date AS day
     )
     SELECT to_char(day, 'YYYY-MM-DD') AS day FROM (
       (SELECT d::date AS day FROM first, closed, generate_series(first.day, closed.day - 1, interval '1 day') AS d
        EXCEPT
        SELECT day FROM daily_sales_days WHERE rolled_up_at IS NOT NULL AND NOT stale AND time_zone = $2)
       UNION
       SELECT s.day FROM daily_sales_days s, closed
        WHERE (s.stale OR s.rolled_up_at IS NULL OR s.time_zone <> $2) AND s.day < closed.day
     ) AS pending
     ORDER BY day`,
    [cutoff, timeZone, oldest ? oldest.month : new Date(8.64e15)],
  );
  const done: string[] = [];
  for (const { day } of rows) {
    if (options.signal?.aborted) break;
    if (await rollUpDay(db, timeZone, day)) done.push(day);
  }
  await pruneLiveSales(db, now);
  return done;
}

/** One day's totals computed again from its sales; false when another instance just did it. */
async function rollUpDay(db: Database, timeZone: string, day: string): Promise<boolean> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [ROLLUP_LOCK]);
    // Claims the day's row (held until the commit) and checks it still needs doing. A batch that
    // marks the day stale meanwhile waits for this commit and then marks it again; one that marked it
    // before is committed, so the sales it brought are in what this reads.
    const claimed = await tx.query(
      `INSERT INTO daily_sales_days AS d (day, time_zone, stale) VALUES ($1::date, $2, false)
       ON CONFLICT (day) DO UPDATE SET stale = false, time_zone = $2
        WHERE d.stale OR d.rolled_up_at IS NULL OR d.time_zone <> $2
       RETURNING day`,
      [day, timeZone],
    );
    if (claimed.rows.length === 0) return false;
    await tx.query('DELETE FROM daily_sales WHERE day = $1::date', [day]);
    // The day's bounds as a range on recorded_at: only its month partitions are read.
    await tx.query(
      `INSERT INTO daily_sales (day, meter_id, card_type, currency, payments, minutes, amount)
       SELECT $1::date, meter_id, card_type, currency, count(*), sum(minutes), sum(charge)
         FROM transactions
        WHERE recorded_at >= ($1::date::timestamp AT TIME ZONE $2)
          AND recorded_at < (($1::date + 1)::timestamp AT TIME ZONE $2)
        GROUP BY meter_id, card_type, currency`,
      [day, timeZone],
    );
    // The same day per area, from the rows just written: a week per area reads these.
    await tx.query('DELETE FROM daily_area_sales WHERE day = $1::date', [day]);
    await tx.query(
      `INSERT INTO daily_area_sales (day, area, card_type, currency, payments, minutes, amount)
       SELECT s.day, m.area, s.card_type, s.currency, sum(s.payments), sum(s.minutes), sum(s.amount)
         FROM daily_sales s JOIN meters m ON m.id = s.meter_id
        WHERE s.day = $1::date
        GROUP BY s.day, m.area, s.card_type, s.currency`,
      [day],
    );
    await tx.query('UPDATE daily_sales_days SET rolled_up_at = now() WHERE day = $1::date', [day]);
    return true;
  });
}
