//! JSON body and query extractors whose rejections are problem+json, not axum's text.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;
use crate::MAX_BODY_BYTES;

/// `axum::Json` with problem+json rejections.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            )),
            Err(JsonRejection::BytesRejection(b)) => {
                if b.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    Err(ApiError::TooLarge(MAX_BODY_BYTES))
                } else {
                    Err(ApiError::BadRequest(format!("cannot read the request body: {}", b.body_text())))
                }
            }
            Err(JsonRejection::JsonDataError(e)) => {
                Err(ApiError::Invalid(verbund_domain::Invalid::new("", e.body_text().replace("Failed to deserialize the JSON body into the target type: ", ""))))
            }
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::BadRequest(format!(
                "the body is not valid JSON: {}",
                e.body_text().replace("Failed to parse the request body as JSON: ", "")
            ))),
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

/// `axum::extract::Query` with problem+json rejections.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::BadRequest(
                e.body_text()
                    .replace("Failed to deserialize query string: ", "invalid query: "),
            )),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}
