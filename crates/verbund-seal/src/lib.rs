//! Seals a document for one site, so that only that site can read its secret values:
//! a SOPS document (the format Flux's kustomize-controller and the `sops` CLI decrypt)
//! whose data key is encrypted for the site's age X25519 recipient.
//!
//! Why our own writer rather than the `rops` crate: `rops` reads identities only from a
//! process-wide environment variable or a file in the user's configuration folder (the
//! agent holds its identity itself), and writes no `version`; the SOPS document format
//! is small and stable. The cryptography is the `age` crate's (the data key, armored)
//! and the `aes-gcm` crate's (each value); nothing here is a primitive of our own.
//!
//! # The format ([`seal`])
//!
//! Every string at a path through a key matching `^(data|stringData)$` becomes
//! `ENC[AES256_GCM,data:…,iv:…,tag:…,type:str]`: AES-256-GCM with a random 32-byte data
//! key, a random 32-byte IV per value, and the value's path (`data:password:`) as
//! additional data. The metadata block `sops` holds the data key encrypted for the age
//! recipient (ASCII-armored), `encrypted_regex`, `lastmodified` (RFC 3339, seconds),
//! `version` and the MAC: SHA-512 over every value of the document in order (upper-case
//! hex), encrypted with the data key and `lastmodified` as additional data. Sealing takes
//! the keys in byte order at every depth, the order in which verbund writes YAML (and so
//! the order in which kustomize-controller's SOPS reads it); [`open`] follows the
//! document's own key order, as SOPS does, so it also opens what SOPS encrypted.
//!
//! Sealing is randomised (data key, IVs): the caller keeps what it sealed and hands the
//! same document out again while its input is the same (see `verbund-store`'s sealed
//! secrets), so the desired state stays a function of the store.

use std::io::{Read, Write};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use rand::RngCore;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256, Sha512};

/// AES-256-GCM with SOPS's 32-byte nonce.
type Cipher = AesGcm<Aes256, aes_gcm::aead::consts::U32>;

/// Keys whose values (at any depth below them) are encrypted.
pub const ENCRYPTED_REGEX: &str = "^(data|stringData)$";
/// The SOPS version this writer's documents correspond to.
pub const SOPS_VERSION: &str = "3.10.2";

/// Why a document could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The recipient is not an age X25519 recipient.
    #[error("`{0}` is not an age X25519 recipient (`age1…`)")]
    Recipient(String),
    /// No age identity could be read.
    #[error("no age X25519 identity (`AGE-SECRET-KEY-1…`) found")]
    Identity,
    /// The document is not one this crate seals or opens.
    #[error("not a sealed document: {0}")]
    Format(String),
    /// The document is not sealed for any of the identities given.
    #[error("the document is sealed for {0}, not for this identity")]
    NotForUs(String),
    /// Encryption or decryption failed (a value or the MAC was tampered with).
    #[error("{0}")]
    Crypto(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A parsed age X25519 recipient.
#[derive(Clone)]
pub struct Recipient(age::x25519::Recipient);

impl Recipient {
    pub fn parse(text: &str) -> Result<Self> {
        text.trim()
            .parse()
            .map(Recipient)
            .map_err(|_| Error::Recipient(text.to_string()))
    }
}

/// The age X25519 identities of a site (its private keys).
pub struct Identities(Vec<age::x25519::Identity>);

impl Identities {
    /// Reads identities as `age-keygen` writes them (one `AGE-SECRET-KEY-1…` a line;
    /// comments and blank lines are skipped).
    pub fn parse(text: &str) -> Result<Self> {
        let keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                l.parse::<age::x25519::Identity>()
                    .map_err(|_| Error::Identity)
            })
            .collect::<Result<Vec<_>>>()?;
        if keys.is_empty() {
            return Err(Error::Identity);
        }
        Ok(Identities(keys))
    }

    /// A new random identity and its recipient, as `age-keygen` makes them.
    pub fn generate() -> (String, String) {
        use age::secrecy::ExposeSecret;
        let identity = age::x25519::Identity::generate();
        (
            identity.to_string().expose_secret().to_string(),
            identity.to_public().to_string(),
        )
    }

    /// The recipients these identities open.
    pub fn recipients(&self) -> Vec<String> {
        self.0.iter().map(|i| i.to_public().to_string()).collect()
    }
}

/// Whether `document` carries a SOPS metadata block with a MAC.
pub fn is_sealed(document: &Value) -> bool {
    document
        .get("sops")
        .and_then(|s| s.get("mac"))
        .and_then(Value::as_str)
        .is_some_and(|m| !m.is_empty())
}

/// A digest of a document and the recipient it is (to be) sealed for: what decides
/// whether a sealed document is still the one to deliver. Keys are hashed in byte order.
pub fn digest(document: &Value, recipient: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(recipient.as_bytes());
    hash.update([0]);
    hash.update(canonical_json(document).as_bytes());
    hex::encode(hash.finalize())
}

fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        Value::String(k.clone()),
                        canonical_json(&map[k.as_str()])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

/// Seals `document` (a JSON object without a `sops` key) for `recipient` at `now`.
pub fn seal(document: &Value, recipient: &str, now: DateTime<Utc>) -> Result<Value> {
    let age_recipient = Recipient::parse(recipient)?;
    let Value::Object(map) = document else {
        return Err(Error::Format("a document must be an object".into()));
    };
    if map.contains_key("sops") {
        return Err(Error::Format("the document is sealed already".into()));
    }
    let mut data_key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut data_key);
    let mut mac = Sha512::new();
    let mut path = Vec::new();
    let sealed = encrypt_tree(document, &data_key, &mut path, false, &mut mac)?;
    let last_modified = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mac_text = hex::encode_upper(mac.finalize());
    let mac_sealed = encrypt_value(&mac_text, &data_key, &last_modified)?;
    let enc = encrypt_data_key(&age_recipient, &data_key)?;
    let Value::Object(mut out) = sealed else {
        return Err(Error::Format("a document must be an object".into()));
    };
    out.insert(
        "sops".into(),
        json!({
            "age": [{"recipient": recipient.trim(), "enc": enc}],
            "encrypted_regex": ENCRYPTED_REGEX,
            "lastmodified": last_modified,
            "mac": mac_sealed,
            "version": SOPS_VERSION,
        }),
    );
    Ok(Value::Object(out))
}

/// Opens a sealed document with `identities`: every value decrypted, the MAC checked,
/// the `sops` block removed.
pub fn open(document: &Value, identities: &Identities) -> Result<Value> {
    let Value::Object(map) = document else {
        return Err(Error::Format("a document must be an object".into()));
    };
    let meta = map
        .get("sops")
        .ok_or_else(|| Error::Format("no `sops` block".into()))?;
    let text = |key: &str| {
        meta.get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Format(format!("`sops.{key}` is missing")))
    };
    if meta.get("encrypted_regex").and_then(Value::as_str) != Some(ENCRYPTED_REGEX) {
        return Err(Error::Format(format!(
            "only documents sealed with `encrypted_regex: {ENCRYPTED_REGEX}` are opened"
        )));
    }
    let entries = meta
        .get("age")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Format("`sops.age` is missing".into()))?;
    let ours = identities.recipients();
    let mut data_key = None;
    for entry in entries {
        let recipient = entry.get("recipient").and_then(Value::as_str);
        if let (Some(r), Some(enc)) = (recipient, entry.get("enc").and_then(Value::as_str)) {
            if ours.iter().any(|o| o == r) {
                data_key = Some(decrypt_data_key(identities, enc)?);
                break;
            }
        }
    }
    let data_key = data_key.ok_or_else(|| {
        let named: Vec<&str> = entries
            .iter()
            .filter_map(|e| e.get("recipient").and_then(Value::as_str))
            .collect();
        Error::NotForUs(named.join(", "))
    })?;
    let mut body = map.clone();
    body.remove("sops");
    let mut mac = Sha512::new();
    let mut path = Vec::new();
    let opened = decrypt_tree(&Value::Object(body), &data_key, &mut path, false, &mut mac)?;
    let expected = decrypt_value(text("mac")?, &data_key, text("lastmodified")?)?;
    if !expected.eq_ignore_ascii_case(&hex::encode_upper(mac.finalize())) {
        return Err(Error::Crypto(
            "the document's MAC does not match its values: it was changed after sealing".into(),
        ));
    }
    Ok(opened)
}

fn is_encrypted_key(key: &str) -> bool {
    key == "data" || key == "stringData"
}

/// The bytes SOPS hashes for a value, and its type tag.
fn plain_bytes(value: &Value) -> Result<Option<(String, &'static str)>> {
    Ok(match value {
        Value::String(s) => Some((s.clone(), "str")),
        Value::Bool(b) => Some((if *b { "True" } else { "False" }.to_string(), "bool")),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some((n.to_string(), "int")),
        Value::Number(n) => Some((n.to_string(), "float")),
        Value::Null => None,
        _ => return Err(Error::Format("not a scalar".into())),
    })
}

fn sorted(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

fn encrypt_tree(
    value: &Value,
    key: &[u8; 32],
    path: &mut Vec<String>,
    encrypted: bool,
    mac: &mut Sha512,
) -> Result<Value> {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in sorted(map) {
                path.push(k.clone());
                let child = encrypt_tree(v, key, path, encrypted || is_encrypted_key(k), mac)?;
                path.pop();
                out.insert(k.clone(), child);
            }
            Ok(Value::Object(out))
        }
        // SOPS walks list elements under their list's path.
        Value::Array(items) => items
            .iter()
            .map(|item| encrypt_tree(item, key, path, encrypted, mac))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array),
        scalar => {
            let Some((text, kind)) = plain_bytes(scalar)? else {
                return Ok(Value::Null);
            };
            mac.update(text.as_bytes());
            if !encrypted {
                return Ok(scalar.clone());
            }
            if text.is_empty() {
                return Ok(Value::String(String::new()));
            }
            let aad = format!("{}:", path.join(":"));
            encrypt_typed(&text, kind, key, &aad).map(Value::String)
        }
    }
}

fn decrypt_tree(
    value: &Value,
    key: &[u8; 32],
    path: &mut Vec<String>,
    encrypted: bool,
    mac: &mut Sha512,
) -> Result<Value> {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                path.push(k.clone());
                let child = decrypt_tree(v, key, path, encrypted || is_encrypted_key(k), mac)?;
                path.pop();
                out.insert(k.clone(), child);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|item| decrypt_tree(item, key, path, encrypted, mac))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array),
        Value::String(s) if encrypted && !s.is_empty() => {
            let aad = format!("{}:", path.join(":"));
            let (text, kind) = decrypt_typed(s, key, &aad)?;
            mac.update(text.as_bytes());
            Ok(match kind.as_str() {
                "str" => Value::String(text),
                "bool" => Value::Bool(text == "True"),
                "int" | "float" => serde_json::from_str(&text)
                    .map_err(|_| Error::Format(format!("`{text}` is no number")))?,
                other => return Err(Error::Format(format!("values of type `{other}`"))),
            })
        }
        scalar => {
            if let Some((text, _)) = plain_bytes(scalar)? {
                mac.update(text.as_bytes());
            }
            Ok(scalar.clone())
        }
    }
}

fn encrypt_value(text: &str, key: &[u8; 32], aad: &str) -> Result<String> {
    encrypt_typed(text, "str", key, aad)
}

fn encrypt_typed(text: &str, kind: &str, key: &[u8; 32], aad: &str) -> Result<String> {
    let cipher = Cipher::new(Key::<Cipher>::from_slice(key));
    let mut iv = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut iv);
    let sealed = cipher
        .encrypt(
            Nonce::<aes_gcm::aead::consts::U32>::from_slice(&iv),
            Payload {
                msg: text.as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| Error::Crypto("AES-GCM encryption failed".into()))?;
    let (data, tag) = sealed.split_at(sealed.len().saturating_sub(16));
    Ok(format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{kind}]",
        BASE64.encode(data),
        BASE64.encode(iv),
        BASE64.encode(tag)
    ))
}

fn decrypt_value(text: &str, key: &[u8; 32], aad: &str) -> Result<String> {
    decrypt_typed(text, key, aad).map(|(t, _)| t)
}

fn decrypt_typed(text: &str, key: &[u8; 32], aad: &str) -> Result<(String, String)> {
    let inner = text
        .strip_prefix("ENC[AES256_GCM,")
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| Error::Format(format!("`{aad}` is not encrypted")))?;
    let mut fields = std::collections::BTreeMap::new();
    for part in inner.split(',') {
        if let Some((k, v)) = part.split_once(':') {
            fields.insert(k, v);
        }
    }
    let field = |name: &str| {
        fields
            .get(name)
            .copied()
            .ok_or_else(|| Error::Format(format!("`{aad}` lacks `{name}`")))
    };
    let decode = |name: &str| {
        BASE64
            .decode(field(name)?)
            .map_err(|_| Error::Format(format!("`{aad}` has a bad `{name}`")))
    };
    let (data, iv, tag) = (decode("data")?, decode("iv")?, decode("tag")?);
    if iv.len() != 32 || tag.len() != 16 {
        return Err(Error::Format(format!("`{aad}` has a bad IV or tag")));
    }
    let cipher = Cipher::new(Key::<Cipher>::from_slice(key));
    let mut sealed = data;
    sealed.extend_from_slice(&tag);
    let plain = cipher
        .decrypt(
            Nonce::<aes_gcm::aead::consts::U32>::from_slice(&iv),
            Payload {
                msg: &sealed,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| Error::Crypto(format!("`{aad}` does not decrypt: wrong key or changed")))?;
    let plain =
        String::from_utf8(plain).map_err(|_| Error::Format(format!("`{aad}` is not text")))?;
    Ok((plain, field("type")?.to_string()))
}

fn encrypt_data_key(recipient: &Recipient, data_key: &[u8; 32]) -> Result<String> {
    let crypto = |e: &dyn std::fmt::Display| Error::Crypto(format!("age: {e}"));
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient.0 as &dyn age::Recipient))
            .map_err(|e| crypto(&e))?;
    let mut armored = Vec::new();
    let writer =
        age::armor::ArmoredWriter::wrap_output(&mut armored, age::armor::Format::AsciiArmor)
            .map_err(|e| crypto(&e))?;
    let mut writer_inner = encryptor.wrap_output(writer).map_err(|e| crypto(&e))?;
    writer_inner.write_all(data_key).map_err(|e| crypto(&e))?;
    writer_inner
        .finish()
        .and_then(|w| w.finish())
        .map_err(|e| crypto(&e))?;
    String::from_utf8(armored).map_err(|e| crypto(&e))
}

fn decrypt_data_key(identities: &Identities, enc: &str) -> Result<[u8; 32]> {
    let crypto = |e: &dyn std::fmt::Display| Error::Crypto(format!("age: {e}"));
    let reader = age::armor::ArmoredReader::new(enc.as_bytes());
    let decryptor = age::Decryptor::new(reader).map_err(|e| crypto(&e))?;
    let mut out = Vec::new();
    decryptor
        .decrypt(identities.0.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| crypto(&e))?
        .read_to_end(&mut out)
        .map_err(|e| crypto(&e))?;
    out.try_into()
        .map_err(|_| Error::Crypto("the data key is not 32 bytes".into()))
}

#[cfg(test)]
mod tests;
