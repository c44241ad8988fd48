-- Card tokens are 16 bytes (32 hex digits, protocol/cardToken.ts), the first half of the
-- HMAC-SHA-256 the 64-digit tokens were: under the same key, cutting a stored token gives the token
-- the meters now put in their records, so registered cards keep matching.
ALTER TABLE driver_cards DROP CONSTRAINT driver_cards_token_check;
UPDATE driver_cards SET token = left(token, 32);
ALTER TABLE driver_cards ADD CONSTRAINT driver_cards_token_check CHECK (token ~ '^[0-9a-f]{32}$');
