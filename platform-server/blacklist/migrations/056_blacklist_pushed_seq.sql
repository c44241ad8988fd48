-- The downlink sequence number of the last frame of a meter's latest blacklist push: the outbox
-- drops the blacklist frames up to it once the meter acknowledges the version pushed. A timestamp
-- cannot tell a frame sent in the same clock tick as the push from one of the push.
ALTER TABLE blacklist_meters ADD COLUMN pushed_seq bigint;
