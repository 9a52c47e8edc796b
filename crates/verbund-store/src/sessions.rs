//! The portal's sign-in state: local passwords with lock-out, browser sessions, and the
//! users that an OIDC provider (Keycloak) vouches for.
//!
//! Only hashes are stored: the password as an Argon2 PHC string made by the caller, the
//! session cookie's secret as its SHA-256. Sign-ins, sign-outs, failed attempts and
//! lock-outs are audit events like every other change.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;
use verbund_domain::account::{Membership, User, UserSpec};
use verbund_domain::audit::Change;

use crate::accounts::{check_memberships, insert_memberships, insert_user};
use crate::error::{Result, StoreError};
use crate::rows::{parse_ts, parse_ts_opt, stored_time, ts};
use crate::Store;

/// Who signs failed attempts and lock-outs in the audit trail: nobody is signed in yet.
pub const PORTAL: &str = "system/portal";

/// A user's local password and its lock-out state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub user_id: String,
    /// Argon2 PHC string; `None` for users that sign in only through OIDC or by token.
    pub password_hash: Option<String>,
    pub failed_logins: i64,
    pub locked_until: Option<DateTime<Utc>>,
}

impl Credential {
    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        matches!(self.locked_until, Some(t) if t > now)
    }
}

/// When repeated failures lock an account, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct LockPolicy {
    pub max_failures: i64,
    pub lock_for: chrono::Duration,
}

impl Default for LockPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lock_for: chrono::Duration::minutes(15),
        }
    }
}

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: String,
    /// The synchroniser token every form of this session must carry.
    pub csrf: String,
    /// `password` or `oidc`.
    pub via: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

fn credential(r: &AnyRow) -> Result<Credential> {
    Ok(Credential {
        user_id: r.try_get(0)?,
        password_hash: r.try_get(1)?,
        failed_logins: r.try_get(2)?,
        locked_until: parse_ts_opt(r.try_get(3)?)?,
    })
}

const CREDENTIAL_COLUMNS: &str = "user_id, password_hash, failed_logins, locked_until";

impl Store {
    /// Sets (or replaces) a user's password hash; the hash itself never enters the audit trail.
    pub async fn set_password(
        &self,
        actor: &str,
        user_id: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now = stored_time(now);
        let user = self.get_user(user_id).await?;
        let mut w = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO credentials (user_id, password_hash, failed_logins, locked_until, updated_at) \
             VALUES ($1, $2, 0, NULL, $3) ON CONFLICT (user_id) DO UPDATE SET \
             password_hash = $2, failed_logins = 0, locked_until = NULL, updated_at = $3",
        )
        .bind(user_id)
        .bind(password_hash)
        .bind(ts(&now))
        .execute(&mut *w.tx)
        .await?;
        w.audit(
            Change {
                actor: actor.into(),
                action: "user.password".into(),
                object: format!("user/{}", user.id),
                before: None,
                after: Some(serde_json::json!({ "user": user.spec.name })),
            },
            now,
        )
        .await?;
        w.commit().await
    }

    /// The user of this login name with its credential (absent: no password set).
    pub async fn credential(&self, user_name: &str) -> Result<Option<(User, Option<Credential>)>> {
        let Some(user) = self.get_user_by_name(user_name).await? else {
            return Ok(None);
        };
        let c = sqlx::query(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE user_id = $1"
        ))
        .bind(&user.id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| credential(&r))
        .transpose()?;
        Ok(Some((user, c)))
    }

    /// Counts a failed sign-in; the failure that reaches `policy.max_failures` locks the
    /// account for `policy.lock_for`. Both are audited.
    pub async fn login_failed(
        &self,
        user: &User,
        policy: LockPolicy,
        now: DateTime<Utc>,
    ) -> Result<Credential> {
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        let before = sqlx::query(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE user_id = $1"
        ))
        .bind(&user.id)
        .fetch_optional(&mut *w.tx)
        .await?
        .map(|r| credential(&r))
        .transpose()?
        .ok_or_else(|| StoreError::not_found("credential", &user.id))?;
        let failed = before.failed_logins + 1;
        let locks = failed >= policy.max_failures;
        let locked_until = if locks {
            Some(now + policy.lock_for)
        } else {
            before.locked_until
        };
        sqlx::query(
            "UPDATE credentials SET failed_logins = $2, locked_until = $3, updated_at = $4 WHERE user_id = $1",
        )
        .bind(&user.id)
        .bind(if locks { 0 } else { failed })
        .bind(locked_until.as_ref().map(ts))
        .bind(ts(&now))
        .execute(&mut *w.tx)
        .await?;
        let object = format!("user/{}", user.id);
        w.audit(
            Change {
                actor: PORTAL.into(),
                action: "user.login-failed".into(),
                object: object.clone(),
                before: None,
                after: Some(serde_json::json!({ "user": user.spec.name, "failures": failed })),
            },
            now,
        )
        .await?;
        if locks {
            w.audit(
                Change {
                    actor: PORTAL.into(),
                    action: "user.lock".into(),
                    object,
                    before: None,
                    after: Some(serde_json::json!({
                        "user": user.spec.name,
                        "locked_until": locked_until,
                    })),
                },
                now,
            )
            .await?;
        }
        w.commit().await?;
        Ok(Credential {
            failed_logins: if locks { 0 } else { failed },
            locked_until,
            ..before
        })
    }

    /// Opens a session for a user who just proved who they are (and forgets earlier
    /// failed attempts).
    #[allow(clippy::too_many_arguments)]
    pub async fn open_session(
        &self,
        user: &User,
        id_hash: &str,
        csrf: &str,
        via: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Session> {
        let now = stored_time(now);
        let expires_at = stored_time(expires_at);
        let mut w = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf, via, created_at, expires_at, ended_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(id_hash)
        .bind(&user.id)
        .bind(csrf)
        .bind(via)
        .bind(ts(&now))
        .bind(ts(&expires_at))
        .execute(&mut *w.tx)
        .await?;
        sqlx::query("UPDATE credentials SET failed_logins = 0, updated_at = $2 WHERE user_id = $1")
            .bind(&user.id)
            .bind(ts(&now))
            .execute(&mut *w.tx)
            .await?;
        w.audit(
            Change {
                actor: format!("user/{}", user.spec.name),
                action: "session.open".into(),
                object: format!("user/{}", user.id),
                before: None,
                after: Some(serde_json::json!({ "via": via, "expires_at": expires_at })),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok(Session {
            user_id: user.id.clone(),
            csrf: csrf.into(),
            via: via.into(),
            created_at: now,
            expires_at,
        })
    }

    /// The live session with this hash and its user.
    pub async fn session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(Session, User)>> {
        let row = sqlx::query(
            "SELECT user_id, csrf, via, created_at, expires_at FROM sessions \
             WHERE id_hash = $1 AND ended_at IS NULL",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let s = Session {
            user_id: r.try_get(0)?,
            csrf: r.try_get(1)?,
            via: r.try_get(2)?,
            created_at: parse_ts(&r.try_get::<String, _>(3)?)?,
            expires_at: parse_ts(&r.try_get::<String, _>(4)?)?,
        };
        if s.expires_at <= now {
            return Ok(None);
        }
        let user = self.get_user(&s.user_id).await?;
        Ok(Some((s, user)))
    }

    /// Ends a session (sign-out); a session that is unknown or ended already is left alone.
    pub async fn close_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<()> {
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT s.user_id, u.name FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = $1 AND s.ended_at IS NULL",
        )
        .bind(id_hash)
        .fetch_optional(&mut *w.tx)
        .await?;
        let Some(r) = row else { return Ok(()) };
        let (user_id, name): (String, String) = (r.try_get(0)?, r.try_get(1)?);
        sqlx::query("UPDATE sessions SET ended_at = $2 WHERE id_hash = $1")
            .bind(id_hash)
            .bind(ts(&now))
            .execute(&mut *w.tx)
            .await?;
        w.audit(
            Change {
                actor: format!("user/{name}"),
                action: "session.close".into(),
                object: format!("user/{user_id}"),
                before: None,
                after: None,
            },
            now,
        )
        .await?;
        w.commit().await
    }

    /// The user linked to an OIDC identity.
    pub async fn oidc_user(&self, issuer: &str, subject: &str) -> Result<Option<User>> {
        let row =
            sqlx::query("SELECT user_id FROM oidc_identities WHERE issuer = $1 AND subject = $2")
                .bind(issuer)
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some(r) => Ok(Some(self.get_user(&r.try_get::<String, _>(0)?).await?)),
            None => Ok(None),
        }
    }

    /// Creates the user for a first OIDC sign-in and links it to the identity, in one
    /// transaction.
    pub async fn create_oidc_user(
        &self,
        actor: &str,
        issuer: &str,
        subject: &str,
        spec: &UserSpec,
        now: DateTime<Utc>,
    ) -> Result<User> {
        spec.validate()?;
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        let user = insert_user(&mut w, actor, spec, now).await?;
        sqlx::query(
            "INSERT INTO oidc_identities (issuer, subject, user_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(issuer)
        .bind(subject)
        .bind(&user.id)
        .bind(ts(&now))
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        Ok(user)
    }

    /// Replaces a user's roles (e.g. with the ones its OIDC groups grant at sign-in);
    /// audited only when they change.
    pub async fn set_memberships(
        &self,
        actor: &str,
        user: &User,
        memberships: &[Membership],
        now: DateTime<Utc>,
    ) -> Result<User> {
        let mut wanted = memberships.to_vec();
        wanted.sort();
        wanted.dedup();
        if wanted == user.spec.memberships {
            return Ok(user.clone());
        }
        let after = User {
            spec: UserSpec {
                memberships: wanted,
                ..user.spec.clone()
            },
            ..user.clone()
        };
        after.spec.validate()?;
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        check_memberships(&mut w, &after.spec.memberships).await?;
        sqlx::query("DELETE FROM memberships WHERE user_id = $1")
            .bind(&user.id)
            .execute(&mut *w.tx)
            .await?;
        insert_memberships(&mut w, &user.id, &after.spec.memberships).await?;
        w.audit(
            Change {
                actor: actor.into(),
                action: "user.roles".into(),
                object: format!("user/{}", user.id),
                before: Some(serde_json::to_value(&user.spec.memberships).unwrap_or_default()),
                after: Some(serde_json::to_value(&after.spec.memberships).unwrap_or_default()),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok(after)
    }
}
