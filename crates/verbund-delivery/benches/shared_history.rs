//! The desired-state history several replicas share, at the scale of Germany (the
//! federation of `verbund_testkit::germany`: 60 sites, 100,000 bookings), on PostgreSQL:
//!
//! 1. **first writer** — an empty database history and empty repositories: the writer
//!    renders and commits everything (one commit of the whole state, one per site) and
//!    stores each commit's pack in the database (`Publisher::start` with a shared
//!    history);
//! 2. **changes** — `VERBUND_BENCH_CHANGES` (default 300) bookings, each delivered by the
//!    writer (`Publisher::pass`: one commit of the whole state and one of the site's, both
//!    stored), timed per change; and how long a follower takes to install one change;
//! 3. **fresh replica** — a replica with an empty data folder starts: it installs every
//!    pack of every repository from the database and moves its branches (`start`), the
//!    time a new pod needs before it listens; then housekeeping in its copies (a
//!    deltified fold and `git gc --auto`, `maintain`), and a check that its copies hold
//!    the writer's commits.
//!
//! `cargo bench -p verbund-delivery --bench shared_history` runs it in full
//! (`VERBUND_BENCH_BOOKINGS` changes the 100,000); without `--bench`, as under
//! `cargo test --all-targets`, a small smoke version runs. PostgreSQL comes from
//! `VERBUND_TEST_POSTGRES` (see `verbund-testkit`); a fresh database is dropped afterwards.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use verbund_delivery::{Publisher, PublisherOptions};
use verbund_domain::booking::{BookingSpec, BookingState};
use verbund_render::RenderOptions;
use verbund_store::Store;
use verbund_testkit::measure::{env_usize, ms, percentile};
use verbund_testkit::{germany, Scratch};

// The allocator `verbund` runs with (see crates/verbund-cli/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A replica's publisher with its repositories in `dir/<name>`.
async fn replica(store: &Store, dir: &Path, name: &str) -> Publisher {
    let mut options =
        PublisherOptions::new(RenderOptions::new("https://git.example.org/{site}.git"));
    options.shared_history = true;
    options.replica = name.to_owned();
    let (store, path) = (store.clone(), dir.join(name).join("desired-state.git"));
    tokio::task::spawn_blocking(move || Publisher::open(store, &path, options))
        .await
        .expect("join")
        .expect("the repository opens")
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Size of the files below `dir`, in MB.
fn size_mb(dir: &Path) -> f64 {
    fn walk(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    }
    walk(dir) as f64 / 1e6
}

fn packs(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("objects/pack"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
        .count()
}

async fn run(full: bool) {
    let bookings = env_usize("VERBUND_BENCH_BOOKINGS", if full { 100_000 } else { 600 });
    let changes = env_usize("VERBUND_BENCH_CHANGES", if full { 300 } else { 5 });
    let Some(db) = Scratch::postgres("shared_history bench").await else {
        return;
    };
    let store = Store::open(&db.url).await.expect("store opens");
    let now = Utc::now();
    verbund_placement::ensure_default_policies(&store, now)
        .await
        .expect("default policies");
    let fleet = germany::load(&store, now).await;
    fleet
        .book(&store, bookings, BookingState::Active, now)
        .await;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");

    // 1. The first writer.
    let t = Instant::now();
    let writer = replica(&store, dir.path(), "writer").await;
    let first = writer.start().await.expect("the first writer starts");
    let first_time = t.elapsed();
    assert!(writer.is_writer() && first.commit.is_some());
    let (packs_mb, disk_mb) = stored(&db.url);
    println!(
        "first writer: {bookings} bookings rendered, committed and stored as the shared history in {:.2} s (rendering {:.2} s, writing {:.2} s); packs of {packs_mb:.0} MB, {disk_mb:.0} MB on the database's disk",
        first_time.as_secs_f64(),
        first.render.as_secs_f64(),
        first.write.as_secs_f64(),
    );

    // 2. Changes, each a commit of the whole state and of its site, stored.
    let follower = replica(&store, dir.path(), "follower").await;
    follower.start().await.expect("the follower starts");
    let bookings_service = verbund_placement::Bookings::new(store.clone());
    let mut per_change = Vec::with_capacity(changes);
    let mut follow = Vec::with_capacity(changes);
    for i in 0..changes {
        let gemeinde = &fleet.gemeinden[(i * 7919) % fleet.gemeinden.len()];
        let spec = BookingSpec {
            dependencies: Default::default(),
            ending: None,
            organisation: gemeinde.id.clone(),
            offering: "website".into(),
            plan: "s".into(),
            config: json!({}),
            channel: "stable".into(),
            windows: Vec::new(),
        };
        let t = Instant::now();
        bookings_service
            .book("user/bench", &spec, Utc::now())
            .await
            .expect("a booking");
        writer.pass().await.expect("delivered");
        per_change.push(t.elapsed());
        let t = Instant::now();
        follower.pass().await.expect("followed");
        follow.push(t.elapsed());
    }
    per_change.sort();
    follow.sort();
    if !per_change.is_empty() {
        println!(
            "one change (booking + commits of the whole state and the site, stored): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {changes}; a follower installs it: p50 {:.1} ms, p99 {:.1} ms",
            ms(percentile(&per_change, 0.5)),
            ms(percentile(&per_change, 0.99)),
            ms(*per_change.last().expect("one")),
            ms(percentile(&follow, 0.5)),
            ms(percentile(&follow, 0.99)),
        );
    }

    // 3. A fresh replica installs everything.
    let t = Instant::now();
    let fresh = replica(&store, dir.path(), "fresh").await;
    fresh.start().await.expect("the fresh replica starts");
    let fresh_time = t.elapsed();
    assert!(!fresh.is_writer());
    let whole = fresh.repo().path().to_owned();
    let site_packs: usize = fresh
        .sites()
        .existing()
        .expect("sites")
        .iter()
        .map(|s| packs(&fresh.sites().dir().join(format!("{s}.git"))))
        .sum();
    let commits: usize = git(&whole, &["rev-list", "--count", "HEAD"])
        .parse()
        .expect("a count");
    println!(
        "fresh replica: {} packs ({commits} commits of the whole state, {site_packs} packs of 60 sites' repositories, {:.0} MB on disk) installed in {:.2} s",
        packs(&whole) + site_packs,
        size_mb(&dir.path().join("fresh")),
        fresh_time.as_secs_f64()
    );
    let t = Instant::now();
    fresh.maintain().await.expect("maintain");
    println!(
        "housekeeping in its copies (deltified fold, git gc --auto): {:.2} s ({} packs of the whole state left)",
        t.elapsed().as_secs_f64(),
        packs(&whole)
    );
    assert_eq!(
        git(&whole, &["rev-parse", "HEAD"]),
        git(writer.repo().path(), &["rev-parse", "HEAD"])
    );
    git(&whole, &["fsck", "--connectivity-only", "--no-progress"]);
    drop(fresh);

    // 4. Failover: the writer goes away (its lock's connection closes, as when its process
    //    is killed); the follower runs as in `verbund serve` and a booking arrives right
    //    after. Timed from the writer's end to the follower's commit of that booking.
    let mut failovers = Vec::new();
    let (mut writer, mut follower) = (writer, follower);
    for round in 0..if full { 5 } else { 1 } {
        let worker = follower.spawn();
        let before = follower.repo().head().expect("head");
        let t = Instant::now();
        drop(writer);
        let gemeinde = &fleet.gemeinden[(round * 104_729 + 17) % fleet.gemeinden.len()];
        let spec = BookingSpec {
            dependencies: Default::default(),
            ending: None,
            organisation: gemeinde.id.clone(),
            offering: "website".into(),
            plan: "s".into(),
            config: json!({}),
            channel: "stable".into(),
            windows: Vec::new(),
        };
        bookings_service
            .book("user/bench", &spec, Utc::now())
            .await
            .expect("a booking");
        follower.wake();
        // Done when the follower writes and its branch moved (its catch-up on taking over
        // may move the branch a moment before it calls itself the writer).
        while !follower.is_writer() || follower.repo().head().expect("head") == before {
            assert!(t.elapsed() < Duration::from_secs(60), "no failover");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        failovers.push(t.elapsed());
        worker.abort();
        // The old writer comes back as a follower: the next round fails over to it.
        let back = replica(
            &store,
            dir.path(),
            if round % 2 == 0 { "writer" } else { "follower" },
        )
        .await;
        back.start().await.expect("a replica starts");
        writer = follower;
        follower = back;
    }
    failovers.sort();
    println!(
        "failover (writer gone → the next writer's commit of a new booking): {} over {} rounds",
        failovers
            .iter()
            .map(|d| format!("{:.0} ms", ms(*d)))
            .collect::<Vec<_>>()
            .join(", "),
        failovers.len()
    );
    drop((writer, follower));
    store.close().await;
    db.remove().await;
}

/// What the shared history takes in the database at `url`: the packs' bytes and the
/// tables' size on disk (PostgreSQL compresses what the packs store uncompressed), in MB.
fn stored(url: &str) -> (f64, f64) {
    let out = std::process::Command::new("psql")
        .args([url, "-At", "-c"])
        .arg(
            "SELECT (SELECT COALESCE(SUM(pack_bytes), 0) FROM desired_state_commits), \
             pg_total_relation_size('desired_state_packs') \
             + pg_total_relation_size('desired_state_commits')",
        )
        .output()
        .expect("psql runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text
        .trim()
        .split('|')
        .map(|f| f.parse::<f64>().unwrap_or(f64::NAN));
    let packs = fields.next().unwrap_or(f64::NAN);
    let disk = fields.next().unwrap_or(f64::NAN);
    (packs / 1e6, disk / 1e6)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(run(full));
}
