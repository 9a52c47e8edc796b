-- Desired-state delivery: who depends on a booking (its dependents' folders are
-- re-rendered with it), read by dependency.
CREATE INDEX booking_dependencies_dependency ON booking_dependencies(dependency, booking);

-- The capacity each site's bookings hold, kept as running totals by a trigger in the
-- transaction of every booking write, so that placement (which needs every site's free
-- capacity inside each booking's write transaction) reads 60 rows, not 100,000.
CREATE TABLE site_usage (
    site        TEXT PRIMARY KEY,
    cpu_millis  BIGINT NOT NULL,
    memory_mib  BIGINT NOT NULL,
    storage_gib BIGINT NOT NULL
);

INSERT INTO site_usage (site, cpu_millis, memory_mib, storage_gib)
SELECT site, CAST(SUM(cpu_millis) AS BIGINT), CAST(SUM(memory_mib) AS BIGINT),
       CAST(SUM(storage_gib) AS BIGINT)
FROM bookings WHERE site IS NOT NULL AND state IN ('placed','provisioning','active','updating','degraded','cancelling') GROUP BY site;

CREATE FUNCTION verbund_site_usage() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.site IS NOT NULL AND OLD.state IN ('placed','provisioning','active','updating','degraded','cancelling') THEN
        UPDATE site_usage SET
            cpu_millis = cpu_millis - OLD.cpu_millis,
            memory_mib = memory_mib - OLD.memory_mib,
            storage_gib = storage_gib - OLD.storage_gib
        WHERE site = OLD.site;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.site IS NOT NULL AND NEW.state IN ('placed','provisioning','active','updating','degraded','cancelling') THEN
        INSERT INTO site_usage (site, cpu_millis, memory_mib, storage_gib)
        VALUES (NEW.site, NEW.cpu_millis, NEW.memory_mib, NEW.storage_gib)
        ON CONFLICT (site) DO UPDATE SET
            cpu_millis = site_usage.cpu_millis + EXCLUDED.cpu_millis,
            memory_mib = site_usage.memory_mib + EXCLUDED.memory_mib,
            storage_gib = site_usage.storage_gib + EXCLUDED.storage_gib;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER bookings_site_usage AFTER INSERT OR UPDATE OR DELETE ON bookings
FOR EACH ROW EXECUTE FUNCTION verbund_site_usage();
