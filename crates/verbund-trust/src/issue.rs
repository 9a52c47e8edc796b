//! An issuer that signs credentials: what a certification body does. verbund itself
//! does not certify sites; the tests and the demo use this to stand in for the bodies
//! that do, with keys made by `ring`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};

use crate::credential::{CERTIFICATION_TYPE, VC_CONTEXT};
use crate::status::encode;
use crate::{IssuerKey, StatusRef, TrustedIssuer};

/// An issuer with its Ed25519 key.
pub struct Issuer {
    pub id: String,
    pub name: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

/// Why an issuer could not be made or could not sign.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IssueError(String);

impl Issuer {
    /// A new issuer `id` with a fresh key.
    pub fn generate(id: &str, name: &str) -> Result<Issuer, IssueError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| IssueError("no Ed25519 key could be generated".into()))?;
        Issuer::from_pkcs8(id, name, pkcs8.as_ref())
    }

    /// The issuer `id` with the Ed25519 key in `pkcs8` (DER).
    pub fn from_pkcs8(id: &str, name: &str, pkcs8: &[u8]) -> Result<Issuer, IssueError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|_| IssueError("not an Ed25519 key in PKCS#8".into()))?;
        Ok(Issuer {
            id: id.to_string(),
            name: name.to_string(),
            public: pair.public_key().as_ref().to_vec(),
            pkcs8: pkcs8.to_vec(),
        })
    }

    /// Its key as the trust list states it.
    pub fn key(&self) -> IssuerKey {
        IssuerKey {
            kid: format!("{}#key-1", self.id),
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(&self.public),
        }
    }

    /// Its entry on a trust list, for `schemes`.
    pub fn trusted(&self, schemes: &[&str]) -> TrustedIssuer {
        TrustedIssuer {
            id: self.id.clone(),
            name: self.name.clone(),
            keys: vec![self.key()],
            schemes: schemes.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A certification of `subject` (`scheme`, `level`) valid from `from` until `until`,
    /// optionally with an entry in a revocation list, signed.
    pub fn certify(
        &self,
        subject: &str,
        scheme: &str,
        level: Option<&str>,
        validity: (DateTime<Utc>, DateTime<Utc>),
        status: Option<&StatusRef>,
    ) -> Result<String, IssueError> {
        self.sign(&self.certification(subject, scheme, level, validity, status))
    }

    /// The same certification as a credential not yet signed, for an issuer that adds to
    /// it (the federation adds the evidence it checked).
    pub fn certification(
        &self,
        subject: &str,
        scheme: &str,
        level: Option<&str>,
        (from, until): (DateTime<Utc>, DateTime<Utc>),
        status: Option<&StatusRef>,
    ) -> Value {
        let mut vc = json!({
            "@context": [VC_CONTEXT],
            "type": ["VerifiableCredential", CERTIFICATION_TYPE],
            "issuer": self.id,
            "validFrom": from.to_rfc3339_opts(SecondsFormat::Secs, true),
            "validUntil": until.to_rfc3339_opts(SecondsFormat::Secs, true),
            "credentialSubject": {
                "id": subject,
                "certification": {"scheme": scheme, "level": level},
            },
        });
        if let (Some(s), Some(vc)) = (status, vc.as_object_mut()) {
            vc.insert(
                "credentialStatus".into(),
                json!({
                    "type": "BitstringStatusListEntry",
                    "statusPurpose": "revocation",
                    "statusListIndex": s.index.to_string(),
                    "statusListCredential": s.list,
                }),
            );
        }
        vc
    }

    /// A revocation status list `id` of `size` entries with `revoked` set.
    pub fn status_list(&self, id: &str, size: u64, revoked: &[u64]) -> Result<String, IssueError> {
        let mut bits = vec![0u8; usize::try_from(size.div_ceil(8)).unwrap_or(0)];
        for &i in revoked {
            if let Some(b) = usize::try_from(i / 8).ok().and_then(|at| bits.get_mut(at)) {
                *b |= 0x80 >> (i % 8);
            }
        }
        self.sign(&json!({
            "@context": [VC_CONTEXT],
            "id": id,
            "type": ["VerifiableCredential", "BitstringStatusListCredential"],
            "issuer": self.id,
            "credentialSubject": {
                "id": format!("{id}#list"),
                "type": "BitstringStatusList",
                "statusPurpose": "revocation",
                "encodedList": encode(&bits),
            },
        }))
    }

    /// `payload` as a VC-JWT signed with its key.
    pub fn sign(&self, payload: &Value) -> Result<String, IssueError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key().kid);
        header.typ = Some("vc+jwt".into());
        header.cty = Some("vc".into());
        jsonwebtoken::encode(&header, payload, &EncodingKey::from_ed_der(&self.pkcs8))
            .map_err(|e| IssueError(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
