//! Rollouts: the list, one rollout with its stages, waves, sites and gate results, and
//! the controls (pause, resume, abort; retry or skip a site); starting one for an
//! offering's published version.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;
use verbund_api::extract::{ApiJson, ApiQuery};
use verbund_api::routes::offerings;
use verbund_api::routes::rollouts::{self, ItemQuery, RolloutQuery, RolloutRequest, SkipRequest};
use verbund_api::ApiError;
use verbund_domain::rollout::{ItemState, Rollout, RolloutItem, RolloutPolicy};
use verbund_policy::authz::{Act, Target};

use super::{done, expired, flash, outcome};
use crate::error::api_error;
use crate::session::Viewer;
use crate::view::{badge, local_time, render, status_label, Chrome};
use crate::WebState;

pub struct Row {
    pub id: String,
    pub offering: String,
    pub version: String,
    pub state: String,
    pub state_label: String,
    pub badge: &'static str,
    pub progress: u64,
    pub wave: String,
    pub created: String,
    pub created_by: String,
}

fn progress(r: &Rollout) -> u64 {
    let total: u64 = r.bookings.values().sum();
    let settled: u64 = r
        .bookings
        .iter()
        .filter(|(s, _)| {
            matches!(
                s,
                ItemState::Passed | ItemState::Failed | ItemState::RolledBack | ItemState::Skipped
            )
        })
        .map(|(_, n)| n)
        .sum();
    (settled * 100).checked_div(total).unwrap_or(100)
}

#[derive(Template)]
#[template(path = "rollouts.html")]
struct ListPage {
    c: Chrome,
    rows: Vec<Row>,
}

#[derive(Deserialize, Default)]
pub struct Done {
    done: Option<String>,
}

/// `GET /rollouts`.
pub async fn list(State(state): State<WebState>, v: Viewer) -> Response {
    let page = rollouts::list(
        State(state.api.clone()),
        v.caller.clone(),
        ApiQuery(RolloutQuery {
            offering: None,
            state: None,
            limit: Some(100),
            after: None,
        }),
    )
    .await;
    let items = match page {
        Ok(Json(p)) => p.items,
        Err(e) => return api_error(&v, &e, "/"),
    };
    let lang = v.lang;
    let rows = items
        .iter()
        .map(|r| Row {
            id: r.id.clone(),
            offering: r.offering.clone(),
            version: r.version.clone(),
            state: r.state.as_str().into(),
            state_label: status_label(lang, r.state.as_str()).into(),
            badge: badge(r.state.as_str()),
            progress: progress(r),
            wave: format!(
                "{} / {}",
                r.current_wave.min(r.waves.len() as u32),
                r.waves.len()
            ),
            created: local_time(r.created_at, lang),
            created_by: r.created_by.clone(),
        })
        .collect();
    render(
        StatusCode::OK,
        &ListPage {
            c: Chrome::for_viewer(&v, v.lang.texts().nav_rollouts, "rollouts", "/rollouts"),
            rows,
        },
    )
}

pub struct WaveRow {
    pub index: u32,
    pub stage: String,
    pub status: String,
    pub badge: &'static str,
    pub sites: String,
    pub bookings: String,
    pub current: bool,
}

pub struct SiteRow {
    pub site: String,
    pub test: String,
    pub test_badge: &'static str,
    pub bookings: String,
    pub may_control: bool,
}

pub struct Gate {
    pub booking: String,
    pub site: String,
    pub wave: u32,
    pub state: String,
    pub badge: &'static str,
    pub reason: String,
    pub reference: bool,
}

#[derive(Template)]
#[template(path = "rollout.html")]
struct RolloutPage {
    c: Chrome,
    r: Rollout,
    state: String,
    state_label: String,
    state_badge: &'static str,
    progress: u64,
    waves: Vec<WaveRow>,
    sites: Vec<SiteRow>,
    gates: Vec<Gate>,
    may_control: bool,
    created: String,
}

fn counts(c: &verbund_domain::rollout::Counts, lang: crate::i18n::Lang) -> String {
    c.iter()
        .map(|(s, n)| format!("{n} {}", status_label(lang, s.as_str())))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn vendor_of(state: &WebState, offering: &str) -> String {
    state
        .api
        .store
        .get_offering(offering)
        .await
        .map(|o| o.spec.vendor)
        .unwrap_or_default()
}

/// `GET /rollouts/{id}`.
pub async fn page(
    State(state): State<WebState>,
    v: Viewer,
    Path(id): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    let r = match rollouts::read(State(state.api.clone()), v.caller.clone(), Path(id.clone())).await
    {
        Ok(Json(r)) => r,
        Err(e) => return api_error(&v, &e, "/rollouts"),
    };
    let lang = v.lang;
    let vendor = vendor_of(&state, &r.offering).await;
    let may_control = v
        .caller
        .may(Act::Write, &Target::new("rollout").vendor(&vendor));
    // Gate results: the current wave's bookings, and every failure so far.
    let mut gates: Vec<RolloutItem> = Vec::new();
    for (wave, st) in [
        (Some(r.current_wave), None),
        (None, Some(ItemState::Failed)),
        (None, Some(ItemState::RolledBack)),
    ] {
        let got = rollouts::items(
            State(state.api.clone()),
            v.caller.clone(),
            Path(id.clone()),
            ApiQuery(ItemQuery {
                wave,
                site: None,
                state: st,
                limit: Some(200),
                after: None,
            }),
        )
        .await;
        if let Ok(Json(p)) = got {
            for i in p.items {
                if !gates.iter().any(|g| g.booking == i.booking) {
                    gates.push(i);
                }
            }
        }
    }
    let dir = super::explain::Directory::load(&state.api.store).await.ok();
    let sites = r
        .sites
        .iter()
        .map(|s| {
            let test = s.test.map_or("–", |t| t.as_str());
            // The same decision the API takes for a site's retry or skip.
            let provider = dir
                .as_ref()
                .and_then(|d| d.sites.get(&s.site))
                .map(|x| x.spec.provider.clone())
                .unwrap_or_default();
            let target = Target::new("rollout-site")
                .vendor(&vendor)
                .provider(&provider);
            SiteRow {
                site: s.site.clone(),
                test: status_label(lang, test).into(),
                test_badge: badge(test),
                bookings: counts(&s.bookings, lang),
                may_control: v.caller.may(Act::Write, &target),
            }
        })
        .collect();
    let page = RolloutPage {
        c: Chrome::for_viewer(
            &v,
            format!("Rollout {} {}", r.offering, r.version),
            "rollouts",
            &format!("/rollouts/{id}"),
        )
        .with_flash(flash(lang, q.done.as_deref())),
        state: r.state.as_str().into(),
        state_label: status_label(lang, r.state.as_str()).into(),
        state_badge: badge(r.state.as_str()),
        progress: progress(&r),
        waves: r
            .waves
            .iter()
            .map(|w| WaveRow {
                index: w.index,
                stage: status_label(lang, &format!("{:?}", w.stage).to_lowercase()).into(),
                badge: badge(match w.status.as_str() {
                    "done" => "passed",
                    s => s,
                }),
                status: status_label(lang, &w.status).into(),
                sites: w.sites.join(", "),
                bookings: counts(&w.bookings, lang),
                current: w.index == r.current_wave,
            })
            .collect(),
        sites,
        gates: gates
            .into_iter()
            .map(|i| Gate {
                booking: i.booking,
                site: i.site,
                wave: i.wave,
                state: status_label(lang, i.state.as_str()).into(),
                badge: badge(i.state.as_str()),
                reason: i.reason.unwrap_or_default(),
                reference: i.reference,
            })
            .collect(),
        may_control,
        created: local_time(r.created_at, lang),
        r,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct ControlForm {
    csrf: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /rollouts/{id}/{pause|resume|abort}`.
pub async fn control(
    State(state): State<WebState>,
    v: Viewer,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ControlForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return expired(&v);
    }
    let (s, c, p) = (State(state.api.clone()), v.caller.clone(), Path(id.clone()));
    let (result, code) = match action.as_str() {
        "pause" => (rollouts::pause(s, c, p).await, "pause"),
        "resume" => (rollouts::resume(s, c, p).await, "resume"),
        "abort" => (rollouts::abort(s, c, p).await, "abort"),
        _ => {
            return api_error(
                &v,
                &ApiError::NotFound(format!("no rollout action `{action}`")),
                &format!("/rollouts/{id}"),
            )
        }
    };
    outcome(&v, result, &format!("/rollouts/{id}"), code)
}

/// `POST /rollouts/{id}/sites/{site}/{retry|skip}`.
pub async fn site_control(
    State(state): State<WebState>,
    v: Viewer,
    Path((id, site, action)): Path<(String, String, String)>,
    Form(f): Form<ControlForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return expired(&v);
    }
    let (s, c, p) = (
        State(state.api.clone()),
        v.caller.clone(),
        Path((id.clone(), site)),
    );
    let (result, code) = match action.as_str() {
        "retry" => (rollouts::retry_site(s, c, p).await, "retry"),
        "skip" => (
            rollouts::skip_site(
                s,
                c,
                p,
                ApiJson(SkipRequest {
                    reason: f.reason.filter(|r| !r.trim().is_empty()),
                }),
            )
            .await,
            "skip",
        ),
        _ => {
            return api_error(
                &v,
                &ApiError::NotFound(format!("no site action `{action}`")),
                &format!("/rollouts/{id}"),
            )
        }
    };
    outcome(&v, result, &format!("/rollouts/{id}"), code)
}

#[derive(Deserialize)]
pub struct NewQuery {
    offering: Option<String>,
    /// The version to preselect (after publishing it in the portal).
    version: Option<String>,
    done: Option<String>,
}

/// One wave of a rollout's plan, as the start page shows it.
pub struct PlanWave {
    pub label: String,
    pub sites: String,
    pub bookings: usize,
}

/// What a rollout would do (the API's `POST /rollouts/plan`), before it starts.
pub struct PlanView {
    pub waves: Vec<PlanWave>,
    /// Production bookings it updates.
    pub bookings: usize,
    pub pinned: usize,
    pub excluded: usize,
    pub untested: String,
}

/// The plan of a rollout of `version` with `policy`, in words; the API's refusal as
/// text when it plans nothing.
async fn plan_view(
    state: &WebState,
    v: &Viewer,
    offering: &str,
    version: &str,
    policy: &RolloutPolicy,
) -> Result<PlanView, String> {
    let req = RolloutRequest {
        offering: offering.to_string(),
        version: version.to_string(),
        policy: policy.clone(),
    };
    let Json(plan) = rollouts::plan(State(state.api.clone()), v.caller.clone(), ApiJson(req))
        .await
        .map_err(|e| e.to_string())?;
    let dir = super::explain::Directory::load(&state.api.store).await.ok();
    let site = |s: &String| {
        dir.as_ref()
            .and_then(|d| d.sites.get(s))
            .map_or_else(|| s.clone(), |x| x.spec.display_name.clone())
    };
    let t = v.lang.texts();
    Ok(PlanView {
        waves: plan
            .waves
            .iter()
            .map(|w| PlanWave {
                label: format!(
                    "{} {} ({})",
                    t.wave,
                    w.index + 1,
                    status_label(v.lang, w.stage.as_str())
                ),
                sites: w.sites.iter().map(site).collect::<Vec<_>>().join(", "),
                bookings: w.items.len(),
            })
            .collect(),
        bookings: plan.bookings(),
        pinned: plan.pinned.len(),
        excluded: plan.excluded.len(),
        untested: plan
            .untested_sites
            .iter()
            .map(site)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

#[derive(Template)]
#[template(path = "rollout_new.html")]
struct NewPage {
    c: Chrome,
    offering: String,
    title: String,
    versions: Vec<String>,
    version: String,
    policy: RolloutPolicy,
    error: Option<String>,
    plan: Option<PlanView>,
    /// Why there is no plan to show (the API's words).
    no_plan: Option<String>,
}

async fn new_page(
    state: &WebState,
    v: &Viewer,
    offering: &str,
    version: String,
    policy: RolloutPolicy,
    error: Option<String>,
    done: Option<&str>,
) -> Response {
    let o = match offerings::read(
        State(state.api.clone()),
        v.caller.clone(),
        Path(offering.to_string()),
    )
    .await
    {
        Ok(Json(o)) => o,
        Err(e) => return api_error(v, &e, "/rollouts"),
    };
    let mut versions: Vec<String> = offerings::versions(
        State(state.api.clone()),
        v.caller.clone(),
        Path(offering.to_string()),
    )
    .await
    .map(|Json(vs)| vs.into_iter().map(|x| x.spec.version).collect())
    .unwrap_or_default();
    versions.sort_by(|a, b| crate::view::newer_first(a, b));
    let t = v.lang.texts();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let version = if version.is_empty() {
        versions.first().cloned().unwrap_or_default()
    } else {
        version
    };
    let (plan, no_plan) = if version.is_empty() {
        (None, None)
    } else {
        match plan_view(state, v, offering, &version, &policy).await {
            Ok(p) => (Some(p), None),
            Err(why) => (None, Some(why)),
        }
    };
    render(
        status,
        &NewPage {
            c: Chrome::for_viewer(
                v,
                format!("{}: {}", t.rollout_start, o.spec.display_name),
                "rollouts",
                &format!("/rollouts/new?offering={offering}"),
            )
            .with_flash(flash(v.lang, done)),
            offering: offering.into(),
            title: o.spec.display_name,
            version,
            versions,
            policy,
            error,
            plan,
            no_plan,
        },
    )
}

/// `GET /rollouts/new?offering=x`.
pub async fn new_form(
    State(state): State<WebState>,
    v: Viewer,
    Query(q): Query<NewQuery>,
) -> Response {
    match q.offering {
        Some(o) => {
            new_page(
                &state,
                &v,
                &o,
                q.version.unwrap_or_default(),
                RolloutPolicy::default(),
                None,
                q.done.as_deref(),
            )
            .await
        }
        // A rollout is started from an offering's page.
        None => axum::response::Redirect::to("/catalog").into_response(),
    }
}

#[derive(Deserialize)]
pub struct StartForm {
    csrf: String,
    offering: String,
    version: String,
    bake_seconds: String,
    wave_size: String,
    max_concurrent_sites: String,
    canary_percent: String,
    failure_budget: String,
    /// "Plan aktualisieren": show the plan for what was entered; start nothing.
    #[serde(default)]
    preview: Option<String>,
}

/// `POST /rollouts/new`.
pub async fn start(State(state): State<WebState>, v: Viewer, Form(f): Form<StartForm>) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return expired(&v);
    }
    let t = v.lang.texts();
    let num = |s: &str| s.trim().parse::<u32>();
    let mut policy = RolloutPolicy::default();
    let parsed = (|| -> Result<(), &'static str> {
        policy.bake_seconds = num(&f.bake_seconds).map_err(|_| "bake_seconds")?;
        policy.wave_size = num(&f.wave_size).map_err(|_| "wave_size")?;
        policy.max_concurrent_sites =
            num(&f.max_concurrent_sites).map_err(|_| "max_concurrent_sites")?;
        policy.canary_percent = num(&f.canary_percent).map_err(|_| "canary_percent")?;
        policy.failure_budget = num(&f.failure_budget).map_err(|_| "failure_budget")?;
        Ok(())
    })();
    if let Err(field) = parsed {
        return new_page(
            &state,
            &v,
            &f.offering,
            f.version,
            policy,
            Some(format!("{}: {field}", t.whole_number)),
            None,
        )
        .await;
    }
    if f.preview.is_some() {
        return new_page(&state, &v, &f.offering, f.version, policy, None, None).await;
    }
    let req = RolloutRequest {
        offering: f.offering.clone(),
        version: f.version.clone(),
        policy: policy.clone(),
    };
    match rollouts::create(State(state.api.clone()), v.caller.clone(), ApiJson(req)).await {
        Ok((_, Json(r))) => done(&format!("/rollouts/{}", r.id), "started"),
        Err(ApiError::Invalid(i)) => {
            new_page(
                &state,
                &v,
                &f.offering,
                f.version,
                policy,
                Some(format!("{} ({})", i.message, i.field)),
                None,
            )
            .await
        }
        Err(ApiError::Conflict(m)) => {
            new_page(&state, &v, &f.offering, f.version, policy, Some(m), None).await
        }
        Err(e) => api_error(&v, &e, "/rollouts"),
    }
}
