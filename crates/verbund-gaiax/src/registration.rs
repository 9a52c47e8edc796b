//! A legal person's registration number as a credential of its own, which its
//! `gx:LegalPerson` names as `registrationNumber` (the shape asks for at least one).
//!
//! In a Gaia-X ecosystem a notary issues it after checking the register; here the
//! federation does, as it states the number as a fact with provenance (a federation
//! admin's, or an operator's proposal a federation admin approved). A provider's number
//! is that fact; an organisation of German public administration is a
//! Gebietskörperschaft whose number in the state's register is its Amtlicher
//! Regionalschlüssel, so its ARS is its local registration number — unless the
//! federation stated another number for it (the Bund, which has no ARS, or an
//! organisation registered otherwise). Where none is known, no number is issued and the
//! legal person's credential names none.

use chrono::{DateTime, Utc};
use serde_json::json;
use serde_json::Value;
use verbund_domain::directory::{Organisation, Provider};
use verbund_domain::registration::{Registration, RegistrationKind};

use crate::{Federation, Kind};

impl Federation {
    /// A provider's registration number credential, where the federation stated one.
    pub fn provider_registration(&self, provider: &Provider) -> Option<Value> {
        let r = provider.spec.registration.as_ref()?;
        Some(self.registration(
            (Kind::Provider, &provider.spec.name),
            r,
            provider.updated_at,
        ))
    }

    /// An organisation's registration number credential: the number the federation
    /// `stated` (with when it did), else its ARS, where it has either.
    pub fn organisation_registration(
        &self,
        organisation: &Organisation,
        stated: Option<(&Registration, DateTime<Utc>)>,
    ) -> Option<Value> {
        let (r, since) = organisation_registration(organisation, stated)?;
        Some(self.registration((Kind::Organisation, &organisation.id), &r, since))
    }

    /// The subject id of the registration credential of `name` of `kind`, which its
    /// `gx:LegalPerson` names.
    pub(crate) fn registration_subject(&self, kind: Kind, name: &str) -> String {
        format!("{}#subject", self.registration_id(kind, name))
    }

    fn registration(
        &self,
        (kind, name): (Kind, &str),
        registration: &Registration,
        valid_from: DateTime<Utc>,
    ) -> Value {
        let (gx_type, property) = gx_form(registration.kind);
        self.credential_at(
            self.registration_id(kind, name),
            gx_type,
            valid_from,
            json!({ property: registration.value }),
        )
    }
}

/// An organisation's number in a register, and since when verbund holds it: the one the
/// federation stated, else its number in the state's register, its Amtlicher
/// Regionalschlüssel.
pub(crate) fn organisation_registration(
    organisation: &Organisation,
    stated: Option<(&Registration, DateTime<Utc>)>,
) -> Option<(Registration, DateTime<Utc>)> {
    if let Some((r, at)) = stated {
        return Some((r.clone(), at.max(organisation.updated_at)));
    }
    organisation.ars.as_ref().map(|ars| {
        (
            Registration {
                kind: RegistrationKind::Local,
                value: ars.clone(),
            },
            organisation.updated_at,
        )
    })
}

/// The Gaia-X class of a kind of number and the property that holds it.
fn gx_form(kind: RegistrationKind) -> (&'static str, &'static str) {
    match kind {
        RegistrationKind::Local => ("gx:LocalRegistrationNumber", "local"),
        RegistrationKind::VatId => ("gx:VatID", "vatID"),
        RegistrationKind::Eori => ("gx:EORI", "eori"),
        RegistrationKind::Euid => ("gx:EUID", "euid"),
    }
}
