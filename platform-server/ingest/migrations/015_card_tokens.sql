-- No full card number at rest: transactions and operations keep the card's keyed token (32 hex
-- digits, protocol/cardToken.ts) and its last four digits. The key is not in the database, so the
-- rows held before this are converted by the platform as it starts (ingest/cardTokens.ts), which
-- then drops card_number; until then the column may be NULL.
ALTER TABLE transactions
  ADD COLUMN card_token text CHECK (card_token ~ '^[0-9a-f]{32}$'),
  ADD COLUMN card_last4 text CHECK (card_last4 ~ '^[0-9]{4}$'),
  ALTER COLUMN card_number DROP NOT NULL;

ALTER TABLE operations
  ADD COLUMN card_token text CHECK (card_token ~ '^[0-9a-f]{32}$'),
  ADD COLUMN card_last4 text CHECK (card_last4 ~ '^[0-9]{4}$');

-- A record received in format 1 (card number inside) is kept converted to format 2, card tokenised:
-- its bytes then no longer hash to its link, which was checked when it arrived.
ALTER TABLE records ADD COLUMN redacted boolean NOT NULL DEFAULT false;
