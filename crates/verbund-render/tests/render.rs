//! Renders small federations through the public API and checks the output: snapshots
//! per delivery mode, validity against the official Kubernetes schemas, the secrets
//! rule, values precedence, network allowances and determinism.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use verbund_domain::booking::{Booking, BookingState};
use verbund_domain::catalog::{OfferingSpec, Package, SmokeTest, VersionSpec};
use verbund_domain::directory::{Delivery, Environment, Level, Organisation, SiteSpec};
use verbund_render::names::{is_dns_label, is_label_value};
use verbund_render::{Error, PlacedBooking, RenderInput, RenderOptions, RenderedFile};

/// The renderer as most tests read it: the files, or the first booking it refused (see
/// `a_refused_booking_is_its_own_problem` for the rest of the site).
fn render(input: &RenderInput<'_>, options: &RenderOptions) -> Result<Vec<RenderedFile>, Error> {
    let rendered = verbund_render::render(input, options)?;
    match rendered.refused.into_iter().next() {
        Some(refused) => Err(refused.error),
        None => Ok(rendered.files),
    }
}

// ---------------------------------------------------------------- fixtures

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
}

fn site(delivery: Delivery) -> SiteSpec {
    serde_json::from_value(json!({
        "name": "dataport-hh-1",
        "display_name": "Dataport Hamburg 1",
        "provider": "dataport",
        "location": {"country": "DE", "region": "DE-HH", "city": "Hamburg"},
        "kubernetes_version": "1.31",
        "capacity": {"cpu_millis": 64000, "memory_mib": 262144, "storage_gib": 10000},
        "environments": ["test", "prod"],
        "delivery": delivery,
    }))
    .unwrap()
}

fn organisation(id: &str, name: &str, ars: Option<&str>) -> Organisation {
    Organisation {
        id: id.into(),
        name: name.into(),
        level: Level::Gemeinde,
        ars: ars.map(Into::into),
        ags: None,
        parent: Some("kreis".into()),
        land: Some("01".into()),
        population: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

fn offering(name: &str, dependencies: &[&str]) -> OfferingSpec {
    serde_json::from_value(json!({
        "name": name,
        "display_name": name,
        "vendor": "vendor",
        "category": "saas",
        "data_classes": ["personal"],
        "plans": [
            {"name": "s", "display_name": "S", "replicas": 1,
             "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 10},
             "monthly_price_cents": 4900},
            {"name": "m", "display_name": "M", "replicas": 2,
             "autoscaling": {"min_replicas": 2, "max_replicas": 4},
             "resources": {"cpu_millis": 2000, "memory_mib": 4096, "storage_gib": 50},
             "monthly_price_cents": 19900}
        ],
        "dependencies": dependencies.iter().map(|d| json!({"offering": d})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

fn helm(version: &str, repository: &str, chart: &str, values: Value) -> VersionSpec {
    VersionSpec {
        version: version.into(),
        package: Package::Helm {
            repository: repository.into(),
            chart: chart.into(),
            chart_version: version.into(),
            values,
        },
        changelog: String::new(),
    }
}

/// Plain manifests whose first Deployment is what an autoscaling plan scales.
fn manifests(version: &str, manifests: Vec<Value>) -> VersionSpec {
    let scale_target = manifests
        .iter()
        .find(|m| m["kind"] == "Deployment")
        .and_then(|m| m["metadata"]["name"].as_str())
        .map(str::to_string);
    VersionSpec {
        version: version.into(),
        package: Package::Manifests {
            manifests,
            config_map: None,
            scale_target,
        },
        changelog: String::new(),
    }
}

fn booking(id: &str, org: &str, offering: &str, plan: &str, config: Value) -> Booking {
    Booking {
        ending: None,
        id: id.into(),
        organisation: org.into(),
        offering: offering.into(),
        plan: plan.into(),
        config,
        channel: "stable".into(),
        state: BookingState::Active,
        site: Some("dataport-hh-1".into()),
        version: None,
        environment: Default::default(),
        reason: None,
        dependency_of: None,
        dependencies: vec![],
        compliance: None,
        created_at: t0(),
        updated_at: t0(),
        state_since: t0(),
        undeliverable: None,
        instance: None,
        secrets_set: Vec::new(),
        windows: Vec::new(),
    }
}

/// One federation: a municipality books an application that depends on PostgreSQL.
struct World {
    sites: BTreeMap<&'static str, SiteSpec>,
    org: Organisation,
    app: OfferingSpec,
    app_helm: VersionSpec,
    forms: OfferingSpec,
    forms_manifests: VersionSpec,
    forms_booking: Booking,
    postgres: OfferingSpec,
    postgres_version: VersionSpec,
    app_booking: Booking,
    postgres_booking: Booking,
}

fn world() -> World {
    let mut app_booking = booking(
        "0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e11",
        "org-musterstadt",
        "nextcloud",
        "m",
        json!({"ingress": {"enabled": true, "host": "cloud.musterstadt.de"}, "replicaCount": 3}),
    );
    let postgres_booking = booking(
        "0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e12",
        "org-musterstadt",
        "postgresql",
        "s",
        json!({}),
    );
    app_booking.dependencies = vec![postgres_booking.id.clone()];
    let mut forms_booking = app_booking.clone();
    forms_booking.id = "0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e21".into();
    forms_booking.offering = "formulare".into();
    forms_booking.config = json!({});
    World {
        sites: BTreeMap::from([
            ("flux", site(Delivery::Flux)),
            ("argocd", site(Delivery::Argocd)),
            ("agent", site(Delivery::Agent)),
        ]),
        org: organisation(
            "org-musterstadt",
            "Stadt Müsterstadt an der Öde",
            Some("010590045045"),
        ),
        app: offering("nextcloud", &["postgresql"]),
        app_helm: helm(
            "29.0.4+build.7",
            "https://nextcloud.github.io/helm",
            "nextcloud",
            json!({
                "image": {"tag": "29.0.4"},
                "ingress": {"enabled": false, "className": "nginx"},
                "externalDatabase": {"enabled": true, "existingSecret": {"secretName": "postgresql-credentials"}},
                "replicaCount": 1
            }),
        ),
        // The plain-manifests application has a smoke test (the Helm ones have none).
        forms: OfferingSpec {
            efa: None,
            smoke_test: Some(SmokeTest {
                image: "registry.example/formulare-smoke:1".into(),
                command: vec!["/smoke".into(), "--url".into(), "http://formulare".into()],
                timeout_seconds: 120,
            }),
            ..offering("formulare", &["postgresql"])
        },
        forms_manifests: manifests(
            "1.4.0",
            vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "formulare", "namespace": "default"},
                       "data": {"DB_HOST_FROM": "postgresql-credentials"}}),
                json!({"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": "formulare", "labels": {"app.kubernetes.io/name": "formulare"}},
                       "spec": {"replicas": 1,
                                "selector": {"matchLabels": {"app.kubernetes.io/name": "formulare"}},
                                "template": {"metadata": {"labels": {"app.kubernetes.io/name": "formulare"}},
                                             "spec": {"containers": [{"name": "app", "image": "registry.example/formulare:1.4.0",
                                                                      "envFrom": [{"secretRef": {"name": "postgresql-credentials"}}],
                                                                      "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true,
                                                                                          "capabilities": {"drop": ["ALL"]},
                                                                                          "seccompProfile": {"type": "RuntimeDefault"}}}]}}}}),
                json!({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": "formulare"},
                       "spec": {"selector": {"app.kubernetes.io/name": "formulare"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
            ],
        ),
        forms_booking,
        postgres: OfferingSpec {
            efa: None,
            tenancy: Default::default(),
            tenant_schema: None,
            credentials: true,
            ..offering("postgresql", &[])
        },
        postgres_version: helm(
            "16.4.2",
            "oci://registry-1.docker.io/bitnamicharts/",
            "postgresql",
            json!({"auth": {"existingSecret": "postgresql-credentials"}}),
        ),
        app_booking,
        postgres_booking,
    }
}

fn options() -> RenderOptions {
    RenderOptions::new("https://git.verbund.example/desired-state.git")
}

impl World {
    fn input(&self, mode: &str, manifests: bool) -> RenderInput<'_> {
        let app = if manifests {
            PlacedBooking {
                booking: &self.forms_booking,
                organisation: &self.org,
                offering: &self.forms,
                version: &self.forms_manifests,
                plan: &self.forms.plans[1],
                dependencies: vec![&self.postgres_booking],
            }
        } else {
            PlacedBooking {
                booking: &self.app_booking,
                organisation: &self.org,
                offering: &self.app,
                version: &self.app_helm,
                plan: &self.app.plans[1],
                dependencies: vec![&self.postgres_booking],
            }
        };
        let postgres = PlacedBooking {
            booking: &self.postgres_booking,
            organisation: &self.org,
            offering: &self.postgres,
            version: &self.postgres_version,
            plan: &self.postgres.plans[0],
            dependencies: vec![],
        };
        RenderInput {
            site: &self.sites[mode],
            environment: Environment::Prod,
            bookings: vec![app, postgres],
        }
    }
}

/// Every file of a render as one text, for snapshots.
fn text(files: &[RenderedFile]) -> String {
    files
        .iter()
        .map(|f| format!("### {}\n{}", f.path, f.content))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The objects of a rendered file.
fn objects(file: &RenderedFile) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(&file.content)
        .map(|doc| {
            let value: serde_yaml_ng::Value = serde::Deserialize::deserialize(doc).unwrap();
            serde_json::to_value(value).unwrap()
        })
        .collect()
}

fn file<'a>(files: &'a [RenderedFile], suffix: &str) -> &'a RenderedFile {
    files
        .iter()
        .find(|f| f.path.ends_with(suffix))
        .unwrap_or_else(|| {
            panic!(
                "no file `…{suffix}` in {:?}",
                files.iter().map(|f| &f.path).collect::<Vec<_>>()
            )
        })
}

/// Every render the tests below look at, by name.
fn every_render(w: &World) -> Vec<(String, Vec<RenderedFile>)> {
    let mut out = Vec::new();
    for mode in ["flux", "argocd", "agent"] {
        for manifests in [false, true] {
            let files = render(&w.input(mode, manifests), &options()).unwrap();
            out.push((format!("{mode} manifests={manifests}"), files));
        }
    }
    out
}

/// Every object of a booking's own files (not the vendor's `app/` nor `helm.yaml`) and of
/// a site's entry files is of a kind the site's delivery may apply (Flux's `verbund-site`
/// role, Argo CD's AppProject), or its apply would be refused there.
#[test]
fn every_kind_verbund_renders_is_one_its_delivery_may_apply() {
    let w = world();
    for (render_name, files) in every_render(&w) {
        for file in &files {
            if file.path.contains("/app/") || file.path.ends_with("/helm.yaml") {
                continue;
            }
            for object in objects(file) {
                let api = object["apiVersion"].as_str().unwrap_or_default();
                let group = api.rsplit_once('/').map_or("", |(g, _)| g);
                let kind = object["kind"].as_str().unwrap_or_default();
                if file.path.ends_with("/root.yaml") || group == "kustomize.config.k8s.io" {
                    // root.yaml is the operator's, and a kustomization.yaml is kustomize's.
                    continue;
                }
                // Argo CD's project allows its own kinds besides (see `root`).
                let argo = group == "argoproj.io" && ["AppProject", "Application"].contains(&kind);
                assert!(
                    argo || verbund_render::root::SITE_KINDS
                        .iter()
                        .any(|(g, k, _)| *g == group && *k == kind),
                    "{render_name}: {} holds `{group}` `{kind}`, which the site's delivery may not apply",
                    file.path
                );
            }
        }
    }
}

// ---------------------------------------------------------------- snapshots

#[test]
fn snapshot_flux() {
    let w = world();
    insta::assert_snapshot!(
        "flux",
        text(&render(&w.input("flux", false), &options()).unwrap())
    );
}

#[test]
fn snapshot_argocd() {
    let w = world();
    insta::assert_snapshot!(
        "argocd",
        text(&render(&w.input("argocd", false), &options()).unwrap())
    );
}

#[test]
fn snapshot_agent() {
    let w = world();
    // The dependent ships plain manifests; its PostgreSQL dependency is a Helm chart.
    insta::assert_snapshot!(
        "agent",
        text(&render(&w.input("agent", true), &options()).unwrap())
    );
}

#[test]
fn an_offering_with_a_smoke_test_gets_a_job_per_version() {
    let w = world();
    for mode in ["flux", "argocd", "agent"] {
        let files = render(&w.input(mode, true), &options()).unwrap();
        let tests: Vec<&RenderedFile> = files
            .iter()
            .filter(|f| f.path.ends_with("/smoke-test.yaml"))
            .collect();
        let jobs: Vec<Value> = tests
            .iter()
            .flat_map(|f| objects(f))
            .filter(|o| o["kind"] == "Job")
            .collect();
        // Only the forms booking's offering has a smoke test.
        assert_eq!(jobs.len(), 1, "{mode}");
        let job = &jobs[0];
        assert_eq!(job["apiVersion"], "batch/v1");
        assert_eq!(job["metadata"]["name"], "smoke-test-1-4-0");
        let labels = &job["metadata"]["labels"];
        assert_eq!(labels["verbund.dev/smoke-test"], "true");
        assert_eq!(
            labels["verbund.dev/booking"],
            "0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e21"
        );
        assert_eq!(labels["verbund.dev/version"], "1.4.0");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "verbund");
        let spec = &job["spec"];
        assert_eq!(spec["backoffLimit"], 0);
        assert_eq!(spec["activeDeadlineSeconds"], 120);
        assert!(spec.get("ttlSecondsAfterFinished").is_none());
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let container = &pod["containers"][0];
        assert_eq!(container["image"], "registry.example/formulare-smoke:1");
        assert_eq!(
            container["command"],
            json!(["/smoke", "--url", "http://formulare"])
        );
        assert_eq!(
            container["securityContext"]["allowPrivilegeEscalation"],
            false
        );
        assert_eq!(
            container["securityContext"]["capabilities"]["drop"],
            json!(["ALL"])
        );
        assert_eq!(
            container["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(
            job["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"],
            if mode == "argocd" {
                json!("2")
            } else {
                Value::Null
            },
            "{mode}"
        );
    }
    // Without manifests (Helm offerings, no smoke test) no Job is rendered.
    let files = render(&w.input("flux", false), &options()).unwrap();
    assert!(!text(&files).contains("kind: Job"));
}

// ---------------------------------------------------------------- schemas

const DEFINITIONS: &str = "https://kubernetes.io/api/_definitions.json";
/// Oldest Kubernetes among the demo sites, the one k8s-openapi is built for, the newest.
const KUBERNETES: [&str; 3] = ["v1.30.0", "v1.33.0", "v1.37.0"];
const BUILTIN: [(&str, &str, &str); 13] = [
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscaler-autoscaling-v2.json",
    ),
    ("v1", "Namespace", "namespace-v1.json"),
    ("v1", "ResourceQuota", "resourcequota-v1.json"),
    ("v1", "LimitRange", "limitrange-v1.json"),
    (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "networkpolicy-networking-v1.json",
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebinding-rbac-v1.json",
    ),
    ("v1", "ServiceAccount", "serviceaccount-v1.json"),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterrole-rbac-v1.json",
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebinding-rbac-v1.json",
    ),
    ("v1", "ConfigMap", "configmap-v1.json"),
    ("v1", "Service", "service-v1.json"),
    ("apps/v1", "Deployment", "deployment-apps-v1.json"),
    ("batch/v1", "Job", "job-batch-v1.json"),
];
/// Custom resources (Flux, Argo CD, External Secrets) and verbund's own files
/// (`kustomization.yaml`, `helm.yaml`) are not checked here: the real API server checks
/// them against the upstream CRDs, and kustomize reads them, in the real-Kubernetes
/// suite (`crates/verbund-cli/tests/kubernetes.rs`).
fn is_custom(api_version: &str) -> bool {
    [
        "fluxcd.io/",
        "argoproj.io/",
        "external-secrets.io/",
        "kustomize.config.k8s.io/",
        "verbund.dev/",
    ]
    .iter()
    .any(|group| api_version.contains(group))
}

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schemas")
}

fn read_json(path: PathBuf) -> Value {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the vendored schema {}: {e}; see tests/schemas/README.md for where it comes from",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn validator(definitions: &Value, schema: &Value) -> jsonschema::Validator {
    let resource = jsonschema::Resource::from_contents(definitions.clone()).unwrap();
    jsonschema::options()
        .with_resource(DEFINITIONS, resource)
        .build(schema)
        .unwrap_or_else(|e| panic!("unusable schema: {e}"))
}

/// Validators by (apiVersion, kind), each with the Kubernetes version it checks against.
fn validators() -> BTreeMap<(String, String), Vec<(String, jsonschema::Validator)>> {
    let mut out: BTreeMap<(String, String), Vec<(String, jsonschema::Validator)>> = BTreeMap::new();
    for version in KUBERNETES {
        let definitions = read_json(schema_dir().join(version).join("_definitions.json"));
        for (api, kind, file) in BUILTIN {
            let schema = read_json(schema_dir().join(version).join(file));
            out.entry((api.into(), kind.into()))
                .or_default()
                .push((version.to_string(), validator(&definitions, &schema)));
        }
    }
    out
}

/// What the API server checks beyond the OpenAPI schemas: names, namespaces and labels.
fn check_names(object: &Value, at: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let subdomain = |s: &str| s.len() <= 253 && s.split('.').all(is_dns_label);
    let meta = &object["metadata"];
    if let Some(name) = meta["name"].as_str() {
        let ok = if object["kind"] == "Namespace" {
            is_dns_label(name)
        } else {
            subdomain(name)
        };
        if !ok {
            errors.push(format!("{at}: name `{name}`"));
        }
    }
    if let Some(ns) = meta["namespace"].as_str() {
        if !is_dns_label(ns) {
            errors.push(format!("{at}: namespace `{ns}`"));
        }
    }
    for labels in [
        &meta["labels"],
        &object["spec"]["template"]["metadata"]["labels"],
    ] {
        for (key, value) in labels.as_object().into_iter().flatten() {
            let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
            let key_ok = (prefix.is_empty() || subdomain(prefix))
                && !name.is_empty()
                && is_label_value(name);
            if !key_ok {
                errors.push(format!("{at}: label key `{key}`"));
            }
            if !value.as_str().is_some_and(is_label_value) {
                errors.push(format!("{at}: label `{key}` value {value}"));
            }
        }
    }
    errors
}

#[test]
fn every_object_is_valid_against_the_kubernetes_schemas() {
    let validators = validators();
    let w = world();
    let mut errors = Vec::new();
    let mut checked = 0;
    for (render_name, files) in every_render(&w) {
        for file in &files {
            for (i, object) in objects(file).iter().enumerate() {
                let at = format!("{render_name}: {}#{i}", file.path);
                let api = object["apiVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let kind = object["kind"].as_str().unwrap_or_default().to_string();
                errors.extend(check_names(object, &at));
                if is_custom(&api) {
                    continue;
                }
                let Some(schemas) = validators.get(&(api.clone(), kind.clone())) else {
                    errors.push(format!("{at}: no schema for `{api}` `{kind}`; vendor one"));
                    continue;
                };
                for (version, validator) in schemas {
                    for e in validator.iter_errors(object) {
                        errors.push(format!("{at} ({version}) {}: {e}", e.instance_path));
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(
        errors.is_empty(),
        "{} problems:\n{}",
        errors.len(),
        errors.join("\n")
    );
    assert!(checked > 100, "only {checked} validations ran");
}

#[test]
fn the_schemas_do_catch_mistakes() {
    let validators = validators();
    let bad = [
        // podSelector is required before Kubernetes 1.31
        (
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "x"}, "spec": {}}),
            "v1.30.0",
        ),
        (
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "x"}, "spec": {"hardd": {}}}),
            "v1.33.0",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "lables": {}}}),
            "v1.37.0",
        ),
        (
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "x"},
                "rules": [{"apiGroups": [""], "resource": ["pods"], "verbs": ["get"]}]}),
            "v1.33.0",
        ),
    ];
    for (object, version) in bad {
        let key = (
            object["apiVersion"].as_str().unwrap().to_string(),
            object["kind"].as_str().unwrap().to_string(),
        );
        let (_, v) = validators[&key]
            .iter()
            .find(|(v, _)| v.contains(version))
            .unwrap();
        assert!(!v.is_valid(&object), "{version} accepted {object}");
    }
}

// ---------------------------------------------------------------- secrets

#[test]
fn literal_secrets_in_tenant_config_are_refused() {
    let mut w = world();
    w.app_booking.config = json!({"admin_password": "hunter2"});
    let err = render(&w.input("flux", false), &options()).unwrap_err();
    assert_eq!(
        err,
        Error::SecretValue {
            booking: w.app_booking.id.clone(),
            pointer: "/config/admin_password".into()
        }
    );
    assert!(
        err.to_string().contains("`/config/admin_password`"),
        "{err}"
    );

    w.app_booking.config = json!({"mail": {"smtp": {"apiKey": "abc"}}});
    assert!(matches!(
        render(&w.input("argocd", false), &options()),
        Err(Error::SecretValue { pointer, .. }) if pointer == "/config/mail/smtp/apiKey"
    ));
}

#[test]
fn literal_secrets_in_package_values_are_refused() {
    let mut w = world();
    w.postgres_version = helm(
        "16.4.2",
        "oci://r/c",
        "postgresql",
        json!({"auth": {"postgresPassword": "postgres"}}),
    );
    assert!(matches!(
        render(&w.input("flux", false), &options()),
        Err(Error::SecretValue { pointer, .. }) if pointer == "/package/values/auth/postgresPassword"
    ));
}

#[test]
fn manifests_with_secrets_are_refused() {
    let mut w = world();
    // Manifests without a workload: a plan that does not autoscale.
    w.forms.plans[1].autoscaling = None;
    w.forms_manifests = manifests(
        "1.4.1",
        vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "x"}}),
        ],
    );
    let err = render(&w.input("agent", true), &options()).unwrap_err();
    assert!(
        matches!(&err, Error::ForbiddenManifest { booking, index: 1, .. } if *booking == w.forms_booking.id),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("`/package/manifests/1`: `Secret` `db` may not be delivered"),
        "{err}"
    );

    w.forms_manifests = manifests(
        "1.4.1",
        vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"DB_PASSWORD": "x"}}),
        ],
    );
    let err = render(&w.input("flux", true), &options()).unwrap_err();
    assert!(
        err.to_string()
            .contains("`/data/DB_PASSWORD` of `ConfigMap` `a` looks like a secret"),
        "{err}"
    );
}

#[test]
fn cluster_scoped_and_list_manifests_are_refused() {
    let mut w = world();
    // Manifests without a workload: a plan that does not autoscale.
    w.forms.plans[1].autoscaling = None;
    for kind in [
        "ClusterRoleBinding",
        "Namespace",
        "List",
        "NetworkPolicy",
        "ResourceQuota",
        "Pod",
    ] {
        w.forms_manifests = manifests(
            "1.4.1",
            vec![json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "a"}})],
        );
        assert!(
            matches!(
                render(&w.input("agent", true), &options()),
                Err(Error::ForbiddenManifest { index: 0, .. })
            ),
            "{kind}"
        );
    }
}

#[test]
fn no_rendered_file_contains_a_secret() {
    let w = world();
    for (name, files) in every_render(&w) {
        for f in &files {
            for object in objects(f) {
                assert_ne!(object["kind"], "Secret", "{name}: {}", f.path);
            }
            assert!(!f.content.contains("kind: Secret\n"), "{name}: {}", f.path);
        }
        let credentials: Vec<&RenderedFile> = files
            .iter()
            .filter(|f| f.path.ends_with("credentials.yaml"))
            .collect();
        assert_eq!(
            credentials.len(),
            2,
            "{name}: the database makes its credentials, the dependent reads them"
        );
        let ns_of = |f: &RenderedFile| f.path.split('/').nth(4).unwrap().to_string();
        let (db, app): (Vec<&RenderedFile>, Vec<&RenderedFile>) = credentials
            .into_iter()
            .partition(|f| f.path.contains("/bookings/postgresql-"));
        let db_ns = ns_of(db[0]);
        // The database: generated once, pushed to the store under its namespace.
        let made = objects(db[0]);
        let kinds: Vec<&str> = made.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["Password", "ExternalSecret", "PushSecret"],
            "{name}"
        );
        assert_eq!(made[1]["spec"]["refreshPolicy"], "CreatedOnce");
        assert_eq!(
            made[1]["spec"]["dataFrom"][0]["sourceRef"]["generatorRef"],
            json!({"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password", "name": "postgresql-credentials"})
        );
        assert_eq!(made[1]["spec"]["target"]["name"], "postgresql-credentials");
        assert_eq!(
            made[2]["spec"]["data"][0]["match"]["remoteRef"]["remoteKey"],
            format!("verbund/{db_ns}/credentials")
        );
        assert_eq!(made[2]["spec"]["updatePolicy"], "IfNotExists");
        // The dependent: the same credentials from the store, in its own namespace.
        let read = &objects(app[0])[0];
        assert_eq!(read["kind"], "ExternalSecret");
        assert_eq!(
            read["spec"]["secretStoreRef"],
            json!({"kind": "ClusterSecretStore", "name": "verbund"})
        );
        assert_eq!(read["metadata"]["namespace"], ns_of(app[0]));
        assert_eq!(read["spec"]["target"]["name"], "postgresql-credentials");
        assert_eq!(
            read["spec"]["dataFrom"][0]["extract"]["key"],
            format!("verbund/{db_ns}/credentials")
        );
    }
}

// ---------------------------------------------------------------- values, network, names

fn app_values(files: &[RenderedFile], mode: &str) -> Value {
    if mode == "agent" {
        return objects(file(files, "/helm.yaml"))[0]["spec"]["values"].clone();
    }
    let app = objects(file(files, "/app.yaml"))
        .into_iter()
        .find(|o| o["kind"] == "HelmRelease" || o["kind"] == "Application")
        .unwrap();
    match mode {
        "argocd" => app["spec"]["source"]["helm"]["valuesObject"].clone(),
        _ => app["spec"]["values"].clone(),
    }
}

#[test]
fn values_are_defaults_then_plan_then_config() {
    let w = world();
    for mode in ["flux", "argocd", "agent"] {
        let files = render(&w.input(mode, false), &options()).unwrap();
        let nextcloud: Vec<RenderedFile> = files
            .iter()
            .filter(|f| f.path.contains("/nextcloud-"))
            .cloned()
            .collect();
        let values = app_values(&nextcloud, mode);
        // package default, untouched by later layers
        assert_eq!(values["image"], json!({"tag": "29.0.4"}), "{mode}");
        // plan over defaults (replicaCount 1 → 2), config over plan (2 → 3)
        assert_eq!(values["replicaCount"], 3, "{mode}");
        // plan: plan `m` is 2000m/4096Mi at up to 4 pods
        assert_eq!(
            values["resources"],
            json!({"limits": {"cpu": "500m", "memory": "1024Mi"}, "requests": {"cpu": "500m", "memory": "1024Mi"}}),
            "{mode}"
        );
        assert_eq!(
            values["autoscaling"],
            json!({"enabled": true, "maxReplicas": 4, "minReplicas": 2, "targetCPUUtilizationPercentage": 75}),
            "{mode}"
        );
        // config merged into the defaults' object, key by key
        assert_eq!(
            values["ingress"],
            json!({"className": "nginx", "enabled": true, "host": "cloud.musterstadt.de"}),
            "{mode}"
        );
        // verbund's block last, with the dependency's connection
        let block = &values["verbund"];
        let ns = block["namespace"].as_str().unwrap();
        assert!(ns.starts_with("nextcloud-"), "{mode}: {ns}");
        assert_eq!(block["booking"], w.app_booking.id);
        assert_eq!(block["organisation"], "010590045045");
        let db = &block["dependencies"]["postgresql"];
        let db_ns = db["namespace"].as_str().unwrap();
        assert!(db_ns.starts_with("postgresql-"), "{mode}");
        assert_eq!(db["host"], format!("postgresql.{db_ns}.svc.cluster.local"));
        assert_eq!(db["credentialsSecretName"], "postgresql-credentials");
    }
    // A tenant cannot override verbund's block.
    let mut w = world();
    w.app_booking.config = json!({"verbund": {"namespace": "kube-system"}});
    let files = render(&w.input("flux", false), &options()).unwrap();
    let nextcloud: Vec<RenderedFile> = files
        .iter()
        .filter(|f| f.path.contains("/nextcloud-"))
        .cloned()
        .collect();
    assert_ne!(
        app_values(&nextcloud, "flux")["verbund"]["namespace"],
        "kube-system"
    );
}

#[test]
fn network_policies_allow_exactly_the_dependencies() {
    let w = world();
    let files = render(&w.input("flux", false), &options()).unwrap();
    let ns_of = |offering: &str| {
        let f = files
            .iter()
            .find(|f| {
                f.path.contains(&format!("/bookings/{offering}-"))
                    && f.path.ends_with("namespace.yaml")
            })
            .unwrap();
        objects(f)[0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (app, db) = (ns_of("nextcloud"), ns_of("postgresql"));
    let policies = |ns: &str| -> BTreeMap<String, Value> {
        objects(file(&files, &format!("{ns}/networkpolicies.yaml")))
            .into_iter()
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                    p["spec"].clone(),
                )
            })
            .collect()
    };
    let peer = |ns: &str| json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}});

    let app_policies = policies(&app);
    assert_eq!(
        app_policies.keys().collect::<Vec<_>>(),
        [
            "allow-dns",
            "allow-ingress-controller",
            "allow-same-namespace",
            "allow-to-dependencies",
            "default-deny"
        ]
    );
    assert_eq!(
        app_policies["default-deny"],
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    );
    assert_eq!(
        app_policies["allow-to-dependencies"]["egress"],
        json!([{"to": [peer(&db)]}])
    );
    assert_eq!(
        app_policies["allow-ingress-controller"]["ingress"],
        json!([{"from": [peer("ingress-nginx")]}])
    );
    let dns = &app_policies["allow-dns"]["egress"][0];
    assert_eq!(
        dns["ports"],
        json!([{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}])
    );
    assert_eq!(
        dns["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "kube-system"
    );

    let db_policies = policies(&db);
    assert!(!db_policies.contains_key("allow-to-dependencies"));
    assert_eq!(
        db_policies["allow-from-dependents"]["ingress"],
        json!([{"from": [peer(&app)]}])
    );

    // The ingress controller's namespace is a parameter.
    let mut opts = options();
    opts.ingress_namespace = "traefik".into();
    let files = render(&w.input("flux", false), &opts).unwrap();
    let p = objects(file(&files, &format!("{app}/networkpolicies.yaml")));
    assert!(p
        .iter()
        .any(|p| p["spec"]["ingress"][0]["from"] == json!([peer("traefik")])));
}

/// A dependent the renderer refuses keeps the folder its site already has, so its
/// database must go on admitting it: the refusal changes nothing in the dependency.
#[test]
fn a_refused_dependent_still_reaches_its_dependency() {
    let mut w = world();
    let whole = render(&w.input("flux", false), &options()).unwrap();
    w.app_booking.config["domain"] = json!("cloud\u{7F}.example.de");
    let rendered = verbund_render::render(&w.input("flux", false), &options()).unwrap();
    assert_eq!(rendered.refused.len(), 1, "{:?}", rendered.refused);
    assert_eq!(rendered.refused[0].booking, w.app_booking.id);
    let app = rendered.refused[0].namespace.clone().unwrap();
    let of_postgres = |files: &[RenderedFile]| -> Vec<RenderedFile> {
        files
            .iter()
            .filter(|f| f.path.contains("/bookings/postgresql-"))
            .cloned()
            .collect()
    };
    assert_eq!(of_postgres(&rendered.files), of_postgres(&whole));
    assert!(rendered.files.iter().all(|f| !f.path.contains(&app)));
}

#[test]
fn namespaces_labels_and_rbac() {
    let w = world();
    let files = render(&w.input("argocd", false), &options()).unwrap();
    let ns = objects(file(
        &files,
        "nextcloud-stadt-muesterstadt-an-der-oede-f8727f1c1f/namespace.yaml",
    ))
    .remove(0);
    let labels = &ns["metadata"]["labels"];
    for mode in ["enforce", "audit", "warn"] {
        assert_eq!(
            labels[format!("pod-security.kubernetes.io/{mode}")],
            "restricted"
        );
    }
    assert_eq!(labels["app.kubernetes.io/version"], "29.0.4_build.7");
    assert_eq!(labels["verbund.dev/version"], "29.0.4_build.7");
    assert_eq!(labels["verbund.dev/organisation-key"], "010590045045");
    assert_eq!(labels["verbund.dev/booking"], w.app_booking.id);
    assert_eq!(labels["app.kubernetes.io/managed-by"], "verbund");
    let rb = objects(file(
        &files,
        "nextcloud-stadt-muesterstadt-an-der-oede-f8727f1c1f/rbac.yaml",
    ))
    .remove(0);
    assert_eq!(rb["roleRef"]["name"], "edit");
    assert_eq!(rb["subjects"][0]["name"], "verbund:org:010590045045");
    assert_eq!(rb["subjects"][0]["kind"], "Group");

    // Without an official key the organisation's id names the group.
    let mut w = world();
    w.org.ars = None;
    let files = render(&w.input("flux", false), &options()).unwrap();
    let rb = objects(file(&files, "rbac.yaml")).remove(0);
    assert_eq!(rb["subjects"][0]["name"], "verbund:org:org-musterstadt");
}

#[test]
fn two_bookings_of_one_organisation_and_offering_get_two_namespaces() {
    let w = world();
    let mut second = w.postgres_booking.clone();
    second.id = "0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e13".into();
    let mut input = w.input("flux", false);
    let mut placed = input.bookings[1].clone();
    placed.booking = &second;
    input.bookings.push(placed);
    let files = render(&input, &options()).unwrap();
    let namespaces: Vec<&str> = files
        .iter()
        .filter(|f| f.path.ends_with("/namespace.yaml"))
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(namespaces.len(), 3, "{namespaces:?}");
}

// ---------------------------------------------------------------- determinism and refusals

#[test]
fn rendering_is_deterministic_whatever_the_input_order() {
    let w = world();
    for mode in ["flux", "argocd", "agent"] {
        let first = render(&w.input(mode, false), &options()).unwrap();
        let again = render(&w.input(mode, false), &options()).unwrap();
        assert_eq!(first, again);
        let mut shuffled = w.input(mode, false);
        shuffled.bookings.reverse();
        assert_eq!(first, render(&shuffled, &options()).unwrap(), "{mode}");
        let mut paths: Vec<&String> = first.iter().map(|f| &f.path).collect();
        paths.sort();
        assert_eq!(
            paths,
            first.iter().map(|f| &f.path).collect::<Vec<_>>(),
            "files are sorted"
        );
    }
    // Config keys in another order serialise the same.
    let mut w2 = world();
    w2.app_booking.config =
        json!({"replicaCount": 3, "ingress": {"host": "cloud.musterstadt.de", "enabled": true}});
    assert_eq!(
        render(&w.input("flux", false), &options()).unwrap(),
        render(&w2.input("flux", false), &options()).unwrap()
    );
}

/// The resources a `kustomization.yaml` lists, as repository paths.
fn listed(files: &[RenderedFile], dir: &str) -> Vec<String> {
    let k = objects(file(files, &format!("{dir}/kustomization.yaml"))).remove(0);
    k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| normalise(&format!("{dir}/{}", r.as_str().unwrap())))
        .collect()
}

fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            p => parts.push(p),
        }
    }
    parts.join("/")
}

#[test]
fn layout_per_delivery_mode() {
    let w = world();
    let folder = "sites/dataport-hh-1/prod";
    for manifests in [false, true] {
        for mode in ["flux", "argocd", "agent"] {
            let files = render(&w.input(mode, manifests), &options()).unwrap();
            let at = format!("{mode} manifests={manifests}");
            for f in &files {
                assert!(f.path.starts_with(&format!("{folder}/")), "{}", f.path);
            }
            assert_eq!(
                files
                    .iter()
                    .any(|f| f.path == format!("{folder}/root.yaml")),
                mode != "agent",
                "{at}"
            );
            // The site lists its shards (agent) or shards.yaml (Flux, Argo CD); the
            // shards list every booking folder, each exactly once.
            let top = listed(&files, folder);
            let shard_dirs: Vec<String> = if mode == "agent" {
                top.clone()
            } else {
                assert_eq!(top, [format!("{folder}/shards.yaml")], "{at}");
                objects(file(&files, &format!("{folder}/shards.yaml")))
                    .iter()
                    // Each Flux shard has a Git source of its own beside its Kustomization.
                    .filter(|o| o["kind"] != "GitRepository")
                    .map(|o| {
                        let path = o["spec"]["path"]
                            .as_str()
                            .unwrap_or_else(|| o["spec"]["source"]["path"].as_str().unwrap());
                        normalise(path)
                    })
                    .collect()
            };
            let mut booked: Vec<String> = shard_dirs
                .iter()
                .flat_map(|dir| {
                    assert!(dir.starts_with(&format!("{folder}/shards/")), "{at}: {dir}");
                    listed(&files, dir)
                })
                .collect();
            booked.sort();
            let folders: std::collections::BTreeSet<String> = files
                .iter()
                .filter_map(|f| f.path.strip_prefix(&format!("{folder}/bookings/")))
                .map(|rest| format!("{folder}/bookings/{}", rest.split('/').next().unwrap()))
                .collect();
            assert_eq!(booked, folders.iter().cloned().collect::<Vec<_>>(), "{at}");
            assert_eq!(folders.len(), 2);
            // Each booking's kustomization lists its own files, never the vendor content.
            for dir in &folders {
                let expected: Vec<String> = files
                    .iter()
                    .map(|f| f.path.clone())
                    .filter(|p| {
                        p.strip_prefix(&format!("{dir}/")).is_some_and(|rest| {
                            !rest.contains('/')
                                && rest != "kustomization.yaml"
                                && rest != "helm.yaml"
                        })
                    })
                    .collect();
                assert_eq!(listed(&files, dir), expected, "{at}");
            }
            // Vendor content per mode: Helm charts are the engine's (Flux, Argo CD) or
            // `helm.yaml` (agent); manifests are `app/`, deployed as the deployer.
            let forms = folders
                .iter()
                .find(|f| f.contains("/formulare-") || f.contains("/nextcloud-"))
                .unwrap();
            let app_kinds: Vec<String> = files
                .iter()
                .find(|f| f.path == format!("{forms}/app.yaml"))
                .map(|f| {
                    objects(f)
                        .iter()
                        .map(|o| o["kind"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let has = |name: &str| files.iter().any(|f| f.path == format!("{forms}/{name}"));
            match (mode, manifests) {
                ("flux", false) => assert_eq!(app_kinds, ["HelmRepository", "HelmRelease"]),
                ("flux", true) => assert_eq!(app_kinds, ["Kustomization"]),
                ("argocd", _) => assert_eq!(app_kinds, ["AppProject", "Application"]),
                ("agent", _) => {
                    assert!(app_kinds.is_empty(), "{at}: agent sites get plain objects")
                }
                _ => unreachable!(),
            }
            assert_eq!(has("helm.yaml"), mode == "agent" && !manifests, "{at}");
            assert_eq!(has("app/manifests.yaml"), manifests, "{at}");
            assert_eq!(has("app/kustomization.yaml"), manifests, "{at}");
            // Agent sites get no Flux or Argo CD kind at all.
            if mode == "agent" {
                for f in &files {
                    for o in objects(f) {
                        let api = o["apiVersion"].as_str().unwrap_or_default();
                        assert!(
                            !api.contains("fluxcd.io") && !api.contains("argoproj.io"),
                            "{at}: {}",
                            f.path
                        );
                    }
                }
            }
        }
    }

    // An environment without bookings still has its entry points.
    let mut empty = w.input("flux", false);
    empty.bookings.clear();
    empty.environment = Environment::Test;
    let files = render(&empty, &options()).unwrap();
    assert_eq!(
        files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        [
            "sites/dataport-hh-1/test/kustomization.yaml",
            "sites/dataport-hh-1/test/root.yaml"
        ]
    );
    assert!(
        files[0].content.contains("resources: []"),
        "{}",
        files[0].content
    );
}

#[test]
fn vendor_content_runs_as_the_booking_deployer() {
    let w = world();
    for manifests in [false, true] {
        for mode in ["flux", "argocd", "agent"] {
            let files = render(&w.input(mode, manifests), &options()).unwrap();
            let at = format!("{mode} manifests={manifests}");
            let app_ns = files
                .iter()
                .find(|f| {
                    (f.path.contains("/formulare-") || f.path.contains("/nextcloud-"))
                        && f.path.ends_with("/namespace.yaml")
                })
                .map(|f| {
                    objects(f)[0]["metadata"]["name"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .unwrap();
            let rbac = objects(file(&files, &format!("{app_ns}/rbac.yaml")));
            let sa = rbac.iter().find(|o| o["kind"] == "ServiceAccount").unwrap();
            assert_eq!(sa["metadata"]["name"], "verbund-deployer", "{at}");
            let binding = rbac
                .iter()
                .find(|o| o["kind"] == "RoleBinding" && o["metadata"]["name"] == "verbund-deployer")
                .unwrap();
            assert_eq!(binding["roleRef"]["name"], "verbund-deployer");
            assert_eq!(binding["subjects"][0]["namespace"], app_ns.as_str());
            let app = files
                .iter()
                .find(|f| f.path.ends_with(&format!("{app_ns}/app.yaml")));
            for o in app.map(objects).unwrap_or_default() {
                match o["kind"].as_str().unwrap() {
                    "HelmRelease" | "Kustomization" => {
                        assert_eq!(o["spec"]["serviceAccountName"], "verbund-deployer", "{at}");
                        assert_eq!(o["metadata"]["namespace"], app_ns.as_str(), "{at}");
                    }
                    "AppProject" => {
                        assert_eq!(
                            o["spec"]["destinations"],
                            json!([{"server": "https://kubernetes.default.svc", "namespace": app_ns}])
                        );
                        assert_eq!(o["spec"]["clusterResourceWhitelist"], json!([]));
                        let kinds: Vec<&str> = o["spec"]["namespaceResourceWhitelist"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|k| k["kind"].as_str().unwrap())
                            .collect();
                        assert!(
                            kinds.contains(&"Deployment")
                                && !kinds.contains(&"NetworkPolicy")
                                && !kinds.contains(&"Secret")
                        );
                        assert_eq!(
                            o["spec"]["destinationServiceAccounts"][0]["defaultServiceAccount"],
                            "verbund-deployer"
                        );
                    }
                    "Application" => assert_eq!(o["spec"]["project"], app_ns.as_str(), "{at}"),
                    _ => {}
                }
            }
            if mode == "agent" && !manifests {
                let chart = &objects(file(&files, &format!("{app_ns}/helm.yaml")))[0];
                assert_eq!(chart["spec"]["serviceAccountName"], "verbund-deployer");
                assert_eq!(chart["metadata"]["namespace"], app_ns.as_str());
            }
        }
    }
}

#[test]
fn no_object_carries_the_label_argo_cd_tracks_by() {
    let w = world();
    for (name, files) in every_render(&w) {
        for f in &files {
            assert!(
                !f.content.contains("app.kubernetes.io/instance"),
                "{name}: {}",
                f.path
            );
        }
    }
}

#[test]
fn the_quota_leaves_room_for_a_surge_pod_and_the_smoke_test() {
    let w = world();
    let files = render(&w.input("agent", true), &options()).unwrap();
    // formulare, plan m: 2000m / 4096Mi at up to 4 pods of 500m / 1024Mi, a smoke test.
    let quota = objects(
        files
            .iter()
            .find(|f| f.path.contains("/formulare-") && f.path.ends_with("quota.yaml"))
            .unwrap(),
    )
    .remove(0);
    assert_eq!(quota["spec"]["hard"]["requests.cpu"], "2600m");
    assert_eq!(quota["spec"]["hard"]["limits.memory"], "5248Mi");
    let job = objects(
        files
            .iter()
            .find(|f| f.path.ends_with("smoke-test.yaml"))
            .unwrap(),
    )
    .remove(0);
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"],
        json!({"cpu": "100m", "memory": "128Mi"})
    );
}

#[test]
fn an_autoscaling_plan_scales_the_workload_plain_manifests_name() {
    let w = world();
    for mode in ["flux", "argocd", "agent"] {
        let files = render(&w.input(mode, true), &options()).unwrap();
        let of = |name: &str| {
            files
                .iter()
                .find(|f| f.path.contains("/formulare-") && f.path.ends_with(name))
        };
        // formulare, plan m: 2 to 4 pods at 75 % CPU, in the booking's own files (which
        // its kustomization lists), not in the vendor's.
        let hpa = objects(of("/autoscaler.yaml").unwrap()).remove(0);
        assert_eq!(hpa["apiVersion"], "autoscaling/v2", "{mode}");
        assert_eq!(hpa["kind"], "HorizontalPodAutoscaler");
        assert_eq!(
            hpa["spec"]["scaleTargetRef"],
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "formulare"})
        );
        assert_eq!(
            (&hpa["spec"]["minReplicas"], &hpa["spec"]["maxReplicas"]),
            (&json!(2), &json!(4))
        );
        assert_eq!(
            hpa["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 75}}}])
        );
        assert_eq!(
            hpa["metadata"]["namespace"],
            objects(of("/namespace.yaml").unwrap())[0]["metadata"]["name"]
        );
        let listed = objects(
            files
                .iter()
                .find(|f| {
                    f.path.contains("/formulare-")
                        && f.path.ends_with("/kustomization.yaml")
                        && !f.path.contains("/app/")
                })
                .unwrap(),
        )
        .remove(0);
        assert!(
            listed["resources"]
                .as_array()
                .unwrap()
                .contains(&json!("autoscaler.yaml")),
            "{mode}: {listed}"
        );
        // The autoscaler owns the replicas: the vendor's count is not delivered.
        let deployment = objects(of("/app/manifests.yaml").unwrap())
            .into_iter()
            .find(|o| o["kind"] == "Deployment")
            .unwrap();
        assert_eq!(deployment["spec"].get("replicas"), None, "{mode}");
    }
    // Plan s does not autoscale: no autoscaler.
    let mut w = world();
    w.forms_booking.plan = "s".into();
    let mut input = w.input("flux", true);
    input.bookings.iter_mut().for_each(|b| {
        if b.booking.offering == "formulare" {
            b.plan = &w.forms.plans[0];
        }
    });
    let files = render(&input, &options()).unwrap();
    assert!(!files.iter().any(|f| f.path.ends_with("/autoscaler.yaml")));
    let deployment = files
        .iter()
        .filter(|f| f.path.contains("/formulare-") && f.path.ends_with("/app/manifests.yaml"))
        .flat_map(objects)
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    assert_eq!(
        deployment["spec"]["replicas"], 1,
        "the vendor's count, unscaled"
    );
}

/// A version stored without `scale_target` (before an offering's plan autoscaled) is
/// refused for the bookings on the autoscaling plan only: the others are delivered.
#[test]
fn plain_manifests_naming_nothing_to_scale_stop_only_the_autoscaling_plan() {
    let mut w = world();
    let Package::Manifests { scale_target, .. } = &mut w.forms_manifests.package else {
        unreachable!()
    };
    *scale_target = None;
    let err = render(&w.input("flux", true), &options()).unwrap_err();
    assert!(
        matches!(&err, Error::Package { field, .. } if field == "/package/scale_target"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("plan `m` of `formulare` autoscales"),
        "{err}"
    );
    w.forms_booking.plan = "s".into();
    let mut input = w.input("flux", true);
    input.bookings.iter_mut().for_each(|b| {
        if b.booking.offering == "formulare" {
            b.plan = &w.forms.plans[0];
        }
    });
    assert!(render(&input, &options()).is_ok());
}

#[test]
fn a_manifests_package_gets_its_configuration_as_the_config_map_it_names() {
    let mut w = world();
    w.forms_booking.config = json!({"municipality": "01001000", "tax_rates": {"first_dog": 9000}});
    let Package::Manifests { config_map, .. } = &mut w.forms_manifests.package else {
        unreachable!()
    };
    *config_map = Some("formulare-config".into());
    let files = render(&w.input("flux", true), &options()).unwrap();
    let cm = objects(
        files
            .iter()
            .find(|f| f.path.ends_with("/config.yaml"))
            .unwrap(),
    )
    .remove(0);
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "formulare-config");
    assert_eq!(
        cm["data"],
        json!({"MUNICIPALITY": "01001000", "TAX_RATES_FIRST_DOG": "9000"})
    );
}

#[test]
fn a_package_whose_pods_read_what_nothing_creates_is_refused() {
    let mut w = world();
    // The manifests read `formulare-config`, which neither they nor verbund create.
    let Package::Manifests { manifests, .. } = &mut w.forms_manifests.package else {
        unreachable!()
    };
    manifests[1]["spec"]["template"]["spec"]["containers"][0]["envFrom"] = json!([{"configMapRef": {"name": "formulare-config"}}, {"secretRef": {"name": "nextcloud-database"}}]);
    let err = render(&w.input("agent", true), &options()).unwrap_err();
    assert!(
        err.to_string().contains(
            "ConfigMap `formulare-config`, Secret `nextcloud-database` which nothing creates"
        ),
        "{err}"
    );
    // Helm values that name a Secret the booking does not get.
    let mut w = world();
    w.app_helm = helm(
        "29.0.5",
        "https://nextcloud.github.io/helm",
        "nextcloud",
        json!({"externalDatabase": {"existingSecret": {"enabled": true, "secretName": "nextcloud-database"}}}),
    );
    let err = render(&w.input("flux", false), &options()).unwrap_err();
    assert!(
        err.to_string().contains("`/package/values/externalDatabase/existingSecret/secretName`: names the Secret `nextcloud-database`"),
        "{err}"
    );
}

#[test]
fn inconsistent_or_unreachable_inputs_are_refused() {
    let w = world();

    let mut input = w.input("flux", false);
    input.bookings.push(input.bookings[0].clone());
    assert!(matches!(
        render(&input, &options()),
        Err(Error::DuplicateBooking { .. })
    ));

    let mut input = w.input("flux", false);
    input.bookings[0].plan = &w.app.plans[0];
    assert!(matches!(
        render(&input, &options()),
        Err(Error::Inconsistent { .. })
    ));

    let mut other = w.postgres_booking.clone();
    other.organisation = "org-other".into();
    let mut input = w.input("flux", false);
    input.bookings[0].dependencies = vec![&other];
    let err = render(&input, &options()).unwrap_err();
    assert!(matches!(err, Error::Dependency { .. }), "{err}");

    let mut elsewhere = w.postgres_booking.clone();
    elsewhere.site = Some("itnrw-1".into());
    let mut input = w.input("flux", false);
    input.bookings[0].dependencies = vec![&elsewhere];
    assert!(matches!(
        render(&input, &options()),
        Err(Error::Dependency { .. })
    ));

    let mut lonely = w.sites["flux"].clone();
    lonely.environments = [Environment::Prod].into();
    let mut input = w.input("flux", false);
    input.site = &lonely;
    input.environment = Environment::Test;
    assert!(matches!(
        render(&input, &options()),
        Err(Error::Invalid { .. })
    ));

    let mut w2 = world();
    w2.app_booking.config = json!(["not", "an", "object"]);
    assert!(matches!(
        render(&w2.input("flux", false), &options()),
        Err(Error::ConfigNotObject { .. })
    ));

    let mut opts = options();
    opts.repository_url = "git@git.verbund.example:desired-state.git".into();
    assert!(matches!(
        render(&w.input("flux", false), &opts),
        Err(Error::Invalid { .. })
    ));
    assert!(
        render(&w.input("argocd", false), &opts).is_ok(),
        "Argo CD takes scp-like URLs"
    );
}

#[test]
fn rendering_selected_folders_gives_the_same_bytes_as_the_whole_site() {
    let w = world();
    for mode in ["flux", "argocd", "agent"] {
        let input = w.input(mode, false);
        let all = render(&input, &options()).unwrap();
        for p in &input.bookings {
            let selected = [p.booking.id.as_str()].into_iter().collect();
            let (folders, refused) =
                verbund_render::render_folders(&input, &options(), &selected).unwrap();
            assert!(refused.is_empty(), "{refused:?}");
            assert_eq!(folders.len(), 1, "{mode}");
            let folder = &folders[0];
            assert_eq!(folder.booking, p.booking.id);
            assert_eq!(folder.namespace, verbund_render::booking_namespace(p));
            let whole: Vec<&RenderedFile> = all
                .iter()
                .filter(|f| f.path.starts_with(&format!("{}/", folder.folder)))
                .collect();
            assert_eq!(folder.files.iter().collect::<Vec<_>>(), whole, "{mode}");
        }
        // The site's entry points from the namespaces alone are the whole render's.
        let namespaces: Vec<String> = input
            .bookings
            .iter()
            .map(verbund_render::booking_namespace)
            .collect();
        let entry = verbund_render::site_files(
            input.site,
            input.environment,
            namespaces.iter().map(String::as_str),
            &options(),
        )
        .unwrap();
        for f in &entry {
            assert!(all.contains(f), "{mode}: {}", f.path);
        }
    }
}
