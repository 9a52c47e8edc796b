//! Appending to and reading the audit trail.
//!
//! Appends happen inside the caller's write transaction, so an event is stored exactly
//! when its change is. Writers are serialised (see `Store::begin_write`), which keeps the
//! chain a single line.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use verbund_domain::audit::{AuditEvent, BrokenLink, ChainVerifier, Change};
use verbund_domain::page::{Page, PageRequest};
use verbund_domain::site_history::HEALTH_ACTIONS;

use crate::error::Result;
use crate::rows::{from_json, paginate, parse_ts, to_json, ts, Arg, Select};
use crate::Store;

/// Filters for listing audit events; all given ones must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// Prefix of the action, e.g. `site.` for every site change.
    pub action: Option<String>,
    /// Prefix of the object, e.g. `site/dataport-hh-1`.
    pub object: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Appends one event to the chain; call only inside a serialised write transaction.
/// `head` is the chain's last link as this transaction knows it: read from the table on
/// the first append, then carried from event to event (writers are serialised).
pub(crate) async fn append(
    conn: &mut AnyConnection,
    head: &mut Option<Option<(i64, String)>>,
    change: Change,
    now: DateTime<Utc>,
) -> Result<AuditEvent> {
    let prev = match head.take() {
        Some(known) => known,
        None => {
            let row = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await?;
            match &row {
                Some(r) => Some((r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?)),
                None => None,
            }
        }
    };
    let event = AuditEvent::chain(prev.as_ref().map(|(s, h)| (*s, h.as_str())), now, change);
    sqlx::query(
        "INSERT INTO audit_events (seq, at, actor, action, object, before, after, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(event.seq)
    .bind(ts(&event.at))
    .bind(&event.actor)
    .bind(&event.action)
    .bind(&event.object)
    .bind(event.before.as_ref().map(to_json).transpose()?)
    .bind(event.after.as_ref().map(to_json).transpose()?)
    .bind(&event.prev_hash)
    .bind(&event.hash)
    .execute(&mut *conn)
    .await?;
    *head = Some(Some((event.seq, event.hash.clone())));
    Ok(event)
}

/// Appends many events in order, chained as `append` would chain them one by one, but
/// written with multi-row inserts: one round trip to the database per hundred events
/// instead of one per event (a site's first report moves thousands of bookings).
pub(crate) async fn append_many(
    conn: &mut AnyConnection,
    dialect: crate::Dialect,
    head: &mut Option<Option<(i64, String)>>,
    changes: Vec<Change>,
    now: DateTime<Utc>,
) -> Result<()> {
    const ROWS: usize = 100;
    if changes.is_empty() {
        return Ok(());
    }
    let mut prev = match head.take() {
        Some(known) => known,
        None => {
            let row = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await?;
            match &row {
                Some(r) => Some((r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?)),
                None => None,
            }
        }
    };
    let mut events = Vec::with_capacity(changes.len());
    for change in changes {
        let event = AuditEvent::chain(prev.as_ref().map(|(s, h)| (*s, h.as_str())), now, change);
        prev = Some((event.seq, event.hash.clone()));
        events.push(event);
    }
    for chunk in events.chunks(ROWS) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|j| format!("({})", crate::rows::placeholders(dialect, j * 9 + 1, 9)))
            .collect();
        let sql = format!(
            "INSERT INTO audit_events ({COLUMNS}) VALUES {}",
            rows.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(e.seq)
                .bind(ts(&e.at))
                .bind(e.actor.clone())
                .bind(e.action.clone())
                .bind(e.object.clone())
                .bind(e.before.as_ref().map(to_json).transpose()?)
                .bind(e.after.as_ref().map(to_json).transpose()?)
                .bind(e.prev_hash.clone())
                .bind(e.hash.clone());
        }
        q.execute(&mut *conn).await?;
    }
    *head = Some(prev);
    Ok(())
}

const COLUMNS: &str = "seq, at, actor, action, object, before, after, prev_hash, hash";

fn event(r: &AnyRow) -> Result<AuditEvent> {
    let json = |i: usize| -> Result<Option<serde_json::Value>> {
        r.try_get::<Option<String>, _>(i)?
            .as_deref()
            .map(from_json)
            .transpose()
    };
    Ok(AuditEvent {
        seq: r.try_get(0)?,
        at: parse_ts(&r.try_get::<String, _>(1)?)?,
        actor: r.try_get(2)?,
        action: r.try_get(3)?,
        object: r.try_get(4)?,
        before: json(5)?,
        after: json(6)?,
        prev_hash: r.try_get(7)?,
        hash: r.try_get(8)?,
    })
}

impl Store {
    /// Lists events, newest first.
    pub async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        let mut s = Select::default();
        if let Some(a) = &filter.actor {
            s.and("actor = {}", Arg::Text(a.clone()));
        }
        // Not LIKE: SQLite's LIKE ignores the case of ASCII letters, PostgreSQL's does not.
        if let Some(a) = &filter.action {
            s.and("substr(action, 1, length({})) = {}", Arg::Text(a.clone()));
        }
        if let Some(o) = &filter.object {
            s.and("substr(object, 1, length({})) = {}", Arg::Text(o.clone()));
        }
        if let Some(t) = &filter.since {
            s.and("at >= {}", Arg::Text(ts(t)));
        }
        if let Some(t) = &filter.until {
            s.and("at < {}", Arg::Text(ts(t)));
        }
        if let Some(after) = &page.after {
            let seq = after.parse::<i64>().unwrap_or(i64::MAX);
            s.and("seq < {}", Arg::Int(seq));
        }
        let limit = page.limit();
        let sql = s.sql(
            &format!("SELECT {COLUMNS} FROM audit_events"),
            &format!("ORDER BY seq DESC LIMIT {}", limit + 1),
        );
        let rows = s.bind(&sql).fetch_all(&self.pool).await?;
        let items = rows.iter().map(event).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |e| e.seq.to_string()))
    }

    /// Events after `after` (by sequence number) whose action starts with
    /// `action_prefix`, oldest first, at most `limit`: how background workers follow the
    /// trail as an event log.
    pub async fn audit_after(
        &self,
        after: i64,
        action_prefix: &str,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_events \
             WHERE seq > $1 AND substr(action, 1, length($2)) = $2 ORDER BY seq LIMIT $3"
        ))
        .bind(after)
        .bind(action_prefix)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event).collect()
    }

    /// A site's health turns (`verbund_domain::site_history::HEALTH_ACTIONS`) since
    /// `since`, oldest first, at most `limit` of them (the newest when there are more),
    /// and the last turn before `since`, which says the health the window starts with.
    /// Read through the `(object, seq)` index, so the cost follows the site's own events.
    pub async fn site_health_events(
        &self,
        site: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<(Option<AuditEvent>, Vec<AuditEvent>)> {
        let object = format!("site/{site}");
        let [a, b, c] = HEALTH_ACTIONS;
        let before = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_events WHERE object = $1 \
             AND action IN ($2, $3, $4) AND at < $5 ORDER BY seq DESC LIMIT 1"
        ))
        .bind(&object)
        .bind(a)
        .bind(b)
        .bind(c)
        .bind(ts(&since))
        .fetch_optional(&self.pool)
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_events WHERE object = $1 \
             AND action IN ($2, $3, $4) AND at >= $5 ORDER BY seq DESC LIMIT $6"
        ))
        .bind(&object)
        .bind(a)
        .bind(b)
        .bind(c)
        .bind(ts(&since))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut turns = rows.iter().map(event).collect::<Result<Vec<_>>>()?;
        turns.reverse();
        Ok((before.as_ref().map(event).transpose()?, turns))
    }

    /// The sequence number of the newest event, 0 for an empty trail.
    pub async fn audit_head(&self) -> Result<i64> {
        let row = sqlx::query("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM audit_events")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    /// Records an event that goes with no stored object of its own, e.g. a commit of
    /// the desired state that repairs drift.
    pub async fn record_event(&self, change: Change, now: DateTime<Utc>) -> Result<AuditEvent> {
        let mut w = self.begin_write().await?;
        let event = w.audit(change, now).await?;
        w.commit().await?;
        Ok(event)
    }

    /// Walks the whole chain in order; `Ok(Err(link))` names the first broken link.
    pub async fn verify_audit(&self) -> Result<std::result::Result<i64, BrokenLink>> {
        let mut verifier = ChainVerifier::default();
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 5000"
            ))
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                return Ok(Ok(verifier.verified()));
            }
            for r in &rows {
                let e = event(r)?;
                after = e.seq;
                if let Err(broken) = verifier.push(&e) {
                    return Ok(Err(broken));
                }
            }
        }
    }
}
