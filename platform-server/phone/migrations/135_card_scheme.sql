-- A card's kind (debit, credit, prepaid) is read from the card by a meter at its first tap, not
-- chosen by the driver: unknown (NULL) until then. Its scheme (Visa, Mastercard, …) comes from the
-- number the driver typed, NULL for a closed-loop card no public scheme claims.
ALTER TABLE driver_cards
  ALTER COLUMN card_type DROP NOT NULL,
  ADD COLUMN scheme text CHECK (scheme ~ '^[a-z-]{2,32}$');
