-- Notices: display messages (notices, weather) and bay modes (suspended for works, free, no
-- parking) an operator schedules for listed meters, an area or the fleet, with a window (epoch
-- seconds; NULL start: from now, NULL end: until cancelled). Each is pushed as a 0x85 'message' or
-- 'bays' downlink whose version comes from notice_versions, so every push is newer than the last
-- one a meter holds; a cancellation is pushed under a version of its own.

CREATE SEQUENCE notice_versions AS bigint MINVALUE 1 MAXVALUE 4294967295;

CREATE TABLE notices (
  id bigint PRIMARY KEY DEFAULT nextval('notice_versions'),
  kind text NOT NULL CHECK (kind IN ('message', 'bays')),
  text text,
  bay_modes jsonb,
  starts_at bigint,
  ends_at bigint CHECK (ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at),
  target text NOT NULL,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  cancelled_at timestamptz,
  cancelled_by text,
  cancel_version bigint,
  CHECK ((kind = 'message') = (text IS NOT NULL)),
  CHECK ((kind = 'bays') = (bay_modes IS NOT NULL))
);
