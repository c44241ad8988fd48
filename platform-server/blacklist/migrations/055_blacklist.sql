-- The fleet blacklist (blacklist management 45, management service 414). Cards are kept by their
-- keyed token (32 hex digits) and last four digits: a card number given to the API is tokenised on
-- arrival and never stored. The list has one version, raised by one with every card added or
-- removed; each change is kept (for deltas) until pruned, and each meter's acknowledged version
-- says whether it is behind.

CREATE TABLE blacklist_state (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  version bigint NOT NULL DEFAULT 0 CHECK (version BETWEEN 0 AND 4294967295)
);
INSERT INTO blacklist_state (only_row, version) VALUES (true, 0);

CREATE TABLE blacklist_cards (
  card_token text PRIMARY KEY CHECK (card_token ~ '^[0-9a-f]{32}$'),
  card_last4 text CHECK (card_last4 ~ '^[0-9]{4}$'),
  reason text NOT NULL CHECK (reason IN ('bad-debt', 'stolen', 'cloned', 'expired')),
  version bigint NOT NULL,
  added_at timestamptz NOT NULL DEFAULT now(),
  added_by text NOT NULL,
  -- The holder's contacts (name, phone, email) as AES-256-GCM under a key derived from the master
  -- key (blacklist/contacts.ts): nonce 12 bytes || ciphertext || tag. Deleted with the card.
  holder_contact bytea
);

CREATE TABLE blacklist_changes (
  version bigint PRIMARY KEY,
  card_token text NOT NULL CHECK (card_token ~ '^[0-9a-f]{32}$'),
  op text NOT NULL CHECK (op IN ('add', 'remove')),
  reason text CHECK (reason IN ('bad-debt', 'stolen', 'cloned', 'expired')),
  at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE blacklist_meters (
  meter_id bigint PRIMARY KEY REFERENCES meters (id),
  pushed_version bigint,
  pushed_at timestamptz,
  acked_version bigint,
  acked_ok boolean,
  acked_why text,
  acked_at timestamptz
);

-- Cards a meter refused as not genuine (operation 'card-cloned'), waiting for an operator.
CREATE TABLE blacklist_review (
  id bigserial PRIMARY KEY,
  meter_id bigint NOT NULL,
  record_seq bigint NOT NULL,
  seen_at timestamptz NOT NULL,
  card_uid text,
  card_token text CHECK (card_token ~ '^[0-9a-f]{32}$'),
  card_last4 text,
  detail text NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'confirmed', 'dismissed')),
  decided_by text,
  decided_at timestamptz,
  UNIQUE (meter_id, record_seq)
);
