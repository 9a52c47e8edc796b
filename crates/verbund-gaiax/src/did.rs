//! The federation's `did:web`, made of verbund's public URL, and its DID document.
//!
//! did:web (W3C CCG): the host, a port as `%3A<port>`, then each path segment after a
//! `:`. `https://verbund.example.de` is `did:web:verbund.example.de`, resolved at
//! `https://verbund.example.de/.well-known/did.json`; a path makes it
//! `did:web:host:seg`, resolved at `https://host/seg/did.json`.

use serde_json::{json, Value};
use verbund_trust::IssuerKey;

use crate::{Error, Result};

/// The `did:web` of the server reached at `public_url` (`https://` or `http://`).
pub fn did_web(public_url: &str) -> Result<String> {
    let bad = |why| Error::PublicUrl(public_url.to_string(), why);
    let rest = public_url
        .strip_prefix("https://")
        .or_else(|| public_url.strip_prefix("http://"))
        .ok_or_else(|| bad("it does not begin with `https://` or `http://`"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        return Err(bad("it names no host"));
    }
    if authority.contains('@') || path.contains(['?', '#']) {
        return Err(bad("it has credentials, a query or a fragment"));
    }
    let mut did = format!("did:web:{}", encode(&authority.to_ascii_lowercase()));
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        did.push(':');
        did.push_str(&encode(segment));
    }
    Ok(did)
}

/// Percent-encodes what a DID's method-specific id may not hold (`:` of a port, too).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The DID document of `did` with `key` as its one verification method.
pub(crate) fn document(key: &IssuerKey, did: &str) -> Value {
    json!({
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/suites/jws-2020/v1",
        ],
        "id": did,
        "verificationMethod": [{
            "id": key.kid,
            "type": "JsonWebKey2020",
            "controller": did,
            "publicKeyJwk": {"kty": key.kty, "crv": key.crv, "x": key.x, "alg": "EdDSA"},
        }],
        "assertionMethod": [key.kid],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_did_web_is_the_host_port_and_path_of_the_public_url() {
        for (url, did) in [
            ("https://verbund.example.de", "did:web:verbund.example.de"),
            ("https://Verbund.Example.de/", "did:web:verbund.example.de"),
            ("http://127.0.0.1:8080", "did:web:127.0.0.1%3A8080"),
            (
                "https://land.example/cloud/verbund/",
                "did:web:land.example:cloud:verbund",
            ),
        ] {
            assert_eq!(did_web(url).unwrap(), did, "{url}");
        }
        for url in [
            "verbund.example.de",
            "ftp://verbund.example.de",
            "https://",
            "https://user:pw@verbund.example.de",
            "https://verbund.example.de/?x=1",
        ] {
            assert!(did_web(url).is_err(), "{url}");
        }
    }
}
