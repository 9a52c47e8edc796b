-- Bookings whose desired state the renderer refuses (a package that cannot start as
-- the booking, a configuration no YAML can hold): the reason and since when. The rest
-- of the site is delivered; the refused booking keeps what its site already has. The
-- row goes when the booking renders again. Changes are audited as
-- `booking.undeliverable` and `booking.deliverable` by `system/delivery`.

CREATE TABLE booking_delivery (
    booking  TEXT PRIMARY KEY REFERENCES bookings(id),
    reason   TEXT NOT NULL,
    since    TEXT NOT NULL
);
