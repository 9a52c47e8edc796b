//! Capacity that follows the calendar at the scale of Germany (`verbund_testkit::germany`:
//! the real 10,787 Gemeinden, 60 sites, 100,000 placed bookings of which every tenth
//! carries a capacity window on a larger plan, spread over the coming year), on SQLite
//! and PostgreSQL, through the real router as the federation admin:
//!
//! 1. `GET /api/v1/fleet/capacity`: every site's outlook over 12 months (its reserved
//!    capacity now, every change ahead, each month's fullest moment) — p50, p99, max of
//!    `VERBUND_BENCH_READS` (default 50) requests;
//! 2. `POST /api/v1/bookings` without and with a window: placement inside the write
//!    transaction, which reads every site's windows ahead — p50, p99, max of as many
//!    bookings each.
//!
//! Target (issue 19): the outlook for 60 sites < 100 ms. (Placement's ≥ 20,000
//! decisions/s with 10 % windows is measured by `cargo bench -p verbund-placement`.)
//! `cargo bench -p verbund-api --bench capacity` runs it in full (`VERBUND_BENCH_BOOKINGS`
//! changes the 100,000; `VERBUND_BENCH_BACKENDS=sqlite` skips PostgreSQL); without
//! `--bench`, as under `cargo test --all-targets`, a small smoke version runs.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Request, StatusCode};
use chrono::Utc;
use serde_json::json;
use verbund_api::AppState;
use verbund_domain::account::{Membership, UserSpec};
use verbund_domain::booking::BookingState;
use verbund_store::Store;
use verbund_testkit::measure::{backends, env_usize, full_run, ms, percentile, send_json};
use verbund_testkit::{germany, Scratch};

// The allocator `verbund` runs with (see crates/verbund-cli/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn report(backend: &str, what: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{backend}: {what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests)",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().expect("a request")),
        times.len()
    );
}

async fn run(backend: &str, full: bool) {
    let bookings = env_usize("VERBUND_BENCH_BOOKINGS", if full { 100_000 } else { 600 });
    let reads = env_usize("VERBUND_BENCH_READS", if full { 50 } else { 5 });
    let Some(scratch) = Scratch::for_backend(backend, "bench_capacity").await else {
        return;
    };
    let store = Store::open(&scratch.url).await.expect("store opens");
    let now = Utc::now();
    verbund_placement::ensure_default_policies(&store, now)
        .await
        .expect("default policies");
    let fleet = germany::load(&store, now).await;
    fleet
        .book_with(&store, bookings, BookingState::Active, true, now)
        .await;
    let app = verbund_api::app(AppState::new(store.clone()));
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

    let mut times = Vec::with_capacity(reads);
    for _ in 0..reads {
        let req = Request::get("/api/v1/fleet/capacity")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request");
        let (status, took, v) = send_json(&app, req).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let sites = v["sites"].as_array().expect("sites");
        assert_eq!(sites.len(), germany::SITES);
        let steps: usize = sites
            .iter()
            .map(|s| s["steps"].as_array().unwrap().len())
            .sum();
        assert!(steps > germany::SITES, "windows ahead are steps");
        times.push(took);
    }
    report(
        backend,
        &format!(
            "GET /api/v1/fleet/capacity, 60 sites × 12 months over {bookings} bookings ({} with a window)",
            bookings / 10
        ),
        times,
    );

    for with_window in [false, true] {
        let mut times = Vec::with_capacity(reads);
        for i in 0..reads {
            let org = &fleet.gemeinden[(i * 13) % fleet.gemeinden.len()];
            let offering = &fleet.offerings[i % fleet.offerings.len()];
            let window = germany::window(i * 10, offering, now).expect("a window");
            let windows = if with_window {
                json!([{"from": window.from, "to": window.to, "plan": "l"}])
            } else {
                json!([])
            };
            let body = json!({
                "organisation": org.id, "offering": offering.name, "plan": "s",
                "windows": windows,
            });
            let req = Request::post("/api/v1/bookings")
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .header(CONTENT_TYPE, "application/json")
                .header("Idempotency-Key", format!("bench-{with_window}-{i}"))
                .body(Body::from(body.to_string()))
                .expect("request");
            let (status, took, v) = send_json(&app, req).await;
            assert_eq!(status, StatusCode::CREATED, "{v}");
            times.push(took);
        }
        report(
            backend,
            if with_window {
                "POST /api/v1/bookings with a capacity window (placed in the write transaction)"
            } else {
                "POST /api/v1/bookings without a window, beside the others' windows"
            },
            times,
        );
    }
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
