//! Error pages: what went wrong in plain words, with the status the API would answer.

use askama::Template;
use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use verbund_api::ApiError;

use crate::i18n::Lang;
use crate::session::MaybeViewer;
use crate::session::Viewer;
use crate::view::{render, Chrome};

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    c: Chrome,
    heading: String,
    detail: String,
    back: String,
}

/// An error page in the given frame.
pub fn page(status: StatusCode, c: Chrome, heading: &str, detail: &str, back: &str) -> Response {
    render(
        status,
        &ErrorPage {
            c,
            heading: heading.into(),
            detail: detail.into(),
            back: back.into(),
        },
    )
}

/// The status and heading for an API error: the status is the API's own, so a refusal
/// reads the same in the portal as in the API (a breach of form 400, an unknown
/// reference 404, a conflict 409, a rule of meaning 422).
fn classify(e: &ApiError, lang: Lang) -> (StatusCode, &'static str) {
    let t = lang.texts();
    let status = e.status();
    let heading = match status {
        StatusCode::NOT_FOUND => t.error_not_found,
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => t.error_forbidden,
        StatusCode::CONFLICT => t.error_conflict,
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => t.error_invalid,
        _ => return (StatusCode::INTERNAL_SERVER_ERROR, t.error_internal),
    };
    (status, heading)
}

/// An error page for a signed-in person.
pub fn api_error(v: &Viewer, e: &ApiError, back: &str) -> Response {
    let (status, heading) = classify(e, v.lang);
    let detail = match (e, status) {
        (_, StatusCode::INTERNAL_SERVER_ERROR) => v.lang.texts().error_internal_detail.to_string(),
        (ApiError::Invalid(i), _) => format!("{} ({})", i.message, i.field),
        // The role policies give their reason in English; the page says it in words.
        (ApiError::Forbidden(_), _) => v.lang.texts().error_forbidden_detail.to_string(),
        _ => e.to_string(),
    };
    render(
        status,
        &ErrorPage {
            c: Chrome::for_viewer(v, heading, "", back),
            heading: heading.into(),
            detail,
            back: back.into(),
        },
    )
}

/// Pages that do not exist.
pub async fn not_found(MaybeViewer(v, lang): MaybeViewer, uri: Uri) -> Response {
    let t = lang.texts();
    let c = match &v {
        Some(v) => Chrome::for_viewer(v, t.error_not_found, "", uri.path()),
        None => Chrome::public(lang, t.error_not_found, "", uri.path()),
    };
    render(
        StatusCode::NOT_FOUND,
        &ErrorPage {
            c,
            heading: t.error_not_found.into(),
            detail: t.error_not_found_detail.into(),
            back: "/".into(),
        },
    )
}

/// Turns the refusals of the request limits (`RequestBodyLimitLayer`, `TimeoutLayer`),
/// which come without a body, into error pages in the reader's language, keeping their
/// status.
pub async fn limits(req: Request, next: Next) -> Response {
    let lang = Lang::of(req.headers());
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let t = lang.texts();
    let status = resp.status();
    let (heading, detail) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (t.error_too_large, t.error_too_large_detail),
        StatusCode::REQUEST_TIMEOUT => (t.error_timeout, t.error_timeout_detail),
        _ => return resp,
    };
    tracing::warn!(%path, %status, "request refused by a portal limit");
    page(
        status,
        Chrome::public(lang, heading, "", &path),
        heading,
        detail,
        "/",
    )
}
