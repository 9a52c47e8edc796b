//! The application of a booking, in the form its site's engine understands, always
//! applied with the booking's own rights (its deployer, see [`crate::tenant`]).
//!
//! | package | Flux site | Argo CD site | agent site |
//! | --- | --- | --- | --- |
//! | Helm, `https://` | `HelmRepository` + `HelmRelease` | `AppProject` + `Application` (chart) | `helm.yaml`¹ |
//! | Helm, `oci://` | `OCIRepository` + `HelmRelease` (`chartRef`) | `AppProject` + `Application`² | `helm.yaml`¹ |
//! | manifests | `app/` + a `Kustomization` of it | `app/` + `AppProject` + `Application` of it | `app/`¹ |
//!
//! ¹ An agent site gets plain objects only: the agent renders `helm.yaml` with
//! `helm template` and applies the result, and applies `app/`, as the deployer.
//! ² Argo CD names OCI Helm repositories without the scheme (`registry/path`); the
//! site's Argo CD must know the registry as an OCI Helm repository (`enableOCI`).
//!
//! The HelmRelease and the Kustomization name the deployer as `serviceAccountName`; the
//! AppProject allows exactly the booking's namespace, no cluster-scoped kind and only the
//! kinds a tenant may own ([`verbund_domain::tenancy::TENANT_KINDS`]), and names the
//! deployer for Argo CD's sync impersonation. For OCI charts Flux's recommended source is
//! an `OCIRepository`, which needs Flux 2.6 or later.
//!
//! Plain manifests are vendor-given objects: each must be of a kind a tenant may own
//! (checked by [`verbund_domain::tenancy::check_tenant_object`], the same function that
//! decided when the version was published), is placed in the booking's namespace
//! (whatever namespace it names) and gets verbund's labels. They live in the booking's
//! `app/` folder, which the booking's own `kustomization.yaml` does not list: the site's
//! trusted delivery never applies vendor content itself.
//!
//! Helm values are the package defaults < the plan < the tenant's configuration, and then
//! the block `verbund` (see [`verbund_values`]), which tenants cannot override.

use serde_json::{json, Map, Value};
use verbund_domain::catalog::{credentials_secret, Package, CHART_SECRET};
use verbund_domain::directory::Delivery;
use verbund_domain::tenancy::{
    check_tenant_object, AgentChart, AgentChartMetadata, AgentChartSpec, TENANT_KINDS,
};

use crate::crd::{
    AppProject, AppProjectSpec, Application, ApplicationDestination, ApplicationSource,
    ApplicationSourceHelm, Automated, DestinationServiceAccount, GroupKind, HelmChartTemplate,
    HelmChartTemplateSpec, HelmRelease, HelmReleaseSpec, HelmRepository, HelmRepositorySpec,
    LayerSelector, OciReference, OciRepository, OciRepositorySpec, ProjectDestination, Remediated,
    Remediation, SourceReference, SyncPolicy, ValuesReference,
};
use crate::error::{Error, Result};
use crate::input::RenderOptions;
use crate::sealed::{without_secrets, SealedSecrets, VALUES_KEY};
use crate::tenant::{Tenant, DEPLOYER};
use crate::values::layered;
use crate::yaml::{canonical, to_value};

/// The Kubernetes API server as seen from inside the cluster.
pub(crate) const IN_CLUSTER: &str = "https://kubernetes.default.svc";

/// The files of a booking's application.
#[derive(Debug, Default)]
pub(crate) struct AppFiles {
    /// `app.yaml`: what the site's engine reconciles to deploy the application (empty on
    /// agent sites).
    pub engine: Vec<Value>,
    /// `app/manifests.yaml`: the vendor's manifests, in the booking's namespace.
    pub manifests: Vec<Value>,
    /// `helm.yaml`: the chart an agent site renders.
    pub agent_chart: Option<Value>,
}

/// The booking's Helm values: package defaults < plan < tenant configuration, then the
/// `verbund` block.
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
    let mut values = layered([defaults, &plan, &config]);
    if let Value::Object(map) = &mut values {
        map.insert("verbund".into(), verbund_values(tenant)?);
    }
    Ok(canonical(values))
}

/// What verbund tells every chart about the booking, under the key `verbund`:
/// `namespace`, `booking`, `organisation` (its key), `credentialsSecretName` (if the
/// offering has credentials) and per dependency (by offering) its `namespace`, `host`
/// (`<offering>.<namespace>.svc.cluster.local`, the Service its chart names after the
/// release) and `credentialsSecretName`. Charts written for verbund read their connections
/// from here. A shared instance's chart also finds its tenant list under `tenants`
/// (see [`crate::tenant_list`]).
pub(crate) fn verbund_values(tenant: &Tenant<'_>) -> Result<Value> {
    let placed = tenant.placed;
    let dependencies: Map<String, Value> = tenant
        .dependencies
        .iter()
        .map(|(offering, namespace)| {
            (
                offering.clone(),
                json!({
                    "namespace": namespace,
                    "host": format!("{offering}.{namespace}.svc.cluster.local"),
                    "credentialsSecretName": credentials_secret(offering),
                }),
            )
        })
        .collect();
    let mut block = json!({
        "namespace": tenant.namespace,
        "booking": placed.booking.id,
        "organisation": tenant.organisation_key,
        "dependencies": dependencies,
    });
    if placed.offering.credentials {
        if let Value::Object(map) = &mut block {
            let secret = credentials_secret(&placed.offering.name);
            map.insert("credentialsSecretName".into(), json!(secret));
        }
    }
    if let (Some(tenants), Value::Object(map)) = (crate::tenant_list::values(tenant)?, &mut block) {
        map.insert("tenants".into(), tenants);
    }
    Ok(block)
}

/// The application files of a booking whose folder is `folder`, for its site's delivery
/// mode.
///
/// `secrets`: the booking's sealed secrets, if it has any (see [`crate::sealed`]); a
/// chart gets them through the Secret [`CHART_SECRET`], and their paths are taken out
/// of its values.
pub(crate) fn application(
    tenant: &Tenant<'_>,
    site: &str,
    folder: &str,
    delivery: Delivery,
    options: &RenderOptions,
    secrets: Option<&SealedSecrets>,
) -> Result<AppFiles> {
    let placed = tenant.placed;
    match &placed.version.package {
        Package::Helm {
            repository,
            chart,
            chart_version,
            values,
        } => {
            let mut values = helm_values(tenant, values)?;
            let secret = secrets.filter(|s| s.document.is_some());
            if let Some(s) = secret {
                without_secrets(&mut values, &s.pointers);
            }
            let secret = secret.map(|_| CHART_SECRET.to_string());
            let chart = HelmChart {
                repository,
                chart,
                version: chart_version,
            };
            Ok(match delivery {
                Delivery::Flux => AppFiles {
                    engine: flux_helm(tenant, &chart, values, secret)?,
                    ..AppFiles::default()
                },
                Delivery::Argocd => AppFiles {
                    engine: argocd(tenant, site, Source::Chart(&chart, values), options)?,
                    ..AppFiles::default()
                },
                Delivery::Agent => AppFiles {
                    agent_chart: Some(agent_chart(tenant, &chart, values, secret)?),
                    ..AppFiles::default()
                },
            })
        }
        Package::Manifests {
            manifests,
            scale_target,
            ..
        } => {
            // The autoscaler owns the replicas of what it scales: a count in the manifest
            // would be set back by every reconcile and fight it.
            let scaled = scale_target
                .as_deref()
                .filter(|_| tenant.placed.plan.autoscaling.is_some());
            let manifests = manifests
                .iter()
                .enumerate()
                .map(|(index, manifest)| {
                    let mut object = namespaced(tenant, index, manifest)?;
                    if scaled.is_some_and(|name| is_workload_named(&object, name)) {
                        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                            spec.remove("replicas");
                        }
                    }
                    Ok(object)
                })
                .collect::<Result<Vec<_>>>()?;
            let path = format!("{folder}/app");
            let engine = match delivery {
                Delivery::Flux => vec![flux_manifests(tenant, &path, options)?],
                Delivery::Argocd => argocd(tenant, site, Source::Folder(&path), options)?,
                Delivery::Agent => Vec::new(),
            };
            Ok(AppFiles {
                engine,
                manifests,
                agent_chart: None,
            })
        }
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

    /// The repository as Argo CD names it: OCI registries without the scheme.
    fn argocd_repository(&self) -> String {
        self.oci()
            .map_or(self.repository, |r| r.trim_end_matches('/'))
            .to_string()
    }
}

/// A Helm release name (at most 53 characters) for the offering.
fn release_name(offering: &str) -> String {
    offering
        .chars()
        .take(53)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

fn flux_helm(
    tenant: &Tenant<'_>,
    chart: &HelmChart<'_>,
    values: Value,
    secret: Option<String>,
) -> Result<Vec<Value>> {
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
                namespace: None,
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
                        namespace: None,
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
            service_account_name: DEPLOYER.into(),
            values,
            values_from: secret
                .into_iter()
                .map(|name| ValuesReference {
                    kind: "Secret".into(),
                    name,
                    values_key: VALUES_KEY.into(),
                })
                .collect(),
        },
    );
    Ok(vec![source, to_value("HelmRelease", &release)?])
}

/// A Flux Kustomization in the booking's namespace that applies the booking's `app/`
/// folder as its deployer, from its shard's Git source in Flux's namespace (which holds
/// only the shard's bookings, see `root::shard_ignore`).
fn flux_manifests(tenant: &Tenant<'_>, path: &str, options: &RenderOptions) -> Result<Value> {
    let source = crate::root::shard_name(
        tenant.placed.booking.environment,
        &crate::root::shard_of(&tenant.namespace),
    );
    crate::root::flux_kustomization(
        tenant.meta(&tenant.placed.offering.name),
        path,
        (&source, Some(&options.flux_namespace)),
        DEPLOYER,
        Some(&tenant.namespace),
    )
}

fn agent_chart(
    tenant: &Tenant<'_>,
    chart: &HelmChart<'_>,
    values: Value,
    values_secret: Option<String>,
) -> Result<Value> {
    let file = AgentChart {
        api_version: AgentChart::API_VERSION.into(),
        kind: AgentChart::KIND.into(),
        metadata: AgentChartMetadata {
            name: release_name(&tenant.placed.offering.name),
            namespace: tenant.namespace.clone(),
        },
        spec: AgentChartSpec {
            repository: chart.repository.to_string(),
            chart: chart.chart.to_string(),
            version: chart.version.to_string(),
            service_account_name: DEPLOYER.into(),
            values,
            values_secret,
        },
    };
    to_value(AgentChart::FILE, &file)
}

/// What an Argo CD application of a booking deploys.
enum Source<'a> {
    /// A Helm chart with the booking's values.
    Chart(&'a HelmChart<'a>, Value),
    /// A folder of the site's desired-state repository.
    Folder(&'a str),
}

/// The booking's AppProject (its namespace only, the tenant kinds only) and its
/// Application in it.
fn argocd(
    tenant: &Tenant<'_>,
    site: &str,
    source: Source<'_>,
    options: &RenderOptions,
) -> Result<Vec<Value>> {
    let offering = &tenant.placed.offering.name;
    let in_argocd = |annotations: Option<Vec<(&str, &str)>>| {
        let mut metadata = tenant.meta(&tenant.namespace);
        metadata.namespace = Some(options.argocd_namespace.clone());
        metadata.annotations = annotations.map(|a| {
            a.into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        });
        metadata
    };
    let (source_repo, application_source) = match source {
        Source::Chart(chart, values) => (
            chart.argocd_repository(),
            ApplicationSource {
                repo_url: chart.argocd_repository(),
                target_revision: chart.version.to_string(),
                chart: Some(chart.chart.to_string()),
                path: None,
                helm: Some(ApplicationSourceHelm {
                    release_name: release_name(offering),
                    values_object: values,
                }),
            },
        ),
        Source::Folder(path) => (
            options.repository_for(site),
            ApplicationSource {
                repo_url: options.repository_for(site),
                target_revision: options.branch.clone(),
                chart: None,
                path: Some(path.to_string()),
                helm: None,
            },
        ),
    };
    let project = AppProject::new(
        in_argocd(None),
        AppProjectSpec {
            description: format!("booking {} of {offering}", tenant.placed.booking.id),
            source_repos: vec![source_repo],
            destinations: vec![ProjectDestination {
                server: IN_CLUSTER.into(),
                namespace: tenant.namespace.clone(),
            }],
            cluster_resource_whitelist: Vec::new(),
            namespace_resource_whitelist: TENANT_KINDS
                .iter()
                .map(|k| GroupKind {
                    group: k.group.to_string(),
                    kind: k.kind.to_string(),
                })
                .collect(),
            destination_service_accounts: vec![DestinationServiceAccount {
                server: IN_CLUSTER.into(),
                namespace: tenant.namespace.clone(),
                default_service_account: DEPLOYER.into(),
            }],
        },
    );
    // Deleting the application deletes what it deployed, like a Flux HelmRelease; it
    // comes after the namespace, its quota and policies (wave 0).
    let mut metadata = in_argocd(Some(vec![("argocd.argoproj.io/sync-wave", "1")]));
    metadata.finalizers = Some(vec!["resources-finalizer.argocd.argoproj.io".into()]);
    let application = Application::new(
        metadata,
        crate::crd::ApplicationSpec {
            project: tenant.namespace.clone(),
            source: application_source,
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
    Ok(vec![
        to_value("AppProject", &project)?,
        to_value("Application", &application)?,
    ])
}

/// A vendor's manifest, checked, in the booking's namespace and with verbund's labels.
/// Whether `object` is the Deployment or StatefulSet `name` (an autoscaler's target).
fn is_workload_named(object: &Value, name: &str) -> bool {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    text("/apiVersion") == Some("apps/v1")
        && matches!(text("/kind"), Some("Deployment" | "StatefulSet"))
        && text("/metadata/name") == Some(name)
}

fn namespaced(tenant: &Tenant<'_>, index: usize, manifest: &Value) -> Result<Value> {
    let booking = &tenant.placed.booking.id;
    check_tenant_object(manifest).map_err(|refusal| Error::ForbiddenManifest {
        booking: booking.clone(),
        index,
        reason: refusal.to_string(),
    })?;
    let forbidden = |reason: &str| Error::ForbiddenManifest {
        booking: booking.clone(),
        index,
        reason: reason.to_string(),
    };
    let mut object = manifest
        .as_object()
        .cloned()
        .ok_or_else(|| forbidden("a manifest must be an object"))?;
    let Some(Value::Object(metadata)) = object.get_mut("metadata") else {
        return Err(forbidden("`metadata` must be an object"));
    };
    metadata.insert("namespace".into(), Value::String(tenant.namespace.clone()));
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(labels) = labels else {
        return Err(forbidden("`metadata.labels` must be an object"));
    };
    for (key, value) in tenant.manifest_labels() {
        labels.insert(key, Value::String(value));
    }
    Ok(canonical(Value::Object(object)))
}
