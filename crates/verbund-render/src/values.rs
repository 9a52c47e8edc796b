//! Helm values of a booking, layered: the version's package defaults, then the plan,
//! then the tenant's configuration. Objects merge key by key at every depth and the
//! later layer wins; any other value (arrays included) is replaced whole.

use serde_json::Value;

/// Merges `over` into `base`: objects key by key (recursively), anything else replaced.
pub fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(key) {
                    Some(existing) => deep_merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, over) => *base = over.clone(),
    }
}

/// The values of the layers, earliest first, merged.
pub fn layered<'a>(layers: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut out = Value::Object(Default::default());
    for layer in layers {
        deep_merge(&mut out, layer);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn later_layers_win_at_every_depth() {
        let defaults = json!({"replicaCount": 1, "image": {"tag": "1"}, "ingress": {"enabled": false, "hosts": ["a", "b"]}});
        let plan = json!({"replicaCount": 3, "resources": {"limits": {"cpu": "1000m"}}});
        let config = json!({"ingress": {"enabled": true, "hosts": ["c"]}, "resources": {"limits": {"memory": "1Gi"}}});
        assert_eq!(
            layered([&defaults, &plan, &config]),
            json!({
                "replicaCount": 3,
                "image": {"tag": "1"},
                "ingress": {"enabled": true, "hosts": ["c"]},
                "resources": {"limits": {"cpu": "1000m", "memory": "1Gi"}}
            })
        );
    }

    #[test]
    fn scalars_replace_objects_and_back() {
        let mut v = json!({"a": {"b": 1}});
        deep_merge(&mut v, &json!({"a": 2}));
        assert_eq!(v, json!({"a": 2}));
        deep_merge(&mut v, &json!({"a": {"c": 3}}));
        assert_eq!(v, json!({"a": {"c": 3}}));
        deep_merge(&mut v, &json!({"a": null}));
        assert_eq!(
            v,
            json!({"a": null}),
            "null is kept: Helm reads it as `remove the default`"
        );
    }
}
