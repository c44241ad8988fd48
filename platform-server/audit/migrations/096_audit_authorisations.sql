-- A record whose audit check failed counts again only with a supervisor's special authorisation:
-- who, when, why, and the SHA-256 of the record's bytes as authorised (a later change to the row
-- needs a new authorisation). The same act is written to operator_audit ('audit.authorise').
CREATE TABLE audit_authorisations (
  id bigserial PRIMARY KEY,
  meter_id bigint NOT NULL,
  seq bigint NOT NULL CHECK (seq >= 1),
  record_sha256 bytea NOT NULL CHECK (length(record_sha256) = 32),
  -- what the audit found: chain-break, mac-failure, not-in-set, no-mac...
  finding text NOT NULL,
  -- SHA-256 of the audit report that found it (hex)
  report_sha256 text NOT NULL,
  operator_id bigint NOT NULL REFERENCES operators (id),
  username text NOT NULL,
  reason text NOT NULL CHECK (length(reason) BETWEEN 10 AND 1000),
  at timestamptz NOT NULL
);

CREATE INDEX audit_authorisations_record ON audit_authorisations (meter_id, seq);
