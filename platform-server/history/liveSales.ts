// Today's sales totals kept as sales arrive (migration 114): a trigger on transactions adds every
// stored sale to live_sales under its city day, so the fleet overview and a report's open days read
// one row per meter instead of summing the day's sales. The totals are whole from live_sales_state's
// `since` in its zone; the platform makes that its own zone at start, and the roll-up drops the
// days it no longer needs.
import type { Queryable } from '../core/db';

/** The days before yesterday are dropped: by then the roll-up has them (history/rollup.ts). */
const DAYS_KEPT = 2;

export interface LiveSalesState {
  timeZone: string;
  /** The first city day (YYYY-MM-DD) whose totals are whole. */
  since: string;
}

export async function liveSalesState(db: Queryable): Promise<LiveSalesState | undefined> {
  const { rows } = await db.query<{ time_zone: string; since: string }>(
    "SELECT time_zone, to_char(since, 'YYYY-MM-DD') AS since FROM live_sales_state",
  );
  return rows[0] && { timeZone: rows[0].time_zone, since: rows[0].since };
}

/** The first day (YYYY-MM-DD) the totals are whole from in `timeZone`; undefined when kept in another. */
export async function liveSalesSince(db: Queryable, timeZone: string): Promise<string | undefined> {
  const state = await liveSalesState(db);
  return state?.timeZone === timeZone ? state.since : undefined;
}

/**
 * Makes the totals the city's, in `timeZone`: when they are kept in another zone (the migration
 * starts them in UTC), today is recomputed from the sales, holding inserts off while it is.
 */
export async function prepareLiveSales(
  db: Queryable,
  timeZone: string,
  now: number,
): Promise<LiveSalesState> {
  const state = await liveSalesState(db);
  if (state?.timeZone === timeZone) return state;
  const { rows } = await db.query<{ since: string }>(
    "SELECT to_char(parklink_live_sales_seed($1, $2), 'YYYY-MM-DD') AS since",
    [timeZone, new Date(now)],
  );
  return { timeZone, since: rows[0].since };
}

/** Drops the days before yesterday (in the totals' zone) and moves `since` past them. */
export async function pruneLiveSales(db: Queryable, now: number): Promise<void> {
  await db.query(
    `WITH bound AS (
       SELECT (($1::timestamptz AT TIME ZONE time_zone)::date - ($2::int - 1)) AS day FROM live_sales_state
     ), dropped AS (
       DELETE FROM live_sales WHERE day < (SELECT day FROM bound)
     )
     UPDATE live_sales_state SET since = greatest(since, (SELECT day FROM bound))`,
    [new Date(now), DAYS_KEPT],
  );
}
