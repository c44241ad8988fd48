-- Measured on a generated city of 100 million records (npm run bench -- history): one meter's sales
-- over a range read its own index entries, not every sale of those days; and the uptime report finds
-- each meter's downtime periods without reading all of the meter's operation records.
CREATE INDEX transactions_by_meter_time ON transactions (meter_id, recorded_at);
CREATE INDEX operations_downtime ON operations (meter_id, period_from, period_to) WHERE code = 'downtime';
