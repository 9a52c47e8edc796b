//! The ConfigMap that carries a booking's configuration to plain manifests, which have
//! no values to fill: its package names it (`Package::Manifests { config_map }`) and its
//! pods read it, typically with `envFrom`.
//!
//! One key per leaf of the configuration, in environment-variable form: the path's parts
//! joined by `_`, upper case, anything but ASCII letters and digits as `_`
//! (`tax_rates.first_dog` → `TAX_RATES_FIRST_DOG`). Strings are taken as they are,
//! numbers and booleans as JSON writes them, lists as JSON text; `null` is left out.
//! Should two paths meet in one key, the one first in key order is kept, so the result
//! never depends on anything but the configuration.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;

use crate::tenant::Tenant;

/// The booking's configuration as the ConfigMap `name`.
pub(crate) fn config_map(tenant: &Tenant<'_>, name: &str) -> ConfigMap {
    ConfigMap {
        metadata: tenant.meta(name),
        data: Some(environment(&tenant.placed.booking.config)),
        ..ConfigMap::default()
    }
}

/// The configuration's leaves as environment variables.
pub fn environment(config: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    flatten(config, "", &mut out);
    out
}

fn flatten(value: &Value, prefix: &str, out: &mut BTreeMap<String, String>) {
    let leaf = |out: &mut BTreeMap<String, String>, text: String| {
        if !prefix.is_empty() {
            out.entry(prefix.to_string()).or_insert(text);
        }
    };
    match value {
        Value::Null => {}
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                if let Some(child) = map.get(key) {
                    let part = env_part(key);
                    let path = if prefix.is_empty() {
                        part
                    } else {
                        format!("{prefix}_{part}")
                    };
                    flatten(child, &path, out);
                }
            }
        }
        Value::String(s) => leaf(out, s.clone()),
        Value::Array(_) | Value::Number(_) | Value::Bool(_) => leaf(out, value.to_string()),
    }
}

fn env_part(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leaves_become_environment_variables() {
        let env = environment(&json!({
            "municipality": "01001000",
            "tax_rates": {"first_dog": 9000, "further_dog": 12000},
            "exemptions": ["assistance-dog", "rescue-dog"],
            "sepa_mandate": true,
            "nothing": null,
            "contact-email": "a@b.de"
        }));
        assert_eq!(
            env,
            BTreeMap::from([
                ("CONTACT_EMAIL".to_string(), "a@b.de".to_string()),
                (
                    "EXEMPTIONS".to_string(),
                    r#"["assistance-dog","rescue-dog"]"#.to_string()
                ),
                ("MUNICIPALITY".to_string(), "01001000".to_string()),
                ("SEPA_MANDATE".to_string(), "true".to_string()),
                ("TAX_RATES_FIRST_DOG".to_string(), "9000".to_string()),
                ("TAX_RATES_FURTHER_DOG".to_string(), "12000".to_string()),
            ])
        );
    }

    #[test]
    fn colliding_paths_keep_the_first_in_key_order() {
        let env = environment(&json!({"a": {"b": "nested"}, "a_b": "flat"}));
        assert_eq!(env.get("A_B").map(String::as_str), Some("nested"));
    }
}
