-- The remote audit unit (16): every record-set frame that brought new records, kept as it arrived
-- (header, AES-GCM ciphertext and tag), so an audit can check the meter's MAC over the set again
-- with its own key access, long after ingest checked it. Frames carrying format 1 records (card
-- numbers) are not kept. Records arrived before this table have no set here.
CREATE TABLE record_sets (
  id bigserial PRIMARY KEY,
  meter_id bigint NOT NULL REFERENCES meters (id),
  frame_seq bigint NOT NULL,
  epoch bigint NOT NULL,
  first_seq bigint NOT NULL CHECK (first_seq >= 1),
  last_seq bigint NOT NULL,
  frame bytea NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  CHECK (last_seq >= first_seq)
);

CREATE INDEX record_sets_meter ON record_sets (meter_id, first_seq);
