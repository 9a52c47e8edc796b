//! `/offerings` and `/offerings/{name}/versions`: the catalog.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use verbund_domain::catalog::{Category, Offering, OfferingSpec, OfferingVersion, VersionSpec};
use verbund_domain::page::{Page, PageRequest};
use verbund_domain::rollout::{Rollout, RolloutPolicy};
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
    /// `true`: only "Einer für Alle" services; `false`: only others.
    pub efa: Option<bool>,
    /// Only "Einer für Alle" services that serve this Land (its key, e.g. `09`).
    #[param(schema_with = verbund_domain::directory::land_key_schema)]
    pub efa_for: Option<String>,
    #[serde(default, deserialize_with = "verbund_domain::page::deserialize_limit")]
    #[param(value_type = Option<verbund_domain::page::Limit>, inline)]
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// List offerings.
#[utoipa::path(get, path = "/api/v1/offerings", operation_id = "list_offerings", tag = "catalog", params(OfferingQuery),
    responses((status = 200, body = Page<Offering>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<OfferingQuery>,
) -> ApiResult<Json<Page<Offering>>> {
    caller.require(Act::Read, &Target::new("offering"))?;
    if let Some(land) = &q.efa_for {
        verbund_domain::directory::check_land_key("/efa_for", land)?;
    }
    let filter = OfferingFilter {
        category: q.category,
        vendor: q.vendor,
        ozg_id: q.ozg_id,
        efa: q.efa,
        efa_for: q.efa_for,
    };
    let page = PageRequest {
        limit: q.limit,
        after: q.after,
    };
    Ok(Json(state.store.list_offerings(&filter, &page).await?))
}

/// Publish a new offering.
#[utoipa::path(post, path = "/api/v1/offerings", operation_id = "create_offering", tag = "catalog", request_body = OfferingSpec,
    responses((status = 201, body = Offering), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(spec): ApiJson<OfferingSpec>,
) -> ApiResult<(StatusCode, Json<Offering>)> {
    caller.require(Act::Write, &Target::new("offering").vendor(&spec.vendor))?;
    may_state_efa(&caller, None, spec.efa.as_ref())?;
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
#[utoipa::path(get, path = "/api/v1/offerings/{name}", operation_id = "read_offering", tag = "catalog",
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

/// An offering's "Einer für Alle" status is the federation's statement (which Land
/// operates the service for whom), not its vendor's: only who states facts changes it.
fn may_state_efa(
    caller: &Caller,
    before: Option<&verbund_domain::catalog::Efa>,
    after: Option<&verbund_domain::catalog::Efa>,
) -> ApiResult<()> {
    if before == after {
        return Ok(());
    }
    caller.require(Act::Write, &Target::new("facts"))
}

/// A shared offering stays shared while tenancies run in its instances: as a dedicated
/// one, their instances would drop them from their tenant lists.
async fn keeps_its_tenants(
    state: &AppState,
    before: Option<&Offering>,
    after: &OfferingSpec,
) -> ApiResult<()> {
    let Some(before) = before else { return Ok(()) };
    if before.spec.tenancy == after.tenancy {
        return Ok(());
    }
    let tenants = state.store.live_tenancies(&before.spec.name).await?;
    if tenants > 0 {
        return Err(ApiError::Conflict(format!(
            "{tenants} tenancies run in the shared instances of `{}`: it stays shared until \
             they are cancelled",
            before.spec.name
        )));
    }
    Ok(())
}

/// Create or update an offering (idempotent apply).
#[utoipa::path(put, path = "/api/v1/offerings/{name}", operation_id = "apply_offering", tag = "catalog", request_body = OfferingSpec,
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
    let before = state.store.get_offering(&name).await.ok();
    if let Some(existing) = &before {
        caller.require(
            Act::Write,
            &Target::new("offering").vendor(&existing.spec.vendor),
        )?;
    }
    may_state_efa(
        &caller,
        before.as_ref().and_then(|o| o.spec.efa.as_ref()),
        spec.efa.as_ref(),
    )?;
    keeps_its_tenants(&state, before.as_ref(), &spec).await?;
    let (o, created) = state
        .store
        .put_offering(&caller.actor(), &spec, state.now())
        .await?;
    Ok(crate::routes::applied(created, o))
}

/// List an offering's versions, newest first.
#[utoipa::path(get, path = "/api/v1/offerings/{name}/versions", operation_id = "list_offering_versions", tag = "catalog",
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PublishQuery {
    /// `false` publishes without starting a rollout (start one with `POST
    /// /api/v1/rollouts` and a policy of your own).
    pub rollout: Option<bool>,
}

/// A published version, and the rollout it started.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Published {
    #[serde(flatten)]
    pub version: OfferingVersion,
    /// The rollout over every booking that follows the offering; none when no booking
    /// needs the version, or while another rollout of the offering is unfinished (start
    /// one later with `POST /api/v1/rollouts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

/// Publish a version; it must be semver and newer than every published one. Starts a
/// rollout with the default policy over the bookings that follow the offering.
#[utoipa::path(post, path = "/api/v1/offerings/{name}/versions", operation_id = "publish_offering_version", tag = "catalog", request_body = VersionSpec,
    params(PublishQuery),
    responses((status = 201, body = Published), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<PublishQuery>,
    ApiJson(spec): ApiJson<VersionSpec>,
) -> ApiResult<(StatusCode, Json<Published>)> {
    let offering = state.store.get_offering(&name).await?;
    caller.require(
        Act::Write,
        &Target::new("offering").vendor(&offering.spec.vendor),
    )?;
    let actor = caller.actor();
    let v = state
        .store
        .publish_version(&actor, &name, &spec, state.now())
        .await?;
    let rollout = if q.rollout.unwrap_or(true) {
        release(&state, &actor, &name, &v.spec.version).await
    } else {
        None
    };
    Ok((
        StatusCode::CREATED,
        Json(Published {
            version: v,
            rollout,
        }),
    ))
}

/// Starts the rollout of a newly published version, if any booking needs it. The
/// version is published either way: a rollout that cannot start now (another one is
/// unfinished) is logged and can be started later.
async fn release(state: &AppState, actor: &str, offering: &str, version: &str) -> Option<Rollout> {
    let policy = RolloutPolicy::default();
    let needed = match verbund_rollout::plan(&state.store, offering, version, &policy).await {
        Ok(p) => p.bookings() > 0,
        Err(e) => {
            tracing::warn!(%offering, %version, error = %e, "no rollout planned for the new version");
            false
        }
    };
    if !needed {
        return None;
    }
    match verbund_rollout::start(&state.store, actor, offering, version, &policy, state.now()).await
    {
        Ok(r) => {
            state.wake_rollouts();
            Some(r)
        }
        Err(e) => {
            tracing::warn!(%offering, %version, error = %e, "the new version's rollout did not start");
            None
        }
    }
}
