//! Versioned policy documents. Every change adds a version; deleting adds a tombstone,
//! so the history of what was in force stays readable.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;
use verbund_domain::audit::Change;

use crate::error::{Result, StoreError};
use crate::rows::{parse_ts, ts};
use crate::Store;

/// A policy document as submitted: the store does not interpret it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// Stable id: `federation:<name>` or `<owner id>:<name>`.
    pub id: String,
    pub name: String,
    /// `federation`, `land` or `organisation`.
    pub layer: String,
    pub owner: Option<String>,
    pub text: String,
}

/// One stored version of a policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPolicy {
    #[serde(flatten)]
    pub record: PolicyRecord,
    pub version: i64,
    pub deleted: bool,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

const COLUMNS: &str = "id, name, layer, owner, text, version, deleted, created_at, created_by";

fn stored(r: &AnyRow) -> Result<StoredPolicy> {
    Ok(StoredPolicy {
        record: PolicyRecord {
            id: r.try_get(0)?,
            name: r.try_get(1)?,
            layer: r.try_get(2)?,
            owner: r.try_get(3)?,
            text: r.try_get(4)?,
        },
        version: r.try_get(5)?,
        deleted: r.try_get::<i64, _>(6)? != 0,
        created_at: parse_ts(&r.try_get::<String, _>(7)?)?,
        created_by: r.try_get(8)?,
    })
}

impl Store {
    /// Stores a new version of a document (unless the text is unchanged).
    pub async fn put_policy(
        &self,
        actor: &str,
        p: &PolicyRecord,
        now: DateTime<Utc>,
    ) -> Result<StoredPolicy> {
        self.write_policy(actor, p, false, now).await
    }

    /// Marks a document deleted with a new version.
    pub async fn delete_policy(
        &self,
        actor: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<StoredPolicy> {
        let current = self
            .policy(id)
            .await?
            .filter(|p| !p.deleted)
            .ok_or_else(|| StoreError::not_found("policy", id))?;
        self.write_policy(actor, &current.record, true, now).await
    }

    async fn write_policy(
        &self,
        actor: &str,
        p: &PolicyRecord,
        deleted: bool,
        now: DateTime<Utc>,
    ) -> Result<StoredPolicy> {
        let mut w = self.begin_write().await?;
        let last = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM policy_documents WHERE id = $1 ORDER BY version DESC LIMIT 1"
        ))
        .bind(&p.id)
        .fetch_optional(&mut *w.tx)
        .await?
        .map(|r| stored(&r))
        .transpose()?;
        if let Some(l) = &last {
            if l.record == *p && l.deleted == deleted {
                return Ok(l.clone());
            }
        }
        let s = StoredPolicy {
            record: p.clone(),
            version: last.as_ref().map_or(1, |l| l.version + 1),
            deleted,
            created_at: now,
            created_by: actor.to_string(),
        };
        sqlx::query(&format!(
            "INSERT INTO policy_documents ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&p.id)
        .bind(&p.name)
        .bind(&p.layer)
        .bind(&p.owner)
        .bind(&p.text)
        .bind(s.version)
        .bind(i64::from(deleted))
        .bind(ts(&now))
        .bind(actor)
        .execute(&mut *w.tx)
        .await?;
        w.audit(
            Change {
                actor: actor.into(),
                action: if deleted {
                    "policy.delete"
                } else {
                    "policy.put"
                }
                .into(),
                object: format!("policy/{}", p.id),
                before: last.map(|l| serde_json::to_value(l).unwrap_or_default()),
                after: Some(serde_json::to_value(&s).unwrap_or_default()),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok(s)
    }

    /// The latest version of a document (possibly a tombstone).
    pub async fn policy(&self, id: &str) -> Result<Option<StoredPolicy>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM policy_documents WHERE id = $1 ORDER BY version DESC LIMIT 1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| stored(&r))
        .transpose()
    }

    /// Every version of a document, newest first.
    pub async fn policy_versions(&self, id: &str) -> Result<Vec<StoredPolicy>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM policy_documents WHERE id = $1 ORDER BY version DESC"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(stored)
        .collect()
    }

    /// The documents in force: the latest version of each, unless deleted.
    pub async fn policies_in_force(&self) -> Result<Vec<StoredPolicy>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM policy_documents d WHERE version = \
             (SELECT MAX(version) FROM policy_documents e WHERE e.id = d.id) ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(stored)
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .filter(|p| !p.deleted)
            .collect())
    }
}
