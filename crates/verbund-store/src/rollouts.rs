//! Rollouts: their plan, their items (one per booking), the engine's ticks and the
//! operators' controls, each one transaction.
//!
//! # Why a tick is one transaction
//!
//! A tick reads the rollout and its items with what the sites last reported, lets the
//! pure rules ([`verbund_domain::rollout::step`]) decide, and writes every decision (item
//! states, the bookings' desired versions with their audit events, the wave, the
//! rollout's state) before it commits. A process killed mid-tick leaves the previous
//! tick's state, from which the next tick decides the same again: no wave is started
//! twice or skipped. Writes are serialised ([`Store::begin_write`]), so two replicas
//! ticking the same rollout would still see each other's result; leadership
//! ([`Leadership`]) keeps them from trying.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, ConnectOptions, Connection, Row};
use verbund_domain::audit::Change;
use verbund_domain::booking::{transition, Booking, BookingEvent, BookingState};
use verbund_domain::directory::{Environment, Level, Organisation};
use verbund_domain::page::{Page, PageRequest};
use verbund_domain::rollout::{
    step, Candidate, Control, Counts, ItemState, Plan, Rollout, RolloutItem, RolloutState,
    SiteCandidate, SiteSummary, Stage, WaveSummary,
};

use crate::bookings::IN_CHUNK;
use crate::error::{Result, StoreError};
use crate::rows::{
    from_json, paginate, parse_ts, parse_ts_opt, placeholders, stored_time, to_json, ts, Arg,
    Select,
};
use crate::{Dialect, Store};

mod control;
mod tick;

/// The actor of the engine's own changes.
pub const ENGINE: &str = "system/rollouts";

/// The advisory lock the rollout engine's leader holds (PostgreSQL).
const LEADER_LOCK: i64 = 7311;

const ROLLOUT_COLUMNS: &str = "id, offering, version, state, reason, policy, waves, \
    current_wave, tolerated, smoke_test, pinned, excluded, created_by, created_at, \
    updated_at, finished_at";

const ITEM_COLUMNS: &str =
    "booking, site, wave, reference, state, from_version, since, ready_since, reason";

/// What a site's reference booking is made of (from the offering).
#[derive(Debug, Clone)]
pub struct ReferenceSpec {
    pub plan: String,
    /// Its configuration without the declared secrets.
    pub config: Value,
    /// Its declared-secret values, by pointer.
    pub secrets: verbund_domain::secrets::SecretValues,
    /// Dependencies it needs, as (offering, plan, version), booked beside it.
    pub dependencies: Vec<(String, String, String)>,
}

/// Filters for listing rollouts.
#[derive(Debug, Clone, Default)]
pub struct RolloutFilter {
    pub offering: Option<String>,
    pub state: Option<RolloutState>,
    /// Restrict to offerings of these vendor organisations (a vendor's scope).
    pub scope_vendor: Option<Vec<String>>,
}

/// Filters for listing a rollout's items.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    pub wave: Option<u32>,
    pub site: Option<String>,
    pub state: Option<ItemState>,
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ticked {
    pub started: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub waiting: usize,
    /// The wave it advanced to.
    pub advanced: Option<u32>,
    /// The state it ended in, if it changed.
    pub finished: Option<RolloutState>,
    pub actions: usize,
}

/// Leadership of the rollout engine: on PostgreSQL a session advisory lock held on a
/// connection of its own, opened beside the pool and never returned to it, released by
/// the server when that connection or its process dies, so another replica can take
/// over; on SQLite (one process) always held. Leadership given up (dropped) closes its
/// connection: a pooled session would keep the advisory lock, so no other replica
/// could take over while this process lives, and the next task of this process to get
/// that connection would hold the lock without knowing. Beside the pool, a leadership
/// never takes a connection that requests wait for.
pub struct Leadership {
    conn: Option<AnyConnection>,
}

impl Leadership {
    /// Whether leadership still holds: the lock's connection still answers.
    pub async fn holds(&mut self) -> bool {
        match &mut self.conn {
            None => true,
            Some(conn) => sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok(),
        }
    }
}

fn rollout_row(r: &AnyRow) -> Result<Rollout> {
    let state: String = r.try_get(3)?;
    let waves: Vec<Stage> = from_json(&r.try_get::<String, _>(6)?)?;
    Ok(Rollout {
        id: r.try_get(0)?,
        offering: r.try_get(1)?,
        version: r.try_get(2)?,
        state: RolloutState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("rollout state `{state}`")))?,
        reason: r.try_get(4)?,
        policy: from_json(&r.try_get::<String, _>(5)?)?,
        current_wave: r.try_get::<i64, _>(7)? as u32,
        waves: waves
            .into_iter()
            .enumerate()
            .map(|(i, stage)| WaveSummary {
                index: i as u32,
                stage,
                status: String::new(),
                sites: Vec::new(),
                bookings: Counts::new(),
            })
            .collect(),
        sites: Vec::new(),
        bookings: Counts::new(),
        pinned: from_json(&r.try_get::<String, _>(10)?)?,
        excluded: from_json(&r.try_get::<String, _>(11)?)?,
        created_by: r.try_get(12)?,
        created_at: parse_ts(&r.try_get::<String, _>(13)?)?,
        updated_at: parse_ts(&r.try_get::<String, _>(14)?)?,
        finished_at: parse_ts_opt(r.try_get(15)?)?,
    })
}

fn item_row(r: &AnyRow) -> Result<RolloutItem> {
    let state: String = r.try_get(4)?;
    Ok(RolloutItem {
        booking: r.try_get(0)?,
        site: r.try_get(1)?,
        wave: r.try_get::<i64, _>(2)? as u32,
        reference: r.try_get::<i64, _>(3)? != 0,
        state: ItemState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("rollout item state `{state}`")))?,
        from_version: r.try_get(5)?,
        since: parse_ts(&r.try_get::<String, _>(6)?)?,
        ready_since: parse_ts_opt(r.try_get(7)?)?,
        reason: r.try_get(8)?,
    })
}

/// The id of a site's test tenant, the organisation of its reference bookings.
pub fn test_tenant(site: &str) -> String {
    format!("testmandant-{site}")
}

impl Store {
    /// What planning a rollout of `offering` needs: its production bookings (with their
    /// organisations' early-adopter choice) and the sites they run on (with their test
    /// environment and reference booking).
    pub async fn rollout_candidates(
        &self,
        offering: &str,
    ) -> Result<(Vec<Candidate>, Vec<SiteCandidate>)> {
        let rows = sqlx::query(
            "SELECT b.id, b.organisation, b.site, b.channel, b.version, b.state, o.early_adopter \
             FROM bookings b JOIN organisations o ON o.id = b.organisation \
             WHERE b.offering = $1 AND b.environment = 'prod' AND b.instance IS NULL \
             AND b.state IN ('placed','provisioning','active','updating','degraded') ORDER BY b.id",
        )
        .bind(offering)
        .fetch_all(&self.pool)
        .await?;
        let mut candidates = Vec::with_capacity(rows.len());
        for r in &rows {
            let state: String = r.try_get(5)?;
            candidates.push(Candidate {
                booking: r.try_get(0)?,
                organisation: r.try_get(1)?,
                site: r.try_get(2)?,
                channel: r.try_get(3)?,
                version: r.try_get(4)?,
                state: BookingState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("booking state `{state}`")))?,
                early_adopter: r.try_get::<i64, _>(6)? != 0,
                tenants: Vec::new(),
            });
        }
        // A shared instance's tenants, listed in the plan: its rollout is theirs.
        let mut tenants: HashMap<String, Vec<String>> = HashMap::new();
        for r in sqlx::query(
            "SELECT instance, organisation FROM bookings WHERE offering = $1 \
             AND instance IS NOT NULL \
             AND state IN ('placed','provisioning','active','updating','degraded') \
             ORDER BY instance, organisation",
        )
        .bind(offering)
        .fetch_all(&self.pool)
        .await?
        {
            tenants
                .entry(r.try_get(0)?)
                .or_default()
                .push(r.try_get(1)?);
        }
        for c in &mut candidates {
            if let Some(t) = tenants.remove(&c.booking) {
                c.tenants = t;
            }
        }
        let references: HashMap<String, (String, Option<String>)> = sqlx::query(
            "SELECT site, id, version FROM bookings WHERE offering = $1 AND environment = 'test' \
             AND state IN ('placed','provisioning','active','updating','degraded') ORDER BY id",
        )
        .bind(offering)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?))))
        .collect::<Result<_>>()?;
        let used: BTreeSet<&str> = candidates
            .iter()
            .filter_map(|c| c.site.as_deref())
            .collect();
        let mut sites = Vec::new();
        for site in used {
            let spec = self.get_site(site).await?.spec;
            sites.push(SiteCandidate {
                name: site.to_owned(),
                has_test: spec.environments.contains(&Environment::Test),
                reference: references.get(site).cloned(),
            });
        }
        Ok((candidates, sites))
    }

    /// Stores a planned rollout and starts it: creates the reference bookings the test
    /// stage needs (in the sites' `test` environments, holding no production capacity),
    /// then the rollout and its items. Conflict if the offering has an unfinished
    /// rollout.
    pub async fn create_rollout(
        &self,
        actor: &str,
        plan: &Plan,
        reference: &ReferenceSpec,
        smoke_test: bool,
        now: DateTime<Utc>,
    ) -> Result<Rollout> {
        let now = stored_time(now);
        let at = ts(&now);
        let id = uuid::Uuid::now_v7().to_string();
        let mut w = self.begin_write().await?;
        if let Some(open) = sqlx::query(
            "SELECT id FROM rollouts WHERE offering = $1 AND state IN ('running','paused','halted')",
        )
        .bind(&plan.offering)
        .fetch_optional(&mut *w.tx)
        .await?
        {
            let open: String = open.try_get(0)?;
            return Err(StoreError::Conflict(format!(
                "offering `{}` already has an unfinished rollout `{open}`; abort it or let it finish first",
                plan.offering
            )));
        }
        let mut items: Vec<(String, &verbund_domain::rollout::PlannedItem, u32, bool)> = Vec::new();
        for wave in &plan.waves {
            for item in &wave.items {
                let reference_item = wave.stage == Stage::Test;
                let booking = match &item.booking {
                    Some(b) => b.clone(),
                    None => {
                        self.create_reference(&mut w, actor, &item.site, plan, reference, now)
                            .await?
                    }
                };
                items.push((booking, item, wave.index, reference_item));
            }
        }
        let stages: Vec<Stage> = plan.waves.iter().map(|w| w.stage).collect();
        let state = if plan.waves.is_empty() {
            RolloutState::Completed
        } else {
            RolloutState::Running
        };
        sqlx::query(&format!(
            "INSERT INTO rollouts ({ROLLOUT_COLUMNS}, ticks) VALUES \
             ($1, $2, $3, $4, NULL, $5, $6, 0, 0, $7, $8, $9, $10, $11, $11, $12, 0)"
        ))
        .bind(&id)
        .bind(&plan.offering)
        .bind(&plan.version)
        .bind(state.as_str())
        .bind(to_json(&plan.policy)?)
        .bind(to_json(&stages)?)
        .bind(i64::from(smoke_test))
        .bind(to_json(&plan.pinned)?)
        .bind(to_json(&plan.excluded)?)
        .bind(actor)
        .bind(&at)
        .bind(state.is_finished().then(|| at.clone()))
        .execute(&mut *w.tx)
        .await?;
        for chunk in items.chunks(IN_CHUNK / 8) {
            let mut sql = String::from(
                "INSERT INTO rollout_items (rollout, booking, site, wave, reference, state, \
                 from_version, since) VALUES ",
            );
            for (j, _) in chunk.iter().enumerate() {
                if j > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                sql.push_str(&placeholders(self.dialect, j * 8 + 1, 8));
                sql.push(')');
            }
            let mut q = sqlx::query(&sql);
            for (booking, item, wave, reference_item) in chunk {
                q = q
                    .bind(id.clone())
                    .bind(booking.clone())
                    .bind(item.site.clone())
                    .bind(i64::from(*wave))
                    .bind(i64::from(*reference_item))
                    .bind(ItemState::Pending.as_str())
                    .bind(item.from_version.clone())
                    .bind(at.clone());
            }
            q.execute(&mut *w.tx).await?;
        }
        w.audit(
            Change {
                actor: actor.into(),
                action: "rollout.start".into(),
                object: format!("rollout/{id}"),
                before: None,
                after: Some(json!({
                    "offering": plan.offering,
                    "version": plan.version,
                    "policy": plan.policy,
                    "waves": plan.waves.iter().map(|w| json!({
                        "stage": w.stage, "sites": w.sites, "bookings": w.items.len(),
                        "tenants": w.items.iter().map(|i| i.tenants.len()).sum::<usize>()
                    })).collect::<Vec<_>>(),
                    "pinned": plan.pinned.len(),
                    "excluded": plan.excluded.len(),
                })),
            },
            now,
        )
        .await?;
        w.commit().await?;
        self.refresh_statistics("rollout_items").await;
        self.get_rollout(&id).await
    }

    /// Creates a site's reference booking of the plan's offering (and of its
    /// dependencies) in the site's `test` environment, for its test tenant.
    async fn create_reference(
        &self,
        w: &mut crate::Write<'_>,
        actor: &str,
        site: &str,
        plan: &Plan,
        reference: &ReferenceSpec,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let organisation = test_tenant(site);
        let exists = sqlx::query("SELECT id FROM organisations WHERE id = $1")
            .bind(&organisation)
            .fetch_optional(&mut *w.tx)
            .await?
            .is_some();
        if !exists {
            let org = Organisation {
                id: organisation.clone(),
                name: format!("Testmandant {site}"),
                level: Level::Verband,
                ars: None,
                ags: None,
                parent: None,
                land: None,
                population: None,
                created_at: now,
                updated_at: now,
            };
            crate::directory::insert_org(&mut w.tx, &org).await?;
            w.audit(
                Change {
                    actor: actor.into(),
                    action: "organisation.create".into(),
                    object: format!("organisation/{organisation}"),
                    before: None,
                    after: serde_json::to_value(&org).ok(),
                },
                now,
            )
            .await?;
        }
        let main = uuid::Uuid::now_v7().to_string();
        let mut bookings = vec![(
            main.clone(),
            plan.offering.clone(),
            reference.plan.clone(),
            reference.config.clone(),
            plan.version.clone(),
            None,
        )];
        for (offering, dep_plan, version) in &reference.dependencies {
            bookings.push((
                uuid::Uuid::now_v7().to_string(),
                offering.clone(),
                dep_plan.clone(),
                json!({}),
                version.clone(),
                Some(main.clone()),
            ));
        }
        let dependencies: Vec<String> = bookings.iter().skip(1).map(|b| b.0.clone()).collect();
        for (id, offering, plan_name, config, version, dependency_of) in bookings {
            let booking = Booking {
                ending: None,
                id: id.clone(),
                organisation: organisation.clone(),
                offering,
                plan: plan_name,
                config,
                channel: "stable".into(),
                state: BookingState::Placed,
                site: Some(site.to_owned()),
                version: Some(version),
                environment: Environment::Test,
                reason: Some("reference booking of the site's test environment".into()),
                dependency_of,
                dependencies: if id == main {
                    dependencies.clone()
                } else {
                    Vec::new()
                },
                instance: None,
                compliance: None,
                created_at: now,
                updated_at: now,
                state_since: now,
                undeliverable: None,
                secrets_set: Vec::new(),
                windows: Vec::new(),
            };
            let secrets = if id == main {
                reference.secrets.clone()
            } else {
                Default::default()
            };
            let booking = Booking {
                secrets_set: secrets.keys().cloned().collect(),
                ..booking
            };
            let new = crate::bookings::NewBooking {
                booking,
                resources: Default::default(),
                decision: None,
                action: "booking.create".into(),
                secrets: Some(secrets),
            };
            crate::bookings::insert(&mut w.tx, &new).await?;
            w.audit(
                Change {
                    actor: actor.into(),
                    action: "booking.create".into(),
                    object: format!("booking/{id}"),
                    before: None,
                    after: serde_json::to_value(&new.booking).ok(),
                },
                now,
            )
            .await?;
        }
        let main_booking = crate::bookings::load(&mut w.tx, &main)
            .await?
            .ok_or_else(|| StoreError::not_found("booking", &main))?;
        crate::bookings::insert_dependencies(
            &mut w.tx,
            &Booking {
                dependencies,
                ..main_booking
            },
        )
        .await?;
        Ok(main)
    }

    /// The vendor of a rollout's offering: all that deciding who may see or steer the
    /// rollout's items needs, read without the rollout's counts or the offering's
    /// manifests.
    pub async fn rollout_vendor(&self, id: &str) -> Result<String> {
        let row = sqlx::query(
            "SELECT o.vendor FROM rollouts r JOIN offerings o ON o.name = r.offering \
             WHERE r.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found("rollout", id))?;
        Ok(row.try_get::<String, _>(0)?)
    }

    pub async fn get_rollout(&self, id: &str) -> Result<Rollout> {
        let row = sqlx::query(&format!(
            "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found("rollout", id))?;
        let mut rollout = rollout_row(&row)?;
        self.summarise(&mut rollout).await?;
        Ok(rollout)
    }

    /// Fills in the waves' and sites' counts from the counts the items' triggers keep
    /// (migration 0014): a few hundred rows at most, where the items are 100,000.
    async fn summarise(&self, r: &mut Rollout) -> Result<()> {
        let rows = sqlx::query(
            "SELECT wave, site, reference, state, n FROM rollout_item_counts \
             WHERE rollout = $1 AND n > 0",
        )
        .bind(&r.id)
        .fetch_all(&self.pool)
        .await?;
        let mut sites: BTreeMap<String, SiteSummary> = BTreeMap::new();
        let mut wave_sites: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
        for row in &rows {
            let wave = row.try_get::<i64, _>(0)? as u32;
            let site: String = row.try_get(1)?;
            let reference = row.try_get::<i64, _>(2)? != 0;
            let state: String = row.try_get(3)?;
            let state = ItemState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("rollout item state `{state}`")))?;
            let n = row.try_get::<i64, _>(4)? as u64;
            if let Some(w) = r.waves.get_mut(wave as usize) {
                *w.bookings.entry(state).or_default() += n;
            }
            wave_sites.entry(wave).or_default().insert(site.clone());
            *r.bookings.entry(state).or_default() += n;
            let s = sites.entry(site.clone()).or_insert_with(|| SiteSummary {
                site,
                test: None,
                bookings: Counts::new(),
            });
            if reference {
                s.test = Some(state);
            } else {
                *s.bookings.entry(state).or_default() += n;
            }
        }
        for w in &mut r.waves {
            w.sites = wave_sites
                .remove(&w.index)
                .unwrap_or_default()
                .into_iter()
                .collect();
            let open = w
                .bookings
                .iter()
                .any(|(s, n)| *n > 0 && !s.is_done() && *s != ItemState::Waiting);
            w.status = if w.index < r.current_wave || (r.state.is_finished() && !open) {
                "done"
            } else if w.index == r.current_wave && r.state != RolloutState::Completed {
                "running"
            } else if open {
                "pending"
            } else {
                "done"
            }
            .into();
        }
        r.sites = sites.into_values().collect();
        Ok(())
    }

    pub async fn list_rollouts(
        &self,
        filter: &RolloutFilter,
        page: &PageRequest,
    ) -> Result<Page<Rollout>> {
        let mut s = Select::default();
        if let Some(o) = &filter.offering {
            s.and("offering = {}", Arg::Text(o.clone()));
        }
        if let Some(st) = filter.state {
            s.and("state = {}", Arg::Text(st.as_str().into()));
        }
        if let Some(vendors) = &filter.scope_vendor {
            if vendors.is_empty() {
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                });
            }
            let args = vendors.iter().map(|v| Arg::Text(v.clone())).collect();
            s.and_many(
                "offering IN (SELECT name FROM offerings WHERE vendor IN (",
                args,
            );
        }
        // Newest first: ids are time-ordered (UUIDv7).
        if let Some(after) = &page.after {
            s.and("id < {}", Arg::Text(after.clone()));
        }
        let limit = page.limit();
        let sql = s.sql(
            &format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts"),
            &format!("ORDER BY id DESC LIMIT {}", limit + 1),
        );
        let rows = s.bind(&sql).fetch_all(&self.pool).await?;
        let mut items = rows.iter().map(rollout_row).collect::<Result<Vec<_>>>()?;
        for r in &mut items {
            self.summarise(r).await?;
        }
        Ok(paginate(items, limit, |r| r.id.clone()))
    }

    pub async fn rollout_items(
        &self,
        id: &str,
        filter: &ItemFilter,
        page: &PageRequest,
    ) -> Result<Page<RolloutItem>> {
        let mut s = Select::default();
        s.and("rollout = {}", Arg::Text(id.to_owned()));
        if let Some(wave) = filter.wave {
            s.and("wave = {}", Arg::Int(i64::from(wave)));
        }
        if let Some(site) = &filter.site {
            s.and("site = {}", Arg::Text(site.clone()));
        }
        if let Some(st) = filter.state {
            s.and("state = {}", Arg::Text(st.as_str().into()));
        }
        if let Some(after) = &page.after {
            s.and("booking > {}", Arg::Text(after.clone()));
        }
        let limit = page.limit();
        let sql = s.sql(
            &format!("SELECT {ITEM_COLUMNS} FROM rollout_items"),
            &format!("ORDER BY booking LIMIT {}", limit + 1),
        );
        let rows = s.bind(&sql).fetch_all(&self.pool).await?;
        let items = rows.iter().map(item_row).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |i| i.booking.clone()))
    }

    /// Rollouts by state.
    pub async fn rollout_counts(&self) -> Result<Vec<(RolloutState, i64)>> {
        let mut out = Vec::new();
        for r in sqlx::query("SELECT state, COUNT(*) FROM rollouts GROUP BY state")
            .fetch_all(&self.pool)
            .await?
        {
            let state: String = r.try_get(0)?;
            if let Some(s) = RolloutState::parse(&state) {
                out.push((s, r.try_get::<i64, _>(1)?));
            }
        }
        Ok(out)
    }

    /// The rollouts the engine advances.
    pub async fn running_rollouts(&self) -> Result<Vec<String>> {
        sqlx::query("SELECT id FROM rollouts WHERE state = 'running' ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
    }

    /// Tries to become the rollout engine's leader (see [`Leadership`]).
    pub async fn try_lead(&self) -> Result<Option<Leadership>> {
        self.try_lead_with(LEADER_LOCK).await
    }

    /// Leadership by the session advisory lock `key` (PostgreSQL); always on SQLite.
    pub(crate) async fn try_lead_with(&self, key: i64) -> Result<Option<Leadership>> {
        match self.dialect {
            Dialect::Sqlite => Ok(Some(Leadership { conn: None })),
            Dialect::Postgres => {
                let mut conn = self.leadership.connect().await?;
                let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
                    .bind(key)
                    .fetch_one(&mut conn)
                    .await?
                    .try_get(0)?;
                if got {
                    Ok(Some(Leadership { conn: Some(conn) }))
                } else {
                    // Holding nothing, the connection closes; not leading is the answer
                    // even if the goodbye fails.
                    if let Err(e) = conn.close().await {
                        tracing::debug!(error = %e, "closing an unused leadership connection failed");
                    }
                    Ok(None)
                }
            }
        }
    }

    /// One tick of the engine for one rollout; see the module docs and [`tick`] for
    /// its steps.
    pub async fn tick_rollout(&self, id: &str, now: DateTime<Utc>) -> Result<Ticked> {
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        let Some((rollout, view)) = tick::load_running(&mut w, id).await? else {
            return Ok(Ticked::default());
        };
        let (items, from) = tick::load_items(&mut w, id, rollout.current_wave).await?;
        let actions = step(&view, &items, now);
        if actions.is_empty() {
            return Ok(Ticked::default());
        }
        let at = ts(&now);
        let mut ticked = Ticked {
            actions: actions.len(),
            ..Ticked::default()
        };
        let sorted = tick::sort_item_actions(&actions, &mut ticked);
        let rollout_events =
            tick::apply_rollout_actions(&mut w, id, &view, &actions, &at, &mut ticked).await?;
        tick::write_item_states(&mut w, self.dialect, id, &sorted, &at).await?;
        let (moves, booking_events) =
            tick::booking_moves(id, &rollout.version, &sorted, &items, &from);
        tick::write_booking_moves(&mut w, self.dialect, &moves, &at).await?;
        let changes = tick::in_decision_order(id, &actions, booking_events, rollout_events);
        tick::count_tick(&mut w, id, &at).await?;
        w.audit_many(self.dialect, changes, now).await?;
        w.commit().await?;
        Ok(ticked)
    }

    /// An operator's control of a rollout, audited as the actor's; each control is a
    /// function of [`control`].
    pub async fn control_rollout(
        &self,
        id: &str,
        actor: &str,
        control: &Control,
        now: DateTime<Utc>,
    ) -> Result<Rollout> {
        let now = stored_time(now);
        let at = ts(&now);
        let mut w = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or_else(|| StoreError::not_found("rollout", id))?;
        let rollout = rollout_row(&row)?;
        if !control.allowed_in(rollout.state) {
            return Err(StoreError::Conflict(format!(
                "a {} rollout cannot be {}",
                rollout.state,
                match control {
                    Control::Pause => "paused",
                    Control::Resume => "resumed",
                    Control::Abort => "aborted",
                    Control::RetrySite(_) => "retried",
                    Control::SkipSite { .. } => "told to skip a site",
                }
            )));
        }
        let items: Vec<RolloutItem> = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM rollout_items WHERE rollout = $1 ORDER BY booking"
        ))
        .bind(id)
        .fetch_all(&mut *w.tx)
        .await?
        .iter()
        .map(item_row)
        .collect::<Result<_>>()?;
        let d = self.dialect;
        let (after, mut changes) = match control {
            Control::Pause => control::pause(&mut w, id, &at).await?,
            Control::Resume => {
                let before = tolerated(&row)?;
                control::resume(&mut w, id, &rollout, &items, before, &at).await?
            }
            Control::Abort => control::abort(&mut w, d, id, actor, &items, &at).await?,
            Control::RetrySite(site) => {
                control::retry_site(&mut w, d, id, &rollout, &items, site, &at).await?
            }
            Control::SkipSite { site, reason } => {
                control::skip_site(&mut w, d, id, actor, &items, site, reason, &at).await?
            }
        };
        changes.insert(
            0,
            Change {
                actor: actor.into(),
                action: control.action().into(),
                object: format!("rollout/{id}"),
                before: Some(json!({"state": rollout.state})),
                after: Some(after),
            },
        );
        w.audit_many(self.dialect, changes, now).await?;
        w.commit().await?;
        self.get_rollout(id).await
    }

    /// Marks (or unmarks) an organisation as an early adopter, whose bookings are in
    /// every rollout's canary stage.
    pub async fn set_early_adopter(
        &self,
        actor: &str,
        organisation: &str,
        early_adopter: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        let before: i64 = sqlx::query("SELECT early_adopter FROM organisations WHERE id = $1")
            .bind(organisation)
            .fetch_optional(&mut *w.tx)
            .await?
            .ok_or_else(|| StoreError::not_found("organisation", organisation))?
            .try_get(0)?;
        if (before != 0) != early_adopter {
            sqlx::query(
                "UPDATE organisations SET early_adopter = $2, updated_at = $3 WHERE id = $1",
            )
            .bind(organisation)
            .bind(i64::from(early_adopter))
            .bind(ts(&now))
            .execute(&mut *w.tx)
            .await?;
            w.audit(
                Change {
                    actor: actor.into(),
                    action: "organisation.early-adopter".into(),
                    object: format!("organisation/{organisation}"),
                    before: Some(json!({"early_adopter": before != 0})),
                    after: Some(json!({"early_adopter": early_adopter})),
                },
                now,
            )
            .await?;
        }
        w.commit().await?;
        Ok(early_adopter)
    }

    /// Whether an organisation opted in as an early adopter.
    pub async fn early_adopter(&self, organisation: &str) -> Result<bool> {
        Ok(
            sqlx::query("SELECT early_adopter FROM organisations WHERE id = $1")
                .bind(organisation)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| StoreError::not_found("organisation", organisation))?
                .try_get::<i64, _>(0)?
                != 0,
        )
    }
}

/// The failures of the current wave an operator accepted, from a row of
/// `ROLLOUT_COLUMNS` (its ninth column).
fn tolerated(row: &AnyRow) -> Result<u32> {
    Ok(row.try_get::<i64, _>(8)?.max(0) as u32)
}

async fn set_state(
    w: &mut crate::Write<'_>,
    id: &str,
    state: RolloutState,
    reason: Option<&String>,
    at: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE rollouts SET state = $2, reason = $3, updated_at = $4, finished_at = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(reason.cloned())
    .bind(at)
    .bind(state.is_finished().then(|| at.to_owned()))
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

async fn set_items(
    w: &mut crate::Write<'_>,
    dialect: Dialect,
    id: &str,
    ids: &[String],
    state: ItemState,
    reason: Option<&str>,
    at: &str,
) -> Result<()> {
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!(
            "UPDATE rollout_items SET state = {}, reason = {}, since = {} \
             WHERE rollout = {} AND booking IN ({})",
            placeholders(dialect, 1, 1),
            placeholders(dialect, 2, 1),
            placeholders(dialect, 3, 1),
            placeholders(dialect, 4, 1),
            placeholders(dialect, 5, chunk.len())
        );
        let mut q = sqlx::query(&sql)
            .bind(state.as_str())
            .bind(reason.map(str::to_owned))
            .bind(at.to_owned())
            .bind(id.to_owned());
        for b in chunk {
            q = q.bind(b.clone());
        }
        q.execute(&mut *w.tx).await?;
    }
    Ok(())
}

/// Sets one booking back to `previous` (an abort's rollback), if it still runs another
/// version; the audit change to record.
async fn roll_back(
    w: &mut crate::Write<'_>,
    actor: &str,
    booking: &str,
    previous: &str,
    rollout: &str,
    reason: &str,
    at: &str,
) -> Result<Option<Change>> {
    let Some(b) = crate::bookings::load(&mut w.tx, booking).await? else {
        return Ok(None);
    };
    if !b.state.is_live() || b.version.as_deref() == Some(previous) {
        return Ok(None);
    }
    let next = transition(b.state, BookingEvent::StartUpdate).unwrap_or(b.state);
    let moved = next != b.state;
    sqlx::query(&format!(
        "UPDATE bookings SET version = $2, state = $3, updated_at = $4{} WHERE id = $1",
        if moved { ", state_since = $4" } else { "" }
    ))
    .bind(booking)
    .bind(previous)
    .bind(next.as_str())
    .bind(at)
    .execute(&mut *w.tx)
    .await?;
    Ok(Some(Change {
        actor: actor.into(),
        action: "booking.rollback".into(),
        object: format!("booking/{booking}"),
        before: Some(json!({"version": b.version, "state": b.state})),
        after: Some(
            json!({"version": previous, "state": next, "rollout": rollout, "reason": reason}),
        ),
    }))
}
