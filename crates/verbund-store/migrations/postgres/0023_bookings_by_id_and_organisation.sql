-- A wide caller's scope (a Land's administrator) is applied while walking the bookings in
-- id order (`Store::list_bookings`): with the organisation beside the id in one index, the
-- walk reads the index alone instead of each booking's row.
CREATE INDEX bookings_id_organisation ON bookings(id, organisation);
