//! Names and label values: stable, readable and valid for Kubernetes.
//!
//! A booking's namespace is `<offering>-<organisation slug>-<hash>`, where the hash is
//! the first ten hex digits of the SHA-256 of the booking id. The readable parts are
//! shortened so that the whole stays a DNS-1123 label (at most 63 characters); the hash
//! keeps two bookings of the same organisation and offering apart, and the renderer
//! refuses the (unlikely) case that two bookings of one render still meet.

use sha2::{Digest, Sha256};

/// Longest DNS-1123 label and label value.
pub const MAX_LABEL: usize = 63;
/// Hex digits of the booking-id hash in a namespace name.
const HASH_LEN: usize = 10;
/// At most this much of a namespace name is the offering's name.
const MAX_OFFERING: usize = 24;

/// The first `HASH_LEN` hex digits of the SHA-256 of `value`.
pub fn short_hash(value: &str) -> String {
    let digest = hex::encode(Sha256::digest(value.as_bytes()));
    digest[..HASH_LEN].to_string()
}

/// A lowercase DNS-1123 fragment of a human name: German umlauts and `ß` transliterated
/// (`ä` → `ae`, `ö` → `oe`, `ü` → `ue`, `ß` → `ss`), every other character that is not an
/// ASCII letter or digit becomes `-`, runs of `-` collapse, none at either end.
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        match c {
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            c if c.is_ascii_alphanumeric() => out.push(c),
            _ => {
                if !out.is_empty() && !out.ends_with('-') {
                    out.push('-');
                }
            }
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// The first `max` characters of an ASCII slug, without a trailing `-`.
fn cut(slug: &str, max: usize) -> &str {
    let end = slug.len().min(max);
    slug.get(..end).unwrap_or("").trim_end_matches('-')
}

/// The namespace of a booking: `<offering>-<organisation slug>-<hash of booking id>`,
/// a DNS-1123 label of at most 63 characters.
pub fn namespace_name(offering: &str, organisation_name: &str, booking_id: &str) -> String {
    let hash = short_hash(booking_id);
    let offering = slug(offering);
    let offering = cut(&offering, MAX_OFFERING);
    // Room for the organisation: 63 minus hash, offering and their two separators.
    let room = MAX_LABEL - HASH_LEN - 1 - offering.len() - usize::from(!offering.is_empty());
    let organisation = slug(organisation_name);
    let organisation = cut(&organisation, room);
    [offering, organisation, hash.as_str()]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Whether `value` is a DNS-1123 label: 1–63 lowercase letters, digits or `-`, starting
/// and ending with a letter or digit.
pub fn is_dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LABEL
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// Whether `value` is a valid label value: empty, or at most 63 characters of ASCII
/// letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit.
pub fn is_label_value(value: &str) -> bool {
    if value.is_empty() {
        return true;
    }
    let edge = |b: u8| b.is_ascii_alphanumeric();
    let bytes = value.as_bytes();
    value.len() <= MAX_LABEL
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().copied().is_some_and(edge)
        && bytes.last().copied().is_some_and(edge)
}

/// A valid label value for any string: `+` (semver build metadata) becomes `_`, other
/// disallowed characters `-`, edges are trimmed to letters or digits, and a value longer
/// than 63 characters keeps its first 52 and ends in a hash of the whole, so that
/// distinct inputs stay distinct.
pub fn label_value(value: &str) -> String {
    let mapped: String = value
        .chars()
        .map(|c| match c {
            c if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') => c,
            '+' => '_',
            _ => '-',
        })
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.len() <= MAX_LABEL {
        return trimmed.to_string();
    }
    let head = trimmed
        .get(..MAX_LABEL - HASH_LEN - 1)
        .unwrap_or("")
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{head}-{}", short_hash(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_transliterate_german() {
        assert_eq!(slug("Stadt München"), "stadt-muenchen");
        assert_eq!(
            slug("Große Kreisstadt Öhringen"),
            "grosse-kreisstadt-oehringen"
        );
        assert_eq!(slug("ÜBERLINGEN (Bodensee)"), "ueberlingen-bodensee");
        assert_eq!(slug("  --Amt  Süderbrarup--"), "amt-suederbrarup");
        assert_eq!(slug("Île-de-France"), "le-de-france");
        assert_eq!(slug("???"), "");
    }

    #[test]
    fn namespaces_are_readable_labels() {
        let ns = namespace_name("nextcloud", "Stadt Musterstadt", "b-1");
        assert_eq!(
            ns,
            format!("nextcloud-stadt-musterstadt-{}", short_hash("b-1"))
        );
        assert!(is_dns_label(&ns));
    }

    #[test]
    fn namespaces_of_long_names_stay_within_63() {
        let long_org = "Verbandsgemeinde Rhein-Selz, Körperschaft des öffentlichen Rechts, \
                        Zweckverband für Wasserversorgung und Abwasserbeseitigung Überlingen";
        let long_offering = "a".repeat(63);
        for (offering, org) in [
            ("nextcloud", long_org),
            (long_offering.as_str(), long_org),
            (long_offering.as_str(), "X"),
            ("x", "ÄÖÜ---ß"),
            ("open-xchange", "Landkreis Mecklenburgische Seenplatte"),
            ("nextcloud", "!!!"),
        ] {
            let ns = namespace_name(offering, org, "0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e11");
            assert!(is_dns_label(&ns), "`{ns}` is no DNS-1123 label");
            assert!(ns.len() <= 63, "`{ns}` is {} long", ns.len());
            assert!(ns.ends_with(&short_hash("0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e11")));
        }
        let full = namespace_name("nextcloud", &"x".repeat(100), "b");
        assert_eq!(full.len(), 63, "long names use the whole label: `{full}`");
        assert_eq!(
            namespace_name("nextcloud", "!!!", "b"),
            format!("nextcloud-{}", short_hash("b"))
        );
    }

    #[test]
    fn two_bookings_of_one_organisation_and_offering_differ() {
        let org = "Landeshauptstadt Düsseldorf mit einem sehr langen Namen, der abgeschnitten wird";
        let a = namespace_name("nextcloud", org, "0190f0b6-0000-7000-8000-000000000001");
        let b = namespace_name("nextcloud", org, "0190f0b6-0000-7000-8000-000000000002");
        assert_ne!(a, b);
        assert_eq!(a.len(), b.len());
    }

    #[test]
    fn namespaces_are_stable() {
        // Renaming this would move every tenant's namespace: keep it fixed.
        assert_eq!(
            namespace_name("nextcloud", "Stadt Musterstadt", "booking-1"),
            "nextcloud-stadt-musterstadt-debe4e3adf"
        );
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("1.2.3+build.5"), "1.2.3_build.5");
        assert_eq!(label_value("091620000000"), "091620000000");
        assert_eq!(label_value("-a b-"), "a-b");
        assert_eq!(label_value(""), "");
        let long = label_value(&"x".repeat(100));
        assert_eq!(long.len(), 63);
        assert_ne!(long, label_value(&"x".repeat(101)));
        for v in [
            "1.0.0-rc.1+sha.abc",
            "München",
            "a/b:c",
            &"ä".repeat(70),
            "+",
            "_x_",
        ] {
            let l = label_value(v);
            assert!(is_label_value(&l), "`{l}` from `{v}`");
        }
        assert!(!is_label_value("a+b"));
        assert!(!is_label_value("-a"));
        assert!(!is_label_value(&"a".repeat(64)));
    }
}
