//! JSON body and query extractors whose rejections are problem+json, not axum's text.
//!
//! They are also the one place where text that no database can store is refused: a NUL
//! character (U+0000) in any string of any body or query, before a handler sees it. The
//! OpenAPI document states that rule on every string (`crate::openapi`), so a refusal of
//! it is one of form (400), like every refusal of the typed parse.
//!
//! A body is read as JSON first and then into its type, with one step between: a whole
//! number written with a fraction (`2.0`) becomes the integer it is. JSON Schema counts
//! it as an integer, so the document allows it where it says `integer`; serde does not.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;
use serde_json::Value;
use verbund_domain::Invalid;

use crate::problem::ApiError;
use crate::MAX_BODY_BYTES;

/// `axum::Json` with problem+json rejections.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|b| {
            if b.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(MAX_BODY_BYTES)
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {}", b.body_text()))
            }
        })?;
        refuse_nul_in_json(&bytes)?;
        let mut value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
        whole_numbers_as_integers(&mut value);
        serde_path_to_error::deserialize(value)
            .map(ApiJson)
            .map_err(|e| ApiError::Invalid(Invalid::new(pointer(e.path()), e.inner().to_string())))
    }
}

/// The largest magnitude up to which every whole number has an exact `f64`.
const EXACT_WHOLE: f64 = 9_007_199_254_740_992.0;

/// Writes every whole number in `value` that carries a fraction (`2.0`, `-3e2`) as the
/// integer it is, so that a field typed as an integer takes it (see the module).
fn whole_numbers_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                if (0.0..=EXACT_WHOLE).contains(&f) {
                    *n = serde_json::Number::from(f as u64);
                } else if (-EXACT_WHOLE..0.0).contains(&f) {
                    *n = serde_json::Number::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers_as_integers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

/// The JSON pointer of a place in a body that serde names.
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .fold(String::new(), |acc, s| format!("{acc}/{s}"))
}

/// Whether the request says its body is JSON (`application/json` or `application/*+json`),
/// as `axum::Json` decides it.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", subtype)) => subtype == "json" || subtype.ends_with("+json"),
        _ => false,
    }
}

/// What a NUL character gets as its answer, wherever it is.
const NUL_MESSAGE: &str = "must not contain the NUL character (U+0000)";

/// Refuses a JSON body with a NUL character in any string or object key, naming the
/// first such place as a JSON pointer. JSON can carry NUL only escaped (`\u0000`), so a
/// body without that text is passed at the cost of one scan; a body that does not parse is
/// left to the typed parser, which explains why.
fn refuse_nul_in_json(body: &[u8]) -> Result<(), ApiError> {
    const ESCAPE: &[u8] = b"\\u0000";
    if !body.windows(ESCAPE.len()).any(|w| w == ESCAPE) {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    match nul_pointer(&value, String::new()) {
        Some(pointer) => Err(ApiError::Invalid(Invalid::new(pointer, NUL_MESSAGE))),
        None => Ok(()),
    }
}

/// The JSON pointer of the first string or object key in `value` that holds a NUL.
fn nul_pointer(value: &Value, here: String) -> Option<String> {
    match value {
        Value::String(s) => s.contains('\0').then_some(here),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_pointer(v, format!("{here}/{i}"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let at = format!("{here}/{}", k.replace('~', "~0").replace('/', "~1"));
            if k.contains('\0') {
                Some(at)
            } else {
                nul_pointer(v, at)
            }
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// `axum::extract::Query` with problem+json rejections.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(name) = nul_in_query(parts.uri.query().unwrap_or_default()) {
            return Err(ApiError::BadRequest(format!(
                "the query parameter `{name}` {NUL_MESSAGE}"
            )));
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::BadRequest(
                e.body_text()
                    .replace("Failed to deserialize query string: ", "invalid query: "),
            )),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// The name of the first query parameter whose name or value holds a NUL (`%00`).
fn nul_in_query(query: &str) -> Option<String> {
    if !query.contains("%00") {
        return None;
    }
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name);
        (name.contains(&0) || percent_decode(value).contains(&0))
            .then(|| String::from_utf8_lossy(&name).replace('\0', "\\0"))
    })
}

/// The bytes a form-encoded part stands for (`%XX` escapes, `+` for a space).
fn percent_decode(part: &str) -> Vec<u8> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = (b == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, b) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, other) => {
                out.push(other);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_at(body: &str) -> Option<String> {
        match refuse_nul_in_json(body.as_bytes()) {
            Ok(()) => None,
            Err(ApiError::Invalid(i)) => Some(i.field),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_nul_anywhere_in_a_body_is_named_by_its_pointer() {
        assert_eq!(
            refused_at(r#"{"name":"x\u0000"}"#).as_deref(),
            Some("/name")
        );
        assert_eq!(
            refused_at(r#"{"config":{"a/b":["ok","\u0000"]}}"#).as_deref(),
            Some("/config/a~1b/1")
        );
        assert_eq!(refused_at(r#"{"k\u0000":1}"#).as_deref(), Some("/k\u{0}"));
        assert_eq!(refused_at(r#""\u0000""#).as_deref(), Some(""));
    }

    #[test]
    fn text_that_only_looks_like_a_nul_passes() {
        // An escaped backslash followed by `u0000` is six characters, not a NUL.
        assert_eq!(refused_at(r#"{"name":"x\\u0000"}"#), None);
        assert_eq!(refused_at(r#"{"name":"x"}"#), None);
        // Broken JSON is the typed parser's to explain.
        assert_eq!(refused_at(r#"{"name":"\u0000"#), None);
    }

    #[test]
    fn a_nul_in_a_query_names_its_parameter() {
        assert_eq!(
            nul_in_query("limit=5&after=a%00b").as_deref(),
            Some("after")
        );
        assert_eq!(nul_in_query("after=a%2500b"), None);
        assert_eq!(nul_in_query("level=land"), None);
        assert_eq!(nul_in_query("a=%+0%00").as_deref(), Some("a"));
        assert_eq!(nul_in_query("a=%+00"), None);
    }

    #[test]
    fn whole_numbers_with_a_fraction_become_integers() {
        let mut v = serde_json::json!({"a": 2.0, "b": [-3.0, 1.5, 7], "c": 1e300, "d": "2.0"});
        whole_numbers_as_integers(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": 2, "b": [-3, 1.5, 7], "c": 1e300, "d": "2.0"})
        );
        assert!(v["a"].is_u64() && v["b"][0].is_i64());
        // Read from text exactly: every whole number up to 2^53 stays whole.
        for text in [
            "2251799813685247.0",
            "4503599627370495.0",
            "9007199254740991.0",
            "1e15",
        ] {
            let mut v: Value = serde_json::from_str(text).unwrap();
            whole_numbers_as_integers(&mut v);
            assert!(v.is_u64(), "{text} read as {v}");
            assert_eq!(
                v.to_string(),
                text.split('.')
                    .next()
                    .unwrap()
                    .replace("1e15", "1000000000000000")
            );
        }
    }

    #[test]
    fn json_content_types_are_recognised() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            json_content_type(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonx"));
        assert!(!json_content_type(&HeaderMap::new()));
    }
}
