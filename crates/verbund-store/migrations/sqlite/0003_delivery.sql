-- Desired-state delivery: who depends on a booking (its dependents' folders are
-- re-rendered with it), read by dependency.
CREATE INDEX booking_dependencies_dependency ON booking_dependencies(dependency, booking);

-- The capacity each site's bookings hold, kept as running totals by triggers in the
-- transaction of every booking write, so that placement (which needs every site's free
-- capacity inside each booking's write transaction) reads 60 rows, not 100,000.
CREATE TABLE site_usage (
    site        TEXT PRIMARY KEY,
    cpu_millis  BIGINT NOT NULL,
    memory_mib  BIGINT NOT NULL,
    storage_gib BIGINT NOT NULL
);

INSERT INTO site_usage (site, cpu_millis, memory_mib, storage_gib)
SELECT site, SUM(cpu_millis), SUM(memory_mib), SUM(storage_gib) FROM bookings
WHERE site IS NOT NULL AND state IN ('placed','provisioning','active','updating','degraded','cancelling') GROUP BY site;

CREATE TRIGGER bookings_usage_insert AFTER INSERT ON bookings
WHEN NEW.site IS NOT NULL AND NEW.state IN ('placed','provisioning','active','updating','degraded','cancelling')
BEGIN
    INSERT INTO site_usage (site, cpu_millis, memory_mib, storage_gib)
    VALUES (NEW.site, NEW.cpu_millis, NEW.memory_mib, NEW.storage_gib)
    ON CONFLICT (site) DO UPDATE SET
        cpu_millis = cpu_millis + excluded.cpu_millis,
        memory_mib = memory_mib + excluded.memory_mib,
        storage_gib = storage_gib + excluded.storage_gib;
END;

CREATE TRIGGER bookings_usage_release AFTER UPDATE ON bookings
WHEN OLD.site IS NOT NULL AND OLD.state IN ('placed','provisioning','active','updating','degraded','cancelling')
BEGIN
    UPDATE site_usage SET
        cpu_millis = cpu_millis - OLD.cpu_millis,
        memory_mib = memory_mib - OLD.memory_mib,
        storage_gib = storage_gib - OLD.storage_gib
    WHERE site = OLD.site;
END;

CREATE TRIGGER bookings_usage_take AFTER UPDATE ON bookings
WHEN NEW.site IS NOT NULL AND NEW.state IN ('placed','provisioning','active','updating','degraded','cancelling')
BEGIN
    INSERT INTO site_usage (site, cpu_millis, memory_mib, storage_gib)
    VALUES (NEW.site, NEW.cpu_millis, NEW.memory_mib, NEW.storage_gib)
    ON CONFLICT (site) DO UPDATE SET
        cpu_millis = cpu_millis + excluded.cpu_millis,
        memory_mib = memory_mib + excluded.memory_mib,
        storage_gib = storage_gib + excluded.storage_gib;
END;

CREATE TRIGGER bookings_usage_delete AFTER DELETE ON bookings
WHEN OLD.site IS NOT NULL AND OLD.state IN ('placed','provisioning','active','updating','degraded','cancelling')
BEGIN
    UPDATE site_usage SET
        cpu_millis = cpu_millis - OLD.cpu_millis,
        memory_mib = memory_mib - OLD.memory_mib,
        storage_gib = storage_gib - OLD.storage_gib
    WHERE site = OLD.site;
END;
