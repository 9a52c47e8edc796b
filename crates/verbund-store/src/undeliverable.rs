//! Bookings whose desired state the renderer refuses, kept so that the booking shows why
//! (API, CLI, portal) and the audit trail says when it started and ended. The publisher
//! reports what it rendered and refused after each delivery; only changes are written.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::AnyConnection;
use sqlx::Row;
use verbund_domain::audit::Change;
use verbund_domain::booking::{Booking, Undeliverable};

use crate::error::Result;
use crate::rows::{parse_ts, stored_time, ts};
use crate::Store;

/// The refused bookings among `ids`, by id.
pub(crate) async fn of(
    conn: &mut AnyConnection,
    dialect: crate::Dialect,
    ids: &[&str],
) -> Result<HashMap<String, Undeliverable>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let list = crate::rows::placeholders(dialect, 1, chunk.len());
        let sql = format!(
            "SELECT booking, reason, since FROM booking_delivery WHERE booking IN ({list})"
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.insert(
                r.try_get(0)?,
                Undeliverable {
                    reason: r.try_get(1)?,
                    since: parse_ts(&r.try_get::<String, _>(2)?)?,
                },
            );
        }
    }
    Ok(out)
}

/// Fills in `undeliverable` of `bookings`.
pub(crate) async fn fill(
    conn: &mut AnyConnection,
    dialect: crate::Dialect,
    bookings: &mut [Booking],
) -> Result<()> {
    if bookings.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = bookings.iter().map(|b| b.id.as_str()).collect();
    let mut found = of(conn, dialect, &ids).await?;
    for b in bookings.iter_mut() {
        b.undeliverable = found.remove(&b.id);
    }
    Ok(())
}

impl Store {
    /// Records what a delivery found: `refused` bookings (id → reason) are undeliverable,
    /// `rendered` ones deliverable again. Writes (and audits, as `actor`) only what
    /// changed; returns how many bookings changed.
    pub async fn record_deliverability(
        &self,
        actor: &str,
        refused: &BTreeMap<String, String>,
        rendered: &[String],
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let now = stored_time(now);
        let known: HashMap<String, String> =
            sqlx::query("SELECT booking, reason FROM booking_delivery")
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_>>()?;
        let newly: Vec<(&String, &String)> = refused
            .iter()
            .filter(|(id, reason)| known.get(*id) != Some(*reason))
            .collect();
        let cleared: Vec<&String> = rendered
            .iter()
            .filter(|id| known.contains_key(*id) && !refused.contains_key(*id))
            .collect();
        if newly.is_empty() && cleared.is_empty() {
            return Ok(0);
        }
        let mut w = self.begin_write().await?;
        for (id, reason) in &newly {
            let exists = sqlx::query("SELECT 1 FROM bookings WHERE id = $1")
                .bind(*id)
                .fetch_optional(&mut *w.tx)
                .await?
                .is_some();
            if !exists {
                continue;
            }
            sqlx::query(
                "INSERT INTO booking_delivery (booking, reason, since) VALUES ($1, $2, $3) \
                 ON CONFLICT (booking) DO UPDATE SET reason = excluded.reason",
            )
            .bind(*id)
            .bind(*reason)
            .bind(ts(&now))
            .execute(&mut *w.tx)
            .await?;
            w.audit(
                Change {
                    actor: actor.to_owned(),
                    action: "booking.undeliverable".into(),
                    object: format!("booking/{id}"),
                    before: known.get(*id).map(|r| json!({"reason": r})),
                    after: Some(json!({"reason": reason})),
                },
                now,
            )
            .await?;
        }
        for id in &cleared {
            sqlx::query("DELETE FROM booking_delivery WHERE booking = $1")
                .bind(*id)
                .execute(&mut *w.tx)
                .await?;
            w.audit(
                Change {
                    actor: actor.to_owned(),
                    action: "booking.deliverable".into(),
                    object: format!("booking/{id}"),
                    before: known.get(*id).map(|r| json!({"reason": r})),
                    after: None,
                },
                now,
            )
            .await?;
        }
        w.commit().await?;
        Ok(newly.len() + cleared.len())
    }
}
