-- Key rotation: the epoch before the current one stays accepted until previous_epoch_until
-- (frames in flight); rotations pushed to meters and their acknowledgements; maintenance tokens.

ALTER TABLE meters ADD COLUMN previous_key_epoch bigint;
ALTER TABLE meters ADD COLUMN previous_epoch_until timestamptz;

CREATE TABLE key_rotations (
  meter_id bigint NOT NULL REFERENCES meters (id),
  epoch bigint NOT NULL CHECK (epoch BETWEEN 1 AND 4294967295),
  from_epoch bigint NOT NULL,
  downlink_seq bigint NOT NULL,
  pushed_at timestamptz NOT NULL DEFAULT now(),
  acknowledged_at timestamptz,
  PRIMARY KEY (meter_id, epoch)
);

CREATE TABLE maintenance_tokens (
  meter_id bigint NOT NULL REFERENCES meters (id),
  token_id bigint NOT NULL,
  staff text NOT NULL,
  not_before timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  issued_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (meter_id, token_id)
);

CREATE TABLE security_events (
  id bigserial PRIMARY KEY,
  meter_id bigint NOT NULL REFERENCES meters (id),
  event text NOT NULL,
  epoch bigint NOT NULL,
  detail text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
