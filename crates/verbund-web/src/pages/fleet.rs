//! The fleet, for operators: sites with health, their last preflight (a failed one keeps
//! new bookings off the site), capacity, certifications and their expiry, a map of
//! Germany with the sites, and booking states per site and offering.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use verbund_api::routes::fleet::{self, Fleet};
use verbund_domain::preflight::{PreflightVerdict, SitePreflight};

use super::explain::Directory;
use super::state_label;
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
}

fn counts(m: &std::collections::BTreeMap<String, i64>, lang: crate::i18n::Lang) -> String {
    m.iter()
        .map(|(k, n)| format!("{n} {}", state_label(lang, k)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn versions(m: &std::collections::BTreeMap<String, i64>) -> String {
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
    let dir = match Directory::load(&state.api.store).await {
        Ok(d) => d,
        Err(e) => return api_error(&v, &verbund_api::ApiError::Internal(e.to_string()), "/"),
    };
    let lang = v.lang;
    let t = lang.texts();
    let today = state.api.now().date_naive();
    let mut pins = Vec::new();
    let mut warnings = 0;
    let sites = f
        .sites
        .iter()
        .map(|fs| {
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
        },
    )
}
