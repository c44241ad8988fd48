-- The downlinks ingest sealed for each meter, kept for a handheld to carry to a meter that has no
-- link of its own (GET /api/handheld/meters/:id/downlinks). The same sealed bytes as published, so a
-- frame delivered twice (by the broker and by hand, or by two visits) is refused by the meter's
-- downlink replay window. Bounded (ingest/outbox.ts): a frame of a kind that a newer one replaces
-- (a key rotation, settings, a tariff) is kept only as the newest of its kind; the others (release
-- tokens, blacklist deltas and pages, firmware messages) each count, at most 64 per meter. A frame
-- goes once the meter's acknowledgement shows it arrived, once its key epoch is no longer one the
-- meter opens, or after the retention period.
CREATE TABLE downlink_outbox (
  meter_id bigint NOT NULL REFERENCES meters (id),
  seq bigint NOT NULL,
  type smallint NOT NULL,
  epoch bigint NOT NULL,
  -- what a newer frame of the same kind replaces; NULL: each frame counts on its own
  kind text,
  frame bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (meter_id, seq)
);

CREATE INDEX downlink_outbox_kind ON downlink_outbox (meter_id, kind);
CREATE INDEX downlink_outbox_age ON downlink_outbox (created_at);
