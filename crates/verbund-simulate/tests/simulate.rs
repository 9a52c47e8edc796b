//! The simulator against a real Git repository and a recording HTTP receiver: what it
//! reads, what it sends, and how the faults change that.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use verbund_domain::report::{SiteReport, SmokeResult};
use verbund_git::{Author, DesiredStateRepo, RenderedFile};
use verbund_simulate::model::Resources;
use verbund_simulate::source::GitReader;
use verbund_simulate::{Simulation, SimulationConfig};

const FORMULARE: &str = "0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e21";
const NEXTCLOUD: &str = "0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e22";
const DEMO: &str = "0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e23";
/// In the repository, but not placed on its site as far as the control plane knows.
const STRAY: &str = "0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e24";

fn namespace(ns: &str, booking: &str, offering: &str, version: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  labels:\n    app.kubernetes.io/managed-by: verbund\n    verbund.dev/booking: \"{booking}\"\n    verbund.dev/offering: {offering}\n    verbund.dev/version: \"{version}\"\n  name: {ns}\n"
    )
}

fn quota(ns: &str, cpu: &str, memory: &str, storage: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: verbund\n  namespace: {ns}\nspec:\n  hard:\n    limits.cpu: {cpu}\n    requests.cpu: {cpu}\n    requests.memory: {memory}\n    requests.storage: {storage}\n"
    )
}

fn deployment(ns: &str, replicas: u32, smoke: bool) -> String {
    let mut app = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: {ns}\nspec:\n  replicas: {replicas}\n"
    );
    if smoke {
        app.push_str(&format!(
            "---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  labels:\n    verbund.dev/smoke-test: \"true\"\n  name: smoke-test-1-4-0\n  namespace: {ns}\nspec:\n  backoffLimit: 0\n"
        ));
    }
    app
}

fn helm_release(ns: &str, replicas: u32) -> String {
    format!(
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: app\n  namespace: {ns}\nspec:\n  values:\n    replicaCount: {replicas}\n"
    )
}

struct Folder {
    site: &'static str,
    env: &'static str,
    ns: &'static str,
    booking: &'static str,
    offering: &'static str,
    version: &'static str,
    app: String,
    quota: String,
}

impl Folder {
    fn path(&self) -> String {
        format!("sites/{}/{}/bookings/{}", self.site, self.env, self.ns)
    }

    fn files(&self) -> Vec<RenderedFile> {
        let p = self.path();
        vec![
            RenderedFile {
                path: format!("{p}/app.yaml"),
                content: self.app.clone(),
            },
            RenderedFile {
                path: format!("{p}/kustomization.yaml"),
                content: "resources:\n- app.yaml\n- namespace.yaml\n- quota.yaml\n".into(),
            },
            RenderedFile {
                path: format!("{p}/namespace.yaml"),
                content: namespace(self.ns, self.booking, self.offering, self.version),
            },
            RenderedFile {
                path: format!("{p}/quota.yaml"),
                content: self.quota.clone(),
            },
        ]
    }
}

fn formulare(version: &'static str) -> Folder {
    Folder {
        site: "site-a",
        env: "prod",
        ns: "formulare-x",
        booking: FORMULARE,
        offering: "formulare",
        version,
        app: deployment("formulare-x", 2, true),
        quota: quota("formulare-x", "2000m", "4Gi", "50Gi"),
    }
}

fn nextcloud() -> Folder {
    Folder {
        site: "site-a",
        env: "test",
        ns: "nextcloud-y",
        booking: NEXTCLOUD,
        offering: "nextcloud",
        version: "29.0.4",
        app: helm_release("nextcloud-y", 3),
        quota: quota("nextcloud-y", "1", "1024Mi", "1Ti"),
    }
}

fn demo_on_site_b() -> Folder {
    Folder {
        site: "site-b",
        env: "prod",
        ns: "demo-z",
        booking: DEMO,
        offering: "demo",
        version: "1.0.0",
        app: deployment("demo-z", 1, false),
        quota: quota("demo-z", "500m", "512Mi", "1Gi"),
    }
}

/// Commits `folders` (replacing their folders) and the shard kustomizations of their
/// site environments, listing exactly the given folders per environment (in one shard).
fn commit(repo: &DesiredStateRepo, folders: &[Folder]) {
    let mut change = repo.change().unwrap();
    let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in folders {
        change.put_folder(&f.path(), f.files()).unwrap();
        lists
            .entry(format!(
                "sites/{}/{}/shards/00/kustomization.yaml",
                f.site, f.env
            ))
            .or_default()
            .push(format!("../../bookings/{}", f.ns));
    }
    for (path, resources) in lists {
        let mut k =
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
                .to_string();
        for r in resources {
            k.push_str(&format!("- {r}\n"));
        }
        change.put_file(&path, Some(&k)).unwrap();
    }
    let author = Author {
        name: "test".into(),
        email: "test@localhost".into(),
    };
    change.commit(&author, "test", &[]).unwrap();
}

#[test]
fn the_repository_is_read_like_a_cluster_would_apply_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("desired-state.git");
    let repo = DesiredStateRepo::open_or_init(&path).unwrap();
    let mut reader = GitReader::open(path.to_str().unwrap(), None).unwrap();
    assert_eq!(reader.head().unwrap(), None);

    commit(&repo, &[formulare("1.4.0"), nextcloud()]);
    let head = reader.head().unwrap().unwrap();
    assert_eq!(Some(head.clone()), repo.head().unwrap().map(|c| c.0));
    let fleet = reader.scan(&head).unwrap();
    assert_eq!(fleet.sites.keys().collect::<Vec<_>>(), ["site-a"]);
    let bookings = &fleet.sites["site-a"];
    assert_eq!(bookings.len(), 2);
    let f = &bookings[0];
    assert_eq!(
        (f.booking.as_str(), f.environment.as_str()),
        (FORMULARE, "prod")
    );
    assert_eq!(
        (f.offering.as_str(), f.version.as_str()),
        ("formulare", "1.4.0")
    );
    assert_eq!((f.desired_replicas, f.smoke_test), (2, true));
    assert_eq!(
        f.quota,
        Resources {
            cpu_millis: 2000,
            memory_mib: 4096,
            storage_gib: 50
        }
    );
    let n = &bookings[1];
    assert_eq!(
        (n.booking.as_str(), n.environment.as_str()),
        (NEXTCLOUD, "test")
    );
    assert_eq!((n.desired_replicas, n.smoke_test), (3, false));
    assert_eq!(
        n.quota,
        Resources {
            cpu_millis: 1000,
            memory_mib: 1024,
            storage_gib: 1024
        }
    );

    // A new version, a new site; a folder no kustomization lists is not applied.
    commit(&repo, &[formulare("1.5.0"), nextcloud(), demo_on_site_b()]);
    let mut change = repo.change().unwrap();
    change
        .put_folder(
            "sites/site-b/prod/bookings/orphan",
            vec![RenderedFile {
                path: "sites/site-b/prod/bookings/orphan/namespace.yaml".into(),
                content: namespace("orphan", "b-orphan", "demo", "1.0.0"),
            }],
        )
        .unwrap();
    change
        .commit(
            &Author {
                name: "t".into(),
                email: "t@l".into(),
            },
            "orphan",
            &[],
        )
        .unwrap();
    let head = reader.head().unwrap().unwrap();
    let fleet = reader.scan(&head).unwrap();
    assert_eq!(fleet.sites["site-a"][0].version, "1.5.0");
    let b: Vec<_> = fleet.sites["site-b"]
        .iter()
        .map(|b| b.booking.as_str())
        .collect();
    assert_eq!(b, [DEMO]);

    // A remote is fetched into a cache and read the same way.
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", path.display());
    let mut remote = GitReader::open(&url, Some(cache.path())).unwrap();
    let remote_head = remote.head().unwrap().unwrap();
    assert_eq!(remote_head, head);
    assert_eq!(remote.scan(&remote_head).unwrap().sites, fleet.sites);
}

/// What the receiver saw.
#[derive(Default)]
struct Received {
    reports: Vec<(String, String, SiteReport)>,
    minted: Vec<String>,
    refused: usize,
}

type Shared = Arc<Mutex<Received>>;

async fn receive_report(
    State(state): State<Shared>,
    Path(site): Path<String>,
    headers: HeaderMap,
    Json(report): Json<SiteReport>,
) -> (StatusCode, Json<serde_json::Value>) {
    report.validate().unwrap();
    if let Some(i) = report.bookings.iter().position(|b| b.booking == STRAY) {
        let detail =
            format!("/bookings/{i}/booking: booking `{STRAY}` is not placed on site `{site}`");
        state.lock().unwrap().refused += 1;
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({ "detail": detail })),
        );
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_start_matches("Bearer ")
        .to_owned();
    let receipt = serde_json::json!({
        "accepted": true,
        "sequence": report.sequence,
        "bookings": report.bookings.len(),
        "transitions": 0,
    });
    state.lock().unwrap().reports.push((site, token, report));
    (StatusCode::OK, Json(receipt))
}

async fn mint(
    State(state): State<Shared>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<serde_json::Value>) {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some("Bearer vbu_admin") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"detail": "no"})),
        );
    }
    state.lock().unwrap().minted.push(site.clone());
    let body = serde_json::json!({"id": "t1", "site": site, "name": "simulate", "secret": format!("vbs_{site}")});
    (StatusCode::CREATED, Json(body))
}

async fn receiver() -> (String, Shared) {
    let state = Shared::default();
    let app = Router::new()
        .route("/api/v1/sites/{site}/reports", post(receive_report))
        .route("/api/v1/sites/{site}/tokens", post(mint))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count(state: &Shared, site: &str) -> usize {
    state
        .lock()
        .unwrap()
        .reports
        .iter()
        .filter(|r| r.0 == site)
        .count()
}

fn last<T>(state: &Shared, site: &str, f: impl Fn(&SiteReport) -> T) -> Option<T> {
    state
        .lock()
        .unwrap()
        .reports
        .iter()
        .rev()
        .find(|r| r.0 == site)
        .map(|r| f(&r.2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_sites_report_and_obey_the_faults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("desired-state.git");
    let repo = DesiredStateRepo::open_or_init(&path).unwrap();
    commit(&repo, &[formulare("1.4.0"), nextcloud(), demo_on_site_b()]);
    let (server, state) = receiver().await;
    let tokens = BTreeMap::from([
        ("site-a".to_string(), "vbs_a".to_string()),
        ("site-b".to_string(), "vbs_b".to_string()),
    ]);
    let mut config = SimulationConfig::new(&server, path.to_str().unwrap(), tokens)
        .interval(Duration::from_millis(300))
        .latency(Duration::from_millis(300));
    config.faults.never_ready.insert("nextcloud@29.0.4".into());
    let sim = Simulation::start(config).await.unwrap();

    // Reports arrive, labelled simulated, with increasing sequences and the site's token;
    // formulare becomes ready and passes its smoke test.
    wait_until("formulare ready and smoke-tested", || {
        last(&state, "site-a", |r| {
            r.bookings.iter().any(|b| {
                b.booking == FORMULARE
                    && b.ready_replicas == 2
                    && b.smoke_test == SmokeResult::Passed
            })
        }) == Some(true)
    })
    .await;
    wait_until("site-b reports", || count(&state, "site-b") >= 2).await;
    {
        let seen = state.lock().unwrap();
        let mut last_sequence = BTreeMap::new();
        for (site, token, report) in &seen.reports {
            assert!(report.agent.simulated);
            assert!(report.agent.name.starts_with("verbund-simulate/"));
            assert_eq!(report.agent.interval_seconds, 2);
            assert_eq!(token, if site == "site-a" { "vbs_a" } else { "vbs_b" });
            let previous = last_sequence
                .insert(site.clone(), report.sequence)
                .unwrap_or(0);
            assert!(report.sequence > previous, "sequence of {site} went back");
        }
        let a = &seen
            .reports
            .iter()
            .rev()
            .find(|r| r.0 == "site-a")
            .unwrap()
            .2;
        assert_eq!(a.site.kubernetes_version, "v1.33.4");
        assert_eq!(a.site.free.cpu_millis, 64_000 - 3000);
        assert_eq!(a.site.free.storage_gib, 4096 - 50 - 1024);
        // never_ready keeps nextcloud at 0 ready replicas with a failing Ready condition.
        let n = a.bookings.iter().find(|b| b.booking == NEXTCLOUD).unwrap();
        assert_eq!(n.applied_version.as_deref(), Some("29.0.4"));
        assert_eq!((n.desired_replicas, n.ready_replicas), (3, 0));
        assert_eq!(
            n.conditions[0].reason.as_deref(),
            Some("ProgressDeadlineExceeded")
        );
    }

    // Removing the fault lets it become ready.
    sim.faults().update(|f| f.never_ready.clear()).unwrap();
    wait_until("nextcloud ready", || {
        last(&state, "site-a", |r| {
            r.bookings
                .iter()
                .any(|b| b.booking == NEXTCLOUD && b.ready_replicas == 3)
        }) == Some(true)
    })
    .await;

    // A silent site stops sending; the other goes on.
    sim.faults()
        .update(|f| {
            f.silent.insert("site-b".into());
        })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (b, a) = (count(&state, "site-b"), count(&state, "site-a"));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(count(&state, "site-b"), b, "a silent site reported");
    assert!(count(&state, "site-a") > a);
    assert!(sim.stats()["site-b"].silent > 0);

    // Every report lost in transit: nothing arrives.
    sim.faults().update(|f| f.drop_reports = 1.0).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let total = state.lock().unwrap().reports.len();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        state.lock().unwrap().reports.len(),
        total,
        "a dropped report arrived"
    );
    assert!(sim.stats()["site-a"].dropped > 0);

    // Back to normal; a degraded booking loses a replica; a new version rolls out.
    sim.faults()
        .set(verbund_simulate::Faults {
            degraded: [FORMULARE.to_string()].into(),
            ..Default::default()
        })
        .unwrap();
    wait_until("formulare degraded", || {
        last(&state, "site-a", |r| {
            r.bookings
                .iter()
                .any(|b| b.booking == FORMULARE && b.ready_replicas == 1)
        }) == Some(true)
    })
    .await;
    wait_until("site-b back", || count(&state, "site-b") > b).await;
    sim.faults().set(Default::default()).unwrap();
    commit(&repo, &[formulare("1.5.0"), nextcloud(), demo_on_site_b()]);
    wait_until("formulare 1.5.0 rolled out", || {
        last(&state, "site-a", |r| {
            r.bookings.iter().any(|b| {
                b.booking == FORMULARE
                    && b.applied_version.as_deref() == Some("1.5.0")
                    && b.ready_replicas == 2
            })
        }) == Some(true)
    })
    .await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_get_minted_tokens_and_new_site_folders_are_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("desired-state.git");
    let repo = DesiredStateRepo::open_or_init(&path).unwrap();
    commit(&repo, &[formulare("1.4.0")]);
    let (server, state) = receiver().await;
    let faults_file = dir.path().join("faults.yaml");
    let mut config = SimulationConfig::new(&server, path.to_str().unwrap(), BTreeMap::new())
        .interval(Duration::from_millis(300))
        .latency(Duration::from_millis(300));
    config.mint_with = Some("vbu_admin".into());
    config.faults_file = Some(faults_file.clone());
    let sim = Simulation::start(config).await.unwrap();
    wait_until("site-a reports", || count(&state, "site-a") >= 1).await;
    assert!(count(&state, "site-b") == 0);

    let stray = Folder {
        ns: "stray",
        booking: STRAY,
        ..demo_on_site_b()
    };
    commit(&repo, &[formulare("1.4.0"), demo_on_site_b(), stray]);
    wait_until("site-b picked up", || count(&state, "site-b") >= 2).await;
    {
        let seen = state.lock().unwrap();
        assert_eq!(seen.minted, ["site-a", "site-b"]);
        assert!(seen
            .reports
            .iter()
            .all(|(site, token, _)| *token == format!("vbs_{site}")));
    }

    // The faults file is re-read while running.
    std::fs::write(&faults_file, "silent: [site-a]\n").unwrap();
    wait_until("faults file applied", || {
        sim.faults().get().is_silent("site-a")
    })
    .await;
    std::fs::write(&faults_file, "drop_reports: 2\n").unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        sim.faults().get().is_silent("site-a"),
        "a bad faults file replaced the good one"
    );
    std::fs::remove_file(&faults_file).unwrap();
    wait_until("faults cleared", || !sim.faults().get().is_silent("site-a")).await;
    sim.stop().await;
}
