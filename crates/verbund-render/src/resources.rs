//! From a plan's resources to Kubernetes quantities, the namespace's quota and limit
//! range, and the Helm values that size the application.
//!
//! A plan's `resources` are the booking's total, which placement reserves on the site.
//! Every pod gets an equal share of it at the plan's largest replica count (the
//! autoscaling maximum, else `replicas`), so that the application still fits when scaled
//! out; that share is both the limit range's container default and the chart's
//! `resources`.
//!
//! The namespace's quota is that total plus the room a real cluster needs beside it
//! (requests and limits alike): one more pod share for the surge pod of a rolling update
//! (Kubernetes starts the new pod before it stops an old one), and the smoke-test Job's
//! own fixed share ([`SMOKE_TEST_CPU_MILLIS`], [`SMOKE_TEST_MEMORY_MIB`]) where the offering
//! has a smoke test, or while the booking's data is being exported (the export Job takes
//! the same share; a booking being exported gets no new version, so no smoke test runs
//! beside it). Without that room, an update, a smoke test or an export of a booking at
//! its plan's full size could never start.

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

/// CPU of the smoke-test Job's container, requests and limits.
pub const SMOKE_TEST_CPU_MILLIS: u64 = 100;
/// Memory of the smoke-test Job's container, requests and limits.
pub const SMOKE_TEST_MEMORY_MIB: u64 = 128;

/// The namespace's hard quota: the plan's total, one pod share for a rolling update's
/// surge pod, and a Job's share (the smoke test's or the data export's) if one may run;
/// requests and limits alike.
pub fn quota_hard(plan: &Plan, job_room: bool) -> BTreeMap<String, Quantity> {
    let r = plan.resources;
    let share = pod_share(plan);
    let (test_cpu, test_memory) = if job_room {
        (SMOKE_TEST_CPU_MILLIS, SMOKE_TEST_MEMORY_MIB)
    } else {
        (0, 0)
    };
    let cpu_total = r.cpu_millis + share.cpu_millis + test_cpu;
    let memory_total = r.memory_mib + share.memory_mib + test_memory;
    BTreeMap::from([
        ("requests.cpu".to_string(), cpu(cpu_total)),
        ("limits.cpu".to_string(), cpu(cpu_total)),
        ("requests.memory".to_string(), memory(memory_total)),
        ("limits.memory".to_string(), memory(memory_total)),
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
/// requests and limits) and `autoscaling` (`enabled`, and the bounds and CPU target when
/// enabled).
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
            "targetCPUUtilizationPercentage": a.target_cpu_utilization,
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
                target_cpu_utilization: 60,
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
    fn quota_is_the_plan_total_with_room_for_a_surge_pod_and_the_smoke_test() {
        // 4 pods at most, each 500m / 1024Mi: one more for the surge, plus the test.
        let hard = quota_hard(&plan(2000, 4096, 2, Some(4)), true);
        let get = |k: &str| hard.get(k).map(|q| q.0.as_str());
        assert_eq!(get("requests.cpu"), Some("2600m"));
        assert_eq!(get("limits.cpu"), Some("2600m"));
        assert_eq!(get("requests.memory"), Some("5248Mi"));
        assert_eq!(get("limits.memory"), Some("5248Mi"));
        assert_eq!(get("requests.storage"), Some("10Gi"));
        let hard = quota_hard(&plan(2000, 4096, 2, Some(4)), false);
        assert_eq!(
            hard.get("requests.cpu").map(|q| q.0.as_str()),
            Some("2500m")
        );
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
                "autoscaling": {"enabled": true, "minReplicas": 1, "maxReplicas": 4,
                                "targetCPUUtilizationPercentage": 60}
            })
        );
        assert_eq!(
            plan_values(&plan(1000, 1024, 2, None))["autoscaling"],
            json!({"enabled": false})
        );
    }
}
