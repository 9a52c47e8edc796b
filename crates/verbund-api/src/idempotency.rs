//! The `Idempotency-Key` request header (draft-ietf-httpapi-idempotency-key-header), which
//! lets a client retry `POST /bookings` after a crash or a lost answer without booking
//! twice.
//!
//! A key belongs to the account that sends it (with any of its tokens) and counts for
//! [`LIFETIME`] after its first use. The first request with a key books and records the
//! key in the booking's transaction; a retry with the same key and the same body (same
//! after parsing: key order and spacing do not matter) answers what the first one
//! answered, `201` with the same booking, as it is now, and `Idempotent-Replayed: true`;
//! the same key with another body is refused with `422` and changes nothing. Requests
//! that failed record nothing, so their retry is a new attempt.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponseParts, ResponseParts};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use verbund_store::IdempotentBooking;

use crate::problem::ApiError;

/// How long a key counts after its first use.
pub const LIFETIME: Duration = Duration::hours(24);

/// The longest key accepted, in characters.
pub const MAX_LENGTH: usize = 255;

/// The request header.
pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");

/// The response header that marks an answer repeated for a retry.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// What the OpenAPI document says about the header.
pub const DESCRIPTION: &str = "Makes a retry safe: a retry with the same key and the same \
    body answers what the first request answered (201, the same booking as it is now, and \
    `Idempotent-Replayed: true`) instead of booking again; the same key with another body \
    answers 422. Keys belong to the account, count for 24 hours, and are 1 to 255 visible \
    ASCII characters, plain or as a quoted structured-field string (`\"…\"`). A request \
    that failed records nothing.";

/// The header values [`parse`] accepts, as a regular expression (the OpenAPI document
/// states it, and the tests pin it to `parse`): around optional spaces or tabs, 1 to
/// [`MAX_LENGTH`] visible ASCII characters with spaces inside, not opening with a quote;
/// or a structured-field string of 1 to [`MAX_LENGTH`] of them (`\"` and `\\`
/// escaped).
pub static KEY: verbund_domain::name::Pattern = verbund_domain::name::Pattern::new(|| {
    let inner = MAX_LENGTH - 2;
    format!(
        "^[ \\t]*([!#-~]([ -~]{{0,{inner}}}[!-~])?|\"([ !#-\\[\\]-~]|\\\\[\"\\\\]){{1,{MAX_LENGTH}}}\")[ \\t]*$"
    )
});

/// The `Idempotency-Key` of a request, if it sent one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(IdempotencyKey(None));
        };
        if values.next().is_some() {
            return Err(ApiError::BadRequest(
                "send one `Idempotency-Key` header, not several".into(),
            ));
        }
        parse(value).map(|k| IdempotencyKey(Some(k)))
    }
}

/// A key from its header value: visible ASCII, plain or a structured-field string
/// (RFC 8941, section 3.3.3: `"…"` with `\"` and `\\` escaped), 1 to 255 characters.
fn parse(value: &HeaderValue) -> Result<String, ApiError> {
    let refuse = |why: &str| {
        ApiError::BadRequest(format!(
            "the `Idempotency-Key` header {why}: send 1 to {MAX_LENGTH} visible ASCII \
             characters, e.g. a UUID"
        ))
    };
    let text = value
        .to_str()
        .map_err(|_| refuse("is not ASCII text"))?
        .trim();
    let key = match text.strip_prefix('"') {
        Some(quoted) => {
            let inner = quoted
                .strip_suffix('"')
                .ok_or_else(|| refuse("opens a quote it does not close"))?;
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(e @ ('"' | '\\')) => out.push(e),
                        _ => return Err(refuse("has a backslash that escapes nothing")),
                    },
                    '"' => return Err(refuse("has an unescaped quote inside its quotes")),
                    c => out.push(c),
                }
            }
            out
        }
        None => text.to_string(),
    };
    if key.is_empty() {
        return Err(refuse("is empty"));
    }
    if key.chars().count() > MAX_LENGTH {
        return Err(refuse("is too long"));
    }
    if !key.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
        return Err(refuse("holds a character that is not visible ASCII"));
    }
    Ok(key)
}

/// Digest of a request body, the same for the same body however its JSON was written
/// (object keys sorted, no spacing).
pub fn fingerprint<T: Serialize>(body: &T) -> Result<String, ApiError> {
    let value = serde_json::to_value(body)
        .map_err(|e| ApiError::Internal(format!("cannot fingerprint a request: {e}")))?;
    let canonical = canonical(&value).to_string();
    Ok(hex::encode(Sha256::digest(canonical.as_bytes())))
}

/// `value` with the keys of every object sorted (serde_json may keep insertion order).
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Refuses a key that an earlier request used with another body.
pub fn check_same_request(earlier: &IdempotentBooking, fingerprint: &str) -> Result<(), ApiError> {
    if earlier.key.fingerprint == fingerprint {
        Ok(())
    } else {
        Err(ApiError::IdempotencyKeyReused(format!(
            "the idempotency key `{}` was used for another request (booking `{}`) at {}; \
             send a new key for a new request",
            earlier.key.key,
            earlier.booking,
            earlier.created_at.to_rfc3339()
        )))
    }
}

/// When a key used at `now` stops counting.
pub fn expiry(now: DateTime<Utc>) -> DateTime<Utc> {
    now + LIFETIME
}

/// Marks a response as the repetition of an earlier one (`Idempotent-Replayed: true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed(pub bool);

impl IntoResponseParts for Replayed {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        if self.0 {
            res.headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
        }
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(raw: &str) -> Result<String, String> {
        parse(&HeaderValue::from_str(raw).map_err(|e| e.to_string())?).map_err(|e| e.to_string())
    }

    #[test]
    fn keys_are_plain_or_quoted_visible_ascii() {
        assert_eq!(
            key("8e03978e-40d5-43e8-bc93-6894a57f9324").as_deref(),
            Ok("8e03978e-40d5-43e8-bc93-6894a57f9324")
        );
        assert_eq!(key("\"8e03978e\"").as_deref(), Ok("8e03978e"));
        assert_eq!(key(r#""a \"b\" \\c""#).as_deref(), Ok(r#"a "b" \c"#));
        assert_eq!(
            key(&"k".repeat(MAX_LENGTH)).map(|k| k.len()),
            Ok(MAX_LENGTH)
        );
        for bad in ["", "\"\"", "\"open", r#""a"b""#, r#""a\b""#, "tab\there"] {
            assert!(key(bad).is_err(), "`{bad}` was accepted");
        }
        assert!(key(&"k".repeat(MAX_LENGTH + 1)).is_err());
    }

    #[test]
    fn the_key_pattern_is_parse() {
        assert!(KEY.compiles(), "{}", KEY.source());
        let alphabet = ['a', ' ', '\t', '"', '\\', '~', '#'];
        let mut values = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..5 {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            values.extend(last.iter().cloned());
        }
        for n in [MAX_LENGTH - 1, MAX_LENGTH, MAX_LENGTH + 1] {
            values.push("k".repeat(n));
            values.push(format!(" {} ", "k".repeat(n)));
            values.push(format!("\"{}\"", "k".repeat(n)));
            values.push(format!("\"{}\\\"\"", "k".repeat(n - 1)));
        }
        for v in values {
            assert_eq!(key(&v).is_ok(), KEY.is_match(&v), "{v:?}");
        }
    }

    #[test]
    fn the_fingerprint_ignores_key_order_but_not_values() {
        let a = json!({"organisation": "o", "config": {"a": 1, "b": [{"x": 1, "y": 2}]}});
        let b = json!({"config": {"b": [{"y": 2, "x": 1}], "a": 1}, "organisation": "o"});
        let c = json!({"organisation": "o", "config": {"a": 2, "b": [{"x": 1, "y": 2}]}});
        assert_eq!(fingerprint(&a).ok(), fingerprint(&b).ok());
        assert_ne!(fingerprint(&a).ok(), fingerprint(&c).ok());
    }
}
