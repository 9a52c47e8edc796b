//! Text that every consumer of the desired state can carry. verbund's YAML writer
//! escapes everything YAML forbids or folds, so a YAML 1.2 parser and verbund's agent
//! read any string back exactly; but kustomize (and so Flux's kustomize-controller, and
//! Argo CD) re-encodes what it reads with go-yaml, which cannot write DEL (U+007F) or the
//! C1 controls (U+0080–U+009F) or the noncharacters U+FFFE and U+FFFF in any form — one
//! such character in one booking would stop the build of every booking in its shard —
//! and turns NEL (U+0085) and the line and paragraph separators (U+2028, U+2029) into
//! line breaks, so they would not arrive as written. None of them carries text a person
//! means, so input holding them is refused where it arrives (a booking's configuration,
//! a version's package), naming the value, and the renderer refuses it again. (Tab,
//! newline and the other C0 controls, the byte-order mark and everything else are
//! escaped by the writer and arrive intact; the tests prove both with kustomize.)

use serde_json::Value;

/// The characters [`is_uncarriable`] names, as the inside of a character class (for the
/// patterns of the API's document), which the tests pin.
pub const UNCARRIABLE_CLASS: &str = "\\u007f-\\u009f\\u2028\\u2029\\ufffe\\uffff";

/// Whether `c` cannot travel through kustomize (see the module).
pub fn is_uncarriable(c: char) -> bool {
    matches!(
        u32::from(c),
        0x7F..=0x9F | 0x2028 | 0x2029 | 0xFFFE | 0xFFFF
    )
}

/// The JSON pointer (relative to `value`) of the first key or string holding an
/// uncarriable character, and the character.
pub fn find_uncarriable(value: &Value) -> Option<(String, char)> {
    fn bad(s: &str) -> Option<char> {
        s.chars().find(|c| is_uncarriable(*c))
    }
    match value {
        Value::String(s) => bad(s).map(|c| (String::new(), c)),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            find_uncarriable(item).map(|(rest, c)| (format!("/{i}{rest}"), c))
        }),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            keys.into_iter().find_map(|key| {
                let here = format!("/{}", key.replace('~', "~0").replace('/', "~1"));
                if let Some(c) = bad(key) {
                    return Some((here, c));
                }
                let child = map.get(key)?;
                find_uncarriable(child).map(|(rest, c)| (format!("{here}{rest}"), c))
            })
        }
        _ => None,
    }
}

/// The refusal's sentence for the character `c`.
pub fn describe(c: char) -> String {
    format!(
        "contains the control character U+{:04X}, which the sites' GitOps engines cannot carry; remove it",
        u32::from(c)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_uncarriable_class_is_is_uncarriable() {
        let re = regex::Regex::new(&format!("[{UNCARRIABLE_CLASS}]")).unwrap();
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            assert_eq!(
                is_uncarriable(c),
                re.is_match(c.encode_utf8(&mut [0; 4])),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn what_kustomize_cannot_carry_is_found_with_its_pointer() {
        for c in [
            '\u{7F}', '\u{80}', '\u{85}', '\u{9B}', '\u{9F}', '\u{2028}', '\u{2029}', '\u{FFFE}',
            '\u{FFFF}',
        ] {
            assert!(is_uncarriable(c), "{c:?}");
        }
        for c in [
            '\u{0}', '\t', '\n', '\u{1B}', '\u{A0}', '\u{FEFF}', 'ä', '😀',
        ] {
            assert!(!is_uncarriable(c), "{c:?}");
        }
        let v = json!({"a": "fine", "b": {"list": ["ok", "x\u{7F}y"]}});
        assert_eq!(find_uncarriable(&v), Some(("/b/list/1".into(), '\u{7F}')));
        let v = json!({"k\u{9B}ey": 1});
        assert_eq!(find_uncarriable(&v), Some(("/k\u{9B}ey".into(), '\u{9B}')));
        assert_eq!(find_uncarriable(&json!({"a": "tab\there"})), None);
    }
}
