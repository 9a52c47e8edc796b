//! Latency of `GET /api/v1/organisations?land=…` with the whole directory loaded
//! (target: p99 under 5 ms).
//!
//! `cargo bench -p verbund-api --bench organisations` loads the real GV100AD file from
//! `shared/data` (11,204 organisations) into a fresh SQLite database, and into a fresh
//! PostgreSQL database beside it (`VERBUND_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/test`; skipped with a note when unreachable),
//! creates a federation admin with a bearer token, and sends sequential requests:
//!
//! - `land`: `?land=01` … `?land=16` in turn, default page (100 items);
//! - `land+level+name`: `?land=09&level=gemeinde&name=B`;
//! - `deep page`: `?land=XX&after=<cursor>` with the cursor that page 5 returned, in turn
//!   for every Land that has a sixth page.
//!
//! Each scenario runs in-process through `tower::ServiceExt::oneshot` (router, auth,
//! database, JSON, no HTTP) and over a real socket (`axum::serve` on 127.0.0.1, one
//! keep-alive HTTP/1.1 connection, a plain hyper client). Every request is timed on its
//! own with `Instant` after a warm-up, and the table of mean/p50/p95/p99/max is printed
//! (`VERBUND_BENCH_REQUESTS` changes the 5,000 requests per scenario). Criterion then
//! measures the mean of the in-process requests per scenario.
//!
//! Without `--bench` (as under `cargo test --all-targets`) it loads three small Länder and
//! sends a handful of requests per scenario, so the test suite does not spend minutes here.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Cursor;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::header::{AUTHORIZATION, HOST};
use axum::http::{HeaderValue, Request, StatusCode};
use axum::Router;
use chrono::Utc;
use criterion::Criterion;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use sqlx::{Connection, PgConnection};
use tokio::runtime::Runtime;
use tower::ServiceExt;
use verbund_api::AppState;
use verbund_domain::account::{Membership, UserSpec};
use verbund_domain::directory::KeyedOrganisation;
use verbund_store::Store;

const GV100AD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/GV100AD_301121.ASC"
);
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
const ACTOR: &str = "system/bench";
/// The issue's target for the 99th percentile.
const TARGET_P99: Duration = Duration::from_millis(5);

/// How much one run does.
struct Plan {
    bench: bool,
    requests: usize,
    warmup: usize,
    /// Land keys whose organisations are loaded; `None` loads all.
    laender: Option<&'static [&'static str]>,
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let plan = if bench {
        Plan {
            bench,
            requests: std::env::var("VERBUND_BENCH_REQUESTS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(5_000),
            warmup: 500,
            laender: None,
        }
    } else {
        Plan {
            bench,
            requests: 20,
            warmup: 2,
            laender: Some(&["01", "02", "04"]),
        }
    };
    if !Path::new(GV100AD).exists() {
        if bench {
            panic!("the GV100AD file is missing: {GV100AD}");
        }
        println!("organisations bench: skipped, {GV100AD} is missing");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime");
    run(&rt, &plan);
}

fn run(rt: &Runtime, plan: &Plan) {
    let load = Load::start();
    let records = records(plan.laender);
    let mut fixtures = vec![rt.block_on(Fixture::sqlite(&records))];
    if let Some(pg) = rt.block_on(Fixture::postgres(&records)) {
        fixtures.push(pg);
    }

    let mut criterion = plan
        .bench
        .then(|| Criterion::default().configure_from_args());
    let mut rows = Vec::new();
    for f in &fixtures {
        let scenarios = rt.block_on(f.scenarios(plan.bench));
        for s in &scenarios {
            println!(
                "{} `{}`: {} URI(s), {:.1} items per response, e.g. {}",
                f.backend,
                s.name,
                s.uris.len(),
                s.items,
                s.uris[0]
            );
        }
        for s in &scenarios {
            rt.block_on(f.in_process(&s.uris, plan.warmup));
            let times = rt.block_on(f.in_process(&s.uris, plan.requests));
            rows.push(Row::new(f.backend, "in-process", s.name, times));
        }
        let server = rt.block_on(Server::start(f.app.clone()));
        for s in &scenarios {
            let times = rt.block_on(async {
                let mut client = Client::connect(server.addr).await;
                client.run(&s.uris, &f.auth, plan.warmup).await;
                client.run(&s.uris, &f.auth, plan.requests).await
            });
            rows.push(Row::new(f.backend, "socket", s.name, times));
        }
        rt.block_on(server.stop());

        if let Some(c) = criterion.as_mut() {
            let mut group = c.benchmark_group(format!("organisations_{}", f.backend));
            group
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(3));
            for s in &scenarios {
                // The same loop as the table's, so that the means compare.
                group.bench_function(s.name, |b| {
                    b.to_async(rt).iter_custom(|iters| async move {
                        f.in_process(&s.uris, iters as usize).await.iter().sum()
                    })
                });
            }
            group.finish();
        }
    }
    load.report();
    print_table(&rows, plan);
    for f in fixtures {
        rt.block_on(f.remove());
    }
    if !plan.bench {
        println!("organisations bench smoke: ok; `cargo bench` for figures");
    }
}

/// The organisations of the real directory, or of the given Länder only.
fn records(laender: Option<&[&str]>) -> Vec<KeyedOrganisation> {
    let file = std::fs::read(GV100AD).unwrap_or_else(|e| panic!("cannot read {GV100AD}: {e}"));
    let dir = verbund_import::gv100ad::parse(Cursor::new(file))
        .unwrap_or_else(|e| panic!("cannot parse {GV100AD}: {e}"));
    match laender {
        None => dir.organisations,
        Some(l) => dir
            .organisations
            .into_iter()
            .filter(|o| l.iter().any(|l| o.ars.starts_with(l)))
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------
// A loaded database behind the app

struct Fixture {
    backend: &'static str,
    app: Router,
    store: Store,
    auth: HeaderValue,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL server's URL and the database to drop.
    pg: Option<(String, String)>,
}

/// A scenario: the URIs requested in turn.
struct Scenario {
    name: &'static str,
    uris: Vec<String>,
    /// Mean items per response.
    items: f64,
}

impl Fixture {
    async fn sqlite(records: &[KeyedOrganisation]) -> Fixture {
        // Under target/tmp, on a real disk like a data folder.
        let dir = tempfile::Builder::new()
            .prefix("organisations-bench-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("cannot create a scratch folder");
        let url = format!("sqlite://{}", dir.path().join("verbund.db").display());
        let mut f = Fixture::load("sqlite", &url, records).await;
        f._dir = Some(dir);
        f
    }

    /// `None`, with a note, when PostgreSQL does not answer.
    async fn postgres(records: &[KeyedOrganisation]) -> Option<Fixture> {
        let admin =
            std::env::var("VERBUND_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.into());
        let mut conn = match PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => {
                println!("note: PostgreSQL at `{admin}` is unreachable ({e}); skipping it");
                return None;
            }
        };
        let name = format!("verbund_bench_{}", uuid::Uuid::now_v7().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create database `{name}`: {e}"));
        let _ = conn.close().await;
        let mut f = Fixture::load("postgres", &with_database(&admin, &name), records).await;
        f.pg = Some((admin, name));
        Some(f)
    }

    /// Opens the store, imports the directory, creates the admin and its token.
    async fn load(backend: &'static str, url: &str, records: &[KeyedOrganisation]) -> Fixture {
        let store = Store::open(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open the store at `{url}`: {e}"));
        let now = Utc::now();
        let start = Instant::now();
        let summary = store
            .import_organisations(ACTOR, "gv100ad-bench", records, now)
            .await
            .expect("the import failed");
        println!(
            "{backend}: imported {} organisations in {:.0} ms",
            summary.created,
            start.elapsed().as_secs_f64() * 1000.0
        );
        let user = store
            .create_user(
                ACTOR,
                &UserSpec {
                    name: "bench-admin".into(),
                    display_name: "Benchmark".into(),
                    email: None,
                    memberships: vec![Membership::federation_admin()],
                },
                now,
            )
            .await
            .expect("cannot create the user");
        let (_, secret) = verbund_api::issue_token(&store, ACTOR, &user.id, "bench", None, now)
            .await
            .expect("cannot issue the token");
        let auth = HeaderValue::from_str(&format!("Bearer {secret}")).expect("token is ASCII");
        Fixture {
            backend,
            app: verbund_api::app(AppState::new(store.clone())),
            store,
            auth,
            _dir: None,
            pg: None,
        }
    }

    async fn remove(self) {
        self.store.close().await;
        if let Some((admin, name)) = self.pg {
            let dropped = async {
                let mut conn = PgConnection::connect(&admin).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            };
            if let Err(e) = dropped.await {
                println!("could not drop the bench database `{name}`: {e}");
            }
        }
    }

    async fn get(&self, uri: &str) -> Bytes {
        get(&self.app, &self.auth, uri).await
    }

    async fn page(&self, uri: &str) -> (usize, Option<String>) {
        let v: serde_json::Value = serde_json::from_slice(&self.get(uri).await).expect("JSON");
        let items = v["items"].as_array().map_or(0, Vec::len);
        (items, v["next"].as_str().map(str::to_string))
    }

    async fn scenarios(&self, bench: bool) -> Vec<Scenario> {
        let base = "/api/v1/organisations";
        let land: Vec<String> = (1..=16).map(|l| format!("{base}?land={l:02}")).collect();
        let filtered = vec![format!("{base}?land=09&level=gemeinde&name=B")];
        let mut deep = Vec::new();
        for uri in &land {
            let mut next = None;
            for _ in 0..5 {
                let page = match &next {
                    None => uri.clone(),
                    Some(after) => format!("{uri}&after={after}"),
                };
                next = self.page(&page).await.1;
                if next.is_none() {
                    break;
                }
            }
            if let Some(after) = next {
                deep.push(format!("{uri}&after={after}"));
            }
        }
        assert!(
            !bench || deep.len() >= 5,
            "too few Länder with a sixth page: {deep:?}"
        );
        let mut out = Vec::new();
        for (name, uris) in [
            ("land", land),
            ("land+level+name", filtered),
            ("deep page", deep),
        ] {
            if uris.is_empty() {
                continue;
            }
            let mut items = 0;
            for u in &uris {
                items += self.page(u).await.0;
            }
            out.push(Scenario {
                name,
                items: items as f64 / uris.len() as f64,
                uris,
            });
        }
        out
    }

    /// `n` sequential requests through the router, each timed. They run in a task of
    /// the runtime, as a server's handlers do, not on the thread that blocks on it.
    async fn in_process(&self, uris: &[String], n: usize) -> Vec<Duration> {
        let (app, auth, uris) = (self.app.clone(), self.auth.clone(), uris.to_vec());
        tokio::spawn(async move {
            let mut times = Vec::with_capacity(n);
            for i in 0..n {
                let start = Instant::now();
                std::hint::black_box(get(&app, &auth, &uris[i % uris.len()]).await);
                times.push(start.elapsed());
            }
            times
        })
        .await
        .expect("the request loop panicked")
    }
}

/// One request through the router; panics unless it answers 200.
async fn get(app: &Router, auth: &HeaderValue, uri: &str) -> Bytes {
    let req = Request::builder()
        .uri(uri)
        .header(AUTHORIZATION, auth.clone())
        .body(Body::empty())
        .expect("a valid request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("a body").to_bytes();
    assert_eq!(
        status,
        StatusCode::OK,
        "{uri}: {}",
        String::from_utf8_lossy(&body)
    );
    body
}

/// Replaces the database name in a `postgres://` URL, keeping its query string.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    format!("{server}/{name}{query}")
}

// ---------------------------------------------------------------------------------------
// Over a real socket

/// The app served as `verbund serve` serves it, on a free port of 127.0.0.1.
struct Server {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(app: Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot listen on 127.0.0.1");
        let addr = listener.local_addr().expect("a local address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the server failed");
        });
        Server { addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: HeaderValue,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("cannot connect to the server");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Client {
            sender,
            host: HeaderValue::from_str(&addr.to_string()).expect("an address is ASCII"),
        }
    }

    /// `n` sequential requests, each timed from sending to the last body byte.
    async fn run(&mut self, uris: &[String], auth: &HeaderValue, n: usize) -> Vec<Duration> {
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let uri = &uris[i % uris.len()];
            self.sender.ready().await.expect("the connection is open");
            let req = Request::builder()
                .uri(uri.as_str())
                .header(HOST, self.host.clone())
                .header(AUTHORIZATION, auth.clone())
                .body(Empty::<Bytes>::new())
                .expect("a valid request");
            let start = Instant::now();
            let resp = self.sender.send_request(req).await.expect("a response");
            let status = resp.status();
            let body = resp.into_body().collect().await.expect("a body").to_bytes();
            times.push(start.elapsed());
            assert_eq!(
                status,
                StatusCode::OK,
                "{uri}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        times
    }
}

// ---------------------------------------------------------------------------------------
// Statistics

struct Row {
    backend: &'static str,
    path: &'static str,
    scenario: &'static str,
    n: usize,
    mean: Duration,
    p50: Duration,
    p95: Duration,
    p99: Duration,
    max: Duration,
}

impl Row {
    fn new(
        backend: &'static str,
        path: &'static str,
        scenario: &'static str,
        mut times: Vec<Duration>,
    ) -> Row {
        times.sort();
        let n = times.len();
        // Nearest rank.
        let pct = |p: f64| times[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Row {
            backend,
            path,
            scenario,
            n,
            mean: times.iter().sum::<Duration>() / n as u32,
            p50: pct(0.50),
            p95: pct(0.95),
            p99: pct(0.99),
            max: times[n - 1],
        }
    }
}

fn print_table(rows: &[Row], plan: &Plan) {
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    println!();
    if plan.bench {
        println!(
            "GET /api/v1/organisations, sequential requests, {} per row after {} warm-up; \
             times in ms",
            plan.requests, plan.warmup
        );
    } else {
        println!("smoke run (no `--bench`): these times are no measurement");
    }
    println!();
    println!("| backend | path | scenario | n | mean | p50 | p95 | p99 | max | p99 < 5 ms |");
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let verdict = match (plan.bench, r.p99 < TARGET_P99) {
            (false, _) => "-",
            (true, true) => "met",
            (true, false) => "NOT met",
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {verdict} |",
            r.backend,
            r.path,
            r.scenario,
            r.n,
            ms(r.mean),
            ms(r.p50),
            ms(r.p95),
            ms(r.p99),
            ms(r.max),
        );
    }
    println!();
}

/// Shows how busy the machine was while the benchmark ran, since other work on it (two
/// cores, shared with builds) disturbs the figures: the load average, and the CPU time of
/// the whole machine and of this process (PostgreSQL's server counts as the machine's).
struct Load {
    start: Option<(u64, u64, u64)>,
}

impl Load {
    fn start() -> Load {
        print_loadavg("start");
        Load { start: cpu_ticks() }
    }

    fn report(&self) {
        print_loadavg("end");
        if let (Some((busy0, total0, own0)), Some((busy1, total1, own1))) =
            (self.start, cpu_ticks())
        {
            let total = (total1 - total0).max(1) as f64;
            println!(
                "CPU during the run: machine {:.0}% busy, this process {:.0}% (of all cores)",
                100.0 * (busy1 - busy0) as f64 / total,
                100.0 * (own1 - own0) as f64 / total,
            );
        }
    }
}

fn print_loadavg(when: &str) {
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at {when}: {}", l.trim());
    }
}

/// Busy and total clock ticks of the machine, and this process's, from `/proc` (Linux).
fn cpu_ticks() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = cpu.iter().take(8).sum();
    let idle = cpu.get(3)? + cpu.get(4)?;
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name: state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = own.rsplit(')').next()?.split_whitespace().collect();
    let own = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((total - idle, total, own))
}
