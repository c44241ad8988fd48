-- The meter registry the operator console keeps: where a meter stands (street address and WGS 84
-- coordinates), how many bays it serves, and how often it is expected to make contact (a meter
-- silent for longer than twice that is shown overdue).
ALTER TABLE meters ADD COLUMN address text CHECK (address IS NULL OR length(address) BETWEEN 1 AND 200);
ALTER TABLE meters ADD COLUMN latitude double precision CHECK (latitude IS NULL OR latitude BETWEEN -90 AND 90);
ALTER TABLE meters ADD COLUMN longitude double precision CHECK (longitude IS NULL OR longitude BETWEEN -180 AND 180);
ALTER TABLE meters ADD COLUMN bays integer CHECK (bays IS NULL OR bays BETWEEN 1 AND 64);
ALTER TABLE meters ADD COLUMN contact_seconds integer NOT NULL DEFAULT 900 CHECK (contact_seconds BETWEEN 60 AND 604800);
ALTER TABLE meters ADD CONSTRAINT meters_coordinates_together CHECK ((latitude IS NULL) = (longitude IS NULL));
-- When the factory loaded the meter's keys. A meter registered from the console waits with NULL
-- until the factory station provisions it; every meter created otherwise counts as provisioned.
ALTER TABLE meters ADD COLUMN provisioned_at timestamptz DEFAULT now();
UPDATE meters SET provisioned_at = created_at;
