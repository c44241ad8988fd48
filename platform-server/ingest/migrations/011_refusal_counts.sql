-- Every refused uplink is counted here, per meter and reason, whatever its frame type; refused_frames
-- keeps a sample of them (ingest/refusals.ts), pruned after a retention period, so a flood of junk
-- cannot grow either table without limit. meter_id NULL: no provisioned meter could be named (a
-- topic that is no meter's, a meter id not provisioned), all such refusals in one row per reason.
CREATE TABLE refusal_counts (
  meter_id bigint,
  reason text NOT NULL,
  refused bigint NOT NULL DEFAULT 0,
  first_at timestamptz NOT NULL DEFAULT now(),
  last_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE NULLS NOT DISTINCT (meter_id, reason)
);

-- The retention prune deletes by age.
CREATE INDEX refused_frames_received ON refused_frames (received_at);
