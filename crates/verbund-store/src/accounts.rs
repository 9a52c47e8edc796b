//! Users, their memberships, and API tokens (stored as SHA-256 hashes only).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;
use verbund_domain::account::{Membership, Role, Token, User, UserSpec};
use verbund_domain::audit::Change;
use verbund_domain::page::{Page, PageRequest};
use verbund_domain::Invalid;

use crate::error::{Result, StoreError};
use crate::rows::{paginate, parse_ts, parse_ts_opt, stored_time, ts, Arg, Select};
use crate::Store;

/// Filters for listing users.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Users holding any role in this organisation.
    pub organisation: Option<String>,
}

fn role(s: &str) -> Result<Role> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| StoreError::Corrupt(format!("role `{s}`")))
}

const USER_COLUMNS: &str = "id, name, display_name, email, created_at, disabled_at";

/// An account from a row of `USER_COLUMNS` and the memberships it holds.
fn user(r: &AnyRow, id: String, memberships: Vec<Membership>) -> Result<User> {
    Ok(User {
        id,
        spec: UserSpec {
            name: r.try_get(1)?,
            display_name: r.try_get(2)?,
            email: r.try_get(3)?,
            memberships,
        },
        created_at: parse_ts(&r.try_get::<String, _>(4)?)?,
        disabled_at: parse_ts_opt(r.try_get(5)?)?,
    })
}

const TOKEN_COLUMNS: &str = "id, name, user_id, created_at, expires_at, revoked_at";

fn token(r: &AnyRow) -> Result<Token> {
    Ok(Token {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        user: r.try_get(2)?,
        created_at: parse_ts(&r.try_get::<String, _>(3)?)?,
        expires_at: parse_ts_opt(r.try_get(4)?)?,
        revoked_at: parse_ts_opt(r.try_get(5)?)?,
    })
}

impl Store {
    /// Creates a user; every organisation and provider named in its roles must exist.
    pub async fn create_user(
        &self,
        actor: &str,
        spec: &UserSpec,
        now: DateTime<Utc>,
    ) -> Result<User> {
        spec.validate()?;
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        let user = insert_user(&mut w, actor, spec, now).await?;
        w.commit().await?;
        Ok(user)
    }

    /// The accounts of these rows with their memberships, read in one query per 500
    /// accounts rather than one per account (a page of `GET /users` is up to 1,000).
    async fn users_from_rows(&self, rows: &[AnyRow]) -> Result<Vec<User>> {
        let ids = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut memberships = self.memberships_of(&ids).await?;
        rows.iter()
            .zip(ids)
            .map(|(r, id)| {
                let held = memberships.remove(&id).unwrap_or_default();
                user(r, id, held)
            })
            .collect()
    }

    /// The memberships of these accounts, each account's in the order `create_user`
    /// returns them (the roles' order, not their names').
    async fn memberships_of(&self, ids: &[String]) -> Result<HashMap<String, Vec<Membership>>> {
        let mut held: HashMap<String, Vec<Membership>> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut s = Select::default();
            s.and_many(
                "user_id IN (",
                chunk.iter().map(|i| Arg::Text(i.clone())).collect(),
            );
            let sql = s.sql(
                "SELECT user_id, role, organisation, provider, delegated FROM memberships",
                "",
            );
            for m in s.bind(&sql).fetch_all(&self.pool).await? {
                held.entry(m.try_get(0)?).or_default().push(Membership {
                    role: role(&m.try_get::<String, _>(1)?)?,
                    organisation: m.try_get(2)?,
                    provider: m.try_get(3)?,
                    delegated: m.try_get::<i64, _>(4)? != 0,
                });
            }
        }
        for list in held.values_mut() {
            list.sort();
        }
        Ok(held)
    }

    async fn user_from_row(&self, r: AnyRow) -> Result<User> {
        let mut users = self.users_from_rows(std::slice::from_ref(&r)).await?;
        users
            .pop()
            .ok_or_else(|| StoreError::Corrupt("an account row without its account".into()))
    }

    pub async fn get_user(&self, id: &str) -> Result<User> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("user", id))?;
        self.user_from_row(row).await
    }

    pub async fn get_user_by_name(&self, name: &str) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(Some(self.user_from_row(r).await?)),
            None => Ok(None),
        }
    }

    pub async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    pub async fn list_users(&self, filter: &UserFilter, page: &PageRequest) -> Result<Page<User>> {
        let mut s = Select::default();
        if let Some(o) = &filter.organisation {
            s.and(
                "id IN (SELECT user_id FROM memberships WHERE organisation = {})",
                Arg::Text(o.clone()),
            );
        }
        if let Some(after) = &page.after {
            s.and("id > {}", Arg::Text(after.clone()));
        }
        let limit = page.limit();
        let sql = s.sql(
            &format!("SELECT {USER_COLUMNS} FROM users"),
            &format!("ORDER BY id LIMIT {}", limit + 1),
        );
        let rows = s.bind(&sql).fetch_all(&self.pool).await?;
        let items = self.users_from_rows(&rows).await?;
        Ok(paginate(items, limit, |u| u.id.clone()))
    }

    /// Stores a new token for `user_id`; `secret_hash` is the SHA-256 of the secret.
    pub async fn create_token(
        &self,
        actor: &str,
        user_id: &str,
        name: &str,
        secret_hash: &str,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Token> {
        verbund_domain::name::check_text("/name", name, verbund_domain::account::TOKEN_NAME_MAX)?;
        let (now, expires_at) = (stored_time(now), expires_at.map(stored_time));
        if matches!(expires_at, Some(e) if e <= now) {
            return Err(Invalid::meaning("/expires_at", "must lie in the future").into());
        }
        let mut w = self.begin_write().await?;
        if sqlx::query("SELECT id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *w.tx)
            .await?
            .is_none()
        {
            return Err(Invalid::unknown("/user", format!("unknown user `{user_id}`")).into());
        }
        let t = Token {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_string(),
            user: user_id.to_string(),
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO tokens (id, user_id, name, hash, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(&t.id)
        .bind(&t.user)
        .bind(&t.name)
        .bind(secret_hash)
        .bind(ts(&now))
        .bind(expires_at.as_ref().map(ts))
        .execute(&mut *w.tx)
        .await?;
        w.audit(
            Change {
                actor: actor.into(),
                action: "token.create".into(),
                object: format!("token/{}", t.id),
                before: None,
                after: Some(serde_json::to_value(&t).unwrap_or_default()),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok(t)
    }

    /// The usable token with this hash and its user (none while the user is disabled).
    pub async fn authenticate(
        &self,
        secret_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(Token, User)>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1"
        ))
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let t = token(&row)?;
        if !t.is_usable(now) {
            return Ok(None);
        }
        let u = self.get_user(&t.user).await?;
        if u.disabled_at.is_some() {
            return Ok(None);
        }
        Ok(Some((t, u)))
    }

    pub async fn get_token(&self, id: &str) -> Result<Token> {
        sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| token(&r))
            .transpose()?
            .ok_or_else(|| StoreError::not_found("token", id))
    }

    pub async fn list_tokens(&self, user: Option<&str>, page: &PageRequest) -> Result<Page<Token>> {
        let mut s = Select::default();
        if let Some(u) = user {
            s.and("user_id = {}", Arg::Text(u.to_string()));
        }
        if let Some(after) = &page.after {
            s.and("id > {}", Arg::Text(after.clone()));
        }
        let limit = page.limit();
        let sql = s.sql(
            &format!("SELECT {TOKEN_COLUMNS} FROM tokens"),
            &format!("ORDER BY id LIMIT {}", limit + 1),
        );
        let rows = s.bind(&sql).fetch_all(&self.pool).await?;
        let items = rows.iter().map(token).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |t| t.id.clone()))
    }

    pub async fn revoke_token(&self, actor: &str, id: &str, now: DateTime<Utc>) -> Result<Token> {
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        let before = sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *w.tx)
            .await?
            .map(|r| token(&r))
            .transpose()?
            .ok_or_else(|| StoreError::not_found("token", id))?;
        if before.revoked_at.is_some() {
            return Ok(before);
        }
        sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE id = $1")
            .bind(id)
            .bind(ts(&now))
            .execute(&mut *w.tx)
            .await?;
        let after = Token {
            revoked_at: Some(now),
            ..before.clone()
        };
        w.audit(
            Change {
                actor: actor.into(),
                action: "token.revoke".into(),
                object: format!("token/{id}"),
                before: Some(serde_json::to_value(&before).unwrap_or_default()),
                after: Some(serde_json::to_value(&after).unwrap_or_default()),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok(after)
    }
}

/// Inserts a validated user with its memberships, audited, inside the open transaction.
pub(crate) async fn insert_user(
    w: &mut crate::Write<'_>,
    actor: &str,
    spec: &UserSpec,
    now: DateTime<Utc>,
) -> Result<User> {
    check_memberships(w, &spec.memberships).await?;
    let user = User {
        id: uuid::Uuid::now_v7().to_string(),
        spec: UserSpec {
            memberships: {
                let mut m = spec.memberships.clone();
                m.sort();
                m.dedup();
                m
            },
            ..spec.clone()
        },
        created_at: now,
        disabled_at: None,
    };
    sqlx::query(
        "INSERT INTO users (id, name, display_name, email, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&user.id)
    .bind(&user.spec.name)
    .bind(&user.spec.display_name)
    .bind(&user.spec.email)
    .bind(ts(&now))
    .execute(&mut *w.tx)
    .await
    .map_err(|e| {
        if StoreError::is_unique_violation(&e) {
            StoreError::Conflict(format!("a user named `{}` exists already", spec.name))
        } else {
            e.into()
        }
    })?;
    insert_memberships(w, &user.id, &user.spec.memberships).await?;
    w.audit(
        Change {
            actor: actor.into(),
            action: "user.create".into(),
            object: format!("user/{}", user.id),
            before: None,
            after: Some(serde_json::to_value(&user).unwrap_or_default()),
        },
        now,
    )
    .await?;
    Ok(user)
}

/// Refuses memberships that name an organisation or provider that does not exist.
pub(crate) async fn check_memberships(
    w: &mut crate::Write<'_>,
    memberships: &[Membership],
) -> Result<()> {
    for (i, m) in memberships.iter().enumerate() {
        if let Some(o) = &m.organisation {
            if sqlx::query("SELECT id FROM organisations WHERE id = $1")
                .bind(o)
                .fetch_optional(&mut *w.tx)
                .await?
                .is_none()
            {
                return Err(Invalid::unknown(
                    format!("/memberships/{i}/organisation"),
                    format!("unknown organisation `{o}`"),
                )
                .into());
            }
        }
        if let Some(p) = &m.provider {
            if sqlx::query("SELECT name FROM providers WHERE name = $1")
                .bind(p)
                .fetch_optional(&mut *w.tx)
                .await?
                .is_none()
            {
                return Err(Invalid::unknown(
                    format!("/memberships/{i}/provider"),
                    format!("unknown provider `{p}`"),
                )
                .into());
            }
        }
    }
    Ok(())
}

/// Inserts a user's memberships inside the open transaction.
pub(crate) async fn insert_memberships(
    w: &mut crate::Write<'_>,
    user_id: &str,
    memberships: &[Membership],
) -> Result<()> {
    for m in memberships {
        sqlx::query(
            "INSERT INTO memberships (user_id, role, organisation, provider, delegated) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user_id)
        .bind(m.role.as_str())
        .bind(&m.organisation)
        .bind(&m.provider)
        .bind(i64::from(m.delegated))
        .execute(&mut *w.tx)
        .await?;
    }
    Ok(())
}
