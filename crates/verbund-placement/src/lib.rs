//! Booking and placement: turns a booking request into a placed (or rejected) booking,
//! keeps every placement compliant with the policies in force, and drives the parts of
//! the lifecycle that need no site (approval, cancellation, retention).
//!
//! The decisions themselves are pure (`verbund-policy`); this crate gathers their
//! inputs from the store and writes their outcome back, atomically.

mod compliance;
mod ending;
mod policies;
mod service;
mod tenancy;

pub use compliance::ReevaluationSummary;
pub use ending::EndingPass;
pub use policies::{document_id, ensure_default_policies, PolicySubmission};
pub use service::{BookingError, BookingPreview, Bookings, DependencyPreview, RunningBooking};
