//! Whole numbers a request may give within bounds: refused, not clamped, outside them,
//! with the bounds in the API's contract. One type for every such query parameter (a
//! history's days, an outlook's months), so that each states only its bounds.

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;

/// A number from `MIN` to `MAX`, `DEFAULT` when not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Bounded<const MIN: u32, const MAX: u32, const DEFAULT: u32>(u32);

impl<const MIN: u32, const MAX: u32, const DEFAULT: u32> Bounded<MIN, MAX, DEFAULT> {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<const MIN: u32, const MAX: u32, const DEFAULT: u32> Default for Bounded<MIN, MAX, DEFAULT> {
    fn default() -> Self {
        Bounded(DEFAULT)
    }
}

impl<const MIN: u32, const MAX: u32, const DEFAULT: u32> TryFrom<u32>
    for Bounded<MIN, MAX, DEFAULT>
{
    type Error = String;

    fn try_from(n: u32) -> Result<Self, String> {
        if (MIN..=MAX).contains(&n) {
            Ok(Bounded(n))
        } else {
            Err(format!("must lie between {MIN} and {MAX}, not {n}"))
        }
    }
}

impl<const MIN: u32, const MAX: u32, const DEFAULT: u32> From<Bounded<MIN, MAX, DEFAULT>> for u32 {
    fn from(b: Bounded<MIN, MAX, DEFAULT>) -> u32 {
        b.0
    }
}

impl<const MIN: u32, const MAX: u32, const DEFAULT: u32> utoipa::PartialSchema
    for Bounded<MIN, MAX, DEFAULT>
{
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(MIN))
            .maximum(Some(MAX))
            .default(Some(DEFAULT.into()))
            .into()
    }
}

impl<const MIN: u32, const MAX: u32, const DEFAULT: u32> utoipa::ToSchema
    for Bounded<MIN, MAX, DEFAULT>
{
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn outside_the_bounds_is_refused_not_clamped() {
        type Days = Bounded<1, 366, 30>;
        assert!(Days::try_from(0).is_err());
        assert!(Days::try_from(367).is_err());
        assert_eq!(Days::try_from(366).unwrap().get(), 366);
        assert_eq!(Days::default().get(), 30);
        assert!(serde_json::from_str::<Days>("4294967296").is_err());
        assert_eq!(serde_json::from_str::<Days>("7").unwrap().get(), 7);
    }
}
