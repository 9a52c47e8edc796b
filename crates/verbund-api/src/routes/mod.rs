//! One module per API resource, each exposing `router()`.

pub mod audit;
pub mod bookings;
pub mod desired_state;
pub mod facts;
pub mod fleet;
pub mod gaiax;
pub mod git;
pub mod health;
pub mod offerings;
pub mod organisations;
pub mod policies;
pub mod preflight;
pub mod providers;
pub mod reports;
pub mod rollouts;
pub mod sites;
pub mod templates;
pub mod tenancies;
pub mod tokens;
pub mod trust;
pub mod users;

use serde::Deserialize;
use utoipa::IntoParams;
use verbund_domain::page::PageRequest;

/// Pagination parameters shared by every list endpoint.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[serde(default, deserialize_with = "verbund_domain::page::deserialize_limit")]
    #[param(value_type = Option<verbund_domain::page::Limit>, inline)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

impl PageQuery {
    pub fn page(&self) -> PageRequest {
        PageRequest {
            limit: self.limit,
            after: self.after.clone(),
        }
    }
}

/// The chain of the organisation a request names at `field` (a JSON pointer into its body,
/// or the name of a query parameter); 404 when there is none (the directory is public, so
/// this tells nobody what they could not read).
pub async fn organisation_chain(
    state: &crate::AppState,
    organisation: &str,
    field: &str,
) -> Result<Vec<String>, crate::problem::ApiError> {
    state
        .store
        .organisation_chain(organisation)
        .await
        .map_err(|e| match e {
            verbund_store::StoreError::NotFound { .. } => verbund_domain::Invalid::unknown(
                field,
                format!("unknown organisation `{organisation}`"),
            )
            .into(),
            other => other.into(),
        })
}

/// Refuses an idempotent PUT whose body names another object than its path (a rule
/// across the path and the body, which no schema states: 422).
pub fn same_name(body: &str, path: &str) -> Result<(), crate::problem::ApiError> {
    if body == path {
        return Ok(());
    }
    Err(verbund_domain::Invalid::meaning(
        "/name",
        format!("`{body}` differs from the name in the path `{path}`"),
    )
    .into())
}

/// The answer of an idempotent PUT: 201 for a new object, 200 otherwise.
pub fn applied<T>(created: bool, value: T) -> (axum::http::StatusCode, axum::Json<T>) {
    let status = if created {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::OK
    };
    (status, axum::Json(value))
}
