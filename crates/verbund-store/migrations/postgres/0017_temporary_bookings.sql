-- Temporary bookings (issue 19): a booking's end, its reminder and its data export, as
-- JSON in the booking's row. The lifecycle sweep reads the bookings with an ending
-- through the partial index.
ALTER TABLE bookings ADD COLUMN ending TEXT;
CREATE INDEX bookings_ending ON bookings(id) WHERE ending IS NOT NULL;

-- What a site last reported of a booking's export Job.
ALTER TABLE booking_status ADD COLUMN export TEXT;

-- A booking being exported holds its capacity (its workload runs until its data is out):
-- the running totals of 0003/0004 count the state `exporting` with the others.
CREATE OR REPLACE FUNCTION verbund_site_usage() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.site IS NOT DISTINCT FROM NEW.site
        AND OLD.cpu_millis = NEW.cpu_millis AND OLD.memory_mib = NEW.memory_mib
        AND OLD.storage_gib = NEW.storage_gib
        AND (OLD.state IN ('placed','provisioning','active','updating','degraded','exporting','cancelling')) = (NEW.state IN ('placed','provisioning','active','updating','degraded','exporting','cancelling')) THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.site IS NOT NULL AND OLD.state IN ('placed','provisioning','active','updating','degraded','exporting','cancelling') THEN
        UPDATE site_usage SET
            cpu_millis = cpu_millis - OLD.cpu_millis,
            memory_mib = memory_mib - OLD.memory_mib,
            storage_gib = storage_gib - OLD.storage_gib
        WHERE site = OLD.site;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.site IS NOT NULL AND NEW.state IN ('placed','provisioning','active','updating','degraded','exporting','cancelling') THEN
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
