//! Revocation status lists (W3C Bitstring Status List): a credential of the issuer whose
//! subject carries a bitstring, GZIP-compressed and multibase base64url encoded
//! (`u…`); bit `i` (the first index is the left-most bit of the first byte) set means
//! that the credential pointing at index `i` is revoked.

use std::io::Read;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::credential::{validity, verify_signed};
use crate::{Refusal, TrustList};

/// The most bytes a decompressed list may have (16 million entries).
const MAX_BYTES: u64 = 2 * 1024 * 1024;

/// A verified revocation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusList {
    /// Its id: what credentials name as `statusListCredential`.
    pub id: String,
    /// The issuer that signed it.
    pub issuer: String,
    bits: Vec<u8>,
}

impl StatusList {
    /// Whether the entry at `index` is set (revoked). An index beyond the list is not.
    pub fn is_set(&self, index: u64) -> bool {
        let byte = usize::try_from(index / 8)
            .ok()
            .and_then(|i| self.bits.get(i));
        byte.is_some_and(|b| b & (0x80 >> (index % 8)) != 0)
    }
}

/// Verifies `jwt` as a revocation status list of an issuer on `trust`, valid at `now`.
pub fn verify_status_list(
    jwt: &str,
    trust: &TrustList,
    now: DateTime<Utc>,
) -> Result<StatusList, Refusal> {
    let (issuer, vc) = verify_signed(jwt, trust)?;
    let types = vc.get("type").and_then(Value::as_array);
    if !types.is_some_and(|t| {
        t.iter()
            .any(|v| v.as_str() == Some("BitstringStatusListCredential"))
    }) {
        return Err(Refusal::Content(
            "type BitstringStatusListCredential".into(),
        ));
    }
    if vc.get("validUntil").is_some() || vc.get("validFrom").is_some() {
        validity(&vc, now)?;
    }
    let id = vc
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::Content("id".into()))?
        .to_string();
    let subject = vc
        .get("credentialSubject")
        .ok_or_else(|| Refusal::Content("credentialSubject".into()))?;
    if subject.get("statusPurpose").and_then(Value::as_str) != Some("revocation") {
        return Err(Refusal::Content(
            "credentialSubject.statusPurpose (revocation)".into(),
        ));
    }
    let encoded = subject
        .get("encodedList")
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::Content("credentialSubject.encodedList".into()))?;
    Ok(StatusList {
        id,
        issuer: issuer.id.clone(),
        bits: decode(encoded)?,
    })
}

/// The bitstring of an `encodedList`.
pub(crate) fn decode(encoded: &str) -> Result<Vec<u8>, Refusal> {
    let bad = |why: &str| Refusal::Content(format!("credentialSubject.encodedList ({why})"));
    let data = encoded
        .strip_prefix('u')
        .ok_or_else(|| bad("multibase base64url, starting with `u`"))?;
    let gzip = URL_SAFE_NO_PAD
        .decode(data)
        .map_err(|_| bad("not base64url without padding"))?;
    let mut bits = Vec::new();
    flate2::read::GzDecoder::new(gzip.as_slice())
        .take(MAX_BYTES + 1)
        .read_to_end(&mut bits)
        .map_err(|_| bad("not GZIP"))?;
    if bits.len() as u64 > MAX_BYTES {
        return Err(bad("larger than 2 MiB"));
    }
    Ok(bits)
}

/// `bits` as an `encodedList` (for issuers: the tests', the demo's).
pub(crate) fn encode(bits: &[u8]) -> String {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(bits);
    let bytes = gz.finish().unwrap_or_default();
    format!("u{}", URL_SAFE_NO_PAD.encode(bytes))
}
