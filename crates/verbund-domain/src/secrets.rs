//! The rule that keeps secrets out of the desired-state repository, checked where input
//! arrives (a booking's configuration, a version's Helm values) and again by the
//! renderer.
//!
//! Everything rendered is committed to Git and readable by every site that pulls it, so:
//!
//! 1. No booking renders a `Secret`. Plain-manifests packages that contain one are
//!    refused. Where an application needs credentials (today: those of its dependency
//!    bookings) the renderer writes an `ExternalSecret` that the site's External Secrets
//!    Operator resolves from the `ClusterSecretStore` `verbund`, remote key
//!    `verbund/<namespace>/<name>`.
//! 2. Values that look like secrets are refused, wherever they come from (the tenant's
//!    configuration or the package's default values): a key whose name contains
//!    `password`, `passwd`, `secret` or `token`, or ends in `key` (case-insensitive), with a
//!    non-empty string value. Keys that *name* a secret rather than hold one are allowed:
//!    those starting with `existing` or ending in `name`, `ref`, `file` or `path` (e.g.
//!    `existingSecret`, `secretName`, `tokenSecretRef`, `passwordFile`, and `passwordKey`
//!    or `tokenKey`, the key within a secret). Empty strings,
//!    numbers, booleans and `null` pass. The error names the JSON pointer.

use serde_json::Value;

/// Whether a key of a configuration object names a secret's value.
pub fn looks_like_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let secretish = ["password", "passwd", "secret", "token"]
        .iter()
        .any(|word| key.contains(word))
        || key.ends_with("key");
    // `passwordKey`, `userPasswordKey`, `usernameKey`, `tokenKey`: the key *within* a secret that holds
    // the password or token (Helm charts' convention), a name and never the value.
    let reference = key.starts_with("existing")
        || [
            "name",
            "ref",
            "file",
            "path",
            "passwordkey",
            "usernamekey",
            "tokenkey",
        ]
        .iter()
        .any(|suffix| key.ends_with(suffix));
    secretish && !reference
}

/// The JSON pointer (relative to `value`) of the first literal secret in `value`, in key
/// order, if any.
pub fn find_literal_secret(value: &Value) -> Option<String> {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            keys.into_iter().find_map(|key| {
                let child = map.get(key)?;
                let here = format!("/{}", escape(key));
                if looks_like_secret_key(key) && child.as_str().is_some_and(|s| !s.is_empty()) {
                    return Some(here);
                }
                find_literal_secret(child).map(|rest| format!("{here}{rest}"))
            })
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find_literal_secret(item).map(|rest| format!("/{i}{rest}"))),
        _ => None,
    }
}

/// Escapes a key for a JSON pointer (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys() {
        for key in [
            "password",
            "admin_password",
            "adminPassword",
            "DB_PASSWD",
            "clientSecret",
            "secret",
            "apiToken",
            "token",
            "apiKey",
            "private_key",
            "SMTP_KEY",
        ] {
            assert!(looks_like_secret_key(key), "{key}");
        }
        for key in [
            "existingSecret",
            "existingSecretPasswordKey",
            "secretName",
            "tokenSecretRef",
            "passwordFile",
            "passwordKey",
            "userPasswordKey",
            "tokenKey",
            "keyPath",
            "username",
            "keyboard",
            "keys",
            "host",
        ] {
            assert!(!looks_like_secret_key(key), "{key}");
        }
    }

    #[test]
    fn literal_secrets_are_found_with_their_pointer() {
        assert_eq!(
            find_literal_secret(&json!({"admin_password": "hunter2"})).as_deref(),
            Some("/admin_password")
        );
        assert_eq!(
            find_literal_secret(
                &json!({"smtp": {"servers": [{"host": "x"}, {"a/b": {"token": "t"}}]}})
            )
            .as_deref(),
            Some("/smtp/servers/1/a~1b/token")
        );
        assert_eq!(
            find_literal_secret(&json!({"b": {"apiKey": "1"}, "a": {"secret": "2"}})).as_deref(),
            Some("/a/secret"),
            "the first in key order"
        );
    }

    #[test]
    fn references_and_empty_values_pass() {
        for ok in [
            json!({"password": ""}),
            json!({"password": null}),
            json!({"auth": {"existingSecret": "db", "secretKeys": {"existingSecretPasswordKey": "pw"}}}),
            json!({"tokenTtlSeconds": 300}),
            json!({"enableSecret": true}),
            json!(["password"]),
        ] {
            assert_eq!(find_literal_secret(&ok), None, "{ok}");
        }
    }
}
