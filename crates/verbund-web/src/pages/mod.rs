//! The portal's pages, one module per section. Each handler calls the API's own handler
//! functions with the signed-in person's `Caller`, so what a page shows and may change
//! is exactly what the API allows that person.

mod audit;
mod booking;
mod brings;
mod catalog;
mod explain;
mod fleet;
mod join;
mod offering;
mod organisation;
mod policies;
mod publish;
mod publish_template;
mod rollouts;
pub mod work;

use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use verbund_domain::account::Role;
use verbund_domain::directory::Organisation;

use crate::session::{MaybeViewer, Viewer};
use crate::WebState;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/catalog", get(catalog::page))
        .route("/offerings/{name}", get(offering::page))
        .route(
            "/offerings/{name}/book",
            get(offering::form_page).post(offering::submit),
        )
        .route(
            "/offerings/{name}/join/{instance}",
            get(join::form_page).post(join::submit),
        )
        .route(
            "/offerings/{name}/publish",
            get(publish::form).post(publish::submit),
        )
        .route("/bookings/{id}", get(booking::page))
        .route(
            "/bookings/{id}/cancel",
            get(booking::confirm_cancel).post(booking::cancel),
        )
        .route(
            "/bookings/{id}/end",
            get(booking::confirm_end).post(booking::end),
        )
        .route(
            "/bookings/{id}/template",
            get(publish_template::form_page).post(publish_template::submit),
        )
        .route("/bookings/{id}/{action}", post(booking::action))
        .route("/organisation", get(organisation::page))
        .route("/organisation/data", get(organisation::data))
        .route("/organisation/export", get(organisation::export))
        .route("/fleet", get(fleet::page))
        .route("/fleet/sites/{name}", get(fleet::site))
        .route("/rollouts", get(rollouts::list))
        .route(
            "/rollouts/new",
            get(rollouts::new_form).post(rollouts::start),
        )
        .route("/rollouts/{id}", get(rollouts::page))
        .route("/rollouts/{id}/{action}", post(rollouts::control))
        .route(
            "/rollouts/{id}/sites/{site}/{action}",
            post(rollouts::site_control),
        )
        .route("/audit", get(audit::page))
        .route("/policies", get(policies::page))
        .route("/work", get(work::page))
        .route("/work/proposals/{id}/{action}", post(work::decide))
}

/// `GET /`: where the signed-in person's work is; the sign-in page for everyone else.
pub async fn home(MaybeViewer(v, _): MaybeViewer) -> Response {
    let Some(v) = v else {
        return Redirect::to("/login").into_response();
    };
    let p = &v.caller.0;
    let to = if p
        .memberships
        .iter()
        .any(|m| matches!(m.role, Role::OrgAdmin | Role::OrgMember))
    {
        "/organisation"
    } else if p.has_role(Role::ProviderOperator) {
        "/fleet"
    } else {
        "/catalog"
    };
    Redirect::to(to).into_response()
}

/// The organisations the signed-in person acts for (as org-admin or org-member; with a
/// delegated role also those below).
pub async fn my_organisations(
    state: &WebState,
    v: &Viewer,
) -> verbund_store::Result<Vec<Organisation>> {
    let ids = state
        .api
        .store
        .scope_members(&v.caller.acting_for())
        .await?;
    let mut orgs = state.api.store.organisations_by_ids(&ids).await?;
    orgs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(orgs)
}

/// Like `my_organisations`, with a store failure answered as an error page.
pub async fn orgs_or_error(state: &WebState, v: &Viewer) -> Result<Vec<Organisation>, Response> {
    my_organisations(state, v).await.map_err(|e| {
        crate::error::api_error(v, &verbund_api::ApiError::Internal(e.to_string()), "/")
    })
}

/// A form posted without this session's token (forged, or from before a new sign-in).
pub fn expired(v: &Viewer) -> Response {
    crate::error::api_error(
        v,
        &verbund_api::ApiError::Forbidden(v.lang.texts().form_expired.into()),
        "/",
    )
}

/// After a change: back to `to`, telling the next page which change succeeded (a code,
/// never free text, so that a link cannot put words into the portal's mouth).
pub fn done(to: &str, code: &'static str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}done={code}")).into_response()
}

/// Every item of a paged list: asks for `page(after)` until the answer names no next page.
pub async fn every_page<T, E, F, Fut>(mut page: F) -> Result<Vec<T>, E>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<verbund_domain::page::Page<T>, E>>,
{
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let p = page(after).await?;
        out.extend(p.items);
        match p.next {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
}

/// After a form's change through the API: back to `back` with its `done` code, or the
/// API's refusal as an error page.
pub fn outcome<T>(
    v: &Viewer,
    result: Result<T, verbund_api::ApiError>,
    back: &str,
    code: &'static str,
) -> Response {
    match result {
        Ok(_) => done(back, code),
        Err(e) => crate::error::api_error(v, &e, back),
    }
}

/// The success note for a `done` code.
pub fn flash(lang: crate::i18n::Lang, code: Option<&str>) -> Option<String> {
    let t = lang.texts();
    Some(
        match code? {
            "booked" => t.done_booked,
            "cancelled" => t.done_cancelled,
            "ended" => t.done_ended,
            "export-retried" => t.done_export_retried,
            "channel" => t.done_channel,
            "approved" => t.done_approved,
            "rejected" => t.done_rejected,
            "started" => t.done_started,
            "pause" => t.done_paused,
            "resume" => t.done_resumed,
            "abort" => t.done_aborted,
            "retry" => t.done_retried,
            "skip" => t.done_skipped,
            "fact-approved" => t.done_fact_approved,
            "published" => t.done_published,
            "fact-rejected" => t.done_fact_rejected,
            "template-published" => t.done_template_published,
            "taken-over" => t.done_taken_over,
            _ => return None,
        }
        .to_string(),
    )
}

/// A booking's lifecycle state in words.
pub fn state_label(lang: crate::i18n::Lang, state: &str) -> &'static str {
    use crate::i18n::Lang::*;
    match (state, lang) {
        ("requested", De) => "angefragt",
        ("awaiting-approval", De) => "wartet auf Freigabe",
        ("placed", De) => "platziert",
        ("provisioning", De) => "wird bereitgestellt",
        ("active", De) => "aktiv",
        ("updating", De) => "wird aktualisiert",
        ("degraded", De) => "gestört",
        ("exporting", De) => "beendet, Daten werden exportiert",
        ("cancelling", De) => "wird gekündigt",
        ("retained", De) => "gekündigt, Daten aufbewahrt",
        ("deleted", De) => "gelöscht",
        ("rejected", De) => "abgelehnt",
        ("requested", En) => "requested",
        ("awaiting-approval", En) => "awaiting approval",
        ("placed", En) => "placed",
        ("provisioning", En) => "provisioning",
        ("active", En) => "active",
        ("updating", En) => "updating",
        ("degraded", En) => "degraded",
        ("exporting", En) => "ended, exporting its data",
        ("cancelling", En) => "cancelling",
        ("retained", En) => "cancelled, data retained",
        ("deleted", En) => "deleted",
        ("rejected", En) => "rejected",
        _ => "?",
    }
}
