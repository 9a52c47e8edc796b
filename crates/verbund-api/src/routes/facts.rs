//! Placement facts with provenance: the fact sheets of providers and sites, and the
//! operators' proposals that a federation admin other than the proposer approves or
//! rejects (`/fact-proposals`). Which fields are facts is `verbund_domain::facts`'s;
//! who may see, propose, approve or reject is Cedar's (kinds `facts` and
//! `fact-proposal`).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use verbund_domain::account::Role;
use verbund_domain::facts::{FactKind, FactProposal, FactSheet, HasFacts, ProposalState};
use verbund_domain::page::{Page, PageRequest};
use verbund_policy::authz::{Act, Target};
use verbund_store::ProposalFilter;

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery};
use crate::problem::{ApiError, ApiResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/providers/{name}/facts", get(provider_facts))
        .route("/sites/{name}/facts", get(site_facts))
        .route("/fact-proposals", get(list))
        .route("/fact-proposals/{id}", get(read))
        .route("/fact-proposals/{id}/approve", post(approve))
        .route("/fact-proposals/{id}/reject", post(reject))
}

/// Whether the caller may state placement facts of `provider` (or of its sites) itself.
pub(crate) fn may_state_facts(caller: &Caller, provider: &str) -> bool {
    caller.may(Act::Write, &Target::new("facts").provider(provider))
}

/// A change by a caller who may not state placement facts: the operational fields apply,
/// the facts become a proposal (`202` with it), or `200` with `stored` when the change
/// asked for no fact.
pub(crate) async fn apply_as_operator<T: HasFacts, R: serde::Serialize>(
    state: &AppState,
    caller: &Caller,
    spec: &T,
    stored: impl std::future::Future<Output = ApiResult<R>>,
) -> ApiResult<Response> {
    caller.require(
        Act::Write,
        &Target::new("fact-proposal").provider(spec.provider()),
    )?;
    let proposal = state
        .store
        .apply_as_operator(&caller.actor(), &caller.0.user_id, spec, state.now())
        .await?;
    Ok(match proposal {
        Some(p) => (
            StatusCode::ACCEPTED,
            [(header::LOCATION, format!("/api/v1/fact-proposals/{}", p.id))],
            Json(p),
        )
            .into_response(),
        None => (StatusCode::OK, Json(stored.await?)).into_response(),
    })
}

/// The refusal for an operator who registers a provider or a site: its placement facts
/// are the federation's to state.
pub(crate) fn facts_are_federal(kind: FactKind, name: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "the placement facts of a new {} ({}) are stated by the federation: a federation admin registers `{name}`",
        kind.as_str(),
        kind.fields().join(", ")
    ))
}

/// The placement facts of a provider, with who stated and approved each, and its pending
/// proposals.
#[utoipa::path(get, path = "/api/v1/providers/{name}/facts", operation_id = "read_provider_facts", tag = "directory",
    responses((status = 200, body = FactSheet), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn provider_facts(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<FactSheet>> {
    caller.require(Act::Read, &Target::new("provider"))?;
    Ok(Json(
        sheet(&state, &caller, FactKind::Provider, &name).await?,
    ))
}

/// The placement facts of a site, with who stated and approved each, and its pending
/// proposals.
#[utoipa::path(get, path = "/api/v1/sites/{name}/facts", operation_id = "read_site_facts", tag = "directory",
    responses((status = 200, body = FactSheet), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn site_facts(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<FactSheet>> {
    caller.require(Act::Read, &Target::new("site"))?;
    Ok(Json(sheet(&state, &caller, FactKind::Site, &name).await?))
}

/// The fact sheet; its pending proposals only for those who may read them.
async fn sheet(
    state: &AppState,
    caller: &Caller,
    kind: FactKind,
    name: &str,
) -> ApiResult<FactSheet> {
    let mut sheet = state.store.fact_sheet(kind, name).await?;
    caller.retain_allowed(Act::Read, &mut sheet.pending, proposal_target);
    Ok(sheet)
}

/// What Cedar decides a proposal by: its provider and its proposer (four eyes).
pub fn proposal_target(p: &FactProposal) -> Target {
    Target::new("fact-proposal")
        .provider(&p.provider)
        .owner(&p.proposer_id)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProposalQuery {
    /// Only proposals in this state (`pending`, `approved`, `rejected`).
    #[param(value_type = Option<verbund_domain::facts::ProposalState>)]
    pub state: Option<String>,
    /// Only proposals concerning this provider or its sites.
    pub provider: Option<String>,
    #[serde(default, deserialize_with = "verbund_domain::page::deserialize_limit")]
    #[param(value_type = Option<verbund_domain::page::Limit>, inline)]
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// List proposals of placement facts: federation admins and auditors see all, operators
/// those of their own providers.
#[utoipa::path(get, path = "/api/v1/fact-proposals", operation_id = "list_fact_proposals", tag = "directory", params(ProposalQuery),
    responses((status = 200, body = Page<FactProposal>), (status = 403, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ProposalQuery>,
) -> ApiResult<Json<Page<FactProposal>>> {
    let proposal_state = q
        .state
        .as_deref()
        .map(|s| {
            ProposalState::parse(s).ok_or_else(|| {
                verbund_domain::Invalid::new(
                    "/state",
                    format!("`{s}` is no proposal state (pending, approved, rejected)"),
                )
            })
        })
        .transpose()?;
    let providers = match &q.provider {
        Some(p) => {
            caller.require(Act::Read, &Target::new("fact-proposal").provider(p))?;
            Some(vec![p.clone()])
        }
        None if caller.may(Act::Read, &Target::new("fact-proposal")) => None,
        None => {
            let own: Vec<String> = caller
                .0
                .memberships
                .iter()
                .filter(|m| m.role == Role::ProviderOperator)
                .filter_map(|m| m.provider.clone())
                .filter(|p| caller.may(Act::Read, &Target::new("fact-proposal").provider(p)))
                .collect();
            if own.is_empty() {
                caller.require(Act::Read, &Target::new("fact-proposal"))?;
            }
            Some(own)
        }
    };
    let filter = ProposalFilter {
        providers,
        state: proposal_state,
        ..Default::default()
    };
    let page = PageRequest {
        limit: q.limit,
        after: q.after,
    };
    Ok(Json(state.store.list_fact_proposals(&filter, &page).await?))
}

/// Reads a proposal the caller may see; others' answer 404.
async fn load(state: &AppState, caller: &Caller, id: &str) -> ApiResult<FactProposal> {
    let p = state.store.get_fact_proposal(id).await?;
    caller.require_or_hide(
        Act::Read,
        &proposal_target(&p),
        &format!("fact proposal `{id}`"),
    )?;
    Ok(p)
}

/// Read a proposal of placement facts.
#[utoipa::path(get, path = "/api/v1/fact-proposals/{id}", operation_id = "read_fact_proposal", tag = "directory",
    responses((status = 200, body = FactProposal), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<FactProposal>> {
    Ok(Json(load(&state, &caller, &id).await?))
}

/// Approve a pending proposal: its facts apply, each recorded as stated by the proposer
/// and approved by the caller, who must be a federation admin other than the proposer.
#[utoipa::path(post, path = "/api/v1/fact-proposals/{id}/approve", operation_id = "approve_fact_proposal", tag = "directory",
    responses((status = 200, body = FactProposal), (status = 403, body = crate::problem::Problem),
        (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<FactProposal>> {
    let p = load(&state, &caller, &id).await?;
    // Cedar decides (`four-eyes-on-facts`); the refusal of one's own proposal says why.
    caller
        .require(Act::Approve, &proposal_target(&p))
        .map_err(|e| {
            if p.proposer_id == caller.0.user_id {
                ApiError::Forbidden(
                    "four eyes: a proposal of placement facts is approved by a federation admin other than its proposer".into(),
                )
            } else {
                e
            }
        })?;
    let approved = state
        .store
        .approve_fact_proposal(&id, &caller.actor(), state.now())
        .await?;
    state.reevaluate.notify_one();
    Ok(Json(approved))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalRejection {
    pub reason: String,
}

/// Reject a pending proposal; nothing changes.
#[utoipa::path(post, path = "/api/v1/fact-proposals/{id}/reject", operation_id = "reject_fact_proposal", tag = "directory",
    request_body = ProposalRejection,
    responses((status = 200, body = FactProposal), (status = 403, body = crate::problem::Problem),
        (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<ProposalRejection>,
) -> ApiResult<Json<FactProposal>> {
    let p = load(&state, &caller, &id).await?;
    caller.require(Act::Delete, &proposal_target(&p))?;
    Ok(Json(
        state
            .store
            .reject_fact_proposal(&id, &caller.actor(), Some(r.reason), state.now())
            .await?,
    ))
}
