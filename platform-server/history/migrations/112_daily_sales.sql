-- Daily sales totals (history/rollup.ts): a whole-city report over days summed every sale of those
-- days (270,000 a day in a 10,000-meter city); it now reads one row per meter, card type and currency
-- for each closed city day, and only today, and days not yet (or no longer) rolled up, from
-- transactions. Days are the city's (the reporting time zone), so a day is rolled up in a zone and
-- stays valid only in that zone.
CREATE TABLE daily_sales (
  day date NOT NULL,
  meter_id bigint NOT NULL,
  card_type smallint NOT NULL,
  currency smallint NOT NULL,
  payments bigint NOT NULL,
  minutes bigint NOT NULL,
  amount bigint NOT NULL,
  PRIMARY KEY (day, meter_id, card_type, currency)
);

-- One row per day that is rolled up or waits for it. Ingest marks a day stale when a sale of it
-- arrives after it closed (a meter uploading late, a handheld collection): reports then read that day
-- from transactions until the next roll-up recomputes it. A row with rolled_up_at NULL was marked
-- before it was ever rolled up.
CREATE TABLE daily_sales_days (
  day date PRIMARY KEY,
  time_zone text NOT NULL,
  rolled_up_at timestamptz,
  stale boolean NOT NULL DEFAULT false
);

-- The days to do, found without reading the done ones.
CREATE INDEX daily_sales_days_pending ON daily_sales_days (day) WHERE stale OR rolled_up_at IS NULL;
