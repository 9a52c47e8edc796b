//! Trust in what others attest.
//!
//! A site's certification (ISO 27001 on IT-Grundschutz, BSI C5) decides where citizens'
//! data may go, so verbund takes it from the body that certified the site, not from the
//! site's operator: as a W3C verifiable credential (data model 2.0) secured as a VC-JWT,
//! signed by an issuer on the federation's **trust list** ([`TrustList`]: issuers, their
//! public keys, which certification schemes each may attest — federation policy,
//! versioned and audited by the store). [`verify_certification`] is the one decision of
//! whether a credential counts: a key on the list, its signature, the issuer it names,
//! the subject (the site), a scheme the issuer may attest, and the validity period. A
//! credential may point into a revocation **status list** (W3C Bitstring Status List),
//! which the issuer publishes as a credential of its own ([`verify_status_list`]).
//!
//! Pure: no I/O, no clock (the time is a parameter). Signatures are checked with
//! `jsonwebtoken` (EdDSA over Ed25519); [`Issuer`] signs with `ring`, for the tests' and
//! the demo's certification bodies. No cryptography is written here.

mod credential;
mod issue;
mod list;
mod status;

pub use credential::{site_subject, verify_certification, Certified, StatusRef};
pub use issue::Issuer;
pub use list::{schemes_schema, IssuerKey, TrustList, TrustedIssuer};
pub use status::{verify_status_list, StatusList};

/// Why a credential does not count, in a sentence for the person who submitted it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the credential is not a JWT: {0}")]
    Malformed(String),
    #[error("the credential is signed with `{0}`; verbund accepts EdDSA (Ed25519)")]
    Algorithm(String),
    #[error("the credential's key `{0}` belongs to no issuer on the federation's trust list (self-signed or unknown issuer)")]
    UnknownIssuer(String),
    #[error("the credential's signature does not verify with the key `{0}` of the trust list")]
    BadSignature(String),
    #[error("the credential names `{named}` as its issuer, but it is signed by `{signer}`")]
    IssuerMismatch { named: String, signer: String },
    #[error("the credential is about `{found}`, not `{expected}`")]
    OtherSubject { expected: String, found: String },
    #[error(
        "issuer `{issuer}` may not attest `{scheme}` by the trust list (it may attest: {allowed})"
    )]
    SchemeNotTrusted {
        issuer: String,
        scheme: String,
        allowed: String,
    },
    #[error("the credential is valid from {from} until {until}, not now ({now})")]
    NotValidNow {
        from: String,
        until: String,
        now: String,
    },
    #[error("the credential lacks or misstates `{0}`")]
    Content(String),
}
