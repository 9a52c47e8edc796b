//! `/sites`: data centers and their Kubernetes clusters. Their placement facts are the
//! federation's to state (`routes::facts`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;
use verbund_domain::directory::{Site, SiteSpec};
use verbund_domain::facts::{FactKind, FactProposal};
use verbund_domain::page::{Page, PageRequest};
use verbund_policy::authz::{Act, Target};
use verbund_store::SiteFilter;

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery};
use crate::problem::{ApiError, ApiResult};
use crate::routes::facts::{apply_as_operator, facts_are_federal, may_state_facts};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sites", get(list).post(create))
        .route("/sites/{name}", get(read).put(apply))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SiteQuery {
    /// Only sites of this provider.
    pub provider: Option<String>,
    #[serde(default, deserialize_with = "verbund_domain::page::deserialize_limit")]
    #[param(value_type = Option<verbund_domain::page::Limit>, inline)]
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// List sites.
#[utoipa::path(get, path = "/api/v1/sites", operation_id = "list_sites", tag = "directory", params(SiteQuery),
    responses((status = 200, body = Page<Site>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SiteQuery>,
) -> ApiResult<Json<Page<Site>>> {
    caller.require(Act::Read, &Target::new("site"))?;
    let filter = SiteFilter {
        provider: q.provider,
    };
    let page = PageRequest {
        limit: q.limit,
        after: q.after,
    };
    Ok(Json(state.store.list_sites(&filter, &page).await?))
}

/// Register a site (federation admins: it states the site's placement facts).
#[utoipa::path(post, path = "/api/v1/sites", operation_id = "create_site", tag = "directory", request_body = SiteSpec,
    responses((status = 201, body = Site), (status = 403, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(spec): ApiJson<SiteSpec>,
) -> ApiResult<(StatusCode, Json<Site>)> {
    caller.require(Act::Write, &Target::new("site").provider(&spec.provider))?;
    if !may_state_facts(&caller, &spec.provider) {
        return Err(facts_are_federal(FactKind::Site, &spec.name));
    }
    spec.validate()?;
    if state.store.get_site(&spec.name).await.is_ok() {
        return Err(ApiError::Conflict(format!(
            "site `{}` exists already; use PUT to change it",
            spec.name
        )));
    }
    let (s, _) = state
        .store
        .put_site(&caller.actor(), &spec, state.now())
        .await?;
    state.reevaluate.notify_one();
    Ok((StatusCode::CREATED, Json(s)))
}

/// Read a site.
#[utoipa::path(get, path = "/api/v1/sites/{name}", operation_id = "read_site", tag = "directory",
    responses((status = 200, body = Site), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Site>> {
    caller.require(Act::Read, &Target::new("site"))?;
    Ok(Json(state.store.get_site(&name).await?))
}

/// Create or update a site (idempotent apply). A federation admin states its placement
/// facts at once; an operator's change of them (location, certifications, environments)
/// becomes a pending proposal (`202`), while what placement does not read (display name,
/// Kubernetes version, capabilities, capacity, delivery, age recipient) applies at once.
#[utoipa::path(put, path = "/api/v1/sites/{name}", operation_id = "apply_site", tag = "directory", request_body = SiteSpec,
    responses((status = 200, body = Site), (status = 201, body = Site),
        (status = 202, body = FactProposal, description = "the placement facts asked for wait for a federation admin's approval; the rest applied"),
        (status = 403, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(spec): ApiJson<SiteSpec>,
) -> ApiResult<Response> {
    crate::routes::same_name(&spec.name, &name)?;
    caller.require(Act::Write, &Target::new("site").provider(&spec.provider))?;
    let existing = state.store.get_site(&name).await.ok();
    if let Some(existing) = &existing {
        // An operator must also own the site as it is now, not only the one it names.
        caller.require(
            Act::Write,
            &Target::new("site").provider(&existing.spec.provider),
        )?;
    }
    if !may_state_facts(&caller, &spec.provider) {
        if existing.is_none() {
            return Err(facts_are_federal(FactKind::Site, &name));
        }
        let store = state.store.clone();
        let answer = apply_as_operator(&state, &caller, &spec, async move {
            store.get_site(&name).await.map_err(ApiError::from)
        })
        .await?;
        state.reevaluate.notify_one();
        return Ok(answer);
    }
    let (s, created) = state
        .store
        .put_site(&caller.actor(), &spec, state.now())
        .await?;
    state.reevaluate.notify_one();
    Ok(crate::routes::applied(created, s).into_response())
}
