//! Names of declarative resources (providers, sites, offerings).
//!
//! They double as identifiers in URLs, YAML files and, later, in Kubernetes object
//! names, so they follow the DNS-1123 label rules.
//!
//! The rules are also stated in the OpenAPI document (`schema`), from the same
//! constants, so that clients and fuzzers know what the checks here accept. A rule that
//! is a regular expression is a [`Pattern`]: the document states its source, and the
//! check applies the same expression, so that the two cannot differ.

use std::sync::OnceLock;

use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use crate::error::{Invalid, Result};

/// The longest name (a DNS-1123 label).
pub const NAME_MAX: usize = 63;

/// A DNS-1123 label as a regular expression (its length is [`NAME_MAX`]); `check_name`
/// accepts exactly what it matches, which the tests pin.
pub const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// The characters that are white space as `str::trim` and `char::is_whitespace` see them
/// (Unicode `White_Space`), as the inside of a character class that reads the same in
/// ECMAScript, Python and Rust.
pub const WHITE_SPACE_CLASS: &str =
    "\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/// The NUL character as the inside of a character class: no database stores it in text,
/// so the API refuses it in every string (`verbund_api::extract`).
pub const NUL_CLASS: &str = "\\u0000";

/// A string without NUL, the form of every string the API's document does not constrain
/// otherwise.
pub const NUL_FREE_PATTERN: &str = "^[^\\u0000]*$";

/// [`NUL_FREE_PATTERN`] as a [`Pattern`].
pub static NUL_FREE: Pattern = Pattern::new(|| NUL_FREE_PATTERN.into());

/// The control characters (`char::is_control`: U+0000–U+001F and U+007F–U+009F) as the
/// inside of a character class.
pub const CONTROL_CLASS: &str = "\\u0000-\\u001f\\u007f-\\u009f";

/// A line an agent reports: no control characters.
pub static LINE: Pattern = Pattern::new(|| format!("^[^{CONTROL_CLASS}]*$"));

/// A line that holds more than white space.
pub static LINE_TEXT: Pattern = Pattern::new(|| text_pattern(CONTROL_CLASS));

/// The JSON Schema of a [`LINE`] of at most `max` characters.
pub fn line_schema(max: usize) -> Object {
    bounded_schema(&LINE, max)
}

/// The JSON Schema of a [`LINE_TEXT`] of at most `max` characters.
pub fn line_text_schema(max: usize) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(LINE_TEXT.source()))
        .build()
}

/// Checks a line of at most `max` characters; `text` asks for more than white space.
pub fn check_line(field: &str, value: &str, max: usize, text: bool) -> Result<()> {
    if value.chars().count() > max {
        return Err(Invalid::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if !LINE.is_match(value) {
        return Err(Invalid::new(field, "contains control characters"));
    }
    if text && !LINE_TEXT.is_match(value) {
        return Err(Invalid::new(field, "must not be empty"));
    }
    Ok(())
}

/// Text without the characters of the class `excluded` (the inside of a character
/// class) that holds more than white space, as a regular expression.
pub fn text_pattern(excluded: &str) -> String {
    format!("^[^{excluded}]*[^{WHITE_SPACE_CLASS}{excluded}][^{excluded}]*$")
}

/// Text that holds more than white space and no NUL; `check_text` accepts exactly what
/// it matches (within its length), which the tests pin.
pub static TEXT: Pattern = Pattern::new(|| text_pattern(NUL_CLASS));

/// A regular expression that the OpenAPI document states (as a `pattern`) and a check
/// applies, compiled once. Its source must read the same in ECMAScript (JSON Schema's
/// dialect), Python (schemathesis) and Rust's `regex`: anchored with `^…$`, classes and
/// `\\uXXXX` escapes, no `.`, `\\d`, `\\s` or look-around.
pub struct Pattern {
    build: fn() -> String,
    compiled: OnceLock<(String, Option<regex::Regex>)>,
}

impl Pattern {
    pub const fn new(build: fn() -> String) -> Self {
        Self {
            build,
            compiled: OnceLock::new(),
        }
    }

    fn get(&self) -> &(String, Option<regex::Regex>) {
        self.compiled.get_or_init(|| {
            let source = (self.build)();
            let regex = regex::Regex::new(&source).ok();
            (source, regex)
        })
    }

    /// The regular expression, as the document states it.
    pub fn source(&self) -> &str {
        &self.get().0
    }

    /// Whether `value` matches (never, for a source that does not compile: the tests
    /// compile every pattern).
    pub fn is_match(&self, value: &str) -> bool {
        self.get().1.as_ref().is_some_and(|r| r.is_match(value))
    }

    /// Whether the source compiles.
    pub fn compiles(&self) -> bool {
        self.get().1.is_some()
    }

    /// The JSON Schema of a string that matches.
    pub fn schema(&self) -> Object {
        pattern_schema(self.source())
    }
}

/// The longest display name, and every other name people read (organisations, companies).
pub const DISPLAY_NAME_MAX: usize = 200;

/// The longest short text (a city, a legal form).
pub const SHORT_TEXT_MAX: usize = 100;

/// Checks a DNS-1123 label: 1–63 characters, lowercase alphanumerics and `-`,
/// starting and ending with an alphanumeric.
pub fn check_name(field: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("`{value}` is not a valid name (1–63 lowercase letters, digits or `-`, starting and ending with a letter or digit)"),
        ))
    }
}

/// The JSON Schema of a string that matches `pattern`.
pub fn pattern_schema(pattern: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .build()
}

/// The JSON Schema of a name `check_name` accepts.
pub fn name_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(NAME_MAX))
        .pattern(Some(NAME_PATTERN))
        .build()
}

/// The JSON Schema of a text `check_text` accepts with `max` characters.
pub fn text_schema(max: usize) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(TEXT.source()))
        .build()
}

/// The JSON Schema of a string of at most `max` characters that matches `pattern`.
pub fn bounded_schema(pattern: &Pattern, max: usize) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(max))
        .pattern(Some(pattern.source()))
        .build()
}

/// The JSON Schema of an integer (`u32`) within `range`.
pub fn integer_schema(range: std::ops::RangeInclusive<u32>) -> Object {
    use utoipa::openapi::schema::{KnownFormat, SchemaFormat};
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .minimum(Some(f64::from(*range.start())))
        .maximum(Some(f64::from(*range.end())))
        .build()
}

/// A rule between the values of a field `tag` and the presence of a name `field`, as
/// JSON Schema: `oneOf` a branch for the values of `tag` without `field` (absent or
/// `null`) and one for those that require it (a string). `values` pairs each value with
/// whether it requires `field`, by the function its validator decides with.
pub fn presence_rule<'a>(
    tag: &str,
    field: &str,
    values: impl IntoIterator<Item = (&'a str, bool)>,
) -> serde_json::Value {
    let (with, without): (Vec<_>, Vec<_>) = values.into_iter().partition(|(_, has)| *has);
    let names = |v: Vec<(&'a str, bool)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    serde_json::json!({"oneOf": [
        {"properties": {tag: {"enum": names(without)}, field: {"type": "null"}}},
        {"properties": {tag: {"enum": names(with)}, field: {"type": "string"}},
         "required": [field]},
    ]})
}

/// Checks a value against a [`Pattern`] and a length in characters.
pub fn check_pattern(
    field: &str,
    value: &str,
    pattern: &Pattern,
    max: usize,
    what: &str,
) -> Result<()> {
    if value.chars().count() > max || !pattern.is_match(value) {
        return Err(Invalid::new(field, format!("`{value}` is not {what}")));
    }
    Ok(())
}

/// [`text_schema`] of a display name.
pub fn display_name_schema() -> Object {
    text_schema(DISPLAY_NAME_MAX)
}

/// [`text_schema`] of a short text.
pub fn short_text_schema() -> Object {
    text_schema(SHORT_TEXT_MAX)
}

/// Checks that a human-readable text is present, of reasonable length and without NUL.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if value.contains('\0') {
        return Err(Invalid::new(
            field,
            "must not contain the NUL character (U+0000)",
        ));
    }
    if value.chars().count() > max {
        return Err(Invalid::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_pattern_is_check_name() {
        let re = regex::Regex::new(NAME_PATTERN).unwrap();
        let alphabet = ["a", "z", "0", "9", "-", "A", "_", ".", "ä", " "];
        let mut names = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = names
                .iter()
                .flat_map(|n| alphabet.iter().map(move |c| format!("{n}{c}")))
                .collect();
            names.extend(longer);
        }
        names.extend(["a".repeat(NAME_MAX), "a".repeat(NAME_MAX + 1)]);
        names.push(format!("a{}a", "-".repeat(NAME_MAX - 2)));
        names.push("a\n".into());
        for n in names {
            let fits = re.is_match(&n) && n.chars().count() <= NAME_MAX;
            assert_eq!(check_name("/name", &n).is_ok(), fits, "{n:?}");
        }
    }

    #[test]
    fn the_text_pattern_is_check_text() {
        assert!(TEXT.compiles());
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            for text in [format!(" {c} "), format!("a{c}")] {
                assert_eq!(
                    check_text("/t", &text, 10).is_ok(),
                    TEXT.is_match(&text),
                    "U+{:04X}",
                    u32::from(c)
                );
            }
        }
        for text in ["", " ", "a\n", "\n a \t"] {
            assert_eq!(
                check_text("/t", text, 10).is_ok(),
                TEXT.is_match(text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn lines_refuse_control_characters() {
        assert!(LINE.compiles() && LINE_TEXT.compiles());
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            let line = format!("a{c}");
            assert_eq!(
                LINE.is_match(&line),
                !c.is_control(),
                "U+{:04X}",
                u32::from(c)
            );
            let blank = format!(" {c} ");
            assert_eq!(
                LINE_TEXT.is_match(&blank),
                !c.is_control() && !c.is_whitespace(),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn the_nul_free_pattern_refuses_nul_alone() {
        let re = regex::Regex::new(NUL_FREE_PATTERN).unwrap();
        assert!(re.is_match("") && re.is_match("a\nb ä"));
        assert!(!re.is_match("a\0") && !re.is_match("\0"));
    }

    #[test]
    fn dns_labels() {
        for good in ["a", "dataport-hh-1", "x0", &"a".repeat(63)] {
            assert!(check_name("/name", good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "ä", &"a".repeat(64)] {
            assert!(check_name("/name", bad).is_err(), "{bad}");
        }
    }
}
