-- The clearance unit (14): end-of-day settlement batches per acquirer and card type, the items in
-- them (each card sale and each phone renewal in exactly one batch), their delivery, the acquirer's
-- answers and the exceptions reconciliation leaves for a supervisor.
CREATE TABLE settlement_batches (
  id bigserial PRIMARY KEY,
  business_day date NOT NULL,
  acquirer text NOT NULL,
  card_type text NOT NULL,
  currency smallint NOT NULL,
  items integer NOT NULL,
  total bigint NOT NULL,
  file_name text NOT NULL UNIQUE,
  -- the file as delivered (format version 1, docs/clearance.md)
  content text NOT NULL,
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  signature text NOT NULL CHECK (signature ~ '^[0-9a-f]{128}$'),
  created_at timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz,
  delivery_attempts integer NOT NULL DEFAULT 0,
  delivery_error text,
  reconciled_at timestamptz
);

CREATE TABLE settlement_items (
  batch_id bigint NOT NULL REFERENCES settlement_batches (id),
  -- M<meter>-<seq> for a sale at a meter, P<renewal id> for a renewal paid by phone
  reference text PRIMARY KEY,
  meter_id bigint NOT NULL,
  seq bigint,
  renewal_id text,
  amount bigint NOT NULL,
  occurred_at timestamptz NOT NULL,
  CHECK ((seq IS NULL) <> (renewal_id IS NULL))
);
CREATE INDEX settlement_items_batch ON settlement_items (batch_id);

CREATE TABLE acquirer_responses (
  id bigserial PRIMARY KEY,
  batch_id bigint NOT NULL REFERENCES settlement_batches (id),
  file_name text NOT NULL,
  sha256 text NOT NULL UNIQUE,
  lines integer NOT NULL,
  matched integer NOT NULL,
  imported_at timestamptz NOT NULL DEFAULT now(),
  imported_by text NOT NULL
);

CREATE TABLE clearing_exceptions (
  id bigserial PRIMARY KEY,
  batch_id bigint NOT NULL REFERENCES settlement_batches (id),
  response_id bigint NOT NULL REFERENCES acquirer_responses (id),
  reference text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('missing-theirs', 'missing-ours', 'amount-mismatch', 'duplicate', 'rejected')),
  our_amount bigint,
  their_amount bigint,
  -- the record and its chain proof (a sale) or the renewal (a phone payment), for a dispute
  evidence jsonb NOT NULL,
  status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
  outcome text CHECK (outcome IN ('accepted', 'resubmit', 'refund', 'written-off')),
  note text,
  resolved_by text,
  resolved_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX clearing_exceptions_open ON clearing_exceptions (created_at) WHERE status = 'open';
