-- A tariff push is recorded before it is sent and its downlink sequence number set once the broker
-- has it: recorded after, a meter that acknowledged at once found no row for its first push (the
-- acknowledgement was lost and the push timed out though the meter applied it). Between the two
-- the push has no sequence number yet.
ALTER TABLE meter_tariffs ALTER COLUMN downlink_seq DROP NOT NULL;
