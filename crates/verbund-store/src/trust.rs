//! The federation's trust list (versioned, audited) and the certification credentials
//! of sites (see `verbund_trust`). The store keeps what was verified; the verifying is
//! the caller's, with the list read in the same transaction ([`Store::add_site_credential`]
//! takes a closure), so a credential is never stored against a list that changed under
//! it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;
use verbund_domain::audit::Change;
use verbund_domain::directory::Certification;
use verbund_trust::{Certified, Refusal, TrustList};

use crate::error::{Result, StoreError};
use crate::rows::{from_json, parse_ts, to_json, ts};
use crate::{Store, Write};

/// A version of the trust list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoredTrustList {
    /// 0 before the federation stated any.
    pub version: i64,
    #[serde(flatten)]
    pub list: TrustList,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stated_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stated_at: Option<DateTime<Utc>>,
}

/// A site's certification credential as verified and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SiteCredential {
    pub id: String,
    pub site: String,
    #[serde(flatten)]
    pub certified: Certified,
    /// The VC-JWT as submitted.
    pub jwt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_reason: Option<String>,
    pub submitted_by: String,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, site, details, jwt, revoked_at, revoked_reason, submitted_by, created_at";

fn credential(r: &AnyRow) -> Result<SiteCredential> {
    Ok(SiteCredential {
        id: r.try_get(0)?,
        site: r.try_get(1)?,
        certified: from_json(&r.try_get::<String, _>(2)?)?,
        jwt: r.try_get(3)?,
        revoked_at: r
            .try_get::<Option<String>, _>(4)?
            .as_deref()
            .map(parse_ts)
            .transpose()?,
        revoked_reason: r.try_get(5)?,
        submitted_by: r.try_get(6)?,
        created_at: parse_ts(&r.try_get::<String, _>(7)?)?,
    })
}

pub(crate) async fn current_list(conn: &mut AnyConnection) -> Result<StoredTrustList> {
    let row = sqlx::query(
        "SELECT version, document, actor, created_at FROM trust_list_versions \
         ORDER BY version DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        None => Ok(StoredTrustList {
            version: 0,
            list: TrustList::default(),
            stated_by: None,
            stated_at: None,
        }),
        Some(r) => Ok(StoredTrustList {
            version: r.try_get(0)?,
            list: from_json(&r.try_get::<String, _>(1)?)?,
            stated_by: Some(r.try_get(2)?),
            stated_at: Some(parse_ts(&r.try_get::<String, _>(3)?)?),
        }),
    }
}

/// Revokes credential `id` with `reason`, audited.
async fn revoke(
    w: &mut Write<'_>,
    actor: &str,
    c: &SiteCredential,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("UPDATE site_credentials SET revoked_at = $2, revoked_reason = $3 WHERE id = $1")
        .bind(&c.id)
        .bind(ts(&now))
        .bind(reason)
        .execute(&mut *w.tx)
        .await?;
    w.audit(
        Change {
            actor: actor.into(),
            action: "site.credential-revoke".into(),
            object: format!("site/{}", c.site),
            before: Some(json!({"credential": c.id, "scheme": c.certified.scheme})),
            after: Some(json!({"credential": c.id, "revoked": reason})),
        },
        now,
    )
    .await?;
    Ok(())
}

/// Which live credentials to read.
enum Live<'a> {
    All,
    OfIssuer(&'a str),
    /// A site's of one issuer and scheme (which a new one replaces).
    Same {
        site: &'a str,
        issuer: &'a str,
        scheme: &'a str,
    },
}

async fn live_credentials(
    conn: &mut AnyConnection,
    which: Live<'_>,
) -> Result<Vec<SiteCredential>> {
    let (filter, binds): (&str, Vec<&str>) = match which {
        Live::All => ("", vec![]),
        Live::OfIssuer(issuer) => ("AND issuer = $1", vec![issuer]),
        Live::Same {
            site,
            issuer,
            scheme,
        } => (
            "AND site = $1 AND issuer = $2 AND scheme = $3",
            vec![site, issuer, scheme],
        ),
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM site_credentials WHERE revoked_at IS NULL {filter} ORDER BY created_at, id"
    );
    let mut q = sqlx::query(&sql);
    for b in binds {
        q = q.bind(b);
    }
    q.fetch_all(&mut *conn)
        .await?
        .iter()
        .map(credential)
        .collect()
}

/// The certifications the live credentials attest, by site (what placement adds to the
/// certifications the federation stated).
pub(crate) async fn attested(
    conn: &mut AnyConnection,
) -> Result<HashMap<String, Vec<Certification>>> {
    let mut out: HashMap<String, Vec<Certification>> = HashMap::new();
    for c in live_credentials(conn, Live::All).await? {
        out.entry(c.site).or_default().push(Certification {
            scheme: c.certified.scheme,
            level: c.certified.level,
            valid_until: c.certified.valid_until.date_naive(),
        });
    }
    Ok(out)
}

impl Store {
    /// The trust list in force (version 0, empty, before the federation stated one).
    pub async fn trust_list(&self) -> Result<StoredTrustList> {
        let mut conn = self.pool.acquire().await?;
        current_list(&mut conn).await
    }

    /// States a new version of the trust list; the credentials of issuers it drops are
    /// revoked with it. Audited as `trust-list.update`.
    pub async fn put_trust_list(
        &self,
        actor: &str,
        list: &TrustList,
        now: DateTime<Utc>,
    ) -> Result<StoredTrustList> {
        self.update_trust_list(actor, now, |_| Ok(list.clone()))
            .await
    }

    /// States the version of the trust list that `change` makes of the one in force, in
    /// one transaction (no other version comes in between), like `put_trust_list`.
    pub async fn update_trust_list(
        &self,
        actor: &str,
        now: DateTime<Utc>,
        change: impl FnOnce(&TrustList) -> Result<TrustList>,
    ) -> Result<StoredTrustList> {
        let mut w = self.begin_write().await?;
        let before = current_list(&mut w.tx).await?;
        let list = &change(&before.list)?;
        let version = before.version + 1;
        sqlx::query(
            "INSERT INTO trust_list_versions (version, document, actor, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(version)
        .bind(to_json(list)?)
        .bind(actor)
        .bind(ts(&now))
        .execute(&mut *w.tx)
        .await?;
        w.audit(
            Change {
                actor: actor.into(),
                action: "trust-list.update".into(),
                object: "trust-list/federation".into(),
                before: Some(
                    json!({"version": before.version, "issuers": before.list.issuers,
                    "count_stated_certifications": before.list.count_stated_certifications}),
                ),
                after: Some(json!({"version": version, "issuers": list.issuers,
                    "count_stated_certifications": list.count_stated_certifications})),
            },
            now,
        )
        .await?;
        for issuer in before.list.removed_in(list) {
            for c in live_credentials(&mut w.tx, Live::OfIssuer(issuer)).await? {
                revoke(
                    &mut w,
                    actor,
                    &c,
                    &format!("issuer `{issuer}` left the trust list"),
                    now,
                )
                .await?;
            }
        }
        // An issuer that stays may have lost a scheme or a key: what the new list no
        // longer covers stops counting with it (its validity period is not a matter of
        // the list, and stays the date's).
        for c in live_credentials(&mut w.tx, Live::All).await? {
            let subject = verbund_trust::site_subject(&c.site);
            if let Err(
                e @ (Refusal::UnknownIssuer(_)
                | Refusal::BadSignature(_)
                | Refusal::IssuerMismatch { .. }
                | Refusal::SchemeNotTrusted { .. }),
            ) = verbund_trust::verify_certification(&c.jwt, list, &subject, now)
            {
                revoke(
                    &mut w,
                    actor,
                    &c,
                    &format!("by the new trust list: {e}"),
                    now,
                )
                .await?;
            }
        }
        w.commit().await?;
        Ok(StoredTrustList {
            version,
            list: list.clone(),
            stated_by: Some(actor.into()),
            stated_at: Some(now),
        })
    }

    /// Verifies (`verify`, against the trust list in force) and stores a credential of
    /// `site`; a live credential of the same issuer and scheme is replaced. Audited as
    /// `site.credential-add`.
    pub async fn add_site_credential<E>(
        &self,
        actor: &str,
        site: &str,
        jwt: &str,
        now: DateTime<Utc>,
        verify: impl FnOnce(&TrustList) -> std::result::Result<Certified, E>,
    ) -> std::result::Result<SiteCredential, E>
    where
        E: From<StoreError>,
    {
        let mut w = self.begin_write().await?;
        let exists = sqlx::query("SELECT 1 FROM sites WHERE name = $1")
            .bind(site)
            .fetch_optional(&mut *w.tx)
            .await
            .map_err(StoreError::from)?;
        if exists.is_none() {
            return Err(StoreError::not_found("site", site).into());
        }
        // A credential counts once: one replaced or revoked must not come back by being
        // handed in again (a federation attestation has no status list to stop it).
        let seen = sqlx::query("SELECT id FROM site_credentials WHERE site = $1 AND jwt = $2")
            .bind(site)
            .bind(jwt)
            .fetch_optional(&mut *w.tx)
            .await
            .map_err(StoreError::from)?;
        if let Some(r) = seen {
            let id: String = r.try_get(0).map_err(StoreError::from)?;
            return Err(StoreError::Conflict(format!(
                "this credential was handed in before (credential {id}); a credential counts once, and one replaced or revoked never again"
            ))
            .into());
        }
        let list = current_list(&mut w.tx).await?;
        let certified = verify(&list.list)?;
        let id = uuid::Uuid::now_v7().to_string();
        let same = Live::Same {
            site,
            issuer: &certified.issuer,
            scheme: &certified.scheme,
        };
        for old in live_credentials(&mut w.tx, same).await? {
            revoke(
                &mut w,
                actor,
                &old,
                &format!("replaced by credential {id}"),
                now,
            )
            .await?;
        }
        let stored = SiteCredential {
            id,
            site: site.into(),
            certified,
            jwt: jwt.into(),
            revoked_at: None,
            revoked_reason: None,
            submitted_by: actor.into(),
            created_at: now,
        };
        let c = &stored.certified;
        sqlx::query(
            "INSERT INTO site_credentials (id, site, issuer, scheme, details, jwt, valid_until, \
             status_list, status_index, submitted_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&stored.id)
        .bind(site)
        .bind(&c.issuer)
        .bind(&c.scheme)
        .bind(to_json(c)?)
        .bind(jwt)
        .bind(ts(&c.valid_until))
        .bind(c.status.as_ref().map(|s| s.list.clone()))
        .bind(
            c.status
                .as_ref()
                .map(|s| i64::try_from(s.index).unwrap_or(i64::MAX)),
        )
        .bind(actor)
        .bind(ts(&now))
        .execute(&mut *w.tx)
        .await
        .map_err(StoreError::from)?;
        w.audit(
            Change {
                actor: actor.into(),
                action: "site.credential-add".into(),
                object: format!("site/{site}"),
                before: None,
                after: Some(json!({"credential": stored.id, "issuer": c.issuer,
                    "scheme": c.scheme, "level": c.level, "valid_until": c.valid_until})),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok(stored)
    }

    /// The certifications the live credentials attest, by site: what placement adds to
    /// those the federation stated (see `usage`).
    pub async fn attested_certifications(&self) -> Result<HashMap<String, Vec<Certification>>> {
        let mut conn = self.pool.acquire().await?;
        attested(&mut conn).await
    }

    /// Every credential of `site`, revoked ones included, oldest first.
    pub async fn site_credentials(&self, site: &str) -> Result<Vec<SiteCredential>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM site_credentials WHERE site = $1 ORDER BY created_at, id"
        ))
        .bind(site)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(credential)
        .collect()
    }

    /// Revokes every live credential that points into status list `list` at an index
    /// `is_revoked` says is set. Returns the revoked ones.
    pub async fn apply_status_list(
        &self,
        actor: &str,
        list: &str,
        issuer: &str,
        is_revoked: impl Fn(u64) -> bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<SiteCredential>> {
        let mut w = self.begin_write().await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, status_index FROM site_credentials \
             WHERE revoked_at IS NULL AND status_list = $1 AND issuer = $2"
        ))
        .bind(list)
        .bind(issuer)
        .fetch_all(&mut *w.tx)
        .await?;
        let mut revoked = Vec::new();
        for r in &rows {
            let index: Option<i64> = r.try_get(8)?;
            let c = credential(r)?;
            if index
                .and_then(|i| u64::try_from(i).ok())
                .is_some_and(&is_revoked)
            {
                revoke(
                    &mut w,
                    actor,
                    &c,
                    &format!("revoked in status list {list}"),
                    now,
                )
                .await?;
                revoked.push(c);
            }
        }
        w.commit().await?;
        Ok(revoked)
    }
}
