//! The objects that make a booking's namespace a tenancy: the namespace itself, its
//! quota and limit range, network policies, the tenant's role binding, the deployer that
//! vendor content is applied as, and the booking's credentials.
//!
//! Labels: every object carries the recommended `app.kubernetes.io/{name,version,
//! managed-by,part-of}` and verbund's `verbund.dev/{organisation-key,booking,offering,
//! version}`, but never `app.kubernetes.io/instance`: Argo CD's label tracking reads that
//! label as "owned by the application of this name", so it must stay the GitOps
//! engine's (or the chart's) to set.
//!
//! The deployer: a ServiceAccount `verbund-deployer` in the booking's namespace, bound
//! there to the site's ClusterRole `verbund-deployer` (the rules of
//! [`verbund_domain::tenancy::DEPLOYER_RULES`]). Flux's HelmRelease and the Kustomization
//! of a booking's manifests act as it, Argo CD syncs as it where sync impersonation is
//! on, and the agent impersonates it: vendor content gets its tenant's rights only.
//!
//! Credentials: a booking of an offering with `credentials` generates its own at the site
//! (an External Secrets `Password` generator into the Secret `<offering>-credentials`,
//! made once) and pushes them into the site's secret store under
//! `verbund/<namespace>/credentials`; each booking that depends on it reads them from
//! there into its own `<dependency>-credentials`.
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
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use serde_json::Value;
use verbund_domain::booking::BookingState;

use crate::crd::{
    ExternalSecret, ExternalSecretDataFrom, ExternalSecretSpec, ExternalSecretTarget,
    GeneratorReference, GeneratorSource, NamedSecret, Password, PasswordSpec, PushData, PushMatch,
    PushRemoteRef, PushSecret, PushSecretSpec, PushSelector, RemoteKey, SecretStoreReference,
    SecretTemplate,
};
use crate::error::Result;
use crate::input::{PlacedBooking, RenderOptions};
use crate::names::label_value;
use crate::resources;
use crate::yaml::to_value;

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
    /// A shared instance's tenancies on this site (see [`crate::tenant_list`]), sorted by
    /// id: not namespaces, not dependents to admit, but the instance's tenant list.
    pub tenancies: Vec<&'a PlacedBooking<'a>>,
}

/// How the desired state names an organisation: its ARS, else its AGS, else its id.
pub fn organisation_key(org: &verbund_domain::directory::Organisation) -> String {
    org.ars
        .clone()
        .or_else(|| org.ags.clone())
        .unwrap_or_else(|| org.id.clone())
}

impl<'a> Tenant<'a> {
    pub fn new(placed: &'a PlacedBooking<'a>, namespace: String) -> Self {
        let organisation_key = organisation_key(placed.organisation);
        // The one mapping sites read back (`version_from_label`); a version published
        // before it was required to fit still gets a valid label.
        let version = verbund_domain::catalog::version_label(&placed.version.version)
            .unwrap_or_else(|| label_value(&placed.version.version));
        let offering = placed.offering.name.clone();
        let labels = BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), offering.clone()),
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
            tenancies: Vec::new(),
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
                hard: Some(resources::quota_hard(
                    self.placed.plan,
                    self.placed.offering.smoke_test.is_some()
                        || self.placed.booking.state == BookingState::Exporting,
                )),
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

    pub(crate) fn policy(&self, name: &str, spec: NetworkPolicySpec) -> NetworkPolicy {
        NetworkPolicy {
            metadata: self.meta(name),
            spec: Some(spec),
        }
    }

    /// Binds the tenant's group `verbund:org:<organisation key>` to the tenant role.
    pub fn role_binding(&self, options: &RenderOptions) -> RoleBinding {
        RoleBinding {
            metadata: self.meta("verbund-tenant"),
            role_ref: cluster_role(&options.tenant_cluster_role),
            subjects: Some(vec![Subject {
                api_group: Some("rbac.authorization.k8s.io".to_string()),
                kind: "Group".to_string(),
                name: format!("verbund:org:{}", self.organisation_key),
                namespace: None,
            }]),
        }
    }

    /// The booking's deployer: its ServiceAccount.
    pub fn deployer(&self) -> ServiceAccount {
        ServiceAccount {
            metadata: self.meta(DEPLOYER),
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        }
    }

    /// Binds the deployer to the site's `verbund-deployer` ClusterRole, in this namespace
    /// only.
    pub fn deployer_binding(&self) -> RoleBinding {
        RoleBinding {
            metadata: self.meta(DEPLOYER),
            role_ref: cluster_role(DEPLOYER),
            subjects: Some(vec![Subject {
                api_group: None,
                kind: "ServiceAccount".to_string(),
                name: DEPLOYER.to_string(),
                namespace: Some(self.namespace.clone()),
            }]),
        }
    }

    /// The credentials objects of the booking, in order: for an offering with
    /// credentials its generator, the ExternalSecret that makes them once and the
    /// PushSecret that stores them; then one ExternalSecret per dependency reading the
    /// dependency's from the secret store.
    pub fn credentials(&self, options: &RenderOptions) -> Result<Vec<Value>> {
        let store = || SecretStoreReference {
            kind: "ClusterSecretStore".to_string(),
            name: options.secret_store.clone(),
        };
        let mut out = Vec::new();
        let offering = &self.placed.offering.name;
        if self.placed.offering.credentials {
            let name = credentials_secret(offering);
            let generator = Password::new(
                self.meta(&name),
                PasswordSpec {
                    length: 32,
                    digits: 6,
                    symbols: 0,
                    no_upper: false,
                    allow_repeat: true,
                },
            );
            let made = ExternalSecret::new(
                self.meta(&name),
                ExternalSecretSpec {
                    refresh_interval: "0s".to_string(),
                    refresh_policy: Some("CreatedOnce".to_string()),
                    secret_store_ref: None,
                    target: ExternalSecretTarget {
                        name: name.clone(),
                        creation_policy: "Owner".to_string(),
                        template: Some(SecretTemplate {
                            engine_version: "v2".to_string(),
                            merge_policy: "Merge".to_string(),
                            data: BTreeMap::from([("username".to_string(), username(offering))]),
                        }),
                    },
                    data_from: vec![ExternalSecretDataFrom {
                        extract: None,
                        source_ref: Some(GeneratorSource {
                            generator_ref: GeneratorReference {
                                api_version: Password::API_VERSION.to_string(),
                                kind: Password::KIND.to_string(),
                                name: name.clone(),
                            },
                        }),
                    }],
                },
            );
            let pushed = PushSecret::new(
                self.meta(&name),
                PushSecretSpec {
                    refresh_interval: "1h".to_string(),
                    update_policy: "IfNotExists".to_string(),
                    deletion_policy: "None".to_string(),
                    secret_store_refs: vec![store()],
                    selector: PushSelector {
                        secret: NamedSecret { name: name.clone() },
                    },
                    data: vec![PushData {
                        matching: PushMatch {
                            remote_ref: PushRemoteRef {
                                remote_key: remote_key(&self.namespace),
                            },
                        },
                    }],
                },
            );
            out.push(to_value("Password", &generator)?);
            out.push(to_value("ExternalSecret", &made)?);
            out.push(to_value("PushSecret", &pushed)?);
        }
        for (dependency, namespace) in &self.dependencies {
            let name = credentials_secret(dependency);
            let read = ExternalSecret::new(
                self.meta(&name),
                ExternalSecretSpec {
                    refresh_interval: "1h".to_string(),
                    refresh_policy: None,
                    secret_store_ref: Some(store()),
                    target: ExternalSecretTarget {
                        name: name.clone(),
                        creation_policy: "Owner".to_string(),
                        template: None,
                    },
                    data_from: vec![ExternalSecretDataFrom {
                        extract: Some(RemoteKey {
                            key: remote_key(namespace),
                        }),
                        source_ref: None,
                    }],
                },
            );
            out.push(to_value("ExternalSecret", &read)?);
        }
        Ok(out)
    }
}

pub use verbund_domain::tenancy::DEPLOYER;

/// Where a booking's credentials live in the site's secret store.
pub fn remote_key(namespace: &str) -> String {
    format!("verbund/{namespace}/credentials")
}

/// The database or service user of an offering's credentials: its name with `-` as `_`
/// (valid for PostgreSQL and most others).
fn username(offering: &str) -> String {
    offering.replace('-', "_")
}

fn cluster_role(name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".to_string(),
        kind: "ClusterRole".to_string(),
        name: name.to_string(),
    }
}

pub use verbund_domain::catalog::credentials_secret;

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
