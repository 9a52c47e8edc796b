//! `/users`: accounts and their roles.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use verbund_domain::account::{Membership, Role, User, UserSpec};
use verbund_domain::page::{Page, PageRequest};
use verbund_policy::authz::{Act, Target};
use verbund_store::UserFilter;

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery};
use crate::problem::{ApiError, ApiResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/me", get(me))
        .route("/users/{id}", get(read))
        .route("/users/{id}/password", put(set_password))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Only members of this organisation.
    pub organisation: Option<String>,
    #[serde(default, deserialize_with = "verbund_domain::page::deserialize_limit")]
    #[param(value_type = Option<verbund_domain::page::Limit>, inline)]
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// List users.
#[utoipa::path(get, path = "/api/v1/users", operation_id = "list_users", tag = "accounts", params(UserQuery),
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
    let mut page = PageRequest {
        limit: q.limit,
        after: q.after,
    };
    // Every listed account passes the same decision as a single read, so an account that
    // also holds roles in other organisations stays hidden here too; pages are filled up
    // and `next` names a listed account only, never a hidden one.
    let limit = page.limit() as usize;
    let mut items = Vec::new();
    loop {
        let batch = state.store.list_users(&filter, &page).await?;
        items.extend(
            batch
                .items
                .into_iter()
                .filter(|u| caller.may(Act::Read, &user_target(&u.spec.memberships, Some(&u.id)))),
        );
        match batch.next {
            Some(next) if items.len() <= limit => page.after = Some(next),
            _ => break,
        }
    }
    let next = (items.len() > limit).then(|| {
        items.truncate(limit);
        items[limit - 1].id.clone()
    });
    Ok(Json(Page { items, next }))
}

/// Create a user.
#[utoipa::path(post, path = "/api/v1/users", operation_id = "create_user", tag = "accounts", request_body = UserSpec,
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
#[utoipa::path(get, path = "/api/v1/users/me", operation_id = "read_own_user", tag = "accounts",
    responses((status = 200, body = User)), security(("bearer" = [])))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<User>> {
    Ok(Json(state.store.get_user(&caller.0.user_id).await?))
}

/// Read a user.
#[utoipa::path(get, path = "/api/v1/users/{id}", operation_id = "read_user", tag = "accounts",
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

/// A new portal password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// At least 12 characters.
    #[schema(schema_with = crate::password::schema)]
    pub password: String,
}

/// Set a user's portal password: one's own, or that of an account one may administer.
/// The password is stored only as an Argon2id hash; the change is audited. Answers the
/// account.
#[utoipa::path(put, path = "/api/v1/users/{id}/password", operation_id = "set_user_password", tag = "accounts", request_body = PasswordChange,
    responses((status = 200, body = User), (status = 404, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn set_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<PasswordChange>,
) -> ApiResult<Json<User>> {
    let hidden = || ApiError::NotFound(format!("user `{id}` not found"));
    let user = state.store.get_user(&id).await.map_err(|_| hidden())?;
    if caller.0.user_id != user.id {
        let target = user_target(&user.spec.memberships, Some(&user.id));
        if !caller.may(Act::Read, &target) {
            return Err(hidden());
        }
        caller.require(Act::Write, &target)?;
    }
    let hash =
        tokio::task::spawn_blocking(move || crate::password::hash_password(&change.password))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|m| ApiError::Invalid(verbund_domain::Invalid::new("/password", m)))?;
    state
        .store
        .set_password(&caller.actor(), &user.id, &hash, state.now())
        .await?;
    Ok(Json(user))
}

/// An account as a target: the organisations of its roles and whether those are only
/// org-admin or org-member roles (what an org admin may hand out). A delegated org-admin
/// role reaches the organisations below, beyond any org admin's own: only federation
/// admins grant it.
fn user_target(memberships: &[Membership], owner: Option<&str>) -> Target {
    let organisations: Vec<String> = memberships
        .iter()
        .filter_map(|m| m.organisation.clone())
        .collect();
    let org_roles_only = memberships.iter().all(|m| {
        matches!(m.role, Role::OrgAdmin | Role::OrgMember)
            && m.organisation.is_some()
            && !m.delegated
    });
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
