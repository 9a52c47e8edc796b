//! Desired state from the store, and its delivery into the desired-state repository.
//!
//! This module gathers a site's placed bookings with their organisations, offerings,
//! versions and plans and hands them to the pure renderer: that is what the previews
//! show (`GET /api/v1/sites/{name}/desired-state`, `GET /api/v1/bookings/{id}/manifests`,
//! `verbund render`), exactly the files the site's folder holds for that state of the
//! store. The [`Publisher`] (module `publisher`) keeps the repository itself in line
//! with the store; `records` loads what rendering needs in bulk and digests it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use verbund_domain::booking::Booking;
use verbund_domain::directory::{Environment, SiteSpec};
use verbund_render::{RenderInput, RenderOptions, Rendered, RenderedFile};
use verbund_store::{Store, StoreError};

mod history;
mod publisher;
mod records;
mod sealing;
mod sites;

pub use publisher::{
    Publisher, PublisherOptions, PushStatus, Reconciled, RefusedBooking, SiteDifference,
    Verification, ACTOR, PACKS_BEFORE_COMPACTION,
};
use records::Records;
pub use sites::SiteRepos;

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
    /// The desired-state repository failed.
    #[error("desired-state repository: {0}")]
    Git(#[from] verbund_git::Error),
    /// A folder of the desired state cannot be rendered.
    #[error("{folder} cannot be rendered: {message}")]
    Folder { folder: String, message: String },
    /// A blocking delivery job ended abnormally.
    #[error("delivery job failed: {0}")]
    Job(String),
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

/// Renders one site's environment from the store.
pub async fn render_site(
    store: &Store,
    site: &str,
    environment: Environment,
    options: &RenderOptions,
) -> Result<Vec<RenderedFile>> {
    let spec = store.get_site(site).await?.spec;
    let mut records = Records::default();
    Ok(
        render_site_with(store, &mut records, &spec, environment, options)
            .await?
            .0
            .files,
    )
}

/// The bookings delivered to a site's environment: organisations' bookings run in
/// production; the test environment holds the site's reference bookings (its test
/// tenant), which rollouts create and update first.
pub(crate) async fn delivered(
    store: &Store,
    site: &str,
    environment: Environment,
) -> Result<Vec<Booking>> {
    Ok(store.delivered_bookings_on(site, environment).await?)
}

/// [`render_site`] with records shared across sites; also gives the bookings it was
/// rendered from.
pub(crate) async fn render_site_with(
    store: &Store,
    records: &mut Records,
    spec: &SiteSpec,
    environment: Environment,
    options: &RenderOptions,
) -> Result<(Rendered, Vec<Booking>)> {
    let bookings = delivered(store, &spec.name, environment).await?;
    records.load(store, &bookings).await?;
    records.seal(store, spec, &bookings).await?;
    let rendered = render_loaded(records, spec, environment, &bookings, options)?;
    Ok((rendered, bookings))
}

/// Renders a site's environment from bookings and records already loaded.
pub(crate) fn render_loaded(
    records: &Records,
    spec: &SiteSpec,
    environment: Environment,
    bookings: &[Booking],
    options: &RenderOptions,
) -> Result<Rendered> {
    let context: HashMap<&str, &Booking> = bookings.iter().map(|b| (b.id.as_str(), b)).collect();
    let input = RenderInput {
        site: spec,
        environment,
        bookings: records.placed(bookings, &context)?,
    };
    Ok(verbund_render::render_sealed(
        &input,
        options,
        &records.sealed,
    )?)
}

/// The files of one booking: its folder within its site's rendered state, as the
/// delivery commits it. Empty for a booking without desired state.
pub async fn render_booking(
    store: &Store,
    booking: &Booking,
    options: &RenderOptions,
) -> Result<Vec<RenderedFile>> {
    let Some(site) = &booking.site else {
        return Ok(Vec::new());
    };
    if !booking.state.is_delivered() {
        return Ok(Vec::new());
    }
    let spec = store.get_site(site).await?.spec;
    let bookings = delivered(store, site, booking.environment).await?;
    let mut records = Records::default();
    records.load(store, &bookings).await?;
    records.seal(store, &spec, &bookings).await?;
    let context: HashMap<&str, &Booking> = bookings.iter().map(|b| (b.id.as_str(), b)).collect();
    let input = RenderInput {
        site: &spec,
        environment: booking.environment,
        bookings: records.placed(&bookings, &context)?,
    };
    let selected = [booking.id.as_str()].into_iter().collect();
    let (folders, refused) =
        verbund_render::render_folders_sealed(&input, options, &selected, &records.sealed)?;
    if let Some(r) = refused.into_iter().next() {
        return Err(r.error.into());
    }
    Ok(folders.into_iter().flat_map(|f| f.files).collect())
}
