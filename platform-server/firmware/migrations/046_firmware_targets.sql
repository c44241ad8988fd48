-- Firmware rollouts name what they target (listed meters, an area, the fleet), and each meter's last
-- reported update state is kept whether or not a rollout offered it (a meter reports idle and its
-- running version at boot).
ALTER TABLE firmware_rollouts ADD COLUMN target text NOT NULL DEFAULT '';

CREATE TABLE meter_firmware (
  meter_id bigint PRIMARY KEY REFERENCES meters (id),
  -- the delivery (rollout) the report is about; 0: none
  rollout_id bigint NOT NULL DEFAULT 0,
  state text NOT NULL,
  -- the offered version, or the running one when idle
  version bigint NOT NULL,
  next_offset bigint NOT NULL DEFAULT 0,
  reason text NOT NULL DEFAULT '',
  reported_at timestamptz NOT NULL DEFAULT now()
);
