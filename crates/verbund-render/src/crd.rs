//! The custom resources verbund renders, as small serde structs: `k8s-openapi` only
//! knows Kubernetes' own kinds. Each carries only the fields verbund sets.
//!
//! | kind | API | used for |
//! | --- | --- | --- |
//! | [`HelmRelease`] | `helm.toolkit.fluxcd.io/v2` | a booking's Helm chart on Flux and agent sites |
//! | [`HelmRepository`] | `source.toolkit.fluxcd.io/v1` | its chart source for `https://` repositories |
//! | [`OciRepository`] | `source.toolkit.fluxcd.io/v1` | its chart source for `oci://` registries (Flux ≥ 2.6) |
//! | [`GitRepository`] | `source.toolkit.fluxcd.io/v1` | the desired-state repository, in a Flux site's root |
//! | [`Kustomization`] | `kustomize.toolkit.fluxcd.io/v1` | a Flux site's root |
//! | [`Application`] | `argoproj.io/v1alpha1` | a booking's chart, and the app of apps, on Argo CD sites |
//! | [`ExternalSecret`] | `external-secrets.io/v1` | credentials a booking needs, from the secret store |
//! | [`KustomizationFile`] | `kustomize.config.k8s.io/v1beta1` | the `kustomization.yaml` of a site and environment |
//!
//! `ExternalSecret` uses `external-secrets.io/v1`: the External Secrets Operator stopped
//! serving `v1beta1` in v0.17.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value;

macro_rules! custom_resource {
    ($(#[$doc:meta])* $name:ident, $api_version:literal, $kind:literal, $spec:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            pub api_version: &'static str,
            pub kind: &'static str,
            pub metadata: ObjectMeta,
            pub spec: $spec,
        }

        impl $name {
            pub const API_VERSION: &'static str = $api_version;
            pub const KIND: &'static str = $kind;

            pub fn new(metadata: ObjectMeta, spec: $spec) -> Self {
                Self {
                    api_version: Self::API_VERSION,
                    kind: Self::KIND,
                    metadata,
                    spec,
                }
            }
        }
    };
}

custom_resource!(
    /// A Flux Helm release.
    HelmRelease,
    "helm.toolkit.fluxcd.io/v2",
    "HelmRelease",
    HelmReleaseSpec
);
custom_resource!(
    /// A Flux Helm chart repository (`https://`).
    HelmRepository,
    "source.toolkit.fluxcd.io/v1",
    "HelmRepository",
    HelmRepositorySpec
);
custom_resource!(
    /// A Flux OCI artifact source, here a Helm chart in an OCI registry.
    OciRepository,
    "source.toolkit.fluxcd.io/v1",
    "OCIRepository",
    OciRepositorySpec
);
custom_resource!(
    /// A Flux Git source.
    GitRepository,
    "source.toolkit.fluxcd.io/v1",
    "GitRepository",
    GitRepositorySpec
);
custom_resource!(
    /// A Flux kustomization: applies a folder of a source.
    Kustomization,
    "kustomize.toolkit.fluxcd.io/v1",
    "Kustomization",
    KustomizationSpec
);
custom_resource!(
    /// An Argo CD application.
    Application,
    "argoproj.io/v1alpha1",
    "Application",
    ApplicationSpec
);
custom_resource!(
    /// A secret the External Secrets Operator fetches from a secret store.
    ExternalSecret,
    "external-secrets.io/v1",
    "ExternalSecret",
    ExternalSecretSpec
);

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmReleaseSpec {
    pub interval: String,
    /// The chart from a `HelmRepository` (mutually exclusive with `chart_ref`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart: Option<HelmChartTemplate>,
    /// The chart from an `OCIRepository` (mutually exclusive with `chart`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart_ref: Option<SourceReference>,
    pub install: Remediated,
    pub upgrade: Remediated,
    pub values: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HelmChartTemplate {
    pub spec: HelmChartTemplateSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartTemplateSpec {
    pub chart: String,
    pub version: String,
    pub source_ref: SourceReference,
}

/// A reference to a Flux source in the same namespace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceReference {
    pub kind: String,
    pub name: String,
}

/// An install or upgrade step that retries before it gives up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Remediated {
    pub remediation: Remediation,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Remediation {
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HelmRepositorySpec {
    pub interval: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciRepositorySpec {
    pub interval: String,
    pub url: String,
    #[serde(rename = "ref")]
    pub reference: OciReference,
    pub layer_selector: LayerSelector,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OciReference {
    pub tag: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerSelector {
    pub media_type: String,
    pub operation: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GitRepositorySpec {
    pub interval: String,
    pub url: String,
    #[serde(rename = "ref")]
    pub reference: GitReference,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GitReference {
    pub branch: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KustomizationSpec {
    pub interval: String,
    pub path: String,
    pub prune: bool,
    pub source_ref: SourceReference,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    pub project: String,
    pub source: ApplicationSource,
    pub destination: ApplicationDestination,
    pub sync_policy: SyncPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSource {
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    pub target_revision: String,
    /// A Helm chart's name (chart sources).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    /// A folder of the repository (Git sources).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helm: Option<ApplicationSourceHelm>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSourceHelm {
    pub release_name: String,
    pub values_object: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplicationDestination {
    pub server: String,
    pub namespace: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicy {
    pub automated: Automated,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sync_options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Automated {
    pub prune: bool,
    pub self_heal: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretSpec {
    pub refresh_interval: String,
    pub secret_store_ref: SecretStoreReference,
    pub target: ExternalSecretTarget,
    pub data_from: Vec<ExternalSecretDataFrom>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecretStoreReference {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTarget {
    pub name: String,
    pub creation_policy: String,
}

/// Every property stored under one remote key becomes a key of the target secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExternalSecretDataFrom {
    pub extract: RemoteKey,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteKey {
    pub key: String,
}

/// A `kustomization.yaml` (kustomize's own file, not a cluster object).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KustomizationFile {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub resources: Vec<String>,
}

impl KustomizationFile {
    pub fn new(resources: Vec<String>) -> Self {
        Self {
            api_version: "kustomize.config.k8s.io/v1beta1",
            kind: "Kustomization",
            resources,
        }
    }
}
