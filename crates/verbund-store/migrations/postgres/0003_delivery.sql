-- Desired-state delivery: who depends on a booking (its dependents' folders are
-- re-rendered with it), read by dependency.
CREATE INDEX booking_dependencies_dependency ON booking_dependencies(dependency, booking);
