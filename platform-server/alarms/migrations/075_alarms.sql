-- The fleet-wide alarm inbox: one row per alarm (a meter's condition or incident of one kind, on
-- one subject: a pack, a module, a sensor, a bay), raised from the meters' security events (0x03),
-- status events and reports (0x04) and the platform's own sweep (overdue meters). While an alarm is
-- not resolved, the same kind on the same subject counts on it instead of opening another.
-- Times compared with the platform's clock are written from that clock (injectable for tests).

CREATE TABLE alarms (
  id bigserial PRIMARY KEY,
  meter_id bigint NOT NULL REFERENCES meters (id),
  -- what happened: 'tamper', 'cover-opened', 'battery-low', 'overdue', 'sensor-stuck', ...
  kind text NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
  -- what it happened to ('' for the meter as a whole): 'rechargeable', 'reader', 'bay 3'
  subject text NOT NULL DEFAULT '' CHECK (length(subject) <= 64),
  -- the levels meter vendors use, most severe first
  severity text NOT NULL CHECK (severity IN ('security', 'total-fault', 'partial-fault', 'warning', 'technical')),
  -- where it came from: 'security-event' (0x03), 'status-event', 'status-report' (0x04), 'sweep'
  source text NOT NULL,
  detail text NOT NULL,
  -- the meter's time of the first occurrence (or the platform's, for the sweep)
  occurred_at timestamptz NOT NULL,
  raised_at timestamptz NOT NULL,
  last_at timestamptz NOT NULL,
  occurrences integer NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
  -- the meter reported the condition gone (the alarm stays in the inbox until resolved)
  cleared_at timestamptz,
  acknowledged_at timestamptz,
  acknowledged_by text,
  assigned_to text,
  assigned_at timestamptz,
  resolved_at timestamptz,
  resolved_by text,
  resolution text
);

-- At most one unresolved alarm per meter, kind and subject: repeats count on it.
CREATE UNIQUE INDEX alarms_unresolved ON alarms (meter_id, kind, subject) WHERE resolved_at IS NULL;
CREATE INDEX alarms_by_meter ON alarms (meter_id, id DESC);
CREATE INDEX alarms_active ON alarms (severity, id DESC) WHERE resolved_at IS NULL;

-- Everything that happened to each alarm: raised, reopened, cleared, acknowledged, assigned,
-- resolved, forwarded.
CREATE TABLE alarm_history (
  id bigserial PRIMARY KEY,
  alarm_id bigint NOT NULL REFERENCES alarms (id),
  at timestamptz NOT NULL,
  action text NOT NULL,
  -- the operator's username, or 'meter' / 'platform'
  actor text NOT NULL,
  note text
);

CREATE INDEX alarm_history_alarm ON alarm_history (alarm_id, id);
