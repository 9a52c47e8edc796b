//! A legal person's registration number: the number a state register gives it, which a
//! Gaia-X `gx:LegalPerson` must name (`gx:registrationNumber`).
//!
//! The federation states it for a provider, as a fact with provenance (an operator may
//! propose it; see `crate::facts`), because the federation signs it into the provider's
//! Gaia-X credential. Four kinds, each with the form its register gives it: a local
//! number (Handelsregister, e.g. `HRB 12345`, or the Amtlicher Regionalschlüssel of a
//! Gebietskörperschaft), a VAT identification number, an EORI number and an EUID (the
//! European Unique Identifier of the business registers interconnection). The LEI is
//! not offered: the Gaia-X 25.11 context maps `leiCode` to the IRI
//! `httpsschema:leiCode`, so no LEI credential read through it can conform.
//!
//! Each kind's form is a [`Pattern`] that the OpenAPI document states per kind
//! ([`registration_schema`]) and [`Registration::validate`] applies, so the two agree.

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;

use crate::error::{Invalid, Result};
use crate::name::Pattern;

/// The register a number comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RegistrationKind {
    /// A national register's number: Handelsregister (`HRB 12345`), Vereinsregister,
    /// or the Amtlicher Regionalschlüssel of a Gebietskörperschaft.
    Local,
    /// A VAT identification number (USt-IdNr.), e.g. `DE123456789`.
    VatId,
    /// An Economic Operators Registration and Identification number, e.g. `DE1234567`.
    Eori,
    /// A European Unique Identifier, e.g. `DEK1101R.HRB12345`.
    Euid,
}

/// Every kind, in the order the document lists them.
pub const REGISTRATION_KINDS: [RegistrationKind; 4] = [
    RegistrationKind::Local,
    RegistrationKind::VatId,
    RegistrationKind::Eori,
    RegistrationKind::Euid,
];

static LOCAL: Pattern = Pattern::new(|| "^[0-9A-Za-z][0-9A-Za-z ./-]{0,63}$".into());
static VAT_ID: Pattern = Pattern::new(|| "^[A-Z]{2}[0-9A-Z+*]{2,12}$".into());
static EORI: Pattern = Pattern::new(|| "^[A-Z]{2}[0-9A-Z]{1,15}$".into());
static EUID: Pattern = Pattern::new(|| "^[A-Z]{2}[0-9A-Z]{1,12}[.][0-9A-Za-z]{1,40}$".into());

impl RegistrationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationKind::Local => "local",
            RegistrationKind::VatId => "vat-id",
            RegistrationKind::Eori => "eori",
            RegistrationKind::Euid => "euid",
        }
    }

    /// The form of a number of this kind.
    pub fn pattern(self) -> &'static Pattern {
        match self {
            RegistrationKind::Local => &LOCAL,
            RegistrationKind::VatId => &VAT_ID,
            RegistrationKind::Eori => &EORI,
            RegistrationKind::Euid => &EUID,
        }
    }

    /// What a number of this kind is, in a sentence's words.
    fn what(self) -> &'static str {
        match self {
            RegistrationKind::Local => {
                "a register number (letters, digits, space, `.`, `/` or `-`, at most 64)"
            }
            RegistrationKind::VatId => {
                "a VAT identification number (two letters of the country, then 2–12 letters or digits)"
            }
            RegistrationKind::Eori => {
                "an EORI number (two letters of the country, then 1–15 letters or digits)"
            }
            RegistrationKind::Euid => {
                "an EUID (country, register code, `.`, the number in that register)"
            }
        }
    }
}

/// A legal person's number in a register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub kind: RegistrationKind,
    pub value: String,
}

impl Registration {
    pub fn validate(&self, field: &str) -> Result<()> {
        if self.kind.pattern().is_match(&self.value) {
            Ok(())
        } else {
            Err(Invalid::new(
                format!("{field}/value"),
                format!("`{}` is not {}", self.value, self.kind.what()),
            ))
        }
    }
}

/// The JSON Schema of an optional registration: `null`, or one branch per kind with the
/// value's pattern of that kind.
pub fn registration_schema() -> RefOr<Schema> {
    let one_of = OneOfBuilder::new().item(ObjectBuilder::new().schema_type(Type::Null));
    kinds_schema(one_of)
}

/// `one_of` with one branch per kind, the value's pattern of that kind.
fn kinds_schema(mut one_of: OneOfBuilder) -> RefOr<Schema> {
    for kind in REGISTRATION_KINDS {
        one_of = one_of.item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(
                    "kind",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([kind.as_str()])),
                )
                .property("value", kind.pattern().schema())
                .required("kind")
                .required("value")
                .additional_properties(Some(
                    utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
                )),
        );
    }
    RefOr::T(Schema::OneOf(
        one_of
            .description(Some(
                "The number a state register gives the legal person (`null`: none known).",
            ))
            .build(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(kind: RegistrationKind, value: &str) -> Registration {
        Registration {
            kind,
            value: value.into(),
        }
    }

    #[test]
    fn every_pattern_compiles() {
        for kind in REGISTRATION_KINDS {
            assert!(kind.pattern().compiles(), "{}", kind.as_str());
        }
    }

    #[test]
    fn numbers_of_their_registers_are_accepted() {
        for (kind, value) in [
            (RegistrationKind::Local, "HRB 12345"),
            (RegistrationKind::Local, "091620000000"),
            (RegistrationKind::VatId, "DE123456789"),
            (RegistrationKind::Eori, "DE1234567"),
            (RegistrationKind::Euid, "DEK1101R.HRB12345"),
        ] {
            assert_eq!(
                reg(kind, value).validate("/registration"),
                Ok(()),
                "{value}"
            );
        }
    }

    #[test]
    fn other_forms_are_refused_with_the_field() {
        for (kind, value) in [
            (RegistrationKind::Local, " HRB 1"),
            (RegistrationKind::Local, "HRB\u{0}1"),
            (RegistrationKind::VatId, "de123456789"),
            (RegistrationKind::VatId, "D1"),
            (RegistrationKind::Eori, "DE"),
            (RegistrationKind::Euid, "DEK1101R HRB1"),
        ] {
            let e = reg(kind, value).validate("/registration").unwrap_err();
            assert_eq!(e.field, "/registration/value", "{value}");
            assert!(e.message.contains(value), "{}", e.message);
        }
    }

    #[test]
    fn serialises_with_kebab_case_kinds() {
        let r = reg(RegistrationKind::VatId, "DE123456789");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"kind": "vat-id", "value": "DE123456789"})
        );
    }
}
