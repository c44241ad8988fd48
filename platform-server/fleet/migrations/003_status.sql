-- Issue 7: each meter's latest status report (battery, sensors, module states, faults, fan), its
-- bays' occupancy, and the events it sent (alarms raised and cleared, faults, repairs, power).

CREATE TABLE meter_status (
  meter_id bigint PRIMARY KEY REFERENCES meters (id),
  reported_at timestamptz NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  battery jsonb NOT NULL,
  sensors jsonb NOT NULL,
  modules jsonb NOT NULL,
  faults jsonb NOT NULL,
  fan boolean NOT NULL,
  settings_version bigint NOT NULL
);

CREATE TABLE bay_occupancy (
  meter_id bigint NOT NULL REFERENCES meters (id),
  bay_id bigint NOT NULL,
  occupied boolean NOT NULL,
  -- when the vehicle arrived (occupied) or the bay was last seen changing
  since timestamptz,
  paid boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (meter_id, bay_id)
);

CREATE TABLE meter_events (
  id bigserial PRIMARY KEY,
  meter_id bigint NOT NULL REFERENCES meters (id),
  frame_seq bigint NOT NULL,
  occurred_at timestamptz NOT NULL,
  event text NOT NULL,
  severity text NOT NULL CHECK (severity IN ('alarm', 'warning', 'info', 'fault')),
  active boolean NOT NULL,
  value double precision,
  bay_id bigint,
  detail text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (meter_id, frame_seq)
);

CREATE INDEX meter_events_meter ON meter_events (meter_id, occurred_at DESC);

-- High-water mark of 0x04 uplink frame sequence numbers per meter (replays are refused).
CREATE TABLE status_frames (
  meter_id bigint PRIMARY KEY REFERENCES meters (id),
  last_frame_seq bigint NOT NULL
);
