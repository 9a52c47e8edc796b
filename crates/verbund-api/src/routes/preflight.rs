//! `/sites/{name}/preflight`: a site's own check of its cluster, `verbund agent preflight`.
//!
//! With the site's token (and only for its own site) the command asks what the control
//! plane expects of the cluster (`GET`: the delivery mode and the declared Kubernetes
//! version) and reports what it found (`POST`). The control plane keeps the last report,
//! audited as `site.preflight` by `site/<name>`; placement keeps new bookings off a site
//! whose last preflight failed, and the fleet view shows it.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use verbund_domain::preflight::{PreflightReport, PreflightRequirements, SitePreflight};

use crate::auth::SiteCaller;
use crate::extract::ApiJson;
use crate::problem::{ApiError, ApiResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/sites/{name}/preflight", get(requirements).post(report))
}

/// Refuses a site token of another site, with the reason logged.
fn own_site(token: &SiteCaller, site: &str) -> ApiResult<()> {
    let t = &token.0;
    if t.site == site {
        return Ok(());
    }
    tracing::warn!(site = %site, token = %t.id, token_site = %t.site, "preflight refused: another site's token");
    Err(ApiError::Forbidden(format!(
        "this token belongs to site `{}`; it cannot act for site `{site}`",
        t.site
    )))
}

/// What the control plane expects of the site's cluster (site token only).
#[utoipa::path(get, path = "/api/v1/sites/{name}/preflight", operation_id = "read_preflight_requirements", tag = "fleet",
    responses((status = 200, body = PreflightRequirements),
        (status = 401, body = crate::problem::Problem), (status = 403, body = crate::problem::Problem),
        (status = 404, body = crate::problem::Problem)),
    security(("site-token" = [])))]
pub async fn requirements(
    State(state): State<AppState>,
    token: SiteCaller,
    Path(name): Path<String>,
) -> ApiResult<Json<PreflightRequirements>> {
    own_site(&token, &name)?;
    let site = state.store.get_site(&name).await?;
    Ok(Json(PreflightRequirements {
        site: site.spec.name,
        delivery: site.spec.delivery,
        kubernetes_version: site.spec.kubernetes_version,
    }))
}

/// Report the site's preflight (site token only); it becomes the site's last preflight.
#[utoipa::path(post, path = "/api/v1/sites/{name}/preflight", operation_id = "report_preflight", tag = "fleet",
    request_body = PreflightReport,
    responses((status = 200, body = SitePreflight),
        (status = 401, body = crate::problem::Problem), (status = 403, body = crate::problem::Problem),
        (status = 404, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)),
    security(("site-token" = [])))]
pub async fn report(
    State(state): State<AppState>,
    token: SiteCaller,
    Path(name): Path<String>,
    body: Result<ApiJson<PreflightReport>, ApiError>,
) -> ApiResult<Json<SitePreflight>> {
    // The token first: another site's token learns nothing, not even what is malformed.
    own_site(&token, &name)?;
    let ApiJson(report) = body?;
    report.validate()?;
    let stored = state
        .store
        .record_preflight(&name, &report, state.now())
        .await?;
    tracing::info!(
        site = %name,
        verdict = stored.verdict.as_str(),
        failed = stored.failures().len(),
        agent = %stored.agent,
        "site preflight recorded"
    );
    Ok(Json(stored))
}
