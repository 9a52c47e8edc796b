//! Previews of the desired state: exactly what the desired-state repository holds for a
//! site's environment, or for one booking, in the current state of the store.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;
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
}

impl From<DeliveryError> for ApiError {
    fn from(e: DeliveryError) -> Self {
        match e {
            DeliveryError::Store(s) => s.into(),
            DeliveryError::Render(r) => {
                ApiError::Conflict(format!("the desired state cannot be rendered: {r}"))
            }
            DeliveryError::Inconsistent(m) => ApiError::Internal(m),
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
#[utoipa::path(get, path = "/api/v1/sites/{name}/desired-state", tag = "desired-state", params(DesiredStateQuery),
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
    let files = verbund_delivery::render_site(&state.store, &name, env, &state.render).await?;
    Ok(Json(files.into_iter().map(Into::into).collect()))
}

/// The files that deliver one booking to its site.
#[utoipa::path(get, path = "/api/v1/bookings/{id}/manifests", tag = "desired-state",
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
