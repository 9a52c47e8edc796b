//! `Idempotency-Key`s of booking requests (migration `0011`): recorded in the transaction
//! that stores the booking, so that a retried request finds the booking its first try
//! made instead of booking twice.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use crate::error::{Result, StoreError};
use crate::rows::{parse_ts, ts};
use crate::Store;

/// A request's `Idempotency-Key`, to be recorded with the booking the request makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The account that sent it (its user id): keys of different accounts never meet.
    pub account: String,
    /// The key as the client sent it.
    pub key: String,
    /// The organisation the request books for.
    pub organisation: String,
    /// Digest of the request, which tells a retry from another request under this key.
    pub fingerprint: String,
    /// When the key stops counting (and may be used again).
    pub expires_at: DateTime<Utc>,
}

/// A key that is recorded, with the booking its request made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentBooking {
    pub key: IdempotencyKey,
    /// Id of the booking the request made (its dependencies name it in `dependency_of`).
    pub booking: String,
    pub created_at: DateTime<Utc>,
}

/// Refuses with a conflict when `key` is recorded and has not expired at `now`.
pub(crate) async fn refuse_used(
    conn: &mut AnyConnection,
    key: &IdempotencyKey,
    now: DateTime<Utc>,
) -> Result<()> {
    match find(conn, &key.account, &key.key, now).await? {
        Some(_) => Err(used(&key.key)),
        None => Ok(()),
    }
}

fn used(key: &str) -> StoreError {
    StoreError::Conflict(format!("the idempotency key `{key}` is already used"))
}

/// Records `key` as the one that made `booking`, after removing every expired key (so
/// that an expired key may be used again, and the table holds one day of keys).
pub(crate) async fn record(
    conn: &mut AnyConnection,
    key: &IdempotencyKey,
    booking: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("DELETE FROM booking_idempotency WHERE expires_at <= $1")
        .bind(ts(&now))
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO booking_idempotency \
         (account, idempotency_key, organisation, fingerprint, booking, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&key.account)
    .bind(&key.key)
    .bind(&key.organisation)
    .bind(&key.fingerprint)
    .bind(booking)
    .bind(ts(&now))
    .bind(ts(&key.expires_at))
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        if StoreError::is_unique_violation(&e) {
            used(&key.key)
        } else {
            e.into()
        }
    })?;
    Ok(())
}

async fn find(
    conn: &mut AnyConnection,
    account: &str,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<IdempotentBooking>> {
    let row = sqlx::query(
        "SELECT organisation, fingerprint, booking, created_at, expires_at \
         FROM booking_idempotency \
         WHERE account = $1 AND idempotency_key = $2 AND expires_at > $3",
    )
    .bind(account)
    .bind(key)
    .bind(ts(&now))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(IdempotentBooking {
        key: IdempotencyKey {
            account: account.to_string(),
            key: key.to_string(),
            organisation: r.try_get(0)?,
            fingerprint: r.try_get(1)?,
            expires_at: parse_ts(&r.try_get::<String, _>(4)?)?,
        },
        booking: r.try_get(2)?,
        created_at: parse_ts(&r.try_get::<String, _>(3)?)?,
    }))
}

impl Store {
    /// This store, for one request that carries `key`: its next `create_bookings`
    /// records the key in the booking's transaction, or refuses with a conflict (storing
    /// nothing) when the key is recorded already and has not expired.
    pub fn idempotent(&self, key: IdempotencyKey) -> Store {
        Store {
            idempotency: Some(std::sync::Arc::new(key)),
            ..self.clone()
        }
    }

    /// The booking that `account` made with `key`, unless the key expired by `now`.
    pub async fn idempotent_booking(
        &self,
        account: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotentBooking>> {
        let mut conn = self.pool.acquire().await?;
        find(&mut conn, account, key, now).await
    }
}
