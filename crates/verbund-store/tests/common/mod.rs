//! Test kit of the store's conformance suite: a fresh, throw-away database per test on
//! SQLite and on PostgreSQL, a macro that runs one test body against both, and fixtures.
//!
//! PostgreSQL: `VERBUND_TEST_POSTGRES` names a database on a server the tests may create
//! and drop databases on (default `postgres://postgres@127.0.0.1:5432/test`). Each test
//! gets its own `verbund_t_<hex>` database, dropped afterwards. An unreachable server
//! fails the `postgres_*` tests, unless `VERBUND_SKIP_POSTGRES=1` says to skip them.

#![allow(dead_code, reason = "not every test uses every helper")]

use std::future::Future;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use verbund_domain::audit::AuditEvent;
use verbund_domain::catalog::{OfferingSpec, VersionSpec};
use verbund_domain::directory::{
    Level, Organisation, OrganisationFilter, OrganisationSpec, ProviderSpec, Seat, SiteSpec,
};
use verbund_domain::page::PageRequest;
use verbund_store::{AuditFilter, Store, StoreError};

pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Generates `sqlite_<name>` and `postgres_<name>` tests for each test body
/// `async fn name(store: Store)`.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $crate::conformance_with_db!($($name),*; |body| move |store, _db| body(store));
    };
}

/// Like `conformance!`, for bodies that also need the database itself:
/// `async fn name(store: Store, db: Db)`.
#[macro_export]
macro_rules! conformance_db {
    ($($name:ident),* $(,)?) => {
        $crate::conformance_with_db!($($name),*; |body| body);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! conformance_with_db {
    ($($name:ident),*; |$body:ident| $adapt:expr) => {
        $(
            pastey::paste! {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn [<sqlite_ $name>]() {
                    let $body = $name;
                    $crate::common::run($crate::common::Backend::Sqlite, $adapt).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn [<postgres_ $name>]() {
                    let $body = $name;
                    $crate::common::run($crate::common::Backend::Postgres, $adapt).await;
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

/// The database a test runs on, for tests that open it again or change it behind the
/// store's back.
#[derive(Debug, Clone)]
pub struct Db {
    pub backend: Backend,
    pub url: String,
}

impl Db {
    /// Opens another store on the same database.
    pub async fn open(&self) -> Store {
        Store::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot open the store on `{}`: {e}", self.url))
    }

    /// Runs one statement directly on the database, bypassing the store.
    pub async fn execute(&self, sql: &str) -> u64 {
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to `{}`: {e}", self.url));
        let done = sqlx::query(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
        let _ = conn.close().await;
        done.rows_affected()
    }
}

/// A scratch database created for one test, dropped when the test ends.
struct Scratch {
    db: Db,
    /// Kept alive until the test ends: the SQLite file's folder.
    _dir: Option<tempfile::TempDir>,
    /// For PostgreSQL: the server's URL to connect to for the drop, and the name.
    drop: Option<(String, String)>,
}

impl Scratch {
    fn sqlite() -> Scratch {
        let dir = tempfile::TempDir::new().expect("cannot create a temporary folder");
        let path = dir.path().join("verbund.db");
        Scratch {
            db: Db {
                backend: Backend::Sqlite,
                url: format!("sqlite://{}", path.display()),
            },
            _dir: Some(dir),
            drop: None,
        }
    }

    /// `None` when PostgreSQL is unreachable and `VERBUND_SKIP_POSTGRES=1`.
    async fn postgres(test: &str) -> Option<Scratch> {
        let admin =
            std::env::var("VERBUND_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.into());
        let connect = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            PgConnection::connect(&admin),
        );
        let connected = match connect.await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("no answer within 10 s".to_string()),
        };
        let mut conn = match connected {
            Ok(c) => c,
            Err(e) if std::env::var("VERBUND_SKIP_POSTGRES").as_deref() == Ok("1") => {
                eprintln!("skipped {test}: PostgreSQL at `{admin}` is unreachable ({e})");
                return None;
            }
            Err(e) => panic!(
                "PostgreSQL at `{admin}` is unreachable: {e}\n\
                 start it, point VERBUND_TEST_POSTGRES at a server where the tests may create \
                 databases, or set VERBUND_SKIP_POSTGRES=1 to skip the postgres_* tests"
            ),
        };
        let name = format!("verbund_t_{}", uuid::Uuid::now_v7().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create database `{name}` via `{admin}`: {e}"));
        let _ = conn.close().await;
        Some(Scratch {
            db: Db {
                backend: Backend::Postgres,
                url: with_database(&admin, &name),
            },
            _dir: None,
            drop: Some((admin, name)),
        })
    }

    /// Best effort: a database that cannot be dropped is reported, not failed on.
    async fn remove(self) {
        let Some((admin, name)) = self.drop else {
            return;
        };
        let dropped = async {
            let mut conn = PgConnection::connect(&admin).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await?;
            conn.close().await
        };
        if let Err(e) = dropped.await {
            eprintln!("could not drop test database `{name}`: {e}");
        }
    }
}

/// Replaces the database name in a `postgres://` URL, keeping its query string.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    format!("{server}/{name}{query}")
}

/// Runs one test body on a fresh database of `backend` and removes the database after,
/// also when the body panics.
pub async fn run<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(Store, Db) -> Fut,
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
    let outcome = match Store::open(&scratch.db.url).await {
        Ok(store) => {
            let outcome = tokio::spawn(body(store.clone(), scratch.db.clone())).await;
            store.close().await;
            outcome.map_err(|e| match e.try_into_panic() {
                Ok(panic) => panic,
                Err(e) => Box::new(format!("the test was cancelled: {e}"))
                    as Box<dyn std::any::Any + Send>,
            })
        }
        Err(e) => Err(Box::new(format!(
            "cannot open the store on `{}`: {e}",
            scratch.db.url
        )) as Box<dyn std::any::Any + Send>),
    };
    scratch.remove().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

// ---------------------------------------------------------------------------------------
// Time

/// A point in test time: `n` seconds after a fixed start, at millisecond precision.
pub fn t(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap() + Duration::seconds(n)
}

// ---------------------------------------------------------------------------------------
// Assertions

#[track_caller]
pub fn assert_invalid<T: std::fmt::Debug>(r: verbund_store::Result<T>, field: &str) {
    match r {
        Err(StoreError::Invalid(i)) => assert_eq!(i.field, field, "wrong field in `{i}`"),
        other => panic!("expected an invalid `{field}`, got {other:?}"),
    }
}

#[track_caller]
pub fn assert_conflict<T: std::fmt::Debug>(r: verbund_store::Result<T>) {
    match r {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[track_caller]
pub fn assert_not_found<T: std::fmt::Debug>(r: verbund_store::Result<T>) {
    match r {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

pub fn page(limit: u32, after: Option<String>) -> PageRequest {
    PageRequest {
        limit: Some(limit),
        after,
    }
}

// ---------------------------------------------------------------------------------------
// Audit trail

/// The newest event's sequence number, which (the chain being gapless) is the number of
/// events; 0 when there is none.
pub async fn audit_head(store: &Store) -> i64 {
    store
        .list_audit(&AuditFilter::default(), &page(1, None))
        .await
        .expect("list_audit")
        .items
        .first()
        .map_or(0, |e| e.seq)
}

/// Asserts that exactly one event was appended since `head` and that it records
/// `actor` doing `action` to `object`; returns it.
pub async fn assert_one_event(
    store: &Store,
    head: i64,
    actor: &str,
    action: &str,
    object: &str,
) -> AuditEvent {
    let newest = store
        .list_audit(&AuditFilter::default(), &page(2, None))
        .await
        .expect("list_audit");
    let e = newest
        .items
        .first()
        .unwrap_or_else(|| panic!("no audit event; expected `{action}` on `{object}`"))
        .clone();
    assert_eq!(
        e.seq,
        head + 1,
        "expected exactly one new event after {head}, the newest is {e:?}"
    );
    assert_eq!(
        (e.actor.as_str(), e.action.as_str(), e.object.as_str()),
        (actor, action, object)
    );
    e
}

// ---------------------------------------------------------------------------------------
// Counting

/// Every organisation matching `filter`, read page by page.
pub async fn all_organisations(store: &Store, filter: &OrganisationFilter) -> Vec<Organisation> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let p = store
            .list_organisations(filter, &page(1000, after))
            .await
            .expect("list_organisations");
        out.extend(p.items);
        match p.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

pub async fn count_organisations(store: &Store) -> usize {
    all_organisations(store, &OrganisationFilter::default())
        .await
        .len()
}

// ---------------------------------------------------------------------------------------
// Fixtures

pub fn org(
    name: &str,
    level: Level,
    ars: Option<&str>,
    ags: Option<&str>,
    parent: Option<&str>,
) -> OrganisationSpec {
    OrganisationSpec {
        name: name.into(),
        level,
        ars: ars.map(Into::into),
        ags: ags.map(Into::into),
        parent: parent.map(Into::into),
        population: None,
    }
}

pub fn bund() -> OrganisationSpec {
    org("Bundesrepublik Deutschland", Level::Bund, None, None, None)
}

pub fn land(name: &str, key: &str, bund: &str) -> OrganisationSpec {
    org(name, Level::Land, Some(key), Some(key), Some(bund))
}

pub fn kreis(name: &str, key: &str, land: &str) -> OrganisationSpec {
    org(name, Level::Kreis, Some(key), Some(key), Some(land))
}

pub fn gemeinde(name: &str, ars: &str, ags: &str, parent: &str) -> OrganisationSpec {
    org(name, Level::Gemeinde, Some(ars), Some(ags), Some(parent))
}

pub fn provider(name: &str) -> ProviderSpec {
    ProviderSpec {
        name: name.into(),
        display_name: format!("Provider {name}"),
        legal_form: "AöR".into(),
        public_law: true,
        seat: Seat {
            city: "Hamburg".into(),
            country: "DE".into(),
        },
        jurisdictions: ["DE".to_string()].into(),
        parent_companies: vec![],
        registration: None,
    }
}

pub fn site(name: &str, provider: &str) -> SiteSpec {
    serde_json::from_value(json!({
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
        "delivery": "flux"
    }))
    .expect("site fixture")
}

pub fn offering(name: &str, vendor: &str) -> OfferingSpec {
    serde_json::from_value(json!({
        "name": name,
        "display_name": format!("Offering {name}"),
        "vendor": vendor,
        "category": "saas",
        "data_classes": ["personal"],
        "plans": [
            {"name": "s", "display_name": "S", "replicas": 1,
             "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 10},
             "monthly_price_cents": 9900},
            {"name": "m", "display_name": "M", "replicas": 2,
             "resources": {"cpu_millis": 1000, "memory_mib": 2048, "storage_gib": 50},
             "monthly_price_cents": 19900}
        ],
        "config_schema": {"type": "object", "properties": {"domain": {"type": "string"}}}
    }))
    .expect("offering fixture")
}

pub fn version(v: &str) -> VersionSpec {
    serde_json::from_value(json!({
        "version": v,
        "package": {"type": "helm", "repository": "https://charts.example.org",
                    "chart": "app", "chart_version": v},
        "changelog": format!("release {v}")
    }))
    .expect("version fixture")
}
