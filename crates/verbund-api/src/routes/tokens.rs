//! `/tokens`: API tokens. The secret is returned once, at creation; only its hash is kept.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use verbund_domain::account::{Token, TokenSpec};
use verbund_domain::page::{Page, PageRequest};
use verbund_policy::authz::{Act, Target};

use crate::auth::{issue_token, Caller};
use crate::extract::{ApiJson, ApiQuery};
use crate::problem::ApiResult;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list).post(create))
        .route("/tokens/{id}", delete(revoke))
}

/// A freshly created token with its secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IssuedToken {
    #[serde(flatten)]
    pub token: Token,
    /// The secret; shown only now. Send it as `Authorization: Bearer <secret>`.
    pub secret: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// Whose tokens; defaults to the caller's own.
    pub user: Option<String>,
    #[serde(default, deserialize_with = "verbund_domain::page::deserialize_limit")]
    #[param(value_type = Option<verbund_domain::page::Limit>, inline)]
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// List tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", operation_id = "list_tokens", tag = "accounts", params(TokenQuery),
    responses((status = 200, body = Page<Token>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> ApiResult<Json<Page<Token>>> {
    let owner = q.user.unwrap_or_else(|| caller.0.user_id.clone());
    caller.require(Act::Write, &Target::new("token").owner(&owner))?;
    let page = PageRequest {
        limit: q.limit,
        after: q.after,
    };
    Ok(Json(state.store.list_tokens(Some(&owner), &page).await?))
}

/// Create a token; the response carries the secret once.
#[utoipa::path(post, path = "/api/v1/tokens", operation_id = "create_token", tag = "accounts", request_body = TokenSpec,
    responses((status = 201, body = IssuedToken), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(spec): ApiJson<TokenSpec>,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    let owner = spec
        .user
        .clone()
        .unwrap_or_else(|| caller.0.user_id.clone());
    caller.require(Act::Write, &Target::new("token").owner(&owner))?;
    let (token, secret) = issue_token(
        &state.store,
        &caller.actor(),
        &owner,
        &spec.name,
        spec.expires_at,
        state.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(IssuedToken { token, secret })))
}

/// Revoke a token.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", operation_id = "revoke_token", tag = "accounts",
    responses((status = 200, body = Token), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Token>> {
    let token = state.store.get_token(&id).await?;
    caller.require_or_hide(
        Act::Write,
        &Target::new("token").owner(&token.user),
        &format!("token `{id}`"),
    )?;
    Ok(Json(
        state
            .store
            .revoke_token(&caller.actor(), &id, state.now())
            .await?,
    ))
}
