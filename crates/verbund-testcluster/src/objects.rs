//! Applying objects the way an operator's `kubectl apply --server-side` would: any kind,
//! found through the API server's discovery, so tests can install what verbund hands to a
//! cluster (an agent's install manifests, a Flux site's `root.yaml`) without knowing its
//! kinds in advance.

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use kube::Client;
use serde_json::Value;

use crate::{Error, Result};

/// The objects of a multi-document YAML text (empty documents skipped).
pub fn parse_objects(yaml: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value: Value =
            serde::Deserialize::deserialize(document).map_err(|source| Error::Yaml {
                path: "objects".into(),
                source,
            })?;
        if value.is_object() {
            out.push(value);
        }
    }
    Ok(out)
}

/// The objects of a namespaced kind in `namespace`, e.g. a CRD's: `api_version` as
/// objects name it (`group/version`), the plural found from the kind as kubectl would.
pub fn namespaced_objects(
    client: &Client,
    namespace: &str,
    api_version: &str,
    kind: &str,
) -> Api<DynamicObject> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind)),
    )
}

/// Server-side applies each object (forced, as `field_manager`), in order.
pub async fn apply_objects(client: &Client, objects: &[Value], field_manager: &str) -> Result<()> {
    let params = PatchParams::apply(field_manager).force();
    for object in objects {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let (group, version) = match api_version.rsplit_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        let failed = |source| Error::Kube {
            action: format!("applying {api_version} {kind} {name}"),
            source,
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, capabilities) =
            discovery::pinned_kind(client, &gvk).await.map_err(failed)?;
        let api: Api<DynamicObject> =
            match (capabilities.scope, object["metadata"]["namespace"].as_str()) {
                (Scope::Namespaced, Some(namespace)) => {
                    Api::namespaced_with(client.clone(), namespace, &resource)
                }
                (Scope::Namespaced, None) => {
                    Api::default_namespaced_with(client.clone(), &resource)
                }
                (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
            };
        api.patch(name, &params, &Patch::Apply(object))
            .await
            .map_err(failed)?;
    }
    Ok(())
}
