//! Sign-in with a local account, and sign-out.
//!
//! A wrong name and a wrong password get the same answer after the same work (an Argon2
//! verification against a decoy hash), so the form reveals no user names. Every failure
//! for a known user counts; `LockPolicy::max_failures` in a row lock the account for
//! `LockPolicy::lock_for`, audited, and while it is locked no password is even checked.

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

/// `POST /login`.
pub async fn submit(
    State(state): State<WebState>,
    MaybeViewer(_, lang): MaybeViewer,
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
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|c| same_token(c, &f.csrf)) {
        return again(StatusCode::FORBIDDEN, t.login_expired.into());
    }
    let now = state.api.now();
    let store = &state.api.store;
    let found = match store.credential(&name).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "cannot read credentials");
            return again(
                StatusCode::INTERNAL_SERVER_ERROR,
                t.error_internal_detail.into(),
            );
        }
    };
    if let Some((_, Some(c))) = &found {
        if c.is_locked(now) {
            tracing::warn!(user = %name, "sign-in to a locked account");
            let until = c
                .locked_until
                .map(|u| local_time(u, lang))
                .unwrap_or_default();
            return again(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{} {until}.", t.login_locked),
            );
        }
    }
    let hash = found
        .as_ref()
        .and_then(|(_, c)| c.as_ref())
        .and_then(|c| c.password_hash.clone())
        .unwrap_or_else(|| password::decoy().to_string());
    let password = f.password;
    let ok = tokio::task::spawn_blocking(move || password::verify(&password, &hash))
        .await
        .unwrap_or(false);
    match (found, ok) {
        (Some((user, Some(c))), true) if c.password_hash.is_some() => {
            open(&state, &user, "password", &next).await
        }
        (Some((user, Some(_))), _) => {
            tracing::warn!(user = %name, "failed sign-in");
            match store.login_failed(&user, state.config.lock, now).await {
                Ok(c) if c.is_locked(now) => {
                    let until = c
                        .locked_until
                        .map(|u| local_time(u, lang))
                        .unwrap_or_default();
                    again(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("{} {until}.", t.login_locked),
                    )
                }
                Ok(_) => again(StatusCode::UNAUTHORIZED, t.login_failed.into()),
                Err(e) => {
                    tracing::error!(error = %e, "cannot count a failed sign-in");
                    again(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        t.error_internal_detail.into(),
                    )
                }
            }
        }
        _ => {
            tracing::warn!(user = %name, "sign-in for an unknown user or one without a password");
            again(StatusCode::UNAUTHORIZED, t.login_failed.into())
        }
    }
}

/// Opens a session for `user` and sends the browser on to `next` with its cookie.
pub async fn open(state: &WebState, user: &User, via: &str, next: &str) -> Response {
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
