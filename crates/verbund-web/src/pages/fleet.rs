//! The fleet, for operators: sites with health, their last preflight (a failed one keeps
//! new bookings off the site), capacity, certifications and their expiry, a map of
//! Germany with the sites, and booking states per site and offering.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use std::collections::BTreeMap;
use verbund_api::extract::ApiQuery;
use verbund_api::routes::fleet::{self, CapacityOutlook, Fleet, HistoryQuery, OutlookQuery};

use verbund_api::routes::fleet::history_target;
use verbund_domain::booking::BookingState;
use verbund_domain::preflight::{PreflightVerdict, SitePreflight};
use verbund_domain::report::SiteHealth;
use verbund_domain::site_history::HistoryDays;
use verbund_policy::authz::Act;

use super::explain::Directory;
use super::state_label;
use crate::chart::{
    month_grid, stacked_bars, timeline, MonthGrid, Part, StackedBars, Stretch, Timeline,
};
use crate::error::api_error;
use crate::map::{self, Pin};
use crate::session::Viewer;
use crate::view::{badge, date, local_time, render, status_label, Chrome};
use crate::WebState;

/// Certificates that expire within this many days are flagged.
const EXPIRY_WARNING_DAYS: i64 = 60;

pub struct SiteRow {
    pub name: String,
    pub title: String,
    pub location: String,
    pub operator: String,
    pub health: String,
    pub health_label: String,
    pub health_badge: &'static str,
    pub simulated: bool,
    pub reported: String,
    pub kubernetes: String,
    pub capacity: String,
    pub free: String,
    /// (name, valid until, "ok" | "expiring" | "expired")
    pub certifications: Vec<(String, String, &'static str)>,
    pub preflight: PreflightCell,
    pub bookings: String,
    /// Whether the viewer may open the site's history (`/fleet/sites/{name}`).
    pub history: bool,
}

/// Booking states per site: the stacked bars and the same numbers as a table.
pub struct StateChart {
    pub bars: StackedBars,
    /// The states that occur, in the life cycle's order: (key, label).
    pub states: Vec<(String, String)>,
    /// Per site: its name, the count per state (in `states`' order) and the total.
    pub rows: Vec<(String, Vec<i64>, i64)>,
}

/// The chart of `sites` (title, bookings by state), states in the life cycle's order.
fn state_chart(sites: &[(String, &BTreeMap<String, i64>)], lang: crate::i18n::Lang) -> StateChart {
    let states: Vec<(String, String)> = BookingState::ALL
        .iter()
        .map(|s| s.as_str())
        .filter(|s| sites.iter().any(|(_, m)| m.get(*s).is_some_and(|n| *n > 0)))
        .map(|s| (s.to_string(), state_label(lang, s).to_string()))
        .collect();
    let rows: Vec<(String, Vec<i64>, i64)> = sites
        .iter()
        .map(|(title, m)| {
            let counts: Vec<i64> = states
                .iter()
                .map(|(k, _)| m.get(k).copied().unwrap_or(0))
                .collect();
            let total = counts.iter().sum();
            (title.clone(), counts, total)
        })
        .collect();
    let input: Vec<(String, Vec<Part>)> = rows
        .iter()
        .map(|(title, counts, _)| {
            let parts = states
                .iter()
                .zip(counts)
                .map(|((k, label), n)| (k.clone(), label.clone(), *n))
                .collect();
            (title.clone(), parts)
        })
        .collect();
    StateChart {
        bars: stacked_bars(&input),
        states,
        rows,
    }
}

/// A site's last preflight, as the fleet table shows it.
pub struct PreflightCell {
    /// `pass`, `warn`, `fail`, or `none` when the site never reported one.
    pub verdict: &'static str,
    pub label: &'static str,
    pub badge: &'static str,
    /// When it was reported, in the reader's local time.
    pub reported: String,
    /// The checks that did not pass: (name, reason).
    pub issues: Vec<(String, String)>,
}

fn preflight_cell(p: Option<&SitePreflight>, lang: crate::i18n::Lang) -> PreflightCell {
    let t = lang.texts();
    let Some(p) = p else {
        return PreflightCell {
            verdict: "none",
            label: t.preflight_none,
            badge: "info",
            reported: String::new(),
            issues: Vec::new(),
        };
    };
    let (label, badge) = match p.verdict {
        PreflightVerdict::Pass => (t.preflight_pass, "success"),
        PreflightVerdict::Warn => (t.preflight_warn, "warning"),
        PreflightVerdict::Fail => (t.preflight_fail, "danger"),
    };
    PreflightCell {
        verdict: p.verdict.as_str(),
        label,
        badge,
        reported: local_time(p.reported_at, lang),
        issues: p
            .checks
            .iter()
            .filter(|c| c.verdict != PreflightVerdict::Pass)
            .map(|c| (c.name.clone(), c.reason.clone()))
            .collect(),
    }
}

pub struct OfferingRow {
    pub name: String,
    pub bookings: String,
    pub desired: String,
    pub in_use: String,
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    c: Chrome,
    totals: Vec<(String, i64)>,
    stale: Vec<String>,
    sites: Vec<SiteRow>,
    offerings: Vec<OfferingRow>,
    pins: Vec<Pin>,
    outline: String,
    width: String,
    height: String,
    warnings: usize,
    generated: String,
    chart: StateChart,
    outlook: OutlookChart,
}

/// The capacity outlook: a row of months per site, coloured by how full each is at its
/// fullest moment, the same numbers as a table, and the sites that fill up.
pub struct OutlookChart {
    pub grid: MonthGrid,
    /// The months by their full names ("März 2027").
    pub months: Vec<String>,
    /// Per site: its title and each month's share in per cent.
    pub rows: Vec<(String, Vec<u32>)>,
    /// The sites that will be full, with the first month they are.
    pub full: Vec<(String, String)>,
    /// The colour steps for the legend: (class key, label).
    pub legend: Vec<(&'static str, &'static str)>,
}

const MONTHS_DE: [&str; 12] = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A month (`2027-03`) by its full name and its short one: "März 2027", "Mär".
fn month_names(month: &str, lang: crate::i18n::Lang) -> (String, String) {
    let (year, m) = month.split_once('-').unwrap_or((month, "1"));
    let index = m.parse::<usize>().unwrap_or(1).clamp(1, 12) - 1;
    let names = match lang {
        crate::i18n::Lang::De => MONTHS_DE,
        crate::i18n::Lang::En => MONTHS_EN,
    };
    let name = names.get(index).copied().unwrap_or_default();
    (format!("{name} {year}"), name.chars().take(3).collect())
}

/// The outlook of every site in `o`, titled as the directory names them.
fn outlook_chart(o: &CapacityOutlook, dir: &Directory, lang: crate::i18n::Lang) -> OutlookChart {
    let t = lang.texts();
    let first = o.sites.first();
    let names: Vec<(String, String)> = first
        .map(|s| {
            s.months
                .iter()
                .map(|m| month_names(&m.month, lang))
                .collect()
        })
        .unwrap_or_default();
    let mut rows = Vec::new();
    let mut grid_rows = Vec::new();
    let mut full = Vec::new();
    for s in &o.sites {
        // By its name, as the chart of booking states above names it.
        let title = dir
            .sites
            .get(&s.site)
            .map_or_else(|| s.site.clone(), |d| d.spec.display_name.clone());
        let cells: Vec<(u32, String)> = s
            .months
            .iter()
            .zip(&names)
            .map(|(m, (name, _))| {
                let title = format!(
                    "{title}, {name}: {} % ({} {} {} vCPU, {} {} {} GiB)",
                    m.percent,
                    m.peak.cpu_millis.div_ceil(1000),
                    t.of,
                    s.capacity.cpu_millis / 1000,
                    m.peak.memory_mib.div_ceil(1024),
                    t.of,
                    s.capacity.memory_mib / 1024
                );
                (m.percent, title)
            })
            .collect();
        if let Some((_, (name, _))) = s.months.iter().zip(&names).find(|(m, _)| m.percent >= 100) {
            full.push((title.clone(), name.clone()));
        }
        rows.push((title.clone(), s.months.iter().map(|m| m.percent).collect()));
        grid_rows.push((title, cells));
    }
    let short: Vec<String> = names.iter().map(|(_, s)| s.clone()).collect();
    OutlookChart {
        grid: month_grid(&short, &grid_rows),
        months: names.into_iter().map(|(n, _)| n).collect(),
        rows,
        full,
        legend: vec![
            ("load-low", t.load_low),
            ("load-mid", t.load_mid),
            ("load-high", t.load_high),
            ("load-full", t.load_full),
        ],
    }
}

fn counts(m: &BTreeMap<String, i64>, lang: crate::i18n::Lang) -> String {
    m.iter()
        .map(|(k, n)| format!("{n} {}", state_label(lang, k)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn versions(m: &BTreeMap<String, i64>) -> String {
    m.iter()
        .map(|(k, n)| format!("{k} ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GET /fleet`.
pub async fn page(State(state): State<WebState>, v: Viewer) -> Response {
    let f: Fleet = match fleet::fleet(State(state.api.clone()), v.caller.clone()).await {
        Ok(Json(f)) => f,
        Err(e) => return api_error(&v, &e, "/"),
    };
    let outlook = match fleet::capacity_outlook(
        State(state.api.clone()),
        v.caller.clone(),
        ApiQuery(OutlookQuery { months: None }),
    )
    .await
    {
        Ok(Json(o)) => o,
        // A vendor's or monitoring account's fleet has no sites, and no outlook.
        Err(verbund_api::ApiError::Forbidden(_)) => CapacityOutlook {
            generated_at: f.generated_at,
            sites: Vec::new(),
        },
        Err(e) => return api_error(&v, &e, "/"),
    };
    let dir = match Directory::load(&state.api.store).await {
        Ok(d) => d,
        Err(e) => return api_error(&v, &verbund_api::ApiError::Internal(e.to_string()), "/"),
    };
    let lang = v.lang;
    let t = lang.texts();
    let today = state.api.now().date_naive();
    // The certifications placement reads: the live credentials', and those the
    // federation stated while its trust list counts them.
    let store = &state.api.store;
    let (attested, count_stated) =
        match tokio::try_join!(store.attested_certifications(), store.trust_list()) {
            Ok((a, t)) => (a, t.list.count_stated_certifications),
            Err(e) => return api_error(&v, &verbund_api::ApiError::Internal(e.to_string()), "/"),
        };
    let mut pins = Vec::new();
    let mut warnings = 0;
    // Whose history links to show: one Cedar evaluation for every site of the page.
    let targets: Vec<_> = f
        .sites
        .iter()
        .map(|fs| {
            let provider = dir.sites.get(&fs.site).map(|s| s.spec.provider.as_str());
            history_target(provider.unwrap_or_default())
        })
        .collect();
    let readable = v.caller.may_each(Act::Read, &targets);
    let sites: Vec<SiteRow> = f
        .sites
        .iter()
        .zip(readable)
        .map(|(fs, history)| {
            let s = dir.sites.get(&fs.site);
            let health = fs.health.as_str().to_string();
            if let Some(s) = s {
                if let (Some(lat), Some(lon)) =
                    (s.spec.location.latitude, s.spec.location.longitude)
                {
                    let (x, y) = map::project(lon, lat);
                    pins.push(Pin {
                        x,
                        y,
                        label: format!("{} ({})", s.spec.display_name, status_label(lang, &health)),
                        health: health.clone(),
                    });
                }
            }
            let certifications = s.map_or_else(Vec::new, |s| {
                s.spec
                    .certifications
                    .iter()
                    .filter(|_| count_stated)
                    .chain(attested.get(&s.spec.name).into_iter().flatten())
                    .map(|c| {
                        let left = (c.valid_until - today).num_days();
                        let status = if left < 0 {
                            "expired"
                        } else if left <= EXPIRY_WARNING_DAYS {
                            "expiring"
                        } else {
                            "ok"
                        };
                        if status != "ok" {
                            warnings += 1;
                        }
                        let name = match &c.level {
                            Some(l) => format!("{} ({l})", c.scheme),
                            None => c.scheme.clone(),
                        };
                        (name, date(c.valid_until, lang), status)
                    })
                    .collect()
            });
            SiteRow {
                name: fs.site.clone(),
                title: s.map_or_else(|| fs.site.clone(), |s| s.spec.display_name.clone()),
                location: s.map_or_else(String::new, |s| {
                    format!("{}, {}", s.spec.location.city, s.spec.location.region)
                }),
                operator: s
                    .and_then(|s| dir.providers.get(&s.spec.provider))
                    .map_or_else(String::new, |p| p.spec.display_name.clone()),
                health_badge: badge(&health),
                health_label: status_label(lang, &health).to_string(),
                health,
                simulated: fs.simulated,
                reported: fs
                    .reported_at
                    .map_or_else(|| "–".into(), |r| local_time(r, lang)),
                kubernetes: fs
                    .kubernetes_version
                    .clone()
                    .or_else(|| s.map(|s| s.spec.kubernetes_version.clone()))
                    .unwrap_or_default(),
                capacity: s.map_or_else(String::new, |s| {
                    format!(
                        "{} vCPU, {} GiB",
                        s.spec.capacity.cpu_millis / 1000,
                        s.spec.capacity.memory_mib / 1024
                    )
                }),
                free: fs.free.as_ref().map_or_else(
                    || "–".into(),
                    |fr| {
                        format!(
                            "{} vCPU, {} GiB",
                            fr.cpu_millis / 1000,
                            fr.memory_mib / 1024
                        )
                    },
                ),
                certifications,
                preflight: preflight_cell(fs.preflight.as_ref(), lang),
                bookings: counts(&fs.bookings, lang),
                history: s.is_some() && history,
            }
        })
        .collect();
    let offerings = f
        .offerings
        .iter()
        .map(|o| OfferingRow {
            name: o.offering.clone(),
            bookings: counts(&o.bookings, lang),
            desired: versions(&o.desired_versions),
            in_use: versions(&o.versions_in_use),
        })
        .collect();
    let chart = state_chart(
        &sites
            .iter()
            .zip(&f.sites)
            .map(|(row, fs)| (row.title.clone(), &fs.bookings))
            .collect::<Vec<_>>(),
        lang,
    );
    render(
        StatusCode::OK,
        &FleetPage {
            c: Chrome::for_viewer(&v, t.nav_fleet, "fleet", "/fleet"),
            totals: f
                .bookings
                .iter()
                .map(|(k, n)| (state_label(lang, k).to_string(), *n))
                .collect(),
            stale: f.stale_sites.clone(),
            sites,
            offerings,
            pins,
            outline: map::outline(),
            width: format!("{:.0}", map::WIDTH),
            height: format!("{:.0}", map::HEIGHT),
            warnings,
            generated: local_time(f.generated_at, lang),
            chart,
            outlook: outlook_chart(&outlook, &dir, lang),
        },
    )
}

/// The history windows a site's page offers, in days.
const HISTORY_WINDOWS: [u32; 3] = [7, 30, 90];

/// `?days=`, read leniently: anything but an offered window shows the default one.
#[derive(serde::Deserialize)]
pub struct HistoryParams {
    days: Option<String>,
}

/// One stretch of the history as the table shows it.
pub struct SpanRow {
    pub from: String,
    pub until: String,
    pub health: String,
    pub label: String,
    pub badge: &'static str,
    pub duration: String,
}

/// One turn as the table shows it.
pub struct TurnRow {
    pub at: String,
    pub kind: &'static str,
    pub label: String,
    pub badge: &'static str,
    pub message: String,
}

#[derive(Template)]
#[template(path = "site.html")]
struct SitePage {
    c: Chrome,
    name: String,
    title: String,
    location: String,
    operator: String,
    days: u32,
    windows: Vec<u32>,
    from: String,
    until: String,
    timeline: Timeline,
    /// The health keys that occur, with their labels, for the legend.
    legend: Vec<(String, String)>,
    spans: Vec<SpanRow>,
    turns: Vec<TurnRow>,
    /// Share of the window the site reported itself healthy, e.g. "97,3 %".
    healthy_share: String,
}

/// A duration in words a reader takes in at once: days and hours, or hours and minutes.
fn duration_words(d: chrono::Duration, lang: crate::i18n::Lang) -> String {
    let t = lang.texts();
    let minutes = d.num_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    if days > 0 {
        format!("{days} {} {hours} {}", t.unit_days, t.unit_hours)
    } else if hours > 0 {
        format!("{hours} {} {mins} {}", t.unit_hours, t.unit_minutes)
    } else if mins > 0 {
        format!("{mins} {}", t.unit_minutes)
    } else {
        format!("< 1 {}", t.unit_minutes)
    }
}

/// `GET /fleet/sites/{name}`: a site's health over the last days, as a timeline and as
/// tables, for the federation and the site's provider.
pub async fn site(
    State(state): State<WebState>,
    v: Viewer,
    axum::extract::Path(name): axum::extract::Path<String>,
    Query(q): Query<HistoryParams>,
) -> Response {
    let lang = v.lang;
    let t = lang.texts();
    let days = q
        .days
        .and_then(|d| d.parse::<u32>().ok())
        .filter(|d| HISTORY_WINDOWS.contains(d))
        .unwrap_or(verbund_domain::site_history::DEFAULT_HISTORY_DAYS);
    let query = HistoryQuery {
        days: HistoryDays::try_from(days).ok(),
    };
    let h = match fleet::site_history(
        State(state.api.clone()),
        v.caller.clone(),
        axum::extract::Path(name.clone()),
        ApiQuery(query),
    )
    .await
    {
        Ok(Json(h)) => h,
        Err(e) => return api_error(&v, &e, "/fleet"),
    };
    // The history's route found the site; only it and its provider are read here, not
    // the whole directory.
    let store = &state.api.store;
    let site = store.get_site(&name).await.ok();
    let provider = match &site {
        Some(s) => store.get_provider(&s.spec.provider).await.ok(),
        None => None,
    };
    let s = site.as_ref();
    let stretches: Vec<Stretch> = h
        .spans
        .iter()
        .map(|sp| {
            let health = sp.health.as_str();
            let title = format!(
                "{}: {} – {}",
                status_label(lang, health),
                local_time(sp.from, lang),
                local_time(sp.until, lang)
            );
            (sp.from, sp.until, health.to_string(), title)
        })
        .collect();
    let timeline = timeline(h.from, h.until, &stretches, 4, |at| {
        date(verbund_domain::rollout::german_local(at).date(), lang)
    });
    let legend = SiteHealth::ALL
        .iter()
        .map(|x| x.as_str())
        .filter(|x| h.spans.iter().any(|sp| sp.health.as_str() == *x))
        .map(|x| (x.to_string(), status_label(lang, x).to_string()))
        .collect();
    let window = (h.until - h.from).num_milliseconds().max(1) as f64;
    let healthy: i64 = h
        .spans
        .iter()
        .filter(|sp| sp.health == SiteHealth::Healthy)
        .map(|sp| (sp.until - sp.from).num_milliseconds())
        .sum();
    let share = healthy as f64 / window * 100.0;
    let healthy_share = match lang {
        crate::i18n::Lang::De => format!("{share:.1} %").replace('.', ","),
        crate::i18n::Lang::En => format!("{share:.1} %"),
    };
    let spans = h
        .spans
        .iter()
        .rev()
        .map(|sp| {
            let health = sp.health.as_str();
            SpanRow {
                from: local_time(sp.from, lang),
                until: local_time(sp.until, lang),
                health: health.to_string(),
                label: status_label(lang, health).to_string(),
                badge: badge(health),
                duration: duration_words(sp.until - sp.from, lang),
            }
        })
        .collect();
    let turns = h
        .turns
        .iter()
        .rev()
        .map(|tu| {
            let health = tu.health.as_str();
            TurnRow {
                at: local_time(tu.at, lang),
                kind: match tu.kind.as_str() {
                    "reporting" => t.turn_reporting,
                    "silent" => t.turn_silent,
                    _ => t.turn_health,
                },
                label: status_label(lang, health).to_string(),
                badge: badge(health),
                message: tu.message.clone().unwrap_or_default(),
            }
        })
        .collect();
    let title = s.map_or_else(|| name.clone(), |s| s.spec.display_name.clone());
    render(
        StatusCode::OK,
        &SitePage {
            c: Chrome::for_viewer(&v, title.clone(), "fleet", &format!("/fleet/sites/{name}")),
            location: s.map_or_else(String::new, |s| {
                format!("{}, {}", s.spec.location.city, s.spec.location.region)
            }),
            operator: provider.map_or_else(String::new, |p| p.spec.display_name),
            name,
            title,
            days,
            windows: HISTORY_WINDOWS.to_vec(),
            from: local_time(h.from, lang),
            until: local_time(h.until, lang),
            timeline,
            legend,
            spans,
            turns,
            healthy_share,
        },
    )
}
