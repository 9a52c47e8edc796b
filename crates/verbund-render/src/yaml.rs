//! Objects to YAML files, byte for byte the same for the same objects: every object is
//! turned into a JSON value, its keys sorted at every depth (whatever serde_json's map
//! order is in this build), and written as one YAML document; a file is its documents,
//! each introduced by `---`.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// An object as a JSON value with sorted keys.
pub fn to_value(what: &str, object: &impl Serialize) -> Result<Value> {
    serde_json::to_value(object)
        .map(canonical)
        .map_err(|e| Error::Serialise {
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
pub fn documents(what: &str, docs: &[Value]) -> Result<String> {
    let mut out = String::new();
    for doc in docs {
        let text = serde_yaml_ng::to_string(doc).map_err(|e| Error::Serialise {
            what: what.to_string(),
            message: e.to_string(),
        })?;
        out.push_str("---\n");
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
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
            "---\nkind: X\nspec:\n  a:\n  - y: 2\n    z: 1\n  b: 1\n---\nn: 500m\n"
        );
    }
}
