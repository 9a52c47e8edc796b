-- The directory, the catalog, accounts and the audit trail.
-- Timestamps are RFC 3339 UTC text with millisecond precision (sortable as text);
-- structured specs are JSON text. The PostgreSQL schema mirrors this one.

CREATE TABLE organisations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    level       TEXT NOT NULL,
    ars         TEXT UNIQUE,
    ags         TEXT UNIQUE,
    parent      TEXT REFERENCES organisations(id),
    land        TEXT,
    population  BIGINT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX organisations_land ON organisations(land, id);
CREATE INDEX organisations_parent ON organisations(parent, id);
CREATE INDEX organisations_level ON organisations(level, id);
CREATE INDEX organisations_name ON organisations(name);
CREATE UNIQUE INDEX organisations_one_bund ON organisations(level) WHERE level = 'bund';

CREATE TABLE providers (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE sites (
    name        TEXT PRIMARY KEY,
    provider    TEXT NOT NULL REFERENCES providers(name),
    spec        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX sites_provider ON sites(provider, name);

CREATE TABLE ozg_services (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    situation   TEXT NOT NULL,
    field       TEXT NOT NULL
);

CREATE TABLE offerings (
    name            TEXT PRIMARY KEY,
    vendor          TEXT NOT NULL REFERENCES organisations(id),
    category        TEXT NOT NULL,
    ozg_id          TEXT REFERENCES ozg_services(id),
    spec            TEXT NOT NULL,
    latest_version  TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX offerings_vendor ON offerings(vendor, name);
CREATE INDEX offerings_category ON offerings(category, name);

CREATE TABLE offering_versions (
    offering      TEXT NOT NULL REFERENCES offerings(name),
    version       TEXT NOT NULL,
    spec          TEXT NOT NULL,
    published_at  TEXT NOT NULL,
    PRIMARY KEY (offering, version)
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    email         TEXT,
    created_at    TEXT NOT NULL
);

CREATE TABLE memberships (
    user_id       TEXT NOT NULL REFERENCES users(id),
    role          TEXT NOT NULL,
    organisation  TEXT REFERENCES organisations(id),
    provider      TEXT REFERENCES providers(name)
);
CREATE INDEX memberships_user ON memberships(user_id);
CREATE INDEX memberships_organisation ON memberships(organisation, user_id);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
);
CREATE INDEX tokens_user ON tokens(user_id, id);

CREATE TABLE audit_events (
    seq         BIGINT PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    object      TEXT NOT NULL,
    before      TEXT,
    after       TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_actor ON audit_events(actor, seq);
CREATE INDEX audit_action ON audit_events(action, seq);
CREATE INDEX audit_object ON audit_events(object, seq);
