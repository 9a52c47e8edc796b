//! The federation key's file: an Ed25519 private key in PKCS#8, DER or PEM.
//!
//! ring (which signs, through `verbund_trust::Issuer`) reads PKCS#8 v2, which holds the
//! public key beside the private one; `openssl genpkey -algorithm ed25519` writes v1,
//! the 32-byte seed alone. A v1 key is completed to v2 here: ring derives the public key
//! from the seed, and the two go into the fixed DER of an Ed25519 v2 key (RFC 8410),
//! byte for byte what ring writes itself. No other form is read.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::{Error, Result};

/// DER of an Ed25519 PKCS#8 v1 key up to its 32-byte seed: SEQUENCE, version 0,
/// AlgorithmIdentifier id-Ed25519 (1.3.101.112), OCTET STRING { OCTET STRING }.
const V1_HEAD: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// The same for v2 (version 1), whose seed is followed by [`V2_PUBLIC`] and the key.
const V2_HEAD: [u8; 16] = [
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// `[1] IMPLICIT BIT STRING` (no unused bits) before the 32-byte public key of a v2 key.
const V2_PUBLIC: [u8; 3] = [0x81, 0x21, 0x00];

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// The PKCS#8 v2 DER of the key in `file` (DER or PEM, v1 or v2). What is not a v1 key
/// is handed on as it is, for ring to judge.
pub fn pkcs8_der(file: &[u8]) -> Result<Vec<u8>> {
    let der = match std::str::from_utf8(file) {
        Ok(text) if text.trim_start().starts_with("-----BEGIN") => from_pem(text)?,
        _ => file.to_vec(),
    };
    let Some((head, seed)) = der.split_first_chunk::<16>() else {
        return Err(Error::Key("it is too short".into()));
    };
    if *head != V1_HEAD {
        return Ok(der);
    }
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed)
        .map_err(|e| Error::Key(e.to_string()))?;
    let public = ring::signature::KeyPair::public_key(&pair).as_ref();
    Ok([&V2_HEAD[..], seed, &V2_PUBLIC, public].concat())
}

fn from_pem(text: &str) -> Result<Vec<u8>> {
    let body = text
        .trim()
        .strip_prefix(PEM_BEGIN)
        .and_then(|t| t.strip_suffix(PEM_END))
        .ok_or_else(|| {
            Error::Key(format!(
                "a PEM file must hold one unencrypted `{PEM_BEGIN}` block"
            ))
        })?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD
        .decode(b64)
        .map_err(|e| Error::Key(format!("its PEM body is not base64: {e}")))
}

/// A new federation key, as a PEM file's content (PKCS#8 v2, from ring and the operating
/// system's random source): what `verbund serve` writes on its first start without one.
pub fn generate_key() -> Result<String> {
    let rng = ring::rand::SystemRandom::new();
    let der = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| Error::Key("no Ed25519 key could be generated".into()))?;
    Ok(pem(der.as_ref()))
}

/// `der` as a PEM `PRIVATE KEY` block (lines of 64 characters, no final line break).
pub fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    format!("{PEM_BEGIN}\n{}\n{PEM_END}", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::Ed25519KeyPair;

    fn ring_key() -> Vec<u8> {
        let rng = ring::rand::SystemRandom::new();
        Ed25519KeyPair::generate_pkcs8(&rng)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    #[test]
    fn a_v2_key_is_read_as_it_is_from_der_and_pem() {
        let v2 = ring_key();
        assert!(Ed25519KeyPair::from_pkcs8(&v2).is_ok());
        assert_eq!(pkcs8_der(&v2).unwrap(), v2);
        assert_eq!(pkcs8_der(pem(&v2).as_bytes()).unwrap(), v2);
        assert_eq!(
            pkcs8_der(format!("\n{}\n", pem(&v2)).as_bytes()).unwrap(),
            v2
        );
    }

    #[test]
    fn a_v1_key_is_completed_to_what_ring_writes() {
        let v2 = ring_key();
        // ring's v2 is the v1 head (with version 1), the seed, then the public key.
        assert_eq!(v2.len(), 83);
        assert_eq!(v2[..16], V2_HEAD);
        assert_eq!(v2[48..51], V2_PUBLIC);
        let v1 = [&V1_HEAD[..], &v2[16..48]].concat();
        assert_eq!(pkcs8_der(&v1).unwrap(), v2);
        assert_eq!(pkcs8_der(pem(&v1).as_bytes()).unwrap(), v2);
    }

    #[test]
    fn an_openssl_key_signs() {
        // `openssl genpkey -algorithm ed25519` (a throw-away key, for this test only).
        let file = "-----BEGIN PRIVATE KEY-----\n\
                    MC4CAQAwBQYDK2VwBCIEIMfj6yJoD8OqJuLPHjEvJH3FgJpxahFpiwjueoIrX/0a\n\
                    -----END PRIVATE KEY-----\n";
        let federation = crate::Federation::new("https://verbund.example.de", file.as_bytes());
        assert!(federation.unwrap().sign(&serde_json::json!({})).is_ok());
    }

    #[test]
    fn other_files_are_refused_with_a_reason() {
        for (file, why) in [
            (&b"short"[..], "too short"),
            (
                b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----",
                "unencrypted",
            ),
            (
                b"-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----",
                "not base64",
            ),
        ] {
            let e = pkcs8_der(file).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }
}
