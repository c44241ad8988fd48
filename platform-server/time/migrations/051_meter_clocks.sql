-- Each meter's clock as its last time request (uplink 0x08) showed it, and the platform's answer.
CREATE TABLE meter_clocks (
  meter_id bigint PRIMARY KEY REFERENCES meters (id),
  -- the platform's clock when it took the request (t2) and the meter's clock when it sent it (t1)
  requested_at timestamptz NOT NULL,
  meter_time_ms bigint NOT NULL,
  -- t2 - t1: how far the meter's clock was behind the platform's, plus the uplink's transit time
  apparent_offset_ms bigint NOT NULL,
  -- what the meter reported of itself: state (0 unset, 1 synchronised, 2 holdover), the source
  -- and offset of its last correction, when it last synchronised, its drift estimate
  state smallint NOT NULL CHECK (state BETWEEN 0 AND 2),
  source text,
  last_offset_ms bigint,
  synced_at timestamptz,
  drift_tenths_ppm integer,
  requests bigint NOT NULL DEFAULT 1,
  answered_at timestamptz
);
