-- Bookings, their placement decisions and compliance, and versioned policy documents.

CREATE TABLE bookings (
    id             TEXT PRIMARY KEY,
    organisation   TEXT NOT NULL REFERENCES organisations(id),
    offering       TEXT NOT NULL REFERENCES offerings(name),
    plan           TEXT NOT NULL,
    config         TEXT NOT NULL,
    channel        TEXT NOT NULL,
    state          TEXT NOT NULL,
    site           TEXT REFERENCES sites(name),
    version        TEXT,
    reason         TEXT,
    dependency_of  TEXT REFERENCES bookings(id),
    compliant      BIGINT NOT NULL DEFAULT 1,
    compliance     TEXT,
    decision       TEXT,
    cpu_millis     BIGINT NOT NULL,
    memory_mib     BIGINT NOT NULL,
    storage_gib    BIGINT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    state_since    TEXT NOT NULL
);
CREATE INDEX bookings_organisation ON bookings(organisation, id);
CREATE INDEX bookings_site ON bookings(site, state);
CREATE INDEX bookings_offering ON bookings(offering, id);
CREATE INDEX bookings_state ON bookings(state, id);
CREATE INDEX bookings_compliant ON bookings(compliant, id);

CREATE TABLE booking_dependencies (
    booking     TEXT NOT NULL REFERENCES bookings(id),
    dependency  TEXT NOT NULL REFERENCES bookings(id),
    PRIMARY KEY (booking, dependency)
);

CREATE TABLE policy_documents (
    id          TEXT NOT NULL,
    version     BIGINT NOT NULL,
    name        TEXT NOT NULL,
    layer       TEXT NOT NULL,
    owner       TEXT REFERENCES organisations(id),
    text        TEXT NOT NULL,
    deleted     BIGINT NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (id, version)
);

-- An org-admin role may cover the organisations below its own.
ALTER TABLE memberships ADD COLUMN delegated BIGINT NOT NULL DEFAULT 0;
