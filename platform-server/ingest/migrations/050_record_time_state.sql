-- The meter's clock state when it wrote each record (protocol/records.ts, 7th field; protocol/time.ts
-- TimeState): 0 never set since the meter started, 1 synchronised, 2 holdover. NULL for records
-- from meters that did not report it (written before time management): not known.
ALTER TABLE records ADD COLUMN time_state smallint CHECK (time_state BETWEEN 0 AND 2);
