-- Operating parameter sets (upload interval and batch, sleep, links and endpoints, storage
-- thresholds, status interval): each version as an operator defined it, checked by
-- protocol/parameters before it is stored. Versions only grow, so a meter applies the newer set.

CREATE TABLE parameter_sets (
  version bigint PRIMARY KEY CHECK (version BETWEEN 1 AND 4294967295),
  parameter_values jsonb NOT NULL,
  note text,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
