//! One module per API resource, each exposing `router()`.

pub mod audit;
pub mod bookings;
pub mod desired_state;
pub mod health;
pub mod offerings;
pub mod organisations;
pub mod policies;
pub mod providers;
pub mod sites;
pub mod tokens;
pub mod users;

use serde::Deserialize;
use utoipa::IntoParams;
use verbund_domain::page::PageRequest;

/// Pagination parameters shared by every list endpoint.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (1–1000, default 100).
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
