//! Pagination shared by every list: a limit and an opaque cursor (the last id seen).

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

/// The items per page a client asks for: 1 to [`MAX_LIMIT`]. Anything else is refused
/// when it is read (a query's `limit`), not clamped, so that a client never gets another
/// page size than the one it asked for without being told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Limit(u32);

impl Limit {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Limit {
    type Error = String;

    fn try_from(n: u32) -> Result<Self, String> {
        if (1..=MAX_LIMIT).contains(&n) {
            Ok(Limit(n))
        } else {
            Err(format!("a page holds 1 to {MAX_LIMIT} items, not {n}"))
        }
    }
}

impl From<Limit> for u32 {
    fn from(l: Limit) -> u32 {
        l.0
    }
}

impl utoipa::PartialSchema for Limit {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(1))
            .maximum(Some(MAX_LIMIT))
            .default(Some(DEFAULT_LIMIT.into()))
            .description(Some("Items per page."))
            .into()
    }
}

impl utoipa::ToSchema for Limit {}

/// Reads an optional `limit` as a [`Limit`] (refusing one outside its bounds), for a
/// query's `limit: Option<u32>` (`#[serde(default, deserialize_with = …)]`).
pub fn deserialize_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Option::<Limit>::deserialize(d).map(|l| l.map(Limit::get))
}

/// Which slice of a list to return.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    pub limit: Option<u32>,
    /// Return items strictly after this cursor (as given in `next` of the previous page).
    pub after: Option<String>,
}

impl PageRequest {
    /// The page a client asked for.
    pub fn new(limit: Option<Limit>, after: Option<String>) -> Self {
        PageRequest {
            limit: limit.map(Limit::get),
            after,
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }
}

/// One page of a list, with the cursor for the next page when there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_outside_its_bounds_is_refused() {
        assert!(Limit::try_from(0).is_err());
        assert!(Limit::try_from(MAX_LIMIT + 1).is_err());
        assert_eq!(Limit::try_from(1).map(Limit::get), Ok(1));
        assert_eq!(Limit::try_from(MAX_LIMIT).map(Limit::get), Ok(MAX_LIMIT));
        let parsed: Result<Limit, _> = serde_json::from_str("2147483648");
        assert!(parsed.is_err());
    }
}
