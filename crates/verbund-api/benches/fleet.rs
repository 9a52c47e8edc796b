//! Fleet health at the scale of Germany (`verbund_testkit::germany`: the real 10,787
//! Gemeinden, 60 sites, 100,000 bookings in `provisioning`), on SQLite and PostgreSQL.
//!
//! Every site reports through the real router (`POST /api/v1/sites/{site}/reports`
//! with its own site token: authentication, JSON parsing, validation, store), in
//! batches of at most 5,000 bookings, one site after another:
//!
//! 1. **first reports** — every booking ready: 100,000 moves provisioning → active,
//!    each with its audit event;
//! 2. **steady** — the same fleet again, nothing moves (what a fleet does all day);
//! 3. **churn** — 1 % of the bookings degraded.
//!
//! Each prints booking reports per second (bodies are built before the clock starts:
//! an agent's cost is not the control plane's). Then `GET /api/v1/fleet` as the
//! federation admin over all 100,000 bookings: p50, p99 and max of
//! `VERBUND_BENCH_READS` (default 50) requests.
//!
//! Targets (issue 5): ≥ 10,000 booking reports/s into SQLite; the fleet view < 50 ms.
//! `cargo bench -p verbund-api --bench fleet` runs it in full (`VERBUND_BENCH_BOOKINGS`
//! changes the 100,000; `VERBUND_BENCH_BACKENDS=sqlite` skips PostgreSQL); without
//! `--bench`, as under `cargo test --all-targets`, a small smoke version runs.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::time::Instant;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::Utc;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use verbund_api::AppState;
use verbund_domain::account::{Membership, UserSpec};
use verbund_domain::booking::BookingState;
use verbund_domain::directory::Environment;
use verbund_store::Store;
use verbund_testkit::measure::{backends, env_usize, full_run, ms, percentile, send_json};
use verbund_testkit::{germany, Scratch};

// The allocator `verbund` runs with (see crates/verbund-cli/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 5_000;

/// One report body per batch of each site's bookings, with its site token.
fn bodies(
    sites: &BTreeMap<String, (String, Vec<String>)>,
    sequence: u64,
    degraded_every: usize,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut n = 0usize;
    for (site, (token, ids)) in sites {
        for (k, chunk) in ids.chunks(BATCH).enumerate() {
            let bookings: Vec<Value> = chunk
                .iter()
                .map(|id| {
                    n += 1;
                    let ready = if degraded_every > 0 && n.is_multiple_of(degraded_every) {
                        0
                    } else {
                        1
                    };
                    json!({"booking": id, "applied_version": "1.0.0", "desired_replicas": 1,
                           "ready_replicas": ready, "smoke_test": "passed",
                           "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded"}]})
                })
                .collect();
            let body = json!({
                "sequence": sequence + k as u64,
                "agent": {"name": "verbund-bench", "interval_seconds": 60},
                "site": {"kubernetes_version": "v1.33.2", "health": "healthy",
                         "free": {"cpu_millis": 100000, "memory_mib": 400000, "storage_gib": 20000}},
                "bookings": bookings,
            });
            out.push((site.clone(), token.clone(), body.to_string()));
        }
    }
    out
}

/// Sends every body, one after another; returns booking reports per second and moves.
async fn ingest(app: &Router, bodies: Vec<(String, String, String)>, count: usize) -> (f64, u64) {
    let t = Instant::now();
    let mut moves = 0;
    for (site, token, body) in bodies {
        let req = Request::post(format!("/api/v1/sites/{site}/reports"))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("request");
        let (status, _, r) = send_json(app, req).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!(r["accepted"], true, "{r}");
        moves += r["transitions"].as_u64().unwrap_or(0);
    }
    (count as f64 / t.elapsed().as_secs_f64(), moves)
}

async fn run(backend: &str, full: bool) {
    let bookings = env_usize("VERBUND_BENCH_BOOKINGS", if full { 100_000 } else { 600 });
    let reads = env_usize("VERBUND_BENCH_READS", if full { 50 } else { 5 });
    let Some(scratch) = Scratch::for_backend(backend, "bench_fleet").await else {
        return;
    };
    let store = Store::open(&scratch.url).await.expect("store opens");
    let now = Utc::now();
    verbund_placement::ensure_default_policies(&store, now)
        .await
        .expect("default policies");
    let fleet = germany::load(&store, now).await;
    fleet
        .book(&store, bookings, BookingState::Provisioning, now)
        .await;
    let app = verbund_api::app(AppState::new(store.clone()));

    // Each site's token and bookings.
    let mut sites: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for i in 0..germany::SITES {
        let site = germany::site(i).name;
        let (_, secret) =
            verbund_api::issue_site_token(&store, "system/bench", &site, "bench", None, now)
                .await
                .expect("site token");
        let ids = store
            .delivered_bookings_on(&site, Environment::Prod)
            .await
            .expect("bookings")
            .into_iter()
            .map(|b| b.id)
            .collect();
        sites.insert(site, (secret, ids));
    }

    let (rate, moves) = ingest(&app, bodies(&sites, 1_000, 0), bookings).await;
    assert_eq!(moves as usize, bookings, "every booking became active");
    println!("{backend}: first reports: {bookings} booking reports, all provisioning → active (audited), {rate:.0} reports/s");
    let (rate, moves) = ingest(&app, bodies(&sites, 2_000, 0), bookings).await;
    assert_eq!(moves, 0);
    println!("{backend}: steady: {bookings} booking reports, nothing moves, {rate:.0} reports/s");
    let (rate, moves) = ingest(&app, bodies(&sites, 3_000, 100), bookings).await;
    println!("{backend}: churn: {bookings} booking reports, {moves} degraded, {rate:.0} reports/s");

    let user = store
        .create_user(
            "system/bench",
            &UserSpec {
                name: "bench-admin".into(),
                display_name: "Bench".into(),
                email: None,
                memberships: vec![Membership::federation_admin()],
            },
            now,
        )
        .await
        .expect("user");
    let (_, token) = verbund_api::issue_token(&store, "system/bench", &user.id, "bench", None, now)
        .await
        .expect("token");
    if std::env::var("VERBUND_BENCH_PROBE").is_ok() {
        for _ in 0..3 {
            let t = Instant::now();
            let counts = store
                .fleet_counts(&verbund_store::FleetScope::default())
                .await
                .expect("counts");
            let all = t.elapsed();
            let t = Instant::now();
            store.site_statuses().await.expect("statuses");
            println!(
                "probe: fleet counts {:.1} ms ({} site × offering rows, {} organisation rows), site statuses {:.1} ms",
                ms(all),
                counts.bookings.len(),
                counts.by_organisation.len(),
                ms(t.elapsed())
            );
        }
    }
    let mut times = Vec::with_capacity(reads);
    let mut size = 0;
    for _ in 0..reads {
        let req = Request::get("/api/v1/fleet")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request");
        let t = Instant::now();
        let resp = app.clone().oneshot(req).await.expect("infallible");
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        times.push(t.elapsed());
        size = bytes.len();
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        let total: i64 = v["bookings"]
            .as_object()
            .expect("totals")
            .values()
            .filter_map(Value::as_i64)
            .sum();
        assert_eq!(total as usize, bookings);
    }
    times.sort();
    println!(
        "{backend}: GET /api/v1/fleet over {bookings} bookings ({} KiB): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        size / 1024,
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().expect("a read"))
    );
    store.close().await;
    scratch.remove().await;
}

fn main() {
    let full = full_run();
    let backends = backends(full);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for backend in &backends {
        rt.block_on(run(backend, full));
    }
}
