-- A second factor for operators (supervisors and admins): a TOTP secret (RFC 6238, base32, pending
-- until the first code confirms it), the last time step used (a code is taken once), single-use
-- recovery codes stored only as their SHA-256, and whether each session was opened with the factor.

ALTER TABLE operators ADD COLUMN totp_secret text;
ALTER TABLE operators ADD COLUMN totp_pending_secret text;
ALTER TABLE operators ADD COLUMN totp_enabled_at timestamptz;
ALTER TABLE operators ADD COLUMN totp_last_step bigint;

ALTER TABLE operator_sessions ADD COLUMN mfa boolean NOT NULL DEFAULT false;

CREATE TABLE operator_recovery_codes (
  operator_id bigint NOT NULL REFERENCES operators (id),
  -- SHA-256 (hex) of the code without its dash, lower case
  code_hash text NOT NULL CHECK (length(code_hash) = 64),
  created_at timestamptz NOT NULL,
  used_at timestamptz,
  PRIMARY KEY (operator_id, code_hash)
);
