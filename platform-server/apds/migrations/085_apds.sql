-- The APDS API (/apds/): consumers' API keys (only a SHA-256 of each key is kept), the records a
-- third-party app wrote (quotes, sessions, assigned rights; idempotent on the app's own id), and
-- webhook subscriptions with their delivery queue.

CREATE TABLE apds_keys (
  id bigserial PRIMARY KEY,
  consumer text NOT NULL CHECK (length(consumer) BETWEEN 1 AND 64),
  -- 'read', 'write', 'webhooks', 'export'
  scopes text[] NOT NULL,
  -- SHA-256 of the key, hex
  key_hash text NOT NULL UNIQUE CHECK (length(key_hash) = 64),
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);

CREATE TABLE apds_records (
  kind text NOT NULL CHECK (kind IN ('quote', 'session', 'right')),
  id text NOT NULL CHECK (length(id) BETWEEN 1 AND 128),
  key_id bigint NOT NULL REFERENCES apds_keys (id),
  version integer NOT NULL CHECK (version >= 1),
  body jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  ended_at timestamptz,
  PRIMARY KEY (kind, id)
);

CREATE TABLE apds_webhooks (
  id bigserial PRIMARY KEY,
  key_id bigint NOT NULL REFERENCES apds_keys (id),
  endpoint text NOT NULL,
  topics text[] NOT NULL,
  -- HMAC-SHA-256 key of the signature header, hex (given to the subscriber once)
  secret text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);

CREATE TABLE apds_deliveries (
  id bigserial PRIMARY KEY,
  webhook_id bigint NOT NULL REFERENCES apds_webhooks (id),
  topic text NOT NULL,
  payload jsonb NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  next_at timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz,
  failed_at timestamptz,
  last_error text
);

CREATE INDEX apds_deliveries_due ON apds_deliveries (next_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
