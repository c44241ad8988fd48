-- Today's sales totals kept as the sales arrive: the console's fleet overview showed each meter's
-- revenue today by summing the day's sales on every refresh (a hundred thousand rows by the evening
-- in a 10,000-meter city), and a report's open days did the same. A statement trigger on
-- transactions adds each inserted statement's sales, summed per city day, meter, card type and
-- currency, to live_sales in the inserting transaction, so the totals commit or roll back with the
-- sales and are exact. Ingest holds the meter's row lock while it stores a set, so two statements never
-- add to the same meter's row at once.
--
-- The days are the city's (the reporting time zone), kept in live_sales_state with the first day the
-- totals are whole from: parklink_live_sales_seed recomputes today from the sales, with inserts held
-- off, when the table is made and whenever the platform starts in another zone. The roll-up
-- (history/rollup.ts) drops the days it no longer needs and moves `since` with them.
-- The same rows as daily_sales (migration 112), for the days still open.
CREATE TABLE live_sales (LIKE daily_sales INCLUDING ALL) WITH (fillfactor = 70);
-- A meter's row is updated with each set it uploads: room on its page keeps those updates HOT (no
-- new index entry, the old version pruned in place).

CREATE TABLE live_sales_state (
  single boolean PRIMARY KEY DEFAULT true CHECK (single),
  time_zone text NOT NULL,
  -- Every day from this one on is whole in live_sales (in time_zone).
  since date NOT NULL
);

CREATE FUNCTION parklink_live_sales_add() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  zone text;
BEGIN
  SELECT time_zone INTO zone FROM live_sales_state;
  IF zone IS NULL THEN
    RETURN NULL;
  END IF;
  INSERT INTO live_sales AS l (day, meter_id, card_type, currency, payments, minutes, amount)
  SELECT (recorded_at AT TIME ZONE zone)::date, meter_id, card_type, currency, count(*), sum(minutes), sum(charge)
    FROM added
   GROUP BY 1, meter_id, card_type, currency
  ON CONFLICT (day, meter_id, card_type, currency) DO UPDATE
    SET payments = l.payments + excluded.payments,
        minutes = l.minutes + excluded.minutes,
        amount = l.amount + excluded.amount;
  RETURN NULL;
END $$;

-- On the partitioned parent: a row moved between partitions (parklink_month_partition inserts into
-- the child) is not a new sale and is not counted again.
CREATE TRIGGER live_sales_add AFTER INSERT ON transactions
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION parklink_live_sales_add();

-- Today (in `zone`, at `at`) recomputed from the sales and every other day dropped. The share lock
-- waits for the transactions inserting sales to commit and holds new ones off until this commits, so
-- nothing is counted twice or missed. Returns the day the totals are whole from.
CREATE FUNCTION parklink_live_sales_seed(zone text, at timestamptz) RETURNS date
LANGUAGE plpgsql AS $$
DECLARE
  today date := (at AT TIME ZONE zone)::date;
BEGIN
  LOCK TABLE transactions IN SHARE MODE;
  DELETE FROM live_sales;
  INSERT INTO live_sales (day, meter_id, card_type, currency, payments, minutes, amount)
  SELECT (recorded_at AT TIME ZONE zone)::date, meter_id, card_type, currency, count(*), sum(minutes), sum(charge)
    FROM transactions
   WHERE recorded_at >= (today::timestamp AT TIME ZONE zone)
   GROUP BY 1, meter_id, card_type, currency;
  INSERT INTO live_sales_state (time_zone, since) VALUES (zone, today)
  ON CONFLICT (single) DO UPDATE SET time_zone = zone, since = today;
  RETURN today;
END $$;

SELECT parklink_live_sales_seed('UTC', now());
