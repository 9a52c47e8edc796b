//! `/audit`: the tamper-evident audit trail and its verification.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use verbund_domain::audit::{AuditEvent, BrokenLink};
use verbund_domain::page::{Page, PageRequest};
use verbund_policy::authz::{Act, Target};
use verbund_store::AuditFilter;

use crate::auth::Caller;
use crate::extract::ApiQuery;
use crate::problem::ApiResult;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/audit", get(list))
        .route("/audit/verify", get(verify))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Exact actor, e.g. `user/admin`.
    pub actor: Option<String>,
    /// Prefix of the action, e.g. `site.`.
    pub action: Option<String>,
    /// Prefix of the object, e.g. `site/dataport-hh-1`.
    pub object: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "verbund_domain::page::deserialize_limit")]
    #[param(value_type = Option<verbund_domain::page::Limit>, inline)]
    pub limit: Option<u32>,
    /// The `next` cursor (a sequence number) of the previous page.
    pub after: Option<String>,
}

/// List audit events, newest first.
#[utoipa::path(get, path = "/api/v1/audit", operation_id = "list_audit_events", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditEvent>), (status = 403, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Page<AuditEvent>>> {
    caller.require(Act::Read, &Target::new("audit"))?;
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        object: q.object,
        since: q.since,
        until: q.until,
    };
    let page = PageRequest {
        limit: q.limit,
        after: q.after,
    };
    Ok(Json(state.store.list_audit(&filter, &page).await?))
}

/// The result of verifying the whole chain.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChainStatus {
    pub intact: bool,
    /// Events verified before the first broken link (or all of them).
    pub verified: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<BrokenLink>,
}

/// Verify the audit chain.
#[utoipa::path(get, path = "/api/v1/audit/verify", operation_id = "verify_audit_chain", tag = "audit",
    responses((status = 200, body = ChainStatus)), security(("bearer" = [])))]
pub async fn verify(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<ChainStatus>> {
    caller.require(Act::Read, &Target::new("audit"))?;
    Ok(Json(match state.store.verify_audit().await? {
        Ok(n) => ChainStatus {
            intact: true,
            verified: n,
            broken: None,
        },
        Err(b) => ChainStatus {
            intact: false,
            verified: b.seq - 1,
            broken: Some(b),
        },
    }))
}
