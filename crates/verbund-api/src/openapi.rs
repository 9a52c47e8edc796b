//! The OpenAPI 3 document, generated from the handlers' annotations.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    audit, bookings, desired_state, facts, fleet, offerings, organisations, policies, preflight,
    providers, reports, rollouts, sites, tokens, users,
};
use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "verbund API", description = "Control plane of the sovereign federated administration cloud."),
    paths(
        organisations::list, organisations::create, organisations::read, organisations::update,
        providers::list, providers::create, providers::read, providers::apply,
        sites::list, sites::create, sites::read, sites::apply,
        facts::provider_facts, facts::site_facts, facts::list, facts::read, facts::approve, facts::reject,
        offerings::list, offerings::create, offerings::read, offerings::apply,
        offerings::versions, offerings::publish,
        users::list, users::create, users::me, users::read, users::set_password,
        tokens::list, tokens::create, tokens::revoke,
        audit::list, audit::verify,
        bookings::list, bookings::create, bookings::read, bookings::update, bookings::cancel,
        bookings::approve, bookings::reject, bookings::placement, bookings::explain, bookings::preview, bookings::reevaluate,
        policies::list, policies::submit, policies::read, policies::versions, policies::remove,
        desired_state::site, desired_state::booking, desired_state::status,
        reports::create_token, reports::list_tokens, reports::revoke_token, reports::report,
        preflight::requirements, preflight::report,
        fleet::fleet,
        rollouts::plan, rollouts::create, rollouts::list, rollouts::read, rollouts::items,
        rollouts::site_items, rollouts::pause, rollouts::resume, rollouts::abort,
        rollouts::retry_site, rollouts::skip_site,
        organisations::early_adopter, organisations::set_early_adopter,
    ),
    components(schemas(crate::problem::Problem, tokens::IssuedToken, audit::ChainStatus)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // A site's agent authenticates with its site token (`vbs_…`), valid only for
        // that site's reports.
        components.add_security_scheme(
            "site-token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
