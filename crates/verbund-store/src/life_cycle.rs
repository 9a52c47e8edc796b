//! The life cycle of an account after its creation: disabling and enabling it, revoking
//! everything it signs in with, changing its roles, and password resets.
//!
//! Administrators never learn or choose another person's password: they hand out a
//! one-time reset token (only its SHA-256 is stored, it expires, a newer one supersedes
//! it) and the person chooses the password with it. Accounts that sign in through an
//! identity provider have neither a local password nor locally managed roles. Every step
//! is one transaction with its audit event.

use chrono::{DateTime, Utc};
use sqlx::Row;
use verbund_domain::account::{Membership, PasswordReset, Revoked, User};
use verbund_domain::audit::Change;
use verbund_domain::Invalid;

use crate::error::{Result, StoreError};
use crate::rows::{parse_ts, stored_time, ts};
use crate::sessions::{
    end_sessions, managing_provider, refuse_managed_by_provider, store_password,
};
use crate::Store;

fn audit_user(actor: &str, action: &str, user: &User, after: serde_json::Value) -> Change {
    Change {
        actor: actor.into(),
        action: action.into(),
        object: format!("user/{}", user.id),
        before: None,
        after: Some(after),
    }
}

impl Store {
    /// Disables an account: it signs in nowhere, its tokens stop working (they work again
    /// when it is enabled) and its sessions end. Disabling a disabled account changes
    /// nothing.
    pub async fn disable_user(
        &self,
        actor: &str,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<User> {
        let now = stored_time(now);
        let user = self.get_user(user_id).await?;
        if user.disabled_at.is_some() {
            return Ok(user);
        }
        let mut w = self.begin_write().await?;
        sqlx::query("UPDATE users SET disabled_at = $2 WHERE id = $1")
            .bind(&user.id)
            .bind(ts(&now))
            .execute(&mut *w.tx)
            .await?;
        let sessions = end_sessions(&mut w, &user.id, None, now).await?;
        w.audit(
            audit_user(
                actor,
                "user.disable",
                &user,
                serde_json::json!({ "user": user.spec.name, "sessions_ended": sessions }),
            ),
            now,
        )
        .await?;
        w.commit().await?;
        Ok(User {
            disabled_at: Some(now),
            ..user
        })
    }

    /// Enables a disabled account again (its unrevoked tokens work again; its sessions
    /// stay ended).
    pub async fn enable_user(
        &self,
        actor: &str,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<User> {
        let now = stored_time(now);
        let user = self.get_user(user_id).await?;
        if user.disabled_at.is_none() {
            return Ok(user);
        }
        let mut w = self.begin_write().await?;
        sqlx::query("UPDATE users SET disabled_at = NULL WHERE id = $1")
            .bind(&user.id)
            .execute(&mut *w.tx)
            .await?;
        w.audit(
            audit_user(
                actor,
                "user.enable",
                &user,
                serde_json::json!({ "user": user.spec.name }),
            ),
            now,
        )
        .await?;
        w.commit().await?;
        Ok(User {
            disabled_at: None,
            ..user
        })
    }

    /// Revokes every API token of an account and ends all its sessions, in one step.
    pub async fn revoke_access(
        &self,
        actor: &str,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Revoked> {
        let now = stored_time(now);
        let user = self.get_user(user_id).await?;
        let mut w = self.begin_write().await?;
        let tokens = sqlx::query(
            "UPDATE tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(&user.id)
        .bind(ts(&now))
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        let sessions = end_sessions(&mut w, &user.id, None, now).await?;
        let revoked = Revoked { tokens, sessions };
        w.audit(
            audit_user(
                actor,
                "user.revoke",
                &user,
                serde_json::json!({ "user": user.spec.name, "tokens": tokens, "sessions": sessions }),
            ),
            now,
        )
        .await?;
        w.commit().await?;
        Ok(revoked)
    }

    /// Replaces an account's roles (adding or removing some); accounts whose roles come
    /// from an identity provider are refused: their roles change there.
    pub async fn set_roles(
        &self,
        actor: &str,
        user_id: &str,
        memberships: &[Membership],
        now: DateTime<Utc>,
    ) -> Result<User> {
        let user = self.get_user(user_id).await?;
        // The link to a provider is made when the account is created and never later,
        // so the check may precede the change's own transaction.
        let mut w = self.begin_derived().await?;
        refuse_managed_by_provider(&mut w, &user).await?;
        w.commit().await?;
        self.set_memberships(actor, &user, memberships, now).await
    }

    /// Stores a reset token (`token_hash`, the SHA-256 of its secret) for an account,
    /// valid until `expires_at`; earlier unused ones of the account stop working.
    pub async fn create_password_reset(
        &self,
        actor: &str,
        user_id: &str,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<PasswordReset> {
        let (now, expires_at) = (stored_time(now), stored_time(expires_at));
        let user = self.get_user(user_id).await?;
        let mut w = self.begin_write().await?;
        refuse_managed_by_provider(&mut w, &user).await?;
        sqlx::query(
            "UPDATE password_resets SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(&user.id)
        .bind(ts(&now))
        .execute(&mut *w.tx)
        .await?;
        sqlx::query(
            "INSERT INTO password_resets (token_hash, user_id, created_by, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(token_hash)
        .bind(&user.id)
        .bind(actor)
        .bind(ts(&now))
        .bind(ts(&expires_at))
        .execute(&mut *w.tx)
        .await?;
        w.audit(
            audit_user(
                actor,
                "user.password-reset",
                &user,
                serde_json::json!({ "user": user.spec.name, "expires_at": expires_at }),
            ),
            now,
        )
        .await?;
        w.commit().await?;
        Ok(PasswordReset {
            user: user.id,
            expires_at,
        })
    }

    /// Completes a reset: the token (by its hash) is used up, the password set, and every
    /// session of the account ended, in one transaction. A token that is unknown, used,
    /// superseded or expired is refused as invalid, and so is its second use even when
    /// two arrive at once.
    pub async fn complete_password_reset(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<User> {
        let now = stored_time(now);
        let refused = || {
            StoreError::from(Invalid::meaning(
                "/token",
                "the reset token is unknown, used or expired; ask an administrator for a new one",
            ))
        };
        let row = sqlx::query(
            "SELECT user_id, expires_at FROM password_resets WHERE token_hash = $1 AND used_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(refused)?;
        let (user_id, expires_at): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        if parse_ts(&expires_at)? <= now {
            return Err(refused());
        }
        let user = self.get_user(&user_id).await?;
        let mut w = self.begin_write().await?;
        // The one step that uses the token up: of two completions at once, one changes
        // the row and the other finds it used.
        let used = sqlx::query(
            "UPDATE password_resets SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
        )
        .bind(token_hash)
        .bind(ts(&now))
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if used != 1 || managing_provider(&mut w, &user.id).await?.is_some() {
            return Err(refused());
        }
        store_password(&mut w, &user, password_hash, now).await?;
        let sessions = end_sessions(&mut w, &user.id, None, now).await?;
        w.audit(
            audit_user(
                &format!("user/{}", user.spec.name),
                "user.password",
                &user,
                serde_json::json!({ "user": user.spec.name, "via": "reset", "sessions_ended": sessions }),
            ),
            now,
        )
        .await?;
        w.commit().await?;
        Ok(user)
    }
}
