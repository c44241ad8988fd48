-- Which tariff a meter acknowledged, not only its version: a meter's acknowledgement names the tariff
-- it holds, and a push is applied only when the meter acknowledges that tariff in that version. By
-- the version alone, a push of another tariff with the version the meter already held read as
-- applied at once, and a late acknowledgement of the old tariff priced renewals by the new one.
-- Acknowledgements stored before this knew no id: they were taken as answering the tariff pushed.
ALTER TABLE meter_tariffs ADD COLUMN acked_tariff_id text;
UPDATE meter_tariffs SET acked_tariff_id = tariff_id WHERE acked_version IS NOT NULL;
