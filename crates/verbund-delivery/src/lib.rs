//! Desired state from the store: gathers a site's placed bookings with their
//! organisations, offerings, versions and plans, and hands them to the pure renderer.
//!
//! This is what previews show (`GET /api/v1/sites/{name}/desired-state`,
//! `GET /api/v1/bookings/{id}/manifests`, `verbund render --site S`): exactly the files
//! that the site's folder in the desired-state repository holds for that state of the
//! store.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use verbund_domain::booking::{Booking, BookingState};
use verbund_domain::catalog::{Offering, OfferingVersion};
use verbund_domain::directory::{Environment, Organisation};
use verbund_domain::page::PageRequest;
use verbund_render::{PlacedBooking, RenderInput, RenderOptions, RenderedFile};
use verbund_store::{BookingFilter, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The store failed or an object is missing.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The renderer refused the site's bookings.
    #[error(transparent)]
    Render(#[from] verbund_render::Error),
    /// The stored data does not fit together (e.g. a booking names a missing version).
    #[error("{0}")]
    Inconsistent(String),
}

pub type Result<T, E = DeliveryError> = std::result::Result<T, E>;

/// One rendered file, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FileView {
    pub path: String,
    pub content: String,
}

impl From<RenderedFile> for FileView {
    fn from(f: RenderedFile) -> Self {
        FileView {
            path: f.path,
            content: f.content,
        }
    }
}

/// Whether a booking in this state has a workload on its site.
fn is_delivered(state: BookingState) -> bool {
    matches!(
        state,
        BookingState::Placed
            | BookingState::Provisioning
            | BookingState::Active
            | BookingState::Updating
            | BookingState::Degraded
    )
}

/// Everything the renderer borrows, owned.
struct Inputs {
    bookings: Vec<Booking>,
    organisations: HashMap<String, Organisation>,
    offerings: HashMap<String, Offering>,
    versions: HashMap<(String, String), OfferingVersion>,
}

async fn gather(store: &Store, site: &str, environment: Environment) -> Result<Inputs> {
    let mut bookings = Vec::new();
    if environment == Environment::Prod {
        let filter = BookingFilter {
            site: Some(site.to_string()),
            ..Default::default()
        };
        let mut page = PageRequest {
            limit: Some(1000),
            after: None,
        };
        loop {
            let p = store.list_bookings(&filter, &page).await?;
            bookings.extend(p.items.into_iter().filter(|b| is_delivered(b.state)));
            match p.next {
                Some(n) => page.after = Some(n),
                None => break,
            }
        }
    }
    let mut organisations = HashMap::new();
    let mut offerings = HashMap::new();
    let mut versions = HashMap::new();
    for b in &bookings {
        if !organisations.contains_key(&b.organisation) {
            organisations.insert(
                b.organisation.clone(),
                store.get_organisation(&b.organisation).await?,
            );
        }
        if !offerings.contains_key(&b.offering) {
            offerings.insert(b.offering.clone(), store.get_offering(&b.offering).await?);
            for v in store.list_versions(&b.offering).await? {
                versions.insert((b.offering.clone(), v.spec.version.clone()), v);
            }
        }
    }
    Ok(Inputs {
        bookings,
        organisations,
        offerings,
        versions,
    })
}

/// Renders one site's environment from the store.
pub async fn render_site(
    store: &Store,
    site: &str,
    environment: Environment,
    options: &RenderOptions,
) -> Result<Vec<RenderedFile>> {
    let spec = store.get_site(site).await?.spec;
    let inputs = gather(store, site, environment).await?;
    let by_id: HashMap<&str, &Booking> =
        inputs.bookings.iter().map(|b| (b.id.as_str(), b)).collect();
    let mut placed = Vec::with_capacity(inputs.bookings.len());
    for b in &inputs.bookings {
        let organisation = inputs.organisations.get(&b.organisation).ok_or_else(|| {
            DeliveryError::Inconsistent(format!("booking `{}` names a missing organisation", b.id))
        })?;
        let offering = inputs.offerings.get(&b.offering).ok_or_else(|| {
            DeliveryError::Inconsistent(format!("booking `{}` names a missing offering", b.id))
        })?;
        let version_name = b
            .version
            .clone()
            .or_else(|| offering.latest_version.clone())
            .ok_or_else(|| {
                DeliveryError::Inconsistent(format!("booking `{}` has no version to deliver", b.id))
            })?;
        let version = inputs
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
            .filter_map(|d| by_id.get(d.as_str()).copied())
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
    let input = RenderInput {
        site: &spec,
        environment,
        bookings: placed,
    };
    Ok(verbund_render::render(&input, options)?)
}

/// The files of one booking: its folder within its site's rendered state.
pub async fn render_booking(
    store: &Store,
    booking: &Booking,
    options: &RenderOptions,
) -> Result<Vec<RenderedFile>> {
    let Some(site) = &booking.site else {
        return Ok(Vec::new());
    };
    if !is_delivered(booking.state) {
        return Ok(Vec::new());
    }
    let files = render_site(store, site, Environment::Prod, options).await?;
    let marker = format!("verbund.dev/booking: {}", booking.id);
    // The booking's folder is the one whose namespace carries its booking label.
    let folder = files
        .iter()
        .find(|f| f.path.ends_with("/namespace.yaml") && f.content.contains(&marker))
        .and_then(|f| f.path.rsplit_once('/').map(|(dir, _)| format!("{dir}/")));
    Ok(match folder {
        Some(dir) => files
            .into_iter()
            .filter(|f| f.path.starts_with(&dir))
            .collect(),
        None => Vec::new(),
    })
}
