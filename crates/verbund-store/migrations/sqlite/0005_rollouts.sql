-- Staged rollouts. A rollout's waves and each booking's place in it are stored, so that
-- a control plane killed at any moment resumes exactly where the last committed tick
-- left it. Reference bookings (a site's test tenant) live in the `test` environment.

ALTER TABLE bookings ADD COLUMN environment TEXT NOT NULL DEFAULT 'prod';
CREATE INDEX bookings_reference ON bookings(offering, environment, site);

-- Organisations may opt in to receive new versions first (the canary stage).
ALTER TABLE organisations ADD COLUMN early_adopter BIGINT NOT NULL DEFAULT 0;

CREATE TABLE rollouts (
    id            TEXT PRIMARY KEY,
    offering      TEXT NOT NULL REFERENCES offerings(name),
    version       TEXT NOT NULL,
    state         TEXT NOT NULL,
    reason        TEXT,
    policy        TEXT NOT NULL,
    -- The stage of each wave, as a JSON array.
    waves         TEXT NOT NULL,
    current_wave  BIGINT NOT NULL,
    -- Failures of the current wave accepted by resuming after a halt.
    tolerated     BIGINT NOT NULL,
    smoke_test    BIGINT NOT NULL,
    pinned        TEXT NOT NULL,
    excluded      TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    finished_at   TEXT,
    -- Engine ticks that changed something.
    ticks         BIGINT NOT NULL
);
CREATE INDEX rollouts_offering ON rollouts(offering, id);
CREATE INDEX rollouts_state ON rollouts(state, id);
-- At most one unfinished rollout per offering.
CREATE UNIQUE INDEX rollouts_one_open ON rollouts(offering) WHERE state IN ('running', 'paused', 'halted');

CREATE TABLE rollout_items (
    rollout       TEXT NOT NULL REFERENCES rollouts(id),
    booking       TEXT NOT NULL REFERENCES bookings(id),
    site          TEXT NOT NULL,
    wave          BIGINT NOT NULL,
    reference     BIGINT NOT NULL,
    state         TEXT NOT NULL,
    from_version  TEXT,
    since         TEXT NOT NULL,
    ready_since   TEXT,
    reason        TEXT,
    PRIMARY KEY (rollout, booking)
);
CREATE INDEX rollout_items_wave ON rollout_items(rollout, wave, state);
CREATE INDEX rollout_items_site ON rollout_items(rollout, site);
CREATE INDEX rollout_items_booking ON rollout_items(booking);
