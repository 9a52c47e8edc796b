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
CREATE INDEX booking_status_versions ON booking_status(offering, applied_version);

-- The fleet view counts bookings by these, from the indexes alone.
CREATE INDEX bookings_offering_state ON bookings(offering, state, version);
CREATE INDEX bookings_organisation_state ON bookings(organisation, state);
