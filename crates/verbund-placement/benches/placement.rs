//! Placement at the scale of Germany (the federation of `verbund_testkit::germany`):
//! 100,000 bookings of the 10,787 real municipalities over 60 sites, decided by the Cedar policies of
//! three layers; then the re-evaluation of every placement after a policy change,
//! through the store (SQLite, and PostgreSQL when reachable).
//!
//! `cargo bench -p verbund-placement --bench placement` runs the full scenario;
//! under `cargo test` (no `--bench` argument) it runs a small smoke version.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Instant;

use chrono::{NaiveDate, TimeZone, Utc};
use verbund_domain::booking::BookingState;
use verbund_domain::directory::{Level, Organisation};
use verbund_placement::{Bookings, PolicySubmission};
use verbund_policy::{Candidate, Need, Placer, PolicyBook, PolicyDocument, PolicyLayer};
use verbund_store::Store;
use verbund_testkit::germany::{self, gv100ad, offerings, provider, site};

/// The directory in memory, ids = ARS, Bund = "bund".
fn organisations(records: &[verbund_domain::directory::KeyedOrganisation]) -> Vec<Organisation> {
    let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut out = vec![Organisation {
        id: "bund".into(),
        name: "Bundesrepublik Deutschland".into(),
        level: Level::Bund,
        ars: None,
        ags: None,
        parent: None,
        land: None,
        population: None,
        created_at: t,
        updated_at: t,
    }];
    for r in records {
        out.push(Organisation {
            id: r.ars.clone(),
            name: r.name.clone(),
            level: r.level,
            ars: Some(r.ars.clone()),
            ags: r.ags.clone(),
            parent: Some(r.parent_ars.clone().unwrap_or_else(|| "bund".into())),
            land: Some(r.ars[..2].to_string()),
            population: r.population,
            created_at: t,
            updated_at: t,
        });
    }
    out
}

/// Federation defaults, a restriction for Bayern and one per Land for some Kreise.
fn policies(orgs: &[Organisation]) -> Vec<PolicyDocument> {
    let mut docs = PolicyBook::defaults().expect("defaults");
    docs.push(PolicyDocument {
        name: "daten-in-bayern".into(),
        layer: PolicyLayer::Land,
        owner: Some("09".into()),
        text: r#"@id("nur-bayern") forbid (principal, action == Verbund::Action::"place", resource) when { context.personal && resource.region != "DE-BY" };"#.into(),
    });
    for k in orgs.iter().filter(|o| o.level == Level::Kreis).step_by(40) {
        docs.push(PolicyDocument {
            name: "keine-privaten".into(),
            layer: PolicyLayer::Organisation,
            owner: Some(k.id.clone()),
            text: r#"@id("nur-oeffentlich") forbid (principal, action == Verbund::Action::"place", resource) when { !resource.public_law };"#.into(),
        });
    }
    docs
}

fn chain_of(orgs: &std::collections::HashMap<String, Organisation>, id: &str) -> Vec<String> {
    let mut chain = vec![id.to_string()];
    let mut cur = orgs.get(id).and_then(|o| o.parent.clone());
    while let Some(p) = cur {
        cur = orgs.get(&p).and_then(|o| o.parent.clone());
        chain.push(p);
    }
    chain
}

fn decisions(full: bool, windows: bool) {
    let records = gv100ad();
    let orgs = organisations(&records);
    let by_id: std::collections::HashMap<String, Organisation> =
        orgs.iter().map(|o| (o.id.clone(), o.clone())).collect();
    let gemeinden: Vec<&Organisation> =
        orgs.iter().filter(|o| o.level == Level::Gemeinde).collect();
    let book = PolicyBook::new(&policies(&orgs)).expect("policies compile");
    let candidates: Vec<Candidate> = (0..60)
        .map(|i| Candidate {
            site: site(i),
            provider: provider(i % 20),
            free: site(i).capacity,
            preflight: None,
            timeline: Default::default(),
            left: verbund_domain::capacity::Load::of(&site(i).capacity),
        })
        .collect();
    let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let t = Instant::now();
    let mut placer = Placer::new(book, &orgs, candidates, today).expect("placer");
    let setup = t.elapsed();
    let offerings = offerings();
    let n = if full { 100_000 } else { 2_000 };
    let t = Instant::now();
    let (mut placed, mut rejected) = (0u64, 0u64);
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
    let mut windowed = 0u64;
    for i in 0..n {
        let org = gemeinden[i % gemeinden.len()];
        let o = &offerings[i % offerings.len()];
        let chain = chain_of(&by_id, &org.id);
        let own: Vec<_> = if windows {
            germany::window(i, o, now).into_iter().collect()
        } else {
            Vec::new()
        };
        windowed += u64::from(!own.is_empty());
        let d = placer
            .decide(
                org,
                &chain,
                Need {
                    offering: o,
                    plan: &o.plans[0],
                    windows: &own,
                },
                &[],
            )
            .expect("decision");
        match d.site {
            Some(s) => {
                placer.reserve(&s, &o.plans[0].resources);
                placer.reserve_windows(&s, &own);
                placed += 1;
            }
            None => rejected += 1,
        }
    }
    let took = t.elapsed();
    let per_s = n as f64 / took.as_secs_f64();
    println!(
        "placement{}: {n} bookings of {} Gemeinden over 60 sites in {:.2} s = {:.0} bookings/s ({:.0} site verdicts/s); {placed} placed, {rejected} rejected; setup {:.0} ms",
        if windows {
            format!(" with capacity windows ({windowed} bookings carry one)")
        } else {
            String::new()
        },
        gemeinden.len(),
        took.as_secs_f64(),
        per_s,
        per_s * 60.0,
        setup.as_secs_f64() * 1000.0
    );
}

async fn reevaluation(url: &str, full: bool) {
    let store = Store::open(url).await.expect("store opens");
    let now = Utc::now();
    verbund_placement::ensure_default_policies(&store, now)
        .await
        .expect("defaults");
    let fleet = germany::load(&store, now).await;
    let n = if full { 100_000 } else { 1_000 };
    let t = Instant::now();
    fleet.book(&store, n, BookingState::Active, now).await;
    let load = t.elapsed();
    let bookings = Bookings::new(store.clone());
    // A Land policy change: Bayern keeps personal data in Bayern.
    let land = store
        .find_organisation_by_key("09")
        .await
        .expect("land")
        .expect("Bayern");
    bookings
        .submit_policy(
            "bench",
            &PolicySubmission {
                name: "daten-in-bayern".into(),
                layer: PolicyLayer::Land,
                owner: Some(land.id),
                text: r#"@id("nur-bayern") forbid (principal, action == Verbund::Action::"place", resource) when { context.personal && resource.region != "DE-BY" };"#.into(),
            },
            now,
        )
        .await
        .expect("policy");
    let t = Instant::now();
    let summary = bookings
        .reevaluate("bench", now)
        .await
        .expect("re-evaluation");
    let took = t.elapsed();
    let t2 = Instant::now();
    let again = bookings
        .reevaluate("bench", now)
        .await
        .expect("re-evaluation");
    let took2 = t2.elapsed();
    println!(
        "re-evaluation ({}): {} placements in {:.2} s ({} non-compliant, {} flagged); unchanged re-run {:.2} s; bulk load of {n} bookings {:.1} s",
        if url.starts_with("sqlite") { "SQLite" } else { "PostgreSQL" },
        summary.checked,
        took.as_secs_f64(),
        summary.noncompliant,
        summary.changed,
        took2.as_secs_f64(),
        load.as_secs_f64()
    );
    assert_eq!(again.changed, 0);
    store.close().await;
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    decisions(full, false);
    decisions(full, true);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    rt.block_on(reevaluation(&url, full));
    if let Ok(pg) = std::env::var("VERBUND_BENCH_POSTGRES") {
        rt.block_on(async {
            use sqlx::Connection;
            let db = format!("verbund_bench_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(&pg).await.expect("postgres");
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut admin)
                .await
                .expect("create db");
            let base = pg.rsplit_once('/').map(|(b, _)| b).unwrap_or(&pg);
            reevaluation(&format!("{base}/{db}"), full).await;
            sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .ok();
        });
    }
}
