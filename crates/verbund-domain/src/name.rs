//! Names of declarative resources (providers, sites, offerings).
//!
//! They double as identifiers in URLs, YAML files and, later, in Kubernetes object
//! names, so they follow the DNS-1123 label rules.
//!
//! The rules are also stated in the OpenAPI document (`schema`), from the same
//! constants, so that clients and fuzzers know what the checks here accept.

use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use crate::error::{Invalid, Result};

/// The longest name (a DNS-1123 label).
pub const NAME_MAX: usize = 63;

/// A DNS-1123 label as a regular expression (its length is [`NAME_MAX`]); `check_name`
/// accepts exactly what it matches, which the tests pin.
pub const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// Text that holds more than white space: a character that is not white space as
/// `str::trim` sees it (Unicode `White_Space`), as a regular expression that reads the
/// same in ECMAScript, Python and Rust; `check_text` accepts exactly what it matches.
pub const TEXT_PATTERN: &str =
    "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

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
        .pattern(Some(TEXT_PATTERN))
        .build()
}

/// [`text_schema`] of a display name.
pub fn display_name_schema() -> Object {
    text_schema(DISPLAY_NAME_MAX)
}

/// [`text_schema`] of a short text.
pub fn short_text_schema() -> Object {
    text_schema(SHORT_TEXT_MAX)
}

/// Checks that a human-readable text is present and of reasonable length.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
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
        let re = regex::Regex::new(TEXT_PATTERN).unwrap();
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            let text = format!(" {c} ");
            assert_eq!(
                check_text("/t", &text, 10).is_ok(),
                re.is_match(&text),
                "U+{:04X}",
                u32::from(c)
            );
        }
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
