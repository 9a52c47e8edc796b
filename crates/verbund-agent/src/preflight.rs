//! `verbund agent preflight`: can this cluster run what verbund's desired state needs?
//!
//! A site's operator runs it before verbund places bookings there, and verbund keeps the
//! result: a site whose last preflight failed gets no new bookings. Three steps:
//!
//! 1. [`observe`] reads the facts: the API server's version, which custom resources are
//!    served (discovery), the `ClusterSecretStore`, the `IngressClass`, the ClusterRoles
//!    bookings bind, and whether NetworkPolicy is enforced — proven by [`probe`], which
//!    runs pods in a temporary namespace, never assumed from the CNI's name.
//! 2. [`judge`] turns the facts into one [`PreflightCheck`] per check, each with a
//!    verdict and a sentence the operator can act on. It is pure and tested without a
//!    cluster; so is every object the probe creates.
//! 3. The command line prints the checks and reports them to the control plane
//!    ([`crate::sender`]), which judges the whole by the domain's
//!    [`overall`](verbund_domain::preflight::overall).
//!
//! | check | passes when |
//! | --- | --- |
//! | `kubernetes-version` | the server runs 1.[`SUPPORTED_MINORS`] and the site's declared minor (a newer cluster than declared warns, an older one fails) |
//! | `custom-resources` | every kind of [`required_apis`] for the site's delivery mode is served at its version |
//! | `secret-store` | the `ClusterSecretStore` the renderer names exists and is `Ready=True` |
//! | `ingress-class` | the `IngressClass` bookings' ingresses name exists |
//! | `tenant-role` | the ClusterRole bound to each booking's tenant group exists |
//! | `deployer-role` | the ClusterRole `verbund-deployer` exists |
//! | `network-policy` | the probe's allowed client connects and its denied client does not |

pub mod probe;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::ops::RangeInclusive;

use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;
use serde_json::Value;
use verbund_domain::directory::Delivery;
use verbund_domain::preflight::{PreflightCheck, PreflightReport, PreflightVerdict};
use verbund_domain::tenancy::DEPLOYER;

use crate::report::AGENT_NAME;
pub use probe::{Connection, Outcome, ProbeSettings};

/// The Kubernetes minor versions verbund supports, all of major version 1: what the
/// renderer's objects and the agent's client are tested against, with room for the
/// releases of the next two years.
pub const SUPPORTED_MINORS: RangeInclusive<u16> = 30..=37;

/// The checks' names, as reported.
pub const KUBERNETES_VERSION: &str = "kubernetes-version";
pub const CUSTOM_RESOURCES: &str = "custom-resources";
pub const SECRET_STORE: &str = "secret-store";
pub const INGRESS_CLASS: &str = "ingress-class";
pub const TENANT_ROLE: &str = "tenant-role";
pub const DEPLOYER_ROLE: &str = "deployer-role";
pub const NETWORK_POLICY: &str = "network-policy";

/// A custom resource the desired state uses, and what installs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequiredApi {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// What an operator installs to get it.
    pub provided_by: &'static str,
}

impl RequiredApi {
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

const fn api(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    provided_by: &'static str,
) -> RequiredApi {
    RequiredApi {
        group,
        version,
        kind,
        provided_by,
    }
}

const ESO: &str = "the External Secrets Operator (0.16 or later)";
const FLUX: &str = "Flux (2.6 or later)";
const ARGOCD: &str = "Argo CD";

/// What every site needs: credentials come from the secret store or are generated at
/// the site and pushed into it.
#[rustfmt::skip]
pub const EVERY_SITE: [RequiredApi; 3] = [
    api("external-secrets.io", "v1", "ExternalSecret", ESO),
    api("external-secrets.io", "v1alpha1", "PushSecret", ESO),
    api("generators.external-secrets.io", "v1alpha1", "Password", ESO),
];

/// What a Flux site needs besides: its root's source and Kustomizations, and each
/// booking's chart source and HelmRelease.
#[rustfmt::skip]
pub const FLUX_SITE: [RequiredApi; 5] = [
    api("source.toolkit.fluxcd.io", "v1", "GitRepository", FLUX),
    api("source.toolkit.fluxcd.io", "v1", "HelmRepository", FLUX),
    api("source.toolkit.fluxcd.io", "v1", "OCIRepository", FLUX),
    api("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", FLUX),
    api("helm.toolkit.fluxcd.io", "v2", "HelmRelease", FLUX),
];

/// What an Argo CD site needs besides: the root's and each booking's Application and
/// AppProject.
#[rustfmt::skip]
pub const ARGOCD_SITE: [RequiredApi; 2] = [
    api("argoproj.io", "v1alpha1", "Application", ARGOCD),
    api("argoproj.io", "v1alpha1", "AppProject", ARGOCD),
];

/// The `ClusterSecretStore` kind, which the secret-store check reads.
const CLUSTER_SECRET_STORE: RequiredApi =
    api("external-secrets.io", "v1", "ClusterSecretStore", ESO);

/// The custom resources a site of `delivery` needs (an agent site gets plain objects).
pub fn required_apis(delivery: Delivery) -> Vec<&'static RequiredApi> {
    let extra: &'static [RequiredApi] = match delivery {
        Delivery::Flux => &FLUX_SITE,
        Delivery::Argocd => &ARGOCD_SITE,
        Delivery::Agent => &[],
    };
    EVERY_SITE.iter().chain(extra).collect()
}

/// What to check for, from the command line and the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub delivery: Delivery,
    /// The site's declared Kubernetes minor version (e.g. `1.31`), when known.
    pub declared_kubernetes: Option<String>,
    /// The `ClusterSecretStore` every `ExternalSecret` reads from (the renderer's
    /// `RenderOptions::secret_store`, default `verbund`).
    pub secret_store: String,
    /// The `IngressClass` bookings' ingresses use (default `nginx`).
    pub ingress_class: String,
    /// The ClusterRole bound to each booking's tenant group (the renderer's
    /// `RenderOptions::tenant_cluster_role`, default `edit`).
    pub tenant_role: String,
    pub probe: ProbeSettings,
}

/// One object looked up by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    Missing,
    /// The API refused or failed; the sentence says why.
    Unreadable(String),
}

/// The API server's version, as `/version` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    /// e.g. `v1.36.3`.
    pub git_version: String,
    pub major: String,
    /// e.g. `36` (some distributions append `+`).
    pub minor: String,
}

/// The `Ready` condition of a `ClusterSecretStore`, if it has one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Readiness {
    /// `True`, `False` or `Unknown`; `None` when the store has no `Ready` condition yet.
    pub status: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// Everything the checks judge, as read from the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub version: Result<ServerVersion, String>,
    /// The kinds served per API group version (`group/version`): empty when the group
    /// version is not served at all, an error when discovery failed.
    pub served: BTreeMap<String, Result<BTreeSet<String>, String>>,
    pub secret_store: Lookup<Readiness>,
    pub ingress_class: Lookup<()>,
    pub tenant_role: Lookup<()>,
    pub deployer_role: Lookup<()>,
    pub network_policy: Outcome,
}

fn check(name: &str, verdict: PreflightVerdict, reason: String) -> PreflightCheck {
    PreflightCheck {
        name: name.to_string(),
        verdict,
        reason: one_line(&reason),
    }
}

/// `text` on one line and at most 900 characters, as the control plane accepts reasons.
pub(crate) fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= 900 {
        flat
    } else {
        let mut cut: String = flat.chars().take(899).collect();
        cut.push('…');
        cut
    }
}

fn window() -> String {
    format!(
        "1.{} to 1.{}",
        SUPPORTED_MINORS.start(),
        SUPPORTED_MINORS.end()
    )
}

/// The leading number of a minor version (`36`, `36+`, `1.36` → 36).
fn minor_number(text: &str) -> Option<u16> {
    let text = text.trim().strip_prefix("1.").unwrap_or(text.trim());
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `kubernetes-version`: in the supported window, and what the site declares.
pub fn judge_version(
    observed: &Result<ServerVersion, String>,
    declared: Option<&str>,
) -> PreflightCheck {
    use PreflightVerdict::*;
    let v = match observed {
        Ok(v) => v,
        Err(e) => {
            return check(
                KUBERNETES_VERSION,
                Fail,
                format!("cannot read the API server's version: {e}"),
            )
        }
    };
    let minor = match (v.major.trim(), minor_number(&v.minor)) {
        ("1", Some(m)) => m,
        _ => {
            return check(
                KUBERNETES_VERSION,
                Fail,
                format!(
                    "the API server reports version `{}`, which is not a Kubernetes release verbund supports ({})",
                    v.git_version,
                    window()
                ),
            )
        }
    };
    if !SUPPORTED_MINORS.contains(&minor) {
        return check(
            KUBERNETES_VERSION,
            Fail,
            format!(
                "Kubernetes {} is outside the supported {}; upgrade the cluster",
                v.git_version,
                window()
            ),
        );
    }
    let Some(declared) = declared else {
        return check(
            KUBERNETES_VERSION,
            Warn,
            format!(
                "Kubernetes {} is supported ({}), but the site's declared version is unknown here, so it was not compared",
                v.git_version,
                window()
            ),
        );
    };
    match minor_number(declared) {
        Some(d) if d == minor => check(
            KUBERNETES_VERSION,
            Pass,
            format!(
                "Kubernetes {} is supported ({}) and matches the site's declared {declared}",
                v.git_version,
                window()
            ),
        ),
        Some(d) if minor < d => check(
            KUBERNETES_VERSION,
            Fail,
            format!(
                "the cluster runs Kubernetes {} but the site declares {declared}, so placement would send it offerings that need 1.{d}; upgrade the cluster or correct the site's kubernetes_version",
                v.git_version
            ),
        ),
        Some(_) => check(
            KUBERNETES_VERSION,
            Warn,
            format!(
                "the cluster runs Kubernetes {} but the site declares {declared}; set the site's kubernetes_version to 1.{minor} so that placement sees what the cluster offers",
                v.git_version
            ),
        ),
        None => check(
            KUBERNETES_VERSION,
            Warn,
            format!(
                "Kubernetes {} is supported ({}), but the site's declared version `{declared}` is not a minor version like `1.{minor}`",
                v.git_version,
                window()
            ),
        ),
    }
}

/// Whether `api` is served, per the discovery facts: `Err` when discovery failed.
fn is_served(
    facts: &BTreeMap<String, Result<BTreeSet<String>, String>>,
    api: &RequiredApi,
) -> Result<bool, String> {
    match facts.get(&api.api_version()) {
        Some(Ok(kinds)) => Ok(kinds.contains(api.kind)),
        Some(Err(e)) => Err(e.clone()),
        None => Err(format!("`{}` was not looked up", api.api_version())),
    }
}

fn delivery_name(d: Delivery) -> &'static str {
    match d {
        Delivery::Flux => "Flux",
        Delivery::Argocd => "Argo CD",
        Delivery::Agent => "agent",
    }
}

/// `custom-resources`: every kind the delivery mode needs is served at its version.
pub fn judge_apis(
    delivery: Delivery,
    facts: &BTreeMap<String, Result<BTreeSet<String>, String>>,
) -> PreflightCheck {
    use PreflightVerdict::*;
    let required = required_apis(delivery);
    let mut missing = Vec::new();
    let mut unreadable = Vec::new();
    let mut install = BTreeSet::new();
    for api in &required {
        match is_served(facts, api) {
            Ok(true) => {}
            Ok(false) => {
                missing.push(format!("{} {}", api.api_version(), api.kind));
                install.insert(api.provided_by);
            }
            Err(e) => unreadable.push(format!("{} ({e})", api.api_version())),
        }
    }
    if !unreadable.is_empty() {
        unreadable.dedup();
        return check(
            CUSTOM_RESOURCES,
            Fail,
            format!("cannot discover the served APIs: {}", unreadable.join(", ")),
        );
    }
    if missing.is_empty() {
        return check(
            CUSTOM_RESOURCES,
            Pass,
            format!(
                "all {} custom resources a {} site needs are served",
                required.len(),
                delivery_name(delivery)
            ),
        );
    }
    check(
        CUSTOM_RESOURCES,
        Fail,
        format!(
            "not served: {}; install {}",
            missing.join(", "),
            install.into_iter().collect::<Vec<_>>().join(" and ")
        ),
    )
}

/// `secret-store`: the `ClusterSecretStore` exists and is `Ready=True`.
pub fn judge_secret_store(
    name: &str,
    served_apis: &BTreeMap<String, Result<BTreeSet<String>, String>>,
    store: &Lookup<Readiness>,
) -> PreflightCheck {
    use PreflightVerdict::*;
    match is_served(served_apis, &CLUSTER_SECRET_STORE) {
        Ok(true) => {}
        Ok(false) => {
            return check(
                SECRET_STORE,
                Fail,
                format!(
                    "ClusterSecretStore (external-secrets.io/v1) is not served, so bookings' credentials have nowhere to come from; install {ESO} and create the ClusterSecretStore `{name}`"
                ),
            )
        }
        Err(e) => {
            return check(
                SECRET_STORE,
                Fail,
                format!("cannot discover whether ClusterSecretStore is served: {e}"),
            )
        }
    }
    match store {
        Lookup::Missing => check(
            SECRET_STORE,
            Fail,
            format!(
                "the ClusterSecretStore `{name}` does not exist; create it (every ExternalSecret verbund renders reads from it) or name yours with --secret-store"
            ),
        ),
        Lookup::Unreadable(e) => check(
            SECRET_STORE,
            Fail,
            format!("cannot read the ClusterSecretStore `{name}`: {e}"),
        ),
        Lookup::Found(r) => match r.status.as_deref() {
            Some("True") => check(
                SECRET_STORE,
                Pass,
                format!("the ClusterSecretStore `{name}` is Ready"),
            ),
            None => check(
                SECRET_STORE,
                Fail,
                format!(
                    "the ClusterSecretStore `{name}` has no Ready condition yet; is the External Secrets Operator running?"
                ),
            ),
            Some(status) => {
                let why = match (&r.reason, &r.message) {
                    (Some(reason), Some(message)) => format!(" ({reason}: {message})"),
                    (Some(reason), None) => format!(" ({reason})"),
                    (None, Some(message)) => format!(" ({message})"),
                    (None, None) => String::new(),
                };
                check(
                    SECRET_STORE,
                    Fail,
                    format!(
                        "the ClusterSecretStore `{name}` is not Ready (Ready={status}{why}); fix its provider configuration"
                    ),
                )
            }
        },
    }
}

/// `ingress-class`: the `IngressClass` exists.
pub fn judge_ingress_class(name: &str, class: &Lookup<()>) -> PreflightCheck {
    use PreflightVerdict::*;
    match class {
        Lookup::Found(()) => check(
            INGRESS_CLASS,
            Pass,
            format!("the IngressClass `{name}` exists"),
        ),
        Lookup::Missing => check(
            INGRESS_CLASS,
            Fail,
            format!(
                "the IngressClass `{name}` does not exist, so bookings' Ingresses would reach no controller; install the ingress controller or name its class with --ingress-class"
            ),
        ),
        Lookup::Unreadable(e) => check(
            INGRESS_CLASS,
            Fail,
            format!("cannot read the IngressClass `{name}`: {e}"),
        ),
    }
}

/// Where the deployer role comes from for a delivery mode.
fn deployer_source(delivery: Delivery) -> &'static str {
    match delivery {
        Delivery::Agent => "it comes with the agent's install manifests: apply `verbund agent manifests --apply …`",
        Delivery::Flux | Delivery::Argocd => "it comes with the site's root: apply the site's `root.yaml` from the desired-state repository",
    }
}

/// `tenant-role` and `deployer-role`: a ClusterRole that bookings bind exists.
pub fn judge_cluster_role(
    check_name: &str,
    role: &str,
    found: &Lookup<()>,
    missing_hint: &str,
) -> PreflightCheck {
    use PreflightVerdict::*;
    match found {
        Lookup::Found(()) => check(check_name, Pass, format!("the ClusterRole `{role}` exists")),
        Lookup::Missing => check(
            check_name,
            Fail,
            format!("the ClusterRole `{role}` does not exist, so bookings' RoleBindings would grant nothing; {missing_hint}"),
        ),
        Lookup::Unreadable(e) => check(
            check_name,
            Fail,
            format!("cannot read the ClusterRole `{role}`: {e}"),
        ),
    }
}

/// `network-policy`: passes only if the allowed client connected and the denied one did
/// not.
pub fn judge_network_policy(settings: &ProbeSettings, outcome: &Outcome) -> PreflightCheck {
    use Connection::*;
    use PreflightVerdict::*;
    let reason = match outcome {
        Outcome::CouldNotRun(why) => {
            return check(
                NETWORK_POLICY,
                Fail,
                format!("the NetworkPolicy probe could not run, so enforcement is not proven: {why}"),
            )
        }
        Outcome::Ran { allowed, denied } => match (allowed, denied) {
            (Connected, Refused) => {
                return check(
                    NETWORK_POLICY,
                    Pass,
                    "NetworkPolicy is enforced: the probe's allowed client connected and the client a default-deny policy forbids did not".into(),
                )
            }
            (Connected, Connected) => "NetworkPolicy is not enforced: the probe's client that a default-deny policy forbids connected all the same; install a CNI that enforces NetworkPolicy (e.g. Calico or Cilium), as bookings are isolated by it".to_string(),
            (Refused, Refused) => format!(
                "the NetworkPolicy probe does not work: neither of its clients connected, not even the allowed one, so enforcement is not proven; check that pods of `{}` start and reach each other",
                settings.image
            ),
            (Refused, Connected) => "the NetworkPolicy probe is inconsistent: the client a policy allows did not connect but the denied one did".into(),
            (allowed, denied) => {
                let mut late = Vec::new();
                if *allowed == Unfinished {
                    late.push("the allowed client");
                }
                if *denied == Unfinished {
                    late.push("the denied client");
                }
                format!(
                    "the NetworkPolicy probe did not finish within {}s ({} had no result), so enforcement is not proven; check that the cluster can pull `{}` or give a longer --probe-timeout",
                    settings.timeout.as_secs(),
                    late.join(" and "),
                    settings.image
                )
            }
        },
    };
    check(NETWORK_POLICY, Fail, reason)
}

/// Every check's verdict on `facts`: the whole decision, pure.
pub fn judge(settings: &Settings, facts: &Facts) -> Vec<PreflightCheck> {
    vec![
        judge_version(&facts.version, settings.declared_kubernetes.as_deref()),
        judge_apis(settings.delivery, &facts.served),
        judge_secret_store(&settings.secret_store, &facts.served, &facts.secret_store),
        judge_ingress_class(&settings.ingress_class, &facts.ingress_class),
        judge_cluster_role(
            TENANT_ROLE,
            &settings.tenant_role,
            &facts.tenant_role,
            "it is Kubernetes' built-in `edit` by default; create yours or name it with --tenant-role",
        ),
        judge_cluster_role(
            DEPLOYER_ROLE,
            DEPLOYER,
            &facts.deployer_role,
            deployer_source(settings.delivery),
        ),
        judge_network_policy(&settings.probe, &facts.network_policy),
    ]
}

/// The report of `checks` for the control plane.
pub fn report(settings: &Settings, facts: &Facts, checks: Vec<PreflightCheck>) -> PreflightReport {
    PreflightReport {
        agent: AGENT_NAME.to_string(),
        delivery: settings.delivery,
        kubernetes_version: facts.version.as_ref().ok().map(|v| v.git_version.clone()),
        checks,
    }
}

// ---------------------------------------------------------------------------------------
// Reading the cluster

/// A Kubernetes error in a sentence (the API's message rather than its debug dump).
pub(crate) fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => one_line(&format!("{} ({} {})", s.message, s.code, s.reason)),
        other => one_line(&other.to_string()),
    }
}

async fn lookup<K>(api: Api<K>, name: &str) -> Lookup<K>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get_opt(name).await {
        Ok(Some(o)) => Lookup::Found(o),
        Ok(None) => Lookup::Missing,
        Err(e) => Lookup::Unreadable(describe(&e)),
    }
}

fn exists<K>(l: Lookup<K>) -> Lookup<()> {
    match l {
        Lookup::Found(_) => Lookup::Found(()),
        Lookup::Missing => Lookup::Missing,
        Lookup::Unreadable(e) => Lookup::Unreadable(e),
    }
}

/// The `Ready` condition of a `ClusterSecretStore` object.
pub fn readiness(store: &Value) -> Readiness {
    let ready = store
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        });
    let text = |c: &Value, key: &str| c.get(key).and_then(Value::as_str).map(String::from);
    match ready {
        Some(c) => Readiness {
            status: text(c, "status"),
            reason: text(c, "reason"),
            message: text(c, "message"),
        },
        None => Readiness::default(),
    }
}

/// The kinds served at each group version the checks need.
async fn discover(
    client: &Client,
    delivery: Delivery,
) -> BTreeMap<String, Result<BTreeSet<String>, String>> {
    let mut versions: BTreeSet<String> = required_apis(delivery)
        .iter()
        .map(|a| a.api_version())
        .collect();
    versions.insert(CLUSTER_SECRET_STORE.api_version());
    let mut served = BTreeMap::new();
    for v in versions {
        let kinds = match client.list_api_group_resources(&v).await {
            Ok(list) => Ok(list
                .resources
                .into_iter()
                .filter(|r| !r.name.contains('/'))
                .map(|r| r.kind)
                .collect()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(BTreeSet::new()),
            Err(e) => Err(describe(&e)),
        };
        served.insert(v, kinds);
    }
    served
}

/// Reads every fact the checks judge, the NetworkPolicy probe included (which creates
/// and always deletes its namespace; `interrupted` ends it early, cleanup still runs).
pub async fn observe(
    client: &Client,
    settings: &Settings,
    interrupted: impl Future<Output = ()>,
) -> (Facts, probe::Probe) {
    let version = client
        .apiserver_version()
        .await
        .map(|i| ServerVersion {
            git_version: i.git_version,
            major: i.major,
            minor: i.minor,
        })
        .map_err(|e| describe(&e));
    let served = discover(client, settings.delivery).await;
    let store_kind = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(
            CLUSTER_SECRET_STORE.group,
            CLUSTER_SECRET_STORE.version,
            CLUSTER_SECRET_STORE.kind,
        ),
        "clustersecretstores",
    );
    let secret_store = match is_served(&served, &CLUSTER_SECRET_STORE) {
        Ok(true) => {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &store_kind);
            match lookup(api, &settings.secret_store).await {
                Lookup::Found(o) => Lookup::Found(readiness(&o.data)),
                Lookup::Missing => Lookup::Missing,
                Lookup::Unreadable(e) => Lookup::Unreadable(e),
            }
        }
        // Not served (or unknown): judged from the discovery facts.
        _ => Lookup::Missing,
    };
    let ingress_class = exists(
        lookup(
            Api::<IngressClass>::all(client.clone()),
            &settings.ingress_class,
        )
        .await,
    );
    let roles = Api::<ClusterRole>::all(client.clone());
    let tenant_role = exists(lookup(roles.clone(), &settings.tenant_role).await);
    let deployer_role = exists(lookup(roles, DEPLOYER).await);
    tracing::info!(image = %settings.probe.image, timeout_seconds = settings.probe.timeout.as_secs(), "running the NetworkPolicy probe");
    let probe = probe::run(client, &settings.probe, interrupted).await;
    let facts = Facts {
        version,
        served,
        secret_store,
        ingress_class,
        tenant_role,
        deployer_role,
        network_policy: probe.outcome.clone(),
    };
    (facts, probe)
}

#[cfg(test)]
mod tests;
