//! Renders small federations through the public API and checks the output: snapshots
//! per delivery mode, validity against the official Kubernetes schemas, the secrets
//! rule, values precedence, network allowances and determinism.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use verbund_domain::booking::{Booking, BookingState};
use verbund_domain::catalog::{OfferingSpec, Package, SmokeTest, VersionSpec};
use verbund_domain::directory::{Delivery, Environment, Level, Organisation, SiteSpec};
use verbund_render::names::{is_dns_label, is_label_value};
use verbund_render::{render, Error, PlacedBooking, RenderInput, RenderOptions, RenderedFile};

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

fn manifests(version: &str, manifests: Vec<Value>) -> VersionSpec {
    VersionSpec {
        version: version.into(),
        package: Package::Manifests { manifests },
        changelog: String::new(),
    }
}

fn booking(id: &str, org: &str, offering: &str, plan: &str, config: Value) -> Booking {
    Booking {
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
        postgres: offering("postgresql", &[]),
        postgres_version: helm(
            "16.4.2",
            "oci://registry-1.docker.io/bitnamicharts/",
            "postgresql",
            json!({"auth": {"existingSecret": "postgresql-admin"}}),
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
        let apps: Vec<&RenderedFile> = files
            .iter()
            .filter(|f| f.path.ends_with("/app.yaml"))
            .collect();
        let jobs: Vec<Value> = apps
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
const BUILTIN: [(&str, &str, &str); 9] = [
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
    ("v1", "ConfigMap", "configmap-v1.json"),
    ("v1", "Service", "service-v1.json"),
    ("apps/v1", "Deployment", "deployment-apps-v1.json"),
    ("batch/v1", "Job", "job-batch-v1.json"),
];
const CUSTOM: [(&str, &str, &str); 8] = [
    (
        "helm.toolkit.fluxcd.io/v2",
        "HelmRelease",
        "helmrelease-helm.toolkit.fluxcd.io-v2.json",
    ),
    (
        "source.toolkit.fluxcd.io/v1",
        "HelmRepository",
        "helmrepository-source.toolkit.fluxcd.io-v1.json",
    ),
    (
        "source.toolkit.fluxcd.io/v1",
        "OCIRepository",
        "ocirepository-source.toolkit.fluxcd.io-v1.json",
    ),
    (
        "source.toolkit.fluxcd.io/v1",
        "GitRepository",
        "gitrepository-source.toolkit.fluxcd.io-v1.json",
    ),
    (
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        "kustomization-kustomize.toolkit.fluxcd.io-v1.json",
    ),
    (
        "argoproj.io/v1alpha1",
        "Application",
        "application-argoproj.io-v1alpha1.json",
    ),
    (
        "external-secrets.io/v1",
        "ExternalSecret",
        "externalsecret-external-secrets.io-v1.json",
    ),
    (
        "kustomize.config.k8s.io/v1beta1",
        "Kustomization",
        "kustomization-kustomize.config.k8s.io-v1beta1.json",
    ),
];

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
        if version == "v1.33.0" {
            for (api, kind, file) in CUSTOM {
                let schema = read_json(schema_dir().join("crds").join(file));
                out.entry((api.into(), kind.into())).or_default().push((
                    format!("crd subset, metadata {version}"),
                    validator(&definitions, &schema),
                ));
            }
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
                errors.extend(check_names(object, &at));
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
            json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "x"},
                "spec": {"interval": "10 minutes", "chartRef": {"kind": "OCIRepository", "name": "x"}}}),
            "crd",
        ),
        (
            json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "x"},
                "spec": {"interval": "10m"}}),
            "crd",
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
    w.forms_manifests = manifests(
        "1.4.1",
        vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "x"}}),
        ],
    );
    let err = render(&w.input("agent", true), &options()).unwrap_err();
    assert_eq!(
        err,
        Error::SecretManifest {
            booking: w.forms_booking.id.clone(),
            index: 1
        }
    );
    assert!(
        err.to_string()
            .contains("`/package/manifests/1` is a `Secret`"),
        "{err}"
    );

    w.forms_manifests = manifests(
        "1.4.1",
        vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"DB_PASSWORD": "x"}}),
        ],
    );
    assert!(matches!(
        render(&w.input("flux", true), &options()),
        Err(Error::SecretValue { pointer, .. }) if pointer == "/package/manifests/0/data/DB_PASSWORD"
    ));
}

#[test]
fn cluster_scoped_and_list_manifests_are_refused() {
    let mut w = world();
    for kind in ["ClusterRoleBinding", "Namespace", "List"] {
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
        let secrets: Vec<&RenderedFile> = files
            .iter()
            .filter(|f| f.path.ends_with("externalsecrets.yaml"))
            .collect();
        assert_eq!(
            secrets.len(),
            1,
            "{name}: the dependent fetches its dependency's credentials"
        );
        let es = &objects(secrets[0])[0];
        assert_eq!(es["kind"], "ExternalSecret");
        assert_eq!(
            es["spec"]["secretStoreRef"],
            json!({"kind": "ClusterSecretStore", "name": "verbund"})
        );
        let ns = es["metadata"]["namespace"].as_str().unwrap();
        assert_eq!(
            es["spec"]["dataFrom"][0]["extract"]["key"],
            format!("verbund/{ns}/postgresql-credentials")
        );
    }
}

// ---------------------------------------------------------------- values, network, names

fn app_values(files: &[RenderedFile], mode: &str) -> Value {
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
            json!({"enabled": true, "maxReplicas": 4, "minReplicas": 2}),
            "{mode}"
        );
        // config merged into the defaults' object, key by key
        assert_eq!(
            values["ingress"],
            json!({"className": "nginx", "enabled": true, "host": "cloud.musterstadt.de"}),
            "{mode}"
        );
    }
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

#[test]
fn layout_per_delivery_mode() {
    let w = world();
    let paths = |mode: &str| -> Vec<String> {
        render(&w.input(mode, false), &options())
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect()
    };
    let folder = "sites/dataport-hh-1/prod";
    for mode in ["flux", "argocd"] {
        assert!(
            paths(mode).contains(&format!("{folder}/root.yaml")),
            "{mode}"
        );
    }
    assert!(!paths("agent").iter().any(|p| p.ends_with("root.yaml")));
    for p in paths("agent") {
        assert!(p.starts_with(&format!("{folder}/")), "{p}");
    }
    // The site's kustomization lists every booking folder; each folder's kustomization
    // lists every other file of the folder.
    let files = render(&w.input("flux", false), &options()).unwrap();
    let k = objects(file(&files, &format!("{folder}/kustomization.yaml"))).remove(0);
    let listed: Vec<String> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{folder}/{}", r.as_str().unwrap()))
        .collect();
    let folders: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.path.strip_prefix(&format!("{folder}/bookings/")))
        .map(|rest| format!("{folder}/bookings/{}", rest.split('/').next().unwrap()))
        .collect();
    assert_eq!(listed, folders.iter().cloned().collect::<Vec<_>>());
    assert!(!folders.is_empty());
    for dir in &folders {
        let k = objects(file(&files, &format!("{dir}/kustomization.yaml"))).remove(0);
        let listed: Vec<String> = k["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{dir}/{}", r.as_str().unwrap()))
            .collect();
        let expected: Vec<String> = files
            .iter()
            .map(|f| f.path.clone())
            .filter(|p| p.starts_with(&format!("{dir}/")) && !p.ends_with("kustomization.yaml"))
            .collect();
        assert_eq!(listed, expected);
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

    let mut opts = options();
    opts.agent_runs_helm_controller = false;
    assert!(matches!(
        render(&w.input("agent", false), &opts),
        Err(Error::Unsupported { .. })
    ));
    assert!(
        render(&w.input("flux", false), &opts).is_ok(),
        "only agent sites are affected"
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
            let folders = verbund_render::render_folders(&input, &options(), &selected).unwrap();
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
