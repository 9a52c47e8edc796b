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
                    Err(ApiError::BadRequest(format!(
                        "cannot read the request body: {}",
                        b.body_text()
                    )))
                }
            }
            Err(JsonRejection::JsonDataError(e)) => {
                let text = e.body_text().replace(
                    "Failed to deserialize the JSON body into the target type: ",
                    "",
                );
                let (field, message) = split_path(&text);
                Err(ApiError::Invalid(verbund_domain::Invalid::new(
                    field, message,
                )))
            }
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::BadRequest(format!(
                "the body is not valid JSON: {}",
                e.body_text()
                    .replace("Failed to parse the request body as JSON: ", "")
            ))),
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

/// Splits a deserialisation error of the form `plans[0].name: message` (the path is
/// absent for errors at the top level) into a JSON pointer (`/plans/0/name`) and the message.
fn split_path(text: &str) -> (String, &str) {
    match text.split_once(": ") {
        Some((path, message)) if !path.is_empty() && !path.contains(char::is_whitespace) => {
            let pointer = path
                .split(['.', '[', ']'])
                .filter(|s| !s.is_empty())
                .fold(String::new(), |acc, s| format!("{acc}/{s}"));
            (pointer, message)
        }
        _ => (String::new(), text),
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
