-- Fleet health: per-site credentials for agents, what each site last reported about
-- itself and about each of its bookings. A report is one transaction: the site's row
-- (whose sequence only grows), its bookings' rows, and the lifecycle moves they imply.

CREATE TABLE site_tokens (
    id          TEXT PRIMARY KEY,
    site        TEXT NOT NULL REFERENCES sites(name),
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
);
CREATE INDEX site_tokens_site ON site_tokens(site, id);

CREATE TABLE site_status (
    site                TEXT PRIMARY KEY REFERENCES sites(name),
    sequence            BIGINT NOT NULL,
    reported_at         TEXT NOT NULL,
    interval_seconds    BIGINT NOT NULL,
    agent               TEXT NOT NULL,
    simulated           BIGINT NOT NULL,
    kubernetes_version  TEXT NOT NULL,
    free_cpu_millis     BIGINT NOT NULL,
    free_memory_mib     BIGINT NOT NULL,
    free_storage_gib    BIGINT NOT NULL,
    health              TEXT NOT NULL,
    message             TEXT,
    -- Set once when verbund concluded the site silent (and audited it); cleared by its next report.
    silent_since        TEXT
);

CREATE TABLE booking_status (
    booking           TEXT PRIMARY KEY REFERENCES bookings(id),
    site              TEXT NOT NULL,
    offering          TEXT NOT NULL,
    sequence          BIGINT NOT NULL,
    observed_at       TEXT NOT NULL,
    applied_version   TEXT,
    desired_replicas  BIGINT NOT NULL,
    ready_replicas    BIGINT NOT NULL,
    smoke_test        TEXT NOT NULL,
    conditions        TEXT NOT NULL,
    problem           TEXT
);
CREATE INDEX booking_status_site ON booking_status(site);

-- An organisation's own fleet view counts its bookings from this index alone.
CREATE INDEX bookings_organisation_state ON bookings(organisation, state);

-- The fleet view's counts, kept as running totals by triggers in the transaction of
-- every booking and observation write (like site_usage), so that the view of 100,000
-- bookings reads a few thousand rows instead of scanning them. '' stands for "none"
-- (a booking not placed, without a version, or not reported running any).
CREATE TABLE fleet_counts (
    site      TEXT NOT NULL,
    offering  TEXT NOT NULL,
    state     TEXT NOT NULL,
    version   TEXT NOT NULL,
    bookings  BIGINT NOT NULL,
    PRIMARY KEY (site, offering, state, version)
);
INSERT INTO fleet_counts (site, offering, state, version, bookings)
SELECT COALESCE(site, ''), offering, state, COALESCE(version, ''), COUNT(*) FROM bookings
GROUP BY COALESCE(site, ''), offering, state, COALESCE(version, '');

CREATE TABLE organisation_counts (
    organisation  TEXT NOT NULL,
    state         TEXT NOT NULL,
    bookings      BIGINT NOT NULL,
    PRIMARY KEY (organisation, state)
);
INSERT INTO organisation_counts (organisation, state, bookings)
SELECT organisation, state, COUNT(*) FROM bookings GROUP BY organisation, state;

CREATE TABLE applied_counts (
    site             TEXT NOT NULL,
    offering         TEXT NOT NULL,
    applied_version  TEXT NOT NULL,
    bookings         BIGINT NOT NULL,
    PRIMARY KEY (site, offering, applied_version)
);

CREATE FUNCTION verbund_fleet_counts() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.site IS NOT DISTINCT FROM NEW.site
        AND OLD.offering = NEW.offering AND OLD.state = NEW.state
        AND OLD.version IS NOT DISTINCT FROM NEW.version
        AND OLD.organisation = NEW.organisation THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
    INSERT INTO fleet_counts (site, offering, state, version, bookings)
    VALUES (COALESCE(OLD.site, ''), OLD.offering, OLD.state, COALESCE(OLD.version, ''), -1)
    ON CONFLICT (site, offering, state, version) DO UPDATE SET bookings = fleet_counts.bookings + EXCLUDED.bookings;
    INSERT INTO organisation_counts (organisation, state, bookings)
    VALUES (OLD.organisation, OLD.state, -1)
    ON CONFLICT (organisation, state) DO UPDATE SET bookings = organisation_counts.bookings + excluded.bookings;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO fleet_counts (site, offering, state, version, bookings)
    VALUES (COALESCE(NEW.site, ''), NEW.offering, NEW.state, COALESCE(NEW.version, ''), 1)
    ON CONFLICT (site, offering, state, version) DO UPDATE SET bookings = fleet_counts.bookings + EXCLUDED.bookings;
    INSERT INTO organisation_counts (organisation, state, bookings)
    VALUES (NEW.organisation, NEW.state, 1)
    ON CONFLICT (organisation, state) DO UPDATE SET bookings = organisation_counts.bookings + excluded.bookings;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER bookings_fleet_counts AFTER INSERT OR UPDATE OR DELETE ON bookings
FOR EACH ROW EXECUTE FUNCTION verbund_fleet_counts();

CREATE FUNCTION verbund_applied_counts() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.site = NEW.site
        AND OLD.applied_version IS NOT DISTINCT FROM NEW.applied_version THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
    INSERT INTO applied_counts (site, offering, applied_version, bookings)
    VALUES (OLD.site, OLD.offering, COALESCE(OLD.applied_version, ''), -1)
    ON CONFLICT (site, offering, applied_version) DO UPDATE SET bookings = applied_counts.bookings + excluded.bookings;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO applied_counts (site, offering, applied_version, bookings)
    VALUES (NEW.site, NEW.offering, COALESCE(NEW.applied_version, ''), 1)
    ON CONFLICT (site, offering, applied_version) DO UPDATE SET bookings = applied_counts.bookings + excluded.bookings;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER booking_status_applied_counts AFTER INSERT OR UPDATE OR DELETE ON booking_status
FOR EACH ROW EXECUTE FUNCTION verbund_applied_counts();

-- A booking's move between states that both hold capacity (provisioning → active →
-- degraded, the moves site reports cause) leaves site_usage as it is.
CREATE OR REPLACE FUNCTION verbund_site_usage() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.site IS NOT DISTINCT FROM NEW.site
        AND OLD.cpu_millis = NEW.cpu_millis AND OLD.memory_mib = NEW.memory_mib
        AND OLD.storage_gib = NEW.storage_gib
        AND (OLD.state IN ('placed','provisioning','active','updating','degraded','cancelling')) = (NEW.state IN ('placed','provisioning','active','updating','degraded','cancelling')) THEN
        RETURN NULL;
    END IF;
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
