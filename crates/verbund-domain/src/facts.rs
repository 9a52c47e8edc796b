//! Facts with provenance: which fields of a provider or a site placement reads (or the
//! federation signs into a Gaia-X credential), so that the operators those facts
//! constrain cannot state them themselves.
//!
//! A provider's placement facts are its legal form, public-law status, seat,
//! jurisdictions and parent companies, and with them its registration number, which the
//! federation vouches for in the provider's `gx:LegalPerson` credential; a site's are
//! its location, certifications and environments. Certifications count as placement facts too: until they are
//! verifiable credentials from an issuer on the federation's trust list, an operator's
//! word for its own certificate is no evidence, so a certification goes through the
//! same proposal and approval as any other fact. Everything else (display name,
//! Kubernetes version, capabilities, capacity, delivery, age recipient) is operational
//! and stays the operator's to edit.
//!
//! A fact changes only when the federation states it (a federation admin's edit) or a
//! federation admin approves an operator's [`FactProposal`], and the approver is not the
//! proposer (four eyes; decided by the Cedar role policies). Each fact keeps who stated
//! it, who approved it and when ([`StatedFact`]). [`PROVIDER_FACTS`] and [`SITE_FACTS`]
//! are the one list of which fields those are; the API's decision, the store's
//! proposals and their approval all go through [`changed_facts`] and [`with_facts`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::directory::{ProviderSpec, SiteSpec};
use crate::error::{Invalid, Result};

/// The fields of a provider that placement reads, and its registration number, which the
/// federation signs into its Gaia-X credential (see the module documentation).
pub const PROVIDER_FACTS: &[&str] = &[
    "legal_form",
    "public_law",
    "seat",
    "jurisdictions",
    "parent_companies",
    "registration",
];

/// The fields of a site that placement reads (certifications included, see the module
/// documentation).
pub const SITE_FACTS: &[&str] = &["location", "certifications", "environments"];

/// Placement facts by field name, with their values as the spec serialises them.
pub type Facts = BTreeMap<String, serde_json::Value>;

/// What a fact is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FactKind {
    Provider,
    Site,
}

impl FactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FactKind::Provider => "provider",
            FactKind::Site => "site",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [FactKind::Provider, FactKind::Site]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// The fields of this kind that are placement facts.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            FactKind::Provider => PROVIDER_FACTS,
            FactKind::Site => SITE_FACTS,
        }
    }
}

/// A spec whose placement facts [`FactKind::fields`] names.
pub trait HasFacts: Serialize + DeserializeOwned + Clone + PartialEq {
    const KIND: FactKind;

    /// The provider's or the site's name.
    fn name(&self) -> &str;

    /// The provider concerned: the provider itself, or the site's operator.
    fn provider(&self) -> &str;

    /// The spec's own validation.
    fn check(&self) -> Result<()>;
}

impl HasFacts for ProviderSpec {
    const KIND: FactKind = FactKind::Provider;

    fn name(&self) -> &str {
        &self.name
    }

    fn provider(&self) -> &str {
        &self.name
    }

    fn check(&self) -> Result<()> {
        self.validate()
    }
}

impl HasFacts for SiteSpec {
    const KIND: FactKind = FactKind::Site;

    fn name(&self) -> &str {
        &self.name
    }

    fn provider(&self) -> &str {
        &self.provider
    }

    fn check(&self) -> Result<()> {
        self.validate()
    }
}

fn as_object<T: Serialize>(spec: &T) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(spec) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

/// The placement facts of `spec`.
pub fn facts_of<T: HasFacts>(spec: &T) -> Facts {
    let mut m = as_object(spec);
    T::KIND
        .fields()
        .iter()
        .filter_map(|f| m.remove(*f).map(|v| (f.to_string(), v)))
        .collect()
}

/// The placement facts in which `after` differs from `before`, with `after`'s values.
/// Empty when a change touches only operational fields.
pub fn changed_facts<T: HasFacts>(before: &T, after: &T) -> Facts {
    let old = facts_of(before);
    facts_of(after)
        .into_iter()
        .filter(|(f, v)| old.get(f) != Some(v))
        .collect()
}

/// `spec` with the placement facts in `facts` set; refuses a field that is not a
/// placement fact and a value the spec does not accept.
pub fn with_facts<T: HasFacts>(spec: &T, facts: &Facts) -> Result<T> {
    let mut m = as_object(spec);
    for (f, v) in facts {
        if !T::KIND.fields().contains(&f.as_str()) {
            return Err(Invalid::new(
                format!("/facts/{f}"),
                format!("`{f}` is not a placement fact of a {}", T::KIND.as_str()),
            ));
        }
        m.insert(f.clone(), v.clone());
    }
    serde_json::from_value(serde_json::Value::Object(m))
        .map_err(|e| Invalid::new("/facts", format!("the facts do not fit: {e}")))
}

/// `spec`'s operational fields with `current`'s placement facts: what an operator's
/// change may apply at once.
pub fn keep_facts<T: HasFacts>(spec: &T, current: &T) -> Result<T> {
    with_facts(spec, &facts_of(current))
}

/// Where an operator's proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProposalState {
    /// Waiting for a federation admin; changes no placement.
    Pending,
    /// A federation admin other than the proposer approved it; its facts apply.
    Approved,
    /// A federation admin turned it down; nothing changed.
    Rejected,
}

impl ProposalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalState::Pending => "pending",
            ProposalState::Approved => "approved",
            ProposalState::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            ProposalState::Pending,
            ProposalState::Approved,
            ProposalState::Rejected,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// An operator's proposed change of placement facts, pending until a federation admin
/// decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FactProposal {
    pub id: String,
    pub kind: FactKind,
    /// The provider's or the site's name.
    pub object: String,
    /// The provider concerned (for a site, its operator's).
    pub provider: String,
    /// The proposed values, by field.
    #[schema(value_type = Object)]
    pub facts: Facts,
    pub state: ProposalState,
    /// Who proposed it (`user/<name>`).
    pub proposed_by: String,
    /// The proposer's account id (four eyes compare accounts, not names).
    pub proposer_id: String,
    pub proposed_at: DateTime<Utc>,
    /// Who approved or rejected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One placement fact with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatedFact {
    pub field: String,
    /// The fact's value: a string, a boolean, a list or an object, by field.
    #[schema(value_type = Value)]
    pub value: serde_json::Value,
    /// Who stated the value: a federation admin, or the operator whose proposal was
    /// approved. Absent for a value stated before verbund recorded provenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stated_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stated_at: Option<DateTime<Utc>>,
    /// The federation admin who approved an operator's statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<DateTime<Utc>>,
    /// The approved proposal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<String>,
}

/// The placement facts of a provider or a site with their provenance, and the proposals
/// still pending for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FactSheet {
    pub kind: FactKind,
    pub object: String,
    pub facts: Vec<StatedFact>,
    pub pending: Vec<FactProposal>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn provider() -> ProviderSpec {
        serde_json::from_value(json!({
            "name": "gamma",
            "display_name": "Gamma GmbH",
            "legal_form": "GmbH",
            "public_law": false,
            "seat": {"city": "Berlin", "country": "DE"},
            "jurisdictions": ["DE"],
            "parent_companies": [{"name": "Gamma Inc.", "jurisdiction": "US"}],
        }))
        .unwrap()
    }

    fn site() -> SiteSpec {
        serde_json::from_value(json!({
            "name": "gamma-1",
            "display_name": "Gamma 1",
            "provider": "gamma",
            "location": {"country": "DE", "region": "DE-BE", "city": "Berlin"},
            "certifications": [],
            "kubernetes_version": "1.31",
            "capacity": {"cpu_millis": 1000, "memory_mib": 1024, "storage_gib": 10},
            "environments": ["prod"],
            "delivery": "flux",
        }))
        .unwrap()
    }

    #[test]
    fn every_listed_fact_is_a_field_of_its_spec() {
        assert_eq!(facts_of(&provider()).len(), PROVIDER_FACTS.len());
        assert_eq!(facts_of(&site()).len(), SITE_FACTS.len());
    }

    #[test]
    fn the_attacks_of_issue_17_are_fact_changes() {
        let before = provider();
        let mut after = before.clone();
        after.public_law = true;
        after.parent_companies.clear();
        let changed = changed_facts(&before, &after);
        assert_eq!(
            changed.keys().collect::<Vec<_>>(),
            ["parent_companies", "public_law"]
        );

        let before = site();
        let mut after = before.clone();
        after.certifications.push(
            serde_json::from_value(
                json!({"scheme": "bsi-c5", "level": "type2", "valid_until": "2030-01-01"}),
            )
            .unwrap(),
        );
        assert_eq!(
            changed_facts(&before, &after).keys().collect::<Vec<_>>(),
            ["certifications"]
        );
    }

    #[test]
    fn a_registration_number_is_a_fact_also_when_removed() {
        let before = provider();
        let mut after = before.clone();
        after.registration =
            serde_json::from_value(json!({"kind": "vat-id", "value": "DE123456789"})).unwrap();
        let added = changed_facts(&before, &after);
        assert_eq!(added.keys().collect::<Vec<_>>(), ["registration"]);
        let removed = changed_facts(&after, &before);
        assert_eq!(removed["registration"], serde_json::Value::Null);
        assert_eq!(with_facts(&after, &removed).unwrap(), before);
    }

    #[test]
    fn operational_fields_are_no_facts() {
        let before = site();
        let mut after = before.clone();
        after.display_name = "Gamma Berlin".into();
        after.kubernetes_version = "1.32".into();
        after.capacity.cpu_millis = 64_000;
        after.capabilities.insert("gpu".into());
        assert!(changed_facts(&before, &after).is_empty());
        let mut p = provider();
        p.display_name = "Gamma".into();
        assert!(changed_facts(&provider(), &p).is_empty());
    }

    #[test]
    fn keeping_facts_takes_the_operational_part_only() {
        let current = provider();
        let mut asked = current.clone();
        asked.display_name = "Gamma".into();
        asked.public_law = true;
        let kept = keep_facts(&asked, &current).unwrap();
        assert_eq!(kept.display_name, "Gamma");
        assert!(!kept.public_law);
        // Applying the proposed facts afterwards gives what was asked.
        let proposed = changed_facts(&current, &asked);
        assert_eq!(with_facts(&kept, &proposed).unwrap(), asked);
    }

    #[test]
    fn with_facts_refuses_what_is_no_fact() {
        let facts = Facts::from([("display_name".to_string(), json!("x"))]);
        let e = with_facts(&provider(), &facts).unwrap_err();
        assert_eq!(e.field, "/facts/display_name");
        let facts = Facts::from([("public_law".to_string(), json!("yes"))]);
        assert_eq!(with_facts(&provider(), &facts).unwrap_err().field, "/facts");
    }
}
