//! Cedar policies: sovereignty placement and, in `authz`, who may do what.
//!
//! Policies come in three layers. Federation policies may `permit` and `forbid`; Land
//! and organisation policies may only `forbid`, so that a Land or a Kommune can tighten
//! but never loosen the federal rules. Decisions are pure: entities, policies and the
//! decision day in; a decision with its explanation out.

pub mod authz;
mod book;
mod entities;
pub mod placement;

pub use book::{PolicyBook, PolicyDocument, PolicyError, PolicyInfo, PolicyLayer};
pub use placement::{Candidate, Need, PlacementDecision, Placer, Reason, SiteVerdict};

use std::sync::LazyLock;

/// The Cedar schema every policy is validated against.
pub const SCHEMA_SOURCE: &str = include_str!("verbund.cedarschema");

/// The federation policies shipped with verbund (`policies/federation/`).
pub const DEFAULT_FEDERATION_POLICIES: &[(&str, &str)] = &[(
    "sovereignty",
    include_str!("../../../policies/federation/sovereignty.cedar"),
)];

static SCHEMA: LazyLock<Result<cedar_policy::Schema, String>> = LazyLock::new(|| {
    cedar_policy::Schema::from_cedarschema_str(SCHEMA_SOURCE)
        .map(|(s, _)| s)
        .map_err(|e| e.to_string())
});

pub(crate) fn schema() -> Result<&'static cedar_policy::Schema, PolicyError> {
    SCHEMA.as_ref().map_err(|e| PolicyError::Schema(e.clone()))
}
