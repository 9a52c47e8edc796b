//! One booking: its state live, version, update channel, site, the placement decision in
//! plain words, a temporary booking's end and its data export; cancel or end it now (each
//! after a confirmation page), retry a failed export, change the channel, and (for the
//! federation) approve or reject.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use verbund_api::extract::ApiJson;
use verbund_api::routes::bookings::{self, BookingView, EndRequest, Rejection};
use verbund_api::ApiError;
use verbund_domain::booking::{
    retention_ends, transition, Booking, BookingEvent, BookingPatch, BookingState,
};
use verbund_domain::capacity::WindowState;
use verbund_domain::catalog::OfferingSpec;
use verbund_domain::ending::{remind_at, ExportOutcome, ExportRun};
use verbund_domain::rollout::german_local;
use verbund_policy::authz::{Act, Target};

use super::explain::{verdicts, Directory, Verdict};
use super::{done, expired, flash, outcome};
use crate::ending_form::export_target;
use crate::error::api_error;
use crate::session::Viewer;
use crate::view::{badge, bytes, date, local_time, render, Chrome};
use crate::WebState;

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
    new: Option<String>,
}

#[derive(Template)]
#[template(path = "booking.html")]
struct BookingPage {
    c: Chrome,
    b: BookingView,
    offering: String,
    plan: String,
    organisation: String,
    site: Option<String>,
    state_label: String,
    state_badge: &'static str,
    observed: Option<String>,
    simulated: bool,
    verdicts: Vec<Verdict>,
    is_new: bool,
    since: String,
    /// When the renderer began refusing the booking, if it does.
    undeliverable_since: Option<String>,
    may_change: bool,
    may_approve: bool,
    /// The requested configuration, labelled by the offering's schema.
    config: Vec<(String, String)>,
    /// Its capacity windows: span, plan, state in words, badge.
    windows: Vec<WindowRow>,
    /// The plan it runs now, when a window's differs from its own.
    plan_now: Option<String>,
    /// A temporary booking's end and export.
    ending: Option<EndingView>,
    /// Whether the viewer may end it now, with its data exported.
    may_end: bool,
    /// Whether the viewer may start its failed export again.
    may_retry_export: bool,
    /// The bookings it uses (its dependencies) and those that use it: id and the
    /// offering's title.
    uses: Vec<(String, String)>,
    used_by: Vec<(String, String)>,
    /// A tenancy's shared instance: the name of the organisation that runs it (the
    /// instance itself is that organisation's, not the tenant's to open).
    tenancy_of: Option<String>,
    /// An adopted booking's own differences from its template, and what the template
    /// changed since, by the configuration's labels.
    lineage_differences: Vec<String>,
    lineage_changes: Vec<String>,
}

/// The configuration's label for each JSON pointer (its schema's `title`, else the
/// property's name), joined with " › " along nested objects.
fn labels(schema: &serde_json::Value, pointers: &[String]) -> Vec<String> {
    pointers
        .iter()
        .map(|p| {
            let mut at = schema;
            let mut parts = Vec::new();
            for token in p.split('/').skip(1) {
                let key = token.replace("~1", "/").replace("~0", "~");
                let property = at.get("properties").and_then(|ps| ps.get(&key));
                parts.push(
                    property
                        .and_then(|s| s.get("title"))
                        .and_then(serde_json::Value::as_str)
                        .map_or_else(|| key.clone(), str::to_string),
                );
                at = property.unwrap_or(&serde_json::Value::Null);
            }
            parts.join(" › ")
        })
        .collect()
}

/// A temporary booking's end, in words.
pub struct EndingView {
    pub last_day: String,
    pub target: String,
    /// From the reminder on, while no export began: the notice that it ends.
    pub reminder: bool,
    pub export: Option<ExportView>,
}

/// One attempt at the export, in words.
pub struct ExportView {
    pub attempt: u32,
    pub job: String,
    pub object: String,
    pub started: String,
    /// `running`, `verified` or `failed`.
    pub state: &'static str,
    pub label: &'static str,
    pub badge: &'static str,
    /// When it was verified or failed.
    pub at: Option<String>,
    pub sha256: Option<String>,
    pub size: Option<String>,
    /// Why it failed (the domain's words, English).
    pub reason: Option<String>,
}

/// Whether `b` can be ended now with its data exported: its offering has a data export,
/// it runs (the lifecycle's `end`), and no export began.
fn endable(b: &Booking, offering: &OfferingSpec) -> bool {
    offering.data_export.is_some()
        && transition(b.state, BookingEvent::End).is_ok()
        && b.ending.as_ref().is_none_or(|e| e.export.is_none())
}

/// Whether `b`'s export failed and may be tried again (the domain's `retry`).
fn retriable(b: &Booking, now: DateTime<Utc>) -> bool {
    b.state == BookingState::Exporting
        && b.ending.as_ref().is_some_and(|e| {
            e.export
                .as_ref()
                .is_some_and(|r| r.retry(&b.id, &e.export_to, now).is_ok())
        })
}

fn ending_view(b: &Booking, now: DateTime<Utc>, lang: crate::i18n::Lang) -> Option<EndingView> {
    let e = b.ending.as_ref()?;
    Some(EndingView {
        last_day: date(e.ends_on, lang),
        target: e.export_to.url(),
        reminder: e.export.is_none()
            && transition(b.state, BookingEvent::End).is_ok()
            && now >= remind_at(e.ends_on),
        export: e.export.as_ref().map(|r| export_view(r, lang)),
    })
}

fn export_view(r: &ExportRun, lang: crate::i18n::Lang) -> ExportView {
    let t = lang.texts();
    let mut x = ExportView {
        attempt: r.attempt,
        job: r.job(),
        object: r.object.clone(),
        started: local_time(r.started_at, lang),
        state: "running",
        label: t.export_running,
        badge: "info",
        at: None,
        sha256: None,
        size: None,
        reason: None,
    };
    match &r.outcome {
        ExportOutcome::Running => {}
        ExportOutcome::Verified {
            sha256,
            bytes: n,
            at,
        } => {
            (x.state, x.label, x.badge) = ("verified", t.export_verified, "success");
            x.at = Some(local_time(*at, lang));
            x.sha256 = Some(sha256.clone());
            x.size = Some(bytes(*n, lang));
        }
        ExportOutcome::Failed { reason, at } => {
            (x.state, x.label, x.badge) = ("failed", t.export_failed, "danger");
            x.at = Some(local_time(*at, lang));
            x.reason = Some(reason.clone());
        }
    }
    x
}

pub struct WindowRow {
    pub span: String,
    pub plan: String,
    pub state: &'static str,
    pub label: &'static str,
    pub badge: &'static str,
}

/// A window's state in words and its badge.
fn window_state(state: WindowState, lang: crate::i18n::Lang) -> (&'static str, &'static str) {
    let t = lang.texts();
    match state {
        WindowState::Scheduled => (t.window_scheduled, "info"),
        WindowState::Active => (t.window_active, "success"),
        WindowState::Ended => (t.window_ended, "neutral"),
    }
}

/// `GET /bookings/{id}`.
pub async fn page(
    State(state): State<WebState>,
    v: Viewer,
    Path(id): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    let api = &state.api;
    let b = match bookings::read(State(api.clone()), v.caller.clone(), Path(id.clone())).await {
        Ok(Json(b)) => b,
        Err(e) => return api_error(&v, &e, "/organisation"),
    };
    let lang = v.lang;
    let t = lang.texts();
    let dir = Directory::load(&api.store).await.ok();
    let explained = match (
        bookings::placement(State(api.clone()), v.caller.clone(), Path(id.clone())).await,
        &dir,
    ) {
        (Ok(Json(d)), Some(dir)) => verdicts(&d, dir, lang),
        _ => Vec::new(),
    };
    let spec = api.store.get_offering(&b.booking.offering).await.ok();
    let offering = spec.as_ref().map_or_else(
        || b.booking.offering.clone(),
        |o| o.spec.display_name.clone(),
    );
    // The plan by its name in the catalog ("S – bis 50 Teilnehmende"), not its key.
    let plan_title = |name: &str| {
        spec.as_ref()
            .and_then(|o| o.spec.plans.iter().find(|p| p.name == name))
            .map_or_else(|| name.to_string(), |p| p.display_name.clone())
    };
    let plan = plan_title(&b.booking.plan);
    let plan_now = (b.booking.plan_in_effect() != b.booking.plan)
        .then(|| plan_title(b.booking.plan_in_effect()));
    let windows = b
        .booking
        .windows
        .iter()
        .map(|w| {
            let (label, badge) = window_state(w.state, lang);
            WindowRow {
                span: format!("{} – {}", date(w.from, lang), date(w.to, lang)),
                plan: plan_title(&w.plan),
                state: match w.state {
                    WindowState::Scheduled => "scheduled",
                    WindowState::Active => "active",
                    WindowState::Ended => "ended",
                },
                label,
                badge,
            }
        })
        .collect();
    let organisation = api
        .store
        .get_organisation(&b.booking.organisation)
        .await
        .map_or_else(|_| b.booking.organisation.clone(), |o| o.name);
    let chain = api
        .store
        .organisation_chain(&b.booking.organisation)
        .await
        .unwrap_or_default();
    let target = Target::new("booking").in_organisation(chain);
    let state_str = b.booking.state.as_str();
    let observed = b.observed.as_ref().map(|o| {
        let mut s = format!(
            "{} {}: {} / {} {}",
            t.observed_version,
            o.status
                .applied_version
                .clone()
                .unwrap_or_else(|| "–".into()),
            o.status.ready_replicas,
            o.status.desired_replicas,
            t.replicas_ready
        );
        if let Some(p) = &o.status.problem {
            s.push_str(&format!(" – {p}"));
        }
        s.push_str(&format!(
            " ({} {})",
            t.reported,
            local_time(o.status.observed_at, lang)
        ));
        s
    });
    let config = spec.as_ref().map_or_else(Vec::new, |o| {
        let schema = match b.booking.instance {
            Some(_) => verbund_domain::shared::tenant_schema(&o.spec),
            None => std::borrow::Cow::Borrowed(&o.spec.config_schema),
        };
        crate::form::summary(&schema, &b.booking.config, lang)
    });
    let now = api.now();
    let may_delete = v.caller.may(Act::Delete, &target);
    let tenancy_of = match &b.booking.instance {
        Some(instance) => Some(operator_of(api, instance).await),
        None => None,
    };
    let uses = match tenancy_of {
        Some(_) => Vec::new(),
        None => linked(api, &b.booking.dependencies).await,
    };
    let dependents: Vec<String> = b.dependents.iter().map(|d| d.id.clone()).collect();
    let used_by = linked(api, &dependents).await;
    let schema = spec
        .as_ref()
        .map_or(serde_json::Value::Null, |o| o.spec.config_schema.clone());
    let (lineage_differences, lineage_changes) = b.template.as_ref().map_or_else(
        || (Vec::new(), Vec::new()),
        |l| (labels(&schema, &l.differences), labels(&schema, &l.changes)),
    );
    let p = BookingPage {
        uses,
        used_by,
        tenancy_of,
        lineage_differences,
        lineage_changes,
        config,
        windows,
        plan_now,
        ending: ending_view(&b.booking, now, lang),
        may_end: may_delete && spec.as_ref().is_some_and(|o| endable(&b.booking, &o.spec)),
        may_retry_export: may_delete && retriable(&b.booking, now),
        c: Chrome::for_viewer(
            &v,
            format!("{}: {offering}", t.booking),
            "organisation",
            &format!("/bookings/{id}"),
        )
        .with_flash(flash(lang, q.done.as_deref())),
        offering,
        plan,
        organisation,
        site: b
            .booking
            .site
            .as_ref()
            .map(|s| dir.as_ref().map_or_else(|| s.clone(), |d| d.site_title(s))),
        state_label: super::state_label(lang, state_str).to_string(),
        state_badge: badge(state_str),
        simulated: b.observed.as_ref().is_some_and(|o| o.simulated),
        observed,
        verdicts: explained,
        is_new: q.new.is_some(),
        since: local_time(b.booking.state_since, lang),
        undeliverable_since: b
            .booking
            .undeliverable
            .as_ref()
            .map(|u| local_time(u.since, lang)),
        may_change: v.caller.may(Act::Write, &target)
            && !matches!(
                state_str,
                "cancelling" | "retained" | "deleted" | "rejected"
            ),
        may_approve: state_str == "awaiting-approval" && v.caller.may(Act::Approve, &target),
        b,
    };
    render(StatusCode::OK, &p)
}

/// What the booking page's forms send: the session's token, and the new channel or the
/// reason for a rejection where the action needs one.
#[derive(Deserialize)]
pub struct ActionForm {
    csrf: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    reason: String,
}

#[derive(Template)]
#[template(path = "cancel.html")]
struct CancelPage {
    c: Chrome,
    id: String,
    offering: String,
    organisation: String,
    /// The day the data is deleted if the booking is cancelled now.
    kept_until: String,
    days: u32,
}

/// `GET /bookings/{id}/cancel`: what a cancellation does and until when the data is
/// kept (the offering's retention, counted as the lifecycle sweep counts it), with the
/// form that confirms it. Asking changes nothing.
pub async fn confirm_cancel(
    State(state): State<WebState>,
    v: Viewer,
    Path(id): Path<String>,
) -> Response {
    let (b, offering, organisation) = match to_delete(&state, &v, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if transition(b.state, BookingEvent::Cancel).is_err() {
        return Redirect::to(&format!("/bookings/{id}")).into_response();
    }
    let lang = v.lang;
    let ends = retention_ends(state.api.now(), offering.retention_days);
    let p = CancelPage {
        c: Chrome::for_viewer(
            &v,
            lang.texts().cancel_confirm_title,
            "organisation",
            &format!("/bookings/{id}/cancel"),
        ),
        id,
        offering: offering.display_name,
        organisation,
        kept_until: date(german_local(ends).date(), lang),
        days: offering.retention_days,
    };
    render(StatusCode::OK, &p)
}

/// A booking the viewer may cancel or end (the API's `delete`), with its offering and
/// its organisation's name; else the page to answer with.
async fn to_delete(
    state: &WebState,
    v: &Viewer,
    id: &str,
) -> Result<(Booking, OfferingSpec, String), Response> {
    let api = &state.api;
    let back = format!("/bookings/{id}");
    let read = bookings::read(State(api.clone()), v.caller.clone(), Path(id.to_string())).await;
    let b = match read {
        Ok(Json(b)) => b.booking,
        Err(e) => return Err(api_error(v, &e, "/organisation")),
    };
    let chain = api
        .store
        .organisation_chain(&b.organisation)
        .await
        .unwrap_or_default();
    if let Err(e) = v
        .caller
        .require(Act::Delete, &Target::new("booking").in_organisation(chain))
    {
        return Err(api_error(v, &e, &back));
    }
    let offering = match api.store.get_offering(&b.offering).await {
        Ok(o) => o.spec,
        Err(e) => return Err(api_error(v, &ApiError::Internal(e.to_string()), &back)),
    };
    let organisation = api
        .store
        .get_organisation(&b.organisation)
        .await
        .map_or_else(|_| b.organisation.clone(), |o| o.name);
    Ok((b, offering, organisation))
}

#[derive(Template)]
#[template(path = "end.html")]
struct EndPage {
    c: Chrome,
    id: String,
    offering: String,
    organisation: String,
    /// The export target, as entered or the booking's own.
    export_to: String,
    /// What is wrong with it, in the reader's words.
    error: Option<&'static str>,
}

/// The page that asks before ending `id` now, with `export_to` as entered (the booking's
/// own target at first) and its fault; the booking's page when it cannot be ended now.
async fn end_page(
    state: &WebState,
    v: &Viewer,
    id: &str,
    export_to: Option<String>,
    error: Option<&'static str>,
) -> Response {
    let (b, offering, organisation) = match to_delete(state, v, id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !endable(&b, &offering) {
        return Redirect::to(&format!("/bookings/{id}")).into_response();
    }
    let export_to = export_to
        .or_else(|| b.ending.as_ref().map(|e| e.export_to.url()))
        .unwrap_or_default();
    let p = EndPage {
        c: Chrome::for_viewer(
            v,
            v.lang.texts().end_confirm_title,
            "organisation",
            &format!("/bookings/{id}/end"),
        ),
        id: id.to_string(),
        offering: offering.display_name,
        organisation,
        export_to,
        error,
    };
    let status = match error {
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
        None => StatusCode::OK,
    };
    render(status, &p)
}

/// `GET /bookings/{id}/end`: what ending a booking now does (its data exported and
/// checked before anything is torn down), with the form that confirms it and names the
/// export target. Asking changes nothing.
pub async fn confirm_end(
    State(state): State<WebState>,
    v: Viewer,
    Path(id): Path<String>,
) -> Response {
    end_page(&state, &v, &id, None, None).await
}

/// What the end page sends.
#[derive(Deserialize)]
pub struct EndForm {
    csrf: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    export_to: String,
}

/// `POST /bookings/{id}/end`: ends the booking through the API's handler once confirmed,
/// its data exported to the target entered; a target that is none comes back to the
/// form at its control, and nothing is ended.
pub async fn end(
    State(state): State<WebState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(f): Form<EndForm>,
) -> Response {
    if let Some(r) = unconfirmed(&v, &f.csrf, &f.confirm, &format!("/bookings/{id}/end")) {
        return r;
    }
    let target = match export_target(&f.export_to, v.lang) {
        Ok(t) => t,
        Err(m) => return end_page(&state, &v, &id, Some(f.export_to), Some(m)).await,
    };
    let request = EndRequest {
        export_to: Some(target),
    };
    let ended = bookings::end(
        State(state.api.clone()),
        v.caller.clone(),
        Path(id.clone()),
        ApiJson(request),
    )
    .await;
    match ended {
        Ok(_) => done(&format!("/bookings/{id}"), "ended"),
        Err(ApiError::Invalid(i)) if i.field.starts_with("/export_to") => {
            let m = v.lang.texts().error_export_target;
            end_page(&state, &v, &id, Some(f.export_to), Some(m)).await
        }
        Err(e) => api_error(&v, &e, &format!("/bookings/{id}")),
    }
}

/// A confirmation page's post: `None` to go on, else the answer: an expired form, or
/// the question (`ask`) first when the post does not confirm (an old page's form).
fn unconfirmed(v: &Viewer, csrf: &str, confirm: &str, ask: &str) -> Option<Response> {
    if !v.csrf_ok(csrf) {
        return Some(expired(v));
    }
    (confirm != "yes").then(|| Redirect::to(ask).into_response())
}

/// What the confirmation page sends.
#[derive(Deserialize)]
pub struct CancelForm {
    csrf: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /bookings/{id}/cancel`: cancels through the API's handler once confirmed; a
/// post without the confirmation (an old page's form) is sent to the question first.
pub async fn cancel(
    State(state): State<WebState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(f): Form<CancelForm>,
) -> Response {
    if let Some(r) = unconfirmed(&v, &f.csrf, &f.confirm, &format!("/bookings/{id}/cancel")) {
        return r;
    }
    let result =
        bookings::cancel(State(state.api.clone()), v.caller.clone(), Path(id.clone())).await;
    outcome(&v, result, &format!("/bookings/{id}"), "cancelled")
}

/// `POST /bookings/{id}/{channel|approve|reject|retry-export}`: through the API's handler
/// of the same name, then back to the booking.
pub async fn action(
    State(state): State<WebState>,
    v: Viewer,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return expired(&v);
    }
    let (s, c, p) = (State(state.api.clone()), v.caller.clone(), Path(id.clone()));
    let (result, code) = match action.as_str() {
        "channel" => {
            let patch = BookingPatch {
                channel: Some(f.channel.trim().to_string()),
                ..Default::default()
            };
            (bookings::update(s, c, p, ApiJson(patch)).await, "channel")
        }
        "approve" => (bookings::approve(s, c, p).await, "approved"),
        "retry-export" => (bookings::retry_export(s, c, p).await, "export-retried"),
        "take-over" => (
            verbund_api::routes::templates::take_over_changes(s, c, p).await,
            "taken-over",
        ),
        "reject" => {
            let r = Rejection { reason: f.reason };
            (bookings::reject(s, c, p, ApiJson(r)).await, "rejected")
        }
        _ => (
            Err(ApiError::NotFound(format!("no booking action `{action}`"))),
            "",
        ),
    };
    outcome(&v, result, &format!("/bookings/{id}"), code)
}

/// The name of the organisation that runs the shared instance `id`.
async fn operator_of(api: &verbund_api::AppState, id: &str) -> String {
    let Ok(instance) = api.store.get_booking(id).await else {
        return String::new();
    };
    api.store
        .get_organisation(&instance.organisation)
        .await
        .map_or(instance.organisation, |o| o.name)
}

/// Bookings by id with their offering's title, for links between a booking and those it
/// uses or that use it (an id no longer found is left out).
async fn linked(api: &verbund_api::AppState, ids: &[String]) -> Vec<(String, String)> {
    let Ok(found) = api.store.bookings_by_ids(ids).await else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(found.len());
    for b in found {
        let title = api
            .store
            .get_offering(&b.offering)
            .await
            .map_or_else(|_| b.offering.clone(), |o| o.spec.display_name);
        out.push((b.id, title));
    }
    out.sort();
    out
}
