//! What a site's agent reports about what actually runs, and what verbund concludes from it.
//!
//! The desired state says what should run; only the sites know what does. An agent (the
//! real one in a cluster, or a simulated one) sends a [`SiteReport`]: a batch with the
//! site's own condition and, per booking, the applied version, replicas, conditions and
//! the smoke test's result. This module holds the wire format, its validation, and the
//! pure rule ([`assess`]) that turns an observation into a booking lifecycle event, so
//! that the API, the store and the simulator all judge a report the same way.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::booking::{BookingEvent, BookingState};
use crate::error::{Invalid, Result};

/// Most bookings one batch may carry; a larger site splits its report.
pub const MAX_BOOKINGS_PER_REPORT: usize = 10_000;
/// Most bytes one batch may have on the wire.
pub const MAX_REPORT_BYTES: usize = 16 * 1024 * 1024;
/// Report interval an agent announces unless it says otherwise.
pub const DEFAULT_INTERVAL_SECONDS: u32 = 30;
/// Bounds of the announced interval.
pub const INTERVAL_SECONDS: std::ops::RangeInclusive<u32> = 2..=3600;
/// Most conditions per booking.
const MAX_CONDITIONS: usize = 32;
/// How far a sequence may run ahead of the control plane's clock, read as Unix
/// milliseconds (what agents count in): a sequence beyond it would leave the site no room
/// for the next one, so it is refused, and a stored one no longer blocks (see
/// [`sequence_ceiling`]).
pub const SEQUENCE_LEAD: Duration = Duration::days(1);

/// The highest sequence a report may carry at `now`: the Unix time in milliseconds plus
/// [`SEQUENCE_LEAD`]. Bounding by the clock, not by a number, means that no sequence can
/// freeze a site for good: whatever was once accepted, the ceiling passes it within a day.
pub fn sequence_ceiling(now: DateTime<Utc>) -> u64 {
    let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    millis.saturating_add(u64::try_from(SEQUENCE_LEAD.num_milliseconds()).unwrap_or(0))
}

/// One batch of observations from a site's agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteReport {
    /// Strictly increasing per site (agents use Unix milliseconds, which survive restarts).
    /// A batch whose sequence is not above the last accepted one changes nothing.
    #[schema(minimum = 1)]
    pub sequence: u64,
    /// Who reports.
    pub agent: AgentInfo,
    /// The site's own condition.
    pub site: SiteObservation,
    /// Observations per booking, each booking once; a site may split them over several
    /// batches.
    #[serde(default)]
    #[schema(schema_with = bookings_schema)]
    pub bookings: Vec<BookingObservation>,
}

/// The longest agent name, Kubernetes version, booking id, condition type and reason,
/// and message of a report. The agent's name and the Kubernetes version are the same
/// in its preflight (`crate::preflight`).
pub(crate) const MAX_AGENT: usize = 100;
pub(crate) const MAX_VERSION: usize = 50;
const MAX_BOOKING: usize = 64;
const MAX_TYPE: usize = 100;
const MAX_REASON: usize = 200;
const MAX_MESSAGE: usize = 1000;

fn bookings_schema() -> utoipa::openapi::schema::Array {
    // Inline: no other schema names an observation, so it has no component to refer to.
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(<BookingObservation as utoipa::PartialSchema>::schema())
        .max_items(Some(MAX_BOOKINGS_PER_REPORT))
        .build()
}

fn agent_name_schema() -> utoipa::openapi::schema::Object {
    crate::name::line_text_schema(MAX_AGENT)
}

fn interval_schema() -> utoipa::openapi::schema::Object {
    crate::name::integer_schema(INTERVAL_SECONDS)
}

fn kubernetes_version_schema() -> utoipa::openapi::schema::Object {
    crate::name::line_schema(MAX_VERSION)
}

fn message_schema() -> utoipa::openapi::schema::Object {
    crate::directory::nullable(crate::name::line_schema(MAX_MESSAGE))
}

/// The healths a site may report: all but `unknown`, which verbund concludes.
fn reported_health_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(
            SiteHealth::ALL
                .into_iter()
                .filter(|h| h.is_reported())
                .map(SiteHealth::as_str),
        ))
        .build()
}

fn booking_id_schema() -> utoipa::openapi::schema::Object {
    let mut schema = crate::name::line_schema(MAX_BOOKING);
    schema.min_length = Some(1);
    schema
}

fn applied_version_schema() -> utoipa::openapi::schema::Object {
    crate::directory::nullable(crate::catalog::SEMVER.schema())
}

fn conditions_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(utoipa::openapi::Ref::from_schema_name("Condition"))
        .max_items(Some(MAX_CONDITIONS))
        .build()
}

fn condition_type_schema() -> utoipa::openapi::schema::Object {
    crate::name::line_schema(MAX_TYPE)
}

/// The statuses of a condition.
const CONDITION_STATUSES: [&str; 3] = ["True", "False", "Unknown"];

fn condition_status_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(CONDITION_STATUSES))
        .build()
}

fn condition_reason_schema() -> utoipa::openapi::schema::Object {
    crate::directory::nullable(crate::name::line_schema(MAX_REASON))
}

/// The reporting agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentInfo {
    /// e.g. `verbund-agent/0.1.0` or `verbund-simulate/0.1.0`.
    #[schema(schema_with = agent_name_schema)]
    pub name: String,
    /// True for `verbund simulate`: everything it reports is labelled simulated.
    #[serde(default)]
    pub simulated: bool,
    /// Seconds until the next report; silent longer than [`stale_after`] → `unknown`.
    #[serde(default = "default_interval")]
    #[schema(schema_with = interval_schema)]
    pub interval_seconds: u32,
}

fn default_interval() -> u32 {
    DEFAULT_INTERVAL_SECONDS
}

/// The site's cluster as its agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteObservation {
    /// e.g. `v1.33.2`.
    #[schema(schema_with = kubernetes_version_schema)]
    pub kubernetes_version: String,
    /// Allocatable minus requested, over the ready nodes.
    pub free: FreeCapacity,
    /// `healthy`, `degraded` or `unhealthy` (`unknown` is verbund's conclusion).
    #[schema(schema_with = reported_health_schema)]
    pub health: SiteHealth,
    /// A sentence for operators when not healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = message_schema)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FreeCapacity {
    pub cpu_millis: u64,
    pub memory_mib: u64,
    pub storage_gib: u64,
}

/// The health a site reports of itself. `Unknown` is never reported: verbund concludes
/// it when a site falls silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SiteHealth {
    Healthy,
    Degraded,
    Unhealthy,
    Unknown,
}

impl SiteHealth {
    pub const ALL: [SiteHealth; 4] = [
        SiteHealth::Healthy,
        SiteHealth::Degraded,
        SiteHealth::Unhealthy,
        SiteHealth::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SiteHealth::Healthy => "healthy",
            SiteHealth::Degraded => "degraded",
            SiteHealth::Unhealthy => "unhealthy",
            SiteHealth::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.as_str() == s)
    }

    /// Whether a site may report this health of itself.
    pub fn is_reported(self) -> bool {
        self != SiteHealth::Unknown
    }
}

/// What runs of one booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingObservation {
    /// The booking's id (the namespace's `verbund.dev/booking` label).
    #[schema(schema_with = booking_id_schema)]
    pub booking: String,
    /// The version running (`verbund.dev/version` of the workloads), if any yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = applied_version_schema)]
    pub applied_version: Option<String>,
    pub desired_replicas: u32,
    pub ready_replicas: u32,
    /// Kubernetes-style conditions (HelmRelease/Application/Deployment), for operators.
    #[serde(default)]
    #[schema(schema_with = conditions_schema)]
    pub conditions: Vec<Condition>,
    pub smoke_test: SmokeResult,
    /// The booking's export Job, while it is being exported (see [`crate::ending`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<crate::ending::ExportObservation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// e.g. `Ready`, `Available`, `Synced`.
    #[serde(rename = "type")]
    #[schema(schema_with = condition_type_schema)]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    #[schema(schema_with = condition_status_schema)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = condition_reason_schema)]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = message_schema)]
    pub message: Option<String>,
}

/// The result of the smoke-test Job of the applied version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SmokeResult {
    /// The offering has no smoke test.
    None,
    /// Not finished yet.
    Pending,
    Passed,
    Failed,
}

impl SmokeResult {
    pub fn as_str(self) -> &'static str {
        match self {
            SmokeResult::None => "none",
            SmokeResult::Pending => "pending",
            SmokeResult::Passed => "passed",
            SmokeResult::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::None, Self::Pending, Self::Passed, Self::Failed]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    crate::name::check_line(field, value, max, false)
}

impl SiteReport {
    /// Checks the batch at `now`: on its own ([`SiteReport::validate`]) and its sequence
    /// against [`sequence_ceiling`]. This is what the control plane accepts.
    pub fn validate_at(&self, now: DateTime<Utc>) -> Result<()> {
        self.validate()?;
        let ceiling = sequence_ceiling(now);
        if self.sequence > ceiling {
            return Err(Invalid::meaning(
                "/sequence",
                format!(
                    "`{}` is more than a day ahead of the current Unix time in milliseconds \
                     (at most `{ceiling}` now), which would leave no room for the next report",
                    self.sequence
                ),
            ));
        }
        Ok(())
    }

    /// Checks the batch on its own, whatever the time (the store checks that each booking
    /// is on the site).
    pub fn validate(&self) -> Result<()> {
        if self.sequence == 0 {
            return Err(Invalid::new("/sequence", "must be greater than 0"));
        }
        crate::name::check_line("/agent/name", &self.agent.name, MAX_AGENT, true)?;
        if !INTERVAL_SECONDS.contains(&self.agent.interval_seconds) {
            return Err(Invalid::new(
                "/agent/interval_seconds",
                format!(
                    "must be between {} and {}",
                    INTERVAL_SECONDS.start(),
                    INTERVAL_SECONDS.end()
                ),
            ));
        }
        check_text(
            "/site/kubernetes_version",
            &self.site.kubernetes_version,
            MAX_VERSION,
        )?;
        if !self.site.health.is_reported() {
            return Err(Invalid::new(
                "/site/health",
                "`unknown` is concluded by verbund, not reported; send healthy, degraded or unhealthy",
            ));
        }
        if let Some(m) = &self.site.message {
            check_text("/site/message", m, MAX_MESSAGE)?;
        }
        if self.bookings.len() > MAX_BOOKINGS_PER_REPORT {
            return Err(Invalid::new(
                "/bookings",
                format!(
                    "holds {} bookings, at most {MAX_BOOKINGS_PER_REPORT} per batch: split the report",
                    self.bookings.len()
                ),
            ));
        }
        let mut seen = HashSet::with_capacity(self.bookings.len());
        for (i, b) in self.bookings.iter().enumerate() {
            let at = format!("/bookings/{i}");
            b.validate().map_err(|e| e.at(&at))?;
            if !seen.insert(b.booking.as_str()) {
                return Err(Invalid::meaning(
                    format!("{at}/booking"),
                    format!("booking `{}` is reported twice in this batch", b.booking),
                ));
            }
        }
        Ok(())
    }
}

impl BookingObservation {
    fn validate(&self) -> Result<()> {
        if self.booking.is_empty() {
            return Err(Invalid::new("/booking", "must be a booking id"));
        }
        check_text("/booking", &self.booking, MAX_BOOKING)?;
        if let Some(v) = &self.applied_version {
            if !crate::catalog::SEMVER.is_match(v) {
                return Err(Invalid::new(
                    "/applied_version",
                    format!("`{v}` is not a semantic version"),
                ));
            }
            semver::Version::parse(v).map_err(|e| {
                Invalid::new("/applied_version", format!("`{v}` is not a version: {e}"))
            })?;
        }
        if let Some(e) = &self.export {
            e.validate("/export")?;
        }
        if self.conditions.len() > MAX_CONDITIONS {
            return Err(Invalid::new(
                "/conditions",
                format!("at most {MAX_CONDITIONS} conditions"),
            ));
        }
        for (i, c) in self.conditions.iter().enumerate() {
            let at = format!("/conditions/{i}");
            check_text(&format!("{at}/type"), &c.kind, MAX_TYPE)?;
            if !CONDITION_STATUSES.contains(&c.status.as_str()) {
                return Err(Invalid::new(
                    format!("{at}/status"),
                    format!("`{}` is not True, False or Unknown", c.status),
                ));
            }
            if let Some(r) = &c.reason {
                check_text(&format!("{at}/reason"), r, MAX_REASON)?;
            }
            if let Some(m) = &c.message {
                check_text(&format!("{at}/message"), m, MAX_MESSAGE)?;
            }
        }
        Ok(())
    }

    /// Whether the desired version runs completely and passed its smoke test.
    pub fn ready_at(&self, desired: &str) -> bool {
        self.runs(desired)
            && self.desired_replicas > 0
            && self.ready_replicas >= self.desired_replicas
            && matches!(self.smoke_test, SmokeResult::Passed | SmokeResult::None)
            && !self.failing_condition()
    }

    fn runs(&self, desired: &str) -> bool {
        self.applied_version.as_deref() == Some(desired)
    }

    /// A condition that says the booking does not serve: a verdict of failure
    /// ([`Self::failure_verdict`]) or a Deployment's `Available` False.
    fn failing_condition(&self) -> bool {
        self.failure_verdict() || self.condition_false("Available")
    }

    /// A condition that judges the booking failed, as opposed to not ready yet:
    /// `Progressing` False (Kubernetes: a Deployment past its progress deadline), `Ready`
    /// False (Flux) or `Healthy` False (Argo CD).
    fn failure_verdict(&self) -> bool {
        ["Progressing", "Ready", "Healthy"]
            .into_iter()
            .any(|kind| self.condition_false(kind))
    }

    fn condition_false(&self, kind: &str) -> bool {
        self.conditions
            .iter()
            .any(|c| c.kind == kind && c.status == "False")
    }

    /// Why a booking is not ready at `desired`, in one sentence; `None` if it is.
    pub fn problem(&self, desired: &str) -> Option<String> {
        if self.ready_at(desired) {
            return None;
        }
        Some(match &self.applied_version {
            None => "nothing runs yet".to_string(),
            Some(v) if v != desired => format!("runs version {v}, desired is {desired}"),
            Some(_) if self.smoke_test == SmokeResult::Failed => {
                "the smoke test failed".to_string()
            }
            Some(_) if self.failing_condition() => self
                .conditions
                .iter()
                .find(|c| c.status == "False")
                .map(|c| {
                    let reason = c.reason.as_deref().map(|r| format!(" ({r})"));
                    format!("{} is False{}", c.kind, reason.unwrap_or_default())
                })
                .unwrap_or_else(|| "a condition is False".to_string()),
            Some(_)
                if self.ready_replicas < self.desired_replicas || self.desired_replicas == 0 =>
            {
                format!(
                    "{} of {} replicas ready",
                    self.ready_replicas, self.desired_replicas
                )
            }
            Some(_) => "the smoke test has not finished".to_string(),
        })
    }

    /// Whether this observation shows a failure, as opposed to work still in progress.
    ///
    /// A Deployment's `Available=False` is not a verdict: Kubernetes sets it
    /// (`MinimumReplicasUnavailable`) on every new Deployment until its first pods are up,
    /// so a booking observed a moment after it was applied would fail for being young.
    /// Kubernetes' own verdict on a rollout is `Progressing=False` once it is past its
    /// `progressDeadlineSeconds` (see [`Self::failure_verdict`]).
    fn failed(&self, desired: &str) -> bool {
        self.runs(desired) && (self.smoke_test == SmokeResult::Failed || self.failure_verdict())
    }
}

/// The lifecycle event an observation of a booking in `state` at `desired` version
/// implies, if any.
///
/// - provisioning/updating → active once the desired version is ready; → degraded
///   when it runs and fails (smoke test, a `Ready=False` condition, a Deployment whose
///   rollout is past its progress deadline: `Progressing=False`). Not ready yet is
///   work in progress and changes nothing.
/// - active → degraded when it is no longer ready (fewer replicas, failed smoke test,
///   another version than desired); degraded → active once ready again.
/// - every other state: reports are recorded, the lifecycle is not theirs.
pub fn assess(
    state: BookingState,
    desired: &str,
    observed: &BookingObservation,
) -> Option<BookingEvent> {
    let ready = observed.ready_at(desired);
    match state {
        BookingState::Provisioning | BookingState::Updating => {
            if ready {
                Some(BookingEvent::BecomeReady)
            } else if observed.failed(desired) {
                Some(BookingEvent::Degrade)
            } else {
                None
            }
        }
        BookingState::Active => (!ready).then_some(BookingEvent::Degrade),
        BookingState::Degraded => ready.then_some(BookingEvent::BecomeReady),
        _ => None,
    }
}

/// How long a site may stay silent before it is `unknown`: its interval plus half of it,
/// so that one late report (jitter, a slow API call) does not flap.
pub fn stale_after(interval_seconds: u32) -> Duration {
    Duration::milliseconds(i64::from(interval_seconds) * 1500)
}

/// Whether a site that last reported at `reported_at` with `interval_seconds` is silent.
pub fn is_stale(reported_at: DateTime<Utc>, interval_seconds: u32, now: DateTime<Utc>) -> bool {
    now - reported_at > stale_after(interval_seconds)
}

/// What verbund last heard from a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SiteStatus {
    pub site: String,
    /// The highest sequence accepted.
    pub sequence: u64,
    pub reported_at: DateTime<Utc>,
    pub interval_seconds: u32,
    pub agent: String,
    /// Reported by `verbund simulate`, not by a real cluster.
    pub simulated: bool,
    pub kubernetes_version: String,
    pub free: FreeCapacity,
    /// What the site said of itself; see [`SiteStatus::health_at`] for what holds now.
    pub reported_health: SiteHealth,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When verbund concluded the site silent, until it reports again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silent_since: Option<DateTime<Utc>>,
}

impl SiteStatus {
    /// The site's health at `now`: `unknown` once it is silent past its interval.
    pub fn health_at(&self, now: DateTime<Utc>) -> SiteHealth {
        if self.is_stale(now) {
            SiteHealth::Unknown
        } else {
            self.reported_health
        }
    }

    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        is_stale(self.reported_at, self.interval_seconds, now)
    }

    /// Seconds since the last report.
    pub fn lag_seconds(&self, now: DateTime<Utc>) -> f64 {
        (now - self.reported_at).num_milliseconds().max(0) as f64 / 1000.0
    }
}

/// What verbund last heard about one booking from its site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BookingStatus {
    pub booking: String,
    pub site: String,
    /// The sequence of the report it came with.
    pub sequence: u64,
    pub observed_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_version: Option<String>,
    pub desired_replicas: u32,
    pub ready_replicas: u32,
    pub smoke_test: SmokeResult,
    pub conditions: Vec<Condition>,
    /// Why it is not ready at its desired version, if it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Its export Job, as last reported (while it is being exported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<crate::ending::ExportObservation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(version: &str, ready: u32, smoke: SmokeResult) -> BookingObservation {
        BookingObservation {
            export: None,
            booking: "b1".into(),
            applied_version: Some(version.into()),
            desired_replicas: 2,
            ready_replicas: ready,
            conditions: vec![],
            smoke_test: smoke,
        }
    }

    fn report(bookings: Vec<BookingObservation>) -> SiteReport {
        SiteReport {
            sequence: 1,
            agent: AgentInfo {
                name: "verbund-agent/test".into(),
                simulated: false,
                interval_seconds: 30,
            },
            site: SiteObservation {
                kubernetes_version: "v1.33.2".into(),
                free: FreeCapacity::default(),
                health: SiteHealth::Healthy,
                message: None,
            },
            bookings,
        }
    }

    #[test]
    fn provisioning_becomes_active_only_when_the_desired_version_is_ready() {
        use BookingState::*;
        let s = Provisioning;
        assert_eq!(
            assess(s, "1.0.0", &observation("1.0.0", 1, SmokeResult::None)),
            None
        );
        assert_eq!(
            assess(s, "1.0.0", &observation("1.0.0", 2, SmokeResult::Pending)),
            None
        );
        assert_eq!(
            assess(s, "1.1.0", &observation("1.0.0", 2, SmokeResult::Passed)),
            None
        );
        assert_eq!(
            assess(s, "1.0.0", &observation("1.0.0", 2, SmokeResult::Passed)),
            Some(BookingEvent::BecomeReady)
        );
        assert_eq!(
            assess(s, "1.0.0", &observation("1.0.0", 2, SmokeResult::Failed)),
            Some(BookingEvent::Degrade)
        );
        // The new version's pods never come up while the old ones serve: not ready, and
        // once the Deployment is past its progress deadline, degraded.
        let mut stalled = observation("1.0.0", 0, SmokeResult::None);
        assert_eq!(assess(s, "1.0.0", &stalled), None);
        stalled.conditions.push(Condition {
            kind: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: None,
        });
        assert_eq!(assess(s, "1.0.0", &stalled), Some(BookingEvent::Degrade));
    }

    #[test]
    fn a_deployment_whose_first_pods_are_starting_is_in_progress_not_failed() {
        use BookingState::*;
        // What Kubernetes reports for a Deployment seconds old.
        let mut young = observation("1.0.0", 0, SmokeResult::None);
        young.conditions.push(Condition {
            kind: "Available".into(),
            status: "False".into(),
            reason: Some("MinimumReplicasUnavailable".into()),
            message: Some("Deployment does not have minimum availability.".into()),
        });
        for state in [Provisioning, Updating] {
            assert_eq!(assess(state, "1.0.0", &young), None, "{state:?}");
        }
        assert!(!young.ready_at("1.0.0"));
        // Once running, the same condition means it lost its pods.
        assert_eq!(assess(Active, "1.0.0", &young), Some(BookingEvent::Degrade));
    }

    #[test]
    fn active_degrades_and_recovers() {
        use BookingState::*;
        let healthy = observation("1.0.0", 2, SmokeResult::Passed);
        let short = observation("1.0.0", 1, SmokeResult::Passed);
        assert_eq!(assess(Active, "1.0.0", &healthy), None);
        assert_eq!(assess(Active, "1.0.0", &short), Some(BookingEvent::Degrade));
        assert_eq!(assess(Degraded, "1.0.0", &short), None);
        assert_eq!(
            assess(Degraded, "1.0.0", &healthy),
            Some(BookingEvent::BecomeReady)
        );
        assert_eq!(assess(Cancelling, "1.0.0", &short), None);
        let mut failing = healthy.clone();
        failing.conditions.push(Condition {
            kind: "Ready".into(),
            status: "False".into(),
            reason: Some("InstallFailed".into()),
            message: None,
        });
        assert_eq!(
            assess(Active, "1.0.0", &failing),
            Some(BookingEvent::Degrade)
        );
        assert_eq!(
            failing.problem("1.0.0").unwrap(),
            "Ready is False (InstallFailed)"
        );
    }

    #[test]
    fn every_assessed_event_is_a_legal_transition() {
        let smokes = [
            SmokeResult::None,
            SmokeResult::Pending,
            SmokeResult::Passed,
            SmokeResult::Failed,
        ];
        for state in BookingState::ALL {
            for ready in 0..=2 {
                for smoke in smokes {
                    for v in ["1.0.0", "2.0.0"] {
                        if let Some(e) = assess(state, "1.0.0", &observation(v, ready, smoke)) {
                            assert!(
                                crate::booking::transition(state, e).is_ok(),
                                "{state:?} {e:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bad_batches_are_refused_with_a_pointer() {
        assert!(report(vec![observation("1.0.0", 2, SmokeResult::Passed)])
            .validate()
            .is_ok());
        let twice = report(vec![
            observation("1.0.0", 2, SmokeResult::Passed),
            observation("1.0.0", 2, SmokeResult::Passed),
        ]);
        assert_eq!(twice.validate().unwrap_err().field, "/bookings/1/booking");
        let mut bad_version = report(vec![observation("one", 2, SmokeResult::Passed)]);
        assert_eq!(
            bad_version.validate().unwrap_err().field,
            "/bookings/0/applied_version"
        );
        bad_version.bookings.clear();
        bad_version.sequence = 0;
        assert_eq!(bad_version.validate().unwrap_err().field, "/sequence");
        let mut unknown = report(vec![]);
        unknown.site.health = SiteHealth::Unknown;
        assert_eq!(unknown.validate().unwrap_err().field, "/site/health");
        let many = report(
            (0..=MAX_BOOKINGS_PER_REPORT)
                .map(|i| BookingObservation {
                    booking: format!("b{i}"),
                    ..observation("1.0.0", 2, SmokeResult::None)
                })
                .collect(),
        );
        assert_eq!(many.validate().unwrap_err().field, "/bookings");
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_sequence_leaves_room_for_the_next() {
        let at = |sequence: u64| {
            let mut r = report(vec![]);
            r.sequence = sequence;
            r.validate_at(now()).map_err(|e| e.field)
        };
        let ceiling = sequence_ceiling(now());
        assert_eq!(
            ceiling,
            1_795_600_800_000 + 86_400_000,
            "Unix milliseconds plus a day"
        );
        assert_eq!(at(1), Ok(()));
        assert_eq!(at(ceiling), Ok(()));
        for too_far in [ceiling + 1, i64::MAX as u64, u64::MAX] {
            assert_eq!(at(too_far), Err("/sequence".to_string()), "{too_far}");
        }
        // The ceiling moves with the clock and never wraps.
        assert!(sequence_ceiling(now() + Duration::days(2)) > ceiling);
        assert_eq!(sequence_ceiling(DateTime::<Utc>::MIN_UTC), 86_400_000);
    }

    #[test]
    fn a_site_is_stale_after_one_and_a_half_intervals() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(!is_stale(t0, 10, t0 + Duration::seconds(15)));
        assert!(is_stale(t0, 10, t0 + Duration::milliseconds(15_001)));
    }
}
