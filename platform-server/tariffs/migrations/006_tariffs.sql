-- Tariffs: every version of every tariff document as the provider wrote it (validated by
-- protocol/tariff before it is stored), and per meter the version pushed (0x85) and the version the
-- meter acknowledged applying (0x05).

CREATE TABLE tariffs (
  id text NOT NULL,
  version bigint NOT NULL CHECK (version BETWEEN 0 AND 4294967295),
  document jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (id, version)
);

CREATE TABLE meter_tariffs (
  meter_id bigint PRIMARY KEY REFERENCES meters (id),
  tariff_id text NOT NULL,
  version bigint NOT NULL,
  pushed_at timestamptz NOT NULL DEFAULT now(),
  downlink_seq bigint NOT NULL,
  acked_version bigint,
  acked_ok boolean,
  acked_why text,
  acked_at timestamptz,
  FOREIGN KEY (tariff_id, version) REFERENCES tariffs (id, version)
);
