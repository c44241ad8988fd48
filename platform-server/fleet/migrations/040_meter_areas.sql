-- The area a meter belongs to (a street, a zone, a car park): pushes and rollouts address a meter,
-- an area or the whole fleet. NULL: not yet placed in an area.
ALTER TABLE meters ADD COLUMN area text CHECK (area IS NULL OR length(area) BETWEEN 1 AND 64);
CREATE INDEX meters_by_area ON meters (area) WHERE area IS NOT NULL;
