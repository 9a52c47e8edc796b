//! A site's health over time, read back from the audit trail.
//!
//! The control plane keeps only a site's *current* status; its story is in the audit
//! trail, where ingesting a report records each turn (`site.reporting` on the first report
//! and after silence, `site.health` when the reported health changes) and the silence
//! sweep records `site.silent`. This module turns those events into spans of one health
//! each over a window, so that the API and the portal's chart read the same answer and a
//! day without a turn still shows the health the site had.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::AuditEvent;
use crate::report::SiteHealth;

/// The audit actions that turn a site's health.
pub const HEALTH_ACTIONS: [&str; 3] = ["site.reporting", "site.health", "site.silent"];

/// How far back a history reaches by default, and at most.
pub const DEFAULT_HISTORY_DAYS: u32 = 30;
pub const MAX_HISTORY_DAYS: u32 = 366;
/// The most turns one history holds; a site that turned more often within the window
/// shows its newest turns and a window shortened to them.
pub const MAX_TURNS: u32 = 2000;

/// The days a history reaches back: 1 to [`MAX_HISTORY_DAYS`], refused (not clamped)
/// outside those bounds.
pub type HistoryDays = crate::bounded::Bounded<1, MAX_HISTORY_DAYS, DEFAULT_HISTORY_DAYS>;

/// A site's health over a window: the spans for a chart and the turns for a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SiteHistory {
    pub site: String,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// The window, cut into stretches of one health each, oldest first.
    pub spans: Vec<HealthSpan>,
    /// Each turn within the window, oldest first.
    pub turns: Vec<HealthTurn>,
}

impl SiteHistory {
    /// The history of `[from, until)` from the turn before the window (if any) and the
    /// turns within it, oldest first, at most [`MAX_TURNS`] of the newest: when there
    /// were more, the window starts at the oldest turn kept.
    pub fn new(
        site: &str,
        before: Option<&HealthTurn>,
        turns: Vec<HealthTurn>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        complete: bool,
    ) -> Self {
        let from = match (complete, turns.first()) {
            (false, Some(first)) => first.at,
            _ => from,
        };
        let spans = health_spans(before.map(|t| t.health), &turns, from, until);
        SiteHistory {
            site: site.to_owned(),
            from,
            until,
            spans,
            turns,
        }
    }
}

/// One turn of a site's health, as the audit trail recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthTurn {
    pub at: DateTime<Utc>,
    /// `reporting` (first report, or back from silence), `health` (the reported health
    /// changed) or `silent` (no report within the site's interval).
    pub kind: String,
    pub health: SiteHealth,
    /// What the site said of itself with the report, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl HealthTurn {
    /// The turn an audit event records, or `None` for an event that turns no health
    /// (a preflight, an edit of the site) or whose health cannot be read.
    pub fn from_event(e: &AuditEvent) -> Option<Self> {
        let kind = e.action.strip_prefix("site.")?;
        if !HEALTH_ACTIONS.contains(&e.action.as_str()) {
            return None;
        }
        let after = e.after.as_ref()?;
        let health = SiteHealth::parse(after.get("health")?.as_str()?)?;
        let message = after
            .get("message")
            .and_then(|m| m.as_str())
            .filter(|m| !m.is_empty())
            .map(str::to_owned);
        Some(Self {
            at: e.at,
            kind: kind.to_owned(),
            health,
            message,
        })
    }
}

/// A stretch of time in which the site had one health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthSpan {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub health: SiteHealth,
}

/// The spans of `[from, until)`: the health `before` the window (unknown when the site
/// had not reported yet) until the first turn, then each turn's health until the next.
/// Turns outside the window only count for where it starts; neighbouring spans of the
/// same health are one span; the spans cover the window without gap or overlap.
pub fn health_spans(
    before: Option<SiteHealth>,
    turns: &[HealthTurn],
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<HealthSpan> {
    if until <= from {
        return Vec::new();
    }
    let mut ordered: Vec<&HealthTurn> = turns.iter().collect();
    ordered.sort_by_key(|t| t.at);
    let mut current = before.unwrap_or(SiteHealth::Unknown);
    let mut start = from;
    let mut spans: Vec<HealthSpan> = Vec::new();
    for turn in ordered {
        if turn.at <= from {
            current = turn.health;
            continue;
        }
        if turn.at >= until {
            break;
        }
        push_span(&mut spans, start, turn.at, current);
        start = turn.at;
        current = turn.health;
    }
    push_span(&mut spans, start, until, current);
    spans
}

fn push_span(
    spans: &mut Vec<HealthSpan>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    health: SiteHealth,
) {
    if until <= from {
        return;
    }
    match spans.last_mut() {
        Some(last) if last.health == health && last.until == from => last.until = until,
        _ => spans.push(HealthSpan {
            from,
            until,
            health,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;
    use serde_json::json;

    fn at(day: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().unwrap() + Duration::days(day)
    }

    fn turn(day: i64, health: SiteHealth) -> HealthTurn {
        HealthTurn {
            at: at(day),
            kind: "health".into(),
            health,
            message: None,
        }
    }

    #[test]
    fn a_window_without_turns_keeps_the_health_before_it() {
        let spans = health_spans(Some(SiteHealth::Healthy), &[], at(0), at(30));
        assert_eq!(
            spans,
            [HealthSpan {
                from: at(0),
                until: at(30),
                health: SiteHealth::Healthy
            }]
        );
        // Never reported: unknown, not healthy.
        assert_eq!(
            health_spans(None, &[], at(0), at(1))[0].health,
            SiteHealth::Unknown
        );
    }

    #[test]
    fn turns_cut_the_window_and_equal_neighbours_merge() {
        let turns = [
            turn(-3, SiteHealth::Degraded), // before the window: where it starts
            turn(5, SiteHealth::Healthy),
            turn(7, SiteHealth::Healthy), // no change: no new span
            turn(10, SiteHealth::Unknown),
            turn(40, SiteHealth::Healthy), // after the window
        ];
        let spans = health_spans(None, &turns, at(0), at(30));
        let got: Vec<_> = spans.iter().map(|s| (s.from, s.until, s.health)).collect();
        assert_eq!(
            got,
            [
                (at(0), at(5), SiteHealth::Degraded),
                (at(5), at(10), SiteHealth::Healthy),
                (at(10), at(30), SiteHealth::Unknown),
            ]
        );
    }

    #[test]
    fn turns_are_read_from_the_events_that_record_them() {
        let event = |action: &str, after: serde_json::Value| AuditEvent {
            seq: 1,
            at: at(2),
            actor: "site/x".into(),
            action: action.into(),
            object: "site/x".into(),
            before: None,
            after: Some(after),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let t = HealthTurn::from_event(&event(
            "site.health",
            json!({"health": "degraded", "message": "node down"}),
        ))
        .unwrap();
        assert_eq!(
            (t.kind.as_str(), t.health),
            ("health", SiteHealth::Degraded)
        );
        assert_eq!(t.message.as_deref(), Some("node down"));
        let silent = HealthTurn::from_event(&event("site.silent", json!({"health": "unknown"})));
        assert_eq!(silent.unwrap().health, SiteHealth::Unknown);
        assert!(
            HealthTurn::from_event(&event("site.preflight", json!({"health": "healthy"})))
                .is_none()
        );
        assert!(HealthTurn::from_event(&event("site.health", json!({"health": "fine"}))).is_none());
    }

    proptest! {
        /// Whatever the turns, the spans tile the window exactly, in order, and no two
        /// neighbours share a health.
        #[test]
        fn spans_tile_the_window(days in proptest::collection::vec((-10i64..40, 0usize..4), 0..20)) {
            let turns: Vec<_> = days.iter().map(|(d, h)| turn(*d, SiteHealth::ALL[*h])).collect();
            let spans = health_spans(None, &turns, at(0), at(30));
            prop_assert_eq!(spans.first().map(|s| s.from), Some(at(0)));
            prop_assert_eq!(spans.last().map(|s| s.until), Some(at(30)));
            for pair in spans.windows(2) {
                prop_assert_eq!(pair[0].until, pair[1].from);
                prop_assert_ne!(pair[0].health, pair[1].health);
            }
            for s in &spans {
                prop_assert!(s.from < s.until);
            }
        }
    }
}
