//! Opens the Secrets verbund sealed for this site (a booking's `secrets.yaml`: a SOPS
//! document for the site's age recipient, see `verbund_render::sealed`) with the agent's
//! age identity (`--age-identity`), as Flux's kustomize-controller does on a Flux site.
//!
//! Pure: the objects of the desired state in, the opened objects out, and the bookings
//! (by namespace) whose sealed Secret could not be opened: no identity, another site's
//! recipient, a tampered document. Such a booking is that booking's problem: neither its
//! Secret nor its vendor content is applied (it would start without its configuration),
//! and nothing inside its namespace is pruned, so what runs keeps running; the other
//! bookings are applied.
//!
//! A chart reads its secret values through the Secret its `helm.yaml` names
//! (`values_secret`, key `values.yaml`: a JSON document), which [`chart_values`] takes
//! from the opened objects for `helm template`.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use verbund_seal::{is_sealed, open, Identities};

use crate::apply::text_at;

/// The Secret that holds the site's age identity, under the key [`AGE_KEY`]: the name
/// Flux's shards read in Flux's namespace (the renderer's `AGE_SECRET`), here in the
/// agent's namespace, mounted by the install manifests.
pub const AGE_SECRET: &str = "verbund-sops-age";
/// The key of the age identity in [`AGE_SECRET`].
pub const AGE_KEY: &str = "identity.agekey";

/// The key of a chart's secret values in its Secret (the renderer's `VALUES_KEY`).
pub const VALUES_KEY: &str = "values.yaml";

/// The objects of a desired state with the sealed ones opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Opened {
    /// Every object, sealed ones opened; those that could not be opened left out.
    pub objects: Vec<Value>,
    /// Namespaces whose sealed Secret could not be opened, with the reason.
    pub failed: BTreeMap<String, String>,
}

/// Opens every sealed object of `objects` with `identities`.
pub fn open_sealed(objects: Vec<Value>, identities: Option<&Identities>) -> Opened {
    let mut out = Opened::default();
    for object in objects {
        if !is_sealed(&object) {
            out.objects.push(object);
            continue;
        }
        let namespace = text_at(&object, "/metadata/namespace")
            .unwrap_or_default()
            .to_string();
        let name = text_at(&object, "/metadata/name").unwrap_or_default();
        let opened = match identities {
            None => Err(format!(
                "the sealed Secret `{name}` cannot be opened: the agent has no age identity \
                 (--age-identity or VERBUND_AGE_IDENTITY)"
            )),
            Some(ids) => open(&object, ids)
                .map_err(|e| format!("the sealed Secret `{name}` cannot be opened: {e}")),
        };
        match opened {
            Ok(object) => out.objects.push(object),
            Err(reason) => {
                out.failed.insert(namespace, reason);
            }
        }
    }
    out
}

/// The secret values of a chart in `namespace` whose `helm.yaml` names the Secret
/// `secret`: its key [`VALUES_KEY`] among the opened `objects`, as JSON.
pub fn chart_values(objects: &[Value], namespace: &str, secret: &str) -> Result<Value, String> {
    let found = objects.iter().find(|o| {
        text_at(o, "/kind") == Some("Secret")
            && text_at(o, "/apiVersion") == Some("v1")
            && text_at(o, "/metadata/namespace") == Some(namespace)
            && text_at(o, "/metadata/name") == Some(secret)
    });
    let Some(object) = found else {
        return Err(format!(
            "the chart reads its secret values from the Secret `{secret}`, which its folder lacks"
        ));
    };
    let encoded = object
        .get("data")
        .and_then(|data| data.get(VALUES_KEY))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the Secret `{secret}` has no `{VALUES_KEY}`"))?;
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|e| format!("the Secret `{secret}`'s `{VALUES_KEY}` is not base64: {e}"))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("the Secret `{secret}`'s `{VALUES_KEY}` is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn secret(namespace: &str, values: &Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "verbund-config-secrets", "namespace": namespace},
            "type": "Opaque",
            "data": {VALUES_KEY: STANDARD.encode(values.to_string())},
        })
    }

    #[test]
    fn opens_what_was_sealed_for_it_and_holds_back_what_it_cannot_open() {
        let (identity, recipient) = Identities::generate();
        let (_, other) = Identities::generate();
        let ids = Identities::parse(&identity).unwrap();
        let values = json!({"smtp": {"password": "hunter2"}});
        let plain = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"}});
        let mine = verbund_seal::seal(&secret("a", &values), &recipient, Utc::now()).unwrap();
        let theirs = verbund_seal::seal(&secret("b", &values), &other, Utc::now()).unwrap();
        let opened = open_sealed(
            vec![plain.clone(), mine.clone(), theirs.clone()],
            Some(&ids),
        );
        assert_eq!(opened.objects, vec![plain.clone(), secret("a", &values)]);
        assert_eq!(opened.failed.keys().collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(
            chart_values(&opened.objects, "a", "verbund-config-secrets").unwrap(),
            values
        );
        assert!(chart_values(&opened.objects, "b", "verbund-config-secrets").is_err());

        // Without an identity, every booking with a sealed Secret is held back, alone.
        let opened = open_sealed(vec![plain.clone(), mine, theirs], None);
        assert_eq!(opened.objects, vec![plain]);
        assert_eq!(opened.failed.keys().collect::<Vec<_>>(), vec!["a", "b"]);
        assert!(
            opened.failed["a"].contains("no age identity"),
            "{:?}",
            opened.failed
        );
    }
}
