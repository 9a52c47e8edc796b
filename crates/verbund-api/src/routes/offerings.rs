//! `/offerings` and `/offerings/{name}/versions`: the catalog.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;
use verbund_domain::catalog::{Category, Offering, OfferingSpec, OfferingVersion, VersionSpec};
use verbund_domain::page::{Page, PageRequest};
use verbund_policy::authz::{Act, Target};
use verbund_store::OfferingFilter;

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery};
use crate::problem::{ApiError, ApiResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/offerings", get(list).post(create))
        .route("/offerings/{name}", get(read).put(apply))
        .route("/offerings/{name}/versions", get(versions).post(publish))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OfferingQuery {
    pub category: Option<Category>,
    /// Id of the vendor organisation.
    pub vendor: Option<String>,
    /// OZG id of the service implemented.
    pub ozg_id: Option<String>,
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// List offerings.
#[utoipa::path(get, path = "/api/v1/offerings", tag = "catalog", params(OfferingQuery),
    responses((status = 200, body = Page<Offering>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<OfferingQuery>,
) -> ApiResult<Json<Page<Offering>>> {
    caller.require(Act::Read, &Target::new("offering"))?;
    let filter = OfferingFilter {
        category: q.category,
        vendor: q.vendor,
        ozg_id: q.ozg_id,
    };
    let page = PageRequest {
        limit: q.limit,
        after: q.after,
    };
    Ok(Json(state.store.list_offerings(&filter, &page).await?))
}

/// Publish a new offering.
#[utoipa::path(post, path = "/api/v1/offerings", tag = "catalog", request_body = OfferingSpec,
    responses((status = 201, body = Offering), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(spec): ApiJson<OfferingSpec>,
) -> ApiResult<(StatusCode, Json<Offering>)> {
    caller.require(Act::Write, &Target::new("offering").vendor(&spec.vendor))?;
    spec.validate()?;
    if state.store.get_offering(&spec.name).await.is_ok() {
        return Err(ApiError::Conflict(format!(
            "offering `{}` exists already; use PUT to change it",
            spec.name
        )));
    }
    let (o, _) = state
        .store
        .put_offering(&caller.actor(), &spec, state.now())
        .await?;
    Ok((StatusCode::CREATED, Json(o)))
}

/// Read an offering.
#[utoipa::path(get, path = "/api/v1/offerings/{name}", tag = "catalog",
    responses((status = 200, body = Offering), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Offering>> {
    caller.require(Act::Read, &Target::new("offering"))?;
    Ok(Json(state.store.get_offering(&name).await?))
}

/// Create or update an offering (idempotent apply).
#[utoipa::path(put, path = "/api/v1/offerings/{name}", tag = "catalog", request_body = OfferingSpec,
    responses((status = 200, body = Offering), (status = 201, body = Offering), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(spec): ApiJson<OfferingSpec>,
) -> ApiResult<(StatusCode, Json<Offering>)> {
    crate::routes::same_name(&spec.name, &name)?;
    caller.require(Act::Write, &Target::new("offering").vendor(&spec.vendor))?;
    if let Ok(existing) = state.store.get_offering(&name).await {
        caller.require(
            Act::Write,
            &Target::new("offering").vendor(&existing.spec.vendor),
        )?;
    }
    let (o, created) = state
        .store
        .put_offering(&caller.actor(), &spec, state.now())
        .await?;
    Ok(crate::routes::applied(created, o))
}

/// List an offering's versions, newest first.
#[utoipa::path(get, path = "/api/v1/offerings/{name}/versions", tag = "catalog",
    responses((status = 200, body = Vec<OfferingVersion>), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<OfferingVersion>>> {
    caller.require(Act::Read, &Target::new("offering"))?;
    Ok(Json(state.store.list_versions(&name).await?))
}

/// Publish a version; it must be semver and newer than every published one.
#[utoipa::path(post, path = "/api/v1/offerings/{name}/versions", tag = "catalog", request_body = VersionSpec,
    responses((status = 201, body = OfferingVersion), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(spec): ApiJson<VersionSpec>,
) -> ApiResult<(StatusCode, Json<OfferingVersion>)> {
    let offering = state.store.get_offering(&name).await?;
    caller.require(
        Act::Write,
        &Target::new("offering").vendor(&offering.spec.vendor),
    )?;
    let v = state
        .store
        .publish_version(&caller.actor(), &name, &spec, state.now())
        .await?;
    Ok((StatusCode::CREATED, Json(v)))
}
