//! How long the GV100AD import takes (target: under 3 s into SQLite).
//!
//! `cargo bench -p verbund-store --bench import` measures, with the real municipality
//! directory from `shared/data` (never copied into the repository):
//!
//! - `gv100ad/parse`: parsing the file held in memory;
//! - `gv100ad_sqlite/cold_import`: parse, open a new SQLite file (schema migrations
//!   included) and import all 11,204 organisations, a fresh database each iteration;
//! - `gv100ad_sqlite/reimport_unchanged`: parse and import again into a database that
//!   already holds this edition, so that nothing changes (the idempotent second run);
//! - the same two on PostgreSQL (`VERBUND_TEST_POSTGRES`, default
//!   `postgres://postgres@127.0.0.1:5432/test`; a new database per cold iteration,
//!   created and dropped outside the timed part). An unreachable server is skipped with a
//!   note.
//!
//! Before the criterion groups it prints the time of each phase of one cold import.
//!
//! Without `--bench` (as under `cargo test --all-targets`) it only smoke-tests the code
//! paths on three small Länder, so the test suite does not spend minutes here.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use sqlx::{Connection, PgConnection};
use tokio::runtime::Runtime;
use verbund_domain::directory::KeyedOrganisation;
use verbund_import::gv100ad::{self, Directory};
use verbund_store::Store;

const GV100AD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/GV100AD_301121.ASC"
);
const SOURCE: &str = "gv100ad-bench";
const ACTOR: &str = "system/bench";
/// Organisations one import of the whole directory creates: the Bund, 16 Länder, 400
/// Kreise and 10,787 Gemeinden.
const ORGANISATIONS: u64 = 11_204;
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime");
    if !Path::new(GV100AD).exists() {
        if bench {
            panic!("the GV100AD file is missing: {GV100AD}");
        }
        println!("import bench: skipped, {GV100AD} is missing");
        return;
    }
    if bench {
        run_benchmarks(&rt);
    } else {
        smoke(&rt);
    }
}

/// The file's bytes, read once.
fn file() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        std::fs::read(GV100AD).unwrap_or_else(|e| panic!("cannot read {GV100AD}: {e}"))
    })
}

fn parse() -> Directory {
    gv100ad::parse(Cursor::new(file())).unwrap_or_else(|e| panic!("cannot parse {GV100AD}: {e}"))
}

/// Where the SQLite files go: under `target/tmp`, on the same disk as a real data folder
/// (not a tmpfs), so that `synchronous = FULL` pays for its fsyncs.
fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("import-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("cannot create a scratch folder")
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("verbund.db").display())
}

async fn import(
    store: &Store,
    records: &[KeyedOrganisation],
) -> verbund_domain::directory::ImportSummary {
    store
        .import_organisations(ACTOR, SOURCE, records, Utc::now())
        .await
        .unwrap_or_else(|e| panic!("import failed: {e}"))
}

// ---------------------------------------------------------------------------------------
// PostgreSQL scratch databases

/// A PostgreSQL server the bench may create and drop databases on.
#[derive(Clone)]
struct Postgres {
    admin: String,
}

impl Postgres {
    /// `None`, with a note, when the server does not answer.
    async fn connect() -> Option<Postgres> {
        let admin =
            std::env::var("VERBUND_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.into());
        match PgConnection::connect(&admin).await {
            Ok(c) => {
                let _ = c.close().await;
                Some(Postgres { admin })
            }
            Err(e) => {
                println!(
                    "note: PostgreSQL at `{admin}` is unreachable ({e}); skipping its benchmarks"
                );
                None
            }
        }
    }

    async fn admin_execute(&self, sql: &str) {
        let mut conn = PgConnection::connect(&self.admin)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to `{}`: {e}", self.admin));
        sqlx::query(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
        let _ = conn.close().await;
    }

    /// Creates an empty database and returns its name and URL.
    async fn create(&self) -> (String, String) {
        let name = format!("verbund_bench_{}", uuid::Uuid::now_v7().simple());
        self.admin_execute(&format!("CREATE DATABASE {name}")).await;
        let url = with_database(&self.admin, &name);
        (name, url)
    }

    async fn drop(&self, name: &str) {
        self.admin_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
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
// The backends, seen alike

#[derive(Clone)]
enum Backend {
    Sqlite,
    Postgres(Postgres),
}

/// A fresh, empty database: its URL and what removes it.
struct Fresh {
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    async fn fresh(&self) -> Fresh {
        match self {
            Backend::Sqlite => {
                let dir = scratch_dir();
                Fresh {
                    url: sqlite_url(dir.path()),
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres(pg) => {
                let (name, url) = pg.create().await;
                Fresh {
                    url,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    async fn remove(&self, fresh: Fresh) {
        if let (Backend::Postgres(pg), Some(name)) = (self, &fresh.pg_name) {
            pg.drop(name).await;
        }
    }
}

async fn open(url: &str) -> Store {
    Store::open(url)
        .await
        .unwrap_or_else(|e| panic!("cannot open the store at `{url}`: {e}"))
}

// ---------------------------------------------------------------------------------------
// Benchmarks

fn run_benchmarks(rt: &Runtime) {
    let load = Load::start();
    let mut c = Criterion::default().configure_from_args();
    let records = parse().organisations.len();
    println!(
        "GV100AD: {} bytes, {records} records, {ORGANISATIONS} organisations with the Bund",
        file().len()
    );

    let mut backends = vec![Backend::Sqlite];
    if let Some(pg) = rt.block_on(Postgres::connect()) {
        backends.push(Backend::Postgres(pg));
    }
    for backend in &backends {
        rt.block_on(phases(backend));
    }

    let mut group = c.benchmark_group("gv100ad");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(file().len() as u64));
    group.bench_function("parse", |b| b.iter(parse));
    group.finish();

    for backend in &backends {
        let mut group = c.benchmark_group(format!("gv100ad_{}", backend.name()));
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(12))
            .throughput(Throughput::Elements(ORGANISATIONS));

        // Parse + open a new database (migrations) + import everything.
        group.bench_function(BenchmarkId::from_parameter("cold_import"), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let backend = backend.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let fresh = backend.fresh().await;
                        let start = Instant::now();
                        let dir = parse();
                        let store = open(&fresh.url).await;
                        let summary = import(&store, &dir.organisations).await;
                        total += start.elapsed();
                        assert_eq!(summary.created, ORGANISATIONS);
                        store.close().await;
                        backend.remove(fresh).await;
                    }
                    total
                }
            })
        });

        // The second run of the same edition: parse + import, nothing changes.
        let fresh = rt.block_on(backend.fresh());
        let store = rt.block_on(async {
            let store = open(&fresh.url).await;
            import(&store, &parse().organisations).await;
            store
        });
        group.bench_function(BenchmarkId::from_parameter("reimport_unchanged"), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let store = store.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let dir = parse();
                        let summary = import(&store, &dir.organisations).await;
                        total += start.elapsed();
                        assert_eq!((summary.created, summary.updated), (0, 0));
                        assert_eq!(summary.unchanged, ORGANISATIONS - 1);
                    }
                    total
                }
            })
        });
        group.finish();
        rt.block_on(async {
            store.close().await;
            backend.remove(fresh).await;
        });
    }
    c.final_summary();
    load.report();
}

/// Times the phases of one cold import (median of three runs) and prints them.
async fn phases(backend: &Backend) {
    let mut runs: Vec<[Duration; 4]> = Vec::new();
    for _ in 0..3 {
        let fresh = backend.fresh().await;
        let t0 = Instant::now();
        let dir = parse();
        let t1 = Instant::now();
        let store = open(&fresh.url).await;
        let t2 = Instant::now();
        let summary = import(&store, &dir.organisations).await;
        let t3 = Instant::now();
        assert_eq!(summary.created, ORGANISATIONS);
        let again = import(&store, &dir.organisations).await;
        let t4 = Instant::now();
        assert_eq!(again.unchanged, ORGANISATIONS - 1);
        runs.push([t1 - t0, t2 - t1, t3 - t2, t4 - t3]);
        store.close().await;
        backend.remove(fresh).await;
    }
    let median = |i: usize| {
        let mut v: Vec<Duration> = runs.iter().map(|r| r[i]).collect();
        v.sort();
        v[v.len() / 2]
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (parse, open, import, again) = (median(0), median(1), median(2), median(3));
    println!(
        "{} cold import, phases (median of 3): parse {:.0} ms, open+migrate {:.0} ms, \
         import {:.0} ms => {:.0} ms; re-import (no parse) {:.0} ms",
        backend.name(),
        ms(parse),
        ms(open),
        ms(import),
        ms(parse + open + import),
        ms(again),
    );
}

// ---------------------------------------------------------------------------------------
// Smoke run under `cargo test`

/// Runs each code path once on Hamburg, Bremen and Berlin only.
fn smoke(rt: &Runtime) {
    let dir = parse();
    let subset: Vec<KeyedOrganisation> = dir
        .organisations
        .into_iter()
        .filter(|o| ["02", "04", "11"].iter().any(|l| o.ars.starts_with(l)))
        .collect();
    assert!(!subset.is_empty());
    rt.block_on(async {
        let mut backends = vec![Backend::Sqlite];
        if let Some(pg) = Postgres::connect().await {
            backends.push(Backend::Postgres(pg));
        }
        for backend in backends {
            let fresh = backend.fresh().await;
            let store = open(&fresh.url).await;
            let first = import(&store, &subset).await;
            assert_eq!(first.created, subset.len() as u64 + 1);
            let second = import(&store, &subset).await;
            assert_eq!(second.unchanged, subset.len() as u64);
            store.close().await;
            backend.remove(fresh).await;
            println!(
                "import bench smoke ({}): {} records ok; `cargo bench` for figures",
                backend.name(),
                subset.len()
            );
        }
    });
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
