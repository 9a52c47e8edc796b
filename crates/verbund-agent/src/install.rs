//! The agent's own install manifests: its namespace, service account, RBAC and
//! Deployment, built from `k8s-openapi` types.
//!
//! Why generated, not hand-written: the write ClusterRole must grant exactly the kinds
//! the agent applies ([`crate::kinds::APPLIED`]), and the read ClusterRole exactly what
//! the stores watch ([`crate::observe`]); generating both from the same tables keeps
//! them from drifting. `deploy/agent/*.yaml` are this output, checked by a test.
//!
//! Reading needs `get`, `list`, `watch` on namespaces, nodes, pods, deployments,
//! statefulsets, jobs, helmreleases and applications, nothing else. Applying (only
//! with `apply`) adds a second ClusterRole: every verb server-side apply and pruning
//! use on exactly the applied kinds, `bind` on the two cluster roles the bookings'
//! RoleBindings name (the tenants' `edit` and `verbund-deployer`), and `impersonate` on
//! service accounts named `verbund-deployer`, as which it applies vendor content; and the
//! ClusterRole `verbund-deployer` itself, the same object the renderer gives Flux and
//! Argo CD sites ([`verbund_domain::tenancy::deployer_cluster_role`]). The site token comes from the Secret
//! `verbund-agent-token` (key `token`), which the operator creates; it is never a
//! literal in the manifests.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, Namespace,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecretVolumeSource, SecurityContext, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::Value;

use verbund_domain::tenancy::{deployer_cluster_role, DEPLOYER};

use crate::kinds::APPLIED;

/// The agent's name: service account, roles, Deployment.
pub const AGENT: &str = "verbund-agent";
/// The Secret with the site token, key `token`.
pub const TOKEN_SECRET: &str = "verbund-agent-token";
/// The image the Deployment runs, unless told otherwise.
pub const DEFAULT_IMAGE: &str = concat!(
    "registry.verbund.example/verbund:",
    env!("CARGO_PKG_VERSION")
);
/// The cluster role the bookings' RoleBindings grant their tenants (the renderer's
/// default `tenant_cluster_role`).
pub const TENANT_CLUSTER_ROLE: &str = "edit";

/// What the manifests are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    pub site: String,
    /// The control plane's base URL.
    pub server: String,
    /// The agent's namespace, e.g. `verbund-system`.
    pub namespace: String,
    pub image: String,
    /// `Some((repository, branch))`: the agent applies the desired state.
    pub apply: Option<(String, String)>,
}

/// The install manifests with the default image; with `apply`, the desired state comes
/// from `https://git.verbund.example/desired-state.git`, branch `main` (see
/// [`manifests`] to choose).
pub fn install_manifests(site: &str, server: &str, namespace: &str, apply: bool) -> Vec<Value> {
    manifests(&Install {
        site: site.to_string(),
        server: server.to_string(),
        namespace: namespace.to_string(),
        image: DEFAULT_IMAGE.to_string(),
        apply: apply.then(|| {
            (
                "https://git.verbund.example/desired-state.git".to_string(),
                "main".to_string(),
            )
        }),
    })
}

fn value(object: &impl serde::Serialize) -> Value {
    canonical(serde_json::to_value(object).unwrap_or(Value::Null))
}

fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), AGENT.to_string()),
        (
            "app.kubernetes.io/part-of".to_string(),
            "verbund".to_string(),
        ),
    ])
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(String::from),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..PolicyRule::default()
    }
}

const READ: [&str; 3] = ["get", "list", "watch"];
const WRITE: [&str; 7] = [
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// What the stores watch.
pub fn read_rules() -> Vec<PolicyRule> {
    vec![
        rule("", &["namespaces", "nodes", "pods"], &READ),
        rule("apps", &["deployments", "statefulsets"], &READ),
        rule("batch", &["jobs"], &READ),
        rule("helm.toolkit.fluxcd.io", &["helmreleases"], &READ),
        rule("argoproj.io", &["applications"], &READ),
    ]
}

/// What applying and pruning need: the applied kinds by API group, and `bind` on the
/// tenants' cluster role.
pub fn apply_rules() -> Vec<PolicyRule> {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for k in &APPLIED {
        groups.entry(k.group).or_default().push(k.plural);
    }
    let mut rules: Vec<PolicyRule> = groups
        .into_iter()
        .map(|(group, mut resources)| {
            resources.sort_unstable();
            rule(group, &resources, &WRITE)
        })
        .collect();
    rules.push(PolicyRule {
        api_groups: Some(vec!["rbac.authorization.k8s.io".to_string()]),
        resources: Some(vec!["clusterroles".to_string()]),
        resource_names: Some(vec![TENANT_CLUSTER_ROLE.to_string(), DEPLOYER.to_string()]),
        verbs: vec!["bind".to_string()],
        ..PolicyRule::default()
    });
    rules.push(PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["serviceaccounts".to_string()]),
        resource_names: Some(vec![DEPLOYER.to_string()]),
        verbs: vec!["impersonate".to_string()],
        ..PolicyRule::default()
    });
    rules
}

fn binding(name: &str, namespace: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(name, None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "ClusterRole".to_string(),
            name: name.to_string(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_string(),
            name: AGENT.to_string(),
            namespace: Some(namespace.to_string()),
            ..Subject::default()
        }]),
    }
}

/// Every object, in the order to apply them.
pub fn manifests(install: &Install) -> Vec<Value> {
    let ns = install.namespace.as_str();
    let read = format!("{AGENT}-read");
    let write = format!("{AGENT}-apply");
    let mut out = vec![
        value(&Namespace {
            metadata: ObjectMeta {
                labels: Some({
                    let mut l = labels();
                    l.insert(
                        "pod-security.kubernetes.io/enforce".into(),
                        "restricted".into(),
                    );
                    l
                }),
                ..meta(ns, None)
            },
            ..Namespace::default()
        }),
        value(&ServiceAccount {
            metadata: meta(AGENT, Some(ns)),
            ..ServiceAccount::default()
        }),
        value(&ClusterRole {
            metadata: meta(&read, None),
            rules: Some(read_rules()),
            ..ClusterRole::default()
        }),
        value(&binding(&read, ns)),
    ];
    if install.apply.is_some() {
        out.push(value(&ClusterRole {
            metadata: meta(&write, None),
            rules: Some(apply_rules()),
            ..ClusterRole::default()
        }));
        out.push(value(&binding(&write, ns)));
        out.push(canonical(deployer_cluster_role()));
    }
    out.push(value(&deployment(install)));
    out
}

fn deployment(install: &Install) -> Deployment {
    let mut args = vec![
        "agent".to_string(),
        "run".to_string(),
        "--server".to_string(),
        install.server.clone(),
        "--site".to_string(),
        install.site.clone(),
    ];
    if let Some((repository, branch)) = &install.apply {
        args.extend([
            "--apply".to_string(),
            "--repository".to_string(),
            repository.clone(),
            "--branch".to_string(),
            branch.clone(),
            "--cache-dir".to_string(),
            "/var/cache/verbund".to_string(),
            "--age-identity".to_string(),
            format!("{AGE_DIR}/{}", crate::sealed::AGE_KEY),
        ]);
    }
    let selector = BTreeMap::from([("app.kubernetes.io/name".to_string(), AGENT.to_string())]);
    let quantity = |q: &str| Quantity(q.to_string());
    Deployment {
        metadata: meta(AGENT, Some(&install.namespace)),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            // One agent per site: never two reporting (or applying) at once.
            strategy: Some(k8s_openapi::api::apps::v1::DeploymentStrategy {
                type_: Some("Recreate".to_string()),
                ..Default::default()
            }),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(AGENT.to_string()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        run_as_group: Some(65532),
                        fs_group: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_string(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![Container {
                        name: "agent".to_string(),
                        image: Some(install.image.clone()),
                        args: Some(args),
                        env: Some(vec![
                            EnvVar {
                                name: "VERBUND_SITE_TOKEN".to_string(),
                                value_from: Some(EnvVarSource {
                                    secret_key_ref: Some(SecretKeySelector {
                                        name: TOKEN_SECRET.to_string(),
                                        key: "token".to_string(),
                                        optional: Some(false),
                                    }),
                                    ..EnvVarSource::default()
                                }),
                                ..EnvVar::default()
                            },
                            EnvVar {
                                name: "RUST_LOG".to_string(),
                                value: Some("info".to_string()),
                                ..EnvVar::default()
                            },
                        ]),
                        resources: Some(ResourceRequirements {
                            requests: Some(BTreeMap::from([
                                ("cpu".to_string(), quantity("50m")),
                                ("memory".to_string(), quantity("128Mi")),
                            ])),
                            limits: Some(BTreeMap::from([(
                                "memory".to_string(),
                                quantity("512Mi"),
                            )])),
                            ..ResourceRequirements::default()
                        }),
                        security_context: Some(SecurityContext {
                            allow_privilege_escalation: Some(false),
                            read_only_root_filesystem: Some(true),
                            run_as_non_root: Some(true),
                            capabilities: Some(Capabilities {
                                drop: Some(vec!["ALL".to_string()]),
                                ..Capabilities::default()
                            }),
                            seccomp_profile: Some(SeccompProfile {
                                type_: "RuntimeDefault".to_string(),
                                ..SeccompProfile::default()
                            }),
                            ..SecurityContext::default()
                        }),
                        volume_mounts: Some(mounts(install)),
                        ..Container::default()
                    }],
                    volumes: Some(volumes(install)),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// Where an applying agent reads the site's age identity from.
const AGE_DIR: &str = "/etc/verbund/age";

/// The repository cache, and for an applying agent the site's age identity: the Secret
/// [`crate::sealed::AGE_SECRET`] in the agent's namespace, created by the site's operator
/// (optional: without it, bookings with sealed secrets are not applied, the others are).
fn volumes(install: &Install) -> Vec<Volume> {
    let mut out = vec![Volume {
        name: "cache".to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    if install.apply.is_some() {
        out.push(Volume {
            name: "age".to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(crate::sealed::AGE_SECRET.to_string()),
                optional: Some(true),
                // Readable by the agent's group only (the pod's `fsGroup`).
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    out
}

fn mounts(install: &Install) -> Vec<VolumeMount> {
    let mut out = vec![VolumeMount {
        name: "cache".to_string(),
        mount_path: "/var/cache/verbund".to_string(),
        ..VolumeMount::default()
    }];
    if install.apply.is_some() {
        out.push(VolumeMount {
            name: "age".to_string(),
            mount_path: AGE_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    out
}

/// The manifests as one multi-document YAML file.
pub fn to_yaml(objects: &[Value]) -> String {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(o).unwrap_or_default());
    }
    out
}
