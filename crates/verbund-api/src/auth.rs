//! Authentication by bearer token and the authorization gate every handler passes.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use rand::RngCore;
use verbund_domain::account::{hash_token, token_secret, Principal, Role, Token};
use verbund_policy::authz::{Act, Target, Verdict};
use verbund_store::{OrganisationScope, Store};

use crate::problem::ApiError;
use crate::AppState;

/// The authenticated caller of a request, with the role policies that judge it.
#[derive(Clone)]
pub struct Caller(pub Principal, std::sync::Arc<verbund_policy::authz::Authz>);

impl Caller {
    /// A caller authenticated some other way (the portal's session), judged by the same
    /// role policies as every API request.
    pub fn new(principal: Principal, authz: std::sync::Arc<verbund_policy::authz::Authz>) -> Self {
        Caller(principal, authz)
    }

    /// Whether the caller may `act` on `target` (no logging; for filtering lists).
    pub fn may(&self, act: Act, target: &Target) -> bool {
        self.1.decide(&self.0, act, target).is_allowed()
    }

    /// Whether the caller may `act` on each of `targets`, in order: the decisions `may`
    /// takes, in one evaluation for a whole page (for filtering lists).
    pub fn may_each(&self, act: Act, targets: &[Target]) -> Vec<bool> {
        self.1
            .decide_each(&self.0, act, targets)
            .iter()
            .map(Verdict::is_allowed)
            .collect()
    }

    /// [`Caller::may_each`] for a list that asked [`Caller::may_every`] already and was
    /// told no: each target judged on its own, without asking that again.
    pub fn may_each_judged(&self, act: Act, targets: &[Target]) -> Vec<bool> {
        self.1
            .judge_each(&self.0, act, targets)
            .iter()
            .map(Verdict::is_allowed)
            .collect()
    }

    /// The organisations the caller acts for as an org-admin or org-member: each alone,
    /// or with a delegated role with everything below it.
    pub fn acting_for(&self) -> OrganisationScope {
        let mut scope = OrganisationScope::default();
        for m in &self.0.memberships {
            if let (Role::OrgAdmin | Role::OrgMember, Some(o)) = (m.role, &m.organisation) {
                if m.delegated {
                    scope.with_descendants.push(o.clone());
                } else {
                    scope.alone.push(o.clone());
                }
            }
        }
        scope
    }

    /// Whether the caller may `act` on anything of any kind, whatever it is (a
    /// federation administrator reading): then a list need not build a target per item.
    pub fn may_every(&self, act: Act) -> bool {
        self.1.allows_every(&self.0, act)
    }

    /// Keeps the items the caller may `act` on, each judged as `target` describes it,
    /// in one evaluation for the whole list.
    pub fn retain_allowed<T>(&self, act: Act, items: &mut Vec<T>, target: impl Fn(&T) -> Target) {
        let targets: Vec<Target> = items.iter().map(target).collect();
        let mut allowed = self.may_each(act, &targets).into_iter();
        items.retain(|_| allowed.next().unwrap_or(false));
    }

    /// Passes if the caller may `act` on `target`; otherwise logs and refuses with 403.
    pub fn require(&self, act: Act, target: &Target) -> Result<(), ApiError> {
        match self.1.decide(&self.0, act, target) {
            Verdict::Allow => Ok(()),
            Verdict::Deny(reason) => {
                tracing::warn!(user = %self.0.user_name, act = ?act, kind = target.kind, %reason, "request refused");
                Err(ApiError::Forbidden(reason))
            }
        }
    }

    /// Like `require`, but refuses with 404: for objects whose existence is secret.
    pub fn require_or_hide(&self, act: Act, target: &Target, what: &str) -> Result<(), ApiError> {
        self.require(act, target)
            .map_err(|_| ApiError::NotFound(format!("{what} not found")))
    }

    pub fn actor(&self) -> String {
        self.0.actor()
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret = bearer(parts)?;
        match state
            .store
            .authenticate(&hash_token(secret), state.now())
            .await?
        {
            Some((_, user)) => Ok(Caller(
                Principal {
                    user_id: user.id,
                    user_name: user.spec.name,
                    memberships: user.spec.memberships,
                },
                state.authz.clone(),
            )),
            None => {
                tracing::warn!(
                    "request with an unknown, expired or revoked token, or of a disabled account"
                );
                Err(ApiError::Unauthenticated(
                    "the token is unknown, expired or revoked, or its account is disabled".into(),
                ))
            }
        }
    }
}

/// The secret of an `Authorization: Bearer <secret>` header.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthenticated("send an API token as `Authorization: Bearer <token>`".into())
        })?
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("the Authorization header is not text".into()))?;
    // The scheme is case-insensitive (RFC 9110, section 11.1).
    header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, secret)| secret.trim())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthenticated("the Authorization header must be `Bearer <token>`".into())
        })
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

/// The credential of a site's agent, which may do exactly one thing: report for its site.
///
/// Site tokens live apart from user tokens, so a site token opens no other endpoint
/// (the `Caller` extractor does not know it) and a user token cannot report.
#[derive(Clone)]
pub struct SiteCaller(pub verbund_domain::account::SiteToken);

impl FromRequestParts<AppState> for SiteCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret = bearer(parts)?;
        match state
            .store
            .authenticate_site(&hash_token(secret), state.now())
            .await?
        {
            Some(token) => Ok(SiteCaller(token)),
            None => {
                tracing::warn!(path = %parts.uri.path(), "site report with an unknown, expired or revoked site token");
                state.metrics.report_refused("unauthenticated");
                Err(ApiError::Unauthenticated(
                    "the site token is unknown, expired or revoked (site reports need a site token, not a user token)".into(),
                ))
            }
        }
    }
}

/// Creates a credential for `site` and returns it with its secret, shown only once.
pub async fn issue_site_token(
    store: &Store,
    actor: &str,
    site: &str,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(verbund_domain::account::SiteToken, String), verbund_store::StoreError> {
    let mut random = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let secret = format!("vbs_{}", hex::encode(random));
    let token = store
        .create_site_token(actor, site, name, &hash_token(&secret), expires_at, now)
        .await?;
    Ok((token, secret))
}
