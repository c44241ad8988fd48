-- Firmware registry: signed images (the signature is checked before the row is written), rollouts
-- in stages, each meter's state in a rollout and its history.
CREATE TABLE firmware_images (
  id bigserial PRIMARY KEY,
  version bigint NOT NULL CHECK (version BETWEEN 1 AND 4294967295),
  target text NOT NULL CHECK (target ~ '^[a-z0-9-]{1,32}$'),
  length bigint NOT NULL CHECK (length > 0),
  sha256 bytea NOT NULL CHECK (length(sha256) = 32),
  signature bytea NOT NULL CHECK (length(signature) = 64),
  notes text NOT NULL DEFAULT '',
  image bytea NOT NULL,
  uploaded_by text NOT NULL,
  uploaded_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (target, version)
);

CREATE TABLE firmware_rollouts (
  id bigserial PRIMARY KEY,
  image_id bigint NOT NULL REFERENCES firmware_images (id),
  -- running, paused, halted (failure rate passed the threshold), aborted, done
  state text NOT NULL CHECK (state IN ('running', 'paused', 'halted', 'aborted', 'done')),
  stage integer NOT NULL DEFAULT 0,
  stages integer NOT NULL CHECK (stages >= 1),
  -- a stage halts the rollout when failed / settled meters of the stage exceeds this
  max_failure_rate double precision NOT NULL CHECK (max_failure_rate >= 0 AND max_failure_rate <= 1),
  reason text NOT NULL DEFAULT '',
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE firmware_rollout_meters (
  rollout_id bigint NOT NULL REFERENCES firmware_rollouts (id),
  meter_id bigint NOT NULL REFERENCES meters (id),
  stage integer NOT NULL,
  -- waiting, then the meter's reported update state (offered ... confirmed, rolled-back, refused)
  state text NOT NULL DEFAULT 'waiting',
  next_offset bigint NOT NULL DEFAULT 0,
  reason text NOT NULL DEFAULT '',
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (rollout_id, meter_id)
);
CREATE INDEX firmware_rollout_meters_meter ON firmware_rollout_meters (meter_id);

CREATE TABLE firmware_rollout_events (
  id bigserial PRIMARY KEY,
  rollout_id bigint NOT NULL REFERENCES firmware_rollouts (id),
  meter_id bigint,
  at timestamptz NOT NULL DEFAULT now(),
  event text NOT NULL,
  detail text NOT NULL DEFAULT ''
);
CREATE INDEX firmware_rollout_events_rollout ON firmware_rollout_events (rollout_id, id);
