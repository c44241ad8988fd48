-- Credit and prepaid accounts as a double-entry ledger. Every money movement is an entry whose
-- postings add up to zero (checked at commit by a deferred constraint trigger); an account's balance
-- is the sum of its postings (kept by a trigger, never written otherwise) and never goes below its
-- lower limit (a CHECK: concurrent charges serialise on the account row's lock, the one that would
-- cross the limit fails). Postings are never changed or deleted: a mistake is undone by a reversal.
-- Signs: a driver's account is what the driver may still spend relative to zero (a charge posts
-- minus); the platform's revenue account collects charges (plus); the top-ups account is where
-- money paid in for prepaid accounts comes from (it goes minus as top-ups are posted).

CREATE TABLE ledger_accounts (
  id bigserial PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('credit', 'prepaid', 'revenue', 'top-ups')),
  -- the driver's card the account belongs to (credit and prepaid); null for the platform's accounts
  card_id bigint REFERENCES driver_cards (id),
  -- ISO 4217 numeric
  currency integer NOT NULL CHECK (currency BETWEEN 1 AND 999),
  balance bigint NOT NULL DEFAULT 0,
  -- the balance may not go below this: 0 for prepaid, minus the credit limit for credit
  lower_limit bigint,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT ledger_accounts_within_limit CHECK (lower_limit IS NULL OR balance >= lower_limit),
  CONSTRAINT ledger_accounts_driver_limit CHECK (
    (kind = 'prepaid' AND card_id IS NOT NULL AND lower_limit = 0)
    OR (kind = 'credit' AND card_id IS NOT NULL AND lower_limit <= 0)
    OR (kind IN ('revenue', 'top-ups') AND card_id IS NULL AND lower_limit IS NULL))
);
CREATE UNIQUE INDEX ledger_accounts_card ON ledger_accounts (card_id, currency) WHERE card_id IS NOT NULL;
CREATE UNIQUE INDEX ledger_accounts_platform ON ledger_accounts (kind, currency) WHERE card_id IS NULL;

CREATE TABLE ledger_entries (
  id bigserial PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('charge', 'refund', 'reversal', 'top-up')),
  -- what it is for: the renewal's id for a charge, the refund's own reference for a refund
  reference text NOT NULL,
  -- the entry a refund or reversal undoes (in part or whole)
  undoes bigint REFERENCES ledger_entries (id),
  amount bigint NOT NULL CHECK (amount > 0),
  currency integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((kind IN ('refund', 'reversal')) = (undoes IS NOT NULL))
);
-- One charge per renewal (a retried request finds it), one reversal per charge.
CREATE UNIQUE INDEX ledger_entries_reference ON ledger_entries (kind, reference);
CREATE UNIQUE INDEX ledger_entries_one_reversal ON ledger_entries (undoes) WHERE kind = 'reversal';

CREATE TABLE ledger_postings (
  id bigserial PRIMARY KEY,
  entry_id bigint NOT NULL REFERENCES ledger_entries (id),
  account_id bigint NOT NULL REFERENCES ledger_accounts (id),
  amount bigint NOT NULL CHECK (amount <> 0),
  currency integer NOT NULL
);
CREATE INDEX ledger_postings_entry ON ledger_postings (entry_id);
CREATE INDEX ledger_postings_account ON ledger_postings (account_id, id);

CREATE FUNCTION ledger_apply_posting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE ledger_accounts SET balance = balance + NEW.amount
   WHERE id = NEW.account_id AND currency = NEW.currency;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'ledger posting to account % in currency % it does not keep', NEW.account_id, NEW.currency
      USING ERRCODE = '23514';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER ledger_postings_apply AFTER INSERT ON ledger_postings
  FOR EACH ROW EXECUTE FUNCTION ledger_apply_posting();

CREATE FUNCTION ledger_postings_unchangeable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger postings are never changed or deleted: post a reversal' USING ERRCODE = '23514';
END $$;
CREATE TRIGGER ledger_postings_frozen BEFORE UPDATE OR DELETE ON ledger_postings
  FOR EACH ROW EXECUTE FUNCTION ledger_postings_unchangeable();

CREATE FUNCTION ledger_entry_balances() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  total bigint;
BEGIN
  SELECT COALESCE(sum(amount), 0) INTO total FROM ledger_postings WHERE entry_id = NEW.entry_id;
  IF total <> 0 THEN
    RAISE EXCEPTION 'ledger entry % does not balance (postings add up to %)', NEW.entry_id, total
      USING ERRCODE = '23514';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ledger_postings_balanced AFTER INSERT ON ledger_postings
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_entry_balances();

-- A balance moves only through postings (the trigger above runs one level down).
CREATE FUNCTION ledger_balance_by_postings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.balance <> OLD.balance AND pg_trigger_depth() < 2 THEN
    RAISE EXCEPTION 'a ledger balance changes only through postings' USING ERRCODE = '23514';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER ledger_accounts_balance BEFORE UPDATE ON ledger_accounts
  FOR EACH ROW EXECUTE FUNCTION ledger_balance_by_postings();
