//! Names of declarative resources (providers, sites, offerings).
//!
//! They double as identifiers in URLs, YAML files and, later, in Kubernetes object
//! names, so they follow the DNS-1123 label rules.

use crate::error::{Invalid, Result};

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
    fn dns_labels() {
        for good in ["a", "dataport-hh-1", "x0", &"a".repeat(63)] {
            assert!(check_name("/name", good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "ä", &"a".repeat(64)] {
            assert!(check_name("/name", bad).is_err(), "{bad}");
        }
    }
}
