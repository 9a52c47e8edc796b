//! Portal page loads at the scale of Germany, on SQLite and PostgreSQL.
//!
//! Setup (not timed): `verbund_testkit::germany` (the real 10,787 Gemeinden, 60 sites)
//! with 100,000 bookings in all: 99,900 bulk-loaded over the other Gemeinden and 100 for
//! the first Gemeinde placed one by one through the API's booking handler (Cedar
//! placement, decision stored). Every site then reports every delivered booking ready
//! (`Store::ingest_report`), so the fleet has health and observed versions. An
//! org-admin of that Gemeinde and a federation admin get passwords and sign in once
//! through `POST /login`; their session cookies are used below.
//!
//! Timed: complete `GET`s through the real router (API and portal merged as
//! `verbund serve` does, `tower::ServiceExt::oneshot`, whole body read) —
//! `/organisation` and `/organisation/data` as the org-admin (100 bookings),
//! `/fleet` as the federation admin (100,000 bookings), `/catalog` and
//! `/bookings/<id>` for context. Each page: p50, p99 and max of `VERBUND_BENCH_READS`
//! (default 200) requests after 20 warm-up ones, then criterion's estimate.
//!
//! Target (issue 7): every page under 100 ms of server time.
//! `cargo bench -p verbund-web --bench pages` runs it in full (`VERBUND_BENCH_BOOKINGS`
//! changes the 100,000; `VERBUND_BENCH_BACKENDS=sqlite` skips PostgreSQL); without
//! `--bench`, as under `cargo test --all-targets`, a small smoke version runs on SQLite.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::Utc;
use criterion::{Criterion, SamplingMode};
use serde_json::json;
use tokio::runtime::Runtime;
use tower::ServiceExt;
use verbund_api::extract::ApiJson;
use verbund_api::{AppState, Caller};
use verbund_domain::account::{Membership, Principal, Role, UserSpec};
use verbund_domain::booking::{BookingSpec, BookingState};
use verbund_domain::directory::Environment;
use verbund_domain::report::SiteReport;
use verbund_store::Store;
use verbund_testkit::measure::{backends, env_usize, full_run, ms, percentile, send};
use verbund_testkit::{germany, Scratch};
use verbund_web::{PortalConfig, WebState};

// The allocator `verbund` runs with (see crates/verbund-cli/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bookings of the one organisation the org-admin pages are about.
const ORG_BOOKINGS: usize = 100;
const PASSWORD: &str = "bench-password-long-enough";
const BATCH: usize = 5_000;

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A page and who loads it.
struct Page {
    name: &'static str,
    uri: String,
    cookie: String,
    /// Text every answer must contain, and how often.
    expect: (&'static str, usize),
}

struct Fixture {
    backend: &'static str,
    app: Router,
    store: Store,
    scratch: Scratch,
    pages: Vec<Page>,
}

/// One complete page load; returns its time and the body's size.
async fn load(app: &Router, page: &Page) -> (Duration, usize) {
    let req = Request::get(&page.uri)
        .header(COOKIE, &page.cookie)
        .body(Body::empty())
        .expect("request");
    let (status, bytes, took) = send(app, req).await;
    assert_eq!(status, StatusCode::OK, "{}", page.uri);
    let body = std::str::from_utf8(&bytes).expect("utf-8");
    assert!(
        body.matches(page.expect.0).count() >= page.expect.1,
        "{}: fewer than {} × `{}`",
        page.uri,
        page.expect.1,
        page.expect.0
    );
    (took, bytes.len())
}

/// Signs in through the form and returns the session cookie (`name=value`).
async fn sign_in(app: &Router, name: &str) -> String {
    let csrf = "0".repeat(64);
    let req = Request::post("/login")
        .header(COOKIE, format!("verbund_login={csrf}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "name={name}&password={PASSWORD}&csrf={csrf}&next=%2F"
        )))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "sign-in of {name}");
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|c| c.starts_with("verbund_session=") && c.len() > "verbund_session=".len())
        .expect("a session cookie")
        .to_string()
}

async fn user(store: &Store, name: &str, membership: Membership) -> Principal {
    let now = Utc::now();
    let u = store
        .create_user(
            "system/bench",
            &UserSpec {
                name: name.into(),
                display_name: name.into(),
                email: None,
                memberships: vec![membership],
            },
            now,
        )
        .await
        .expect("user");
    let hash = verbund_web::hash_password(PASSWORD).expect("hash");
    store
        .set_password("system/bench", &u.id, &hash, now)
        .await
        .expect("password");
    Principal {
        user_id: u.id,
        user_name: u.spec.name.clone(),
        memberships: u.spec.memberships,
    }
}

/// Every site reports all its delivered bookings ready on 1.0.0, 5,000 per report.
async fn report_all(store: &Store) {
    let now = Utc::now();
    for i in 0..germany::SITES {
        let site = germany::site(i).name;
        let ids: Vec<String> = store
            .delivered_bookings_on(&site, Environment::Prod)
            .await
            .expect("bookings")
            .into_iter()
            .map(|b| b.id)
            .collect();
        for (k, chunk) in ids.chunks(BATCH).enumerate() {
            let report: SiteReport = serde_json::from_value(json!({
                "sequence": 1 + k as u64,
                "agent": {"name": "verbund-bench", "interval_seconds": 60},
                "site": {"kubernetes_version": "v1.33.2", "health": "healthy",
                         "free": {"cpu_millis": 100000, "memory_mib": 400000, "storage_gib": 20000}},
                "bookings": chunk.iter().map(|id| json!({
                    "booking": id, "applied_version": "1.0.0", "desired_replicas": 1,
                    "ready_replicas": 1, "smoke_test": "passed",
                    "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded"}]
                })).collect::<Vec<_>>(),
            }))
            .expect("report");
            store
                .ingest_report(&site, &report, now)
                .await
                .expect("report ingested");
        }
    }
}

impl Fixture {
    async fn new(backend: &'static str, bookings: usize) -> Option<Fixture> {
        let scratch = match backend {
            "postgres" => Scratch::postgres("bench_pages").await?,
            _ => Scratch::sqlite(),
        };
        let t = Instant::now();
        let store = Store::open(&scratch.url).await.expect("store opens");
        let now = Utc::now();
        verbund_placement::ensure_default_policies(&store, now)
            .await
            .expect("default policies");
        let fleet = germany::load(&store, now).await;
        // The first Gemeinde gets its bookings below; the others share the rest.
        let org = fleet.gemeinden[0].clone();
        let others = germany::Fleet {
            gemeinden: fleet.gemeinden[1..].to_vec(),
            offerings: fleet.offerings.clone(),
        };
        others
            .book(
                &store,
                bookings - ORG_BOOKINGS,
                BookingState::Provisioning,
                now,
            )
            .await;
        let api = AppState::new(store.clone());
        let admin = user(
            &store,
            "bench-org-admin",
            Membership {
                role: Role::OrgAdmin,
                organisation: Some(org.id.clone()),
                provider: None,
                delegated: false,
            },
        )
        .await;
        let caller = Caller::new(admin, api.authz.clone());
        let mut first = None;
        for i in 0..ORG_BOOKINGS {
            let spec = BookingSpec {
                dependencies: Default::default(),
                ending: None,
                organisation: org.id.clone(),
                offering: fleet.offerings[i % fleet.offerings.len()].name.clone(),
                plan: "s".into(),
                config: json!({}),
                channel: "stable".into(),
                windows: Vec::new(),
            };
            let (status, _, axum::Json(created)) = verbund_api::routes::bookings::create(
                State(api.clone()),
                caller.clone(),
                verbund_api::idempotency::IdempotencyKey(None),
                ApiJson(spec),
            )
            .await
            .expect("booked");
            assert_eq!(status, StatusCode::CREATED);
            first.get_or_insert(created.booking.id);
        }
        report_all(&store).await;
        user(
            &store,
            "bench-federation-admin",
            Membership::federation_admin(),
        )
        .await;
        let app = verbund_api::app(api.clone()).merge(verbund_web::router(WebState::new(
            api,
            PortalConfig::default(),
        )));
        let org_admin = sign_in(&app, "bench-org-admin").await;
        let fed_admin = sign_in(&app, "bench-federation-admin").await;
        let booking = first.expect("a booking");
        println!(
            "{backend}: setup {:.1} s: {bookings} bookings, {ORG_BOOKINGS} of them `{}`'s ({})",
            t.elapsed().as_secs_f64(),
            org.name,
            org.id
        );
        let pages = vec![
            Page {
                name: "organisation",
                uri: "/organisation".into(),
                cookie: org_admin.clone(),
                expect: ("href=\"/bookings/", ORG_BOOKINGS),
            },
            Page {
                name: "organisation_data",
                uri: "/organisation/data".into(),
                cookie: org_admin.clone(),
                expect: ("site-", 1),
            },
            Page {
                name: "fleet",
                uri: "/fleet".into(),
                cookie: fed_admin,
                expect: ("site-", germany::SITES),
            },
            Page {
                name: "catalog",
                uri: "/catalog".into(),
                cookie: org_admin.clone(),
                expect: ("/offerings/", 3),
            },
            Page {
                name: "booking",
                uri: format!("/bookings/{booking}"),
                cookie: org_admin,
                expect: ("site-", 1),
            },
        ];
        Some(Fixture {
            backend,
            app,
            store,
            scratch,
            pages,
        })
    }

    async fn remove(self) {
        self.store.close().await;
        self.scratch.remove().await;
    }
}

struct Row {
    backend: &'static str,
    page: &'static str,
    size: usize,
    times: Vec<Duration>,
}

fn main() {
    let full = full_run();
    let bookings = env_usize("VERBUND_BENCH_BOOKINGS", if full { 100_000 } else { 600 });
    let reads = env_usize("VERBUND_BENCH_READS", if full { 200 } else { 3 });
    let warmup = if full { 20 } else { 1 };
    let backends = backends(full);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut criterion = full.then(|| Criterion::default().configure_from_args());
    println!("load average at start: {}", loadavg());
    let mut rows = Vec::new();
    for backend in backends.iter().map(String::as_str) {
        let backend = if backend == "postgres" {
            "postgres"
        } else {
            "sqlite"
        };
        let Some(f) = rt.block_on(Fixture::new(backend, bookings)) else {
            println!("{backend}: skipped (no server)");
            continue;
        };
        measure(&rt, &f, warmup, reads, &mut rows);
        if let Some(c) = criterion.as_mut() {
            let mut group = c.benchmark_group(format!("pages_{backend}"));
            group
                .sampling_mode(SamplingMode::Flat)
                .sample_size(30)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(4));
            let app = &f.app;
            for p in &f.pages {
                group.bench_function(p.name, |b| {
                    b.to_async(&rt).iter_custom(|iters| async move {
                        let mut sum = Duration::ZERO;
                        for _ in 0..iters {
                            sum += load(app, p).await.0;
                        }
                        sum
                    })
                });
            }
            group.finish();
        }
        rt.block_on(f.remove());
    }
    println!("load average at end: {}", loadavg());
    print_table(&rows, bookings);
    if !full {
        println!("pages bench smoke: ok; `cargo bench -p verbund-web --bench pages` for figures");
    }
}

fn measure(rt: &Runtime, f: &Fixture, warmup: usize, reads: usize, rows: &mut Vec<Row>) {
    for p in &f.pages {
        let (times, size) = rt.block_on(async {
            for _ in 0..warmup {
                load(&f.app, p).await;
            }
            let mut times = Vec::with_capacity(reads);
            let mut size = 0;
            for _ in 0..reads {
                let (t, s) = load(&f.app, p).await;
                times.push(t);
                size = s;
            }
            (times, size)
        });
        rows.push(Row {
            backend: f.backend,
            page: p.name,
            size,
            times,
        });
    }
}

fn print_table(rows: &[Row], bookings: usize) {
    let uris: BTreeMap<&str, &str> = [
        ("organisation", "/organisation (org-admin, 100 bookings)"),
        ("organisation_data", "/organisation/data (org-admin)"),
        ("fleet", "/fleet (federation admin, all bookings)"),
        ("catalog", "/catalog (org-admin)"),
        ("booking", "/bookings/<id> (org-admin)"),
    ]
    .into();
    println!("\n{bookings} bookings; times in ms\n");
    println!("| database | page | KiB | n | mean | p50 | p99 | max | < 100 ms |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for r in rows {
        let mut t = r.times.clone();
        t.sort();
        let mean = t.iter().sum::<Duration>() / t.len().max(1) as u32;
        let p99 = percentile(&t, 0.99);
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            if r.backend == "postgres" {
                "PostgreSQL"
            } else {
                "SQLite"
            },
            uris.get(r.page).copied().unwrap_or(r.page),
            r.size / 1024,
            t.len(),
            ms(mean),
            ms(percentile(&t, 0.5)),
            ms(p99),
            ms(*t.last().expect("a time")),
            if p99 < Duration::from_millis(100) {
                "met"
            } else {
                "**not met**"
            }
        );
    }
}
