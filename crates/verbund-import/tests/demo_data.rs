//! Checks the demo federation data in `crates/verbund-cli/demo/` against the domain types
//! and their validation, so that `verbund demo` never starts from a file the API would
//! refuse; and checks its municipalities and OZG ids against the real reference data.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::BufReader;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use verbund_domain::catalog::{OfferingSpec, VersionSpec};
use verbund_domain::directory::{
    check_ags, check_ars, KeyedOrganisation, Level, OrganisationSpec, OzgService, ProviderSpec,
    SiteSpec,
};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../verbund-cli/demo/");
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/");

/// One entry of `offerings.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogEntry {
    offering: OfferingSpec,
    versions: Vec<VersionSpec>,
}

fn load<T: DeserializeOwned>(file: &str) -> Vec<T> {
    let path = format!("{DEMO}{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // The demo loader's placeholder for its own charts' Helm repository (`--charts`).
    let text = text.replace(
        "${VERBUND_DEMO_CHARTS}",
        "https://charts.verbund.example/demo",
    );
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn municipalities() {
    let orgs: Vec<KeyedOrganisation> = load("municipalities.yaml");
    let mut seen: HashMap<&str, Level> = HashMap::new();
    for o in &orgs {
        check_ars("/ars", &o.ars).unwrap();
        let ags = o.ags.as_deref().unwrap();
        check_ags("/ags", ags).unwrap();
        assert!(!o.name.trim().is_empty());
        assert!(o.population.unwrap() > 0, "{}", o.ars);
        // As the store will see it: every level but the Bund sits below something.
        as_spec(o)
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", o.ars));
        match &o.parent_ars {
            None => assert_eq!(o.level, Level::Land, "{}", o.ars),
            Some(p) => {
                let parent = seen
                    .get(p.as_str())
                    .unwrap_or_else(|| panic!("parent {p} of {} missing or later", o.ars));
                assert!(o.level.may_have_parent(*parent), "{}", o.ars);
                assert!(o.ars.starts_with(p.as_str()), "{}", o.ars);
            }
        }
        assert!(seen.insert(&o.ars, o.level).is_none(), "{} twice", o.ars);
    }
    let count = |l: Level| orgs.iter().filter(|o| o.level == l).count();
    assert_eq!(count(Level::Land), 16);
    let gemeinden: Vec<_> = orgs.iter().filter(|o| o.level == Level::Gemeinde).collect();
    assert!((35..=50).contains(&gemeinden.len()), "{}", gemeinden.len());
    // Every Land has a Gemeinde, every Kreis is needed by one.
    for land in orgs.iter().filter(|o| o.level == Level::Land) {
        assert!(
            gemeinden.iter().any(|g| g.ars.starts_with(&land.ars)),
            "{}",
            land.name
        );
    }
    for kreis in orgs.iter().filter(|o| o.level == Level::Kreis) {
        assert!(
            gemeinden
                .iter()
                .any(|g| g.parent_ars.as_ref() == Some(&kreis.ars)),
            "{}",
            kreis.name
        );
    }
    let small: BTreeSet<_> = gemeinden
        .iter()
        .filter(|g| g.population.unwrap() < 5_000)
        .map(|g| &g.ars[..2])
        .collect();
    assert_eq!(small, ["01", "03", "05", "09", "12", "14"].into());

    // Exactly as the importer reads them from the official directory.
    let file = File::open(format!("{DATA}GV100AD_301121.ASC")).unwrap();
    let official = verbund_import::gv100ad::parse(BufReader::new(file)).unwrap();
    let official: HashMap<_, _> = official.organisations.iter().map(|o| (&o.ars, o)).collect();
    for o in &orgs {
        assert_eq!(Some(&o), official.get(&o.ars), "{}", o.ars);
    }
}

#[test]
fn providers_and_sites() {
    let providers: Vec<ProviderSpec> = load("providers.yaml");
    let mut names = BTreeSet::new();
    for p in &providers {
        p.validate().unwrap_or_else(|e| panic!("{}: {e}", p.name));
        assert!(p.display_name.ends_with(" (Demo)"), "{}", p.display_name);
        assert!(names.insert(p.name.as_str()), "{} twice", p.name);
    }
    let exposed: Vec<_> = providers.iter().filter(|p| p.non_eu_exposure()).collect();
    assert_eq!(exposed.len(), 1);

    let sites: Vec<SiteSpec> = load("sites.yaml");
    let mut site_names = BTreeSet::new();
    let mut regions = BTreeSet::new();
    for s in &sites {
        s.validate().unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert!(
            names.contains(s.provider.as_str()),
            "{}: unknown provider",
            s.name
        );
        assert!(site_names.insert(s.name.as_str()), "{} twice", s.name);
        assert!(s.display_name.ends_with(" (Demo)"), "{}", s.display_name);
        regions.insert(s.location.region.as_str());
    }
    assert!(regions.len() >= 7, "{regions:?}");
    for p in &names {
        assert!(sites.iter().any(|s| s.provider == *p), "{p} has no site");
    }
    let certs = |scheme: &str, until: &str| {
        sites
            .iter()
            .flat_map(|s| &s.certifications)
            .filter(|c| c.scheme == scheme && c.valid_until.to_string() == until)
            .count()
    };
    assert_eq!(certs("bsi-c5", "2026-12-31"), 1);
    assert_eq!(certs("iso27001", "2026-06-30"), 1);
}

fn official_ozg() -> Vec<OzgService> {
    let file = File::open(format!("{DATA}ozg-leistungen.csv")).unwrap();
    verbund_import::ozg::parse(BufReader::new(file)).unwrap()
}

#[test]
fn offerings() {
    let catalog: Vec<CatalogEntry> = load("offerings.yaml");
    // The demo loads only its OZG sample, so offerings may name only services in it.
    let sample: Vec<OzgService> = load("ozg.yaml");
    let ozg_ids: BTreeSet<String> = sample.into_iter().map(|s| s.id).collect();
    let mut earlier: HashMap<&str, &OfferingSpec> = HashMap::new();
    for CatalogEntry {
        offering: o,
        versions,
    } in &catalog
    {
        o.validate().unwrap_or_else(|e| panic!("{}: {e}", o.name));
        assert_eq!(o.vendor, "demo-vendor");
        if let Some(id) = &o.ozg_id {
            assert!(ozg_ids.contains(id), "{}: unknown OZG id {id}", o.name);
        }
        for d in &o.dependencies {
            let dep = earlier.get(d.offering.as_str()).unwrap_or_else(|| {
                panic!(
                    "{} depends on {}, listed later or not at all",
                    o.name, d.offering
                )
            });
            if let Some(plan) = &d.plan {
                assert!(
                    dep.plan(plan).is_some(),
                    "{}: no plan {plan} in {}",
                    o.name,
                    d.offering
                );
            }
        }
        assert!(!versions.is_empty(), "{}", o.name);
        let mut latest: Option<&str> = None;
        for v in versions {
            v.validate(latest)
                .unwrap_or_else(|e| panic!("{} {}: {e}", o.name, v.version));
            // What publishing checks against the offering: every Secret and ConfigMap
            // the package reads is one it makes or verbund provides.
            verbund_domain::catalog::check_package(o, v)
                .unwrap_or_else(|e| panic!("{} {}: {e}", o.name, v.version));
            assert!(!v.changelog.trim().is_empty(), "{} {}", o.name, v.version);
            latest = Some(&v.version);
        }
        assert!(earlier.insert(&o.name, o).is_none(), "{} twice", o.name);
    }
    for name in [
        "nextcloud",
        "jitsi-meet",
        "openproject",
        "matrix-synapse",
        "keycloak",
        "postgresql",
        "collabora-online",
    ] {
        assert!(earlier.contains_key(name), "{name} missing");
    }
    assert_eq!(
        catalog
            .iter()
            .filter(|e| e.offering.ozg_id.is_some())
            .count(),
        3
    );
}

#[test]
fn ozg_sample() {
    let sample: Vec<OzgService> = load("ozg.yaml");
    assert!(sample.len() >= 10);
    let official = official_ozg();
    let mut ids = BTreeSet::new();
    for s in &sample {
        assert!(ids.insert(&s.id), "{} twice", s.id);
        assert!(
            official.contains(s),
            "{s:?} differs from the official catalog"
        );
    }
}

fn as_spec(o: &KeyedOrganisation) -> OrganisationSpec {
    OrganisationSpec {
        name: o.name.clone(),
        level: o.level,
        ars: Some(o.ars.clone()),
        ags: o.ags.clone(),
        parent: Some(o.parent_ars.clone().unwrap_or_else(|| "bund".into())),
        population: o.population,
    }
}
