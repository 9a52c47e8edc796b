-- Capacity windows (issue 19): a booking's scheduled peaks, as JSON in the booking's row
-- so that every read of a booking has them without a second query. Placement reads the
-- windows of the bookings that hold capacity and have windows, through the partial index.
ALTER TABLE bookings ADD COLUMN windows TEXT;
CREATE INDEX bookings_windows ON bookings(site) WHERE windows IS NOT NULL;
