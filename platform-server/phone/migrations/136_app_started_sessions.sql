-- Parking started from the app by the code on the meter, with the vehicle's plate: such a session
-- has no first transaction record (tx_seq NULL) until, if ever, the card is tapped there.
ALTER TABLE phone_sessions
  ALTER COLUMN tx_seq DROP NOT NULL,
  ADD COLUMN plate text CHECK (plate ~ '^[A-Z0-9]{2,10}$');
CREATE INDEX phone_sessions_plate ON phone_sessions (plate, paid_until) WHERE plate IS NOT NULL;
