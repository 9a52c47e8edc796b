//! The portal's sign-in state: local passwords, browser sessions, and the users that an
//! OIDC provider (Keycloak) vouches for.
//!
//! Only hashes are stored: the password as an Argon2 PHC string made by the caller, the
//! session cookie's secret as its SHA-256. (An OIDC session keeps the provider's refresh
//! token as it is: it is needed to ask the provider again, and it is useless without the
//! portal's client secret.) Sign-ins, sign-outs, failed attempts and lock-outs are audit
//! events like every other change; the attempts themselves are counted in
//! `sign_in_attempts`.

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

/// A user's local password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub user_id: String,
    /// Argon2 PHC string; `None` for users that sign in only through OIDC or by token.
    pub password_hash: Option<String>,
}

/// How many sign-in attempts pass before the portal stops evaluating passwords, and for
/// how long.
///
/// Two counters decide, each per `lock_for` window: one per account *and* source
/// (`max_failures`), one per source over all accounts (`max_failures_per_source`). An
/// attacker therefore locks an account only for the addresses it attacks from; the
/// account's owner, signing in from elsewhere, still gets in with the right password
/// (see `verbund_web::login` for why this and not an account-wide lock).
#[derive(Debug, Clone, Copy)]
pub struct LockPolicy {
    pub max_failures: i64,
    pub max_failures_per_source: i64,
    pub lock_for: chrono::Duration,
}

impl Default for LockPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            max_failures_per_source: 20,
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
    /// When the identity provider last confirmed the roles (OIDC sessions only).
    pub roles_checked_at: Option<DateTime<Utc>>,
    /// The identity provider's refresh token, to confirm the roles again (OIDC only).
    pub refresh_token: Option<String>,
}

fn credential(r: &AnyRow) -> Result<Credential> {
    Ok(Credential {
        user_id: r.try_get(0)?,
        password_hash: r.try_get(1)?,
    })
}

const CREDENTIAL_COLUMNS: &str = "user_id, password_hash";

const SESSION_COLUMNS: &str =
    "user_id, csrf, via, created_at, expires_at, roles_checked_at, refresh_token";

fn session(r: &AnyRow) -> Result<Session> {
    Ok(Session {
        user_id: r.try_get(0)?,
        csrf: r.try_get(1)?,
        via: r.try_get(2)?,
        created_at: parse_ts(&r.try_get::<String, _>(3)?)?,
        expires_at: parse_ts(&r.try_get::<String, _>(4)?)?,
        roles_checked_at: parse_ts_opt(r.try_get(5)?)?,
        refresh_token: r.try_get(6)?,
    })
}

impl Store {
    /// Sets (or replaces) a user's password hash and ends all its sessions; the hash
    /// itself never enters the audit trail. For the system (bootstrap, demo) and a reset
    /// the person completes; a person changing their own password keeps their session
    /// (`change_password`).
    pub async fn set_password(
        &self,
        actor: &str,
        user_id: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.change_password(actor, user_id, password_hash, None, now)
            .await
    }

    /// Replaces a user's password hash and ends the account's other sessions (all but
    /// `keep`, the hash of the session that made the change). Accounts managed by an
    /// identity provider have no local password: refused as a conflict.
    pub async fn change_password(
        &self,
        actor: &str,
        user_id: &str,
        password_hash: &str,
        keep: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now = stored_time(now);
        let user = self.get_user(user_id).await?;
        let mut w = self.begin_write().await?;
        refuse_managed_by_provider(&mut w, &user).await?;
        store_password(&mut w, &user, password_hash, now).await?;
        let ended = end_sessions(&mut w, &user.id, keep, now).await?;
        w.audit(
            Change {
                actor: actor.into(),
                action: "user.password".into(),
                object: format!("user/{}", user.id),
                before: None,
                after: Some(serde_json::json!({ "user": user.spec.name, "sessions_ended": ended })),
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

    /// Records a failed sign-in whose attempt was reserved under `key` (see
    /// `reserve_sign_in`): audited for a known user, and once the key's attempts reach
    /// `policy.max_failures` the key stays refused for `policy.lock_for` from now (the
    /// lock-out, audited too). Answers until when the key is locked, if it is.
    pub async fn login_failed(
        &self,
        user: Option<&User>,
        key: &str,
        policy: LockPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        let attempts: i64 = sqlx::query("SELECT attempts FROM sign_in_attempts WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut *w.tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(1);
        let locked_until = (attempts >= policy.max_failures).then(|| now + policy.lock_for);
        if let Some(until) = locked_until {
            sqlx::query("UPDATE sign_in_attempts SET window_ends = $2 WHERE key = $1")
                .bind(key)
                .bind(ts(&until))
                .execute(&mut *w.tx)
                .await?;
        }
        if let Some(user) = user {
            let object = format!("user/{}", user.id);
            w.audit(
                Change {
                    actor: PORTAL.into(),
                    action: "user.login-failed".into(),
                    object: object.clone(),
                    before: None,
                    after: Some(
                        serde_json::json!({ "user": user.spec.name, "failures": attempts }),
                    ),
                },
                now,
            )
            .await?;
            if let Some(until) = locked_until {
                w.audit(
                    Change {
                        actor: PORTAL.into(),
                        action: "user.lock".into(),
                        object,
                        before: None,
                        after: Some(serde_json::json!({
                            "user": user.spec.name,
                            "locked_until": until,
                        })),
                    },
                    now,
                )
                .await?;
            }
        }
        w.commit().await?;
        Ok(locked_until)
    }

    /// Opens a session for a user who just proved who they are. An OIDC session keeps the
    /// provider's refresh token, to confirm its roles again later.
    #[allow(clippy::too_many_arguments)]
    pub async fn open_session(
        &self,
        user: &User,
        id_hash: &str,
        csrf: &str,
        via: &str,
        refresh_token: Option<&str>,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Session> {
        let now = stored_time(now);
        let expires_at = stored_time(expires_at);
        let mut w = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf, via, created_at, expires_at, ended_at, \
             roles_checked_at, refresh_token) VALUES ($1, $2, $3, $4, $5, $6, NULL, $5, $7)",
        )
        .bind(id_hash)
        .bind(&user.id)
        .bind(csrf)
        .bind(via)
        .bind(ts(&now))
        .bind(ts(&expires_at))
        .bind(refresh_token)
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
            roles_checked_at: Some(now),
            refresh_token: refresh_token.map(Into::into),
        })
    }

    /// The live session with this hash and its user; none when the session ended or
    /// expired, or the account is disabled.
    pub async fn session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(Session, User)>> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1 AND ended_at IS NULL"
        ))
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let s = session(&r)?;
        if s.expires_at <= now {
            return Ok(None);
        }
        let user = self.get_user(&s.user_id).await?;
        if user.disabled_at.is_some() {
            return Ok(None);
        }
        Ok(Some((s, user)))
    }

    /// Records that the identity provider confirmed the session's roles at `now`, with
    /// the refresh token to use next time.
    pub async fn session_roles_confirmed(
        &self,
        id_hash: &str,
        refresh_token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET roles_checked_at = $2, refresh_token = $3 \
             WHERE id_hash = $1 AND ended_at IS NULL",
        )
        .bind(id_hash)
        .bind(ts(&stored_time(now)))
        .bind(refresh_token)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a session (sign-out, or `reason` such as the identity provider no longer
    /// confirming it); a session that is unknown or ended already is left alone.
    pub async fn close_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<()> {
        self.end_session(id_hash, None, now).await
    }

    /// Ends a session for `reason` (audited by the portal, not by its user).
    pub async fn end_session(
        &self,
        id_hash: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
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
        sqlx::query("UPDATE sessions SET ended_at = $2, refresh_token = NULL WHERE id_hash = $1")
            .bind(id_hash)
            .bind(ts(&now))
            .execute(&mut *w.tx)
            .await?;
        let (actor, after) = match reason {
            None => (format!("user/{name}"), None),
            Some(r) => (PORTAL.to_string(), Some(serde_json::json!({ "reason": r }))),
        };
        w.audit(
            Change {
                actor,
                action: "session.close".into(),
                object: format!("user/{user_id}"),
                before: None,
                after,
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

/// The identity provider a user signs in through, if any.
pub(crate) async fn managing_provider(
    w: &mut crate::Write<'_>,
    user_id: &str,
) -> Result<Option<String>> {
    Ok(
        sqlx::query("SELECT issuer FROM oidc_identities WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&mut *w.tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?,
    )
}

/// Refuses a change of what the identity provider manages (password, roles) for a user
/// who signs in through it.
pub(crate) async fn refuse_managed_by_provider(
    w: &mut crate::Write<'_>,
    user: &User,
) -> Result<()> {
    match managing_provider(w, &user.id).await? {
        Some(issuer) => Err(StoreError::Conflict(format!(
            "`{}` signs in through the identity provider `{issuer}`, which manages its password and roles",
            user.spec.name
        ))),
        None => Ok(()),
    }
}

/// Stores a password hash for `user` inside the open transaction.
pub(crate) async fn store_password(
    w: &mut crate::Write<'_>,
    user: &User,
    password_hash: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO credentials (user_id, password_hash, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET password_hash = $2, updated_at = $3",
    )
    .bind(&user.id)
    .bind(password_hash)
    .bind(ts(&now))
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

/// Ends every live session of a user except `keep`; answers how many ended.
pub(crate) async fn end_sessions(
    w: &mut crate::Write<'_>,
    user_id: &str,
    keep: Option<&str>,
    now: DateTime<Utc>,
) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE sessions SET ended_at = $2, refresh_token = NULL \
         WHERE user_id = $1 AND ended_at IS NULL AND id_hash <> $3",
    )
    .bind(user_id)
    .bind(ts(&now))
    .bind(keep.unwrap_or(""))
    .execute(&mut *w.tx)
    .await?
    .rows_affected())
}
