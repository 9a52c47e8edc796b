//! Authentication by bearer token and the authorization gate every handler passes.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use rand::RngCore;
use verbund_domain::access::{authorize, Action, Decision};
use verbund_domain::account::{hash_token, token_secret, Principal, Token};
use verbund_store::Store;

use crate::problem::ApiError;
use crate::AppState;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// Passes if the caller may perform `action`; otherwise logs and refuses with 403.
    pub fn require(&self, action: Action<'_>) -> Result<(), ApiError> {
        match authorize(&self.0, &action) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => {
                tracing::warn!(user = %self.0.user_name, action = ?action, %reason, "request refused");
                Err(ApiError::Forbidden(reason))
            }
        }
    }

    pub fn actor(&self) -> String {
        self.0.actor()
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::Unauthenticated(
                    "send an API token as `Authorization: Bearer <token>`".into(),
                )
            })?
            .to_str()
            .map_err(|_| ApiError::Unauthenticated("the Authorization header is not text".into()))?;
        let secret = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthenticated("the Authorization header must be `Bearer <token>`".into())
            })?;
        match state.store.authenticate(&hash_token(secret), state.now()).await? {
            Some((_, user)) => Ok(Caller(Principal {
                user_id: user.id,
                user_name: user.spec.name,
                memberships: user.spec.memberships,
            })),
            None => {
                tracing::warn!("request with an unknown, expired or revoked token");
                Err(ApiError::Unauthenticated(
                    "the token is unknown, expired or revoked".into(),
                ))
            }
        }
    }
}

/// Creates a token for `user_id` and returns it with its secret, which is shown only once.
pub async fn issue_token(
    store: &Store,
    actor: &str,
    user_id: &str,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(Token, String), verbund_store::StoreError> {
    let mut random = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let secret = token_secret(&random);
    let token = store
        .create_token(actor, user_id, name, &hash_token(&secret), expires_at, now)
        .await?;
    Ok((token, secret))
}
