-- Pay by phone: registered drivers and their cards (tokens only, never card numbers),
-- login tokens, parking sessions paired from first taps, remote renewals, and the outbox of SMS,
-- voice and app messages with their delivery state. Times compared with the platform's clock are
-- written from that clock (injectable for tests), not from now().

CREATE TABLE drivers (
  id bigserial PRIMARY KEY,
  -- the dedicated account number (step a), "PL" and 10 digits
  account_number text NOT NULL UNIQUE,
  name text NOT NULL,
  phone text NOT NULL UNIQUE,
  email text NOT NULL UNIQUE,
  -- scrypt$N$r$p$salt$hash (base64)
  password_hash text NOT NULL,
  renewal_phone text,
  renewal_email text,
  alert_channel text NOT NULL DEFAULT 'sms' CHECK (alert_channel IN ('sms', 'voice', 'app')),
  lead_minutes integer NOT NULL DEFAULT 10 CHECK (lead_minutes BETWEEN 1 AND 240),
  -- option 1 auto-extension, option 2 renew by phone (alert before the grace period ends), option 3 app
  renew_option text NOT NULL DEFAULT 'phone' CHECK (renew_option IN ('auto', 'phone', 'app')),
  auto_minutes integer NOT NULL DEFAULT 30 CHECK (auto_minutes BETWEEN 1 AND 1440),
  grace_minutes integer NOT NULL DEFAULT 10 CHECK (grace_minutes BETWEEN 0 AND 120),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE driver_cards (
  id bigserial PRIMARY KEY,
  driver_id bigint NOT NULL REFERENCES drivers (id),
  -- HMAC-SHA-256(tokenisation key, card number), hex (protocol/renewal.ts cardToken)
  token text NOT NULL CHECK (length(token) = 64),
  last4 text NOT NULL,
  card_type smallint NOT NULL CHECK (card_type IN (1, 2, 3)),
  label text NOT NULL DEFAULT '',
  -- the driver's renewal card: pays renewals unless the tapped card is linked to another
  renewal boolean NOT NULL DEFAULT false,
  -- step c: renewals of sessions started with this card are paid from that card
  pays_with bigint REFERENCES driver_cards (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  removed_at timestamptz
);

CREATE UNIQUE INDEX driver_cards_token ON driver_cards (token) WHERE removed_at IS NULL;
CREATE INDEX driver_cards_driver ON driver_cards (driver_id);

CREATE TABLE driver_tokens (
  -- SHA-256 of the bearer token, hex
  token_hash text PRIMARY KEY,
  driver_id bigint NOT NULL REFERENCES drivers (id),
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- A parking session paired with a driver by the first tap of a registered card (steps b, d).
CREATE TABLE phone_sessions (
  id bigserial PRIMARY KEY,
  driver_id bigint NOT NULL REFERENCES drivers (id),
  card_id bigint NOT NULL REFERENCES driver_cards (id),
  meter_id bigint NOT NULL REFERENCES meters (id),
  bay_id bigint NOT NULL,
  -- the first-payment transaction record
  tx_seq bigint NOT NULL,
  paid_from timestamptz NOT NULL,
  paid_until timestamptz NOT NULL,
  -- minutes bought in this session so far (first payment and renewals): max stay
  paid_minutes integer NOT NULL,
  first_charge bigint NOT NULL,
  currency smallint NOT NULL,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'ended', 'expired')),
  end_reason text,
  -- the paid_until the lead-time alert and the grace alert were sent for
  alerted_for timestamptz,
  grace_alerted_for timestamptz,
  created_at timestamptz NOT NULL,
  ended_at timestamptz
);

-- One active pairing per bay: a new first payment ends the earlier one.
CREATE UNIQUE INDEX phone_sessions_active_bay ON phone_sessions (meter_id, bay_id) WHERE status = 'active';
CREATE INDEX phone_sessions_driver ON phone_sessions (driver_id, created_at);

CREATE TABLE renewals (
  -- the idempotent renewal id the meter keeps (1-14 of [0-9a-z])
  id text PRIMARY KEY,
  session_id bigint NOT NULL REFERENCES phone_sessions (id),
  driver_id bigint NOT NULL REFERENCES drivers (id),
  meter_id bigint NOT NULL,
  bay_id bigint NOT NULL,
  minutes integer NOT NULL,
  charge bigint NOT NULL,
  currency smallint NOT NULL,
  card_id bigint NOT NULL REFERENCES driver_cards (id),
  -- credit and prepaid: updated directly on the platform; debit: the real-time authorisation path
  funding text NOT NULL CHECK (funding IN ('direct', 'realtime')),
  authorisation text NOT NULL,
  channel text NOT NULL CHECK (channel IN ('app', 'sms', 'voice', 'auto')),
  status text NOT NULL CHECK (status IN ('sent', 'applied', 'refused', 'voided')),
  reason text,
  requested_at timestamptz NOT NULL,
  valid_until timestamptz NOT NULL,
  sent_at timestamptz,
  send_count integer NOT NULL DEFAULT 0,
  applied_at timestamptz,
  -- the bay's paid-until the meter reports after applying
  paid_until timestamptz,
  refunded_at timestamptz,
  -- the meter's remote-renewal operation record, once uploaded
  record_seq bigint
);

CREATE INDEX renewals_pending ON renewals (meter_id) WHERE status = 'sent';
CREATE INDEX renewals_driver ON renewals (driver_id, requested_at);

-- Highest 0x06 frame sequence accepted per meter (replay refusal for renewal acks).
CREATE TABLE renewal_ack_frames (
  meter_id bigint PRIMARY KEY REFERENCES meters (id),
  last_frame_seq bigint NOT NULL
);

-- Every message to a driver, through the adapter of its channel, with retries and delivery state.
CREATE TABLE outbox (
  id bigserial PRIMARY KEY,
  driver_id bigint REFERENCES drivers (id),
  channel text NOT NULL CHECK (channel IN ('sms', 'voice', 'app', 'email')),
  recipient text NOT NULL,
  kind text NOT NULL,
  body text NOT NULL,
  renewal_id text,
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'delivered', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL,
  last_error text,
  adapter text,
  created_at timestamptz NOT NULL,
  delivered_at timestamptz
);

CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'queued';
CREATE INDEX outbox_driver ON outbox (driver_id, id);
