-- Per meter and per push (a notice, or its cancellation): the 0x85 version sent, its downlink
-- sequence, and the meter's 0x05 acknowledgement.

CREATE TABLE meter_notices (
  meter_id bigint NOT NULL REFERENCES meters (id),
  version bigint NOT NULL,
  notice_id bigint NOT NULL REFERENCES notices (id),
  cancels boolean NOT NULL DEFAULT false,
  downlink_seq bigint,
  pushed_at timestamptz NOT NULL DEFAULT now(),
  acked_ok boolean,
  acked_why text,
  acked_at timestamptz,
  PRIMARY KEY (meter_id, version)
);

CREATE INDEX meter_notices_by_notice ON meter_notices (notice_id);
