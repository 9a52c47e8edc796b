//! `/rollouts`: staged rollouts of a new offering version — plan, start, watch, control.
//!
//! Who may: the federation's admins everything, auditors read; an offering's vendor
//! plans, starts, watches and controls the rollouts of its own offerings; a provider's
//! operators see the rollouts that touch their sites (with only their sites' part) and
//! may retry or skip their own sites. Every control is audited as its caller's.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use verbund_domain::account::Role;
use verbund_domain::page::{Page, PageRequest};
use verbund_domain::rollout::{
    Control, ItemState, Plan, Rollout, RolloutItem, RolloutPolicy, RolloutState,
};
use verbund_policy::authz::{Act, Target};
use verbund_store::{ItemFilter, RolloutFilter};

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery};
use crate::problem::{ApiError, ApiResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rollouts", get(list).post(create))
        .route("/rollouts/plan", post(plan))
        .route("/rollouts/{id}", get(read))
        .route("/rollouts/{id}/items", get(items))
        .route("/rollouts/{id}/pause", post(pause))
        .route("/rollouts/{id}/resume", post(resume))
        .route("/rollouts/{id}/abort", post(abort))
        .route("/rollouts/{id}/sites/{site}", get(site_items))
        .route("/rollouts/{id}/sites/{site}/retry", post(retry_site))
        .route("/rollouts/{id}/sites/{site}/skip", post(skip_site))
}

/// A rollout to plan or start.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    pub offering: String,
    /// A published version of the offering.
    pub version: String,
    /// Defaults apply to every field left out.
    #[serde(default)]
    pub policy: RolloutPolicy,
}

/// Why an operator skips a site.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkipRequest {
    /// Why the site is skipped (at most 500 characters).
    #[serde(default)]
    #[schema(schema_with = skip_reason_schema)]
    pub reason: Option<String>,
}

/// The longest reason for skipping a site.
const SKIP_REASON_MAX: usize = 500;

fn skip_reason_schema() -> utoipa::openapi::schema::Object {
    verbund_domain::directory::nullable(verbund_domain::name::bounded_schema(
        &verbund_domain::name::NUL_FREE,
        SKIP_REASON_MAX,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RolloutQuery {
    pub offering: Option<String>,
    pub state: Option<RolloutState>,
    #[serde(default, deserialize_with = "verbund_domain::page::deserialize_limit")]
    #[param(value_type = Option<verbund_domain::page::Limit>, inline)]
    pub limit: Option<u32>,
    pub after: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemQuery {
    pub wave: Option<u32>,
    pub site: Option<String>,
    pub state: Option<ItemState>,
    #[serde(default, deserialize_with = "verbund_domain::page::deserialize_limit")]
    #[param(value_type = Option<verbund_domain::page::Limit>, inline)]
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// What the caller may see of rollouts.
enum Scope {
    All,
    Vendors(Vec<String>),
    Provider(String),
}

fn scope(caller: &Caller) -> ApiResult<Scope> {
    let p = &caller.0;
    if p.has_role(Role::FederationAdmin) || p.has_role(Role::Auditor) {
        return Ok(Scope::All);
    }
    let vendors: Vec<String> = p
        .memberships
        .iter()
        .filter(|m| m.role == Role::Vendor)
        .filter_map(|m| m.organisation.clone())
        .collect();
    if !vendors.is_empty() {
        return Ok(Scope::Vendors(vendors));
    }
    if let Some(provider) = p
        .memberships
        .iter()
        .find(|m| m.role == Role::ProviderOperator)
        .and_then(|m| m.provider.clone())
    {
        return Ok(Scope::Provider(provider));
    }
    Err(ApiError::Forbidden(
        "rollouts are seen by the federation, the offering's vendor and the sites' operators"
            .into(),
    ))
}

/// The rollout as the caller may see it (an operator: only its own sites' part), or
/// 404 if it may not see it at all.
async fn visible(state: &AppState, caller: &Caller, mut r: Rollout) -> ApiResult<Rollout> {
    let vendor = state.store.get_offering(&r.offering).await?.spec.vendor;
    if caller.may(Act::Read, &Target::new("rollout").vendor(&vendor)) {
        return Ok(r);
    }
    if let Ok(Scope::Provider(provider)) = scope(caller) {
        let own = own_sites(state, &provider).await?;
        if r.sites.iter().any(|s| own.contains(&s.site)) {
            r.sites.retain(|s| own.contains(&s.site));
            r.pinned
                .retain(|e| e.site.as_ref().is_some_and(|s| own.contains(s)));
            r.excluded
                .retain(|e| e.site.as_ref().is_some_and(|s| own.contains(s)));
            for w in &mut r.waves {
                w.sites.retain(|s| own.contains(s));
            }
            return Ok(r);
        }
    }
    Err(ApiError::NotFound(format!("rollout `{}` not found", r.id)))
}

async fn own_sites(state: &AppState, provider: &str) -> ApiResult<Vec<String>> {
    let filter = verbund_store::SiteFilter {
        provider: Some(provider.to_owned()),
    };
    let page = PageRequest {
        limit: Some(1000),
        after: None,
    };
    Ok(state
        .store
        .list_sites(&filter, &page)
        .await?
        .items
        .into_iter()
        .map(|s| s.spec.name)
        .collect())
}

async fn require_offering(
    state: &AppState,
    caller: &Caller,
    act: Act,
    offering: &str,
) -> ApiResult<()> {
    let vendor = state.store.get_offering(offering).await?.spec.vendor;
    caller.require(act, &Target::new("rollout").vendor(&vendor))
}

/// Plan a rollout without starting it: its waves, the pinned and left-out bookings.
#[utoipa::path(post, path = "/api/v1/rollouts/plan", operation_id = "plan_rollout", tag = "rollouts", request_body = RolloutRequest,
    responses((status = 200, body = Plan), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn plan(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RolloutRequest>,
) -> ApiResult<Json<Plan>> {
    require_offering(&state, &caller, Act::Read, &req.offering).await?;
    Ok(Json(
        verbund_rollout::plan(&state.store, &req.offering, &req.version, &req.policy).await?,
    ))
}

/// Start a rollout (publishing a version starts one with the default policy).
#[utoipa::path(post, path = "/api/v1/rollouts", operation_id = "create_rollout", tag = "rollouts", request_body = RolloutRequest,
    responses((status = 201, body = Rollout), (status = 409, body = crate::problem::Problem),
        (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RolloutRequest>,
) -> ApiResult<(StatusCode, Json<Rollout>)> {
    require_offering(&state, &caller, Act::Write, &req.offering).await?;
    let r = verbund_rollout::start(
        &state.store,
        &caller.actor(),
        &req.offering,
        &req.version,
        &req.policy,
        state.now(),
    )
    .await?;
    state.wake_rollouts();
    Ok((StatusCode::CREATED, Json(r)))
}

/// List rollouts, newest first.
#[utoipa::path(get, path = "/api/v1/rollouts", operation_id = "list_rollouts", tag = "rollouts", params(RolloutQuery),
    responses((status = 200, body = Page<Rollout>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<RolloutQuery>,
) -> ApiResult<Json<Page<Rollout>>> {
    let mut filter = RolloutFilter {
        offering: q.offering,
        state: q.state,
        scope_vendor: None,
    };
    let page = PageRequest {
        limit: q.limit,
        after: q.after,
    };
    match scope(&caller)? {
        Scope::All => Ok(Json(state.store.list_rollouts(&filter, &page).await?)),
        Scope::Vendors(v) => {
            filter.scope_vendor = Some(v);
            Ok(Json(state.store.list_rollouts(&filter, &page).await?))
        }
        Scope::Provider(_) => {
            let listed = state.store.list_rollouts(&filter, &page).await?;
            let mut items = Vec::new();
            for r in listed.items {
                if let Ok(r) = visible(&state, &caller, r).await {
                    items.push(r);
                }
            }
            Ok(Json(Page {
                items,
                next: listed.next,
            }))
        }
    }
}

/// One rollout: its waves, sites and counts.
#[utoipa::path(get, path = "/api/v1/rollouts/{id}", operation_id = "read_rollout", tag = "rollouts",
    responses((status = 200, body = Rollout), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Rollout>> {
    scope(&caller)?;
    let r = state.store.get_rollout(&id).await?;
    Ok(Json(visible(&state, &caller, r).await?))
}

/// A rollout's bookings and where each is.
#[utoipa::path(get, path = "/api/v1/rollouts/{id}/items", operation_id = "list_rollout_items", tag = "rollouts", params(ItemQuery),
    responses((status = 200, body = Page<RolloutItem>)), security(("bearer" = [])))]
pub async fn items(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ItemQuery>,
) -> ApiResult<Json<Page<RolloutItem>>> {
    require_rollout(&state, &caller, Act::Read, &id).await?;
    item_page(&state, &id, q.site.clone(), q).await
}

/// A site's bookings in a rollout (what a site's operator sees).
#[utoipa::path(get, path = "/api/v1/rollouts/{id}/sites/{site}", operation_id = "list_rollout_site_items", tag = "rollouts", params(ItemQuery),
    responses((status = 200, body = Page<RolloutItem>)), security(("bearer" = [])))]
pub async fn site_items(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, site)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ItemQuery>,
) -> ApiResult<Json<Page<RolloutItem>>> {
    require_site(&state, &caller, Act::Read, &id, &site).await?;
    item_page(&state, &id, Some(site), q).await
}

/// One page of a rollout's items, of one site or (`None`) of every site.
async fn item_page(
    state: &AppState,
    id: &str,
    site: Option<String>,
    q: ItemQuery,
) -> ApiResult<Json<Page<RolloutItem>>> {
    let filter = ItemFilter {
        wave: q.wave,
        site,
        state: q.state,
    };
    let page = PageRequest {
        limit: q.limit,
        after: q.after,
    };
    Ok(Json(state.store.rollout_items(id, &filter, &page).await?))
}

async fn require_site(
    state: &AppState,
    caller: &Caller,
    act: Act,
    id: &str,
    site: &str,
) -> ApiResult<()> {
    let vendor = state.store.rollout_vendor(id).await?;
    let provider = state.store.get_site(site).await?.spec.provider;
    caller.require_or_hide(
        act,
        &Target::new("rollout-site")
            .vendor(&vendor)
            .provider(&provider),
        &format!("rollout `{id}`"),
    )
}

async fn control(
    state: &AppState,
    caller: &Caller,
    id: &str,
    control: Control,
) -> ApiResult<Json<Rollout>> {
    let r = state
        .store
        .control_rollout(id, &caller.actor(), &control, state.now())
        .await?;
    state.wake_rollouts();
    Ok(Json(visible(state, caller, r).await?))
}

async fn require_rollout(state: &AppState, caller: &Caller, act: Act, id: &str) -> ApiResult<()> {
    let vendor = state.store.rollout_vendor(id).await?;
    caller.require_or_hide(
        act,
        &Target::new("rollout").vendor(&vendor),
        &format!("rollout `{id}`"),
    )
}

/// Pause: nothing new starts until it is resumed.
#[utoipa::path(post, path = "/api/v1/rollouts/{id}/pause", operation_id = "pause_rollout", tag = "rollouts",
    responses((status = 200, body = Rollout), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Rollout>> {
    require_rollout(&state, &caller, Act::Write, &id).await?;
    control(&state, &caller, &id, Control::Pause).await
}

/// Resume after a pause, or after a halt (accepting the current wave's failures).
#[utoipa::path(post, path = "/api/v1/rollouts/{id}/resume", operation_id = "resume_rollout", tag = "rollouts",
    responses((status = 200, body = Rollout), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Rollout>> {
    require_rollout(&state, &caller, Act::Write, &id).await?;
    control(&state, &caller, &id, Control::Resume).await
}

/// Abort: stop for good and roll back every booking the rollout changed.
#[utoipa::path(post, path = "/api/v1/rollouts/{id}/abort", operation_id = "abort_rollout", tag = "rollouts",
    responses((status = 200, body = Rollout), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn abort(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Rollout>> {
    require_rollout(&state, &caller, Act::Write, &id).await?;
    control(&state, &caller, &id, Control::Abort).await
}

/// Retry a site's failed or skipped bookings (its test stage first).
#[utoipa::path(post, path = "/api/v1/rollouts/{id}/sites/{site}/retry", operation_id = "retry_rollout_site", tag = "rollouts",
    responses((status = 200, body = Rollout), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn retry_site(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, site)): Path<(String, String)>,
) -> ApiResult<Json<Rollout>> {
    require_site(&state, &caller, Act::Write, &id, &site).await?;
    control(&state, &caller, &id, Control::RetrySite(site)).await
}

/// Skip a site: its bookings that have not started are left out (e.g. maintenance).
#[utoipa::path(post, path = "/api/v1/rollouts/{id}/sites/{site}/skip", operation_id = "skip_rollout_site", tag = "rollouts",
    request_body = SkipRequest,
    responses((status = 200, body = Rollout), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn skip_site(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, site)): Path<(String, String)>,
    ApiJson(body): ApiJson<SkipRequest>,
) -> ApiResult<Json<Rollout>> {
    require_site(&state, &caller, Act::Write, &id, &site).await?;
    let reason = body.reason.unwrap_or_else(|| "no reason given".into());
    if reason.chars().count() > SKIP_REASON_MAX {
        return Err(verbund_domain::Invalid::new(
            "/reason",
            format!("at most {SKIP_REASON_MAX} characters"),
        )
        .into());
    }
    control(&state, &caller, &id, Control::SkipSite { site, reason }).await
}
