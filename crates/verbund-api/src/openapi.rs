//! The OpenAPI 3 document, generated from the handlers' annotations.
//!
//! It is a contract that clients and fuzzers (schemathesis, in the CLI's behaviour tests)
//! hold the server to, so some things the annotations would state per handler are
//! decided here once, from the shape of each operation: which problems it may answer
//! (`ProblemResponses`), and that a record with flattened parts is one object
//! (`MergeFlattened`). And some rules of form the derived schemas cannot carry are added
//! to the served document (`document`): that no string holds NUL, which the extractors
//! refuse in every body and query (`nul_free`); the rules between fields that the domain
//! states as JSON Schema (`CROSS_FIELD_RULES`); and that a package's variants take no
//! other fields. What a request that keeps to the document can still be refused for is
//! said in `crate::problem`.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{Object, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, RefOr, Response};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    audit, bookings, desired_state, facts, fleet, gaiax, offerings, organisations, policies,
    preflight, providers, reports, rollouts, sites, templates, tenancies, tokens, trust, users,
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
        trust::read_list, trust::put_list, trust::trust_federation, trust::credentials, trust::add, trust::attest,
        trust::status_list,
        audit::list, audit::verify,
        bookings::list, bookings::create, bookings::read, bookings::update, bookings::cancel,
        bookings::approve, bookings::reject, bookings::end, bookings::retry_export, bookings::placement, bookings::explain, bookings::preview, bookings::reevaluate,
        tenancies::create, tenancies::list, tenancies::instances,
        templates::create, templates::update, templates::list, templates::read, templates::adopt,
        templates::lineage, templates::take_over_changes,
        policies::list, policies::submit, policies::read, policies::versions, policies::remove,
        desired_state::site, desired_state::booking, desired_state::status,
        reports::create_token, reports::list_tokens, reports::revoke_token, reports::report,
        preflight::requirements, preflight::report,
        fleet::fleet, fleet::site_history, fleet::capacity_outlook,
        rollouts::plan, rollouts::create, rollouts::list, rollouts::read, rollouts::items,
        rollouts::site_items, rollouts::pause, rollouts::resume, rollouts::abort,
        rollouts::retry_site, rollouts::skip_site,
        organisations::early_adopter, organisations::set_early_adopter,
        organisations::registration, organisations::state_registration,
        gaiax::provider, gaiax::provider_registration, gaiax::organisation,
        gaiax::organisation_registration, gaiax::site, gaiax::offering, gaiax::terms,
    ),
    components(schemas(crate::problem::Problem, tokens::IssuedToken, audit::ChainStatus,
        users::IssuedPasswordReset, verbund_domain::account::PasswordReset,
        verbund_domain::account::Revoked, verbund_domain::booking::DependencyChoice)),
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
/// a resource, in its path or its body, may find none (404); input can break the
/// document (400: a query parameter out of its bounds, a body that is not JSON or not of
/// its schema); a body can also break a rule no schema states (422), be too large (413)
/// or not JSON at all (415); and a change can conflict with the state it meets (409). A
/// handler documents only its successes and what is special about a problem (its own
/// description).
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
        problems.push((400, "input that breaks this document: a parameter that does not parse or lies outside its bounds, a body that is not JSON or not of its schema; `field` names the offending part of a body as a JSON pointer"));
    }
    if body {
        problems.push((
            422,
            "a body of this document's schema that breaks a rule no schema states (one across fields, against stored data, or inside free-form content); `field` names the offending part as a JSON pointer",
        ));
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

/// The served document: [`ApiDoc`] with the rules of form its derived schemas cannot
/// carry (see the module), built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the OpenAPI document does not serialise");
            Value::Null
        });
        add_rules(&mut doc);
        doc
    })
}

/// A rule as JSON Schema keywords, to be added to a component.
type Rule = fn() -> Value;

/// Rules between fields that the domain states as JSON Schema, from the functions its
/// validators decide by, with the components they belong to.
const CROSS_FIELD_RULES: [(&str, Rule); 3] = [
    (
        "OrganisationSpec",
        verbund_domain::directory::OrganisationSpec::level_rule_schema,
    ),
    (
        "Membership",
        verbund_domain::account::Membership::scope_rule_schema,
    ),
    (
        "PolicySubmission",
        verbund_placement::PolicySubmission::owner_rule_schema,
    ),
];

/// Components whose `oneOf` variants take no other fields than their own (serde's
/// `deny_unknown_fields` on an enum, which the derived schema does not say).
const CLOSED_VARIANTS: [&str; 1] = ["Package"];

/// The name of the component of any JSON value without NUL (see [`nul_free`]).
const JSON_VALUE: &str = "JsonValue";

fn add_rules(doc: &mut Value) {
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, rule) in CROSS_FIELD_RULES {
            if let (Some(Value::Object(schema)), Value::Object(rule)) =
                (schemas.get_mut(name), rule())
            {
                schema.extend(rule);
            }
        }
        for name in CLOSED_VARIANTS {
            if let Some(variants) = schemas
                .get_mut(name)
                .and_then(|s| s.get_mut("oneOf"))
                .and_then(Value::as_array_mut)
            {
                for v in variants.iter_mut().filter_map(Value::as_object_mut) {
                    v.insert("additionalProperties".into(), Value::Bool(false));
                }
            }
        }
        let no_nul = verbund_domain::name::NUL_FREE_PATTERN;
        schemas.insert(
            JSON_VALUE.into(),
            json!({
                "description": "Any JSON value without the NUL character (U+0000) in its strings and keys: no database stores it.",
                "anyOf": [
                    {"type": ["null", "boolean", "number"]},
                    {"type": "string", "pattern": no_nul},
                    {"type": "array", "items": {"$ref": format!("#/components/schemas/{JSON_VALUE}")}},
                    {"type": "object",
                     "propertyNames": {"type": "string", "pattern": no_nul},
                     "additionalProperties": {"$ref": format!("#/components/schemas/{JSON_VALUE}")}},
                ],
            }),
        );
        // A problem quotes the input it refuses, NUL included.
        for (name, schema) in schemas.iter_mut() {
            if name != JSON_VALUE && name != "Problem" {
                nul_free(schema);
            }
        }
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for op in paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|item| item.values_mut())
        {
            for parameter in op
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let pattern = parameter
                    .get("name")
                    .and_then(Value::as_str)
                    .and_then(parameter_pattern);
                if let Some(schema) = parameter.get_mut("schema") {
                    if let (Some(pattern), Some(schema)) = (pattern, schema.as_object_mut()) {
                        schema.insert("pattern".into(), Value::String(pattern.into()));
                    }
                    nul_free(schema);
                }
            }
            let bodies = op
                .pointer_mut("/requestBody/content")
                .and_then(Value::as_object_mut)
                .into_iter()
                .flat_map(|content| content.values_mut());
            for media in bodies {
                if let Some(schema) = media.get_mut("schema") {
                    nul_free(schema);
                }
            }
        }
    }
}

/// The pattern of a parameter whose form a constant states (the annotations of a
/// parameter take only literals).
fn parameter_pattern(name: &str) -> Option<&'static str> {
    match name {
        "Idempotency-Key" => Some(crate::idempotency::KEY.source()),
        _ => None,
    }
}

/// States on `schema` and everything in it that no string and no key holds NUL, which
/// the extractors refuse (`crate::extract`): a string without a pattern, an enum or a
/// format of dates gets [`verbund_domain::name::NUL_FREE_PATTERN`] (the patterns of the
/// domain exclude NUL themselves, which its tests pin), and a free-form object (one
/// that names no properties) takes any [`JSON_VALUE`].
fn nul_free(schema: &mut Value) {
    let Value::Object(s) = schema else {
        return;
    };
    if s.contains_key("$ref") {
        return;
    }
    let types: Vec<String> = match s.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    };
    let dated = matches!(
        s.get("format").and_then(Value::as_str),
        Some("date-time" | "date")
    );
    let constrained = ["pattern", "enum", "const"]
        .iter()
        .any(|k| s.contains_key(*k));
    if types.iter().any(|t| t == "string") && !constrained && !dated {
        s.insert(
            "pattern".into(),
            Value::String(verbund_domain::name::NUL_FREE_PATTERN.into()),
        );
    }
    let open = [
        "properties",
        "additionalProperties",
        "propertyNames",
        "patternProperties",
        "oneOf",
        "anyOf",
        "allOf",
    ];
    if types.iter().any(|t| t == "object") && !open.iter().any(|k| s.contains_key(*k)) {
        s.insert(
            "propertyNames".into(),
            json!({"type": "string", "pattern": verbund_domain::name::NUL_FREE_PATTERN}),
        );
        s.insert(
            "additionalProperties".into(),
            json!({"$ref": format!("#/components/schemas/{JSON_VALUE}")}),
        );
        return;
    }
    for key in [
        "items",
        "additionalProperties",
        "propertyNames",
        "not",
        "contains",
        "if",
        "then",
        "else",
    ] {
        if let Some(sub) = s.get_mut(key) {
            nul_free(sub);
        }
    }
    for key in ["properties", "patternProperties"] {
        if let Some(Value::Object(props)) = s.get_mut(key) {
            props.values_mut().for_each(nul_free);
        }
    }
    for key in ["oneOf", "anyOf", "allOf", "prefixItems"] {
        if let Some(Value::Array(items)) = s.get_mut(key) {
            items.iter_mut().for_each(nul_free);
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(document().clone()) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string schema below `schema` that a pattern, an enum or a format of dates
    /// does not constrain, and every object open to any keys.
    fn unconstrained(schema: &Value, at: &str, out: &mut Vec<String>) {
        match schema {
            Value::Object(s) => {
                let is = |t: &str| match s.get("type") {
                    Some(Value::String(x)) => x == t,
                    Some(Value::Array(xs)) => xs.iter().any(|x| x == t),
                    _ => false,
                };
                let has = |k: &str| s.contains_key(k);
                let dated = matches!(
                    s.get("format").and_then(Value::as_str),
                    Some("date-time" | "date")
                );
                if is("string") && !has("pattern") && !has("enum") && !has("const") && !dated {
                    out.push(at.to_string());
                }
                if is("object") && !has("properties") && !has("additionalProperties") {
                    out.push(format!("{at} (object)"));
                }
                for (k, v) in s {
                    unconstrained(v, &format!("{at}/{k}"), out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    unconstrained(v, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_string_a_request_carries_is_stated_free_of_nul() {
        let doc = document();
        let mut found = Vec::new();
        for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
            if name != "Problem" {
                unconstrained(schema, name, &mut found);
            }
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let at = format!("{method} {path}");
                unconstrained(&op["parameters"], &at, &mut found);
                unconstrained(&op["requestBody"], &at, &mut found);
            }
        }
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn the_rules_across_fields_reach_their_components() {
        let schemas = &document()["components"]["schemas"];
        for (name, _) in CROSS_FIELD_RULES {
            assert!(schemas[name]["oneOf"].is_array(), "{name}");
        }
        for name in CLOSED_VARIANTS {
            for variant in schemas[name]["oneOf"].as_array().unwrap() {
                assert_eq!(variant["additionalProperties"], false, "{name}");
            }
        }
        let key = &document()["paths"]["/api/v1/bookings"]["post"]["parameters"];
        assert!(
            key.as_array()
                .unwrap()
                .iter()
                .any(|p| p["schema"]["pattern"] == crate::idempotency::KEY.source()),
            "{key}"
        );
    }
}
