//! A certification as a VC-JWT, and the one decision of whether it counts.
//!
//! The JWT's payload is the credential itself (VC data model 2.0, as VC-JOSE-COSE and
//! Gaia-X Loire/Danube secure it): `@context` with the VC 2.0 context, `type` with
//! `VerifiableCredential` and `CertificationCredential`, `issuer`, `validFrom`,
//! `validUntil`, and the subject `{"id": "urn:verbund:site:<name>", "certification":
//! {"scheme": "bsi-c5", "level": "type2"}}`; optionally a `credentialStatus` of type
//! `BitstringStatusListEntry` (purpose `revocation`). The header names the key (`kid`)
//! and the algorithm, EdDSA.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{Refusal, TrustList, TrustedIssuer};

/// The VC 2.0 context every credential names first.
pub const VC_CONTEXT: &str = "https://www.w3.org/ns/credentials/v2";
/// The type of a certification credential.
pub const CERTIFICATION_TYPE: &str = "CertificationCredential";

/// The subject id of site `name` in credentials.
pub fn site_subject(name: &str) -> String {
    format!("urn:verbund:site:{name}")
}

/// A certification credential that counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Certified {
    pub issuer: String,
    pub issuer_name: String,
    pub scheme: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    /// Where its revocation is published, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusRef>,
}

/// An entry in a revocation status list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusRef {
    /// The status list credential's id (its URL).
    pub list: String,
    pub index: u64,
}

/// Verifies `jwt` as a certification of `subject` at `now` against `trust`.
pub fn verify_certification(
    jwt: &str,
    trust: &TrustList,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<Certified, Refusal> {
    let (issuer, vc) = verify_signed(jwt, trust)?;
    require_type(&vc, CERTIFICATION_TYPE)?;
    let about = vc.pointer("/credentialSubject/id").and_then(Value::as_str);
    if about != Some(subject) {
        return Err(Refusal::OtherSubject {
            expected: subject.to_string(),
            found: about.unwrap_or("nothing").to_string(),
        });
    }
    let scheme = string(&vc, "/credentialSubject/certification/scheme")?;
    if !issuer.schemes.contains(&scheme) {
        return Err(Refusal::SchemeNotTrusted {
            issuer: issuer.id.clone(),
            scheme,
            allowed: issuer
                .schemes
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let level = vc
        .pointer("/credentialSubject/certification/level")
        .and_then(Value::as_str)
        .map(str::to_string);
    let (valid_from, valid_until) = validity(&vc, now)?;
    Ok(Certified {
        issuer: issuer.id.clone(),
        issuer_name: issuer.name.clone(),
        scheme,
        level,
        valid_from,
        valid_until,
        status: status_ref(&vc)?,
    })
}

/// The issuer on the trust list whose key signed `jwt`, and the verified payload, which
/// must name that issuer and the VC 2.0 context.
pub(crate) fn verify_signed<'t>(
    jwt: &str,
    trust: &'t TrustList,
) -> Result<(&'t TrustedIssuer, Value), Refusal> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| Refusal::Malformed(e.to_string()))?;
    if header.alg != Algorithm::EdDSA {
        return Err(Refusal::Algorithm(format!("{:?}", header.alg)));
    }
    let kid = header
        .kid
        .ok_or_else(|| Refusal::UnknownIssuer("(none: the header names no `kid`)".into()))?;
    let (issuer, key) = trust
        .key(&kid)
        .ok_or_else(|| Refusal::UnknownIssuer(kid.clone()))?;
    let decoding =
        DecodingKey::from_ed_components(&key.x).map_err(|_| Refusal::BadSignature(kid.clone()))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    // A credential's validity is its `validFrom`/`validUntil`, checked below.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let vc = jsonwebtoken::decode::<Value>(jwt, &decoding, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => Refusal::BadSignature(kid.clone()),
            _ => Refusal::Malformed(e.to_string()),
        })?
        .claims;
    let contexts = vc.get("@context").and_then(Value::as_array);
    if contexts.and_then(|c| c.first()).and_then(Value::as_str) != Some(VC_CONTEXT) {
        return Err(Refusal::Content(format!("@context (first: {VC_CONTEXT})")));
    }
    require_type(&vc, "VerifiableCredential")?;
    let named = vc
        .get("issuer")
        .and_then(|i| i.as_str().or_else(|| i.get("id").and_then(Value::as_str)))
        .unwrap_or("nothing");
    if named != issuer.id {
        return Err(Refusal::IssuerMismatch {
            named: named.to_string(),
            signer: issuer.id.clone(),
        });
    }
    Ok((issuer, vc))
}

fn require_type(vc: &Value, kind: &str) -> Result<(), Refusal> {
    let types = vc.get("type").and_then(Value::as_array);
    if types.is_some_and(|t| t.iter().any(|v| v.as_str() == Some(kind))) {
        Ok(())
    } else {
        Err(Refusal::Content(format!("type {kind}")))
    }
}

fn string(vc: &Value, pointer: &str) -> Result<String, Refusal> {
    vc.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Refusal::Content(pointer.trim_start_matches('/').replace('/', ".")))
}

fn instant(vc: &Value, field: &str) -> Result<DateTime<Utc>, Refusal> {
    let text = string(vc, &format!("/{field}"))?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Refusal::Content(format!("{field} (an RFC 3339 time)")))
}

/// `validFrom` and `validUntil` (both required), and that `now` lies between them.
pub(crate) fn validity(
    vc: &Value,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Refusal> {
    let from = instant(vc, "validFrom")?;
    let until = instant(vc, "validUntil")?;
    if now < from || now > until {
        return Err(Refusal::NotValidNow {
            from: from.to_rfc3339(),
            until: until.to_rfc3339(),
            now: now.to_rfc3339(),
        });
    }
    Ok((from, until))
}

fn status_ref(vc: &Value) -> Result<Option<StatusRef>, Refusal> {
    let Some(status) = vc.get("credentialStatus") else {
        return Ok(None);
    };
    let bad =
        || Refusal::Content("credentialStatus (a BitstringStatusListEntry for revocation)".into());
    if status.get("type").and_then(Value::as_str) != Some("BitstringStatusListEntry")
        || status.get("statusPurpose").and_then(Value::as_str) != Some("revocation")
    {
        return Err(bad());
    }
    let list = status
        .get("statusListCredential")
        .and_then(Value::as_str)
        .ok_or_else(bad)?;
    let index = status
        .get("statusListIndex")
        .and_then(|i| {
            i.as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| i.as_u64())
        })
        .ok_or_else(bad)?;
    Ok(Some(StatusRef {
        list: list.to_string(),
        index,
    }))
}
