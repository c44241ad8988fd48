-- Reports on demand (414b): each request an operator sent a meter (0x8C), the meter's answer (0x0C)
-- and the records that arrived for it. A records request names a sequence range, a time range or
-- both; the answer says which runs the meter re-sent and which part it could not, with a reason.
-- received_new and received_duplicate are merged [first, last] runs of the meter's records that
-- arrived while the request was open: new to the platform, or already held with the same bytes.

CREATE TABLE report_requests (
  id bigserial PRIMARY KEY CHECK (id BETWEEN 1 AND 4294967295),
  meter_id bigint NOT NULL REFERENCES meters (id),
  kind text NOT NULL CHECK (kind IN ('status', 'records')),
  from_seq bigint,
  to_seq bigint,
  since timestamptz,
  until timestamptz,
  requested_by text NOT NULL,
  requested_at timestamptz NOT NULL DEFAULT now(),
  downlink_seq bigint,
  state text NOT NULL DEFAULT 'sent' CHECK (state IN ('sent', 'answered', 'refused')),
  answered_at timestamptz,
  answer jsonb,
  received_new jsonb NOT NULL DEFAULT '[]',
  received_duplicate jsonb NOT NULL DEFAULT '[]',
  complete boolean NOT NULL DEFAULT false
);

CREATE INDEX report_requests_by_meter ON report_requests (meter_id, id DESC);
CREATE INDEX report_requests_open ON report_requests (meter_id) WHERE NOT complete AND state <> 'refused';
