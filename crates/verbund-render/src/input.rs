//! What the renderer takes (a site, an environment, its placed bookings and the site's
//! conventions) and what it gives back (files of a desired-state repository).

use serde::Serialize;
use verbund_domain::booking::Booking;
use verbund_domain::catalog::{OfferingSpec, Plan, VersionSpec};
use verbund_domain::directory::{Environment, Organisation, SiteSpec};

/// Everything placed on one site's environment.
#[derive(Debug, Clone)]
pub struct RenderInput<'a> {
    pub site: &'a SiteSpec,
    pub environment: Environment,
    /// In any order; the output does not depend on it.
    pub bookings: Vec<PlacedBooking<'a>>,
}

/// A booking with the records it is rendered from.
#[derive(Debug, Clone)]
pub struct PlacedBooking<'a> {
    pub booking: &'a Booking,
    /// The booking organisation; its name makes the namespace readable, its key (ARS,
    /// else AGS, else id) names the tenant's group.
    pub organisation: &'a Organisation,
    pub offering: &'a OfferingSpec,
    /// The version to run. It is authoritative: a rollout renders a new version before
    /// the booking records it.
    pub version: &'a VersionSpec,
    /// The booking's plan (one of the offering's).
    pub plan: &'a Plan,
    /// The bookings this one depends on, of the same organisation and on the same site;
    /// in any order.
    pub dependencies: Vec<&'a Booking>,
}

/// How the federation's sites are set up; the same for every site of a federation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// URL of each site's desired-state Git repository as its engine reaches it; `{site}`
    /// stands for the site's name (e.g. `https://verbund.example/git/{site}.git`, the
    /// repositories verbund serves itself), see [`RenderOptions::repository_for`].
    pub repository_url: String,
    /// The Secret (in Flux's namespace) with the credentials Flux sends to the
    /// repository (`username`, `password`: the site's token), if it needs any.
    pub git_secret: Option<String>,
    /// The branch the engines follow.
    pub branch: String,
    /// Namespace of the ingress controller whose traffic reaches every booking
    /// (matched by its `kubernetes.io/metadata.name` label).
    pub ingress_namespace: String,
    /// Namespace of Flux's controllers, where a Flux site's root lives.
    pub flux_namespace: String,
    /// Namespace of Argo CD, where its applications live.
    pub argocd_namespace: String,
    /// The `ClusterSecretStore` every `ExternalSecret` reads from.
    pub secret_store: String,
    /// The `ClusterRole` bound to the tenant's group in its namespace.
    pub tenant_cluster_role: String,
}

impl RenderOptions {
    /// The defaults for everything but the repository: credentials for Flux in the
    /// Secret `verbund-git`, branch `main`, ingress controller in `ingress-nginx`, Flux in
    /// `flux-system`, Argo CD in `argocd`, secret store `verbund`, tenant role `edit`.
    pub fn new(repository_url: impl Into<String>) -> Self {
        Self {
            repository_url: repository_url.into(),
            git_secret: Some("verbund-git".into()),
            branch: "main".into(),
            ingress_namespace: "ingress-nginx".into(),
            flux_namespace: "flux-system".into(),
            argocd_namespace: "argocd".into(),
            secret_store: "verbund".into(),
            tenant_cluster_role: "edit".into(),
        }
    }
}

impl RenderOptions {
    /// The repository `site`'s engine pulls from: [`RenderOptions::repository_url`]
    /// with `{site}` replaced.
    pub fn repository_for(&self, site: &str) -> String {
        self.repository_url.replace("{site}", site)
    }
}

/// One file of the desired-state repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RenderedFile {
    /// Relative to the repository's root, e.g. `sites/dataport-hh-1/prod/kustomization.yaml`.
    pub path: String,
    /// YAML, one document per object.
    pub content: String,
}

/// The name of an environment in paths and object names.
pub fn environment_name(environment: Environment) -> &'static str {
    match environment {
        Environment::Test => "test",
        Environment::Prod => "prod",
    }
}

/// The folder of a site's environment: `sites/<site>/<environment>`.
pub fn site_folder(site: &str, environment: Environment) -> String {
    format!("sites/{site}/{}", environment_name(environment))
}
