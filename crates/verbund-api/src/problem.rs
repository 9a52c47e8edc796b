//! RFC 9457 problem details: the one error type every handler returns.
//!
//! # Which status a refused input gets
//!
//! The OpenAPI document is a contract: a request that keeps to it breaks no rule a
//! client could have known from it. So the status of a refusal says whose rule it
//! breaks, decided here once (`ApiError::parts`) from the kind of rule
//! (`verbund_domain::Breach`) a validator names:
//!
//! - **400 Bad Request**: the request breaks the document (RFC 9110: a client error the
//!   server perceives in the request itself). JSON that does not parse, a value of the
//!   wrong type, an unknown or missing field, and every rule of form the document states
//!   (a pattern, a length, a bound, an enum, a number of items, a field one value of
//!   another requires or forbids, NUL in a string). The document states each from the
//!   constant or function that checks it, so a validator cannot refuse with 400 what
//!   the document allows without the contract test (schemathesis) seeing it.
//! - **404 Not Found**: the request names, in its path or its body, an object that does
//!   not exist or that the caller may not see (the two answer alike, so that existence
//!   does not leak across tenants); `field` points at the name in a body.
//! - **409 Conflict**: the request conflicts with the current state of what it changes
//!   or needs (a version not newer than the latest, a field that cannot change, a
//!   booking that is cancelled, a dependency with no version yet).
//! - **422 Unprocessable Content**: the request keeps to the document, but its content
//!   breaks a rule no schema states: a rule across fields or items, against stored data
//!   or the current time, or on the inside of free-form content (a configuration
//!   against its offering's schema, a JSON Schema, Kubernetes manifests, Cedar text, an
//!   age recipient's checksum). Also a credential in a body that does not hold (a
//!   current password, a reset token), and an `Idempotency-Key` sent again with another
//!   request (as the IETF's draft on the header asks).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use verbund_domain::{Breach, Invalid};
use verbund_store::StoreError;

/// A problem details document (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, for the person reading it.
    pub detail: String,
    /// The offending field as a JSON pointer, for a problem with the input (400, 422, and
    /// the 404 or 409 of a name or value in a body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (unparsable JSON, a bad query parameter).
    #[error("{0}")]
    BadRequest(String),
    /// The request's input is refused; the kind of rule it breaks decides the status
    /// (see the module).
    #[error("{0}")]
    Invalid(Invalid),
    /// No or an unknown credential.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The path exists, but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    /// An `Idempotency-Key` sent again with another request than the one it was used for.
    #[error("{0}")]
    IdempotencyKeyReused(String),
    #[error("the request body exceeds the limit of {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many attempts (e.g. wrong current passwords); retry after the given seconds.
    #[error("{0}")]
    TooManyAttempts(String, u64),
    /// The server is at its limit for this kind of work; retry after the given seconds.
    #[error("{0}")]
    Busy(String, u64),
    /// Something failed on our side; the detail is logged, not shown.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status this error answers with, for callers that show it another way
    /// (the portal's error pages).
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            ApiError::Invalid(i) => match i.breach {
                Breach::Form => (StatusCode::BAD_REQUEST, "validation", "Invalid input"),
                Breach::Unknown => (StatusCode::NOT_FOUND, "not-found", "Not found"),
                Breach::Conflict => (StatusCode::CONFLICT, "conflict", "Conflict"),
                Breach::Meaning => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unprocessable",
                    "Unprocessable input",
                ),
            },
            ApiError::Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
            ),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::IdempotencyKeyReused(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key already used",
            ),
            ApiError::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Request body too large",
            ),
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::TooManyAttempts(..) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-attempts",
                "Too many attempts",
            ),
            ApiError::Busy(..) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "Busy, try again shortly",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        let (detail, field) = match self {
            ApiError::Invalid(i) => (i.to_string(), Some(i.field.clone())),
            ApiError::Internal(_) => (
                "the server failed to handle the request; the incident is logged".to_string(),
                None,
            ),
            other => (other.to_string(), None),
        };
        Problem {
            kind: format!("https://verbund.dev/problems/{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail,
            field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %e, "request failed");
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let ApiError::TooManyAttempts(_, secs) | ApiError::Busy(_, secs) = &self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"verbund\""),
            );
        }
        resp
    }
}

impl From<crate::password::HashingError> for ApiError {
    fn from(e: crate::password::HashingError) -> Self {
        match e {
            crate::password::HashingError::Busy => {
                ApiError::Busy(e.to_string(), crate::password::RETRY_AFTER_SECONDS)
            }
            crate::password::HashingError::Failed(m) => ApiError::Internal(m),
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(i: Invalid) -> Self {
        ApiError::Invalid(i)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            StoreError::Conflict(c) => ApiError::Conflict(c),
            StoreError::Invalid(i) => ApiError::Invalid(i),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<verbund_rollout::RolloutError> for ApiError {
    fn from(e: verbund_rollout::RolloutError) -> Self {
        match e {
            verbund_rollout::RolloutError::Store(s) => s.into(),
            verbund_rollout::RolloutError::Invalid(i) => ApiError::Invalid(i),
        }
    }
}

impl From<verbund_placement::BookingError> for ApiError {
    fn from(e: verbund_placement::BookingError) -> Self {
        use verbund_placement::BookingError as B;
        match e {
            B::Invalid(i) => ApiError::Invalid(i),
            B::Transition(t) => ApiError::Conflict(t.to_string()),
            B::Store(s) => s.into(),
            B::Policy(p) => ApiError::Internal(p.to_string()),
            B::Internal(m) => ApiError::Internal(m),
        }
    }
}
