//! The REST API under `/api/v1`, plus health, readiness and metrics endpoints.
//!
//! Each resource has its own module with a `router()`; handlers authenticate through the
//! `Caller` extractor, ask `verbund_domain::access` for a decision, and call the store.
//! Every error leaves as RFC 9457 problem+json.

mod auth;
mod extract;
mod metrics;
mod openapi;
mod problem;
mod routes;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use chrono::{DateTime, Utc};
use verbund_store::Store;

pub use auth::{issue_token, Caller};
pub use metrics::Metrics;
pub use openapi::ApiDoc;
pub use problem::ApiError;

/// The largest request body the API accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The source of the current time; tests pass a fixed one.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            clock: Arc::new(SystemClock),
            metrics: Arc::new(Metrics::default()),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// The complete HTTP application.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(routes::organisations::router())
        .merge(routes::providers::router())
        .merge(routes::sites::router())
        .merge(routes::offerings::router())
        .merge(routes::users::router())
        .merge(routes::tokens::router())
        .merge(routes::audit::router())
        .merge(openapi::router())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .fallback(|| async { ApiError::NotFound("no such API endpoint".into()) });
    Router::new()
        .nest("/api/v1", api)
        .merge(routes::health::router())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
