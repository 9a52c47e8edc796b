//! Staged rollouts at the scale of a large offering: 10,000 active bookings of one
//! offering over the 60 sites of `verbund_testkit::germany` (booking `i` on site
//! `7i mod 60`, ~167 per site), on SQLite and PostgreSQL.
//!
//! 1. **Planning** — `verbund_rollout::plan` (published versions, the store's
//!    candidates, the pure plan) as `POST /rollouts/plan` runs it, and beside it the
//!    store's `rollout_candidates` and the pure `verbund_domain::rollout::plan` alone:
//!    p50 and max over `VERBUND_BENCH_PLANS` (default 20) runs after one warm-up.
//! 2. **The engine's own overhead per wave** — `verbund_rollout::start` (plan, 60
//!    reference bookings, 10,060 items) with the default policy but zero bake time (canary
//!    5 %, waves of 100 bookings per site over at most 5 sites), then until it
//!    completes: `Store::tick_rollout` (passes the wave reported ready, advances and
//!    starts the next one, all in one tick: zero bake time costs no extra tick) → a
//!    tick with nothing new reported (what the engine does every interval while a
//!    wave bakes) → simulated agents: one `SiteReport` per site through
//!    `Store::ingest_report` (what `POST /sites/{site}/reports` calls after
//!    authentication and validation), every started booking ready on the new version
//!    with its smoke test passed. Ticks and reports are timed apart; per wave p50, p99,
//!    max and the total. Working out which bookings were started and building the
//!    reports is the agents' part and not timed. The reference bookings are moved from
//!    `placed` to `provisioning` as the publisher does after committing them.
//!
//! Target (issue 6): planning a rollout over 10,000 bookings in 60 sites < 1 s.
//! `cargo bench -p verbund-rollout --bench rollout` runs it in full
//! (`VERBUND_BENCH_BOOKINGS` changes the 10,000; `VERBUND_BENCH_BACKENDS=sqlite` skips
//! PostgreSQL); without `--bench`, as under `cargo test --all-targets`, a small smoke
//! version runs.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use verbund_domain::booking::BookingState;
use verbund_domain::catalog::SmokeTest;
use verbund_domain::page::PageRequest;
use verbund_domain::report::{
    AgentInfo, BookingObservation, Condition, FreeCapacity, SiteHealth, SiteObservation,
    SiteReport, SmokeResult,
};
use verbund_domain::rollout::{ItemState, PlanInput, RolloutItem, RolloutPolicy, RolloutState};
use verbund_store::{ItemFilter, Store};
use verbund_testkit::measure::{backends, env_usize, full_run, ms, percentile};
use verbund_testkit::{germany, Scratch};

// The allocator `verbund` runs with (see crates/verbund-cli/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const OLD: &str = "1.0.0";
const NEW: &str = "2.0.0";

/// p50, p99, max and total of a series, in ms.
fn summary(times: &[Duration]) -> String {
    let mut sorted = times.to_vec();
    sorted.sort();
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, total {:.0} ms over {}",
        ms(percentile(&sorted, 0.5)),
        ms(percentile(&sorted, 0.99)),
        ms(*sorted.last().expect("a sample")),
        ms(times.iter().sum()),
        times.len()
    )
}

/// Runs `f` once to warm up, then `runs` times; the durations.
async fn timed<T, F, Fut>(runs: usize, mut f: F) -> (Vec<Duration>, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut last = f().await;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        last = f().await;
        times.push(t.elapsed());
    }
    (times, last)
}

/// Every item of the rollout that `filter` selects.
async fn items_in(store: &Store, id: &str, filter: ItemFilter) -> Vec<RolloutItem> {
    let mut out = Vec::new();
    let mut page = PageRequest {
        limit: Some(1000),
        after: None,
    };
    loop {
        let p = store
            .rollout_items(id, &filter, &page)
            .await
            .expect("rollout items");
        out.extend(p.items);
        match p.next {
            Some(n) => page.after = Some(n),
            None => return out,
        }
    }
}

/// One report per site with bookings in flight: each ready on the new version, its
/// smoke test passed.
fn reports(started: &[RolloutItem], sequence: u64) -> Vec<(String, SiteReport)> {
    let mut by_site: BTreeMap<&str, Vec<BookingObservation>> = BTreeMap::new();
    for it in started {
        by_site
            .entry(it.site.as_str())
            .or_default()
            .push(BookingObservation {
                export: None,
                booking: it.booking.clone(),
                applied_version: Some(NEW.into()),
                desired_replicas: 1,
                ready_replicas: 1,
                conditions: vec![Condition {
                    kind: "Ready".into(),
                    status: "True".into(),
                    reason: Some("Succeeded".into()),
                    message: None,
                }],
                smoke_test: SmokeResult::Passed,
            });
    }
    by_site
        .into_iter()
        .map(|(site, bookings)| {
            let report = SiteReport {
                sequence,
                agent: AgentInfo {
                    name: "verbund-bench".into(),
                    simulated: true,
                    interval_seconds: 60,
                },
                site: SiteObservation {
                    kubernetes_version: "v1.33.2".into(),
                    free: FreeCapacity {
                        cpu_millis: 100_000,
                        memory_mib: 400_000,
                        storage_gib: 20_000,
                    },
                    health: SiteHealth::Healthy,
                    message: None,
                },
                bookings,
            };
            report.validate().expect("a valid report");
            (site.to_owned(), report)
        })
        .collect()
}

async fn run(backend: &str, full: bool) {
    let bookings = env_usize("VERBUND_BENCH_BOOKINGS", if full { 10_000 } else { 600 });
    let runs = env_usize("VERBUND_BENCH_PLANS", if full { 20 } else { 2 });
    let Some(scratch) = Scratch::for_backend(backend, "bench_rollout").await else {
        return;
    };
    let store = Store::open(&scratch.url).await.expect("store opens");
    let t0 = Utc::now();
    let at = |seconds: i64| -> DateTime<Utc> { t0 + chrono::Duration::seconds(seconds) };

    // One offering with a smoke test, its bookings active on 1.0.0 (published by
    // `load`) over all 60 sites, and 2.0.0 published.
    let fleet = germany::load(&store, t0).await;
    let mut offering = fleet.offerings[0].clone();
    offering.smoke_test = Some(SmokeTest {
        image: "registry.example.org/smoke:1".into(),
        command: vec![],
        timeout_seconds: 300,
    });
    store
        .put_offering("bench", &offering, t0)
        .await
        .expect("smoke test");
    let name = offering.name.clone();
    let single = germany::Fleet {
        gemeinden: fleet.gemeinden,
        offerings: vec![offering],
    };
    single
        .book(&store, bookings, BookingState::Active, t0)
        .await;
    let mut package = germany::version(&name);
    assert_eq!(package.version, OLD);
    package.version = NEW.into();
    store
        .publish_version("bench", &name, &package, t0)
        .await
        .expect("publish");
    let policy = RolloutPolicy {
        bake_seconds: 0,
        ..RolloutPolicy::default()
    };

    // 1. Planning.
    let (s, n, p) = (&store, name.as_str(), &policy);
    let (times, plan) = timed(runs, move || async move {
        verbund_rollout::plan(s, n, NEW, p).await.expect("plan")
    })
    .await;
    assert_eq!(plan.bookings(), bookings, "every booking is planned");
    let sites = plan.waves[0].items.len();
    println!(
        "{backend}: verbund_rollout::plan, {bookings} bookings in {sites} sites → {} waves: {}",
        plan.waves.len(),
        summary(&times)
    );
    let (times, (candidates, site_candidates)) = timed(runs, move || async move {
        s.rollout_candidates(n).await.expect("candidates")
    })
    .await;
    println!(
        "{backend}:   of which Store::rollout_candidates: {}",
        summary(&times)
    );
    let input = PlanInput {
        offering: &name,
        version: NEW,
        policy: &policy,
        candidates: &candidates,
        sites: &site_candidates,
    };
    let input = &input;
    let (times, pure) = timed(runs * 5, move || async move {
        verbund_domain::rollout::plan(input).expect("pure plan")
    })
    .await;
    assert_eq!(pure, plan);
    println!(
        "{backend}:   of which verbund_domain::rollout::plan (pure): {}",
        summary(&times)
    );

    // 2. Start, then tick → agents report → tick … until completed.
    let t = Instant::now();
    let rollout = verbund_rollout::start(&store, "system/bench", &name, NEW, &policy, at(0))
        .await
        .expect("start");
    let started_in = t.elapsed();
    let id = rollout.id.clone();
    println!(
        "{backend}: verbund_rollout::start ({} items, {sites} reference bookings created): {:.0} ms",
        rollout.bookings.values().sum::<u64>(),
        ms(started_in)
    );
    let references: Vec<String> = items_in(
        &store,
        &id,
        ItemFilter {
            wave: Some(0),
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .map(|i| i.booking)
    .collect();
    store
        .advance_bookings(
            "system/publisher",
            &references,
            BookingState::Placed,
            BookingState::Provisioning,
            "booking.provision",
            at(0),
        )
        .await
        .expect("references delivered");

    let mut ticks = Vec::new();
    let mut idle = Vec::new();
    let mut ingests = Vec::new();
    let mut per_wave = Vec::new();
    let mut step: i64 = 1;
    loop {
        let t = Instant::now();
        let ticked = store.tick_rollout(&id, at(step)).await.expect("tick");
        let tick = t.elapsed();
        ticks.push(tick);
        match ticked.finished {
            Some(RolloutState::Completed) => {
                per_wave.push((ticked.passed, 0, tick, Duration::ZERO));
                break;
            }
            None => {}
            Some(other) => panic!("the rollout ended {other}: {ticked:?}"),
        }
        let started = items_in(
            &store,
            &id,
            ItemFilter {
                state: Some(ItemState::Updating),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(started.len(), ticked.started, "{ticked:?}");
        assert!(!started.is_empty(), "a tick without a start: {ticked:?}");

        let t = Instant::now();
        let nothing = store.tick_rollout(&id, at(step)).await.expect("idle tick");
        idle.push(t.elapsed());
        assert_eq!(nothing.actions, 0, "nothing was reported: {nothing:?}");

        let batch = reports(&started, 1_000 + step as u64);
        let t = Instant::now();
        let mut moves = 0;
        for (site, report) in &batch {
            let ingested = store
                .ingest_report(site, report, at(step))
                .await
                .expect("report");
            assert!(ingested.accepted);
            moves += ingested.moves.len();
        }
        let ingest = t.elapsed();
        ingests.push(ingest);
        assert_eq!(moves, started.len(), "every started booking became active");
        per_wave.push((ticked.passed, started.len(), tick, ingest));
        step += 1;
        assert!(step < 10_000, "the rollout does not finish");
    }

    let done = store.get_rollout(&id).await.expect("rollout");
    assert_eq!(done.state, RolloutState::Completed);
    assert_eq!(
        done.bookings.get(&ItemState::Passed).copied(),
        Some((bookings + sites) as u64),
        "{:?}",
        done.bookings
    );
    if std::env::var("VERBUND_BENCH_WAVES").is_ok() {
        for (k, (passed, started, tick, ingest)) in per_wave.iter().enumerate() {
            println!(
                "{backend}:   tick {k}: passed {passed}, started {started}, tick {:.1} ms, reports {:.1} ms",
                ms(*tick),
                ms(*ingest)
            );
        }
    }
    println!(
        "{backend}: {} waves to completed in {} ticks with zero bake time",
        done.waves.len(),
        ticks.len()
    );
    println!(
        "{backend}:   ticks (pass, advance, start the next wave): {}",
        summary(&ticks)
    );
    println!(
        "{backend}:   idle ticks (nothing reported yet): {}",
        summary(&idle)
    );
    println!(
        "{backend}:   site reports (one per site in the wave, all ready): {}",
        summary(&ingests)
    );
    println!(
        "{backend}:   engine total (start + ticks): {:.0} ms",
        ms(started_in + ticks.iter().sum::<Duration>())
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
