//! The portal's pages, one module per section.

use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;

use crate::session::MaybeViewer;
use crate::WebState;

pub fn router() -> Router<WebState> {
    Router::new()
}

/// `GET /`: the catalog for the signed-in, the sign-in page for everyone else.
pub async fn home(MaybeViewer(v, _): MaybeViewer) -> Response {
    match v {
        Some(_) => Redirect::to("/catalog").into_response(),
        None => Redirect::to("/login").into_response(),
    }
}
