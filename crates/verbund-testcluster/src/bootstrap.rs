//! What a fresh control plane gets before tests see it: the CRDs of the site's engines
//! (server-side applied, waited for until Established), the namespaces and IngressClass
//! the desired state expects on a site, and the kwok-managed nodes (waited for until
//! Ready).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::{Api, Client};
use serde::Deserialize as _;
use serde_json::json;

use crate::{wait, ClusterOptions, Error, Result};

/// The field manager of everything this crate applies.
pub(crate) const FIELD_MANAGER: &str = "verbund-testcluster";

/// The annotation kwok is told to select the nodes it manages by.
pub const KWOK_NODE_ANNOTATION: &str = "kwok.x-k8s.io/node";
/// Its value on this crate's nodes.
pub const KWOK_NODE_VALUE: &str = "fake";

/// Namespaces a site has before verbund's desired state arrives.
pub const SITE_NAMESPACES: [&str; 3] = ["ingress-nginx", "flux-system", "argocd"];
/// The IngressClass a site offers.
pub const INGRESS_CLASS: &str = "nginx";

/// Server-side applies every CRD manifest (a file may hold several documents) and returns
/// the CRDs' names.
pub(crate) async fn apply_crds(
    client: &Client,
    files: &[std::path::PathBuf],
) -> Result<Vec<String>> {
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::erase::<CustomResourceDefinition>(&()),
    );
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    for file in files {
        for object in read_documents(file)? {
            let name = object
                .metadata
                .name
                .clone()
                .ok_or_else(|| Error::Manifest {
                    path: file.clone(),
                    reason: "a document without metadata.name".to_owned(),
                })?;
            crds.patch(&name, &params, &Patch::Apply(&object))
                .await
                .map_err(|source| Error::Kube {
                    action: format!("apply CRD `{name}`"),
                    source,
                })?;
            names.push(name);
        }
    }
    Ok(names)
}

/// The documents of a YAML file, empty ones skipped.
fn read_documents(path: &Path) -> Result<Vec<DynamicObject>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut objects = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = serde_json::Value::deserialize(document).map_err(|source| Error::Yaml {
            path: path.to_path_buf(),
            source,
        })?;
        if value.is_null() {
            continue;
        }
        let object = serde_json::from_value(value).map_err(|err| Error::Manifest {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })?;
        objects.push(object);
    }
    Ok(objects)
}

/// Waits until every named CRD is Established (its API is served).
pub(crate) async fn wait_established(
    client: &Client,
    names: &[String],
    timeout: Duration,
) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in names {
        wait::poll_named(
            format!("CRD `{name}` to be Established"),
            timeout,
            || async {
                let crd = crds.get_opt(name).await.ok()??;
                let conditions = crd.status?.conditions?;
                conditions
                    .iter()
                    .any(|condition| condition.type_ == "Established" && condition.status == "True")
                    .then_some(())
            },
        )
        .await?;
    }
    Ok(())
}

/// Creates the site namespaces and the `nginx` IngressClass.
pub(crate) async fn apply_site_basics(client: &Client) -> Result<()> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for name in SITE_NAMESPACES {
        let namespace =
            json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } });
        namespaces
            .patch(name, &params, &Patch::Apply(&namespace))
            .await
            .map_err(|source| Error::Kube {
                action: format!("apply namespace `{name}`"),
                source,
            })?;
    }
    let classes: Api<k8s_openapi::api::networking::v1::IngressClass> = Api::all(client.clone());
    let class = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": { "name": INGRESS_CLASS },
        "spec": { "controller": "k8s.io/ingress-nginx" },
    });
    classes
        .patch(INGRESS_CLASS, &params, &Patch::Apply(&class))
        .await
        .map_err(|source| Error::Kube {
            action: format!("apply IngressClass `{INGRESS_CLASS}`"),
            source,
        })?;
    Ok(())
}

/// The name of the `index`th node.
pub(crate) fn node_name(index: usize) -> String {
    format!("kwok-node-{index}")
}

/// The zone of the `index`th node: the region with `-a`, `-b`, `-c`, … in turn.
pub(crate) fn node_zone(region: &str, index: usize) -> String {
    let letter = char::from(b'a' + u8::try_from(index % 26).unwrap_or(0));
    format!("{region}-{letter}")
}

/// The Node object of the `index`th node: kwok's annotation, topology labels, capacity.
pub(crate) fn node(options: &ClusterOptions, index: usize) -> Result<Node> {
    let name = node_name(index);
    let resources = json!({
        "cpu": options.node_cpu,
        "memory": options.node_memory,
        "pods": options.node_pods.to_string(),
        "ephemeral-storage": options.node_ephemeral_storage,
    });
    let labels: BTreeMap<&str, String> = BTreeMap::from([
        ("kubernetes.io/hostname", name.clone()),
        ("kubernetes.io/os", "linux".to_owned()),
        ("kubernetes.io/arch", "amd64".to_owned()),
        ("node-role.kubernetes.io/worker", String::new()),
        ("topology.kubernetes.io/region", options.region.clone()),
        (
            "topology.kubernetes.io/zone",
            node_zone(&options.region, index),
        ),
        ("type", "kwok".to_owned()),
    ]);
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                KWOK_NODE_ANNOTATION: KWOK_NODE_VALUE,
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "spec": {},
        "status": { "allocatable": resources, "capacity": resources },
    });
    serde_json::from_value(node).map_err(|err| Error::Manifest {
        path: name.into(),
        reason: err.to_string(),
    })
}

/// Creates the nodes (the API server keeps the status a Node is created with, as for a
/// kubelet registering itself).
pub(crate) async fn create_nodes(client: &Client, options: &ClusterOptions) -> Result<Vec<String>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut names = Vec::new();
    for index in 0..options.nodes {
        let node = node(options, index)?;
        let name = node_name(index);
        nodes
            .create(&PostParams::default(), &node)
            .await
            .map_err(|source| Error::Kube {
                action: format!("create node `{name}`"),
                source,
            })?;
        names.push(name);
    }
    Ok(names)
}

/// Whether every named node reports Ready and carries no taint (the controller-manager
/// taints a node `node.kubernetes.io/not-ready` until it sees it Ready, which would keep
/// pods off it for a moment).
pub(crate) async fn nodes_ready(client: &Client, names: &[String]) -> bool {
    let nodes: Api<Node> = Api::all(client.clone());
    let Ok(list) = nodes.list(&Default::default()).await else {
        return false;
    };
    names.iter().all(|name| {
        list.items.iter().any(|node| {
            node.metadata.name.as_deref() == Some(name.as_str())
                && node
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.taints.as_ref())
                    .is_none_or(Vec::is_empty)
                && node
                    .status
                    .as_ref()
                    .and_then(|status| status.conditions.as_ref())
                    .is_some_and(|conditions| {
                        conditions.iter().any(|condition| {
                            condition.type_ == "Ready" && condition.status == "True"
                        })
                    })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_spread_over_zones_and_carry_kwoks_annotation() {
        let options = ClusterOptions::default();
        let zones: Vec<String> = (0..4).map(|index| node_zone("de-1", index)).collect();
        assert_eq!(zones, ["de-1-a", "de-1-b", "de-1-c", "de-1-d"]);
        let node = node(&options, 1).expect("a node");
        let labels = node.metadata.labels.expect("labels");
        assert_eq!(labels["topology.kubernetes.io/zone"], "de-1-b");
        assert_eq!(labels["topology.kubernetes.io/region"], "de-1");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        let annotations = node.metadata.annotations.expect("annotations");
        assert_eq!(annotations[KWOK_NODE_ANNOTATION], KWOK_NODE_VALUE);
        let capacity = node
            .status
            .and_then(|status| status.capacity)
            .expect("capacity");
        assert_eq!(capacity["cpu"].0, "32");
        assert_eq!(capacity["memory"].0, "128Gi");
        assert_eq!(capacity["pods"].0, "110");
        assert!(node.spec.and_then(|spec| spec.taints).is_none());
    }

    #[test]
    fn multi_document_manifests_are_split() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("crds.yaml");
        std::fs::write(
            &path,
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
        )
        .expect("written");
        let names: Vec<String> = read_documents(&path)
            .expect("parsed")
            .into_iter()
            .filter_map(|object| object.metadata.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
    }
}
