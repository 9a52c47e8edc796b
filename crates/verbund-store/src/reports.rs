//! Site credentials and the ingestion of site reports.
//!
//! A report is applied in one write transaction: its sequence is checked against the
//! site's last accepted one (not above → nothing changes, the answer says so), every
//! booking it names must be placed on that site (otherwise the whole batch is refused),
//! the bookings' observations are upserted in multi-row statements, and the lifecycle
//! moves [`assess`] implies are written with their audit events, attributed to
//! `site/<name>`. So a report is either applied completely or not at all, and state never
//! moves backwards because of a late or repeated batch.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;
use verbund_domain::account::SiteToken;
use verbund_domain::audit::Change;
use verbund_domain::booking::BookingState;
use verbund_domain::report::{
    sequence_ceiling, BookingStatus, FreeCapacity, SiteHealth, SiteReport, SiteStatus, SmokeResult,
};
use verbund_domain::Invalid;

use crate::bookings::{add_in, IN_CHUNK};
use crate::rows::{from_json, parse_ts, parse_ts_opt, stored_time, ts, Select};
use crate::{Result, Store, StoreError};

mod ingest;

/// One lifecycle move a report caused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub booking: String,
    pub from: BookingState,
    pub to: BookingState,
}

/// The outcome of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// False when the batch's sequence was not above the last accepted one.
    pub accepted: bool,
    /// The highest sequence accepted for the site.
    pub sequence: u64,
    pub bookings: usize,
    pub moves: Vec<Move>,
}

const TOKEN_COLUMNS: &str = "id, site, name, created_at, created_by, expires_at, revoked_at";

fn site_token(r: &AnyRow) -> Result<SiteToken> {
    Ok(SiteToken {
        id: r.try_get(0)?,
        site: r.try_get(1)?,
        name: r.try_get(2)?,
        created_at: parse_ts(&r.try_get::<String, _>(3)?)?,
        created_by: r.try_get(4)?,
        expires_at: parse_ts_opt(r.try_get(5)?)?,
        revoked_at: parse_ts_opt(r.try_get(6)?)?,
    })
}

const SITE_STATUS_COLUMNS: &str =
    "site, sequence, reported_at, interval_seconds, agent, simulated, \
     kubernetes_version, free_cpu_millis, free_memory_mib, free_storage_gib, health, message, \
     silent_since";

fn site_status(r: &AnyRow) -> Result<SiteStatus> {
    let health: String = r.try_get(10)?;
    Ok(SiteStatus {
        site: r.try_get(0)?,
        sequence: r.try_get::<i64, _>(1)? as u64,
        reported_at: parse_ts(&r.try_get::<String, _>(2)?)?,
        interval_seconds: r.try_get::<i64, _>(3)? as u32,
        agent: r.try_get(4)?,
        simulated: r.try_get::<i64, _>(5)? != 0,
        kubernetes_version: r.try_get(6)?,
        free: FreeCapacity {
            cpu_millis: r.try_get::<i64, _>(7)? as u64,
            memory_mib: r.try_get::<i64, _>(8)? as u64,
            storage_gib: r.try_get::<i64, _>(9)? as u64,
        },
        reported_health: SiteHealth::parse(&health)
            .ok_or_else(|| StoreError::Corrupt(format!("site health `{health}`")))?,
        message: r.try_get(11)?,
        silent_since: parse_ts_opt(r.try_get(12)?)?,
    })
}

const BOOKING_STATUS_COLUMNS: &str = "booking, site, sequence, observed_at, applied_version, \
     desired_replicas, ready_replicas, smoke_test, conditions, problem, export";

fn booking_status(r: &AnyRow) -> Result<BookingStatus> {
    let smoke: String = r.try_get(7)?;
    Ok(BookingStatus {
        booking: r.try_get(0)?,
        site: r.try_get(1)?,
        sequence: r.try_get::<i64, _>(2)? as u64,
        observed_at: parse_ts(&r.try_get::<String, _>(3)?)?,
        applied_version: r.try_get(4)?,
        desired_replicas: r.try_get::<i64, _>(5)? as u32,
        ready_replicas: r.try_get::<i64, _>(6)? as u32,
        smoke_test: SmokeResult::parse(&smoke)
            .ok_or_else(|| StoreError::Corrupt(format!("smoke test result `{smoke}`")))?,
        conditions: from_json(&r.try_get::<String, _>(8)?)?,
        problem: r.try_get(9)?,
        export: r
            .try_get::<Option<String>, _>(10)?
            .as_deref()
            .map(from_json)
            .transpose()?,
    })
}

/// Rows per multi-row upsert: 12 parameters each stays far below both databases' limits.
const UPSERT_ROWS: usize = 400;

impl Store {
    /// Stores a new credential for `site`; `secret_hash` is the SHA-256 of its secret.
    pub async fn create_site_token(
        &self,
        actor: &str,
        site: &str,
        name: &str,
        secret_hash: &str,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<SiteToken> {
        verbund_domain::name::check_text("/name", name, verbund_domain::account::TOKEN_NAME_MAX)?;
        let (now, expires_at) = (stored_time(now), expires_at.map(stored_time));
        if matches!(expires_at, Some(e) if e <= now) {
            return Err(Invalid::meaning("/expires_at", "must lie in the future").into());
        }
        let mut w = self.begin_write().await?;
        if sqlx::query("SELECT name FROM sites WHERE name = $1")
            .bind(site)
            .fetch_optional(&mut *w.tx)
            .await?
            .is_none()
        {
            return Err(StoreError::not_found("site", site));
        }
        let t = SiteToken {
            id: uuid::Uuid::now_v7().to_string(),
            site: site.to_string(),
            name: name.to_string(),
            created_at: now,
            created_by: actor.to_string(),
            expires_at,
            revoked_at: None,
        };
        sqlx::query(&format!(
            "INSERT INTO site_tokens ({TOKEN_COLUMNS}, hash) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7)"
        ))
        .bind(&t.id)
        .bind(&t.site)
        .bind(&t.name)
        .bind(ts(&now))
        .bind(actor)
        .bind(expires_at.as_ref().map(ts))
        .bind(secret_hash)
        .execute(&mut *w.tx)
        .await?;
        w.audit(
            Change {
                actor: actor.into(),
                action: "site.token.create".into(),
                object: format!("site/{site}/token/{}", t.id),
                before: None,
                after: serde_json::to_value(&t).ok(),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok(t)
    }

    /// The credentials of `site`, newest last.
    pub async fn site_tokens(&self, site: &str) -> Result<Vec<SiteToken>> {
        sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM site_tokens WHERE site = $1 ORDER BY id"
        ))
        .bind(site)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(site_token)
        .collect()
    }

    /// Revokes a credential of `site` (idempotent: a revoked one stays as it was).
    pub async fn revoke_site_token(
        &self,
        actor: &str,
        site: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<SiteToken> {
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        let before = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM site_tokens WHERE id = $1 AND site = $2"
        ))
        .bind(id)
        .bind(site)
        .fetch_optional(&mut *w.tx)
        .await?
        .map(|r| site_token(&r))
        .transpose()?
        .ok_or_else(|| StoreError::not_found("site token", id))?;
        if before.revoked_at.is_some() {
            return Ok(before);
        }
        let mut after = before.clone();
        after.revoked_at = Some(now);
        sqlx::query("UPDATE site_tokens SET revoked_at = $2 WHERE id = $1")
            .bind(id)
            .bind(ts(&now))
            .execute(&mut *w.tx)
            .await?;
        w.audit(
            Change {
                actor: actor.into(),
                action: "site.token.revoke".into(),
                object: format!("site/{site}/token/{id}"),
                before: serde_json::to_value(&before).ok(),
                after: serde_json::to_value(&after).ok(),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok(after)
    }

    /// The usable credential whose secret hashes to `secret_hash`, if any.
    pub async fn authenticate_site(
        &self,
        secret_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SiteToken>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM site_tokens WHERE hash = $1"
        ))
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| site_token(&r))
            .transpose()?
            .filter(|t| t.is_usable(now)))
    }

    /// Applies one report of `site` (validated by the caller with `SiteReport::validate`);
    /// its steps are the functions of [`ingest`].
    pub async fn ingest_report(
        &self,
        site: &str,
        report: &SiteReport,
        now: DateTime<Utc>,
    ) -> Result<Ingested> {
        let now = stored_time(now);
        let actor = format!("site/{site}");
        let mut w = self.begin_write().await?;
        if sqlx::query("SELECT name FROM sites WHERE name = $1")
            .bind(site)
            .fetch_optional(&mut *w.tx)
            .await?
            .is_none()
        {
            return Err(StoreError::not_found("site", site));
        }
        let previous = ingest::previous_status(&mut w, site).await?;
        if let Some(p) = &previous {
            // A stored sequence beyond what a report may carry now (accepted before there
            // was a ceiling) does not block the site: the next report replaces it.
            if report.sequence <= p.sequence && p.sequence <= sequence_ceiling(now) {
                return Ok(Ingested {
                    accepted: false,
                    sequence: p.sequence,
                    bookings: report.bookings.len(),
                    moves: Vec::new(),
                });
            }
        }
        let sequence = i64::try_from(report.sequence)
            .map_err(|_| Invalid::meaning("/sequence", "is too large"))?;
        let known = ingest::known_bookings(&mut w, self.dialect, report).await?;
        let tenancies = ingest::known_tenancies(&mut w, self.dialect, report).await?;
        let judged = ingest::judge(site, report, &known, &tenancies)?;
        let at = ts(&now);
        ingest::upsert_observations(&mut w, self.dialect, site, sequence, &judged, &at).await?;
        let changes =
            ingest::write_moves(&mut w, self.dialect, &actor, report, &judged, &at).await?;
        w.audit_many(self.dialect, changes, now).await?;
        ingest::store_site_status(&mut w, site, sequence, report, &at).await?;
        ingest::audit_site_turn(&mut w, &actor, site, previous.as_ref(), report, now).await?;
        w.commit().await?;
        Ok(Ingested {
            accepted: true,
            sequence: report.sequence,
            bookings: report.bookings.len(),
            moves: judged
                .iter()
                .filter_map(ingest::Judged::caused_move)
                .collect(),
        })
    }

    /// Marks every site that fell silent past its interval (and was not marked yet),
    /// auditing each once as `site.silent` by `actor`. Returns their names.
    pub async fn mark_silent_sites(&self, actor: &str, now: DateTime<Utc>) -> Result<Vec<String>> {
        let now = stored_time(now);
        let candidates: Vec<SiteStatus> = self
            .site_statuses()
            .await?
            .into_iter()
            .filter(|s| s.silent_since.is_none() && s.is_stale(now))
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let mut w = self.begin_write().await?;
        let mut marked = Vec::new();
        for s in candidates {
            // Only if no report arrived since we looked.
            let done = sqlx::query(
                "UPDATE site_status SET silent_since = $3 \
                 WHERE site = $1 AND sequence = $2 AND silent_since IS NULL",
            )
            .bind(&s.site)
            .bind(s.sequence as i64)
            .bind(ts(&now))
            .execute(&mut *w.tx)
            .await?;
            if done.rows_affected() == 0 {
                continue;
            }
            w.audit(
                Change {
                    actor: actor.into(),
                    action: "site.silent".into(),
                    object: format!("site/{}", s.site),
                    before: Some(serde_json::json!({
                        "health": s.reported_health,
                        "reported_at": s.reported_at,
                        "interval_seconds": s.interval_seconds,
                    })),
                    after: Some(serde_json::json!({ "health": SiteHealth::Unknown })),
                },
                now,
            )
            .await?;
            marked.push(s.site);
        }
        w.commit().await?;
        Ok(marked)
    }

    /// What every site that ever reported last said, by site name.
    pub async fn site_statuses(&self) -> Result<Vec<SiteStatus>> {
        sqlx::query(&format!(
            "SELECT {SITE_STATUS_COLUMNS} FROM site_status ORDER BY site"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(site_status)
        .collect()
    }

    pub async fn site_status(&self, site: &str) -> Result<Option<SiteStatus>> {
        sqlx::query(&format!(
            "SELECT {SITE_STATUS_COLUMNS} FROM site_status WHERE site = $1"
        ))
        .bind(site)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| site_status(&r))
        .transpose()
    }

    /// The last observations of `ids` (those that have one), by booking id.
    pub async fn booking_statuses(&self, ids: &[String]) -> Result<Vec<BookingStatus>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IN_CHUNK) {
            let mut s = Select::default();
            add_in(&mut s, "booking", chunk);
            let sql = s.sql(
                &format!("SELECT {BOOKING_STATUS_COLUMNS} FROM booking_status"),
                "ORDER BY booking",
            );
            for r in s.bind(&sql).fetch_all(&self.pool).await? {
                out.push(booking_status(&r)?);
            }
        }
        out.sort_by(|a, b| a.booking.cmp(&b.booking));
        Ok(out)
    }
}

fn saturating(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
