//! `/gaia-x/…` and `/.well-known/did.json`: the federation's Gaia-X credentials of its
//! providers, vendor organisations, sites and offerings (`verbund_gaiax`), and the DID
//! document whose key verifies them.
//!
//! Credentials are issued on every read from the facts as they are, each valid from the
//! last change of what it states, so a change re-issues them and nothing is cached. A
//! credential is readable by whoever may read its object; the DID document is open, as
//! `did:web` resolution needs. A server started without a federation key issues nothing:
//! these paths answer 404 with a sentence that says so.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use verbund_domain::directory::Site;
use verbund_domain::page::PageRequest;
use verbund_gaiax::Federation;
use verbund_policy::authz::{Act, Target};
use verbund_store::SiteFilter;

use crate::auth::Caller;
use crate::problem::{ApiError, ApiResult};
use crate::AppState;

/// The credentials, under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/gaia-x/providers/{name}", get(provider))
        .route(
            "/gaia-x/providers/{name}/registration-number",
            get(provider_registration),
        )
        .route("/gaia-x/organisations/{id}", get(organisation))
        .route(
            "/gaia-x/organisations/{id}/registration-number",
            get(organisation_registration),
        )
        .route("/gaia-x/sites/{name}", get(site))
        .route("/gaia-x/offerings/{name}", get(offering))
        .route("/gaia-x/offerings/{name}/terms", get(terms))
}

/// A credential the federation issued.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedCredential {
    /// The credential as a VC-JWT (compact JWS): header `alg` EdDSA, `typ` `vc+jwt`,
    /// `kid` the DID URL of the key in the federation's DID document
    /// (`/.well-known/did.json`); the payload is `credential`.
    pub jwt: String,
    /// The JWT's payload: the credential (W3C VC data model 2.0, Gaia-X ontology 25.11).
    #[schema(value_type = Object)]
    pub credential: Value,
}

fn federation(state: &AppState) -> ApiResult<&Federation> {
    state.gaiax.as_deref().ok_or_else(|| {
        ApiError::NotFound(
            "this server issues no Gaia-X credentials: it runs without a federation key".into(),
        )
    })
}

fn issued(federation: &Federation, credential: Value) -> ApiResult<Json<IssuedCredential>> {
    let jwt = federation
        .sign(&credential)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(IssuedCredential { jwt, credential }))
}

/// `credential` issued, or 404 with the sentence `missing` makes when there is none.
fn issued_if(
    federation: &Federation,
    credential: Option<Value>,
    missing: impl FnOnce() -> String,
) -> ApiResult<Json<IssuedCredential>> {
    let credential = credential.ok_or_else(|| ApiError::NotFound(missing()))?;
    issued(federation, credential)
}

/// A provider's `gx:LegalPerson` credential.
#[utoipa::path(get, path = "/api/v1/gaia-x/providers/{name}", operation_id = "read_provider_credential", tag = "gaia-x",
    responses((status = 200, body = IssuedCredential), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn provider(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<IssuedCredential>> {
    caller.require(Act::Read, &Target::new("provider"))?;
    let f = federation(&state)?;
    let provider = state.store.get_provider(&name).await?;
    issued(f, f.provider(&provider))
}

/// A provider's registration number credential (`gx:LocalRegistrationNumber`,
/// `gx:VatID`, `gx:EORI` or `gx:EUID`), which its `gx:LegalPerson` names; 404 when the
/// federation stated none.
#[utoipa::path(get, path = "/api/v1/gaia-x/providers/{name}/registration-number", operation_id = "read_provider_registration_credential", tag = "gaia-x",
    responses((status = 200, body = IssuedCredential), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn provider_registration(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<IssuedCredential>> {
    caller.require(Act::Read, &Target::new("provider"))?;
    let f = federation(&state)?;
    let provider = state.store.get_provider(&name).await?;
    let missing =
        || format!("the federation has stated no registration number of provider `{name}`");
    issued_if(f, f.provider_registration(&provider), missing)
}

/// A vendor organisation's `gx:LegalPerson` credential (an offering's `providedBy`).
#[utoipa::path(get, path = "/api/v1/gaia-x/organisations/{id}", operation_id = "read_organisation_credential", tag = "gaia-x",
    responses((status = 200, body = IssuedCredential), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn organisation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<IssuedCredential>> {
    caller.require(Act::Read, &Target::new("organisation"))?;
    let f = federation(&state)?;
    let organisation = state.store.get_organisation(&id).await?;
    let stated = state.store.organisation_registration(&id).await?;
    issued(f, f.organisation(&organisation, stated_number(&stated)))
}

/// A vendor organisation's registration number credential: the number the federation
/// stated for it, else its Amtlicher Regionalschlüssel as a `gx:LocalRegistrationNumber`;
/// 404 for an organisation with neither.
#[utoipa::path(get, path = "/api/v1/gaia-x/organisations/{id}/registration-number", operation_id = "read_organisation_registration_credential", tag = "gaia-x",
    responses((status = 200, body = IssuedCredential), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn organisation_registration(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<IssuedCredential>> {
    caller.require(Act::Read, &Target::new("organisation"))?;
    let f = federation(&state)?;
    let organisation = state.store.get_organisation(&id).await?;
    let stated = state.store.organisation_registration(&id).await?;
    let missing = || {
        format!(
            "organisation `{id}` has no Amtlicher Regionalschlüssel and the federation stated \
             no registration number for it"
        )
    };
    issued_if(
        f,
        f.organisation_registration(&organisation, stated_number(&stated)),
        missing,
    )
}

/// The number the federation stated, with when.
fn stated_number(
    stated: &verbund_store::OrganisationRegistration,
) -> Option<(
    &verbund_domain::registration::Registration,
    chrono::DateTime<chrono::Utc>,
)> {
    stated.registration.as_ref().zip(stated.stated_at)
}

/// A site's `gx:Datacenter` credential.
#[utoipa::path(get, path = "/api/v1/gaia-x/sites/{name}", operation_id = "read_site_credential", tag = "gaia-x",
    responses((status = 200, body = IssuedCredential), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn site(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<IssuedCredential>> {
    caller.require(Act::Read, &Target::new("site"))?;
    let f = federation(&state)?;
    let site = state.store.get_site(&name).await?;
    issued(f, f.site(&site))
}

/// An offering's `gx:ServiceOffering` credential: its vendor, its terms (URL and
/// SHA-256), its data protection regime, and the sites that offer what it needs.
#[utoipa::path(get, path = "/api/v1/gaia-x/offerings/{name}", operation_id = "read_offering_credential", tag = "gaia-x",
    responses((status = 200, body = IssuedCredential), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn offering(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<IssuedCredential>> {
    caller.require(Act::Read, &Target::new("offering"))?;
    let f = federation(&state)?;
    let offering = state.store.get_offering(&name).await?;
    let credential = f
        .offering(&offering, &every_site(&state).await?)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    issued(f, credential)
}

/// An offering's terms, the document its credential names with its SHA-256: its catalog
/// entry as canonical JSON (keys sorted, no whitespace), these very bytes.
#[utoipa::path(get, path = "/api/v1/gaia-x/offerings/{name}/terms", operation_id = "read_offering_terms", tag = "gaia-x",
    responses((status = 200, body = Object, description = "the offering's catalog entry (its spec) as canonical JSON"),
        (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn terms(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Act::Read, &Target::new("offering"))?;
    federation(&state)?;
    let offering = state.store.get_offering(&name).await?;
    let bytes =
        verbund_gaiax::terms(&offering.spec).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes))
}

/// The federation's DID document (open: whoever verifies a credential resolves it).
/// Served beside the API (`crate::app`): at `/.well-known/did.json` for a public URL
/// without a path, and at `/did.json`, where `did:web` resolves a public URL with one
/// (whose reverse proxy strips the path).
pub async fn did_document(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let document = federation(&state)?.did_document();
    Ok((
        [(header::CONTENT_TYPE, "application/did+ld+json")],
        Json(document),
    ))
}

/// Every site of the federation.
async fn every_site(state: &AppState) -> ApiResult<Vec<Site>> {
    let mut sites = Vec::new();
    let mut page = PageRequest {
        limit: Some(1000),
        after: None,
    };
    loop {
        let p = state
            .store
            .list_sites(&SiteFilter::default(), &page)
            .await?;
        sites.extend(p.items);
        match p.next {
            Some(next) => page.after = Some(next),
            None => return Ok(sites),
        }
    }
}
