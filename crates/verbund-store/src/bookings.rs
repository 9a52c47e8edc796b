//! Bookings and site capacity.
//!
//! Placement must see the capacity that is really free, so the decision runs inside the
//! serialised write transaction: `create_bookings` and `update_booking` hand the caller a
//! snapshot of every site's usage, take back what to store, and commit both together.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use verbund_domain::audit::Change;
use verbund_domain::booking::{Booking, BookingState, Compliance};
use verbund_domain::capacity::{self, CapacityWindow, Load, Timeline};
use verbund_domain::directory::{Environment, Provider, Resources, Site, SiteSpec};

use verbund_domain::preflight::SitePreflight;
use verbund_domain::secrets::SecretValues;

use crate::error::{Result, StoreError};
use crate::rows::{from_json, parse_ts, to_json, ts, Arg, Select};
use crate::Store;

mod list;

/// A site, its operator, the resources its placed bookings hold now and the changes
/// their capacity windows will make, and its last preflight (placement keeps new
/// bookings off a site whose preflight failed).
#[derive(Debug, Clone)]
pub struct SiteUsage {
    pub site: Site,
    pub provider: Provider,
    /// What its bookings reserve now.
    pub used: Resources,
    /// The windows ahead of the bookings it holds and the changes they will make: the
    /// process's copy, shared, not copied into each transaction's usage.
    pub ahead: Arc<SiteWindows>,
    /// `None` when the site never reported a preflight.
    pub preflight: Option<SitePreflight>,
}

impl SiteUsage {
    /// Capacity left in the site's `prod` environment now.
    pub fn free_now(&self) -> Resources {
        let c = self.site.spec.capacity;
        Resources {
            cpu_millis: c.cpu_millis.saturating_sub(self.used.cpu_millis),
            memory_mib: c.memory_mib.saturating_sub(self.used.memory_mib),
            storage_gib: c.storage_gib.saturating_sub(self.used.storage_gib),
        }
    }

    /// Capacity left at the site's fullest moment ahead: what a booking that holds its
    /// plan for good must fit into.
    pub fn free(&self) -> Resources {
        capacity::free_at_peak(self.left(), &self.ahead.timeline)
    }

    /// Its capacity minus what its bookings reserve now, signed (negative when it is
    /// overbooked, e.g. after its capacity was lowered).
    pub fn left(&self) -> Load {
        Load::of(&self.site.spec.capacity).minus(Load::of(&self.used))
    }

    /// The changes ahead without those of booking `id` (whose windows are being
    /// replaced).
    pub fn timeline_without(&self, id: &str) -> Timeline {
        Timeline::of(
            self.ahead
                .windows
                .iter()
                .filter(|(b, _)| b != id)
                .map(|(_, w)| w),
        )
    }
}

/// When capacity windows change: see [`Store::window_schedule`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowSchedule {
    /// Bookings with a start or end due now.
    pub due: Vec<String>,
    /// The next start or end after now.
    pub next: Option<DateTime<Utc>>,
}

/// A booking to store, with the resources it reserves and its placement decision.
#[derive(Debug, Clone)]
pub struct NewBooking {
    pub booking: Booking,
    pub resources: Resources,
    pub decision: Option<Value>,
    /// The audit action, e.g. `booking.create`.
    pub action: String,
    /// Its declared-secret values, by pointer, replacing those stored (`secrets_set` of
    /// the booking names the same pointers); `None` keeps what is stored.
    pub secrets: Option<SecretValues>,
}

/// Filters for listing bookings; all given ones must match.
#[derive(Debug, Clone, Default)]
pub struct BookingFilter {
    /// Restrict to these organisations (the caller's scope); `None` means no restriction.
    pub scope_organisations: Option<crate::OrganisationScope>,
    /// Restrict to sites of this provider (a provider operator's scope).
    pub scope_provider: Option<String>,
    /// Restrict to offerings of this vendor organisation (a vendor's scope).
    pub scope_vendor: Option<Vec<String>>,
    pub organisation: Option<String>,
    pub offering: Option<String>,
    /// Only the tenancies of this shared instance.
    pub instance: Option<String>,
    pub site: Option<String>,
    pub state: Option<BookingState>,
    /// Only bookings flagged as no longer compliant.
    pub noncompliant: bool,
}

pub(crate) const COLUMNS: &str =
    "id, organisation, offering, plan, config, channel, state, site, version, reason, \
    dependency_of, compliance, created_at, updated_at, state_since, environment, windows, ending, \
    instance";

/// How many columns [`COLUMNS`] names.
const COLUMN_COUNT: usize = 19;

pub(crate) fn booking(r: &AnyRow) -> Result<Booking> {
    debug_assert_eq!(COLUMNS.split(',').count(), COLUMN_COUNT);
    let state: String = r.try_get(6)?;
    Ok(Booking {
        id: r.try_get(0)?,
        organisation: r.try_get(1)?,
        offering: r.try_get(2)?,
        plan: r.try_get(3)?,
        config: from_json(&r.try_get::<String, _>(4)?)?,
        channel: r.try_get(5)?,
        state: BookingState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("booking state `{state}`")))?,
        site: r.try_get(7)?,
        version: r.try_get(8)?,
        reason: r.try_get(9)?,
        dependency_of: r.try_get(10)?,
        dependencies: Vec::new(),
        compliance: r
            .try_get::<Option<String>, _>(11)?
            .as_deref()
            .map(from_json::<Compliance>)
            .transpose()?,
        created_at: parse_ts(&r.try_get::<String, _>(12)?)?,
        updated_at: parse_ts(&r.try_get::<String, _>(13)?)?,
        state_since: parse_ts(&r.try_get::<String, _>(14)?)?,
        environment: {
            let e: String = r.try_get(15)?;
            Environment::parse(&e)
                .ok_or_else(|| StoreError::Corrupt(format!("booking environment `{e}`")))?
        },
        undeliverable: None,
        secrets_set: Vec::new(),
        windows: r
            .try_get::<Option<String>, _>(16)?
            .as_deref()
            .map(from_json)
            .transpose()?
            .unwrap_or_default(),
        ending: r
            .try_get::<Option<String>, _>(17)?
            .as_deref()
            .map(from_json)
            .transpose()?,
        instance: r.try_get(18)?,
    })
}

/// A booking's windows as stored: `NULL` for none, so that the partial index holds only
/// bookings with windows.
fn windows_json(b: &Booking) -> Result<Option<String>> {
    (!b.windows.is_empty())
        .then(|| to_json(&b.windows))
        .transpose()
}

/// The states that hold capacity ([`BookingState::holds_capacity`]), as SQL; the
/// running totals' triggers (migrations 0003, 0004, 0017) list the same.
const HOLDING: &str =
    "('placed','provisioning','active','updating','degraded','exporting','cancelling')";

async fn usage(conn: &mut AnyConnection, cache: &WindowsCache) -> Result<Vec<SiteUsage>> {
    let sites = sqlx::query(
        "SELECT s.spec, s.created_at, s.updated_at, p.spec, p.created_at, p.updated_at \
         FROM sites s JOIN providers p ON p.name = s.provider ORDER BY s.name",
    )
    .fetch_all(&mut *conn)
    .await?;
    // Running totals kept by triggers on `bookings` (migration 0003).
    let used_rows = sqlx::query("SELECT site, cpu_millis, memory_mib, storage_gib FROM site_usage")
        .fetch_all(&mut *conn)
        .await?;
    let mut used: HashMap<String, Resources> = HashMap::new();
    for r in &used_rows {
        let get = |i: usize| -> Result<u64> { Ok(r.try_get::<i64, _>(i)?.max(0) as u64) };
        used.insert(
            r.try_get(0)?,
            Resources {
                cpu_millis: get(1)?,
                memory_mib: get(2)?,
                storage_gib: get(3)?,
            },
        );
    }
    let ahead = windows_ahead(conn, cache).await?;
    let mut preflights = crate::preflight::by_site(conn).await?;
    let mut attested = crate::trust::attested(conn).await?;
    let count_stated = crate::trust::current_list(conn)
        .await?
        .list
        .count_stated_certifications;
    sites
        .iter()
        .map(|r| {
            let mut spec: SiteSpec = from_json(&r.try_get::<String, _>(0)?)?;
            // What placement judges: the certifications its trusted issuers attest (live
            // credentials, see `verbund_trust`), and those the federation stated unless
            // its trust list says that only credentials count.
            if !count_stated {
                spec.certifications.clear();
            }
            spec.certifications
                .extend(attested.remove(&spec.name).unwrap_or_default());
            let site = Site {
                spec,
                created_at: parse_ts(&r.try_get::<String, _>(1)?)?,
                updated_at: parse_ts(&r.try_get::<String, _>(2)?)?,
            };
            let provider = Provider {
                spec: from_json(&r.try_get::<String, _>(3)?)?,
                created_at: parse_ts(&r.try_get::<String, _>(4)?)?,
                updated_at: parse_ts(&r.try_get::<String, _>(5)?)?,
            };
            let used = used.get(&site.spec.name).copied().unwrap_or_default();
            let preflight = preflights.remove(&site.spec.name);
            Ok(SiteUsage {
                ahead: ahead.get(&site.spec.name).cloned().unwrap_or_default(),
                site,
                provider,
                used,
                preflight,
            })
        })
        .collect()
}

/// A site's windows ahead (those not over, of the bookings that hold capacity), by
/// booking id, with the changes they will make.
#[derive(Debug, Default)]
pub struct SiteWindows {
    pub windows: Vec<(String, CapacityWindow)>,
    /// Shared with placement's candidates, which copy it only to add a booking's windows.
    pub timeline: Arc<Timeline>,
}

type WindowsAhead = HashMap<String, Arc<SiteWindows>>;

/// A process's copy of each site's windows ahead, with the version it was read at; a
/// site's is read again only when its version (`capacity_windows_version`, moved by every
/// write that changes a booking with windows on that site) moved.
#[derive(Debug, Default)]
pub(crate) struct WindowsCache(std::sync::Mutex<HashMap<String, (i64, Arc<SiteWindows>)>>);

impl WindowsCache {
    fn get(&self, site: &str, version: i64) -> Option<Arc<SiteWindows>> {
        let held = self.0.lock().ok()?;
        held.get(site)
            .filter(|(v, _)| *v == version)
            .map(|(_, w)| Arc::clone(w))
    }

    fn keep(&self, site: &str, version: i64, windows: &Arc<SiteWindows>) {
        if let Ok(mut held) = self.0.lock() {
            held.insert(site.to_owned(), (version, Arc::clone(windows)));
        }
    }
}

/// Every site's windows ahead as of this transaction: each site's cached copy if it is
/// current, else read from its bookings.
async fn windows_ahead(conn: &mut AnyConnection, cache: &WindowsCache) -> Result<WindowsAhead> {
    let versions = sqlx::query("SELECT site, n FROM capacity_windows_version")
        .fetch_all(&mut *conn)
        .await?;
    let mut ahead = HashMap::with_capacity(versions.len());
    let mut stale = Vec::new();
    for r in &versions {
        let (site, version): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
        match cache.get(&site, version) {
            Some(w) => {
                ahead.insert(site, w);
            }
            None => stale.push((site, version)),
        }
    }
    // A few sites changed (a booking's write): read theirs. Many (a process that just
    // started): read every site's in one query.
    let mut read = if stale.len() > STALE_SITES_READ_ONE_BY_ONE {
        all_site_windows(conn).await?
    } else {
        let mut read = HashMap::new();
        for (site, _) in &stale {
            read.insert(site.clone(), site_windows(conn, site).await?);
        }
        read
    };
    for (site, version) in stale {
        let windows = Arc::new(read.remove(&site).unwrap_or_default());
        cache.keep(&site, version, &windows);
        ahead.insert(site, windows);
    }
    Ok(ahead)
}

/// Up to how many changed sites are read one by one rather than all at once.
const STALE_SITES_READ_ONE_BY_ONE: usize = 8;

/// A site's windows ahead, and the changes they will make.
fn site_windows_of(windows: Vec<(String, CapacityWindow)>) -> SiteWindows {
    let timeline = Timeline::of(windows.iter().map(|(_, w)| w));
    SiteWindows {
        windows,
        timeline: Arc::new(timeline),
    }
}

/// The windows not over of a booking's stored windows.
fn ahead_of(id: &str, stored: &str) -> Result<Vec<(String, CapacityWindow)>> {
    let all: Vec<CapacityWindow> = from_json(stored)?;
    Ok(all
        .into_iter()
        .filter(|w| w.state != capacity::WindowState::Ended)
        .map(|w| (id.to_owned(), w))
        .collect())
}

/// Every site's windows ahead, read in one query.
async fn all_site_windows(conn: &mut AnyConnection) -> Result<HashMap<String, SiteWindows>> {
    let rows = sqlx::query(&format!(
        "SELECT site, id, windows FROM bookings \
         WHERE windows IS NOT NULL AND site IS NOT NULL AND state IN {HOLDING}"
    ))
    .fetch_all(&mut *conn)
    .await?;
    let mut by_site: HashMap<String, Vec<(String, CapacityWindow)>> = HashMap::new();
    for r in &rows {
        let id: String = r.try_get(1)?;
        by_site
            .entry(r.try_get(0)?)
            .or_default()
            .extend(ahead_of(&id, &r.try_get::<String, _>(2)?)?);
    }
    Ok(by_site
        .into_iter()
        .map(|(site, windows)| (site, site_windows_of(windows)))
        .collect())
}

/// One site's windows ahead, read from the bookings that hold capacity there.
async fn site_windows(conn: &mut AnyConnection, site: &str) -> Result<SiteWindows> {
    let rows = sqlx::query(&format!(
        "SELECT id, windows FROM bookings \
         WHERE site = $1 AND windows IS NOT NULL AND state IN {HOLDING}"
    ))
    .bind(site)
    .fetch_all(&mut *conn)
    .await?;
    let mut windows = Vec::new();
    for r in &rows {
        windows.extend(ahead_of(
            &r.try_get::<String, _>(0)?,
            &r.try_get::<String, _>(1)?,
        )?);
    }
    Ok(site_windows_of(windows))
}

/// What a booking reserves on its site: its plan's resources, but nothing for a tenancy
/// of a shared instance (its instance holds the capacity for all its tenants), whatever
/// path stores it.
fn held(n: &NewBooking) -> Resources {
    if n.booking.instance.is_some() {
        Resources::default()
    } else {
        n.resources
    }
}

pub(crate) async fn insert(conn: &mut AnyConnection, n: &NewBooking) -> Result<()> {
    let b = &n.booking;
    let held = held(n);
    sqlx::query(&format!(
        "INSERT INTO bookings ({COLUMNS}, compliant, decision, cpu_millis, memory_mib, storage_gib) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)"
    ))
    .bind(&b.id)
    .bind(&b.organisation)
    .bind(&b.offering)
    .bind(&b.plan)
    .bind(to_json(&b.config)?)
    .bind(&b.channel)
    .bind(b.state.as_str())
    .bind(&b.site)
    .bind(&b.version)
    .bind(&b.reason)
    .bind(&b.dependency_of)
    .bind(b.compliance.as_ref().map(to_json).transpose()?)
    .bind(ts(&b.created_at))
    .bind(ts(&b.updated_at))
    .bind(ts(&b.state_since))
    .bind(b.environment.as_str())
    .bind(windows_json(b)?)
    .bind(b.ending.as_ref().map(to_json).transpose()?)
    .bind(&b.instance)
    .bind(i64::from(b.compliance.as_ref().is_none_or(|c| c.compliant)))
    .bind(n.decision.as_ref().map(to_json).transpose()?)
    .bind(held.cpu_millis as i64)
    .bind(held.memory_mib as i64)
    .bind(held.storage_gib as i64)
    .execute(&mut *conn)
    .await?;
    if let Some(values) = &n.secrets {
        crate::secrets::write(conn, &b.id, values).await?;
    }
    Ok(())
}

pub(crate) async fn insert_dependencies(conn: &mut AnyConnection, b: &Booking) -> Result<()> {
    for d in &b.dependencies {
        sqlx::query(
            "INSERT INTO booking_dependencies (booking, dependency) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&b.id)
        .bind(d)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn write_update(conn: &mut AnyConnection, n: &NewBooking) -> Result<()> {
    let b = &n.booking;
    let held = held(n);
    sqlx::query(
        "UPDATE bookings SET plan = $2, config = $3, channel = $4, state = $5, site = $6, version = $7, \
         reason = $8, compliance = $9, compliant = $10, cpu_millis = $11, memory_mib = $12, storage_gib = $13, \
         updated_at = $14, state_since = $15, decision = COALESCE($16, decision), windows = $17, \
         ending = $18 WHERE id = $1",
    )
    .bind(&b.id)
    .bind(&b.plan)
    .bind(to_json(&b.config)?)
    .bind(&b.channel)
    .bind(b.state.as_str())
    .bind(&b.site)
    .bind(&b.version)
    .bind(&b.reason)
    .bind(b.compliance.as_ref().map(to_json).transpose()?)
    .bind(i64::from(b.compliance.as_ref().is_none_or(|c| c.compliant)))
    .bind(held.cpu_millis as i64)
    .bind(held.memory_mib as i64)
    .bind(held.storage_gib as i64)
    .bind(ts(&b.updated_at))
    .bind(ts(&b.state_since))
    .bind(n.decision.as_ref().map(to_json).transpose()?)
    .bind(windows_json(b)?)
    .bind(b.ending.as_ref().map(to_json).transpose()?)
    .execute(&mut *conn)
    .await?;
    if b.state.is_final() {
        crate::secrets::purge(conn, &b.id).await?;
    } else if let Some(values) = &n.secrets {
        crate::secrets::write(conn, &b.id, values).await?;
    }
    Ok(())
}

/// A shared instance's tenancies run on its plan: when the instance's plan changes, so
/// does theirs (in the instance's transaction, its change audited with it), so that an
/// offering's plan is held only by the bookings that run on it.
async fn follow_instance_plan(
    conn: &mut AnyConnection,
    before: &Booking,
    after: &Booking,
) -> Result<()> {
    if after.instance.is_some() || before.plan == after.plan {
        return Ok(());
    }
    sqlx::query("UPDATE bookings SET plan = $2 WHERE instance = $1")
        .bind(&after.id)
        .bind(&after.plan)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn load(conn: &mut AnyConnection, id: &str) -> Result<Option<Booking>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM bookings WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut b = booking(&row)?;
    b.dependencies = sqlx::query(
        "SELECT dependency FROM booking_dependencies WHERE booking = $1 ORDER BY dependency",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get::<String, _>(0))
    .collect::<Result<_, _>>()?;
    b.secrets_set = crate::secrets::pointers(conn, &b.id).await?;
    Ok(Some(b))
}

/// The bookings with these ids (those that exist), with their dependency links, by id.
pub(crate) async fn load_many(
    conn: &mut AnyConnection,
    dialect: crate::Dialect,
    ids: &[String],
) -> Result<Vec<Booking>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let list = crate::rows::placeholders(dialect, 1, chunk.len());
        let sql = format!("SELECT {COLUMNS} FROM bookings WHERE id IN ({list}) ORDER BY id");
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.clone());
        }
        let rows = q.fetch_all(&mut *conn).await?;
        let mut items = rows.iter().map(booking).collect::<Result<Vec<_>>>()?;
        attach_dependencies(conn, dialect, &mut items).await?;
        crate::secrets::fill(conn, dialect, &mut items).await?;
        out.extend(items);
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

async fn attach_dependencies(
    conn: &mut AnyConnection,
    dialect: crate::Dialect,
    items: &mut [Booking],
) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let list = crate::rows::placeholders(dialect, 1, items.len());
    let sql = format!(
        "SELECT booking, dependency FROM booking_dependencies WHERE booking IN ({list}) \
         ORDER BY booking, dependency"
    );
    let mut q = sqlx::query(&sql);
    for b in items.iter() {
        q = q.bind(b.id.clone());
    }
    let mut links: HashMap<String, Vec<String>> = HashMap::new();
    for r in q.fetch_all(&mut *conn).await? {
        links.entry(r.try_get(0)?).or_default().push(r.try_get(1)?);
    }
    for b in items.iter_mut() {
        b.dependencies = links.remove(&b.id).unwrap_or_default();
    }
    Ok(())
}

fn audit_change(actor: &str, n: &NewBooking, before: Option<&Booking>) -> Change {
    Change {
        actor: actor.into(),
        action: n.action.clone(),
        object: format!("booking/{}", n.booking.id),
        before: before.map(|b| serde_json::to_value(b).unwrap_or_default()),
        after: Some(serde_json::to_value(&n.booking).unwrap_or_default()),
    }
}

/// What a booking decision of `organisation` sees inside a write transaction.
async fn snapshot(
    conn: &mut AnyConnection,
    organisation: &str,
    cache: &WindowsCache,
) -> Result<BookingSnapshot> {
    let sites = usage(conn, cache).await?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM bookings WHERE organisation = $1 AND state IN {HOLDING} ORDER BY id"
    ))
    .bind(organisation)
    .fetch_all(&mut *conn)
    .await?;
    let organisation_bookings = rows.iter().map(booking).collect::<Result<Vec<_>>>()?;
    Ok(BookingSnapshot {
        sites,
        organisation_bookings,
    })
}

/// A booking that names another among its dependencies and still needs it: it runs or
/// is about to ([`BookingState::is_live`]), or its data is being exported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Dependent {
    pub id: String,
    pub offering: String,
    /// Its organisation's id (a tenancy's: the tenant).
    pub organisation: String,
}

/// The states of a booking that still needs what it depends on: it runs or is about to
/// ([`BookingState::is_live`]), or its data is being exported.
fn needing() -> impl Iterator<Item = &'static str> {
    BookingState::ALL
        .into_iter()
        .filter(|s| s.is_live() || *s == BookingState::Exporting)
        .map(BookingState::as_str)
}

/// [`needing`] as a list of SQL literals.
fn needing_sql() -> String {
    needing()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The bookings that depend on booking `id` and still need it, by id; with
/// `tenancies`, a shared instance's tenancies among them.
async fn dependents(conn: &mut AnyConnection, id: &str, tenancies: bool) -> Result<Vec<Dependent>> {
    let rows = sqlx::query(&format!(
        "SELECT b.id, b.offering, b.state, b.organisation FROM booking_dependencies d \
         JOIN bookings b ON b.id = d.booking WHERE d.dependency = $1{} ORDER BY b.id",
        if tenancies {
            ""
        } else {
            " AND b.instance IS NULL"
        }
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let state: String = r.try_get(2)?;
        if needing().any(|s| s == state) {
            out.push(Dependent {
                id: r.try_get(0)?,
                offering: r.try_get(1)?,
                organisation: r.try_get(3)?,
            });
        }
    }
    Ok(out)
}

/// What a decision inside a write transaction sees.
pub struct BookingSnapshot {
    pub sites: Vec<SiteUsage>,
    /// The organisation's bookings that hold a site.
    pub organisation_bookings: Vec<Booking>,
}

impl Store {
    /// Every site with its operator and used capacity.
    pub async fn site_usage(&self) -> Result<Vec<SiteUsage>> {
        let mut conn = self.pool.acquire().await?;
        usage(&mut conn, &self.windows).await
    }

    /// The capacity windows' schedule at `now`: the bookings holding capacity with a
    /// window whose start or end is due and not carried out yet (by id), and the next
    /// start or end after `now`.
    pub async fn window_schedule(&self, now: DateTime<Utc>) -> Result<WindowSchedule> {
        let mut conn = self.pool.acquire().await?;
        let ahead = windows_ahead(&mut conn, &self.windows).await?;
        let mut schedule = WindowSchedule::default();
        for (id, w) in ahead.values().flat_map(|s| &s.windows) {
            if capacity::next_change(w, now).is_some() && !schedule.due.contains(id) {
                schedule.due.push(id.clone());
            }
            let later = [w.starts_at, w.ends_at]
                .into_iter()
                .filter(|t| {
                    *t > now && (w.state == capacity::WindowState::Scheduled || *t == w.ends_at)
                })
                .min();
            schedule.next = schedule.next.into_iter().chain(later).min();
        }
        schedule.due.sort();
        Ok(schedule)
    }

    /// What a booking decision of `organisation` would see now, outside a transaction
    /// (for a preview that stores nothing).
    pub async fn booking_snapshot(&self, organisation: &str) -> Result<BookingSnapshot> {
        let mut conn = self.pool.acquire().await?;
        snapshot(&mut conn, organisation, &self.windows).await
    }

    /// Decides and stores new bookings atomically: `decide` sees the current capacity
    /// and the organisation's live bookings, and returns the bookings to insert (a
    /// booking and the dependency bookings created for it). Nothing is stored when it
    /// fails.
    ///
    /// On a handle made by [`Store::idempotent`], the request's key is recorded with the
    /// first booking in the same transaction; a key recorded before (and not expired)
    /// is a [`StoreError::Conflict`] before `decide` runs, and nothing is stored.
    pub async fn create_bookings<F, E>(
        &self,
        actor: &str,
        organisation: &str,
        now: DateTime<Utc>,
        decide: F,
    ) -> std::result::Result<Vec<Booking>, E>
    where
        F: FnOnce(&BookingSnapshot) -> std::result::Result<Vec<NewBooking>, E>,
        E: From<StoreError>,
    {
        let mut w = self.begin_write().await?;
        if let Some(key) = &self.idempotency {
            crate::idempotency::refuse_used(&mut w.tx, key, now).await?;
        }
        let snapshot = snapshot(&mut w.tx, organisation, &self.windows).await?;
        let new = decide(&snapshot)?;
        // Rows first (a dependency names the booking it serves), then the links.
        for n in &new {
            insert(&mut w.tx, n).await?;
        }
        for n in &new {
            insert_dependencies(&mut w.tx, &n.booking).await?;
        }
        for n in &new {
            w.audit(audit_change(actor, n, None), now).await?;
        }
        if let (Some(key), Some(first)) = (&self.idempotency, new.first()) {
            crate::idempotency::record(&mut w.tx, key, &first.booking.id, now).await?;
        }
        if let (Some(adoption), Some(first)) = (&self.adoption, new.first()) {
            let b = &first.booking;
            crate::templates::record(&mut w, actor, adoption, &b.id, &b.organisation, false, now)
                .await?;
        }
        w.commit().await?;
        Ok(new.into_iter().map(|n| n.booking).collect())
    }

    /// Creates a tenancy of `organisation` in the shared instance `instance` in one write
    /// transaction: `decide` sees the instance as stored now (a concurrent cancellation
    /// of it has either happened or waits) and the organisation's tenancy in it that
    /// still needs it, if there is one; it returns the tenancy to store, whose
    /// dependencies name the instance (so that the instance cannot be cancelled under
    /// it). Honours an idempotency key as [`Store::create_bookings`] does.
    pub async fn create_tenancy<F, E>(
        &self,
        actor: &str,
        instance: &str,
        organisation: &str,
        now: DateTime<Utc>,
        decide: F,
    ) -> std::result::Result<Booking, E>
    where
        F: FnOnce(&Booking, Option<&str>) -> std::result::Result<NewBooking, E>,
        E: From<StoreError>,
    {
        let mut w = self.begin_write().await?;
        if let Some(key) = &self.idempotency {
            crate::idempotency::refuse_used(&mut w.tx, key, now).await?;
        }
        let found = load(&mut w.tx, instance)
            .await?
            .ok_or_else(|| StoreError::not_found("booking", instance))?;
        let existing: Option<String> = sqlx::query(&format!(
            "SELECT id FROM bookings WHERE instance = $1 AND organisation = $2 \
             AND state IN ({}) LIMIT 1",
            needing_sql()
        ))
        .bind(instance)
        .bind(organisation)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(StoreError::from)?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(StoreError::from)?;
        let new = decide(&found, existing.as_deref())?;
        insert(&mut w.tx, &new).await?;
        insert_dependencies(&mut w.tx, &new.booking).await?;
        w.audit(audit_change(actor, &new, None), now).await?;
        if let Some(key) = &self.idempotency {
            crate::idempotency::record(&mut w.tx, key, &new.booking.id, now).await?;
        }
        w.commit().await?;
        Ok(new.booking)
    }

    /// The running instances of the shared offering `offering` in production that take
    /// tenants (not tenancies, not test references; see
    /// `verbund_domain::shared::takes_tenants`), by id.
    pub async fn shared_instances(&self, offering: &str) -> Result<Vec<Booking>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM bookings WHERE offering = $1 AND instance IS NULL \
             AND environment = 'prod' AND ending IS NULL \
             AND state IN ('placed','provisioning','active','updating','degraded') ORDER BY id"
        ))
        .bind(offering)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(booking).collect()
    }

    /// How many tenancies of `offering`'s shared instances still need them.
    pub async fn live_tenancies(&self, offering: &str) -> Result<u64> {
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) FROM bookings WHERE offering = $1 AND instance IS NOT NULL \
             AND state IN ({})",
            needing_sql()
        ))
        .bind(offering)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)?.max(0) as u64)
    }

    /// How many tenancies each of these shared instances holds that still need it
    /// ([`Dependent`]), by instance id; instances without any are absent.
    pub async fn tenancy_counts(&self, instances: &[String]) -> Result<HashMap<String, u64>> {
        let mut out = HashMap::new();
        for chunk in instances.chunks(IN_CHUNK) {
            let mut s = Select::default();
            add_in(&mut s, "instance", chunk);
            let states: Vec<String> = needing().map(str::to_string).collect();
            add_in(&mut s, "state", &states);
            let sql = s.sql(
                "SELECT instance, COUNT(*) FROM bookings",
                "GROUP BY instance",
            );
            for r in s.bind(&sql).fetch_all(&self.pool).await? {
                out.insert(r.try_get(0)?, r.try_get::<i64, _>(1)?.max(0) as u64);
            }
        }
        Ok(out)
    }

    /// Changes one booking atomically: `change` sees the booking as stored and the
    /// current capacity, and returns the booking to store (or an error, storing nothing).
    pub async fn update_booking<F, E>(
        &self,
        actor: &str,
        id: &str,
        now: DateTime<Utc>,
        change: F,
    ) -> std::result::Result<Booking, E>
    where
        F: FnOnce(&Booking, &[SiteUsage]) -> std::result::Result<Option<NewBooking>, E>,
        E: From<StoreError>,
    {
        let mut w = self.begin_write().await?;
        let before = load(&mut w.tx, id)
            .await?
            .ok_or_else(|| StoreError::not_found("booking", id))?;
        let sites = usage(&mut w.tx, &self.windows).await?;
        let next = change(&before, &sites)?;
        if let Some(adoption) = &self.adoption {
            crate::templates::record(&mut w, actor, adoption, id, &before.organisation, true, now)
                .await?;
        }
        let Some(next) = next else {
            w.commit().await?;
            return Ok(before);
        };
        write_update(&mut w.tx, &next).await?;
        follow_instance_plan(&mut w.tx, &before, &next.booking).await?;
        w.audit(audit_change(actor, &next, Some(&before)), now)
            .await?;
        w.commit().await?;
        Ok(next.booking)
    }

    /// Changes one booking atomically as [`Store::update_booking`] does, but `change` sees
    /// the bookings that depend on it and still need it (see [`Dependent`]) instead of
    /// the capacity: what a cancellation must not leave without what they run on.
    pub async fn update_booking_seeing_dependents<F, E>(
        &self,
        actor: &str,
        id: &str,
        now: DateTime<Utc>,
        change: F,
    ) -> std::result::Result<Booking, E>
    where
        F: FnOnce(&Booking, &[Dependent]) -> std::result::Result<Option<NewBooking>, E>,
        E: From<StoreError>,
    {
        let mut w = self.begin_write().await?;
        let before = load(&mut w.tx, id)
            .await?
            .ok_or_else(|| StoreError::not_found("booking", id))?;
        let dependents = dependents(&mut w.tx, id, true).await?;
        let Some(next) = change(&before, &dependents)? else {
            return Ok(before);
        };
        write_update(&mut w.tx, &next).await?;
        w.audit(audit_change(actor, &next, Some(&before)), now)
            .await?;
        w.commit().await?;
        Ok(next.booking)
    }

    /// Changes one booking and creates others with it, atomically: what an approval
    /// needs, which places the booking and creates the dependencies it brings. `change`
    /// sees the booking as stored and what a booking decision sees (capacity and the
    /// organisation's live bookings), and returns the booking to store and the bookings
    /// to create (or an error, storing nothing). Returns the changed booking first, then
    /// the created ones.
    pub async fn update_booking_creating<F, E>(
        &self,
        actor: &str,
        id: &str,
        now: DateTime<Utc>,
        change: F,
    ) -> std::result::Result<Vec<Booking>, E>
    where
        F: FnOnce(
            &Booking,
            &BookingSnapshot,
        ) -> std::result::Result<Option<(NewBooking, Vec<NewBooking>)>, E>,
        E: From<StoreError>,
    {
        let mut w = self.begin_write().await?;
        let before = load(&mut w.tx, id)
            .await?
            .ok_or_else(|| StoreError::not_found("booking", id))?;
        let snapshot = snapshot(&mut w.tx, &before.organisation, &self.windows).await?;
        let Some((next, new)) = change(&before, &snapshot)? else {
            return Ok(vec![before]);
        };
        write_update(&mut w.tx, &next).await?;
        // Rows first (a dependency names the booking it serves), then the links.
        for n in &new {
            insert(&mut w.tx, n).await?;
        }
        insert_dependencies(&mut w.tx, &next.booking).await?;
        for n in &new {
            insert_dependencies(&mut w.tx, &n.booking).await?;
        }
        w.audit(audit_change(actor, &next, Some(&before)), now)
            .await?;
        for n in &new {
            w.audit(audit_change(actor, n, None), now).await?;
        }
        w.commit().await?;
        Ok(std::iter::once(next)
            .chain(new)
            .map(|n| n.booking)
            .collect())
    }

    /// Moves each of `ids` that is in state `from` to `to` in one transaction, keeping
    /// everything else (resources, decision) and auditing each move as `action`.
    /// Bookings in another state, or missing, are left alone. Returns the moved ones.
    pub async fn advance_bookings(
        &self,
        actor: &str,
        ids: &[String],
        from: BookingState,
        to: BookingState,
        action: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Booking>> {
        let mut w = self.begin_write().await?;
        let mut moved = Vec::new();
        for id in ids {
            let Some(before) = load(&mut w.tx, id).await? else {
                continue;
            };
            if before.state != from {
                continue;
            }
            let mut next = before.clone();
            next.state = to;
            next.updated_at = now;
            next.state_since = now;
            sqlx::query(
                "UPDATE bookings SET state = $2, updated_at = $3, state_since = $3 \
                 WHERE id = $1 AND state = $4",
            )
            .bind(id)
            .bind(to.as_str())
            .bind(ts(&now))
            .bind(from.as_str())
            .execute(&mut *w.tx)
            .await?;
            w.audit(
                Change {
                    actor: actor.into(),
                    action: action.into(),
                    object: format!("booking/{id}"),
                    before: serde_json::to_value(&before).ok(),
                    after: serde_json::to_value(&next).ok(),
                },
                now,
            )
            .await?;
            moved.push(next);
        }
        w.commit().await?;
        Ok(moved)
    }

    /// Every booking with an ending whose end is not carried out yet: not over, and
    /// not cancelled (read through the partial index of migration 0017).
    pub async fn bookings_ending(&self) -> Result<Vec<Booking>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM bookings WHERE ending IS NOT NULL \
             AND state NOT IN ('cancelling','retained','deleted','rejected') ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(booking).collect()
    }

    pub async fn get_booking(&self, id: &str) -> Result<Booking> {
        let mut conn = self.pool.acquire().await?;
        let mut b = load(&mut conn, id)
            .await?
            .ok_or_else(|| StoreError::not_found("booking", id))?;
        crate::undeliverable::fill(&mut conn, self.dialect, std::slice::from_mut(&mut b)).await?;
        Ok(b)
    }

    /// The stored placement decision of a booking.
    pub async fn booking_decision(&self, id: &str) -> Result<Option<Value>> {
        let row = sqlx::query("SELECT decision FROM bookings WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("booking", id))?;
        row.try_get::<Option<String>, _>(0)?
            .as_deref()
            .map(from_json)
            .transpose()
    }

    /// Fills in the dependency links of listed bookings with one query.
    async fn attach_dependencies(&self, items: &mut [Booking]) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        attach_dependencies(&mut conn, self.dialect, items).await
    }

    /// The bookings with these ids (those that exist), with their dependency links, by id.
    pub async fn bookings_by_ids(&self, ids: &[String]) -> Result<Vec<Booking>> {
        let mut conn = self.pool.acquire().await?;
        load_many(&mut conn, self.dialect, ids).await
    }

    /// Every booking in `site`'s `environment` whose folder belongs in the site's
    /// desired state ([`BookingState::is_delivered`]), with its dependency links, by id.
    pub async fn delivered_bookings_on(
        &self,
        site: &str,
        environment: Environment,
    ) -> Result<Vec<Booking>> {
        let states: Vec<String> = BookingState::ALL
            .into_iter()
            .filter(|s| s.is_delivered())
            .map(|s| s.as_str().to_string())
            .collect();
        let mut s = Select::default();
        s.and("site = {}", Arg::Text(site.to_string()));
        s.and(
            "environment = {}",
            Arg::Text(environment.as_str().to_string()),
        );
        add_in(&mut s, "state", &states);
        let sql = s.sql(&format!("SELECT {COLUMNS} FROM bookings"), "ORDER BY id");
        let rows = s.bind(&sql).fetch_all(&self.pool).await?;
        let mut items = rows.iter().map(booking).collect::<Result<Vec<_>>>()?;
        for chunk in items.chunks_mut(IN_CHUNK) {
            self.attach_dependencies(chunk).await?;
        }
        Ok(items)
    }

    /// The bookings that depend on booking `id` and still need it (those that bound it
    /// or were booked with it), by id; a shared instance's tenancies are not among them
    /// (see [`Store::tenancy_counts`]).
    pub async fn booking_dependents(&self, id: &str) -> Result<Vec<Dependent>> {
        let mut conn = self.pool.acquire().await?;
        dependents(&mut conn, id, false).await
    }

    /// How many organisations run each offering (bookings that hold their site in
    /// production), by offering name; offerings nobody runs are absent.
    pub async fn organisations_per_offering(&self) -> Result<HashMap<String, u64>> {
        let rows = sqlx::query(
            "SELECT offering, COUNT(DISTINCT organisation) FROM bookings \
             WHERE state IN ('placed','provisioning','active','updating','degraded') \
             AND environment = 'prod' GROUP BY offering",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)?.max(0) as u64)))
            .collect()
    }

    /// Whether an organisation of the Land `land` (its key) runs a booking of `offering`
    /// (one that holds its site): whether the Land operates an "Einer für Alle"
    /// service. Says nothing of which organisation.
    pub async fn runs_in_land(&self, offering: &str, land: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM bookings b JOIN organisations o ON o.id = b.organisation \
             WHERE b.offering = $1 AND o.land = $2 \
             AND b.state IN ('placed','provisioning','active','updating','degraded') LIMIT 1",
        )
        .bind(offering)
        .bind(land)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Ids of the bookings that depend on any of `ids`, sorted.
    pub async fn dependents_of(&self, ids: &[String]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let mut s = Select::default();
            add_in(&mut s, "dependency", chunk);
            let sql = s.sql("SELECT booking FROM booking_dependencies", "");
            for r in s.bind(&sql).fetch_all(&self.pool).await? {
                out.push(r.try_get::<String, _>(0)?);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Every booking that holds a site, with the resources it reserves.
    pub async fn live_bookings(&self) -> Result<Vec<(Booking, Resources)>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, cpu_millis, memory_mib, storage_gib FROM bookings \
             WHERE state IN ('placed','provisioning','active','updating','degraded') \
             AND environment = 'prod' ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let b = booking(r)?;
                // The resources follow the booking's columns.
                let at = COLUMN_COUNT;
                let res = Resources {
                    cpu_millis: r.try_get::<i64, _>(at)?.max(0) as u64,
                    memory_mib: r.try_get::<i64, _>(at + 1)?.max(0) as u64,
                    storage_gib: r.try_get::<i64, _>(at + 2)?.max(0) as u64,
                };
                Ok((b, res))
            })
            .collect()
    }

    /// Records compliance verdicts; only changes are written and audited.
    pub async fn set_compliance(
        &self,
        actor: &str,
        verdicts: &[(String, Compliance)],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let mut w = self.begin_write().await?;
        let mut changed = 0;
        for (id, c) in verdicts {
            let Some(row) = sqlx::query("SELECT compliance FROM bookings WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *w.tx)
                .await?
            else {
                continue;
            };
            let before: Option<Compliance> = row
                .try_get::<Option<String>, _>(0)?
                .as_deref()
                .map(from_json)
                .transpose()?;
            let was = before.as_ref();
            let same = was.is_some_and(|w| {
                w.compliant == c.compliant
                    && w.reasons == c.reasons
                    && w.proposed_site == c.proposed_site
            }) || (was.is_none() && c.compliant);
            if same {
                continue;
            }
            sqlx::query("UPDATE bookings SET compliance = $2, compliant = $3, updated_at = $4 WHERE id = $1")
                .bind(id)
                .bind(to_json(c)?)
                .bind(i64::from(c.compliant))
                .bind(ts(&now))
                .execute(&mut *w.tx)
                .await?;
            w.audit(
                Change {
                    actor: actor.into(),
                    action: if c.compliant {
                        "booking.compliance.restore"
                    } else {
                        "booking.compliance.flag"
                    }
                    .into(),
                    object: format!("booking/{id}"),
                    before: was.map(|w| serde_json::to_value(w).unwrap_or_default()),
                    after: Some(serde_json::to_value(c).unwrap_or_default()),
                },
                now,
            )
            .await?;
            changed += 1;
        }
        w.commit().await?;
        Ok(changed)
    }

    /// Number of bookings by state, and of non-compliant ones.
    pub async fn booking_counts(&self) -> Result<(Vec<(BookingState, i64)>, i64)> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM bookings GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let s: String = r.try_get(0)?;
            if let Some(st) = BookingState::parse(&s) {
                out.push((st, r.try_get::<i64, _>(1)?));
            }
        }
        let nc: i64 = sqlx::query("SELECT COUNT(*) FROM bookings WHERE compliant = 0")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok((out, nc))
    }
}

/// Ids bound per `IN (…)` list: below every backend's limit of bound parameters.
pub(crate) const IN_CHUNK: usize = 500;

pub(crate) fn add_in(s: &mut Select, col: &str, items: &[String]) {
    add_in_sub(s, &format!("{col} IN ("), items);
}

/// Adds `head $1, $2, …)` (closing one more paren per `(` in `head` beyond the first).
fn add_in_sub(s: &mut Select, head: &str, items: &[String]) {
    if items.is_empty() {
        s.and("1 = {}", Arg::Int(0));
        return;
    }
    s.and_many(head, items.iter().map(|i| Arg::Text(i.clone())).collect());
}

#[cfg(test)]
mod tests {
    use verbund_domain::booking::BookingState;

    #[test]
    fn holding_lists_the_states_that_hold_capacity() {
        let states: Vec<String> = BookingState::ALL
            .into_iter()
            .filter(|s| s.holds_capacity())
            .map(|s| format!("'{s}'"))
            .collect();
        assert_eq!(super::HOLDING, format!("({})", states.join(",")));
    }
}
