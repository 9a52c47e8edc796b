//! The report loop: every interval, the observation from the stores goes to the control
//! plane as one or more batches.
//!
//! Why batches and sequences here: the control plane accepts at most
//! [`MAX_BOOKINGS_PER_REPORT`] bookings per batch and only batches whose sequence is
//! above the last accepted one. Sequences are Unix milliseconds (they survive restarts)
//! and never repeat within a run: each batch gets `max(last + 1, now)`. A failed send is
//! logged and the loop goes on; the next report carries the news.

use std::time::Duration;

use verbund_domain::report::{
    AgentInfo, BookingObservation, SiteObservation, SiteReport, MAX_BOOKINGS_PER_REPORT,
};

use crate::observe::{observe, Stores};
use crate::sender::ReportSender;

/// What the agent calls itself in its reports.
pub const AGENT_NAME: &str = concat!("verbund-agent/", env!("CARGO_PKG_VERSION"));

/// The next sequence after `last`, at `now_millis`.
pub fn next_sequence(last: u64, now_millis: u64) -> u64 {
    last.saturating_add(1).max(now_millis)
}

/// The batches of one report: at most [`MAX_BOOKINGS_PER_REPORT`] bookings each (one
/// batch without bookings if there are none), every batch with the site's observation
/// and a higher sequence than the one before. `last` is updated to the last batch's.
pub fn batches(
    last: &mut u64,
    now_millis: u64,
    interval_seconds: u32,
    site: &SiteObservation,
    bookings: Vec<BookingObservation>,
) -> Vec<SiteReport> {
    let mut chunks: Vec<Vec<BookingObservation>> = Vec::new();
    let mut rest = bookings.into_iter().peekable();
    while rest.peek().is_some() {
        chunks.push(rest.by_ref().take(MAX_BOOKINGS_PER_REPORT).collect());
    }
    if chunks.is_empty() {
        chunks.push(Vec::new());
    }
    chunks
        .into_iter()
        .map(|bookings| {
            *last = next_sequence(*last, now_millis);
            SiteReport {
                sequence: *last,
                agent: AgentInfo {
                    name: AGENT_NAME.to_string(),
                    simulated: false,
                    interval_seconds,
                },
                site: site.clone(),
                bookings,
            }
        })
        .collect()
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reports every `interval` until the process ends. Errors (the cluster, the control
/// plane) are logged; the loop never stops on them.
pub async fn run(stores: Stores, sender: ReportSender, interval: Duration) {
    let interval_seconds = u32::try_from(interval.as_secs())
        .unwrap_or(u32::MAX)
        .clamp(2, 3600);
    let mut last = 0u64;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // Half-filled stores would report bookings missing and nodes gone: better silent
        // (the control plane then marks the site unknown) than wrong.
        match tokio::time::timeout(interval, stores.wait_until_ready()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the cluster's objects cannot be listed; not reporting");
                continue;
            }
            Err(_) => {
                tracing::warn!("the cluster's objects are not listed yet; not reporting");
                continue;
            }
        }
        let snapshot = match stores.snapshot().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no observation this round");
                continue;
            }
        };
        let (site, bookings) = observe(&snapshot);
        let count = bookings.len();
        for report in batches(&mut last, now_millis(), interval_seconds, &site, bookings) {
            match sender.send(&report).await {
                Ok(receipt) => tracing::info!(
                    sequence = report.sequence,
                    bookings = receipt.bookings,
                    transitions = receipt.transitions,
                    accepted = receipt.accepted,
                    "report delivered"
                ),
                Err(e) => tracing::warn!(
                    sequence = report.sequence,
                    bookings = report.bookings.len(),
                    error = %e,
                    "report not delivered"
                ),
            }
        }
        tracing::debug!(bookings = count, health = site.health.as_str(), "observed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verbund_domain::report::{FreeCapacity, SiteHealth, SmokeResult};

    fn site() -> SiteObservation {
        SiteObservation {
            kubernetes_version: "v1.33.2".into(),
            free: FreeCapacity::default(),
            health: SiteHealth::Healthy,
            message: None,
        }
    }

    fn booking(i: usize) -> BookingObservation {
        BookingObservation {
            export: None,
            booking: format!("b-{i}"),
            applied_version: None,
            desired_replicas: 1,
            ready_replicas: 1,
            conditions: vec![],
            smoke_test: SmokeResult::None,
        }
    }

    #[test]
    fn sequences_increase_even_when_the_clock_does_not() {
        assert_eq!(next_sequence(0, 1_000), 1_000);
        assert_eq!(next_sequence(1_000, 1_000), 1_001);
        assert_eq!(next_sequence(5_000, 1_000), 5_001);
    }

    #[test]
    fn large_sites_split_into_batches_of_ten_thousand() {
        let mut last = 0;
        let all: Vec<_> = (0..25_001).map(booking).collect();
        let reports = batches(&mut last, 1_000, 30, &site(), all);
        let sizes: Vec<usize> = reports.iter().map(|r| r.bookings.len()).collect();
        assert_eq!(sizes, [10_000, 10_000, 5_001]);
        let sequences: Vec<u64> = reports.iter().map(|r| r.sequence).collect();
        assert_eq!(sequences, [1_000, 1_001, 1_002]);
        assert_eq!(last, 1_002);
        for r in &reports {
            r.validate().unwrap();
            assert!(!r.agent.simulated);
        }
        // A site without bookings still reports itself.
        let empty = batches(&mut last, 900, 30, &site(), vec![]);
        assert_eq!(empty.len(), 1);
        assert_eq!(empty[0].sequence, 1_003);
    }
}
