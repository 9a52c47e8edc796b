//! The HorizontalPodAutoscaler of a plain-manifests booking whose plan autoscales: the
//! plan's bounds and CPU target on the workload its package names
//! (`Package::Manifests { scale_target }`). A Helm chart gets the same plan as its
//! `autoscaling` values instead (see [`crate::resources::plan_values`]), and renders its
//! own.
//!
//! It is verbund's object, in the booking's own files beside the quota, so the vendor
//! cannot widen the bounds: the quota is sized for the plan's maximum
//! ([`crate::resources::max_pods`]), and the autoscaler never asks for more.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use verbund_domain::catalog::{check_scale_target, Package};

use crate::error::{Error, Result};
use crate::tenant::Tenant;

/// The booking's autoscaler, when its plan autoscales and its package is plain manifests
/// (which must then name what it scales: the publish-time rule of
/// `verbund_domain::catalog::check_package`).
pub(crate) fn autoscaler(t: &Tenant<'_>) -> Result<Option<HorizontalPodAutoscaler>> {
    let (
        Some(a),
        Package::Manifests {
            manifests,
            scale_target: Some(name),
            ..
        },
    ) = (t.placed.plan.autoscaling, &t.placed.version.package)
    else {
        return Ok(None);
    };
    let kind = check_scale_target(manifests, name).map_err(|e| Error::Package {
        booking: t.placed.booking.id.clone(),
        field: e.field,
        message: e.message,
    })?;
    Ok(Some(HorizontalPodAutoscaler {
        metadata: t.meta(name),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: kind.into(),
                name: name.clone(),
            },
            min_replicas: i32::try_from(a.min_replicas).ok(),
            max_replicas: i32::try_from(a.max_replicas).unwrap_or(i32::MAX),
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: i32::try_from(a.target_cpu_utilization).ok(),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        }),
        ..HorizontalPodAutoscaler::default()
    }))
}
