-- Listing a Land's organisations of one level (e.g. its Gemeinden) without scanning
-- every organisation of that level.
CREATE INDEX organisations_land_level ON organisations(land, level, id);
