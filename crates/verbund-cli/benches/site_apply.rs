//! Issue 14, its speed part: one site's desired state applied into an empty API server
//! by `verbund agent run --apply` and by Flux's controllers, in one run on one machine,
//! through the real binaries and real Kubernetes (`verbund-testcluster`), and how fast
//! one booking change reaches the cluster afterwards.
//!
//! 1. **The site.** `verbund demo --no-simulation` on a temporary data folder. Flensburg
//!    (organisation key `01001`) books Hundesteuer-Anmeldung (plain manifests), plan `s`,
//!    `VERBUND_BENCH_BOOKINGS` times (default 1,700); placement puts it on the Flux site
//!    of Schleswig-Holstein, whose capacity the federation admin raises first. The bench
//!    waits until the site's own repository holds every booking folder and `git clone`s
//!    it from verbund's Git endpoint with a site token, as an operator would.
//! 2. **Flux** (commit C1, the site's Flux layout). A fresh cluster; the operator's part
//!    (the Secret `verbund-git`, `root.yaml`); then the clock starts and Flux's source-,
//!    kustomize- and helm-controller start. Done when, for every booking, its Namespace,
//!    ResourceQuota, LimitRange, 4 NetworkPolicies, 2 RoleBindings, the deployer
//!    ServiceAccount, the ConfigMap `hundesteuer-config` and the vendor's Service and
//!    Deployment `hundesteuer` exist (13 objects; metadata watches on every kind, by the
//!    label `verbund.dev/booking`, checked every 200 ms; the time is when the last one was
//!    seen). CPU seconds (`utime + stime` of `/proc/<pid>/stat`, with waited-for children)
//!    and peak memory (`VmHWM`) of each controller are read at that moment. Then one
//!    booking change, found by Flux on its own (its shard's GitRepository, interval 1 m),
//!    and one with a reconcile requested on that GitRepository right after the commit
//!    (what a Flux notification `Receiver` does on a push webhook); after each, how long
//!    until every Kustomization is at the new commit (each commit is a new revision of
//!    every source, so all of them reconcile). These waits are bounded (10 minutes for the
//!    first, 5 after a change) and report how far Flux got instead of failing. Flux and its cluster stop.
//! 3. **The agent** (commit C2). The agent cannot apply a Flux site's folder: its entry
//!    `kustomization.yaml` lists only `shards.yaml` (Flux Kustomizations, which the agent
//!    refuses as unknown kinds), so it never reaches a booking. The site's delivery mode
//!    is switched to `agent` (`PUT /api/v1/sites/{name}`), verbund renders the same
//!    bookings for the agent, and the bench checks that the booking folders differ only
//!    in Flux's wiring (each booking's `app.yaml`, its line in `kustomization.yaml`).
//!    A fresh cluster; the install manifests of `verbund agent manifests --apply`; then
//!    the clock starts and `verbund agent run --apply --interval 1s` starts with its
//!    service account's rights. Done as for Flux; then `VERBUND_BENCH_CHANGES` (default 10)
//!    booking changes, each timed from its commit reaching the site's repository (its
//!    ref file, read every 20 ms) to the new value in the booking's ConfigMap (read
//!    every 20 ms).
//!
//! One engine after the other, not both at once: on two cores two API servers, two etcds
//! and two engines would take CPU from each other, and whichever finished first would hand
//! its share to the other, so neither time would be the engine's own. Each engine gets
//! the same quiet machine, a fresh cluster of the same size and the same bookings.
//!
//! `cargo bench -p verbund-cli --bench site_apply` runs it in full (about an hour, most of
//! it Flux). `VERBUND_BENCH_ENGINES=agent` leaves Flux out (step 2), to measure the agent
//! alone after a change of its own; the side-by-side figures need both.
//! Without `--bench`, as under `cargo test --all-targets`, a smoke run (20 bookings, 2
//! changes, Flux's interval-driven change left out) goes through every other step.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use verbund_testcluster::{apply_objects, parse_objects, Cluster, ClusterOptions};

const OFFERING: &str = "hundesteuer-anmeldung";
/// Flensburg, Stadt (a kreisfreie Stadt in Schleswig-Holstein).
const FLENSBURG: &str = "01001";
const BOOKING_LABEL: &str = "verbund.dev/booking";
const CONFIG_MAP: &str = "hundesteuer-config";
/// Every kind the bench waits for, with the names each booking namespace must hold
/// (the Namespace itself is named after the booking's namespace).
const WANTED: [(&str, &[&str]); 9] = [
    ("Namespace", &[]),
    ("ResourceQuota", &["verbund"]),
    ("LimitRange", &["verbund"]),
    (
        "NetworkPolicy",
        &[
            "allow-dns",
            "allow-ingress-controller",
            "allow-same-namespace",
            "default-deny",
        ],
    ),
    ("RoleBinding", &["verbund-deployer", "verbund-tenant"]),
    ("ServiceAccount", &["verbund-deployer"]),
    ("ConfigMap", &[CONFIG_MAP]),
    ("Service", &["hundesteuer"]),
    ("Deployment", &["hundesteuer"]),
];
/// Objects per booking: the namespace and the names above.
const PER_BOOKING: usize = 13;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one run does.
#[derive(Debug, Clone, Copy)]
struct Plan {
    bench: bool,
    bookings: usize,
    changes: usize,
    /// How long an engine may take to apply the whole site.
    apply_limit: Duration,
    /// Whether Flux runs too (`VERBUND_BENCH_ENGINES`, default `flux,agent`).
    flux: bool,
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let plan = Plan {
        bench,
        bookings: env_usize("VERBUND_BENCH_BOOKINGS", if bench { 1_700 } else { 20 }).max(4),
        changes: env_usize("VERBUND_BENCH_CHANGES", if bench { 10 } else { 2 }).max(1),
        apply_limit: Duration::from_secs(if bench { 3_600 } else { 300 }),
        flux: std::env::var("VERBUND_BENCH_ENGINES").map_or(true, |engines| {
            engines.split(',').any(|e| e.trim() == "flux")
        }),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(plan));
}

async fn run(plan: Plan) {
    let load = Load::start();
    let started = Instant::now();
    let site = Site::prepare(&plan).await;
    let flux = match plan.flux {
        true => Some(flux_phase(&site, &plan).await),
        false => None,
    };
    let fetched = site.fetch();
    let flux_last = flux
        .as_ref()
        .map_or_else(|| site.flux_commit.clone(), |f| f.last_commit.clone());
    let agent_commit = site.switch_to_agent(&flux_last).await;
    let agent = agent_phase(&site, &plan, &agent_commit).await;
    report(&plan, &site, flux.as_ref(), &agent);
    println!();
    println!(
        "a site fetches its desired state from verbund's Git endpoint ({} bookings, HTTP basic with the site's token): cold `git clone` {:.2} s (the clone holds {:.1} MB of packed objects); incremental `git fetch` of {} new commits {:.3} s",
        site.namespaces.len(),
        site.clone_time.as_secs_f64(),
        fetched.objects_mb,
        fetched.commits,
        fetched.time.as_secs_f64(),
    );
    load.report();
    println!("whole run: {:.0} s", started.elapsed().as_secs_f64());
    site.finish();
}

// ---------------------------------------------------------------------------------------
// The control plane and the site

/// The real binary, built by Cargo for the package's benches.
const BIN: &str = env!("CARGO_BIN_EXE_verbund");

/// A command of the binary with none of the caller's `VERBUND_*` settings.
fn verbund() -> Command {
    let mut c = Command::new(BIN);
    for var in [
        "VERBUND_SERVER",
        "VERBUND_TOKEN",
        "VERBUND_DATA",
        "VERBUND_DATABASE_URL",
        "VERBUND_LISTEN",
        "VERBUND_REPOSITORY_URL",
        "VERBUND_GIT_REMOTE",
    ] {
        c.env_remove(var);
    }
    c.env("VERBUND_LOG", "warn").env("NO_COLOR", "1");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process killed when dropped; its log's end is shown when the bench fails.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn spawn(mut command: Command, log: &Path) -> Running {
        let file = std::fs::File::create(log).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("the process starts");
        Running {
            child,
            log: log.to_path_buf(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- {} (last lines) ---", self.log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// `verbund demo` with N bookings of Flensburg on one site.
struct Site {
    dir: tempfile::TempDir,
    data: PathBuf,
    base: String,
    admin: String,
    name: String,
    token: String,
    /// Booking ids, in booking order.
    bookings: Vec<String>,
    /// Namespaces of the bookings, from the site's folder.
    namespaces: Vec<String>,
    /// The site's repository at the commit Flux applies.
    flux_commit: String,
    /// `root.yaml` of the `git clone`.
    root_yaml: String,
    /// How long the cold `git clone` of the site's repository from verbund's Git endpoint
    /// took.
    clone_time: Duration,
    server: Running,
}

impl Site {
    async fn prepare(plan: &Plan) -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let server = start_demo(&data, &base, port, &dir.path().join("verbund.log")).await;
        let admin = read_token(&data.join("admin.token"));
        let page = get(&base, &admin, &format!("/organisations?key={FLENSBURG}")).await;
        let org = page["items"][0]["id"]
            .as_str()
            .expect("Flensburg")
            .to_owned();
        let started = Instant::now();
        let first = book(&base, &admin, &org, 0).await;
        let name = first["site"].as_str().expect("placed").to_owned();
        let spec = get(&base, &admin, &format!("/sites/{name}")).await;
        assert_eq!(spec["delivery"], "flux", "{spec}");
        assert_eq!(spec["location"]["region"], "DE-SH", "{spec}");
        set_site(&base, &admin, &name, spec, |s| {
            let n = plan.bookings as u64;
            s["capacity"] = json!({
                "cpu_millis": 96_000 + n * 1_000,
                "memory_mib": 393_216 + n * 1_024,
                "storage_gib": 20_000 + n * 10,
            });
        })
        .await;
        let mut bookings = vec![first["id"].as_str().expect("an id").to_owned()];
        let rest: Vec<Value> = futures::stream::iter(1..plan.bookings)
            .map(|i| {
                let (base, admin, org) = (&base, &admin, &org);
                async move { book(base, admin, org, i).await }
            })
            .buffered(4)
            .collect()
            .await;
        for b in rest {
            assert_eq!(b["site"], name.as_str(), "every booking on one site: {b}");
            bookings.push(b["id"].as_str().expect("an id").to_owned());
        }
        eprintln!(
            "{} bookings on {name} in {:.1} s",
            bookings.len(),
            started.elapsed().as_secs_f64()
        );
        let token = post(
            &base,
            &admin,
            &format!("/sites/{name}/tokens"),
            &json!({"name": "bench"}),
        )
        .await["secret"]
            .as_str()
            .expect("a site token")
            .to_owned();
        let mut site = Site {
            dir,
            data,
            base,
            admin,
            name,
            token,
            bookings,
            namespaces: Vec::new(),
            flux_commit: String::new(),
            root_yaml: String::new(),
            clone_time: Duration::ZERO,
            server,
        };
        site.wait_for_folders(plan.bookings).await;
        site
    }

    /// Stops the server; keeps the folder (data, logs, the agent's log) with
    /// `VERBUND_BENCH_KEEP=1`.
    fn finish(self) {
        drop(self.server);
        if std::env::var("VERBUND_BENCH_KEEP").is_ok_and(|v| v == "1") {
            println!("kept {}", self.dir.keep().display());
        }
    }

    /// The site's own repository, `DATA/sites/<site>.git`.
    fn repository(&self) -> PathBuf {
        self.data.join("sites").join(format!("{}.git", self.name))
    }

    fn folder(&self) -> String {
        format!("sites/{}/prod", self.name)
    }

    /// Waits until the site's repository holds every booking folder, then clones it from
    /// verbund's Git endpoint with the site's token.
    async fn wait_for_folders(&mut self, n: usize) {
        let started = Instant::now();
        let commit = loop {
            let head = site_head(&self.repository()).unwrap_or_default();
            if !head.is_empty() && self.booking_folders(&head).len() == n {
                break head;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "the site's repository never held {n} booking folders"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let checkout = self.dir.path().join("checkout");
        let url = self.base.replacen(
            "http://",
            &format!("http://{}:{}@", self.name, self.token),
            1,
        );
        let cloning = Instant::now();
        git(
            None,
            &[
                "clone",
                "--quiet",
                &format!("{url}/git/{}.git", self.name),
                &checkout.display().to_string(),
            ],
        );
        self.clone_time = cloning.elapsed();
        let cloned = git(Some(&checkout.join(".git")), &["rev-parse", "HEAD"]);
        assert_eq!(cloned.trim(), commit, "the clone is the site's repository");
        self.root_yaml =
            std::fs::read_to_string(checkout.join(format!("{}/root.yaml", self.folder())))
                .expect("root.yaml");
        self.namespaces = self.booking_folders(&commit);
        self.flux_commit = commit;
        eprintln!(
            "the site's repository holds {n} booking folders at {} ({:.1} s after the last booking)",
            short(&self.flux_commit),
            started.elapsed().as_secs_f64()
        );
    }

    /// Fetches what the site's repository gained since the clone into the clone, as a
    /// site's engine does on its next interval.
    fn fetch(&self) -> Fetched {
        let checkout = self.dir.path().join("checkout");
        let git_dir = checkout.join(".git");
        let started = Instant::now();
        git(Some(&git_dir), &["fetch", "--quiet", "origin"]);
        let time = started.elapsed();
        let commits = git(
            Some(&git_dir),
            &["rev-list", "--count", "HEAD..origin/HEAD"],
        )
        .trim()
        .parse()
        .unwrap_or(0);
        let sizes = git(Some(&git_dir), &["count-objects", "-v"]);
        let kib: f64 = sizes
            .lines()
            .filter_map(|l| {
                l.strip_prefix("size: ")
                    .or_else(|| l.strip_prefix("size-pack: "))
            })
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .sum();
        Fetched {
            time,
            commits,
            objects_mb: kib / 1024.0,
        }
    }

    /// The booking namespaces of our offering in the site's folder at `commit`.
    fn booking_folders(&self, commit: &str) -> Vec<String> {
        let out = git(
            Some(&self.repository()),
            &[
                "ls-tree",
                "--name-only",
                commit,
                "--",
                &format!("{}/bookings/", self.folder()),
            ],
        );
        out.lines()
            .filter_map(|path| path.rsplit('/').next())
            .filter(|name| name.starts_with(&format!("{OFFERING}-")))
            .map(str::to_owned)
            .collect()
    }

    /// Switches the site to delivery `agent` and returns the commit that re-renders it;
    /// checks that the booking folders changed in Flux's wiring only.
    async fn switch_to_agent(&self, flux_last: &str) -> String {
        let spec = get(&self.base, &self.admin, &format!("/sites/{}", self.name)).await;
        set_site(&self.base, &self.admin, &self.name, spec, |s| {
            s["delivery"] = json!("agent");
        })
        .await;
        let shards = format!("{}/shards.yaml", self.folder());
        let started = Instant::now();
        let commit = loop {
            let head = site_head(&self.repository()).unwrap_or_default();
            let gone = !Command::new("git")
                .arg("--git-dir")
                .arg(self.repository())
                .args(["cat-file", "-e", &format!("{head}:{shards}")])
                .stderr(Stdio::null())
                .status()
                .expect("git")
                .success();
            if head != flux_last && gone {
                break head;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the site was not re-rendered for the agent"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let diff = git(
            Some(&self.repository()),
            &[
                "diff",
                "--name-status",
                flux_last,
                &commit,
                "--",
                &format!("{}/bookings/", self.folder()),
            ],
        );
        let mut changes: BTreeMap<String, usize> = BTreeMap::new();
        for line in diff.lines() {
            let (status, path) = line.split_once('\t').unwrap_or((line, ""));
            let file = path.rsplit('/').next().unwrap_or_default();
            *changes.entry(format!("{status} {file}")).or_default() += 1;
        }
        eprintln!(
            "switched to delivery `agent`: {} → {}, booking folders: {changes:?}",
            short(flux_last),
            short(&commit)
        );
        for key in changes.keys() {
            assert!(
                ["D app.yaml", "M kustomization.yaml", "A helm.yaml"].contains(&key.as_str()),
                "the agent's rendering differs from Flux's in more than the wiring: {changes:?}"
            );
        }
        assert_eq!(self.booking_folders(&commit), self.namespaces);
        commit
    }

    /// Changes booking `index`'s contact e-mail; returns the new address and the commit
    /// that carries it, timed.
    async fn change(&self, index: usize, n: usize, namespace: &str) -> Change {
        let before = site_head(&self.repository()).unwrap_or_default();
        let email = format!("aenderung-{n}@flensburg.de");
        let id = &self.bookings[index];
        let asked = Instant::now();
        let r = reqwest::Client::new()
            .patch(format!("{}/api/v1/bookings/{id}", self.base))
            .bearer_auth(&self.admin)
            .json(&json!({"config": config(index, &email)}))
            .send()
            .await
            .expect("PATCH booking");
        let status = r.status();
        assert!(
            status.is_success(),
            "PATCH booking: {status} {}",
            r.text().await.unwrap_or_default()
        );
        let answered = asked.elapsed();
        let path = format!("{}/bookings/{namespace}/config.yaml", self.folder());
        let mut seen = before.clone();
        loop {
            let head = site_head(&self.repository()).unwrap_or_default();
            if head != seen {
                let at = Instant::now();
                seen = head.clone();
                let text = git(
                    Some(&self.repository()),
                    &["show", &format!("{head}:{path}")],
                );
                if text.contains(&email) {
                    return Change {
                        email,
                        commit: head,
                        committed: at,
                        answered,
                        patch_to_commit: at - asked,
                        applied: None,
                    };
                }
            }
            assert!(
                asked.elapsed() < Duration::from_secs(30),
                "the change of booking {id} never reached the site's repository"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn start_demo(data: &Path, base: &str, port: u16, log: &Path) -> Running {
    let mut command = verbund();
    command
        .args(["demo", "--no-simulation", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data")
        .arg(data)
        .args(["--public-url", base]);
    let mut server = Running::spawn(command, log);
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
            if r.status().is_success() {
                return server;
            }
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("verbund demo exited with {status}:\n{}", server.log_text());
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "verbund demo did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn read_token(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// The configuration of booking `index` with `email` as its contact.
fn config(index: usize, email: &str) -> Value {
    json!({
        "municipality": "01001000",
        "contact_email": email,
        "tax_rates": {"first_dog": 12_000 + index, "further_dog": 18_000},
        "sepa_mandate": true
    })
}

async fn book(base: &str, admin: &str, org: &str, index: usize) -> Value {
    let body = json!({
        "organisation": org, "offering": OFFERING, "plan": "s", "channel": "stable",
        "config": config(index, &format!("steueramt-{index}@flensburg.de")),
    });
    post(base, admin, "/bookings", &body).await["booking"].clone()
}

async fn get(base: &str, token: &str, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.expect("JSON")
}

async fn post(base: &str, token: &str, path: &str, body: &Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = r.status();
    let text = r.text().await.expect("body");
    assert!(status.is_success(), "POST {path}: {status} {text}");
    serde_json::from_str(&text).expect("JSON")
}

/// `PUT /sites/{name}` with the spec fields of `current`, changed by `edit`.
async fn set_site(
    base: &str,
    admin: &str,
    name: &str,
    mut current: Value,
    edit: impl Fn(&mut Value),
) {
    let keep = [
        "name",
        "display_name",
        "provider",
        "location",
        "certifications",
        "kubernetes_version",
        "capabilities",
        "capacity",
        "environments",
        "delivery",
    ];
    if let Some(spec) = current.as_object_mut() {
        spec.retain(|k, _| keep.contains(&k.as_str()));
    }
    edit(&mut current);
    let r = reqwest::Client::new()
        .put(format!("{base}/api/v1/sites/{name}"))
        .bearer_auth(admin)
        .json(&current)
        .send()
        .await
        .expect("PUT site");
    let status = r.status();
    assert!(
        status.is_success(),
        "PUT site: {status} {}",
        r.text().await.unwrap_or_default()
    );
}

/// Runs git (with `--git-dir` when given); its standard output.
fn git(git_dir: Option<&Path>, args: &[&str]) -> String {
    let mut command = Command::new("git");
    if let Some(dir) = git_dir {
        command.arg("--git-dir").arg(dir);
    }
    let out = command
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The commit `refs/heads/main` of a bare repository names, read from its files (cheap
/// enough for a 20 ms poll): the loose ref, else its line in `packed-refs`.
fn site_head(repository: &Path) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(repository.join("refs/heads/main")) {
        return Some(text.trim().to_owned());
    }
    let packed = std::fs::read_to_string(repository.join("packed-refs")).ok()?;
    packed.lines().find_map(|line| {
        let (commit, name) = line.split_once(' ')?;
        (name == "refs/heads/main").then(|| commit.to_owned())
    })
}

fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

// ---------------------------------------------------------------------------------------
// Watching a cluster fill

/// When each object labelled `verbund.dev/booking` was first seen, by kind, namespace
/// and name; fed by one metadata watch per kind.
/// An object by kind, namespace and name.
type ObjectKey = (&'static str, String, String);

struct Tracker {
    seen: Arc<Mutex<HashMap<ObjectKey, Instant>>>,
    synced: Arc<Mutex<HashSet<&'static str>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Tracker {
    async fn start(client: &Client) -> Tracker {
        let mut tracker = Tracker {
            seen: Arc::default(),
            synced: Arc::default(),
            tasks: Vec::new(),
        };
        tracker.watch::<Namespace>(client, "Namespace");
        tracker.watch::<ResourceQuota>(client, "ResourceQuota");
        tracker.watch::<LimitRange>(client, "LimitRange");
        tracker.watch::<NetworkPolicy>(client, "NetworkPolicy");
        tracker.watch::<RoleBinding>(client, "RoleBinding");
        tracker.watch::<ServiceAccount>(client, "ServiceAccount");
        tracker.watch::<ConfigMap>(client, "ConfigMap");
        tracker.watch::<Service>(client, "Service");
        tracker.watch::<Deployment>(client, "Deployment");
        let started = Instant::now();
        while tracker.synced.lock().expect("lock").len() < WANTED.len() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the watches did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracker
    }

    fn watch<K>(&mut self, client: &Client, kind: &'static str)
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        let api: Api<PartialObjectMeta<K>> = Api::all(client.clone());
        let seen = self.seen.clone();
        let synced = self.synced.clone();
        self.tasks.push(tokio::spawn(async move {
            let config = watcher::Config::default().labels(BOOKING_LABEL);
            let mut events = watcher(api, config).default_backoff().boxed();
            while let Some(event) = events.next().await {
                let meta = match event {
                    Ok(Event::Apply(o) | Event::InitApply(o)) => o.metadata,
                    Ok(Event::InitDone) => {
                        synced.lock().expect("lock").insert(kind);
                        continue;
                    }
                    _ => continue,
                };
                let key = (
                    kind,
                    meta.namespace.unwrap_or_default(),
                    meta.name.unwrap_or_default(),
                );
                seen.lock()
                    .expect("lock")
                    .entry(key)
                    .or_insert_with(Instant::now);
            }
        }));
    }

    /// How many of the wanted objects of `namespaces` exist, and when the last of them
    /// was first seen.
    fn progress(&self, namespaces: &[String]) -> (usize, Option<Instant>) {
        let seen = self.seen.lock().expect("lock");
        let mut found = 0;
        let mut last: Option<Instant> = None;
        for ns in namespaces {
            for (kind, names) in WANTED {
                let keys: Vec<(&'static str, String, String)> = if names.is_empty() {
                    vec![(kind, String::new(), ns.clone())]
                } else {
                    names
                        .iter()
                        .map(|n| (kind, ns.clone(), (*n).to_owned()))
                        .collect()
                };
                for key in keys {
                    if let Some(at) = seen.get(&key) {
                        found += 1;
                        last = Some(last.map_or(*at, |l| l.max(*at)));
                    }
                }
            }
        }
        (found, last)
    }

    /// Polls every 200 ms until every wanted object of `namespaces` exists; the time from
    /// `start` to the last one's arrival.
    async fn until_complete(
        &self,
        what: &str,
        namespaces: &[String],
        start: Instant,
        limit: Duration,
    ) -> Duration {
        let wanted = namespaces.len() * PER_BOOKING;
        let mut told = Instant::now();
        loop {
            let (found, last) = self.progress(namespaces);
            if found == wanted {
                let last = last.unwrap_or(start);
                eprintln!(
                    "{what}: all {wanted} objects after {:.1} s (seen complete after {:.1} s)",
                    (last - start).as_secs_f64(),
                    start.elapsed().as_secs_f64()
                );
                return last - start;
            }
            assert!(
                start.elapsed() < limit,
                "{what}: {found} of {wanted} objects after {limit:?}"
            );
            if told.elapsed() > Duration::from_secs(15) {
                eprintln!(
                    "{what}: {found} of {wanted} objects after {:.0} s",
                    start.elapsed().as_secs_f64()
                );
                told = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn cluster_options(plan: &Plan) -> ClusterOptions {
    let nodes = 3;
    let per_node = plan.bookings.div_ceil(nodes);
    ClusterOptions {
        nodes,
        // Room for every booking's pod (and the CPU and memory their limit range
        // requests), so that every Deployment's pod is scheduled and runs.
        node_pods: u32::try_from(per_node + 110).unwrap_or(u32::MAX),
        node_cpu: (32 + per_node / 2).to_string(),
        node_memory: format!("{}Gi", 128 + per_node / 2),
        ..ClusterOptions::default()
    }
}

/// The namespace of booking `id` in `client`'s cluster.
async fn namespace_of(client: &Client, id: &str) -> String {
    let list = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{BOOKING_LABEL}={id}")))
        .await
        .expect("namespaces");
    list.items
        .first()
        .and_then(|n| n.metadata.name.clone())
        .expect("the booking's namespace")
}

/// Polls the booking's ConfigMap every `every` until it carries `email`; when it did, or
/// `None` after `limit` (reported as missed: one late change must not cost the whole run).
async fn until_config(
    client: &Client,
    namespace: &str,
    email: &str,
    every: Duration,
    limit: Duration,
) -> Option<Instant> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(map)) = maps.get_opt(CONFIG_MAP).await {
            if map.data.unwrap_or_default().values().any(|v| v == email) {
                return Some(Instant::now());
            }
        }
        tokio::time::sleep(every).await;
    }
    eprintln!("{email} did not reach {namespace}/{CONFIG_MAP} within {limit:?}");
    None
}

// ---------------------------------------------------------------------------------------
// Processes

/// CPU seconds and peak memory of a process, from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    /// `utime + stime`.
    cpu: f64,
    /// `cutime + cstime`: its children that it waited for (e.g. `git`).
    children: f64,
    /// `VmHWM`.
    peak_mib: f64,
}

impl Usage {
    fn total(&self) -> f64 {
        self.cpu + self.children
    }

    fn of(pid: u32) -> Usage {
        let tick = clock_tick();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis: state is the 3rd field overall,
        // utime the 14th, stime, cutime, cstime the next ones.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<f64> = rest
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0.0))
            .collect();
        let field = |n: usize| fields.get(n - 4).copied().unwrap_or(0.0) / tick;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let peak_kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Usage {
            cpu: field(14) + field(15),
            children: field(16) + field(17),
            peak_mib: peak_kib / 1024.0,
        }
    }
}

fn clock_tick() -> f64 {
    static TICK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds of the cluster's API server and etcd.
fn control_plane_cpu(cluster: &Cluster) -> f64 {
    cluster
        .pids()
        .iter()
        .filter(|(name, _)| ["kube-apiserver", "etcd"].contains(name))
        .map(|(_, pid)| Usage::of(*pid).total())
        .sum()
}

// ---------------------------------------------------------------------------------------
// The engines

/// One booking change through an engine.
#[derive(Debug, Clone)]
struct Change {
    email: String,
    commit: String,
    /// When the commit was seen in the site's repository.
    committed: Instant,
    /// The API's answer to the PATCH.
    answered: Duration,
    /// PATCH sent → commit in the site's repository.
    patch_to_commit: Duration,
    /// Commit → the new value in the cluster; `None`: not within the bench's limit.
    applied: Option<Duration>,
}

/// What one engine did.
struct EngineRun {
    /// Engine start → the last wanted object seen.
    all_applied: Duration,
    /// Per process: name and usage at that moment.
    processes: Vec<(String, Usage)>,
    /// The cluster's API server and etcd, CPU seconds while the engine applied.
    control_plane_cpu: f64,
    changes: Vec<Change>,
    /// Flux: found by its GitRepository's interval (commit → artifact, → applied).
    /// Commit → the shard source's artifact, if within the limit.
    interval_change: Option<(Option<Duration>, Change)>,
    /// Flux: commit → every Kustomization applied at that commit.
    settled: Vec<(String, Settled)>,
    /// The agent: its whole first pass and its incremental passes, `millis=` of its log.
    passes: Vec<Pass>,
    last_commit: String,
}

#[derive(Debug, Clone)]
struct Pass {
    whole: bool,
    commit: String,
    applied: u64,
    problems: u64,
    millis: u64,
}

fn flux_kinds(
    client: &Client,
    kind: &str,
    plural: &str,
    group: &str,
    version: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

fn git_repository(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("source.toolkit.fluxcd.io", "v1", "GitRepository");
    Api::namespaced_with(
        client.clone(),
        "flux-system",
        &ApiResource::from_gvk_with_plural(&gvk, "gitrepositories"),
    )
}

/// Waits until every Flux Kustomization was applied at `commit`; the time from `since`,
/// or how far Flux got when `limit` ran out (a figure too, not a failure: after a commit
/// every Kustomization of the site reconciles, and how long that takes is what we report).
async fn until_flux_settled(
    client: &Client,
    commit: &str,
    since: Instant,
    expected: usize,
    limit: Duration,
) -> Settled {
    let kustomizations = flux_kinds(
        client,
        "Kustomization",
        "kustomizations",
        "kustomize.toolkit.fluxcd.io",
        "v1",
    );
    let mut told = Instant::now();
    loop {
        let Ok(list) = kustomizations.list(&ListParams::default()).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let at_commit = list
            .items
            .iter()
            .filter(|k| {
                k.data["status"]["lastAppliedRevision"]
                    .as_str()
                    .is_some_and(|r| r.ends_with(commit))
            })
            .count();
        if at_commit >= expected && at_commit == list.items.len() {
            return Settled::After(since.elapsed());
        }
        if since.elapsed() >= limit {
            return Settled::Partly {
                at_commit,
                of: list.items.len(),
                after: since.elapsed(),
            };
        }
        if told.elapsed() > Duration::from_secs(15) {
            eprintln!(
                "Flux: {at_commit} of {} Kustomizations at {} after {:.0} s",
                list.items.len(),
                short(commit),
                since.elapsed().as_secs_f64()
            );
            told = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How far Flux's Kustomizations got to a commit.
#[derive(Debug, Clone, Copy)]
enum Settled {
    After(Duration),
    Partly {
        at_commit: usize,
        of: usize,
        after: Duration,
    },
}

impl std::fmt::Display for Settled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Settled::After(after) => write!(f, "{:.1} s", after.as_secs_f64()),
            Settled::Partly {
                at_commit,
                of,
                after,
            } => write!(
                f,
                "{at_commit} of {of} Kustomizations after {:.0} s (the bench stopped waiting)",
                after.as_secs_f64()
            ),
        }
    }
}

/// The Flux Git source that carries the folder of the booking in `namespace`: its shard's.
fn flux_source_of(namespace: &str) -> String {
    verbund_render::root::shard_name(
        verbund_domain::directory::Environment::Prod,
        &verbund_render::root::shard_of(namespace),
    )
}

/// Waits until the Git source `name`'s artifact is `commit`; when, or `None` after `limit`.
async fn until_flux_fetched(
    client: &Client,
    name: &str,
    commit: &str,
    limit: Duration,
) -> Option<Instant> {
    let repositories = git_repository(client);
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(r) = repositories.get(name).await {
            if r.data["status"]["artifact"]["revision"]
                .as_str()
                .is_some_and(|rev| rev.ends_with(commit))
            {
                return Some(Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "Flux: source {name} did not fetch {} within {limit:?}",
        short(commit)
    );
    None
}

async fn flux_phase(site: &Site, plan: &Plan) -> EngineRun {
    let cluster = Cluster::start(cluster_options(plan))
        .await
        .expect("the Flux cluster starts (testenv/build.sh builds its parts)");
    let client = cluster.client();
    // The operator's part: the site's token as Flux's Git credentials, and root.yaml.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "verbund-git", "namespace": "flux-system"},
        "stringData": {"username": site.name, "password": site.token}
    }))
    .expect("a secret");
    Api::<Secret>::namespaced(client.clone(), "flux-system")
        .create(&PostParams::default(), &secret)
        .await
        .expect("the Git credentials");
    let root = parse_objects(&site.root_yaml).expect("root.yaml parses");
    apply_objects(&client, &root, "bench-operator")
        .await
        .expect("root.yaml applies");
    let tracker = Tracker::start(&client).await;

    let cpu_before = control_plane_cpu(&cluster);
    let start = Instant::now();
    let flux = cluster
        .start_flux()
        .await
        .expect("Flux's controllers start");
    let all_applied = tracker
        .until_complete("Flux", &site.namespaces, start, plan.apply_limit)
        .await;
    let processes: Vec<(String, Usage)> = flux
        .pids()
        .into_iter()
        .map(|(name, pid)| (name.to_owned(), Usage::of(pid)))
        .collect();
    let control_plane_cpu = control_plane_cpu(&cluster) - cpu_before;
    drop(tracker);

    // Every Kustomization at C1 (the root, the shards, one per booking) before a change.
    // After the objects, waits are bounded and do not fail the run: the agent's half is
    // still to come, and how far Flux got is itself the figure.
    let expected = site.namespaces.len() + 1;
    let settle_limit = Duration::from_secs(if plan.bench { 600 } else { 300 });
    let change_limit = Duration::from_secs(if plan.bench { 600 } else { 300 });
    let mut settled = Vec::new();
    let after = until_flux_settled(&client, &site.flux_commit, start, expected, settle_limit).await;
    settled.push((
        "engine start → every Kustomization applied at C1".to_owned(),
        after,
    ));

    // One change Flux finds on its own, one it is told about (on the booking's shard
    // source, which carries its folder).
    let mut interval_change = None;
    let mut index = 0;
    if plan.bench {
        let ns = namespace_of(&client, &site.bookings[index]).await;
        let source = flux_source_of(&ns);
        let mut change = site.change(index, 0, &ns).await;
        let (fetched, applied) = tokio::join!(
            until_flux_fetched(&client, &source, &change.commit, change_limit),
            until_config(
                &client,
                &ns,
                &change.email,
                Duration::from_millis(100),
                change_limit
            )
        );
        change.applied = applied.map(|at| at - change.committed);
        let fetched = fetched.map(|at| at.saturating_duration_since(change.committed));
        let after = until_flux_settled(
            &client,
            &change.commit,
            change.committed,
            expected,
            settle_limit / 2,
        )
        .await;
        settled.push((
            "one change (interval): commit → every Kustomization at it".to_owned(),
            after,
        ));
        interval_change = Some((fetched, change));
        index += 1;
    }
    let ns = namespace_of(&client, &site.bookings[index]).await;
    let source = flux_source_of(&ns);
    let mut change = site.change(index, 1, &ns).await;
    let requested = chrono::Utc::now().to_rfc3339();
    git_repository(&client)
        .patch(
            &source,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": requested}}})),
        )
        .await
        .expect("a reconcile requested");
    let applied = until_config(
        &client,
        &ns,
        &change.email,
        Duration::from_millis(20),
        change_limit,
    )
    .await;
    change.applied = applied.map(|at| at - change.committed);
    let after = until_flux_settled(
        &client,
        &change.commit,
        change.committed,
        expected,
        settle_limit / 2,
    )
    .await;
    settled.push((
        "one change (requested): commit → every Kustomization at it".to_owned(),
        after,
    ));
    let last_commit = change.commit.clone();
    eprintln!(
        "Flux: requested change applied after its commit: {:?}",
        change.applied
    );
    drop(flux);
    drop(cluster);
    EngineRun {
        all_applied,
        processes,
        control_plane_cpu,
        changes: vec![change],
        interval_change,
        settled,
        passes: Vec::new(),
        last_commit,
    }
}

/// Installs the agent as `verbund agent manifests --apply` describes it (all but the
/// Deployment: it runs here as a process) and returns its service account's kubeconfig.
async fn install_agent(site: &Site, cluster: &Cluster) -> PathBuf {
    let repository = format!("{}/git/{}.git", site.base, site.name);
    let out = verbund()
        .args([
            "agent",
            "manifests",
            "--site",
            &site.name,
            "--server",
            &site.base,
            "--apply",
        ])
        .args(["--repository", &repository])
        .output()
        .expect("verbund agent manifests");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects: Vec<Value> = parse_objects(&String::from_utf8_lossy(&out.stdout))
        .expect("install manifests")
        .into_iter()
        .filter(|o| o["kind"] != "Deployment")
        .collect();
    apply_objects(&cluster.client(), &objects, "bench-operator")
        .await
        .expect("the install manifests apply");
    cluster
        .kubeconfig_for_service_account("verbund-system", "verbund-agent", 6)
        .await
        .expect("the agent's service account token")
}

fn start_agent(site: &Site, cluster: &Cluster, kubeconfig: &Path) -> Running {
    let mut command = verbund();
    command
        .args([
            "agent", "run", "--server", &site.base, "--site", &site.name, "--apply",
        ])
        .args([
            "--repository",
            &format!("{}/git/{}.git", site.base, site.name),
        ])
        .args([
            "--environment",
            "prod",
            "--interval",
            "1s",
            "--resync",
            "10m",
        ])
        .arg("--cache-dir")
        .arg(site.dir.path().join("agent-cache"))
        .arg("--helm")
        .arg(cluster.bin("helm"))
        .env("KUBECONFIG", kubeconfig)
        .env("VERBUND_SITE_TOKEN", &site.token)
        .env("VERBUND_LOG", "info");
    Running::spawn(command, &site.dir.path().join("agent.log"))
}

/// The agent's `desired state applied` lines.
fn passes(log: &str) -> Vec<Pass> {
    log.lines()
        .filter(|l| l.contains("desired state applied"))
        .map(|line| {
            let field = |key: &str| {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(&format!("{key}=")))
                    .unwrap_or_default()
                    .to_owned()
            };
            Pass {
                whole: field("whole") == "true",
                commit: field("commit"),
                applied: field("applied").parse().unwrap_or(0),
                problems: field("problems").parse().unwrap_or(0),
                millis: field("millis").parse().unwrap_or(0),
            }
        })
        .collect()
}

/// Waits until the agent logged a pass of `commit`.
async fn until_pass(agent: &Running, commit: &str, limit: Duration) -> Option<Pass> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(p) = passes(&agent.log_text())
            .into_iter()
            .find(|p| p.commit == commit)
        {
            return Some(p);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

async fn agent_phase(site: &Site, plan: &Plan, commit: &str) -> EngineRun {
    let cluster = Cluster::start(cluster_options(plan))
        .await
        .expect("the agent's cluster starts");
    let client = cluster.client();
    let kubeconfig = install_agent(site, &cluster).await;
    let tracker = Tracker::start(&client).await;

    let cpu_before = control_plane_cpu(&cluster);
    let start = Instant::now();
    let agent = start_agent(site, &cluster, &kubeconfig);
    let all_applied = tracker
        .until_complete("agent", &site.namespaces, start, plan.apply_limit)
        .await;
    let processes = vec![("verbund agent".to_owned(), Usage::of(agent.pid()))];
    let control_plane_cpu = control_plane_cpu(&cluster) - cpu_before;
    drop(tracker);
    let first = until_pass(&agent, commit, Duration::from_secs(600))
        .await
        .expect("the agent logs its first pass");
    eprintln!("agent: first pass {first:?}");

    // Changes at spread moments of the agent's 1 s poll, so the poll's phase is sampled.
    let mut changes = Vec::new();
    for n in 0..plan.changes {
        let index = 2 + n % (site.bookings.len() - 2);
        let ns = namespace_of(&client, &site.bookings[index]).await;
        tokio::time::sleep(Duration::from_millis(300 + (n as u64 * 397) % 1_000)).await;
        let mut change = site.change(index, 100 + n, &ns).await;
        let applied = until_config(
            &client,
            &ns,
            &change.email,
            Duration::from_millis(20),
            Duration::from_secs(120),
        )
        .await;
        change.applied = applied.map(|at| at - change.committed);
        let pass = until_pass(&agent, &change.commit, Duration::from_secs(60)).await;
        eprintln!(
            "agent: change {n} applied {:?} after its commit (pass {:?} ms)",
            change.applied,
            pass.map(|p| p.millis)
        );
        changes.push(change);
    }
    let last_commit = changes
        .last()
        .map_or_else(|| commit.to_owned(), |c| c.commit.clone());
    let passes = passes(&agent.log_text());
    drop(agent);
    drop(cluster);
    EngineRun {
        all_applied,
        processes,
        control_plane_cpu,
        changes,
        interval_change: None,
        settled: Vec::new(),
        passes,
        last_commit,
    }
}

// ---------------------------------------------------------------------------------------
// The report

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// An incremental fetch from verbund's Git endpoint.
struct Fetched {
    time: Duration,
    commits: u64,
    objects_mb: f64,
}

/// Commit → applied of the changes that were applied, in seconds.
fn applied_seconds(changes: &[&Change]) -> Vec<f64> {
    changes
        .iter()
        .filter_map(|c| c.applied.map(|a| a.as_secs_f64()))
        .collect()
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::max)
}

fn report(plan: &Plan, site: &Site, flux: Option<&EngineRun>, agent: &EngineRun) {
    println!();
    if !plan.bench {
        println!("smoke run (no `--bench`): these figures are no measurement");
    }
    println!(
        "{} bookings of {OFFERING} (plan s) on {}, {} objects in all; Flux applied {}, the agent {}",
        site.namespaces.len(),
        site.name,
        site.namespaces.len() * PER_BOOKING,
        flux.map_or("nothing (not run: VERBUND_BENCH_ENGINES)", |_| short(&site.flux_commit)),
        agent
            .passes
            .iter()
            .find(|p| p.whole)
            .map_or("?", |p| short(&p.commit)),
    );
    println!();
    println!("| engine | all applied | CPU s | peak MiB | API server + etcd CPU s |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let agent_usage = agent.processes.first().map(|(_, u)| *u).unwrap_or_default();
    println!(
        "| `verbund agent run --apply` | **{:.1} s** | **{:.1}** ({:.1} + {:.1} git) | **{:.0}** | {:.1} |",
        agent.all_applied.as_secs_f64(),
        agent_usage.total(),
        agent_usage.cpu,
        agent_usage.children,
        agent_usage.peak_mib,
        agent.control_plane_cpu
    );
    if let Some(flux) = flux {
        report_flux(flux);
    }
    println!();
    report_changes(flux, agent);
    report_passes(agent);
    for (what, after) in flux.iter().flat_map(|f| &f.settled) {
        println!("Flux, {what}: {after}");
    }
    let verdict = |met: bool| if met { "met" } else { "not met" };
    let applied = applied_seconds(&agent.changes.iter().collect::<Vec<_>>());
    let missed = agent.changes.len() - applied.len();
    println!();
    if let Some(flux) = flux {
        println!(
            "goal: the agent at least as fast as Flux ({:.1} s vs {:.1} s): {}",
            agent.all_applied.as_secs_f64(),
            flux.all_applied.as_secs_f64(),
            verdict(agent.all_applied <= flux.all_applied)
        );
    }
    println!(
        "goal: one change applied by the agent within 2 s of its commit (max {:.2} s, {missed} missed): {}",
        max(&applied),
        verdict(missed == 0 && max(&applied) <= 2.0)
    );
}

/// Flux's rows of the table of whole-site applies.
fn report_flux(flux: &EngineRun) {
    let kustomize = flux
        .processes
        .iter()
        .find(|(n, _)| n == "kustomize-controller")
        .map(|(_, u)| *u)
        .unwrap_or_default();
    let cpu: f64 = flux.processes.iter().map(|(_, u)| u.total()).sum();
    let peak: f64 = flux.processes.iter().map(|(_, u)| u.peak_mib).sum();
    println!(
        "| Flux (source + kustomize + helm-controller) | **{:.1} s** | **{cpu:.1}** | **{peak:.0}** | {:.1} |",
        flux.all_applied.as_secs_f64(),
        flux.control_plane_cpu
    );
    println!(
        "| of which kustomize-controller | | {:.1} | {:.0} | |",
        kustomize.total(),
        kustomize.peak_mib
    );
    for (name, usage) in flux
        .processes
        .iter()
        .filter(|(n, _)| n != "kustomize-controller")
    {
        println!(
            "| of which {name} | | {:.1} | {:.0} | |",
            usage.total(),
            usage.peak_mib
        );
    }
}

fn report_changes(flux: Option<&EngineRun>, agent: &EngineRun) {
    println!("| one booking change | n | commit → applied, median | max | missed | PATCH → commit, median | API answer, median |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let row = |what: &str, changes: &[&Change]| {
        let applied = applied_seconds(changes);
        let committed: Vec<f64> = changes
            .iter()
            .map(|c| c.patch_to_commit.as_secs_f64() * 1e3)
            .collect();
        let answered: Vec<f64> = changes
            .iter()
            .map(|c| c.answered.as_secs_f64() * 1e3)
            .collect();
        println!(
            "| {what} | {} | **{:.2} s** | {:.2} s | {} | {:.0} ms | {:.0} ms |",
            changes.len(),
            median(applied.clone()),
            max(&applied),
            changes.len() - applied.len(),
            median(committed),
            median(answered)
        );
    };
    row(
        "agent (`--interval 1s`)",
        &agent.changes.iter().collect::<Vec<_>>(),
    );
    let Some(flux) = flux else {
        println!();
        return;
    };
    if let Some((fetched, change)) = &flux.interval_change {
        row("Flux, found by its GitRepository interval (1 m)", &[change]);
        println!(
            "| of which commit → the shard source's artifact | | {} | | | | |",
            fetched.map_or("not within the limit".to_owned(), |f| format!(
                "{:.1} s",
                f.as_secs_f64()
            ))
        );
    }
    row(
        "Flux, reconcile requested at the commit (as a webhook Receiver does)",
        &flux.changes.iter().collect::<Vec<_>>(),
    );
    println!();
}

fn report_passes(agent: &EngineRun) {
    let whole: Vec<&Pass> = agent.passes.iter().filter(|p| p.whole).collect();
    let incremental: Vec<f64> = agent
        .passes
        .iter()
        .filter(|p| !p.whole)
        .map(|p| p.millis as f64)
        .collect();
    if let Some(first) = whole.first() {
        println!(
            "agent, first (whole) pass: {} objects applied, {} problems, millis={} (read the folder + apply + prune; the fetch before it is not in it)",
            first.applied, first.problems, first.millis
        );
    }
    println!(
        "agent, incremental passes: {} of them, millis= median {:.0}, max {:.0}",
        incremental.len(),
        median(incremental.clone()),
        max(&incremental)
    );
}

/// The machine's load while the bench ran.
struct Load {
    start: Option<(u64, u64)>,
}

impl Load {
    fn start() -> Load {
        print_loadavg("start");
        Load { start: cpu_ticks() }
    }

    fn report(&self) {
        print_loadavg("end");
        if let (Some((busy0, total0)), Some((busy1, total1))) = (self.start, cpu_ticks()) {
            let total = (total1 - total0).max(1) as f64;
            println!(
                "CPU during the run: machine {:.0}% busy (of all cores)",
                100.0 * (busy1 - busy0) as f64 / total
            );
        }
    }
}

fn print_loadavg(when: &str) {
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at {when}: {}", l.trim());
    }
}

/// Busy and total clock ticks of the machine (Linux).
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = cpu.iter().sum();
    let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}
