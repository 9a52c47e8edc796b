-- A booking's configuration values that its offering's schema declares secret
-- (`writeOnly: true` or `format: password`), kept apart from its configuration: the
-- API never returns them (a booking shows only which pointers are set), and they reach
-- the site only sealed for its age recipient. One row per JSON pointer into the
-- configuration. The rows go when the booking reaches a final state.

CREATE TABLE booking_secrets (
    booking  TEXT NOT NULL REFERENCES bookings(id),
    pointer  TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (booking, pointer)
);

-- What the publisher sealed for a booking (a SOPS document, JSON), by the site and
-- recipient it is sealed for and the digest of the plaintext document and recipient
-- (`verbund_seal::digest`): sealing is randomised, so an unchanged booking hands out the
-- document sealed before instead of a new one each render (which would be a new commit
-- each pass). Only the booking's latest document is kept.

CREATE TABLE sealed_secrets (
    booking    TEXT NOT NULL REFERENCES bookings(id),
    site       TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    digest     TEXT NOT NULL,
    document   TEXT NOT NULL,
    sealed_at  TEXT NOT NULL,
    PRIMARY KEY (booking, site, recipient, digest)
);
