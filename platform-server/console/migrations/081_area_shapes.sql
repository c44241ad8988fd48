-- Areas as named polygons on the map: the name is the one meters.area carries (migration 040); the
-- outline is a GeoJSON Polygon's coordinates (rings of [longitude, latitude]), checked by the API.
CREATE TABLE area_shapes (
  name text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
  outline jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by text NOT NULL
);
