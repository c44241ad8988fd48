-- Operator accounts (the city's staff on the operator API): who they are and their role, their
-- password (scrypt, parameters stored with the hash), failed logins and lockout; their bearer
-- sessions, stored only as the SHA-256 of the token; and the audit log of what each operator did.
-- Times compared with the platform's clock are written from that clock (injectable for tests).

CREATE TABLE operators (
  id bigserial PRIMARY KEY,
  -- lower case, 2-64 of [a-z0-9_.@-]; goes into release tokens and the meters' maintenance records
  username text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9_.@-]{1,63}$'),
  display_name text NOT NULL,
  -- ordered: viewer < operator < supervisor < admin
  role text NOT NULL CHECK (role IN ('viewer', 'operator', 'supervisor', 'admin')),
  -- scrypt$logN$r$p$salt$hash (base64)
  password_hash text NOT NULL,
  created_at timestamptz NOT NULL,
  created_by bigint REFERENCES operators (id),
  disabled_at timestamptz,
  -- consecutive failed logins since the last success; locked_until set when they reach the limit
  failed_logins integer NOT NULL DEFAULT 0,
  locked_until timestamptz
);

CREATE TABLE operator_sessions (
  -- SHA-256 of the bearer token, hex
  token_hash text PRIMARY KEY CHECK (length(token_hash) = 64),
  operator_id bigint NOT NULL REFERENCES operators (id),
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz
);

CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id) WHERE revoked_at IS NULL;

CREATE TABLE operator_audit (
  id bigserial PRIMARY KEY,
  -- null when nobody was authenticated (a failed login for an unknown name)
  operator_id bigint REFERENCES operators (id),
  -- as authenticated, or as typed at a failed login
  username text NOT NULL,
  -- what was done: 'login', 'release.issue', 'tariff.assign', 'refused', ...
  action text NOT NULL,
  -- the meter acted on; no foreign key: a refused request may name a meter that does not exist
  meter_id bigint,
  -- what else was acted on: a tariff id, an operator's username, the route of a refused request
  target text,
  detail jsonb NOT NULL DEFAULT '{}',
  at timestamptz NOT NULL
);

CREATE INDEX operator_audit_at ON operator_audit (at, id);
CREATE INDEX operator_audit_operator ON operator_audit (operator_id, id);
CREATE INDEX operator_audit_meter ON operator_audit (meter_id, id) WHERE meter_id IS NOT NULL;

-- The account that issued each release (the name in `operator` is the one signed into the token).
ALTER TABLE upload_releases ADD COLUMN operator_id bigint REFERENCES operators (id);
