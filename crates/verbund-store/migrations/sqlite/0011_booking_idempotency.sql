-- `Idempotency-Key`s of `POST /bookings` (draft-ietf-httpapi-idempotency-key-header):
-- a client that retries a booking after a crash or a lost answer sends the same key and
-- gets the booking its first request made, instead of a second one. A key belongs to the
-- account that sent it (whichever of its tokens), and is written in the transaction
-- that stores the booking, so a key is recorded if and only if its booking is. The
-- fingerprint (SHA-256 of the request body in canonical form) tells a retry from another
-- request under the same key; `organisation` is the one the body books for. Expired keys
-- (`expires_at`, 24 hours after use) no longer count and are removed by the next
-- idempotent booking.

CREATE TABLE booking_idempotency (
    account          TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    organisation     TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    booking          TEXT NOT NULL REFERENCES bookings(id),
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    PRIMARY KEY (account, idempotency_key)
);

CREATE INDEX booking_idempotency_expiry ON booking_idempotency (expires_at);
