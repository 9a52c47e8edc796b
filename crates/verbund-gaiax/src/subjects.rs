//! The four credentials: a provider's and a vendor organisation's `gx:LegalPerson`, a
//! site's `gx:Datacenter`, an offering's `gx:ServiceOffering`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use verbund_domain::catalog::{DataClass, Offering, OfferingSpec};
use verbund_domain::directory::{Organisation, Provider, Site, SiteSpec};
use verbund_domain::registration::Registration;

use crate::address::address;
use crate::{Error, Federation, Kind, Result};

impl Federation {
    /// A provider as a `gx:LegalPerson`: its display name, its seat (country and city)
    /// as both its legal address and its headquarters, the one address verbund holds,
    /// and its registration number credential ([`Federation::provider_registration`])
    /// where the federation stated one (the shape asks for it; without, the credential
    /// names none rather than a number nobody checked). Its parent companies are not
    /// Gaia-X participants here (`subOrganisationOf` refers to a `gx:LegalPerson`'s
    /// credential) and are left out.
    pub fn provider(&self, provider: &Provider) -> Value {
        let p = &provider.spec;
        let seat = address(&p.seat.country, None, Some(&p.seat.city));
        self.legal_person(
            (Kind::Provider, &p.name),
            &p.display_name,
            seat,
            p.registration.is_some(),
            provider.updated_at,
        )
    }

    /// A vendor organisation (an authority of German public administration) as a
    /// `gx:LegalPerson`: its name, Germany with its Land's NUTS region (where the Land is
    /// one) as its address, and the number the federation `stated` or its ARS as its
    /// registration number ([`Federation::organisation_registration`]) where it has one;
    /// no locality, which verbund does not hold for an authority.
    pub fn organisation(
        &self,
        organisation: &Organisation,
        stated: Option<(&Registration, DateTime<Utc>)>,
    ) -> Value {
        let land = organisation
            .land
            .as_deref()
            .and_then(verbund_policy::placement::land_region);
        let seat = address("DE", land, None);
        let registration = crate::registration::organisation_registration(organisation, stated);
        self.legal_person(
            (Kind::Organisation, &organisation.id),
            &organisation.name,
            seat,
            registration.is_some(),
            registration.map_or(organisation.updated_at, |(_, since)| since),
        )
    }

    /// A `gx:LegalPerson` called `display` with `seat` as its legal address and its
    /// headquarters, naming its registration number credential when it is `registered`.
    fn legal_person(
        &self,
        (kind, name): (Kind, &str),
        display: &str,
        seat: Value,
        registered: bool,
        updated: DateTime<Utc>,
    ) -> Value {
        let mut subject = Map::new();
        subject.insert("name".into(), json!(display));
        subject.insert("legalAddress".into(), seat.clone());
        subject.insert("headquartersAddress".into(), seat);
        if registered {
            subject.insert(
                "registrationNumber".into(),
                self.registration_subject(kind, name).into(),
            );
        }
        self.credential(
            (kind, name),
            "gx:LegalPerson",
            updated,
            Value::Object(subject),
        )
    }

    /// A site as a `gx:Datacenter` maintained by its provider, aggregating one
    /// `gx:AvailabilityZone` (a site is one Kubernetes cluster), both at the site's
    /// location: country, NUTS region, city. Its certifications are credentials of their
    /// own (the shape has no place for them).
    pub fn site(&self, site: &Site) -> Value {
        let s = &site.spec;
        let at = address(
            &s.location.country,
            Some(&s.location.region),
            Some(&s.location.city),
        );
        self.credential(
            (Kind::Site, &s.name),
            "gx:Datacenter",
            site.updated_at,
            json!({
                "name": s.display_name,
                "maintainedBy": self.subject_id(Kind::Provider, &s.provider),
                "aggregationOfResources": [{
                    "id": format!("{}#zone", self.credential_id(Kind::Site, &s.name)),
                    "type": "gx:AvailabilityZone",
                    "name": s.display_name,
                    "address": at,
                }],
                "location": at,
            }),
        )
    }

    /// An offering as a `gx:ServiceOffering` provided by its vendor organisation, with
    /// its terms ([`terms`], at [`Federation::terms_url`], and their SHA-256), the GDPR
    /// as its data protection regime when it processes personal data (placement's
    /// reading of the data classes), the offerings it depends on, and the sites among
    /// `sites` that offer what it needs ([`hosts`]). It is valid from the last change of
    /// the offering or of any of `sites` (every site of the federation), since any of
    /// them may join or leave the list.
    pub fn offering(&self, offering: &Offering, sites: &[Site]) -> Result<Value> {
        let o = &offering.spec;
        let mut subject = Map::new();
        subject.insert("name".into(), json!(o.display_name));
        if !o.description.is_empty() {
            subject.insert("description".into(), json!(o.description));
        }
        subject.insert(
            "providedBy".into(),
            json!(self.subject_id(Kind::Organisation, &o.vendor)),
        );
        subject.insert(
            "serviceOfferingTermsAndConditions".into(),
            json!({
                "type": "gx:TermsAndConditions",
                "url": self.terms_url(&o.name),
                "hash": hex::encode(Sha256::digest(terms(o)?)),
            }),
        );
        if o.data_classes.iter().any(|c| *c >= DataClass::Personal) {
            subject.insert("dataProtectionRegime".into(), json!(["GDPR2016"]));
        }
        let depends: BTreeSet<_> = o.dependencies.iter().map(|d| &d.offering).collect();
        if !depends.is_empty() {
            let ids: Vec<_> = depends
                .iter()
                .map(|d| self.subject_id(Kind::Offering, d))
                .collect();
            subject.insert("dependsOn".into(), json!(ids));
        }
        let hosted: BTreeSet<_> = sites
            .iter()
            .filter(|s| hosts(o, &s.spec))
            .map(|s| self.subject_id(Kind::Site, &s.spec.name))
            .collect();
        if !hosted.is_empty() {
            subject.insert("aggregationOfResources".into(), json!(hosted));
        }
        let valid_from = sites
            .iter()
            .map(|s| s.updated_at)
            .fold(offering.updated_at, DateTime::<Utc>::max);
        Ok(self.credential(
            (Kind::Offering, &o.name),
            "gx:ServiceOffering",
            valid_from,
            Value::Object(subject),
        ))
    }
}

/// Whether `site` offers what `offering` needs of every site it runs on: the required
/// capabilities, the Kubernetes version, and sealed delivery when it declares secrets —
/// what placement checks of a site before the federation's, the Land's and the
/// organisation's policies, capacity and the site's last preflight, which differ by
/// booking and by the hour.
pub fn hosts(offering: &OfferingSpec, site: &SiteSpec) -> bool {
    let required = &offering.requirements;
    let new_enough = required
        .min_kubernetes
        .as_deref()
        .and_then(|v| v.split_once('.'))
        .and_then(|(_, minor)| minor.parse::<u16>().ok())
        .is_none_or(|minor| site.kubernetes_minor().unwrap_or(0) >= minor);
    required.capabilities.is_subset(&site.capabilities)
        && new_enough
        && verbund_policy::placement::secrets_reason(offering, site).is_none()
}

/// An offering's terms: its catalog entry as the vendor published it (plans and prices,
/// data classes, site requirements, approval, retention, data export, configuration
/// schema), as canonical JSON — object keys sorted, no whitespace, UTF-8. verbund serves
/// these bytes at the offering's terms URL and states their SHA-256 in its credential;
/// the federation's contracts are not in verbund, so it states no other terms.
pub fn terms(offering: &OfferingSpec) -> Result<Vec<u8>> {
    let value = serde_json::to_value(offering).map_err(|e| Error::Issue(e.to_string()))?;
    serde_json::to_vec(&sorted(value)).map_err(|e| Error::Issue(e.to_string()))
}

/// `value` with the keys of every object in sorted order (whatever order the map keeps).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests;
