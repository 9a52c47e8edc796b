//! Placement never violates policy: random federations, offerings, organisation chains
//! and Land or organisation `forbid` rules, checked against an independent
//! re-implementation ("oracle") of the federation rules and of every generated rule.
//! One placer also serves every organisation and two offerings in turn, so that its
//! memory of policy outcomes is checked against the oracle as well.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use proptest::sample::{select, subsequence, Index};
use verbund_domain::catalog::{Category, DataClass, OfferingSpec, Plan, SiteRequirements};
use verbund_domain::directory::{
    Certification, Delivery, Environment, Level, Location, Organisation, ParentCompany,
    ProviderSpec, Resources, Seat, SiteSpec,
};
use verbund_domain::preflight::{PreflightCheck, PreflightReport, PreflightVerdict, SitePreflight};
use verbund_policy::{
    Need, PlacementDecision, Placer, PolicyBook, PolicyDocument, PolicyError, PolicyLayer, Reason,
    SiteVerdict,
};

/// Cases per property; `PROPTEST_CASES` overrides it for a longer hunt.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

/// A site's age recipient (placement only asks whether there is one).
const RECIPIENT: &str = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq";

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).expect("a valid date")
}

fn stamp() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

// ---------------------------------------------------------------------------------------
// The world

/// Two-digit Land keys and their ISO 3166-2 regions.
const LANDS: [(&str, &str); 5] = [
    ("01", "DE-SH"),
    ("02", "DE-HH"),
    ("09", "DE-BY"),
    ("11", "DE-BE"),
    ("14", "DE-SN"),
];
/// Regions with their countries: German Länder, other EU states, non-EU states.
const REGIONS: [(&str, &str); 10] = [
    ("DE-SH", "DE"),
    ("DE-HH", "DE"),
    ("DE-BY", "DE"),
    ("DE-BE", "DE"),
    ("DE-SN", "DE"),
    ("AT-9", "AT"),
    ("FR-IDF", "FR"),
    ("NL-NH", "NL"),
    ("CH-ZH", "CH"),
    ("US-VA", "US"),
];
const CITIES: [&str; 5] = ["Kiel", "Hamburg", "München", "Berlin", "Wien"];
const CERTS: [(&str, Option<&str>); 5] = [
    ("iso27001", Some("it-grundschutz")),
    ("iso27001", None),
    ("bsi-c5", Some("type1")),
    ("bsi-c5", Some("type2")),
    ("tisax", None),
];
/// What policies may ask a site's certifications for.
const CERT_TOKENS: [&str; 5] = [
    "bsi-c5:type2",
    "iso27001",
    "bsi-c5",
    "bsi-c5:type1",
    "tisax",
];
const CAPS: [&str; 4] = ["storage:rwx", "ingress:nginx", "gpu", "backup"];
const JURISDICTIONS: [&str; 6] = ["DE", "AT", "IE", "US", "CN", "CH"];
/// The EU member states among the countries generated here, written out by hand.
const EU: [&str; 5] = ["DE", "AT", "FR", "NL", "IE"];
const OFFERINGS: [&str; 3] = ["nextcloud", "ozg-antrag", "postgres"];
const CLASSES: [DataClass; 5] = [
    DataClass::Public,
    DataClass::Internal,
    DataClass::Personal,
    DataClass::SpecialCategories,
    DataClass::VsNfd,
];

fn in_eu(country: &str) -> bool {
    EU.contains(&country)
}

fn class_name(c: DataClass) -> &'static str {
    match c {
        DataClass::Public => "public",
        DataClass::Internal => "internal",
        DataClass::Personal => "personal",
        DataClass::SpecialCategories => "special-categories",
        DataClass::VsNfd => "vs-nfd",
    }
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Bund => "bund",
        Level::Land => "land",
        Level::Kreis => "kreis",
        Level::Gemeinde => "gemeinde",
        Level::Verband => "verband",
    }
}

fn resources() -> impl Strategy<Value = Resources> {
    (
        select(vec![0u64, 500, 1000, 2000, 4000, 8000]),
        select(vec![0u64, 512, 1024, 4096, 8192]),
        select(vec![0u64, 10, 50, 100]),
    )
        .prop_map(|(cpu_millis, memory_mib, storage_gib)| Resources {
            cpu_millis,
            memory_mib,
            storage_gib,
        })
}

/// Free capacity: mostly plenty, sometimes scarce or none.
fn free_resources() -> impl Strategy<Value = Resources> {
    prop_oneof![
        1 => resources(),
        3 => (4000u64..=16000, 4096u64..=16384, 50u64..=500).prop_map(
            |(cpu_millis, memory_mib, storage_gib)| Resources {
                cpu_millis,
                memory_mib,
                storage_gib,
            }
        ),
    ]
}

fn plan_resources() -> impl Strategy<Value = Resources> {
    (
        select(vec![250u64, 500, 1000, 2000, 4000]),
        select(vec![256u64, 512, 1024, 2048, 4096]),
        select(vec![0u64, 5, 10, 50]),
    )
        .prop_map(|(cpu_millis, memory_mib, storage_gib)| Resources {
            cpu_millis,
            memory_mib,
            storage_gib,
        })
}

fn jurisdiction_list() -> impl Strategy<Value = Vec<&'static str>> {
    prop_oneof![
        3 => Just(Vec::new()),
        1 => proptest::collection::vec(select(JURISDICTIONS.to_vec()), 1..=2),
    ]
}

fn provider(i: usize) -> impl Strategy<Value = ProviderSpec> {
    (
        proptest::bool::weighted(0.7),
        jurisdiction_list(),
        jurisdiction_list(),
    )
        .prop_map(move |(public_law, own, parents)| ProviderSpec {
            name: format!("p{i}"),
            display_name: format!("Provider {i}"),
            legal_form: if public_law { "AöR" } else { "GmbH" }.into(),
            public_law,
            seat: Seat {
                city: "Hamburg".into(),
                country: "DE".into(),
            },
            jurisdictions: std::iter::once("DE")
                .chain(own)
                .map(str::to_string)
                .collect(),
            parent_companies: parents
                .into_iter()
                .map(|j| ParentCompany {
                    name: format!("Mutter {j}"),
                    jurisdiction: j.into(),
                })
                .collect(),
            registration: None,
        })
}

/// A site and the free capacity of its `prod` environment.
#[derive(Debug, Clone)]
struct GenSite {
    spec: SiteSpec,
    free: Resources,
}

fn site(i: usize) -> impl Strategy<Value = (Index, GenSite)> {
    (
        any::<Index>(),
        // Mostly German sites, so that the booking's own Land often has some.
        prop_oneof![3 => select(REGIONS[..5].to_vec()), 1 => select(REGIONS[5..].to_vec())],
        select(CITIES.to_vec()),
        proptest::collection::vec(proptest::bool::weighted(0.75), CERTS.len()),
        // Expiry around the decision day: the day itself is the last valid one for 0.
        proptest::collection::vec(-2i64..=4, CERTS.len()),
        subsequence(CAPS.to_vec(), 0..=CAPS.len()),
        27u16..=32,
        resources(),
        free_resources(),
        // Which sites can receive declared secrets (an engine that opens SOPS, a
        // recipient) is the site's own business.
        select(vec![Delivery::Flux, Delivery::Argocd, Delivery::Agent]),
        proptest::bool::ANY,
    )
        .prop_map(
            move |(
                provider,
                (region, country),
                city,
                held,
                offsets,
                caps,
                minor,
                capacity,
                free,
                delivery,
                recipient,
            )| {
                let certifications = CERTS
                    .into_iter()
                    .zip(offsets)
                    .zip(held)
                    .filter(|(_, held)| *held)
                    .map(|(((scheme, level), offset), _)| Certification {
                        scheme: scheme.into(),
                        level: level.map(Into::into),
                        valid_until: if offset >= 0 {
                            today() + Days::new(offset as u64)
                        } else {
                            today() - Days::new(offset.unsigned_abs())
                        },
                    })
                    .collect();
                let spec = SiteSpec {
                    name: format!("s{i}"),
                    display_name: format!("Site {i}"),
                    provider: String::new(), // set once the providers are known
                    location: Location {
                        country: country.into(),
                        region: region.into(),
                        city: city.into(),
                        latitude: None,
                        longitude: None,
                    },
                    certifications,
                    kubernetes_version: format!("1.{minor}"),
                    capabilities: caps.into_iter().map(str::to_string).collect(),
                    capacity,
                    environments: [Environment::Test, Environment::Prod].into(),
                    delivery,
                    age_recipient: recipient.then(|| RECIPIENT.to_string()),
                };
                (provider, GenSite { spec, free })
            },
        )
}

fn offering() -> impl Strategy<Value = OfferingSpec> {
    (
        select(OFFERINGS.to_vec()),
        select(vec![Category::Iaas, Category::Paas, Category::Saas]),
        // The most protected class (uniformly), and some less protected ones.
        (0..CLASSES.len()).prop_flat_map(|top| {
            subsequence(CLASSES[..top].to_vec(), 0..=top).prop_map(move |mut lower| {
                lower.push(CLASSES[top]);
                lower
            })
        }),
        prop_oneof![2 => Just(Vec::new()), 1 => subsequence(CAPS.to_vec(), 1..=2)],
        prop_oneof![2 => Just(None), 1 => (27u16..=32).prop_map(Some)],
        plan_resources(),
        // A configuration field declared secret, or none.
        proptest::bool::ANY,
    )
        .prop_map(
            |(name, category, classes, caps, min_k8s, res, secret)| OfferingSpec {
                efa: None,
                data_export: None,
                name: name.into(),
                display_name: name.into(),
                description: String::new(),
                description_language: None,
                vendor: "vendor".into(),
                category,
                ozg_id: None,
                data_classes: classes.into_iter().collect(),
                requirements: SiteRequirements {
                    capabilities: caps.into_iter().map(str::to_string).collect(),
                    min_kubernetes: min_k8s.map(|m| format!("1.{m}")),
                },
                plans: vec![Plan {
                    name: "s".into(),
                    display_name: "S".into(),
                    resources: res,
                    replicas: 1,
                    autoscaling: None,
                    monthly_price_cents: 1000,
                }],
                config_schema: if secret {
                    serde_json::json!({"type": "object", "properties": {
                        "admin_password": {"type": "string", "writeOnly": true}}})
                } else {
                    serde_json::json!({"type": "object"})
                },
                dependencies: Vec::new(),
                smoke_test: None,
                requires_approval: false,
                retention_days: 30,
                tenancy: Default::default(),
                tenant_schema: None,
                credentials: false,
            },
        )
}

/// Bund → Land → Kreis → Gemeinde, plus organisations outside the booking chain: a
/// sibling Gemeinde, another Land and a Kreis in it.
#[derive(Debug, Clone)]
struct Orgs {
    all: Vec<Organisation>,
    /// The booking organisation's id, then its ancestors'.
    chain: Vec<String>,
}

/// Positions in `Orgs::all`.
const BUND: usize = 0;
const LAND: usize = 1;
const KREIS: usize = 2;
const GEMEINDE: usize = 3;
const SIBLING: usize = 4;
const OTHER_LAND: usize = 5;
const OTHER_KREIS: usize = 6;

fn org(
    id: String,
    level: Level,
    parent: Option<&Organisation>,
    land: Option<&str>,
) -> Organisation {
    Organisation {
        name: format!("Organisation {id}"),
        id,
        level,
        ars: None,
        ags: None,
        parent: parent.map(|p| p.id.clone()),
        land: land.map(str::to_string),
        population: None,
        created_at: stamp(),
        updated_at: stamp(),
    }
}

impl Orgs {
    /// An organisation's id, then its ancestors'.
    fn chain_of(&self, i: usize) -> Vec<String> {
        let mut chain = Vec::new();
        let mut current = Some(&self.all[i]);
        while let Some(o) = current {
            chain.push(o.id.clone());
            current = o
                .parent
                .as_ref()
                .and_then(|p| self.all.iter().find(|x| &x.id == p));
        }
        chain
    }
}

fn orgs() -> impl Strategy<Value = Orgs> {
    ("[a-z0-9]{4}", 0..LANDS.len(), 1..LANDS.len(), 0..=3usize).prop_map(
        |(s, land, shift, depth)| {
            let key = LANDS[land].0;
            let other = LANDS[(land + shift) % LANDS.len()].0;
            let bund = org(format!("bund-{s}"), Level::Bund, None, None);
            let l = org(format!("land-{s}"), Level::Land, Some(&bund), Some(key));
            let k = org(format!("kreis-{s}"), Level::Kreis, Some(&l), Some(key));
            let g = org(format!("gem-{s}"), Level::Gemeinde, Some(&k), Some(key));
            let sib = org(format!("sgem-{s}"), Level::Gemeinde, Some(&k), Some(key));
            let ol = org(format!("oland-{s}"), Level::Land, Some(&bund), Some(other));
            let ok = org(format!("okreis-{s}"), Level::Kreis, Some(&ol), Some(other));
            let all = vec![bund, l, k, g, sib, ol, ok];
            // depth 3: a Gemeinde books; 0: the Bund itself.
            let chain = [GEMEINDE, KREIS, LAND, BUND][3 - depth..]
                .iter()
                .map(|i| all[*i].id.clone())
                .collect();
            Orgs { all, chain }
        },
    )
}

// ---------------------------------------------------------------------------------------
// The rule grammar of generated Land and organisation policies

#[derive(Debug, Clone)]
enum Rule {
    RegionNot(&'static str),
    Provider(String),
    MissingCert(&'static str),
    PersonalCity(&'static str),
    SpecialCountryNot(&'static str),
    KubernetesBelow(u16),
    Jurisdiction(&'static str),
    NotPublicLaw,
    ClassInRegion(DataClass, &'static str),
    LevelWithout(Level, &'static str),
    LandOutsideEu(&'static str),
    OfferingExposed(&'static str),
}

fn rule(providers: usize) -> impl Strategy<Value = Rule> {
    let regions: Vec<&str> = REGIONS.iter().map(|r| r.0).collect();
    prop_oneof![
        // Forbids almost every site; rarer, so that some placements stay possible.
        1 => select(regions.clone()).prop_map(Rule::RegionNot),
        2 => (0..providers).prop_map(|p| Rule::Provider(format!("p{p}"))),
        2 => select(CERT_TOKENS.to_vec()).prop_map(Rule::MissingCert),
        2 => select(CITIES.to_vec()).prop_map(Rule::PersonalCity),
        2 => select(vec!["DE", "AT"]).prop_map(Rule::SpecialCountryNot),
        2 => (27u16..=33).prop_map(Rule::KubernetesBelow),
        2 => select(JURISDICTIONS.to_vec()).prop_map(Rule::Jurisdiction),
        2 => Just(Rule::NotPublicLaw),
        2 => (select(CLASSES.to_vec()), select(regions)).prop_map(|(c, r)| Rule::ClassInRegion(c, r)),
        2 => (
            select(vec![Level::Bund, Level::Land, Level::Kreis, Level::Gemeinde]),
            select(CAPS.to_vec())
        )
            .prop_map(|(l, c)| Rule::LevelWithout(l, c)),
        2 => select(LANDS.iter().map(|l| l.0).collect::<Vec<_>>()).prop_map(Rule::LandOutsideEu),
        2 => select(OFFERINGS.to_vec()).prop_map(Rule::OfferingExposed),
    ]
}

impl Rule {
    fn cedar(&self) -> String {
        match self {
            Rule::RegionNot(r) => format!(r#"resource.region != "{r}""#),
            Rule::Provider(p) => format!(r#"resource.provider == "{p}""#),
            Rule::MissingCert(c) => format!(r#"!resource.certifications.contains("{c}")"#),
            Rule::PersonalCity(c) => format!(r#"context.personal && resource.city == "{c}""#),
            Rule::SpecialCountryNot(c) => {
                format!(r#"context.special && resource.country != "{c}""#)
            }
            Rule::KubernetesBelow(m) => format!("resource.kubernetes_minor < {m}"),
            Rule::Jurisdiction(j) => format!(r#"resource.jurisdictions.contains("{j}")"#),
            Rule::NotPublicLaw => "!resource.public_law".into(),
            Rule::ClassInRegion(c, r) => format!(
                r#"context.data_classes.contains("{}") && resource.region == "{r}""#,
                class_name(*c)
            ),
            Rule::LevelWithout(l, c) => format!(
                r#"principal.level == "{}" && !resource.capabilities.contains("{c}")"#,
                level_name(*l)
            ),
            Rule::LandOutsideEu(k) => {
                format!(r#"principal has land && principal.land == "{k}" && !resource.eu"#)
            }
            Rule::OfferingExposed(o) => {
                format!(r#"context.offering == "{o}" && resource.non_eu_exposure"#)
            }
        }
    }

    /// The oracle: whether the rule matches a placement.
    fn matches(&self, p: &Placement<'_>) -> bool {
        let site = p.site;
        match self {
            Rule::RegionNot(r) => site.location.region != *r,
            Rule::Provider(name) => site.provider == *name,
            Rule::MissingCert(c) => !p.certs.contains(*c),
            Rule::PersonalCity(c) => p.personal && site.location.city == *c,
            Rule::SpecialCountryNot(c) => p.special && site.location.country != *c,
            Rule::KubernetesBelow(m) => p.minor < *m,
            Rule::Jurisdiction(j) => p.jurisdictions.contains(*j),
            Rule::NotPublicLaw => !p.provider.public_law,
            Rule::ClassInRegion(c, r) => {
                p.offering.data_classes.contains(c) && site.location.region == *r
            }
            Rule::LevelWithout(l, c) => p.principal.level == *l && !site.capabilities.contains(*c),
            Rule::LandOutsideEu(k) => {
                p.principal.land.as_deref() == Some(*k) && !in_eu(&site.location.country)
            }
            Rule::OfferingExposed(o) => p.offering.name == *o && p.exposed,
        }
    }
}

/// One generated policy: an optional `principal in …` scope, a rule, and whether it
/// carries an `@id`.
#[derive(Debug, Clone)]
struct GenPolicy {
    scope: Option<usize>,
    rule: Rule,
    named: bool,
}

/// One generated document of `forbid` policies, owned by one organisation.
#[derive(Debug, Clone)]
struct GenDoc {
    owner: usize,
    land_layer: bool,
    policies: Vec<GenPolicy>,
}

fn gen_policy(providers: usize) -> impl Strategy<Value = GenPolicy> {
    (
        prop_oneof![3 => Just(None), 1 => (0..7usize).prop_map(Some)],
        rule(providers),
        any::<bool>(),
    )
        .prop_map(|(scope, rule, named)| GenPolicy { scope, rule, named })
}

fn gen_doc(providers: usize) -> impl Strategy<Value = GenDoc> {
    (
        0..7usize,
        any::<bool>(),
        proptest::collection::vec(gen_policy(providers), 1..=2),
    )
        .prop_map(|(owner, land_layer, policies)| GenDoc {
            owner,
            land_layer,
            policies,
        })
}

impl GenDoc {
    fn layer(&self, orgs: &Orgs) -> PolicyLayer {
        if self.land_layer && orgs.all[self.owner].level == Level::Land {
            PolicyLayer::Land
        } else {
            PolicyLayer::Organisation
        }
    }

    fn local_id(p: &GenPolicy, n: usize) -> String {
        if p.named {
            format!("r{n}")
        } else {
            format!("policy{n}")
        }
    }

    fn document(&self, i: usize, orgs: &Orgs, effect: &str) -> PolicyDocument {
        let text = self
            .policies
            .iter()
            .enumerate()
            .map(|(n, p)| {
                let id = if p.named {
                    format!("@id(\"r{n}\")\n")
                } else {
                    String::new()
                };
                let principal = match p.scope {
                    Some(o) => format!("principal in Verbund::Organisation::\"{}\"", orgs.all[o].id),
                    None => "principal".into(),
                };
                format!(
                    "{id}{effect} ({principal}, action == Verbund::Action::\"place\", resource)\nwhen {{ {} }};\n",
                    p.rule.cedar()
                )
            })
            .collect();
        PolicyDocument {
            name: format!("d{i}"),
            layer: self.layer(orgs),
            owner: Some(orgs.all[self.owner].id.clone()),
            text,
        }
    }

    /// The ids the book gives this document's policies.
    fn ids(&self, i: usize, orgs: &Orgs) -> Vec<String> {
        let layer = match self.layer(orgs) {
            PolicyLayer::Land => "land",
            _ => "organisation",
        };
        self.policies
            .iter()
            .enumerate()
            .map(|(n, p)| {
                format!(
                    "{layer}/{}/d{i}/{}",
                    orgs.all[self.owner].id,
                    Self::local_id(p, n)
                )
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
struct World {
    providers: Vec<ProviderSpec>,
    sites: Vec<GenSite>,
    /// The offering being booked.
    offering: OfferingSpec,
    /// Another offering (another name) booked through the same placer.
    other: OfferingSpec,
    orgs: Orgs,
    docs: Vec<GenDoc>,
    contracted: Vec<String>,
    /// The organisations (positions in `Orgs::all`) that book through one shared placer,
    /// in this order.
    bookers: Vec<usize>,
}

fn world() -> impl Strategy<Value = World> {
    (1..=4usize)
        .prop_flat_map(|n| {
            (
                (0..n).map(provider).collect::<Vec<_>>(),
                (1..=10usize).prop_flat_map(|m| (0..m).map(site).collect::<Vec<_>>()),
                (offering(), offering(), 1..OFFERINGS.len()),
                orgs(),
                proptest::collection::vec(gen_doc(n), 0..=5),
                subsequence((0..n).map(|p| format!("p{p}")).collect::<Vec<_>>(), 0..=n),
                Just((0..7usize).collect::<Vec<_>>()).prop_shuffle(),
            )
        })
        .prop_map(
            |(providers, sites, offerings, orgs, docs, contracted, bookers)| {
                let (offering, mut other, shift) = offerings;
                let at = OFFERINGS
                    .iter()
                    .position(|o| *o == offering.name)
                    .unwrap_or(0);
                other.name = OFFERINGS[(at + shift) % OFFERINGS.len()].into();
                let sites = sites
                    .into_iter()
                    .map(|(p, mut s)| {
                        s.spec.provider = providers[p.index(providers.len())].name.clone();
                        s
                    })
                    .collect();
                World {
                    providers,
                    sites,
                    offering,
                    other,
                    orgs,
                    docs,
                    contracted,
                    bookers,
                }
            },
        )
}

// ---------------------------------------------------------------------------------------
// The oracle

/// What the oracle knows about placing the booking on one site.
struct Placement<'a> {
    site: &'a SiteSpec,
    provider: &'a ProviderSpec,
    offering: &'a OfferingSpec,
    principal: &'a Organisation,
    certs: BTreeSet<String>,
    jurisdictions: BTreeSet<String>,
    exposed: bool,
    personal: bool,
    special: bool,
    minor: u16,
}

/// The oracle's verdict on one site.
#[derive(Debug)]
struct Expected {
    allowed: bool,
    /// The offering declares secrets and the site cannot receive them.
    secrets_undeliverable: bool,
    forbidden_by: BTreeSet<String>,
    missing: BTreeSet<String>,
    too_old: bool,
    no_room: bool,
    same_land: bool,
    contracted: bool,
}

impl World {
    fn principal(&self) -> &Organisation {
        let id = &self.orgs.chain[0];
        self.orgs
            .all
            .iter()
            .find(|o| &o.id == id)
            .expect("the booking organisation exists")
    }

    fn applies(&self, doc: &GenDoc) -> bool {
        self.orgs.chain.contains(&self.orgs.all[doc.owner].id)
    }

    fn documents(&self, which: impl Fn(&GenDoc) -> bool) -> Vec<PolicyDocument> {
        let mut docs = PolicyBook::defaults().expect("the shipped defaults");
        for (i, d) in self.docs.iter().enumerate() {
            if which(d) {
                docs.push(d.document(i, &self.orgs, "forbid"));
            }
        }
        docs
    }

    /// The same world, booked by another organisation or for another offering.
    fn viewed_as(&self, booker: usize, offering: &OfferingSpec) -> World {
        let mut w = self.clone();
        w.orgs.chain = self.orgs.chain_of(booker);
        w.offering = offering.clone();
        w
    }

    fn need(&self) -> Need<'_> {
        Need {
            offering: &self.offering,
            plan: &self.offering.plans[0],
            windows: &[],
        }
    }

    fn decide(&self, docs: &[PolicyDocument]) -> PlacementDecision {
        self.decide_with(&self.placer(docs))
    }

    fn decide_with(&self, placer: &Placer) -> PlacementDecision {
        placer
            .decide(
                self.principal(),
                &self.orgs.chain,
                self.need(),
                &self.contracted,
            )
            .unwrap_or_else(|e| panic!("decision failed: {e}"))
    }

    fn placer(&self, docs: &[PolicyDocument]) -> Placer {
        self.placer_with(docs, &BTreeMap::new())
    }

    /// A placer that knows the sites' last preflights, by site name.
    fn placer_with(
        &self,
        docs: &[PolicyDocument],
        preflights: &BTreeMap<String, SitePreflight>,
    ) -> Placer {
        let book = PolicyBook::new(docs).unwrap_or_else(|e| panic!("book refused: {e}"));
        let candidates = self
            .sites
            .iter()
            .map(|s| verbund_policy::Candidate {
                site: s.spec.clone(),
                provider: self
                    .providers
                    .iter()
                    .find(|p| p.name == s.spec.provider)
                    .expect("the provider exists")
                    .clone(),
                free: s.free,
                preflight: preflights.get(&s.spec.name).cloned(),
                timeline: Default::default(),
                left: verbund_domain::capacity::Load::of(&s.free),
            })
            .collect();
        Placer::new(book, &self.orgs.all, candidates, today())
            .unwrap_or_else(|e| panic!("placer refused: {e}"))
    }

    fn placement<'a>(&'a self, s: &'a GenSite) -> Placement<'a> {
        let provider = self
            .providers
            .iter()
            .find(|p| p.name == s.spec.provider)
            .expect("the provider exists");
        let mut certs = BTreeSet::new();
        for c in &s.spec.certifications {
            if c.valid_until >= today() {
                certs.insert(c.scheme.clone());
                if let Some(l) = &c.level {
                    certs.insert(format!("{}:{l}", c.scheme));
                }
            }
        }
        let jurisdictions: BTreeSet<String> = provider
            .jurisdictions
            .iter()
            .cloned()
            .chain(
                provider
                    .parent_companies
                    .iter()
                    .map(|p| p.jurisdiction.clone()),
            )
            .collect();
        let exposed = jurisdictions.iter().any(|j| !in_eu(j));
        let classes = &self.offering.data_classes;
        let personal = [
            DataClass::Personal,
            DataClass::SpecialCategories,
            DataClass::VsNfd,
        ]
        .iter()
        .any(|c| classes.contains(c));
        let special = [DataClass::SpecialCategories, DataClass::VsNfd]
            .iter()
            .any(|c| classes.contains(c));
        let minor = s
            .spec
            .kubernetes_version
            .strip_prefix("1.")
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        Placement {
            site: &s.spec,
            provider,
            offering: &self.offering,
            principal: self.principal(),
            certs,
            jurisdictions,
            exposed,
            personal,
            special,
            minor,
        }
    }

    /// The federation's rules of `policies/federation/sovereignty.cedar`, by id.
    fn federation_forbids(p: &Placement<'_>) -> Vec<&'static str> {
        let mut out = Vec::new();
        if p.personal && !in_eu(&p.site.location.country) {
            out.push("federation/sovereignty/federation.personal-data-in-eu");
        }
        if p.personal && !p.certs.contains("iso27001") {
            out.push("federation/sovereignty/federation.personal-data-iso27001");
        }
        if p.special && !p.certs.contains("bsi-c5:type2") {
            out.push("federation/sovereignty/federation.special-categories-c5-type2");
        }
        if p.special && !p.provider.public_law {
            out.push("federation/sovereignty/federation.special-categories-public-operator");
        }
        if p.special && p.exposed {
            out.push("federation/sovereignty/federation.special-categories-no-foreign-access");
        }
        out
    }

    /// Whether a generated policy's scope covers the booking organisation.
    fn in_scope(&self, p: &GenPolicy) -> bool {
        p.scope
            .is_none_or(|o| self.orgs.chain.contains(&self.orgs.all[o].id))
    }

    /// Ids of the generated policies that apply to the booking and match this site.
    fn generated_forbids(&self, p: &Placement<'_>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (i, d) in self.docs.iter().enumerate() {
            if !self.applies(d) {
                continue;
            }
            for (gp, id) in d.policies.iter().zip(d.ids(i, &self.orgs)) {
                if self.in_scope(gp) && gp.rule.matches(p) {
                    out.insert(id);
                }
            }
        }
        out
    }

    fn expected(&self, s: &GenSite) -> Expected {
        let p = self.placement(s);
        let mut forbidden_by: BTreeSet<String> = Self::federation_forbids(&p)
            .into_iter()
            .map(str::to_string)
            .collect();
        forbidden_by.extend(self.generated_forbids(&p));
        let req = &self.offering.requirements;
        let missing: BTreeSet<String> = req
            .capabilities
            .iter()
            .filter(|c| !s.spec.capabilities.contains(*c))
            .cloned()
            .collect();
        let too_old = req
            .min_kubernetes
            .as_deref()
            .and_then(|v| v.strip_prefix("1."))
            .and_then(|m| m.parse::<u16>().ok())
            .is_some_and(|m| p.minor < m);
        let need = self.offering.plans[0].resources;
        let no_room = need.cpu_millis > s.free.cpu_millis
            || need.memory_mib > s.free.memory_mib
            || need.storage_gib > s.free.storage_gib;
        // Declared secrets need an engine that opens SOPS and a recipient to seal for.
        let secrets_undeliverable = self
            .offering
            .config_schema
            .to_string()
            .contains("writeOnly")
            && (s.spec.delivery == Delivery::Argocd || s.spec.age_recipient.is_none());
        let allowed = forbidden_by.is_empty()
            && missing.is_empty()
            && !too_old
            && !no_room
            && !secrets_undeliverable;
        let home = self
            .principal()
            .land
            .as_deref()
            .and_then(|k| LANDS.iter().find(|l| l.0 == k))
            .map(|l| l.1);
        Expected {
            allowed,
            secrets_undeliverable,
            forbidden_by,
            missing,
            too_old,
            no_room,
            same_land: home == Some(s.spec.location.region.as_str()),
            contracted: self.contracted.contains(&s.spec.provider),
        }
    }
}

fn forbidden_ids(v: &SiteVerdict) -> BTreeSet<String> {
    v.reasons
        .iter()
        .filter_map(|r| match r {
            Reason::ForbiddenBy { policy, .. } => Some(policy.clone()),
            _ => None,
        })
        .collect()
}

fn headroom(need: &Resources, free: &Resources) -> f64 {
    let ratio = |n: u64, f: u64| {
        if f == 0 {
            0.0
        } else {
            f.saturating_sub(n) as f64 / f as f64
        }
    };
    ratio(need.cpu_millis, free.cpu_millis).min(ratio(need.memory_mib, free.memory_mib))
}

// ---------------------------------------------------------------------------------------
// The properties

fn check(w: &World) -> Result<(), TestCaseError> {
    let docs = w.documents(|_| true);
    let decision = w.decide(&docs);
    for outside in [SIBLING, OTHER_LAND, OTHER_KREIS] {
        prop_assert!(!w.orgs.chain.contains(&w.orgs.all[outside].id));
    }
    check_decision(w, &decision)?;

    // (c) policies of organisations outside the chain change nothing.
    let applicable_only = w.decide(&w.documents(|d| w.applies(d)));
    prop_assert_eq!(&decision, &applicable_only);

    // One placer serves many bookings (it remembers policy outcomes): every
    // organisation, for two offerings, in a random order, decides as the oracle says.
    let shared = w.placer(&docs);
    for &booker in &w.bookers {
        for offering in [&w.offering, &w.other] {
            let view = w.viewed_as(booker, offering);
            let d = view.decide_with(&shared);
            check_decision(&view, &d)?;
            // The verdict on one site alone (continuous compliance) agrees too.
            for v in &d.candidates {
                let alone = shared
                    .check(view.principal(), &view.orgs.chain, view.need(), &v.site)
                    .unwrap_or_else(|e| panic!("check failed: {e}"))
                    .ok_or_else(|| TestCaseError::fail(format!("no verdict on `{}`", v.site)))?;
                let policy_part = |v: &SiteVerdict| -> Vec<Reason> {
                    v.reasons
                        .iter()
                        .filter(|r| !matches!(r, Reason::SameLand | Reason::ContractedProvider))
                        .cloned()
                        .collect()
                };
                prop_assert_eq!(alone.allowed, v.allowed, "site `{}`", &v.site);
                prop_assert_eq!(policy_part(&alone), policy_part(v), "site `{}`", &v.site);
            }
        }
    }
    let unknown = shared
        .check(w.principal(), &w.orgs.chain, w.need(), "no-such-site")
        .unwrap_or_else(|e| panic!("check failed: {e}"));
    prop_assert!(unknown.is_none());
    Ok(())
}

/// (a), (b) and (d) for one decision, against the oracle.
fn check_decision(w: &World, decision: &PlacementDecision) -> Result<(), TestCaseError> {
    prop_assert_eq!(decision.decided_on, today());
    prop_assert_eq!(decision.candidates.len(), w.sites.len());
    let chain: BTreeSet<&String> = w.orgs.chain.iter().collect();

    for s in &w.sites {
        let name = &s.spec.name;
        let v = decision
            .verdict(name)
            .ok_or_else(|| TestCaseError::fail(format!("no verdict for `{name}`")))?;
        let e = w.expected(s);
        // (a) every verdict agrees with the oracle, both ways.
        prop_assert_eq!(
            v.allowed,
            e.allowed,
            "site `{}`: {:?} vs oracle {:?}",
            name,
            v,
            e
        );
        prop_assert_eq!(&v.provider, &s.spec.provider);
        prop_assert_eq!(&v.region, &s.spec.location.region);
        // (b) every matching forbid — federation, Land, organisation — is named.
        prop_assert_eq!(forbidden_ids(v), e.forbidden_by.clone(), "site `{}`", name);
        let missing: BTreeSet<String> = v
            .reasons
            .iter()
            .filter_map(|r| match r {
                Reason::MissingCapability { capability } => Some(capability.clone()),
                _ => None,
            })
            .collect();
        prop_assert_eq!(missing, e.missing.clone(), "site `{}`", name);
        prop_assert_eq!(
            v.reasons
                .iter()
                .any(|r| matches!(r, Reason::KubernetesTooOld { .. })),
            e.too_old,
            "site `{}`",
            name
        );
        prop_assert_eq!(
            v.reasons
                .iter()
                .any(|r| matches!(r, Reason::InsufficientCapacity { .. })),
            e.no_room,
            "site `{}`",
            name
        );
        // (e) an offering that declares secrets never lands where they cannot be
        // delivered, and the verdict says why.
        prop_assert_eq!(
            v.reasons
                .iter()
                .any(|r| matches!(r, Reason::SecretsUndeliverable { .. })),
            e.secrets_undeliverable,
            "site `{}`",
            name
        );
        for r in &v.reasons {
            prop_assert!(
                !matches!(r, Reason::EvaluationError { .. } | Reason::NotPermitted),
                "site `{}`: unexpected {:?}",
                name,
                r
            );
            // (c) no policy of an organisation outside the chain is ever cited.
            if let Reason::ForbiddenBy { owner: Some(o), .. } = r {
                prop_assert!(
                    chain.contains(o),
                    "site `{}` cites a policy of `{}`",
                    name,
                    o
                );
            }
        }
        prop_assert_eq!(
            v.reasons.contains(&Reason::SameLand),
            e.allowed && e.same_land
        );
        prop_assert_eq!(
            v.reasons.contains(&Reason::ContractedProvider),
            e.allowed && e.contracted
        );
        prop_assert_eq!(v.rank.is_some(), e.allowed);
        let h = headroom(&w.offering.plans[0].resources, &s.free);
        prop_assert!(
            (v.headroom - h).abs() < 1e-12,
            "site `{}`: headroom {} vs {}",
            name,
            v.headroom,
            h
        );
    }

    // (b) stated on its own: an applicable Land or organisation forbid always wins.
    for (i, d) in w.docs.iter().enumerate() {
        if !w.applies(d) {
            continue;
        }
        for (gp, id) in d.policies.iter().zip(d.ids(i, &w.orgs)) {
            for s in &w.sites {
                if w.in_scope(gp) && gp.rule.matches(&w.placement(s)) {
                    let v = decision.verdict(&s.spec.name).expect("a verdict");
                    prop_assert!(!v.allowed, "`{}` allowed despite `{}`", s.spec.name, id);
                    prop_assert!(forbidden_ids(v).contains(&id));
                }
            }
        }
    }

    // (d) ranking: allowed first, ranks 1..n, own Land before other Länder, then
    // contracted providers, then headroom, then the name.
    let allowed = decision.candidates.iter().take_while(|v| v.allowed).count();
    prop_assert!(decision.candidates[allowed..]
        .iter()
        .all(|v| !v.allowed && v.rank.is_none()));
    for (n, v) in decision.candidates[..allowed].iter().enumerate() {
        prop_assert_eq!(v.rank, Some(n as u32 + 1));
    }
    prop_assert_eq!(
        decision.site.as_deref(),
        decision
            .candidates
            .first()
            .filter(|v| v.allowed)
            .map(|v| v.site.as_str())
    );
    if let Some(site) = &decision.site {
        let chosen = w
            .sites
            .iter()
            .find(|s| &s.spec.name == site)
            .expect("chosen site exists");
        prop_assert!(w.expected(chosen).allowed);
    }
    let tier = |v: &SiteVerdict| {
        (
            !v.reasons.contains(&Reason::SameLand),
            !v.reasons.contains(&Reason::ContractedProvider),
        )
    };
    for pair in decision.candidates[..allowed].windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        prop_assert!(tier(a) <= tier(b), "`{}` ranks before `{}`", a.site, b.site);
        if tier(a) == tier(b) {
            prop_assert!(
                a.headroom > b.headroom || (a.headroom == b.headroom && a.site < b.site),
                "`{}` ranks before `{}`",
                a.site,
                b.site
            );
        }
    }
    let home = decision.candidates[..allowed]
        .iter()
        .filter(|v| v.reasons.contains(&Reason::SameLand));
    for a in home {
        for b in decision.candidates[..allowed]
            .iter()
            .filter(|v| !v.reasons.contains(&Reason::SameLand))
        {
            prop_assert!(a.rank < b.rank, "same-Land `{}` below `{}`", a.site, b.site);
        }
    }
    Ok(())
}

/// A preflight of `site` whose checks have these verdicts.
fn preflight(site: &str, delivery: Delivery, verdicts: &[PreflightVerdict]) -> SitePreflight {
    let checks = verdicts
        .iter()
        .enumerate()
        .map(|(i, v)| PreflightCheck {
            name: format!("check-{i}"),
            verdict: *v,
            reason: format!("check {i} says {}", v.as_str()),
        })
        .collect();
    let report = PreflightReport {
        agent: "verbund-agent/test".into(),
        delivery,
        kubernetes_version: Some("v1.36.3".into()),
        checks,
    };
    SitePreflight::new(site, &report, stamp())
}

/// A failed preflight keeps new bookings off its site whatever else holds (policies,
/// capacity, ranking), says so with the failed checks, and is the same in the verdict on
/// one site (compliance's view); a preflight that passed or warned, or none, changes
/// nothing, and the booking goes to the best site that did not fail.
fn check_preflights(w: &World, verdicts: &[Vec<PreflightVerdict>]) -> Result<(), TestCaseError> {
    let docs = w.documents(|_| true);
    let baseline = w.decide(&docs);
    let preflights: BTreeMap<String, SitePreflight> = w
        .sites
        .iter()
        .zip(verdicts)
        .filter(|(_, v)| !v.is_empty())
        .map(|(s, v)| {
            let p = preflight(&s.spec.name, s.spec.delivery, v);
            (s.spec.name.clone(), p)
        })
        .collect();
    let placer = w.placer_with(&docs, &preflights);
    let decision = w.decide_with(&placer);
    let failed = |site: &str| preflights.get(site).is_some_and(SitePreflight::failed);
    let policy_part = |v: &SiteVerdict| -> Vec<Reason> {
        v.reasons
            .iter()
            .filter(|r| {
                !matches!(
                    r,
                    Reason::SameLand | Reason::ContractedProvider | Reason::PreflightFailed { .. }
                )
            })
            .cloned()
            .collect()
    };
    for v in &decision.candidates {
        let before = baseline
            .verdict(&v.site)
            .ok_or_else(|| TestCaseError::fail(format!("no baseline verdict on `{}`", v.site)))?;
        let alone = placer
            .check(w.principal(), &w.orgs.chain, w.need(), &v.site)
            .unwrap_or_else(|e| panic!("check failed: {e}"))
            .ok_or_else(|| TestCaseError::fail(format!("no verdict on `{}`", v.site)))?;
        if failed(&v.site) {
            let p = &preflights[&v.site];
            let expected = Reason::PreflightFailed {
                reported_at: stamp(),
                failures: p.failures(),
            };
            prop_assert!(
                !v.allowed,
                "site `{}` failed its preflight: {:?}",
                &v.site,
                v
            );
            prop_assert_eq!(v.rank, None);
            prop_assert_eq!(v.reasons.first(), Some(&expected), "site `{}`", &v.site);
            prop_assert!(!alone.allowed && alone.reasons.contains(&expected));
            prop_assert!(!p.failures().is_empty());
        } else {
            prop_assert_eq!(v.allowed, before.allowed, "site `{}`", &v.site);
            let blamed = v
                .reasons
                .iter()
                .any(|r| matches!(r, Reason::PreflightFailed { .. }));
            prop_assert!(!blamed, "site `{}` did not fail its preflight", &v.site);
        }
        // Whatever else the site lacks is said as before.
        prop_assert_eq!(policy_part(v), policy_part(before), "site `{}`", &v.site);
    }
    let best = baseline
        .candidates
        .iter()
        .find(|v| v.allowed && !failed(&v.site))
        .map(|v| v.site.clone());
    prop_assert_eq!(decision.site.clone(), best);
    if let Some(chosen) = &decision.site {
        prop_assert!(!failed(chosen));
    }
    Ok(())
}

fn verdict_lists() -> impl Strategy<Value = Vec<Vec<PreflightVerdict>>> {
    proptest::collection::vec(
        proptest::collection::vec(select(PreflightVerdict::ALL.to_vec()), 0..=4),
        10,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn placement_never_violates_policy(w in world()) {
        check(&w)?;
    }

    #[test]
    fn a_failed_preflight_always_excludes_the_site(w in world(), verdicts in verdict_lists()) {
        check_preflights(&w, &verdicts)?;
    }

    /// Land and organisation documents may only `forbid`: a `permit` anywhere in them
    /// refuses the whole book, naming the policy and the layer.
    #[test]
    fn land_and_organisation_permits_are_refused(
        orgs in orgs(),
        doc in gen_doc(4),
        forbid_first in any::<bool>(),
    ) {
        let mut gd = doc.clone();
        let mut text = String::new();
        let mut permit_at = 0;
        if forbid_first {
            text = gd.document(0, &orgs, "forbid").text;
            permit_at = gd.policies.len();
            gd.policies.extend(doc.policies.iter().cloned());
        }
        let permit_text = doc.document(0, &orgs, "permit").text;
        // Renumber the permits' ids after the forbids.
        let permit_text = (0..doc.policies.len()).rev().fold(permit_text, |t, n| {
            t.replace(&format!("@id(\"r{n}\")"), &format!("@id(\"r{}\")", n + permit_at))
        });
        text.push_str(&permit_text);
        let layer = gd.layer(&orgs);
        let owner = orgs.all[gd.owner].id.clone();
        let mut docs = PolicyBook::defaults().expect("the shipped defaults");
        docs.push(PolicyDocument { name: "lockerung".into(), layer, owner: Some(owner), text });
        match PolicyBook::new(&docs) {
            Err(PolicyError::PermitNotAllowed { document, policy, layer: l }) => {
                prop_assert_eq!(document, "lockerung");
                prop_assert_eq!(policy, GenDoc::local_id(&gd.policies[permit_at], permit_at));
                prop_assert_eq!(l, match layer {
                    PolicyLayer::Land => "land",
                    _ => "organisation",
                });
            }
            other => prop_assert!(false, "expected PermitNotAllowed, got {:?}", other.map(|_| ())),
        }
    }
}

/// The same permit is fine in the federation layer, the only one that may loosen.
#[test]
fn federation_may_permit() {
    let mut docs = PolicyBook::defaults().expect("the shipped defaults");
    docs.push(PolicyDocument {
        name: "extra".into(),
        layer: PolicyLayer::Federation,
        owner: None,
        text: r#"permit (principal, action == Verbund::Action::"place", resource) when { resource.eu };"#
            .into(),
    });
    assert!(PolicyBook::new(&docs).is_ok());
}
