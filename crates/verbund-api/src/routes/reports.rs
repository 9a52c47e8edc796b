//! `/sites/{name}/tokens` and `/sites/{name}/reports`: the sites' side of fleet health.
//!
//! Operators issue each site's agent its own token; the agent posts batches of what
//! runs. A batch is refused whole when it is malformed, too large, signed for another
//! site, or names a booking not placed on the site; every refusal is logged with its
//! reason and counted in `verbund_site_reports_total{outcome="refused-…"}`, and changes
//! nothing.

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use verbund_domain::account::SiteToken;
use verbund_domain::report::{SiteReport, MAX_REPORT_BYTES};
use verbund_policy::authz::{Act, Target};

use crate::auth::{issue_site_token, Caller, SiteCaller};
use crate::extract::ApiJson;
use crate::problem::{ApiError, ApiResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sites/{name}/tokens", get(list_tokens).post(create_token))
        .route("/sites/{name}/tokens/{id}", delete(revoke_token))
        .route(
            "/sites/{name}/reports",
            post(report).layer(DefaultBodyLimit::max(MAX_REPORT_BYTES)),
        )
}

async fn require_site_admin(state: &AppState, caller: &Caller, site: &str) -> ApiResult<()> {
    let s = state.store.get_site(site).await?;
    caller.require(
        Act::Write,
        &Target::new("site").provider(s.spec.provider.clone()),
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSiteToken {
    /// What the token is for, e.g. `agent` or `simulate`.
    #[schema(schema_with = verbund_domain::account::token_name_schema)]
    pub name: String,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new site token with its secret, which is shown only this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SiteTokenCreated {
    #[serde(flatten)]
    pub token: SiteToken,
    /// The secret (`vbs_…`) for `Authorization: Bearer`.
    pub secret: String,
}

/// Issue a token for a site's agent.
#[utoipa::path(post, path = "/api/v1/sites/{name}/tokens", operation_id = "create_site_token", tag = "fleet", request_body = NewSiteToken,
    responses((status = 201, body = SiteTokenCreated), (status = 403, body = crate::problem::Problem),
        (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<NewSiteToken>,
) -> ApiResult<(StatusCode, Json<SiteTokenCreated>)> {
    require_site_admin(&state, &caller, &name).await?;
    let (token, secret) = issue_site_token(
        &state.store,
        &caller.actor(),
        &name,
        &body.name,
        body.expires_at,
        state.now(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(SiteTokenCreated { token, secret }),
    ))
}

/// List a site's tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/sites/{name}/tokens", operation_id = "list_site_tokens", tag = "fleet",
    responses((status = 200, body = Vec<SiteToken>)), security(("bearer" = [])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<SiteToken>>> {
    require_site_admin(&state, &caller, &name).await?;
    Ok(Json(state.store.site_tokens(&name).await?))
}

/// Revoke a site's token.
#[utoipa::path(delete, path = "/api/v1/sites/{name}/tokens/{id}", operation_id = "revoke_site_token", tag = "fleet",
    responses((status = 200, body = SiteToken)), security(("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<SiteToken>> {
    require_site_admin(&state, &caller, &name).await?;
    Ok(Json(
        state
            .store
            .revoke_site_token(&caller.actor(), &name, &id, state.now())
            .await?,
    ))
}

/// The answer to a report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReportReceipt {
    /// False when the batch's sequence was not above the last accepted one: nothing changed.
    pub accepted: bool,
    /// The highest sequence accepted for the site so far.
    pub sequence: u64,
    /// Bookings in the batch.
    pub bookings: usize,
    /// Lifecycle moves the batch caused.
    pub transitions: usize,
}

/// Report what runs on a site (site token only).
#[utoipa::path(post, path = "/api/v1/sites/{name}/reports", operation_id = "report_site_state", tag = "fleet", request_body = SiteReport,
    responses((status = 200, body = ReportReceipt),
        (status = 401, body = crate::problem::Problem), (status = 403, body = crate::problem::Problem),
        (status = 413, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)),
    security(("site-token" = [])))]
pub async fn report(
    State(state): State<AppState>,
    SiteCaller(token): SiteCaller,
    Path(name): Path<String>,
    body: Result<ApiJson<SiteReport>, ApiError>,
) -> ApiResult<Json<ReportReceipt>> {
    let refuse = |reason: &str, e: ApiError| {
        tracing::warn!(site = %name, token = %token.id, token_site = %token.site, reason, error = %e, "site report refused");
        state.metrics.report_refused(reason);
        e
    };
    if token.site != name {
        return Err(refuse(
            "wrong-site",
            ApiError::Forbidden(format!(
                "this token belongs to site `{}`; it cannot report for site `{name}`",
                token.site
            )),
        ));
    }
    let ApiJson(report) = body.map_err(|e| match e {
        ApiError::TooLarge(_) => refuse("too-large", ApiError::TooLarge(MAX_REPORT_BYTES)),
        e => refuse("malformed", e),
    })?;
    report
        .validate_at(state.now())
        .map_err(|e| refuse("invalid", ApiError::Invalid(e)))?;
    let ingested = match state.store.ingest_report(&name, &report, state.now()).await {
        Ok(i) => i,
        Err(verbund_store::StoreError::Invalid(e)) => {
            return Err(refuse("foreign-booking", ApiError::Invalid(e)))
        }
        Err(e) => return Err(e.into()),
    };
    state
        .metrics
        .report_received(ingested.accepted, ingested.bookings);
    if !ingested.moves.is_empty() {
        tracing::info!(site = %name, moves = ingested.moves.len(), "site report moved bookings");
    }
    // A finished export is judged by the lifecycle sweep: now, not at the next timer.
    let export_finished = report.bookings.iter().any(|b| {
        b.export
            .as_ref()
            .is_some_and(|e| e.status != verbund_domain::ending::ExportStatus::Running)
    });
    if ingested.accepted && export_finished {
        state.reevaluate.notify_one();
    }
    Ok(Json(ReportReceipt {
        accepted: ingested.accepted,
        sequence: ingested.sequence,
        bookings: ingested.bookings,
        transitions: ingested.moves.len(),
    }))
}
