//! The portal: the marketplace, the fleet and the rollouts as server-rendered HTML.
//!
//! The portal is a second face of the API, not a second implementation of it: every page
//! calls the same handler functions that serve `/api/v1` (`verbund_api::routes`), with a
//! `Caller` built from the browser's session instead of a bearer token. Authorization,
//! tenant isolation, validation and the audit trail are therefore exactly the API's.
//!
//! Pages are askama templates styled with the KERN UX design system (vendored from npm's
//! `@kern-ux/native`, built into the binary by `assets`). Every page works without
//! JavaScript: forms post and redirect (POST/redirect/GET), and the one small script only
//! refreshes live status in place. German is the default language, English is one click
//! away (`i18n`).

mod assets;
mod chart;
mod ending_form;
mod error;
mod form;
mod i18n;
mod login;
mod map;
pub mod oidc;
mod pages;
mod session;
mod view;
mod window_form;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use verbund_api::AppState;
use verbund_store::LockPolicy;

pub use verbund_api::password::hash_password;

/// The largest form the portal accepts by default: a booking's configuration is the
/// largest form, and far below this.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// How the portal runs.
#[derive(Clone)]
pub struct PortalConfig {
    /// Cookies carry `Secure` (set this whenever the portal is reached over HTTPS).
    pub secure_cookies: bool,
    /// How long a session lasts after sign-in.
    pub session_hours: i64,
    /// Lock-out after repeated failed sign-ins.
    pub lock: LockPolicy,
    /// Sign-in through an OpenID Connect provider (Keycloak), when configured.
    pub oidc: Option<Arc<oidc::Oidc>>,
    /// How old the roles of an OIDC session may be before the provider must confirm
    /// them again (see `oidc`).
    pub oidc_roles_max_age: chrono::Duration,
    /// The portal runs behind a reverse proxy that appends the client's address to
    /// `X-Forwarded-For`: sign-ins are throttled by that address, not the proxy's.
    pub trust_forwarded_for: bool,
    /// The largest form the portal accepts, in bytes.
    pub max_body_bytes: usize,
    /// How long any request may take before it is stopped with 408.
    pub request_timeout: std::time::Duration,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            session_hours: 8,
            lock: LockPolicy::default(),
            oidc: None,
            oidc_roles_max_age: chrono::Duration::minutes(5),
            trust_forwarded_for: false,
            max_body_bytes: MAX_FORM_BYTES,
            request_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// What every portal handler gets: the API's state and the portal's settings.
#[derive(Clone)]
pub struct WebState {
    pub api: AppState,
    pub config: Arc<PortalConfig>,
}

impl WebState {
    pub fn new(api: AppState, config: PortalConfig) -> Self {
        Self {
            api,
            config: Arc::new(config),
        }
    }
}

/// The portal's routes, to be merged beside the API's (`/api/v1`).
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(login::form).post(login::submit))
        .route("/oidc/login", get(oidc::start))
        .route("/oidc/callback", get(oidc::callback))
        .route("/logout", post(login::logout))
        .route("/language", get(i18n::switch))
        .merge(pages::router())
        .route("/assets/{*file}", get(assets::serve))
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), deliver))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            state.config.max_body_bytes,
        ))
        // `Form` buffers with axum's own limit (2 MiB) unless told otherwise.
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.max_body_bytes,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout,
        ))
        .layer(axum::middleware::from_fn(error::limits))
        .layer(axum::middleware::from_fn(protect))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Security headers on every page, and the same-origin check on every form post (the
/// CSRF token in the form is the main defence; this stops cross-site posts early). Pages
/// and downloads are `no-store`: what a signed-in person saw must not stay in a cache
/// (a shared computer's back button, a proxy); only the versioned assets are cached.
async fn protect(req: Request, next: Next) -> Response {
    if req.method() == Method::POST && !same_origin(&req) {
        tracing::warn!(path = %req.uri().path(), "cross-origin form post refused");
        return (StatusCode::FORBIDDEN, "cross-origin form posts are refused").into_response();
    }
    let asset = req.uri().path().starts_with("/assets/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if !asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// Wakes the publisher after a form changed something, so the change reaches the
/// desired-state repository at once (as the API's own middleware does for API calls).
async fn deliver(
    axum::extract::State(state): axum::extract::State<WebState>,
    req: Request,
    next: Next,
) -> Response {
    let post = req.method() == Method::POST;
    let resp = next.run(req).await;
    if post && (resp.status().is_success() || resp.status().is_redirection()) {
        if let Some(p) = &state.api.publisher {
            p.wake();
        }
    }
    resp
}

/// A post without `Origin` (old browsers, curl) passes; one from another origin does not.
fn same_origin(req: &Request) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(o), Some(h)) => o
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'))
            .is_some_and(|rest| rest.eq_ignore_ascii_case(h)),
        _ => false,
    }
}
