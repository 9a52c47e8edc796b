//! What judging a page of a list costs: 100 bookings, each of another Gemeinde (ten
//! Kreise of one Land), as the Land's delegated administrator reads them — the work of
//! every page of `GET /api/v1/bookings` for a caller Cedar does not allow everything.
//!
//! Twice: each page of other Gemeinden than any before (what Cedar costs), and the same
//! page again (what a page costs whose verdicts are remembered).
//!
//! `cargo bench -p verbund-policy --bench judging` runs 2,000 pages each; under `cargo
//! test` (no `--bench` argument) a few, as a smoke test that the verdicts are right.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use verbund_domain::account::{Membership, Principal, Role};
use verbund_policy::authz::{Act, Authz, Target};

/// One booking's target per Gemeinde: Gemeinde, Kreis, Land, Bund; the `n`-th page of
/// Gemeinden.
fn page(n: usize) -> Vec<Target> {
    (0..100)
        .map(|g| {
            let chain = vec![
                format!("gemeinde-{n}-{g:03}"),
                format!("kreis-{}", g % 10),
                "land".to_string(),
                "bund".to_string(),
            ];
            Target::new("booking").in_organisation(chain)
        })
        .collect()
}

fn admin_of(organisation: &str, delegated: bool) -> Principal {
    Principal {
        user_id: format!("admin-of-{organisation}"),
        user_name: format!("admin of {organisation}"),
        memberships: vec![Membership {
            role: Role::OrgAdmin,
            organisation: Some(organisation.to_string()),
            provider: None,
            delegated,
        }],
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let pages = if full { 2_000 } else { 3 };
    let authz = Authz::new().expect("the role policies compile");
    for (caller, principal, allowed) in [
        ("the Land's delegated admin", admin_of("land", true), 100),
        ("the admin of one Kreis", admin_of("kreis-3", true), 10),
    ] {
        for (how, new_organisations) in
            [("new organisations", true), ("the same page again", false)]
        {
            let mut times = Vec::with_capacity(pages);
            for n in 0..pages {
                let targets = page(if new_organisations { n } else { 0 });
                let started = Instant::now();
                let verdicts = authz.judge_each(&principal, Act::Read, &targets);
                times.push(started.elapsed());
                assert_eq!(verdicts.iter().filter(|v| v.is_allowed()).count(), allowed);
            }
            times.sort();
            let mean = times.iter().sum::<Duration>() / pages as u32;
            let at = |share: usize| times.get(pages * share / 100).copied().unwrap_or_default();
            println!(
                "{caller}, {how}: a page of 100 bookings judged in {:.2} ms mean, {:.2} ms p50, {:.2} ms p99 ({pages} pages)",
                mean.as_secs_f64() * 1e3,
                at(50).as_secs_f64() * 1e3,
                at(99).as_secs_f64() * 1e3,
            );
        }
    }
}
