//! Prometheus metrics: request counts and latencies per route and status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::AppState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteLabels {
    pub site: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteHealthLabels {
    pub site: String,
    pub health: String,
}

/// The metric registry and the handles the middleware updates.
pub struct Metrics {
    pub registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    /// Bookings by lifecycle state, refreshed at every scrape.
    pub bookings: Family<StateLabels, Gauge>,
    /// Bookings whose placement no longer complies with the policies in force.
    pub noncompliant: Gauge,
    /// Site report batches by outcome (accepted, duplicate, or the reason of a refusal).
    pub site_reports: Family<OutcomeLabels, Counter>,
    /// Booking observations in accepted batches.
    pub booking_reports: Counter,
    /// 1 for each site's current health (`unknown` once silent), 0 for the others.
    pub site_health: Family<SiteHealthLabels, Gauge>,
    /// Seconds since each site's last accepted report, refreshed at every scrape.
    pub report_lag: Family<SiteLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Rollouts by state, refreshed at every scrape.
    pub rollouts: Family<StateLabels, Gauge>,
    /// 1 while this replica leads the rollout engine.
    pub rollout_leader: Gauge,
    /// Rollout ticks this replica ran, and those that changed something.
    pub rollout_ticks: Gauge,
    pub rollout_changes: Gauge,
    /// 1 while this replica writes the desired state.
    pub desired_state_writer: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("verbund");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register("http_requests", "HTTP requests handled", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to handle an HTTP request",
            latency.clone(),
        );
        let bookings = Family::<StateLabels, Gauge>::default();
        registry.register("bookings", "Bookings by lifecycle state", bookings.clone());
        let noncompliant = Gauge::default();
        registry.register(
            "bookings_noncompliant",
            "Bookings whose placement no longer complies with the policies in force",
            noncompliant.clone(),
        );
        let site_reports = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "site_reports",
            "Site report batches received, by outcome",
            site_reports.clone(),
        );
        let booking_reports = Counter::default();
        registry.register(
            "booking_reports",
            "Booking observations in accepted site reports",
            booking_reports.clone(),
        );
        let site_health = Family::<SiteHealthLabels, Gauge>::default();
        registry.register(
            "site_health",
            "1 for the health each site is in (unknown when silent past its interval)",
            site_health.clone(),
        );
        let report_lag = Family::<SiteLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "site_report_lag_seconds",
            "Seconds since the site's last accepted report",
            report_lag.clone(),
        );
        let rollouts = Family::<StateLabels, Gauge>::default();
        registry.register("rollouts", "Rollouts by state", rollouts.clone());
        let rollout_leader = Gauge::default();
        registry.register(
            "rollout_engine_leader",
            "1 while this replica leads the rollout engine",
            rollout_leader.clone(),
        );
        let desired_state_writer = Gauge::default();
        registry.register(
            "desired_state_writer",
            "1 while this replica writes the desired state (the others follow its history)",
            desired_state_writer.clone(),
        );
        let rollout_ticks = Gauge::default();
        registry.register(
            "rollout_engine_ticks",
            "Rollout ticks this replica ran",
            rollout_ticks.clone(),
        );
        let rollout_changes = Gauge::default();
        registry.register(
            "rollout_engine_changes",
            "Rollout ticks of this replica that changed something",
            rollout_changes.clone(),
        );
        Self {
            registry,
            rollouts,
            rollout_leader,
            desired_state_writer,
            rollout_ticks,
            rollout_changes,
            requests,
            latency,
            bookings,
            noncompliant,
            site_reports,
            booking_reports,
            site_health,
            report_lag,
        }
    }
}

impl Metrics {
    /// Counts a refused site report by the reason's short name.
    pub fn report_refused(&self, reason: &str) {
        self.site_reports
            .get_or_create(&OutcomeLabels {
                outcome: format!("refused-{reason}"),
            })
            .inc();
    }

    /// Counts a site report that was applied (or was a duplicate).
    pub fn report_received(&self, accepted: bool, bookings: usize) {
        let outcome = if accepted { "accepted" } else { "duplicate" };
        self.site_reports
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
        if accepted {
            self.booking_reports.inc_by(bookings as u64);
        }
    }

    /// Sets the health and lag gauges of every site from its last status.
    pub fn observe_sites(
        &self,
        sites: &[verbund_domain::report::SiteStatus],
        now: chrono::DateTime<chrono::Utc>,
    ) {
        use verbund_domain::report::SiteHealth;
        for s in sites {
            let health = s.health_at(now);
            for h in SiteHealth::ALL {
                self.site_health
                    .get_or_create(&SiteHealthLabels {
                        site: s.site.clone(),
                        health: h.as_str().into(),
                    })
                    .set(i64::from(h == health));
            }
            self.report_lag
                .get_or_create(&SiteLabels {
                    site: s.site.clone(),
                })
                .set(s.lag_seconds(now));
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Middleware recording every request.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    let labels = RequestLabels {
        method,
        route,
        status: resp.status().as_u16(),
    };
    state.metrics.requests.get_or_create(&labels).inc();
    state
        .metrics
        .latency
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    resp
}
