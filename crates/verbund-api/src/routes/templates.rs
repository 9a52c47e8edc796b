//! `/templates` and the lineage of adopted bookings: Nachnutzung (see
//! `verbund_domain::template`). An organisation publishes a booking's configuration as a
//! template for its Land or for everyone; another adopts it — a booking made through the
//! same booking service, its lineage recorded in the booking's transaction — and later
//! takes over what changed in the template since.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use verbund_domain::booking::{Booking, BookingPatch, BookingSpec};
use verbund_domain::page::{Page, PageRequest};
use verbund_domain::template::{differences, take_over, Template, TemplateSpec};
use verbund_policy::authz::{Act, Target};
use verbund_store::{Adoption, NewTemplate, TemplateFilter};

use super::bookings::{visible_scope, Visible};
use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery};
use crate::idempotency::{IdempotencyKey, Replayed};
use crate::problem::{ApiError, ApiResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/templates", get(list).post(create))
        .route("/templates/{id}", get(read).put(update))
        .route("/templates/{id}/adopt", post(adopt))
        .route("/bookings/{id}/template", get(lineage))
        .route("/bookings/{id}/template/take-over", post(take_over_changes))
}

/// The organisations a caller acts for and their Länder: whose templates it sees beyond
/// those for everyone. `None`: every template (the federation, auditors).
async fn audience(
    state: &AppState,
    caller: &Caller,
) -> ApiResult<Option<(Vec<String>, Vec<String>)>> {
    Ok(match visible_scope(caller) {
        Visible::All => None,
        Visible::Organisations(scope) => {
            let orgs = state.store.scope_members(&scope).await?;
            let mut lands: Vec<String> = state
                .store
                .organisations_by_ids(&orgs)
                .await?
                .into_iter()
                .filter_map(|o| o.land)
                .collect();
            lands.sort();
            lands.dedup();
            Some((orgs.to_vec(), lands))
        }
        Visible::Provider(_) => Some((Vec::new(), Vec::new())),
    })
}

/// Template `id` if `caller` may see it; 404 otherwise (its existence is its publisher's).
async fn visible(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Template> {
    let hidden = || ApiError::NotFound(format!("template `{id}` not found"));
    caller.require(Act::Read, &Target::new("offering"))?;
    let t = state.store.get_template(id).await.map_err(|_| hidden())?;
    let Some((orgs, lands)) = audience(state, caller).await? else {
        return Ok(t);
    };
    let land = state.store.template_land(id).await?;
    let seen = orgs.contains(&t.organisation)
        || lands
            .iter()
            .any(|l| verbund_domain::template::visible_to(t.visibility, land.as_deref(), Some(l)))
        || t.visibility == verbund_domain::template::Visibility::Everyone;
    if seen {
        Ok(t)
    } else {
        Err(hidden())
    }
}

/// Whether organisation `org` (by its Land) may adopt template `t`.
async fn adoptable_by(state: &AppState, t: &Template, org: &str) -> ApiResult<bool> {
    if t.organisation == org {
        return Ok(true);
    }
    let land = state.store.template_land(&t.id).await?;
    let theirs = state.store.get_organisation(org).await?.land;
    Ok(verbund_domain::template::visible_to(
        t.visibility,
        land.as_deref(),
        theirs.as_deref(),
    ))
}

/// What a template is published from: one of the organisation's bookings (not a
/// tenancy, not refused or gone), readable and changeable by the caller.
async fn source(state: &AppState, caller: &Caller, spec: &TemplateSpec) -> ApiResult<Booking> {
    let b = super::bookings::load_writable(state, caller, &spec.booking).await?;
    if b.instance.is_some() {
        return Err(verbund_domain::Invalid::meaning(
            "/booking",
            "a tenancy's configuration belongs to its shared instance's offering: publish a booking of your own",
        )
        .into());
    }
    if b.state.is_final() {
        return Err(verbund_domain::Invalid::meaning(
            "/booking",
            format!("the booking is `{}`: publish one that runs", b.state),
        )
        .into());
    }
    Ok(b)
}

/// The Land key of a booking's organisation (a template's `visibility: land`).
async fn land_of(state: &AppState, b: &Booking) -> ApiResult<Option<String>> {
    Ok(state.store.get_organisation(&b.organisation).await?.land)
}

/// Publish a booking's configuration (without its secrets) and plan as a template.
#[utoipa::path(post, path = "/api/v1/templates", operation_id = "create_template", tag = "templates",
    request_body = TemplateSpec,
    responses((status = 201, body = Template)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(spec): ApiJson<TemplateSpec>,
) -> ApiResult<(StatusCode, Json<Template>)> {
    spec.validate()?;
    let b = source(&state, &caller, &spec).await?;
    let land = land_of(&state, &b).await?;
    let t = state
        .store
        .create_template(
            &caller.actor(),
            &NewTemplate::of(&spec, &b, land.as_deref()),
            state.now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(t)))
}

/// Change a template: its texts and visibility, and a new version from its booking as
/// it is now (when that booking's plan or configuration changed).
#[utoipa::path(put, path = "/api/v1/templates/{id}", operation_id = "update_template", tag = "templates",
    request_body = TemplateSpec,
    responses((status = 200, body = Template)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<TemplateSpec>,
) -> ApiResult<Json<Template>> {
    spec.validate()?;
    let t = visible(&state, &caller, &id).await?;
    let chain = state.store.organisation_chain(&t.organisation).await?;
    caller.require(Act::Write, &Target::new("booking").in_organisation(chain))?;
    let b = source(&state, &caller, &spec).await?;
    if b.organisation != t.organisation {
        return Err(verbund_domain::Invalid::meaning(
            "/booking",
            "a template is changed from a booking of the organisation that published it",
        )
        .into());
    }
    let land = land_of(&state, &b).await?;
    Ok(Json(
        state
            .store
            .update_template(
                &caller.actor(),
                &id,
                &NewTemplate::of(&spec, &b, land.as_deref()),
                state.now(),
            )
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TemplateQuery {
    pub offering: Option<String>,
    #[serde(default, deserialize_with = "verbund_domain::page::deserialize_limit")]
    #[param(value_type = Option<verbund_domain::page::Limit>, inline)]
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// List the templates the caller may see: for everyone, for its Land, its own.
#[utoipa::path(get, path = "/api/v1/templates", operation_id = "list_templates", tag = "templates",
    params(TemplateQuery),
    responses((status = 200, body = Page<Template>)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<TemplateQuery>,
) -> ApiResult<Json<Page<Template>>> {
    caller.require(Act::Read, &Target::new("offering"))?;
    let filter = TemplateFilter {
        offering: q.offering,
        visible_to: audience(&state, &caller).await?,
    };
    let page = PageRequest {
        limit: q.limit,
        after: q.after,
    };
    Ok(Json(state.store.list_templates(&filter, &page).await?))
}

/// Read a template (its current version).
#[utoipa::path(get, path = "/api/v1/templates/{id}", operation_id = "read_template", tag = "templates",
    responses((status = 200, body = Template)),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Template>> {
    Ok(Json(visible(&state, &caller, &id).await?))
}

/// What adopting a template asks for: the organisation, and the booking's configuration
/// and plan as the adopter wants them (the template's, changed where it differs).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdoptRequest {
    /// Id of the adopting organisation.
    pub organisation: String,
    /// The booking's configuration, valid against the offering's schema (default: the
    /// template's).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    /// The booking's plan (default: the template's).
    #[serde(default)]
    #[schema(schema_with = optional_plan)]
    pub plan: Option<String>,
}

fn optional_plan() -> utoipa::openapi::schema::Object {
    verbund_domain::directory::nullable(verbund_domain::name::name_schema())
}

/// A booking adopted from a template, and where its configuration differs from it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Adopted {
    #[serde(flatten)]
    pub created: super::bookings::BookingCreated,
    /// JSON pointers into the configuration at which the booking differs from the
    /// template's version it adopted.
    pub differences: Vec<String>,
}

/// Adopt a template: book its offering for an organisation, pre-filled from it; the
/// lineage (template, version, organisation) is recorded with the booking. With an
/// `Idempotency-Key`, a retry answers the booking the first request made.
#[utoipa::path(post, path = "/api/v1/templates/{id}/adopt", operation_id = "adopt_template", tag = "templates",
    request_body = AdoptRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = crate::idempotency::DESCRIPTION)),
    responses((status = 201, body = Adopted, headers(("Idempotent-Replayed" = bool,
        description = "`true` when this answers a retry with the first request's booking")))),
    security(("bearer" = [])))]
pub async fn adopt(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<AdoptRequest>,
) -> ApiResult<(StatusCode, Replayed, Json<Adopted>)> {
    let chain = super::organisation_chain(&state, &req.organisation, "/organisation").await?;
    caller.require(Act::Write, &Target::new("booking").in_organisation(chain))?;
    let t = visible(&state, &caller, &id).await?;
    if !adoptable_by(&state, &t, &req.organisation).await? {
        return Err(ApiError::NotFound(format!("template `{id}` not found")));
    }
    let spec = BookingSpec {
        organisation: req.organisation.clone(),
        offering: t.offering.clone(),
        plan: req.plan.clone().unwrap_or_else(|| t.plan.clone()),
        config: req.config.clone().unwrap_or_else(|| t.config.clone()),
        channel: "stable".into(),
        windows: Vec::new(),
        ending: None,
        dependencies: Default::default(),
    };
    let adoption = Adoption {
        template: t.id.clone(),
        version: t.version,
    };
    let (status, replayed, Json(created)) =
        super::bookings::book_once(&state, &caller, key, &spec, Some(adoption)).await?;
    Ok((
        status,
        replayed,
        Json(Adopted {
            differences: differences(&t.config, &created.booking.config),
            created,
        }),
    ))
}

/// Where a booking's configuration came from, and what changed on either side.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LineageView {
    #[serde(flatten)]
    pub lineage: verbund_domain::template::Lineage,
    /// The template's name and publisher, as it stands.
    pub display_name: String,
    pub publisher: String,
    /// Its current version.
    pub current_version: u32,
    /// Where the booking differs from the version it adopted (its own changes).
    pub differences: Vec<String>,
    /// What the template changed since that version (what it can take over).
    pub changes: Vec<String>,
}

/// The lineage of booking `b`, if it was adopted from a template.
pub async fn lineage_of(state: &AppState, b: &Booking) -> ApiResult<Option<LineageView>> {
    let Some(lineage) = state.store.booking_lineage(&b.id).await? else {
        return Ok(None);
    };
    let t = state.store.get_template(&lineage.template).await?;
    let (_, adopted) = state.store.template_version(&t.id, lineage.version).await?;
    let publisher = state
        .store
        .get_organisation(&t.organisation)
        .await
        .map_or_else(|_| t.organisation.clone(), |o| o.name);
    Ok(Some(LineageView {
        display_name: t.display_name.clone(),
        publisher,
        current_version: t.version,
        differences: differences(&adopted, &b.config),
        changes: differences(&adopted, &t.config),
        lineage,
    }))
}

/// Read where a booking's configuration came from (404 when it was not adopted).
#[utoipa::path(get, path = "/api/v1/bookings/{id}/template", operation_id = "read_booking_lineage", tag = "templates",
    responses((status = 200, body = LineageView)),
    security(("bearer" = [])))]
pub async fn lineage(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<LineageView>> {
    let b = super::bookings::load_readable(&state, &caller, &id).await?;
    lineage_of(&state, &b).await?.map(Json).ok_or_else(|| {
        ApiError::NotFound(format!("booking `{id}` was not adopted from a template"))
    })
}

/// Take over what changed in a booking's template since the version it adopted: each
/// changed value set in its configuration (the rest it set stays), validated as any
/// change; the lineage then names the template's current version.
#[utoipa::path(post, path = "/api/v1/bookings/{id}/template/take-over", operation_id = "take_over_template", tag = "templates",
    responses((status = 200, body = Booking)),
    security(("bearer" = [])))]
pub async fn take_over_changes(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Booking>> {
    let b = super::bookings::load_writable(&state, &caller, &id).await?;
    let Some(lineage) = state.store.booking_lineage(&id).await? else {
        return Err(ApiError::NotFound(format!(
            "booking `{id}` was not adopted from a template"
        )));
    };
    let t = state.store.get_template(&lineage.template).await?;
    if lineage.version == t.version {
        // Nothing changed since: nothing to take over, nothing recorded.
        return Ok(Json(b));
    }
    let (_, adopted) = state.store.template_version(&t.id, lineage.version).await?;
    let patch = BookingPatch {
        config: Some(take_over(&b.config, &adopted, &t.config)),
        ..Default::default()
    };
    let bookings = verbund_placement::Bookings::new(state.store.adopting(Adoption {
        template: t.id.clone(),
        version: t.version,
    }));
    Ok(Json(
        bookings
            .patch(&caller.actor(), &id, &patch, state.now())
            .await?,
    ))
}
