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
use crate::name::{check_name, check_text, DISPLAY_NAME_MAX, SHORT_TEXT_MAX};

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

/// The JSON Schema of a Land's key.
pub fn land_key_schema() -> utoipa::openapi::schema::Object {
    crate::name::pattern_schema(LAND_KEY_PATTERN)
}

/// Validates an ARS (Amtlicher Regionalschlüssel).
pub fn check_ars(field: &str, value: &str) -> Result<()> {
    check_key(field, value, &ARS_LENGTHS, "ARS")
}

/// Validates an AGS (Amtlicher Gemeindeschlüssel).
pub fn check_ags(field: &str, value: &str) -> Result<()> {
    check_key(field, value, &AGS_LENGTHS, "AGS")
}

/// What a client submits to create or update an organisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganisationSpec {
    #[schema(schema_with = crate::name::display_name_schema)]
    pub name: String,
    pub level: Level,
    /// Amtlicher Regionalschlüssel, 2 (Land), 5 (Kreis), 9 or 12 (Gemeinde) digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ars: Option<String>,
    /// Amtlicher Gemeindeschlüssel, 2, 5 or 8 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ags: Option<String>,
    /// Id of the parent organisation; required for every level but the Bund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub population: Option<i64>,
}

impl OrganisationSpec {
    /// Checks everything that needs no other record.
    pub fn validate(&self) -> Result<()> {
        check_text("/name", &self.name, DISPLAY_NAME_MAX)?;
        // The name travels into every booking namespace's annotation.
        if let Some(c) = self
            .name
            .chars()
            .find(|c| crate::portable::is_uncarriable(*c))
        {
            return Err(Invalid::new("/name", crate::portable::describe(c)));
        }
        if let Some(ars) = &self.ars {
            check_ars("/ars", ars)?;
        }
        if let Some(ags) = &self.ags {
            check_ags("/ags", ags)?;
        }
        if let (Some(ars), Some(ags)) = (&self.ars, &self.ags) {
            if ars.len() == 12 && ags.len() == 8 && (ars[..5] != ags[..5] || ars[9..] != ags[5..]) {
                return Err(Invalid::new(
                    "/ags",
                    format!("`{ags}` does not match the ARS `{ars}`"),
                ));
            }
        }
        if matches!(self.population, Some(p) if p < 0) {
            return Err(Invalid::new("/population", "must not be negative"));
        }
        match (self.level, &self.parent) {
            (Level::Bund, Some(_)) => Err(Invalid::new("/parent", "the Bund has no parent")),
            (Level::Bund, None) => Ok(()),
            (_, None) => Err(Invalid::new(
                "/parent",
                format!(
                    "an organisation of level `{}` needs a parent",
                    self.level.as_str()
                ),
            )),
            (_, Some(_)) => Ok(()),
        }
    }

    /// Checks the spec against its parent record.
    pub fn check_parent(&self, parent: &Organisation) -> Result<()> {
        if !self.level.may_have_parent(parent.level) {
            return Err(Invalid::new(
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
                return Err(Invalid::new(
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
    /// ISO 3166-2 subdivision, e.g. `DE-HH`.
    pub region: String,
    #[schema(schema_with = crate::name::short_text_schema)]
    pub city: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
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
    pub kubernetes_version: String,
    /// Free-form capability tags, e.g. `storage:rwx`, `ingress:nginx`, `gpu`.
    #[serde(default)]
    pub capabilities: BTreeSet<String>,
    /// Capacity available for tenants in the `prod` environment.
    pub capacity: Resources,
    pub environments: BTreeSet<Environment>,
    pub delivery: Delivery,
    /// The site's age X25519 recipient (`age1…`, from `age-keygen`), registered by its
    /// operator: the configuration values an offering declares secret are sealed for it
    /// with SOPS, and only the site's identity opens them (Flux's kustomize-controller,
    /// or verbund's agent). A site without one takes no booking with declared secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_recipient: Option<String>,
}

/// Checks an age X25519 recipient (`age1` and 58 Bech32 characters, checksum included).
pub fn check_age_recipient(field: &str, recipient: &str) -> Result<()> {
    let wrong = || {
        Invalid::new(
            field,
            format!(
                "`{recipient}` is not an age X25519 recipient (`age1…`, as `age-keygen` prints it)"
            ),
        )
    };
    let (hrp, data) = bech32::decode(recipient).map_err(|_| wrong())?;
    if hrp.as_str() != "age" || data.len() != 32 || recipient != recipient.to_lowercase() {
        return Err(wrong());
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
        let region_ok = self
            .location
            .region
            .split_once('-')
            .is_some_and(|(c, sub)| {
                c == self.location.country
                    && (1..=3).contains(&sub.len())
                    && sub
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            });
        if !region_ok {
            return Err(Invalid::new(
                "/location/region",
                format!(
                    "`{}` is not an ISO 3166-2 code of `{}` (e.g. `{}-BY`)",
                    self.location.region, self.location.country, self.location.country
                ),
            ));
        }
        check_text("/location/city", &self.location.city, SHORT_TEXT_MAX)?;
        if let Some(lat) = self.location.latitude {
            if !(-90.0..=90.0).contains(&lat) {
                return Err(Invalid::new("/location/latitude", "must be within -90..90"));
            }
        }
        if let Some(lon) = self.location.longitude {
            if !(-180.0..=180.0).contains(&lon) {
                return Err(Invalid::new(
                    "/location/longitude",
                    "must be within -180..180",
                ));
            }
        }
        for (i, c) in self.certifications.iter().enumerate() {
            check_name(&format!("/certifications/{i}/scheme"), &c.scheme)?;
        }
        let kv_ok = self
            .kubernetes_version
            .split_once('.')
            .is_some_and(|(maj, min)| maj == "1" && min.parse::<u16>().is_ok());
        if !kv_ok {
            return Err(Invalid::new(
                "/kubernetes_version",
                format!(
                    "`{}` is not a Kubernetes minor version (e.g. `1.31`)",
                    self.kubernetes_version
                ),
            ));
        }
        for cap in &self.capabilities {
            if cap.is_empty() || cap.len() > 100 || cap.chars().any(char::is_whitespace) {
                return Err(Invalid::new(
                    "/capabilities",
                    format!("`{cap}` is not a capability tag (no spaces, 1–100 characters)"),
                ));
            }
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
