//! The federation's own attestations: a certification it checked by hand (the
//! certificate and the auditor's report, read by a federation admin), signed with the
//! federation's key as the same certification credential a certification body issues
//! (`verbund_trust`), with what was checked as its W3C `evidence`.
//!
//! Signing is not trusting: such a credential counts for placement only as any other —
//! verified against the trust list in force, on which the federation must name itself
//! (its `did:web` and the key of its DID document) with the schemes it attests by hand.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::{Error, Federation, Result};

impl Federation {
    /// A VC-JWT by which the federation attests that site `site` holds `scheme` at
    /// `level`, valid from `from` until `until`, having checked `evidence`.
    pub fn attest(
        &self,
        site: &str,
        (scheme, level): (&str, Option<&str>),
        validity: (DateTime<Utc>, DateTime<Utc>),
        evidence: &str,
    ) -> Result<String> {
        let subject = verbund_trust::site_subject(site);
        let mut vc = self
            .issuer
            .certification(&subject, scheme, level, validity, None);
        if let Some(vc) = vc.as_object_mut() {
            vc.insert(
                "evidence".into(),
                json!([{
                    "type": ["Evidence", "DocumentVerification"],
                    "description": evidence,
                }]),
            );
        }
        self.issuer
            .sign(&vc)
            .map_err(|e| Error::Issue(e.to_string()))
    }

    /// The federation as an issuer on a trust list, attesting `schemes` by hand: its
    /// `did:web` and the key of its DID document.
    pub fn trusted(&self, schemes: &[&str]) -> verbund_trust::TrustedIssuer {
        self.issuer.trusted(schemes)
    }
}
