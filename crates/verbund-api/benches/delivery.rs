//! Delivery of the desired state at the scale of Germany (the federation of
//! `verbund_testkit::germany`: the real 10,787 Gemeinden, 60 sites of all three delivery
//! modes, 100,000 bookings), on SQLite:
//!
//! 1. **cold** — an empty desired-state repository, every site rendered from the store
//!    and committed as one commit (`Publisher::open` + `reconcile`); wall time and the
//!    process's peak resident memory during that step (`VmHWM`, reset just before
//!    through `/proc/self/clear_refs`);
//! 2. **unchanged** — the same again, no commit: every site's inputs are read from the
//!    store and digested, and a site whose digest and tree match the last render is not
//!    rendered again (`Records::fingerprint`);
//! 3. **one change** — `POST /api/v1/bookings` through the real router (auth, Cedar
//!    placement, store) while the publisher runs in the background as in `verbund
//!    serve`, timed from the request until the publisher reports the commit; mean, p50,
//!    p99 and max over `VERBUND_BENCH_CHANGES` (default 300) sequential changes;
//! 4. a final `verify`, which renders everything without the memo (nothing may
//!    differ), and `git fsck`.
//!
//! Targets (issue 4): cold < 15 s and < 1 GiB, one change p99 < 50 ms, unchanged < 2 s.
//! `cargo bench -p verbund-api --bench delivery` runs it in full
//! (`VERBUND_BENCH_BOOKINGS` changes the 100,000); without `--bench`, as under
//! `cargo test --all-targets`, a small smoke version runs.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Request, StatusCode};
use chrono::Utc;
use serde_json::json;
use tower::ServiceExt;
use verbund_api::AppState;
use verbund_delivery::{Publisher, PublisherOptions};
use verbund_domain::account::{Membership, UserSpec};
use verbund_domain::booking::BookingState;
use verbund_render::RenderOptions;
use verbund_store::Store;
use verbund_testkit::germany;
use verbund_testkit::measure::{env_usize, ms, percentile};

// The allocator `verbund` runs with (see crates/verbund-cli/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Forgets the peak resident memory so far (Linux).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory since the last [`reset_peak`], in MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

async fn run(full: bool) {
    let bookings = env_usize("VERBUND_BENCH_BOOKINGS", if full { 100_000 } else { 600 });
    let changes = env_usize("VERBUND_BENCH_CHANGES", if full { 300 } else { 10 });
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::open(&url).await.expect("store opens");
    let now = Utc::now();
    verbund_placement::ensure_default_policies(&store, now)
        .await
        .expect("default policies");
    let fleet = germany::load(&store, now).await;
    let t = Instant::now();
    fleet
        .book(&store, bookings, BookingState::Active, now)
        .await;
    let load = t.elapsed();

    // 1. cold
    let repo = dir.path().join("desired-state.git");
    let options = PublisherOptions::new(RenderOptions::new(
        "https://git.example.org/desired-state.git",
    ));
    reset_peak();
    let t = Instant::now();
    let publisher = {
        let (store, repo) = (store.clone(), repo.clone());
        tokio::task::spawn_blocking(move || Publisher::open(store, &repo, options))
            .await
            .expect("join")
            .expect("repository opens")
    };
    let cold = publisher.start().await.expect("cold");
    let cold_time = t.elapsed();
    let cold_peak = peak_mib();
    assert!(cold.commit.is_some());
    assert_eq!(cold.bookings, bookings);
    let files = std::process::Command::new("git")
        .args(["-C"])
        .arg(&repo)
        .args(["ls-tree", "-r", "--name-only", "HEAD"])
        .output()
        .expect("git ls-tree");
    let files = files.stdout.iter().filter(|b| **b == b'\n').count();
    println!(
        "cold: {bookings} bookings over {} folders ({files} files) rendered and committed in {:.2} s, peak RSS {:.0} MiB (store {:.2} s, rendering {:.2} s, writing {:.2} s; bulk load of the bookings took {:.1} s)",
        cold.folders.len(),
        cold_time.as_secs_f64(),
        cold_peak,
        cold.load.as_secs_f64(),
        cold.render.as_secs_f64(),
        cold.write.as_secs_f64(),
        load.as_secs_f64()
    );

    // 2. unchanged
    let t = Instant::now();
    let again = publisher
        .reconcile("system/bench", "unchanged")
        .await
        .expect("unchanged");
    let unchanged = t.elapsed();
    assert!(again.commit.is_none(), "an unchanged fleet made a commit");
    println!(
        "unchanged: {bookings} bookings re-rendered and compared in {:.2} s, no commit (store {:.2} s, rendering {:.2} s, comparing {:.2} s)",
        unchanged.as_secs_f64(),
        again.load.as_secs_f64(),
        again.render.as_secs_f64(),
        again.write.as_secs_f64()
    );

    // 3. one change, API call to commit
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
    let bearer = format!("Bearer {token}");
    let app = verbund_api::app(AppState::new(store.clone()).with_publisher(publisher.clone()));
    if std::env::var("VERBUND_BENCH_PROBE").is_ok() {
        for _ in 0..3 {
            let t = Instant::now();
            let _ = store.site_usage().await.expect("usage");
            println!("probe: site usage {:.1} ms", ms(t.elapsed()));
        }
        let b = verbund_placement::Bookings::new(store.clone());
        for i in 0..3 {
            let org = &fleet.gemeinden[(i * 31) % fleet.gemeinden.len()];
            let spec: verbund_domain::booking::BookingSpec = serde_json::from_value(
                json!({"organisation": org.id, "offering": "website", "plan": "s"}),
            )
            .expect("spec");
            let t = Instant::now();
            let _ = b
                .book("system/bench", &spec, Utc::now())
                .await
                .expect("book");
            println!("probe: book {:.1} ms", ms(t.elapsed()));
            let t = Instant::now();
            let _ = b.explain(&org.id, "website", "s", Utc::now()).await;
            println!("probe: explain {:.1} ms", ms(t.elapsed()));
        }
    }
    let worker = publisher.spawn();
    let mut latencies = Vec::with_capacity(changes);
    let mut answered = Vec::with_capacity(changes);
    for i in 0..changes {
        let org = &fleet.gemeinden[(i * 7919) % fleet.gemeinden.len()];
        let body = json!({"organisation": org.id, "offering": "website", "plan": "s"});
        let before = publisher.commits();
        let t = Instant::now();
        let resp = app
            .clone()
            .oneshot(
                Request::post("/api/v1/bookings")
                    .header(AUTHORIZATION, &bearer)
                    .header(CONTENT_TYPE, "application/json")
                    .body(Body::from(body.to_string()))
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::CREATED, "booking {i}");
        answered.push(t.elapsed());
        while publisher.commits() == before {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no commit for change {i}"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        latencies.push(t.elapsed());
    }
    worker.abort();
    latencies.sort();
    answered.sort();
    let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;
    println!(
        "one change, POST /api/v1/bookings → commit, {changes} in a row: mean {:.1} ms, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(mean),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies[latencies.len() - 1]),
    );
    println!(
        "  of which the API's answer (placement and store): p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&answered, 0.50)),
        ms(percentile(&answered, 0.99)),
    );

    // 4. nothing differs — a full render without the memo — and git accepts the
    // repository.
    let t = Instant::now();
    let differences = publisher.verify().await.expect("verify").differences;
    println!(
        "verify: all {} bookings rendered without the memo and compared with HEAD in {:.2} s",
        bookings + changes,
        t.elapsed().as_secs_f64()
    );
    assert!(differences.is_empty(), "{differences:?}");
    let fsck = std::process::Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["fsck", "--full", "--strict"])
        .status()
        .expect("git fsck");
    assert!(fsck.success());
    store.close().await;
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(run(full));
}
