//! What verbund hands to a site is usable by its real consumers, not only valid against
//! schemas: `kustomize` builds every folder, the real API server (v1.36, with the CRDs of
//! Flux, Argo CD and External Secrets) accepts every object with strict field validation,
//! Pod Security admission admits every pod, and Helm renders the project's own charts
//! into objects that get Ready inside their booking's quota.
//!
//! - `the_demo_federations_desired_state_builds_and_applies`: `verbund demo` delivers its
//!   bookings; every folder of the repository builds, every object dry-run applies.
//! - `every_offering_plan_and_delivery_mode_builds_and_applies`: a federation rendered in
//!   process with a booking of every offering × version × plan × delivery mode (and their
//!   dependencies); the same checks.
//! - `every_pod_passes_pod_security_restricted`: a pod of every workload of every booking
//!   (smoke tests, plain manifests, the project's charts through `helm template` with
//!   exactly the rendered values) is admitted into its booking's namespace, and a
//!   privileged pod is refused there.
//! - `charts_run_in_their_booking_namespace_within_its_quota`: the project's charts and the
//!   plain-manifests offering applied for real as the booking's deployer get Ready on the
//!   kwok nodes inside the booking's quota, and an update at the plan's full size rolls out.
//! - `every_demo_offering_has_a_valid_reference_configuration` (no cluster): the
//!   configuration the generated federations and `verbund rollout` book validates, with
//!   `format` asserted as Helm asserts it; where it does not, the federations book an
//!   example configuration instead (see `example_config`) so the checks above still run.
//!
//! The tests share one cluster (started by whichever test comes first); each works in
//! namespaces of its own organisation. A missing test environment fails the tests (run
//! `testenv/build.sh`), it never skips them. Every kind verbund renders is served by
//! the test environment (Flux's, Argo CD's and External Secrets' CRDs among them), so an
//! object of a kind the API server does not know is a failure.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use futures::{stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, ResourceQuota};
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    ValidationDirective,
};
use kube::discovery::{Discovery, Scope};
use kube::{Api, Client};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::OnceCell;
use verbund_domain::booking::{validate_config, Booking, BookingState};
use verbund_domain::catalog::{OfferingSpec, Package, VersionSpec};
use verbund_domain::directory::{Delivery, Environment, Level, Organisation, SiteSpec};
use verbund_domain::rollout::reference_config;
use verbund_domain::tenancy::{check_tenant_object, unmet_references, AgentChart, Reference};
use verbund_render::{PlacedBooking, RenderInput, RenderOptions, RenderedFile};
use verbund_testcluster::{
    wait_for_default_service_account, wait_for_value, workspace_root, ChartRepository, Cluster,
    ClusterOptions,
};

mod common;
use common::{get, token, Server};

/// The Kubernetes version of the test cluster, which `helm template` is told.
const KUBE_VERSION: &str = "v1.36.3";
/// The field manager of everything the tests apply.
const FIELD_MANAGER: &str = "test";
/// How long a wait for the cluster may take.
const WAIT: Duration = Duration::from_secs(120);
/// Requests in flight at once against the API server.
const IN_FLIGHT: usize = 8;
/// `kustomize` and `helm` processes at once (the development machine has 2 cores).
const TOOLS_IN_FLIGHT: usize = 3;
/// The placeholder of the demo catalog for the Helm repository of the project's charts.
const CHARTS_PLACEHOLDER: &str = "${VERBUND_DEMO_CHARTS}";

// ------------------------------------------------------------------ the shared cluster

static CLUSTER: OnceCell<Cluster> = OnceCell::const_new();

async fn cluster() -> &'static Cluster {
    CLUSTER
        .get_or_init(|| async {
            let cluster = Cluster::start(ClusterOptions::default())
                .await
                .unwrap_or_else(|e| panic!("the test cluster starts: {e}"));
            eprintln!(
                "test cluster started in {:.1} s at {}",
                cluster.startup_duration().as_secs_f64(),
                cluster.server_url()
            );
            cluster
        })
        .await
}

fn workspace() -> PathBuf {
    workspace_root().expect("the tests run inside the verbund workspace")
}

fn demo_file(name: &str) -> PathBuf {
    workspace().join("crates/verbund-cli/demo").join(name)
}

// ------------------------------------------------------------------ the demo catalog

/// An entry of the demo's `offerings.yaml`.
#[derive(Debug, Clone, Deserialize)]
struct Entry {
    offering: OfferingSpec,
    versions: Vec<VersionSpec>,
}

/// The demo catalog with the project's charts served from `charts` and a vendor id.
fn catalog(charts: &str) -> Vec<Entry> {
    let text = std::fs::read_to_string(demo_file("offerings.yaml")).expect("offerings.yaml");
    let text = text
        .replace(CHARTS_PLACEHOLDER, charts.trim_end_matches('/'))
        .replace("vendor: demo-vendor", "vendor: test-vendor");
    serde_yaml_ng::from_str(&text).expect("the demo catalog parses")
}

/// The `(chart, version)` of every version whose chart is the project's own (served
/// from `${VERBUND_DEMO_CHARTS}`).
fn own_chart_versions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in catalog(CHARTS_PLACEHOLDER) {
        for version in entry.versions {
            if let Package::Helm {
                repository,
                chart,
                chart_version,
                ..
            } = version.package
            {
                if repository == CHARTS_PLACEHOLDER {
                    out.push((chart, chart_version));
                }
            }
        }
    }
    assert!(
        !out.is_empty(),
        "the demo catalog names the project's charts"
    );
    out
}

/// The project's charts, served at every version the catalog names.
fn chart_repository(cluster: &Cluster) -> ChartRepository {
    let helm = cluster
        .env()
        .require_bin("helm")
        .unwrap_or_else(|e| panic!("{e}"));
    ChartRepository::serve(&workspace().join("charts"), &own_chart_versions(), &helm)
        .unwrap_or_else(|e| panic!("the chart repository starts: {e}"))
}

// ------------------------------------------------------------------ YAML and tools

fn documents(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|e| e.to_string())?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

fn read_documents(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    documents(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `Kind namespace/name` of an object.
fn describe(object: &Value) -> String {
    let namespace = text(object, "/metadata/namespace");
    let at = if namespace.is_empty() {
        String::new()
    } else {
        format!("{namespace}/")
    };
    format!(
        "{} {at}{}",
        text(object, "/kind"),
        text(object, "/metadata/name")
    )
}

/// The binaries of the test environment the checks run.
struct Tools {
    kustomize: PathBuf,
    helm: PathBuf,
}

impl Tools {
    fn of(cluster: &Cluster) -> Tools {
        let env = cluster.env();
        Tools {
            kustomize: env
                .require_bin("kustomize")
                .unwrap_or_else(|e| panic!("{e}")),
            helm: env.require_bin("helm").unwrap_or_else(|e| panic!("{e}")),
        }
    }

    /// `kustomize build <dir>`: its objects, or its error output.
    async fn kustomize(&self, dir: &Path) -> Result<Vec<Value>, String> {
        let output = tokio::process::Command::new(&self.kustomize)
            .arg("build")
            .arg(dir)
            .output()
            .await
            .map_err(|e| format!("cannot run kustomize: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        documents(&String::from_utf8_lossy(&output.stdout))
    }

    /// `helm template` exactly as the site agent runs it (see `verbund_agent::chart`):
    /// the release, the chart from `repository` at `version`, the booking's namespace,
    /// `values` as the only values file, no tests, no hooks, the cluster's version.
    async fn helm_template(
        &self,
        release: &str,
        chart: &str,
        repository: &str,
        version: &str,
        namespace: &str,
        values: &Value,
    ) -> Result<Vec<Value>, String> {
        let home = tempfile::tempdir().map_err(|e| e.to_string())?;
        let file = home.path().join("values.json");
        std::fs::write(
            &file,
            serde_json::to_vec(values).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let output = tokio::process::Command::new(&self.helm)
            .args(["template", release, chart, "--repo", repository])
            .args(["--version", version, "--namespace", namespace, "--values"])
            .arg(&file)
            .args(["--skip-tests", "--no-hooks", "--kube-version", KUBE_VERSION])
            .env("HELM_CACHE_HOME", home.path().join("cache"))
            .env("HELM_CONFIG_HOME", home.path().join("config"))
            .env("HELM_DATA_HOME", home.path().join("data"))
            .output()
            .await
            .map_err(|e| format!("cannot run helm: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "helm template {chart} {version}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        documents(&String::from_utf8_lossy(&output.stdout))
    }
}

// ------------------------------------------------------------------ the API server

/// Why an object could not be applied: the API server (or its discovery) refused it.
#[derive(Debug)]
struct Refused(String);

/// A client with the cluster's API discovery, to apply objects of any kind.
#[derive(Clone)]
struct Kube {
    client: Client,
    discovery: Arc<Discovery>,
}

/// How [`Kube::apply`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Server-side apply with `dryRun=All`: admission and validation, nothing stored.
    DryRun,
    /// Server-side apply, stored.
    Apply,
}

impl Kube {
    async fn new(client: Client) -> Kube {
        let discovery = Discovery::new(client.clone())
            .run()
            .await
            .expect("the API server's discovery");
        Kube {
            client,
            discovery: Arc::new(discovery),
        }
    }

    /// The same, acting as `user` (impersonated by the admin).
    fn as_user(&self, cluster: &Cluster, user: &str) -> Kube {
        let mut config = cluster.kube_config().clone();
        config.auth_info.impersonate = Some(user.to_owned());
        Kube {
            client: Client::try_from(config).expect("an impersonating client"),
            discovery: self.discovery.clone(),
        }
    }

    /// The API of `object`'s kind, in its namespace (or `namespace` if it names none).
    fn api(&self, object: &Value, namespace: Option<&str>) -> Result<Api<DynamicObject>, Refused> {
        let api_version = text(object, "/apiVersion");
        let kind = text(object, "/kind");
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let Some((resource, capabilities)) = self.discovery.resolve_gvk(&gvk) else {
            return Err(Refused(format!(
                "the API server serves no `{api_version}` `{kind}`"
            )));
        };
        Ok(match capabilities.scope {
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
            Scope::Namespaced => {
                let own = text(object, "/metadata/namespace");
                let namespace = if own.is_empty() {
                    namespace.unwrap_or("default")
                } else {
                    own
                };
                Api::namespaced_with(self.client.clone(), namespace, &resource)
            }
        })
    }

    /// Server-side applies `object` with strict field validation (an unknown or
    /// duplicate field is an error, not a warning).
    async fn apply(
        &self,
        object: &Value,
        namespace: Option<&str>,
        mode: Mode,
    ) -> Result<(), Refused> {
        let api = self.api(object, namespace)?;
        let name = text(object, "/metadata/name");
        let params = PatchParams::apply(FIELD_MANAGER).validation(ValidationDirective::Strict);
        let params = match mode {
            Mode::DryRun => params.dry_run(),
            Mode::Apply => params.force(),
        };
        api.patch(name, &params, &Patch::Apply(object))
            .await
            .map(drop)
            .map_err(|e| Refused(kube_error(&e)))
    }

    /// Creates `pod` with `dryRun=All` in `namespace`: everything admission decides,
    /// nothing stored.
    async fn create_pod_dry_run(&self, pod: &Value, namespace: &str) -> Result<(), String> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            namespace,
            &ApiResource::erase::<Pod>(&()),
        );
        let object: DynamicObject =
            serde_json::from_value(pod.clone()).map_err(|e| format!("not a pod: {e}"))?;
        let params = PostParams {
            dry_run: true,
            field_manager: Some(FIELD_MANAGER.to_owned()),
        };
        api.create(&params, &object)
            .await
            .map(drop)
            .map_err(|e| kube_error(&e))
    }
}

fn kube_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

/// Applies every `(origin, object)` with up to [`IN_FLIGHT`] requests at once; the
/// failures, each naming its origin, the object and the error.
async fn apply_all(
    kube: &Kube,
    objects: Vec<(String, Value)>,
    namespace: Option<&str>,
    mode: Mode,
    tally: &mut Tally,
) {
    let results: Vec<(String, Value, Result<(), Refused>)> = stream::iter(objects)
        .map(|(origin, object)| async move {
            let result = kube.apply(&object, namespace, mode).await;
            (origin, object, result)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for (origin, object, result) in results {
        match result {
            Ok(()) => match mode {
                Mode::DryRun => tally.dry_run += 1,
                Mode::Apply if text(&object, "/kind") == "Namespace" => tally.namespaces += 1,
                Mode::Apply => tally.applied += 1,
            },
            Err(Refused(error)) => tally.fail(format!(
                "{origin}: {} {}: {error}",
                if mode == Mode::DryRun {
                    "dry-run apply of"
                } else {
                    "apply of"
                },
                describe(&object)
            )),
        }
    }
}

/// Waits (in turn) for each namespace's default ServiceAccount, without which the
/// ServiceAccount admission refuses pods.
async fn wait_for_service_accounts(client: &Client, namespaces: &BTreeSet<String>) {
    for namespace in namespaces {
        wait_for_default_service_account(client, namespace, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

// ------------------------------------------------------------------ counting

/// What a test did and what failed.
#[derive(Debug, Default)]
struct Tally {
    folders_built: usize,
    agent_charts: usize,
    namespaces: usize,
    applied: usize,
    dry_run: usize,
    charts_templated: usize,
    pods: usize,
    failures: Vec<String>,
}

impl Tally {
    fn fail(&mut self, failure: String) {
        self.failures.push(failure);
    }

    /// Prints the summary and fails the test with every failure.
    fn finish(mut self, test: &str, started: Instant) {
        eprintln!(
            "{test}: {} folders built, {} helm.yaml parsed, {} charts templated, {} namespaces \
             and {} objects applied, {} objects dry-run applied, {} pods admitted in {:.1} s",
            self.folders_built,
            self.agent_charts,
            self.charts_templated,
            self.namespaces,
            self.applied,
            self.dry_run,
            self.pods,
            started.elapsed().as_secs_f64(),
        );
        self.failures.sort();
        assert!(
            self.failures.is_empty(),
            "{test}: {} failures:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

// ------------------------------------------------------------------ a repository's tree

/// The sub-folders of `dir`, sorted; none if it does not exist.
fn subfolders(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// Every `sites/<site>/<environment>` folder under `root`.
fn environment_folders(root: &Path) -> Vec<PathBuf> {
    subfolders(&root.join("sites"))
        .iter()
        .flat_map(|site| subfolders(site))
        .collect()
}

/// Which folder of a site's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Folder {
    Environment,
    Shard,
    Booking,
    App,
}

/// The checks of a desired-state tree under `root` (a clone of the repository or a
/// render written to disk): `kustomize build` of every environment, shard, booking and
/// `app/` folder; `helm.yaml` read as [`AgentChart`]; the bookings' Namespaces applied
/// for real, and every other object of the booking and `app/` folders and of `shards.yaml`
/// and `root.yaml` dry-run applied with strict validation.
async fn check_tree(root: &Path, kube: &Kube, tools: &Tools, tally: &mut Tally) {
    let environments = environment_folders(root);
    assert!(
        !environments.is_empty(),
        "no sites/<site>/<environment> in {}",
        root.display()
    );
    let relative = |path: &Path| {
        path.strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string()
    };

    let mut folders = Vec::new();
    for environment in &environments {
        folders.push((environment.clone(), Folder::Environment));
        for shard in subfolders(&environment.join("shards")) {
            folders.push((shard, Folder::Shard));
        }
        for booking in subfolders(&environment.join("bookings")) {
            let app = booking.join("app");
            if app.is_dir() {
                folders.push((app, Folder::App));
            }
            let chart = booking.join(AgentChart::FILE);
            if chart.is_file() {
                let text = std::fs::read_to_string(&chart).expect("helm.yaml");
                match serde_yaml_ng::from_str::<AgentChart>(&text) {
                    Ok(_) => tally.agent_charts += 1,
                    Err(e) => tally.fail(format!("{}: not an AgentChart: {e}", relative(&chart))),
                }
            }
            folders.push((booking, Folder::Booking));
        }
    }

    let built: Vec<(PathBuf, Folder, Result<Vec<Value>, String>)> = stream::iter(folders)
        .map(|(dir, kind)| async move {
            let objects = tools.kustomize(&dir).await;
            (dir, kind, objects)
        })
        .buffer_unordered(TOOLS_IN_FLIGHT)
        .collect()
        .await;
    let mut namespaces = Vec::new();
    let mut objects = Vec::new();
    for (dir, kind, result) in built {
        match result {
            Err(e) => tally.fail(format!("kustomize build {}: {e}", relative(&dir))),
            Ok(built) => {
                tally.folders_built += 1;
                if matches!(kind, Folder::Booking | Folder::App) {
                    for object in built {
                        if text(&object, "/kind") == "Namespace" {
                            namespaces.push((relative(&dir), object));
                        } else {
                            objects.push((relative(&dir), object));
                        }
                    }
                }
            }
        }
    }
    for environment in &environments {
        for file in ["shards.yaml", "root.yaml"] {
            let path = environment.join(file);
            if !path.is_file() {
                continue;
            }
            match read_documents(&path) {
                Ok(documents) => {
                    objects.extend(documents.into_iter().map(|o| (relative(&path), o)))
                }
                Err(e) => tally.fail(e),
            }
        }
    }

    apply_all(kube, namespaces, None, Mode::Apply, tally).await;
    apply_all(kube, objects, None, Mode::DryRun, tally).await;
}

fn write_tree(root: &Path, files: &[RenderedFile]) {
    for file in files {
        let path = root.join(&file.path);
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("folder");
        std::fs::write(&path, &file.content).expect("written");
    }
}

// ------------------------------------------------------------------ a generated federation

/// A booking of the generated federation with its place in the catalog.
#[derive(Debug, Clone)]
struct Planned {
    booking: Booking,
    site: usize,
    entry: usize,
    version: usize,
    plan: usize,
}

/// One organisation's bookings on one site per delivery mode, rendered in process.
struct Federation<'c> {
    catalog: &'c [Entry],
    organisation: Organisation,
    sites: Vec<SiteSpec>,
    bookings: Vec<Planned>,
    /// Offerings whose reference configuration does not validate, so the example of
    /// [`example_config`] was booked instead (reported by
    /// `every_demo_offering_has_a_valid_reference_configuration`).
    config_failures: Vec<String>,
}

/// Validates a configuration as verbund does ([`validate_config`]) and as a chart's
/// `values.schema.json` does in Helm, which also asserts `format` (`email`, `uri`, …):
/// a configuration verbund accepts but Helm refuses never deploys.
fn validate_strictly(schema: &Value, config: &Value) -> Result<(), String> {
    validate_config(schema, config).map_err(|e| e.to_string())?;
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| format!("the schema is unusable: {e}"))?;
    let mut errors: Vec<String> = validator
        .iter_errors(config)
        .map(|e| format!("/config{}: {e} (`format` asserted)", e.instance_path))
        .collect();
    errors.sort();
    match errors.into_iter().next() {
        None => Ok(()),
        Some(first) => Err(first),
    }
}

/// A valid configuration of the demo offerings whose schema gives
/// [`reference_config`] nothing valid to go on (a required property with a pattern or a
/// minimum size but no default or example): booked instead, so that the checks of
/// what verbund renders still run, while
/// `every_demo_offering_has_a_valid_reference_configuration` reports the offering.
fn example_config(offering: &str) -> Option<Value> {
    Some(match offering {
        "collabora-online" => json!({"wopi_hosts": ["cloud.teststadt.example"]}),
        "nextcloud" => {
            json!({"domain": "cloud.teststadt.example", "admin_email": "it@teststadt.example"})
        }
        "openproject" => {
            json!({"domain": "projekte.teststadt.example", "admin_email": "it@teststadt.example"})
        }
        "wohnsitzanmeldung" => json!({
            "municipality": "01001000",
            "contact_email": "buergerbuero@teststadt.example",
            "melderegister": {"procedure": "ewo", "xmeld_endpoint": "https://xmeld.teststadt.example/xmeld"},
        }),
        "hundesteuer-anmeldung" => json!({
            "municipality": "01001000",
            "contact_email": "steueramt@teststadt.example",
            "tax_rates": {"first_dog": 9000, "further_dog": 12000},
        }),
        "bauantrag-online" => json!({
            "authority": "01001",
            "contact_email": "bauaufsicht@teststadt.example",
            "land_building_code": "BauO-SH",
        }),
        _ => return None,
    })
}

impl<'c> Federation<'c> {
    /// An organisation `name` (ARS `ars`) and a site `<prefix>-<mode>` per delivery mode.
    fn new(catalog: &'c [Entry], prefix: &str, name: &str, ars: &str, modes: &[Delivery]) -> Self {
        let t0 = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("a time");
        let organisation = Organisation {
            id: format!("org-{prefix}"),
            name: name.to_owned(),
            level: Level::Gemeinde,
            ars: Some(ars.to_owned()),
            ags: None,
            parent: None,
            land: Some(ars.get(..2).unwrap_or("01").to_owned()),
            population: None,
            created_at: t0,
            updated_at: t0,
        };
        let sites = modes
            .iter()
            .map(|mode| {
                let delivery = serde_json::to_value(mode).expect("a mode");
                serde_json::from_value(json!({
                    "name": format!("{prefix}-{}", delivery.as_str().unwrap_or("site")),
                    "display_name": "Test site",
                    "provider": "test-provider",
                    "location": {"country": "DE", "region": "DE-HH", "city": "Hamburg"},
                    "kubernetes_version": "1.36",
                    "capabilities": ["storage:rwo", "storage:rwx", "ingress:nginx", "backup"],
                    "capacity": {"cpu_millis": 10_000_000, "memory_mib": 100_000_000, "storage_gib": 10_000_000},
                    "environments": ["test", "prod"],
                    "delivery": delivery,
                }))
                .expect("a site")
            })
            .collect();
        Federation {
            catalog,
            organisation,
            sites,
            bookings: Vec::new(),
            config_failures: Vec::new(),
        }
    }

    fn entry(&self, offering: &str) -> usize {
        self.catalog
            .iter()
            .position(|e| e.offering.name == offering)
            .unwrap_or_else(|| panic!("no offering `{offering}` in the catalog"))
    }

    /// Books `entry`'s version and plan (by index) on `site`, with a configuration from
    /// the schema's defaults and examples, and a booking of each dependency (its
    /// declared plan, else its first; its newest version) beside it. The booking's index.
    fn book(&mut self, site: usize, entry: usize, version: usize, plan: usize) -> usize {
        let offering = &self.catalog[entry].offering;
        let mut dependencies = Vec::new();
        for dependency in offering.dependencies.clone() {
            let e = self.entry(&dependency.offering);
            let of = &self.catalog[e];
            let p = dependency
                .plan
                .as_deref()
                .and_then(|name| of.offering.plans.iter().position(|p| p.name == name))
                .unwrap_or(0);
            dependencies.push(self.book(site, e, of.versions.len() - 1, p));
        }
        let offering = &self.catalog[entry].offering;
        let mut config = reference_config(&offering.config_schema);
        if let Err(e) = validate_strictly(&offering.config_schema, &config) {
            let failure = format!("`{}` ({e})", offering.name);
            if !self.config_failures.contains(&failure) {
                self.config_failures.push(failure);
            }
            // Without an example the reference configuration is booked as it is: what
            // refuses it downstream is then reported by the checks.
            if let Some(example) = example_config(&offering.name) {
                if let Err(e) = validate_strictly(&offering.config_schema, &example) {
                    panic!("the example configuration of `{}`: {e}", offering.name);
                }
                config = example;
            }
        }
        let index = self.bookings.len();
        let id = format!("0190f0b6-0000-7000-8000-{index:012x}");
        for d in &dependencies {
            self.bookings[*d].booking.dependency_of = Some(id.clone());
        }
        let t0 = self.organisation.created_at;
        let booking = Booking {
            ending: None,
            id,
            organisation: self.organisation.id.clone(),
            offering: offering.name.clone(),
            plan: offering.plans[plan].name.clone(),
            config,
            channel: "stable".into(),
            state: BookingState::Active,
            site: Some(self.sites[site].name.clone()),
            version: Some(self.catalog[entry].versions[version].version.clone()),
            environment: Environment::Prod,
            reason: None,
            dependency_of: None,
            dependencies: dependencies
                .iter()
                .map(|d| self.bookings[*d].booking.id.clone())
                .collect(),
            compliance: None,
            created_at: t0,
            updated_at: t0,
            state_since: t0,
            undeliverable: None,
            instance: None,
            secrets_set: Vec::new(),
            windows: Vec::new(),
        };
        self.bookings.push(Planned {
            booking,
            site,
            entry,
            version,
            plan,
        });
        index
    }

    /// `n` tenancies in the first booking of the shared offering `offering` on each site:
    /// its tenant list, each tenant with a configuration of a few hundred bytes.
    fn tenants(mut self, offering: &str, n: usize) -> Self {
        for site in 0..self.sites.len() {
            let Some(instance) = self
                .bookings
                .iter()
                .position(|p| p.site == site && p.booking.offering == offering)
            else {
                continue;
            };
            for i in 0..n {
                let index = self.bookings.len();
                let of = &self.bookings[instance];
                let mut booking = of.booking.clone();
                booking.id = format!("0190f0b6-0000-7000-9000-{index:012x}");
                booking.instance = Some(of.booking.id.clone());
                booking.dependencies = vec![of.booking.id.clone()];
                booking.dependency_of = None;
                booking.config = json!({
                    "kennung": format!("gemeinde-{i:05}"),
                    "ansprechpartner": "Bürgerbüro der Gemeinde, Rathausplatz 1, 24103 Kiel – \
                                        montags bis freitags 8 bis 16 Uhr",
                });
                let planned = Planned {
                    booking,
                    site,
                    entry: of.entry,
                    version: of.version,
                    plan: of.plan,
                };
                self.bookings.push(planned);
            }
        }
        self
    }

    /// A booking of every offering × version × plan on every site.
    fn everything(mut self) -> Self {
        for site in 0..self.sites.len() {
            for (entry, e) in self.catalog.iter().enumerate() {
                for version in 0..e.versions.len() {
                    for plan in 0..e.offering.plans.len() {
                        self.book(site, entry, version, plan);
                    }
                }
            }
        }
        self
    }

    fn placed(&self, index: usize) -> PlacedBooking<'_> {
        let p = &self.bookings[index];
        let entry = &self.catalog[p.entry];
        PlacedBooking {
            booking: &p.booking,
            organisation: &self.organisation,
            offering: &entry.offering,
            version: &entry.versions[p.version],
            plan: &entry.offering.plans[p.plan],
            dependencies: p
                .booking
                .dependencies
                .iter()
                .map(|id| {
                    &self
                        .bookings
                        .iter()
                        .find(|b| &b.booking.id == id)
                        .expect("a dependency of the federation")
                        .booking
                })
                .collect(),
        }
    }

    /// The booking's namespace and its folder below the tree's root.
    fn folder(&self, index: usize) -> (String, String) {
        let placed = self.placed(index);
        let namespace = verbund_render::booking_namespace(&placed);
        let site = &self.sites[self.bookings[index].site].name;
        let folder = verbund_render::booking_folder(
            &verbund_render::site_folder(site, Environment::Prod),
            &namespace,
        );
        (namespace, folder)
    }

    /// Every site's desired state.
    fn render(&self) -> Vec<RenderedFile> {
        let options = RenderOptions::new("https://git.verbund.example/desired-state.git");
        let mut files = Vec::new();
        for (s, site) in self.sites.iter().enumerate() {
            let input = RenderInput {
                site,
                environment: Environment::Prod,
                bookings: (0..self.bookings.len())
                    .filter(|i| self.bookings[*i].site == s)
                    .map(|i| self.placed(i))
                    .collect(),
            };
            let rendered = verbund_render::render(&input, &options)
                .unwrap_or_else(|e| panic!("site `{}` renders: {e}", site.name));
            assert!(
                rendered.refused.is_empty(),
                "site `{}` refused bookings: {:?}",
                site.name,
                rendered.refused
            );
            files.extend(rendered.files);
        }
        files
    }
}

const ALL_MODES: [Delivery; 3] = [Delivery::Flux, Delivery::Argocd, Delivery::Agent];

/// The shared offering of the generated federation: Wohnsitzanmeldung (with its chart),
/// run once per site for many tenants.
const SHARED: &str = "wohnsitz-efa";
/// Tenants of each site's instance: enough that its tenant list takes two ConfigMaps.
const TENANTS: usize = 1_200;

/// Wohnsitzanmeldung as a shared offering (`SHARED`) whose tenants name themselves.
fn shared_entry(catalog: &[Entry]) -> Entry {
    let mut entry = catalog
        .iter()
        .find(|e| e.offering.name == "wohnsitzanmeldung")
        .expect("Wohnsitzanmeldung in the demo catalog")
        .clone();
    entry.offering.name = SHARED.into();
    entry.offering.tenancy = verbund_domain::shared::Tenancy::Shared;
    entry.offering.tenant_schema = Some(json!({
        "type": "object", "required": ["kennung"],
        "properties": {"kennung": {"type": "string"}, "ansprechpartner": {"type": "string"}}
    }));
    entry
}

/// Each site's instance of the shared offering lists exactly its tenants, split into
/// ConfigMaps of bounded size (the API server then takes each of them above).
fn check_tenant_lists(federation: &Federation<'_>, files: &[RenderedFile], tally: &mut Tally) {
    for (index, planned) in federation.bookings.iter().enumerate() {
        if planned.booking.offering != SHARED || planned.booking.instance.is_some() {
            continue;
        }
        let want: BTreeSet<String> = federation
            .bookings
            .iter()
            .filter(|t| t.booking.instance.as_deref() == Some(planned.booking.id.as_str()))
            .map(|t| format!("{}.json", t.booking.id))
            .collect();
        let (_, folder) = federation.folder(index);
        let list = files
            .iter()
            .find(|f| f.path == format!("{folder}/tenants.yaml"));
        let maps = list
            .map(|f| documents(&f.content).expect("YAML"))
            .unwrap_or_default();
        let listed: BTreeSet<String> = maps
            .iter()
            .flat_map(|m| m["data"].as_object().into_iter().flatten())
            .map(|(k, _)| k.clone())
            .collect();
        if listed != want {
            tally.fail(format!(
                "{folder}: its tenant list names {} of its {} tenants",
                listed.intersection(&want).count(),
                want.len()
            ));
        }
        if !want.is_empty() && maps.len() < 2 {
            tally.fail(format!(
                "{folder}: {} tenants in {} ConfigMap(s), not split",
                want.len(),
                maps.len()
            ));
        }
    }
}

// ------------------------------------------------------------------ pods

/// The pod template of a workload.
fn pod_template(workload: &Value) -> Option<&Value> {
    match text(workload, "/kind") {
        "Deployment" | "StatefulSet" | "Job" | "ReplicaSet" => workload.pointer("/spec/template"),
        "CronJob" => workload.pointer("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// A Pod with the template's labels and spec, named after its workload.
fn pod_of(workload: &Value, namespace: &str) -> Option<Value> {
    let template = pod_template(workload)?;
    let name = format!(
        "{}-{}",
        text(workload, "/kind").to_ascii_lowercase(),
        text(workload, "/metadata/name")
    );
    let name: String = name.chars().take(63).collect();
    Some(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name.trim_end_matches('-'),
            "namespace": namespace,
            "labels": template.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
        },
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    }))
}

/// What renders a booking's own chart, as its site's engine is told: the release name and
/// the values, from `helm.yaml` (agent), the HelmRelease (Flux) or the Application
/// (Argo CD).
fn chart_values(folder: &Path, delivery: Delivery) -> Result<(String, Value), String> {
    match delivery {
        Delivery::Agent => {
            let path = folder.join(AgentChart::FILE);
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let chart: AgentChart = serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())?;
            Ok((chart.metadata.name, chart.spec.values))
        }
        Delivery::Flux => {
            let objects = read_documents(&folder.join("app.yaml"))?;
            let release = objects
                .iter()
                .find(|o| text(o, "/kind") == "HelmRelease")
                .ok_or("no HelmRelease in app.yaml")?;
            let name = release
                .pointer("/spec/releaseName")
                .and_then(Value::as_str)
                .unwrap_or(text(release, "/metadata/name"));
            Ok((
                name.to_owned(),
                release
                    .pointer("/spec/values")
                    .cloned()
                    .unwrap_or(json!({})),
            ))
        }
        Delivery::Argocd => {
            let objects = read_documents(&folder.join("app.yaml"))?;
            let application = objects
                .iter()
                .find(|o| text(o, "/kind") == "Application")
                .ok_or("no Application in app.yaml")?;
            Ok((
                text(application, "/spec/source/helm/releaseName").to_owned(),
                application
                    .pointer("/spec/source/helm/valuesObject")
                    .cloned()
                    .unwrap_or(json!({})),
            ))
        }
    }
}

// ------------------------------------------------------------------ waiting for workloads

/// Waits until the Deployment has as many ready, updated replicas as it wants (at least
/// one), all of its current generation; on a timeout, says why (its conditions, its
/// ReplicaSets' failures, the namespace's warnings: a quota refusal shows there).
async fn wait_deployment_ready(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Deployment, String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let ready = wait_for_value(
        || async {
            let d = deployments.get_opt(name).await.ok()??;
            let wanted = d.spec.as_ref()?.replicas.unwrap_or(1);
            let status = d.status.as_ref()?;
            let ok = wanted >= 1
                && status.observed_generation >= d.metadata.generation
                && status.ready_replicas.unwrap_or(0) == wanted
                && status.updated_replicas.unwrap_or(0) == wanted
                && status.available_replicas.unwrap_or(0) == wanted
                && status.replicas.unwrap_or(0) == wanted;
            ok.then_some(d)
        },
        WAIT,
    )
    .await;
    match ready {
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "Deployment {namespace}/{name}: {e}\n{}",
            diagnose(client, namespace, name).await
        )),
    }
}

/// What keeps a Deployment from getting ready.
async fn diagnose(client: &Client, namespace: &str, name: &str) -> String {
    let mut out = Vec::new();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    if let Ok(d) = deployments.get(name).await {
        out.push(format!(
            "  status: {}",
            serde_json::to_string(&d.status).unwrap_or_default()
        ));
    }
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    for rs in sets
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        for c in rs.status.and_then(|s| s.conditions).unwrap_or_default() {
            out.push(format!(
                "  ReplicaSet {}: {} {}",
                rs.metadata.name.clone().unwrap_or_default(),
                c.reason.unwrap_or_default(),
                c.message.unwrap_or_default()
            ));
        }
    }
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    for e in events
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        if e.type_.as_deref() == Some("Warning") {
            out.push(format!(
                "  event {} {}: {}",
                e.involved_object.name.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default()
            ));
        }
    }
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), namespace);
    for q in quotas
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        out.push(format!(
            "  quota {}: {}",
            q.metadata.name.clone().unwrap_or_default(),
            serde_json::to_string(&q.status).unwrap_or_default()
        ));
    }
    out.join("\n")
}

/// `used / hard` of a namespace's quota, for the summary.
async fn quota_use(client: &Client, namespace: &str) -> String {
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = quotas.list(&ListParams::default()).await else {
        return "no quota".to_owned();
    };
    list.items
        .iter()
        .map(|q| {
            let status = q.status.clone().unwrap_or_default();
            let (used, hard) = (
                status.used.unwrap_or_default(),
                status.hard.unwrap_or_default(),
            );
            ["requests.cpu", "requests.memory"]
                .iter()
                .map(|k| {
                    format!(
                        "{k} {}/{}",
                        used.get(*k).map(|q| q.0.as_str()).unwrap_or("0"),
                        hard.get(*k).map(|q| q.0.as_str()).unwrap_or("-")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

// ================================================================== (a) the demo

/// `verbund demo` delivers its bookings into `DATA/desired-state.git`; a clone of it
/// builds folder by folder with kustomize, and the API server accepts every object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_federations_desired_state_builds_and_applies() {
    let started = Instant::now();
    let cluster = cluster().await;
    let repository = chart_repository(cluster);
    let dir = tempfile::tempdir().expect("temporary folder");
    let data = dir.path().join("data");
    let server = Server::start_with(
        "demo",
        &["--no-simulation", "--charts", repository.url()],
        &data,
    )
    .await;
    let admin = token(&data, "admin.token");

    // Delivered: every booking provisioning or later.
    let delivered = ["provisioning", "active", "updating", "degraded"];
    let deadline = Instant::now() + Duration::from_secs(60);
    let bookings = loop {
        let page = get(&server.base, &admin, "/bookings?limit=100").await;
        let bookings = page["items"].as_array().cloned().unwrap_or_default();
        if !bookings.is_empty()
            && bookings
                .iter()
                .all(|b| delivered.contains(&b["state"].as_str().unwrap_or("")))
        {
            break bookings;
        }
        assert!(
            Instant::now() < deadline,
            "the demo's bookings are not delivered: {}",
            Value::Array(bookings)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let work = dir.path().join("work");
    let clone = std::process::Command::new("git")
        .args(["clone", "--quiet"])
        .arg(data.join("desired-state.git"))
        .arg(&work)
        .env_remove("GIT_DIR")
        .output()
        .expect("git runs");
    assert!(
        clone.status.success(),
        "git clone: {}",
        String::from_utf8_lossy(&clone.stderr)
    );

    let kube = Kube::new(cluster.client()).await;
    let mut tally = Tally::default();
    check_tree(&work, &kube, &Tools::of(cluster), &mut tally).await;
    eprintln!(
        "demo: {} bookings delivered on {} site environments",
        bookings.len(),
        environment_folders(&work).len()
    );
    drop(server);
    tally.finish("demo federation", started);
}

// ================================================================== reference configurations

/// Every offering of the demo catalog gets a valid configuration from its schema alone
/// (`reference_config`, what `verbund rollout` books in each site's test environment and
/// what the generated federations below book), valid also where Helm asserts `format`
/// against a chart's `values.schema.json`: an offering without one cannot be rolled out
/// (the rollout refuses to start, or its reference booking never deploys).
#[test]
fn every_demo_offering_has_a_valid_reference_configuration() {
    let mut failures = Vec::new();
    for entry in catalog("https://charts.verbund.example/demo") {
        let offering = &entry.offering;
        let config = reference_config(&offering.config_schema);
        if let Err(e) = validate_strictly(&offering.config_schema, &config) {
            failures.push(format!("`{}`: {e}: {config}", offering.name));
        }
    }
    assert!(
        failures.is_empty(),
        "reference configurations that do not validate against their offering's schema \
         (crates/verbund-cli/demo/offerings.yaml) with `format` asserted: \
         `verbund_domain::booking::validate_config` leaves `format` unchecked (JSON Schema \
         2020-12's default), but Helm checks it where a chart's values.schema.json declares \
         it, as the project's charts do; such a schema needs a default or an example for \
         each required property, or `reference_config` must choose values that meet \
         `format`:\n{}",
        failures.join("\n")
    );
}

// ================================================================== (b) everything

/// Every offering × version × plan of the demo catalog on a Flux, an Argo CD and an
/// agent site, with its dependencies, rendered in process: the same checks as the demo's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_offering_plan_and_delivery_mode_builds_and_applies() {
    let started = Instant::now();
    let cluster = cluster().await;
    let repository = chart_repository(cluster);
    let mut catalog = catalog(repository.url());
    catalog.push(shared_entry(&catalog));
    let federation = Federation::new(
        &catalog,
        "gen-b",
        "Teststadt Bau",
        "010010000000",
        &ALL_MODES,
    )
    .everything()
    .tenants(SHARED, TENANTS);
    let files = federation.render();
    let mut tally = Tally::default();
    check_tenant_lists(&federation, &files, &mut tally);
    let dir = tempfile::tempdir().expect("temporary folder");
    write_tree(dir.path(), &files);

    let kube = Kube::new(cluster.client()).await;
    for failure in &federation.config_failures {
        eprintln!("generated federation: booked an example configuration instead: {failure}");
    }
    check_tree(dir.path(), &kube, &Tools::of(cluster), &mut tally).await;
    let agent_helm_bookings = federation
        .bookings
        .iter()
        .filter(|p| {
            federation.sites[p.site].delivery == Delivery::Agent
                && p.booking.instance.is_none()
                && matches!(
                    catalog[p.entry].versions[p.version].package,
                    Package::Helm { .. }
                )
        })
        .count();
    if tally.agent_charts != agent_helm_bookings {
        tally.fail(format!(
            "{} helm.yaml files for {agent_helm_bookings} Helm bookings on the agent site",
            tally.agent_charts
        ));
    }
    // Plain manifests on an autoscaling plan (Hundesteuer-Anmeldung, plan L) bring the
    // HorizontalPodAutoscaler verbund renders, which the API server took above.
    let autoscaled_manifests = federation
        .bookings
        .iter()
        .filter(|p| {
            let entry = &catalog[p.entry];
            entry.offering.plans[p.plan].autoscaling.is_some()
                && matches!(entry.versions[p.version].package, Package::Manifests { .. })
        })
        .count();
    let autoscalers = files
        .iter()
        .filter(|f| f.path.ends_with("/autoscaler.yaml"))
        .count();
    if autoscaled_manifests == 0 || autoscalers != autoscaled_manifests {
        tally.fail(format!(
            "{autoscalers} autoscaler.yaml files for {autoscaled_manifests} autoscaling plain-manifests bookings"
        ));
    }

    // The negative control: strict validation refuses a field the CRD does not know.
    let release = files
        .iter()
        .filter(|f| f.path.ends_with("/app.yaml"))
        .flat_map(|f| documents(&f.content).expect("YAML"))
        .find(|o| text(o, "/kind") == "HelmRelease")
        .expect("a Flux site renders HelmReleases");
    let mut unknown = release.clone();
    unknown["spec"]["notAField"] = json!(true);
    match kube.apply(&unknown, None, Mode::DryRun).await {
        Err(Refused(e)) if e.contains("notAField") => {}
        other => tally.fail(format!(
            "strict validation did not refuse an unknown field of {}: {other:?}",
            describe(&release)
        )),
    }
    eprintln!(
        "generated federation: {} bookings ({} offerings) on {} sites, {} files",
        federation.bookings.len(),
        catalog.len(),
        federation.sites.len(),
        files.len()
    );
    tally.finish("generated federation", started);
}

// ================================================================== (c) Pod Security

/// A pod of every workload of every booking — its smoke test, its plain manifests, and
/// the project's charts as `helm template` renders them with exactly the booking's
/// values — is admitted by Pod Security `restricted` in the booking's namespace; a
/// privileged pod is refused there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pod_passes_pod_security_restricted() {
    let started = Instant::now();
    let cluster = cluster().await;
    let repository = chart_repository(cluster);
    let catalog = catalog(repository.url());
    let federation = Federation::new(
        &catalog,
        "gen-c",
        "Teststadt Container",
        "010020000000",
        &ALL_MODES,
    )
    .everything();
    let files = federation.render();
    let dir = tempfile::tempdir().expect("temporary folder");
    write_tree(dir.path(), &files);
    let tools = Tools::of(cluster);
    let kube = Kube::new(cluster.client()).await;
    let mut tally = Tally::default();

    // The namespaces, for real (they carry `enforce: restricted`).
    let mut namespaces = BTreeSet::new();
    let mut objects = Vec::new();
    for index in 0..federation.bookings.len() {
        let (namespace, folder) = federation.folder(index);
        let namespace_file = dir.path().join(&folder).join("namespace.yaml");
        let object = read_documents(&namespace_file)
            .expect("namespace.yaml")
            .remove(0);
        assert_eq!(
            text(
                &object,
                "/metadata/labels/pod-security.kubernetes.io~1enforce"
            ),
            "restricted",
            "{folder}"
        );
        objects.push((folder, object));
        namespaces.insert(namespace);
    }
    apply_all(&kube, objects, None, Mode::Apply, &mut tally).await;
    wait_for_service_accounts(&kube.client, &namespaces).await;

    // Every workload of every booking, by namespace.
    let mut workloads: Vec<(String, String, Value)> = Vec::new();
    let mut charts = Vec::new();
    for (index, planned) in federation.bookings.iter().enumerate() {
        let (namespace, folder) = federation.folder(index);
        let path = dir.path().join(&folder);
        for file in ["smoke-test.yaml", "app/manifests.yaml"] {
            if path.join(file).is_file() {
                for object in read_documents(&path.join(file)).expect("YAML") {
                    workloads.push((format!("{folder}/{file}"), namespace.clone(), object));
                }
            }
        }
        if let Package::Helm {
            repository: from,
            chart,
            chart_version,
            ..
        } = &catalog[planned.entry].versions[planned.version].package
        {
            if from == repository.url() {
                let delivery = federation.sites[planned.site].delivery;
                match chart_values(&path, delivery) {
                    Ok((release, values)) => charts.push((
                        folder.clone(),
                        namespace.clone(),
                        release,
                        chart.clone(),
                        chart_version.clone(),
                        values,
                    )),
                    Err(e) => tally.fail(format!("{folder}: {e}")),
                }
            }
        }
    }
    let templated: Vec<_> = stream::iter(charts)
        .map(|(folder, namespace, release, chart, version, values)| {
            let tools = &tools;
            let url = repository.url();
            async move {
                let objects = tools
                    .helm_template(&release, &chart, url, &version, &namespace, &values)
                    .await;
                (folder, namespace, chart, version, objects)
            }
        })
        .buffer_unordered(TOOLS_IN_FLIGHT)
        .collect()
        .await;
    for (folder, namespace, chart, version, objects) in templated {
        match objects {
            Ok(objects) => {
                tally.charts_templated += 1;
                for object in objects {
                    workloads.push((
                        format!("{folder} ({chart} {version})"),
                        namespace.clone(),
                        object,
                    ));
                }
            }
            Err(e) => tally.fail(format!("{folder}: {e}")),
        }
    }

    let pods: Vec<(String, String, Value)> = workloads
        .iter()
        .filter_map(|(origin, namespace, workload)| {
            let pod = pod_of(workload, namespace)?;
            Some((
                format!("{origin}: {}", describe(workload)),
                namespace.clone(),
                pod,
            ))
        })
        .collect();
    assert!(!pods.is_empty());
    let admitted: Vec<(String, Result<(), String>)> = stream::iter(pods)
        .map(|(origin, namespace, pod)| {
            let kube = &kube;
            async move { (origin, kube.create_pod_dry_run(&pod, &namespace).await) }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for (origin, result) in admitted {
        match result {
            Ok(()) => tally.pods += 1,
            Err(e) => tally.fail(format!("{origin}: pod refused: {e}")),
        }
    }

    // The negative control: the same admission refuses a privileged pod there.
    let namespace = namespaces.iter().next().expect("a namespace");
    let privileged = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged", "namespace": namespace},
        "spec": {"containers": [{
            "name": "app",
            "image": "registry.example.org/verbund-demo/any:1",
            "securityContext": {"privileged": true},
        }]},
    });
    match kube.create_pod_dry_run(&privileged, namespace).await {
        Ok(()) => tally.fail(format!("a privileged pod was admitted into {namespace}")),
        Err(e) => assert!(
            e.contains("violates PodSecurity \"restricted:latest\"") && e.contains("privileged"),
            "refused, but not by Pod Security: {e}"
        ),
    }
    tally.finish("pod security", started);
}

// ================================================================== (d) charts in quota

/// Applies a booking folder for real as the site would (its Namespace first; no
/// ExternalSecret, PushSecret or Password, since no External Secrets controller runs) and
/// creates the Secrets its ExternalSecrets would make (`username`, `password`). What the
/// folder provides to pods.
async fn apply_booking_folder(
    kube: &Kube,
    tools: &Tools,
    root: &Path,
    folder: &str,
    namespace: &str,
    tally: &mut Tally,
) -> Vec<Reference> {
    let objects = tools
        .kustomize(&root.join(folder))
        .await
        .unwrap_or_else(|e| panic!("kustomize build {folder}: {e}"));
    tally.folders_built += 1;
    let (namespaces, rest): (Vec<Value>, Vec<Value>) = objects
        .into_iter()
        .partition(|o| text(o, "/kind") == "Namespace");
    apply_all(
        kube,
        namespaces
            .into_iter()
            .map(|o| (folder.to_owned(), o))
            .collect(),
        None,
        Mode::Apply,
        tally,
    )
    .await;
    wait_for_default_service_account(&kube.client, namespace, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut provided = Vec::new();
    let mut applied = Vec::new();
    for object in rest {
        match text(&object, "/kind") {
            "ExternalSecret" => {
                let secret = text(&object, "/spec/target/name").to_owned();
                provided.push(Reference::Secret(secret.clone()));
                let value = json!({
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": secret, "namespace": namespace},
                    "stringData": {"username": "test", "password": "test-only-not-a-secret"},
                });
                applied.push((format!("{folder} (as its ExternalSecret would)"), value));
            }
            "PushSecret" | "Password" => {}
            kind => {
                if kind == "ConfigMap" {
                    provided.push(Reference::ConfigMap(
                        text(&object, "/metadata/name").to_owned(),
                    ));
                }
                applied.push((folder.to_owned(), object));
            }
        }
    }
    apply_all(kube, applied, None, Mode::Apply, tally).await;
    provided
}

/// Applies vendor content as the booking's deployer and checks it: every object a
/// tenant may own, every ConfigMap and Secret its pods read provided.
async fn apply_as_deployer(
    deployer: &Kube,
    origin: &str,
    namespace: &str,
    objects: &[Value],
    provided: &[Reference],
    tally: &mut Tally,
) {
    for object in objects {
        if let Err(refusal) = check_tenant_object(object) {
            tally.fail(format!("{origin}: {}: {refusal}", describe(object)));
        }
    }
    let unmet = unmet_references(objects, provided);
    if !unmet.is_empty() {
        tally.fail(format!(
            "{origin}: pods would not start without {}",
            unmet
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    apply_all(
        deployer,
        objects
            .iter()
            .map(|o| (origin.to_owned(), o.clone()))
            .collect(),
        Some(namespace),
        Mode::Apply,
        tally,
    )
    .await;
}

/// The names of the Deployments among `objects`.
fn deployments(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .filter(|o| text(o, "/kind") == "Deployment")
        .map(|o| text(o, "/metadata/name").to_owned())
        .collect()
}

/// `helm template` of a booking's `helm.yaml` on an agent site.
async fn template_agent_chart(tools: &Tools, root: &Path, folder: &str) -> Vec<Value> {
    let text =
        std::fs::read_to_string(root.join(folder).join(AgentChart::FILE)).expect("helm.yaml");
    let chart: AgentChart = serde_yaml_ng::from_str(&text).expect("an AgentChart");
    tools
        .helm_template(
            &chart.metadata.name,
            &chart.spec.chart,
            &chart.spec.repository,
            &chart.spec.version,
            &chart.metadata.namespace,
            &chart.spec.values,
        )
        .await
        .unwrap_or_else(|e| panic!("{folder}: {e}"))
}

/// Each of the project's chart versions, and the plain-manifests offering, applied for
/// real on an agent site as the booking's deployer: Ready on the kwok nodes with every
/// pod admitted by the booking's quota; then a chart booking at its plan's full size
/// (no autoscaling) rolls to a newer version with the surge pod inside the quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_run_in_their_booking_namespace_within_its_quota() {
    let started = Instant::now();
    let cluster = cluster().await;
    let repository = chart_repository(cluster);
    let catalog = catalog(repository.url());
    let tools = Tools::of(cluster);
    let kube = Kube::new(cluster.client()).await;
    let mut tally = Tally::default();
    let mut federation = Federation::new(
        &catalog,
        "gen-d",
        "Teststadt Deployment",
        "010030000000",
        &[Delivery::Agent],
    );

    // The project's charts at every version (the offering's first plan), the plain
    // manifests (newest version, first plan), and the rollout's booking.
    let mut chart_bookings = Vec::new();
    for (entry, e) in catalog.iter().enumerate() {
        for (version, v) in e.versions.iter().enumerate() {
            if matches!(&v.package, Package::Helm { repository: r, .. } if r == repository.url()) {
                chart_bookings.push(federation.book(0, entry, version, 0));
            }
        }
    }
    let hundesteuer_entry = federation.entry("hundesteuer-anmeldung");
    let hundesteuer = federation.book(
        0,
        hundesteuer_entry,
        catalog[hundesteuer_entry].versions.len() - 1,
        0,
    );
    let wohnsitz = federation.entry("wohnsitzanmeldung");
    let version_index = |v: &str| {
        catalog[wohnsitz]
            .versions
            .iter()
            .position(|x| x.version == v)
            .unwrap_or_else(|| panic!("wohnsitzanmeldung {v}"))
    };
    let plan_s = catalog[wohnsitz]
        .offering
        .plans
        .iter()
        .position(|p| p.name == "s")
        .expect("plan s");
    {
        let plan = &catalog[wohnsitz].offering.plans[plan_s];
        assert!(plan.autoscaling.is_none() && plan.replicas == 2, "{plan:?}");
    }
    let rolled = federation.book(0, wohnsitz, version_index("1.1.0"), plan_s);

    let dir = tempfile::tempdir().expect("temporary folder");
    write_tree(dir.path(), &federation.render());

    // What the agent's install manifests give a site: the deployer's ClusterRole.
    let role = verbund_domain::tenancy::deployer_cluster_role();
    apply_all(
        &kube,
        vec![("deployer role".to_owned(), role)],
        None,
        Mode::Apply,
        &mut tally,
    )
    .await;

    let deployer_of = |namespace: &str| {
        kube.as_user(
            cluster,
            &format!("system:serviceaccount:{namespace}:verbund-deployer"),
        )
    };
    let mut ready = Vec::new();

    // Every chart version.
    for &index in chart_bookings.iter().chain([&rolled]) {
        let (namespace, folder) = federation.folder(index);
        let provided =
            apply_booking_folder(&kube, &tools, dir.path(), &folder, &namespace, &mut tally).await;
        let objects = template_agent_chart(&tools, dir.path(), &folder).await;
        tally.charts_templated += 1;
        apply_as_deployer(
            &deployer_of(&namespace),
            &folder,
            &namespace,
            &objects,
            &provided,
            &mut tally,
        )
        .await;
        for name in deployments(&objects) {
            match wait_deployment_ready(&kube.client, &namespace, &name).await {
                Ok(_) => ready.push(format!(
                    "{} {}: {name} ready, quota {}",
                    federation.bookings[index].booking.offering,
                    federation.bookings[index]
                        .booking
                        .version
                        .clone()
                        .unwrap_or_default(),
                    quota_use(&kube.client, &namespace).await
                )),
                Err(e) => tally.fail(e),
            }
        }
    }

    // The plain manifests with their ConfigMap of the configuration.
    {
        let (namespace, folder) = federation.folder(hundesteuer);
        let provided =
            apply_booking_folder(&kube, &tools, dir.path(), &folder, &namespace, &mut tally).await;
        let app = format!("{folder}/app");
        let objects = tools
            .kustomize(&dir.path().join(&app))
            .await
            .unwrap_or_else(|e| panic!("kustomize build {app}: {e}"));
        tally.folders_built += 1;
        apply_as_deployer(
            &deployer_of(&namespace),
            &app,
            &namespace,
            &objects,
            &provided,
            &mut tally,
        )
        .await;
        let config_maps: Api<ConfigMap> = Api::namespaced(kube.client.clone(), &namespace);
        let config = config_maps
            .get("hundesteuer-config")
            .await
            .unwrap_or_else(|e| panic!("ConfigMap {namespace}/hundesteuer-config: {e}"));
        let expected =
            verbund_render::config::environment(&federation.bookings[hundesteuer].booking.config);
        assert!(!expected.is_empty());
        assert_eq!(
            config.data.unwrap_or_default(),
            expected,
            "the ConfigMap holds the booking's configuration"
        );
        for name in deployments(&objects) {
            match wait_deployment_ready(&kube.client, &namespace, &name).await {
                Ok(_) => ready.push(format!(
                    "hundesteuer-anmeldung: {name} ready, quota {}",
                    quota_use(&kube.client, &namespace).await
                )),
                Err(e) => tally.fail(e),
            }
        }
    }

    // The rollout: 1.1.0 → 1.1.1 at plan s (2 replicas, no autoscaling).
    let (namespace, folder) = federation.folder(rolled);
    let deployments_api: Api<Deployment> = Api::namespaced(kube.client.clone(), &namespace);
    let before = deployments_api
        .get("wohnsitzanmeldung")
        .await
        .expect("the 1.1.0 deployment");
    let old_revision = revision(&before.metadata.annotations);
    federation.bookings[rolled].version = version_index("1.1.1");
    federation.bookings[rolled].booking.version = Some("1.1.1".into());
    let rolling = Instant::now();
    let dir2 = tempfile::tempdir().expect("temporary folder");
    write_tree(dir2.path(), &federation.render());
    let provided =
        apply_booking_folder(&kube, &tools, dir2.path(), &folder, &namespace, &mut tally).await;
    let objects = template_agent_chart(&tools, dir2.path(), &folder).await;
    tally.charts_templated += 1;
    apply_as_deployer(
        &deployer_of(&namespace),
        &folder,
        &namespace,
        &objects,
        &provided,
        &mut tally,
    )
    .await;
    match rollout_complete(&kube.client, &namespace, "wohnsitzanmeldung", &old_revision).await {
        Ok(summary) => ready.push(format!(
            "rollout wohnsitzanmeldung 1.1.0 → 1.1.1 at plan s in {:.1} s: {summary}, quota {}, \
             {} pod creations refused by the quota on the way (retried)",
            rolling.elapsed().as_secs_f64(),
            quota_use(&kube.client, &namespace).await,
            quota_refusals(&kube.client, &namespace).await
        )),
        Err(e) => tally.fail(e),
    }

    for line in &ready {
        eprintln!("  {line}");
    }
    tally.finish("charts within quota", started);
}

/// How many times the namespace's quota refused a pod (summed over the events' counts).
async fn quota_refusals(client: &Client, namespace: &str) -> i32 {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    events
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .iter()
        .filter(|e| {
            e.reason.as_deref() == Some("FailedCreate")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("exceeded quota"))
        })
        .map(|e| e.count.unwrap_or(1))
        .sum()
}

fn revision(annotations: &Option<BTreeMap<String, String>>) -> String {
    annotations
        .as_ref()
        .and_then(|a| a.get("deployment.kubernetes.io/revision"))
        .cloned()
        .unwrap_or_default()
}

/// Waits until the Deployment has rolled out a new revision: all its replicas ready from
/// the new ReplicaSet (image `…:1.1.1`), every older ReplicaSet scaled to zero and no
/// pod of it left.
async fn rollout_complete(
    client: &Client,
    namespace: &str,
    name: &str,
    old_revision: &str,
) -> Result<String, String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let done = wait_for_value(
        || async {
            let d = deployments.get(name).await.ok()?;
            let current = revision(&d.metadata.annotations);
            if current == old_revision || current.is_empty() {
                return None;
            }
            let wanted = d.spec.as_ref()?.replicas?;
            let status = d.status.as_ref()?;
            let settled = status.observed_generation >= d.metadata.generation
                && status.updated_replicas == Some(wanted)
                && status.ready_replicas == Some(wanted)
                && status.available_replicas == Some(wanted)
                && status.replicas == Some(wanted);
            if !settled {
                return None;
            }
            let owned: Vec<ReplicaSet> = sets
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .filter(|rs| {
                    rs.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.kind == "Deployment" && o.name == name)
                })
                .collect();
            let (new, old): (Vec<ReplicaSet>, Vec<ReplicaSet>) = owned
                .into_iter()
                .partition(|rs| revision(&rs.metadata.annotations) == current);
            let new = new.first()?;
            let hash = new
                .metadata
                .labels
                .as_ref()?
                .get("pod-template-hash")?
                .clone();
            let image = new
                .spec
                .as_ref()?
                .template
                .as_ref()?
                .spec
                .as_ref()?
                .containers
                .first()?
                .image
                .clone()?;
            let old_gone = !old.is_empty()
                && old.iter().all(|rs| {
                    rs.spec.as_ref().and_then(|s| s.replicas) == Some(0)
                        && rs.status.as_ref().map(|s| s.replicas) == Some(0)
                });
            // The Deployment's own selector: the smoke-test Jobs' pods carry the
            // booking's `app.kubernetes.io/name` too.
            let selector = d
                .spec
                .as_ref()?
                .selector
                .match_labels
                .as_ref()?
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let running = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .ok()?
                .items;
            let all_new = running.len() == usize::try_from(wanted).ok()?
                && running.iter().all(|p| {
                    p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("pod-template-hash"))
                        == Some(&hash)
                });
            (old_gone && all_new && image.ends_with(":1.1.1")).then(|| {
                format!(
                    "revision {old_revision} → {current}, {wanted} pods of {image}, {} old ReplicaSet(s) at 0",
                    old.len()
                )
            })
        },
        WAIT,
    )
    .await;
    match done {
        Ok(summary) => Ok(summary),
        Err(e) => Err(format!(
            "rollout of {namespace}/{name}: {e}\n{}",
            diagnose(client, namespace, name).await
        )),
    }
}
