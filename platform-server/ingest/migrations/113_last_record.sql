-- Each meter's newest stored record, its sequence number and chain link, kept by ingest as it
-- stores a set. The next set normally continues from it and is checked against it, without looking
-- the record up in every monthly partition of records (the lookup has no time to prune by).
ALTER TABLE meters ADD COLUMN last_record_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE meters ADD COLUMN last_record_link bytea;
UPDATE meters m
   SET (last_record_seq, last_record_link) =
       (SELECT r.seq, r.link FROM records r WHERE r.meter_id = m.id ORDER BY r.seq DESC LIMIT 1)
 WHERE EXISTS (SELECT 1 FROM records r WHERE r.meter_id = m.id);
