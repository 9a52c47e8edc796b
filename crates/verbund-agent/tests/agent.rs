//! The agent's Kubernetes side without a cluster: a scripted API server
//! (`tower_test::mock`) answers with recorded responses (`tests/fixtures/`), and the
//! tests check what the agent concludes (the report) and what it asks the API server
//! to change (server-side apply, prune) — every request, in order.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use verbund_agent::apply::{self, Applier, Scope};
use verbund_agent::chart::Charts;
use verbund_agent::desired::Repository;
use verbund_agent::install::{install_manifests, to_yaml};
use verbund_agent::observe::{observe, Snapshot, Stores};
use verbund_agent::report::batches;
use verbund_domain::booking::{BookingEvent, BookingState};
use verbund_domain::report::{
    assess, BookingObservation, Condition, FreeCapacity, SiteHealth, SiteObservation, SmokeResult,
};

// ------------------------------------------------------------------ mock API server

/// One request the agent made.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    content_type: Option<String>,
    /// The `Impersonate-User` header, if the request was made as someone else.
    impersonate: Option<String>,
    body: Option<Value>,
}

impl Seen {
    fn is_watch(&self) -> bool {
        self.query.get("watch").map(String::as_str) == Some("true")
    }
}

fn query(q: Option<&str>) -> BTreeMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| {
                let s = s.replace('+', " ");
                let bytes = s.as_bytes();
                let mut out = Vec::new();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'%' && i + 2 < bytes.len() {
                        let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                        out.push(u8::from_str_radix(hex, 16).unwrap());
                        i += 3;
                    } else {
                        out.push(bytes[i]);
                        i += 1;
                    }
                }
                String::from_utf8(out).unwrap()
            };
            (decode(k), decode(v))
        })
        .collect()
}

/// A client whose API server answers with `answer` (status, JSON); `None` leaves the
/// request open (a watch that sees no change). Every request is recorded.
fn mock_client(
    answer: impl Fn(&Seen) -> Option<(u16, Value)> + Send + 'static,
) -> (Client, Arc<Mutex<Vec<Seen>>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let request = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: query(parts.uri.query()),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap().to_string()),
                impersonate: parts
                    .headers
                    .get("Impersonate-User")
                    .map(|v| v.to_str().unwrap().to_string()),
                body: (!bytes.is_empty()).then(|| serde_json::from_slice(&bytes).unwrap()),
            };
            log.lock().unwrap().push(request.clone());
            match answer(&request) {
                Some((status, value)) => send.send_response(
                    Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Body::from(serde_json::to_vec(&value).unwrap()))
                        .unwrap(),
                ),
                None => open.push(send),
            }
        }
    });
    (Client::new(service, "default"), seen)
}

fn fixture(path: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(&file).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn not_found(path: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": format!("the server could not find the requested resource ({path})"),
           "reason": "NotFound", "code": 404})
}

// ------------------------------------------------------------------ observation

/// The recorded responses of a site with four bookings (see `fixtures/observe`).
fn observed_cluster(seen: &Seen) -> Option<(u16, Value)> {
    if seen.is_watch() {
        return None;
    }
    let file = match seen.path.as_str() {
        "/version" => "version.json",
        "/api/v1/namespaces" => "namespaces.json",
        "/apis/apps/v1/deployments" => "deployments.json",
        "/apis/apps/v1/statefulsets" => "statefulsets.json",
        "/apis/batch/v1/jobs" => "jobs.json",
        "/apis/helm.toolkit.fluxcd.io/v2/helmreleases" => "helmreleases.json",
        "/apis/argoproj.io/v1alpha1/applications" => "applications.json",
        "/api/v1/nodes" => "nodes.json",
        "/api/v1/pods" => "pods.json",
        other => return Some((404, not_found(other))),
    };
    Some((200, fixture(&format!("observe/{file}"))))
}

fn condition(kind: &str, status: &str, reason: &str, message: Option<&str>) -> Condition {
    Condition {
        kind: kind.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: message.map(String::from),
    }
}

fn expected_bookings() -> Vec<BookingObservation> {
    vec![
        // Flux: the HelmRelease is Ready at its generation; two Deployments of the chart.
        BookingObservation {
            export: None,
            booking: "b-1".into(),
            applied_version: Some("28.0.1".into()),
            desired_replicas: 3,
            ready_replicas: 3,
            conditions: vec![
                condition("Ready", "True", "UpgradeSucceeded", Some("Helm upgrade succeeded for release nextcloud-musterstadt-4f1c2a9b7e/nextcloud.v3 with chart nextcloud@6.2.0")),
                condition("Available", "True", "MinimumReplicasAvailable", Some("deployment nextcloud: Deployment has minimum availability.")),
                condition("Available", "True", "MinimumReplicasAvailable", Some("deployment nextcloud-cron: Deployment has minimum availability.")),
            ],
            smoke_test: SmokeResult::Passed,
        },
        // Plain manifests: 1 of 3 ready, and the smoke test of 1.4.0 failed (the passed
        // one of 1.3.0 does not count).
        BookingObservation {
            export: None,
            booking: "b-2".into(),
            applied_version: Some("1.4.0".into()),
            desired_replicas: 3,
            ready_replicas: 1,
            conditions: vec![condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                Some("deployment formulare: Deployment does not have minimum availability."),
            )],
            smoke_test: SmokeResult::Failed,
        },
        // Flux upgrade under way (observedGeneration behind): no version yet; no smoke Job.
        BookingObservation {
            export: None,
            booking: "b-3".into(),
            applied_version: None,
            desired_replicas: 1,
            ready_replicas: 1,
            conditions: vec![condition(
                "Ready",
                "Unknown",
                "Progressing",
                Some("Running 'upgrade' action with timeout of 5m0s"),
            )],
            smoke_test: SmokeResult::None,
        },
        // Argo CD: Healthy and Synced; the label's `_` is the version's `+`.
        BookingObservation {
            export: None,
            booking: "b-4".into(),
            applied_version: Some("2.1.0+build.5".into()),
            desired_replicas: 1,
            ready_replicas: 1,
            conditions: vec![
                condition("Healthy", "True", "Healthy", None),
                condition("Synced", "True", "Synced", None),
                condition("Available", "True", "MinimumReplicasAvailable", Some("deployment dms: Deployment has minimum availability.")),
            ],
            smoke_test: SmokeResult::None,
        },
    ]
}

fn expected_site() -> SiteObservation {
    SiteObservation {
        kubernetes_version: "v1.33.2".into(),
        // Ready nodes: 3.8 + 4 cores, 15950656Ki + 16Gi, 95551679124 + 100Gi bytes; minus
        // the pods on them: 0.5 core + 512Mi, and max(1, init 2) cores + 1Gi + 1Gi storage.
        // The pod on the NotReady node and the unscheduled one do not count.
        free: FreeCapacity {
            cpu_millis: 5300,
            memory_mib: 30424,
            storage_gib: 187,
        },
        health: SiteHealth::Degraded,
        message: Some("1 of 3 nodes not ready: node-3".into()),
    }
}

#[tokio::test]
async fn the_report_is_read_from_the_recorded_cluster() {
    let (client, seen) = mock_client(observed_cluster);
    let stores = Stores::start(client);
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stores.wait_until_ready(),
    )
    .await
    .expect("the stores fill from the recorded lists")
    .unwrap();
    // HelmReleases and Applications are not awaited by the stores; give them a moment.
    let mut snapshot = stores.snapshot().await.unwrap();
    for _ in 0..100 {
        if !snapshot.helm_releases.is_empty() && !snapshot.applications.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        snapshot = stores.snapshot().await.unwrap();
    }
    let (site, bookings) = observe(&snapshot);
    assert_eq!(site, expected_site());
    assert_eq!(bookings, expected_bookings());

    // Every batch is one the control plane accepts.
    let mut last = 0;
    let reports = batches(&mut last, 1_764_057_600_000, 30, &site, bookings);
    assert_eq!(reports.len(), 1);
    reports[0].validate().unwrap();

    // The watches asked for what the module says, and only read.
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().all(|s| s.method == "GET"), "{seen:#?}");
    let selector = |path: &str, key: &str| {
        seen.iter()
            .filter(|s| s.path == path)
            .map(|s| s.query.get(key).cloned().unwrap_or_default())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        selector("/api/v1/namespaces", "labelSelector"),
        ["verbund.dev/booking".to_string()].into()
    );
    assert_eq!(
        selector("/apis/batch/v1/jobs", "labelSelector"),
        [
            "verbund.dev/export=true".to_string(),
            "verbund.dev/smoke-test=true".to_string()
        ]
        .into()
    );
    // Running pods for capacity; export pods in every phase, for their termination
    // message (a watch without a field selector asks with an empty one).
    assert_eq!(
        selector("/api/v1/pods", "fieldSelector"),
        [
            String::new(),
            "status.phase!=Succeeded,status.phase!=Failed".to_string()
        ]
        .into()
    );
    assert_eq!(
        selector("/api/v1/pods", "labelSelector"),
        [String::new(), "verbund.dev/export=true".to_string()].into()
    );
}

/// The recorded lists, read straight into a snapshot (no watches), for variations.
fn recorded_snapshot() -> Snapshot {
    fn items<K: serde::de::DeserializeOwned>(file: &str) -> Vec<Arc<K>> {
        let list = fixture(&format!("observe/{file}"));
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let mut i = i.clone();
                i["apiVersion"] = list["apiVersion"].clone();
                Arc::new(serde_json::from_value(i).unwrap())
            })
            .collect()
    }
    Snapshot {
        kubernetes_version: "v1.33.2".into(),
        namespaces: items("namespaces.json"),
        deployments: items("deployments.json"),
        stateful_sets: items("statefulsets.json"),
        jobs: items("jobs.json"),
        helm_releases: items("helmreleases.json"),
        applications: items("applications.json"),
        nodes: items("nodes.json"),
        pods: items("pods.json"),
        export_jobs: Vec::new(),
        export_pods: Vec::new(),
    }
}

#[test]
fn a_degraded_booking_is_judged_degraded_and_a_healthy_one_ready() {
    let (_, bookings) = observe(&recorded_snapshot());
    assert_eq!(bookings, expected_bookings());
    let by = |id: &str| bookings.iter().find(|b| b.booking == id).unwrap();
    // Fewer ready replicas and a failed smoke test: an active booking degrades, one
    // being provisioned fails.
    assert_eq!(
        assess(BookingState::Active, "1.4.0", by("b-2")),
        Some(BookingEvent::Degrade)
    );
    assert_eq!(
        assess(BookingState::Provisioning, "1.4.0", by("b-2")),
        Some(BookingEvent::Degrade)
    );
    // Ready at its version with a passed smoke test.
    assert_eq!(
        assess(BookingState::Provisioning, "28.0.1", by("b-1")),
        Some(BookingEvent::BecomeReady)
    );
    assert_eq!(assess(BookingState::Active, "28.0.1", by("b-1")), None);
    // An upgrade under way is work in progress.
    assert_eq!(assess(BookingState::Updating, "16.4.2", by("b-3")), None);
}

#[test]
fn smoke_tests_follow_the_applied_version() {
    // The new version's Job is not there yet: pending, not the old version's result.
    let mut s = recorded_snapshot();
    s.jobs
        .retain(|j| j.metadata.name.as_deref() != Some("smoke-test-1-4-0"));
    let (_, bookings) = observe(&s);
    assert_eq!(bookings[1].smoke_test, SmokeResult::Pending);
    // Still running.
    let mut s = recorded_snapshot();
    for j in &mut s.jobs {
        if j.metadata.name.as_deref() == Some("smoke-test-1-4-0") {
            let mut job = (**j).clone();
            job.status = Some(Default::default());
            *j = Arc::new(job);
        }
    }
    assert_eq!(observe(&s).1[1].smoke_test, SmokeResult::Pending);
    // Deployments that disagree on the version (a half-applied change): no version.
    let mut s = recorded_snapshot();
    let mut other = (*s.deployments[2]).clone();
    other.metadata.name = Some("formulare-worker".into());
    other
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("verbund.dev/version".into(), "1.3.0".into());
    s.deployments.push(Arc::new(other));
    assert_eq!(observe(&s).1[1].applied_version, None);
}

#[test]
fn a_helm_values_change_keeps_the_version_an_upgrade_does_not() {
    // b-3 is being upgraded from chart 16.4.1: no version until the attempt finished.
    let s = recorded_snapshot();
    assert_eq!(observe(&s).1[2].applied_version, None);
    // The same chart as last deployed (a values change): the label holds.
    let mut s = recorded_snapshot();
    let mut release = (*s.helm_releases[1]).clone();
    release.data["status"]["history"][0]["chartVersion"] = json!("16.4.2");
    s.helm_releases[1] = Arc::new(release);
    assert_eq!(observe(&s).1[2].applied_version.as_deref(), Some("16.4.2"));
}

#[test]
fn a_site_without_ready_nodes_is_unhealthy() {
    let mut s = recorded_snapshot();
    s.nodes
        .retain(|n| n.metadata.name.as_deref() == Some("node-3"));
    let (site, _) = observe(&s);
    assert_eq!(site.health, SiteHealth::Unhealthy);
    assert_eq!(site.free, FreeCapacity::default());
    let mut s = recorded_snapshot();
    s.nodes
        .retain(|n| n.metadata.name.as_deref() != Some("node-3"));
    assert_eq!(observe(&s).0.health, SiteHealth::Healthy);
    assert_eq!(observe(&s).0.message, None);
}

// ------------------------------------------------------------------ report loop

#[tokio::test]
async fn the_report_loop_sends_increasing_batches_and_survives_a_failed_send() {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::Json;

    type Received = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;
    async fn receive(
        State(received): State<Received>,
        UrlPath(site): UrlPath<String>,
        headers: HeaderMap,
        Json(report): Json<Value>,
    ) -> (StatusCode, Json<Value>) {
        let auth = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string());
        let mut r = received.lock().unwrap();
        r.push((site, auth, report.clone()));
        if r.len() == 1 {
            // The control plane is down once: the loop must go on.
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"detail": "starting"})),
            );
        }
        let bookings = report["bookings"].as_array().unwrap().len();
        (
            StatusCode::OK,
            Json(
                json!({"accepted": true, "sequence": report["sequence"], "bookings": bookings, "transitions": 0}),
            ),
        )
    }
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route("/api/v1/sites/{site}/reports", axum::routing::post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (client, _) = mock_client(observed_cluster);
    let sender = verbund_agent::ReportSender::new(
        &format!("http://{address}"),
        "dataport-hh-1",
        "site-token",
    )
    .with_attempts(1);
    let run = tokio::spawn(verbund_agent::report::run(
        Stores::start(client),
        sender,
        std::time::Duration::from_millis(50),
    ));
    for _ in 0..200 {
        if received.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(!run.is_finished(), "the loop stopped");
    run.abort();
    let received = received.lock().unwrap().clone();
    assert!(received.len() >= 3, "only {} reports", received.len());
    let mut last = 0;
    for (site, auth, report) in &received {
        assert_eq!(site, "dataport-hh-1");
        assert_eq!(auth.as_deref(), Some("Bearer site-token"));
        let report: verbund_domain::report::SiteReport =
            serde_json::from_value(report.clone()).unwrap();
        report.validate().unwrap();
        assert!(report.sequence > last, "sequences must increase");
        last = report.sequence;
        assert!(!report.agent.simulated);
        assert!(report.agent.name.starts_with("verbund-agent/"));
        assert_eq!(report.site.health, SiteHealth::Degraded);
        assert_eq!(report.bookings.len(), 4);
    }
}

// ------------------------------------------------------------------ apply

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=verbund",
            "-c",
            "user.email=verbund@example.org",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

const FORMS: &str = "formulare-stadt-muesterstadt-an-der-oede-5472716d93";
const POSTGRES: &str = "postgresql-stadt-muesterstadt-an-der-oede-d95a1513a5";
const GONE: &str = "nextcloud-stadt-muesterstadt-an-der-oede-0c1d2e3f4a";

/// A desired-state repository with the renderer's agent-mode site (`fixtures/apply`,
/// the render snapshot's files), as a remote the agent fetches from.
fn remote() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("desired-state");
    std::fs::create_dir_all(&work).unwrap();
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/apply"),
        &work,
    );
    git(&work, &["init", "--quiet", "--initial-branch=main"]);
    git(&work, &["add", "."]);
    git(
        &work,
        &["commit", "--quiet", "-m", "desired state of dataport-hh-1"],
    );
    (dir, work)
}

fn item(
    kind: &str,
    api_version: &str,
    namespace: Option<&str>,
    name: &str,
    labels: Value,
    owned: bool,
) -> Value {
    let mut metadata = json!({"name": name, "labels": labels, "uid": format!("uid-{name}"), "resourceVersion": "7001",
                              "creationTimestamp": "2026-11-20T08:00:00Z"});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    if owned {
        metadata["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "postgresql",
                                              "uid": "uid-sts", "controller": true, "blockOwnerDeletion": true}]);
    }
    json!({"apiVersion": api_version, "kind": kind, "metadata": metadata})
}

/// What verbund manages in the cluster before the apply: the desired objects' older
/// selves and some that are no longer desired.
fn managed(path: &str) -> Vec<Value> {
    let verbund = json!({"app.kubernetes.io/managed-by": "verbund"});
    let booking =
        |id: &str| json!({"app.kubernetes.io/managed-by": "verbund", "verbund.dev/booking": id});
    match path {
        "/api/v1/namespaces" => vec![
            item(
                "Namespace",
                "v1",
                None,
                FORMS,
                booking("0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e21"),
                false,
            ),
            item(
                "Namespace",
                "v1",
                None,
                POSTGRES,
                booking("0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e12"),
                false,
            ),
            // A cancelled booking's namespace: pruned.
            item(
                "Namespace",
                "v1",
                None,
                GONE,
                booking("0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e11"),
                false,
            ),
            // Managed, but no booking's: kept.
            item(
                "Namespace",
                "v1",
                None,
                "verbund-shared",
                verbund.clone(),
                false,
            ),
        ],
        "/apis/apps/v1/deployments" => vec![
            item(
                "Deployment",
                "apps/v1",
                Some(FORMS),
                "formulare",
                verbund.clone(),
                false,
            ),
            // No longer in the booking's manifests: pruned.
            item(
                "Deployment",
                "apps/v1",
                Some(FORMS),
                "formulare-legacy",
                verbund.clone(),
                false,
            ),
            // Made by a controller from one of ours: the controller's.
            item(
                "Deployment",
                "apps/v1",
                Some(POSTGRES),
                "postgresql-metrics",
                verbund.clone(),
                true,
            ),
            // Inside the cancelled booking's namespace: goes with it.
            item(
                "Deployment",
                "apps/v1",
                Some(GONE),
                "nextcloud",
                verbund.clone(),
                false,
            ),
        ],
        "/apis/batch/v1/jobs" => vec![
            item(
                "Job",
                "batch/v1",
                Some(FORMS),
                "smoke-test-1-4-0",
                verbund.clone(),
                false,
            ),
            // The previous version's smoke test: pruned.
            item(
                "Job",
                "batch/v1",
                Some(FORMS),
                "smoke-test-1-3-0",
                verbund.clone(),
                false,
            ),
        ],
        // Outside every desired namespace: never touched.
        "/api/v1/configmaps" => vec![item(
            "ConfigMap",
            "v1",
            Some("kube-system"),
            "verbund-notes",
            verbund,
            false,
        )],
        _ => vec![],
    }
}

fn apply_server(seen: &Seen) -> Option<(u16, Value)> {
    match seen.method.as_str() {
        "PATCH" => Some((200, seen.body.clone().unwrap())),
        "DELETE" => Some((
            200,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        )),
        "GET" => Some((
            200,
            json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "7002"}, "items": managed(&seen.path)}),
        )),
        _ => Some((405, not_found(&seen.path))),
    }
}

#[tokio::test]
async fn apply_patches_every_desired_object_in_order_and_prunes_the_rest() {
    let (_dir, remote) = remote();
    let cache = tempfile::tempdir().unwrap();
    let repository = Repository::new(remote.to_str().unwrap(), "main", cache.path());
    let commit = repository.fetch().await.unwrap();
    assert_eq!(commit.len(), 40);
    let desired = repository
        .desired(&commit, "sites/dataport-hh-1/prod")
        .await
        .unwrap();
    let own = desired.objects.clone();
    assert_eq!(own.len(), 27, "verbund's own objects of both bookings");
    // Vendor content: the forms booking's manifests, the database's chart.
    assert_eq!(desired.tenants.len(), 2);
    let forms = desired
        .tenants
        .iter()
        .find(|t| t.namespace == FORMS)
        .unwrap();
    assert_eq!(forms.manifests.len(), 3);
    assert!(forms.chart.is_none());
    let db = desired
        .tenants
        .iter()
        .find(|t| t.namespace == POSTGRES)
        .unwrap();
    assert_eq!(db.chart.as_ref().unwrap().spec.chart, "postgresql");

    let (client, seen) = mock_client(apply_server);
    // No helm here: the database's chart cannot be rendered, which is that booking's
    // problem alone.
    let charts = Charts::new("/nonexistent/helm", None);
    let outcome = Applier::new(client, charts)
        .apply(desired.clone(), &Scope::All)
        .await
        .unwrap();
    assert_eq!(outcome.problems.len(), 1, "{:?}", outcome.problems);
    assert!(
        outcome.problems[0].contains("chart postgresql 15.5.38")
            || outcome.problems[0].contains("chart postgresql"),
        "{:?}",
        outcome.problems
    );
    assert_eq!((outcome.applied, outcome.pruned), (own.len() + 3, 3));

    let seen = seen.lock().unwrap().clone();
    let patches: Vec<&Seen> = seen.iter().filter(|s| s.method == "PATCH").collect();
    // In the order of the kinds table: namespaces first, the smoke test last.
    let position = |p: &Seen| {
        let body = p.body.as_ref().unwrap();
        verbund_agent::kinds::APPLIED
            .iter()
            .position(|k| k.kind == body["kind"] && k.api_version() == body["apiVersion"])
            .unwrap()
    };
    let order: Vec<usize> = patches.iter().map(|p| position(p)).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "applied in the kinds' order");
    assert_eq!(
        patches.first().unwrap().body.as_ref().unwrap()["kind"],
        "Namespace"
    );
    assert_eq!(
        patches.last().unwrap().body.as_ref().unwrap()["kind"],
        "Job"
    );

    // Every PATCH is a forced server-side apply; verbund's own objects exactly as
    // desired and with the agent's rights, the vendor's as the booking's deployer, in its
    // namespace, with verbund's labels.
    let deployer = format!("system:serviceaccount:{FORMS}:verbund-deployer");
    for p in &patches {
        assert_eq!(
            p.content_type.as_deref(),
            Some("application/apply-patch+yaml"),
            "{}",
            p.path
        );
        assert_eq!(
            p.query.get("fieldManager").map(String::as_str),
            Some("verbund-agent")
        );
        assert_eq!(p.query.get("force").map(String::as_str), Some("true"));
        let body = p.body.as_ref().unwrap();
        assert!(p.path.ends_with(body["metadata"]["name"].as_str().unwrap()));
        if own.contains(body) {
            assert_eq!(p.impersonate, None, "{}", p.path);
        } else {
            assert_eq!(
                p.impersonate.as_deref(),
                Some(deployer.as_str()),
                "{}",
                p.path
            );
            assert_eq!(body["metadata"]["namespace"], FORMS);
            assert_eq!(
                body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "verbund"
            );
            assert_eq!(
                body["metadata"]["labels"]["verbund.dev/booking"],
                "0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e21"
            );
            assert!(
                body.get("$verbund-apply-as").is_none(),
                "the marker is never sent"
            );
        }
    }
    let vendor: Vec<String> = patches
        .iter()
        .filter(|p| p.impersonate.is_some())
        .map(|p| p.path.clone())
        .collect();
    assert_eq!(
        vendor,
        [
            format!("/api/v1/namespaces/{FORMS}/configmaps/formulare"),
            format!("/api/v1/namespaces/{FORMS}/services/formulare"),
            format!("/apis/apps/v1/namespaces/{FORMS}/deployments/formulare"),
        ]
    );
    // Every own object was sent once.
    for o in &own {
        assert_eq!(
            patches
                .iter()
                .filter(|p| p.body.as_ref() == Some(o))
                .count(),
            1,
            "{o}"
        );
    }
    // Prune: inside namespaces first, then the namespaces.
    let deletes: Vec<String> = seen
        .iter()
        .filter(|s| s.method == "DELETE")
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(
        deletes,
        [
            format!("/apis/apps/v1/namespaces/{FORMS}/deployments/formulare-legacy"),
            format!("/apis/batch/v1/namespaces/{FORMS}/jobs/smoke-test-1-3-0"),
            format!("/api/v1/namespaces/{GONE}"),
        ]
    );
    // Besides: one list per applied kind, of what verbund manages, cluster-wide.
    let reads: Vec<&Seen> = seen.iter().filter(|s| s.method == "GET").collect();
    assert_eq!(reads.len(), verbund_agent::kinds::APPLIED.len());
    for r in reads {
        assert_eq!(
            r.query.get("labelSelector").map(String::as_str),
            Some("app.kubernetes.io/managed-by=verbund")
        );
        assert!(!r.path.contains("/namespaces/"), "{}", r.path);
    }
    for d in seen.iter().filter(|s| s.method == "DELETE") {
        assert_eq!(d.body.as_ref().unwrap()["propagationPolicy"], "Background");
    }
}

#[tokio::test]
async fn a_changed_booking_is_applied_and_pruned_alone() {
    let (_dir, remote) = remote();
    let cache = tempfile::tempdir().unwrap();
    let repository = Repository::new(remote.to_str().unwrap(), "main", cache.path());
    let first = repository.fetch().await.unwrap();
    // The forms booking changes (its quota file), the database's does not.
    let quota = remote.join(format!(
        "sites/dataport-hh-1/prod/bookings/{FORMS}/quota.yaml"
    ));
    let text = std::fs::read_to_string(&quota)
        .unwrap()
        .replace("2600m", "2700m");
    std::fs::write(&quota, text).unwrap();
    git(&remote, &["commit", "--quiet", "-am", "resize formulare"]);
    let second = repository.fetch().await.unwrap();
    let changed = repository
        .changed_bookings(&first, &second, "sites/dataport-hh-1/prod")
        .await
        .unwrap();
    assert_eq!(changed, [FORMS.to_string()].into_iter().collect());
    // Only the changed booking's files are read: nothing of the database's booking.
    let desired = repository
        .desired_of(&second, "sites/dataport-hh-1/prod", &changed)
        .await
        .unwrap();
    assert!(desired.tenants.iter().all(|t| t.namespace == FORMS));
    assert!(desired.objects.iter().all(|o| {
        o["metadata"]["namespace"] == FORMS
            || (o["kind"] == "Namespace" && o["metadata"]["name"] == FORMS)
    }));
    let (client, seen) = mock_client(apply_server);
    let outcome = Applier::new(client, Charts::new("/nonexistent/helm", None))
        .apply(desired, &Scope::Namespaces(changed))
        .await
        .unwrap();
    assert_eq!(
        outcome.problems,
        Vec::<String>::new(),
        "the database's chart is not even rendered"
    );
    let seen = seen.lock().unwrap().clone();
    for s in seen.iter().filter(|s| s.method == "PATCH") {
        assert!(s.path.contains(FORMS), "{}", s.path);
    }
    // Listed only inside the changed namespace (and the namespaces themselves).
    for s in seen.iter().filter(|s| s.method == "GET") {
        assert!(
            s.path == "/api/v1/namespaces" || s.path.contains(FORMS),
            "{}",
            s.path
        );
    }
    // The cancelled booking's namespace is outside the scope: left for a whole pass.
    let deletes: Vec<&str> = seen
        .iter()
        .filter(|s| s.method == "DELETE")
        .map(|s| s.path.as_str())
        .collect();
    assert!(!deletes.iter().any(|p| p.contains(GONE)), "{deletes:?}");
    assert!(outcome.applied > 10);
}

#[tokio::test]
async fn the_desired_state_is_applied_when_its_commit_changes_or_to_correct_drift() {
    let (_dir, remote) = remote();
    let cache = tempfile::tempdir().unwrap();
    let repository = Repository::new(remote.to_str().unwrap(), "main", cache.path());
    let first = repository.fetch().await.unwrap();
    let hour = std::time::Duration::from_secs(3600);
    let minute = std::time::Duration::from_secs(60);
    assert!(apply::due(None, &first, hour));
    assert!(!apply::due(Some((&first, minute)), &first, hour));
    assert!(apply::due(Some((&first, hour)), &first, hour));

    // A booking is cancelled: its folder goes, its shard's list shrinks.
    std::fs::remove_dir_all(remote.join(format!("sites/dataport-hh-1/prod/bookings/{FORMS}")))
        .unwrap();
    for shard in std::fs::read_dir(remote.join("sites/dataport-hh-1/prod/shards")).unwrap() {
        let k = shard.unwrap().path().join("kustomization.yaml");
        let text: String = std::fs::read_to_string(&k)
            .unwrap()
            .lines()
            .filter(|line| !line.contains(FORMS))
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::write(&k, text).unwrap();
    }
    git(&remote, &["commit", "--quiet", "-am", "cancel formulare"]);
    let second = repository.fetch().await.unwrap();
    assert_ne!(first, second);
    assert!(apply::due(Some((&first, minute)), &second, hour));
    let objects = repository
        .objects(&second, "sites/dataport-hh-1/prod")
        .await
        .unwrap();
    assert!(objects
        .iter()
        .all(|o| o["metadata"]["namespace"] != FORMS && o["metadata"]["name"] != FORMS));
    // The old commit still reads as it was.
    assert_eq!(
        repository
            .objects(&first, "sites/dataport-hh-1/prod")
            .await
            .unwrap()
            .len(),
        27
    );
}

// ------------------------------------------------------------------ install manifests

fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/agent")
        .join(name)
}

#[test]
fn the_install_manifests_in_deploy_are_the_generated_ones() {
    for (file, apply) in [("agent.yaml", false), ("agent-apply.yaml", true)] {
        let objects = install_manifests(
            "dataport-hh-1",
            "https://verbund.example",
            "verbund-system",
            apply,
        );
        let generated = format!(
            "# Generated by verbund-agent (install::install_manifests); do not edit.\n\
             # `verbund agent manifests` prints them for another site.\n{}",
            to_yaml(&objects)
        );
        let path = deploy_file(file);
        if std::env::var_os("VERBUND_UPDATE_DEPLOY").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "{} is not the generated output; run `VERBUND_UPDATE_DEPLOY=1 cargo test -p verbund-agent --test agent install`",
            path.display()
        );

        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        let expected: &[&str] = if apply {
            &[
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "ClusterRole",
                "ClusterRoleBinding",
                "ClusterRole",
                "Deployment",
            ]
        } else {
            &[
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Deployment",
            ]
        };
        assert_eq!(kinds, expected);
        // No wildcard anywhere; reading is read-only.
        for role in objects.iter().filter(|o| o["kind"] == "ClusterRole") {
            for rule in role["rules"].as_array().unwrap() {
                for key in ["verbs", "resources", "apiGroups"] {
                    assert!(
                        !rule[key].as_array().unwrap().iter().any(|v| v == "*"),
                        "{rule}"
                    );
                }
                if role["metadata"]["name"] == "verbund-agent-read" {
                    assert_eq!(rule["verbs"], json!(["get", "list", "watch"]));
                }
            }
        }
        // The token only by reference.
        let text = to_yaml(&objects);
        assert!(text.contains("secretKeyRef"));
        assert!(text.contains("name: verbund-agent-token"));
        let deployment = objects.last().unwrap();
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["securityContext"]["allowPrivilegeEscalation"],
            false
        );
        assert_eq!(
            container["securityContext"]["capabilities"]["drop"],
            json!(["ALL"])
        );
        assert_eq!(
            container["args"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "--apply"),
            apply
        );
    }
}

#[test]
fn the_apply_role_covers_exactly_the_applied_kinds() {
    let objects = install_manifests("s", "https://verbund.example", "verbund-system", true);
    let role = objects
        .iter()
        .find(|o| o["metadata"]["name"] == "verbund-agent-apply")
        .unwrap();
    let mut granted: Vec<String> = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        if rule["verbs"] == json!(["bind"]) {
            assert_eq!(rule["resourceNames"], json!(["edit", "verbund-deployer"]));
            continue;
        }
        if rule["verbs"] == json!(["impersonate"]) {
            assert_eq!(rule["resources"], json!(["serviceaccounts"]));
            assert_eq!(rule["resourceNames"], json!(["verbund-deployer"]));
            continue;
        }
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                granted.push(format!(
                    "{}/{}",
                    group.as_str().unwrap(),
                    resource.as_str().unwrap()
                ));
            }
        }
    }
    granted.sort();
    let mut applied: Vec<String> = verbund_agent::kinds::APPLIED
        .iter()
        .map(|k| format!("{}/{}", k.group, k.plural))
        .collect();
    applied.sort();
    assert_eq!(granted, applied);
}
