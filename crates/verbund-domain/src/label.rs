//! The Gaia-X label criteria for data sovereignty, derived per site (and its provider)
//! from the placement facts verbund holds — those the federation stated or approved (see
//! [`crate::facts`]), never an operator's own word — so that policies can ask for a
//! level (`forbid … unless resource.gaiax_level >= 3`).
//!
//! The Gaia-X compliance document (24.11, P5.1.x) asks, from label level 1 to 3, for
//! more sovereignty, and from level 2 on for it to be shown by certification rather than
//! self-declaration. verbund reads them from its facts as follows:
//!
//! | criterion | read from |
//! | --- | --- |
//! | `certified`: an attested security baseline | a valid ISO 27001 or BSI C5 certification of the site |
//! | `attested-by-c5`: sovereignty shown by an audit, not a self-declaration | a valid BSI C5 attestation (type 1 or 2) |
//! | `eu-processing`: processing and storage only in the EU/EEA | the site's country |
//! | `eu-headquarters`: the head office in the EU/EEA | the provider's seat |
//! | `no-non-eu-control`: no control by shareholders outside the EU/EEA | the provider's parent companies' jurisdictions |
//! | `no-non-eu-disclosure`: safeguards against disclosure orders from outside the EU/EEA | every jurisdiction the provider is subject to |
//!
//! Level 1: certified and EU processing. Level 2: level 1 attested by BSI C5. Level 3:
//! level 2, and head office, control and jurisdictions all inside the EU/EEA.

use std::collections::BTreeSet;

use chrono::NaiveDate;

use crate::directory::{is_eu, ProviderSpec, SiteSpec};

/// The EEA states outside the EU.
const EEA_ONLY: [&str; 3] = ["IS", "LI", "NO"];

/// Whether `country` (ISO 3166-1 alpha-2) is in the EU or the EEA.
pub fn is_eu_eea(country: &str) -> bool {
    is_eu(country) || EEA_ONLY.contains(&country)
}

/// One criterion, as policies and people name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Criterion {
    Certified,
    AttestedByC5,
    EuProcessing,
    EuHeadquarters,
    NoNonEuControl,
    NoNonEuDisclosure,
}

impl Criterion {
    pub fn as_str(self) -> &'static str {
        match self {
            Criterion::Certified => "certified",
            Criterion::AttestedByC5 => "attested-by-c5",
            Criterion::EuProcessing => "eu-processing",
            Criterion::EuHeadquarters => "eu-headquarters",
            Criterion::NoNonEuControl => "no-non-eu-control",
            Criterion::NoNonEuDisclosure => "no-non-eu-disclosure",
        }
    }
}

/// The criteria a site meets on `day`, and the level they make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub met: BTreeSet<Criterion>,
    /// 0 (none) to 3.
    pub level: u8,
}

/// What `site` of `provider` meets on `day` (certifications valid that day).
pub fn label(site: &SiteSpec, provider: &ProviderSpec, day: NaiveDate) -> Label {
    let valid: Vec<&str> = site
        .certifications
        .iter()
        .filter(|c| c.is_valid_on(day))
        .map(|c| c.scheme.as_str())
        .collect();
    let c5 = valid.contains(&"bsi-c5");
    let mut met = BTreeSet::new();
    let mut meet = |yes: bool, c: Criterion| {
        if yes {
            met.insert(c);
        }
    };
    meet(c5 || valid.contains(&"iso27001"), Criterion::Certified);
    meet(c5, Criterion::AttestedByC5);
    meet(is_eu_eea(&site.location.country), Criterion::EuProcessing);
    meet(is_eu_eea(&provider.seat.country), Criterion::EuHeadquarters);
    meet(
        provider
            .parent_companies
            .iter()
            .all(|p| is_eu_eea(&p.jurisdiction)),
        Criterion::NoNonEuControl,
    );
    meet(
        provider.all_jurisdictions().iter().all(|j| is_eu_eea(j)),
        Criterion::NoNonEuDisclosure,
    );
    let has = |c: Criterion| met.contains(&c);
    let level1 = has(Criterion::Certified) && has(Criterion::EuProcessing);
    let level2 = level1 && has(Criterion::AttestedByC5);
    let level3 = level2
        && has(Criterion::EuHeadquarters)
        && has(Criterion::NoNonEuControl)
        && has(Criterion::NoNonEuDisclosure);
    let level = [level1, level2, level3]
        .into_iter()
        .take_while(|l| *l)
        .count();
    Label {
        met,
        level: u8::try_from(level).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Certification;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 1, 1).unwrap_or_default()
    }

    fn cert(scheme: &str, until: i32) -> Certification {
        Certification {
            scheme: scheme.into(),
            level: None,
            valid_until: NaiveDate::from_ymd_opt(until, 12, 31).unwrap_or_default(),
        }
    }

    fn provider(seat: &str, parents: &[&str]) -> ProviderSpec {
        serde_json::from_value(serde_json::json!({
            "name": "p", "display_name": "P", "legal_form": "GmbH", "public_law": false,
            "seat": {"city": "X", "country": seat}, "jurisdictions": [seat],
            "parent_companies": parents.iter().map(|j| serde_json::json!({"name": "Mutter", "jurisdiction": j})).collect::<Vec<_>>(),
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn site(country: &str, certs: Vec<Certification>) -> SiteSpec {
        let mut s: SiteSpec = serde_json::from_value(serde_json::json!({
            "name": "s", "display_name": "S", "provider": "p",
            "location": {"country": country, "region": "DE-HH", "city": "Hamburg"},
            "kubernetes_version": "1.31",
            "capacity": {"cpu_millis": 1000, "memory_mib": 1024, "storage_gib": 10},
            "environments": ["prod"], "delivery": "flux",
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        s.certifications = certs;
        s
    }

    #[test]
    fn each_level_needs_the_one_below_and_more() {
        let de = provider("DE", &[]);
        assert_eq!(label(&site("DE", vec![]), &de, day()).level, 0);
        assert_eq!(
            label(&site("DE", vec![cert("iso27001", 2027)]), &de, day()).level,
            1
        );
        assert_eq!(
            label(&site("US", vec![cert("bsi-c5", 2027)]), &de, day()).level,
            0
        );
        assert_eq!(
            label(&site("DE", vec![cert("bsi-c5", 2027)]), &de, day()).level,
            3
        );
        assert_eq!(
            label(&site("NO", vec![cert("bsi-c5", 2027)]), &de, day()).level,
            3
        );
        // A US parent: control and disclosure reach outside the EU/EEA.
        let us_parent = provider("DE", &["US"]);
        let l = label(&site("DE", vec![cert("bsi-c5", 2027)]), &us_parent, day());
        assert_eq!(l.level, 2);
        assert!(!l.met.contains(&Criterion::NoNonEuControl));
        // An expired attestation counts for nothing.
        assert_eq!(
            label(&site("DE", vec![cert("bsi-c5", 2026)]), &de, day()).level,
            0
        );
    }

    #[test]
    fn a_swiss_parent_is_outside_the_eea() {
        let ch = provider("DE", &["CH"]);
        let l = label(&site("DE", vec![cert("bsi-c5", 2027)]), &ch, day());
        assert_eq!(l.level, 2);
    }
}
