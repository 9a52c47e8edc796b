//! Shared instances ("Einer für Alle"): an offering whose one instance serves many
//! organisations as its tenants. The instance is an ordinary booking of its operating
//! organisation (a Land's IT service provider), placed and rolled out like any other;
//! every other organisation books a *tenancy* in it — a booking that names the instance
//! (`Booking::instance`), runs on the instance's site, holds no capacity of its own and
//! carries only the tenant's configuration, valid against the offering's tenant schema.
//!
//! Why a tenancy is a booking and not a row of the instance: the organisation's answer
//! to "where is our data?", its compliance with its own and its Land's policies, its
//! audit trail and its cancellation are those of every booking, so they stay one code
//! path. What differs is decided here: which offerings can be shared
//! ([`Tenancy`]), what a tenant submits ([`TenancySpec`]), and which instance can take
//! tenants ([`takes_tenants`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::booking::{check_config_secrets, validate_config, Booking};
use crate::catalog::OfferingSpec;
use crate::{Invalid, Result};

/// How an offering's bookings run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Tenancy {
    /// One instance per booking, in a namespace of its own.
    #[default]
    Dedicated,
    /// One instance (a booking of its operator) serves many organisations as tenants;
    /// they book tenancies in it.
    Shared,
}

impl Tenancy {
    pub fn is_dedicated(&self) -> bool {
        *self == Tenancy::Dedicated
    }
}

/// The schema a tenant's configuration is checked against when an offering states none:
/// any object.
pub fn any_object() -> Value {
    serde_json::json!({"type": "object"})
}

/// The tenant schema in force for a shared offering.
pub fn tenant_schema(offering: &OfferingSpec) -> std::borrow::Cow<'_, Value> {
    match &offering.tenant_schema {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(any_object()),
    }
}

/// Checks an offering's tenancy fields together: a tenant schema only for a shared
/// offering, and a valid JSON Schema.
pub fn check_offering(offering: &OfferingSpec) -> Result<()> {
    match (&offering.tenancy, &offering.tenant_schema) {
        (Tenancy::Dedicated, Some(_)) => Err(Invalid::meaning(
            "/tenant_schema",
            "only a shared offering (`tenancy: shared`) has tenants to configure",
        )),
        (_, Some(schema)) => crate::catalog::check_schema("/tenant_schema", schema),
        _ => Ok(()),
    }
}

/// The most bytes of JSON a tenant's configuration takes: it goes into its instance's
/// tenant list, rendered into ConfigMaps of bounded size.
pub const TENANT_CONFIG_MAX: usize = 16 * 1024;

/// What an organisation submits to become a tenant of a shared instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenancySpec {
    /// Id of the tenant organisation.
    pub organisation: String,
    /// The tenant's configuration, valid against the offering's `tenant_schema`. It is
    /// rendered into the instance's desired state, so it holds no secret.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub config: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl TenancySpec {
    /// Checks the tenancy against the instance's offering: the offering is shared, and
    /// the configuration is valid against its tenant schema without a secret (which would
    /// reach Git in plaintext).
    pub fn validate(&self, offering: &OfferingSpec) -> Result<()> {
        if !self.config.is_object() {
            return Err(Invalid::new(
                "/config",
                "a tenant's configuration is an object",
            ));
        }
        if offering.tenancy != Tenancy::Shared {
            return Err(Invalid::meaning(
                "",
                format!(
                    "`{}` is not a shared offering: each of its bookings is an instance of \
                     its own, so book it instead of a tenancy",
                    offering.name
                ),
            ));
        }
        let schema = tenant_schema(offering);
        validate_config(&schema, &self.config)?;
        check_config_secrets(&schema, &self.config)?;
        let size = self.config.to_string().len();
        if size > TENANT_CONFIG_MAX {
            return Err(Invalid::meaning(
                "/config",
                format!(
                    "a tenant's configuration may take {TENANT_CONFIG_MAX} bytes as JSON; this \
                     one takes {size}"
                ),
            ));
        }
        Ok(())
    }
}

/// Who may run an instance of a shared offering: anyone, but for an "Einer für Alle"
/// service only an organisation of its operating Land (`land`: the organisation's Land
/// key). The one rule of booking an instance.
pub fn may_operate(offering: &OfferingSpec, land: Option<&str>) -> Result<()> {
    match (&offering.tenancy, &offering.efa) {
        (Tenancy::Shared, Some(efa)) if land != Some(efa.operator.as_str()) => {
            Err(Invalid::meaning(
                "/organisation",
                format!(
                    "`{}` is an \"Einer für Alle\" service operated by the Land `{}`: only its \
                     organisations run instances of it; others become tenants",
                    offering.name, efa.operator
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Whether an organisation of Land `land` may be a tenant of an instance of `offering`:
/// an "Einer für Alle" service serves its operating Land and the Länder it names (every
/// Land when it names none). The one rule of booking a tenancy.
pub fn may_join(offering: &OfferingSpec, land: Option<&str>) -> Result<()> {
    let Some(efa) = &offering.efa else {
        return Ok(());
    };
    let served = efa.for_laender.is_empty()
        || land.is_some_and(|l| l == efa.operator || efa.for_laender.contains(l));
    if served {
        return Ok(());
    }
    Err(Invalid::meaning(
        "/organisation",
        format!(
            "`{}` is an \"Einer für Alle\" service for the Länder {}: the organisation's Land \
             is not among them",
            offering.name,
            efa.for_laender
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

/// Whether `instance` can take a new tenant: a booking (not itself a tenancy) of a
/// shared offering that runs or is about to, in production, and does not end on its own.
/// The one rule of booking a tenancy and of the candidates the portal offers.
pub fn takes_tenants(instance: &Booking) -> std::result::Result<(), String> {
    if instance.instance.is_some() {
        return Err(format!(
            "booking {} is a tenancy itself, not an instance",
            instance.id
        ));
    }
    if instance.environment != crate::directory::Environment::Prod {
        return Err(format!(
            "booking {} is a site's test reference, not an instance for tenants",
            instance.id
        ));
    }
    if !instance.state.is_live() {
        return Err(format!(
            "the instance {} is `{}`: only a running instance takes tenants",
            instance.id, instance.state
        ));
    }
    if instance.ending.is_some() {
        return Err(format!(
            "the instance {} is booked for a time and ends on its own",
            instance.id
        ));
    }
    Ok(())
}
