-- Per meter: the last parameter set pushed (0x89) and what the meter's acknowledgement (0x09) says
-- it runs: the version in force, whether it was changed locally in a maintenance session since,
-- the values in force, and the last version it refused with its reason.

CREATE TABLE meter_parameters (
  meter_id bigint PRIMARY KEY REFERENCES meters (id),
  pushed_version bigint REFERENCES parameter_sets (version),
  pushed_at timestamptz,
  downlink_seq bigint,
  acked_version bigint,
  local_change boolean NOT NULL DEFAULT false,
  values_in_force jsonb,
  refused_version bigint,
  refused_why text,
  acked_at timestamptz
);

CREATE INDEX meter_parameters_by_acked ON meter_parameters (acked_version);
