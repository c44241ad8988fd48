-- Renewals paid for real: a debit card kept on file at the payment provider (its customer and saved
-- payment method), each provider charge attempt kept under its idempotency key (a charge whose answer
-- was lost is asked again with the same key, never charged twice), a renewal's ledger entry (credit,
-- prepaid) or provider charge, and its refund once it has really happened.
ALTER TABLE driver_cards ADD COLUMN provider_customer text;
ALTER TABLE driver_cards ADD COLUMN provider_payment_method text;
ALTER TABLE driver_cards ADD CONSTRAINT driver_cards_card_on_file
  CHECK ((provider_customer IS NULL) = (provider_payment_method IS NULL));

ALTER TABLE renewals ADD COLUMN payment_provider text;
ALTER TABLE renewals ADD COLUMN ledger_entry bigint REFERENCES ledger_entries (id);
ALTER TABLE renewals ADD COLUMN refund_id text;

CREATE TABLE provider_charges (
  idempotency_key text PRIMARY KEY,
  renewal_id text NOT NULL,
  provider text NOT NULL,
  amount bigint NOT NULL CHECK (amount > 0),
  currency integer NOT NULL,
  -- pending: asked, no answer yet; unavailable: no answer came (it may have been charged)
  status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'declined', 'authentication-required',
                                         'unavailable', 'refunded')),
  charge_id text,
  detail text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provider_charges_unavailable ON provider_charges (created_at) WHERE status = 'unavailable';
