//! `/users`: accounts, their roles and their life cycle.
//!
//! An account's password belongs to its owner: they set it knowing the current one, and
//! an administrator never sets it for them but hands out a one-time reset token that the
//! person completes (`POST /password-reset`, which needs no bearer token). Accounts that
//! sign in through an identity provider have no local password and no locally managed
//! roles. Offboarding is `disable` (nothing of the account works any more, at once),
//! `roles` (remove a role), and `revoke` (all tokens and sessions). Which caller may do
//! which is Cedar's decision (`set-password`, `reset-password`, `disable`, `revoke`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use verbund_domain::account::{
    hash_token, Membership, PasswordReset, Revoked, Role, User, UserSpec,
};
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
        .route("/users/{id}/password-reset", post(reset_password))
        .route("/users/{id}/roles", put(set_roles))
        .route("/users/{id}/disable", post(disable))
        .route("/users/{id}/enable", post(enable))
        .route("/users/{id}/revoke", post(revoke))
        .route("/password-reset", post(complete_reset))
}

/// How long a password reset token stays valid.
pub const RESET_VALID_HOURS: i64 = 24;

/// The account of `id` as the caller may see it: one the caller may not read answers
/// like an unknown one (its existence is private), then `act` is Cedar's decision.
async fn account_for(state: &AppState, caller: &Caller, id: &str, act: Act) -> ApiResult<User> {
    let hidden = || ApiError::NotFound(format!("user `{id}` not found"));
    let user = state.store.get_user(id).await.map_err(|e| match e {
        verbund_store::StoreError::NotFound { .. } => hidden(),
        other => other.into(),
    })?;
    let target = user_target(&user.spec.memberships, Some(&user.id));
    if !caller.may(Act::Read, &target) {
        return Err(hidden());
    }
    caller.require(act, &target)?;
    Ok(user)
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
    // also holds roles in other organisations stays hidden here too. Pages are filled up
    // from further store pages only while they are short; `next` names a listed account
    // only, never a hidden one (the page after it may turn out empty when every account
    // beyond it is hidden, as with any filtered cursor).
    let limit = page.limit() as usize;
    let mut items = Vec::new();
    let mut more = false;
    loop {
        let mut batch = state.store.list_users(&filter, &page).await?;
        caller.retain_allowed(Act::Read, &mut batch.items, |u| {
            user_target(&u.spec.memberships, Some(&u.id))
        });
        items.extend(batch.items);
        match batch.next {
            Some(next) if items.len() < limit => page.after = Some(next),
            Some(_) => {
                more = true;
                break;
            }
            None => break,
        }
    }
    more |= items.len() > limit;
    items.truncate(limit);
    let next = if more {
        items.last().map(|u| u.id.clone())
    } else {
        None
    };
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

/// A change of one's own portal password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password the account has now.
    pub current_password: String,
    /// The new password: at least 12 characters.
    #[schema(schema_with = crate::password::schema)]
    pub password: String,
}

/// Change one's own portal password, giving the current one. Nobody sets another
/// person's password (administrators send a reset: `POST /users/{id}/password-reset`);
/// accounts that sign in through an identity provider have none. The change ends the
/// account's portal sessions and is audited; the password is stored only as an Argon2id
/// hash. Answers the account.
#[utoipa::path(put, path = "/api/v1/users/{id}/password", operation_id = "set_user_password", tag = "accounts", request_body = PasswordChange,
    params(("id" = String, Path, description = "The account's id")),
    responses(
        (status = 200, body = User),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json", description = "another person's account"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::problem::Problem, content_type = "application/problem+json", description = "the account has no local password (identity provider, or never set)"),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "the new password is too short"),
        (status = 422, body = crate::problem::Problem, content_type = "application/problem+json", description = "the current password is wrong"),
        (status = 429, body = crate::problem::Problem, content_type = "application/problem+json", description = "too many wrong current passwords"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "too many password checks at once"),
    ),
    security(("bearer" = [])))]
pub async fn set_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<PasswordChange>,
) -> ApiResult<Json<User>> {
    let user = account_for(&state, &caller, &id, Act::SetPassword).await?;
    crate::password::check_length(&change.password)
        .map_err(|m| ApiError::Invalid(verbund_domain::Invalid::new("/password", m)))?;
    let current = state
        .store
        .credential(&user.spec.name)
        .await?
        .and_then(|(_, c)| c)
        .and_then(|c| c.password_hash)
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "`{}` has no local password to change; it signs in through its identity provider, or an administrator must send a reset",
                user.spec.name
            ))
        })?;
    check_current_password(&state, &user, change.current_password, current).await?;
    let hash = state
        .hashing
        .run(move || crate::password::hash_password(&change.password))
        .await?
        .map_err(|m| ApiError::Invalid(verbund_domain::Invalid::new("/password", m)))?;
    state
        .store
        .change_password(&caller.actor(), &user.id, &hash, None, state.now())
        .await?;
    Ok(Json(user))
}

/// Verifies the current password under the same attempt limit as the portal's sign-in
/// for this account (so a stolen token cannot guess the password at Argon2's speed).
async fn check_current_password(
    state: &AppState,
    user: &User,
    given: String,
    hash: String,
) -> ApiResult<()> {
    let limits = verbund_store::LockPolicy::default();
    let key = crate::password::attempt_key(&user.spec.name, "api");
    let now = state.now();
    if let verbund_store::Attempt::Refused { until } = state
        .store
        .reserve_sign_in(&key, limits.max_failures, limits.lock_for, now)
        .await?
    {
        let secs = (until - now).num_seconds().max(1);
        return Err(ApiError::TooManyAttempts(
            format!("too many wrong current passwords; try again in {secs} s"),
            u64::try_from(secs).unwrap_or(1),
        ));
    }
    let ok = match state
        .hashing
        .run(move || crate::password::verify(&given, &hash))
        .await
    {
        Ok(ok) => ok,
        Err(e) => {
            state
                .store
                .refund_sign_in(&key, limits.max_failures)
                .await?;
            return Err(e.into());
        }
    };
    if ok {
        state.store.forget_sign_in(&key).await?;
        return Ok(());
    }
    state
        .store
        .login_failed(Some(user), &key, limits, now)
        .await?;
    Err(ApiError::Invalid(verbund_domain::Invalid::meaning(
        "/current_password",
        "is not the account's current password",
    )))
}

/// A reset token handed out for an account, shown only now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IssuedPasswordReset {
    #[serde(flatten)]
    pub reset: PasswordReset,
    /// The one-time token; give it to the account's owner, who completes the reset with
    /// `POST /api/v1/password-reset` (`verbund user complete-reset`).
    pub token: String,
}

/// Hand out a one-time password reset for another person's account: the answer carries
/// the token once; the person chooses the new password with it within 24 hours. A newer
/// reset makes older ones useless. Not for one's own account (change it knowing the
/// current one) nor for accounts that sign in through an identity provider. Audited.
#[utoipa::path(post, path = "/api/v1/users/{id}/password-reset", tag = "accounts",
    operation_id = "reset_user_password",
    params(("id" = String, Path, description = "The account's id")),
    responses(
        (status = 201, body = IssuedPasswordReset),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::problem::Problem, content_type = "application/problem+json", description = "the account signs in through an identity provider"),
    ),
    security(("bearer" = [])))]
pub async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<IssuedPasswordReset>)> {
    let user = account_for(&state, &caller, &id, Act::ResetPassword).await?;
    let now = state.now();
    let token = crate::password::reset_token();
    let reset = state
        .store
        .create_password_reset(
            &caller.actor(),
            &user.id,
            &hash_token(&token),
            now + chrono::Duration::hours(RESET_VALID_HOURS),
            now,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedPasswordReset { reset, token }),
    ))
}

/// Completing a password reset.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetCompletion {
    /// The token from `POST /users/{id}/password-reset`.
    pub token: String,
    /// The new password: at least 12 characters.
    #[schema(schema_with = crate::password::schema)]
    pub password: String,
}

/// Complete a password reset with its one-time token (no bearer token needed: the reset
/// token is the credential). Sets the password, uses the token up and ends the account's
/// portal sessions. Answers the account.
#[utoipa::path(post, path = "/api/v1/password-reset", tag = "accounts",
    operation_id = "complete_password_reset", request_body = ResetCompletion,
    responses(
        (status = 200, body = User),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "the new password is too short"),
        (status = 422, body = crate::problem::Problem, content_type = "application/problem+json", description = "the token is unknown, used or expired"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "too many password checks at once"),
    ),
    // No bearer token: the reset token in the body is the credential.
    security(()))]
pub async fn complete_reset(
    State(state): State<AppState>,
    ApiJson(c): ApiJson<ResetCompletion>,
) -> ApiResult<Json<User>> {
    crate::password::check_length(&c.password)
        .map_err(|m| ApiError::Invalid(verbund_domain::Invalid::new("/password", m)))?;
    let hash = state
        .hashing
        .run(move || crate::password::hash_password(&c.password))
        .await?
        .map_err(|m| ApiError::Invalid(verbund_domain::Invalid::new("/password", m)))?;
    Ok(Json(
        state
            .store
            .complete_password_reset(&hash_token(&c.token), &hash, state.now())
            .await?,
    ))
}

/// An account's new set of roles.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolesChange {
    /// Every role the account shall hold (at least one; disable an account to take all).
    #[schema(min_items = 1)]
    pub memberships: Vec<Membership>,
}

/// Replace an account's roles, e.g. remove one. The caller must be allowed to administer
/// the account both with its current roles and with the new ones. Accounts whose roles
/// come from an identity provider are refused (change their groups there). Audited.
#[utoipa::path(put, path = "/api/v1/users/{id}/roles", tag = "accounts",
    operation_id = "set_user_roles", request_body = RolesChange,
    params(("id" = String, Path, description = "The account's id")),
    responses(
        (status = 200, body = User),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::problem::Problem, content_type = "application/problem+json", description = "the roles come from an identity provider"),
        (status = 422, body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn set_roles(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<RolesChange>,
) -> ApiResult<Json<User>> {
    let user = account_for(&state, &caller, &id, Act::Write).await?;
    // Invalid roles (none, a scope missing) are said as such before "may you grant them".
    UserSpec {
        memberships: change.memberships.clone(),
        ..user.spec.clone()
    }
    .validate()?;
    caller.require(
        Act::Write,
        &user_target(&change.memberships, Some(&user.id)),
    )?;
    Ok(Json(
        state
            .store
            .set_roles(&caller.actor(), &user.id, &change.memberships, state.now())
            .await?,
    ))
}

/// Disable an account: it signs in nowhere, its tokens stop working and its sessions end
/// at once. Nobody disables their own account. Audited.
#[utoipa::path(post, path = "/api/v1/users/{id}/disable", tag = "accounts",
    operation_id = "disable_user",
    params(("id" = String, Path, description = "The account's id")),
    responses(
        (status = 200, body = User),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<User>> {
    let user = account_for(&state, &caller, &id, Act::Disable).await?;
    Ok(Json(
        state
            .store
            .disable_user(&caller.actor(), &user.id, state.now())
            .await?,
    ))
}

/// Enable a disabled account again (its unrevoked tokens work again). Audited.
#[utoipa::path(post, path = "/api/v1/users/{id}/enable", tag = "accounts",
    operation_id = "enable_user",
    params(("id" = String, Path, description = "The account's id")),
    responses(
        (status = 200, body = User),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<User>> {
    let user = account_for(&state, &caller, &id, Act::Disable).await?;
    Ok(Json(
        state
            .store
            .enable_user(&caller.actor(), &user.id, state.now())
            .await?,
    ))
}

/// Revoke every API token of an account and end all its portal sessions, in one step
/// (one's own too: "sign out everywhere"). Audited. Answers what was ended.
#[utoipa::path(post, path = "/api/v1/users/{id}/revoke", tag = "accounts",
    operation_id = "revoke_user_access",
    params(("id" = String, Path, description = "The account's id")),
    responses(
        (status = 200, body = Revoked),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Revoked>> {
    let user = account_for(&state, &caller, &id, Act::Revoke).await?;
    Ok(Json(
        state
            .store
            .revoke_access(&caller.actor(), &user.id, state.now())
            .await?,
    ))
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
