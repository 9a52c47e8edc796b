//! Objects to YAML files, byte for byte the same for the same objects: every object is
//! turned into a JSON value, its keys sorted at every depth (whatever serde_json's map
//! order is in this build), and written as one YAML document; a file is its documents,
//! each introduced by `---`.
//!
//! The writer is our own rather than `serde_yaml`'s: rendering all of Germany writes
//! about half a gigabyte of YAML, and libyaml's emitter (which also test-parses every
//! scalar to decide its quoting) was most of the renderer's time. This one writes the
//! same block layout, quotes every string a YAML 1.1 or 1.2 reader could take for
//! something else, and is checked by reading its output back with `serde_yaml_ng`.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// An object as a JSON value (its keys are sorted when it is written).
pub fn to_value(what: &str, object: &impl Serialize) -> Result<Value> {
    serde_json::to_value(object).map_err(|e| Error::Serialise {
        what: what.to_string(),
        message: e.to_string(),
    })
}

/// Sorts the keys of every object in `value`.
pub fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect::<Map<String, Value>>(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// Documents as the text of one YAML file.
pub fn documents(_what: &str, docs: &[Value]) -> Result<String> {
    let mut out = String::with_capacity(1024);
    for doc in docs {
        out.push_str("---\n");
        emit_document(&mut out, doc);
    }
    Ok(out)
}

/// Writes one document in block style, as `serde_yaml` lays it out: two spaces per level
/// of mapping, sequence items (`- `) at their key's indentation, `{}` and `[]` for empty
/// collections, and scalars plain where that reads back as the same string and
/// double-quoted (JSON escapes, which YAML shares) everywhere else.
fn emit_document(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) if !map.is_empty() => emit_mapping(out, map, 0),
        Value::Array(items) if !items.is_empty() => emit_sequence(out, items, 0),
        scalar => {
            emit_inline(out, scalar);
            out.push('\n');
        }
    }
}

fn indent(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(' ');
    }
}

/// Entries of a mapping, sorted by key, each on its own line at `depth` spaces.
fn emit_mapping(out: &mut String, map: &Map<String, Value>, depth: usize) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (i, (key, value)) in entries.into_iter().enumerate() {
        // The first entry of a mapping inside a sequence item continues the `- ` line.
        if i > 0 || depth == 0 || !out.ends_with("- ") {
            indent(out, depth);
        }
        emit_string(out, key);
        out.push(':');
        emit_value(out, value, depth);
    }
}

/// Items of a sequence, each starting `- ` at `depth` spaces.
fn emit_sequence(out: &mut String, items: &[Value], depth: usize) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || depth == 0 || !out.ends_with("- ") {
            indent(out, depth);
        }
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => emit_mapping(out, map, depth + 2),
            Value::Array(inner) if !inner.is_empty() => emit_sequence(out, inner, depth + 2),
            scalar => {
                emit_inline(out, scalar);
                out.push('\n');
            }
        }
    }
}

/// What follows `key:` of a mapping entry at `depth`.
fn emit_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            emit_mapping(out, map, depth + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            emit_sequence(out, items, depth);
        }
        scalar => {
            out.push(' ');
            emit_inline(out, scalar);
            out.push('\n');
        }
    }
}

/// A scalar, or an empty collection, on the current line.
fn emit_inline(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => emit_string(out, s),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

/// Digits and a unit: a quantity such as `500m` or `10Gi`, or a duration such as `1h`.
/// No YAML resolver reads digits followed by letters alone as a number (exponents and
/// base prefixes need digits after their letter).
fn is_quantity(s: &str) -> bool {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && s.len() > digits && s.bytes().skip(digits).all(|b| b.is_ascii_alphabetic())
}

fn emit_string(out: &mut String, s: &str) {
    if is_plain(s) {
        out.push_str(s);
    } else {
        emit_double_quoted(out, s);
    }
}

/// `s` as a YAML double-quoted scalar that every YAML 1.1 and 1.2 reader (libyaml,
/// go-yaml as kustomize and Flux use it, a YAML 1.2 parser) reads back as exactly `s`:
/// everything outside YAML's printable set, or that some reader folds or treats as a line
/// break, is escaped — C0 controls (tab and newline too: a literal line break in a
/// double-quoted scalar folds to a space), DEL, C1 controls including NEL (U+0085), the
/// line and paragraph separators (U+2028, U+2029), the byte-order mark (U+FEFF) and the
/// noncharacters U+FFFE and U+FFFF.
fn emit_double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => {
                let _ = std::fmt::Write::write_fmt(out, format_args!("\\u{:04X}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Characters that must not appear raw in a scalar (see [`emit_double_quoted`]).
fn needs_escape(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00..=0x1F | 0x7F..=0x9F | 0x2028 | 0x2029 | 0xFEFF | 0xFFFE | 0xFFFF
    )
}

/// Whether `s` may be written unquoted and reads back as the same string under YAML 1.1
/// and 1.2 alike: a conservative character set, no indicator at the start, and nothing
/// a resolver would take for a null, boolean, number or timestamp.
fn is_plain(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if first.is_ascii_digit() {
        return is_quantity(s);
    }
    if !(first.is_ascii_alphabetic() || first == '/' || first == '_') {
        return false;
    }
    if !s.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b'$' | b'+' | b':')
    }) || s.ends_with(['.', ':'])
    {
        return false;
    }
    // Words some YAML resolver reads as null or a boolean.
    const RESERVED: [&str; 12] = [
        "null", "true", "false", "yes", "no", "on", "off", "y", "n", "nan", "inf", "_",
    ];
    let lower = s.to_ascii_lowercase();
    if RESERVED.contains(&lower.as_str()) || lower.starts_with(".") {
        return false;
    }
    // A leading letter rules out numbers and timestamps, except in base prefixes, which
    // need a leading digit too. What remains is safe.
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_and_documents_separated() {
        let a = to_value(
            "a",
            &json!({"spec": {"b": 1, "a": [{"z": 1, "y": 2}]}, "kind": "X"}),
        )
        .unwrap_or_default();
        let text = documents("f", &[a, json!({"n": "500m"})]).unwrap_or_default();
        assert_eq!(
            text,
            // `y` and `n` are booleans to YAML 1.1 readers, so they are quoted.
            "---\nkind: X\nspec:\n  a:\n  - \"y\": 2\n    z: 1\n  b: 1\n---\n\"n\": 500m\n"
        );
    }

    #[test]
    fn strings_a_resolver_would_misread_are_quoted() {
        for s in [
            "",
            "true",
            "Yes",
            "no",
            "ON",
            "null",
            "~",
            "1.0",
            "1e3",
            "0x1F",
            "2026-01-01",
            "12",
            "-1",
            ".inf",
            "a: b",
            "a #b",
            "- x",
            "*ref",
            "&a",
            "!tag",
            "@x",
            "`x`",
            "'q'",
            "\"q\"",
            "x\ny",
            " lead",
            "trail ",
            "München",
            "{}",
            "[]",
            "%x",
            "1E",
            "a:",
            "1e",
            "1e5",
            "0x",
            "0o7",
            "10m0s",
            "http://x",
            "a:b",
            "y",
            "N",
            "_",
        ] {
            let text = documents("f", &[json!({ s: s })]).unwrap_or_default();
            let back: Value = serde_yaml_ng::from_str(text.trim_start_matches("---\n"))
                .unwrap_or_else(|e| panic!("{s:?} → {text:?}: {e}"));
            assert_eq!(back, json!({ s: s }), "{s:?} → {text:?}");
        }
        for plain in [
            "nginx",
            "app.kubernetes.io/name",
            "500m",
            "10Gi",
            "1h",
            "v1",
            "ClusterIP",
            "https://charts.example.org/x",
        ] {
            assert!(is_plain(plain), "{plain}");
        }
    }

    fn arb_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
            "[a-zA-Z0-9 ./:#_\\-'\"\\n{}\\[\\],&*!|>%@`~äß]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map("[a-zA-Z0-9./_ -]{0,10}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// `{key: value}` as the writer writes it, read back by a YAML 1.2 parser.
    fn through_yaml_1_2(key: &str, value: &str) -> Option<(String, String)> {
        use saphyr::{LoadableYamlNode, Scalar, Yaml};
        let text = documents("f", &[json!({ key: value })]).unwrap_or_default();
        let docs = Yaml::load_from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let Some(Yaml::Mapping(map)) = docs.first() else {
            return None;
        };
        let (k, v) = map.iter().next()?;
        match (k, v) {
            (Yaml::Value(Scalar::String(k)), Yaml::Value(Scalar::String(v))) => {
                Some((k.to_string(), v.to_string()))
            }
            _ => None,
        }
    }

    /// Any character, weighted towards those YAML forbids or folds.
    fn any_char() -> impl proptest::strategy::Strategy<Value = char> {
        use proptest::prelude::*;
        prop_oneof![
            any::<char>(),
            proptest::char::range('\u{0}', '\u{A0}'),
            proptest::sample::select(vec![
                '\u{2028}',
                '\u{2029}',
                '\u{FEFF}',
                '\u{FFFE}',
                '\u{FFFF}',
                '\u{10FFFF}',
                '"',
                '\\',
                ':',
                '#',
                '-',
                ' '
            ]),
        ]
    }

    /// A mapping of strings as the writer writes it, read back by a YAML 1.2 parser.
    fn mapping_through_yaml_1_2(map: &Map<String, Value>) -> Vec<(String, String)> {
        use saphyr::{LoadableYamlNode, Scalar, Yaml};
        let text = documents("f", &[Value::Object(map.clone())]).unwrap_or_default();
        let docs = Yaml::load_from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let Some(Yaml::Mapping(back)) = docs.first() else {
            panic!("no mapping");
        };
        back.iter()
            .filter_map(|(k, v)| match (k, v) {
                (Yaml::Value(Scalar::String(k)), Yaml::Value(Scalar::String(v))) => {
                    Some((k.to_string(), v.to_string()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_character_reads_back_through_a_yaml_1_2_parser() {
        // Every character of the Basic Multilingual Plane (which holds every character
        // YAML forbids or folds; the other planes are sampled by the property test below),
        // alone (as key and value) and between letters, in mappings of 4,096 each.
        let chars: Vec<char> = (0..=0xFFFF_u32)
            .chain([0x10000, 0x1F600, 0x10FFFF])
            .filter_map(char::from_u32)
            .collect();
        for block in chars.chunks(4_096) {
            let mut map = Map::new();
            for c in block {
                map.insert(c.to_string(), json!(c.to_string()));
                map.insert(format!("v{:X}", u32::from(*c)), json!(format!("a{c}b")));
            }
            let mut want: Vec<(String, String)> = map
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let mut back = mapping_through_yaml_1_2(&map);
            want.sort();
            back.sort();
            let first = block.first().map_or(0, |c| u32::from(*c));
            assert!(
                back == want,
                "block from U+{first:04X} does not read back as written"
            );
        }
    }

    proptest::proptest! {
        /// All of Unicode, what kustomize cannot carry too (the renderer refuses that
        /// before it is written, see `verbund_domain::portable`): the writer's output
        /// reads back as exactly what was written.
        #[test]
        fn every_string_reads_back_through_a_yaml_1_2_parser(
            key in proptest::collection::vec(any_char(), 0..12).prop_map(|c| c.into_iter().collect::<String>()),
            value in proptest::collection::vec(any_char(), 0..24).prop_map(|c| c.into_iter().collect::<String>()),
        ) {
            proptest::prop_assert_eq!(through_yaml_1_2(&key, &value), Some((key.clone(), value.clone())));
        }

        #[test]
        fn every_value_reads_back_as_itself(v in arb_value()) {
            let text = documents("f", std::slice::from_ref(&v)).unwrap_or_default();
            let back: Value = serde_yaml_ng::from_str(text.trim_start_matches("---\n"))
                .unwrap_or_else(|e| panic!("{text:?}: {e}"));
            proptest::prop_assert_eq!(back, v, "{}", text);
        }
    }
}
