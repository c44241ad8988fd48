-- Zigbee relay: which master meter may carry which slave's frames. The broker lets a master publish
-- on its slaves' uplink topics and subscribe to their downlinks, and nothing else of theirs; the
-- frames stay sealed end to end under the slave's keys. A slave has one master at a time.
CREATE TABLE relay_assignments (
  slave_id bigint PRIMARY KEY REFERENCES meters (id),
  master_id bigint NOT NULL REFERENCES meters (id),
  assigned_at timestamptz NOT NULL DEFAULT now(),
  CHECK (slave_id <> master_id)
);
CREATE INDEX relay_assignments_master ON relay_assignments (master_id);
