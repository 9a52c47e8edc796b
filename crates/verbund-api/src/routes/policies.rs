//! `/policies`: placement policy documents in three layers, versioned and audited.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use verbund_placement::PolicySubmission;
use verbund_policy::authz::{Act, Target};
use verbund_store::StoredPolicy;

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery};
use crate::problem::{ApiError, ApiResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/policies", get(list).post(submit))
        .route("/policies/{id}", get(read).delete(remove))
        .route("/policies/{id}/versions", get(versions))
}

/// A stored version of a policy document.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    /// `federation:<name>` or `<owner id>:<name>`.
    pub id: String,
    pub name: String,
    pub layer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub text: String,
    pub version: i64,
    pub deleted: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub created_by: String,
}

impl From<StoredPolicy> for PolicyView {
    fn from(p: StoredPolicy) -> Self {
        PolicyView {
            id: p.record.id,
            name: p.record.name,
            layer: p.record.layer,
            owner: p.record.owner,
            text: p.record.text,
            version: p.version,
            deleted: p.deleted,
            created_at: p.created_at,
            created_by: p.created_by,
        }
    }
}

async fn target(state: &AppState, layer: &str, owner: Option<&str>) -> ApiResult<Target> {
    let mut t = Target::new("policy").layer(layer);
    if let Some(o) = owner {
        t = t.in_organisation(super::organisation_chain(state, o, "/owner").await?);
    }
    Ok(t)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PolicyQuery {
    /// The policies in force for this organisation: the federation's, its ancestors'
    /// and its own. Without it, every document (federation admins and auditors).
    pub organisation: Option<String>,
}

/// List the policy documents in force.
#[utoipa::path(get, path = "/api/v1/policies", operation_id = "list_policies", tag = "policies", params(PolicyQuery),
    responses((status = 200, body = Vec<PolicyView>),
        (status = 404, body = crate::problem::Problem, description = "the organisation named does not exist")),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PolicyQuery>,
) -> ApiResult<Json<Vec<PolicyView>>> {
    let all = state.store.policies_in_force().await?;
    match q.organisation {
        None => {
            caller.require(Act::Read, &list_target(None))?;
            Ok(Json(all.into_iter().map(Into::into).collect()))
        }
        Some(org) => {
            let chain = super::organisation_chain(&state, &org, "/organisation").await?;
            caller.require(Act::Read, &list_target(Some(chain.clone())))?;
            Ok(Json(
                all.into_iter()
                    .filter(|p| p.record.owner.as_ref().is_none_or(|o| chain.contains(o)))
                    .map(Into::into)
                    .collect(),
            ))
        }
    }
}

/// What listing the policies in force reads: every document (no organisation), or those
/// over one organisation (its chain, nearest first). The portal asks the same question
/// before it offers its policies page.
pub fn list_target(chain: Option<Vec<String>>) -> Target {
    match chain {
        None => Target::new("policy"),
        Some(chain) => Target::new("policy").in_organisation(chain),
    }
}

/// Submit a policy document (a new version if it exists). Land and organisation
/// documents may only `forbid`.
#[utoipa::path(post, path = "/api/v1/policies", operation_id = "submit_policy", tag = "policies", request_body = PolicySubmission,
    responses((status = 201, body = PolicyView), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(sub): ApiJson<PolicySubmission>,
) -> ApiResult<(StatusCode, Json<PolicyView>)> {
    let t = target(&state, sub.layer.as_str(), sub.owner.as_deref()).await?;
    caller.require(Act::Write, &t)?;
    let stored = state
        .bookings
        .submit_policy(&caller.actor(), &sub, state.now())
        .await?;
    state.reevaluate.notify_one();
    Ok((StatusCode::CREATED, Json(stored.into())))
}

async fn readable(state: &AppState, caller: &Caller, id: &str) -> ApiResult<StoredPolicy> {
    let hidden = || ApiError::NotFound(format!("policy `{id}` not found"));
    let p = state.store.policy(id).await?.ok_or_else(hidden)?;
    let t = target(state, &p.record.layer, p.record.owner.as_deref()).await?;
    if p.record.layer != "federation" && !caller.may(Act::Read, &t) {
        return Err(hidden());
    }
    Ok(p)
}

/// The latest version of a policy document.
#[utoipa::path(get, path = "/api/v1/policies/{id}", operation_id = "read_policy", tag = "policies",
    responses((status = 200, body = PolicyView), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<PolicyView>> {
    Ok(Json(readable(&state, &caller, &id).await?.into()))
}

/// Every version of a policy document, newest first.
#[utoipa::path(get, path = "/api/v1/policies/{id}/versions", operation_id = "list_policy_versions", tag = "policies",
    responses((status = 200, body = Vec<PolicyView>), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<PolicyView>>> {
    readable(&state, &caller, &id).await?;
    Ok(Json(
        state
            .store
            .policy_versions(&id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Withdraw a policy document (a tombstone version; its history stays).
#[utoipa::path(delete, path = "/api/v1/policies/{id}", operation_id = "remove_policy", tag = "policies",
    responses((status = 200, body = PolicyView), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<PolicyView>> {
    let p = readable(&state, &caller, &id).await?;
    let t = target(&state, &p.record.layer, p.record.owner.as_deref()).await?;
    caller.require(Act::Delete, &t)?;
    let stored = state
        .store
        .delete_policy(&caller.actor(), &id, state.now())
        .await?;
    state.reevaluate.notify_one();
    Ok(Json(stored.into()))
}
