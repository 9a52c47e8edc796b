//! Gaia-X credentials out: what the federation knows of its providers, sites, offerings
//! and the offerings' vendors, as Gaia-X credentials signed with the federation's key.
//!
//! Each credential follows the Gaia-X ontology 25.11 (namespace
//! `https://w3id.org/gaia-x/development#`): W3C VC data model 2.0, the payload of a VC-JWT
//! (EdDSA; the header's `kid` is a DID URL of the federation's `did:web`), one subject
//! each — `gx:LegalPerson` for a provider and for a vendor organisation, `gx:Datacenter`
//! with its `gx:AvailabilityZone` and `gx:Address` for a site, `gx:ServiceOffering` for
//! an offering. The shapes are closed: a subject carries only properties the ontology
//! names, so the federation's other facts (certifications, jurisdictions) travel as
//! credentials of their own. What verbund does not know it does not state (see each
//! builder).
//!
//! A credential is a function of the facts it states: its `validFrom` is the time of the
//! last change of those facts, so reading it twice gives the same credential, and a change
//! re-issues it.
//!
//! Pure: domain objects in, JSON out; no I/O, no clock, and no randomness but a new key's
//! ([`generate_key`], for the server's first start). Signing is `verbund_trust::Issuer`'s
//! (ring through jsonwebtoken).

mod address;
mod attestation;
mod did;
mod key;
mod registration;
mod subjects;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use verbund_trust::Issuer;

pub use address::nuts_region;
pub use did::did_web;
pub use key::{generate_key, pem, pkcs8_der};
pub use subjects::{hosts, terms};

/// The W3C VC data model 2.0 context, first in every credential.
pub const VC_CONTEXT: &str = "https://www.w3.org/ns/credentials/v2";
/// The Gaia-X context (the ontology's namespace, which serves its JSON-LD context).
pub const GX_CONTEXT: &str = "https://w3id.org/gaia-x/development#";
/// Where the API serves the credentials, below the public URL.
pub const API_PATH: &str = "/api/v1/gaia-x";

/// Why the federation cannot issue.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The public URL names no host a `did:web` can be made of.
    #[error("the public URL `{0}` names no `did:web`: {1}")]
    PublicUrl(String, &'static str),
    /// The key is not an Ed25519 private key in PKCS#8 (DER or PEM).
    #[error("the federation key is not an Ed25519 private key in PKCS#8 (DER or PEM): {0}")]
    Key(String),
    /// Signing or serialising failed.
    #[error("cannot issue the credential: {0}")]
    Issue(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What a credential is about; its path segment below [`API_PATH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Provider,
    Organisation,
    Site,
    Offering,
}

impl Kind {
    pub fn segment(self) -> &'static str {
        match self {
            Kind::Provider => "providers",
            Kind::Organisation => "organisations",
            Kind::Site => "sites",
            Kind::Offering => "offerings",
        }
    }
}

/// The federation as an issuer of Gaia-X credentials: its `did:web`, its key and the
/// public URL under which the credentials (and an offering's terms) are served.
pub struct Federation {
    issuer: Issuer,
    base: String,
}

impl Federation {
    /// The federation reached at `public_url` (its `did:web`), signing with `key`: the
    /// content of a key file, an Ed25519 private key in PKCS#8 as DER or PEM (v1, as
    /// `openssl genpkey -algorithm ed25519` writes it, or v2, as ring does).
    pub fn new(public_url: &str, key: &[u8]) -> Result<Federation> {
        let did = did_web(public_url)?;
        let der = pkcs8_der(key)?;
        let issuer = Issuer::from_pkcs8(&did, "verbund federation", &der)
            .map_err(|e| Error::Key(e.to_string()))?;
        Ok(Federation {
            issuer,
            base: public_url.trim_end_matches('/').to_string(),
        })
    }

    /// Its `did:web`, the issuer of every credential.
    pub fn did(&self) -> &str {
        &self.issuer.id
    }

    /// Its DID document, served at `/.well-known/did.json`: one `JsonWebKey2020`
    /// verification method with the public key, for assertions (issuing credentials).
    pub fn did_document(&self) -> Value {
        did::document(&self.issuer.key(), self.did())
    }

    /// `credential` as a VC-JWT: header `alg` EdDSA, `kid` the DID URL of the key,
    /// `typ` `vc+jwt`; the payload is the credential itself.
    pub fn sign(&self, credential: &Value) -> Result<String> {
        self.issuer
            .sign(credential)
            .map_err(|e| Error::Issue(e.to_string()))
    }

    /// The URL of the credential about `name` of `kind` (the API serves it there).
    pub fn credential_id(&self, kind: Kind, name: &str) -> String {
        format!("{}{API_PATH}/{}/{name}", self.base, kind.segment())
    }

    /// The id of the subject of that credential, which other credentials refer to.
    pub fn subject_id(&self, kind: Kind, name: &str) -> String {
        format!("{}#subject", self.credential_id(kind, name))
    }

    /// Where an offering's terms are served (see [`terms`]).
    pub fn terms_url(&self, offering: &str) -> String {
        format!("{}/terms", self.credential_id(Kind::Offering, offering))
    }

    /// The URL of the registration number credential of the legal person `name` of
    /// `kind` (a provider or an organisation).
    pub fn registration_id(&self, kind: Kind, name: &str) -> String {
        format!("{}/registration-number", self.credential_id(kind, name))
    }

    /// The credential of `subject` (whose `type` is `gx_type`) about `name` of `kind`,
    /// valid from `valid_from`.
    fn credential(
        &self,
        (kind, name): (Kind, &str),
        gx_type: &str,
        valid_from: DateTime<Utc>,
        subject: Value,
    ) -> Value {
        self.credential_at(self.credential_id(kind, name), gx_type, valid_from, subject)
    }

    /// The credential `id` of `subject` (whose `type` is `gx_type`, whose id is `id`'s
    /// `#subject`), valid from `valid_from`.
    fn credential_at(
        &self,
        id: String,
        gx_type: &str,
        valid_from: DateTime<Utc>,
        subject: Value,
    ) -> Value {
        let mut subject = subject;
        if let Some(s) = subject.as_object_mut() {
            s.insert("id".into(), format!("{id}#subject").into());
            s.insert("type".into(), gx_type.into());
        }
        json!({
            "@context": [VC_CONTEXT, GX_CONTEXT],
            "id": id,
            "type": ["VerifiableCredential", gx_type],
            "issuer": self.did(),
            "validFrom": valid_from.to_rfc3339_opts(SecondsFormat::Millis, true),
            "credentialSubject": subject,
        })
    }
}
