//! Sign-in through an OpenID Connect provider (Keycloak, as the administrations run it),
//! with the roles taken from the ID token's groups at every sign-in.
//!
//! The flow is the authorization code flow with PKCE (S256): `start` keeps state, nonce
//! and the code verifier in a short-lived cookie and sends the browser to the provider;
//! `callback` checks the state, exchanges the code (client_secret_basic), verifies the
//! ID token (RS256 against the provider's JWKS, issuer, audience, expiry, nonce) and maps
//! its `groups` to verbund roles (`grants`, pure). A token that grants no role is
//! refused before any user is created; an identity is linked to its user by issuer and
//! subject only, never to a local account by name.
//!
//! Roles are not only read at sign-in: a session keeps the provider's refresh token, and
//! once its roles are older than `PortalConfig::oidc_roles_max_age` (5 minutes unless
//! configured) the next request asks the provider again (`reconfirm`: refresh grant, a
//! verified ID token of the same subject, its groups mapped as at sign-in). Roles the
//! provider took away are gone from then on; when the provider refuses the refresh (the
//! person was disabled or signed out there), cannot be reached, gave no refresh token,
//! or the groups grant no role any more, the session ends. Roles are therefore at most
//! that old, plus one request.

use std::sync::RwLock;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use verbund_domain::account::{Membership, Role, User, UserSpec};
use verbund_store::{Store, StoreError};

use crate::i18n::Lang;
use crate::session::{cookie, local_path, random_secret, same_token, set_cookie};
use crate::view::Chrome;
use crate::WebState;

/// The cookie that carries state, nonce, code verifier and return path to the callback.
pub const OIDC_COOKIE: &str = "verbund_oidc";
/// How long a started sign-in may take at the provider, in seconds.
const FLOW_SECONDS: i64 = 600;
/// Who signs users created and roles changed by OIDC sign-ins in the audit trail.
pub const ACTOR: &str = "system/oidc";
/// Tolerated clock difference to the provider when checking `exp`, in seconds.
const LEEWAY_SECONDS: i64 = 60;

/// What can go wrong talking to the provider or checking what it sent.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached or answered with an error status.
    #[error("cannot reach the identity provider at `{url}`: {reason}")]
    Unreachable { url: String, reason: String },
    /// The provider's answer is not what the protocol says it must be.
    #[error("the identity provider's answer from `{url}` is unusable: {reason}")]
    BadAnswer { url: String, reason: String },
    /// The discovery document names another issuer than the one configured.
    #[error("the identity provider calls itself `{found}`, not `{expected}`")]
    IssuerMismatch { expected: String, found: String },
    /// The token endpoint refused the code (expired, used, or the client is wrong).
    #[error("the identity provider refused the code: {0}")]
    CodeRefused(String),
    /// The ID token failed a check (signature, issuer, audience, expiry, nonce).
    #[error("the ID token is not valid: {0}")]
    InvalidToken(String),
}

pub type Result<T, E = OidcError> = std::result::Result<T, E>;

/// A discovered OpenID Connect provider and this portal's client registration at it.
pub struct Oidc {
    pub issuer: String,
    pub client_id: String,
    client_secret: String,
    /// `<public url>/oidc/callback`, registered at the provider.
    pub redirect_url: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// The group path under which verbund's groups live (`/verbund`).
    pub group_prefix: String,
    keys: RwLock<Vec<Jwk>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("redirect_url", &self.redirect_url)
            .field("group_prefix", &self.group_prefix)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

impl Oidc {
    /// Reads `<issuer>/.well-known/openid-configuration` and the provider's keys.
    pub async fn discover(
        issuer: &str,
        client_id: &str,
        client_secret: &str,
        redirect_url: &str,
    ) -> Result<Oidc> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| OidcError::Unreachable {
                url: issuer.into(),
                reason: e.to_string(),
            })?;
        let issuer = issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let d: Discovery = get_json(&http, &url).await?;
        if d.issuer.trim_end_matches('/') != issuer {
            return Err(OidcError::IssuerMismatch {
                expected: issuer.into(),
                found: d.issuer,
            });
        }
        let oidc = Oidc {
            issuer: d.issuer,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_url: redirect_url.into(),
            authorization_endpoint: d.authorization_endpoint,
            token_endpoint: d.token_endpoint,
            jwks_uri: d.jwks_uri,
            group_prefix: "/verbund".into(),
            keys: RwLock::new(Vec::new()),
            http,
        };
        oidc.refresh_keys().await?;
        Ok(oidc)
    }

    /// Sets the group path under which verbund's groups live (default `/verbund`).
    pub fn with_group_prefix(mut self, prefix: &str) -> Self {
        self.group_prefix = format!("/{}", prefix.trim_matches('/'));
        self
    }

    /// Fetches the provider's JWKS; keys this crate cannot use (other types) are skipped.
    async fn refresh_keys(&self) -> Result<()> {
        #[derive(Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let set: Set = get_json(&self.http, &self.jwks_uri).await?;
        let keys: Vec<Jwk> = set
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value(k).ok())
            .collect();
        tracing::info!(issuer = %self.issuer, keys = keys.len(), "read the identity provider's keys");
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(())
    }

    fn key(&self, kid: &str) -> Option<Jwk> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .cloned()
    }

    /// Where to send the browser to sign in.
    fn authorization_url(&self, flow: &Flow) -> Result<reqwest::Url> {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(flow.verifier.as_bytes()));
        reqwest::Url::parse_with_params(
            &self.authorization_endpoint,
            [
                ("response_type", "code"),
                ("scope", "openid profile email"),
                ("client_id", &self.client_id),
                ("redirect_uri", &self.redirect_url),
                ("state", &flow.state),
                ("nonce", &flow.nonce),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .map_err(|e| OidcError::BadAnswer {
            url: self.authorization_endpoint.clone(),
            reason: e.to_string(),
        })
    }

    /// Exchanges an authorization code for the ID token and the refresh token, if the
    /// provider gives one (client_secret_basic + PKCE).
    async fn exchange(&self, code: &str, verifier: &str) -> Result<Tokens> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.redirect_url),
            ("code_verifier", verifier),
        ])
        .await
    }

    /// Asks the provider again with a refresh token: a fresh ID token (with the groups as
    /// they are now) and the refresh token to use next time.
    async fn refresh(&self, refresh_token: &str) -> Result<Tokens> {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<Tokens> {
        #[derive(Deserialize)]
        struct TokenError {
            error: String,
            error_description: Option<String>,
        }
        let url = &self.token_endpoint;
        let resp = self
            .http
            .post(url)
            .basic_auth(
                form_encode(&self.client_id),
                Some(form_encode(&self.client_secret)),
            )
            .form(form)
            .send()
            .await
            .map_err(|e| unreachable(url, cause(&e)))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| unreachable(url, cause(&e)))?;
        if !status.is_success() {
            let why = serde_json::from_slice::<TokenError>(&body).map_or_else(
                |_| format!("status {status}"),
                |r| match r.error_description {
                    Some(d) => format!("{} ({d})", r.error),
                    None => r.error,
                },
            );
            return Err(OidcError::CodeRefused(why));
        }
        let tokens: Tokens = serde_json::from_slice(&body).map_err(|e| bad(url, e))?;
        if tokens.id_token.is_empty() {
            return Err(bad(url, "the answer carries no `id_token`"));
        }
        Ok(tokens)
    }

    /// Verifies an ID token: RS256 signature by one of the provider's keys (read again
    /// once when the token names an unknown key), issuer, audience, authorised party,
    /// expiry at `now`, and the nonce of this sign-in (none for a refreshed token, which
    /// OpenID Connect Core 12.2 does not bind to the sign-in's nonce).
    async fn verify(&self, token: &str, nonce: Option<&str>, now: DateTime<Utc>) -> Result<Claims> {
        let invalid = |why: &str| OidcError::InvalidToken(why.into());
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(&e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(invalid(&format!(
                "it is signed with {:?}, not RS256",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| invalid("it names no key (`kid`)"))?;
        let jwk = match self.key(&kid) {
            Some(k) => k,
            None => {
                self.refresh_keys().await?;
                self.key(&kid)
                    .ok_or_else(|| invalid(&format!("the provider has no key `{kid}`")))?
            }
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| invalid(&e.to_string()))?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.client_id]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked below against the portal's clock, not the system's.
        v.validate_exp = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &v)
            .map_err(|e| invalid(&e.to_string()))?
            .claims;
        if claims.exp + LEEWAY_SECONDS <= now.timestamp() {
            return Err(invalid("it has expired"));
        }
        if claims.aud.as_array().is_some_and(|a| a.len() > 1)
            && claims.azp.as_deref() != Some(self.client_id.as_str())
        {
            return Err(invalid("it was issued to another client (`azp`)"));
        }
        let nonce_differs = |n: &&str| !claims.nonce.as_deref().is_some_and(|c| same_token(c, n));
        if nonce.filter(nonce_differs).is_some() {
            return Err(invalid("its nonce is not this sign-in's"));
        }
        Ok(claims)
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> Result<T> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| unreachable(url, cause(&e)))?;
    if !resp.status().is_success() {
        return Err(unreachable(url, format!("status {}", resp.status())));
    }
    resp.json().await.map_err(|e| bad(url, cause(&e)))
}

fn unreachable(url: &str, reason: impl ToString) -> OidcError {
    OidcError::Unreachable {
        url: url.into(),
        reason: reason.to_string(),
    }
}

/// A reqwest error with its causes (reqwest's own message leaves out "connection refused").
fn cause(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn bad(url: &str, reason: impl ToString) -> OidcError {
    OidcError::BadAnswer {
        url: url.into(),
        reason: reason.to_string(),
    }
}

/// `application/x-www-form-urlencoded` for the client credentials (RFC 6749, 2.3.1).
fn form_encode(s: &str) -> String {
    crate::view::url_encode(s).replace('/', "%2F")
}

/// What the token endpoint answers (the parts verbund reads).
#[derive(Deserialize)]
struct Tokens {
    #[serde(default)]
    id_token: String,
    refresh_token: Option<String>,
}

/// The claims of an ID token that verbund reads.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    /// One audience or a list of them (checked by `jsonwebtoken`; counted for `azp`).
    aud: serde_json::Value,
    azp: Option<String>,
    nonce: Option<String>,
    preferred_username: Option<String>,
    name: Option<String>,
    email: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

/// A started sign-in, as kept in the cookie between `start` and `callback`.
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
}

impl Flow {
    fn cookie_value(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.state,
            self.nonce,
            self.verifier,
            hex::encode(&self.next)
        )
    }

    fn from_cookie(v: &str) -> Option<Flow> {
        let mut parts = v.split('.');
        let (state, nonce, verifier, next) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let next = String::from_utf8(hex::decode(next).ok()?).ok()?;
        Some(Flow {
            state: state.into(),
            nonce: nonce.into(),
            verifier: verifier.into(),
            next: local_path(Some(&next)),
        })
    }
}

#[derive(Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

/// `GET /oidc/login?next=/path`: sends the browser to the identity provider.
pub async fn start(State(state): State<WebState>, Query(q): Query<StartQuery>) -> Response {
    let Some(oidc) = state.config.oidc.as_ref() else {
        return not_configured();
    };
    let flow = Flow {
        state: random_secret(),
        nonce: random_secret(),
        verifier: random_secret(),
        next: local_path(q.next.as_deref()),
    };
    match oidc.authorization_url(&flow) {
        Ok(url) => {
            let mut resp = Redirect::to(url.as_str()).into_response();
            let c = set_cookie(
                OIDC_COOKIE,
                &flow.cookie_value(),
                FLOW_SECONDS,
                state.config.secure_cookies,
            );
            if let Ok(v) = c.parse() {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot build the authorization URL");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot start the sign-in now",
            )
                .into_response()
        }
    }
}

fn not_configured() -> Response {
    (
        StatusCode::NOT_FOUND,
        "sign-in through an identity provider is not configured",
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Why a sign-in through the provider was refused, as the person is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No or another sign-in's cookie: expired, or started in another browser.
    Expired,
    /// The provider said no, or refused the code.
    ProviderRefused,
    /// The provider could not be reached.
    ProviderUnreachable,
    /// The ID token failed a check.
    InvalidToken,
    /// The groups grant no role.
    NoRole,
    /// The account is disabled in verbund.
    Disabled,
    /// The store failed.
    Internal,
}

impl Refusal {
    fn status(self) -> StatusCode {
        match self {
            Refusal::Expired => StatusCode::BAD_REQUEST,
            Refusal::ProviderRefused | Refusal::InvalidToken => StatusCode::UNAUTHORIZED,
            Refusal::NoRole | Refusal::Disabled => StatusCode::FORBIDDEN,
            Refusal::ProviderUnreachable => StatusCode::BAD_GATEWAY,
            Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn detail(self, lang: Lang) -> &'static str {
        let de = lang == Lang::De;
        match self {
            Refusal::Expired if de => "Die Anmeldung ist abgelaufen oder wurde in einem anderen Browser begonnen. Bitte melden Sie sich erneut an.",
            Refusal::Expired => "The sign-in has expired or was started in another browser. Please sign in again.",
            Refusal::ProviderRefused if de => "Der Identitätsdienst hat die Anmeldung abgelehnt.",
            Refusal::ProviderRefused => "The identity service refused the sign-in.",
            Refusal::ProviderUnreachable if de => "Der Identitätsdienst ist gerade nicht erreichbar. Bitte versuchen Sie es später erneut.",
            Refusal::ProviderUnreachable => "The identity service cannot be reached now. Please try again later.",
            Refusal::InvalidToken if de => "Der Identitätsdienst hat eine ungültige Anmeldung geschickt.",
            Refusal::InvalidToken => "The identity service sent a sign-in that is not valid.",
            Refusal::NoRole if de => "Ihr Konto hat keine Rolle in verbund. Bitte wenden Sie sich an Ihre Administration.",
            Refusal::NoRole => "Your account holds no role in verbund. Please ask your administration for one.",
            Refusal::Disabled => lang.texts().login_disabled,
            Refusal::Internal => lang.texts().error_internal_detail,
        }
    }
}

impl From<&OidcError> for Refusal {
    fn from(e: &OidcError) -> Self {
        match e {
            OidcError::Unreachable { .. } | OidcError::BadAnswer { .. } => {
                Refusal::ProviderUnreachable
            }
            OidcError::IssuerMismatch { .. } | OidcError::InvalidToken(_) => Refusal::InvalidToken,
            OidcError::CodeRefused(_) => Refusal::ProviderRefused,
        }
    }
}

/// The error page for a refused sign-in; it also forgets the started sign-in.
fn refused(state: &WebState, lang: Lang, why: Refusal) -> Response {
    let heading = match lang {
        Lang::De => "Anmeldung fehlgeschlagen",
        Lang::En => "Sign-in failed",
    };
    let mut resp = crate::error::page(
        why.status(),
        Chrome::public(lang, heading, "login", "/login"),
        heading,
        why.detail(lang),
        "/login",
    );
    forget_flow(state, &mut resp);
    resp
}

fn forget_flow(state: &WebState, resp: &mut Response) {
    if let Ok(v) = set_cookie(OIDC_COOKIE, "", 0, state.config.secure_cookies).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// `GET /oidc/callback?code&state` (or `?error=`): finishes the sign-in.
pub async fn callback(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(oidc) = state.config.oidc.clone() else {
        return not_configured();
    };
    let lang = Lang::of(&headers);
    let flow = cookie(&headers, OIDC_COOKIE).and_then(Flow::from_cookie);
    let Some(flow) = flow.filter(|f| q.state.as_deref().is_some_and(|s| same_token(s, &f.state)))
    else {
        tracing::warn!("OIDC callback without this browser's sign-in state");
        return refused(&state, lang, Refusal::Expired);
    };
    if let Some(error) = &q.error {
        tracing::warn!(error = %error, description = ?q.error_description, "the identity provider refused a sign-in");
        return refused(&state, lang, Refusal::ProviderRefused);
    }
    let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
        tracing::warn!("OIDC callback without a code");
        return refused(&state, lang, Refusal::ProviderRefused);
    };
    let now = state.api.now();
    let outcome = match oidc.exchange(code, &flow.verifier).await {
        Ok(tokens) => match oidc.verify(&tokens.id_token, Some(&flow.nonce), now).await {
            Ok(c) => Ok((c, tokens.refresh_token)),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let (claims, refresh_token) = match outcome {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, issuer = %oidc.issuer, "OIDC sign-in refused");
            return refused(&state, lang, Refusal::from(&e));
        }
    };
    let store = &state.api.store;
    let (wanted, unknown) = grants(&oidc.group_prefix, &claims.groups);
    for g in &unknown {
        tracing::warn!(group = %g, subject = %claims.sub, "an OIDC group under the verbund prefix names no role");
    }
    let memberships = match resolve(store, &wanted).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "cannot resolve OIDC groups");
            return refused(&state, lang, Refusal::Internal);
        }
    };
    if memberships.is_empty() {
        tracing::warn!(subject = %claims.sub, groups = ?claims.groups, "OIDC sign-in refused: the groups grant no role");
        return refused(&state, lang, Refusal::NoRole);
    }
    match user_for(store, &oidc.issuer, &claims, &memberships, now).await {
        Ok(user) if user.disabled_at.is_some() => {
            tracing::warn!(subject = %claims.sub, user = %user.spec.name, "OIDC sign-in to a disabled account");
            refused(&state, lang, Refusal::Disabled)
        }
        Ok(user) => {
            let mut resp =
                crate::login::open(&state, &user, "oidc", refresh_token.as_deref(), &flow.next)
                    .await;
            forget_flow(&state, &mut resp);
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, subject = %claims.sub, "cannot record an OIDC user");
            refused(&state, lang, Refusal::Internal)
        }
    }
}

/// Asks the provider again for the roles of an OIDC session (see the module's doc):
/// answers the user with its roles as the provider grants them now, or why the session
/// must end.
pub async fn reconfirm(
    state: &WebState,
    id_hash: &str,
    session: &verbund_store::Session,
    user: &User,
    now: DateTime<Utc>,
) -> std::result::Result<User, String> {
    let oidc = state
        .config
        .oidc
        .as_ref()
        .ok_or("no identity provider is configured any more")?;
    let refresh_token = session
        .refresh_token
        .as_deref()
        .ok_or("the identity provider gave no refresh token")?;
    let tokens = oidc
        .refresh(refresh_token)
        .await
        .map_err(|e| e.to_string())?;
    let claims = oidc
        .verify(&tokens.id_token, None, now)
        .await
        .map_err(|e| e.to_string())?;
    let store = &state.api.store;
    let linked = store
        .oidc_user(&oidc.issuer, &claims.sub)
        .await
        .map_err(|e| e.to_string())?;
    if linked.as_ref().map(|u| u.id.as_str()) != Some(user.id.as_str()) {
        return Err("the identity provider answered for another person".into());
    }
    let (wanted, _) = grants(&oidc.group_prefix, &claims.groups);
    let memberships = resolve(store, &wanted).await.map_err(|e| e.to_string())?;
    if memberships.is_empty() {
        return Err("the groups grant no role any more".into());
    }
    let user = store
        .set_memberships(ACTOR, user, &memberships, now)
        .await
        .map_err(|e| e.to_string())?;
    let next = tokens.refresh_token.as_deref().unwrap_or(refresh_token);
    store
        .session_roles_confirmed(id_hash, Some(next), now)
        .await
        .map_err(|e| e.to_string())?;
    Ok(user)
}

/// The user linked to this identity with the roles its groups grant now, or a new user.
async fn user_for(
    store: &Store,
    issuer: &str,
    claims: &Claims,
    memberships: &[Membership],
    now: DateTime<Utc>,
) -> Result<User, StoreError> {
    if let Some(user) = store.oidc_user(issuer, &claims.sub).await? {
        return store.set_memberships(ACTOR, &user, memberships, now).await;
    }
    let (base, suffixed) = user_names(issuer, &claims.sub, claims.preferred_username.as_deref());
    let name = match store.get_user_by_name(&base).await? {
        None => base,
        Some(_) => suffixed,
    };
    let spec = UserSpec {
        display_name: claims
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| name.clone()),
        email: claims.email.clone().filter(|e| e.contains('@')),
        memberships: memberships.to_vec(),
        name,
    };
    store
        .create_oidc_user(ACTOR, issuer, &claims.sub, &spec, now)
        .await
}

/// The login name for a new user and the one to take when it is taken: the provider's
/// `preferred_username` reduced to `a-z0-9.-_@`, and the same with
/// `-<first 8 hex of sha256(issuer + subject)>`.
fn user_names(issuer: &str, subject: &str, preferred: Option<&str>) -> (String, String) {
    let tag: String = hex::encode(Sha256::digest(format!("{issuer}{subject}")))
        .chars()
        .take(8)
        .collect();
    let mut base: String = preferred
        .unwrap_or_default()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-@".contains(*c))
        .take(90)
        .collect();
    if base.is_empty() {
        base = "oidc".into();
    }
    let suffixed = format!("{base}-{tag}");
    (base, suffixed)
}

/// A role a group asks for, before its organisation or provider is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// `federation-admin` or `auditor`.
    Federation(Role),
    /// `provider/<name>/provider-operator`.
    Provider { name: String, role: Role },
    /// `organisation/<ARS, AGS or id>/<org-admin | org-member | vendor>`.
    Organisation { key: String, role: Role },
}

/// The roles the groups ask for, and the groups under `prefix` that name none. Groups
/// outside `prefix` belong to other applications and are left out of both.
pub fn grants(prefix: &str, groups: &[String]) -> (Vec<Grant>, Vec<String>) {
    let prefix = format!("/{}", prefix.trim_matches('/'));
    let mut found = Vec::new();
    let mut unknown = Vec::new();
    for g in groups {
        let Some(rest) = g.strip_prefix(&prefix).and_then(|r| r.strip_prefix('/')) else {
            continue;
        };
        let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        let grant = match parts.as_slice() {
            ["federation-admin"] => Some(Grant::Federation(Role::FederationAdmin)),
            ["auditor"] => Some(Grant::Federation(Role::Auditor)),
            ["provider", name, "provider-operator"] if !name.is_empty() => Some(Grant::Provider {
                name: (*name).into(),
                role: Role::ProviderOperator,
            }),
            ["organisation", key, role] if !key.is_empty() => match *role {
                "org-admin" => Some(Role::OrgAdmin),
                "org-member" => Some(Role::OrgMember),
                "vendor" => Some(Role::Vendor),
                _ => None,
            }
            .map(|role| Grant::Organisation {
                key: (*key).into(),
                role,
            }),
            _ => None,
        };
        match grant {
            Some(g) if !found.contains(&g) => found.push(g),
            Some(_) => {}
            None => unknown.push(g.clone()),
        }
    }
    (found, unknown)
}

/// Looks the grants' organisations and providers up; grants naming ones that do not
/// exist are left out with a warning.
async fn resolve(store: &Store, grants: &[Grant]) -> Result<Vec<Membership>, StoreError> {
    let mut out = Vec::new();
    for g in grants {
        let m = match g {
            Grant::Federation(role) => Some(Membership {
                role: *role,
                organisation: None,
                provider: None,
                delegated: false,
            }),
            Grant::Provider { name, role } => match store.get_provider(name).await {
                Ok(p) => Some(Membership {
                    role: *role,
                    organisation: None,
                    provider: Some(p.spec.name),
                    delegated: false,
                }),
                Err(StoreError::NotFound { .. }) => None,
                Err(e) => return Err(e),
            },
            Grant::Organisation { key, role } => {
                let org = match store.find_organisation_by_key(key).await? {
                    Some(o) => Some(o),
                    None => match store.get_organisation(key).await {
                        Ok(o) => Some(o),
                        Err(StoreError::NotFound { .. }) => None,
                        Err(e) => return Err(e),
                    },
                };
                org.map(|o| Membership {
                    role: *role,
                    organisation: Some(o.id),
                    provider: None,
                    delegated: false,
                })
            }
        };
        match m {
            Some(m) => out.push(m),
            None => {
                tracing::warn!(grant = ?g, "an OIDC group names an organisation or provider that does not exist")
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(groups: &[&str], expected: &[Grant], unknown: &[&str]) {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let (found, rest) = grants("/verbund", &groups);
        assert_eq!(found, expected, "grants of {groups:?}");
        assert_eq!(rest, unknown, "unknown groups of {groups:?}");
    }

    fn org(key: &str, role: Role) -> Grant {
        Grant::Organisation {
            key: key.into(),
            role,
        }
    }

    #[test]
    fn federation_roles() {
        check(
            &["/verbund/federation-admin", "/verbund/auditor"],
            &[
                Grant::Federation(Role::FederationAdmin),
                Grant::Federation(Role::Auditor),
            ],
            &[],
        );
    }

    #[test]
    fn organisation_and_provider_roles() {
        check(
            &[
                "/verbund/organisation/020000000000/org-admin",
                "/verbund/organisation/02000000/org-member",
                "/verbund/organisation/0190c3a4-id/vendor",
                "/verbund/provider/dataport/provider-operator",
            ],
            &[
                org("020000000000", Role::OrgAdmin),
                org("02000000", Role::OrgMember),
                org("0190c3a4-id", Role::Vendor),
                Grant::Provider {
                    name: "dataport".into(),
                    role: Role::ProviderOperator,
                },
            ],
            &[],
        );
    }

    #[test]
    fn other_applications_groups_are_left_out() {
        check(
            &[
                "/other/federation-admin",
                "/verbundx/auditor",
                "verbund/auditor",
                "/verbund",
            ],
            &[],
            &[],
        );
    }

    #[test]
    fn groups_under_the_prefix_naming_no_role_are_reported() {
        check(
            &[
                "/verbund/admins",
                "/verbund/organisation/02/root",
                "/verbund/organisation//org-admin",
                "/verbund/provider/dataport/org-admin",
                "/verbund/organisation/02/org-admin/extra",
            ],
            &[],
            &[
                "/verbund/admins",
                "/verbund/organisation/02/root",
                "/verbund/organisation//org-admin",
                "/verbund/provider/dataport/org-admin",
                "/verbund/organisation/02/org-admin/extra",
            ],
        );
    }

    #[test]
    fn duplicates_count_once_and_the_prefix_is_configurable() {
        let groups = vec![
            "/kommunen/verbund/auditor".to_string(),
            "/kommunen/verbund/auditor/".to_string(),
        ];
        let (found, rest) = grants("kommunen/verbund/", &groups);
        assert_eq!(found, [Grant::Federation(Role::Auditor)]);
        assert!(rest.is_empty());
    }

    #[test]
    fn user_names_are_reduced_and_tagged() {
        let (base, suffixed) = user_names("https://idp", "sub-1", Some("Erika.Muster Frau!"));
        assert_eq!(base, "erika.musterfrau");
        let tag = &hex::encode(Sha256::digest("https://idpsub-1"))[..8];
        assert_eq!(suffixed, format!("erika.musterfrau-{tag}"));
        assert_eq!(user_names("i", "s", None).0, "oidc");
        assert_eq!(user_names("i", "s", Some("ÄÖÜ")).0, "oidc");
    }

    #[test]
    fn the_flow_cookie_round_trips_and_keeps_paths_local() {
        let f = Flow {
            state: "a".into(),
            nonce: "b".into(),
            verifier: "c".into(),
            next: "/fleet?x=1;y".into(),
        };
        let back = Flow::from_cookie(&f.cookie_value()).expect("parses");
        assert_eq!(
            (back.state, back.nonce, back.verifier),
            ("a".into(), "b".into(), "c".into())
        );
        assert_eq!(back.next, "/fleet?x=1;y");
        let evil = format!("a.b.c.{}", hex::encode("//evil.example"));
        assert_eq!(
            Flow::from_cookie(&evil).map(|f| f.next).as_deref(),
            Some("/")
        );
        assert!(Flow::from_cookie("a.b").is_none());
    }
}
