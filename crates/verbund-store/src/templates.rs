//! Templates (Nachnutzung, migration 0022): published from a booking's configuration,
//! every version kept, and the lineage of each booking adopted from one. Publishing,
//! changing and adopting are audited (`template.publish`, `template.update`,
//! `template.adopt`, `template.take-over`); an adoption is recorded in the transaction
//! of the booking it makes, through a handle made by [`Store::adopting`], as an
//! idempotency key is.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use verbund_domain::audit::Change;
use verbund_domain::page::{Page, PageRequest};
use verbund_domain::template::{Lineage, Template, TemplateSpec, Visibility};

use crate::rows::{from_json, paginate, parse_ts, stored_time, to_json, ts, Arg, Select};
use crate::{Result, Store, StoreError, Write};

/// What one adoption records with the booking it makes: the template and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    pub template: String,
    pub version: u32,
}

/// A template to publish: the spec, and what the store copies from the booking and its
/// organisation.
#[derive(Debug, Clone)]
pub struct NewTemplate<'a> {
    pub spec: &'a TemplateSpec,
    pub organisation: &'a str,
    /// The publisher's Land key.
    pub land: Option<&'a str>,
    pub offering: &'a str,
    pub plan: &'a str,
    pub config: &'a Value,
}

impl<'a> NewTemplate<'a> {
    /// A template of `spec` carrying `booking`'s configuration and plan, published in the
    /// Land `land` (its organisation's).
    pub fn of(
        spec: &'a TemplateSpec,
        booking: &'a verbund_domain::booking::Booking,
        land: Option<&'a str>,
    ) -> Self {
        NewTemplate {
            spec,
            organisation: &booking.organisation,
            land,
            offering: &booking.offering,
            plan: &booking.plan,
            config: &booking.config,
        }
    }
}

/// Which templates a list shows: those of an offering, and those a caller may see.
#[derive(Debug, Clone, Default)]
pub struct TemplateFilter {
    pub offering: Option<String>,
    /// `None`: all (the federation, auditors). Else the organisations the caller acts
    /// for (their own templates) and their Länder (templates for their Land).
    pub visible_to: Option<(Vec<String>, Vec<String>)>,
}

const COLUMNS: &str = "t.id, t.organisation, t.offering, t.name, t.display_name, t.description, \
    t.visibility, t.version, t.created_at, t.updated_at, v.plan, v.config, \
    (SELECT COUNT(DISTINCT b.organisation) FROM booking_templates b WHERE b.template = t.id)";

const FROM: &str = "FROM templates t JOIN template_versions v \
    ON v.template = t.id AND v.version = t.version";

fn template(r: &AnyRow) -> Result<Template> {
    let visibility: String = r.try_get(6)?;
    Ok(Template {
        id: r.try_get(0)?,
        organisation: r.try_get(1)?,
        offering: r.try_get(2)?,
        name: r.try_get(3)?,
        display_name: r.try_get(4)?,
        description: r.try_get(5)?,
        visibility: Visibility::parse(&visibility)
            .ok_or_else(|| StoreError::Corrupt(format!("template visibility `{visibility}`")))?,
        version: u32::try_from(r.try_get::<i64, _>(7)?)
            .map_err(|_| StoreError::Corrupt("template version".into()))?,
        created_at: parse_ts(&r.try_get::<String, _>(8)?)?,
        updated_at: parse_ts(&r.try_get::<String, _>(9)?)?,
        plan: r.try_get(10)?,
        config: from_json(&r.try_get::<String, _>(11)?)?,
        adopters: r.try_get::<i64, _>(12)?.max(0) as u64,
    })
}

async fn load(conn: &mut AnyConnection, id: &str) -> Result<Template> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} {FROM} WHERE t.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::not_found("template", id))?;
    template(&row)
}

/// Stores version `version` of template `id`.
async fn insert_version(
    conn: &mut AnyConnection,
    id: &str,
    version: u32,
    plan: &str,
    config: &Value,
    actor: &str,
    at: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO template_versions (template, version, plan, config, published_by, published_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(i64::from(version))
    .bind(plan)
    .bind(to_json(config)?)
    .bind(actor)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// This store, for one request that adopts a template: its next `create_bookings`
    /// records the lineage of the first booking it makes, and its next `update_booking`
    /// the version taken over, in the same transaction.
    pub fn adopting(&self, adoption: Adoption) -> Store {
        Store {
            adoption: Some(std::sync::Arc::new(adoption)),
            ..self.clone()
        }
    }

    /// Publishes a template (version 1), audited as `template.publish`; a conflict when
    /// the organisation has a template of that name.
    pub async fn create_template(
        &self,
        actor: &str,
        new: &NewTemplate<'_>,
        now: DateTime<Utc>,
    ) -> Result<Template> {
        new.spec.validate()?;
        let now = stored_time(now);
        let at = ts(&now);
        let id = uuid::Uuid::now_v7().to_string();
        let mut w = self.begin_write().await?;
        let taken = sqlx::query("SELECT id FROM templates WHERE organisation = $1 AND name = $2")
            .bind(new.organisation)
            .bind(&new.spec.name)
            .fetch_optional(&mut *w.tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!(
                "the organisation has a template `{}` already: change that one",
                new.spec.name
            )));
        }
        sqlx::query(
            "INSERT INTO templates (id, organisation, offering, name, display_name, description, \
             visibility, land, source, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10)",
        )
        .bind(&id)
        .bind(new.organisation)
        .bind(new.offering)
        .bind(&new.spec.name)
        .bind(&new.spec.display_name)
        .bind(&new.spec.description)
        .bind(new.spec.visibility.as_str())
        .bind(new.land)
        .bind(&new.spec.booking)
        .bind(&at)
        .execute(&mut *w.tx)
        .await?;
        insert_version(&mut w.tx, &id, 1, new.plan, new.config, actor, &at).await?;
        let created = load(&mut w.tx, &id).await?;
        w.audit(
            Change {
                actor: actor.into(),
                action: "template.publish".into(),
                object: format!("template/{id}"),
                before: None,
                after: Some(serde_json::to_value(&created).unwrap_or_default()),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok(created)
    }

    /// Changes template `id`: its texts and visibility, and — when the booking's plan or
    /// configuration differs from its current version — a new version of them. Audited
    /// as `template.update`; a change that changes nothing records nothing.
    pub async fn update_template(
        &self,
        actor: &str,
        id: &str,
        new: &NewTemplate<'_>,
        now: DateTime<Utc>,
    ) -> Result<Template> {
        new.spec.validate()?;
        let now = stored_time(now);
        let at = ts(&now);
        let mut w = self.begin_write().await?;
        let before = load(&mut w.tx, id).await?;
        if before.offering != new.offering {
            return Err(verbund_domain::Invalid::meaning(
                "/booking",
                format!(
                    "the template is of `{}`; the booking is of `{}`",
                    before.offering, new.offering
                ),
            )
            .into());
        }
        if before.name != new.spec.name {
            return Err(verbund_domain::Invalid::meaning(
                "/name",
                "a template keeps its name: publish another one for a new name",
            )
            .into());
        }
        let changed = before.plan != new.plan || before.config != *new.config;
        let version = if changed {
            before.version + 1
        } else {
            before.version
        };
        if !changed
            && before.display_name == new.spec.display_name
            && before.description == new.spec.description
            && before.visibility == new.spec.visibility
        {
            return Ok(before);
        }
        if changed {
            insert_version(&mut w.tx, id, version, new.plan, new.config, actor, &at).await?;
        }
        sqlx::query(
            "UPDATE templates SET display_name = $2, description = $3, visibility = $4, land = $5, \
             source = $6, version = $7, updated_at = $8 WHERE id = $1",
        )
        .bind(id)
        .bind(&new.spec.display_name)
        .bind(&new.spec.description)
        .bind(new.spec.visibility.as_str())
        .bind(new.land)
        .bind(&new.spec.booking)
        .bind(i64::from(version))
        .bind(&at)
        .execute(&mut *w.tx)
        .await?;
        let after = load(&mut w.tx, id).await?;
        w.audit(
            Change {
                actor: actor.into(),
                action: "template.update".into(),
                object: format!("template/{id}"),
                before: Some(serde_json::to_value(&before).unwrap_or_default()),
                after: Some(serde_json::to_value(&after).unwrap_or_default()),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok(after)
    }

    pub async fn get_template(&self, id: &str) -> Result<Template> {
        let mut conn = self.pool.acquire().await?;
        load(&mut conn, id).await
    }

    /// The Land key a template was published in (what `visibility: land` compares).
    pub async fn template_land(&self, id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT land FROM templates WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("template", id))?;
        Ok(row.try_get(0)?)
    }

    /// The plan and configuration of version `version` of template `id`.
    pub async fn template_version(&self, id: &str, version: u32) -> Result<(String, Value)> {
        let row = sqlx::query(
            "SELECT plan, config FROM template_versions WHERE template = $1 AND version = $2",
        )
        .bind(id)
        .bind(i64::from(version))
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found("template version", format!("{id}@{version}")))?;
        Ok((row.try_get(0)?, from_json(&row.try_get::<String, _>(1)?)?))
    }

    /// Templates by id, a page at a time.
    pub async fn list_templates(
        &self,
        filter: &TemplateFilter,
        page: &PageRequest,
    ) -> Result<Page<Template>> {
        let mut s = Select::default();
        if let Some(o) = &filter.offering {
            s.and("t.offering = {}", Arg::Text(o.clone()));
        }
        if let Some((orgs, lands)) = &filter.visible_to {
            let marks = |n: usize| vec!["{}"; n].join(", ");
            let mut any = vec!["t.visibility = 'everyone'".to_string()];
            let mut args: Vec<Arg> = Vec::new();
            if !orgs.is_empty() {
                any.push(format!("t.organisation IN ({})", marks(orgs.len())));
                args.extend(orgs.iter().map(|o| Arg::Text(o.clone())));
            }
            if !lands.is_empty() {
                any.push(format!(
                    "(t.visibility = 'land' AND t.land IN ({}))",
                    marks(lands.len())
                ));
                args.extend(lands.iter().map(|l| Arg::Text(l.clone())));
            }
            s.and_args(&format!("({})", any.join(" OR ")), args);
        }
        if let Some(after) = &page.after {
            s.and("t.id > {}", Arg::Text(after.clone()));
        }
        let limit = page.limit();
        let sql = s.sql(
            &format!("SELECT {COLUMNS} {FROM}"),
            &format!("ORDER BY t.id LIMIT {}", limit + 1),
        );
        let rows = s.bind(&sql).fetch_all(&self.pool).await?;
        let items = rows.iter().map(template).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |t| t.id.clone()))
    }

    /// How many templates each offering has, and how many organisations adopted one of
    /// them, by offering; offerings without templates are absent.
    pub async fn template_counts(&self) -> Result<HashMap<String, (u64, u64)>> {
        let rows = sqlx::query(
            "SELECT t.offering, COUNT(DISTINCT t.id), COUNT(DISTINCT b.organisation) \
             FROM templates t LEFT JOIN booking_templates b ON b.template = t.id \
             GROUP BY t.offering",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    (
                        r.try_get::<i64, _>(1)?.max(0) as u64,
                        r.try_get::<i64, _>(2)?.max(0) as u64,
                    ),
                ))
            })
            .collect()
    }

    /// Where booking `id`'s configuration came from, if it was adopted from a template.
    pub async fn booking_lineage(&self, id: &str) -> Result<Option<Lineage>> {
        let row = sqlx::query(
            "SELECT template, version, organisation, adopted_at FROM booking_templates WHERE booking = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Lineage {
                template: r.try_get(0)?,
                version: u32::try_from(r.try_get::<i64, _>(1)?)
                    .map_err(|_| StoreError::Corrupt("lineage version".into()))?,
                organisation: r.try_get(2)?,
                adopted_at: parse_ts(&r.try_get::<String, _>(3)?)?,
            })
        })
        .transpose()
    }
}

/// Records, in a booking's write transaction, that `booking` of `organisation` was
/// adopted from (or took over) the template version of `adoption`, audited as
/// `template.adopt` (`taken_over`: `template.take-over`) on the template.
pub(crate) async fn record(
    w: &mut Write<'_>,
    actor: &str,
    adoption: &Adoption,
    booking: &str,
    organisation: &str,
    taken_over: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    let before: Option<i64> =
        sqlx::query("SELECT version FROM booking_templates WHERE booking = $1")
            .bind(booking)
            .fetch_optional(&mut *w.tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
    sqlx::query(
        "INSERT INTO booking_templates (booking, template, version, organisation, adopted_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (booking) DO UPDATE SET \
         template = excluded.template, version = excluded.version",
    )
    .bind(booking)
    .bind(&adoption.template)
    .bind(i64::from(adoption.version))
    .bind(organisation)
    .bind(ts(&stored_time(now)))
    .execute(&mut *w.tx)
    .await?;
    w.audit(
        Change {
            actor: actor.into(),
            action: if taken_over {
                "template.take-over"
            } else {
                "template.adopt"
            }
            .into(),
            object: format!("template/{}", adoption.template),
            before: before.map(|v| json!({"booking": booking, "version": v})),
            after: Some(json!({
                "booking": booking,
                "organisation": organisation,
                "version": adoption.version,
            })),
        },
        now,
    )
    .await?;
    Ok(())
}
