//! `/organisations`: the directory of authorities.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use verbund_domain::directory::{
    check_ars, Level, Organisation, OrganisationFilter, OrganisationSpec,
};
use verbund_domain::page::Page;
use verbund_domain::registration::Registration;
use verbund_policy::authz::{Act, Target};
use verbund_store::OrganisationRegistration;

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery};
use crate::problem::{ApiError, ApiResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/organisations", get(list).post(create))
        .route("/organisations/{id}", get(read).put(update))
        .route(
            "/organisations/{id}/early-adopter",
            get(early_adopter).put(set_early_adopter),
        )
        .route(
            "/organisations/{id}/registration",
            get(registration).put(state_registration),
        )
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrganisationQuery {
    pub level: Option<Level>,
    /// Id of the parent organisation.
    pub parent: Option<String>,
    /// Two-digit Land key, e.g. `09`.
    #[param(schema_with = verbund_domain::directory::land_key_schema)]
    pub land: Option<String>,
    /// Prefix of the name.
    pub name: Option<String>,
    /// Exact ARS or AGS.
    pub key: Option<String>,
    #[serde(default, deserialize_with = "verbund_domain::page::deserialize_limit")]
    #[param(value_type = Option<verbund_domain::page::Limit>, inline)]
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// List organisations, filtered and paginated.
#[utoipa::path(get, path = "/api/v1/organisations", operation_id = "list_organisations", tag = "directory",
    params(OrganisationQuery),
    responses((status = 200, body = Page<Organisation>), (status = 400, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<OrganisationQuery>,
) -> ApiResult<Json<Page<Organisation>>> {
    caller.require(Act::Read, &Target::new("organisation"))?;
    if let Some(land) = &q.land {
        if land.len() != 2 {
            return Err(ApiError::BadRequest(format!(
                "`land` must be a two-digit Land key, not `{land}`"
            )));
        }
        check_ars("land", land).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    let filter = OrganisationFilter {
        level: q.level,
        parent: q.parent,
        land: q.land,
        name_prefix: q.name.filter(|n| !n.is_empty()),
        key: q.key,
    };
    let page = verbund_domain::page::PageRequest {
        limit: q.limit,
        after: q.after,
    };
    Ok(Json(state.store.list_organisations(&filter, &page).await?))
}

/// Create an organisation.
#[utoipa::path(post, path = "/api/v1/organisations", operation_id = "create_organisation", tag = "directory",
    request_body = OrganisationSpec,
    responses((status = 201, body = Organisation), (status = 422, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(spec): ApiJson<OrganisationSpec>,
) -> ApiResult<(StatusCode, Json<Organisation>)> {
    caller.require(Act::Write, &Target::new("organisation"))?;
    let org = state
        .store
        .create_organisation(&caller.actor(), &spec, state.now())
        .await?;
    Ok((StatusCode::CREATED, Json(org)))
}

/// Read one organisation.
#[utoipa::path(get, path = "/api/v1/organisations/{id}", operation_id = "read_organisation", tag = "directory",
    responses((status = 200, body = Organisation), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Organisation>> {
    caller.require(Act::Read, &Target::new("organisation"))?;
    Ok(Json(state.store.get_organisation(&id).await?))
}

/// Change an organisation's name, keys or population.
#[utoipa::path(put, path = "/api/v1/organisations/{id}", operation_id = "update_organisation", tag = "directory",
    request_body = OrganisationSpec,
    responses((status = 200, body = Organisation), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<OrganisationSpec>,
) -> ApiResult<Json<Organisation>> {
    caller.require(Act::Write, &Target::new("organisation"))?;
    Ok(Json(
        state
            .store
            .update_organisation(&caller.actor(), &id, &spec, state.now())
            .await?,
    ))
}

/// Whether an organisation receives new versions first: its bookings are in the canary
/// stage of every rollout.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EarlyAdopter {
    pub early_adopter: bool,
}

async fn settings_target(state: &AppState, id: &str) -> ApiResult<Target> {
    let chain = state.store.organisation_chain(id).await?;
    Ok(Target::new("settings").in_organisation(chain))
}

/// Whether the organisation opted in as an early adopter.
#[utoipa::path(get, path = "/api/v1/organisations/{id}/early-adopter", operation_id = "read_early_adopter", tag = "directory",
    responses((status = 200, body = EarlyAdopter), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn early_adopter(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<EarlyAdopter>> {
    let target = settings_target(&state, &id).await?;
    caller.require_or_hide(Act::Read, &target, &format!("organisation `{id}`"))?;
    Ok(Json(EarlyAdopter {
        early_adopter: state.store.early_adopter(&id).await?,
    }))
}

/// Opt in (or out) as an early adopter: the organisation's bookings then get every new
/// version in the canary stage, before the production waves.
#[utoipa::path(put, path = "/api/v1/organisations/{id}/early-adopter", operation_id = "set_early_adopter", tag = "directory",
    request_body = EarlyAdopter,
    responses((status = 200, body = EarlyAdopter), (status = 403, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn set_early_adopter(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EarlyAdopter>,
) -> ApiResult<Json<EarlyAdopter>> {
    let target = settings_target(&state, &id).await?;
    caller.require(Act::Write, &target)?;
    let now = state.now();
    Ok(Json(EarlyAdopter {
        early_adopter: state
            .store
            .set_early_adopter(&caller.actor(), &id, body.early_adopter, now)
            .await?,
    }))
}

/// An organisation's registration number as a federation admin states it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationStatement {
    /// `null` (or absent: the statement is the whole resource) takes a stated number
    /// back.
    #[schema(schema_with = verbund_domain::registration::registration_schema)]
    pub registration: Option<Registration>,
}

/// The registration number the federation stated for the organisation, with who stated
/// it and when (`registration` `null`: none; an organisation with an ARS is registered by
/// it). Its Gaia-X `gx:LegalPerson` names it.
#[utoipa::path(get, path = "/api/v1/organisations/{id}/registration", operation_id = "read_organisation_registration", tag = "directory",
    responses((status = 200, body = OrganisationRegistration), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn registration(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<OrganisationRegistration>> {
    caller.require(Act::Read, &Target::new("organisation"))?;
    Ok(Json(state.store.organisation_registration(&id).await?))
}

/// State an organisation's registration number (federation admins): a local register
/// number, VAT id, EORI or EUID, each in its form; for the Bund, which has no ARS, or an
/// organisation registered otherwise. Audited as `organisation.registration`.
#[utoipa::path(put, path = "/api/v1/organisations/{id}/registration", operation_id = "state_organisation_registration", tag = "directory",
    request_body = RegistrationStatement,
    responses((status = 200, body = OrganisationRegistration), (status = 403, body = crate::problem::Problem),
        (status = 404, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn state_registration(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RegistrationStatement>,
) -> ApiResult<Json<OrganisationRegistration>> {
    caller.require(Act::Write, &Target::new("facts"))?;
    Ok(Json(
        state
            .store
            .state_organisation_registration(
                &caller.actor(),
                &id,
                body.registration.as_ref(),
                state.now(),
            )
            .await?,
    ))
}
