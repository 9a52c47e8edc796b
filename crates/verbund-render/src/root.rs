//! The entry points of a site's environment, split so that no object's status grows
//! with the number of bookings beyond a fixed bound.
//!
//! Bookings fall into [`SHARDS`] shards by a hash of their namespace (stable: a booking
//! never changes shard, so no engine ever prunes a booking to re-create it elsewhere).
//! `shards/<nn>/kustomization.yaml` lists the booking folders of shard `nn`, and only
//! non-empty shards exist. Above them:
//!
//! - Flux: `kustomization.yaml` lists `shards.yaml`, which holds one `GitRepository` and
//!   one `Kustomization` `verbund-<environment>-<nn>` per shard; the root `Kustomization`
//!   `verbund-<environment>` (in `root.yaml`) applies it. So the root's inventory holds at
//!   most 128 objects, and a shard's holds the objects of its bookings, about one
//!   sixty-fourth of the site's: ~12 objects per booking, so ~320 at the design's 1,700
//!   bookings per site, and Flux's inventory (about 100 bytes an entry) would reach
//!   etcd's 1.5 MiB only at ~80,000 bookings on one site.
//! - Argo CD: the same, with `Application`s: the root `verbund-<environment>` syncs
//!   `shards.yaml`, each shard application its bookings' tenancy objects and their
//!   `AppProject`s and `Application`s; each booking's application holds only its own
//!   objects.
//! - agent: `kustomization.yaml` lists the shard folders directly (the agent keeps no
//!   status object).
//!
//! `root.yaml` is applied once by the site's operator and is not listed in
//! `kustomization.yaml`, so the engine never manages its own entry point. Besides the
//! source and the root it holds what the site's delivery acts as: for Flux the
//! ServiceAccount `verbund-site` in Flux's namespace with the ClusterRole `verbund-site`
//! (exactly the kinds verbund renders, and `bind` on the tenant role and the deployer
//! role only), named as `serviceAccountName` by the root and every shard, so that nothing
//! depends on the controller's own rights; for Argo CD the AppProject `verbund`, which
//! allows the same kinds; and for both the ClusterRole `verbund-deployer`, which each
//! booking binds to its deployer in its namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use sha2::{Digest, Sha256};
use verbund_domain::directory::{Delivery, Environment};
use verbund_domain::tenancy::deployer_cluster_role;

use crate::app::IN_CLUSTER;
use crate::crd::{
    AppProject, AppProjectSpec, Application, ApplicationDestination, ApplicationSource,
    ApplicationSpec, Automated, GitReference, GitRepository, GitRepositorySpec, GroupKind,
    Kustomization, KustomizationFile, KustomizationSpec, LocalReference, ProjectDestination,
    SourceReference, SyncPolicy,
};
use crate::error::{Error, Result};
use crate::input::{environment_name, RenderOptions};
use crate::tenant::DEPLOYER;
use crate::yaml::{canonical, to_value};

/// How many shards a site's environment has.
pub const SHARDS: u8 = 64;
/// The name of the Flux Git source of a site, in Flux's namespace.
pub const GIT_SOURCE: &str = "verbund";
/// What a Flux site's root and shards act as, and the name of its ClusterRole.
pub const SITE_ACCOUNT: &str = "verbund-site";
/// The Argo CD project of a site's root and shards.
pub const SITE_PROJECT: &str = "verbund";

/// The shard of the booking with `namespace`: `00` … `63`.
pub fn shard_of(namespace: &str) -> String {
    let digest = Sha256::digest(namespace.as_bytes());
    format!("{:02}", digest.first().copied().unwrap_or(0) % SHARDS)
}

/// A `kustomization.yaml` listing `resources` (paths relative to its folder).
pub(crate) fn kustomization(resources: Vec<String>) -> Result<Value> {
    to_value("kustomization.yaml", &KustomizationFile::new(resources))
}

/// The booking folders of each non-empty shard, as its `kustomization.yaml` lists them
/// (`../../bookings/<namespace>`), sorted.
pub(crate) fn shards<'n>(
    namespaces: impl IntoIterator<Item = &'n str>,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for namespace in namespaces {
        out.entry(shard_of(namespace))
            .or_default()
            .push(format!("../../bookings/{namespace}"));
    }
    for folders in out.values_mut() {
        folders.sort();
        folders.dedup();
    }
    out
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_string(),
            "verbund".to_string(),
        )])),
        ..ObjectMeta::default()
    }
}

/// The objects of `shards.yaml`: one Flux Kustomization or Argo CD Application per shard
/// in `shards`; none for agent sites.
///
/// `decrypt`: the site registered an age recipient, so Flux's shards decrypt its sealed
/// Secrets with the identity in [`crate::sealed::AGE_SECRET`] (Flux's namespace).
pub(crate) fn shard_objects(
    site: &str,
    folder: &str,
    environment: Environment,
    delivery: Delivery,
    shards: &BTreeMap<String, Vec<String>>,
    options: &RenderOptions,
    decrypt: bool,
) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (shard, folders) in shards {
        let name = shard_name(environment, shard);
        let path = format!("{folder}/shards/{shard}");
        match delivery {
            Delivery::Flux => {
                out.push(git_source(
                    &name,
                    site,
                    Some(shard_ignore(folder, shard, folders)),
                    options,
                )?);
                let kustomization = flux_kustomization(
                    meta(&name, Some(&options.flux_namespace)),
                    &path,
                    (&name, None),
                    SITE_ACCOUNT,
                    None,
                )?;
                out.push(with_decryption(kustomization, decrypt));
            }
            Delivery::Argocd => out.push(argocd_application(site, &name, &path, options)?),
            Delivery::Agent => {}
        }
    }
    Ok(out)
}

/// The name of a shard's Flux Kustomization and Git source, and of its Argo CD
/// Application: `verbund-<env>-<shard>`.
pub fn shard_name(environment: Environment, shard: &str) -> String {
    format!("verbund-{}-{shard}", environment_name(environment))
}

/// What a shard's Git source leaves out: everything but the shard's folder and its
/// bookings' folders (`folders` as the shard's `kustomization.yaml` lists them).
///
/// Why: Flux's kustomize-controller downloads and unpacks the whole artifact of its source
/// for every Kustomization it reconciles. With one source for the site, each of a site's
/// 1,700 bookings' Kustomizations unpacked all 1,700 bookings (~19,000 files, seconds each),
/// so one pass over the site took hours and never fit its interval; per shard it unpacks
/// ~1/64 of that.
fn shard_ignore(folder: &str, shard: &str, folders: &[String]) -> String {
    // A folder left out is never entered again, so each level is let in on its own and
    // everything else in it left out.
    let mut lines = vec!["/*".to_string()];
    let mut path = String::new();
    for part in folder.split('/') {
        path.push('/');
        path.push_str(part);
        lines.push(format!("!{path}/"));
        lines.push(format!("{path}/*"));
    }
    lines.push(format!("!{path}/shards/"));
    lines.push(format!("{path}/shards/*"));
    lines.push(format!("!{path}/shards/{shard}/"));
    lines.push(format!("!{path}/bookings/"));
    lines.push(format!("{path}/bookings/*"));
    lines.extend(folders.iter().filter_map(|f| {
        f.strip_prefix("../../")
            .map(|relative| format!("!{path}/{relative}/"))
    }));
    lines.join("\n") + "\n"
}

/// A Flux `GitRepository` named `name` in Flux's namespace for the site's repository,
/// leaving out what `ignore` says.
fn git_source(
    name: &str,
    site: &str,
    ignore: Option<String>,
    options: &RenderOptions,
) -> Result<Value> {
    let url = &options.repository_for(site);
    if !["http://", "https://", "ssh://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        return Err(Error::Invalid {
            field: "/options/repository_url".into(),
            message: format!(
                "`{url}` is no repository URL Flux can pull (`https://…` or `ssh://…`)"
            ),
        });
    }
    let source = GitRepository::new(
        meta(name, Some(&options.flux_namespace)),
        GitRepositorySpec {
            interval: "1m".into(),
            url: url.clone(),
            reference: GitReference {
                branch: options.branch.clone(),
            },
            secret_ref: options
                .git_secret
                .as_ref()
                .map(|name| LocalReference { name: name.clone() }),
            ignore,
        },
    );
    to_value("GitRepository", &source)
}

/// A Flux Kustomization that decrypts SOPS-sealed Secrets with the site's age identity,
/// if `decrypt`.
fn with_decryption(mut kustomization: Value, decrypt: bool) -> Value {
    if decrypt {
        if let Some(Value::Object(spec)) = kustomization.get_mut("spec") {
            spec.insert(
                "decryption".into(),
                serde_json::json!({
                    "provider": "sops",
                    "secretRef": {"name": crate::sealed::AGE_SECRET},
                }),
            );
        }
    }
    kustomization
}

/// A Flux Kustomization applying `path` of the Git source `source` (name, and namespace
/// when not its own) as `service_account`, into `target_namespace` if given.
pub(crate) fn flux_kustomization(
    metadata: ObjectMeta,
    path: &str,
    source: (&str, Option<&str>),
    service_account: &str,
    target_namespace: Option<&str>,
) -> Result<Value> {
    let (source_name, source_namespace) = source;
    let kustomization = Kustomization::new(
        metadata,
        KustomizationSpec {
            interval: "10m".into(),
            path: format!("./{path}"),
            prune: true,
            source_ref: SourceReference {
                kind: GitRepository::KIND.into(),
                name: source_name.into(),
                namespace: source_namespace.map(str::to_string),
            },
            service_account_name: service_account.into(),
            target_namespace: target_namespace.map(str::to_string),
            decryption: None,
        },
    );
    to_value("Kustomization", &kustomization)
}

fn argocd_application(
    site: &str,
    name: &str,
    path: &str,
    options: &RenderOptions,
) -> Result<Value> {
    let app = Application::new(
        meta(name, Some(&options.argocd_namespace)),
        ApplicationSpec {
            project: SITE_PROJECT.into(),
            source: ApplicationSource {
                repo_url: options.repository_for(site),
                target_revision: options.branch.clone(),
                chart: None,
                path: Some(path.to_string()),
                helm: None,
            },
            destination: ApplicationDestination {
                server: IN_CLUSTER.into(),
                namespace: options.argocd_namespace.clone(),
            },
            sync_policy: SyncPolicy {
                automated: Automated {
                    prune: true,
                    self_heal: true,
                },
                sync_options: Vec::new(),
            },
        },
    );
    to_value("Application", &app)
}

/// The objects of `root.yaml`, or none for agent sites.
pub(crate) fn root(
    site: &str,
    folder: &str,
    environment: Environment,
    delivery: Delivery,
    options: &RenderOptions,
) -> Result<Vec<Value>> {
    let name = format!("verbund-{}", environment_name(environment));
    match delivery {
        Delivery::Flux => {
            let ns = &options.flux_namespace;
            let source = git_source(GIT_SOURCE, site, None, options)?;
            let account = ServiceAccount {
                metadata: meta(SITE_ACCOUNT, Some(ns)),
                ..ServiceAccount::default()
            };
            let binding = ClusterRoleBinding {
                metadata: meta(SITE_ACCOUNT, None),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name: SITE_ACCOUNT.into(),
                },
                subjects: Some(vec![Subject {
                    api_group: None,
                    kind: "ServiceAccount".into(),
                    name: SITE_ACCOUNT.into(),
                    namespace: Some(ns.clone()),
                }]),
            };
            Ok(vec![
                to_value("ServiceAccount", &account)?,
                to_value("ClusterRole", &site_role(options))?,
                to_value("ClusterRoleBinding", &binding)?,
                canonical(deployer_cluster_role()),
                source,
                flux_kustomization(
                    meta(&name, Some(ns)),
                    folder,
                    (GIT_SOURCE, None),
                    SITE_ACCOUNT,
                    None,
                )?,
            ])
        }
        Delivery::Argocd => {
            let project = AppProject::new(
                meta(SITE_PROJECT, Some(&options.argocd_namespace)),
                AppProjectSpec {
                    description: "verbund: the site's tenancies and their applications".into(),
                    source_repos: vec![options.repository_for(site)],
                    destinations: vec![ProjectDestination {
                        server: IN_CLUSTER.into(),
                        namespace: "*".into(),
                    }],
                    cluster_resource_whitelist: vec![GroupKind {
                        group: String::new(),
                        kind: "Namespace".into(),
                    }],
                    namespace_resource_whitelist: SITE_KINDS
                        .iter()
                        .filter(|(group, _, _)| {
                            !group.starts_with("source.toolkit")
                                && !group.starts_with("helm.toolkit")
                                && !group.starts_with("kustomize.toolkit")
                        })
                        // Argo CD sites get no Secret: it opens no sealed one.
                        .filter(|(_, kind, _)| *kind != "Namespace" && *kind != "Secret")
                        .map(|(group, kind, _)| GroupKind {
                            group: (*group).into(),
                            kind: (*kind).into(),
                        })
                        .chain(["AppProject", "Application"].map(|kind| GroupKind {
                            group: "argoproj.io".into(),
                            kind: kind.into(),
                        }))
                        .collect(),
                    destination_service_accounts: Vec::new(),
                },
            );
            Ok(vec![
                to_value("AppProject", &project)?,
                canonical(deployer_cluster_role()),
                argocd_application(site, &name, folder, options)?,
            ])
        }
        Delivery::Agent => Ok(Vec::new()),
    }
}

/// The kinds verbund's own (trusted) delivery applies on a site: API group, kind and
/// plural.
#[rustfmt::skip]
pub const SITE_KINDS: [(&str, &str, &str); 18] = [
    ("", "Namespace", "namespaces"),
    ("", "ResourceQuota", "resourcequotas"),
    ("", "LimitRange", "limitranges"),
    ("autoscaling", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ("", "ServiceAccount", "serviceaccounts"),
    ("", "ConfigMap", "configmaps"),
    ("", "Secret", "secrets"),
    ("networking.k8s.io", "NetworkPolicy", "networkpolicies"),
    ("rbac.authorization.k8s.io", "RoleBinding", "rolebindings"),
    ("batch", "Job", "jobs"),
    ("external-secrets.io", "ExternalSecret", "externalsecrets"),
    ("external-secrets.io", "PushSecret", "pushsecrets"),
    ("generators.external-secrets.io", "Password", "passwords"),
    ("source.toolkit.fluxcd.io", "GitRepository", "gitrepositories"),
    ("source.toolkit.fluxcd.io", "HelmRepository", "helmrepositories"),
    ("source.toolkit.fluxcd.io", "OCIRepository", "ocirepositories"),
    ("helm.toolkit.fluxcd.io", "HelmRelease", "helmreleases"),
    ("kustomize.toolkit.fluxcd.io", "Kustomization", "kustomizations"),
];

/// What a Flux site's root and shards act as: every kind verbund renders, and binding
/// exactly the tenant role and the deployer role.
fn site_role(options: &RenderOptions) -> ClusterRole {
    let verbs = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    let mut by_group: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (group, _, plural) in &SITE_KINDS {
        by_group.entry(group).or_default().push(plural);
    }
    let mut rules: Vec<PolicyRule> = by_group
        .into_iter()
        .map(|(group, resources)| PolicyRule {
            api_groups: Some(vec![group.to_string()]),
            resources: Some(resources.into_iter().map(str::to_string).collect()),
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            ..PolicyRule::default()
        })
        .collect();
    let mut bound = vec![options.tenant_cluster_role.clone(), DEPLOYER.to_string()];
    bound.sort();
    bound.dedup();
    rules.push(PolicyRule {
        api_groups: Some(vec!["rbac.authorization.k8s.io".into()]),
        resources: Some(vec!["clusterroles".into()]),
        resource_names: Some(bound),
        verbs: vec!["bind".into()],
        ..PolicyRule::default()
    });
    ClusterRole {
        metadata: meta(SITE_ACCOUNT, None),
        rules: Some(rules),
        ..ClusterRole::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(
            shard_of("jitsi-meet-muenchen-0123456789"),
            shard_of("jitsi-meet-muenchen-0123456789")
        );
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..2000 {
            let s = shard_of(&format!("app-org-{i:010}"));
            assert_eq!(s.len(), 2);
            assert!(s.as_str() < "64", "{s}");
            seen.insert(s);
        }
        assert_eq!(seen.len(), 64, "2,000 bookings fill every shard");
    }
}
