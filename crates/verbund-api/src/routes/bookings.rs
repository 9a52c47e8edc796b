//! `/bookings`, `/placement/explain` and `/compliance`: the marketplace's heart.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use verbund_domain::account::Role;
use verbund_domain::booking::{Booking, BookingPatch, BookingSpec, BookingState};
use verbund_domain::page::{Page, PageRequest};
use verbund_domain::report::{BookingStatus, SiteHealth};
use verbund_placement::ReevaluationSummary;
use verbund_policy::authz::{Act, Target};
use verbund_policy::PlacementDecision;
use verbund_store::{BookingFilter, OrganisationScope, StoreError};

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery};
use crate::idempotency::{self, IdempotencyKey, Replayed};
use crate::problem::{ApiError, ApiResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/bookings", get(list).post(create))
        .route("/bookings/{id}", get(read).patch(update).delete(cancel))
        .route("/bookings/{id}/approve", post(approve))
        .route("/bookings/{id}/reject", post(reject))
        .route("/bookings/{id}/end", post(end))
        .route("/bookings/{id}/export/retry", post(retry_export))
        .route("/bookings/{id}/placement", get(placement))
        .route("/placement/explain", post(explain))
        .route("/placement/preview", post(preview))
        .route("/compliance/reevaluate", post(reevaluate))
}

/// The authorization target for a booking: in its organisation, on its site's provider.
async fn target(state: &AppState, b: &Booking) -> ApiResult<Target> {
    let chain = state.store.organisation_chain(&b.organisation).await?;
    let mut t = Target::new("booking").in_organisation(chain);
    if let Some(site) = &b.site {
        if let Ok(s) = state.store.get_site(site).await {
            t = t.provider(s.spec.provider);
        }
    }
    Ok(t)
}

/// Loads a booking the caller may read (others answer 404).
pub(crate) async fn load_readable(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<Booking> {
    load(state, caller, id, Act::Read).await
}

/// Loads a booking the caller may change (others answer 404, or 403 when it may read it).
pub(crate) async fn load_writable(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<Booking> {
    load(state, caller, id, Act::Write).await
}

/// Loads a booking the caller may `act` on; others answer 404 (their existence is secret).
async fn load(state: &AppState, caller: &Caller, id: &str, act: Act) -> ApiResult<Booking> {
    let hidden = || ApiError::NotFound(format!("booking `{id}` not found"));
    let b = state.store.get_booking(id).await.map_err(|_| hidden())?;
    let t = target(state, &b).await?;
    if !caller.may(Act::Read, &t) {
        return Err(hidden());
    }
    caller.require(act, &t)?;
    Ok(b)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BookingQuery {
    pub organisation: Option<String>,
    pub offering: Option<String>,
    pub site: Option<String>,
    pub state: Option<BookingState>,
    /// Only bookings flagged as no longer compliant.
    #[serde(default)]
    pub noncompliant: bool,
    #[serde(default, deserialize_with = "verbund_domain::page::deserialize_limit")]
    #[param(value_type = Option<verbund_domain::page::Limit>, inline)]
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// List the bookings the caller may see.
#[utoipa::path(get, path = "/api/v1/bookings", operation_id = "list_bookings", tag = "bookings", params(BookingQuery),
    responses((status = 200, body = Page<Booking>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<BookingQuery>,
) -> ApiResult<Json<Page<Booking>>> {
    let mut filter = BookingFilter {
        organisation: q.organisation,
        offering: q.offering,
        site: q.site,
        state: q.state,
        noncompliant: q.noncompliant,
        ..Default::default()
    };
    match visible_scope(&caller) {
        Visible::All => {}
        Visible::Organisations(scope) => filter.scope_organisations = Some(scope),
        Visible::Provider(provider) => filter.scope_provider = Some(provider),
    }
    let page = state
        .store
        .list_bookings(
            &filter,
            &PageRequest {
                limit: q.limit,
                after: q.after,
            },
        )
        .await?;
    let mut items = page.items;
    // A caller who may read anything (the federation's administrators and auditors)
    // keeps the page as it is, without reading the organisations' chains.
    if !caller.may_every(Act::Read) {
        let allowed = readable_organisations(&state, &caller, &filter, &items).await?;
        items.retain(|b| allowed.get(&b.organisation).copied().unwrap_or(false));
    }
    Ok(Json(Page {
        items,
        next: page.next,
    }))
}

/// Which organisations of a page of bookings the caller may read bookings of. Every listed
/// booking passes the same decision as a single read. The target depends only on the
/// booking's organisation (and the operator's provider, the same for the whole list), so
/// one target per organisation is judged, all in one evaluation, with the chains of all
/// the page's organisations read in one query.
async fn readable_organisations(
    state: &AppState,
    caller: &Caller,
    filter: &BookingFilter,
    page: &[Booking],
) -> ApiResult<HashMap<String, bool>> {
    let mut organisations: Vec<String> = page.iter().map(|b| b.organisation.clone()).collect();
    organisations.sort();
    organisations.dedup();
    let chains = state.store.organisation_chains(&organisations).await?;
    let targets = organisations
        .iter()
        .map(|o| {
            let chain = chains.get(o).cloned().ok_or_else(|| {
                ApiError::Internal(format!(
                    "a listed booking names the unknown organisation `{o}`"
                ))
            })?;
            let t = Target::new("booking").in_organisation(chain);
            // The SQL scope already restricted these to the operator's sites.
            Ok(match &filter.scope_provider {
                Some(provider) => t.provider(provider.clone()),
                None => t,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(organisations
        .into_iter()
        .zip(caller.may_each_judged(Act::Read, &targets))
        .collect())
}

/// Which bookings a caller may see in lists and aggregates.
pub(crate) enum Visible {
    /// The federation's admins and auditors.
    All,
    /// Members and admins of organisations: their own (and, delegated, everything below
    /// them), as the memberships name them; the store walks the hierarchy in its query.
    Organisations(OrganisationScope),
    /// A provider's operators: what runs on the provider's sites.
    Provider(String),
}

pub(crate) fn visible_scope(caller: &Caller) -> Visible {
    let p = &caller.0;
    if p.has_role(Role::FederationAdmin) || p.has_role(Role::Auditor) {
        return Visible::All;
    }
    let scope = caller.acting_for();
    let operated = p
        .memberships
        .iter()
        .find(|m| m.role == Role::ProviderOperator)
        .and_then(|m| m.provider.clone());
    match (scope.is_empty(), operated) {
        (false, _) | (true, None) => Visible::Organisations(scope),
        (true, Some(provider)) => Visible::Provider(provider),
    }
}

/// A new booking with everything its request caused.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BookingCreated {
    pub booking: Booking,
    /// Dependency bookings created for it (existing ones are only referenced).
    pub dependencies: Vec<Booking>,
    /// Why it was placed where it was, or rejected.
    pub placement: Option<PlacementDecision>,
}

/// Book an offering.
///
/// With an `Idempotency-Key`, a retry of the same request answers the booking the first
/// one made instead of booking again (see `crate::idempotency`).
#[utoipa::path(post, path = "/api/v1/bookings", operation_id = "create_booking", tag = "bookings", request_body = BookingSpec,
    params(("Idempotency-Key" = Option<String>, Header, description = crate::idempotency::DESCRIPTION)),
    responses(
        (status = 201, body = BookingCreated, headers(("Idempotent-Replayed" = bool,
            description = "`true` when this answers a retry with the first request's booking"))),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json",
            description = "a malformed `Idempotency-Key`"),
        (status = 422, body = crate::problem::Problem, content_type = "application/problem+json",
            description = "an invalid booking, or an `Idempotency-Key` used for another request")),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(spec): ApiJson<BookingSpec>,
) -> ApiResult<(StatusCode, Replayed, Json<BookingCreated>)> {
    let chain = super::organisation_chain(&state, &spec.organisation, "/organisation").await?;
    caller.require(Act::Write, &Target::new("booking").in_organisation(chain))?;
    book_once(&state, &caller, key, &spec, None).await
}

/// Books `spec` (checked for the caller by the handler) once: with an `Idempotency-Key`,
/// a retry answers the booking the first request made. With an `adoption`, the booking's
/// lineage is recorded in its transaction as well (`Store::adopting`). The one booking
/// path of `POST /bookings` and `POST /templates/{id}/adopt`.
pub(crate) async fn book_once(
    state: &AppState,
    caller: &Caller,
    key: Option<String>,
    spec: &BookingSpec,
    adoption: Option<verbund_store::Adoption>,
) -> ApiResult<(StatusCode, Replayed, Json<BookingCreated>)> {
    let now = state.now();
    let store = match adoption {
        Some(a) => state.store.adopting(a),
        None => state.store.clone(),
    };
    let Some(key) = key else {
        let created = verbund_placement::Bookings::new(store)
            .book(&caller.actor(), spec, now)
            .await?;
        return answer(state, created, false).await;
    };
    let key = verbund_store::IdempotencyKey {
        account: caller.0.user_id.clone(),
        key,
        organisation: spec.organisation.clone(),
        fingerprint: idempotency::fingerprint(spec)?,
        expires_at: idempotency::expiry(now),
    };
    if let Some(earlier) = replay(state, &key, now).await? {
        return Ok(earlier);
    }
    // The key is recorded in the booking's transaction; a retry that raced this one
    // past the check above finds it there and answers what that one booked.
    let bookings = verbund_placement::Bookings::new(store.idempotent(key.clone()));
    match bookings.book(&caller.actor(), spec, now).await {
        Ok(created) => answer(state, created, false).await,
        Err(verbund_placement::BookingError::Store(StoreError::Conflict(c))) => {
            match replay(state, &key, now).await? {
                Some(earlier) => Ok(earlier),
                None => Err(ApiError::Conflict(c)),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// What a booking request answers: the booking, the dependency bookings it created,
/// and its placement decision.
async fn answer(
    state: &AppState,
    mut created: Vec<Booking>,
    replayed: bool,
) -> ApiResult<(StatusCode, Replayed, Json<BookingCreated>)> {
    if created.is_empty() {
        return Err(ApiError::Internal(
            "a booking request created nothing".into(),
        ));
    }
    let booking = created.remove(0);
    let placement = state
        .store
        .booking_decision(&booking.id)
        .await?
        .and_then(|v| serde_json::from_value(v).ok());
    Ok((
        StatusCode::CREATED,
        Replayed(replayed),
        Json(BookingCreated {
            booking,
            dependencies: created,
            placement,
        }),
    ))
}

/// The answer to a retry: the booking an earlier request made with `key` (and the
/// dependency bookings it created), or a refusal if that request was another one;
/// `None` when the key is new (or expired).
async fn replay(
    state: &AppState,
    key: &verbund_store::IdempotencyKey,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<Option<(StatusCode, Replayed, Json<BookingCreated>)>> {
    let Some(earlier) = state
        .store
        .idempotent_booking(&key.account, &key.key, now)
        .await?
    else {
        return Ok(None);
    };
    idempotency::check_same_request(&earlier, &key.fingerprint)?;
    let booking = state.store.get_booking(&earlier.booking).await?;
    let mut dependencies = state.store.bookings_by_ids(&booking.dependencies).await?;
    dependencies.retain(|d| d.dependency_of.as_deref() == Some(booking.id.as_str()));
    dependencies.sort_by_key(|d| booking.dependencies.iter().position(|id| *id == d.id));
    let mut created = vec![booking];
    created.extend(dependencies);
    answer(state, created, true).await.map(Some)
}

/// A booking with what its site last reported about it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BookingView {
    #[serde(flatten)]
    pub booking: Booking,
    /// Absent until its site reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observed>,
    /// The bookings that depend on this one and still need it (it cannot be cancelled
    /// before them): those that bound it and the one it was booked with.
    pub dependents: Vec<verbund_store::Dependent>,
    /// A shared instance's tenancies that still need it (listed at
    /// `/bookings/{id}/tenancies`; it cannot be cancelled before them); 0 for any other
    /// booking.
    pub tenancies: u64,
    /// The template it was adopted from, if it was (see `/bookings/{id}/template`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<super::templates::LineageView>,
}

/// The last report about a booking, and whether its site still reports.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Observed {
    #[serde(flatten)]
    pub status: BookingStatus,
    /// The site's health now: `unknown` once it is silent past its interval, and with
    /// it everything it last said about this booking.
    pub site_health: SiteHealth,
    /// Reported by `verbund simulate`, not by a real cluster.
    pub simulated: bool,
}

/// Read a booking, with what its site last reported about it.
#[utoipa::path(get, path = "/api/v1/bookings/{id}", operation_id = "read_booking", tag = "bookings",
    responses((status = 200, body = BookingView), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<BookingView>> {
    let booking = load(&state, &caller, &id, Act::Read).await?;
    // A tenancy has no namespace of its own: what its site reports of its instance is
    // what it runs on.
    let observed_as = booking.instance.as_ref().unwrap_or(&booking.id);
    let status = state
        .store
        .booking_statuses(std::slice::from_ref(observed_as))
        .await?
        .pop();
    let observed = match status {
        Some(status) => {
            let site = state.store.site_status(&status.site).await?;
            let now = state.now();
            Some(Observed {
                site_health: site
                    .as_ref()
                    .map_or(SiteHealth::Unknown, |s| s.health_at(now)),
                simulated: site.is_some_and(|s| s.simulated),
                status,
            })
        }
        None => None,
    };
    let dependents = state.store.booking_dependents(&booking.id).await?;
    let tenancies = state
        .store
        .tenancy_counts(std::slice::from_ref(&booking.id))
        .await?
        .remove(&booking.id)
        .unwrap_or(0);
    let template = super::templates::lineage_of(&state, &booking).await?;
    Ok(Json(BookingView {
        booking,
        observed,
        dependents,
        tenancies,
        template,
    }))
}

/// Change plan, configuration or update channel.
#[utoipa::path(patch, path = "/api/v1/bookings/{id}", operation_id = "update_booking", tag = "bookings", request_body = BookingPatch,
    responses((status = 200, body = Booking), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<BookingPatch>,
) -> ApiResult<Json<Booking>> {
    load(&state, &caller, &id, Act::Write).await?;
    Ok(Json(
        state
            .bookings
            .patch(&caller.actor(), &id, &patch, state.now())
            .await?,
    ))
}

/// Cancel a booking; its data is retained for the offering's retention period.
#[utoipa::path(delete, path = "/api/v1/bookings/{id}", operation_id = "cancel_booking", tag = "bookings",
    responses((status = 200, body = Booking), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Booking>> {
    if let Err(refused) = load(&state, &caller, &id, Act::Delete).await {
        // The operator of a shared instance ends the tenancies in it, as its tenants do.
        operated_tenancy(&state, &caller, &id)
            .await
            .ok_or(refused)?;
    }
    let cancelled = state
        .bookings
        .cancel(&caller.actor(), &id, state.now())
        .await?;
    // The lifecycle sweep moves it on to `retained` now, not at the next timer: its
    // desired state goes, and the site tears it down.
    state.reevaluate.notify_one();
    Ok(Json(cancelled))
}

/// Tenancy `id`, if the caller may cancel the shared instance it runs in.
async fn operated_tenancy(state: &AppState, caller: &Caller, id: &str) -> Option<Booking> {
    let b = state.store.get_booking(id).await.ok()?;
    let instance = b.instance.as_deref()?;
    load(state, caller, instance, Act::Delete).await.ok()?;
    Some(b)
}

/// How an organisation ends a booking now.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndRequest {
    /// Where its data is exported; a temporary booking's own target when left out.
    #[serde(default)]
    pub export_to: Option<verbund_domain::ending::ExportTarget>,
}

/// End a booking now, with its data exported before it is torn down (see the booking's
/// `ending`): its desired state gains the offering's export Job; once its site reports
/// the export done and its checksums agree, the booking is cancelled and its record
/// kept. Nothing is torn down before.
#[utoipa::path(post, path = "/api/v1/bookings/{id}/end", operation_id = "end_booking", tag = "bookings", request_body = EndRequest,
    responses((status = 200, body = Booking), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn end(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<EndRequest>,
) -> ApiResult<Json<Booking>> {
    load(&state, &caller, &id, Act::Delete).await?;
    Ok(Json(
        state
            .bookings
            .end_now(&caller.actor(), &id, request.export_to, state.now())
            .await?,
    ))
}

/// Start a failed data export again: a new attempt, with an export Job of its own.
#[utoipa::path(post, path = "/api/v1/bookings/{id}/export/retry", operation_id = "retry_booking_export", tag = "bookings",
    responses((status = 200, body = Booking), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn retry_export(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Booking>> {
    load(&state, &caller, &id, Act::Delete).await?;
    Ok(Json(
        state
            .bookings
            .retry_export(&caller.actor(), &id, state.now())
            .await?,
    ))
}

/// Approve a booking that awaits approval; it is placed now.
#[utoipa::path(post, path = "/api/v1/bookings/{id}/approve", operation_id = "approve_booking", tag = "bookings",
    responses((status = 200, body = Booking), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Booking>> {
    load(&state, &caller, &id, Act::Approve).await?;
    Ok(Json(
        state
            .bookings
            .approve(&caller.actor(), &id, state.now())
            .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    pub reason: String,
}

/// Refuse a booking that awaits approval.
#[utoipa::path(post, path = "/api/v1/bookings/{id}/reject", operation_id = "reject_booking", tag = "bookings", request_body = Rejection,
    responses((status = 200, body = Booking), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<Rejection>,
) -> ApiResult<Json<Booking>> {
    load(&state, &caller, &id, Act::Approve).await?;
    Ok(Json(
        state
            .bookings
            .reject(&caller.actor(), &id, &r.reason, state.now())
            .await?,
    ))
}

/// The stored placement decision of a booking, with every candidate's verdict.
#[utoipa::path(get, path = "/api/v1/bookings/{id}/placement", operation_id = "read_booking_placement", tag = "bookings",
    responses((status = 200, body = PlacementDecision), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn placement(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<PlacementDecision>> {
    load(&state, &caller, &id, Act::Read).await?;
    let d =
        state.store.booking_decision(&id).await?.ok_or_else(|| {
            ApiError::NotFound(format!("booking `{id}` has no placement decision"))
        })?;
    serde_json::from_value(d)
        .map(Json)
        .map_err(|e| ApiError::Internal(format!("stored decision of `{id}`: {e}")))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    pub organisation: String,
    pub offering: String,
    pub plan: String,
}

/// Whether the caller may ask where `organisation` could book (explain, preview).
async fn may_ask_placement(state: &AppState, caller: &Caller, organisation: &str) -> ApiResult<()> {
    let chain = super::organisation_chain(state, organisation, "/organisation").await?;
    caller.require(Act::Read, &Target::new("placement").in_organisation(chain))?;
    Ok(())
}

/// Where could this organisation book this offering, and why not elsewhere? Books nothing.
#[utoipa::path(post, path = "/api/v1/placement/explain", operation_id = "explain_placement", tag = "bookings", request_body = ExplainRequest,
    responses((status = 200, body = PlacementDecision), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn explain(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(r): ApiJson<ExplainRequest>,
) -> ApiResult<Json<PlacementDecision>> {
    may_ask_placement(&state, &caller, &r.organisation).await?;
    Ok(Json(
        state
            .bookings
            .explain(&r.organisation, &r.offering, &r.plan, state.now())
            .await?,
    ))
}

/// What would booking this offering bring with it now: the site it and its
/// dependencies would share, and per dependency whether the organisation's booking of it
/// is bound or a new one created (the decision of `POST /bookings`); or why it would be
/// refused. Books nothing.
#[utoipa::path(post, path = "/api/v1/placement/preview", tag = "bookings", request_body = ExplainRequest,
    responses((status = 200, body = verbund_placement::BookingPreview), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(r): ApiJson<ExplainRequest>,
) -> ApiResult<Json<verbund_placement::BookingPreview>> {
    may_ask_placement(&state, &caller, &r.organisation).await?;
    Ok(Json(
        state
            .bookings
            .preview(&r.organisation, &r.offering, &r.plan, state.now())
            .await?,
    ))
}

/// Re-evaluate every placement against the policies and sites now in force.
#[utoipa::path(post, path = "/api/v1/compliance/reevaluate", operation_id = "reevaluate_compliance", tag = "bookings",
    responses((status = 200, body = ReevaluationSummary)), security(("bearer" = [])))]
pub async fn reevaluate(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ReevaluationSummary>> {
    caller.require(Act::Write, &Target::new("placement"))?;
    Ok(Json(
        state
            .bookings
            .reevaluate(&caller.actor(), state.now())
            .await?,
    ))
}
