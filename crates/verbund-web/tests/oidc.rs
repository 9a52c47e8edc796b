//! Sign-in through OpenID Connect, end to end: the portal on a real socket against a fake
//! identity provider in the same process (discovery, JWKS, authorize, token endpoint that
//! checks the code, the client secret and the PKCE verifier, RS256 ID tokens signed with
//! keys made here), driven by a browser-like client that keeps cookies by hand.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use verbund_domain::account::{hash_token, Membership, Role, User};
use verbund_domain::page::PageRequest;
use verbund_store::{AuditFilter, Store};
use verbund_testkit::Scratch;
use verbund_web::oidc::Oidc;
use verbund_web::{PortalConfig, WebState};

const CLIENT_ID: &str = "verbund-portal";
const CLIENT_SECRET: &str = "s3cret/with+chars";

/// An RSA signing key of the fake provider with its JWK.
#[derive(Clone)]
struct Key {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl Key {
    fn generate(kid: &str) -> Key {
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("an RSA key");
        let pem = private
            .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
            .expect("PEM of the key");
        let public = private.to_public_key();
        Key {
            kid: kid.into(),
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("an encoding key"),
            jwk: json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            }),
        }
    }
}

/// Who signs in next, and how the next ID token deviates from a correct one.
#[derive(Clone, Default)]
struct Next {
    sub: String,
    preferred_username: String,
    name: String,
    groups: Vec<String>,
    aud: Option<String>,
    nonce: Option<String>,
    exp_offset: Option<i64>,
    /// Sign with this key instead of the published one (named by the published `kid`).
    forged_by: Option<Key>,
}

struct Idp {
    issuer: String,
    /// The published keys; the last one signs.
    keys: Vec<Key>,
    /// code → (nonce, code challenge, redirect URI)
    codes: HashMap<String, (String, String, String)>,
    next: Next,
    jwks_reads: usize,
    /// Refresh token → subject, for the refresh grant (rotated at every use).
    refresh: HashMap<String, String>,
    refresh_grants: usize,
}

type Shared = Arc<Mutex<Idp>>;

async fn discovery(State(idp): State<Shared>) -> Json<Value> {
    let issuer = idp.lock().unwrap().issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/protocol/openid-connect/auth"),
        "token_endpoint": format!("{issuer}/protocol/openid-connect/token"),
        "jwks_uri": format!("{issuer}/protocol/openid-connect/certs"),
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks(State(idp): State<Shared>) -> Json<Value> {
    let mut idp = idp.lock().unwrap();
    idp.jwks_reads += 1;
    // An encryption key of a type verbund cannot use must not spoil the set.
    let mut keys =
        vec![json!({"kty": "OKP", "crv": "X25519", "use": "enc", "kid": "x", "x": "AA"})];
    keys.extend(idp.keys.iter().map(|k| k.jwk.clone()));
    Json(json!({ "keys": keys }))
}

async fn authorize(
    State(idp): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = |k: &str| q.get(k).cloned().unwrap_or_default();
    assert_eq!(p("response_type"), "code");
    assert_eq!(p("client_id"), CLIENT_ID);
    assert_eq!(p("code_challenge_method"), "S256");
    assert_eq!(p("scope"), "openid profile email");
    assert!(!p("state").is_empty() && !p("nonce").is_empty());
    let code = format!("code-{}", uuid_like());
    idp.lock().unwrap().codes.insert(
        code.clone(),
        (p("nonce"), p("code_challenge"), p("redirect_uri")),
    );
    let mut to = reqwest::Url::parse(&p("redirect_uri")).unwrap();
    to.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &p("state"));
    Redirect::to(to.as_str()).into_response()
}

fn uuid_like() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex::encode(b)
}

async fn token(
    State(idp): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let refuse = |e: &str| (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response();
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    // client_secret_basic: both parts form-encoded before base64 (RFC 6749, 2.3.1).
    let expected = format!(
        "{CLIENT_ID}:{}",
        CLIENT_SECRET.replace('/', "%2F").replace('+', "%2B")
    );
    if basic.as_deref() != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let mut idp = idp.lock().unwrap();
    let (sub, nonce) = match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some((nonce, challenge, redirect)) =
                f.get("code").and_then(|c| idp.codes.remove(c))
            else {
                return refuse("invalid_grant");
            };
            let verifier = f.get("code_verifier").cloned().unwrap_or_default();
            if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != challenge
                || f.get("redirect_uri") != Some(&redirect)
            {
                return refuse("invalid_grant");
            }
            (idp.next.sub.clone(), Some(nonce))
        }
        // A refreshed ID token carries the groups as they are now, and no nonce.
        Some("refresh_token") => {
            idp.refresh_grants += 1;
            match f.get("refresh_token").and_then(|t| idp.refresh.remove(t)) {
                Some(sub) => (sub, None),
                None => return refuse("invalid_grant"),
            }
        }
        _ => return refuse("unsupported_grant_type"),
    };
    let n = idp.next.clone();
    let now = Utc::now().timestamp();
    let mut claims = json!({
        "iss": idp.issuer,
        "sub": sub,
        "aud": n.aud.clone().unwrap_or_else(|| CLIENT_ID.into()),
        "azp": CLIENT_ID,
        "exp": now + n.exp_offset.unwrap_or(300),
        "iat": now,
        "preferred_username": n.preferred_username,
        "name": n.name,
        "email": format!("{}@example.de", n.preferred_username),
        "groups": n.groups,
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(n.nonce.clone().unwrap_or(nonce));
    }
    let signing = idp.keys.last().cloned().unwrap();
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(signing.kid.clone());
    let key = n.forged_by.map_or(signing.encoding, |k| k.encoding);
    let id_token = jsonwebtoken::encode(&h, &claims, &key).unwrap();
    let refresh_token = format!("rt-{}", uuid_like());
    idp.refresh.insert(refresh_token.clone(), sub);
    Json(
        json!({"access_token": "at", "token_type": "Bearer", "id_token": id_token,
                "refresh_token": refresh_token}),
    )
    .into_response()
}

struct World {
    _scratch: Scratch,
    store: Store,
    idp: Shared,
    issuer: String,
    portal: String,
    http: reqwest::Client,
    /// Organisation ids by ARS.
    land: String,
    kreis: String,
}

async fn world() -> World {
    world_with(PortalConfig::default()).await
}

/// The world with the portal's settings (its OIDC client is set here).
async fn world_with(settings: PortalConfig) -> World {
    let scratch = Scratch::sqlite();
    let store = Store::open(&scratch.url).await.expect("a store");
    let now = Utc::now();
    let org = |v: Value| serde_json::from_value(v).expect("an organisation spec");
    let bund = store
        .create_organisation(
            "test/setup",
            &org(json!({"name": "Bund", "level": "bund"})),
            now,
        )
        .await
        .unwrap();
    let land = store
        .create_organisation(
            "test/setup",
            &org(
                json!({"name": "Hamburg", "level": "land", "ars": "020000000000",
                        "ags": "02000000", "parent": bund.id}),
            ),
            now,
        )
        .await
        .unwrap();
    let kreis = store
        .create_organisation(
            "test/setup",
            &org(
                json!({"name": "Kreis Pinneberg", "level": "kreis", "ars": "010560000000",
                        "ags": "01056000", "parent": bund.id}),
            ),
            now,
        )
        .await
        .unwrap();

    let idp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!(
        "http://{}/realms/verwaltung",
        idp_listener.local_addr().unwrap()
    );
    let idp: Shared = Arc::new(Mutex::new(Idp {
        issuer: issuer.clone(),
        keys: vec![Key::generate("k1")],
        codes: HashMap::new(),
        next: Next::default(),
        jwks_reads: 0,
        refresh: HashMap::new(),
        refresh_grants: 0,
    }));
    let realm = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/protocol/openid-connect/certs", get(jwks))
        .route("/protocol/openid-connect/auth", get(authorize))
        .route("/protocol/openid-connect/token", post(token))
        .with_state(idp.clone());
    let app = Router::new().nest("/realms/verwaltung", realm);
    tokio::spawn(async move { axum::serve(idp_listener, app).await.unwrap() });

    let portal_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let portal = format!("http://{}", portal_listener.local_addr().unwrap());
    let oidc = Oidc::discover(
        &issuer,
        CLIENT_ID,
        CLIENT_SECRET,
        &format!("{portal}/oidc/callback"),
    )
    .await
    .expect("discovery");
    let config = PortalConfig {
        oidc: Some(Arc::new(oidc.with_group_prefix("/verbund"))),
        ..settings
    };
    let app = verbund_web::router(WebState::new(
        verbund_api::AppState::new(store.clone()),
        config,
    ));
    tokio::spawn(async move { axum::serve(portal_listener, app).await.unwrap() });

    World {
        _scratch: scratch,
        store,
        idp,
        issuer,
        portal,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        land: land.id,
        kreis: kreis.id,
    }
}

/// What the portal answered at the end of a sign-in.
struct Outcome {
    status: StatusCode,
    location: Option<String>,
    /// The session cookie's secret, when one was set.
    session: Option<String>,
    body: String,
}

fn set_cookie<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("a redirect")
        .to_string()
}

impl World {
    fn next(&self, n: Next) {
        self.idp.lock().unwrap().next = n;
    }

    fn person(&self, sub: &str, user: &str, groups: &[&str]) -> Next {
        Next {
            sub: sub.into(),
            preferred_username: user.into(),
            name: format!("Person {user}"),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Next::default()
        }
    }

    /// Runs a sign-in like a browser; `tamper` may change the callback URL.
    async fn sign_in(&self, next: &str, tamper: impl FnOnce(String) -> String) -> Outcome {
        let r = self
            .http
            .get(format!("{}/oidc/login?next={next}", self.portal))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let flow = set_cookie(r.headers(), "verbund_oidc")
            .expect("the flow cookie")
            .to_string();
        let at_idp = location(&r);
        assert!(at_idp.starts_with(&self.issuer), "{at_idp}");
        let r = self.http.get(&at_idp).send().await.unwrap();
        assert!(r.status().is_redirection(), "{}", r.status());
        let callback = tamper(location(&r));
        assert!(callback.starts_with(&format!("{}/oidc/callback?", self.portal)));
        let r = self
            .http
            .get(&callback)
            .header(
                reqwest::header::COOKIE,
                format!("verbund_lang=en; verbund_oidc={flow}"),
            )
            .send()
            .await
            .unwrap();
        let session = set_cookie(r.headers(), "verbund_session")
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        assert_eq!(
            set_cookie(r.headers(), "verbund_oidc"),
            Some(""),
            "the flow cookie is forgotten"
        );
        Outcome {
            status: r.status(),
            location: r
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            session,
            body: r.text().await.unwrap(),
        }
    }

    async fn audit(&self, user: &User) -> Vec<(String, String, Option<Value>)> {
        let page = self
            .store
            .list_audit(
                &AuditFilter {
                    object: Some(format!("user/{}", user.id)),
                    ..AuditFilter::default()
                },
                &PageRequest {
                    limit: Some(100),
                    after: None,
                },
            )
            .await
            .unwrap();
        page.items
            .into_iter()
            .map(|e| (e.actor, e.action, e.after))
            .collect()
    }
}

fn org_role(role: Role, org: &str) -> Membership {
    Membership {
        role,
        organisation: Some(org.into()),
        provider: None,
        delegated: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_creates_the_user_with_its_roles_and_updates_them_next_time() {
    let w = world().await;
    // A local account already holds the preferred name: the OIDC user must not take it over.
    let local: verbund_domain::account::UserSpec = serde_json::from_value(json!({
        "name": "erika", "display_name": "Local Erika", "memberships": [{"role": "auditor"}]
    }))
    .unwrap();
    let local = w
        .store
        .create_user("test/setup", &local, Utc::now())
        .await
        .unwrap();

    w.next(w.person(
        "sub-erika",
        "Erika",
        &[
            "/verbund/organisation/020000000000/org-admin",
            "/other-app/admin",
        ],
    ));
    let o = w.sign_in("/fleet%3Fview%3Dall", |u| u).await;
    assert_eq!(o.status, StatusCode::SEE_OTHER, "{}", o.body);
    assert_eq!(o.location.as_deref(), Some("/fleet?view=all"));
    let secret = o.session.expect("a session cookie");
    let (session, user) = w
        .store
        .session(&hash_token(&secret), Utc::now())
        .await
        .unwrap()
        .expect("a live session");
    assert_eq!(session.via, "oidc");
    assert_ne!(user.id, local.id, "never linked to a local account by name");
    let tag = &hex::encode(Sha256::digest(format!("{}sub-erika", w.issuer)))[..8];
    assert_eq!(user.spec.name, format!("erika-{tag}"));
    assert_eq!(user.spec.display_name, "Person Erika");
    assert_eq!(user.spec.memberships, [org_role(Role::OrgAdmin, &w.land)]);
    let linked = w
        .store
        .oidc_user(&w.issuer, "sub-erika")
        .await
        .unwrap()
        .expect("linked");
    assert_eq!(linked.id, user.id);

    let trail = w.audit(&user).await;
    assert!(
        trail
            .iter()
            .any(|(actor, action, _)| actor == "system/oidc" && action == "user.create"),
        "{trail:?}"
    );
    assert!(
        trail
            .iter()
            .any(|(_, action, after)| action == "session.open"
                && after.as_ref().is_some_and(|a| a["via"] == "oidc")),
        "{trail:?}"
    );

    // The portal accepts the session cookie.
    let home = w
        .http
        .get(format!("{}/login", w.portal))
        .header(reqwest::header::COOKIE, format!("verbund_session={secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), StatusCode::SEE_OTHER, "signed in already");
    assert_eq!(
        w.idp.lock().unwrap().refresh_grants,
        0,
        "roles younger than the maximum age are not asked for again"
    );

    // The provider rotates its key and the groups changed: the portal reads the new key
    // once, and the roles follow the groups (the ARS, the AGS and the id all name one).
    let reads = w.idp.lock().unwrap().jwks_reads;
    w.idp.lock().unwrap().keys.push(Key::generate("k2"));
    w.next(w.person(
        "sub-erika",
        "Erika",
        &[
            "/verbund/organisation/02000000/org-member",
            &format!("/verbund/organisation/{}/vendor", w.kreis),
            "/verbund/auditor",
        ],
    ));
    let o = w.sign_in("/", |u| u).await;
    assert_eq!(o.status, StatusCode::SEE_OTHER, "{}", o.body);
    assert_eq!(o.location.as_deref(), Some("/"));
    assert!(o.session.is_some());
    assert_eq!(
        w.idp.lock().unwrap().jwks_reads,
        reads + 1,
        "the keys are read again once"
    );
    let again = w
        .store
        .oidc_user(&w.issuer, "sub-erika")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, user.id, "the same user");
    let mut expected = vec![
        org_role(Role::OrgMember, &w.land),
        org_role(Role::Vendor, &w.kreis),
        Membership {
            role: Role::Auditor,
            organisation: None,
            provider: None,
            delegated: false,
        },
    ];
    expected.sort();
    assert_eq!(again.spec.memberships, expected);
    let trail = w.audit(&user).await;
    assert!(
        trail
            .iter()
            .any(|(actor, action, _)| actor == "system/oidc" && action == "user.roles"),
        "{trail:?}"
    );
    assert_eq!(
        trail
            .iter()
            .filter(|(_, action, _)| action == "user.create")
            .count(),
        1
    );

    // A new person whose preferred name is free gets exactly that name.
    w.next(w.person("sub-max", "Max.Muster", &["/verbund/federation-admin"]));
    let o = w.sign_in("/", |u| u).await;
    assert_eq!(o.status, StatusCode::SEE_OTHER, "{}", o.body);
    let max = w
        .store
        .oidc_user(&w.issuer, "sub-max")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(max.spec.name, "max.muster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_sign_ins_open_no_session_and_create_no_user() {
    let w = world().await;
    let other_key = Key::generate("k1");
    let admin = ["/verbund/organisation/020000000000/org-admin"];
    type Tamper = fn(String) -> String;
    let keep: Tamper = |u| u;
    let cases: Vec<(&str, Next, Tamper, StatusCode, &str)> = vec![
        (
            "wrong state",
            w.person("sub-1", "a", &admin),
            |u| u.replace("state=", "state=0"),
            StatusCode::BAD_REQUEST,
            "Please sign in again",
        ),
        (
            "wrong nonce",
            Next {
                nonce: Some("another sign-in's nonce".into()),
                ..w.person("sub-2", "b", &admin)
            },
            keep,
            StatusCode::UNAUTHORIZED,
            "not valid",
        ),
        (
            "token for another audience",
            Next {
                aud: Some("another-client".into()),
                ..w.person("sub-3", "c", &admin)
            },
            keep,
            StatusCode::UNAUTHORIZED,
            "not valid",
        ),
        (
            "token signed by another key",
            Next {
                forged_by: Some(other_key.clone()),
                ..w.person("sub-4", "d", &admin)
            },
            keep,
            StatusCode::UNAUTHORIZED,
            "not valid",
        ),
        (
            "expired token",
            Next {
                exp_offset: Some(-3600),
                ..w.person("sub-5", "e", &admin)
            },
            keep,
            StatusCode::UNAUTHORIZED,
            "not valid",
        ),
        (
            "no role-granting group",
            w.person(
                "sub-6",
                "f",
                &[
                    "/verbund/organisation/999999999999/org-admin",
                    "/verbund/provider/nobody/provider-operator",
                    "/verbund/organisation/020000000000/owner",
                    "/other-app/verbund/federation-admin",
                ],
            ),
            keep,
            StatusCode::FORBIDDEN,
            "holds no role in verbund",
        ),
        (
            "the provider refused",
            w.person("sub-7", "g", &admin),
            |u| u.replace("code=", "error=access_denied&code="),
            StatusCode::UNAUTHORIZED,
            "refused the sign-in",
        ),
        (
            "a code used twice or made up",
            w.person("sub-8", "h", &admin),
            |u| u.replace("code=", "code=x"),
            StatusCode::UNAUTHORIZED,
            "refused the sign-in",
        ),
    ];
    for (what, next, tamper, status, says) in cases {
        let head = w.store.audit_head().await.unwrap();
        let sub = next.sub.clone();
        w.next(next);
        let o = w.sign_in("/fleet", tamper).await;
        assert_eq!(o.status, status, "{what}: {}", o.body);
        assert!(o.session.is_none(), "{what}: a session cookie was set");
        assert!(o.location.is_none(), "{what}: redirected");
        assert!(o.body.contains(says), "{what}: {}", o.body);
        assert!(
            w.store.oidc_user(&w.issuer, &sub).await.unwrap().is_none(),
            "{what}: a user was created"
        );
        assert_eq!(
            w.store.audit_head().await.unwrap(),
            head,
            "{what}: something was recorded"
        );
    }

    // Without the flow cookie (another browser), the callback refuses too.
    let r = w
        .http
        .get(format!("{}/oidc/callback?code=c&state=s", w.portal))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// Sends a signed-in request for `path`; answers the status and where it redirects to.
async fn visit(w: &World, secret: &str, path: &str) -> (StatusCode, Option<String>) {
    let r = w
        .http
        .get(format!("{}{path}", w.portal))
        .header(reqwest::header::COOKIE, format!("verbund_session={secret}"))
        .send()
        .await
        .unwrap();
    let to = r
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (r.status(), to)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_confirmed_by_the_provider_while_a_session_is_used() {
    // Roles may be no older than zero: every request asks the provider again.
    let w = world_with(PortalConfig {
        oidc_roles_max_age: chrono::Duration::zero(),
        ..PortalConfig::default()
    })
    .await;
    let admin = "/verbund/organisation/020000000000/org-admin";
    w.next(w.person("sub-erika", "erika", &[admin]));
    let o = w.sign_in("/", |u| u).await;
    let secret = o.session.expect("a session");
    let user = w
        .store
        .oidc_user(&w.issuer, "sub-erika")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.spec.memberships, [org_role(Role::OrgAdmin, &w.land)]);
    assert_eq!(visit(&w, &secret, "/catalog").await.0, StatusCode::OK);
    assert_eq!(w.idp.lock().unwrap().refresh_grants, 1);

    // The provider takes the admin role away: the next request already has fewer roles.
    w.next(w.person(
        "sub-erika",
        "erika",
        &["/verbund/organisation/020000000000/org-member"],
    ));
    assert_eq!(visit(&w, &secret, "/catalog").await.0, StatusCode::OK);
    let now = w.store.get_user(&user.id).await.unwrap();
    assert_eq!(now.spec.memberships, [org_role(Role::OrgMember, &w.land)]);
    let trail = w.audit(&user).await;
    assert_eq!(
        trail
            .iter()
            .filter(|(actor, action, _)| actor == "system/oidc" && action == "user.roles")
            .count(),
        1,
        "{trail:?}"
    );
    let (session, _) = w
        .store
        .session(&hash_token(&secret), Utc::now())
        .await
        .unwrap()
        .expect("the session lives on");
    assert!(session.roles_checked_at.is_some() && session.refresh_token.is_some());

    // The groups grant no role any more: the session ends.
    w.next(w.person("sub-erika", "erika", &["/other-app/admin"]));
    let (status, to) = visit(&w, &secret, "/catalog").await;
    assert_eq!(
        (status, to.as_deref()),
        (StatusCode::SEE_OTHER, Some("/login?next=/catalog"))
    );
    assert!(w
        .store
        .session(&hash_token(&secret), Utc::now())
        .await
        .unwrap()
        .is_none());
    let trail = w.audit(&user).await;
    assert!(
        trail
            .iter()
            .any(|(actor, action, after)| actor == "system/portal"
                && action == "session.close"
                && after
                    .as_ref()
                    .is_some_and(|a| a["reason"].as_str().is_some_and(|r| r.contains("no role")))),
        "{trail:?}"
    );

    // The provider refuses the refresh (the person was disabled or signed out there).
    w.next(w.person("sub-erika", "erika", &[admin]));
    let o = w.sign_in("/", |u| u).await;
    let secret = o.session.expect("a session");
    w.idp.lock().unwrap().refresh.clear();
    let (status, _) = visit(&w, &secret, "/catalog").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(w
        .store
        .session(&hash_token(&secret), Utc::now())
        .await
        .unwrap()
        .is_none());

    // A disabled account cannot sign in through the provider either.
    w.store
        .disable_user("user/admin", &user.id, Utc::now())
        .await
        .unwrap();
    let o = w.sign_in("/", |u| u).await;
    assert_eq!(o.status, StatusCode::FORBIDDEN, "{}", o.body);
    assert!(o.session.is_none());
    assert!(o.body.contains("disabled"), "{}", o.body);
}
