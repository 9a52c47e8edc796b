-- Nachnutzung (issue 18): templates published from a booking's configuration, every
-- version of each kept (what an adopter adopted, and what changed since), and the
-- lineage of the bookings adopted from them.
CREATE TABLE templates (
    id            TEXT PRIMARY KEY,
    organisation  TEXT NOT NULL REFERENCES organisations(id),
    offering      TEXT NOT NULL REFERENCES offerings(name),
    name          TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    description   TEXT NOT NULL,
    visibility    TEXT NOT NULL,
    -- The publisher's Land key, for `visibility = 'land'`.
    land          TEXT,
    -- The booking it was published from (never shown to others).
    source        TEXT NOT NULL,
    version       BIGINT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (organisation, name)
);
CREATE INDEX templates_offering ON templates(offering, id);
CREATE TABLE template_versions (
    template      TEXT NOT NULL REFERENCES templates(id),
    version       BIGINT NOT NULL,
    plan          TEXT NOT NULL,
    config        TEXT NOT NULL,
    published_by  TEXT NOT NULL,
    published_at  TEXT NOT NULL,
    PRIMARY KEY (template, version)
);
CREATE TABLE booking_templates (
    booking       TEXT PRIMARY KEY REFERENCES bookings(id),
    template      TEXT NOT NULL REFERENCES templates(id),
    version       BIGINT NOT NULL,
    organisation  TEXT NOT NULL,
    adopted_at    TEXT NOT NULL
);
CREATE INDEX booking_templates_template ON booking_templates(template);
