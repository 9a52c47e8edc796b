//! The OZG catalog, offerings and their versions.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;
use verbund_domain::audit::Change;
use verbund_domain::catalog::{Category, Offering, OfferingSpec, OfferingVersion, VersionSpec};
use verbund_domain::directory::{ImportSummary, OzgService};
use verbund_domain::page::{Page, PageRequest};
use verbund_domain::Invalid;

use crate::error::{Result, StoreError};
use crate::rows::{from_json, paginate, parse_ts, stored_time, to_json, ts, Arg, Select};
use crate::Store;

/// Filters for listing offerings.
#[derive(Debug, Clone, Default)]
pub struct OfferingFilter {
    pub category: Option<Category>,
    pub vendor: Option<String>,
    pub ozg_id: Option<String>,
    /// Only "Einer für Alle" services (`true`), or only others (`false`).
    pub efa: Option<bool>,
    /// Only "Einer für Alle" services that serve this Land (its key).
    pub efa_for: Option<String>,
}

/// The Länder an EfA offering serves as its `efa_for` column: `*` for every Land, else
/// `,01,09,` (each key between commas, so that one is found with `LIKE '%,09,%'`).
fn efa_for_column(spec: &OfferingSpec) -> Option<String> {
    let efa = spec.efa.as_ref()?;
    if efa.for_laender.is_empty() {
        return Some("*".into());
    }
    let keys: Vec<&str> = efa.for_laender.iter().map(String::as_str).collect();
    Some(format!(",{},", keys.join(",")))
}

const OFFERING_COLUMNS: &str = "spec, latest_version, created_at, updated_at";

fn offering(r: &AnyRow) -> Result<Offering> {
    Ok(Offering {
        spec: from_json(&r.try_get::<String, _>(0)?)?,
        latest_version: r.try_get(1)?,
        created_at: parse_ts(&r.try_get::<String, _>(2)?)?,
        updated_at: parse_ts(&r.try_get::<String, _>(3)?)?,
    })
}

fn version(r: &AnyRow) -> Result<OfferingVersion> {
    Ok(OfferingVersion {
        offering: r.try_get(0)?,
        spec: from_json(&r.try_get::<String, _>(1)?)?,
        published_at: parse_ts(&r.try_get::<String, _>(2)?)?,
    })
}

impl Store {
    /// Loads the OZG catalog: adds new services, updates changed ones.
    pub async fn import_ozg(
        &self,
        actor: &str,
        source: &str,
        services: &[OzgService],
        now: DateTime<Utc>,
    ) -> Result<ImportSummary> {
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        let mut summary = ImportSummary::default();
        let existing: std::collections::HashMap<String, OzgService> =
            sqlx::query("SELECT id, name, situation, field FROM ozg_services")
                .fetch_all(&mut *w.tx)
                .await?
                .iter()
                .map(|r| {
                    Ok(OzgService {
                        id: r.try_get(0)?,
                        name: r.try_get(1)?,
                        situation: r.try_get(2)?,
                        field: r.try_get(3)?,
                    })
                })
                .map(|s: Result<OzgService>| s.map(|s| (s.id.clone(), s)))
                .collect::<Result<_>>()?;
        for s in services {
            match existing.get(&s.id) {
                Some(e) if e == s => {
                    summary.unchanged += 1;
                    continue;
                }
                Some(_) => summary.updated += 1,
                None => summary.created += 1,
            }
            sqlx::query(
                "INSERT INTO ozg_services (id, name, situation, field) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                 situation = excluded.situation, field = excluded.field",
            )
            .bind(&s.id)
            .bind(&s.name)
            .bind(&s.situation)
            .bind(&s.field)
            .execute(&mut *w.tx)
            .await?;
        }
        if summary.created + summary.updated == 0 {
            return Ok(summary);
        }
        w.audit(
            Change {
                actor: actor.into(),
                action: "catalog.ozg.import".into(),
                object: format!("import/{source}"),
                before: None,
                after: Some(
                    json!({"source": source, "records": services.len(), "summary": summary}),
                ),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok(summary)
    }

    pub async fn get_ozg_service(&self, id: &str) -> Result<Option<OzgService>> {
        let row = sqlx::query("SELECT id, name, situation, field FROM ozg_services WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(OzgService {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                situation: r.try_get(2)?,
                field: r.try_get(3)?,
            })
        })
        .transpose()
    }

    pub async fn count_ozg_services(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM ozg_services")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// Creates or replaces an offering. Its vendor organisation, OZG service and
    /// dependencies must exist. An unchanged spec writes nothing.
    /// Stores an offering (creates it, or changes it as its vendor). A plan that a
    /// booking still uses — as its own plan or in a capacity window not over — cannot be
    /// removed: its bookings could be neither rendered nor have their windows begin.
    pub async fn put_offering(
        &self,
        actor: &str,
        spec: &OfferingSpec,
        now: DateTime<Utc>,
    ) -> Result<(Offering, bool)> {
        spec.validate()?;
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        if sqlx::query("SELECT id FROM organisations WHERE id = $1")
            .bind(&spec.vendor)
            .fetch_optional(&mut *w.tx)
            .await?
            .is_none()
        {
            return Err(Invalid::unknown(
                "/vendor",
                format!("unknown vendor organisation `{}`", spec.vendor),
            )
            .into());
        }
        if let Some(ozg) = &spec.ozg_id {
            if sqlx::query("SELECT id FROM ozg_services WHERE id = $1")
                .bind(ozg)
                .fetch_optional(&mut *w.tx)
                .await?
                .is_none()
            {
                return Err(Invalid::unknown(
                    "/ozg_id",
                    format!("unknown OZG service `{ozg}` (import the OZG catalog with `verbund import ozg`)"),
                )
                .into());
            }
        }
        for (i, d) in spec.dependencies.iter().enumerate() {
            let row = sqlx::query("SELECT spec FROM offerings WHERE name = $1")
                .bind(&d.offering)
                .fetch_optional(&mut *w.tx)
                .await?;
            let Some(row) = row else {
                return Err(Invalid::unknown(
                    format!("/dependencies/{i}/offering"),
                    format!("unknown offering `{}`", d.offering),
                )
                .into());
            };
            if let Some(plan) = &d.plan {
                let dep: OfferingSpec = from_json(&row.try_get::<String, _>(0)?)?;
                if dep.plan(plan).is_none() {
                    return Err(Invalid::unknown(
                        format!("/dependencies/{i}/plan"),
                        format!("offering `{}` has no plan `{plan}`", d.offering),
                    )
                    .into());
                }
            }
        }
        let existing = sqlx::query(&format!(
            "SELECT {OFFERING_COLUMNS} FROM offerings WHERE name = $1"
        ))
        .bind(&spec.name)
        .fetch_optional(&mut *w.tx)
        .await?
        .map(|r| offering(&r))
        .transpose()?;
        if let Some(o) = &existing {
            if &o.spec == spec {
                return Ok((o.clone(), false));
            }
            if o.spec.vendor != spec.vendor {
                return Err(Invalid::conflict(
                    "/vendor",
                    format!(
                        "offering `{}` belongs to another vendor; the vendor cannot change",
                        spec.name
                    ),
                )
                .into());
            }
            check_plans_kept(&mut w.tx, &o.spec, spec).await?;
            check_latest_scales(&mut w.tx, o, spec).await?;
        }
        let created = existing.is_none();
        let stored = Offering {
            spec: spec.clone(),
            latest_version: existing.as_ref().and_then(|o| o.latest_version.clone()),
            created_at: existing.as_ref().map_or(now, |o| o.created_at),
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO offerings (name, vendor, category, ozg_id, spec, latest_version, created_at, updated_at, efa_operator, efa_for) \
             VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8, $9) \
             ON CONFLICT (name) DO UPDATE SET category = excluded.category, ozg_id = excluded.ozg_id, \
             spec = excluded.spec, updated_at = excluded.updated_at, \
             efa_operator = excluded.efa_operator, efa_for = excluded.efa_for",
        )
        .bind(&spec.name)
        .bind(&spec.vendor)
        .bind(spec.category.as_str())
        .bind(&spec.ozg_id)
        .bind(to_json(spec)?)
        .bind(ts(&stored.created_at))
        .bind(ts(&now))
        .bind(spec.efa.as_ref().map(|e| e.operator.clone()))
        .bind(efa_for_column(spec))
        .execute(&mut *w.tx)
        .await?;
        w.audit(
            Change {
                actor: actor.into(),
                action: if created {
                    "offering.create"
                } else {
                    "offering.update"
                }
                .into(),
                object: format!("offering/{}", spec.name),
                before: existing.map(|o| serde_json::to_value(o.spec).unwrap_or_default()),
                after: Some(serde_json::to_value(spec).unwrap_or_default()),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok((stored, created))
    }

    pub async fn get_offering(&self, name: &str) -> Result<Offering> {
        sqlx::query(&format!(
            "SELECT {OFFERING_COLUMNS} FROM offerings WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| offering(&r))
        .transpose()?
        .ok_or_else(|| StoreError::not_found("offering", name))
    }

    pub async fn list_offerings(
        &self,
        filter: &OfferingFilter,
        page: &PageRequest,
    ) -> Result<Page<Offering>> {
        let mut s = Select::default();
        if let Some(c) = filter.category {
            s.and("category = {}", Arg::Text(c.as_str().into()));
        }
        if let Some(v) = &filter.vendor {
            s.and("vendor = {}", Arg::Text(v.clone()));
        }
        if let Some(o) = &filter.ozg_id {
            s.and("ozg_id = {}", Arg::Text(o.clone()));
        }
        match filter.efa {
            Some(true) => {
                s.and_plain("efa_operator IS NOT NULL");
            }
            Some(false) => {
                s.and_plain("efa_operator IS NULL");
            }
            None => {}
        }
        if let Some(land) = &filter.efa_for {
            s.and(
                "(efa_for = '*' OR efa_for LIKE {})",
                Arg::Text(format!("%,{land},%")),
            );
        }
        if let Some(after) = &page.after {
            s.and("name > {}", Arg::Text(after.clone()));
        }
        let limit = page.limit();
        let sql = s.sql(
            &format!("SELECT {OFFERING_COLUMNS} FROM offerings"),
            &format!("ORDER BY name LIMIT {}", limit + 1),
        );
        let rows = s.bind(&sql).fetch_all(&self.pool).await?;
        let items = rows.iter().map(offering).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |o| o.spec.name.clone()))
    }

    /// Publishes a version; it must be newer than every published one.
    pub async fn publish_version(
        &self,
        actor: &str,
        offering_name: &str,
        spec: &VersionSpec,
        now: DateTime<Utc>,
    ) -> Result<OfferingVersion> {
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        let row = sqlx::query("SELECT latest_version, spec FROM offerings WHERE name = $1")
            .bind(offering_name)
            .fetch_optional(&mut *w.tx)
            .await?
            .ok_or_else(|| StoreError::not_found("offering", offering_name))?;
        let latest: Option<String> = row.try_get(0)?;
        let offering_spec: OfferingSpec = from_json(&row.try_get::<String, _>(1)?)?;
        let v = spec.validate(latest.as_deref())?;
        verbund_domain::catalog::check_package(&offering_spec, spec)?;
        verbund_domain::catalog::check_scaling(offering_name, &offering_spec.plans, &spec.package)?;
        let spec = VersionSpec {
            version: v.to_string(),
            ..spec.clone()
        };
        let stored = OfferingVersion {
            offering: offering_name.to_string(),
            spec: spec.clone(),
            published_at: now,
        };
        sqlx::query(
            "INSERT INTO offering_versions (offering, version, spec, published_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(offering_name)
        .bind(&spec.version)
        .bind(to_json(&spec)?)
        .bind(ts(&now))
        .execute(&mut *w.tx)
        .await
        .map_err(|e| {
            if StoreError::is_unique_violation(&e) {
                StoreError::Conflict(format!("version `{}` of `{offering_name}` exists already", spec.version))
            } else {
                e.into()
            }
        })?;
        sqlx::query("UPDATE offerings SET latest_version = $2, updated_at = $3 WHERE name = $1")
            .bind(offering_name)
            .bind(&spec.version)
            .bind(ts(&now))
            .execute(&mut *w.tx)
            .await?;
        w.audit(
            Change {
                actor: actor.into(),
                action: "offering.version.publish".into(),
                object: format!("offering/{offering_name}/versions/{}", spec.version),
                before: latest.map(|l| json!({"latest_version": l})),
                after: Some(serde_json::to_value(&stored).unwrap_or_default()),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok(stored)
    }

    /// Every published version of an offering, newest first.
    pub async fn list_versions(&self, offering_name: &str) -> Result<Vec<OfferingVersion>> {
        self.get_offering(offering_name).await?;
        let rows = sqlx::query(
            "SELECT offering, spec, published_at FROM offering_versions WHERE offering = $1",
        )
        .bind(offering_name)
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows.iter().map(version).collect::<Result<Vec<_>>>()?;
        out.sort_by_cached_key(|v| std::cmp::Reverse(semver::Version::parse(&v.spec.version).ok()));
        Ok(out)
    }
}

/// Refuses a change of `before` to `after` that removes a plan bookings still use (their
/// own plan, or a capacity window's not over), naming the plan and how many bookings.
/// Refuses removing a plan that another offering's dependency names: its bookings would
/// bring a dependency on a plan that no longer exists.
async fn check_plans_not_depended_on(
    conn: &mut sqlx::AnyConnection,
    offering: &str,
    removed: &[&str],
) -> Result<()> {
    let rows = sqlx::query("SELECT name, spec FROM offerings WHERE name <> $1")
        .bind(offering)
        .fetch_all(&mut *conn)
        .await?;
    for r in &rows {
        let name: String = r.try_get(0)?;
        let spec: OfferingSpec = from_json(&r.try_get::<String, _>(1)?)?;
        let named = spec.dependencies.iter().find_map(|d| {
            let plan = d.plan.as_deref().filter(|_| d.offering == offering)?;
            removed.contains(&plan).then_some(plan)
        });
        if let Some(plan) = named {
            return Err(Invalid::conflict(
                "/plans",
                format!(
                    "plan `{plan}` is named by offering `{name}` as the plan of its dependency on `{offering}`; change that offering first"
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// A plan may autoscale only if the offering's latest version — what new bookings get —
/// can scale it (see `verbund_domain::catalog::unscaled_plan`); 409 otherwise.
async fn check_latest_scales(
    conn: &mut sqlx::AnyConnection,
    before: &Offering,
    after: &OfferingSpec,
) -> Result<()> {
    let Some(latest) = &before.latest_version else {
        return Ok(());
    };
    let row =
        sqlx::query("SELECT spec FROM offering_versions WHERE offering = $1 AND version = $2")
            .bind(&after.name)
            .bind(latest)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else { return Ok(()) };
    let version: VersionSpec = from_json(&row.try_get::<String, _>(0)?)?;
    if let Some(plan) = verbund_domain::catalog::unscaled_plan(&after.plans, &version.package) {
        let index = after
            .plans
            .iter()
            .position(|p| p.name == plan.name)
            .unwrap_or_default();
        return Err(Invalid::conflict(
            format!("/plans/{index}/autoscaling"),
            format!(
                "plan `{}` cannot autoscale: version {latest} of `{}` names no scale_target (the Deployment or StatefulSet to scale); publish a version that does first",
                plan.name, after.name
            ),
        )
        .into());
    }
    Ok(())
}

async fn check_plans_kept(
    conn: &mut sqlx::AnyConnection,
    before: &OfferingSpec,
    after: &OfferingSpec,
) -> Result<()> {
    let removed: Vec<&str> = before
        .plans
        .iter()
        .map(|p| p.name.as_str())
        .filter(|name| after.plan(name).is_none())
        .collect();
    if removed.is_empty() {
        return Ok(());
    }
    check_plans_not_depended_on(conn, &before.name, &removed).await?;
    let rows = sqlx::query(
        "SELECT plan, windows FROM bookings WHERE offering = $1 AND state NOT IN ('deleted', 'rejected')",
    )
    .bind(&before.name)
    .fetch_all(&mut *conn)
    .await?;
    for name in removed {
        let mut users = 0;
        for r in &rows {
            let own: String = r.try_get(0)?;
            let windows: Vec<verbund_domain::capacity::CapacityWindow> = r
                .try_get::<Option<String>, _>(1)?
                .as_deref()
                .map(from_json)
                .transpose()?
                .unwrap_or_default();
            let in_window = windows
                .iter()
                .any(|w| w.plan == name && w.state != verbund_domain::capacity::WindowState::Ended);
            if own == name || in_window {
                users += 1;
            }
        }
        if users > 0 {
            return Err(Invalid::conflict(
                "/plans",
                format!(
                    "plan `{name}` is used by {users} booking(s), as their plan or in a capacity window ahead; move them to another plan before removing it"
                ),
            )
            .into());
        }
    }
    Ok(())
}
