//! What the renderer writes must read back as exactly what it was given, whatever a
//! tenant types: a property test over all of Unicode through a YAML 1.2 parser
//! (`saphyr`), and kustomize (go-yaml, as Flux and Argo CD read it) over the characters
//! YAML forbids or folds. And a booking the renderer refuses is that booking's problem:
//! the rest of its site is rendered.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::{json, Map, Value};
use verbund_domain::booking::{Booking, BookingState};
use verbund_domain::catalog::{OfferingSpec, Package, VersionSpec};
use verbund_domain::directory::{Delivery, Environment, Level, Organisation, SiteSpec};
use verbund_render::{render, PlacedBooking, RenderInput, RenderOptions, RenderedFile};

fn site(delivery: Delivery) -> SiteSpec {
    serde_json::from_value(json!({
        "name": "test-site-1", "display_name": "Test", "provider": "p",
        "location": {"country": "DE", "region": "DE-HH", "city": "Hamburg"},
        "kubernetes_version": "1.31",
        "capacity": {"cpu_millis": 64000, "memory_mib": 262144, "storage_gib": 10000},
        "environments": ["prod"], "delivery": delivery,
    }))
    .unwrap()
}

fn organisation() -> Organisation {
    let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap();
    Organisation {
        id: "org".into(),
        name: "Gemeinde Test".into(),
        level: Level::Gemeinde,
        ars: Some("010590045045".into()),
        ags: None,
        parent: None,
        land: Some("01".into()),
        population: None,
        created_at: t,
        updated_at: t,
    }
}

fn offering() -> OfferingSpec {
    serde_json::from_value(json!({
        "name": "formulare", "display_name": "Formulare", "vendor": "v", "category": "saas",
        "data_classes": ["personal"],
        "plans": [{"name": "s", "display_name": "S", "replicas": 1,
                   "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 1},
                   "monthly_price_cents": 100}],
    }))
    .unwrap()
}

/// A manifests package reading its configuration from a ConfigMap, and a Helm package.
fn versions() -> [VersionSpec; 2] {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "formulare"},
        "spec": {"selector": {"matchLabels": {"app": "f"}},
                 "template": {"metadata": {"labels": {"app": "f"}},
                              "spec": {"containers": [{"name": "app", "image": "example.org/f:1",
                                  "envFrom": [{"configMapRef": {"name": "formulare-config"}}]}]}}}});
    [
        VersionSpec {
            version: "1.0.0".into(),
            package: Package::Manifests {
                manifests: vec![deployment],
                config_map: Some("formulare-config".into()),
                scale_target: None,
            },
            changelog: String::new(),
        },
        VersionSpec {
            version: "1.0.0".into(),
            package: Package::Helm {
                repository: "https://charts.example.org".into(),
                chart: "formulare".into(),
                chart_version: "1.0.0".into(),
                values: json!({}),
            },
            changelog: String::new(),
        },
    ]
}

fn booking(id: &str, config: Value) -> Booking {
    let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap();
    Booking {
        ending: None,
        id: id.into(),
        organisation: "org".into(),
        offering: "formulare".into(),
        plan: "s".into(),
        config,
        channel: "stable".into(),
        state: BookingState::Active,
        site: Some("test-site-1".into()),
        version: None,
        environment: Environment::Prod,
        reason: None,
        dependency_of: None,
        dependencies: vec![],
        compliance: None,
        created_at: t,
        updated_at: t,
        state_since: t,
        undeliverable: None,
        instance: None,
        secrets_set: Vec::new(),
        windows: Vec::new(),
    }
}

/// `booking` of `organisation`, of `offering` at `version`, on its first plan.
fn placed<'a>(
    booking: &'a Booking,
    organisation: &'a Organisation,
    offering: &'a OfferingSpec,
    version: &'a VersionSpec,
) -> PlacedBooking<'a> {
    PlacedBooking {
        booking,
        organisation,
        offering,
        version,
        plan: &offering.plans[0],
        dependencies: vec![],
    }
}

/// `bookings` rendered for the `prod` environment of a Flux site.
fn render_on_flux(bookings: Vec<PlacedBooking<'_>>) -> verbund_render::Rendered {
    let site = site(Delivery::Flux);
    let input = RenderInput {
        site: &site,
        environment: Environment::Prod,
        bookings,
    };
    render(
        &input,
        &RenderOptions::new("https://git.example.org/{site}.git"),
    )
    .unwrap()
}

/// The files of one booking with `config` on a site of `delivery`.
fn files(delivery: Delivery, version: &VersionSpec, config: Value) -> Vec<RenderedFile> {
    let (site, org, offering) = (site(delivery), organisation(), offering());
    let b = booking("0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e21", config);
    let input = RenderInput {
        site: &site,
        environment: Environment::Prod,
        bookings: vec![PlacedBooking {
            booking: &b,
            organisation: &org,
            offering: &offering,
            version,
            plan: &offering.plans[0],
            dependencies: vec![],
        }],
    };
    let rendered = render(
        &input,
        &RenderOptions::new("https://git.example.org/{site}.git"),
    )
    .unwrap();
    assert!(rendered.refused.is_empty(), "{:?}", rendered.refused);
    rendered.files
}

/// A YAML 1.2 document as JSON (strings, numbers, booleans, null, sequences, mappings).
fn json_of(yaml: &Yaml<'_>) -> Value {
    match yaml {
        Yaml::Value(Scalar::String(s)) => Value::String(s.to_string()),
        Yaml::Value(Scalar::Integer(i)) => json!(i),
        Yaml::Value(Scalar::FloatingPoint(f)) => json!(f.into_inner()),
        Yaml::Value(Scalar::Boolean(b)) => json!(b),
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Sequence(items) => Value::Array(items.iter().map(json_of).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| match json_of(k) {
                    Value::String(k) => (k, json_of(v)),
                    other => (other.to_string(), json_of(v)),
                })
                .collect::<Map<_, _>>(),
        ),
        other => panic!("unexpected YAML node {other:?}"),
    }
}

/// Every document of every file, read by the YAML 1.2 parser.
fn read_back(files: &[RenderedFile]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for f in files {
        let docs = Yaml::load_from_str(&f.content)
            .unwrap_or_else(|e| panic!("{} is no YAML 1.2: {e}\n{}", f.path, f.content));
        out.extend(docs.iter().map(|d| (f.path.clone(), json_of(d))));
    }
    out
}

/// The configuration as the ConfigMap (manifests) or the values (Helm, agent's
/// `helm.yaml`) carry it, read back.
fn carried(docs: &[(String, Value)], key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for (path, d) in docs {
        if path.ends_with("/config.yaml") {
            out.push(
                d["data"][key
                    .to_ascii_uppercase()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "_")]
                .clone(),
            );
        }
        if path.ends_with("/helm.yaml") {
            out.push(d["spec"]["values"][key].clone());
        }
        if path.ends_with("/app.yaml") && d["kind"] == "HelmRelease" {
            out.push(d["spec"]["values"][key].clone());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any string a tenant may type (all of Unicode but what no GitOps engine can carry),
    /// also in a key, reads back as exactly itself.
    #[test]
    fn every_string_reads_back_as_itself(
        text in any::<String>().prop_filter("carriable", |s| !s.chars().any(verbund_domain::portable::is_uncarriable)),
        // A key that names a secret (`pw…`, `…key`) is refused before rendering, by the
        // rule that keeps plaintext secrets out of Git; such keys are not what this tests.
        key in "[a-z][a-zA-Z0-9\\u{A0}-\\u{FFFD}]{0,8}"
            .prop_filter("no secret's name", |k| !verbund_domain::secrets::looks_like_secret_key(k)),
    ) {
        let [manifests, helm] = versions();
        for (delivery, version) in [(Delivery::Flux, &manifests), (Delivery::Agent, &helm), (Delivery::Flux, &helm)] {
            let config = json!({"note": text.clone(), key.clone(): text.clone()});
            let docs = read_back(&files(delivery, version, config.clone()));
            let values = carried(&docs, "note");
            prop_assert!(!values.is_empty());
            for v in values {
                prop_assert_eq!(&v, &json!(text.clone()));
            }
            if matches!(version.package, Package::Helm { .. }) {
                let values = carried(&docs, &key);
                for v in values {
                    prop_assert_eq!(&v, &json!(text.clone()));
                }
            }
        }
    }
}

/// What YAML forbids or folds and verbund escapes: C0 controls (tab, newline and carriage
/// return too), NUL, the byte-order mark, quotes, and text that looks like YAML. (DEL, the
/// C1 controls with NEL, U+2028/2029 and U+FFFE/U+FFFF cannot pass kustomize as written:
/// they are refused where they arrive, see `uncarriable_characters_are_refused_…`.)
const NASTY: [&str; 10] = [
    "a\u{7}b",
    "tab\tand\nnewline",
    "  - not: [a list]",
    "\u{FEFF}bom",
    "cr\r\nlf",
    "quote\"back\\slash",
    "nul\u{0}",
    "esc\u{1B}[31m",
    "#!/bin/sh\n--- \n...",
    "äöü ß 😀 \u{10FFFF}",
];

#[test]
fn the_characters_yaml_forbids_read_back_through_the_yaml_1_2_parser() {
    let [manifests, helm] = versions();
    for nasty in NASTY {
        for version in [&manifests, &helm] {
            let docs = read_back(&files(Delivery::Agent, version, json!({"note": nasty})));
            for v in carried(&docs, "note") {
                assert_eq!(v, json!(nasty), "{nasty:?}");
            }
        }
    }
}

/// `kustomize build` of one booking folder with `config`: the ConfigMap it outputs, read
/// back by the YAML 1.2 parser.
fn through_kustomize(config: Value) -> Value {
    let env = verbund_testcluster::TestEnv::locate().expect("testenv/build.sh builds kustomize");
    let kustomize = env.require_bin("kustomize").expect("kustomize");
    let [manifests, _] = versions();
    let files = files(Delivery::Flux, &manifests, config);
    let dir = tempfile::tempdir().unwrap();
    for f in &files {
        let path = dir.path().join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &f.content).unwrap();
    }
    let folder = files
        .iter()
        .find(|f| f.path.ends_with("/config.yaml"))
        .map(|f| Path::new(&f.path).parent().unwrap().to_path_buf())
        .unwrap();
    let out = std::process::Command::new(kustomize)
        .arg("build")
        .arg(dir.path().join(&folder))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    Yaml::load_from_str(&text)
        .unwrap()
        .iter()
        .map(json_of)
        .find(|d| d["kind"] == "ConfigMap")
        .expect("the ConfigMap")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// What kustomize (as Flux and Argo CD use it) makes of any carriable string.
    #[test]
    fn every_string_passes_kustomize_as_itself(
        text in any::<String>().prop_filter("carriable", |s| !s.chars().any(verbund_domain::portable::is_uncarriable)),
    ) {
        let cm = through_kustomize(json!({"note": text.clone()}));
        prop_assert_eq!(&cm["data"]["NOTE"], &json!(text));
    }
}

#[test]
fn kustomize_builds_what_the_characters_yaml_forbids_became() {
    let config: Map<String, Value> = NASTY
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("v{i}"), json!(n)))
        .collect();
    let cm = through_kustomize(Value::Object(config));
    for (i, n) in NASTY.iter().enumerate() {
        assert_eq!(cm["data"][format!("V{i}")], json!(n), "{n:?}");
    }
}

#[test]
fn a_refused_booking_is_its_own_problem() {
    let [manifests, _] = versions();
    let bad = VersionSpec {
        version: "1.0.0".into(),
        package: Package::Manifests {
            manifests: vec![
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                                   "metadata": {"name": "everything"}}),
            ],
            config_map: None,
            scale_target: None,
        },
        changelog: String::new(),
    };
    let (org, offering) = (organisation(), offering());
    let good_booking = booking("0190f0b6-0000-7000-8000-000000000001", json!({}));
    let bad_booking = booking("0190f0b6-0000-7000-8000-000000000002", json!({}));
    let rendered = render_on_flux(vec![
        placed(&good_booking, &org, &offering, &manifests),
        placed(&bad_booking, &org, &offering, &bad),
    ]);
    assert_eq!(rendered.refused.len(), 1);
    let refused = &rendered.refused[0];
    assert_eq!(refused.booking, bad_booking.id);
    assert!(
        refused
            .error
            .to_string()
            .contains("`ClusterRoleBinding` `everything` is not a kind a tenant may own"),
        "{}",
        refused.error
    );
    let shards: String = rendered
        .files
        .iter()
        .filter(|f| f.path.contains("/shards/"))
        .map(|f| f.content.clone())
        .collect();
    let good_ns = refused.namespace.clone().unwrap();
    assert!(
        !shards.contains(&good_ns),
        "the refused booking is not listed"
    );
    assert!(
        rendered
            .files
            .iter()
            .any(|f| f.path.contains("/bookings/formulare-") && !f.path.contains(&good_ns)),
        "the other booking is rendered"
    );
}

#[test]
fn uncarriable_characters_are_refused_for_that_booking_alone() {
    let [manifests, _] = versions();
    for c in [
        '\u{7F}', '\u{80}', '\u{85}', '\u{9B}', '\u{2028}', '\u{2029}', '\u{FFFE}', '\u{FFFF}',
    ] {
        let config = json!({"note": format!("x{c}y")});
        // Where it arrives: the booking's configuration is refused with its pointer.
        let e = verbund_domain::booking::validate_config(&json!({"type": "object"}), &config)
            .unwrap_err();
        assert_eq!(e.field, "/config/note", "{c:?}");
        assert!(
            e.message.contains(&format!("U+{:04X}", u32::from(c))),
            "{e}"
        );
        // And the renderer refuses that booking, not its site.
        let (org, offering) = (organisation(), offering());
        let b = booking("0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e21", config);
        let good = booking(
            "0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e22",
            json!({"note": "fine"}),
        );
        let rendered = render_on_flux(vec![
            placed(&b, &org, &offering, &manifests),
            placed(&good, &org, &offering, &manifests),
        ]);
        assert_eq!(rendered.refused.len(), 1);
        assert_eq!(rendered.refused[0].booking, b.id);
        assert!(rendered
            .files
            .iter()
            .any(|f| f.path.contains("9e22") || f.path.contains("/bookings/")));
    }
}

/// An organisation's name goes into its bookings' namespace annotation: a name kustomize
/// cannot carry is refused where it arrives, and a booking of an organisation stored with
/// one before is refused alone, not its shard.
#[test]
fn an_organisation_name_kustomize_cannot_carry_stops_only_its_bookings() {
    let [manifests, _] = versions();
    let org = organisation();
    let mut bad_org = organisation();
    bad_org.id = "other".into();
    bad_org.name = "Gemeinde\u{7F}".into();
    let spec = verbund_domain::directory::OrganisationSpec {
        name: bad_org.name.clone(),
        level: Level::Bund,
        ars: None,
        ags: None,
        parent: None,
        population: None,
    };
    let e = spec.validate().unwrap_err();
    assert_eq!(e.field, "/name");
    assert!(e.message.contains("U+007F"), "{e}");

    let offering = offering();
    let good = booking("0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e31", json!({}));
    let mut bad = booking("0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e32", json!({}));
    bad.organisation = bad_org.id.clone();
    let rendered = render_on_flux(vec![
        placed(&good, &org, &offering, &manifests),
        placed(&bad, &bad_org, &offering, &manifests),
    ]);
    assert_eq!(rendered.refused.len(), 1, "{:?}", rendered.refused);
    assert_eq!(rendered.refused[0].booking, bad.id);
    let error = rendered.refused[0].error.to_string();
    assert!(
        error.contains("/organisation/name") && error.contains("U+007F"),
        "{error}"
    );
    let bad_ns = rendered.refused[0].namespace.clone().unwrap();
    assert!(
        rendered
            .files
            .iter()
            .any(|f| f.path.contains("/bookings/formulare-") && !f.path.contains(&bad_ns)),
        "the other organisation's booking is rendered"
    );
    assert!(
        !rendered.files.iter().any(|f| f.path.contains(&bad_ns)),
        "nothing of the refused booking is written"
    );
}
