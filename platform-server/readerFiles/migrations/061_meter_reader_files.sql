-- Per meter and file name, the last version pushed (0x8B) and where its delivery stands, from the
-- meter's reports (0x0B): offered, downloading (the next byte it wants), held, or refused and why.
CREATE TABLE reader_file_deliveries (
  meter_id bigint NOT NULL REFERENCES meters (id),
  name text NOT NULL,
  version bigint NOT NULL,
  state text NOT NULL CHECK (state IN ('offered', 'downloading', 'held', 'refused')),
  next_offset bigint NOT NULL DEFAULT 0,
  why text,
  downlink_seq bigint,
  pushed_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (meter_id, name),
  FOREIGN KEY (name, version) REFERENCES reader_files (name, version)
);

CREATE INDEX reader_file_deliveries_pending ON reader_file_deliveries (meter_id)
  WHERE state IN ('offered', 'downloading');

-- Each meter's last report: the files it holds ([{ name, kind, version }]) and its download state.
CREATE TABLE meter_reader_reports (
  meter_id bigint PRIMARY KEY REFERENCES meters (id),
  state text NOT NULL,
  name text,
  version bigint,
  next_offset bigint NOT NULL DEFAULT 0,
  why text,
  held jsonb NOT NULL,
  reported_at timestamptz NOT NULL DEFAULT now()
);
