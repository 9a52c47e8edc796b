-- Shared instances (issue 18): a tenancy is a booking that names the shared instance it
-- runs in. It holds no capacity of its own (its resource columns are zero), and the
-- instance's desired state lists its tenants, read by this index.
ALTER TABLE bookings ADD COLUMN instance TEXT;
CREATE INDEX bookings_instance ON bookings(instance, id) WHERE instance IS NOT NULL;
