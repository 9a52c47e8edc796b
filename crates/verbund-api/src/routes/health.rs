//! Liveness, readiness and Prometheus metrics, outside the API's paths. Liveness and
//! readiness are open (probes carry no token); the metrics show federation-wide site
//! health and booking counts, so they need a token whose account Cedar lets read
//! `metrics` (federation admins, auditors, the `monitoring` role).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use verbund_policy::authz::{Act, Target};

use crate::problem::ApiResult;
use crate::{AppState, Caller};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "database not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

async fn metrics(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.require(Act::Read, &Target::new("metrics"))?;
    match state.store.booking_counts().await {
        Ok((by_state, noncompliant)) => {
            for s in verbund_domain::booking::BookingState::ALL {
                let n = by_state
                    .iter()
                    .find(|(x, _)| *x == s)
                    .map_or(0, |(_, n)| *n);
                state
                    .metrics
                    .bookings
                    .get_or_create(&crate::metrics::StateLabels {
                        state: s.as_str().into(),
                    })
                    .set(n);
            }
            state.metrics.noncompliant.set(noncompliant);
        }
        Err(e) => tracing::warn!(error = %e, "cannot count bookings for metrics"),
    }
    match state.store.site_statuses().await {
        Ok(sites) => state.metrics.observe_sites(&sites, state.now()),
        Err(e) => tracing::warn!(error = %e, "cannot read site health for metrics"),
    }
    match state.store.rollout_counts().await {
        Ok(counts) => {
            for s in verbund_domain::rollout::RolloutState::ALL {
                let n = counts.iter().find(|(x, _)| *x == s).map_or(0, |c| c.1);
                state
                    .metrics
                    .rollouts
                    .get_or_create(&crate::metrics::StateLabels {
                        state: s.as_str().into(),
                    })
                    .set(n);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot count rollouts for metrics"),
    }
    if let Some(engine) = &state.rollouts {
        let status = engine.status();
        let m = &state.metrics;
        m.rollout_leader.set(i64::from(status.is_leader()));
        m.rollout_ticks.set(status.ticks() as i64);
        m.rollout_changes.set(status.changes() as i64);
    }
    if let Some(publisher) = &state.publisher {
        let writer = publisher.is_writer();
        state.metrics.desired_state_writer.set(i64::from(writer));
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    ))
}
