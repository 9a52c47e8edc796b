//! The portal over HTTP without a browser, on SQLite and on PostgreSQL: sign-in with its
//! cookies, lock-out and CSRF defences, sessions that end and expire, the booking flow as
//! plain form posts, tenant isolation through the pages, security headers, the language
//! switch, and the frame every page shares (one `<h1>`, `<main id="main">`, skip link).
//!
//! The portal and the API are served together, as `verbund serve` does, through
//! `oneshot` (no sockets); a small `Browser` keeps cookies by hand and never follows a
//! redirect, so every `303` and `Set-Cookie` is asserted as sent. The clock is the test's.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use verbund_api::password::HashingLimit;
use verbund_api::{AppState, Clock};
use verbund_domain::account::UserSpec;
use verbund_domain::page::PageRequest;
use verbund_store::{AuditFilter, LockPolicy, Store};
use verbund_testkit::Backend;
use verbund_web::{PortalConfig, WebState};

/// Generates `sqlite_<name>` and `postgres_<name>` for each `async fn name(store: Store)`.
macro_rules! portal_tests {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        $(
            verbund_testkit::pastey::paste! {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                $(#[$attr])*
                async fn [<sqlite_ $name>]() {
                    verbund_testkit::run(Backend::Sqlite, $name).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                $(#[$attr])*
                async fn [<postgres_ $name>]() {
                    verbund_testkit::run(Backend::Postgres, $name).await;
                }
            }
        )*
    };
}

portal_tests!(
    sign_in_opens_a_session,
    wrong_passwords_lock_the_account_for_a_while,
    forged_forms_change_nothing,
    sessions_end_and_expire,
    booking_works_without_javascript,
    tenants_are_isolated_in_the_portal,
    foreign_organisation_pages_are_refused,
    headers_language_and_unknown_pages,
    no_way_back_leads_off_site,
    every_page_has_the_shared_frame,
    every_navigation_link_opens_a_page,
    the_fleet_shows_each_sites_last_preflight,
    german_pages_name_things_in_german,
    sign_ins_are_throttled_by_source_and_account_atomically,
    disabled_accounts_and_changed_passwords_end_sessions_at_once,
    oversized_forms_and_slow_requests_get_german_pages,
    lists_and_groups_book_without_json_or_javascript,
    a_booking_form_sent_twice_books_once,
    the_offering_says_what_a_booking_brings_with_it,
    einer_fuer_alle_in_the_catalog_and_for_the_organisation,
    each_role_finds_its_work_and_facts_show_their_provenance,
    a_vendor_publishes_a_version_and_sees_the_plan_first,
    a_booking_for_a_time_ends_with_its_data_exported,
    a_gemeinde_joins_the_shared_instance_of_its_land,
    a_template_is_published_adopted_and_its_change_taken_over,
);

/// Every test account's password.
const PASSWORD: &str = "richtig-langes-passwort";
/// The host the requests are addressed to.
const HOST: &str = "portal.example";
const LOGIN_FAILED: &str = "Benutzername oder Passwort ist falsch.";

// ---------------------------------------------------------------------------------------
// The federation

/// A clock the test moves by hand.
struct TestClock(Mutex<DateTime<Utc>>);

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("the clock")
    }
}

/// The portal and the API on one store: Bund, two Länder with a Gemeinde each (A and B),
/// a vendor, one provider with one site, one offering with a JSON Schema, and accounts.
struct World {
    store: Store,
    clock: Arc<TestClock>,
    app: Router,
    /// Organisation ids of Gemeinde A (Hamburg) and B (Flensburg).
    a: String,
    b: String,
}

/// The offering's name and its configuration schema.
const OFFERING: &str = "buergerportal";

fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["domain"],
        "properties": {
            "domain": {"type": "string", "title": "Domäne", "pattern": "^[a-z.]+$",
                       "description": "Unter welcher Adresse das Portal antwortet."},
            "users": {"type": "integer", "title": "Nutzerzahl", "minimum": 1, "default": 50},
        }
    })
}

/// The portal merged with the API, as `verbund serve` serves them.
fn app(store: &Store, clock: &Arc<TestClock>, config: PortalConfig) -> Router {
    app_hashing(store, clock, config, HashingLimit::per_core())
}

/// `app`, with its own bound on Argon2 evaluations at once.
fn app_hashing(
    store: &Store,
    clock: &Arc<TestClock>,
    config: PortalConfig,
    hashing: HashingLimit,
) -> Router {
    let api = AppState {
        clock: clock.clone(),
        hashing,
        ..AppState::new(store.clone())
    };
    verbund_api::app(api.clone()).merge(verbund_web::router(WebState::new(api, config)))
}

/// One Argon2 hash for every account (hashing is the slow part).
fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| verbund_web::hash_password(PASSWORD).expect("a long password"))
}

async fn account(store: &Store, name: &str, memberships: Value) -> String {
    let spec: UserSpec = serde_json::from_value(json!({
        "name": name,
        "display_name": format!("Konto {name}"),
        "memberships": memberships,
    }))
    .expect("a user spec");
    let now = Utc::now();
    let user = store
        .create_user("test/setup", &spec, now)
        .await
        .expect("create a user");
    store
        .set_password("test/setup", &user.id, password_hash(), now)
        .await
        .expect("set a password");
    user.id
}

/// Sends a JSON request to the API as the admin's bearer; returns the answer's JSON.
async fn api(app: &Router, token: &str, path: &str, body: Value) -> Value {
    api_call(app, token, Method::POST, path, body).await
}

/// The API answer to `method path` with `body` as `token`, which must succeed.
async fn api_call(app: &Router, token: &str, method: Method, path: &str, body: Value) -> Value {
    let req = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("a request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("a body").to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {path}: {status} {v}");
    v
}

async fn world(store: Store) -> World {
    let clock = Arc::new(TestClock(Mutex::new(Utc::now())));
    let app = app(&store, &clock, PortalConfig::default());
    let admin_id = account(&store, "admin", json!([{"role": "federation-admin"}])).await;
    let (_, token) =
        verbund_api::issue_token(&store, "test/setup", &admin_id, "setup", None, Utc::now())
            .await
            .expect("a token");
    let t = token.as_str();
    for doc in verbund_policy::PolicyBook::defaults().expect("shipped policies") {
        api(
            &app,
            t,
            "/api/v1/policies",
            json!({"name": doc.name, "layer": "federation", "text": doc.text}),
        )
        .await;
    }
    let org = async |spec: Value| -> String {
        api(&app, t, "/api/v1/organisations", spec).await["id"]
            .as_str()
            .expect("an id")
            .to_string()
    };
    let bund = org(json!({"name": "Bundesrepublik Deutschland", "level": "bund"})).await;
    let hh = org(json!({"name": "Hamburg (Land)", "level": "land", "ars": "02", "ags": "02", "parent": bund})).await;
    let a = org(
        json!({"name": "Freie und Hansestadt Hamburg", "level": "gemeinde",
                       "ars": "020000000000", "ags": "02000000", "parent": hh}),
    )
    .await;
    let sh = org(json!({"name": "Schleswig-Holstein", "level": "land", "ars": "01", "ags": "01", "parent": bund})).await;
    let b = org(json!({"name": "Flensburg, Stadt", "level": "gemeinde",
                       "ars": "010010000000", "ags": "01001000", "parent": sh}))
    .await;
    let vendor = org(json!({"name": "Portal-Verbund", "level": "verband", "parent": bund})).await;
    api(&app, t, "/api/v1/providers", json!({
        "name": "nordwerk", "display_name": "Nordwerk IT", "legal_form": "AöR", "public_law": true,
        "seat": {"city": "Hamburg", "country": "DE"}, "jurisdictions": ["DE"],
    }))
    .await;
    api(&app, t, "/api/v1/sites", json!({
        "name": "nordwerk-hh-1", "display_name": "Rechenzentrum Hamburg 1", "provider": "nordwerk",
        "location": {"country": "DE", "region": "DE-HH", "city": "Hamburg",
                     "latitude": 53.5511, "longitude": 9.9937},
        "certifications": [
            {"scheme": "bsi-c5", "level": "type2", "valid_until": "2099-12-31"},
            {"scheme": "iso27001", "level": "it-grundschutz", "valid_until": "2099-12-31"},
        ],
        "kubernetes_version": "1.31", "capabilities": ["storage:rwx", "ingress:nginx"],
        "capacity": {"cpu_millis": 64000, "memory_mib": 262144, "storage_gib": 10240},
        "environments": ["test", "prod"], "delivery": "flux",
    }))
    .await;
    // Its certificates count as a certification body's credentials.
    verbund_testkit::certified::certify_stated(&store, Utc::now()).await;
    api(&app, t, "/api/v1/offerings", json!({
        "name": OFFERING, "display_name": "Bürgerportal", "description": "Ein Portal für Anträge.",
        "vendor": vendor, "category": "saas", "data_classes": ["personal"],
        "plans": [{"name": "s", "display_name": "Klein", "replicas": 1,
                   "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 10},
                   "monthly_price_cents": 9900}],
        "config_schema": schema(),
    }))
    .await;
    api(
        &app,
        t,
        &format!("/api/v1/offerings/{OFFERING}/versions"),
        json!({
            "version": "1.0.0", "changelog": "Erste Fassung.",
            "package": {"type": "helm", "repository": "https://charts.example.org",
                        "chart": "app", "chart_version": "1.0.0"},
        }),
    )
    .await;
    account(
        &store,
        "admin-a",
        json!([{"role": "org-admin", "organisation": a}]),
    )
    .await;
    account(
        &store,
        "admin-b",
        json!([{"role": "org-admin", "organisation": b}]),
    )
    .await;
    account(&store, "auditor", json!([{"role": "auditor"}])).await;
    account(
        &store,
        "vendor",
        json!([{"role": "vendor", "organisation": vendor}]),
    )
    .await;
    account(
        &store,
        "operator",
        json!([{"role": "provider-operator", "provider": "nordwerk"}]),
    )
    .await;
    World {
        store,
        clock,
        app,
        a,
        b,
    }
}

impl World {
    fn advance(&self, by: Duration) {
        let mut now = self.clock.0.lock().expect("the clock");
        *now += by;
    }

    fn browser(&self) -> Browser {
        Browser {
            app: self.app.clone(),
            jar: BTreeMap::new(),
            from: None,
        }
    }

    /// A browser signed in as `name`.
    async fn signed_in(&self, name: &str) -> Browser {
        let mut b = self.browser();
        let r = b.sign_in(name, PASSWORD, "/catalog").await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "sign-in of {name}: {}",
            r.body
        );
        b
    }

    /// (actor, action, object) of every audit event, oldest first.
    async fn trail(&self) -> Vec<(String, String, String)> {
        let page = self
            .store
            .list_audit(
                &AuditFilter::default(),
                &PageRequest {
                    limit: Some(1000),
                    after: None,
                },
            )
            .await
            .expect("the audit trail");
        assert!(page.next.is_none(), "more than one page of audit events");
        page.items
            .into_iter()
            .rev()
            .map(|e| (e.actor, e.action, e.object))
            .collect()
    }

    async fn user_id(&self, name: &str) -> String {
        let (user, _) = self
            .store
            .credential(name)
            .await
            .expect("read credentials")
            .expect("a known user");
        user.id
    }

    async fn booking_state(&self, id: &str) -> String {
        let b = self.store.get_booking(id).await.expect("the booking");
        b.state.as_str().to_string()
    }

    /// Books the offering for A through the portal as `admin-a`; returns the booking id.
    async fn booked(&self, b: &mut Browser) -> String {
        let form = b.get(&format!("/offerings/{OFFERING}/book")).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let r = b.book(&form.csrf(), &self.a, "portal.hamburg.de").await;
        new_booking(&r)
    }
}

/// The id of the booking a successful booking form post created.
#[track_caller]
fn new_booking(r: &Answer) -> String {
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let to = r.location();
    to.strip_prefix("/bookings/")
        .and_then(|rest| rest.strip_suffix("?new=1"))
        .unwrap_or_else(|| panic!("a new booking's page, not `{to}`"))
        .to_string()
}

// ---------------------------------------------------------------------------------------
// A browser without JavaScript

/// What came back: status, headers and the body as text.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> String {
        self.header(header::LOCATION.as_str())
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    /// The `Set-Cookie` header for cookie `name`.
    fn set_cookie(&self, name: &str) -> String {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no `{name}` cookie set: {:?}", self.headers))
            .to_string()
    }

    /// The first form token on the page.
    fn csrf(&self) -> String {
        self.hidden("csrf")
    }

    /// The value of the page's first hidden field `name`.
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} field on the page: {}", self.body))
            + marker.len();
        let len = self.body[start..].find('"').expect("the end of the value");
        self.body[start..start + len].to_string()
    }

    #[track_caller]
    fn shows(&self, text: &str) {
        assert!(
            self.body.contains(text),
            "`{text}` is not on the page ({}): {}",
            self.status,
            self.body
        );
    }
}

/// Cookies by hand, no redirect followed.
struct Browser {
    app: Router,
    jar: BTreeMap<String, String>,
    /// The client address a trusted proxy reports (`X-Forwarded-For`), if any.
    from: Option<String>,
}

/// Percent-encodes a form value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Browser {
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        origin: Option<&str>,
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, HOST);
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header(header::COOKIE, cookies.join("; "));
        }
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        if let Some(f) = &self.from {
            req = req.header("x-forwarded-for", format!("192.0.2.99, {f}"));
        }
        let body = match form {
            Some(f) => {
                req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                let pairs: Vec<String> = f
                    .iter()
                    .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
                    .collect();
                Body::from(pairs.join("&"))
            }
            None => Body::empty(),
        };
        let resp = self
            .app
            .clone()
            .oneshot(req.body(body).expect("a request"))
            .await
            .expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        for c in headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let Some((name, rest)) = c.split_once('=') else {
                continue;
            };
            let value = rest.split(';').next().unwrap_or_default();
            if value.is_empty() || c.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_string(), value.to_string());
            }
        }
        let bytes = resp.into_body().collect().await.expect("a body").to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send(Method::GET, path, None, None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.send(Method::POST, path, Some(form), None).await
    }

    /// The sign-in form, then its post.
    async fn sign_in(&mut self, name: &str, password: &str, next: &str) -> Answer {
        let form = self.get(&format!("/login?next={}", enc(next))).await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.csrf();
        self.post(
            "/login",
            &[
                ("name", name),
                ("password", password),
                ("csrf", &csrf),
                ("next", next),
            ],
        )
        .await
    }

    /// Posts the booking form of the offering for `org`.
    async fn book(&mut self, csrf: &str, org: &str, domain: &str) -> Answer {
        let form = [
            ("csrf", csrf),
            ("organisation", org),
            ("plan", "s"),
            ("channel", "stable"),
            ("cfg.domain", domain),
            ("cfg.users", "200"),
        ];
        self.post(&format!("/offerings/{OFFERING}/book"), &form)
            .await
    }

    /// Posts the booking's (confirmed) cancel form and its channel form; their statuses.
    async fn change(&mut self, booking: &str, csrf: &str) -> [StatusCode; 2] {
        let cancel = [("csrf", csrf), ("confirm", "yes")];
        let cancel = self
            .post(&format!("/bookings/{booking}/cancel"), &cancel)
            .await;
        let channel = [("csrf", csrf), ("channel", "pinned:1.0.0")];
        let channel = self
            .post(&format!("/bookings/{booking}/channel"), &channel)
            .await;
        [cancel.status, channel.status]
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name).map(String::as_str)
    }
}

// ---------------------------------------------------------------------------------------
// 1. Sign-in

async fn sign_in_opens_a_session(store: Store) {
    let w = world(store.clone()).await;
    let mut b = w.browser();
    let form = b.get("/login?next=/fleet").await;
    assert_eq!(form.status, StatusCode::OK);
    let login = form.set_cookie("verbund_login");
    let token = b
        .cookie("verbund_login")
        .expect("a login cookie")
        .to_string();
    assert_eq!(token.len(), 64, "{login}");
    assert!(
        login.contains("HttpOnly") && login.contains("SameSite=Lax") && !login.contains("Secure"),
        "{login}"
    );
    assert_eq!(form.csrf(), token, "the form's token is the cookie's");
    form.shows("name=\"next\" value=\"/fleet\"");
    // Asking again keeps the same token (two tabs may be open).
    assert_eq!(b.get("/login").await.csrf(), token);

    let before = w.trail().await;
    let r = b
        .post(
            "/login",
            &[
                ("name", "Admin-A "),
                ("password", PASSWORD),
                ("csrf", &token),
                ("next", "/fleet"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/fleet");
    let session = r.set_cookie("verbund_session");
    assert!(
        session.contains("; HttpOnly")
            && session.contains("; SameSite=Lax")
            && session.contains("; Path=/"),
        "{session}"
    );
    assert!(
        !session.contains("Secure"),
        "no Secure by default: {session}"
    );
    assert!(
        session.contains(&format!("Max-Age={}", 8 * 3600)),
        "{session}"
    );
    assert!(
        r.set_cookie("verbund_login").contains("Max-Age=0"),
        "the login cookie is spent"
    );
    assert_eq!(b.cookie("verbund_session").map(str::len), Some(64));
    let id = w.user_id("admin-a").await;
    let after = w.trail().await;
    assert_eq!(
        after[before.len()..],
        [(
            "user/admin-a".to_string(),
            "session.open".to_string(),
            format!("user/{id}")
        )]
    );
    // Signed in, the sign-in page sends the browser straight on.
    let again = b.get("/login?next=/catalog").await;
    assert_eq!(
        (again.status, again.location().as_str()),
        (StatusCode::SEE_OTHER, "/catalog")
    );
    b.get("/catalog").await.shows("Konto admin-a");

    // An open redirect is refused: the browser lands on the portal's own start page.
    for evil in [
        "//evil.example",
        "https://evil.example/x",
        "/\\evil.example",
    ] {
        let mut other = w.browser();
        let r = other.sign_in("admin-b", PASSWORD, evil).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{evil}");
        assert_eq!(r.location(), "/", "next={evil}");
    }

    // Behind HTTPS every cookie carries Secure.
    let secure = app(
        &store,
        &w.clock,
        PortalConfig {
            secure_cookies: true,
            ..PortalConfig::default()
        },
    );
    let mut b = Browser {
        app: secure,
        jar: BTreeMap::new(),
        from: None,
    };
    let form = b.get("/login").await;
    assert!(form.set_cookie("verbund_login").ends_with("; Secure"));
    let r = b.sign_in("admin-a", PASSWORD, "/catalog").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let session = r.set_cookie("verbund_session");
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Lax")
            && session.ends_with("; Secure"),
        "{session}"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Wrong passwords and lock-out

async fn wrong_passwords_lock_the_account_for_a_while(store: Store) {
    let w = world(store.clone()).await;
    let id = w.user_id("admin-a").await;
    let object = format!("user/{id}");
    let max = LockPolicy::default().max_failures;
    assert_eq!(max, 5);

    // An unknown user gets the same answer, and nothing is audited.
    let before = w.trail().await;
    let mut b = w.browser();
    let r = b.sign_in("niemand", "irgendein-passwort", "/").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    r.shows(LOGIN_FAILED);
    assert!(b.cookie("verbund_session").is_none());
    assert_eq!(w.trail().await, before, "an unknown user is not audited");

    for n in 1..max {
        let r = b.sign_in("admin-a", "falsches-passwort", "/").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "failure {n}");
        r.shows(LOGIN_FAILED);
        r.shows("value=\"admin-a\"");
        assert!(!r.body.contains("gesperrt"));
    }
    let failed = |t: &[(String, String, String)]| {
        t.iter()
            .filter(|e| e.0 == "system/portal" && e.1 == "user.login-failed" && e.2 == object)
            .count()
    };
    let trail = w.trail().await;
    assert_eq!(
        failed(&trail[before.len()..]),
        (max - 1) as usize,
        "{trail:?}"
    );
    assert!(!trail.iter().any(|e| e.1 == "user.lock"));

    let r = b.sign_in("admin-a", "falsches-passwort", "/").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    r.shows("gesperrt");
    let trail = w.trail().await;
    let last: Vec<_> = trail[trail.len() - 2..]
        .iter()
        .map(|e| (e.0.as_str(), e.1.as_str(), e.2.as_str()))
        .collect();
    assert_eq!(
        last,
        [
            ("system/portal", "user.login-failed", object.as_str()),
            ("system/portal", "user.lock", object.as_str())
        ]
    );

    // Locked: even the right password does not sign in, and nothing more is counted.
    let locked = w.trail().await;
    let r = b.sign_in("admin-a", PASSWORD, "/").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    r.shows("gesperrt");
    assert!(b.cookie("verbund_session").is_none());
    assert_eq!(w.trail().await, locked);

    // The lock ends after `lock_for`.
    w.advance(LockPolicy::default().lock_for + Duration::seconds(1));
    let r = b.sign_in("admin-a", PASSWORD, "/catalog").await;
    assert_eq!(
        (r.status, r.location().as_str()),
        (StatusCode::SEE_OTHER, "/catalog")
    );
    assert_eq!(
        w.trail().await.last().map(|e| e.1.as_str()),
        Some("session.open")
    );

    // A portal's own policy is honoured: two failures lock for a second.
    let short = PortalConfig {
        lock: LockPolicy {
            max_failures: 2,
            lock_for: Duration::seconds(1),
            ..LockPolicy::default()
        },
        ..PortalConfig::default()
    };
    let mut b = Browser {
        app: app(&store, &w.clock, short),
        jar: BTreeMap::new(),
        from: None,
    };
    assert_eq!(
        b.sign_in("admin-b", "falsches-passwort", "/").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        b.sign_in("admin-b", "falsches-passwort", "/").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        b.sign_in("admin-b", PASSWORD, "/").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    w.advance(Duration::seconds(2));
    assert_eq!(
        b.sign_in("admin-b", PASSWORD, "/").await.status,
        StatusCode::SEE_OTHER
    );
}

// ---------------------------------------------------------------------------------------
// 3. CSRF

async fn forged_forms_change_nothing(store: Store) {
    let w = world(store).await;
    let before = w.trail().await;

    // Sign-in without the login cookie, or with a token that is not the cookie's.
    let mut b = w.browser();
    let token = b.get("/login").await.csrf();
    let mut stranger = w.browser();
    let r = stranger
        .post(
            "/login",
            &[
                ("name", "admin-a"),
                ("password", PASSWORD),
                ("csrf", &token),
                ("next", "/"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    r.shows("Das Formular ist abgelaufen.");
    assert!(stranger.cookie("verbund_session").is_none());
    let wrong = "0".repeat(64);
    let r = b
        .post(
            "/login",
            &[
                ("name", "admin-a"),
                ("password", PASSWORD),
                ("csrf", &wrong),
                ("next", "/"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(b.cookie("verbund_session").is_none());
    assert_eq!(
        w.trail().await,
        before,
        "a refused sign-in opens no session"
    );

    // Signed in: a form with a wrong token changes nothing.
    let mut a = w.signed_in("admin-a").await;
    let id = w.booked(&mut a).await;
    let state = w.booking_state(&id).await;
    let before = w.trail().await;
    assert_eq!(
        a.change(&id, &wrong).await,
        [StatusCode::FORBIDDEN; 2],
        "cancel, change the channel"
    );
    let r = a.post("/logout", &[("csrf", &wrong)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = a.book(&wrong, &w.a, "x.de").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(w.booking_state(&id).await, state);
    assert_eq!(
        w.store.get_booking(&id).await.expect("the booking").channel,
        "stable"
    );
    assert_eq!(w.trail().await, before, "forged posts changed the trail");
    assert_eq!(
        a.get("/catalog").await.status,
        StatusCode::OK,
        "still signed in"
    );

    // A post from another site is refused before any handler, even with the right token.
    let csrf = a.get(&format!("/bookings/{id}")).await.csrf();
    let cancel = format!("/bookings/{id}/cancel");
    let r = a
        .send(
            Method::POST,
            &cancel,
            Some(&[("csrf", &csrf)]),
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body, "cross-origin form posts are refused");
    let r = a
        .send(
            Method::POST,
            "/login",
            Some(&[("csrf", &csrf)]),
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(w.booking_state(&id).await, state);
    assert_eq!(w.trail().await, before);
    // The same post from the portal's own origin goes through.
    let r = a
        .send(
            Method::POST,
            &cancel,
            Some(&[("csrf", &csrf), ("confirm", "yes")]),
            Some(&format!("https://{HOST}")),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

// ---------------------------------------------------------------------------------------
// 4. Sessions

async fn sessions_end_and_expire(store: Store) {
    let w = world(store).await;
    let mut nobody = w.browser();
    for (path, to) in [
        ("/catalog", "/login?next=/catalog"),
        ("/fleet", "/login?next=/fleet"),
        ("/bookings/b-1", "/login?next=/bookings/b-1"),
        ("/audit", "/login?next=/audit"),
        ("/organisation?org=x", "/login?next=/organisation%3Forg%3Dx"),
    ] {
        let r = nobody.get(path).await;
        assert_eq!(
            (r.status, r.location().as_str()),
            (StatusCode::SEE_OTHER, to),
            "{path}"
        );
    }
    let r = nobody.get("/").await;
    assert_eq!(
        (r.status, r.location().as_str()),
        (StatusCode::SEE_OTHER, "/login")
    );
    // The sign-in page keeps where the browser wanted to go, and goes there after.
    let form = nobody.get("/login?next=/organisation%3Forg%3Dx").await;
    form.shows("name=\"next\" value=\"/organisation?org=x\"");
    let r = nobody
        .sign_in("admin-a", PASSWORD, "/organisation?org=x")
        .await;
    assert_eq!(
        (r.status, r.location().as_str()),
        (StatusCode::SEE_OTHER, "/organisation?org=x")
    );

    // Sign-out ends the session; the old cookie no longer works.
    let mut a = w.signed_in("admin-a").await;
    let secret = a.cookie("verbund_session").expect("a session").to_string();
    let home = a.get("/").await;
    assert_eq!(
        (home.status, home.location().as_str()),
        (StatusCode::SEE_OTHER, "/organisation")
    );
    let csrf = a.get("/catalog").await.csrf();
    let before = w.trail().await;
    let r = a.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(
        (r.status, r.location().as_str()),
        (StatusCode::SEE_OTHER, "/login")
    );
    assert!(r.set_cookie("verbund_session").contains("Max-Age=0"));
    let id = w.user_id("admin-a").await;
    assert_eq!(
        w.trail().await[before.len()..],
        [(
            "user/admin-a".to_string(),
            "session.close".to_string(),
            format!("user/{id}")
        )]
    );
    let mut replay = w.browser();
    replay.jar.insert("verbund_session".into(), secret);
    let r = replay.get("/catalog").await;
    assert_eq!(
        (r.status, r.location().as_str()),
        (StatusCode::SEE_OTHER, "/login?next=/catalog")
    );

    // A session lasts `session_hours`.
    let mut a = w.signed_in("admin-a").await;
    w.advance(Duration::hours(8) - Duration::minutes(1));
    assert_eq!(a.get("/catalog").await.status, StatusCode::OK);
    w.advance(Duration::minutes(2));
    let r = a.get("/catalog").await;
    assert_eq!(
        (r.status, r.location().as_str()),
        (StatusCode::SEE_OTHER, "/login?next=/catalog")
    );
}

// ---------------------------------------------------------------------------------------
// 5. Booking

async fn booking_works_without_javascript(store: Store) {
    let w = world(store).await;
    let mut a = w.signed_in("admin-a").await;
    let path = format!("/offerings/{OFFERING}/book");
    let form = a.get(&path).await;
    assert_eq!(form.status, StatusCode::OK);
    form.shows(&format!("<form method=\"post\" action=\"{path}\""));
    form.shows("<label class=\"kern-label\" for=\"cfg-domain\">Domäne</label>");
    form.shows("id=\"cfg-domain\" name=\"cfg.domain\" type=\"text\" value=\"\" pattern=\"^[a-z.]+$\" required");
    form.shows("Unter welcher Adresse das Portal antwortet.");
    form.shows("<label class=\"kern-label\" for=\"cfg-users\">Nutzerzahl");
    form.shows("name=\"cfg.users\" type=\"number\"");
    form.shows("value=\"50\" min=\"1\"");
    form.shows(&format!(
        "<option value=\"{}\" selected>Freie und Hansestadt Hamburg</option>",
        w.a
    ));
    form.shows("id=\"plan-s\" name=\"plan\" value=\"s\" checked");
    assert!(!form.body.contains("aria-invalid"));
    let csrf = form.csrf();

    let before = w.trail().await;
    let r = a.book(&csrf, &w.a, "NICHT GÜLTIG").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    r.shows("id=\"cfg-domain\" name=\"cfg.domain\" type=\"text\" value=\"NICHT GÜLTIG\"");
    r.shows("aria-invalid=\"true\" aria-describedby=\"cfg-domain-hint cfg-domain-error\"");
    r.shows("<p class=\"kern-error\" id=\"cfg-domain-error\" role=\"alert\">");
    r.shows("href=\"#cfg-domain\">Domäne: ");
    assert_eq!(
        r.body.matches("aria-invalid=\"true\"").count(),
        1,
        "only the domain is wrong"
    );
    r.shows("value=\"200\"");
    r.shows("Die Eingabe hat nicht das erwartete Format.");
    assert!(!r.body.contains("does not match"), "{}", r.body);
    assert_eq!(w.trail().await, before, "an invalid booking is not created");

    // Several faults at once: each at its own control, in plain German, all listed, a
    // missing value too (not a link to the organisation).
    let answers = [
        ("csrf", csrf.as_str()),
        ("organisation", w.a.as_str()),
        ("plan", "s"),
        ("channel", "stable"),
        ("cfg.domain", ""),
        ("cfg.users", "0"),
    ];
    let r = a
        .post(&format!("/offerings/{OFFERING}/book"), &answers)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    r.shows("<p class=\"kern-error\" id=\"cfg-domain-error\" role=\"alert\">Bitte ausfüllen.</p>");
    r.shows("<p class=\"kern-error\" id=\"cfg-users-error\" role=\"alert\">Bitte eine Zahl ab 1 eingeben.</p>");
    r.shows("href=\"#cfg-domain\">Domäne: Bitte ausfüllen.</a>");
    r.shows("href=\"#cfg-users\">Nutzerzahl: Bitte eine Zahl ab 1 eingeben.</a>");
    r.shows("aria-invalid=\"true\" aria-describedby=\"cfg-users-error\"");
    assert_eq!(
        r.body.matches("aria-invalid=\"true\"").count(),
        2,
        "{}",
        r.body
    );
    assert!(!r.body.contains("href=\"#organisation\""), "{}", r.body);
    assert!(!r.body.contains("required property"), "{}", r.body);
    assert_eq!(w.trail().await, before, "an invalid booking is not created");

    let r = a.book(&csrf, &w.a, "portal.hamburg.de").await;
    let id = new_booking(&r);
    let to = r.location();
    let booking = w.store.get_booking(&id).await.expect("the booking");
    assert_eq!(booking.organisation, w.a);
    assert_eq!(
        booking.config,
        json!({"domain": "portal.hamburg.de", "users": 200})
    );
    assert_eq!(booking.state.as_str(), "placed");
    assert_eq!(booking.site.as_deref(), Some("nordwerk-hh-1"));
    let object = format!("booking/{id}");
    let event = |action: &str| {
        (
            "user/admin-a".to_string(),
            action.to_string(),
            object.clone(),
        )
    };
    assert_eq!(w.trail().await[before.len()..], [event("booking.create")]);

    let page = a.get(&to).await;
    assert_eq!(page.status, StatusCode::OK);
    page.shows("Die Buchung ist angelegt.");
    // Without JavaScript nothing updates by itself, and the page does not claim it does:
    // the sentence is hidden until the script that refreshes the status shows it.
    let live = "aktualisiert sich von selbst";
    assert_eq!(page.body.matches(live).count(), 1, "{}", page.body);
    page.shows(&format!(
        "<span id=\"live-note\" data-script-only hidden>Er {live}"
    ));
    page.shows("Rechenzentrum Hamburg 1 (Hamburg, DE-HH; Nordwerk IT): zulässig");
    page.shows("<strong>Gewählt:</strong>");
    page.shows("data-state=\"placed\"");
    assert!(!page.body.contains("id=\"undeliverable\""));

    // A booking the renderer refuses says so, in German, with the reason.
    let refused = std::collections::BTreeMap::from([(
        id.clone(),
        "config /config/domain contains U+007F".to_owned(),
    )]);
    w.store
        .record_deliverability("system/desired-state", &refused, &[], chrono::Utc::now())
        .await
        .expect("recorded");
    let page = a.get(&to).await;
    page.shows("<div class=\"kern-alert kern-alert--danger\" role=\"alert\" id=\"undeliverable\">");
    page.shows("Nicht auslieferbar seit ");
    page.shows("Das Rechenzentrum behält die zuletzt ausgelieferte Fassung");
    page.shows("<code>config /config/domain contains U+007F</code>");

    // Cancelling asks first: the booking page links to a confirmation page, which says
    // what happens and until when the data is kept; opening it changes nothing.
    let confirm = format!("/bookings/{id}/cancel");
    page.shows(&format!("href=\"{confirm}\""));
    assert!(
        !page.body.contains(&format!("action=\"{confirm}\"")),
        "the booking page itself cancels nothing"
    );
    let before = w.trail().await;
    let ask = a.get(&confirm).await;
    assert_eq!(ask.status, StatusCode::OK, "{}", ask.body);
    assert_eq!(w.booking_state(&id).await, "placed");
    assert_eq!(w.trail().await, before, "asking changed the trail");
    let now = *w.clock.0.lock().expect("the clock");
    let kept = verbund_domain::rollout::german_local(now + Duration::days(30));
    ask.shows(&format!(
        "bis voraussichtlich {} (30 Tage)",
        kept.format("%d.%m.%Y")
    ));
    ask.shows(&format!("<form method=\"post\" action=\"{confirm}\""));
    ask.shows(&format!("<a class=\"kern-link\" href=\"/bookings/{id}\">"));
    // A post without the confirmation (an old page's form) only asks again.
    let csrf = ask.csrf();
    let r = a.post(&confirm, &[("csrf", &csrf)]).await;
    assert_eq!(
        (r.status, r.location().as_str()),
        (StatusCode::SEE_OTHER, confirm.as_str())
    );
    assert_eq!(w.booking_state(&id).await, "placed");

    // Confirmed, it cancels.
    let r = a
        .post(&confirm, &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), format!("/bookings/{id}?done=cancelled"));
    assert_eq!(w.booking_state(&id).await, "cancelling");
    assert_eq!(w.trail().await[before.len()..], [event("booking.cancel")]);
    let after = a.get(&r.location()).await;
    after.shows("Die Buchung ist gekündigt.");
    assert!(
        !after
            .body
            .contains(&format!("action=\"/bookings/{id}/cancel\"")),
        "no second cancel"
    );
}

// ---------------------------------------------------------------------------------------
// 6. Tenant isolation

async fn tenants_are_isolated_in_the_portal(store: Store) {
    let w = world(store).await;
    let mut a = w.signed_in("admin-a").await;
    let id = w.booked(&mut a).await;
    let mine = a.get("/organisation").await;
    assert_eq!(mine.status, StatusCode::OK);
    mine.shows(&format!("/bookings/{id}"));

    let mut b = w.signed_in("admin-b").await;
    let state = w.booking_state(&id).await;
    let before = w.trail().await;
    let r = b.get(&format!("/bookings/{id}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert!(!r.body.contains("portal.hamburg.de"));
    let own = b.get(&format!("/organisation?org={}", w.b)).await;
    assert_eq!(own.status, StatusCode::OK);
    own.shows("Flensburg, Stadt");
    assert!(!own.body.contains(&id), "B sees A's booking");
    let csrf = own.csrf();
    assert_eq!(
        b.change(&id, &csrf).await,
        [StatusCode::NOT_FOUND; 2],
        "cancel, change the channel"
    );
    assert_eq!(w.booking_state(&id).await, state);
    assert_eq!(w.trail().await, before, "B's attempts changed something");
    // B cannot book for A either.
    let r = b.book(&csrf, &w.a, "x.de").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    r.shows("Keine Berechtigung");
    assert_eq!(w.trail().await, before);
}

/// Another organisation's pages (asked for by id or by key) are refused, not shown empty.
async fn foreign_organisation_pages_are_refused(store: Store) {
    let w = world(store).await;
    let mut a = w.signed_in("admin-a").await;
    let id = w.booked(&mut a).await;
    let mut b = w.signed_in("admin-b").await;
    for path in [
        format!("/organisation?org={}", w.a),
        "/organisation?org=020000000000".to_string(),
        format!("/organisation/data?org={}", w.a),
        format!("/organisation/export?org={}", w.a),
    ] {
        let r = b.get(&path).await;
        assert!(!r.body.contains(&id), "{path} leaks A's booking");
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.body);
        r.shows("Nicht gefunden");
        assert!(
            !r.body.contains("Freie und Hansestadt Hamburg"),
            "{path} shows A"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 7. Headers, language, unknown pages

#[track_caller]
fn assert_security_headers(r: &Answer, what: &str) {
    let csp = r.header("content-security-policy");
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{what}: {csp}"
    );
    assert_eq!(r.header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(r.header("x-frame-options"), "DENY", "{what}");
}

async fn headers_language_and_unknown_pages(store: Store) {
    let w = world(store).await;
    let mut nobody = w.browser();
    let login = nobody.get("/login").await;
    assert_security_headers(&login, "/login");
    login.shows("<html lang=\"de\">");
    assert_security_headers(&nobody.get("/catalog").await, "a redirect");

    let mut a = w.signed_in("admin-a").await;
    let de = a.get("/catalog").await;
    assert_security_headers(&de, "/catalog");
    // The style sheet, unlike the pages, may be cached (its link carries the version).
    let css = a.get("/assets/portal.css").await;
    assert_eq!(css.header("cache-control"), "public, max-age=86400");
    de.shows("<html lang=\"de\">");
    de.shows("Zum Inhalt springen");
    let r = a.get("/language?to=en&back=/catalog").await;
    assert_eq!(
        (r.status, r.location().as_str()),
        (StatusCode::SEE_OTHER, "/catalog")
    );
    let lang = r.set_cookie("verbund_lang");
    assert!(
        lang.starts_with("verbund_lang=en;") && lang.contains("Path=/"),
        "{lang}"
    );
    let en = a.get("/catalog").await;
    en.shows("<html lang=\"en\">");
    en.shows("Skip to content");
    en.shows("Sign out");
    assert!(!en.body.contains("Abmelden"));
    for evil in ["https://evil.example", "//evil.example"] {
        let r = a.get(&format!("/language?to=de&back={}", enc(evil))).await;
        assert_eq!(
            (r.status, r.location().as_str()),
            (StatusCode::SEE_OTHER, "/"),
            "{evil}"
        );
    }
    a.get("/language?to=de&back=/catalog").await;
    a.get("/catalog").await.shows("<html lang=\"de\">");

    for mut who in [w.browser(), a] {
        let r = who.get("/gibt-es-nicht").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.header("content-type"), "text/html; charset=utf-8");
        r.shows("Nicht gefunden");
        r.shows("<main id=\"main\"");
        assert_security_headers(&r, "404");
    }
}

/// Browsers drop tabs and line breaks from a `Location` (WHATWG URL parsing), so
/// `/<TAB>/evil.example` is `//evil.example` to them: no return path may lead there.
async fn no_way_back_leads_off_site(store: Store) {
    let w = world(store).await;
    for evil in ["/\t/evil.example", "/\n/evil.example", "/\r/evil.example"] {
        let mut b = w.browser();
        let r = b.sign_in("admin-a", PASSWORD, evil).await;
        assert_eq!(
            (r.status, r.location().as_str()),
            (StatusCode::SEE_OTHER, "/"),
            "sign-in with next={evil:?}"
        );
        let r = b.get(&format!("/language?to=en&back={}", enc(evil))).await;
        assert_eq!(
            (r.status, r.location().as_str()),
            (StatusCode::SEE_OTHER, "/"),
            "language switch with back={evil:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 8. Every page

async fn every_page_has_the_shared_frame(store: Store) {
    let w = world(store).await;
    let mut a = w.signed_in("admin-a").await;
    let id = w.booked(&mut a).await;
    let mut admin = w.signed_in("admin").await;
    let mut auditor = w.signed_in("auditor").await;
    for (who, path) in [
        ("a", "/catalog".to_string()),
        ("a", format!("/offerings/{OFFERING}")),
        ("a", format!("/offerings/{OFFERING}/book")),
        ("a", format!("/bookings/{id}")),
        ("a", format!("/bookings/{id}/cancel")),
        ("a", "/organisation".into()),
        ("a", "/organisation/data".into()),
        ("a", "/policies".into()),
        ("admin", "/fleet".into()),
        ("admin", "/rollouts".into()),
        ("admin", "/audit".into()),
        ("admin", "/policies".into()),
        ("admin", "/work".into()),
        ("admin", format!("/offerings/{OFFERING}/publish")),
        ("admin", format!("/rollouts/new?offering={OFFERING}")),
        ("auditor", "/audit".into()),
        ("nobody", "/login".into()),
    ] {
        let r = match who {
            "a" => a.get(&path).await,
            "admin" => admin.get(&path).await,
            "auditor" => auditor.get(&path).await,
            _ => w.browser().get(&path).await,
        };
        assert_eq!(r.status, StatusCode::OK, "{who} {path}: {}", r.body);
        assert_eq!(r.body.matches("<h1").count(), 1, "{path}: one <h1>");
        assert_eq!(
            r.body.matches("<main id=\"main\"").count(),
            1,
            "{path}: one <main>"
        );
        r.shows("<a class=\"skip-link\" href=\"#main\">");
        assert_security_headers(&r, &path);
        assert_eq!(r.header("cache-control"), "no-store", "{path}");
    }
    // What a role may not see is refused as a page of its own, in the same frame.
    for path in ["/rollouts", "/audit"] {
        let r = a.get(path).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "admin-a {path}");
        r.shows("Keine Berechtigung");
        // Said in German, not in the role policies' English.
        r.shows("Ihre Rollen erlauben das nicht.");
        assert!(!r.body.contains("your roles"), "{path}: {}", r.body);
        assert_eq!(r.body.matches("<h1").count(), 1, "{path}: one <h1>");
        r.shows("<main id=\"main\"");
    }
    let r = a.get("/organisation/export").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("cache-control"), "no-store", "the export");
    assert!(r
        .header("content-disposition")
        .starts_with("attachment; filename=\"verbund-"));
    let export: Value = serde_json::from_str(&r.body).expect("JSON");
    assert_eq!(export["organisation"]["id"], json!(w.a));
    assert_eq!(export["exported_by"], json!("user/admin-a"));
    assert_eq!(export["bookings"][0]["booking"]["id"], json!(id));
    assert_eq!(export["bookings"].as_array().map(Vec::len), Some(1));
}

/// The main navigation offers only pages the person may open.
async fn every_navigation_link_opens_a_page(store: Store) {
    let w = world(store).await;
    for name in ["admin-a", "admin", "auditor", "vendor", "operator"] {
        let mut b = w.signed_in(name).await;
        let page = b.get("/catalog").await;
        let start = page
            .body
            .find("<nav class=\"portal-nav\"")
            .expect("a navigation");
        let nav = &page.body[start..];
        let nav = &nav[..nav.find("</nav>").expect("the end of the navigation")];
        let links: Vec<&str> = nav
            .split("href=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert!(links.len() >= 2, "{name}: {links:?}");
        // Vendors and operators read no organisation's policies, so they get no link.
        assert_eq!(
            links.contains(&"/policies"),
            !matches!(name, "vendor" | "operator"),
            "{name}: {links:?}"
        );
        // "Aufgaben" for those with a queue: approvals, proposals, rollouts.
        assert_eq!(
            links.contains(&"/work"),
            matches!(name, "admin" | "vendor" | "operator"),
            "{name}: {links:?}"
        );
        for link in links {
            let r = b.get(link).await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "{name} follows {link}: {}",
                r.body
            );
            // A signed-in page stays out of every cache (a shared computer's back button).
            assert_eq!(r.header("cache-control"), "no-store", "{name}: {link}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 9. Preflight

/// The fleet page says per site whether its last preflight passed, which checks did not,
/// or that it never reported one; a booking the failed preflight turned away says why.
async fn the_fleet_shows_each_sites_last_preflight(store: Store) {
    use verbund_domain::directory::Delivery;
    use verbund_domain::preflight::{PreflightCheck, PreflightReport, PreflightVerdict};

    let w = world(store).await;
    let mut admin = w.signed_in("admin").await;
    let page = admin.get("/fleet").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.shows("<th scope=\"col\" class=\"kern-table__header\">Vorabprüfung</th>");
    page.shows("data-preflight=\"none\"");
    page.shows("keine Vorabprüfung gemeldet");

    let report = PreflightReport {
        agent: "verbund-agent/test".into(),
        delivery: Delivery::Flux,
        kubernetes_version: Some("v1.31.4".into()),
        checks: vec![
            PreflightCheck {
                name: "ingress-class".into(),
                verdict: PreflightVerdict::Pass,
                reason: "the IngressClass `nginx` exists".into(),
            },
            PreflightCheck {
                name: "network-policy".into(),
                verdict: PreflightVerdict::Fail,
                reason: "NetworkPolicy is not enforced: the denied client connected".into(),
            },
        ],
    };
    w.store
        .record_preflight("nordwerk-hh-1", &report, Utc::now())
        .await
        .expect("the preflight is recorded");
    let page = admin.get("/fleet").await;
    page.shows("data-preflight=\"fail\"");
    page.shows("nicht bestanden – keine neuen Buchungen");
    page.shows(
        "<code>network-policy</code>: NetworkPolicy is not enforced: the denied client connected",
    );
    assert!(
        !page.body.contains("<code>ingress-class</code>"),
        "passed checks are not listed"
    );

    // A new booking finds no site, and its page says why in the reader's language.
    let mut a = w.signed_in("admin-a").await;
    let id = w.booked(&mut a).await;
    assert_eq!(w.booking_state(&id).await, "rejected");
    a.get(&format!("/bookings/{id}")).await.shows(
        "sein Cluster die Vorabprüfung (verbund agent preflight) nicht bestanden hat: \
         NetworkPolicy is not enforced: the denied client connected",
    );
    admin.get("/language?to=en&back=/fleet").await;
    let page = admin.get("/fleet").await;
    page.shows("failed – no new bookings");
    page.shows(">Preflight</th>");
}

// ---------------------------------------------------------------------------------------
// 10. Names

/// German pages name plans, layers, categories and offerings in German, by their titles,
/// not by their keys; a federation rule reads as what it requires; a vendor's text in
/// another language than the page's carries its `lang`.
async fn german_pages_name_things_in_german(store: Store) {
    let w = world(store).await;
    let mut a = w.signed_in("admin-a").await;
    let id = w.booked(&mut a).await;
    let booking = a.get(&format!("/bookings/{id}")).await;
    booking.shows("<dd class=\"kern-description-list-item__value\">Klein</dd>");
    let data = a.get("/organisation/data").await;
    data.shows("<dd class=\"kern-description-list-item__value\">Bürgerportal</dd>");
    let catalog = a.get("/catalog").await;
    catalog.shows("<p class=\"kern-preline\">Software als Dienst (SaaS)</p>");
    catalog.shows(">Software als Dienst (SaaS)</option>");
    assert!(!catalog.body.contains("SAAS"), "{}", catalog.body);
    a.get(&format!("/offerings/{OFFERING}"))
        .await
        .shows("Software als Dienst (SaaS) · Anbieter");
    let policies = a.get("/policies").await;
    policies.shows("Ebene: Föderation");
    assert!(!policies.body.contains("Ebene: federation"));
    policies.shows(
        "<span class=\"kern-label\">Einschränkung</span></span> Personenbezogene Daten dürfen nur in Rechenzentren innerhalb der EU verarbeitet werden.",
    );
    assert!(!policies
        .body
        .contains("verbietet</span></span> personenbezogene"));

    // Texts in another language than the page's say which (WCAG 3.1.2): the offering's
    // German description on the English page, and none on the German one.
    let offering = format!("/offerings/{OFFERING}");
    a.get(&offering)
        .await
        .shows("<p class=\"kern-body kern-body--large\">Ein Portal für Anträge.</p>");
    a.get("/language?to=en&back=/catalog").await;
    a.get(&offering)
        .await
        .shows("<p class=\"kern-body kern-body--large\" lang=\"de\">Ein Portal für Anträge.</p>");
    a.get(&format!("{offering}/book"))
        .await
        .shows("<div class=\"kern-hint\" id=\"cfg-domain-hint\" lang=\"de\">Unter welcher Adresse");
    a.get("/catalog")
        .await
        .shows("<p class=\"kern-body\" lang=\"de\">Ein Portal für Anträge.</p>");
}

// ---------------------------------------------------------------------------------------
// Accounts with a life cycle (issue 16)

/// The number of audit events `action` about the account `name`.
async fn count_events(w: &World, action: &str, name: &str) -> usize {
    let object = format!("user/{}", w.user_id(name).await);
    w.trail()
        .await
        .iter()
        .filter(|e| e.1 == action && e.2 == object)
        .count()
}

async fn sign_ins_are_throttled_by_source_and_account_atomically(store: Store) {
    let w = world(store.clone()).await;
    let policy = LockPolicy {
        max_failures_per_source: 8,
        ..LockPolicy::default()
    };
    let config = PortalConfig {
        trust_forwarded_for: true,
        lock: policy,
        ..PortalConfig::default()
    };
    // Enough Argon2 permits that no attempt is turned away as busy.
    let app = app_hashing(&store, &w.clock, config, HashingLimit::new(64));
    let browser = |from: &str| Browser {
        app: app.clone(),
        jar: BTreeMap::new(),
        from: Some(from.into()),
    };

    // Many wrong attempts at once from one address: only the limit is evaluated.
    let mut attacker = browser("10.0.0.1");
    let token = attacker.get("/login").await.csrf();
    let cookie = attacker.jar.clone();
    let attempts = (0..24).map(|_| {
        let mut b = Browser {
            jar: cookie.clone(),
            ..browser("10.0.0.1")
        };
        let token = token.clone();
        tokio::spawn(async move {
            b.post(
                "/login",
                &[
                    ("name", "admin-a"),
                    ("password", "falsches-passwort"),
                    ("csrf", &token),
                    ("next", "/"),
                ],
            )
            .await
            .status
        })
    });
    let mut statuses = Vec::new();
    for a in attempts {
        statuses.push(a.await.expect("an attempt"));
    }
    let evaluated = count_events(&w, "user.login-failed", "admin-a").await;
    assert_eq!(
        evaluated, policy.max_failures as usize,
        "at most the limit of passwords is evaluated: {statuses:?}"
    );
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        refused > 24 - evaluated
            && statuses
                .iter()
                .all(|s| [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(s)),
        "the rest, and the failure that locked, answer 429: {statuses:?}"
    );

    // From that address even the right password is refused now; from another one the
    // owner gets in: an attacker cannot keep the account locked for everybody.
    let r = attacker.sign_in("admin-a", PASSWORD, "/catalog").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    r.shows("gesperrt");
    let mut owner = browser("10.0.0.2");
    let r = owner.sign_in("admin-a", PASSWORD, "/catalog").await;
    assert_eq!(
        (r.status, r.location().as_str()),
        (StatusCode::SEE_OTHER, "/catalog"),
        "{}",
        r.body
    );

    // One address guessing across accounts is stopped after its own limit, whatever the
    // names; the right password from there does not pass either, until the window ends.
    let mut sprayer = browser("10.0.0.3");
    for i in 0..policy.max_failures_per_source {
        let r = sprayer
            .sign_in(&format!("niemand-{i}"), "falsches-passwort", "/")
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = sprayer.sign_in("admin-b", PASSWORD, "/").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    r.shows("Zu viele Fehlversuche von Ihrer Adresse aus.");
    w.advance(policy.lock_for + Duration::seconds(1));
    let r = sprayer.sign_in("admin-b", PASSWORD, "/").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // Argon2 work is bounded: with every permit taken, a sign-in is refused at once,
    // counts as no attempt, and says when to come back.
    let hashing = HashingLimit::new(1);
    let busy = app_hashing(&store, &w.clock, PortalConfig::default(), hashing.clone());
    let held = hashing.exhaust().await.expect("the permits");
    let mut b = Browser {
        app: busy,
        jar: BTreeMap::new(),
        from: None,
    };
    let before = w.trail().await;
    let r = b.sign_in("admin-b", "falsches-passwort", "/").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.header("retry-after"), "1");
    r.shows("ausgelastet");
    assert_eq!(w.trail().await, before, "nothing was evaluated or counted");
    drop(held);
    let r = b.sign_in("admin-b", PASSWORD, "/").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

async fn disabled_accounts_and_changed_passwords_end_sessions_at_once(store: Store) {
    let w = world(store.clone()).await;
    let id = w.user_id("admin-a").await;
    let mut a = w.signed_in("admin-a").await;
    assert_eq!(a.get("/catalog").await.status, StatusCode::OK);

    // Disabled: the open session stops working at the next request, and the right
    // password signs in no more (and says why only then).
    store
        .disable_user("user/admin", &id, Utc::now())
        .await
        .expect("disable");
    let r = a.get("/catalog").await;
    assert_eq!(
        (r.status, r.location().as_str()),
        (StatusCode::SEE_OTHER, "/login?next=/catalog")
    );
    let mut b = w.browser();
    let r = b.sign_in("admin-a", "falsches-passwort", "/").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    r.shows(LOGIN_FAILED);
    let r = b.sign_in("admin-a", PASSWORD, "/").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    r.shows("Dieses Konto ist deaktiviert.");
    assert!(b.cookie("verbund_session").is_none());
    store
        .enable_user("user/admin", &id, Utc::now())
        .await
        .expect("enable");

    // A password change through the API ends every portal session of the account.
    let mut first = w.signed_in("admin-a").await;
    let mut second = w.signed_in("admin-a").await;
    let mut other = w.signed_in("admin-b").await;
    let (_, token) = verbund_api::issue_token(&store, "test/setup", &id, "t", None, Utc::now())
        .await
        .expect("a token");
    let req = Request::builder()
        .method(Method::PUT)
        .uri(format!("/api/v1/users/{id}/password"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"current_password": PASSWORD, "password": "ein-neues-langes-passwort"})
                .to_string(),
        ))
        .expect("a request");
    let resp = w.app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    for b in [&mut first, &mut second] {
        assert_eq!(b.get("/catalog").await.status, StatusCode::SEE_OTHER);
    }
    assert_eq!(
        other.get("/catalog").await.status,
        StatusCode::OK,
        "nobody else's"
    );
    let mut again = w.browser();
    let r = again
        .sign_in("admin-a", "ein-neues-langes-passwort", "/")
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

async fn oversized_forms_and_slow_requests_get_german_pages(store: Store) {
    let w = world(store.clone()).await;
    let mut b = w.browser();
    let token = b.get("/login").await.csrf();
    let huge = "x".repeat(verbund_web::MAX_FORM_BYTES + 1);
    let r = b
        .post(
            "/login",
            &[
                ("name", "admin-a"),
                ("password", &huge),
                ("csrf", &token),
                ("next", "/"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    r.shows("<html lang=\"de\"");
    r.shows("Anfrage zu groß");
    r.shows("Das Formular ist zu groß");
    // The same for a signed-in person's form.
    let mut a = w.signed_in("admin-a").await;
    let csrf = a.get("/catalog").await.csrf();
    let r = a.post("/logout", &[("csrf", &csrf), ("x", &huge)]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    r.shows("Anfrage zu groß");
    assert_eq!(
        a.get("/catalog").await.status,
        StatusCode::OK,
        "still signed in"
    );

    // Every route has a timeout; a request over it is stopped with 408 and a page.
    let slow = app(
        &store,
        &w.clock,
        PortalConfig {
            request_timeout: std::time::Duration::ZERO,
            ..PortalConfig::default()
        },
    );
    // A sign-in, whose Argon2 verification alone takes longer than that.
    let mut b = w.browser();
    let token = b.get("/login").await.csrf();
    b.app = slow;
    let r = b
        .post(
            "/login",
            &[
                ("name", "admin-b"),
                ("password", PASSWORD),
                ("csrf", &token),
                ("next", "/"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT);
    r.shows("<html lang=\"de\"");
    r.shows("Zeitüberschreitung");
}

// ---------------------------------------------------------------------------------------
// 11. Lists and groups of a configuration

/// An offering whose schema has a list of host names and two groups, one required.
const STRUCTURED: &str = "fachverfahren";

fn structured_schema() -> Value {
    json!({
        "type": "object",
        "required": ["hosts", "registry"],
        "additionalProperties": false,
        "properties": {
            "hosts": {"type": "array", "title": "Erlaubte Hosts", "minItems": 1,
                      "description": "Die Rechner, die das Verfahren nutzen dürfen.",
                      "items": {"type": "string", "pattern": "^[a-z.]+$"}},
            "registry": {"type": "object", "title": "Melderegister",
                         "additionalProperties": false,
                         "required": ["procedure", "endpoint"],
                         "properties": {
                             "procedure": {"enum": ["ewo", "meso"], "title": "Verfahren"},
                             "endpoint": {"type": "string", "title": "Adresse", "pattern": "^https://"}
                         }},
            "features": {"type": "object", "title": "Funktionen", "additionalProperties": false,
                         "properties": {
                             "eid": {"type": "boolean", "title": "Online-Ausweis", "default": true},
                             "appointments": {"type": "boolean", "title": "Termine", "default": false}
                         }}
        }
    })
}

impl World {
    /// A bearer token of the federation admin, for setting things up through the API.
    async fn admin_token(&self) -> String {
        let id = self.user_id("admin").await;
        let (_, token) =
            verbund_api::issue_token(&self.store, "test/setup", &id, "more", None, Utc::now())
                .await
                .expect("a token");
        token.as_str().to_string()
    }

    /// Publishes the offering with lists and groups.
    async fn structured_offering(&self) {
        let t = self.admin_token().await;
        let vendor = self
            .store
            .get_offering(OFFERING)
            .await
            .expect("the first offering")
            .spec
            .vendor;
        api(&self.app, &t, "/api/v1/offerings", json!({
            "name": STRUCTURED, "display_name": "Fachverfahren", "description": "Ein Fachverfahren.",
            "vendor": vendor, "category": "saas", "data_classes": ["internal"],
            "plans": [{"name": "s", "display_name": "Klein", "replicas": 1,
                       "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 10},
                       "monthly_price_cents": 9900}],
            "config_schema": structured_schema(),
        }))
        .await;
        self.first_version(&t, STRUCTURED).await;
    }

    /// Publishes `offering`'s version 1.0.0.
    async fn first_version(&self, token: &str, offering: &str) {
        api(
            &self.app,
            token,
            &format!("/api/v1/offerings/{offering}/versions"),
            json!({
                "version": "1.0.0", "changelog": "Erste Fassung.",
                "package": {"type": "helm", "repository": "https://charts.example.org",
                            "chart": "app", "chart_version": "1.0.0"},
            }),
        )
        .await;
    }
}

/// A list is rows of inputs with "Weitere Zeile" and "Zeile n entfernen" buttons that
/// show the form again (booking nothing) with everything entered; a group is a fieldset
/// with the schema's title as its legend; faults inside them are shown at their control
/// and listed with the group's name; the booking's configuration is the structure the
/// schema asks for, and nobody typed JSON.
async fn lists_and_groups_book_without_json_or_javascript(store: Store) {
    let w = world(store).await;
    w.structured_offering().await;
    let mut a = w.signed_in("admin-a").await;
    let path = format!("/offerings/{STRUCTURED}/book");
    let form = a.get(&path).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(!form.body.contains("<textarea"), "{}", form.body);
    form.shows("<legend class=\"kern-label\" id=\"cfg-hosts-legend\">Erlaubte Hosts</legend>");
    form.shows("<div class=\"kern-hint\" id=\"cfg-hosts-hint\">Die Rechner, die das Verfahren nutzen dürfen.</div>");
    form.shows("<input type=\"hidden\" name=\"rows.hosts\" value=\"1\">");
    form.shows("<label class=\"kern-label\" for=\"cfg-hosts-0\">Zeile 1</label>");
    form.shows("id=\"cfg-hosts-0\" name=\"cfg.hosts.0\" type=\"text\" value=\"\"");
    form.shows("name=\"remove\" value=\"hosts.0\" formnovalidate><span class=\"kern-label\">Zeile 1 entfernen</span>");
    form.shows("name=\"add\" value=\"hosts\" formnovalidate aria-describedby=\"cfg-hosts-legend\"><span class=\"kern-label\">Weitere Zeile</span>");
    form.shows("<legend class=\"kern-label\" id=\"cfg-registry-legend\">Melderegister</legend>");
    form.shows("<label class=\"kern-label\" for=\"cfg-registry-endpoint\">Adresse</label>");
    form.shows("id=\"cfg-registry-procedure\" name=\"cfg.registry.procedure\"");
    form.shows("<legend class=\"kern-label\" id=\"cfg-features-legend\">Funktionen <span class=\"kern-label__optional\">(optional)</span></legend>");
    form.shows("id=\"cfg-features-eid\" name=\"cfg.features.eid\" value=\"true\" checked");
    let csrf = form.csrf();
    let key = form.hidden("idempotency");
    let base = |extra: &[(&'static str, &'static str)]| {
        let mut f: Vec<(String, String)> = vec![
            ("csrf".into(), csrf.clone()),
            ("idempotency".into(), key.clone()),
            ("organisation".into(), w.a.clone()),
            ("plan".into(), "s".into()),
            ("channel".into(), "stable".into()),
        ];
        f.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        f
    };
    let post = async |a: &mut Browser, f: Vec<(String, String)>| {
        let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        a.post(&path, &pairs).await
    };
    let before = w.trail().await;

    // "Weitere Zeile": the form again with a second row, focused, the first kept.
    let r = post(
        &mut a,
        base(&[
            ("rows.hosts", "1"),
            ("cfg.hosts.0", "a.example.de"),
            ("cfg.registry.endpoint", "https://melde.example.de"),
            ("add", "hosts"),
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.shows("<input type=\"hidden\" name=\"rows.hosts\" value=\"2\">");
    r.shows("name=\"cfg.hosts.0\" type=\"text\" value=\"a.example.de\"");
    r.shows("id=\"cfg-hosts-1\" name=\"cfg.hosts.1\" type=\"text\" value=\"\" pattern=\"^[a-z.]+$\" autofocus");
    r.shows("value=\"https://melde.example.de\"");
    assert_eq!(r.hidden("idempotency"), key, "the form keeps its key");
    assert!(!r.body.contains("aria-invalid"), "nothing was checked yet");
    assert_eq!(w.trail().await, before, "a row button books nothing");

    // "Zeile 1 entfernen": the second row moves up.
    let r = post(
        &mut a,
        base(&[
            ("rows.hosts", "2"),
            ("cfg.hosts.0", "a.example.de"),
            ("cfg.hosts.1", "b.example.de"),
            ("remove", "hosts.0"),
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.shows("<input type=\"hidden\" name=\"rows.hosts\" value=\"1\">");
    r.shows("name=\"cfg.hosts.0\" type=\"text\" value=\"b.example.de\"");
    assert!(!r.body.contains("a.example.de"), "{}", r.body);
    assert_eq!(w.trail().await, before, "a row button books nothing");

    // Faults inside a list and a group: each at its control, listed with the group.
    let r = post(
        &mut a,
        base(&[
            ("rows.hosts", "2"),
            ("cfg.hosts.0", ""),
            ("cfg.hosts.1", "NICHT GÜLTIG"),
            ("cfg.registry.endpoint", "http://unsicher"),
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    r.shows("<p class=\"kern-error\" id=\"cfg-hosts-0-error\" role=\"alert\">Die Eingabe hat nicht das erwartete Format.</p>");
    r.shows("<p class=\"kern-error\" id=\"cfg-registry-procedure-error\" role=\"alert\">Bitte ausfüllen.</p>");
    r.shows("<p class=\"kern-error\" id=\"cfg-registry-endpoint-error\" role=\"alert\">Die Eingabe hat nicht das erwartete Format.</p>");
    r.shows("href=\"#cfg-registry-procedure\">Melderegister – Verfahren: Bitte ausfüllen.</a>");
    r.shows("href=\"#cfg-hosts-0\">Erlaubte Hosts – Zeile 1: Die Eingabe hat nicht das erwartete Format.</a>");
    assert_eq!(
        r.body.matches("aria-invalid=\"true\"").count(),
        3,
        "{}",
        r.body
    );
    assert_eq!(w.trail().await, before, "an invalid booking is not created");
    // A list left blank: at least one entry is asked for, at the list.
    let r = post(&mut a, base(&[("rows.hosts", "1"), ("cfg.hosts.0", "")])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    r.shows("<p class=\"kern-error\" id=\"cfg-hosts-error\">Bitte mindestens einen Eintrag angeben.</p>");

    // Valid: the configuration has the schema's structure; blank rows and an untouched
    // optional group are left out.
    let r = post(
        &mut a,
        base(&[
            ("rows.hosts", "3"),
            ("cfg.hosts.0", "a.example.de"),
            ("cfg.hosts.1", ""),
            ("cfg.hosts.2", "b.example.de"),
            ("cfg.registry.procedure", "meso"),
            ("cfg.registry.endpoint", "https://melde.example.de"),
            ("cfg.features.eid", "true"),
        ]),
    )
    .await;
    let id = new_booking(&r);
    let booking = w.store.get_booking(&id).await.expect("the booking");
    assert_eq!(
        booking.config,
        json!({"hosts": ["a.example.de", "b.example.de"],
               "registry": {"procedure": "meso", "endpoint": "https://melde.example.de"}})
    );
    // A group changed from its defaults is kept whole.
    let form = a.get(&path).await;
    let mut f = vec![
        ("csrf".to_string(), form.csrf()),
        ("idempotency".to_string(), form.hidden("idempotency")),
        ("organisation".to_string(), w.a.clone()),
        ("plan".to_string(), "s".to_string()),
        ("channel".to_string(), "stable".to_string()),
    ];
    f.extend(
        [
            ("rows.hosts", "1"),
            ("cfg.hosts.0", "c.example.de"),
            ("cfg.registry.procedure", "ewo"),
            ("cfg.registry.endpoint", "https://melde.example.de"),
            ("cfg.features.appointments", "true"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let id = new_booking(&post(&mut a, f).await);
    let booking = w.store.get_booking(&id).await.expect("the booking");
    assert_eq!(
        booking.config["features"],
        json!({"eid": false, "appointments": true})
    );
}

/// The booking form carries a one-time key: sent twice (a double click, a retry after a
/// lost answer), it books once and both answers lead to the same booking.
async fn a_booking_form_sent_twice_books_once(store: Store) {
    let w = world(store).await;
    let mut a = w.signed_in("admin-a").await;
    let path = format!("/offerings/{OFFERING}/book");
    let form = a.get(&path).await;
    let key = form.hidden("idempotency");
    assert!(key.len() >= 32, "a key with enough randomness: {key}");
    let other = a.get(&path).await.hidden("idempotency");
    assert_ne!(key, other, "each form gets its own key");
    let csrf = form.csrf();
    let answers = [
        ("csrf", csrf.as_str()),
        ("idempotency", key.as_str()),
        ("organisation", w.a.as_str()),
        ("plan", "s"),
        ("channel", "stable"),
        ("cfg.domain", "portal.hamburg.de"),
        ("cfg.users", "200"),
    ];
    let before = w.trail().await;
    let first = new_booking(&a.post(&path, &answers).await);
    let second = new_booking(&a.post(&path, &answers).await);
    assert_eq!(first, second, "the second post answers the first booking");
    let created: Vec<_> = w.trail().await[before.len()..]
        .iter()
        .filter(|(_, action, _)| action == "booking.create")
        .cloned()
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    // Another form (its own key) books again.
    let answers = [
        ("csrf", csrf.as_str()),
        ("idempotency", other.as_str()),
        ("organisation", w.a.as_str()),
        ("plan", "s"),
        ("channel", "stable"),
        ("cfg.domain", "portal.hamburg.de"),
        ("cfg.users", "200"),
    ];
    assert_ne!(new_booking(&a.post(&path, &answers).await), first);
}

// ---------------------------------------------------------------------------------------
// 12. Dependencies before booking

/// An offering that needs a database: before booking, its page and its form say that a
/// booking brings the database with it, newly booked on the shared site; once the
/// organisation has one there, that its booking is used (by id) — and booking binds
/// exactly that one, because the page asks placement's own decision.
async fn the_offering_says_what_a_booking_brings_with_it(store: Store) {
    let w = world(store).await;
    let t = w.admin_token().await;
    let vendor = w
        .store
        .get_offering(OFFERING)
        .await
        .expect("the first offering")
        .spec
        .vendor;
    let plan = json!([{"name": "s", "display_name": "Klein", "replicas": 1,
                       "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 10},
                       "monthly_price_cents": 900}]);
    for (name, title, deps) in [
        ("datenbank", "Datenbank", json!([])),
        (
            "mit-datenbank",
            "Verfahren mit Datenbank",
            json!([{"offering": "datenbank", "plan": "s"}]),
        ),
    ] {
        api(
            &w.app,
            &t,
            "/api/v1/offerings",
            json!({
                "name": name, "display_name": title, "description": "Zum Testen.",
                "vendor": vendor, "category": "saas", "data_classes": ["internal"],
                "plans": plan, "config_schema": {"type": "object"}, "dependencies": deps,
            }),
        )
        .await;
        w.first_version(&t, name).await;
    }
    let mut a = w.signed_in("admin-a").await;
    let site = "Gemeinsames Rechenzentrum: Rechenzentrum Hamburg 1";
    for path in ["/offerings/mit-datenbank", "/offerings/mit-datenbank/book"] {
        let page = a.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        page.shows("<h2 class=\"kern-heading-medium\" id=\"brings-title\">Was eine Buchung mit sich bringt</h2>");
        page.shows("Bei einer Buchung jetzt für <strong>Freie und Hansestadt Hamburg</strong>:");
        page.shows("<strong>Datenbank</strong> (Tarif Klein): wird neu mitgebucht");
        page.shows(site);
    }
    let plain = a.get(&format!("/offerings/{OFFERING}")).await;
    assert!(
        !plain.body.contains("brings-title"),
        "nothing to bring: nothing said"
    );

    // Booked once, the database comes with it; the next booking uses that one.
    let form = a.get("/offerings/mit-datenbank/book").await;
    let book = |form: &Answer| {
        vec![
            ("csrf".to_string(), form.csrf()),
            ("idempotency".to_string(), form.hidden("idempotency")),
            ("organisation".to_string(), w.a.clone()),
            ("plan".to_string(), "s".to_string()),
            ("channel".to_string(), "stable".to_string()),
        ]
    };
    let post = async |a: &mut Browser, f: Vec<(String, String)>| {
        let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        a.post("/offerings/mit-datenbank/book", &pairs).await
    };
    let first = new_booking(&post(&mut a, book(&form)).await);
    let first = w.store.get_booking(&first).await.expect("the booking");
    assert_eq!(first.dependencies.len(), 1, "{first:?}");
    let database = first.dependencies[0].clone();
    let page = a.get("/offerings/mit-datenbank").await;
    page.shows(&format!(
        "<strong>Datenbank</strong> (Tarif Klein): Ihre bestehende Buchung wird mitgenutzt (<a class=\"kern-link\" href=\"/bookings/{database}\">"
    ));
    page.shows(site);
    let form = a.get("/offerings/mit-datenbank/book").await;
    let second = new_booking(&post(&mut a, book(&form)).await);
    let second = w.store.get_booking(&second).await.expect("the booking");
    assert_eq!(
        second.dependencies,
        std::slice::from_ref(&database),
        "the page said which one is bound"
    );

    // The form offers the running database by choice; chosen, it is the one bound.
    let form = a.get("/offerings/mit-datenbank/book").await;
    form.shows("<h2 class=\"kern-heading-small\" id=\"dependencies\">Mitgenutzte Leistungen</h2>");
    form.shows(&format!(
        "<option value=\"{database}\">Bestehende Buchung {database} (Rechenzentrum Hamburg 1 ("
    ));
    let mut answers = book(&form);
    answers.push(("dependency-datenbank".to_string(), database.clone()));
    let third = new_booking(&post(&mut a, answers).await);
    let bound = w.store.get_booking(&third).await.expect("the booking");
    assert_eq!(bound.dependencies, std::slice::from_ref(&database));
    // A choice that cannot hold (a booking that is no database) is said at the choice,
    // in German, and books nothing.
    let form = a.get("/offerings/mit-datenbank/book").await;
    let mut answers = book(&form);
    answers.push(("dependency-datenbank".to_string(), third.clone()));
    let before = w.trail().await;
    let r = post(&mut a, answers).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    r.shows("<p class=\"kern-error\" id=\"dependencies-error\" role=\"alert\">Die gewählte Buchung kann nicht mitgenutzt werden");
    assert_eq!(w.trail().await.len(), before.len(), "nothing booked");

    // Each booking's page links to the other: the database to the three that use it.
    let page = a.get(&format!("/bookings/{database}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.shows("<h2 class=\"kern-heading-medium\" id=\"links-heading\">Verbundene Buchungen</h2>");
    for user in [&first.id, &second.id, &third] {
        page.shows(&format!(
            "<a class=\"kern-link\" href=\"/bookings/{user}\">Verfahren mit Datenbank ("
        ));
    }
    page.shows("Solange diese Buchungen laufen, kann diese nicht gekündigt werden.");
    let page = a.get(&format!("/bookings/{third}")).await;
    page.shows(&format!(
        "<a class=\"kern-link\" href=\"/bookings/{database}\">Datenbank ("
    ));
    // The catalog says how many organisations run each: one runs both, three times.
    let catalog = a.get("/catalog").await;
    assert_eq!(
        catalog
            .body
            .matches("· genutzt von 1 Organisation</p>")
            .count(),
        2,
        "{}",
        catalog.body
    );
}

/// An "Einer für Alle" service: the catalog marks it and filters by it; a Gemeinde of a
/// Land it serves sees it on its organisation's page, "in Betrieb" once an organisation
/// of the operating Land runs it.
async fn einer_fuer_alle_in_the_catalog_and_for_the_organisation(store: Store) {
    let w = world(store).await;
    let t = w.admin_token().await;
    w.store
        .import_ozg(
            "test/setup",
            "test",
            &[verbund_domain::directory::OzgService {
                id: "10236".into(),
                name: "Wohngeld".into(),
                situation: "Wohnen".into(),
                field: "Bauen & Wohnen".into(),
            }],
            Utc::now(),
        )
        .await
        .expect("the OZG service");
    let vendor = w
        .store
        .get_offering(OFFERING)
        .await
        .expect("the first offering")
        .spec
        .vendor;
    api(
        &w.app,
        &t,
        "/api/v1/offerings",
        json!({
            "name": "wohngeld", "display_name": "Wohngeld digital", "description": "Zum Testen.",
            "vendor": vendor, "category": "saas", "data_classes": ["internal"], "ozg_id": "10236",
            "efa": {"operator": "02", "for_laender": ["01", "02"]},
            "plans": [{"name": "s", "display_name": "Klein", "replicas": 1,
                       "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 10},
                       "monthly_price_cents": 900}],
            "config_schema": {"type": "object"},
        }),
    )
    .await;
    w.first_version(&t, "wohngeld").await;
    let mut a = w.signed_in("admin-a").await;
    let words = "betrieben von Hamburg (Land) für ";
    let catalog = a.get("/catalog?efa=efa").await;
    assert_eq!(catalog.status, StatusCode::OK, "{}", catalog.body);
    catalog.shows("<option value=\"efa\" selected>Nur Einer-für-Alle-Leistungen</option>");
    catalog.shows("Wohngeld digital");
    catalog.shows(words);
    assert!(
        !catalog.body.contains(">Bürgerportal<"),
        "only EfA services: {}",
        catalog.body
    );
    let page = a.get("/organisation").await;
    page.shows("<h2 class=\"kern-heading-medium\" id=\"efa-heading\">Einer-für-Alle-Leistungen für Ihr Land</h2>");
    page.shows("<a class=\"kern-link\" href=\"/offerings/wohngeld\">Wohngeld digital</a>");
    page.shows("noch nicht in Betrieb");
    // Hamburg, the operating Land, books it: Hamburg's Gemeinde sees it in operation.
    let land = w
        .store
        .find_organisation_by_key("02")
        .await
        .expect("find")
        .expect("Hamburg (Land)");
    let b = api(
        &w.app,
        &t,
        "/api/v1/bookings",
        json!({
            "organisation": land.id, "offering": "wohngeld", "plan": "s", "config": {},
        }),
    )
    .await;
    assert_eq!(b["booking"]["state"], "placed", "{b}");
    let page = a.get("/organisation").await;
    page.shows("<span class=\"kern-badge kern-badge--success\"><span class=\"kern-label\">in Betrieb</span></span>");
}

// ---------------------------------------------------------------------------------------
// 13. Each role's queue; provenance of the facts

/// "Aufgaben": the federation admin finds the booking awaiting approval (whose page
/// shows the requested configuration) and the operators' proposals of placement facts
/// with approve and reject; its own proposal has no approve button and says why, and
/// approving it anyway is refused; the operator finds its proposals pending, without
/// decisions. Once approved, "Wo sind unsere Daten?" names who stated a fact and who
/// approved it; a pending proposal is marked as not in effect, for whom the API shows it.
async fn each_role_finds_its_work_and_facts_show_their_provenance(store: Store) {
    let w = world(store).await;
    let t = w.admin_token().await;
    let vendor = w
        .store
        .get_offering(OFFERING)
        .await
        .expect("the first offering")
        .spec
        .vendor;
    api(&w.app, &t, "/api/v1/offerings", json!({
        "name": "mit-freigabe", "display_name": "Verfahren mit Freigabe", "description": "Zum Testen.",
        "vendor": vendor, "category": "saas", "data_classes": ["internal"], "requires_approval": true,
        "plans": [{"name": "s", "display_name": "Klein", "replicas": 1,
                   "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 10},
                   "monthly_price_cents": 900}],
        "config_schema": schema(),
    }))
    .await;
    w.first_version(&t, "mit-freigabe").await;
    let mut a = w.signed_in("admin-a").await;
    let form = a.get("/offerings/mit-freigabe/book").await;
    let answers = [
        ("csrf", form.csrf()),
        ("organisation", w.a.clone()),
        ("plan", "s".into()),
        ("channel", "stable".into()),
        ("cfg.domain", "freigabe.hamburg.de".into()),
        ("cfg.users", "70".into()),
    ];
    let pairs: Vec<(&str, &str)> = answers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let waiting = new_booking(&a.post("/offerings/mit-freigabe/book", &pairs).await);
    assert_eq!(w.booking_state(&waiting).await, "awaiting-approval");
    let placed = w.booked(&mut a).await;
    assert_eq!(w.booking_state(&placed).await, "placed");

    // Two proposals: the operator's (the site's city) and one of the admin's own account
    // (the provider's legal form, made while it was an operator, say).
    let now = Utc::now();
    let mut site = w
        .store
        .get_site("nordwerk-hh-1")
        .await
        .expect("the site")
        .spec;
    site.location.city = "Hamburg-Harburg".into();
    let operator_id = w.user_id("operator").await;
    let theirs = w
        .store
        .apply_as_operator("user/operator", &operator_id, &site, now)
        .await
        .expect("a proposal")
        .expect("the city is a fact");
    let mut provider = w
        .store
        .get_provider("nordwerk")
        .await
        .expect("the provider")
        .spec;
    provider.legal_form = "Anstalt des öffentlichen Rechts".into();
    let admin_id = w.user_id("admin").await;
    let own = w
        .store
        .apply_as_operator("user/admin", &admin_id, &provider, now)
        .await
        .expect("a proposal")
        .expect("the legal form is a fact");

    let mut admin = w.signed_in("admin").await;
    let work = admin.get("/work").await;
    assert_eq!(work.status, StatusCode::OK, "{}", work.body);
    work.shows("<a href=\"/work\" aria-current=\"page\">Aufgaben</a>");
    work.shows("Buchungen, die auf Freigabe warten (1)");
    work.shows(&format!(
        "<a class=\"kern-link\" href=\"/bookings/{waiting}\">Verfahren mit Freigabe</a>"
    ));
    work.shows("Freie und Hansestadt Hamburg");
    work.shows("Vorschläge für Platzierungsfakten (2)");
    work.shows(&format!(
        "id=\"proposal-{}-title\">Rechenzentrum Hamburg 1</h3>",
        theirs.id
    ));
    work.shows(&format!(
        "id=\"proposal-{}-title\">Nordwerk IT (Betreiber)</h3>",
        own.id
    ));
    work.shows("<dt class=\"kern-description-list-item__key\">Standort</dt><dd class=\"kern-description-list-item__value\">Hamburg-Harburg, DE-HH (DE)</dd>");
    work.shows("Vorgeschlagen von operator");
    work.shows(&format!("action=\"/work/proposals/{}/approve\"", theirs.id));
    work.shows(&format!("action=\"/work/proposals/{}/reject\"", theirs.id));
    assert!(
        !work
            .body
            .contains(&format!("action=\"/work/proposals/{}/approve\"", own.id)),
        "no approve button for one's own proposal"
    );
    work.shows(&format!("<p class=\"kern-body\" id=\"proposal-{}-own\"><strong>Ihr eigener Vorschlag: Freigeben muss ihn ein anderer Föderations-Admin (Vier-Augen-Prinzip).</strong></p>", own.id));
    // The approval page shows what was asked for.
    let booking = admin.get(&format!("/bookings/{waiting}")).await;
    booking.shows("<dt class=\"kern-description-list-item__key\">Domäne</dt><dd class=\"kern-description-list-item__value\">freigabe.hamburg.de</dd>");
    booking.shows("<dt class=\"kern-description-list-item__key\">Nutzerzahl</dt><dd class=\"kern-description-list-item__value\">70</dd>");
    booking.shows(&format!("action=\"/bookings/{waiting}/approve\""));

    // The operator: its pending proposals, no decisions; its sites' problems.
    let mut operator = w.signed_in("operator").await;
    let work = operator.get("/work").await;
    assert_eq!(work.status, StatusCode::OK, "{}", work.body);
    work.shows("Ihre offenen Vorschläge für Platzierungsfakten (2)");
    work.shows("Wartet auf die Freigabe durch die Föderation; bis dahin gilt er nicht.");
    work.shows("Probleme Ihrer Rechenzentren (1)");
    work.shows("Rechenzentrum Hamburg 1 (Hamburg, DE-HH; Nordwerk IT)</strong>: <span class=\"kern-badge kern-badge--");
    assert!(!work.body.contains("/approve\""), "{}", work.body);
    assert!(!work.body.contains("Buchungen, die auf Freigabe warten"));
    // An organisation's admin has no queue.
    let org_page = a.get("/organisation").await;
    assert!(
        !org_page.body.contains("href=\"/work\""),
        "{}",
        org_page.body
    );

    // Approving one's own proposal is refused and changes nothing; the other's applies.
    let csrf = admin.get("/work").await.csrf();
    let r = admin
        .post(
            &format!("/work/proposals/{}/approve", own.id),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let still = w
        .store
        .get_fact_proposal(&own.id)
        .await
        .expect("the proposal");
    assert_eq!(still.state.as_str(), "pending");
    let r = admin
        .post(
            &format!("/work/proposals/{}/approve", theirs.id),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/work?done=fact-approved");
    let done = w
        .store
        .get_fact_proposal(&theirs.id)
        .await
        .expect("the proposal");
    assert_eq!(done.state.as_str(), "approved");
    admin
        .get(&r.location())
        .await
        .shows("Der Vorschlag ist freigegeben; seine Fakten gelten.");

    // Where is our data: each fact with who stated and who approved it.
    let data = a.get("/organisation/data").await;
    assert_eq!(data.status, StatusCode::OK, "{}", data.body);
    data.shows("<dt class=\"kern-description-list-item__key\">Herkunft der Fakten</dt>");
    data.shows("<strong>Standort:</strong> Hamburg-Harburg, DE-HH (DE) <span class=\"kern-body--small\">(angegeben von operator, ");
    data.shows("; freigegeben von admin, ");
    data.shows(
        "<strong>Rechtsform:</strong> AöR <span class=\"kern-body--small\">(angegeben von admin, ",
    );
    assert!(
        !data.body.contains("Anstalt des öffentlichen Rechts"),
        "the organisation does not see proposals, and a proposal is no fact"
    );
    // The federation sees the pending proposal, marked as not in effect.
    let data = admin.get(&format!("/organisation/data?org={}", w.a)).await;
    assert_eq!(data.status, StatusCode::OK, "{}", data.body);
    data.shows(
        "<dt class=\"kern-description-list-item__key\">Vorgeschlagen, noch nicht in Kraft</dt>",
    );
    data.shows("<span class=\"kern-label\">noch nicht in Kraft</span></span> <strong>Rechtsform:</strong> Anstalt des öffentlichen Rechts <span class=\"kern-body--small\">(vorgeschlagen von admin, ");
    // A certification attested by a body on the trust list: named with who attested it.
    let zert =
        verbund_trust::Issuer::generate("did:web:zert.example.de", "Beispiel-Zertifizierung GmbH")
            .expect("an issuer");
    let now = w.clock.0.lock().map(|t| *t).unwrap_or_else(|_| Utc::now());
    w.store
        .update_trust_list("test/setup", now, |list| {
            let mut list = list.clone();
            list.issuers.push(zert.trusted(&["bsi-c5"]));
            Ok(list)
        })
        .await
        .expect("trust list");
    let subject = verbund_trust::site_subject("nordwerk-hh-1");
    let jwt = zert
        .certify(
            &subject,
            "bsi-c5",
            Some("type2"),
            (
                now - chrono::Duration::days(1),
                now + chrono::Duration::days(300),
            ),
            None,
        )
        .expect("a credential");
    w.store
        .add_site_credential("test/setup", "nordwerk-hh-1", &jwt, now, |list| {
            verbund_trust::verify_certification(&jwt, list, &subject, now)
                .map_err(|e| verbund_store::StoreError::Corrupt(e.to_string()))
        })
        .await
        .expect("the credential counts");
    let data = a.get("/organisation/data").await;
    data.shows("bsi-c5 (type2) – gültig bis");
    data.shows("(nachgewiesen durch ein Zertifikat von Beispiel-Zertifizierung GmbH)");
    // The pages show what placement reads, the credentials: the test body's, valid until
    // 31.12.2099 as the facts state them, while the body is on the trust list; once the
    // federation drops it, only the other body's certificate — what the facts state alone
    // is no certification (the facts' provenance still says what was stated).
    admin.get("/fleet").await.shows("31.12.2099");
    let only_zert = verbund_trust::TrustList {
        issuers: vec![zert.trusted(&["bsi-c5"])],
        ..Default::default()
    };
    w.store
        .put_trust_list("test/setup", &only_zert, now)
        .await
        .expect("trust list");
    for page in [admin.get("/fleet").await, a.get("/organisation/data").await] {
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        page.shows("bsi-c5 (type2)");
        assert!(!page.body.contains("31.12.2099"), "{}", page.body);
    }
}

// ---------------------------------------------------------------------------------------
// 14. Publishing a version

/// The vendor publishes a version through a form (a Helm chart's reference): a version
/// that is not semantic is refused at its control in German and publishes nothing; a
/// good one is published without a rollout, and the start page shows the plan of the
/// rollout it would start; "Plan aktualisieren" recomputes it and starts nothing.
async fn a_vendor_publishes_a_version_and_sees_the_plan_first(store: Store) {
    let w = world(store).await;
    let mut a = w.signed_in("admin-a").await;
    w.booked(&mut a).await;
    let rollouts = async || {
        w.store
            .list_rollouts(
                &verbund_store::RolloutFilter::default(),
                &PageRequest::default(),
            )
            .await
            .expect("the rollouts")
            .items
            .len()
    };
    let mut vendor = w.signed_in("vendor").await;
    let offering = vendor.get(&format!("/offerings/{OFFERING}")).await;
    offering.shows(&format!("href=\"/offerings/{OFFERING}/publish\""));
    let path = format!("/offerings/{OFFERING}/publish");
    let form = vendor.get(&path).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    form.shows("<label class=\"kern-label\" for=\"repository\">Helm-Repository</label>");
    let csrf = form.csrf();
    let fields = |version: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("version", version.to_string()),
            ("repository", "https://charts.example.org".to_string()),
            ("chart", "app".to_string()),
            ("chart_version", "1.1.0".to_string()),
            ("changelog", "Neue Formulare.".to_string()),
        ]
    };
    let bad = fields("zwei");
    let pairs: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = vendor.post(&path, &pairs).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    r.shows("<p class=\"kern-error\" id=\"version-error\" role=\"alert\">Bitte eine neue Versionsnummer nach Semantic Versioning angeben, höher als die zuletzt veröffentlichte.</p>");
    r.shows("value=\"zwei\" required aria-describedby=\"version-hint version-error\" aria-invalid=\"true\"");
    r.shows("value=\"https://charts.example.org\"");
    assert_eq!(
        w.store
            .list_versions(OFFERING)
            .await
            .expect("versions")
            .len(),
        1
    );

    let good = fields("1.1.0");
    let pairs: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = vendor.post(&path, &pairs).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let to = r.location();
    assert_eq!(
        to,
        format!("/rollouts/new?offering={OFFERING}&version=1.1.0&done=published")
    );
    assert_eq!(
        w.store
            .list_versions(OFFERING)
            .await
            .expect("versions")
            .len(),
        2
    );
    assert_eq!(rollouts().await, 0, "publishing started no rollout");
    let start = vendor.get(&to).await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.body);
    start.shows("Die Version ist veröffentlicht. Prüfen Sie den Plan und starten Sie den Rollout.");
    start.shows("<option value=\"1.1.0\" selected>1.1.0</option>");
    start.shows("<h2 class=\"kern-heading-medium\" id=\"plan-heading\">Plan des Rollouts von Version 1.1.0</h2>");
    start.shows("<strong id=\"plan-bookings\">");
    start
        .shows("name=\"preview\" value=\"1\"><span class=\"kern-label\">Plan aktualisieren</span>");
    // "Plan aktualisieren" shows the plan for what was entered, and starts nothing.
    let preview = [
        ("csrf", csrf.as_str()),
        ("offering", OFFERING),
        ("version", "1.1.0"),
        ("bake_seconds", "600"),
        ("wave_size", "5"),
        ("max_concurrent_sites", "2"),
        ("canary_percent", "10"),
        ("failure_budget", "0"),
        ("preview", "1"),
    ];
    let r = vendor.post("/rollouts/new", &preview).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.shows("id=\"bake_seconds\" name=\"bake_seconds\" type=\"number\" min=\"0\" value=\"600\"");
    r.shows("Plan des Rollouts von Version 1.1.0");
    assert_eq!(rollouts().await, 0, "a preview starts no rollout");
}

// ---------------------------------------------------------------------------------------
// 15. Bookings for a time

/// An offering like the first, with a data export: it can be booked for a time.
const TEMPORARY: &str = "impfzentrum";
/// Hamburg's bucket for the export.
const TARGET: &str = "https://s3.hamburg.de/exporte/impfzentrum/";

impl World {
    /// Publishes the offering with a data export.
    async fn temporary_offering(&self) {
        let t = self.admin_token().await;
        let mut spec = serde_json::to_value(
            self.store
                .get_offering(OFFERING)
                .await
                .expect("the first offering")
                .spec,
        )
        .expect("an offering as JSON");
        spec["name"] = json!(TEMPORARY);
        spec["display_name"] = json!("Impfzentrum");
        spec["data_export"] = json!({"image": "registry.example.org/impfzentrum/export:1.0",
                                     "command": ["/export"], "timeout_seconds": 1800});
        api(&self.app, &t, "/api/v1/offerings", spec).await;
        self.first_version(&t, TEMPORARY).await;
    }

    /// The site's agent reports the booking's export Job `export` (JSON).
    async fn site_reports_export(&self, booking: &str, export: Value) {
        let t = self.admin_token().await;
        let site = "nordwerk-hh-1";
        let token = api(
            &self.app,
            &t,
            &format!("/api/v1/sites/{site}/tokens"),
            json!({"name": "agent"}),
        )
        .await["secret"]
            .as_str()
            .expect("a site token")
            .to_string();
        let report = json!({
            "sequence": 1,
            "agent": {"name": "verbund-agent/test", "interval_seconds": 10},
            "site": {"kubernetes_version": "v1.33.2", "health": "healthy",
                     "free": {"cpu_millis": 1000, "memory_mib": 2048, "storage_gib": 100}},
            "bookings": [{"booking": booking, "applied_version": "1.0.0", "desired_replicas": 1,
                          "ready_replicas": 1, "conditions": [], "smoke_test": "none",
                          "export": export}],
        });
        api(
            &self.app,
            &token,
            &format!("/api/v1/sites/{site}/reports"),
            report,
        )
        .await;
    }
}

/// Posts the temporary offering's booking form for `org` with a last day and target.
async fn book_for_a_time(
    b: &mut Browser,
    csrf: &str,
    org: &str,
    ends_on: &str,
    export_to: &str,
) -> Answer {
    let form = [
        ("csrf", csrf),
        ("organisation", org),
        ("plan", "s"),
        ("channel", "stable"),
        ("cfg.domain", "impfen.hamburg.de"),
        ("cfg.users", "200"),
        ("ends_on", ends_on),
        ("export_to", export_to),
    ];
    b.post(&format!("/offerings/{TEMPORARY}/book"), &form).await
}

/// A booking for a time, as plain form posts. The form offers a last day and an export
/// target only for an offering with a data export, says each fault in German at its
/// control and books nothing; the booking shows its last day and target, and from the
/// reminder on a notice that it ends. Ended early (after a question, a bad target said at
/// its control first, nothing ended), it shows its export running; when its site reports
/// the export failed, the reason, and a retry that starts a Job of its own. Another
/// organisation can neither ask nor end it.
async fn a_booking_for_a_time_ends_with_its_data_exported(store: Store) {
    let w = world(store).await;
    w.temporary_offering().await;
    let mut a = w.signed_in("admin-a").await;
    let plain = a.get(&format!("/offerings/{OFFERING}/book")).await;
    assert!(!plain.body.contains("name=\"ends_on\""), "{}", plain.body);
    plain.shows("Dieses Angebot lässt sich nicht befristet buchen: es bietet keinen Datenexport.");
    let form = a.get(&format!("/offerings/{TEMPORARY}/book")).await;
    form.shows("<h2 class=\"kern-heading-small\" id=\"ending-heading\">Befristung</h2>");
    let csrf = form.csrf();
    let today = verbund_domain::capacity::local_today(w.clock.now());
    let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    let ends_on = today + Duration::days(30);
    let booked = async || {
        w.trail()
            .await
            .iter()
            .filter(|(_, action, _)| action == "booking.create")
            .count()
    };
    let before = booked().await;

    let refused = [
        (
            day(ends_on),
            "http://s3.hamburg.de/exporte/",
            "export_to",
            "Das ist kein Exportziel.",
        ),
        (
            String::new(),
            TARGET,
            "ends_on",
            "Bitte auch den letzten Tag angeben",
        ),
        (
            day(ends_on),
            "",
            "export_to",
            "Bitte auch das Exportziel angeben",
        ),
        (
            day(today - Duration::days(1)),
            TARGET,
            "ends_on",
            "Der letzte Tag muss heute oder später sein",
        ),
    ];
    for (ends_on, export_to, at, text) in refused {
        let r = book_for_a_time(&mut a, &csrf, &w.a, &ends_on, export_to).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        r.shows(&format!(
            "<p class=\"kern-error\" id=\"{at}-error\" role=\"alert\">{text}"
        ));
        r.shows(&format!(
            "<a class=\"kern-link\" href=\"#{at}\">Befristung: {text}"
        ));
        r.shows(&format!(
            "id=\"ends_on\" name=\"ends_on\" value=\"{ends_on}\""
        ));
        r.shows(&format!(
            "id=\"export_to\" name=\"export_to\" value=\"{export_to}\""
        ));
        r.shows(&format!("{at}-error\" aria-invalid=\"true\""));
    }
    assert_eq!(booked().await, before, "the refused forms booked nothing");

    let r = book_for_a_time(&mut a, &csrf, &w.a, &day(ends_on), TARGET).await;
    let id = new_booking(&r);
    let stored = w.store.get_booking(&id).await.expect("the booking");
    let ending = stored.ending.expect("an ending");
    assert_eq!(
        (ending.ends_on, ending.export_to.url()),
        (ends_on, TARGET.into())
    );
    let page_path = format!("/bookings/{id}");
    let german = ends_on.format("%d.%m.%Y").to_string();
    let page = a.get(&page_path).await;
    page.shows(&format!("id=\"ending-last-day\">{german}</dd>"));
    page.shows(&format!("<code class=\"portal-break\">{TARGET}</code>"));
    page.shows(&format!("href=\"/bookings/{id}/end\"><span class=\"kern-label\">Jetzt beenden und Daten exportieren</span>"));
    assert!(
        !page.body.contains("ending-reminder"),
        "no reminder a month ahead"
    );

    // From 14 days before the end (a little later, whatever the time zone did between;
    // signed in again, as the session ended meanwhile).
    w.advance(Duration::days(17) + Duration::hours(2));
    let mut a = w.signed_in("admin-a").await;
    let page = a.get(&page_path).await;
    let csrf = page.csrf();
    page.shows("id=\"ending-reminder\"");
    page.shows(&format!("Diese Buchung endet mit Ablauf des {german}. Vorher werden ihre Daten exportiert nach <code>{TARGET}</code>"));

    // Another organisation can neither ask nor end it.
    let mut b = w.signed_in("admin-b").await;
    let asked = b.get(&format!("/bookings/{id}/end")).await;
    assert_ne!(asked.status, StatusCode::OK, "{}", asked.body);
    let b_csrf = b.get("/catalog").await.csrf();
    let end = [
        ("csrf", b_csrf.as_str()),
        ("confirm", "yes"),
        ("export_to", TARGET),
    ];
    let r = b.post(&format!("/bookings/{id}/end"), &end).await;
    assert_ne!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(w.booking_state(&id).await, "placed");

    // Ended early: the question names the booking's own target; a bad one is said at its
    // control and ends nothing.
    let end_path = format!("/bookings/{id}/end");
    let q = a.get(&end_path).await;
    assert_eq!(q.status, StatusCode::OK, "{}", q.body);
    q.shows("<h1 class=\"kern-heading-large\">Buchung jetzt beenden?</h1>");
    q.shows(&format!("name=\"export_to\" value=\"{TARGET}\""));
    let end = |to: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("confirm", "yes".into()),
            ("export_to", to.into()),
        ]
    };
    let pairs = end("https://s3.hamburg.de");
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = a.post(&end_path, &pairs).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    r.shows(
        "<p class=\"kern-error\" id=\"export_to-error\" role=\"alert\">Das ist kein Exportziel.",
    );
    r.shows("value=\"https://s3.hamburg.de\"");
    assert_eq!(w.booking_state(&id).await, "placed");
    let archive = "https://s3.hamburg.de/archiv/impfzentrum/";
    let pairs = end(archive);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = a.post(&end_path, &pairs).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), format!("{page_path}?done=ended"));
    assert_eq!(w.booking_state(&id).await, "exporting");
    let page = a.get(&r.location()).await;
    page.shows("Die Buchung ist beendet; ihre Daten werden exportiert.");
    page.shows("data-export=\"running\"><span class=\"kern-label\">läuft</span>");
    page.shows("<code>data-export-1</code>");
    page.shows(&format!("<code class=\"portal-break\">{archive}</code>"));
    page.shows(&format!("<code class=\"portal-break\">impfzentrum/{id}/"));
    assert!(!page.body.contains("ending-reminder"), "the export began");
    assert!(!page.body.contains(&end_path), "it ended already");
    assert!(!page.body.contains("retry-export"), "nothing failed");
    assert_ne!(a.get(&end_path).await.status, StatusCode::OK);

    // Its site reports the Job failed: nothing is torn down, the page says why and offers
    // another attempt, a Job of its own.
    let failed = json!({"job": "data-export-1", "status": "failed", "message": "AccessDenied"});
    w.site_reports_export(&id, failed).await;
    verbund_placement::Bookings::new(w.store.clone())
        .sweep("system/lifecycle", w.clock.now())
        .await
        .expect("the sweep");
    let page = a.get(&page_path).await;
    page.shows("data-export=\"failed\"><span class=\"kern-label\">fehlgeschlagen</span>");
    page.shows("lang=\"en\">the export Job data-export-1 failed: AccessDenied</dd>");
    page.shows("<span class=\"kern-label\">Export erneut versuchen</span>");
    let retry = [("csrf", csrf.as_str())];
    let r = a.post(&format!("{page_path}/retry-export"), &retry).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = a.get(&r.location()).await;
    page.shows("Der Export wird erneut versucht.");
    page.shows("data-export=\"running\"");
    page.shows("<code>data-export-2</code>");
    assert!(!page.body.contains("retry-export"), "{}", page.body);
}

// ---------------------------------------------------------------------------------------
// Shared instances

/// "Einer für Alle" in the portal: Schleswig-Holstein runs the one instance of a shared
/// offering; Flensburg finds it on the offering's page, joins it with the form (a
/// configuration the tenant schema refuses comes back in German at its control), sees
/// its tenancy on its booking page and in "Wo sind unsere Daten?", and cannot join twice.
async fn a_gemeinde_joins_the_shared_instance_of_its_land(store: Store) {
    let w = world(store).await;
    let t = w.admin_token().await;
    let vendor = w
        .store
        .get_offering(OFFERING)
        .await
        .expect("the first offering")
        .spec
        .vendor;
    api(
        &w.app,
        &t,
        "/api/v1/offerings",
        json!({
            "name": "bauportal", "display_name": "Bauportal", "description": "Bauanträge online.",
            "vendor": vendor, "category": "saas", "data_classes": ["internal"],
            "tenancy": "shared",
            "tenant_schema": {"type": "object", "required": ["kennung"], "properties": {
                "kennung": {"type": "string", "title": "Kennung", "pattern": "^[a-z0-9-]{2,40}$"}}},
            "plans": [{"name": "s", "display_name": "Klein", "replicas": 1,
                       "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 10},
                       "monthly_price_cents": 900}],
        }),
    )
    .await;
    w.first_version(&t, "bauportal").await;
    let sh = w
        .store
        .find_organisation_by_key("01")
        .await
        .expect("find")
        .expect("Schleswig-Holstein");
    let instance = api(
        &w.app,
        &t,
        "/api/v1/bookings",
        json!({"organisation": sh.id, "offering": "bauportal", "plan": "s"}),
    )
    .await;
    assert_eq!(instance["booking"]["state"], "placed", "{instance}");
    let instance = instance["booking"]["id"].as_str().unwrap().to_string();

    let mut b = w.signed_in("admin-b").await;
    let page = b.get("/offerings/bauportal").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.shows("Geteilte Instanzen (Einer für Alle)");
    page.shows(&format!("href=\"/offerings/bauportal/join/{instance}\""));
    page.shows(">Schleswig-Holstein</th>");
    let join = format!("/offerings/bauportal/join/{instance}");
    let form = b.get(&join).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    form.shows("<h1 class=\"kern-heading-large\">Mandant werden: Bauportal</h1>");
    let csrf = form.csrf();
    // A Kennung the schema refuses: said at its control, in German; nothing booked.
    let refused = b
        .post(
            &join,
            &[
                ("csrf", &csrf),
                ("organisation", &w.b),
                ("cfg.kennung", "Große Buchstaben"),
            ],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    refused.shows("Die Eingabe hat nicht das erwartete Format.");
    refused.shows("aria-invalid=\"true\"");
    refused.shows("value=\"Große Buchstaben\"");
    let joined = b
        .post(
            &join,
            &[
                ("csrf", &csrf),
                ("organisation", &w.b),
                ("cfg.kennung", "flensburg"),
            ],
        )
        .await;
    let tenancy = new_booking(&joined);
    let booking = b.get(&format!("/bookings/{tenancy}")).await;
    assert_eq!(booking.status, StatusCode::OK, "{}", booking.body);
    booking.shows("Mandant der geteilten Instanz");
    booking.shows("Betrieben von Schleswig-Holstein");
    assert!(
        !booking
            .body
            .contains(&format!("href=\"/bookings/{instance}\"")),
        "the Land's instance is not the Gemeinde's to open"
    );
    let data = b.get(&format!("/organisation/data?org={}", w.b)).await;
    assert_eq!(data.status, StatusCode::OK, "{}", data.body);
    data.shows("Bauportal (als Mandant einer geteilten Instanz)");
    // A second time: refused on the form, in German.
    let again = b
        .post(
            &join,
            &[
                ("csrf", &csrf),
                ("organisation", &w.b),
                ("cfg.kennung", "flensburg"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    again.shows("bereits Mandant dieser Instanz");
    let stored = w.store.get_booking(&tenancy).await.expect("the tenancy");
    assert_eq!(stored.instance.as_deref(), Some(instance.as_str()));
    assert_eq!(stored.config, json!({"kennung": "flensburg"}));
}

// ---------------------------------------------------------------------------------------
// Nachnutzung

/// Hamburg publishes its booking's configuration as a template for everyone (a short
/// name that is no label refused first, in German, at its control); Flensburg finds it on
/// the offering's page, books from the pre-filled form with one change, and its booking
/// names the template and the difference; when Hamburg changes the template, Flensburg's
/// booking says so and takes the change over.
async fn a_template_is_published_adopted_and_its_change_taken_over(store: Store) {
    let w = world(store).await;
    let mut a = w.signed_in("admin-a").await;
    let booking = w.booked(&mut a).await;
    let form = a.get(&format!("/bookings/{booking}/template")).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let csrf = form.csrf();
    let publish = |name: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("name", name.to_string()),
            ("display_name", "Bürgerportal wie in Hamburg".to_string()),
            (
                "description",
                "Domäne und Nutzerzahl wie bei uns.".to_string(),
            ),
            ("visibility", "everyone".to_string()),
        ]
    };
    let pairs = publish("Groß");
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = a
        .post(&format!("/bookings/{booking}/template"), &refs)
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    refused.shows("Bitte einen anderen Kurznamen wählen");
    refused.shows("id=\"name\" name=\"name\" type=\"text\" value=\"Groß\"");
    let pairs = publish("buergerportal-hamburg");
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let published = a
        .post(&format!("/bookings/{booking}/template"), &refs)
        .await;
    assert_eq!(
        published.status,
        StatusCode::SEE_OTHER,
        "{}",
        published.body
    );
    assert_eq!(
        published.location(),
        format!("/bookings/{booking}?done=template-published")
    );
    let template = w
        .store
        .list_templates(&Default::default(), &Default::default())
        .await
        .expect("templates")
        .items
        .remove(0);

    // Flensburg adopts it with one change.
    let mut b = w.signed_in("admin-b").await;
    let page = b.get(&format!("/offerings/{OFFERING}")).await;
    page.shows("Vorlagen zur Nachnutzung");
    page.shows(&format!(
        "href=\"/offerings/{OFFERING}/book?template={}\"",
        template.id
    ));
    let catalog = b.get("/catalog").await;
    catalog.shows("1 Vorlage, übernommen von 0 Organisationen");
    let form = b
        .get(&format!(
            "/offerings/{OFFERING}/book?template={}",
            template.id
        ))
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    form.shows("Vorausgefüllt aus einer Vorlage");
    form.shows("value=\"portal.hamburg.de\"");
    let csrf = form.csrf();
    let idempotency = form.hidden("idempotency");
    let adoption = [
        ("csrf", csrf.as_str()),
        ("idempotency", idempotency.as_str()),
        ("template", template.id.as_str()),
        ("organisation", w.b.as_str()),
        ("plan", "s"),
        ("channel", "stable"),
        ("cfg.domain", "portal.flensburg.de"),
        ("cfg.users", "200"),
    ];
    let adopted = b
        .post(&format!("/offerings/{OFFERING}/book"), &adoption)
        .await;
    let mine = new_booking(&adopted);
    // The same form sent again adopts once.
    let again = b
        .post(&format!("/offerings/{OFFERING}/book"), &adoption)
        .await;
    assert_eq!(new_booking(&again), mine, "one adoption per form");
    let page = b.get(&format!("/bookings/{mine}")).await;
    page.shows("Übernommen aus der Vorlage");
    page.shows("Ihre Abweichungen von der Vorlage</dt><dd class=\"kern-description-list-item__value\">Domäne</dd>");
    assert!(
        !page.body.contains("Die Vorlage wurde geändert"),
        "{}",
        page.body
    );

    // Hamburg changes its booking and the template; Flensburg takes the change over.
    let t = w.admin_token().await;
    api_call(
        &w.app,
        &t,
        Method::PATCH,
        &format!("/api/v1/bookings/{booking}"),
        json!({"config": {"domain": "portal.hamburg.de", "users": 500}}),
    )
    .await;
    api_call(
        &w.app,
        &t,
        Method::PUT,
        &format!("/api/v1/templates/{}", template.id),
        json!({"booking": booking, "name": "buergerportal-hamburg",
               "display_name": "Bürgerportal wie in Hamburg", "visibility": "everyone"}),
    )
    .await;
    let page = b.get(&format!("/bookings/{mine}")).await;
    page.shows("Die Vorlage wurde geändert (Version 2)");
    page.shows("Geänderte Angaben: Nutzerzahl");
    let csrf = page.csrf();
    let taken = b
        .post(&format!("/bookings/{mine}/take-over"), &[("csrf", &csrf)])
        .await;
    assert_eq!(taken.status, StatusCode::SEE_OTHER, "{}", taken.body);
    let stored = w.store.get_booking(&mine).await.expect("the booking");
    assert_eq!(
        stored.config,
        json!({"domain": "portal.flensburg.de", "users": 500})
    );
    let page = b.get(&format!("/bookings/{mine}")).await;
    assert!(
        !page.body.contains("Die Vorlage wurde geändert"),
        "{}",
        page.body
    );
}
