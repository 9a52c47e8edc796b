//! The records a booking is rendered from (its organisation, offering, version and
//! plan), loaded from the store in bulk and kept for the length of one delivery job, so
//! that rendering 100,000 bookings asks the store for each organisation and offering
//! once, not once per booking.

use std::collections::{BTreeSet, HashMap};

use verbund_domain::booking::Booking;
use verbund_domain::catalog::{Offering, OfferingVersion};
use verbund_domain::directory::Organisation;
use verbund_domain::directory::{Environment, SiteSpec};
use verbund_render::{PlacedBooking, RenderOptions, Sealed};
use verbund_store::Store;

use crate::{DeliveryError, Result};

/// Organisations, offerings and their versions by name, as loaded so far.
#[derive(Debug, Default)]
pub(crate) struct Records {
    organisations: HashMap<String, Organisation>,
    offerings: HashMap<String, Offering>,
    versions: HashMap<(String, String), OfferingVersion>,
    /// Bookings' sealed secrets, by booking id (see `sealing`).
    pub(crate) sealed: Sealed,
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

    /// A digest of everything [`verbund_render::render`] reads for this site's
    /// environment: the site, the options, and each booking with its organisation,
    /// offering and version (the dependencies and dependents of a booking are bookings
    /// of the same site, so they are in it too). Equal digests mean byte-identical
    /// renders, which lets an unchanged site skip rendering.
    pub(crate) fn fingerprint(
        &self,
        spec: &SiteSpec,
        environment: Environment,
        bookings: &[Booking],
        options: &RenderOptions,
    ) -> Result<[u8; 20]> {
        use sha1::Digest;
        let mut h = sha1::Sha1::new();
        let json = |h: &mut sha1::Sha1, value: &dyn erased::Json| -> Result<()> {
            value
                .write(h)
                .map_err(|e| DeliveryError::Inconsistent(e.to_string()))?;
            h.update([0]);
            Ok(())
        };
        json(&mut h, spec)?;
        h.update(format!("{environment:?}\0{options:?}\0").as_bytes());
        // Offering and version, digested once per site.
        let mut packages: HashMap<(&str, Option<&str>), [u8; 20]> = HashMap::new();
        for b in bookings {
            json(&mut h, b)?;
            json(&mut h, self.organisation(b)?)?;
            let key = (b.offering.as_str(), b.version.as_deref());
            let digest = match packages.get(&key) {
                Some(d) => *d,
                None => {
                    let mut o = sha1::Sha1::new();
                    if let Some(offering) = self.offerings.get(&b.offering) {
                        json(&mut o, offering)?;
                        let version = b.version.as_ref().or(offering.latest_version.as_ref());
                        if let Some(v) = version
                            .and_then(|v| self.versions.get(&(b.offering.clone(), v.clone())))
                        {
                            json(&mut o, v)?;
                        }
                    }
                    let d: [u8; 20] = o.finalize().into();
                    packages.insert(key, d);
                    d
                }
            };
            h.update(digest);
            // A changed secret value changes only its sealed document.
            if let Some(s) = self.sealed.get(&b.id) {
                h.update(s.recipient.as_bytes());
                json(&mut h, &s.pointers)?;
                json(&mut h, &s.document)?;
            }
        }
        Ok(h.finalize().into())
    }

    /// The configuration schema of a loaded booking's offering.
    pub(crate) fn offering_schema(&self, b: &Booking) -> Option<&serde_json::Value> {
        self.offerings
            .get(&b.offering)
            .map(|o| &o.spec.config_schema)
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
            // During a capacity window, the window's plan.
            let plan = offering.spec.plan(b.plan_in_effect()).ok_or_else(|| {
                DeliveryError::Inconsistent(format!(
                    "booking `{}` names the missing plan `{}`",
                    b.id,
                    b.plan_in_effect()
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

/// Serialising into a hasher through a trait object.
mod erased {
    pub(crate) trait Json {
        fn write(&self, out: &mut sha1::Sha1) -> serde_json::Result<()>;
    }

    impl<T: serde::Serialize> Json for T {
        fn write(&self, out: &mut sha1::Sha1) -> serde_json::Result<()> {
            serde_json::to_writer(out, self)
        }
    }
}
