//! The objects that make a booking's namespace a tenancy: the namespace itself, its
//! quota and limit range, network policies, the tenant's role binding and the external
//! secrets of its dependencies.
//!
//! Network policies: `default-deny` isolates every pod in both directions; then
//! `allow-same-namespace` (pods of the booking talk to each other), `allow-dns` (egress
//! to kube-dns in `kube-system`, UDP and TCP 53), `allow-ingress-controller` (ingress
//! from the ingress controller's namespace), `allow-to-dependencies` (egress to exactly
//! the namespaces of the booking's dependencies) and `allow-from-dependents` (ingress
//! from exactly the namespaces of the bookings on this site that depend on it). The last
//! two exist only where there is someone to allow.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::{
    ExternalSecret, ExternalSecretDataFrom, ExternalSecretSpec, ExternalSecretTarget, RemoteKey,
    SecretStoreReference,
};
use crate::input::{PlacedBooking, RenderOptions};
use crate::names::label_value;
use crate::resources;

/// The label Kubernetes puts on every namespace with its name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A booking with everything derived for it.
#[derive(Debug)]
pub struct Tenant<'a> {
    pub placed: &'a PlacedBooking<'a>,
    pub namespace: String,
    /// ARS, else AGS, else the organisation's id.
    pub organisation_key: String,
    /// The labels of every object of the booking.
    pub labels: BTreeMap<String, String>,
    /// Offering and namespace of each dependency, by offering.
    pub dependencies: BTreeMap<String, String>,
    /// Namespaces of the bookings on this site that depend on this one, sorted.
    pub dependents: Vec<String>,
}

impl<'a> Tenant<'a> {
    pub fn new(placed: &'a PlacedBooking<'a>, namespace: String) -> Self {
        let org = placed.organisation;
        let organisation_key = org
            .ars
            .clone()
            .or_else(|| org.ags.clone())
            .unwrap_or_else(|| org.id.clone());
        let version = label_value(&placed.version.version);
        let offering = placed.offering.name.clone();
        let labels = BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), offering.clone()),
            ("app.kubernetes.io/instance".to_string(), namespace.clone()),
            ("app.kubernetes.io/version".to_string(), version.clone()),
            (
                "app.kubernetes.io/managed-by".to_string(),
                "verbund".to_string(),
            ),
            (
                "app.kubernetes.io/part-of".to_string(),
                "verbund".to_string(),
            ),
            (
                "verbund.dev/organisation-key".to_string(),
                label_value(&organisation_key),
            ),
            (
                "verbund.dev/booking".to_string(),
                label_value(&placed.booking.id),
            ),
            ("verbund.dev/offering".to_string(), offering),
            ("verbund.dev/version".to_string(), version),
        ]);
        Self {
            placed,
            namespace,
            organisation_key,
            labels,
            dependencies: BTreeMap::new(),
            dependents: Vec::new(),
        }
    }

    /// Metadata of a namespaced object of the booking.
    pub fn meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels.clone()),
            ..ObjectMeta::default()
        }
    }

    /// The labels verbund sets on a vendor's plain manifests (theirs kept otherwise).
    pub fn manifest_labels(&self) -> BTreeMap<String, String> {
        self.labels
            .iter()
            .filter(|(k, _)| k.starts_with("verbund.dev/") || *k == "app.kubernetes.io/managed-by")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn namespace_object(&self) -> Namespace {
        let mut labels = self.labels.clone();
        for mode in ["enforce", "audit", "warn"] {
            labels.insert(
                format!("pod-security.kubernetes.io/{mode}"),
                "restricted".to_string(),
            );
        }
        let annotations = BTreeMap::from([
            (
                "verbund.dev/organisation".to_string(),
                self.placed.organisation.name.clone(),
            ),
            (
                "verbund.dev/plan".to_string(),
                self.placed.plan.name.clone(),
            ),
        ]);
        Namespace {
            metadata: ObjectMeta {
                name: Some(self.namespace.clone()),
                labels: Some(labels),
                annotations: Some(annotations),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        }
    }

    pub fn resource_quota(&self) -> ResourceQuota {
        ResourceQuota {
            metadata: self.meta("verbund"),
            spec: Some(ResourceQuotaSpec {
                hard: Some(resources::quota_hard(self.placed.plan)),
                ..ResourceQuotaSpec::default()
            }),
            ..ResourceQuota::default()
        }
    }

    pub fn limit_range(&self) -> LimitRange {
        let defaults = resources::container_defaults(self.placed.plan);
        LimitRange {
            metadata: self.meta("verbund"),
            spec: Some(LimitRangeSpec {
                limits: vec![LimitRangeItem {
                    type_: "Container".to_string(),
                    default: Some(defaults.clone()),
                    default_request: Some(defaults),
                    ..LimitRangeItem::default()
                }],
            }),
        }
    }

    pub fn network_policies(&self, options: &RenderOptions) -> Vec<NetworkPolicy> {
        let both = || Some(vec!["Ingress".to_string(), "Egress".to_string()]);
        let mut policies = vec![
            self.policy(
                "default-deny",
                NetworkPolicySpec {
                    policy_types: both(),
                    ..all_pods()
                },
            ),
            self.policy(
                "allow-same-namespace",
                NetworkPolicySpec {
                    policy_types: both(),
                    ingress: Some(vec![NetworkPolicyIngressRule {
                        from: Some(vec![pods_here()]),
                        ..NetworkPolicyIngressRule::default()
                    }]),
                    egress: Some(vec![NetworkPolicyEgressRule {
                        to: Some(vec![pods_here()]),
                        ..NetworkPolicyEgressRule::default()
                    }]),
                    ..all_pods()
                },
            ),
            self.policy(
                "allow-dns",
                NetworkPolicySpec {
                    policy_types: Some(vec!["Egress".to_string()]),
                    egress: Some(vec![NetworkPolicyEgressRule {
                        to: Some(vec![NetworkPolicyPeer {
                            namespace_selector: Some(namespace_named("kube-system")),
                            pod_selector: Some(LabelSelector {
                                match_labels: Some(BTreeMap::from([(
                                    "k8s-app".to_string(),
                                    "kube-dns".to_string(),
                                )])),
                                ..LabelSelector::default()
                            }),
                            ..NetworkPolicyPeer::default()
                        }]),
                        ports: Some(
                            ["UDP", "TCP"]
                                .into_iter()
                                .map(|protocol| NetworkPolicyPort {
                                    protocol: Some(protocol.to_string()),
                                    port: Some(IntOrString::Int(53)),
                                    ..NetworkPolicyPort::default()
                                })
                                .collect(),
                        ),
                    }]),
                    ..all_pods()
                },
            ),
            self.policy(
                "allow-ingress-controller",
                NetworkPolicySpec {
                    policy_types: Some(vec!["Ingress".to_string()]),
                    ingress: Some(vec![NetworkPolicyIngressRule {
                        from: Some(vec![namespace_peer(&options.ingress_namespace)]),
                        ..NetworkPolicyIngressRule::default()
                    }]),
                    ..all_pods()
                },
            ),
        ];
        if !self.dependencies.is_empty() {
            policies.push(self.policy(
                "allow-to-dependencies",
                NetworkPolicySpec {
                    policy_types: Some(vec!["Egress".to_string()]),
                    egress: Some(vec![NetworkPolicyEgressRule {
                        to: Some(self.dependencies.values().map(|ns| namespace_peer(ns)).collect()),
                        ..NetworkPolicyEgressRule::default()
                    }]),
                    ..all_pods()
                },
            ));
        }
        if !self.dependents.is_empty() {
            policies.push(self.policy(
                "allow-from-dependents",
                NetworkPolicySpec {
                    policy_types: Some(vec!["Ingress".to_string()]),
                    ingress: Some(vec![NetworkPolicyIngressRule {
                        from: Some(self.dependents.iter().map(|ns| namespace_peer(ns)).collect()),
                        ..NetworkPolicyIngressRule::default()
                    }]),
                    ..all_pods()
                },
            ));
        }
        policies
    }

    fn policy(&self, name: &str, spec: NetworkPolicySpec) -> NetworkPolicy {
        NetworkPolicy {
            metadata: self.meta(name),
            spec: Some(spec),
        }
    }

    /// Binds the tenant's group `verbund:org:<organisation key>` to the tenant role.
    pub fn role_binding(&self, options: &RenderOptions) -> RoleBinding {
        RoleBinding {
            metadata: self.meta("verbund-tenant"),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".to_string(),
                kind: "ClusterRole".to_string(),
                name: options.tenant_cluster_role.clone(),
            },
            subjects: Some(vec![Subject {
                api_group: Some("rbac.authorization.k8s.io".to_string()),
                kind: "Group".to_string(),
                name: format!("verbund:org:{}", self.organisation_key),
                namespace: None,
            }]),
        }
    }

    /// One secret per dependency, `<dependency offering>-credentials`, fetched whole
    /// from the remote key `verbund/<namespace>/<name>`.
    pub fn external_secrets(&self, options: &RenderOptions) -> Vec<ExternalSecret> {
        self.dependencies
            .keys()
            .map(|offering| {
                let name = credentials_secret(offering);
                ExternalSecret::new(
                    self.meta(&name),
                    ExternalSecretSpec {
                        refresh_interval: "1h".to_string(),
                        secret_store_ref: SecretStoreReference {
                            kind: "ClusterSecretStore".to_string(),
                            name: options.secret_store.clone(),
                        },
                        target: ExternalSecretTarget {
                            name: name.clone(),
                            creation_policy: "Owner".to_string(),
                        },
                        data_from: vec![ExternalSecretDataFrom {
                            extract: RemoteKey {
                                key: format!("verbund/{}/{name}", self.namespace),
                            },
                        }],
                    },
                )
            })
            .collect()
    }
}

/// The name of the secret with a dependency's credentials, for charts to reference
/// (e.g. as `existingSecret`).
pub fn credentials_secret(dependency_offering: &str) -> String {
    format!("{dependency_offering}-credentials")
}

/// A policy spec selecting every pod of the namespace, with nothing allowed yet.
fn all_pods() -> NetworkPolicySpec {
    NetworkPolicySpec {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicySpec::default()
    }
}

/// Every pod of the policy's own namespace.
fn pods_here() -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    }
}

fn namespace_named(namespace: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            NAMESPACE_NAME_LABEL.to_string(),
            namespace.to_string(),
        )])),
        ..LabelSelector::default()
    }
}

/// Every pod of another namespace.
fn namespace_peer(namespace: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(namespace_named(namespace)),
        ..NetworkPolicyPeer::default()
    }
}
