//! Sign-in attempts counted per key, so that parallel attempts cannot pass a limit.
//!
//! An attempt is reserved *before* its password is evaluated, in one atomic statement
//! (an upsert that counts and answers the new count): of any number of attempts at once,
//! at most `limit` per window see a count within the limit and get to evaluate. A
//! successful sign-in forgets its account's key and gives its source's attempt back; a
//! failure that reaches the limit stretches the window to a lock-out
//! (`Store::login_failed`).

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use crate::error::Result;
use crate::rows::{parse_ts, stored_time, ts};
use crate::Store;

/// The answer to reserving a sign-in attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Within the limit: the password may be evaluated.
    Allowed,
    /// Over the limit until this time: nothing may be evaluated.
    Refused { until: DateTime<Utc> },
}

impl Store {
    /// Reserves one attempt under `key`: allowed while the key's window (`window` long,
    /// from its first attempt) holds at most `limit` attempts.
    pub async fn reserve_sign_in(
        &self,
        key: &str,
        limit: i64,
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<Attempt> {
        let now = stored_time(now);
        let mut w = self.begin_derived().await?;
        let row = sqlx::query(
            "INSERT INTO sign_in_attempts (key, attempts, window_ends) VALUES ($1, 1, $3) \
             ON CONFLICT (key) DO UPDATE SET \
             attempts = CASE WHEN sign_in_attempts.window_ends <= $2 THEN 1 \
                             ELSE sign_in_attempts.attempts + 1 END, \
             window_ends = CASE WHEN sign_in_attempts.window_ends <= $2 THEN $3 \
                                ELSE sign_in_attempts.window_ends END \
             RETURNING attempts, window_ends",
        )
        .bind(key)
        .bind(ts(&now))
        .bind(ts(&(now + window)))
        .fetch_one(&mut *w.tx)
        .await?;
        w.commit().await?;
        let attempts: i64 = row.try_get(0)?;
        let until = parse_ts(&row.try_get::<String, _>(1)?)?;
        Ok(if attempts <= limit {
            Attempt::Allowed
        } else {
            Attempt::Refused { until }
        })
    }

    /// Gives an allowed attempt back (it was not a failure: a correct password, or no
    /// password was evaluated after all), so that one more may pass `limit`.
    ///
    /// Refused attempts count too, past the limit; while the count is over the limit,
    /// exactly `limit` allowed attempts are outstanding, so the count after a refund is
    /// `limit - 1`.
    pub async fn refund_sign_in(&self, key: &str, limit: i64) -> Result<()> {
        let mut w = self.begin_derived().await?;
        sqlx::query(
            "UPDATE sign_in_attempts SET attempts = \
             CASE WHEN attempts > $2 THEN $2 - 1 ELSE attempts - 1 END \
             WHERE key = $1 AND attempts > 0",
        )
        .bind(key)
        .bind(limit)
        .execute(&mut *w.tx)
        .await?;
        w.commit().await
    }

    /// Forgets a key's attempts (its account signed in).
    pub async fn forget_sign_in(&self, key: &str) -> Result<()> {
        let mut w = self.begin_derived().await?;
        sqlx::query("DELETE FROM sign_in_attempts WHERE key = $1")
            .bind(key)
            .execute(&mut *w.tx)
            .await?;
        w.commit().await
    }

    /// Forgets the counters whose window has passed (they would start afresh anyway), so
    /// that names and addresses tried once do not pile up.
    pub async fn forget_past_sign_in_attempts(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut w = self.begin_derived().await?;
        let gone = sqlx::query("DELETE FROM sign_in_attempts WHERE window_ends <= $1")
            .bind(ts(&stored_time(now)))
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        w.commit().await?;
        Ok(gone)
    }
}
