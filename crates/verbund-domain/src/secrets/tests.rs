//! The secrets rule, case by case: the key-name rule, the rules on values, and what the
//! configuration schema declares.

use super::*;
use proptest::prelude::*;
use serde_json::json;

/// The first finding's pointer and reason, for `config` under `schema`.
fn check(schema: Option<Value>, config: Value) -> Option<(String, Reason)> {
    find_secret(schema.as_ref(), &config).map(|f| (f.pointer, f.reason))
}

fn found(pointer: &str, reason: Reason) -> Option<(String, Reason)> {
    Some((pointer.to_string(), reason))
}

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
        "Passwort",
        "kennwort",
        "smtp_pass",
        "smtpPass",
        "pwd",
        "DB_PW",
        "credentials",
        "passphrase",
        "Geheimnis",
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
        "passengers",
        "bypass",
        "compass",
        "credentialsSecretName",
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
fn references_placeholders_and_empty_values_pass() {
    for ok in [
        json!({"password": ""}),
        json!({"password": null}),
        json!({"auth": {"existingSecret": "db", "secretKeys": {"existingSecretPasswordKey": "pw"}}}),
        json!({"tokenTtlSeconds": 300}),
        json!({"enableSecret": true}),
        json!(["password"]),
        json!({"password": "${DB_PASSWORD}"}),
        json!({"url": "postgres://u:${DB_PASSWORD}@db/app"}),
        json!({"url": "postgres://u@db/app", "site": "https://example.org/a:b@c"}),
        json!({"dsn": "host=db user=app password=$(DB_PASSWORD)"}),
        json!({"env": [{"name": "DB_HOST", "value": "db"}], "extraEnv": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db"}}}]}),
        json!({"motto": "keep it simple; a=b"}),
    ] {
        assert_eq!(find_literal_secret(&ok), None, "{ok}");
    }
}

/// The holes an attacker found in the free-form filter: each passed before.
#[test]
fn holes_in_the_free_form_filter_are_closed() {
    for (config, pointer, reason) in [
        (
            json!({"Passwort": "hunter2"}),
            "/Passwort",
            Reason::SecretKey,
        ),
        (
            json!({"kennwort": "hunter2"}),
            "/kennwort",
            Reason::SecretKey,
        ),
        (
            json!({"smtp_pass": "hunter2"}),
            "/smtp_pass",
            Reason::SecretKey,
        ),
        (json!({"pwd": "hunter2"}), "/pwd", Reason::SecretKey),
        (
            json!({"credentials": "hunter2"}),
            "/credentials",
            Reason::SecretKey,
        ),
        (
            json!({"passwords": ["", "hunter2"]}),
            "/passwords/1",
            Reason::SecretKey,
        ),
        (
            json!({"admin": {"password": ["hunter2"]}}),
            "/admin/password/0",
            Reason::SecretKey,
        ),
        (
            json!({"env": [{"name": "DB_HOST", "value": "db"}, {"name": "DB_PASSWORD", "value": "hunter2"}]}),
            "/env/1/value",
            Reason::SecretPair,
        ),
        (
            json!({"database_url": "postgres://u:secret@host/db"}),
            "/database_url",
            Reason::UrlPassword,
        ),
        (
            json!({"jdbc": "jdbc:postgresql://app:secret@db:5432/app?ssl=true"}),
            "/jdbc",
            Reason::UrlPassword,
        ),
        (
            json!({"dsn": "host=db user=app password=secret dbname=app"}),
            "/dsn",
            Reason::SecretAssignment,
        ),
        (
            json!({"mssql": "Server=db;User Id=app;Password=secret;"}),
            "/mssql",
            Reason::SecretAssignment,
        ),
    ] {
        assert_eq!(
            check(None, config.clone()),
            found(pointer, reason),
            "{config}"
        );
        // The same value at a location a schema names, but not as secret.
        let schema = json!({"type": "object", "additionalProperties": true});
        assert_eq!(
            check(Some(schema), config.clone()),
            found(pointer, reason),
            "{config}"
        );
    }
}

fn keycloak() -> Value {
    json!({
        "type": "object",
        "properties": {
            "password_policy": {"type": "string"},
            "admin_password": {"type": "string", "writeOnly": true},
            "smtp": {
                "type": "object",
                "properties": {
                    "host": {"type": "string"},
                    "password": {"type": "string", "format": "password"}
                }
            },
            "database_url": {"type": "string"},
            "extra": {"type": "object", "additionalProperties": {"type": "string"}}
        }
    })
}

#[test]
fn a_declared_non_secret_field_is_accepted_whatever_its_name() {
    let policy = json!({"password_policy": "length(12) and digits(1) and notUsername"});
    assert_eq!(
        check(None, policy.clone()),
        found("/password_policy", Reason::SecretKey),
        "undeclared, the key names a secret"
    );
    assert_eq!(check(Some(keycloak()), policy), None);
    // Keys the tenant chooses are not named by the vendor.
    assert_eq!(
        check(Some(keycloak()), json!({"extra": {"password_policy": "x"}})),
        found("/extra/password_policy", Reason::SecretKey)
    );
    // The rules on values still hold at a declared location.
    assert_eq!(
        check(
            Some(keycloak()),
            json!({"database_url": "postgres://u:secret@h/db"})
        ),
        found("/database_url", Reason::UrlPassword)
    );
    // Under a named object, an unnamed key is the tenant's.
    assert_eq!(
        check(
            Some(keycloak()),
            json!({"smtp": {"host": "mail", "pass": "x"}})
        ),
        found("/smtp/pass", Reason::SecretKey)
    );
}

#[test]
fn declared_secrets_pass_the_filter_and_are_named() {
    let config = json!({
        "admin_password": "hunter2",
        "password_policy": "length(12)",
        "smtp": {"host": "mail", "password": "s3cret"}
    });
    assert_eq!(check(Some(keycloak()), config.clone()), None);
    let pointers: Vec<String> = declared_secrets(&keycloak(), &config)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(pointers, ["/admin_password", "/smtp/password"]);
    assert_eq!(
        check(Some(keycloak()), json!({"admin_password": 1234})),
        found("/admin_password", Reason::SecretNotString)
    );
}

#[test]
fn the_walker_follows_the_schema() {
    let schema = json!({
        "$defs": {"secret": {"type": "string", "writeOnly": true}},
        "type": "object",
        "properties": {
            "by_ref": {"$ref": "#/$defs/secret"},
            "in_list": {"type": "array", "items": {"format": "password"}},
            "tuple": {"type": "array", "prefixItems": [{"type": "string"}, {"writeOnly": true}]},
            "all_of": {"allOf": [{"type": "string"}, {"writeOnly": true}]},
            "whole": {"type": "object", "writeOnly": true},
            "legacy": {"$ref": "#/definitions/old"}
        },
        "definitions": {"old": {"type": "object", "properties": {"key": {"format": "password"}}}},
        "patternProperties": {"^x-secret-": {"writeOnly": true}},
        "additionalProperties": {"type": "object", "additionalProperties": {"writeOnly": true}}
    });
    let config = json!({
        "by_ref": "a",
        "in_list": ["b", "c"],
        "tuple": ["plain", "d"],
        "all_of": "e",
        "whole": {"user": "u", "pass": "f"},
        "legacy": {"key": "g"},
        "x-secret-1": "h",
        "anything": {"deep": "i"}
    });
    let pointers: Vec<String> = declared_secrets(&schema, &config)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        pointers,
        [
            "/all_of",
            "/anything/deep",
            "/by_ref",
            "/in_list/0",
            "/in_list/1",
            "/legacy/key",
            "/tuple/1",
            "/x-secret-1"
        ]
    );
    assert_eq!(
        check(Some(schema.clone()), config),
        found("/whole", Reason::SecretNotString),
        "a secret object is refused: secrets are strings"
    );
    // A recursive schema ends.
    let recursive = json!({"$ref": "#", "properties": {"a": {"$ref": "#"}}});
    assert!(declared_secrets(&recursive, &json!({"a": {"a": {"a": "x"}}})).is_empty());
}

#[test]
fn split_and_merge() {
    let config = json!({
        "admin_password": "hunter2",
        "password_policy": "length(12)",
        "smtp": {"host": "mail", "password": "s3cret"}
    });
    let (public, secrets) = split_secrets(&keycloak(), &config);
    assert_eq!(
        public,
        json!({"password_policy": "length(12)", "smtp": {"host": "mail"}})
    );
    assert_eq!(
        secrets,
        SecretValues::from([
            ("/admin_password".to_string(), "hunter2".to_string()),
            ("/smtp/password".to_string(), "s3cret".to_string()),
        ])
    );
    assert_eq!(merge_secrets(&public, &secrets), config);
}

#[test]
fn a_change_keeps_the_secrets_it_leaves_out() {
    let stored = SecretValues::from([
        ("/admin_password".to_string(), "hunter2".to_string()),
        ("/smtp/password".to_string(), "s3cret".to_string()),
    ]);
    let check = |config: Value, public: Value, values: &[(&str, &str)]| {
        let expected: SecretValues = values
            .iter()
            .map(|(p, v)| (p.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            carry_secrets(&keycloak(), &config, &stored),
            (public, expected),
            "{config}"
        );
    };
    // What a client read back (no secrets): both kept.
    check(
        json!({"smtp": {"host": "mail"}}),
        json!({"smtp": {"host": "mail"}}),
        &[("/admin_password", "hunter2"), ("/smtp/password", "s3cret")],
    );
    // One given anew, one removed with an empty string.
    check(
        json!({"admin_password": "", "smtp": {"host": "mail", "password": "n3u"}}),
        json!({"smtp": {"host": "mail"}}),
        &[("/smtp/password", "n3u")],
    );
    // Its parent gone, the SMTP password goes with it.
    check(json!({}), json!({}), &[("/admin_password", "hunter2")]);
    // A schema that no longer declares it keeps none.
    assert_eq!(
        carry_secrets(&json!({"type": "object"}), &json!({"smtp": {}}), &stored),
        (json!({"smtp": {}}), SecretValues::new())
    );
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-z:/@=]{0,12}".prop_map(Value::String),
        any::<i32>().prop_map(|i| json!(i)),
        Just(Value::Null),
    ]
}

fn config() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::btree_map("(pass|user|host|pw|a/b)", inner.clone(), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            prop::collection::vec(inner, 0..3).prop_map(Value::Array),
        ]
    })
}

proptest! {
    /// Whatever the configuration, splitting takes out exactly the declared secrets and
    /// merging puts them back; what stays passes no declared secret on.
    #[test]
    fn merge_undoes_split(config in config()) {
        let schema = json!({"type": "object", "additionalProperties": {
            "type": "object", "properties": {"pass": {"writeOnly": true}},
            "additionalProperties": true
        }});
        if find_secret(Some(&schema), &config).is_some_and(|f| f.reason == Reason::SecretNotString) {
            return Ok(());
        }
        let (public, secrets) = split_secrets(&schema, &config);
        prop_assert!(declared_secrets(&schema, &public).iter().all(|(_, v)| v.is_null() || v.as_str() == Some("")) );
        let mut expected = config.clone();
        // Empty secrets are no secrets: they are left out.
        for (pointer, value) in declared_secrets(&schema, &config) {
            if value.as_str() == Some("") {
                remove(&mut expected, &pointer);
            }
        }
        prop_assert_eq!(merge_secrets(&public, &secrets), expected);
    }

    /// The walker never panics and a finding always points at a string.
    #[test]
    fn findings_point_at_strings(config in config()) {
        if let Some(f) = find_secret(None, &config) {
            prop_assert!(config.pointer(&f.pointer).is_some_and(Value::is_string));
        }
    }
}
