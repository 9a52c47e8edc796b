//! Whose bookings a caller's lists and counts cover: the organisations it acts for, some
//! of them with everything below (a delegated administration).
//!
//! A scope is kept as the organisations the memberships name and expanded here, in one
//! recursive query answered as one JSON row. How a list then uses the expansion depends
//! on its breadth ([`Store::list_bookings`]): the delegated administrator of Bayern acts
//! for some 2,150 organisations, and neither database plans a filter of that many well
//! (SQLite sorts all 18,500 of the Land's bookings for every page and binds each
//! parameter by name, quadratic in their number; PostgreSQL compares each booking with
//! the whole list, 1.2 s a page by `EXPLAIN ANALYZE`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Row;

use crate::rows::{from_json, placeholders};
use crate::{Dialect, Result, Store};

/// The organisations a caller acts for; empty: none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct OrganisationScope {
    /// Organisations alone.
    pub alone: Vec<String>,
    /// Organisations with every organisation below them.
    pub with_descendants: Vec<String>,
}

impl OrganisationScope {
    /// Whether the scope names no organisation at all.
    pub fn is_empty(&self) -> bool {
        self.alone.is_empty() && self.with_descendants.is_empty()
    }
}

/// How long an expanded scope is used before it is read again. The directory changes by
/// imports and registrations: an organisation added below a delegated administrator
/// (which has no bookings yet when it is new), or moved below it by a directory import
/// (`Store::import_organisations` updates parents), shows in its lists at most this much
/// later. One moved away stays in the expansion as long, but a listed booking is judged
/// from its organisation's chain read for that page, so it is no longer shown.
const SCOPE_FRESH: Duration = Duration::from_secs(10);

/// Expanded scopes kept per process: expanding Bayern's (some 2,150 organisations) is
/// 1.5–3 ms of SQLite's time for every page a Land's administrator reads.
#[derive(Default)]
pub(crate) struct ScopeCache {
    expanded: std::sync::Mutex<HashMap<OrganisationScope, Expanded>>,
}

/// A scope's organisations and when they were read.
type Expanded = (Instant, Arc<Vec<String>>);

/// At most this many scopes are kept; a full cache starts again empty.
const SCOPES_KEPT: usize = 4096;

impl ScopeCache {
    fn get(&self, scope: &OrganisationScope, now: Instant) -> Option<Arc<Vec<String>>> {
        let expanded = self.expanded.lock().ok()?;
        let (at, members) = expanded.get(scope)?;
        (now.duration_since(*at) < SCOPE_FRESH).then(|| members.clone())
    }

    fn put(&self, scope: &OrganisationScope, at: Instant, members: Arc<Vec<String>>) {
        if let Ok(mut expanded) = self.expanded.lock() {
            if expanded.len() >= SCOPES_KEPT {
                expanded.clear();
            }
            expanded.insert(scope.clone(), (at, members));
        }
    }
}

impl Store {
    /// Every organisation of `scope`, sorted, each once: those it names (that exist) and
    /// everything below those it names with their descendants; read at most
    /// [`SCOPE_FRESH`] ago.
    pub async fn scope_members(&self, scope: &OrganisationScope) -> Result<Arc<Vec<String>>> {
        let now = Instant::now();
        if let Some(members) = self.scopes.get(scope, now) {
            return Ok(members);
        }
        let members = Arc::new(self.read_scope_members(scope).await?);
        self.scopes.put(scope, now, members.clone());
        Ok(members)
    }

    async fn read_scope_members(&self, scope: &OrganisationScope) -> Result<Vec<String>> {
        if scope.is_empty() {
            return Ok(Vec::new());
        }
        // `deep` marks where the walk goes on: below the delegated roots, not below
        // those named alone.
        let (alone, below) = (scope.alone.len(), scope.with_descendants.len());
        let mut seeds = Vec::new();
        if alone > 0 {
            let list = placeholders(self.dialect, 1, alone);
            seeds.push(format!(
                "SELECT id, 0 FROM organisations WHERE id IN ({list})"
            ));
        }
        if below > 0 {
            let list = placeholders(self.dialect, alone + 1, below);
            seeds.push(format!(
                "SELECT id, 1 FROM organisations WHERE id IN ({list})"
            ));
        }
        let all = match self.dialect {
            Dialect::Sqlite => "json_group_array(id)",
            Dialect::Postgres => "CAST(COALESCE(json_agg(id), '[]') AS TEXT)",
        };
        let sql = format!(
            "WITH RECURSIVE scope(id, deep) AS ( \
                {} \
                UNION SELECT o.id, 1 FROM organisations o JOIN scope s ON o.parent = s.id \
                WHERE s.deep = 1) \
             SELECT {all} FROM (SELECT DISTINCT id FROM scope ORDER BY id) members",
            seeds.join(" UNION ")
        );
        let mut q = sqlx::query(&sql);
        for o in scope.alone.iter().chain(&scope.with_descendants) {
            q = q.bind(o.clone());
        }
        let row = q.fetch_one(&self.pool).await?;
        let text: Option<String> = row.try_get(0)?;
        let mut members: Vec<String> = from_json(text.as_deref().unwrap_or("[]"))?;
        // Byte order, whatever the database's collation.
        members.sort();
        Ok(members)
    }
}
