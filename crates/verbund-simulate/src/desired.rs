//! Reading a booking's folder of the desired state the way a cluster would apply it.
//!
//! The simulator must behave like the real agent, which only knows what the repository
//! says: which booking folders a site's shards (`shards/<nn>/kustomization.yaml`) list, the booking and version on
//! each namespace, the replicas of the app, whether a smoke-test Job is there, and the
//! quota (which is what the booking takes from the site's capacity). Pure: bytes in,
//! [`DesiredBooking`] out.

use serde_yaml_ng::Value;

use crate::error::{Error, Result};
use crate::model::{DesiredBooking, Resources};

/// The environments a site's folder may hold.
pub const ENVIRONMENTS: [&str; 2] = ["prod", "test"];

const BOOKING_LABEL: &str = "verbund.dev/booking";
const VERSION_LABEL: &str = "verbund.dev/version";
const OFFERING_LABEL: &str = "verbund.dev/offering";
const SMOKE_LABEL: &str = "verbund.dev/smoke-test";
const EXPORT_LABEL: &str = "verbund.dev/export";

fn documents(path: &str, bytes: &[u8]) -> Result<Vec<Value>> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_slice(bytes) {
        let value = Value::deserialize(doc).map_err(|e| Error::Desired {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

fn get<'v>(value: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

fn text(value: &Value, path: &[&str]) -> Option<String> {
    match get(value, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn count(value: &Value, path: &[&str]) -> Option<u32> {
    get(value, path)?
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
}

/// The folders (`resources:`) a `kustomization.yaml` lists.
pub fn kustomization_resources(path: &str, bytes: &[u8]) -> Result<Vec<String>> {
    Ok(documents(path, bytes)?
        .iter()
        .filter_map(|d| get(d, &["resources"])?.as_sequence().cloned())
        .flatten()
        .filter_map(|r| r.as_str().map(String::from))
        .collect())
}

/// A booking folder's files, as far as the simulator needs them.
#[derive(Debug, Clone, Copy, Default)]
pub struct FolderFiles<'a> {
    pub namespace: Option<&'a [u8]>,
    pub app: Option<&'a [u8]>,
    pub quota: Option<&'a [u8]>,
}

/// Reads the booking in `folder` (`sites/<site>/<env>/bookings/<namespace>`). `None`
/// when the folder holds no namespace labelled with a booking (not a booking's folder).
pub fn booking(
    folder: &str,
    environment: &str,
    files: FolderFiles<'_>,
) -> Result<Option<DesiredBooking>> {
    let Some(ns_bytes) = files.namespace else {
        return Ok(None);
    };
    let ns_path = format!("{folder}/namespace.yaml");
    let Some(namespace) = documents(&ns_path, ns_bytes)?
        .into_iter()
        .find(|d| text(d, &["kind"]).as_deref() == Some("Namespace"))
    else {
        return Ok(None);
    };
    let labels = ["metadata", "labels"];
    let label = |name: &str| text(&namespace, &[labels[0], labels[1], name]);
    let Some(booking) = label(BOOKING_LABEL) else {
        return Ok(None);
    };
    let missing = |what: &str| Error::Desired {
        path: ns_path.clone(),
        reason: format!("the namespace has no `{what}` label"),
    };
    // Read back the way the renderer wrote it (`+` travels as `_`), as an agent does.
    let label_text = label(VERSION_LABEL).ok_or_else(|| missing(VERSION_LABEL))?;
    let version =
        verbund_domain::catalog::version_from_label(&label_text).ok_or_else(|| Error::Desired {
            path: ns_path.clone(),
            reason: format!("the namespace's `{VERSION_LABEL}` label `{label_text}` is no version"),
        })?;
    let offering = label(OFFERING_LABEL).ok_or_else(|| missing(OFFERING_LABEL))?;
    let name = text(&namespace, &["metadata", "name"])
        .or_else(|| folder.rsplit('/').next().map(String::from))
        .unwrap_or_default();
    let (desired_replicas, smoke_test, export_job) = match files.app {
        Some(app) => app_facts(&documents(&format!("{folder}/app.yaml"), app)?),
        None => (1, false, None),
    };
    let quota = match files.quota {
        Some(q) => quota(&documents(&format!("{folder}/quota.yaml"), q)?),
        None => Resources::default(),
    };
    Ok(Some(DesiredBooking {
        booking,
        namespace: name,
        environment: environment.to_owned(),
        offering,
        version,
        desired_replicas,
        smoke_test,
        export_job,
        quota,
    }))
}

/// Desired replicas (Deployments and StatefulSets summed, else the Helm values'
/// `replicaCount`, else 1), whether a smoke-test Job is there, and the data-export Job's
/// name, if one is.
fn app_facts(docs: &[Value]) -> (u32, bool, Option<String>) {
    let mut workloads: Option<u32> = None;
    let mut helm: Option<u32> = None;
    let mut smoke = false;
    let mut export = None;
    for doc in docs {
        let kind = text(doc, &["kind"]).unwrap_or_default();
        let marked =
            |label: &str| text(doc, &["metadata", "labels", label]).as_deref() == Some("true");
        match kind.as_str() {
            "Job" if marked(SMOKE_LABEL) => smoke = true,
            "Job" if marked(EXPORT_LABEL) => export = text(doc, &["metadata", "name"]),
            "Deployment" | "StatefulSet" => {
                let n = count(doc, &["spec", "replicas"]).unwrap_or(1);
                workloads = Some(workloads.unwrap_or(0).saturating_add(n));
            }
            // Flux's HelmRelease, and the chart an agent site renders (`helm.yaml`).
            "HelmRelease" | "HelmChart" => {
                helm = helm.or_else(|| count(doc, &["spec", "values", "replicaCount"]));
            }
            "Application" => {
                helm = helm.or_else(|| {
                    count(
                        doc,
                        &["spec", "source", "helm", "valuesObject", "replicaCount"],
                    )
                });
            }
            _ => {}
        }
    }
    (workloads.or(helm).unwrap_or(1), smoke, export)
}

/// The requests of the ResourceQuotas.
fn quota(docs: &[Value]) -> Resources {
    let mut total = Resources::default();
    for doc in docs {
        if text(doc, &["kind"]).as_deref() != Some("ResourceQuota") {
            continue;
        }
        let hard = |key: &str| text(doc, &["spec", "hard", key]);
        let q = Resources {
            cpu_millis: hard("requests.cpu")
                .and_then(|v| quantity(&v))
                .map_or(0, |v| (v * 1000.0).round() as u64),
            memory_mib: hard("requests.memory")
                .and_then(|v| quantity(&v))
                .map_or(0, |v| (v / (1024.0 * 1024.0)).ceil() as u64),
            storage_gib: hard("requests.storage")
                .and_then(|v| quantity(&v))
                .map_or(0, |v| (v / (1024.0 * 1024.0 * 1024.0)).ceil() as u64),
        };
        total = total.saturating_add(q);
    }
    total
}

/// A Kubernetes quantity (`500m`, `2`, `512Mi`, `4Gi`, `1T`) in base units.
pub fn quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        "Pi" => 1024.0f64.powi(5),
        _ => return None,
    };
    Some(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  labels:\n    verbund.dev/booking: \"0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e21\"\n    verbund.dev/offering: formulare\n    verbund.dev/version: \"1.4.0\"\n  name: formulare-x\n";

    #[test]
    fn a_version_with_build_metadata_is_read_back_as_published() {
        let read = |label: &str| {
            let ns = NAMESPACE.replace("\"1.4.0\"", label);
            let files = FolderFiles {
                namespace: Some(ns.as_bytes()),
                app: None,
                quota: None,
            };
            booking("sites/s/prod/bookings/formulare-x", "prod", files)
                .map(|b| b.map(|b| b.version))
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            read("\"1.1.0-RC.1_build.7\""),
            Ok(Some("1.1.0-RC.1+build.7".to_string()))
        );
        let e = read("latest").unwrap_err();
        assert!(e.contains("`latest` is no version"), "{e}");
    }

    #[test]
    fn quantities_are_read_in_base_units() {
        assert_eq!(quantity("2000m"), Some(2.0));
        assert_eq!(quantity("2"), Some(2.0));
        assert_eq!(quantity("4096Mi"), Some(4096.0 * 1024.0 * 1024.0));
        assert_eq!(quantity("1Ti"), Some(1024.0f64.powi(4)));
        assert_eq!(quantity("1.5"), Some(1.5));
        assert_eq!(quantity("5X"), None);
    }

    #[test]
    fn a_deployment_folder_gives_replicas_smoke_test_and_quota() {
        let app = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\nspec:\n  replicas: 3\n---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  labels:\n    verbund.dev/smoke-test: \"true\"\n  name: smoke\n";
        let quota = "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: verbund\nspec:\n  hard:\n    limits.cpu: 4000m\n    requests.cpu: 2000m\n    requests.memory: 4Gi\n    requests.storage: 50Gi\n";
        let b = booking(
            "sites/s/prod/bookings/formulare-x",
            "prod",
            FolderFiles {
                namespace: Some(NAMESPACE.as_bytes()),
                app: Some(app.as_bytes()),
                quota: Some(quota.as_bytes()),
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(b.booking, "0190f0b6-7c3a-7e21-9d55-2f1c0a7b9e21");
        assert_eq!(
            (b.offering.as_str(), b.version.as_str()),
            ("formulare", "1.4.0")
        );
        assert_eq!(b.namespace, "formulare-x");
        assert_eq!(b.desired_replicas, 3);
        assert!(b.smoke_test);
        assert_eq!(
            b.quota,
            Resources {
                cpu_millis: 2000,
                memory_mib: 4096,
                storage_gib: 50
            }
        );
    }

    #[test]
    fn helm_and_argo_values_give_the_replicas_and_unreadable_ones_default_to_one() {
        let flux = "kind: HelmRelease\nspec:\n  values:\n    replicaCount: 3\n";
        let argo = "kind: Application\nspec:\n  source:\n    helm:\n      valuesObject:\n        replicaCount: 2\n";
        let other = "kind: Application\nspec:\n  source:\n    path: x\n";
        for (app, expected) in [(flux, 3), (argo, 2), (other, 1)] {
            let files = FolderFiles {
                namespace: Some(NAMESPACE.as_bytes()),
                app: Some(app.as_bytes()),
                quota: None,
            };
            let b = booking("f", "test", files).unwrap().unwrap();
            assert_eq!(b.desired_replicas, expected, "{app}");
            assert!(!b.smoke_test);
        }
    }

    #[test]
    fn a_folder_without_a_booking_namespace_is_skipped() {
        let files = FolderFiles {
            namespace: Some(b"kind: Namespace\nmetadata:\n  name: x\n"),
            ..FolderFiles::default()
        };
        assert_eq!(booking("f", "prod", files).unwrap(), None);
        assert_eq!(booking("f", "prod", FolderFiles::default()).unwrap(), None);
    }

    #[test]
    fn kustomization_lists_its_folders() {
        let k = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- bookings/a\n- bookings/b\n";
        assert_eq!(
            kustomization_resources("k", k.as_bytes()).unwrap(),
            ["bookings/a", "bookings/b"]
        );
    }
}
