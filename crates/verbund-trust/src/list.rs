//! The federation's trust list: who may attest which certification schemes, with which
//! keys.

use std::collections::BTreeSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use verbund_domain::{Invalid, Result};

/// Most issuers on the list, and keys per issuer.
const MAX_ISSUERS: usize = 100;
const MAX_KEYS: usize = 10;
const MAX_TEXT: usize = 500;

/// The issuers whose credentials count, by the federation's decision. Before the
/// federation states one (`Default`) nobody's credentials count, and neither do
/// certifications only stated in site facts: no certification counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustList {
    #[schema(max_items = 100)]
    pub issuers: Vec<TrustedIssuer>,
    /// Whether the certifications stated in sites' facts count for placement beside the
    /// credentials: a federation moving onto verbund with certificates it has not yet
    /// attested (`/sites/{name}/attestations`) may say `true` for that passage. Absent:
    /// `false` — a certification counts only as a verified credential.
    #[serde(default)]
    #[schema(default = false)]
    pub count_stated_certifications: bool,
}

/// A certification body (or the federation itself, for attestations it checked by hand).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// The issuer's identifier as its credentials name it, e.g. `did:web:zert.example.de`.
    #[schema(schema_with = text_schema)]
    pub id: String,
    /// Its name, for people.
    #[schema(schema_with = text_schema)]
    pub name: String,
    /// Its public keys.
    #[schema(min_items = 1, max_items = 10)]
    pub keys: Vec<IssuerKey>,
    /// The certification schemes it may attest, e.g. `bsi-c5`, `iso27001`.
    #[schema(schema_with = schemes_schema)]
    pub schemes: BTreeSet<String>,
}

/// An Ed25519 public key as a JWK (`kty` `OKP`, `crv` `Ed25519`), with the `kid` that
/// credentials name in their header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuerKey {
    #[schema(schema_with = text_schema)]
    pub kid: String,
    /// `OKP`.
    #[schema(schema_with = kty_schema)]
    pub kty: String,
    /// `Ed25519`.
    #[schema(schema_with = crv_schema)]
    pub crv: String,
    /// The public key, base64url without padding (32 bytes: 43 characters).
    #[schema(schema_with = x_schema)]
    pub x: String,
}

fn text_schema() -> utoipa::openapi::schema::Object {
    verbund_domain::name::line_text_schema(MAX_TEXT)
}

fn one_of(value: &str) -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some([value]))
        .build()
}

fn kty_schema() -> utoipa::openapi::schema::Object {
    one_of("OKP")
}

fn crv_schema() -> utoipa::openapi::schema::Object {
    one_of("Ed25519")
}

/// 32 bytes in base64url without padding: 43 characters, the last of which carries only
/// four bits.
pub static PUBLIC_KEY: verbund_domain::name::Pattern =
    verbund_domain::name::Pattern::new(|| "^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$".into());

fn x_schema() -> utoipa::openapi::schema::Object {
    PUBLIC_KEY.schema()
}

/// The schema of a set of certification schemes an issuer may attest (names, at least
/// one).
pub fn schemes_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(verbund_domain::name::name_schema())
        .min_items(Some(1))
        .build()
}

impl TrustList {
    /// Checks the list's form: identifiers and key ids unique, keys Ed25519 of 32 bytes,
    /// schemes named like names.
    pub fn validate(&self) -> Result<()> {
        if self.issuers.len() > MAX_ISSUERS {
            return Err(Invalid::new(
                "/issuers",
                format!("at most {MAX_ISSUERS} issuers"),
            ));
        }
        let mut ids = BTreeSet::new();
        let mut kids = BTreeSet::new();
        for (i, issuer) in self.issuers.iter().enumerate() {
            let at = format!("/issuers/{i}");
            text(&format!("{at}/id"), &issuer.id)?;
            text(&format!("{at}/name"), &issuer.name)?;
            if !ids.insert(issuer.id.as_str()) {
                return Err(Invalid::meaning(
                    format!("{at}/id"),
                    format!("issuer `{}` is listed twice", issuer.id),
                ));
            }
            if issuer.keys.is_empty() || issuer.keys.len() > MAX_KEYS {
                return Err(Invalid::new(
                    format!("{at}/keys"),
                    format!("1 to {MAX_KEYS} keys"),
                ));
            }
            for (k, key) in issuer.keys.iter().enumerate() {
                let kat = format!("{at}/keys/{k}");
                text(&format!("{kat}/kid"), &key.kid)?;
                if !kids.insert(key.kid.as_str()) {
                    return Err(Invalid::meaning(
                        format!("{kat}/kid"),
                        format!("key `{}` is listed twice", key.kid),
                    ));
                }
                if key.kty != "OKP" || key.crv != "Ed25519" {
                    return Err(Invalid::new(
                        format!("{kat}/crv"),
                        "only Ed25519 keys (`kty` OKP, `crv` Ed25519)",
                    ));
                }
                if !PUBLIC_KEY.is_match(&key.x) || key.public_bytes().is_none() {
                    return Err(Invalid::new(
                        format!("{kat}/x"),
                        "not 32 bytes of base64url without padding",
                    ));
                }
            }
            if issuer.schemes.is_empty() {
                return Err(Invalid::new(
                    format!("{at}/schemes"),
                    "name at least one scheme it may attest",
                ));
            }
            for scheme in &issuer.schemes {
                verbund_domain::name::check_name(&format!("{at}/schemes"), scheme)?;
            }
        }
        Ok(())
    }

    /// The issuer and key a credential's `kid` names.
    pub fn key(&self, kid: &str) -> Option<(&TrustedIssuer, &IssuerKey)> {
        self.issuers
            .iter()
            .find_map(|i| i.keys.iter().find(|k| k.kid == kid).map(|k| (i, k)))
    }

    /// The issuers of `self` that `next` no longer has.
    pub fn removed_in<'a>(&'a self, next: &TrustList) -> Vec<&'a str> {
        self.issuers
            .iter()
            .filter(|i| !next.issuers.iter().any(|n| n.id == i.id))
            .map(|i| i.id.as_str())
            .collect()
    }
}

impl IssuerKey {
    /// The raw public key, if it is 32 bytes.
    pub fn public_bytes(&self) -> Option<Vec<u8>> {
        URL_SAFE_NO_PAD
            .decode(&self.x)
            .ok()
            .filter(|b| b.len() == 32)
    }
}

fn text(field: &str, value: &str) -> Result<()> {
    verbund_domain::name::check_line(field, value, MAX_TEXT, true)
}
