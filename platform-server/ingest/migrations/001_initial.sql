-- ParkLink platform: meters, their records (hash-chained, stored once per (meter, seq)), the
-- decoded transactions and operations, missing-record gaps and refused frames.

CREATE TABLE meters (
  id bigint PRIMARY KEY CHECK (id BETWEEN 0 AND 4294967295),
  name text NOT NULL,
  key_epoch bigint NOT NULL DEFAULT 1 CHECK (key_epoch BETWEEN 0 AND 4294967295),
  -- high-water mark of uplink frame sequence numbers: a frame that does not advance it is a replay
  last_uplink_seq bigint NOT NULL DEFAULT 0,
  -- last downlink frame sequence number allocated to this meter
  downlink_seq bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz
);

CREATE TABLE records (
  meter_id bigint NOT NULL REFERENCES meters (id),
  seq bigint NOT NULL CHECK (seq >= 1),
  kind smallint NOT NULL,
  recorded_at timestamptz NOT NULL,
  bytes bytea NOT NULL,
  -- chain link after this record: SHA-256(link(seq - 1) || bytes)
  link bytea NOT NULL CHECK (length(link) = 32),
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (meter_id, seq)
);

CREATE TABLE transactions (
  meter_id bigint NOT NULL,
  seq bigint NOT NULL,
  transaction_number bigint NOT NULL,
  card_number text NOT NULL,
  card_expiry text NOT NULL,
  card_type smallint NOT NULL,
  bay_id bigint NOT NULL,
  minutes integer NOT NULL,
  paid_from timestamptz NOT NULL,
  paid_until timestamptz NOT NULL,
  charge bigint NOT NULL,
  currency smallint NOT NULL,
  remaining_value bigint NOT NULL,
  PRIMARY KEY (meter_id, seq),
  FOREIGN KEY (meter_id, seq) REFERENCES records (meter_id, seq)
);

CREATE TABLE operations (
  meter_id bigint NOT NULL,
  seq bigint NOT NULL,
  code text NOT NULL,
  detail text NOT NULL,
  card_number text,
  PRIMARY KEY (meter_id, seq),
  FOREIGN KEY (meter_id, seq) REFERENCES records (meter_id, seq)
);

CREATE TABLE maintenance (
  meter_id bigint NOT NULL,
  seq bigint NOT NULL,
  code text NOT NULL,
  detail text NOT NULL,
  PRIMARY KEY (meter_id, seq),
  FOREIGN KEY (meter_id, seq) REFERENCES records (meter_id, seq)
);

-- Records the platform has not received: a set arrived starting after a hole in the sequence.
-- A row shrinks or disappears when the missing records arrive later.
CREATE TABLE record_gaps (
  meter_id bigint NOT NULL REFERENCES meters (id),
  from_seq bigint NOT NULL,
  to_seq bigint NOT NULL,
  detected_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (meter_id, from_seq),
  CHECK (from_seq >= 1 AND from_seq <= to_seq)
);

-- Frames ingest refused (audit trail; the frame's content is not kept).
CREATE TABLE refused_frames (
  id bigserial PRIMARY KEY,
  topic text NOT NULL,
  meter_id bigint,
  frame_seq bigint,
  reason text NOT NULL,
  detail text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX refused_frames_meter ON refused_frames (meter_id, received_at);
