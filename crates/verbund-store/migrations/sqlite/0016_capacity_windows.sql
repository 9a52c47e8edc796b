-- Capacity windows (issue 19): a booking's scheduled peaks, as JSON in the booking's row
-- so that every read of a booking has them without a second query. Placement reads the
-- windows of the bookings that hold capacity and have windows, through the partial index.
ALTER TABLE bookings ADD COLUMN windows TEXT;
CREATE INDEX bookings_windows ON bookings(site) WHERE windows IS NOT NULL;

-- Placement reads every site's windows ahead in each booking's write transaction. A
-- process keeps them in memory, per site, and reads a site's again only when its number
-- here moved: every write that changes a booking with windows (its windows, site or
-- state) moves the number of the site it left and of the site it is on, in the same
-- transaction, whichever replica wrote.
CREATE TABLE capacity_windows_version (site TEXT PRIMARY KEY, n BIGINT NOT NULL);

CREATE TRIGGER bookings_windows_insert AFTER INSERT ON bookings
WHEN NEW.windows IS NOT NULL AND NEW.site IS NOT NULL
BEGIN
    INSERT INTO capacity_windows_version (site, n) VALUES (NEW.site, 1)
    ON CONFLICT (site) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER bookings_windows_update AFTER UPDATE ON bookings
WHEN (NEW.windows IS NOT NULL OR OLD.windows IS NOT NULL)
 AND (NEW.windows IS NOT OLD.windows OR NEW.site IS NOT OLD.site OR NEW.state IS NOT OLD.state)
BEGIN
    INSERT INTO capacity_windows_version (site, n) SELECT NEW.site, 1 WHERE NEW.site IS NOT NULL
    ON CONFLICT (site) DO UPDATE SET n = n + 1;
    INSERT INTO capacity_windows_version (site, n) SELECT OLD.site, 1
    WHERE OLD.site IS NOT NULL AND OLD.site IS NOT NEW.site
    ON CONFLICT (site) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER bookings_windows_delete AFTER DELETE ON bookings
WHEN OLD.windows IS NOT NULL AND OLD.site IS NOT NULL
BEGIN
    INSERT INTO capacity_windows_version (site, n) VALUES (OLD.site, 1)
    ON CONFLICT (site) DO UPDATE SET n = n + 1;
END;
