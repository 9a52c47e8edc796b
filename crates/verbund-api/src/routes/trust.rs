//! `/trust-list`, `/sites/{name}/credentials` and `/status-lists`: certifications that
//! count only as credentials of issuers the federation trusts (see `verbund_trust`).
//!
//! The federation states the trust list (kind `facts`, like every placement fact); a
//! site's operator — or the federation — hands in a credential its certification body
//! issued, and it counts once it verifies against the list in force; a federation admin
//! who checked a certificate by hand has the federation attest it (`/attestations`: a
//! credential signed with the federation's key, which counts only where the list names
//! the federation itself); an issuer's revocation list revokes what it marks. Each
//! change wakes the re-evaluation of every placement.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use verbund_domain::directory::Certification;
use verbund_domain::Invalid;
use verbund_policy::authz::{Act, Target};
use verbund_store::{SiteCredential, StoredTrustList};
use verbund_trust::{site_subject, verify_certification, verify_status_list, TrustList};

use crate::auth::Caller;
use crate::extract::ApiJson;
use crate::problem::{ApiError, ApiResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/trust-list", get(read_list).put(put_list))
        .route("/trust-list/federation", put(trust_federation))
        .route("/sites/{name}/credentials", get(credentials).post(add))
        .route("/sites/{name}/attestations", post(attest))
        .route("/status-lists", post(status_list))
}

/// A credential as handed in: the VC-JWT.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialSubmission {
    /// The compact JWS (`header.payload.signature`).
    #[schema(max_length = 65536)]
    pub jwt: String,
}

/// What a status list revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusListApplied {
    /// The list's id.
    pub list: String,
    /// The credentials it revoked now.
    pub revoked: Vec<String>,
}

/// What a federation admin checked by hand and has the federation attest.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttestationRequest {
    /// The certification: scheme, level, the last day it is valid.
    pub certification: Certification,
    /// What was checked, e.g. the certificate's number and the audit report's date.
    #[schema(schema_with = evidence_schema)]
    pub evidence: String,
}

const MAX_EVIDENCE: usize = 2_000;

fn evidence_schema() -> utoipa::openapi::schema::Object {
    verbund_domain::name::text_schema(MAX_EVIDENCE)
}

const MAX_JWT: usize = 65_536;

fn refused(e: verbund_trust::Refusal) -> ApiError {
    refused_at("/jwt", e)
}

fn refused_at(field: &str, e: verbund_trust::Refusal) -> ApiError {
    ApiError::Invalid(Invalid::meaning(field, e.to_string()))
}

fn check_size(jwt: &str) -> ApiResult<()> {
    if jwt.len() > MAX_JWT {
        return Err(ApiError::Invalid(Invalid::new(
            "/jwt",
            format!("at most {MAX_JWT} bytes"),
        )));
    }
    Ok(())
}

/// The federation's trust list in force: which issuers' credentials count, for which
/// certification schemes.
#[utoipa::path(get, path = "/api/v1/trust-list", operation_id = "read_trust_list", tag = "directory",
    responses((status = 200, body = StoredTrustList)), security(("bearer" = [])))]
pub async fn read_list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<StoredTrustList>> {
    caller.require(Act::Read, &Target::new("site"))?;
    Ok(Json(state.store.trust_list().await?))
}

/// State a new version of the trust list (federation admins). The credentials of issuers
/// it drops stop counting with it.
#[utoipa::path(put, path = "/api/v1/trust-list", operation_id = "put_trust_list", tag = "directory", request_body = TrustList,
    responses((status = 200, body = StoredTrustList), (status = 403, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn put_list(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(list): ApiJson<TrustList>,
) -> ApiResult<Json<StoredTrustList>> {
    caller.require(Act::Write, &Target::new("facts"))?;
    list.validate()?;
    let stored = state
        .store
        .put_trust_list(&caller.actor(), &list, state.now())
        .await?;
    state.reevaluate.notify_one();
    Ok(Json(stored))
}

/// The federation as it signs on this server; 409 on a server without its key.
fn signing_federation(state: &AppState) -> ApiResult<&verbund_gaiax::Federation> {
    state.gaiax.as_deref().ok_or_else(|| {
        ApiError::Conflict(
            "this server runs without a federation key, so the federation attests nothing".into(),
        )
    })
}

/// The schemes the federation attests by hand.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FederationTrust {
    /// E.g. `iso27001`, `bsi-c5`; at least one.
    #[schema(schema_with = verbund_trust::schemes_schema)]
    pub schemes: std::collections::BTreeSet<String>,
}

/// Name the federation itself on the trust list for the schemes it attests by hand
/// (federation admins): its `did:web` and the key of its DID document, as this server
/// signs with them — a new version of the list with every other issuer kept, and an
/// earlier entry of the federation replaced.
#[utoipa::path(put, path = "/api/v1/trust-list/federation", operation_id = "trust_the_federation", tag = "directory", request_body = FederationTrust,
    responses((status = 200, body = StoredTrustList), (status = 403, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn trust_federation(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<FederationTrust>,
) -> ApiResult<Json<StoredTrustList>> {
    caller.require(Act::Write, &Target::new("facts"))?;
    let federation = signing_federation(&state)?;
    if request.schemes.is_empty() {
        return Err(ApiError::Invalid(Invalid::new(
            "/schemes",
            "name at least one scheme the federation attests",
        )));
    }
    for scheme in &request.schemes {
        verbund_domain::name::check_name("/schemes", scheme)?;
    }
    let schemes: Vec<&str> = request.schemes.iter().map(String::as_str).collect();
    let entry = federation.trusted(&schemes);
    let stored = state
        .store
        .update_trust_list(&caller.actor(), state.now(), |current| {
            let mut list = current.clone();
            list.issuers.retain(|i| i.id != entry.id);
            list.issuers.push(entry);
            // What the stored list does not allow with the federation on it (a full list)
            // is a conflict with stored data, said at the request.
            list.validate()
                .map_err(|e| Invalid::meaning("/schemes", e.message))?;
            Ok(list)
        })
        .await?;
    state.reevaluate.notify_one();
    Ok(Json(stored))
}

/// A site's certification credentials, revoked ones included.
#[utoipa::path(get, path = "/api/v1/sites/{name}/credentials", operation_id = "list_site_credentials", tag = "directory",
    responses((status = 200, body = Vec<SiteCredential>), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn credentials(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<SiteCredential>>> {
    caller.require(Act::Read, &Target::new("site"))?;
    state.store.get_site(&name).await?;
    Ok(Json(state.store.site_credentials(&name).await?))
}

/// Hand in a certification credential of the site (its operator, or the federation). It
/// counts for placement once it verifies: a key on the trust list, its signature, the
/// issuer, the site as its subject, a scheme the issuer may attest, valid now. A
/// credential of the same issuer and scheme is replaced.
#[utoipa::path(post, path = "/api/v1/sites/{name}/credentials", operation_id = "add_site_credential", tag = "directory", request_body = CredentialSubmission,
    responses((status = 201, body = SiteCredential), (status = 403, body = crate::problem::Problem), (status = 404, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(submission): ApiJson<CredentialSubmission>,
) -> ApiResult<(StatusCode, Json<SiteCredential>)> {
    caller.require(Act::Read, &Target::new("site"))?;
    let site = state.store.get_site(&name).await?;
    caller.require(
        Act::Write,
        &Target::new("site").provider(&site.spec.provider),
    )?;
    check_size(&submission.jwt)?;
    let now = state.now();
    let subject = site_subject(&name);
    let stored = state
        .store
        .add_site_credential(&caller.actor(), &name, &submission.jwt, now, |list| {
            verify_certification(&submission.jwt, list, &subject, now).map_err(refused)
        })
        .await?;
    state.reevaluate.notify_one();
    Ok((StatusCode::CREATED, Json(stored)))
}

/// Have the federation attest a certification of the site that a federation admin
/// checked by hand: verbund signs it with the federation's key (the evidence in the
/// credential) and stores it like a handed-in credential. It counts only if the trust
/// list names the federation itself with the scheme; otherwise it is refused with that
/// reason and nothing is stored.
#[utoipa::path(post, path = "/api/v1/sites/{name}/attestations", operation_id = "attest_site_certification", tag = "directory", request_body = AttestationRequest,
    responses((status = 201, body = SiteCredential), (status = 403, body = crate::problem::Problem), (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn attest(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<AttestationRequest>,
) -> ApiResult<(StatusCode, Json<SiteCredential>)> {
    caller.require(Act::Write, &Target::new("facts"))?;
    let c = &request.certification;
    verbund_domain::name::check_name("/certification/scheme", &c.scheme)?;
    if let Some(level) = &c.level {
        verbund_domain::name::check_name("/certification/level", level)?;
    }
    verbund_domain::name::check_text("/evidence", &request.evidence, MAX_EVIDENCE)?;
    let federation = signing_federation(&state)?;
    state.store.get_site(&name).await?;
    let stored = attest_certification(
        &state.store,
        federation,
        &caller.actor(),
        (&name, c),
        &request.evidence,
        state.now(),
    )
    .await?;
    state.reevaluate.notify_one();
    Ok((StatusCode::CREATED, Json(stored)))
}

/// The federation attests `certification` of `site`, which `actor` checked by hand
/// (`evidence`): signed with the federation's key, verified against the trust list in
/// force like any handed-in credential, and stored. Refused (422) when the certificate
/// is over or the list does not name the federation with the scheme. What the attestation
/// endpoint and the demo's loading of its certified sites both do.
pub async fn attest_certification(
    store: &verbund_store::Store,
    federation: &verbund_gaiax::Federation,
    actor: &str,
    (site, certification): (&str, &Certification),
    evidence: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<SiteCredential> {
    let c = certification;
    let until = c
        .valid_until
        .and_hms_opt(23, 59, 59)
        .map(|t| t.and_utc())
        .filter(|until| *until > now)
        .ok_or_else(|| {
            ApiError::Invalid(Invalid::meaning(
                "/certification/valid_until",
                format!("`{}` is over: attest what is valid now", c.valid_until),
            ))
        })?;
    let jwt = federation
        .attest(
            site,
            (&c.scheme, c.level.as_deref()),
            (now, until),
            evidence,
        )
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    check_size(&jwt)?;
    let subject = site_subject(site);
    let did = federation.did();
    store
        .add_site_credential(actor, site, &jwt, now, |list| {
            verify_certification(&jwt, list, &subject, now).map_err(|e| match e {
                verbund_trust::Refusal::UnknownIssuer(_) => ApiError::Invalid(Invalid::meaning(
                    "/certification",
                    format!(
                        "the trust list does not name the federation itself (`{did}`, the key of \
                         its DID document): put it on the list with the schemes it attests by hand"
                    ),
                )),
                e @ verbund_trust::Refusal::SchemeNotTrusted { .. } => {
                    refused_at("/certification/scheme", e)
                }
                other => refused_at("/certification", other),
            })
        })
        .await
}

/// Hand in an issuer's revocation status list (federation admins): every credential that
/// points at an entry it sets stops counting.
#[utoipa::path(post, path = "/api/v1/status-lists", operation_id = "apply_status_list", tag = "directory", request_body = CredentialSubmission,
    responses((status = 200, body = StatusListApplied), (status = 403, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn status_list(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(submission): ApiJson<CredentialSubmission>,
) -> ApiResult<Json<StatusListApplied>> {
    caller.require(Act::Write, &Target::new("facts"))?;
    check_size(&submission.jwt)?;
    let now = state.now();
    let trust = state.store.trust_list().await?;
    let list = verify_status_list(&submission.jwt, &trust.list, now).map_err(refused)?;
    let revoked = state
        .store
        .apply_status_list(
            &caller.actor(),
            &list.id,
            &list.issuer,
            |i| list.is_set(i),
            now,
        )
        .await?;
    if !revoked.is_empty() {
        state.reevaluate.notify_one();
    }
    Ok(Json(StatusListApplied {
        list: list.id,
        revoked: revoked.into_iter().map(|c| c.id).collect(),
    }))
}
