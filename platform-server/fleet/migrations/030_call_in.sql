-- Call-in (dial-up): the number of the SIM in each cellular meter, and every call-in an operator
-- asked for (the platform texts the meter, which connects and sends its status).

ALTER TABLE meters ADD COLUMN msisdn text CHECK (msisdn IS NULL OR msisdn ~ '^\+[1-9][0-9]{6,14}$');

CREATE TABLE call_ins (
  id bigserial PRIMARY KEY,
  meter_id bigint NOT NULL REFERENCES meters (id),
  requested_at timestamptz NOT NULL DEFAULT now(),
  requested_by text NOT NULL,
  -- which SMS sender carried it (a gateway, or the simulator in tests and the demo)
  sender text NOT NULL,
  state text NOT NULL CHECK (state IN ('sent', 'failed')),
  detail text NOT NULL DEFAULT ''
);

CREATE INDEX call_ins_meter ON call_ins (meter_id, requested_at DESC);
