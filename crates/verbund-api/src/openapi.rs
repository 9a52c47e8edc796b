//! The OpenAPI 3 document, generated from the handlers' annotations.
//!
//! It is a contract that clients and fuzzers (schemathesis, in the CLI's behaviour tests)
//! hold the server to, so two things the annotations would state per handler are decided
//! here once, from the shape of each operation: which problems it may answer
//! (`ProblemResponses`), and that a record with flattened parts is one object
//! (`MergeFlattened`).

use axum::routing::get;
use axum::{Json, Router};
use std::collections::BTreeMap;

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{Object, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, RefOr, Response};
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
        users::reset_password, users::complete_reset, users::set_roles, users::disable,
        users::enable, users::revoke,
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
    components(schemas(crate::problem::Problem, tokens::IssuedToken, audit::ChainStatus,
        users::IssuedPasswordReset, verbund_domain::account::PasswordReset,
        verbund_domain::account::Revoked)),
    modifiers(&BearerAuth, &ProblemResponses, &MergeFlattened),
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

/// The media type of every error answer (RFC 9457).
const PROBLEM_JSON: &str = "application/problem+json";

/// Documents on every operation the problems it can answer, as
/// `application/problem+json` with the `Problem` schema. What an operation can answer
/// follows from its shape, as `crate::problem::ApiError` and the extractors give them:
/// every operation needs a credential (401) that may not suffice (403); one that names
/// a resource, in its path or its body, may find none (404); input can be malformed
/// (400: a query parameter out of its bounds, a body that is not JSON) or invalid
/// (422; also a change that names a part its resource does not have, e.g. a rollout's
/// site without bookings); a body can be too large (413) or not JSON at all (415); and a change can
/// conflict with the state it meets (409). A handler documents only its successes and
/// what is special about a problem (its own description).
struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let names_resource = path.contains('{');
            for (changes, op) in [
                (false, item.get.as_mut()),
                (true, item.post.as_mut()),
                (true, item.put.as_mut()),
                (true, item.patch.as_mut()),
                (true, item.delete.as_mut()),
            ] {
                if let Some(op) = op {
                    add_problems(op, names_resource, changes);
                }
            }
        }
    }
}

/// The problems an operation of this shape can answer, with what each means there.
fn problems_of(op: &Operation, names_resource: bool, changes: bool) -> Vec<(u16, &'static str)> {
    let has = |place: ParameterIn| {
        op.parameters
            .iter()
            .flatten()
            .any(|p| p.parameter_in == place)
    };
    let body = op.request_body.is_some();
    let query = has(ParameterIn::Query) || has(ParameterIn::Header);
    let mut problems = vec![
        (401, "no credential, or an unknown, expired or revoked one"),
        (403, "the caller may not do this"),
    ];
    if names_resource || body {
        problems.push((
            404,
            "a resource the request names does not exist, or the caller may not see it",
        ));
    }
    if body || query || (names_resource && changes) {
        problems.push((400, "malformed input: a parameter that does not parse or lies outside its bounds, or a body that is not JSON"));
        problems.push((
            422,
            "invalid input; `field` names the offending part as a JSON pointer",
        ));
    }
    if body {
        problems.push((413, "the body exceeds the size limit"));
        problems.push((415, "the body is not sent as `application/json`"));
    }
    if changes {
        problems.push((409, "the change conflicts with the current state"));
    }
    problems
}

fn add_problems(op: &mut Operation, names_resource: bool, changes: bool) {
    let problem = Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
        "Problem",
    ))));
    for (status, description) in problems_of(op, names_resource, changes) {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(Response::new(description)));
    }
    // Every error answer, also one a handler documents itself, is a problem document.
    for (status, response) in op.responses.responses.iter_mut() {
        if let (true, RefOr::T(response)) =
            (status.starts_with('4') || status.starts_with('5'), response)
        {
            response.content = [(PROBLEM_JSON.to_string(), problem.clone())]
                .into_iter()
                .collect();
        }
    }
}

/// A record with `#[serde(flatten)]` parts (a stored spec and its timestamps, a booking
/// and what its site reported) is one JSON object. utoipa describes it as `allOf` of
/// the parts, and a part that denies unknown fields (`additionalProperties: false`, as
/// every spec a client submits does) would then refuse the very fields the other parts
/// add: no answer could match. Each such composition becomes the one object it is, with
/// the parts' properties and required fields, open like the flattening struct.
struct MergeFlattened;

impl Modify for MergeFlattened {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        // Generic records (`Page<T>`) hold their items inline, so compositions are merged
        // wherever they are, against the components as they were.
        let lookup = components.schemas.clone();
        for schema in components.schemas.values_mut() {
            merge_within(schema, &lookup);
        }
    }
}

/// Replaces every composition of several parts in `schema` (itself included) with the
/// one object it describes.
fn merge_within(schema: &mut RefOr<Schema>, components: &BTreeMap<String, RefOr<Schema>>) {
    let RefOr::T(s) = schema else {
        return;
    };
    if let Schema::AllOf(all) = s {
        if all.items.len() > 1 {
            if let Some(object) = merge(s, components) {
                *s = Schema::Object(object);
            }
        }
    }
    match s {
        Schema::Object(o) => o
            .properties
            .values_mut()
            .for_each(|p| merge_within(p, components)),
        Schema::Array(a) => {
            if let utoipa::openapi::schema::ArrayItems::RefOrSchema(items) = &mut a.items {
                merge_within(items, components);
            }
        }
        Schema::OneOf(one) => one
            .items
            .iter_mut()
            .for_each(|i| merge_within(i, components)),
        Schema::AnyOf(any) => any
            .items
            .iter_mut()
            .for_each(|i| merge_within(i, components)),
        Schema::AllOf(all) => all
            .items
            .iter_mut()
            .for_each(|i| merge_within(i, components)),
        _ => {}
    }
}

/// The one object `schema` describes, its `allOf` parts (and the components they refer
/// to) merged; `None` when a part is no object.
fn merge(schema: &Schema, components: &BTreeMap<String, RefOr<Schema>>) -> Option<Object> {
    match schema {
        Schema::Object(o) => Some(o.clone()),
        Schema::AllOf(all) => {
            let mut merged = Object::new();
            merged.description.clone_from(&all.description);
            for item in &all.items {
                let part = match item {
                    RefOr::T(s) => merge(s, components)?,
                    RefOr::Ref(r) => {
                        let name = r.ref_location.rsplit('/').next()?;
                        match components.get(name)? {
                            RefOr::T(s) => merge(s, components)?,
                            RefOr::Ref(_) => return None,
                        }
                    }
                };
                merged.properties.extend(part.properties);
                for field in part.required {
                    if !merged.required.contains(&field) {
                        merged.required.push(field);
                    }
                }
                if merged.description.is_none() {
                    merged.description = part.description;
                }
            }
            merged.schema_type =
                utoipa::openapi::schema::SchemaType::new(utoipa::openapi::schema::Type::Object);
            Some(merged)
        }
        _ => None,
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
