//! Staged rollouts at the edge: planning and starting a rollout from the store, and the
//! engine that advances every running rollout.
//!
//! The rules live in the domain ([`verbund_domain::rollout`]), the durable state and
//! each tick's transaction in the store; this crate brings them together:
//!
//! - [`plan`] reads an offering's production bookings and their sites and returns the
//!   plan without changing anything (`verbund rollout plan`, `POST /rollouts/plan`).
//! - [`start`] plans and stores the rollout, creating the sites' reference bookings
//!   (publishing a version, `POST /rollouts`).
//! - [`Engine`] ticks every running rollout while it leads (module `engine`).

use chrono::{DateTime, Utc};
use verbund_domain::rollout::{reference_config, Plan, PlanInput, Rollout, RolloutPolicy};
use verbund_domain::Invalid;
use verbund_store::{ReferenceSpec, Store, StoreError};

mod engine;

pub use engine::{Engine, EngineStatus};

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

pub type Result<T, E = RolloutError> = std::result::Result<T, E>;

/// The plan of a rollout of `offering` to `version` under `policy`, from the store as
/// it is now. Changes nothing.
pub async fn plan(
    store: &Store,
    offering: &str,
    version: &str,
    policy: &RolloutPolicy,
) -> Result<Plan> {
    policy.validate()?;
    let o = store.get_offering(offering).await?;
    let published = store.list_versions(offering).await?;
    if !published.iter().any(|v| v.spec.version == version) {
        let known: Vec<&str> = published.iter().map(|v| v.spec.version.as_str()).collect();
        return Err(Invalid::unknown(
            "/version",
            format!(
                "offering `{}` has no published version `{version}` (published: {})",
                o.spec.name,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        )
        .into());
    }
    let (candidates, sites) = store.rollout_candidates(offering).await?;
    Ok(verbund_domain::rollout::plan(&PlanInput {
        offering,
        version,
        policy,
        candidates: &candidates,
        sites: &sites,
    })?)
}

/// Plans and starts a rollout, attributed to `actor`.
pub async fn start(
    store: &Store,
    actor: &str,
    offering: &str,
    version: &str,
    policy: &RolloutPolicy,
    now: DateTime<Utc>,
) -> Result<Rollout> {
    let plan = plan(store, offering, version, policy).await?;
    let reference = reference_spec(store, offering).await?;
    let spec = store.get_offering(offering).await?.spec;
    Ok(store
        .create_rollout(actor, &plan, &reference, spec.smoke_test.is_some(), now)
        .await?)
}

/// What a site's reference booking of `offering` is made of: the smallest plan, a
/// configuration from the schema's defaults and examples, and the dependencies at
/// their latest versions.
async fn reference_spec(store: &Store, offering: &str) -> Result<ReferenceSpec> {
    let spec = store.get_offering(offering).await?.spec;
    let plan = spec.plans.first().map(|p| p.name.clone()).ok_or_else(|| {
        Invalid::meaning("/offering", format!("offering `{offering}` has no plan"))
    })?;
    let config = reference_config(&spec.config_schema);
    verbund_domain::booking::validate_config(&spec.config_schema, &config).map_err(|e| {
        Invalid::meaning(
            "/offering",
            format!(
                "no reference configuration for the test environments follows from the \
                 schema of `{offering}` ({e}); give its required properties defaults or examples"
            ),
        )
    })?;
    let mut dependencies = Vec::new();
    for dep in &spec.dependencies {
        let d = store.get_offering(&dep.offering).await?;
        let version = d.latest_version.clone().ok_or_else(|| {
            Invalid::conflict(
                "/offering",
                format!("dependency `{}` has no published version", dep.offering),
            )
        })?;
        let dep_plan = dep
            .plan
            .clone()
            .or_else(|| d.spec.plans.first().map(|p| p.name.clone()))
            .unwrap_or_default();
        dependencies.push((dep.offering.clone(), dep_plan, version));
    }
    // Declared secrets (from the schema's examples) are kept apart, as for any booking.
    let (config, secrets) = verbund_domain::secrets::split_secrets(&spec.config_schema, &config);
    Ok(ReferenceSpec {
        plan,
        config,
        secrets,
        dependencies,
    })
}
