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

CREATE TRIGGER bookings_counts_insert AFTER INSERT ON bookings
BEGIN
    INSERT INTO fleet_counts (site, offering, state, version, bookings)
    VALUES (COALESCE(NEW.site, ''), NEW.offering, NEW.state, COALESCE(NEW.version, ''), 1)
    ON CONFLICT (site, offering, state, version) DO UPDATE SET bookings = fleet_counts.bookings + excluded.bookings;
    INSERT INTO organisation_counts (organisation, state, bookings)
    VALUES (NEW.organisation, NEW.state, 1)
    ON CONFLICT (organisation, state) DO UPDATE SET bookings = organisation_counts.bookings + excluded.bookings;
END;

CREATE TRIGGER bookings_counts_delete AFTER DELETE ON bookings
BEGIN
    INSERT INTO fleet_counts (site, offering, state, version, bookings)
    VALUES (COALESCE(OLD.site, ''), OLD.offering, OLD.state, COALESCE(OLD.version, ''), -1)
    ON CONFLICT (site, offering, state, version) DO UPDATE SET bookings = fleet_counts.bookings + excluded.bookings;
    INSERT INTO organisation_counts (organisation, state, bookings)
    VALUES (OLD.organisation, OLD.state, -1)
    ON CONFLICT (organisation, state) DO UPDATE SET bookings = organisation_counts.bookings + excluded.bookings;
END;

CREATE TRIGGER bookings_fleet_counts_update AFTER UPDATE ON bookings
WHEN OLD.site IS NOT NEW.site OR OLD.offering IS NOT NEW.offering
  OR OLD.state IS NOT NEW.state OR OLD.version IS NOT NEW.version
BEGIN
    INSERT INTO fleet_counts (site, offering, state, version, bookings)
    VALUES (COALESCE(OLD.site, ''), OLD.offering, OLD.state, COALESCE(OLD.version, ''), -1)
    ON CONFLICT (site, offering, state, version) DO UPDATE SET bookings = fleet_counts.bookings + excluded.bookings;
    INSERT INTO fleet_counts (site, offering, state, version, bookings)
    VALUES (COALESCE(NEW.site, ''), NEW.offering, NEW.state, COALESCE(NEW.version, ''), 1)
    ON CONFLICT (site, offering, state, version) DO UPDATE SET bookings = fleet_counts.bookings + excluded.bookings;
END;

CREATE TRIGGER bookings_organisation_counts_update AFTER UPDATE ON bookings
WHEN OLD.organisation IS NOT NEW.organisation OR OLD.state IS NOT NEW.state
BEGIN
    INSERT INTO organisation_counts (organisation, state, bookings)
    VALUES (OLD.organisation, OLD.state, -1)
    ON CONFLICT (organisation, state) DO UPDATE SET bookings = organisation_counts.bookings + excluded.bookings;
    INSERT INTO organisation_counts (organisation, state, bookings)
    VALUES (NEW.organisation, NEW.state, 1)
    ON CONFLICT (organisation, state) DO UPDATE SET bookings = organisation_counts.bookings + excluded.bookings;
END;

CREATE TRIGGER booking_status_counts_insert AFTER INSERT ON booking_status
BEGIN
    INSERT INTO applied_counts (site, offering, applied_version, bookings)
    VALUES (NEW.site, NEW.offering, COALESCE(NEW.applied_version, ''), 1)
    ON CONFLICT (site, offering, applied_version) DO UPDATE SET bookings = applied_counts.bookings + excluded.bookings;
END;

CREATE TRIGGER booking_status_counts_delete AFTER DELETE ON booking_status
BEGIN
    INSERT INTO applied_counts (site, offering, applied_version, bookings)
    VALUES (OLD.site, OLD.offering, COALESCE(OLD.applied_version, ''), -1)
    ON CONFLICT (site, offering, applied_version) DO UPDATE SET bookings = applied_counts.bookings + excluded.bookings;
END;

CREATE TRIGGER booking_status_counts_update AFTER UPDATE ON booking_status
WHEN OLD.site IS NOT NEW.site OR OLD.applied_version IS NOT NEW.applied_version
BEGIN
    INSERT INTO applied_counts (site, offering, applied_version, bookings)
    VALUES (OLD.site, OLD.offering, COALESCE(OLD.applied_version, ''), -1)
    ON CONFLICT (site, offering, applied_version) DO UPDATE SET bookings = applied_counts.bookings + excluded.bookings;
    INSERT INTO applied_counts (site, offering, applied_version, bookings)
    VALUES (NEW.site, NEW.offering, COALESCE(NEW.applied_version, ''), 1)
    ON CONFLICT (site, offering, applied_version) DO UPDATE SET bookings = applied_counts.bookings + excluded.bookings;
END;

-- A booking's move between states that both hold capacity (provisioning → active →
-- degraded, the moves site reports cause) leaves site_usage as it is: the triggers of
-- 0003 released and took the same amount again on every such update.
DROP TRIGGER bookings_usage_release;
DROP TRIGGER bookings_usage_take;

CREATE TRIGGER bookings_usage_release AFTER UPDATE ON bookings
WHEN OLD.site IS NOT NULL AND OLD.state IN ('placed','provisioning','active','updating','degraded','cancelling')
  AND (OLD.site IS NOT NEW.site OR OLD.cpu_millis <> NEW.cpu_millis
       OR OLD.memory_mib <> NEW.memory_mib OR OLD.storage_gib <> NEW.storage_gib
       OR NEW.state NOT IN ('placed','provisioning','active','updating','degraded','cancelling'))
BEGIN
    UPDATE site_usage SET
        cpu_millis = cpu_millis - OLD.cpu_millis,
        memory_mib = memory_mib - OLD.memory_mib,
        storage_gib = storage_gib - OLD.storage_gib
    WHERE site = OLD.site;
END;

CREATE TRIGGER bookings_usage_take AFTER UPDATE ON bookings
WHEN NEW.site IS NOT NULL AND NEW.state IN ('placed','provisioning','active','updating','degraded','cancelling')
  AND (OLD.site IS NOT NEW.site OR OLD.cpu_millis <> NEW.cpu_millis
       OR OLD.memory_mib <> NEW.memory_mib OR OLD.storage_gib <> NEW.storage_gib
       OR OLD.state NOT IN ('placed','provisioning','active','updating','degraded','cancelling'))
BEGIN
    INSERT INTO site_usage (site, cpu_millis, memory_mib, storage_gib)
    VALUES (NEW.site, NEW.cpu_millis, NEW.memory_mib, NEW.storage_gib)
    ON CONFLICT (site) DO UPDATE SET
        cpu_millis = cpu_millis + excluded.cpu_millis,
        memory_mib = memory_mib + excluded.memory_mib,
        storage_gib = storage_gib + excluded.storage_gib;
END;
