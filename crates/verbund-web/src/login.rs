//! Sign-in with a local account, and sign-out.
//!
//! A wrong name and a wrong password get the same answer after the same work (an Argon2
//! verification against a decoy hash), so the form reveals no user names.
//!
//! Throttling, as Keycloak's brute-force detection does it but scoped to the source:
//! before any password is evaluated, the attempt is reserved atomically in the store
//! under two keys, the source (the client's address: `LockPolicy::max_failures_per_source`
//! failures over all accounts per `lock_for`) and the account from that source
//! (`LockPolicy::max_failures`, then locked for `lock_for`, audited). Parallel attempts
//! cannot pass a limit: each one takes its place in the count first. An account-wide
//! lock would let anyone keep `admin` locked out for good by failing five times every
//! quarter of an hour; here an attacker locks the account only for the addresses it
//! attacks from, while the owner's correct password from elsewhere still passes, and a
//! lock lasts at most `lock_for` after the last failure. Guessing from many addresses is
//! bounded per address, and each guess costs an Argon2 evaluation under the
//! `HashingLimit`. A disabled account is told so only after its correct password.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use verbund_domain::account::{hash_token, User};

use crate::i18n::Lang;
use crate::session::{
    cookie, local_path, random_secret, same_token, set_cookie, MaybeViewer, LOGIN_COOKIE,
    SESSION_COOKIE,
};
use crate::view::{local_time, render, url_encode, Chrome};
use crate::WebState;
use verbund_api::password;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: Chrome,
    error: Option<String>,
    login_csrf: String,
    next: String,
    next_encoded: String,
    name: String,
    oidc: bool,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn page(
    state: &WebState,
    lang: Lang,
    status: StatusCode,
    token: String,
    next: &str,
    name: &str,
    error: Option<String>,
) -> Response {
    let t = lang.texts();
    let mut resp = render(
        status,
        &LoginPage {
            c: Chrome::public(
                lang,
                t.sign_in,
                "login",
                &format!("/login?next={}", url_encode(next)),
            ),
            error,
            login_csrf: token.clone(),
            next: next.into(),
            next_encoded: url_encode(next),
            name: name.into(),
            oidc: state.config.oidc.is_some(),
        },
    );
    if let Ok(v) = set_cookie(LOGIN_COOKIE, &token, 3600, state.config.secure_cookies).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// `GET /login`: the form (or straight on, when signed in already).
pub async fn form(
    State(state): State<WebState>,
    MaybeViewer(v, lang): MaybeViewer,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = local_path(q.next.as_deref());
    if v.is_some() {
        return Redirect::to(&next).into_response();
    }
    let token = cookie(&headers, LOGIN_COOKIE)
        .filter(|t| t.len() == 64)
        .map_or_else(random_secret, str::to_string);
    page(&state, lang, StatusCode::OK, token, &next, "", None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

/// The address a request comes from: the last `X-Forwarded-For` entry when the portal
/// runs behind a reverse proxy that appends it (`PortalConfig::trust_forwarded_for`),
/// otherwise the peer of the connection; `unknown` without either.
pub struct ClientAddress(pub String);

impl axum::extract::FromRequestParts<WebState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        let forwarded = state
            .config
            .trust_forwarded_for
            .then(|| parts.headers.get_all("x-forwarded-for").iter().next_back())
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Ok(ClientAddress(
            forwarded
                .map(str::to_string)
                .or(peer)
                .unwrap_or_else(|| "unknown".into()),
        ))
    }
}

/// `POST /login`.
pub async fn submit(
    State(state): State<WebState>,
    MaybeViewer(_, lang): MaybeViewer,
    ClientAddress(source): ClientAddress,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let t = lang.texts();
    let next = local_path(f.next.as_deref());
    let name = f.name.trim().to_lowercase();
    let again = |status, error: String| {
        page(
            &state,
            lang,
            status,
            random_secret(),
            &next,
            &name,
            Some(error),
        )
    };
    let internal = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "sign-in failed on our side");
        again(
            StatusCode::INTERNAL_SERVER_ERROR,
            t.error_internal_detail.into(),
        )
    };
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|c| same_token(c, &f.csrf)) {
        return again(StatusCode::FORBIDDEN, t.login_expired.into());
    }
    let now = state.api.now();
    let store = &state.api.store;
    let policy = state.config.lock;
    let keys = Keys {
        source: password::source_key(&source),
        account: password::attempt_key(&name, &source),
    };
    match reserve(store, &keys, policy, now).await {
        Ok(Reserved::Both) => {}
        Ok(Reserved::SourceRefused(until)) => {
            tracing::warn!(user = %name, %source, "sign-in from a throttled source");
            let until = local_time(until, lang);
            return again(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{} {until}.", t.login_source_throttled),
            );
        }
        Ok(Reserved::AccountRefused(until)) => {
            tracing::warn!(user = %name, %source, "sign-in to an account locked for this source");
            let until = local_time(until, lang);
            return again(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{} {until}.", t.login_locked),
            );
        }
        Err(e) => return internal(&e),
    }
    let found = match store.credential(&name).await {
        Ok(f) => f,
        Err(e) => return internal(&e),
    };
    let hash = found
        .as_ref()
        .and_then(|(_, c)| c.as_ref())
        .and_then(|c| c.password_hash.clone())
        .unwrap_or_else(|| password::decoy().to_string());
    let password = f.password;
    let ok = match state
        .api
        .hashing
        .run(move || password::verify(&password, &hash))
        .await
    {
        Ok(ok) => ok,
        Err(e) => {
            // Nothing was evaluated: the attempt does not count.
            if let Err(e) = refund(store, &keys, policy).await {
                tracing::error!(error = %e, "cannot give a sign-in attempt back");
            }
            tracing::warn!(error = %e, "sign-in refused: the password checks are at their limit");
            let mut resp = again(StatusCode::SERVICE_UNAVAILABLE, t.busy.into());
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(password::RETRY_AFTER_SECONDS),
            );
            return resp;
        }
    };
    match (found, ok) {
        (Some((user, Some(c))), true) if c.password_hash.is_some() => {
            if let Err(e) = succeeded(store, &keys, policy).await {
                return internal(&e);
            }
            if user.disabled_at.is_some() {
                tracing::warn!(user = %name, "sign-in to a disabled account");
                return again(StatusCode::FORBIDDEN, t.login_disabled.into());
            }
            open(&state, &user, "password", None, &next).await
        }
        (found, _) => {
            tracing::warn!(user = %name, %source, "failed sign-in");
            let user = found.map(|(u, _)| u);
            match store
                .login_failed(user.as_ref(), &keys.account, policy, now)
                .await
            {
                Ok(Some(until)) => {
                    let until = local_time(until, lang);
                    again(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("{} {until}.", t.login_locked),
                    )
                }
                Ok(None) => again(StatusCode::UNAUTHORIZED, t.login_failed.into()),
                Err(e) => internal(&e),
            }
        }
    }
}

/// The two keys a sign-in attempt is counted under.
struct Keys {
    source: String,
    account: String,
}

enum Reserved {
    Both,
    SourceRefused(chrono::DateTime<chrono::Utc>),
    AccountRefused(chrono::DateTime<chrono::Utc>),
}

/// Reserves the attempt under the source's key, then the account's; an attempt refused
/// by the second gives the first back (it evaluates nothing).
async fn reserve(
    store: &verbund_store::Store,
    keys: &Keys,
    policy: verbund_store::LockPolicy,
    now: chrono::DateTime<chrono::Utc>,
) -> verbund_store::Result<Reserved> {
    use verbund_store::Attempt;
    if let Attempt::Refused { until } = store
        .reserve_sign_in(
            &keys.source,
            policy.max_failures_per_source,
            policy.lock_for,
            now,
        )
        .await?
    {
        return Ok(Reserved::SourceRefused(until));
    }
    match store
        .reserve_sign_in(&keys.account, policy.max_failures, policy.lock_for, now)
        .await?
    {
        Attempt::Allowed => Ok(Reserved::Both),
        Attempt::Refused { until } => {
            store
                .refund_sign_in(&keys.source, policy.max_failures_per_source)
                .await?;
            Ok(Reserved::AccountRefused(until))
        }
    }
}

/// Gives both reserved attempts back (nothing was evaluated).
async fn refund(
    store: &verbund_store::Store,
    keys: &Keys,
    policy: verbund_store::LockPolicy,
) -> verbund_store::Result<()> {
    store
        .refund_sign_in(&keys.source, policy.max_failures_per_source)
        .await?;
    store
        .refund_sign_in(&keys.account, policy.max_failures)
        .await
}

/// A correct password: the source's attempt is given back and the account's failures
/// from this source are forgotten.
async fn succeeded(
    store: &verbund_store::Store,
    keys: &Keys,
    policy: verbund_store::LockPolicy,
) -> verbund_store::Result<()> {
    store
        .refund_sign_in(&keys.source, policy.max_failures_per_source)
        .await?;
    store.forget_sign_in(&keys.account).await
}

/// Opens a session for `user` and sends the browser on to `next` with its cookie.
pub async fn open(
    state: &WebState,
    user: &User,
    via: &str,
    refresh_token: Option<&str>,
    next: &str,
) -> Response {
    let secret = random_secret();
    let now = state.api.now();
    let hours = state.config.session_hours;
    let expires = now + chrono::Duration::hours(hours);
    match state
        .api
        .store
        .open_session(
            user,
            &hash_token(&secret),
            &random_secret(),
            via,
            refresh_token,
            expires,
            now,
        )
        .await
    {
        Ok(_) => {
            let mut resp = Redirect::to(next).into_response();
            let h = resp.headers_mut();
            let secure = state.config.secure_cookies;
            for c in [
                set_cookie(SESSION_COOKIE, &secret, hours * 3600, secure),
                set_cookie(LOGIN_COOKIE, "", 0, secure),
            ] {
                if let Ok(v) = c.parse() {
                    h.append(header::SET_COOKIE, v);
                }
            }
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot open a session");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot sign in now").into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

/// `POST /logout`: ends the session (a forged post without its token does nothing).
pub async fn logout(
    State(state): State<WebState>,
    MaybeViewer(v, _): MaybeViewer,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> Response {
    if let (Some(v), Some(secret)) = (v, cookie(&headers, SESSION_COOKIE)) {
        if !v.csrf_ok(&f.csrf) {
            return (
                StatusCode::FORBIDDEN,
                "the form has expired; reload the page",
            )
                .into_response();
        }
        if let Err(e) = state
            .api
            .store
            .close_session(&hash_token(secret), state.api.now())
            .await
        {
            tracing::error!(error = %e, "cannot end a session");
        }
    }
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) = set_cookie(SESSION_COOKIE, "", 0, state.config.secure_cookies).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}
