-- Capacity windows (issue 19): a booking's scheduled peaks, as JSON in the booking's row
-- so that every read of a booking has them without a second query. Placement reads the
-- windows of the bookings that hold capacity and have windows, through the partial index.
ALTER TABLE bookings ADD COLUMN windows TEXT;
CREATE INDEX bookings_windows ON bookings(site) WHERE windows IS NOT NULL;

-- Placement reads every site's windows ahead in each booking's write transaction. A
-- process keeps them in memory and reads them again only when this number moved: every
-- write that changes a booking with windows (its windows, site or state) moves it, in
-- the same transaction, whichever replica wrote.
CREATE TABLE capacity_windows_version (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);
INSERT INTO capacity_windows_version (id, n) VALUES (1, 0);

CREATE FUNCTION verbund_windows_version() RETURNS trigger AS $$
BEGIN
    UPDATE capacity_windows_version SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER bookings_windows_insert AFTER INSERT ON bookings
FOR EACH ROW WHEN (NEW.windows IS NOT NULL)
EXECUTE FUNCTION verbund_windows_version();

CREATE TRIGGER bookings_windows_update AFTER UPDATE ON bookings
FOR EACH ROW WHEN ((NEW.windows IS NOT NULL OR OLD.windows IS NOT NULL)
  AND (NEW.windows IS DISTINCT FROM OLD.windows OR NEW.site IS DISTINCT FROM OLD.site
       OR NEW.state IS DISTINCT FROM OLD.state))
EXECUTE FUNCTION verbund_windows_version();

CREATE TRIGGER bookings_windows_delete AFTER DELETE ON bookings
FOR EACH ROW WHEN (OLD.windows IS NOT NULL)
EXECUTE FUNCTION verbund_windows_version();
