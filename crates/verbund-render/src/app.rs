//! The application of a booking, in the form its site's engine understands.
//!
//! | package | Flux site | Argo CD site | agent site |
//! | --- | --- | --- | --- |
//! | Helm, `https://` | `HelmRepository` + `HelmRelease` | `Application` (chart source) | as Flux¹ |
//! | Helm, `oci://` | `OCIRepository` + `HelmRelease` (`chartRef`) | `Application`² | as Flux¹ |
//! | manifests | the manifests, in the booking's namespace | the same | the same |
//!
//! ¹ Only where the agent runs Flux's source- and helm-controllers
//! ([`RenderOptions::agent_runs_helm_controller`]); otherwise refused.
//! ² Argo CD names OCI Helm repositories without the scheme (`registry/path`); the
//! site's Argo CD must know the registry as an OCI Helm repository (`enableOCI`).
//!
//! For OCI charts Flux's recommended source is an `OCIRepository` (its `HelmRepository`
//! of `type: oci` is in maintenance), which needs Flux 2.6 or later.
//!
//! Plain manifests are vendor-given objects: each is placed in the booking's namespace
//! (whatever namespace it names) and gets verbund's labels; `Secret`s, lists and
//! cluster-scoped kinds are refused, and so are `ConfigMap` entries that look like
//! secrets (see [`crate::secrets`]). Tenant configuration and plan values do not reach
//! plain manifests: they have no values to fill.

use serde_json::{Map, Value};
use verbund_domain::catalog::Package;
use verbund_domain::directory::Delivery;

use crate::crd::{
    Application, ApplicationDestination, ApplicationSource, ApplicationSourceHelm, Automated,
    HelmChartTemplate, HelmChartTemplateSpec, HelmRelease, HelmReleaseSpec, HelmRepository,
    HelmRepositorySpec, LayerSelector, OciReference, OciRepository, OciRepositorySpec, Remediated,
    Remediation, SourceReference, SyncPolicy,
};
use crate::error::{Error, Result};
use crate::input::RenderOptions;
use crate::secrets::find_literal_secret;
use crate::tenant::Tenant;
use crate::values::layered;
use crate::yaml::{canonical, to_value};

/// The Kubernetes API server as seen from inside the cluster.
pub(crate) const IN_CLUSTER: &str = "https://kubernetes.default.svc";

/// Kinds that are not namespaced, so a tenant's package must not carry them.
const CLUSTER_SCOPED: [&str; 22] = [
    "APIService",
    "CSIDriver",
    "CertificateSigningRequest",
    "ClusterExternalSecret",
    "ClusterIssuer",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterSecretStore",
    "CustomResourceDefinition",
    "FlowSchema",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
];

/// The booking's Helm values: package defaults < plan < tenant configuration.
pub(crate) fn helm_values(tenant: &Tenant<'_>, defaults: &Value) -> Result<Value> {
    let placed = tenant.placed;
    let config = match &placed.booking.config {
        Value::Null => Value::Object(Map::new()),
        config @ Value::Object(_) => config.clone(),
        _ => {
            return Err(Error::ConfigNotObject {
                booking: placed.booking.id.clone(),
            })
        }
    };
    let plan = crate::resources::plan_values(placed.plan);
    Ok(canonical(layered([defaults, &plan, &config])))
}

/// The application objects of a booking, for its site's delivery mode.
pub(crate) fn application(
    tenant: &Tenant<'_>,
    delivery: Delivery,
    options: &RenderOptions,
) -> Result<Vec<Value>> {
    let placed = tenant.placed;
    let booking = &placed.booking.id;
    match &placed.version.package {
        Package::Helm {
            repository,
            chart,
            chart_version,
            values,
        } => {
            let values = helm_values(tenant, values)?;
            let chart = HelmChart {
                repository,
                chart,
                version: chart_version,
            };
            match delivery {
                Delivery::Flux => flux(tenant, &chart, values),
                Delivery::Agent if options.agent_runs_helm_controller => {
                    flux(tenant, &chart, values)
                }
                Delivery::Agent => Err(Error::Unsupported {
                    booking: booking.clone(),
                    message:
                        "the package is a Helm chart, and the site's agent runs no Helm controller"
                            .into(),
                }),
                Delivery::Argocd => argocd(tenant, &chart, values, options),
            }
        }
        Package::Manifests { manifests } => manifests
            .iter()
            .enumerate()
            .map(|(index, manifest)| namespaced(tenant, index, manifest))
            .collect(),
    }
}

struct HelmChart<'a> {
    repository: &'a str,
    chart: &'a str,
    version: &'a str,
}

impl HelmChart<'_> {
    fn oci(&self) -> Option<&str> {
        self.repository.strip_prefix("oci://")
    }
}

fn flux(tenant: &Tenant<'_>, chart: &HelmChart<'_>, values: Value) -> Result<Vec<Value>> {
    let name = &tenant.placed.offering.name;
    let remediated = || Remediated {
        remediation: Remediation { retries: 3 },
    };
    let (source, chart_template, chart_ref) = match chart.oci() {
        Some(registry) => {
            let source = OciRepository::new(
                tenant.meta(name),
                OciRepositorySpec {
                    interval: "1h".into(),
                    url: format!("oci://{}/{}", registry.trim_end_matches('/'), chart.chart),
                    reference: OciReference {
                        tag: chart.version.to_string(),
                    },
                    layer_selector: LayerSelector {
                        media_type: "application/vnd.cncf.helm.chart.content.v1.tar+gzip".into(),
                        operation: "copy".into(),
                    },
                },
            );
            let reference = SourceReference {
                kind: OciRepository::KIND.into(),
                name: name.clone(),
            };
            (to_value("OCIRepository", &source)?, None, Some(reference))
        }
        None => {
            let source = HelmRepository::new(
                tenant.meta(name),
                HelmRepositorySpec {
                    interval: "1h".into(),
                    url: chart.repository.to_string(),
                },
            );
            let template = HelmChartTemplate {
                spec: HelmChartTemplateSpec {
                    chart: chart.chart.to_string(),
                    version: chart.version.to_string(),
                    source_ref: SourceReference {
                        kind: HelmRepository::KIND.into(),
                        name: name.clone(),
                    },
                },
            };
            (to_value("HelmRepository", &source)?, Some(template), None)
        }
    };
    let release = HelmRelease::new(
        tenant.meta(name),
        HelmReleaseSpec {
            interval: "10m".into(),
            chart: chart_template,
            chart_ref,
            install: remediated(),
            upgrade: remediated(),
            values,
        },
    );
    Ok(vec![source, to_value("HelmRelease", &release)?])
}

fn argocd(
    tenant: &Tenant<'_>,
    chart: &HelmChart<'_>,
    values: Value,
    options: &RenderOptions,
) -> Result<Vec<Value>> {
    let offering = &tenant.placed.offering.name;
    let mut metadata = tenant.meta(&tenant.namespace);
    metadata.namespace = Some(options.argocd_namespace.clone());
    // Deleting the application deletes what it deployed, like a Flux HelmRelease.
    metadata.finalizers = Some(vec!["resources-finalizer.argocd.argoproj.io".into()]);
    // After the namespace, its quota and policies (wave 0) exist.
    metadata.annotations = Some(
        [("argocd.argoproj.io/sync-wave".to_string(), "1".to_string())]
            .into_iter()
            .collect(),
    );
    let application = Application::new(
        metadata,
        crate::crd::ApplicationSpec {
            project: options.argocd_project.clone(),
            source: ApplicationSource {
                repo_url: chart
                    .oci()
                    .map_or(chart.repository, |r| r.trim_end_matches('/'))
                    .to_string(),
                target_revision: chart.version.to_string(),
                chart: Some(chart.chart.to_string()),
                path: None,
                helm: Some(ApplicationSourceHelm {
                    // Helm release names are at most 53 characters.
                    release_name: offering
                        .chars()
                        .take(53)
                        .collect::<String>()
                        .trim_end_matches('-')
                        .to_string(),
                    values_object: values,
                }),
            },
            destination: ApplicationDestination {
                server: IN_CLUSTER.into(),
                namespace: tenant.namespace.clone(),
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
    Ok(vec![to_value("Application", &application)?])
}

/// A vendor's manifest, checked, in the booking's namespace and with verbund's labels.
fn namespaced(tenant: &Tenant<'_>, index: usize, manifest: &Value) -> Result<Value> {
    let booking = &tenant.placed.booking.id;
    let forbidden = |reason: String| Error::ForbiddenManifest {
        booking: booking.clone(),
        index,
        reason,
    };
    let Value::Object(object) = manifest else {
        return Err(forbidden("a manifest must be an object".into()));
    };
    let text = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (Some(_), Some(kind)) = (text("apiVersion"), text("kind")) else {
        return Err(forbidden("a manifest needs `apiVersion` and `kind`".into()));
    };
    if kind == "Secret" {
        return Err(Error::SecretManifest {
            booking: booking.clone(),
            index,
        });
    }
    if kind.ends_with("List") {
        return Err(forbidden(format!(
            "`{kind}` is a list; give its items one by one"
        )));
    }
    if CLUSTER_SCOPED.contains(&kind) {
        return Err(forbidden(format!(
            "`{kind}` is cluster-scoped; a booking only gets its own namespace"
        )));
    }
    if kind == "ConfigMap" {
        for field in ["data", "binaryData"] {
            if let Some(pointer) = object.get(field).and_then(find_literal_secret) {
                return Err(Error::SecretValue {
                    booking: booking.clone(),
                    pointer: format!("/package/manifests/{index}/{field}{pointer}"),
                });
            }
        }
    }
    let mut object = object.clone();
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(metadata) = metadata else {
        return Err(forbidden("`metadata` must be an object".into()));
    };
    if metadata
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(forbidden("a manifest needs `metadata.name`".into()));
    }
    metadata.insert("namespace".into(), Value::String(tenant.namespace.clone()));
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(labels) = labels else {
        return Err(forbidden("`metadata.labels` must be an object".into()));
    };
    for (key, value) in tenant.manifest_labels() {
        labels.insert(key, Value::String(value));
    }
    Ok(canonical(Value::Object(object)))
}
