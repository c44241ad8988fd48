-- Records and their decoded sales grow for years (kept at least seven for audit): both become
-- partitioned by month of the time the meter recorded them (a sale now carries its record's time,
-- so reports by day read one table), so a report touches only its months and
-- an expired month leaves as a whole partition (archived, detached and dropped: no DELETE of
-- millions of rows, no VACUUM FULL). The partition key joins the primary keys; a record's
-- (meter, seq) stays unique because ingest looks up the held records of a meter under its row lock
-- before writing, and the same record sent twice carries the same time, so the key still refuses it.
-- A record whose time falls in no monthly partition (a meter whose clock was never set) lands in the
-- default partition; parklink_month_partition moves such rows when their month's partition is made.

CREATE FUNCTION parklink_month_partition(parent text, key text, month timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  start timestamptz := date_trunc('month', month AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  stop timestamptz := start + interval '1 month';
  child text := parent || '_p' || to_char(start AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
  IF to_regclass(child) IS NOT NULL THEN
    RETURN child;
  END IF;
  EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', child, parent);
  EXECUTE format(
    'WITH moved AS (DELETE FROM %I WHERE %I >= %L AND %I < %L RETURNING *) INSERT INTO %I SELECT * FROM moved',
    parent || '_default', key, start, key, stop, child);
  EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, child, start, stop);
  RETURN child;
END $$;

ALTER TABLE transactions DROP CONSTRAINT transactions_meter_id_seq_fkey;
ALTER TABLE operations DROP CONSTRAINT operations_meter_id_seq_fkey;
ALTER TABLE maintenance DROP CONSTRAINT maintenance_meter_id_seq_fkey;

ALTER TABLE records RENAME TO records_unpartitioned;
ALTER INDEX records_pkey RENAME TO records_unpartitioned_pkey;
ALTER INDEX records_by_time RENAME TO records_unpartitioned_by_time;
CREATE TABLE records (LIKE records_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
  PARTITION BY RANGE (recorded_at);
ALTER TABLE records ADD PRIMARY KEY (meter_id, seq, recorded_at);
ALTER TABLE records ADD FOREIGN KEY (meter_id) REFERENCES meters (id);
CREATE INDEX records_by_time ON records (recorded_at, meter_id);
CREATE TABLE records_default PARTITION OF records DEFAULT;

ALTER TABLE transactions ADD COLUMN recorded_at timestamptz;
UPDATE transactions t SET recorded_at = r.recorded_at FROM records_unpartitioned r
 WHERE r.meter_id = t.meter_id AND r.seq = t.seq;
-- A sale whose record is missing (none should be: ingest writes both in one statement) keeps its time.
UPDATE transactions SET recorded_at = paid_from WHERE recorded_at IS NULL;
ALTER TABLE transactions ALTER COLUMN recorded_at SET NOT NULL;
ALTER TABLE transactions RENAME TO transactions_unpartitioned;
ALTER INDEX transactions_pkey RENAME TO transactions_unpartitioned_pkey;
CREATE TABLE transactions (LIKE transactions_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
  PARTITION BY RANGE (recorded_at);
ALTER TABLE transactions ADD PRIMARY KEY (meter_id, seq, recorded_at);
CREATE INDEX transactions_by_time ON transactions (recorded_at, meter_id);
CREATE TABLE transactions_default PARTITION OF transactions DEFAULT;

-- The months the stored rows cover (at most ten years back), and this one and three ahead.
DO $$
DECLARE
  m timestamptz;
BEGIN
  FOR m IN
    SELECT DISTINCT date_trunc('month', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM (
      SELECT recorded_at AS t FROM records_unpartitioned
      UNION ALL SELECT recorded_at FROM transactions_unpartitioned
      UNION ALL SELECT now() + make_interval(months => n) FROM generate_series(0, 3) AS n
    ) AS times
    WHERE t > now() - interval '10 years' AND t < now() + interval '4 months'
  LOOP
    PERFORM parklink_month_partition('records', 'recorded_at', m);
    PERFORM parklink_month_partition('transactions', 'recorded_at', m);
  END LOOP;
END $$;

INSERT INTO records SELECT * FROM records_unpartitioned;
INSERT INTO transactions SELECT * FROM transactions_unpartitioned;
DROP TABLE records_unpartitioned;
DROP TABLE transactions_unpartitioned;
