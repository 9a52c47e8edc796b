//! The entry points of a site's environment: `kustomization.yaml`, which lists every
//! booking folder (each with its own `kustomization.yaml`) and is what each engine builds, and `root.yaml`, which an operator
//! applies once to point the site's engine at it.
//!
//! - Flux: a `GitRepository` `verbund` for the desired-state repository and a
//!   `Kustomization` `verbund-<environment>` applying `sites/<site>/<environment>`,
//!   pruning what disappears.
//! - Argo CD: an app of apps, the `Application` `verbund-<environment>` syncing
//!   `sites/<site>/<environment>` (automated, prune, self-heal); the booking
//!   `Application`s it finds there deploy the charts.
//! - agent: no `root.yaml`; the agent builds `kustomization.yaml` itself.
//!
//! `root.yaml` sits beside `kustomization.yaml` but is not listed in it, so the engine
//! never manages its own entry point.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use verbund_domain::directory::{Delivery, Environment};

use crate::app::IN_CLUSTER;
use crate::crd::{
    Application, ApplicationDestination, ApplicationSource, ApplicationSpec, Automated,
    GitReference, GitRepository, GitRepositorySpec, Kustomization, KustomizationFile,
    KustomizationSpec, SourceReference, SyncPolicy,
};
use crate::error::{Error, Result};
use crate::input::{environment_name, RenderOptions};
use crate::yaml::to_value;

/// A `kustomization.yaml` listing `resources` (paths relative to its folder).
pub(crate) fn kustomization(resources: Vec<String>) -> Result<Value> {
    to_value("kustomization.yaml", &KustomizationFile::new(resources))
}

/// The objects of `root.yaml`, or none for agent sites.
pub(crate) fn root(
    folder: &str,
    environment: Environment,
    delivery: Delivery,
    options: &RenderOptions,
) -> Result<Vec<Value>> {
    let name = format!("verbund-{}", environment_name(environment));
    let meta = |name: &str, namespace: &str| ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(
            [(
                "app.kubernetes.io/managed-by".to_string(),
                "verbund".to_string(),
            )]
            .into_iter()
            .collect(),
        ),
        ..ObjectMeta::default()
    };
    match delivery {
        Delivery::Flux => {
            let url = &options.repository_url;
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
            let ns = &options.flux_namespace;
            let source = GitRepository::new(
                meta("verbund", ns),
                GitRepositorySpec {
                    interval: "1m".into(),
                    url: options.repository_url.clone(),
                    reference: GitReference {
                        branch: options.branch.clone(),
                    },
                },
            );
            let kustomization = Kustomization::new(
                meta(&name, ns),
                KustomizationSpec {
                    interval: "10m".into(),
                    path: format!("./{folder}"),
                    prune: true,
                    source_ref: SourceReference {
                        kind: GitRepository::KIND.into(),
                        name: "verbund".into(),
                    },
                },
            );
            Ok(vec![
                to_value("GitRepository", &source)?,
                to_value("Kustomization", &kustomization)?,
            ])
        }
        Delivery::Argocd => {
            let ns = &options.argocd_namespace;
            let app = Application::new(
                meta(&name, ns),
                ApplicationSpec {
                    project: options.argocd_project.clone(),
                    source: ApplicationSource {
                        repo_url: options.repository_url.clone(),
                        target_revision: options.branch.clone(),
                        chart: None,
                        path: Some(folder.to_string()),
                        helm: None,
                    },
                    destination: ApplicationDestination {
                        server: IN_CLUSTER.into(),
                        namespace: ns.clone(),
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
            Ok(vec![to_value("Application", &app)?])
        }
        Delivery::Agent => Ok(Vec::new()),
    }
}
