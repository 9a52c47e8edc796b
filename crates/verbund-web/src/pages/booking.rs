//! One booking: its state live, version, update channel, site, the placement decision in
//! plain words; cancel (after a confirmation page), change the channel, and (for the
//! federation) approve or reject.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use verbund_api::extract::ApiJson;
use verbund_api::routes::bookings::{self, BookingView, Rejection};
use verbund_domain::booking::{retention_ends, transition, BookingEvent, BookingPatch};
use verbund_domain::capacity::WindowState;
use verbund_domain::rollout::german_local;
use verbund_policy::authz::{Act, Target};

use super::explain::{verdicts, Directory, Verdict};
use super::{expired, flash, outcome};
use crate::error::api_error;
use crate::session::Viewer;
use crate::view::{badge, date, local_time, render, Chrome};
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
        crate::form::summary(&o.spec.config_schema, &b.booking.config, lang)
    });
    let p = BookingPage {
        config,
        windows,
        plan_now,
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
    let api = &state.api;
    let back = format!("/bookings/{id}");
    let b = match bookings::read(State(api.clone()), v.caller.clone(), Path(id.clone())).await {
        Ok(Json(b)) => b.booking,
        Err(e) => return api_error(&v, &e, "/organisation"),
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
        return api_error(&v, &e, &back);
    }
    if transition(b.state, BookingEvent::Cancel).is_err() {
        return Redirect::to(&back).into_response();
    }
    let offering = match api.store.get_offering(&b.offering).await {
        Ok(o) => o.spec,
        Err(e) => return api_error(&v, &verbund_api::ApiError::Internal(e.to_string()), &back),
    };
    let organisation = api
        .store
        .get_organisation(&b.organisation)
        .await
        .map_or_else(|_| b.organisation.clone(), |o| o.name);
    let lang = v.lang;
    let ends = retention_ends(api.now(), offering.retention_days);
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
    if !v.csrf_ok(&f.csrf) {
        return expired(&v);
    }
    if f.confirm != "yes" {
        return Redirect::to(&format!("/bookings/{id}/cancel")).into_response();
    }
    let result =
        bookings::cancel(State(state.api.clone()), v.caller.clone(), Path(id.clone())).await;
    outcome(&v, result, &format!("/bookings/{id}"), "cancelled")
}

/// `POST /bookings/{id}/{channel|approve|reject}`: through the API's handler of the same
/// name, then back to the booking.
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
        "reject" => {
            let r = Rejection { reason: f.reason };
            (bookings::reject(s, c, p, ApiJson(r)).await, "rejected")
        }
        _ => (
            Err(verbund_api::ApiError::NotFound(format!(
                "no booking action `{action}`"
            ))),
            "",
        ),
    };
    outcome(&v, result, &format!("/bookings/{id}"), code)
}
