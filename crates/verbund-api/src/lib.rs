//! The REST API under `/api/v1`, plus health, readiness and metrics endpoints.
//!
//! Each resource has its own module with a `router()`; handlers authenticate through the
//! `Caller` extractor, ask Cedar for a decision through `Caller::require`
//! (`verbund_policy::authz`), and call the store. Every error leaves as RFC 9457
//! problem+json.

mod auth;
pub mod extract;
pub mod idempotency;
mod metrics;
mod openapi;
pub mod password;
mod problem;
pub mod routes;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use verbund_store::Store;

pub use auth::{issue_site_token, issue_token, Caller};
pub use metrics::Metrics;
pub use openapi::ApiDoc;
pub use problem::ApiError;
/// The Gaia-X credentials' builder, whose `Federation` the server is given (`with_gaiax`).
pub use verbund_gaiax;

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
    pub bookings: verbund_placement::Bookings,
    pub authz: Arc<verbund_policy::authz::Authz>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// Wakes the background re-evaluation of all placements (after a site or policy
    /// changed).
    pub reevaluate: Arc<tokio::sync::Notify>,
    /// Where sites fetch their desired state from, and the renderer's other settings.
    pub render: Arc<verbund_render::RenderOptions>,
    /// Delivers changes into the desired-state repository, when the server runs one;
    /// woken after every successful change through the API.
    pub publisher: Option<verbund_delivery::Publisher>,
    /// The rollout engine of this process, when it runs one: woken after a rollout is
    /// started or controlled, and its status shown in `/metrics`.
    pub rollouts: Option<verbund_rollout::Engine>,
    /// The bound on Argon2 evaluations at once (API and portal share it).
    pub hashing: password::HashingLimit,
    /// The federation as the issuer of Gaia-X credentials (its key and `did:web`), when
    /// the server has a federation key; without one, `/gaia-x/…` answers 404.
    pub gaiax: Option<Arc<verbund_gaiax::Federation>>,
}

impl AppState {
    /// # Panics
    /// Never in practice: the shipped role policies are checked by the test suite.
    pub fn new(store: Store) -> Self {
        #[allow(
            clippy::expect_used,
            reason = "the shipped role policies are validated by tests"
        )]
        let authz = verbund_policy::authz::Authz::new().expect("shipped role policies compile");
        Self {
            bookings: verbund_placement::Bookings::new(store.clone()),
            store,
            authz: Arc::new(authz),
            clock: Arc::new(SystemClock),
            metrics: Arc::new(Metrics::default()),
            reevaluate: Arc::new(tokio::sync::Notify::new()),
            render: Arc::new(verbund_render::RenderOptions::new(
                "file:///var/lib/verbund/desired-state",
            )),
            publisher: None,
            rollouts: None,
            hashing: password::HashingLimit::per_core(),
            gaiax: None,
        }
    }

    /// Issues Gaia-X credentials as `federation`.
    pub fn with_gaiax(mut self, federation: verbund_gaiax::Federation) -> Self {
        self.gaiax = Some(Arc::new(federation));
        self
    }

    /// Runs rollouts with `engine` (its wake-ups and status).
    pub fn with_rollout_engine(mut self, engine: verbund_rollout::Engine) -> Self {
        self.rollouts = Some(engine);
        self
    }

    /// Wakes the rollout engine for a tick now.
    pub fn wake_rollouts(&self) {
        if let Some(e) = &self.rollouts {
            e.waker().notify_one();
        }
    }

    /// Delivers every change through `publisher`; previews render with its settings.
    pub fn with_publisher(mut self, publisher: verbund_delivery::Publisher) -> Self {
        self.render = Arc::new(publisher.options().render.clone());
        self.publisher = Some(publisher);
        self
    }

    /// Sets where sites fetch the desired state from (the Git URL written into roots).
    pub fn with_repository_url(mut self, url: impl Into<String>) -> Self {
        self.render = Arc::new(verbund_render::RenderOptions::new(url));
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// Wakes the publisher after a successful change, so that it reaches the desired-state
/// repository at once (the publisher also polls, so a missed wake-up only costs time).
async fn wake_publisher(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let writes = !req.method().is_safe();
    let resp = next.run(req).await;
    if writes && resp.status().is_success() {
        if let Some(p) = &state.publisher {
            p.wake();
        }
    }
    resp
}

/// The complete HTTP application.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(routes::organisations::router())
        .merge(routes::providers::router())
        .merge(routes::sites::router())
        .merge(routes::facts::router())
        .merge(routes::trust::router())
        .merge(routes::offerings::router())
        .merge(routes::users::router())
        .merge(routes::tokens::router())
        .merge(routes::audit::router())
        .merge(routes::bookings::router())
        .merge(routes::tenancies::router())
        .merge(routes::templates::router())
        .merge(routes::policies::router())
        .merge(routes::desired_state::router())
        .merge(routes::reports::router())
        .merge(routes::preflight::router())
        .merge(routes::fleet::router())
        .merge(routes::rollouts::router())
        .merge(routes::gaiax::router())
        .merge(openapi::router())
        // Only affects the routes merged so far, so it must come after the last merge.
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            ApiError::MethodNotAllowed(format!("this endpoint does not support `{method}`"))
        })
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            wake_publisher,
        ))
        .fallback(|| async { ApiError::NotFound("no such API endpoint".into()) });
    Router::new()
        .nest("/api/v1", api)
        .merge(routes::health::router())
        .merge(routes::git::router())
        .route("/.well-known/did.json", get(routes::gaiax::did_document))
        .route("/did.json", get(routes::gaiax::did_document))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
