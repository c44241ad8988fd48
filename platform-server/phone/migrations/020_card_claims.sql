-- A card registered while another account holds its token is kept as an unverified claim of the
-- registering account, so registration answers the same whoever holds the card. Only a verified
-- card pairs and pays; one verified holder per token, one row per (account, token).
ALTER TABLE driver_cards ADD COLUMN verified_at timestamptz;
UPDATE driver_cards SET verified_at = created_at;
DROP INDEX driver_cards_token;
CREATE UNIQUE INDEX driver_cards_driver_token ON driver_cards (driver_id, token) WHERE removed_at IS NULL;
CREATE UNIQUE INDEX driver_cards_verified_token ON driver_cards (token)
  WHERE removed_at IS NULL AND verified_at IS NOT NULL;
