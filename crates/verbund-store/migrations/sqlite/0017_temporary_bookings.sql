-- Temporary bookings (issue 19): a booking's end, its reminder and its data export, as
-- JSON in the booking's row. The lifecycle sweep reads the bookings with an ending
-- through the partial index.
ALTER TABLE bookings ADD COLUMN ending TEXT;
CREATE INDEX bookings_ending ON bookings(id) WHERE ending IS NOT NULL;

-- What a site last reported of a booking's export Job.
ALTER TABLE booking_status ADD COLUMN export TEXT;

-- A booking being exported holds its capacity (its workload runs until its data is out):
-- the running totals of 0003/0004 count the state `exporting` with the others.
DROP TRIGGER bookings_usage_insert;
DROP TRIGGER bookings_usage_release;
DROP TRIGGER bookings_usage_take;
DROP TRIGGER bookings_usage_delete;

CREATE TRIGGER bookings_usage_insert AFTER INSERT ON bookings
WHEN NEW.site IS NOT NULL AND NEW.state IN ('placed','provisioning','active','updating','degraded','exporting','cancelling')
BEGIN
    INSERT INTO site_usage (site, cpu_millis, memory_mib, storage_gib)
    VALUES (NEW.site, NEW.cpu_millis, NEW.memory_mib, NEW.storage_gib)
    ON CONFLICT (site) DO UPDATE SET
        cpu_millis = cpu_millis + excluded.cpu_millis,
        memory_mib = memory_mib + excluded.memory_mib,
        storage_gib = storage_gib + excluded.storage_gib;
END;

CREATE TRIGGER bookings_usage_release AFTER UPDATE ON bookings
WHEN OLD.site IS NOT NULL AND OLD.state IN ('placed','provisioning','active','updating','degraded','exporting','cancelling')
  AND (OLD.site IS NOT NEW.site OR OLD.cpu_millis <> NEW.cpu_millis
       OR OLD.memory_mib <> NEW.memory_mib OR OLD.storage_gib <> NEW.storage_gib
       OR NEW.state NOT IN ('placed','provisioning','active','updating','degraded','exporting','cancelling'))
BEGIN
    UPDATE site_usage SET
        cpu_millis = cpu_millis - OLD.cpu_millis,
        memory_mib = memory_mib - OLD.memory_mib,
        storage_gib = storage_gib - OLD.storage_gib
    WHERE site = OLD.site;
END;

CREATE TRIGGER bookings_usage_take AFTER UPDATE ON bookings
WHEN NEW.site IS NOT NULL AND NEW.state IN ('placed','provisioning','active','updating','degraded','exporting','cancelling')
  AND (OLD.site IS NOT NEW.site OR OLD.cpu_millis <> NEW.cpu_millis
       OR OLD.memory_mib <> NEW.memory_mib OR OLD.storage_gib <> NEW.storage_gib
       OR OLD.state NOT IN ('placed','provisioning','active','updating','degraded','exporting','cancelling'))
BEGIN
    INSERT INTO site_usage (site, cpu_millis, memory_mib, storage_gib)
    VALUES (NEW.site, NEW.cpu_millis, NEW.memory_mib, NEW.storage_gib)
    ON CONFLICT (site) DO UPDATE SET
        cpu_millis = cpu_millis + excluded.cpu_millis,
        memory_mib = memory_mib + excluded.memory_mib,
        storage_gib = storage_gib + excluded.storage_gib;
END;

CREATE TRIGGER bookings_usage_delete AFTER DELETE ON bookings
WHEN OLD.site IS NOT NULL AND OLD.state IN ('placed','provisioning','active','updating','degraded','exporting','cancelling')
BEGIN
    UPDATE site_usage SET
        cpu_millis = cpu_millis - OLD.cpu_millis,
        memory_mib = memory_mib - OLD.memory_mib,
        storage_gib = storage_gib - OLD.storage_gib
    WHERE site = OLD.site;
END;
