//! The audit trail: filterable, newest first, with the chain's verification status.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use verbund_api::extract::ApiQuery;
use verbund_api::routes::audit::{self, AuditQuery, ChainStatus};

use crate::error::api_error;
use crate::session::Viewer;
use crate::view::{local_time, render, url_encode, Chrome};
use crate::WebState;

#[derive(Deserialize, Default)]
pub struct Filters {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    object: String,
    after: Option<String>,
}

pub struct Row {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub hash: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    c: Chrome,
    f: Filters,
    rows: Vec<Row>,
    chain: ChainStatus,
    older: Option<String>,
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// `GET /audit`.
pub async fn page(
    State(state): State<WebState>,
    v: Viewer,
    uri: Uri,
    Query(f): Query<Filters>,
) -> Response {
    let q = AuditQuery {
        actor: opt(&f.actor),
        action: opt(&f.action),
        object: opt(&f.object),
        since: None,
        until: None,
        limit: Some(50),
        after: f.after.clone(),
    };
    let page = match audit::list(State(state.api.clone()), v.caller.clone(), ApiQuery(q)).await {
        Ok(Json(p)) => p,
        Err(e) => return api_error(&v, &e, "/"),
    };
    let chain = match audit::verify(State(state.api.clone()), v.caller.clone()).await {
        Ok(Json(c)) => c,
        Err(e) => return api_error(&v, &e, "/"),
    };
    let lang = v.lang;
    let older = page.next.map(|n| {
        format!(
            "/audit?actor={}&action={}&object={}&after={}",
            url_encode(&f.actor),
            url_encode(&f.action),
            url_encode(&f.object),
            url_encode(&n)
        )
    });
    let rows = page
        .items
        .into_iter()
        .map(|e| Row {
            seq: e.seq,
            at: local_time(e.at, lang),
            actor: e.actor,
            action: e.action,
            object: e.object,
            hash: e.hash.chars().take(12).collect(),
        })
        .collect();
    render(
        StatusCode::OK,
        &AuditPage {
            c: Chrome::for_viewer(&v, v.lang.texts().nav_audit, "audit", &uri.to_string()),
            f,
            rows,
            chain,
            older,
        },
    )
}
