//! The directory: organisations (authorities), providers (legal entities running data
//! centers) and sites (the data centers / Kubernetes clusters themselves).
//!
//! Specs are what users submit; the stored records add ids and timestamps. Each spec
//! validates itself, so every adapter (API, CLI, importer) refuses the same bad input
//! with the same words.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Invalid, Result};
use crate::name::{
    check_name, check_pattern, check_text, Pattern, DISPLAY_NAME_MAX, SHORT_TEXT_MAX,
};
use crate::registration::Registration;

/// The administrative level of an organisation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    Bund,
    Land,
    Kreis,
    Gemeinde,
    /// A Zweckverband or another association of authorities; may sit anywhere below the Bund.
    Verband,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Bund => "bund",
            Level::Land => "land",
            Level::Kreis => "kreis",
            Level::Gemeinde => "gemeinde",
            Level::Verband => "verband",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "bund" => Level::Bund,
            "land" => Level::Land,
            "kreis" => Level::Kreis,
            "gemeinde" => Level::Gemeinde,
            "verband" => Level::Verband,
            _ => return None,
        })
    }

    pub const ALL: [Level; 5] = [
        Level::Bund,
        Level::Land,
        Level::Kreis,
        Level::Gemeinde,
        Level::Verband,
    ];

    /// Whether an organisation of this level sits below a parent: every one but the Bund.
    pub fn has_parent(self) -> bool {
        self != Level::Bund
    }

    /// Depth in the federal hierarchy; a parent is always strictly shallower.
    fn depth(self) -> u8 {
        match self {
            Level::Bund => 0,
            Level::Land => 1,
            Level::Kreis => 2,
            Level::Gemeinde => 3,
            Level::Verband => 4,
        }
    }

    /// Whether an organisation of level `self` may sit directly below one of `parent`.
    pub fn may_have_parent(self, parent: Level) -> bool {
        match self {
            Level::Bund => false,
            Level::Verband => parent != Level::Verband,
            // Gemeinden of city-states (Berlin, Hamburg) sit directly below their Land.
            _ => parent.depth() < self.depth(),
        }
    }
}

/// Lengths of an Amtlicher Regionalschlüssel (ARS) by level: Land 2, Kreis 5,
/// Gemeindeverband 9, Gemeinde 12.
const ARS_LENGTHS: [usize; 4] = [2, 5, 9, 12];
/// Lengths of an Amtlicher Gemeindeschlüssel (AGS): Land 2, Kreis 5, Gemeinde 8.
const AGS_LENGTHS: [usize; 3] = [2, 5, 8];

fn check_key(field: &str, value: &str, lengths: &[usize], what: &str) -> Result<()> {
    if !value.bytes().all(|b| b.is_ascii_digit()) || !lengths.contains(&value.len()) {
        return Err(Invalid::new(
            field,
            format!("`{value}` is not a valid {what} (digits only, {lengths:?} long)"),
        ));
    }
    let land: u8 = value[..2].parse().unwrap_or(0);
    if !(1..=16).contains(&land) {
        return Err(Invalid::new(
            field,
            format!(
                "`{value}` is not a valid {what}: Land code `{}` is not 01–16",
                &value[..2]
            ),
        ));
    }
    Ok(())
}

/// The key of a Land (the first two digits of its ARS and AGS), as a regular expression:
/// what `check_ars` accepts of two characters, which the tests pin.
pub const LAND_KEY_PATTERN: &str = "^(0[1-9]|1[0-6])$";

/// Validates a Land's key (`01` Schleswig-Holstein … `16` Thüringen): the rule of an
/// ARS's first two digits ([`LAND_KEY_PATTERN`]).
pub fn check_land_key(field: &str, value: &str) -> Result<()> {
    check_key(field, value, &[2], "Land key")
}

/// The JSON Schema of a Land's key.
pub fn land_key_schema() -> utoipa::openapi::schema::Object {
    crate::name::pattern_schema(LAND_KEY_PATTERN)
}

/// An ARS as a regular expression: what `check_ars` accepts, which the tests pin.
pub static ARS: Pattern = Pattern::new(|| "^(0[1-9]|1[0-6])([0-9]{3}|[0-9]{7}|[0-9]{10})?$".into());

/// An AGS as a regular expression: what `check_ags` accepts, which the tests pin.
pub static AGS: Pattern = Pattern::new(|| "^(0[1-9]|1[0-6])([0-9]{3}|[0-9]{6})?$".into());

/// Validates an ARS (Amtlicher Regionalschlüssel).
pub fn check_ars(field: &str, value: &str) -> Result<()> {
    check_key(field, value, &ARS_LENGTHS, "ARS")
}

/// Validates an AGS (Amtlicher Gemeindeschlüssel).
pub fn check_ags(field: &str, value: &str) -> Result<()> {
    check_key(field, value, &AGS_LENGTHS, "AGS")
}

/// A JSON Schema that allows `null` too, as serde reads an `Option` field.
pub fn nullable(mut schema: utoipa::openapi::schema::Object) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    let types: Vec<Type> = match &schema.schema_type {
        SchemaType::Type(t) => vec![t.clone()],
        SchemaType::Array(ts) => ts.clone(),
        SchemaType::AnyValue => return schema,
    };
    if !types.contains(&Type::Null) {
        schema.schema_type = SchemaType::from_iter(types.into_iter().chain([Type::Null]));
    }
    schema
}

/// A certification's level: a name, or none.
fn level_schema() -> utoipa::openapi::schema::Object {
    nullable(crate::name::name_schema())
}

fn ars_schema() -> utoipa::openapi::schema::Object {
    nullable(ARS.schema())
}

fn ags_schema() -> utoipa::openapi::schema::Object {
    nullable(AGS.schema())
}

/// An organisation's name: a display name without what the sites' GitOps engines cannot
/// carry (it travels into every booking namespace's annotation), as a regular expression
/// that `OrganisationSpec::validate` follows, which the tests pin.
pub static ORGANISATION_NAME: Pattern = Pattern::new(|| {
    crate::name::text_pattern(&format!(
        "{}{}",
        crate::name::NUL_CLASS,
        crate::portable::UNCARRIABLE_CLASS
    ))
});

fn organisation_name_schema() -> utoipa::openapi::schema::Object {
    crate::name::bounded_schema(&ORGANISATION_NAME, DISPLAY_NAME_MAX)
}

/// Checks an organisation's name (see [`ORGANISATION_NAME`]).
fn check_organisation_name(field: &str, name: &str) -> Result<()> {
    check_text(field, name, DISPLAY_NAME_MAX)?;
    if let Some(c) = name.chars().find(|c| crate::portable::is_uncarriable(*c)) {
        return Err(Invalid::new(field, crate::portable::describe(c)));
    }
    Ok(())
}

/// What a client submits to create or update an organisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganisationSpec {
    #[schema(schema_with = organisation_name_schema)]
    pub name: String,
    pub level: Level,
    /// Amtlicher Regionalschlüssel, 2 (Land), 5 (Kreis), 9 or 12 (Gemeinde) digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = ars_schema)]
    pub ars: Option<String>,
    /// Amtlicher Gemeindeschlüssel, 2, 5 or 8 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = ags_schema)]
    pub ags: Option<String>,
    /// Id of the parent organisation; required for every level but the Bund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub population: Option<i64>,
}

impl OrganisationSpec {
    /// The rule between `level` and `parent` as JSON Schema (`oneOf` by level): the
    /// Bund has no parent, every other level needs one. `validate` decides by the same
    /// [`Level::has_parent`].
    pub fn level_rule_schema() -> serde_json::Value {
        crate::name::presence_rule(
            "level",
            "parent",
            Level::ALL.map(|l| (l.as_str(), l.has_parent())),
        )
    }

    /// Checks everything that needs no other record.
    pub fn validate(&self) -> Result<()> {
        check_organisation_name("/name", &self.name)?;
        if let Some(ars) = &self.ars {
            check_ars("/ars", ars)?;
        }
        if let Some(ags) = &self.ags {
            check_ags("/ags", ags)?;
        }
        if let (Some(ars), Some(ags)) = (&self.ars, &self.ags) {
            if ars.len() == 12 && ags.len() == 8 && (ars[..5] != ags[..5] || ars[9..] != ags[5..]) {
                return Err(Invalid::meaning(
                    "/ags",
                    format!("`{ags}` does not match the ARS `{ars}`"),
                ));
            }
        }
        if matches!(self.population, Some(p) if p < 0) {
            return Err(Invalid::new("/population", "must not be negative"));
        }
        match (self.level.has_parent(), &self.parent) {
            (false, Some(_)) => Err(Invalid::new("/parent", "the Bund has no parent")),
            (true, None) => Err(Invalid::new(
                "/parent",
                format!(
                    "an organisation of level `{}` needs a parent",
                    self.level.as_str()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Checks the spec against its parent record.
    pub fn check_parent(&self, parent: &Organisation) -> Result<()> {
        if !self.level.may_have_parent(parent.level) {
            return Err(Invalid::meaning(
                "/parent",
                format!(
                    "an organisation of level `{}` cannot be placed below `{}` (level `{}`)",
                    self.level.as_str(),
                    parent.name,
                    parent.level.as_str()
                ),
            ));
        }
        if let (Some(land), Some(ars)) = (&parent.land, &self.ars) {
            if !ars.starts_with(land.as_str()) {
                return Err(Invalid::meaning(
                    "/ars",
                    format!("`{ars}` does not lie in the parent's Land `{land}`"),
                ));
            }
        }
        Ok(())
    }

    /// The Land an organisation belongs to: its own key for a Land, else the parent's.
    pub fn land(&self, parent: Option<&Organisation>) -> Option<String> {
        if self.level == Level::Land {
            if let Some(k) = self.ars.as_ref().or(self.ags.as_ref()) {
                return Some(k[..2].to_string());
            }
        }
        parent.and_then(|p| p.land.clone())
    }
}

/// A stored organisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Organisation {
    pub id: String,
    pub name: String,
    pub level: Level,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ars: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Two-digit key of the Land the organisation belongs to (none for the Bund).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub land: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub population: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Filters for listing organisations; all given ones must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganisationFilter {
    pub level: Option<Level>,
    pub parent: Option<String>,
    /// Two-digit Land key, e.g. `09` for Bayern.
    pub land: Option<String>,
    /// Case-sensitive prefix of the name.
    pub name_prefix: Option<String>,
    /// Exact ARS or AGS.
    pub key: Option<String>,
}

/// ISO 3166-1 alpha-2 codes of the member states of the European Union.
pub const EU_COUNTRIES: [&str; 27] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
];

pub fn is_eu(country: &str) -> bool {
    EU_COUNTRIES.contains(&country)
}

/// An ISO 3166-1 alpha-2 code's form, as a regular expression: what `check_country`
/// accepts, which the tests pin.
pub const COUNTRY_PATTERN: &str = "^[A-Z]{2}$";

/// The JSON Schema of a country code.
pub fn country_schema() -> utoipa::openapi::schema::Object {
    crate::name::pattern_schema(COUNTRY_PATTERN)
}

/// The JSON Schema of a provider's jurisdictions: at least one country code (repeated
/// ones count once).
pub fn jurisdictions_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(country_schema())
        .min_items(Some(1))
        .build()
}

fn check_country(field: &str, value: &str) -> Result<()> {
    if value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("`{value}` is not an ISO 3166-1 alpha-2 country code (e.g. `DE`)"),
        ))
    }
}

/// Where a provider has its registered seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Seat {
    #[schema(schema_with = crate::name::short_text_schema)]
    pub city: String,
    /// ISO 3166-1 alpha-2.
    #[schema(schema_with = country_schema)]
    pub country: String,
}

/// A company above the provider whose jurisdiction may reach the provider's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParentCompany {
    #[schema(schema_with = crate::name::display_name_schema)]
    pub name: String,
    /// ISO 3166-1 alpha-2 of the jurisdiction it is subject to.
    #[schema(schema_with = country_schema)]
    pub jurisdiction: String,
}

/// What a client submits for a provider (a legal entity operating sites).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Stable identifier (DNS-1123 label), e.g. `dataport`.
    #[schema(schema_with = crate::name::name_schema)]
    pub name: String,
    #[schema(schema_with = crate::name::display_name_schema)]
    pub display_name: String,
    /// E.g. `AöR`, `GmbH`, `Eigenbetrieb`.
    #[schema(schema_with = crate::name::short_text_schema)]
    pub legal_form: String,
    /// Whether the operator is a body governed by public law.
    pub public_law: bool,
    pub seat: Seat,
    /// ISO 3166-1 alpha-2 codes of the jurisdictions the provider itself is subject to.
    #[schema(schema_with = jurisdictions_schema)]
    pub jurisdictions: BTreeSet<String>,
    #[serde(default)]
    pub parent_companies: Vec<ParentCompany>,
    /// Its number in a state register, which its Gaia-X credential names (`null`: none
    /// known).
    #[serde(default)]
    #[schema(schema_with = crate::registration::registration_schema)]
    pub registration: Option<Registration>,
}

impl ProviderSpec {
    pub fn validate(&self) -> Result<()> {
        check_name("/name", &self.name)?;
        check_text("/display_name", &self.display_name, DISPLAY_NAME_MAX)?;
        check_text("/legal_form", &self.legal_form, SHORT_TEXT_MAX)?;
        check_text("/seat/city", &self.seat.city, SHORT_TEXT_MAX)?;
        check_country("/seat/country", &self.seat.country)?;
        if self.jurisdictions.is_empty() {
            return Err(Invalid::new(
                "/jurisdictions",
                "name at least one jurisdiction (the seat's country)",
            ));
        }
        for j in &self.jurisdictions {
            check_country("/jurisdictions", j)?;
        }
        for (i, p) in self.parent_companies.iter().enumerate() {
            check_text(
                &format!("/parent_companies/{i}/name"),
                &p.name,
                DISPLAY_NAME_MAX,
            )?;
            check_country(
                &format!("/parent_companies/{i}/jurisdiction"),
                &p.jurisdiction,
            )?;
        }
        if let Some(r) = &self.registration {
            r.validate("/registration")?;
        }
        Ok(())
    }

    /// Every jurisdiction that can reach the provider, its own and its parents'.
    pub fn all_jurisdictions(&self) -> BTreeSet<&str> {
        self.jurisdictions
            .iter()
            .map(String::as_str)
            .chain(
                self.parent_companies
                    .iter()
                    .map(|p| p.jurisdiction.as_str()),
            )
            .collect()
    }

    /// Whether a non-EU jurisdiction reaches the provider (e.g. through a parent).
    pub fn non_eu_exposure(&self) -> bool {
        self.all_jurisdictions().iter().any(|j| !is_eu(j))
    }
}

/// A stored provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Provider {
    #[serde(flatten)]
    pub spec: ProviderSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Environments a site offers. Every site has `prod`; `test` hosts the rollout's
/// first stage.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Environment {
    Test,
    #[default]
    Prod,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Test => "test",
            Environment::Prod => "prod",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Environment::Test, Environment::Prod]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

/// How a site receives its desired state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    Flux,
    Argocd,
    Agent,
}

/// A certification or attestation of a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Certification {
    /// E.g. `iso27001` (ISO 27001 on the basis of IT-Grundschutz), `bsi-c5`.
    #[schema(schema_with = crate::name::name_schema)]
    pub scheme: String,
    /// E.g. `type2` for BSI C5, `it-grundschutz` for ISO 27001.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = level_schema)]
    pub level: Option<String>,
    /// Last day on which the certificate is valid.
    #[schema(value_type = String, format = Date)]
    pub valid_until: NaiveDate,
}

impl Certification {
    pub fn is_valid_on(&self, day: NaiveDate) -> bool {
        day <= self.valid_until
    }
}

/// Where a site is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// ISO 3166-1 alpha-2.
    #[schema(schema_with = country_schema)]
    pub country: String,
    /// ISO 3166-2 subdivision, e.g. `DE-HH`; it begins with the country's code.
    #[schema(schema_with = region_schema)]
    pub region: String,
    #[schema(schema_with = crate::name::short_text_schema)]
    pub city: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = latitude_schema)]
    pub latitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = longitude_schema)]
    pub longitude: Option<f64>,
}

/// An ISO 3166-2 subdivision code's form: a country code, `-` and one to three capital
/// letters or digits (that the country is the location's own is a rule across fields).
pub static REGION: Pattern = Pattern::new(|| "^[A-Z]{2}-[A-Z0-9]{1,3}$".into());

fn region_schema() -> utoipa::openapi::schema::Object {
    REGION.schema()
}

/// The largest latitude and longitude, in degrees (their negatives are the smallest).
pub const LATITUDE_MAX: f64 = 90.0;
pub const LONGITUDE_MAX: f64 = 180.0;

fn degrees_schema(max: f64) -> utoipa::openapi::schema::Object {
    nullable(
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                utoipa::openapi::schema::KnownFormat::Double,
            )))
            .minimum(Some(-max))
            .maximum(Some(max))
            .build(),
    )
}

fn latitude_schema() -> utoipa::openapi::schema::Object {
    degrees_schema(LATITUDE_MAX)
}

fn longitude_schema() -> utoipa::openapi::schema::Object {
    degrees_schema(LONGITUDE_MAX)
}

/// Resources in the units verbund accounts in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU in millicores (1000 = one core).
    pub cpu_millis: u64,
    pub memory_mib: u64,
    pub storage_gib: u64,
}

impl Resources {
    pub fn fits_in(&self, free: &Resources) -> bool {
        self.cpu_millis <= free.cpu_millis
            && self.memory_mib <= free.memory_mib
            && self.storage_gib <= free.storage_gib
    }
}

/// What a client submits for a site (a data center's Kubernetes cluster).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    /// Stable identifier (DNS-1123 label), e.g. `dataport-hh-1`.
    #[schema(schema_with = crate::name::name_schema)]
    pub name: String,
    #[schema(schema_with = crate::name::display_name_schema)]
    pub display_name: String,
    /// Name of the operating provider.
    #[schema(schema_with = crate::name::name_schema)]
    pub provider: String,
    pub location: Location,
    #[serde(default)]
    pub certifications: Vec<Certification>,
    /// Kubernetes minor version, e.g. `1.31`.
    #[schema(schema_with = kubernetes_minor_schema)]
    pub kubernetes_version: String,
    /// Free-form capability tags, e.g. `storage:rwx`, `ingress:nginx`, `gpu`.
    #[serde(default)]
    #[schema(schema_with = capabilities_schema)]
    pub capabilities: BTreeSet<String>,
    /// Capacity available for tenants in the `prod` environment.
    pub capacity: Resources,
    /// The environments offered; `prod` among them.
    #[schema(schema_with = environments_schema)]
    pub environments: BTreeSet<Environment>,
    pub delivery: Delivery,
    /// The site's age X25519 recipient (`age1…`, from `age-keygen`), registered by its
    /// operator: the configuration values an offering declares secret are sealed for it
    /// with SOPS, and only the site's identity opens them (Flux's kustomize-controller,
    /// or verbund's agent). A site without one takes no booking with declared secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = age_recipient_schema)]
    pub age_recipient: Option<String>,
}

/// A Kubernetes minor version, e.g. `1.31`, as a regular expression that `SiteSpec` and
/// `OfferingSpec` check with.
pub static KUBERNETES_MINOR: Pattern = Pattern::new(|| "^1\\.(0|[1-9][0-9]{0,3})$".into());

/// The JSON Schema of a Kubernetes minor version.
pub fn kubernetes_minor_schema() -> utoipa::openapi::schema::Object {
    KUBERNETES_MINOR.schema()
}

/// Checks a Kubernetes minor version (see [`KUBERNETES_MINOR`]).
pub fn check_kubernetes_minor(field: &str, value: &str) -> Result<()> {
    check_pattern(
        field,
        value,
        &KUBERNETES_MINOR,
        7,
        "a Kubernetes minor version (e.g. `1.31`)",
    )
}

/// The longest capability tag.
pub const CAPABILITY_MAX: usize = 100;

/// A capability tag: text without white space (or NUL), as a regular expression.
pub static CAPABILITY: Pattern = Pattern::new(|| {
    format!(
        "^[^{}{}]+$",
        crate::name::WHITE_SPACE_CLASS,
        crate::name::NUL_CLASS
    )
});

/// The JSON Schema of a set of capability tags.
pub fn capabilities_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(crate::name::bounded_schema(&CAPABILITY, CAPABILITY_MAX))
        .unique_items(true)
        .build()
}

/// Checks a capability tag (see [`CAPABILITY`]).
pub fn check_capability(field: &str, cap: &str) -> Result<()> {
    check_pattern(
        field,
        cap,
        &CAPABILITY,
        CAPABILITY_MAX,
        "a capability tag (no spaces, 1–100 characters)",
    )
}

/// The JSON Schema of a site's environments: `prod` among them.
fn environments_schema() -> utoipa::openapi::schema::Array {
    let mut array = utoipa::openapi::schema::ArrayBuilder::new()
        .items(utoipa::openapi::Ref::from_schema_name("Environment"))
        .unique_items(true)
        .build();
    array.extensions = Some(
        [(
            "contains",
            serde_json::json!({"const": Environment::Prod.as_str()}),
        )]
        .into_iter()
        .collect(),
    );
    array
}

/// An age X25519 recipient's form: `age1` and 58 lowercase Bech32 characters (that its
/// checksum holds is a rule no pattern states).
pub static AGE_RECIPIENT: Pattern = Pattern::new(|| "^age1[02-9ac-hj-np-z]{58}$".into());

fn age_recipient_schema() -> utoipa::openapi::schema::Object {
    nullable(AGE_RECIPIENT.schema())
}

/// Checks an age X25519 recipient (`age1` and 58 Bech32 characters, checksum included):
/// its form ([`AGE_RECIPIENT`]), then its checksum and length.
pub fn check_age_recipient(field: &str, recipient: &str) -> Result<()> {
    let wrong = || {
        format!("`{recipient}` is not an age X25519 recipient (`age1…`, as `age-keygen` prints it)")
    };
    if !AGE_RECIPIENT.is_match(recipient) {
        return Err(Invalid::new(field, wrong()));
    }
    let (hrp, data) = bech32::decode(recipient).map_err(|_| Invalid::meaning(field, wrong()))?;
    if hrp.as_str() != "age" || data.len() != 32 {
        return Err(Invalid::meaning(field, wrong()));
    }
    Ok(())
}

impl SiteSpec {
    /// Whether bookings with declared secrets can be delivered here, and if not, why:
    /// the site needs an age recipient, and an engine that opens SOPS documents (Flux's
    /// kustomize-controller, verbund's agent — not Argo CD, which has no SOPS support of
    /// its own).
    pub fn secret_delivery(&self) -> std::result::Result<(), String> {
        if self.delivery == Delivery::Argocd {
            return Err(
                "Argo CD opens no SOPS-sealed secrets, so configuration declared secret cannot be delivered there".into(),
            );
        }
        if self.age_recipient.is_none() {
            return Err(
                "the site has registered no age recipient to seal configuration declared secret for".into(),
            );
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<()> {
        check_name("/name", &self.name)?;
        check_text("/display_name", &self.display_name, DISPLAY_NAME_MAX)?;
        check_name("/provider", &self.provider)?;
        check_country("/location/country", &self.location.country)?;
        let region = &self.location.region;
        let country = &self.location.country;
        let not_of_country =
            || format!("`{region}` is not an ISO 3166-2 code of `{country}` (e.g. `{country}-BY`)");
        if !REGION.is_match(region) {
            return Err(Invalid::new("/location/region", not_of_country()));
        }
        if !region.starts_with(&format!("{country}-")) {
            return Err(Invalid::meaning("/location/region", not_of_country()));
        }
        check_text("/location/city", &self.location.city, SHORT_TEXT_MAX)?;
        if let Some(lat) = self.location.latitude {
            if !(-LATITUDE_MAX..=LATITUDE_MAX).contains(&lat) {
                return Err(Invalid::new("/location/latitude", "must be within -90..90"));
            }
        }
        if let Some(lon) = self.location.longitude {
            if !(-LONGITUDE_MAX..=LONGITUDE_MAX).contains(&lon) {
                return Err(Invalid::new(
                    "/location/longitude",
                    "must be within -180..180",
                ));
            }
        }
        for (i, c) in self.certifications.iter().enumerate() {
            check_name(&format!("/certifications/{i}/scheme"), &c.scheme)?;
            if let Some(level) = &c.level {
                check_name(&format!("/certifications/{i}/level"), level)?;
            }
        }
        check_kubernetes_minor("/kubernetes_version", &self.kubernetes_version)?;
        for cap in &self.capabilities {
            check_capability("/capabilities", cap)?;
        }
        if !self.environments.contains(&Environment::Prod) {
            return Err(Invalid::new(
                "/environments",
                "a site must offer a `prod` environment",
            ));
        }
        if let Some(r) = &self.age_recipient {
            check_age_recipient("/age_recipient", r)?;
        }
        Ok(())
    }

    /// The Kubernetes minor version as a number, for comparisons.
    pub fn kubernetes_minor(&self) -> Option<u16> {
        self.kubernetes_version
            .split_once('.')
            .and_then(|(_, m)| m.parse().ok())
    }
}

/// A stored site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Site {
    #[serde(flatten)]
    pub spec: SiteSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(level: Level, parent: Option<&str>) -> OrganisationSpec {
        OrganisationSpec {
            name: "X".into(),
            level,
            ars: None,
            ags: None,
            parent: parent.map(Into::into),
            population: None,
        }
    }

    #[test]
    fn keys() {
        assert!(check_ars("/ars", "091620000000").is_ok());
        assert!(check_ars("/ars", "09").is_ok());
        assert!(check_ars("/ars", "0916").is_err());
        assert!(check_ars("/ars", "17").is_err());
        assert!(check_ars("/ars", "0916200000x0").is_err());
        assert!(check_ags("/ags", "09162000").is_ok());
        assert!(check_ags("/ags", "091620000000").is_err());
    }

    /// Strings of the characters that make and break keys, up to `len` long.
    fn strings(alphabet: &[char], len: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..len {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn the_key_patterns_are_check_ars_and_check_ags() {
        assert!(ARS.compiles() && AGS.compiles());
        let mut keys = strings(&['0', '1', '6', '7', 'x'], 4);
        for len in 5..=13 {
            for head in ["01", "09", "16", "17", "00", "0x"] {
                keys.push(format!("{head}{}", "0".repeat(len - 2)));
                keys.push(format!("{head}{}a", "0".repeat(len - 3)));
            }
        }
        keys.push("09\n".into());
        for key in keys {
            assert_eq!(
                check_ars("a", &key).is_ok(),
                ARS.is_match(&key),
                "ARS {key:?}"
            );
            assert_eq!(
                check_ags("a", &key).is_ok(),
                AGS.is_match(&key),
                "AGS {key:?}"
            );
        }
    }

    #[test]
    fn the_organisation_name_pattern_is_its_check() {
        assert!(ORGANISATION_NAME.compiles());
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            for name in [format!(" {c} "), format!("a{c}")] {
                assert_eq!(
                    check_organisation_name("/name", &name).is_ok(),
                    ORGANISATION_NAME.is_match(&name),
                    "U+{:04X}",
                    u32::from(c)
                );
            }
        }
    }

    #[test]
    fn the_patterns_of_sites_compile_and_decide() {
        for p in [&REGION, &KUBERNETES_MINOR, &CAPABILITY, &AGE_RECIPIENT] {
            assert!(p.compiles(), "{}", p.source());
        }
        for (v, ok) in [
            ("1.31", true),
            ("1.0", true),
            ("1.031", false),
            ("1.+5", false),
            ("2.1", false),
            ("1.99999", false),
            ("1.31\n", false),
        ] {
            assert_eq!(check_kubernetes_minor("k", v).is_ok(), ok, "{v:?}");
        }
        for (v, ok) in [
            ("gpu", true),
            ("storage:rwx", true),
            ("a b", false),
            ("", false),
            ("a\u{a0}", false),
            (&"ä".repeat(100), true),
            (&"a".repeat(101), false),
        ] {
            assert_eq!(check_capability("c", v).is_ok(), ok, "{v:?}");
        }
    }

    #[test]
    fn an_age_recipient_breaks_its_form_or_its_checksum() {
        let good = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq";
        assert!(check_age_recipient("/r", good).is_ok());
        let wrong_sum = good.replace("290gq", "290gp");
        assert_eq!(
            check_age_recipient("/r", &wrong_sum).unwrap_err().breach,
            crate::Breach::Meaning
        );
        for bad in [
            "age1",
            "AGE1QL3Z",
            &good.to_uppercase(),
            &format!("{good}q"),
        ] {
            assert_eq!(
                check_age_recipient("/r", bad).unwrap_err().breach,
                crate::Breach::Form,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_land_key_pattern_is_check_ars_of_two_characters() {
        let re = regex::Regex::new(LAND_KEY_PATTERN).unwrap();
        for a in ['0', '1', '2', '9', 'x', ' '] {
            for b in ['0', '1', '6', '7', '9', 'x'] {
                let key = format!("{a}{b}");
                assert_eq!(check_ars("land", &key).is_ok(), re.is_match(&key), "{key}");
            }
        }
    }

    #[test]
    fn the_country_pattern_is_check_country() {
        let re = regex::Regex::new(COUNTRY_PATTERN).unwrap();
        for code in ["DE", "", "D", "de", "DEU", "D1", "ÄB", "DE\n"] {
            assert_eq!(
                check_country("c", code).is_ok(),
                re.is_match(code),
                "{code:?}"
            );
        }
    }

    #[test]
    fn ars_and_ags_must_agree() {
        let mut s = org(Level::Gemeinde, Some("p"));
        s.ars = Some("091620000000".into());
        s.ags = Some("09162000".into());
        assert!(s.validate().is_ok());
        s.ags = Some("09162001".into());
        assert_eq!(s.validate().unwrap_err().field, "/ags");
    }

    #[test]
    fn hierarchy() {
        assert!(org(Level::Bund, None).validate().is_ok());
        assert!(org(Level::Bund, Some("x")).validate().is_err());
        assert!(org(Level::Kreis, None).validate().is_err());
        assert!(Level::Gemeinde.may_have_parent(Level::Land));
        assert!(!Level::Land.may_have_parent(Level::Kreis));
        assert!(Level::Verband.may_have_parent(Level::Kreis));
    }

    #[test]
    fn non_eu_parent_is_exposure() {
        let mut p = ProviderSpec {
            name: "p".into(),
            display_name: "P".into(),
            legal_form: "GmbH".into(),
            public_law: false,
            seat: Seat {
                city: "Berlin".into(),
                country: "DE".into(),
            },
            jurisdictions: ["DE".to_string()].into(),
            parent_companies: vec![],
            registration: None,
        };
        assert!(!p.non_eu_exposure());
        p.parent_companies.push(ParentCompany {
            name: "Big".into(),
            jurisdiction: "US".into(),
        });
        assert!(p.non_eu_exposure());
    }
}

/// An organisation as an importer reads it: parents are named by key, not id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedOrganisation {
    pub name: String,
    pub level: Level,
    pub ars: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ags: Option<String>,
    /// ARS of the parent; `None` places the organisation directly below the Bund.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_ars: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub population: Option<i64>,
}

/// An OZG-Leistung from the OZG catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OzgService {
    pub id: String,
    pub name: String,
    /// The Lebens- or Unternehmenslage it belongs to.
    pub situation: String,
    /// One of the 14 Themenfelder.
    pub field: String,
}

/// What an import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportSummary {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}
