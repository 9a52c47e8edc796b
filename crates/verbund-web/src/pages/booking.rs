//! One booking: its state live, version, update channel, site, the placement decision in
//! plain words; cancel, change the channel, and (for the federation) approve or reject.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Form, Json};
use serde::Deserialize;
use verbund_api::extract::ApiJson;
use verbund_api::routes::bookings::{self, BookingView, Rejection};
use verbund_domain::booking::BookingPatch;
use verbund_policy::authz::{Act, Target};

use super::explain::{verdicts, Directory, Verdict};
use super::{done, expired, flash};
use crate::error::api_error;
use crate::session::Viewer;
use crate::view::{badge, local_time, render, Chrome};
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
    organisation: String,
    site: Option<String>,
    state_label: String,
    state_badge: &'static str,
    observed: Option<String>,
    simulated: bool,
    verdicts: Vec<Verdict>,
    is_new: bool,
    since: String,
    may_change: bool,
    may_approve: bool,
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
    let offering = api
        .store
        .get_offering(&b.booking.offering)
        .await
        .map_or_else(|_| b.booking.offering.clone(), |o| o.spec.display_name);
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
    let p = BookingPage {
        c: Chrome::for_viewer(
            &v,
            format!("{}: {offering}", t.booking),
            "organisation",
            &format!("/bookings/{id}"),
        )
        .with_flash(flash(lang, q.done.as_deref())),
        offering,
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

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `POST /bookings/{id}/cancel`.
pub async fn cancel(
    State(state): State<WebState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return expired(&v);
    }
    match bookings::cancel(State(state.api.clone()), v.caller.clone(), Path(id.clone())).await {
        Ok(_) => done(&format!("/bookings/{id}"), "cancelled"),
        Err(e) => api_error(&v, &e, &format!("/bookings/{id}")),
    }
}

#[derive(Deserialize)]
pub struct ChannelForm {
    csrf: String,
    channel: String,
}

/// `POST /bookings/{id}/channel`.
pub async fn channel(
    State(state): State<WebState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(f): Form<ChannelForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return expired(&v);
    }
    let patch = BookingPatch {
        channel: Some(f.channel.trim().to_string()),
        ..Default::default()
    };
    match bookings::update(
        State(state.api.clone()),
        v.caller.clone(),
        Path(id.clone()),
        ApiJson(patch),
    )
    .await
    {
        Ok(_) => done(&format!("/bookings/{id}"), "channel"),
        Err(e) => api_error(&v, &e, &format!("/bookings/{id}")),
    }
}

/// `POST /bookings/{id}/approve`.
pub async fn approve(
    State(state): State<WebState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return expired(&v);
    }
    match bookings::approve(State(state.api.clone()), v.caller.clone(), Path(id.clone())).await {
        Ok(_) => done(&format!("/bookings/{id}"), "approved"),
        Err(e) => api_error(&v, &e, &format!("/bookings/{id}")),
    }
}

#[derive(Deserialize)]
pub struct RejectForm {
    csrf: String,
    reason: String,
}

/// `POST /bookings/{id}/reject`.
pub async fn reject(
    State(state): State<WebState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(f): Form<RejectForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return expired(&v);
    }
    let r = Rejection { reason: f.reason };
    match bookings::reject(
        State(state.api.clone()),
        v.caller.clone(),
        Path(id.clone()),
        ApiJson(r),
    )
    .await
    {
        Ok(_) => done(&format!("/bookings/{id}"), "rejected"),
        Err(e) => api_error(&v, &e, &format!("/bookings/{id}")),
    }
}
