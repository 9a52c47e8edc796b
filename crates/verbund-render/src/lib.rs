//! Renders the Kubernetes desired state of one site's environment from its placed
//! bookings: a pure function from ([`RenderInput`], [`RenderOptions`]) to the files of
//! the desired-state repository ([`RenderedFile`]).
//!
//! Architecture Invariant: this crate is pure. It knows nothing of Git, the store, the
//! clock or the network; it never reads a secret's value and never writes one in
//! plaintext (sealed secrets come in sealed, see [`sealed`]). The same input,
//! in any order, renders byte-identical files.
//!
//! # Layout
//!
//! ```text
//! sites/<site>/<environment>/
//!   kustomization.yaml          Flux, Argo CD: shards.yaml; agent: every shard folder
//!   shards.yaml                 Flux, Argo CD: a Kustomization / Application per shard
//!   root.yaml                   Flux, Argo CD: applied once by the operator (see [`root`])
//!   shards/<nn>/kustomization.yaml   the booking folders of shard nn (00–63)
//!   bookings/<namespace>/
//!     kustomization.yaml        the files below but app/ and helm.yaml
//!     namespace.yaml            Namespace (Pod Security `restricted`)
//!     quota.yaml                ResourceQuota and LimitRange from the plan
//!     autoscaler.yaml           HorizontalPodAutoscaler from the plan (manifests packages whose plan autoscales)
//!     networkpolicies.yaml      default deny, plus what the booking needs
//!     rbac.yaml                 the tenant's RoleBinding; the deployer ServiceAccount and its RoleBinding
//!     credentials.yaml          its own and its dependencies' credentials, if any
//!     config.yaml               ConfigMap of the configuration (manifests packages that name one)
//!     tenants.yaml              a shared instance's tenant list, ConfigMaps (see [`tenant_list`])
//!     secrets.yaml              the configuration declared secret, as a SOPS-sealed Secret (see [`sealed`])
//!     app.yaml                  Flux, Argo CD: what deploys the application as the deployer
//!     smoke-test.yaml           the smoke-test Job, if the offering has one
//!     export.yaml               the data export's Job, while the booking is being exported
//!     app/                      manifests packages: the vendor's manifests (kustomization.yaml, manifests.yaml)
//!     helm.yaml                 agent sites, Helm packages: the chart the agent renders
//! ```
//!
//! Each booking folder is self-contained (its own `kustomization.yaml`), so a change of
//! one booking rewrites its folder, its shard's `kustomization.yaml` and the site's
//! small entry files and nothing else ([`render_folders`], [`site_files`]). Vendor
//! content (`app/`, `helm.yaml`) is never listed by the booking's `kustomization.yaml`:
//! only the booking's deployer applies it (see [`app`]).
//!
//! Names are stable: a booking's namespace is `<offering>-<organisation>-<hash of the
//! booking id>` (see [`names::namespace_name`]); the objects inside have fixed names.
//! Every object of a booking carries the recommended `app.kubernetes.io/*` labels (never
//! `instance`, which Argo CD's tracking owns) and verbund's
//! `verbund.dev/{organisation-key,booking,offering,version}`. The namespace
//! name reads the organisation's *name*: should an organisation be renamed, its
//! bookings would move to new namespaces, so callers that allow renames must keep the
//! names once rendered.
//!
//! # Values
//!
//! A Helm chart's values are three layers, merged object by object at every depth,
//! the later winning (arrays and scalars are replaced whole), and verbund's block:
//!
//! 1. the version's package defaults (`Package::Helm { values }`),
//! 2. the plan: `replicaCount`, `resources` (requests and limits, one pod's share of the
//!    plan) and `autoscaling` (`enabled`, `minReplicas`, `maxReplicas`,
//!    `targetCPUUtilizationPercentage`, the names of `helm create`'s scaffold),
//! 3. the tenant's `config`,
//! 4. `verbund`: the booking's namespace, id, organisation and its dependencies'
//!    namespaces, hosts and credentials secrets.
//!
//! Plain manifests get the configuration as the ConfigMap their package names (see
//! [`config`]).
//!
//! # Network policies
//!
//! `default-deny` isolates every pod of a booking in both directions; then
//! `allow-same-namespace` (the booking's pods talk to each other), `allow-dns` (egress to
//! kube-dns in `kube-system`, UDP and TCP 53), `allow-ingress-controller` (ingress from
//! [`RenderOptions::ingress_namespace`]), `allow-to-dependencies` (egress to exactly the
//! namespaces of the booking's dependencies) and `allow-from-dependents` (ingress from
//! exactly the namespaces of the bookings of this render that depend on it). The last
//! two exist only where there is someone to allow.
//!
//! # Secrets
//!
//! No rendered file contains a secret's value in plaintext; see [`secrets`] for the rule
//! and its errors. Credentials arrive through the External Secrets Operator (see
//! [`tenant`]'s credentials); configuration the offering's schema declares secret
//! arrives as the one `Secret` verbund writes, sealed for the site with SOPS and age by
//! the caller (see [`sealed`]).
//!
//! # Delivery
//!
//! See [`app`] for the application per delivery mode and [`root`] for the entry points.

pub mod app;
mod autoscaler;
pub mod config;
pub mod crd;
pub mod error;
pub mod export;
pub mod input;
pub mod names;
pub mod resources;
pub mod root;
pub mod sealed;
pub mod secrets;
pub mod smoke;
pub mod tenant;
pub mod tenant_list;
pub mod values;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use verbund_domain::booking::BookingState;
use verbund_domain::catalog::{check_package, check_scaling, Package};
use verbund_domain::directory::{Delivery, Environment, SiteSpec};
use verbund_domain::tenancy::AgentChart;

pub use error::{Error, Result};
pub use input::{
    environment_name, site_folder, PlacedBooking, RenderInput, RenderOptions, RenderedFile,
};
use names::{is_dns_label, namespace_name};
pub use sealed::{secret_document, Sealed, SealedSecrets};
pub use tenant::credentials_secret;
use tenant::Tenant;
use yaml::{documents, to_value};

/// What a render gives: the files, and the bookings it refused.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rendered {
    /// Every file of the site's environment folder for the bookings rendered, sorted by
    /// path; a refused booking has none and is not listed.
    pub files: Vec<RenderedFile>,
    /// The bookings that cannot be rendered, with the reason; sorted by booking id.
    pub refused: Vec<Refused>,
}

/// A booking the renderer refuses: a problem of that booking alone (its package, its
/// configuration, its dependencies), never of the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub booking: String,
    /// Its namespace, where one could be named.
    pub namespace: Option<String>,
    pub error: Error,
}

/// Renders the desired state of `input.site`'s `input.environment`: every file of its
/// folder, sorted by path. A booking that cannot be rendered is refused alone (see
/// [`Rendered::refused`]); what the caller does with its folder (keep the last delivered
/// one) is the caller's. Fails as a whole only for the site itself (its name, a missing
/// environment).
///
/// Bookings whose offering declares secret configuration are refused: they need their
/// sealed secrets, which [`render_sealed`] takes.
pub fn render(input: &RenderInput<'_>, options: &RenderOptions) -> Result<Rendered> {
    render_sealed(input, options, &Sealed::new())
}

/// [`render`] with the bookings' sealed secrets (see [`sealed`]), by booking id.
pub fn render_sealed(
    input: &RenderInput<'_>,
    options: &RenderOptions,
    sealed: &Sealed,
) -> Result<Rendered> {
    let (tenants, mut refused) = tenants(input)?;
    let folder = site_folder(&input.site.name, input.environment);
    let mut files = Vec::new();
    let mut namespaces = Vec::new();
    for t in &tenants {
        match tenant_files(t, input.site, &folder, options, sealed) {
            Ok(f) => {
                files.extend(f);
                namespaces.push(t.namespace.as_str());
            }
            Err(error) => refused.push(Refused {
                booking: t.placed.booking.id.clone(),
                namespace: Some(t.namespace.clone()),
                error,
            }),
        }
    }
    files.extend(site_files(
        input.site,
        input.environment,
        namespaces,
        options,
    )?);
    files.sort();
    refused.sort_by(|a, b| a.booking.cmp(&b.booking));
    Ok(Rendered { files, refused })
}

/// One booking's folder of a site's environment and its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingFolder {
    /// The booking's id.
    pub booking: String,
    /// The booking's namespace, the folder's last name.
    pub namespace: String,
    /// `sites/<site>/<environment>/bookings/<namespace>`.
    pub folder: String,
    /// Every file of the folder, sorted by path.
    pub files: Vec<RenderedFile>,
    /// A shared instance's tenancies its tenant list holds (their ids, sorted).
    pub tenancies: Vec<String>,
}

/// Renders only the folders of the bookings in `selected` (by id): what an incremental
/// change rewrites. `input.bookings` must hold, besides the selected bookings, every
/// booking of the site that depends on one of them (a booking's network policies admit
/// its dependents); bookings not selected only serve as that context. A selected folder
/// is byte-identical to the same folder of [`render`] over the whole site. Selected
/// bookings that cannot be rendered are returned as refused.
pub fn render_folders(
    input: &RenderInput<'_>,
    options: &RenderOptions,
    selected: &BTreeSet<&str>,
) -> Result<(Vec<BookingFolder>, Vec<Refused>)> {
    render_folders_sealed(input, options, selected, &Sealed::new())
}

/// [`render_folders`] with the bookings' sealed secrets (see [`sealed`]), by booking id.
pub fn render_folders_sealed(
    input: &RenderInput<'_>,
    options: &RenderOptions,
    selected: &BTreeSet<&str>,
    sealed: &Sealed,
) -> Result<(Vec<BookingFolder>, Vec<Refused>)> {
    let folder = site_folder(&input.site.name, input.environment);
    let (tenants, refused) = tenants(input)?;
    let mut refused: Vec<Refused> = refused
        .into_iter()
        .filter(|r| selected.contains(r.booking.as_str()))
        .collect();
    let mut out = Vec::new();
    for t in tenants {
        if !selected.contains(t.placed.booking.id.as_str()) {
            continue;
        }
        match tenant_files(&t, input.site, &folder, options, sealed) {
            Ok(files) => out.push(BookingFolder {
                booking: t.placed.booking.id.clone(),
                folder: booking_folder(&folder, &t.namespace),
                files,
                tenancies: t.tenancies.iter().map(|p| p.booking.id.clone()).collect(),
                namespace: t.namespace,
            }),
            Err(error) => refused.push(Refused {
                booking: t.placed.booking.id.clone(),
                namespace: Some(t.namespace),
                error,
            }),
        }
    }
    refused.sort_by(|a, b| a.booking.cmp(&b.booking));
    Ok((out, refused))
}

/// The folder of the booking with `namespace` inside a site's environment `folder`.
pub fn booking_folder(folder: &str, namespace: &str) -> String {
    format!("{folder}/bookings/{namespace}")
}

/// The booking's namespace, as [`render`] names it.
pub fn booking_namespace(p: &PlacedBooking<'_>) -> String {
    namespace_name(&p.offering.name, &p.organisation.name, &p.booking.id)
}

/// The entry points of a site's environment for the bookings with these `namespaces`:
/// `kustomization.yaml`, `shards.yaml` (Flux, Argo CD), each non-empty shard's
/// `kustomization.yaml`, and `root.yaml` (Flux, Argo CD). See [`root`].
pub fn site_files<'n>(
    site: &SiteSpec,
    environment: Environment,
    namespaces: impl IntoIterator<Item = &'n str>,
    options: &RenderOptions,
) -> Result<Vec<RenderedFile>> {
    check_site(site, environment)?;
    let folder = site_folder(&site.name, environment);
    let shards = root::shards(namespaces);
    let mut files = Vec::new();
    let mut file = |path: String, objects: &[Value]| -> Result<()> {
        files.push(RenderedFile {
            content: documents(&path, objects)?,
            path,
        });
        Ok(())
    };
    let listed = match site.delivery {
        Delivery::Agent => shards.keys().map(|s| format!("shards/{s}")).collect(),
        Delivery::Flux | Delivery::Argocd => {
            let objects = root::shard_objects(
                &site.name,
                &folder,
                environment,
                site.delivery,
                &shards,
                options,
                site.age_recipient.is_some(),
            )?;
            if objects.is_empty() {
                Vec::new()
            } else {
                file(format!("{folder}/shards.yaml"), &objects)?;
                vec!["shards.yaml".to_string()]
            }
        }
    };
    file(
        format!("{folder}/kustomization.yaml"),
        &[root::kustomization(listed)?],
    )?;
    for (shard, folders) in shards {
        file(
            format!("{folder}/shards/{shard}/kustomization.yaml"),
            &[root::kustomization(folders)?],
        )?;
    }
    let root_objects = root::root(&site.name, &folder, environment, site.delivery, options)?;
    if !root_objects.is_empty() {
        file(format!("{folder}/root.yaml"), &root_objects)?;
    }
    files.sort();
    Ok(files)
}

/// The namespaces of the bookings a site environment's shard `kustomization.yaml`
/// lists (`../../bookings/<namespace>`), in its order; what an incremental change starts
/// from.
pub fn listed_namespaces(kustomization: &str) -> Vec<String> {
    let Ok(value) = serde_yaml_ng::from_str::<Value>(kustomization) else {
        return Vec::new();
    };
    value
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|r| r.strip_prefix("../../bookings/"))
        .map(str::to_string)
        .collect()
}

fn check_site(site: &SiteSpec, environment: Environment) -> Result<()> {
    if !is_dns_label(&site.name) {
        return Err(Error::Invalid {
            field: "/site/name".into(),
            message: format!("`{}` is not a DNS-1123 label", site.name),
        });
    }
    if !site.environments.contains(&environment) {
        return Err(Error::Invalid {
            field: "/environment".into(),
            message: format!(
                "site `{}` has no `{}` environment",
                site.name,
                environment_name(environment)
            ),
        });
    }
    Ok(())
}

/// Checks every booking of `input` and names its namespace; who depends on whom among
/// them is filled in. Sorted by booking id.
///
/// A booking refused for its content (configuration, package, dependencies) still owns
/// its namespace and still counts as a dependent of its dependencies: its site keeps the
/// folder last delivered for it, and that must go on reaching its database. Only one
/// placed elsewhere or whose namespace is taken is no part of this site at all.
fn tenants<'i>(input: &'i RenderInput<'_>) -> Result<(Vec<Tenant<'i>>, Vec<Refused>)> {
    let site = input.site;
    check_site(site, input.environment)?;
    // A shared instance's tenancies have no namespace: they are its tenant list.
    let (tenancies, mut placed): (Vec<&PlacedBooking<'_>>, Vec<&PlacedBooking<'_>>) = input
        .bookings
        .iter()
        .partition(|p| p.booking.instance.is_some());
    let mut tenancies_of: BTreeMap<&str, Vec<&PlacedBooking<'_>>> = BTreeMap::new();
    for t in tenancies
        .into_iter()
        .filter(|t| t.booking.site.as_deref() == Some(site.name.as_str()))
    {
        if let Some(instance) = t.booking.instance.as_deref() {
            tenancies_of.entry(instance).or_default().push(t);
        }
    }
    for list in tenancies_of.values_mut() {
        list.sort_by(|a, b| a.booking.id.cmp(&b.booking.id));
    }
    placed.sort_by(|a, b| a.booking.id.cmp(&b.booking.id));
    let mut tenants = Vec::with_capacity(placed.len());
    let mut refused = Vec::new();
    let mut namespaces: BTreeMap<String, &str> = BTreeMap::new();
    let mut dependents: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for p in placed {
        let namespace = booking_namespace(p);
        let mut refuse = |error: Error| {
            refused.push(Refused {
                booking: p.booking.id.clone(),
                namespace: Some(namespace.clone()),
                error,
            })
        };
        if let Err(e) = check_placed_here(p, &site.name) {
            refuse(e);
            continue;
        }
        if let Some(first) = namespaces.get(&namespace) {
            refuse(if *first == p.booking.id {
                Error::DuplicateBooking {
                    booking: first.to_string(),
                }
            } else {
                Error::NamespaceCollision {
                    namespace: namespace.clone(),
                    first: first.to_string(),
                    second: p.booking.id.clone(),
                }
            });
            continue;
        }
        namespaces.insert(namespace.clone(), &p.booking.id);
        for dependency in &p.dependencies {
            dependents
                .entry(dependency.id.as_str())
                .or_default()
                .insert(namespace.clone());
        }
        let checked = check(p).and_then(|()| dependencies(p, &site.name));
        match checked {
            Ok(dependencies) => {
                let mut tenant = Tenant::new(p, namespace);
                tenant.dependencies = dependencies;
                tenant.tenancies = tenancies_of
                    .remove(p.booking.id.as_str())
                    .unwrap_or_default();
                tenants.push(tenant);
            }
            Err(e) => refuse(e),
        }
    }
    for t in &mut tenants {
        if let Some(of) = dependents.get(t.placed.booking.id.as_str()) {
            t.dependents = of.iter().cloned().collect();
        }
    }
    Ok((tenants, refused))
}

/// The files of one booking's folder: its objects, a `kustomization.yaml` listing
/// them, and the vendor content (`app/`, `helm.yaml`) beside them; sorted by path.
fn tenant_files(
    t: &Tenant<'_>,
    site: &SiteSpec,
    folder: &str,
    options: &RenderOptions,
    sealed: &Sealed,
) -> Result<Vec<RenderedFile>> {
    let delivery = site.delivery;
    let dir = booking_folder(folder, &t.namespace);
    let secrets = sealed::checked(t, site, sealed)?;
    let app = app::application(t, &site.name, &dir, delivery, options, secrets)?;
    let mut files = Vec::new();
    let mut names = Vec::new();
    let secret_objects: Vec<Value> = secrets
        .and_then(|s| s.document.clone())
        .into_iter()
        .collect();
    for (name, objects) in booking_files(t, app.engine, delivery, options, secret_objects)? {
        if objects.is_empty() {
            continue;
        }
        let path = format!("{dir}/{name}");
        files.push(RenderedFile {
            content: documents(&path, &objects)?,
            path,
        });
        names.push(name.to_string());
    }
    names.sort();
    let kustomization = format!("{dir}/kustomization.yaml");
    files.push(RenderedFile {
        content: documents(&kustomization, &[root::kustomization(names)?])?,
        path: kustomization,
    });
    if !app.manifests.is_empty() {
        let path = format!("{dir}/app/manifests.yaml");
        files.push(RenderedFile {
            content: documents(&path, &app.manifests)?,
            path,
        });
        let path = format!("{dir}/app/kustomization.yaml");
        files.push(RenderedFile {
            content: documents(
                &path,
                &[root::kustomization(vec!["manifests.yaml".into()])?],
            )?,
            path,
        });
    }
    if let Some(chart) = app.agent_chart {
        let path = format!("{dir}/{}", AgentChart::FILE);
        files.push(RenderedFile {
            content: documents(&path, &[chart])?,
            path,
        });
    }
    files.sort();
    Ok(files)
}

/// The objects of a booking's own files (those its `kustomization.yaml` lists), by file
/// name; `engine` is what deploys its application (`app.yaml`).
fn booking_files(
    t: &Tenant<'_>,
    engine: Vec<Value>,
    delivery: Delivery,
    options: &RenderOptions,
    secrets: Vec<Value>,
) -> Result<Vec<(&'static str, Vec<Value>)>> {
    let config = match &t.placed.version.package {
        Package::Manifests {
            config_map: Some(name),
            ..
        } => vec![to_value("ConfigMap", &config::config_map(t, name))?],
        _ => Vec::new(),
    };
    let smoke_test = match &t.placed.offering.smoke_test {
        Some(test) => vec![to_value("Job", &smoke::smoke_test_job(t, test, delivery))?],
        None => Vec::new(),
    };
    let export = export_objects(t, delivery)?;
    Ok(vec![
        (
            "namespace.yaml",
            vec![to_value("Namespace", &t.namespace_object())?],
        ),
        (
            "quota.yaml",
            vec![
                to_value("ResourceQuota", &t.resource_quota())?,
                to_value("LimitRange", &t.limit_range())?,
            ],
        ),
        (
            "networkpolicies.yaml",
            t.network_policies(options)
                .iter()
                .map(|p| to_value("NetworkPolicy", p))
                .collect::<Result<_>>()?,
        ),
        (
            "rbac.yaml",
            vec![
                to_value("RoleBinding", &t.role_binding(options))?,
                to_value("ServiceAccount", &t.deployer())?,
                to_value("RoleBinding", &t.deployer_binding())?,
            ],
        ),
        (
            "autoscaler.yaml",
            autoscaler::autoscaler(t)?
                .map(|a| to_value("HorizontalPodAutoscaler", &a))
                .transpose()?
                .into_iter()
                .collect(),
        ),
        ("credentials.yaml", t.credentials(options)?),
        ("config.yaml", config),
        (
            "tenants.yaml",
            tenant_list::config_maps(t)?
                .iter()
                .map(|c| to_value("ConfigMap", c))
                .collect::<Result<_>>()?,
        ),
        ("secrets.yaml", secrets),
        ("app.yaml", engine),
        ("smoke-test.yaml", smoke_test),
        ("export.yaml", export),
    ])
}

/// The export Job of a booking being exported and its network policy (see
/// [`export`]); nothing otherwise.
fn export_objects(t: &Tenant<'_>, delivery: Delivery) -> Result<Vec<Value>> {
    let booking = t.placed.booking;
    let ending = booking.ending.as_ref();
    let (Some(ending), Some(spec)) = (ending, &t.placed.offering.data_export) else {
        return Ok(Vec::new());
    };
    match (&ending.export, booking.state) {
        (Some(run), BookingState::Exporting) => Ok(vec![
            to_value("NetworkPolicy", &export::allow_export(t, &ending.export_to))?,
            to_value(
                "Job",
                &export::export_job(t, spec, run, &ending.export_to, delivery),
            )?,
        ]),
        _ => Ok(Vec::new()),
    }
}

/// Checks a placed booking's parts against each other and against the secrets rule.
/// Whether the booking is placed on this site at all.
fn check_placed_here(p: &PlacedBooking<'_>, site: &str) -> Result<()> {
    match p.booking.site.as_deref().filter(|s| *s != site) {
        Some(other) => Err(Error::Inconsistent {
            booking: p.booking.id.clone(),
            message: format!("is placed on site `{other}`, not `{site}`"),
        }),
        None => Ok(()),
    }
}

fn check(p: &PlacedBooking<'_>) -> Result<()> {
    let booking = &p.booking.id;
    let inconsistent = |message: String| Error::Inconsistent {
        booking: booking.clone(),
        message,
    };
    if !is_dns_label(&p.offering.name) {
        return Err(Error::Invalid {
            field: "/offering/name".into(),
            message: format!("`{}` is not a DNS-1123 label", p.offering.name),
        });
    }
    if p.booking.organisation != p.organisation.id {
        return Err(inconsistent(format!(
            "belongs to organisation `{}`, not `{}`",
            p.booking.organisation, p.organisation.id
        )));
    }
    if p.booking.offering != p.offering.name {
        return Err(inconsistent(format!(
            "books offering `{}`, not `{}`",
            p.booking.offering, p.offering.name
        )));
    }
    if p.booking.plan_in_effect() != p.plan.name || p.offering.plan(&p.plan.name).is_none() {
        return Err(inconsistent(format!(
            "runs plan `{}`; `{}` is not it or not a plan of `{}`",
            p.booking.plan_in_effect(),
            p.plan.name,
            p.offering.name
        )));
    }
    let uncarriable = verbund_domain::portable::find_uncarriable(&p.booking.config)
        .map(|(pointer, c)| (format!("/config{pointer}"), c))
        .or_else(|| {
            // Stored before its name was checked: it goes into the namespace's annotation.
            p.organisation
                .name
                .chars()
                .find(|c| verbund_domain::portable::is_uncarriable(*c))
                .map(|c| ("/organisation/name".to_owned(), c))
        })
        .or_else(|| match &p.version.package {
            Package::Helm { values, .. } => verbund_domain::portable::find_uncarriable(values)
                .map(|(pointer, c)| (format!("/package/values{pointer}"), c)),
            Package::Manifests { manifests, .. } => {
                verbund_domain::portable::find_uncarriable(&Value::Array(manifests.clone()))
                    .map(|(pointer, c)| (format!("/package/manifests{pointer}"), c))
            }
        });
    if let Some((field, c)) = uncarriable {
        return Err(Error::Package {
            booking: booking.clone(),
            field,
            message: verbund_domain::portable::describe(c),
        });
    }
    let schema = &p.offering.config_schema;
    let declared = verbund_domain::secrets::declared_secrets(schema, &p.booking.config);
    let pointer = declared
        .first()
        .map(|(pointer, _)| pointer.clone())
        .or_else(|| {
            verbund_domain::secrets::find_secret(Some(schema), &p.booking.config).map(|f| f.pointer)
        });
    if let Some(pointer) = pointer {
        return Err(Error::SecretValue {
            booking: booking.clone(),
            pointer: format!("/config{pointer}"),
        });
    }
    if let Package::Helm { values, .. } = &p.version.package {
        if let Some(pointer) = secrets::find_literal_secret(values) {
            return Err(Error::SecretValue {
                booking: booking.clone(),
                pointer: format!("/package/values{pointer}"),
            });
        }
    }
    check_package(p.offering, p.version)
        .and_then(|()| check_scaling(&p.offering.name, [p.plan], &p.version.package))
        .map_err(|e| Error::Package {
            booking: booking.clone(),
            field: e.field,
            message: e.message,
        })?;
    Ok(())
}

/// The namespaces of a booking's dependencies, by their offering.
fn dependencies(p: &PlacedBooking<'_>, site: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut sorted = p.dependencies.clone();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    for d in sorted {
        let refuse = |reason: String| Error::Dependency {
            booking: p.booking.id.clone(),
            dependency: d.id.clone(),
            reason,
        };
        if d.organisation != p.organisation.id {
            return Err(refuse(format!(
                "belongs to organisation `{}`; dependencies are the booking organisation's own",
                d.organisation
            )));
        }
        if let Some(other) = d.site.as_deref().filter(|s| *s != site) {
            return Err(refuse(format!(
                "is placed on site `{other}`; network policies only reach the same site"
            )));
        }
        if !is_dns_label(&d.offering) {
            return Err(refuse(format!(
                "has an invalid offering name `{}`",
                d.offering
            )));
        }
        let namespace = namespace_name(&d.offering, &p.organisation.name, &d.id);
        if out.insert(d.offering.clone(), namespace).is_some() {
            return Err(refuse(format!(
                "is a second dependency on offering `{}`",
                d.offering
            )));
        }
    }
    Ok(out)
}
