//! The records a booking is rendered from (its organisation, offering, version and
//! plan), loaded from the store in bulk and kept for the length of one delivery job, so
//! that rendering 100,000 bookings asks the store for each organisation and offering
//! once, not once per booking.

use std::collections::{BTreeSet, HashMap};

use verbund_domain::booking::Booking;
use verbund_domain::catalog::{Offering, OfferingVersion};
use verbund_domain::directory::Organisation;
use verbund_render::PlacedBooking;
use verbund_store::Store;

use crate::{DeliveryError, Result};

/// Organisations, offerings and their versions by name, as loaded so far.
#[derive(Debug, Default)]
pub(crate) struct Records {
    organisations: HashMap<String, Organisation>,
    offerings: HashMap<String, Offering>,
    versions: HashMap<(String, String), OfferingVersion>,
}

impl Records {
    /// Loads whatever `bookings` need that is not loaded yet.
    pub(crate) async fn load(&mut self, store: &Store, bookings: &[Booking]) -> Result<()> {
        let missing: BTreeSet<&str> = bookings
            .iter()
            .map(|b| b.organisation.as_str())
            .filter(|o| !self.organisations.contains_key(*o))
            .collect();
        if !missing.is_empty() {
            let ids: Vec<String> = missing.into_iter().map(str::to_owned).collect();
            for o in store.organisations_by_ids(&ids).await? {
                self.organisations.insert(o.id.clone(), o);
            }
        }
        let offerings: BTreeSet<&str> = bookings
            .iter()
            .map(|b| b.offering.as_str())
            .filter(|o| !self.offerings.contains_key(*o))
            .collect();
        for name in offerings {
            self.offerings
                .insert(name.to_owned(), store.get_offering(name).await?);
            for v in store.list_versions(name).await? {
                self.versions
                    .insert((name.to_owned(), v.spec.version.clone()), v);
            }
        }
        Ok(())
    }

    /// The organisation of a loaded booking.
    pub(crate) fn organisation(&self, b: &Booking) -> Result<&Organisation> {
        self.organisations.get(&b.organisation).ok_or_else(|| {
            DeliveryError::Inconsistent(format!(
                "booking `{}` names the missing organisation `{}`",
                b.id, b.organisation
            ))
        })
    }

    /// `bookings` with their records, for the renderer. `context` are the bookings
    /// their dependency links may point to (a superset of `bookings` is fine); links to
    /// bookings outside it are left out, as the booking's dependency is then not
    /// delivered.
    pub(crate) fn placed<'a>(
        &'a self,
        bookings: &'a [Booking],
        context: &'a HashMap<&'a str, &'a Booking>,
    ) -> Result<Vec<PlacedBooking<'a>>> {
        let mut placed = Vec::with_capacity(bookings.len());
        for b in bookings {
            let organisation = self.organisation(b)?;
            let offering = self.offerings.get(&b.offering).ok_or_else(|| {
                DeliveryError::Inconsistent(format!("booking `{}` names a missing offering", b.id))
            })?;
            let version_name = b
                .version
                .as_ref()
                .or(offering.latest_version.as_ref())
                .ok_or_else(|| {
                    DeliveryError::Inconsistent(format!(
                        "booking `{}` has no version to deliver",
                        b.id
                    ))
                })?;
            let version = self
                .versions
                .get(&(b.offering.clone(), version_name.clone()))
                .ok_or_else(|| {
                    DeliveryError::Inconsistent(format!(
                        "booking `{}` names the missing version `{version_name}`",
                        b.id
                    ))
                })?;
            let plan = offering.spec.plan(&b.plan).ok_or_else(|| {
                DeliveryError::Inconsistent(format!(
                    "booking `{}` names the missing plan `{}`",
                    b.id, b.plan
                ))
            })?;
            let dependencies = b
                .dependencies
                .iter()
                .filter_map(|d| context.get(d.as_str()).copied())
                .collect();
            placed.push(PlacedBooking {
                booking: b,
                organisation,
                offering: &offering.spec,
                version: &version.spec,
                plan,
                dependencies,
            });
        }
        Ok(placed)
    }
}
