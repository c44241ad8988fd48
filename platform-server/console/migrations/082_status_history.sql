-- Every status report kept as a few figures for the meter page's charts (meter_status keeps only
-- the latest report): battery of the pack in use, temperature, occupied bays, open faults.
CREATE TABLE meter_status_history (
  meter_id bigint NOT NULL REFERENCES meters (id),
  reported_at timestamptz NOT NULL,
  battery_percent real,
  millivolts integer,
  temperature real,
  occupied_bays integer NOT NULL,
  faults integer NOT NULL,
  PRIMARY KEY (meter_id, reported_at)
);
-- Today's revenue per meter reads the day's transactions of every meter.
CREATE INDEX IF NOT EXISTS records_by_time ON records (recorded_at, meter_id);
