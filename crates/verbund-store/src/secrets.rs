//! A booking's declared-secret values (see `verbund_domain::secrets`), kept apart from its
//! configuration, and what the publisher sealed of them for the booking's site.
//!
//! The values are written with the booking, in the same transaction (its audit event
//! names the pointers set, never a value), and read only by the publisher, which seals
//! them. The sealed documents are derived data: a cache keyed by booking, site,
//! recipient and the digest of the plaintext document, so that an unchanged booking is
//! not sealed anew (sealing is randomised) on every render. Both go when the booking
//! reaches a final state.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{AnyConnection, Row};
use verbund_domain::booking::Booking;
use verbund_domain::secrets::SecretValues;

use crate::error::Result;
use crate::rows::{from_json, placeholders, stored_time, to_json, ts};
use crate::Store;

/// Bookings per `IN` list.
const CHUNK: usize = 500;

/// A document sealed for a booking's site.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedDocument {
    pub booking: String,
    pub site: String,
    /// The age recipient it is sealed for.
    pub recipient: String,
    /// `verbund_seal::digest` of the plaintext document and the recipient.
    pub digest: String,
    /// The sealed document (a SOPS document).
    pub document: Value,
}

/// Fills in `secrets_set` of `bookings`: the pointers of their stored values.
pub(crate) async fn fill(
    conn: &mut AnyConnection,
    dialect: crate::Dialect,
    bookings: &mut [Booking],
) -> Result<()> {
    if bookings.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = bookings.iter().map(|b| b.id.clone()).collect();
    let mut found: HashMap<String, Vec<String>> = HashMap::new();
    for (booking, pointer, _) in rows(conn, dialect, &ids, false).await? {
        found.entry(booking).or_default().push(pointer);
    }
    for b in bookings.iter_mut() {
        b.secrets_set = found.remove(&b.id).unwrap_or_default();
        b.secrets_set.sort();
    }
    Ok(())
}

/// The pointers of booking `id`'s stored values, sorted.
pub(crate) async fn pointers(conn: &mut AnyConnection, id: &str) -> Result<Vec<String>> {
    let mut out = sqlx::query("SELECT pointer FROM booking_secrets WHERE booking = $1")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<String>, _>>()?;
    // Byte order, whatever the database's collation.
    out.sort();
    Ok(out)
}

/// The stored `(booking, pointer, value)` of `ids`; values empty unless `values`.
async fn rows(
    conn: &mut AnyConnection,
    dialect: crate::Dialect,
    ids: &[String],
    values: bool,
) -> Result<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    let column = if values { "value" } else { "''" };
    for chunk in ids.chunks(CHUNK) {
        let list = placeholders(dialect, 1, chunk.len());
        let sql = format!(
            "SELECT booking, pointer, {column} FROM booking_secrets WHERE booking IN ({list})"
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.clone());
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
        }
    }
    Ok(out)
}

/// Replaces the stored values of booking `id` with `values`.
pub(crate) async fn write(conn: &mut AnyConnection, id: &str, values: &SecretValues) -> Result<()> {
    sqlx::query("DELETE FROM booking_secrets WHERE booking = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for (pointer, value) in values {
        sqlx::query("INSERT INTO booking_secrets (booking, pointer, value) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(pointer)
            .bind(value)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Forgets the values of booking `id` and what was sealed of them.
pub(crate) async fn purge(conn: &mut AnyConnection, id: &str) -> Result<()> {
    for sql in [
        "DELETE FROM booking_secrets WHERE booking = $1",
        "DELETE FROM sealed_secrets WHERE booking = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    }
    Ok(())
}

impl Store {
    /// The declared-secret values of `ids`, by booking (bookings without any are left
    /// out). For the publisher, which seals them; nothing else reads them.
    pub async fn booking_secrets(&self, ids: &[String]) -> Result<HashMap<String, SecretValues>> {
        let mut conn = self.pool.acquire().await?;
        let mut out: HashMap<String, SecretValues> = HashMap::new();
        for (booking, pointer, value) in rows(&mut conn, self.dialect, ids, true).await? {
            out.entry(booking).or_default().insert(pointer, value);
        }
        Ok(out)
    }

    /// What was last sealed for each of `ids`, by booking.
    pub async fn sealed_documents(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, SealedDocument>> {
        let mut conn = self.pool.acquire().await?;
        let mut out = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let list = placeholders(self.dialect, 1, chunk.len());
            let sql = format!(
                "SELECT booking, site, recipient, digest, document FROM sealed_secrets \
                 WHERE booking IN ({list}) ORDER BY booking, sealed_at"
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.clone());
            }
            for r in q.fetch_all(&mut *conn).await? {
                let d = SealedDocument {
                    booking: r.try_get(0)?,
                    site: r.try_get(1)?,
                    recipient: r.try_get(2)?,
                    digest: r.try_get(3)?,
                    document: from_json(&r.try_get::<String, _>(4)?)?,
                };
                out.insert(d.booking.clone(), d);
            }
        }
        Ok(out)
    }

    /// Keeps `sealed` as its booking's sealed document, in place of any before. A
    /// booking that no longer exists, or reached a final state, keeps none.
    pub async fn store_sealed_document(
        &self,
        sealed: &SealedDocument,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut w = self.begin_derived().await?;
        let live = sqlx::query(
            "SELECT 1 FROM bookings WHERE id = $1 AND state NOT IN ('rejected', 'deleted')",
        )
        .bind(&sealed.booking)
        .fetch_optional(&mut *w.tx)
        .await?
        .is_some();
        if !live {
            return Ok(());
        }
        sqlx::query("DELETE FROM sealed_secrets WHERE booking = $1")
            .bind(&sealed.booking)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query(
            "INSERT INTO sealed_secrets (booking, site, recipient, digest, document, sealed_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&sealed.booking)
        .bind(&sealed.site)
        .bind(&sealed.recipient)
        .bind(&sealed.digest)
        .bind(to_json(&sealed.document)?)
        .bind(ts(&stored_time(now)))
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        Ok(())
    }
}
