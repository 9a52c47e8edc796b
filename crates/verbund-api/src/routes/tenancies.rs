//! `/bookings/{id}/tenancies` and `/offerings/{name}/instances`: shared instances and
//! their tenants (see `verbund_domain::shared`). A tenancy is a booking of the tenant's
//! organisation, read, changed and cancelled at `/bookings/{id}` like any other; here it
//! is booked, the instance's operator lists its tenants, and every organisation that
//! may book finds the instances it can join.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use verbund_domain::booking::{Booking, BookingState};
use verbund_domain::page::Page;
use verbund_domain::shared::{Tenancy, TenancySpec};
use verbund_policy::authz::{Act, Target};
use verbund_store::BookingFilter;

use super::PageQuery;
use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery};
use crate::problem::{ApiError, ApiResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/bookings/{id}/tenancies", get(list).post(create))
        .route("/offerings/{name}/instances", get(instances))
}

/// Book a tenancy in a shared instance.
///
/// The tenancy runs where the instance runs: it is placed on the instance's site when
/// the tenant's policies (its own, its Land's, the federation's) allow that site, and
/// stored `rejected` with their reasons otherwise. It holds no capacity of its own.
#[utoipa::path(post, path = "/api/v1/bookings/{id}/tenancies", operation_id = "create_tenancy", tag = "bookings",
    request_body = TenancySpec,
    responses(
        (status = 201, body = Booking, description = "the tenancy, `placed` or `rejected` with the reason"),
        (status = 409, body = crate::problem::Problem, content_type = "application/problem+json",
            description = "the instance takes no tenants now, or the organisation is its tenant already"),
        (status = 422, body = crate::problem::Problem, content_type = "application/problem+json",
            description = "not a shared offering's instance, or a configuration its tenant schema refuses")),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<TenancySpec>,
) -> ApiResult<(StatusCode, Json<Booking>)> {
    let chain = super::organisation_chain(&state, &spec.organisation, "/organisation").await?;
    caller.require(Act::Write, &Target::new("booking").in_organisation(chain))?;
    let hidden = || ApiError::NotFound(format!("booking `{id}` not found"));
    let instance = state.store.get_booking(&id).await.map_err(|_| hidden())?;
    // Any organisation may find a shared offering's instances; a booking of another
    // offering stays as secret as it is at `/bookings/{id}`.
    let offering = state.store.get_offering(&instance.offering).await?;
    let offered = offering.spec.tenancy == Tenancy::Shared
        && verbund_domain::shared::takes_tenants(&instance).is_ok();
    if !offered {
        super::bookings::load_readable(&state, &caller, &id).await?;
    }
    let tenancy = state
        .bookings
        .book_tenancy(&caller.actor(), &id, &spec, state.now())
        .await?;
    Ok((StatusCode::CREATED, Json(tenancy)))
}

/// List a shared instance's tenancies (its operator's view of its tenants).
#[utoipa::path(get, path = "/api/v1/bookings/{id}/tenancies", operation_id = "list_tenancies", tag = "bookings",
    params(PageQuery),
    responses((status = 200, body = Page<Booking>)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<Booking>>> {
    super::bookings::load_readable(&state, &caller, &id).await?;
    let filter = BookingFilter {
        instance: Some(id),
        ..Default::default()
    };
    Ok(Json(state.store.list_bookings(&filter, &q.page()).await?))
}

/// A running instance of a shared offering that takes tenants.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SharedInstance {
    /// The instance's booking id: where a tenancy is booked
    /// (`POST /bookings/{id}/tenancies`).
    pub booking: String,
    /// The operating organisation's id and name.
    pub organisation: String,
    pub organisation_name: String,
    pub site: Option<String>,
    pub state: BookingState,
    pub version: Option<String>,
    /// Tenancies in it that still need it.
    pub tenants: u64,
}

/// List the instances of a shared offering that take tenants (none for a dedicated
/// offering): what an organisation may join.
#[utoipa::path(get, path = "/api/v1/offerings/{name}/instances", operation_id = "list_shared_instances", tag = "catalog",
    responses((status = 200, body = Vec<SharedInstance>)),
    security(("bearer" = [])))]
pub async fn instances(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<SharedInstance>>> {
    caller.require(Act::Read, &Target::new("offering"))?;
    Ok(Json(shared_instances(&state, &name).await?))
}

/// The instances of offering `name` that take tenants, with their operators' names and
/// tenant counts; for the API and the portal's booking form alike.
pub async fn shared_instances(state: &AppState, name: &str) -> ApiResult<Vec<SharedInstance>> {
    let offering = state.store.get_offering(name).await?;
    if offering.spec.tenancy != Tenancy::Shared {
        return Ok(Vec::new());
    }
    let instances: Vec<_> = state
        .store
        .shared_instances(name)
        .await?
        .into_iter()
        .filter(|b| verbund_domain::shared::takes_tenants(b).is_ok())
        .collect();
    let ids: Vec<String> = instances.iter().map(|b| b.id.clone()).collect();
    let counts = state.store.tenancy_counts(&ids).await?;
    let mut orgs: Vec<String> = instances.iter().map(|b| b.organisation.clone()).collect();
    orgs.sort();
    orgs.dedup();
    let names: std::collections::HashMap<String, String> = state
        .store
        .organisations_by_ids(&orgs)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    Ok(instances
        .into_iter()
        .map(|b| SharedInstance {
            tenants: counts.get(&b.id).copied().unwrap_or(0),
            organisation_name: names.get(&b.organisation).cloned().unwrap_or_default(),
            booking: b.id,
            organisation: b.organisation,
            site: b.site,
            state: b.state,
            version: b.version,
        })
        .collect())
}
