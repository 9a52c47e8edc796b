//! From a plan's resources to Kubernetes quantities, the namespace's quota and limit
//! range, and the Helm values that size the application.
//!
//! A plan's `resources` are the booking's total, which placement reserves on the site:
//! the quota caps the namespace at exactly that (requests and limits alike). Every pod
//! gets an equal share of it at the plan's largest replica count (the autoscaling
//! maximum, else `replicas`), so that the application still fits its quota when scaled
//! out; that share is both the limit range's container default and the chart's
//! `resources`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::{json, Value};
use verbund_domain::catalog::Plan;
use verbund_domain::directory::Resources;

/// CPU in millicores, e.g. `500m`.
pub fn cpu(millis: u64) -> Quantity {
    Quantity(format!("{millis}m"))
}

/// Memory in mebibytes, e.g. `512Mi`.
pub fn memory(mib: u64) -> Quantity {
    Quantity(format!("{mib}Mi"))
}

/// Storage in gibibytes, e.g. `10Gi`; none is `0`.
pub fn storage(gib: u64) -> Quantity {
    if gib == 0 {
        Quantity("0".into())
    } else {
        Quantity(format!("{gib}Gi"))
    }
}

/// The most pods the plan may run at once.
pub fn max_pods(plan: &Plan) -> u64 {
    let max = plan.autoscaling.map_or(plan.replicas, |a| a.max_replicas);
    u64::from(max.max(1))
}

/// One pod's share of the plan: the total divided by [`max_pods`], at least 1m CPU and
/// 1Mi memory.
pub fn pod_share(plan: &Plan) -> Resources {
    let pods = max_pods(plan);
    Resources {
        cpu_millis: (plan.resources.cpu_millis / pods).max(1),
        memory_mib: (plan.resources.memory_mib / pods).max(1),
        storage_gib: plan.resources.storage_gib,
    }
}

/// The namespace's hard quota: the plan's total for requests and limits alike.
pub fn quota_hard(plan: &Plan) -> BTreeMap<String, Quantity> {
    let r = plan.resources;
    BTreeMap::from([
        ("requests.cpu".to_string(), cpu(r.cpu_millis)),
        ("limits.cpu".to_string(), cpu(r.cpu_millis)),
        ("requests.memory".to_string(), memory(r.memory_mib)),
        ("limits.memory".to_string(), memory(r.memory_mib)),
        ("requests.storage".to_string(), storage(r.storage_gib)),
    ])
}

/// CPU and memory of one pod's share, as the limit range's defaults.
pub fn container_defaults(plan: &Plan) -> BTreeMap<String, Quantity> {
    let share = pod_share(plan);
    BTreeMap::from([
        ("cpu".to_string(), cpu(share.cpu_millis)),
        ("memory".to_string(), memory(share.memory_mib)),
    ])
}

/// The plan's layer of Helm values: `replicaCount`, `resources` (one pod's share as
/// requests and limits) and `autoscaling` (`enabled`, and the bounds when enabled).
pub fn plan_values(plan: &Plan) -> Value {
    let share = pod_share(plan);
    let amounts = json!({
        "cpu": cpu(share.cpu_millis).0,
        "memory": memory(share.memory_mib).0,
    });
    let autoscaling = match plan.autoscaling {
        Some(a) => json!({
            "enabled": true,
            "minReplicas": a.min_replicas,
            "maxReplicas": a.max_replicas,
        }),
        None => json!({"enabled": false}),
    };
    json!({
        "replicaCount": plan.replicas,
        "resources": {"requests": amounts.clone(), "limits": amounts},
        "autoscaling": autoscaling,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use verbund_domain::catalog::Autoscaling;

    fn plan(cpu_millis: u64, memory_mib: u64, replicas: u32, max: Option<u32>) -> Plan {
        Plan {
            name: "m".into(),
            display_name: "M".into(),
            resources: Resources {
                cpu_millis,
                memory_mib,
                storage_gib: 10,
            },
            replicas,
            autoscaling: max.map(|max_replicas| Autoscaling {
                min_replicas: 1,
                max_replicas,
            }),
            monthly_price_cents: 0,
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(cpu(500).0, "500m");
        assert_eq!(cpu(2000).0, "2000m");
        assert_eq!(memory(512).0, "512Mi");
        assert_eq!(storage(10).0, "10Gi");
        assert_eq!(storage(0).0, "0");
    }

    #[test]
    fn quota_is_the_plan_total() {
        let hard = quota_hard(&plan(2000, 4096, 2, Some(4)));
        let get = |k: &str| hard.get(k).map(|q| q.0.as_str());
        assert_eq!(get("requests.cpu"), Some("2000m"));
        assert_eq!(get("limits.cpu"), Some("2000m"));
        assert_eq!(get("requests.memory"), Some("4096Mi"));
        assert_eq!(get("limits.memory"), Some("4096Mi"));
        assert_eq!(get("requests.storage"), Some("10Gi"));
    }

    #[test]
    fn pods_share_the_total_at_the_largest_scale() {
        assert_eq!(pod_share(&plan(2000, 4096, 2, Some(4))).cpu_millis, 500);
        assert_eq!(pod_share(&plan(2000, 4096, 2, None)).memory_mib, 2048);
        assert_eq!(pod_share(&plan(1, 1, 3, None)).cpu_millis, 1, "never zero");
        let d = container_defaults(&plan(1000, 1024, 4, None));
        assert_eq!(d.get("cpu").map(|q| q.0.as_str()), Some("250m"));
        assert_eq!(d.get("memory").map(|q| q.0.as_str()), Some("256Mi"));
    }

    #[test]
    fn plan_values_shape() {
        assert_eq!(
            plan_values(&plan(1000, 1024, 2, Some(4))),
            json!({
                "replicaCount": 2,
                "resources": {
                    "requests": {"cpu": "250m", "memory": "256Mi"},
                    "limits": {"cpu": "250m", "memory": "256Mi"}
                },
                "autoscaling": {"enabled": true, "minReplicas": 1, "maxReplicas": 4}
            })
        );
        assert_eq!(
            plan_values(&plan(1000, 1024, 2, None))["autoscaling"],
            json!({"enabled": false})
        );
    }
}
