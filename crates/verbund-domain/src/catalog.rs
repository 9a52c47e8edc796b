//! The catalog: offerings that authorities can book, and their versions.
//!
//! Publishing validates everything a booking will later rely on: plans are
//! consistent, the tenant configuration schema is a valid JSON Schema, and versions are
//! semver and only grow.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::directory::{nullable, Resources};
use crate::error::{Invalid, Result};
use crate::name::{
    bounded_schema, check_name, check_pattern, check_text, Pattern, DISPLAY_NAME_MAX,
};
use crate::tenancy::{secret_names_in_values, unmet_references, Reference};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Iaas,
    Paas,
    Saas,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Iaas => "iaas",
            Category::Paas => "paas",
            Category::Saas => "saas",
        }
    }
}

/// Classes of data an offering processes, from least to most protected.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum DataClass {
    Public,
    Internal,
    Personal,
    /// Special categories of personal data (Art. 9 GDPR).
    SpecialCategories,
    /// Verschlusssache – nur für den Dienstgebrauch.
    VsNfd,
}

impl DataClass {
    pub fn as_str(self) -> &'static str {
        match self {
            DataClass::Public => "public",
            DataClass::Internal => "internal",
            DataClass::Personal => "personal",
            DataClass::SpecialCategories => "special-categories",
            DataClass::VsNfd => "vs-nfd",
        }
    }
}

/// What a site must offer to run the offering.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteRequirements {
    /// Capability tags the site must have, e.g. `storage:rwx`.
    #[serde(default)]
    #[schema(schema_with = crate::directory::capabilities_schema)]
    pub capabilities: BTreeSet<String>,
    /// Lowest Kubernetes minor version, e.g. `1.29`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = min_kubernetes_schema)]
    pub min_kubernetes: Option<String>,
}

fn min_kubernetes_schema() -> utoipa::openapi::schema::Object {
    nullable(crate::directory::kubernetes_minor_schema())
}

/// Replicas between `min_replicas` and `max_replicas` (that the one is not above the other
/// is a rule across the fields), scaled to keep the pods' average CPU use at
/// `target_cpu_utilization` per cent of what they request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Autoscaling {
    #[schema(minimum = 1)]
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// The average CPU utilisation the autoscaler aims at, in per cent of the pods'
    /// requests (default 75).
    #[serde(default = "default_cpu_target")]
    #[schema(minimum = 1, maximum = 100, default = 75)]
    pub target_cpu_utilization: u32,
}

/// The CPU utilisation an autoscaling plan aims at unless it says otherwise.
pub const DEFAULT_CPU_TARGET: u32 = 75;

fn default_cpu_target() -> u32 {
    DEFAULT_CPU_TARGET
}

/// The JSON Schema of a plan's resources: CPU and memory at least 1.
fn plan_resources_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    let amount = |min: f64, description: Option<&str>| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(min))
            .description(description)
            .build()
    };
    ObjectBuilder::new()
        .description(Some(
            "Resources in the units verbund accounts in; CPU and memory at least 1.",
        ))
        .property(
            "cpu_millis",
            amount(1.0, Some("CPU in millicores (1000 = one core).")),
        )
        .property("memory_mib", amount(1.0, None))
        .property("storage_gib", amount(0.0, None))
        .required("cpu_millis")
        .required("memory_mib")
        .required("storage_gib")
        .additional_properties(Some(
            utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
        ))
        .build()
}

/// A plan: the size of one booking and its monthly price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    #[schema(schema_with = crate::name::name_schema)]
    pub name: String,
    #[schema(schema_with = crate::name::display_name_schema)]
    pub display_name: String,
    #[schema(schema_with = plan_resources_schema)]
    pub resources: Resources,
    #[schema(minimum = 1)]
    pub replicas: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// Monthly price in euro cents.
    pub monthly_price_cents: u64,
}

/// Another offering this one needs in the same organisation (e.g. a PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    #[schema(schema_with = crate::name::name_schema)]
    pub offering: String,
    /// One of its plans; without, the smallest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = optional_name_schema)]
    pub plan: Option<String>,
}

fn optional_name_schema() -> utoipa::openapi::schema::Object {
    nullable(crate::name::name_schema())
}

/// A check run in the tenant's namespace after each deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmokeTest {
    #[schema(schema_with = image_schema)]
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default = "default_smoke_timeout")]
    #[schema(minimum = 1, maximum = 3600)]
    pub timeout_seconds: u32,
}

/// The offering's data export: a Job of its package that writes a tenant's data to the
/// organisation's export target when a temporary booking ends (see [`crate::ending`]).
/// It reads the target from `EXPORT_ENDPOINT`, `EXPORT_BUCKET` and `EXPORT_OBJECT`, the
/// booking's configuration and declared secrets as the application does, and ends with
/// [`crate::ending::ExportSums`] as JSON in its termination message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataExport {
    #[schema(schema_with = image_schema)]
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default = "default_export_timeout")]
    #[schema(minimum = 1, maximum = 86400)]
    pub timeout_seconds: u32,
}

/// The longest timeout of a data export, in seconds (a day).
pub const EXPORT_TIMEOUT_MAX: u32 = 86_400;

fn default_export_timeout() -> u32 {
    3600
}

/// Checks a Job the offering declares (its smoke test, its data export): an image, and
/// a timeout between 1 and `max` seconds.
fn check_job(field: &str, image: &str, timeout_seconds: u32, max: u32) -> Result<()> {
    check_text(&format!("{field}/image"), image, IMAGE_MAX)?;
    if timeout_seconds == 0 || timeout_seconds > max {
        return Err(Invalid::new(
            format!("{field}/timeout_seconds"),
            format!("must be between 1 and {max}"),
        ));
    }
    Ok(())
}

/// The longest image reference of a smoke test or a data export.
pub const IMAGE_MAX: usize = 500;

/// The longest timeout of a smoke test, in seconds (the shortest is 1; the schema says
/// both too).
pub const SMOKE_TIMEOUT_MAX: u32 = 3600;

fn image_schema() -> utoipa::openapi::schema::Object {
    crate::name::text_schema(IMAGE_MAX)
}

fn default_smoke_timeout() -> u32 {
    300
}

/// What a vendor submits to publish or update an offering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferingSpec {
    /// Stable identifier (DNS-1123 label), e.g. `nextcloud`.
    #[schema(schema_with = crate::name::name_schema)]
    pub name: String,
    #[schema(schema_with = crate::name::display_name_schema)]
    pub display_name: String,
    #[serde(default)]
    #[schema(schema_with = description_schema)]
    pub description: String,
    /// The language of the vendor's texts (the description, the configuration's hints,
    /// the changelogs) as a BCP 47 tag, e.g. `en`; German when absent. A page in another
    /// language marks those texts with it, so that they are read out right (WCAG 3.1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = language_tag_schema)]
    pub description_language: Option<String>,
    /// Id of the vendor organisation.
    #[schema(schema_with = vendor_schema)]
    pub vendor: String,
    pub category: Category,
    /// The OZG-Leistung it implements, e.g. `10048`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = ozg_id_schema)]
    pub ozg_id: Option<String>,
    /// Its "Einer für Alle" status: the Land that built it once and operates it for the
    /// Länder it names (needs its `ozg_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efa: Option<Efa>,
    #[schema(min_items = 1)]
    pub data_classes: BTreeSet<DataClass>,
    #[serde(default)]
    pub requirements: SiteRequirements,
    #[schema(min_items = 1)]
    pub plans: Vec<Plan>,
    /// JSON Schema for the tenant's configuration.
    #[serde(default = "empty_object_schema")]
    #[schema(schema_with = json_schema_schema)]
    pub config_schema: Value,
    /// `dedicated` (default): each booking is an instance of its own; `shared`: a
    /// booking of it is an instance in which other organisations book tenancies (see
    /// [`crate::shared`]).
    #[serde(default, skip_serializing_if = "crate::shared::Tenancy::is_dedicated")]
    pub tenancy: crate::shared::Tenancy,
    /// JSON Schema for a tenant's configuration in a shared instance (any object when
    /// absent); only with `tenancy: shared`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = optional_json_schema_schema)]
    pub tenant_schema: Option<Value>,
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoke_test: Option<SmokeTest>,
    /// How a booking's data is exported before a temporary booking is torn down; only
    /// offerings with one can be booked temporarily.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_export: Option<DataExport>,
    /// Bookings need a federation admin's approval.
    #[serde(default)]
    pub requires_approval: bool,
    /// Days a cancelled booking's data is kept before deletion.
    #[serde(default = "default_retention")]
    pub retention_days: u32,
    /// Each booking has credentials of its own, generated at its site and kept in the
    /// site's secret store: the Secret `<name>-credentials` (keys `username`,
    /// `password`) in its namespace, and in the namespace of every booking that depends
    /// on it (e.g. a PostgreSQL's, read by the application that uses the database).
    #[serde(default)]
    pub credentials: bool,
}

/// An OZG service under the "Einer für Alle" principle: one Land builds and operates it,
/// the others connect to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Efa {
    /// The operating Land's key (two digits of its ARS, e.g. `09` for Bayern).
    #[schema(schema_with = crate::directory::land_key_schema)]
    pub operator: String,
    /// The Länder it serves, by key; empty: every Land.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    #[schema(schema_with = land_keys_schema)]
    pub for_laender: BTreeSet<String>,
}

fn land_keys_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(crate::directory::land_key_schema())
        .max_items(Some(16))
        .build()
}

fn empty_object_schema() -> Value {
    serde_json::json!({"type": "object"})
}

/// The longest description of an offering.
pub const DESCRIPTION_MAX: usize = 10_000;

fn description_schema() -> utoipa::openapi::schema::Object {
    bounded_schema(&crate::name::NUL_FREE, DESCRIPTION_MAX)
}

/// The longest vendor id.
pub const VENDOR_MAX: usize = 100;

fn vendor_schema() -> utoipa::openapi::schema::Object {
    crate::name::text_schema(VENDOR_MAX)
}

/// A language, or a language and a region: `en`, `de`, `de-AT` (the part of BCP 47 a
/// page's `lang` needs).
pub static LANGUAGE_TAG: Pattern = Pattern::new(|| "^[a-z]{2,3}(-[A-Z]{2})?$".into());

fn language_tag_schema() -> utoipa::openapi::schema::Object {
    nullable(LANGUAGE_TAG.schema())
}

/// An OZG id: 1 to 20 letters or digits, e.g. `10048`.
pub static OZG_ID: Pattern = Pattern::new(|| "^[A-Za-z0-9]{1,20}$".into());

fn ozg_id_schema() -> utoipa::openapi::schema::Object {
    nullable(OZG_ID.schema())
}

/// The JSON Schema of a JSON Schema as far as a schema can say it: an object or a
/// boolean (whether it is valid against its meta-schema is a rule of meaning).
fn json_schema_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Boolean]))
        .build()
}

fn optional_json_schema_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([
            Type::Object,
            Type::Boolean,
            Type::Null,
        ]))
        .build()
}

fn default_retention() -> u32 {
    30
}

impl OfferingSpec {
    pub fn validate(&self) -> Result<()> {
        check_name("/name", &self.name)?;
        check_text("/display_name", &self.display_name, DISPLAY_NAME_MAX)?;
        if self.description.chars().count() > DESCRIPTION_MAX {
            return Err(Invalid::new(
                "/description",
                format!("must be at most {DESCRIPTION_MAX} characters"),
            ));
        }
        check_text("/vendor", &self.vendor, VENDOR_MAX)?;
        if let Some(l) = &self.description_language {
            check_pattern(
                "/description_language",
                l,
                &LANGUAGE_TAG,
                6,
                "a language tag (e.g. `en`, `de`, `de-AT`)",
            )?;
        }
        if let Some(ozg) = &self.ozg_id {
            check_pattern("/ozg_id", ozg, &OZG_ID, 20, "an OZG id (e.g. `10048`)")?;
        }
        if let Some(efa) = &self.efa {
            crate::directory::check_land_key("/efa/operator", &efa.operator)?;
            for land in &efa.for_laender {
                crate::directory::check_land_key("/efa/for_laender", land)?;
            }
            if self.ozg_id.is_none() {
                return Err(Invalid::meaning(
                    "/efa",
                    "an \"Einer für Alle\" service is an OZG service: name its `ozg_id`",
                ));
            }
        }
        if self.data_classes.is_empty() {
            return Err(Invalid::new(
                "/data_classes",
                "name at least one data class (e.g. `public`)",
            ));
        }
        for cap in &self.requirements.capabilities {
            crate::directory::check_capability("/requirements/capabilities", cap)?;
        }
        if let Some(v) = &self.requirements.min_kubernetes {
            crate::directory::check_kubernetes_minor("/requirements/min_kubernetes", v)?;
        }
        self.validate_plans()?;
        check_schema("/config_schema", &self.config_schema)?;
        crate::shared::check_offering(self)?;
        let mut deps = BTreeSet::new();
        for (i, d) in self.dependencies.iter().enumerate() {
            let field = format!("/dependencies/{i}/offering");
            check_name(&field, &d.offering)?;
            if let Some(plan) = &d.plan {
                check_name(&format!("/dependencies/{i}/plan"), plan)?;
            }
            if d.offering == self.name {
                return Err(Invalid::meaning(
                    field,
                    "an offering cannot depend on itself",
                ));
            }
            if !deps.insert(&d.offering) {
                return Err(Invalid::meaning(
                    field,
                    format!("`{}` is listed twice", d.offering),
                ));
            }
        }
        if let Some(t) = &self.smoke_test {
            check_job(
                "/smoke_test",
                &t.image,
                t.timeout_seconds,
                SMOKE_TIMEOUT_MAX,
            )?;
        }
        if let Some(e) = &self.data_export {
            check_job(
                "/data_export",
                &e.image,
                e.timeout_seconds,
                EXPORT_TIMEOUT_MAX,
            )?;
        }
        Ok(())
    }

    fn validate_plans(&self) -> Result<()> {
        if self.plans.is_empty() {
            return Err(Invalid::new(
                "/plans",
                "an offering needs at least one plan",
            ));
        }
        let mut names = BTreeSet::new();
        for (i, p) in self.plans.iter().enumerate() {
            let at = format!("/plans/{i}");
            check_name("/name", &p.name).map_err(|e| e.at(&at))?;
            if !names.insert(&p.name) {
                return Err(Invalid::meaning(
                    format!("{at}/name"),
                    format!("plan `{}` is defined twice", p.name),
                ));
            }
            check_text("/display_name", &p.display_name, DISPLAY_NAME_MAX)
                .map_err(|e| e.at(&at))?;
            if p.replicas == 0 {
                return Err(Invalid::new(format!("{at}/replicas"), "must be at least 1"));
            }
            if p.resources.cpu_millis == 0 || p.resources.memory_mib == 0 {
                return Err(Invalid::new(
                    format!("{at}/resources"),
                    "cpu_millis and memory_mib must be positive",
                ));
            }
            if let Some(a) = p.autoscaling {
                if a.min_replicas == 0 || a.min_replicas > a.max_replicas {
                    let breach = if a.min_replicas == 0 {
                        crate::Breach::Form
                    } else {
                        crate::Breach::Meaning
                    };
                    return Err(Invalid::of(
                        breach,
                        format!("{at}/autoscaling"),
                        "needs 1 ≤ min_replicas ≤ max_replicas",
                    ));
                }
                if !(1..=100).contains(&a.target_cpu_utilization) {
                    return Err(Invalid::new(
                        format!("{at}/autoscaling/target_cpu_utilization"),
                        "must be a percentage from 1 to 100",
                    ));
                }
                if !(a.min_replicas..=a.max_replicas).contains(&p.replicas) {
                    return Err(Invalid::meaning(
                        format!("{at}/replicas"),
                        "must lie within the autoscaling bounds",
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.name == name)
    }
}

/// The validator of a tenant configuration schema: its draft as it declares it, and
/// with `format` asserted (an `email` must be an e-mail address, a `uri` a URI), as Helm
/// asserts it against a chart's `values.schema.json` — so what verbund accepts, the chart
/// accepts too. Booking, publishing and the test stage's reference configuration all use
/// it.
/// Longest label value Kubernetes accepts.
const MAX_VERSION_LABEL: usize = 63;

/// How a version travels in the desired state's labels (`verbund.dev/version`,
/// `app.kubernetes.io/version`), from which sites report what runs: a label value allows
/// no `+`, so semver's build metadata separator becomes `_`, a character semver never
/// uses, and [`version_from_label`] reads it back. `None` when the version does not fit in
/// a label unchanged otherwise (too long, or ending in `-`): publishing refuses those, so
/// that what a site reports is always the version it was given.
pub fn version_label(version: &str) -> Option<String> {
    let label = version.replace('+', "_");
    let fits = label.len() <= MAX_VERSION_LABEL
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && label
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && label
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    fits.then_some(label)
}

/// The version a label value carries: the inverse of [`version_label`]; `None` when the
/// label holds no semantic version.
pub fn version_from_label(label: &str) -> Option<String> {
    let version = label.replace('_', "+");
    semver::Version::parse(&version).ok().map(|_| version)
}

pub fn config_validator(schema: &Value) -> std::result::Result<jsonschema::Validator, String> {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| e.to_string())
}

/// Checks that a value is a valid JSON Schema (against its meta-schema).
pub fn check_schema(field: &str, schema: &Value) -> Result<()> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err(Invalid::new(
            field,
            "a JSON Schema must be an object or a boolean",
        ));
    }
    config_validator(schema)
        .map(|_| ())
        .map_err(|e| Invalid::meaning(field, format!("not a valid JSON Schema: {e}")))
}

/// A stored offering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Offering {
    #[serde(flatten)]
    pub spec: OfferingSpec,
    /// Highest published version, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_version: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How a version is deployed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Package {
    /// A Helm chart from an HTTPS repository or an OCI registry (`oci://…`).
    Helm {
        #[schema(schema_with = repository_schema)]
        repository: String,
        #[schema(schema_with = crate::name::name_schema)]
        chart: String,
        #[schema(schema_with = chart_version_schema)]
        chart_version: String,
        #[serde(default = "empty_object")]
        #[schema(value_type = Object)]
        values: Value,
    },
    /// Plain Kubernetes manifests, each of a kind a tenant may own
    /// ([`crate::tenancy::TENANT_KINDS`]), placed in the booking's namespace.
    Manifests {
        #[schema(value_type = Vec<Object>, min_items = 1)]
        manifests: Vec<Value>,
        /// The ConfigMap the manifests read the tenant's configuration from (e.g. through
        /// `envFrom`); verbund renders it from the booking's configuration, one key per
        /// leaf in environment-variable form (`tax_rates.first_dog` → `TAX_RATES_FIRST_DOG`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(schema_with = optional_name_schema)]
        config_map: Option<String>,
        /// The Deployment or StatefulSet of the manifests that a plan's autoscaling scales:
        /// verbund renders its HorizontalPodAutoscaler from the plan. Required when a plan
        /// of the offering autoscales.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(schema_with = optional_name_schema)]
        scale_target: Option<String>,
    },
}

/// The longest Helm repository URL.
pub const REPOSITORY_MAX: usize = 500;

/// A Helm repository URL: `https://…`, `oci://…` (or `http://…`) without white space.
pub static REPOSITORY: Pattern = Pattern::new(|| {
    format!(
        "^(https://|oci://|http://)[^{}{}]*$",
        crate::name::WHITE_SPACE_CLASS,
        crate::name::NUL_CLASS
    )
});

fn repository_schema() -> utoipa::openapi::schema::Object {
    bounded_schema(&REPOSITORY, REPOSITORY_MAX)
}

/// The longest chart version.
pub const CHART_VERSION_MAX: usize = 100;

fn chart_version_schema() -> utoipa::openapi::schema::Object {
    crate::name::text_schema(CHART_VERSION_MAX)
}

/// A semantic version that travels in a Kubernetes label (see [`version_label`]), as a
/// regular expression (without anchors, to be part of others): SemVer 2.0's grammar
/// with numbers of the core that fit in 64 bits, ending in a letter or digit. Its length
/// is [`MAX_VERSION_LABEL`].
pub fn version_syntax() -> String {
    let n = "(0|[1-9][0-9]{0,18})";
    let pre = "(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)";
    let pre_end = "(0|[1-9][0-9]*|[0-9]*[A-Za-z]|[0-9]*[A-Za-z-][0-9A-Za-z-]*[0-9A-Za-z])";
    let build = "[0-9A-Za-z-]+";
    let build_end = "[0-9A-Za-z-]*[0-9A-Za-z]";
    format!(
        "{n}\\.{n}\\.{n}((-({pre}\\.)*{pre})?\\+({build}\\.)*{build_end}|-({pre}\\.)*{pre_end})?"
    )
}

/// A semantic version (SemVer 2.0, with numbers of the core that fit in 64 bits), as a
/// regular expression: what a site may report as running.
pub static SEMVER: Pattern = Pattern::new(|| {
    let n = "(0|[1-9][0-9]{0,18})";
    let pre = "(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)";
    let build = "[0-9A-Za-z-]+";
    format!("^{n}\\.{n}\\.{n}(-{pre}(\\.{pre})*)?(\\+{build}(\\.{build})*)?$")
});

/// [`version_syntax`] as the whole of a value: what `VersionSpec::validate` accepts as a
/// version.
pub static VERSION: Pattern = Pattern::new(|| format!("^{}$", version_syntax()));

/// The JSON Schema of a version that can be published.
pub fn version_schema() -> utoipa::openapi::schema::Object {
    bounded_schema(&VERSION, MAX_VERSION_LABEL)
}

/// Checks a version's form (see [`VERSION`]).
pub fn check_version(field: &str, version: &str) -> Result<semver::Version> {
    let refused = |why: String| Invalid::new(field, format!("`{version}` {why}"));
    if version.len() > MAX_VERSION_LABEL || !VERSION.is_match(version) {
        return Err(refused(format!(
            "is not a semantic version that a Kubernetes label can carry (SemVer 2.0, at \
             most {MAX_VERSION_LABEL} characters, ending in a letter or digit), which is how \
             sites report it"
        )));
    }
    semver::Version::parse(version).map_err(|e| refused(format!("is not a semantic version: {e}")))
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// What a vendor submits to publish a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    /// Semantic version, e.g. `29.0.4`.
    #[schema(schema_with = version_schema)]
    pub version: String,
    pub package: Package,
    #[serde(default)]
    pub changelog: String,
}

impl VersionSpec {
    /// Validates the version on its own and against the latest published one.
    pub fn validate(&self, latest: Option<&str>) -> Result<semver::Version> {
        let v = check_version("/version", &self.version)?;
        if version_label(&self.version).is_none() {
            return Err(Invalid::new(
                "/version",
                format!(
                    "`{v}` cannot be carried in a Kubernetes label (at most {MAX_VERSION_LABEL} \
                     characters, ending in a letter or digit), which is how sites report it"
                ),
            ));
        }
        if let Some(latest) = latest.and_then(|l| semver::Version::parse(l).ok()) {
            if v <= latest {
                return Err(Invalid::conflict(
                    "/version",
                    format!("`{v}` is not newer than the latest published version `{latest}`; versions only grow"),
                ));
            }
        }
        let (part, content) = match &self.package {
            Package::Helm { values, .. } => ("values", values.clone()),
            Package::Manifests { manifests, .. } => ("manifests", Value::Array(manifests.clone())),
        };
        if let Some((pointer, c)) = crate::portable::find_uncarriable(&content) {
            return Err(Invalid::meaning(
                format!("/package/{part}{pointer}"),
                crate::portable::describe(c),
            ));
        }
        match &self.package {
            Package::Helm {
                repository,
                chart,
                chart_version,
                values,
            } => {
                check_pattern(
                    "/package/repository",
                    repository,
                    &REPOSITORY,
                    REPOSITORY_MAX,
                    "a Helm repository URL (`https://…` or `oci://…`)",
                )?;
                check_name("/package/chart", chart)?;
                check_text("/package/chart_version", chart_version, CHART_VERSION_MAX)?;
                if !values.is_object() {
                    return Err(Invalid::new("/package/values", "must be an object"));
                }
                if let Some(f) = crate::secrets::find_secret(None, values) {
                    return Err(Invalid::meaning(
                        format!("/package/values{}", f.pointer),
                        f.message("package"),
                    ));
                }
            }
            Package::Manifests {
                manifests,
                config_map,
                scale_target,
            } => {
                if manifests.is_empty() {
                    return Err(Invalid::new("/package/manifests", "must not be empty"));
                }
                for (i, m) in manifests.iter().enumerate() {
                    crate::tenancy::check_tenant_object(m).map_err(|e| {
                        Invalid::meaning(format!("/package/manifests/{i}"), e.to_string())
                    })?;
                }
                if let Some(name) = config_map {
                    check_name("/package/config_map", name)?;
                }
                if let Some(name) = scale_target {
                    check_name("/package/scale_target", name)?;
                    check_scale_target(manifests, name)?;
                }
            }
        }
        Ok(v)
    }
}

/// The Secret holding a booking's credentials (see [`OfferingSpec::credentials`]), in its
/// own namespace and in those of the bookings that depend on it.
pub fn credentials_secret(offering: &str) -> String {
    format!("{offering}-credentials")
}

/// The Secret that carries a booking's declared-secret configuration (see
/// [`crate::secrets`]) to its package: for plain manifests `<config_map>-secrets` beside
/// the configuration ConfigMap, one key per value in the ConfigMap's
/// environment-variable form; for a Helm chart `verbund-config-secrets`, whose key
/// `values.yaml` Flux and the agent merge into the chart's values.
pub fn config_secret_name(package: &Package) -> Option<String> {
    match package {
        Package::Manifests { config_map, .. } => {
            config_map.as_ref().map(|name| format!("{name}-secrets"))
        }
        Package::Helm { .. } => Some(CHART_SECRET.to_string()),
    }
}

/// The Secret of a Helm package's declared-secret values (see [`config_secret_name`]).
pub const CHART_SECRET: &str = "verbund-config-secrets";

/// The ConfigMaps and Secrets a booking of `offering` gets from verbund besides its
/// package's own objects: the package's configuration ConfigMap, its own credentials and
/// its dependencies'.
pub fn provided_references(offering: &OfferingSpec, package: &Package) -> Vec<Reference> {
    let mut out: Vec<Reference> = offering
        .dependencies
        .iter()
        .map(|d| Reference::Secret(credentials_secret(&d.offering)))
        .collect();
    if offering.credentials {
        out.push(Reference::Secret(credentials_secret(&offering.name)));
    }
    if let Package::Manifests {
        config_map: Some(name),
        ..
    } = package
    {
        out.push(Reference::ConfigMap(name.clone()));
        if crate::secrets::declares_secrets(&offering.config_schema) {
            out.push(Reference::Secret(format!("{name}-secrets")));
        }
    }
    out.sort();
    out
}

/// Whether `version`'s package can start as a booking of `offering`: every ConfigMap and
/// Secret its manifests' pods read exists (made by the package or provided by verbund),
/// and every Secret its Helm values name (`existingSecret`, …) is one verbund provides.
/// Publishing a version and rendering a booking both ask this, so a version that is
/// accepted never fails at render time for these reasons.
pub fn check_package(offering: &OfferingSpec, version: &VersionSpec) -> Result<()> {
    let provided = provided_references(offering, &version.package);
    let provided_text = || {
        if provided.is_empty() {
            "none".to_string()
        } else {
            provided
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    match &version.package {
        Package::Manifests {
            config_map: None, ..
        } if crate::secrets::declares_secrets(&offering.config_schema) => {
            return Err(Invalid::meaning(
                "/package/config_map",
                format!(
                    "`{}` declares secret configuration, which plain manifests read from the Secret `<config_map>-secrets`: name a config_map",
                    offering.name
                ),
            ));
        }
        _ => {}
    }
    match &version.package {
        Package::Manifests { manifests, .. } => {
            let unmet = unmet_references(manifests, &provided);
            if !unmet.is_empty() {
                let names: Vec<String> = unmet.iter().map(ToString::to_string).collect();
                return Err(Invalid::meaning(
                    "/package/manifests",
                    format!(
                        "the pods read {} which nothing creates; the manifests may read what they create and what verbund provides: {}",
                        names.join(", "),
                        provided_text()
                    ),
                ));
            }
        }
        Package::Helm { values, .. } => {
            for (pointer, name) in secret_names_in_values(values) {
                if !provided.contains(&Reference::Secret(name.clone())) {
                    return Err(Invalid::meaning(
                        format!("/package/values{pointer}"),
                        format!(
                            "names the Secret `{name}`, which no booking of `{}` gets; verbund provides: {}",
                            offering.name,
                            provided_text()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The first of `plans` that autoscales although `package` — plain manifests naming no
/// `scale_target` — cannot: the one rule of which plans a package can run. Publishing a
/// version asks it of every plan of the offering, changing an offering of its latest
/// version, and rendering a booking of the booking's own plan only (so a plan that
/// gains autoscaling never stops the bookings on the others).
pub fn unscaled_plan<'p>(
    plans: impl IntoIterator<Item = &'p Plan>,
    package: &Package,
) -> Option<&'p Plan> {
    match package {
        Package::Manifests {
            scale_target: None, ..
        } => plans.into_iter().find(|p| p.autoscaling.is_some()),
        _ => None,
    }
}

/// [`unscaled_plan`] as the refusal of publishing `version` of `offering`, or of
/// rendering it on `plans`.
pub fn check_scaling<'p>(
    offering: &str,
    plans: impl IntoIterator<Item = &'p Plan>,
    package: &Package,
) -> Result<()> {
    match unscaled_plan(plans, package) {
        Some(plan) => Err(Invalid::meaning(
            "/package/scale_target",
            format!(
                "plan `{}` of `{offering}` autoscales: name the Deployment or StatefulSet of the manifests it scales",
                plan.name
            ),
        )),
        None => Ok(()),
    }
}

/// The kind of the workload `name` among `manifests` that a plan's autoscaling scales (a
/// Deployment or a StatefulSet), which no HorizontalPodAutoscaler of the manifests
/// scales already (verbund renders the one from the plan).
pub fn check_scale_target(manifests: &[Value], name: &str) -> Result<&'static str> {
    let text = |m: &Value, pointer: &str| {
        m.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let kind = manifests
        .iter()
        .filter(|m| text(m, "/apiVersion").as_deref() == Some("apps/v1"))
        .filter(|m| text(m, "/metadata/name").as_deref() == Some(name))
        .find_map(|m| match text(m, "/kind").as_deref() {
            Some("Deployment") => Some("Deployment"),
            Some("StatefulSet") => Some("StatefulSet"),
            _ => None,
        })
        .ok_or_else(|| {
            Invalid::meaning(
                "/package/scale_target",
                format!("the manifests hold no Deployment or StatefulSet `{name}` to scale"),
            )
        })?;
    // One that scales it, or one under the name verbund gives its own (the same object).
    let scaled_already = manifests.iter().any(|m| {
        text(m, "/kind").as_deref() == Some("HorizontalPodAutoscaler")
            && (text(m, "/spec/scaleTargetRef/name").as_deref() == Some(name)
                || text(m, "/metadata/name").as_deref() == Some(name))
    });
    if scaled_already {
        return Err(Invalid::meaning(
            "/package/scale_target",
            format!(
                "the manifests bring their own HorizontalPodAutoscaler for `{name}`; verbund renders it from the plan"
            ),
        ));
    }
    Ok(kind)
}

/// A stored version of an offering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OfferingVersion {
    pub offering: String,
    #[serde(flatten)]
    pub spec: VersionSpec,
    pub published_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_travels_in_a_label_and_back() {
        for (version, label) in [
            ("1.1.0-RC.1+build.7", "1.1.0-RC.1_build.7"),
            ("29.0.4", "29.0.4"),
            ("1.0.0+20261202.sha-1f2e", "1.0.0_20261202.sha-1f2e"),
        ] {
            assert_eq!(version_label(version).as_deref(), Some(label));
            assert_eq!(version_from_label(label).as_deref(), Some(version));
        }
        // What does not fit a label unchanged has none, and is not published.
        let long = format!("1.0.0-{}", "a".repeat(60));
        for version in ["1.0.0-rc-", long.as_str()] {
            assert_eq!(version_label(version), None, "{version}");
            let spec = VersionSpec {
                version: version.to_string(),
                ..serde_json::from_value(serde_json::json!({"version": "1.0.0",
                    "package": {"type": "helm", "repository": "https://charts.example.org",
                                "chart": "app", "chart_version": "1.0.0"}}))
                .unwrap()
            };
            assert_eq!(spec.validate(None).unwrap_err().field, "/version");
        }
        assert_eq!(version_from_label("stable"), None);
    }

    proptest::proptest! {
        /// Every version that has a label reads back as itself.
        #[test]
        fn every_labelled_version_reads_back_as_itself(
            major in 0u64..1000, minor in 0u64..1000, patch in 0u64..1000,
            pre in proptest::option::of("[0-9A-Za-z-]{1,8}(\\.[0-9A-Za-z-]{1,8}){0,2}"),
            build in proptest::option::of("[0-9A-Za-z-]{1,8}(\\.[0-9A-Za-z-]{1,8}){0,2}"),
        ) {
            let mut version = format!("{major}.{minor}.{patch}");
            if let Some(pre) = pre {
                version = format!("{version}-{pre}");
            }
            if let Some(build) = build {
                version = format!("{version}+{build}");
            }
            proptest::prop_assume!(semver::Version::parse(&version).is_ok());
            if let Some(label) = version_label(&version) {
                proptest::prop_assert_eq!(version_from_label(&label), Some(version));
            }
        }
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Every version the pattern admits is a semantic version with a label.
        #[test]
        fn every_version_the_pattern_admits_is_published_as_itself(
            version in proptest::string::string_regex(&version_syntax()).unwrap()
                .prop_filter("fits a label", |v| v.len() <= MAX_VERSION_LABEL)
        ) {
            proptest::prop_assert!(semver::Version::parse(&version).is_ok(), "{}", version);
            proptest::prop_assert!(version_label(&version).is_some(), "{}", version);
            proptest::prop_assert!(check_version("/v", &version).is_ok(), "{}", version);
        }

        /// Every version a site may report is a semantic version.
        #[test]
        fn every_reported_version_the_pattern_admits_parses(
            version in proptest::string::string_regex(
                SEMVER.source().trim_start_matches('^').trim_end_matches('$')
            ).unwrap()
        ) {
            proptest::prop_assert!(semver::Version::parse(&version).is_ok(), "{}", version);
        }
    }

    #[test]
    fn the_version_pattern_follows_semver_and_the_label() {
        assert!(VERSION.compiles() && REPOSITORY.compiles() && SEMVER.compiles());
        assert!(LANGUAGE_TAG.compiles() && OZG_ID.compiles());
        for ok in [
            "1.0.0",
            "29.0.4",
            "1.1.0-RC.1+build.7",
            "1.0.0-a-+b",
            "1.0.0-0a",
            "1.0.0-x.-1",
        ] {
            assert!(check_version("/v", ok).is_ok(), "{ok}");
        }
        for bad in [
            "1.0",
            "01.0.0",
            "1.0.0-01",
            "1.0.0-rc-",
            "1.0.0+b-",
            "1.0.0-",
            "v1.0.0",
            "1.0.0 ",
            "1.0.0\n",
            "18446744073709551616.0.0",
            "1.0.0+",
            "1.0.0-a..b",
        ] {
            assert!(check_version("/v", bad).is_err(), "{bad}");
            let Err(e) = check_version("/v", bad) else {
                continue;
            };
            assert_eq!(e.breach, crate::Breach::Form, "{bad}");
        }
    }

    #[test]
    fn data_class_names_are_their_wire_names() {
        for c in [
            DataClass::Public,
            DataClass::Internal,
            DataClass::Personal,
            DataClass::SpecialCategories,
            DataClass::VsNfd,
        ] {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
    use serde_json::json;

    fn spec() -> OfferingSpec {
        serde_json::from_value(json!({
            "name": "nextcloud",
            "display_name": "Nextcloud",
            "vendor": "v",
            "category": "saas",
            "data_classes": ["personal"],
            "plans": [{"name": "s", "display_name": "S", "replicas": 1,
                       "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 10},
                       "monthly_price_cents": 9900}],
            "config_schema": {"type": "object", "properties": {"domain": {"type": "string"}}}
        }))
        .unwrap()
    }

    #[test]
    fn valid_offering() {
        spec().validate().unwrap();
    }

    #[test]
    fn the_description_language_is_a_language_tag() {
        let mut s = spec();
        for ok in ["en", "de", "de-AT", "nds"] {
            s.description_language = Some(ok.into());
            assert!(s.validate().is_ok(), "{ok}");
        }
        for bad in ["", "EN", "english", "de-at", "de_AT", "en-"] {
            s.description_language = Some(bad.into());
            assert_eq!(
                s.validate().unwrap_err().field,
                "/description_language",
                "{bad}"
            );
        }
    }

    #[test]
    fn invalid_schema_is_refused() {
        let mut s = spec();
        s.config_schema = json!({"type": "objekt"});
        let e = s.validate().unwrap_err();
        assert_eq!(e.field, "/config_schema");
    }

    #[test]
    fn plans_are_checked() {
        let mut s = spec();
        s.plans[0].autoscaling = Some(Autoscaling {
            min_replicas: 3,
            max_replicas: 2,
            target_cpu_utilization: DEFAULT_CPU_TARGET,
        });
        assert_eq!(s.validate().unwrap_err().field, "/plans/0/autoscaling");
        s.plans[0].autoscaling = Some(Autoscaling {
            min_replicas: 1,
            max_replicas: 2,
            target_cpu_utilization: 101,
        });
        assert_eq!(
            s.validate().unwrap_err().field,
            "/plans/0/autoscaling/target_cpu_utilization"
        );
        s.plans.clear();
        assert_eq!(s.validate().unwrap_err().field, "/plans");
    }

    fn manifests(scale_target: Option<&str>, extra: &[Value]) -> VersionSpec {
        let mut manifests = vec![json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}},
                                  "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}},
        })];
        manifests.extend(extra.iter().cloned());
        VersionSpec {
            version: "1.0.0".into(),
            package: Package::Manifests {
                manifests,
                config_map: None,
                scale_target: scale_target.map(str::to_string),
            },
            changelog: String::new(),
        }
    }

    #[test]
    fn an_autoscaling_plan_needs_what_it_scales_in_plain_manifests() {
        let mut s = spec();
        assert_eq!(check_package(&s, &manifests(None, &[])), Ok(()));
        s.plans[0].autoscaling = Some(Autoscaling {
            min_replicas: 1,
            max_replicas: 3,
            target_cpu_utilization: 60,
        });
        let unscaled = manifests(None, &[]).package;
        let e = check_scaling("nextcloud", &s.plans, &unscaled).unwrap_err();
        assert_eq!(e.field, "/package/scale_target");
        assert!(e.message.contains("plan `s`"), "{}", e.message);
        let scaled = manifests(Some("app"), &[]).package;
        assert_eq!(check_scaling("nextcloud", &s.plans, &scaled), Ok(()));
        // A plan that does not autoscale runs a package that names nothing.
        let other = Plan {
            name: "m".into(),
            autoscaling: None,
            ..s.plans[0].clone()
        };
        assert_eq!(check_scaling("nextcloud", [&other], &unscaled), Ok(()));
        // What it names must be a workload of the manifests that nothing scales yet.
        for (target, extra) in [
            ("other", vec![]),
            (
                "app",
                vec![
                    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                            "metadata": {"name": "own"},
                            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"},
                                     "maxReplicas": 9}}),
                ],
            ),
            (
                "app",
                vec![
                    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                            "metadata": {"name": "app"},
                            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
                                     "maxReplicas": 9}}),
                ],
            ),
        ] {
            let e = manifests(Some(target), &extra).validate(None).unwrap_err();
            assert_eq!(e.field, "/package/scale_target", "{target}");
        }
        assert!(manifests(Some("app"), &[]).validate(None).is_ok());
    }

    #[test]
    fn versions_only_grow() {
        let v = VersionSpec {
            version: "1.2.3".into(),
            package: Package::Helm {
                repository: "https://charts.example.org".into(),
                chart: "app".into(),
                chart_version: "1.2.3".into(),
                values: json!({}),
            },
            changelog: String::new(),
        };
        assert!(v.validate(None).is_ok());
        assert!(v.validate(Some("1.2.2")).is_ok());
        assert!(v.validate(Some("1.2.3")).is_err());
        assert!(v.validate(Some("2.0.0")).is_err());
        let bad = VersionSpec {
            version: "1.2".into(),
            ..v
        };
        assert!(bad.validate(None).is_err());
    }
}
