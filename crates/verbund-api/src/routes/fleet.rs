//! `/fleet`: what runs where, aggregated per site, per offering and per organisation.
//!
//! The view answers an operator's first questions at a glance: which sites are silent
//! or unhealthy, which failed their preflight (and take no new bookings), how many
//! bookings are in which state, and which versions really run.
//! Each caller sees the part of the fleet it may see: the federation's admins and
//! auditors everything, a provider's operators their own sites, an organisation's
//! people their own bookings (and the sites those run on).

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use verbund_domain::capacity::{self, SiteOutlook};
use verbund_domain::page::PageRequest;
use verbund_domain::preflight::SitePreflight;
use verbund_domain::report::{FreeCapacity, SiteHealth};
use verbund_domain::site_history::{HealthTurn, HistoryDays, SiteHistory, MAX_TURNS};
use verbund_policy::authz::{Act, Target};
use verbund_store::{FleetScope, SiteFilter};

use crate::auth::Caller;
use crate::extract::ApiQuery;
use crate::problem::{ApiError, ApiResult};
use crate::routes::bookings::{visible_scope, Visible};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/fleet", get(fleet))
        .route("/fleet/sites/{name}/history", get(site_history))
        .route("/fleet/capacity", get(capacity_outlook))
}

/// How many calendar months an outlook covers (the current one first): 1 to 24,
/// 12 by default.
pub type OutlookMonths = verbund_domain::bounded::Bounded<1, 24, 12>;

/// The span of a capacity outlook.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutlookQuery {
    /// Calendar months ahead, the current one first (default 12, at most 24).
    #[param(value_type = Option<OutlookMonths>, inline)]
    pub months: Option<OutlookMonths>,
}

/// Every visible site's reserved capacity over the coming months.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CapacityOutlook {
    pub generated_at: DateTime<Utc>,
    pub sites: Vec<SiteOutlook>,
}

/// What each site reserves over the coming months: now, at every change its bookings'
/// capacity windows will make, and each month's fullest moment, against its capacity —
/// the same steps placement decides on. Per site, not per tenant: the federation and its
/// auditors see every site with its steps, a provider's operators their own sites; the
/// people of an organisation (who plan a campaign) every site's months only, not the
/// instants and sizes of other organisations' windows. Anyone else (a vendor, monitoring)
/// is refused.
#[utoipa::path(get, path = "/api/v1/fleet/capacity", operation_id = "read_capacity_outlook", tag = "fleet",
    params(OutlookQuery),
    responses((status = 200, body = CapacityOutlook),
        (status = 400, body = crate::problem::Problem), (status = 401, body = crate::problem::Problem),
        (status = 403, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn capacity_outlook(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<OutlookQuery>,
) -> ApiResult<Json<CapacityOutlook>> {
    let now = state.now();
    let (provider, months_only) = match visible_scope(&caller) {
        Visible::Provider(p) => (Some(p), false),
        Visible::All => (None, false),
        Visible::Organisations(scope) if scope.is_empty() => {
            return Err(ApiError::Forbidden(
                "the capacity outlook is for the federation, operators and organisations".into(),
            ))
        }
        Visible::Organisations(_) => (None, true),
    };
    let months = q.months.unwrap_or_default().get();
    let sites = state
        .store
        .site_usage()
        .await?
        .into_iter()
        .filter(|u| provider.as_ref().is_none_or(|p| &u.site.spec.provider == p))
        .map(|u| {
            let o = capacity::outlook(
                &u.site.spec.name,
                &u.site.spec.provider,
                u.site.spec.capacity,
                u.used,
                &u.ahead.timeline,
                now,
                months,
            );
            if months_only {
                o.months_only()
            } else {
                o
            }
        })
        .collect();
    Ok(Json(CapacityOutlook {
        generated_at: now,
        sites,
    }))
}

/// The fleet as its caller may see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Fleet {
    pub generated_at: DateTime<Utc>,
    /// Bookings by state, over everything below.
    pub bookings: BTreeMap<String, i64>,
    /// Sites that have not reported within their interval (health `unknown`).
    pub stale_sites: Vec<String>,
    pub sites: Vec<FleetSite>,
    pub offerings: Vec<FleetOffering>,
    pub organisations: Vec<FleetOrganisation>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FleetSite {
    pub site: String,
    /// `unknown` when the site never reported or fell silent.
    pub health: SiteHealth,
    /// Reported by `verbund simulate`, not by a real cluster.
    pub simulated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported_at: Option<DateTime<Utc>>,
    /// Seconds since the last report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_lag_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free: Option<FreeCapacity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The site's last `verbund agent preflight`; `null` when it never reported one. A
    /// site whose last preflight failed gets no new bookings.
    pub preflight: Option<SitePreflight>,
    /// Bookings by state.
    pub bookings: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FleetOffering {
    pub offering: String,
    /// Bookings by state.
    pub bookings: BTreeMap<String, i64>,
    /// Bookings by the version they should run (those that hold a site).
    pub desired_versions: BTreeMap<String, i64>,
    /// Bookings by the version their sites report running.
    pub versions_in_use: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FleetOrganisation {
    pub organisation: String,
    /// Bookings by state.
    pub bookings: BTreeMap<String, i64>,
}

fn add(map: &mut BTreeMap<String, i64>, key: &str, n: i64) {
    *map.entry(key.to_string()).or_default() += n;
}

/// The fleet: sites with health, bookings by state per site, offering and organisation.
#[utoipa::path(get, path = "/api/v1/fleet", operation_id = "read_fleet", tag = "fleet",
    responses((status = 200, body = Fleet)), security(("bearer" = [])))]
pub async fn fleet(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Fleet>> {
    let now = state.now();
    let mut scope = FleetScope::default();
    // Sites listed even without bookings: all for the federation, the provider's own.
    let mut listed: Option<Option<String>> = None;
    match visible_scope(&caller) {
        Visible::All => listed = Some(None),
        Visible::Organisations(orgs) => {
            scope.organisations = Some(state.store.scope_members(&orgs).await?.to_vec());
        }
        Visible::Provider(provider) => {
            let sites = all_sites(&state, Some(provider.clone())).await?;
            scope.sites = Some(sites.into_iter().collect());
            listed = Some(Some(provider));
        }
    }
    let (counts, statuses, preflights) = tokio::try_join!(
        state.store.fleet_counts(&scope),
        state.store.site_statuses(),
        state.store.site_preflights()
    )?;

    let mut sites: BTreeMap<String, FleetSite> = BTreeMap::new();
    let blank = |site: &str| FleetSite {
        site: site.to_string(),
        health: SiteHealth::Unknown,
        simulated: false,
        reported_at: None,
        report_lag_seconds: None,
        interval_seconds: None,
        kubernetes_version: None,
        free: None,
        message: None,
        preflight: None,
        bookings: BTreeMap::new(),
    };
    if let Some(provider) = listed {
        for s in all_sites(&state, provider).await? {
            sites.insert(s.clone(), blank(&s));
        }
    }
    let mut totals = BTreeMap::new();
    for (site, _, st, _, n) in &counts.bookings {
        add(&mut totals, st, *n);
        if site.is_empty() {
            continue; // not placed (requested, rejected): counted, but on no site
        }
        add(
            &mut sites
                .entry(site.clone())
                .or_insert_with(|| blank(site))
                .bookings,
            st,
            *n,
        );
    }
    for s in statuses {
        if let Some(entry) = sites.get_mut(&s.site) {
            entry.health = s.health_at(now);
            entry.simulated = s.simulated;
            entry.reported_at = Some(s.reported_at);
            entry.report_lag_seconds = Some(s.lag_seconds(now));
            entry.interval_seconds = Some(s.interval_seconds);
            entry.kubernetes_version = Some(s.kubernetes_version.clone());
            entry.free = Some(s.free);
            entry.message = s.message.clone();
        }
    }
    for p in preflights {
        if let Some(entry) = sites.get_mut(&p.site) {
            entry.preflight = Some(p);
        }
    }
    let stale_sites = sites
        .values()
        .filter(|s| s.health == SiteHealth::Unknown)
        .map(|s| s.site.clone())
        .collect();

    let mut offerings: BTreeMap<String, FleetOffering> = BTreeMap::new();
    let delivered: BTreeSet<&str> = verbund_domain::booking::BookingState::ALL
        .iter()
        .filter(|s| s.is_delivered())
        .map(|s| s.as_str())
        .collect();
    for (_, name, st, version, n) in &counts.bookings {
        let o = offering_entry(&mut offerings, name);
        add(&mut o.bookings, st, *n);
        if !version.is_empty() && delivered.contains(st.as_str()) {
            add(&mut o.desired_versions, version, *n);
        }
    }
    for (name, version, n) in &counts.applied {
        let o = offering_entry(&mut offerings, name);
        let version = if version.is_empty() { "none" } else { version };
        add(&mut o.versions_in_use, version, *n);
    }

    let mut organisations: BTreeMap<String, FleetOrganisation> = BTreeMap::new();
    for (org, st, n) in &counts.by_organisation {
        add(
            &mut organisations
                .entry(org.clone())
                .or_insert_with(|| FleetOrganisation {
                    organisation: org.clone(),
                    bookings: BTreeMap::new(),
                })
                .bookings,
            st,
            *n,
        );
    }

    Ok(Json(Fleet {
        generated_at: now,
        bookings: totals,
        stale_sites,
        sites: sites.into_values().collect(),
        offerings: offerings.into_values().collect(),
        organisations: organisations.into_values().collect(),
    }))
}

/// The window of a site's history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// How many days back, up to now (default 30, at most 366).
    #[param(value_type = Option<HistoryDays>, inline)]
    pub days: Option<HistoryDays>,
}

/// A site's health over the last days: spans of one health each (for a chart) and the
/// turns the audit trail recorded (first report, a changed health, silence, return).
/// For the federation, auditors and the site's own provider.
#[utoipa::path(get, path = "/api/v1/fleet/sites/{name}/history", operation_id = "read_site_history", tag = "fleet",
    params(("name" = String, Path, description = "The site's name."), HistoryQuery),
    responses((status = 200, body = SiteHistory),
        (status = 400, body = crate::problem::Problem), (status = 401, body = crate::problem::Problem),
        (status = 403, body = crate::problem::Problem), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn site_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<SiteHistory>> {
    let site = state.store.get_site(&name).await?;
    caller.require(Act::Read, &history_target(&site.spec.provider))?;
    let until = state.now();
    let from = until - chrono::Duration::days(i64::from(q.days.unwrap_or_default().get()));
    let (before, events) = state
        .store
        .site_health_events(&name, from, MAX_TURNS + 1)
        .await?;
    let complete = events.len() <= MAX_TURNS as usize;
    let turns: Vec<HealthTurn> = events
        .iter()
        .skip(events.len().saturating_sub(MAX_TURNS as usize))
        .filter_map(HealthTurn::from_event)
        .collect();
    let before = before.as_ref().and_then(HealthTurn::from_event);
    Ok(Json(SiteHistory::new(
        &name,
        before.as_ref(),
        turns,
        from,
        until,
        complete,
    )))
}

/// What reading a site's health history is decided on (by the role policies, Cedar):
/// the federation and auditors read every site's, a provider's operators their own
/// sites'. Organisations see the current health of the sites they use (`GET /fleet`),
/// not a site's past: that is the operators' and the federation's record. The route and
/// the portal's links ask with this one target.
pub fn history_target(provider: &str) -> Target {
    Target::new("site-history").provider(provider.to_owned())
}

/// The names of every site (of `provider`, if given).
async fn all_sites(state: &AppState, provider: Option<String>) -> ApiResult<Vec<String>> {
    let filter = SiteFilter { provider };
    let mut names = Vec::new();
    let mut page = PageRequest {
        limit: Some(1000),
        after: None,
    };
    loop {
        let p = state.store.list_sites(&filter, &page).await?;
        names.extend(p.items.into_iter().map(|s| s.spec.name));
        match p.next {
            Some(next) => page.after = Some(next),
            None => return Ok(names),
        }
    }
}

/// The fleet's entry of one offering, created empty on first use.
fn offering_entry<'a>(
    map: &'a mut BTreeMap<String, FleetOffering>,
    name: &str,
) -> &'a mut FleetOffering {
    map.entry(name.to_string())
        .or_insert_with(|| FleetOffering {
            offering: name.to_string(),
            bookings: BTreeMap::new(),
            desired_versions: BTreeMap::new(),
            versions_in_use: BTreeMap::new(),
        })
}
