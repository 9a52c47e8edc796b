//! Sites' preflights: the last `verbund agent preflight` of each site, written with its
//! audit event (`site.preflight`, attributed to `site/<name>`) in one transaction, and
//! read by the fleet view and, inside the booking write transaction, by placement.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use verbund_domain::audit::Change;
use verbund_domain::directory::{Delivery, SiteSpec};
use verbund_domain::preflight::{PreflightReport, PreflightVerdict, SitePreflight};
use verbund_domain::Invalid;

use crate::rows::{from_json, parse_ts, stored_time, to_json, ts};
use crate::{Result, Store, StoreError};

const COLUMNS: &str = "site, reported_at, agent, delivery, kubernetes_version, verdict, checks";

/// The delivery mode as the API spells it (`flux`, `argocd`, `agent`).
fn delivery_name(d: Delivery) -> Result<String> {
    match serde_json::to_value(d) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(StoreError::Corrupt(format!("delivery mode {d:?}"))),
    }
}

fn preflight(r: &AnyRow) -> Result<SitePreflight> {
    let delivery: String = r.try_get(3)?;
    let verdict: String = r.try_get(5)?;
    Ok(SitePreflight {
        site: r.try_get(0)?,
        reported_at: parse_ts(&r.try_get::<String, _>(1)?)?,
        agent: r.try_get(2)?,
        delivery: serde_json::from_value(serde_json::Value::String(delivery.clone()))
            .map_err(|_| StoreError::Corrupt(format!("delivery mode `{delivery}`")))?,
        kubernetes_version: r.try_get(4)?,
        verdict: PreflightVerdict::parse(&verdict)
            .ok_or_else(|| StoreError::Corrupt(format!("preflight verdict `{verdict}`")))?,
        checks: from_json(&r.try_get::<String, _>(6)?)?,
    })
}

/// Every site's last preflight, by site name (placement reads it in its transaction).
pub(crate) async fn by_site(conn: &mut AnyConnection) -> Result<HashMap<String, SitePreflight>> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM site_preflight"))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| preflight(r).map(|p| (p.site.clone(), p)))
        .collect()
}

impl Store {
    /// Keeps `report` (validated by the caller with `PreflightReport::validate`) as the
    /// last preflight of `site`. Refused when the site does not exist, or when the checks
    /// were made for another delivery mode than the site's: they would not say whether
    /// the site can run what verbund renders for it.
    pub async fn record_preflight(
        &self,
        site: &str,
        report: &PreflightReport,
        now: DateTime<Utc>,
    ) -> Result<SitePreflight> {
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        let spec: SiteSpec = match sqlx::query("SELECT spec FROM sites WHERE name = $1")
            .bind(site)
            .fetch_optional(&mut *w.tx)
            .await?
        {
            Some(r) => from_json(&r.try_get::<String, _>(0)?)?,
            None => return Err(StoreError::not_found("site", site)),
        };
        if spec.delivery != report.delivery {
            let declared = delivery_name(spec.delivery)?;
            return Err(Invalid::meaning(
                "/delivery",
                format!(
                    "site `{site}` receives its desired state by `{declared}`, but the checks were \
                     made for `{}`: run the preflight with `--delivery {declared}`",
                    delivery_name(report.delivery)?
                ),
            )
            .into());
        }
        let before = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM site_preflight WHERE site = $1"
        ))
        .bind(site)
        .fetch_optional(&mut *w.tx)
        .await?
        .map(|r| preflight(&r))
        .transpose()?;
        let after = SitePreflight::new(site, report, now);
        sqlx::query(&format!(
            "INSERT INTO site_preflight ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (site) DO UPDATE SET reported_at = excluded.reported_at, \
             agent = excluded.agent, delivery = excluded.delivery, \
             kubernetes_version = excluded.kubernetes_version, verdict = excluded.verdict, \
             checks = excluded.checks"
        ))
        .bind(site)
        .bind(ts(&now))
        .bind(&after.agent)
        .bind(delivery_name(after.delivery)?)
        .bind(after.kubernetes_version.clone())
        .bind(after.verdict.as_str())
        .bind(to_json(&after.checks)?)
        .execute(&mut *w.tx)
        .await?;
        w.audit(
            Change {
                actor: format!("site/{site}"),
                action: "site.preflight".into(),
                object: format!("site/{site}"),
                before: before.as_ref().and_then(|b| serde_json::to_value(b).ok()),
                after: serde_json::to_value(&after).ok(),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok(after)
    }

    /// The last preflight of every site that reported one, by site name.
    pub async fn site_preflights(&self) -> Result<Vec<SitePreflight>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM site_preflight ORDER BY site"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(preflight)
        .collect()
    }

    /// The last preflight of `site`, if it reported one.
    pub async fn site_preflight(&self, site: &str) -> Result<Option<SitePreflight>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM site_preflight WHERE site = $1"
        ))
        .bind(site)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| preflight(&r))
        .transpose()
    }
}
