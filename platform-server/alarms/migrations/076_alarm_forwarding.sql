-- Alarm forwarding: rules that send alarms of a severity or above (in an area, or everywhere) to
-- an e-mail address, a webhook or a phone number by SMS; and each delivery, written in the
-- transaction that raises (or reopens) the alarm, tried until sent or given up, every attempt counted.

CREATE TABLE alarm_forward_rules (
  id bigserial PRIMARY KEY,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  channel text NOT NULL CHECK (channel IN ('email', 'webhook', 'sms')),
  -- an e-mail address, an http(s) URL or an E.164 phone number
  destination text NOT NULL CHECK (length(destination) BETWEEN 1 AND 500),
  -- a webhook's bearer secret (never shown again)
  secret text,
  -- alarms at this severity or more severe
  min_severity text NOT NULL CHECK (min_severity IN ('security', 'total-fault', 'partial-fault', 'warning', 'technical')),
  -- NULL: every area (and meters in none)
  area text CHECK (area IS NULL OR length(area) BETWEEN 1 AND 64),
  enabled boolean NOT NULL DEFAULT true,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL
);

CREATE TABLE alarm_deliveries (
  id bigserial PRIMARY KEY,
  rule_id bigint NOT NULL REFERENCES alarm_forward_rules (id),
  alarm_id bigint NOT NULL REFERENCES alarms (id),
  -- the alarm change forwarded: 'raised' or 'reopened'
  action text NOT NULL,
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL,
  last_error text,
  created_at timestamptz NOT NULL,
  sent_at timestamptz
);

CREATE INDEX alarm_deliveries_due ON alarm_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX alarm_deliveries_alarm ON alarm_deliveries (alarm_id, id);
CREATE INDEX alarm_deliveries_state ON alarm_deliveries (state, id DESC);
