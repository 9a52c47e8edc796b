//! Test support for the workspace's behaviour tests and benchmarks: every test body runs
//! against a fresh store, once on SQLite and once on PostgreSQL ([`on_both!`]); and the
//! federation at the design scale of all Germany ([`germany`]).
//!
//! PostgreSQL: `VERBUND_TEST_POSTGRES` names a server the tests may create and drop
//! databases on (default `postgres://postgres@127.0.0.1:5432/test`); each test gets its
//! own `verbund_t_<hex>` database, dropped afterwards (also when the test panics). An
//! unreachable server fails the `postgres_*` tests unless `VERBUND_SKIP_POSTGRES=1`.

// Test support: a failed expectation here is a failed test or benchmark.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod certified;
pub mod germany;
pub mod measure;

use std::future::Future;

use sqlx::{Connection, PgConnection};
use verbund_store::Store;

#[doc(hidden)]
pub use pastey;

/// The server the PostgreSQL tests use when `VERBUND_TEST_POSTGRES` is not set.
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Generates `sqlite_<name>` and `postgres_<name>` tests for each
/// `async fn name(store: Store)`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        $(
            $crate::pastey::paste! {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn [<sqlite_ $name>]() {
                    $crate::run($crate::Backend::Sqlite, $name).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn [<postgres_ $name>]() {
                    $crate::run($crate::Backend::Postgres, $name).await;
                }
            }
        )*
    };
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A throw-away database: its URL, and what to remove afterwards.
pub struct Scratch {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    drop: Option<(String, String)>,
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[start..].find('/') {
        Some(i) => &base[..start + i],
        None => base,
    };
    format!("{server}/{name}{query}")
}

impl Scratch {
    /// A SQLite file in a fresh temporary folder.
    pub fn sqlite() -> Scratch {
        let dir = tempfile::TempDir::new().expect("cannot create a temporary folder");
        let url = format!("sqlite://{}", dir.path().join("verbund.db").display());
        Scratch {
            url,
            _dir: Some(dir),
            drop: None,
        }
    }

    /// A scratch store for a benchmark's `backend` (`postgres`, else SQLite); `None`, with
    /// a note, when PostgreSQL is unreachable and `VERBUND_SKIP_POSTGRES=1`.
    pub async fn for_backend(backend: &str, name: &str) -> Option<Scratch> {
        if backend != "postgres" {
            return Some(Scratch::sqlite());
        }
        let scratch = Scratch::postgres(name).await;
        if scratch.is_none() {
            println!("postgres: skipped (no server)");
        }
        scratch
    }

    /// A fresh PostgreSQL database; `None` when the server is unreachable and
    /// `VERBUND_SKIP_POSTGRES=1`.
    pub async fn postgres(test: &str) -> Option<Scratch> {
        let admin =
            std::env::var("VERBUND_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.into());
        let connected = match tokio::time::timeout(
            std::time::Duration::from_secs(10),
            PgConnection::connect(&admin),
        )
        .await
        {
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
            url: with_database(&admin, &name),
            _dir: None,
            drop: Some((admin, name)),
        })
    }

    /// Brings a PostgreSQL database that was just bulk-loaded to the state autovacuum
    /// keeps a database in service in: planner statistics of all its rows and a visibility
    /// map (`VACUUM ANALYZE`). Without it a benchmark measures plans made from the
    /// statistics of the first tenth of a load, and whether autovacuum catches up during
    /// the measurement (PostgreSQL, a Land's lists: 373 or 578 requests/s from run to
    /// run). SQLite keeps no statistics the store reads: nothing to do.
    pub async fn settle(&self) {
        if self.drop.is_none() {
            return;
        }
        let mut conn = PgConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to `{}`: {e}", self.url));
        sqlx::query("VACUUM ANALYZE")
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("VACUUM ANALYZE failed: {e}"));
        let _ = conn.close().await;
    }

    /// Drops the PostgreSQL database (the SQLite folder goes with `self`).
    pub async fn remove(self) {
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

/// Runs a test body on a fresh store of `backend` and removes the database afterwards,
/// also on panic (the panic is then re-raised).
pub async fn run<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(Store) -> Fut,
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
            let outcome = tokio::spawn(body(store.clone())).await;
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
