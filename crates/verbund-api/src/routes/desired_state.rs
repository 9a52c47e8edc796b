//! Previews of the desired state: exactly what the desired-state repository holds for a
//! site's environment, or for one booking, in the current state of the store.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use verbund_delivery::{DeliveryError, FileView};
use verbund_domain::directory::Environment;
use verbund_policy::authz::{Act, Target};

use crate::auth::Caller;
use crate::extract::ApiQuery;
use crate::problem::{ApiError, ApiResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sites/{name}/desired-state", get(site))
        .route("/bookings/{id}/manifests", get(booking))
        .route("/desired-state", get(status))
}

/// Where delivery stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryStatus {
    /// Whether this server delivers into a desired-state repository at all.
    pub enabled: bool,
    /// Whether this replica writes the desired state (several replicas on one PostgreSQL
    /// database share one history; one of them writes, the others follow it).
    pub writer: bool,
    /// The repository's current commit.
    pub head: Option<String>,
    /// The last audit event delivered.
    pub delivered_event: i64,
    /// The newest audit event.
    pub latest_event: i64,
    /// Commits made since the server started.
    pub commits: i64,
    /// Whether commits are pushed to a Git server.
    pub pushing: bool,
    /// The last commit pushed.
    pub pushed: Option<String>,
    /// Why the last push failed, if it did.
    pub push_error: Option<String>,
}

/// How far the desired-state repository is behind the store, and the push.
#[utoipa::path(get, path = "/api/v1/desired-state", operation_id = "read_delivery_status", tag = "desired-state",
    responses((status = 200, body = DeliveryStatus), (status = 403, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<DeliveryStatus>> {
    caller.require(Act::Read, &Target::new("audit"))?;
    let latest_event = state.store.audit_head().await?;
    let Some(p) = state.publisher.clone() else {
        return Ok(Json(DeliveryStatus {
            enabled: false,
            writer: false,
            head: None,
            delivered_event: 0,
            latest_event,
            commits: 0,
            pushing: false,
            pushed: None,
            push_error: None,
        }));
    };
    let repo = p.clone();
    let head = tokio::task::spawn_blocking(move || repo.repo().head())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let push = p.push_status();
    Ok(Json(DeliveryStatus {
        enabled: true,
        writer: p.is_writer(),
        head: head.map(|h| h.0),
        delivered_event: p.cursor(),
        latest_event,
        commits: p.commits(),
        pushing: p.options().remote.is_some(),
        pushed: push.pushed,
        push_error: push.error,
    }))
}

impl From<DeliveryError> for ApiError {
    fn from(e: DeliveryError) -> Self {
        match e {
            DeliveryError::Store(s) => s.into(),
            DeliveryError::Render(r) => {
                ApiError::Conflict(format!("the desired state cannot be rendered: {r}"))
            }
            DeliveryError::Inconsistent(m) => ApiError::Internal(m),
            DeliveryError::Git(g) => ApiError::Internal(g.to_string()),
            DeliveryError::Job(m) => ApiError::Internal(m),
            DeliveryError::Folder { folder, message } => ApiError::Conflict(format!(
                "the desired state of {folder} cannot be rendered: {message}"
            )),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DesiredStateQuery {
    /// `prod` (default) or `test`.
    pub environment: Option<Environment>,
}

/// The files of a site's environment in the desired-state repository.
#[utoipa::path(get, path = "/api/v1/sites/{name}/desired-state", operation_id = "read_site_desired_state", tag = "desired-state", params(DesiredStateQuery),
    responses((status = 200, body = Vec<FileView>), (status = 403, body = crate::problem::Problem), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn site(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<DesiredStateQuery>,
) -> ApiResult<Json<Vec<FileView>>> {
    let s = state.store.get_site(&name).await?;
    // A site's whole state shows every tenant on it: its operators and the federation.
    caller.require(Act::Write, &Target::new("site").provider(&s.spec.provider))?;
    let env = q.environment.unwrap_or(Environment::Prod);
    if !s.spec.environments.contains(&env) {
        return Err(ApiError::NotFound(format!(
            "site `{name}` has no `{}` environment",
            env.as_str()
        )));
    }
    let files = verbund_delivery::render_site(&state.store, &name, env, &state.render).await?;
    Ok(Json(files.into_iter().map(Into::into).collect()))
}

/// The files that deliver one booking to its site.
#[utoipa::path(get, path = "/api/v1/bookings/{id}/manifests", operation_id = "read_booking_manifests", tag = "desired-state",
    responses((status = 200, body = Vec<FileView>), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn booking(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<FileView>>> {
    let b = crate::routes::bookings::load_readable(&state, &caller, &id).await?;
    let files = verbund_delivery::render_booking(&state.store, &b, &state.render).await?;
    Ok(Json(files.into_iter().map(Into::into).collect()))
}
