//! The kinds the agent applies and prunes: a fixed table rather than API discovery.
//!
//! Why fixed: the renderer emits a known set of kinds (see `verbund-render`), the
//! agent's write ClusterRole ([`crate::install`]) must name exactly the kinds it may
//! touch, and pruning must never reach kinds that controllers create from verbund's
//! objects. So the table is the single list both read. An object of any other kind in
//! the desired state is refused (logged, not applied), never guessed.
//!
//! `PersistentVolumeClaim`s are applied (a tenant's package may ask for one) but never
//! pruned: claims made from a StatefulSet's `volumeClaimTemplates` carry the template's
//! labels, and pruning them would delete tenant data; they go with their namespace.
//! `Role`s come only from vendor content, applied as the booking's deployer, so the API
//! server refuses any that grants more than the deployer holds.

use kube::core::{ApiResource, GroupVersionKind};

/// One kind the agent applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    /// Whether an object of this kind that is no longer desired is deleted. Claims are
    /// not: they hold tenant data and go only with their namespace.
    pub prune: bool,
}

impl Kind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group, self.version, self.kind),
            self.plural,
        )
    }
}

const fn kind(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
) -> Kind {
    Kind {
        group,
        version,
        kind,
        plural,
        namespaced,
        prune: true,
    }
}

const fn kept(k: Kind) -> Kind {
    Kind { prune: false, ..k }
}

/// Every kind the agent applies, in the order it applies them: the namespace, the
/// tenancy (a pod must not start before its quota, limits and credentials exist), then
/// the application and its smoke test. It is verbund's own kinds for an agent site
/// (see `verbund-render`) and every kind a tenant may own
/// ([`verbund_domain::tenancy::TENANT_KINDS`], checked by a test).
#[rustfmt::skip]
pub const APPLIED: [Kind; 21] = [
    kind("", "v1", "Namespace", "namespaces", false),
    // The tenancy (namespace.yaml, quota.yaml, networkpolicies.yaml, rbac.yaml,
    // credentials.yaml, config.yaml, secrets.yaml).
    kind("", "v1", "ResourceQuota", "resourcequotas", true),
    kind("", "v1", "LimitRange", "limitranges", true),
    kind("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true),
    kind("", "v1", "ServiceAccount", "serviceaccounts", true),
    kind("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    kind("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true),
    kind("generators.external-secrets.io", "v1alpha1", "Password", "passwords", true),
    kind("external-secrets.io", "v1", "ExternalSecret", "externalsecrets", true),
    kind("external-secrets.io", "v1alpha1", "PushSecret", "pushsecrets", true),
    kind("", "v1", "ConfigMap", "configmaps", true),
    // A booking's declared secrets (secrets.yaml), opened by the agent (see `sealed`).
    kind("", "v1", "Secret", "secrets", true),
    // The application, and the smoke test last.
    kept(kind("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true)),
    kind("", "v1", "Service", "services", true),
    kind("apps", "v1", "Deployment", "deployments", true),
    kind("apps", "v1", "StatefulSet", "statefulsets", true),
    kind("batch", "v1", "CronJob", "cronjobs", true),
    kind("networking.k8s.io", "v1", "Ingress", "ingresses", true),
    kind("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true),
    kind("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true),
    kind("batch", "v1", "Job", "jobs", true),
];

/// The kind of an object with `apiVersion` and `kind`, if the agent applies it.
pub fn find(api_version: &str, kind: &str) -> Option<&'static Kind> {
    APPLIED
        .iter()
        .find(|k| k.kind == kind && k.api_version() == api_version)
}

/// Flux's HelmRelease, which the agent also observes.
pub fn helm_release() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("helm.toolkit.fluxcd.io", "v2", "HelmRelease"),
        "helmreleases",
    )
}

/// Argo CD's Application, which the agent observes.
pub fn application() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application"),
        "applications",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use verbund_domain::tenancy::TENANT_KINDS;

    #[test]
    fn every_kind_a_tenant_may_own_is_applied() {
        for k in TENANT_KINDS {
            assert!(
                APPLIED.iter().any(|a| a.group == k.group
                    && a.kind == k.kind
                    && a.plural == k.plural
                    && a.namespaced),
                "{}",
                k.kind
            );
        }
    }
}
