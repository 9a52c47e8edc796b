//! Browser sessions: the cookie, the signed-in `Viewer`, and CSRF tokens.
//!
//! The session cookie holds 32 random bytes; the store keeps only their SHA-256. It is
//! `HttpOnly`, `SameSite=Lax`, and `Secure` whenever the portal runs behind HTTPS. Every
//! form carries the session's synchroniser token (`csrf`); the sign-in form, which has no
//! session yet, carries a token that must match a short-lived cookie (double submit).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use verbund_api::Caller;
use verbund_domain::account::{hash_token, Principal, User};

use crate::i18n::Lang;
use crate::WebState;

pub const SESSION_COOKIE: &str = "verbund_session";
pub const LOGIN_COOKIE: &str = "verbund_login";

/// 32 random bytes as hex.
pub fn random_secret() -> String {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex::encode(b)
}

/// The value of a cookie of the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value; `max_age` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Compares two tokens in constant time.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The signed-in person of a request. Pages that need one redirect to the sign-in page.
#[derive(Clone)]
pub struct Viewer {
    pub caller: Caller,
    pub user: User,
    pub csrf: String,
    pub lang: Lang,
}

impl Viewer {
    /// Whether a form's token is this session's.
    pub fn csrf_ok(&self, token: &str) -> bool {
        same_token(&self.csrf, token)
    }
}

/// Looks the session cookie up; `None` without a live session. An OIDC session whose
/// roles are older than `PortalConfig::oidc_roles_max_age` has them confirmed by the
/// provider first, or ends (`oidc::reconfirm`).
pub async fn viewer(parts: &Parts, state: &WebState) -> Option<Viewer> {
    let secret = cookie(&parts.headers, SESSION_COOKIE)?;
    let id_hash = hash_token(secret);
    let now = state.api.now();
    let found = state.api.store.session(&id_hash, now).await;
    let (session, user) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return None,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the session");
            return None;
        }
    };
    let user = if roles_are_stale(state, &session, now) {
        match crate::oidc::reconfirm(state, &id_hash, &session, &user, now).await {
            Ok(user) => user,
            Err(why) => {
                tracing::warn!(user = %user.spec.name, reason = %why, "the identity provider did not confirm a session: it ends");
                if let Err(e) = state.api.store.end_session(&id_hash, Some(&why), now).await {
                    tracing::error!(error = %e, "cannot end a session");
                }
                return None;
            }
        }
    } else {
        user
    };
    Some(Viewer {
        caller: Caller::new(
            Principal {
                user_id: user.id.clone(),
                user_name: user.spec.name.clone(),
                memberships: user.spec.memberships.clone(),
            },
            state.api.authz.clone(),
        ),
        user,
        csrf: session.csrf,
        lang: Lang::of(&parts.headers),
    })
}

/// Whether an OIDC session's roles must be confirmed by the provider before use.
fn roles_are_stale(
    state: &WebState,
    session: &verbund_store::Session,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    session.via == "oidc"
        && session
            .roles_checked_at
            .is_none_or(|at| now - at >= state.config.oidc_roles_max_age)
}

impl FromRequestParts<WebState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        match viewer(parts, state).await {
            Some(v) => Ok(v),
            None => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                let to = format!("/login?next={}", crate::view::url_encode(next));
                Err(Redirect::to(&to).into_response())
            }
        }
    }
}

/// A signed-in person or nobody (the sign-in page, the home redirect).
pub struct MaybeViewer(pub Option<Viewer>, pub Lang);

impl FromRequestParts<WebState> for MaybeViewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        Ok(MaybeViewer(
            viewer(parts, state).await,
            Lang::of(&parts.headers),
        ))
    }
}

/// A path to return to after sign-in: only local paths, never another site. Browsers
/// drop tabs and line breaks inside URLs (so `/\t/evil.example` is `//evil.example` to
/// them), so no control character or whitespace passes either.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            p.into()
        }
        _ => "/".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_tokens_and_return_paths() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; verbund_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        assert!(same_token("abc", "abc") && !same_token("abc", "abd") && !same_token("a", "ab"));
        assert_eq!(local_path(Some("/fleet?x=1")), "/fleet?x=1");
        assert_eq!(local_path(Some("//evil.example")), "/");
        assert_eq!(local_path(Some("https://evil.example")), "/");
        assert_eq!(local_path(None), "/");
        assert_eq!(local_path(Some("/\t/evil.example")), "/");
        assert_eq!(local_path(Some("/fleet\r\nSet-Cookie: x=1")), "/");
        assert!(set_cookie("s", "v", 10, true).ends_with("; Secure"));
    }
}
