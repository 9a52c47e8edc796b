//! `/users`: accounts and their roles.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;
use verbund_domain::account::{Membership, Role, User, UserSpec};
use verbund_domain::page::{Page, PageRequest};
use verbund_policy::authz::{Act, Target};
use verbund_store::UserFilter;

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery};
use crate::problem::ApiResult;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/me", get(me))
        .route("/users/{id}", get(read))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Only members of this organisation.
    pub organisation: Option<String>,
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// List users.
#[utoipa::path(get, path = "/api/v1/users", tag = "accounts", params(UserQuery),
    responses((status = 200, body = Page<User>), (status = 403, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> ApiResult<Json<Page<User>>> {
    caller.require(
        Act::Read,
        &accounts_target(q.organisation.iter().cloned().collect(), None, None),
    )?;
    let filter = UserFilter {
        organisation: q.organisation,
    };
    let page = PageRequest {
        limit: q.limit,
        after: q.after,
    };
    Ok(Json(state.store.list_users(&filter, &page).await?))
}

/// Create a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "accounts", request_body = UserSpec,
    responses((status = 201, body = User), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(spec): ApiJson<UserSpec>,
) -> ApiResult<(StatusCode, Json<User>)> {
    caller.require(Act::Write, &user_target(&spec.memberships, None))?;
    let user = state
        .store
        .create_user(&caller.actor(), &spec, state.now())
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "accounts",
    responses((status = 200, body = User)), security(("bearer" = [])))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<User>> {
    Ok(Json(state.store.get_user(&caller.0.user_id).await?))
}

/// Read a user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "accounts",
    responses((status = 200, body = User), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<User>> {
    let user = state.store.get_user(&id).await?;
    // Users the caller may not see answer like unknown ones: their existence is private.
    caller.require_or_hide(
        Act::Read,
        &user_target(&user.spec.memberships, Some(&user.id)),
        &format!("user `{id}`"),
    )?;
    Ok(Json(user))
}

/// An account as a target: the organisations of its roles and whether those are only
/// org-admin or org-member roles (what an org admin may hand out).
fn user_target(memberships: &[Membership], owner: Option<&str>) -> Target {
    let organisations: Vec<String> = memberships
        .iter()
        .filter_map(|m| m.organisation.clone())
        .collect();
    let org_roles_only = memberships
        .iter()
        .all(|m| matches!(m.role, Role::OrgAdmin | Role::OrgMember) && m.organisation.is_some());
    accounts_target(organisations, Some(org_roles_only), owner)
}

fn accounts_target(
    organisations: Vec<String>,
    org_roles_only: Option<bool>,
    owner: Option<&str>,
) -> Target {
    let mut t = Target::new("user");
    if !organisations.is_empty() {
        t.organisations = Some(organisations);
    }
    t.org_roles_only = org_roles_only;
    if let Some(o) = owner {
        t = t.owner(o);
    }
    t
}
