//! `/providers`: the legal entities that run data centers. Their placement facts are the
//! federation's to state (`routes::facts`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use verbund_domain::directory::{Provider, ProviderSpec};
use verbund_domain::facts::{FactKind, FactProposal};
use verbund_domain::page::Page;
use verbund_policy::authz::{Act, Target};

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery};
use crate::problem::{ApiError, ApiResult};
use crate::routes::facts::{apply_as_operator, facts_are_federal, may_state_facts};
use crate::routes::PageQuery;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/providers", get(list).post(create))
        .route("/providers/{name}", get(read).put(apply))
}

/// List providers.
#[utoipa::path(get, path = "/api/v1/providers", operation_id = "list_providers", tag = "directory", params(PageQuery),
    responses((status = 200, body = Page<Provider>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<Provider>>> {
    caller.require(Act::Read, &Target::new("provider"))?;
    Ok(Json(state.store.list_providers(&q.page()).await?))
}

/// Register a provider (federation admins: it states the provider's placement facts).
#[utoipa::path(post, path = "/api/v1/providers", operation_id = "create_provider", tag = "directory", request_body = ProviderSpec,
    responses((status = 201, body = Provider), (status = 403, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(spec): ApiJson<ProviderSpec>,
) -> ApiResult<(StatusCode, Json<Provider>)> {
    caller.require(Act::Write, &Target::new("provider"))?;
    if !may_state_facts(&caller, &spec.name) {
        return Err(facts_are_federal(FactKind::Provider, &spec.name));
    }
    spec.validate()?;
    if state.store.get_provider(&spec.name).await.is_ok() {
        return Err(ApiError::Conflict(format!(
            "provider `{}` exists already; use PUT to change it",
            spec.name
        )));
    }
    let (p, _) = state
        .store
        .put_provider(&caller.actor(), &spec, state.now())
        .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// Read a provider.
#[utoipa::path(get, path = "/api/v1/providers/{name}", operation_id = "read_provider", tag = "directory",
    responses((status = 200, body = Provider), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Provider>> {
    caller.require(Act::Read, &Target::new("provider"))?;
    Ok(Json(state.store.get_provider(&name).await?))
}

/// Create or update a provider (idempotent apply). A federation admin states its
/// placement facts at once; an operator's change of them becomes a pending proposal
/// (`202`), while what placement does not read (the display name) applies at once.
#[utoipa::path(put, path = "/api/v1/providers/{name}", operation_id = "apply_provider", tag = "directory", request_body = ProviderSpec,
    responses((status = 200, body = Provider), (status = 201, body = Provider),
        (status = 202, body = FactProposal, description = "the placement facts asked for wait for a federation admin's approval; the rest applied"),
        (status = 403, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(spec): ApiJson<ProviderSpec>,
) -> ApiResult<Response> {
    crate::routes::same_name(&spec.name, &name)?;
    let exists = state.store.get_provider(&name).await.is_ok();
    if exists {
        caller.require(Act::Write, &Target::new("provider").provider(&name))?;
    } else {
        caller.require(Act::Write, &Target::new("provider"))?;
    }
    if !may_state_facts(&caller, &name) {
        if !exists {
            return Err(facts_are_federal(FactKind::Provider, &name));
        }
        let store = state.store.clone();
        return apply_as_operator(&state, &caller, &spec, async move {
            store.get_provider(&name).await.map_err(ApiError::from)
        })
        .await;
    }
    let (p, created) = state
        .store
        .put_provider(&caller.actor(), &spec, state.now())
        .await?;
    state.reevaluate.notify_one();
    Ok(crate::routes::applied(created, p).into_response())
}
