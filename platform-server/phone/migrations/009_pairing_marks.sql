-- Pay by phone looks at every stored record once (pairing, next-user override, renewal records). It
-- learns of them from ingest's in-memory event after the commit; an instance stopping in between
-- would lose that look. Per meter, the highest sequence number pairing has looked at without a hole:
-- the sweep on each scheduler tick looks again at older records above it (handling is idempotent).
CREATE TABLE phone_pairing_marks (
  meter_id bigint PRIMARY KEY REFERENCES meters (id),
  last_seq bigint NOT NULL CHECK (last_seq >= 0)
);

-- Records stored before this migration count as looked at.
INSERT INTO phone_pairing_marks (meter_id, last_seq)
SELECT m.id, coalesce((SELECT max(seq) FROM records r WHERE r.meter_id = m.id), 0) FROM meters m;
