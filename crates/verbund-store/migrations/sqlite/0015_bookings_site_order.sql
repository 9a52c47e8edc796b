-- A site's bookings in page order (issue 16: every list p99 < 50 ms).
--
-- `GET /bookings?site=…` reads a site's bookings ordered by id from a cursor. With only
-- `bookings_site (site, state)` the database either sorts all of the site's bookings
-- (about 1,700 per site at the scale of Germany) or walks the whole table in id order
-- to find the site's. This index hands out a page directly.
CREATE INDEX bookings_site_id ON bookings(site, id);
