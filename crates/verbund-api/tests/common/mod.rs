//! Test kit of the API's behaviour tests: the real router on a fresh, throw-away database
//! per test (SQLite and PostgreSQL), an admin made directly through the store, request
//! helpers that go through `oneshot` (no sockets), and JSON fixtures.
//!
//! PostgreSQL: `VERBUND_TEST_POSTGRES` names a server on which the tests may create and
//! drop databases (default `postgres://postgres@127.0.0.1:5432/test`). Each test gets its
//! own `verbund_a_<hex>` database, dropped afterwards. An unreachable server fails the
//! `postgres_*` tests, unless `VERBUND_SKIP_POSTGRES=1` says to skip them.

#![allow(dead_code, reason = "not every test uses every helper")]

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use tower::ServiceExt;
use verbund_api::{AppState, Clock};
use verbund_domain::account::UserSpec;
use verbund_store::Store;

pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The actor the test kit records for what it sets up behind the API's back.
pub const SETUP_ACTOR: &str = "test/setup";

/// Generates `sqlite_<name>` and `postgres_<name>` tests for each test body
/// `async fn name(kit: Kit)`.
macro_rules! api_tests {
    ($($name:ident),* $(,)?) => {
        $(
            pastey::paste! {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn [<sqlite_ $name>]() {
                    $crate::common::run($crate::common::Backend::Sqlite, $name).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn [<postgres_ $name>]() {
                    $crate::common::run($crate::common::Backend::Postgres, $name).await;
                }
            }
        )*
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What a test body gets: the app on a fresh database and a federation admin.
#[derive(Clone)]
pub struct Kit {
    pub app: Router,
    pub store: Store,
    pub backend: Backend,
    /// Id of the federation admin `admin`.
    pub admin_id: String,
    /// Bearer secret of the admin's token.
    pub admin: String,
    /// The database's URL, for a second store on it (a replica).
    pub url: String,
}

impl Kit {
    /// The same application on the same database, with the clock stopped at `now`.
    pub fn app_at(&self, now: DateTime<Utc>) -> Router {
        let state = AppState {
            clock: Arc::new(FixedClock(now)),
            ..AppState::new(self.store.clone())
        };
        verbund_api::app(state)
    }

    /// Creates a user through `POST /api/v1/users` as the admin, and a token for it
    /// directly through the store; returns the user's id and the token's secret.
    pub async fn user(&self, name: &str, memberships: Value) -> (String, String) {
        let body = json!({
            "name": name,
            "display_name": format!("Test user {name}"),
            "memberships": memberships,
        });
        let r = post(&self.app, &self.admin, "/api/v1/users", body).await;
        assert_eq!(
            r.0,
            StatusCode::CREATED,
            "cannot create user `{name}`: {}",
            r.2
        );
        let id = r.2["id"].as_str().expect("user id").to_string();
        let (_, secret) =
            verbund_api::issue_token(&self.store, SETUP_ACTOR, &id, "test", None, Utc::now())
                .await
                .expect("issue a token");
        (id, secret)
    }
}

/// A clock that always answers the same time.
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

use verbund_testkit::Scratch;

/// Creates the federation admin and its token directly through the store.
async fn bootstrap(store: Store, backend: Backend, url: String) -> Kit {
    let now = Utc::now();
    // From JSON, as a client would send it, so that fields added later keep their defaults.
    let spec: UserSpec = serde_json::from_value(json!({
        "name": "admin",
        "display_name": "Federation admin",
        "email": "admin@verbund.example",
        "memberships": [{"role": "federation-admin"}],
    }))
    .expect("a valid user spec");
    let user = store
        .create_user(SETUP_ACTOR, &spec, now)
        .await
        .expect("create the admin");
    let (_, secret) = verbund_api::issue_token(&store, SETUP_ACTOR, &user.id, "test", None, now)
        .await
        .expect("issue the admin's token");
    Kit {
        app: verbund_api::app(AppState::new(store.clone())),
        store,
        backend,
        admin_id: user.id,
        admin: secret,
        url,
    }
}

/// Runs one test body on a fresh database of `backend` and removes the database after,
/// also when the body panics.
pub async fn run<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(Kit) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let scratch = match backend {
        Backend::Sqlite => Scratch::sqlite(),
        Backend::Postgres => match Scratch::postgres(&test).await {
            Some(s) => s,
            None => return,
        },
    };
    let outcome = match Store::open(&scratch.url).await {
        Ok(store) => {
            let kit = store.clone();
            let url = scratch.url.clone();
            let outcome =
                tokio::spawn(async move { body(bootstrap(kit, backend, url).await).await }).await;
            store.close().await;
            outcome.map_err(|e| match e.try_into_panic() {
                Ok(panic) => panic,
                Err(e) => Box::new(format!("the test was cancelled: {e}"))
                    as Box<dyn std::any::Any + Send>,
            })
        }
        Err(e) => Err(
            Box::new(format!("cannot open the store on `{}`: {e}", scratch.url))
                as Box<dyn std::any::Any + Send>,
        ),
    };
    scratch.remove().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

// ---------------------------------------------------------------------------------------
// Requests

/// Status, headers and body of a response; the body is JSON, `Null` when empty, or a
/// JSON string holding the text when it is not JSON.
pub type Resp = (StatusCode, HeaderMap, Value);

/// Sends one request through the router, without a socket.
pub async fn send(app: &Router, req: Request<Body>) -> Resp {
    let resp = app
        .clone()
        .oneshot(req)
        .await
        .expect("the router is infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .expect("read the response body")
        .to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, headers, body)
}

/// A request with the token as bearer (none when `token` is empty) and an optional JSON body.
pub fn request(method: Method, path: &str, token: &str, body: Option<&Value>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if !token.is_empty() {
        b = b.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(v) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(v.to_string())),
        None => b.body(Body::empty()),
    }
    .expect("a valid request")
}

pub async fn get(app: &Router, token: &str, path: &str) -> Resp {
    send(app, request(Method::GET, path, token, None)).await
}

pub async fn post(app: &Router, token: &str, path: &str, json: Value) -> Resp {
    send(app, request(Method::POST, path, token, Some(&json))).await
}

pub async fn put(app: &Router, token: &str, path: &str, json: Value) -> Resp {
    send(app, request(Method::PUT, path, token, Some(&json))).await
}

pub async fn delete(app: &Router, token: &str, path: &str) -> Resp {
    send(app, request(Method::DELETE, path, token, None)).await
}

/// Percent-encodes a query parameter value (UTF-8, RFC 3986 unreserved kept).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Asserts a success status and returns the body.
#[track_caller]
pub fn ok(r: Resp, status: StatusCode) -> Value {
    assert_eq!(r.0, status, "unexpected answer: {}", r.2);
    r.2
}

/// Asserts an RFC 9457 problem with `status` (and the offending `field`, when given) and
/// returns its `detail`.
#[track_caller]
pub fn assert_problem(r: &Resp, status: StatusCode, field: Option<&str>) -> String {
    let (got, headers, body) = r;
    assert_eq!(*got, status, "unexpected answer: {body}");
    assert_eq!(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "a problem must be sent as problem+json: {body}"
    );
    assert_eq!(body["status"], json!(status.as_u16()), "{body}");
    let kind = body["type"].as_str().unwrap_or_default();
    assert!(
        kind.starts_with("https://verbund.dev/problems/"),
        "problem type `{kind}`"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "a problem needs a title: {body}"
    );
    let detail = body["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.len() > 10, "a problem needs a useful detail: {body}");
    if let Some(field) = field {
        assert_eq!(body["field"], json!(field), "wrong field in {body}");
    }
    detail
}

// ---------------------------------------------------------------------------------------
// Reading back

/// Every item of a paginated list, read page by page.
pub async fn all(app: &Router, token: &str, path: &str) -> Vec<Value> {
    all_in_pages_of(app, token, path, 1000).await
}

/// Every item of a paginated list, read in pages of `limit` items.
pub async fn all_in_pages_of(app: &Router, token: &str, path: &str, limit: u32) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let url = match &after {
            Some(a) => format!("{path}{sep}limit={limit}&after={}", enc(a)),
            None => format!("{path}{sep}limit={limit}"),
        };
        let page = ok(get(app, token, &url).await, StatusCode::OK);
        out.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => return out,
        }
    }
}

/// The number of audit events: the newest event's sequence number (the chain is gapless).
pub async fn audit_count(kit: &Kit) -> i64 {
    let page = ok(
        get(&kit.app, &kit.admin, "/api/v1/audit?limit=1").await,
        StatusCode::OK,
    );
    page["items"][0]["seq"].as_i64().unwrap_or(0)
}

/// Everything the API can show, read as the admin: to compare before and after a request
/// that must change nothing.
pub async fn world(kit: &Kit) -> Value {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    let offerings = all(app, admin, "/api/v1/offerings").await;
    let mut versions = serde_json::Map::new();
    for o in &offerings {
        let name = o["name"].as_str().expect("offering name");
        let v = ok(
            get(app, admin, &format!("/api/v1/offerings/{name}/versions")).await,
            StatusCode::OK,
        );
        versions.insert(name.to_string(), v);
    }
    json!({
        "organisations": all(app, admin, "/api/v1/organisations").await,
        "providers": all(app, admin, "/api/v1/providers").await,
        "sites": all(app, admin, "/api/v1/sites").await,
        "offerings": offerings,
        "versions": versions,
        "users": all(app, admin, "/api/v1/users").await,
        "tokens": all(app, admin, &format!("/api/v1/tokens?user={}", kit.admin_id)).await,
        "audit": audit_count(kit).await,
    })
}

/// Asserts that nothing the API shows changed since `before` (a `world`).
pub async fn assert_unchanged(kit: &Kit, before: &Value, what: &str) {
    let after = world(kit).await;
    assert_eq!(&after, before, "{what} changed stored state");
}

// ---------------------------------------------------------------------------------------
// Fixtures

pub fn bund() -> Value {
    json!({"name": "Bundesrepublik Deutschland", "level": "bund"})
}

pub fn land(name: &str, key: &str, bund: &str) -> Value {
    json!({"name": name, "level": "land", "ars": key, "ags": key, "parent": bund})
}

pub fn kreis(name: &str, key: &str, land: &str) -> Value {
    json!({"name": name, "level": "kreis", "ars": key, "ags": key, "parent": land})
}

pub fn gemeinde(name: &str, ars: &str, ags: &str, parent: &str) -> Value {
    json!({"name": name, "level": "gemeinde", "ars": ars, "ags": ags, "parent": parent})
}

pub fn provider(name: &str) -> Value {
    json!({
        "name": name,
        "display_name": format!("Provider {name}"),
        "legal_form": "AöR",
        "public_law": true,
        "seat": {"city": "Hamburg", "country": "DE"},
        "jurisdictions": ["DE"],
    })
}

pub fn site(name: &str, provider: &str) -> Value {
    json!({
        "name": name,
        "display_name": format!("Site {name}"),
        "provider": provider,
        "location": {"country": "DE", "region": "DE-HH", "city": "Hamburg",
                     "latitude": 53.5511, "longitude": 9.9937},
        "certifications": [{"scheme": "bsi-c5", "level": "type2", "valid_until": "2027-12-31"}],
        "kubernetes_version": "1.31",
        "capabilities": ["storage:rwx", "ingress:nginx"],
        "capacity": {"cpu_millis": 64000, "memory_mib": 262144, "storage_gib": 10240},
        "environments": ["test", "prod"],
        "delivery": "flux",
    })
}

pub fn offering(name: &str, vendor: &str) -> Value {
    json!({
        "name": name,
        "display_name": format!("Offering {name}"),
        "description": "A test offering.",
        "vendor": vendor,
        "category": "saas",
        "data_classes": ["personal"],
        "plans": [{"name": "s", "display_name": "Small", "replicas": 1,
                   "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 10},
                   "monthly_price_cents": 9900}],
        "config_schema": {"type": "object", "properties": {"domain": {"type": "string"}}},
    })
}

pub fn version(v: &str) -> Value {
    json!({
        "version": v,
        "package": {"type": "helm", "repository": "https://charts.example.org",
                    "chart": "app", "chart_version": v},
        "changelog": format!("Release {v}."),
    })
}

/// Creates an organisation as `token` and returns its id.
pub async fn create_org(app: &Router, token: &str, spec: Value) -> String {
    let body = ok(
        post(app, token, "/api/v1/organisations", spec).await,
        StatusCode::CREATED,
    );
    body["id"].as_str().expect("organisation id").to_string()
}

/// Issues a token for `site`'s agent as the admin and returns its secret.
pub async fn site_token(kit: &Kit, site: &str) -> String {
    let r = ok(
        post(
            &kit.app,
            &kit.admin,
            &format!("/api/v1/sites/{site}/tokens"),
            json!({"name": "agent"}),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_eq!(r["site"], site);
    r["secret"].as_str().expect("secret").to_string()
}

/// (actor, action) of every audit event on `object`, newest first.
pub async fn audit_actions(kit: &Kit, object: &str) -> Vec<(String, String)> {
    all(
        &kit.app,
        &kit.admin,
        &format!("/api/v1/audit?object={}", enc(object)),
    )
    .await
    .iter()
    .map(|e| {
        (
            e["actor"].as_str().unwrap_or_default().to_string(),
            e["action"].as_str().unwrap_or_default().to_string(),
        )
    })
    .collect()
}

/// Has a certification body on the trust list attest the certifications stated in the
/// facts of every site so far: placement counts a certification only as a credential.
pub async fn certify(kit: &Kit) {
    verbund_testkit::certified::certify_stated(&kit.store, Utc::now()).await;
}
