//! The store: every durable fact of verbund, in SQLite (embedded default) or PostgreSQL.
//!
//! One `Store` serves both databases through sqlx's `Any` driver with runtime queries
//! written in the SQL both understand (`$n` placeholders, `ON CONFLICT`, `RETURNING`);
//! the schema differs only in its DDL, kept in one migrations folder per backend.
//! Every write runs in one transaction together with its audit event, so a request
//! either fully applies (and is recorded) or changes nothing.

mod accounts;
mod audit;
mod bookings;
mod catalog;
mod directory;
mod error;
mod facts;
mod fleet;
mod idempotency;
mod life_cycle;
mod policies;
mod preflight;
mod registrations;
mod reports;
mod rollouts;
mod rows;
mod scope;
mod secrets;
mod sessions;
mod shared_history;
mod sign_in_attempts;
mod templates;
mod trust;
mod undeliverable;

use std::str::FromStr;
use std::sync::Arc;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};
use tokio::sync::Mutex;

pub use accounts::UserFilter;
pub use audit::AuditFilter;
pub use bookings::{
    BookingFilter, BookingSnapshot, Dependent, NewBooking, SiteUsage, SiteWindows, WindowSchedule,
};
pub use catalog::OfferingFilter;
pub use directory::SiteFilter;
pub use error::{Result, StoreError};
pub use facts::ProposalFilter;
pub use fleet::{FleetCounts, FleetScope};
pub use idempotency::{IdempotencyKey, IdempotentBooking};
pub use policies::{PolicyRecord, StoredPolicy};
pub use registrations::OrganisationRegistration;
pub use reports::{Ingested, Move};
pub use rollouts::{
    test_tenant, ItemFilter, Leadership, ReferenceSpec, RolloutFilter, Ticked,
    ENGINE as ROLLOUT_ENGINE,
};
pub use scope::OrganisationScope;
pub use secrets::SealedDocument;
pub use sessions::{Credential, LockPolicy, Session, PORTAL};
pub use shared_history::{Delivered, HistoryCommit, HistoryHead, NewHistoryCommit};
pub use sign_in_attempts::Attempt;
pub use templates::{Adoption, NewTemplate, TemplateFilter};
pub use trust::{SiteCredential, StoredTrustList};

/// How many pooled connections a store keeps for requests unless told otherwise.
///
/// PostgreSQL: twice the cores of this host, within 2–16. A database working from its
/// cache runs as many queries at once as it has cores; more connections only make its
/// backends wait in the operating system's scheduler instead of the pool's queue, where
/// they wait in order. SQLite: 8. Its queries run in this process, each connection on a
/// thread of its own that hands every row over to the request's task; with fewer, the
/// cores idle during those hand-overs. Measured by the lists benchmark (issue 16 in
/// BENCHMARKS.md) for a Land's pages on two cores shared with 16 clients: on PostgreSQL
/// with 16 connections none of its 14 lists had a p99 under 50 ms, with 4 ten of them;
/// SQLite with 8 served 934 requests/s, with 4 781, with 2 745.
pub fn default_connections(dialect: Dialect) -> u32 {
    match dialect {
        Dialect::Sqlite => 8,
        Dialect::Postgres => {
            let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
            u32::try_from(cores.saturating_mul(2)).map_or(16, |n| n.clamp(2, 16))
        }
    }
}

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// How to open a connection outside the pool, for a leadership's advisory lock.
    leadership: Arc<AnyConnectOptions>,
    dialect: Dialect,
    /// SQLite allows one writer at a time; writers queue here instead of failing with
    /// `SQLITE_BUSY` when a deferred transaction tries to upgrade its lock.
    write_lock: Arc<Mutex<()>>,
    /// The `Idempotency-Key` of the one request this handle serves
    /// ([`Store::idempotent`]), recorded with the bookings it creates.
    idempotency: Option<Arc<IdempotencyKey>>,
    /// The template adopted by the one request this handle serves
    /// ([`Store::adopting`]), recorded with the booking it makes or changes.
    adoption: Option<Arc<templates::Adoption>>,
    /// The capacity windows ahead, kept between transactions while they do not change.
    windows: Arc<bookings::WindowsCache>,
    /// The organisations of callers' scopes, expanded, for a few seconds.
    scopes: Arc<scope::ScopeCache>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date,
    /// with the [`default_connections`] of its database for requests.
    ///
    /// `url` is `sqlite://PATH` (the file is created) or `postgres://…`.
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_with(url, None).await
    }

    /// [`Store::open`] with at most `connections` pooled connections (at least one; by
    /// default [`default_connections`]). The leaderships of a replica
    /// ([`Store::try_lead`], [`Store::try_lead_delivery`]) hold connections of their own
    /// beside the pool.
    pub async fn open_with(url: &str, connections: Option<u32>) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(StoreError::Config(format!(
                "`{url}` is neither a `sqlite://` nor a `postgres://` URL"
            )));
        };
        let url = match dialect {
            Dialect::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_string(),
        };
        let opts = AnyConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Config(format!("invalid database URL: {e}")))?
            .disable_statement_logging();
        let leadership = opts.clone();
        let pool = AnyPoolOptions::new()
            .max_connections(connections.unwrap_or(default_connections(dialect)).max(1))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // temp_store: statement sub-journals (multi-row writes with
                        // triggers) stay in memory instead of a temporary file, and
                        // cache_size: 32 MiB per connection, so a site report's write
                        // does not spill pages mid-transaction. Durability is WAL's.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                             PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32768;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        let migrator = match dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        Ok(Store {
            pool,
            leadership: Arc::new(leadership),
            dialect,
            write_lock: Arc::new(Mutex::new(())),
            idempotency: None,
            adoption: None,
            windows: Arc::default(),
            scopes: Arc::default(),
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Whether the database answers, for `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Refreshes PostgreSQL's planner statistics of `table` after a write that changed its
    /// make-up at once. A new rollout's items are tens of thousands of rows of a rollout
    /// the statistics do not know yet: until autovacuum's next analyze (a minute or more
    /// later) the planner takes it for a handful of rows and sorts all its items for
    /// every page of them (10 ms instead of 0.1 ms at 33,000 items, `EXPLAIN ANALYZE`).
    /// ANALYZE reads a bounded sample and blocks no reader or writer. Best effort: the
    /// write has committed, so a failure is logged, not returned. SQLite's plans need no
    /// statistics for these queries.
    pub(crate) async fn refresh_statistics(&self, table: &'static str) {
        if self.dialect != Dialect::Postgres {
            return;
        }
        if let Err(e) = sqlx::query(&format!("ANALYZE {table}"))
            .execute(&self.pool)
            .await
        {
            tracing::warn!(table, error = %e, "could not refresh the planner's statistics");
        }
    }

    /// Starts a serialised write transaction. Writers queue one at a time (a process-wide
    /// lock for SQLite, a transaction-scoped advisory lock for PostgreSQL), which keeps
    /// the audit chain a single line across replicas.
    pub(crate) async fn begin_write(&self) -> Result<Write<'_>> {
        let guard = match self.dialect {
            Dialect::Sqlite => Some(self.write_lock.lock().await),
            Dialect::Postgres => None,
        };
        let mut tx = match self.dialect {
            // IMMEDIATE takes SQLite's write lock right away, waiting (busy_timeout) while
            // another connection still holds it, e.g. a failed write whose rollback is
            // still in flight after its guard was released. A deferred transaction that
            // has already read would instead fail at once with "database is locked".
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        };
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7310)")
                .execute(&mut *tx)
                .await?;
        }
        Ok(Write {
            tx,
            _guard: guard,
            head: None,
        })
    }
}

impl Store {
    /// A transaction for derived data without an audit event of its own (the shared
    /// desired-state history, whose commits name the audit events behind them):
    /// serialised with every writer on SQLite, but on PostgreSQL ordered by its own row
    /// locks only, so that storing a large pack never holds up the audited writers.
    pub(crate) async fn begin_derived(&self) -> Result<Write<'_>> {
        match self.dialect {
            Dialect::Sqlite => self.begin_write().await,
            Dialect::Postgres => Ok(Write {
                tx: self.pool.begin().await?,
                _guard: None,
                head: None,
            }),
        }
    }
}

/// An open write transaction; dropping it without `commit` rolls everything back.
pub(crate) struct Write<'a> {
    pub(crate) tx: sqlx::Transaction<'static, sqlx::Any>,
    _guard: Option<tokio::sync::MutexGuard<'a, ()>>,
    /// The audit chain's head once this transaction has read or extended it.
    head: Option<Option<(i64, String)>>,
}

impl Write<'_> {
    /// Records the change in the audit trail as part of this transaction.
    pub(crate) async fn audit(
        &mut self,
        change: verbund_domain::audit::Change,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<verbund_domain::audit::AuditEvent> {
        audit::append(&mut self.tx, &mut self.head, change, now).await
    }

    /// Records many changes in the audit trail, in order, as part of this transaction.
    pub(crate) async fn audit_many(
        &mut self,
        dialect: Dialect,
        changes: Vec<verbund_domain::audit::Change>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        audit::append_many(&mut self.tx, dialect, &mut self.head, changes, now).await
    }

    pub(crate) async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}
