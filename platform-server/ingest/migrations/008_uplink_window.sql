-- Uplink anti-replay becomes a sliding window (protocol/replayWindow.ts, as the meter keeps for its
-- downlinks): a frame is accepted once if it is above last_uplink_seq or one of the 64 below it not
-- seen yet, so frames of one meter handled out of order (two ingest instances, a status frame
-- overtaking a record set) are not refused and sent again. Bit i of uplink_seen: sequence number
-- last_uplink_seq - i was accepted; the 64-bit mask is kept in a signed bigint. NULL (meters from
-- before this migration): every number up to last_uplink_seq counts as seen, the old rule.
ALTER TABLE meters ADD COLUMN uplink_seen bigint;
