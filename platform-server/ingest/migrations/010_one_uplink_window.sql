-- Status frames (0x04) and renewal acks (0x06) pass the same uplink window as every other frame of
-- the meter (migration 008): the meter numbers all its uplinks in one sequence. Their own marks fold
-- into it; where one was ahead, every number up to it counts as seen (uplink_seen NULL).
UPDATE meters m SET last_uplink_seq = f.last, uplink_seen = NULL
  FROM (SELECT meter_id, max(last_frame_seq) AS last
          FROM (SELECT meter_id, last_frame_seq FROM status_frames
                UNION ALL SELECT meter_id, last_frame_seq FROM renewal_ack_frames) marks
         GROUP BY meter_id) f
 WHERE m.id = f.meter_id AND f.last > m.last_uplink_seq;

DROP TABLE status_frames;
DROP TABLE renewal_ack_frames;
