-- Issue 4: the claim 10 record fields, operator releases of unacknowledged upload sets.

-- Claim 10a: the service charge rate rule (tariff version) a transaction was priced with.
ALTER TABLE transactions ADD COLUMN tariff_rule bigint;

-- Claim 10b: the period an operation record covers (downtime, free or not-provided service, an
-- operating day) and its quantity (seconds operating, battery percent...).
ALTER TABLE operations ADD COLUMN period_from timestamptz;
ALTER TABLE operations ADD COLUMN period_to timestamptz;
ALTER TABLE operations ADD COLUMN quantity bigint;

-- Release tokens issued to let a meter discard unacknowledged records (the seed's "special
-- password"): who, when, which records. The meter records its own maintenance record on use.
CREATE TABLE upload_releases (
  id bigserial PRIMARY KEY,
  meter_id bigint NOT NULL REFERENCES meters (id),
  from_seq bigint NOT NULL CHECK (from_seq >= 1),
  to_seq bigint NOT NULL,
  operator text NOT NULL,
  reason text NOT NULL,
  issued_at timestamptz NOT NULL DEFAULT now(),
  token bytea NOT NULL,
  CHECK (to_seq >= from_seq)
);

CREATE INDEX upload_releases_meter ON upload_releases (meter_id, from_seq);
