//! Renders the Kubernetes desired state of one site's environment from its placed
//! bookings: a pure function from ([`RenderInput`], [`RenderOptions`]) to the files of
//! the desired-state repository ([`RenderedFile`]).
//!
//! Architecture Invariant: this crate is pure. It knows nothing of Git, the store, the
//! clock or the network; it never reads a secret and never writes one. The same input,
//! in any order, renders byte-identical files.
//!
//! # Layout
//!
//! ```text
//! sites/<site>/<environment>/
//!   kustomization.yaml                 every booking folder below, what each engine builds
//!   root.yaml                          Flux or Argo CD only: applied once by the operator
//!   bookings/<namespace>/
//!     kustomization.yaml               the files of this folder
//!     namespace.yaml                   Namespace (Pod Security `restricted`)
//!     quota.yaml                       ResourceQuota and LimitRange from the plan
//!     networkpolicies.yaml             default deny, plus what the booking needs
//!     rbac.yaml                        RoleBinding of the tenant's group
//!     externalsecrets.yaml             credentials of its dependencies, if it has any
//!     app.yaml                         the application (HelmRelease, Application or manifests),
//!                                      and the smoke-test Job if the offering has one
//! ```
//!
//! Each booking folder is self-contained (its own `kustomization.yaml`), so a change of
//! one booking rewrites its folder and the one-line-per-booking site `kustomization.yaml`
//! and nothing else ([`render_folders`], [`site_files`]).
//!
//! Names are stable: a booking's namespace is `<offering>-<organisation>-<hash of the
//! booking id>` (see [`names::namespace_name`]); the objects inside have fixed names.
//! Every object of a booking carries the recommended `app.kubernetes.io/*` labels and
//! verbund's `verbund.dev/{organisation-key,booking,offering,version}`. The namespace
//! name reads the organisation's *name*: should an organisation be renamed, its
//! bookings would move to new namespaces, so callers that allow renames must keep the
//! names once rendered.
//!
//! # Values
//!
//! A Helm chart's values are three layers, merged object by object at every depth,
//! the later winning (arrays and scalars are replaced whole):
//!
//! 1. the version's package defaults (`Package::Helm { values }`),
//! 2. the plan: `replicaCount`, `resources` (requests and limits, one pod's share of the
//!    plan) and `autoscaling` (`enabled`, `minReplicas`, `maxReplicas`),
//! 3. the tenant's `config`.
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
//! No rendered file contains a `Secret` or a secret's value; see [`secrets`] for the rule
//! and its errors. Credentials of a booking's dependencies arrive as `ExternalSecret`s
//! named `<dependency offering>-credentials` (see [`crd`]).
//!
//! # Delivery
//!
//! See [`app`] for the application per delivery mode and [`root`] for the entry points.

// Library code refuses bad input with an error, never by aborting; tests may unwrap.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod app;
pub mod crd;
pub mod error;
pub mod input;
pub mod names;
pub mod resources;
pub mod root;
pub mod secrets;
pub mod smoke;
mod tenant;
pub mod values;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use verbund_domain::catalog::Package;
use verbund_domain::directory::{Environment, SiteSpec};

pub use error::{Error, Result};
pub use input::{
    environment_name, site_folder, PlacedBooking, RenderInput, RenderOptions, RenderedFile,
};
use names::{is_dns_label, namespace_name};
pub use tenant::credentials_secret;
use tenant::Tenant;
use yaml::{documents, to_value};

/// Renders the desired state of `input.site`'s `input.environment`: every file of its
/// folder, sorted by path. Refuses as a whole (see [`Error`]) rather than leave a
/// booking out, which would prune it from the site.
pub fn render(input: &RenderInput<'_>, options: &RenderOptions) -> Result<Vec<RenderedFile>> {
    let tenants = tenants(input)?;
    let folder = site_folder(&input.site.name, input.environment);
    let mut files = site_files(
        input.site,
        input.environment,
        tenants.iter().map(|t| t.namespace.as_str()),
        options,
    )?;
    for t in &tenants {
        files.extend(tenant_files(t, &folder, input.site.delivery, options)?);
    }
    files.sort();
    Ok(files)
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
}

/// Renders only the folders of the bookings in `selected` (by id): what an incremental
/// change rewrites. `input.bookings` must hold, besides the selected bookings, every
/// booking of the site that depends on one of them (a booking's network policies admit
/// its dependents); bookings not selected only serve as that context. A selected folder
/// is byte-identical to the same folder of [`render`] over the whole site.
pub fn render_folders(
    input: &RenderInput<'_>,
    options: &RenderOptions,
    selected: &BTreeSet<&str>,
) -> Result<Vec<BookingFolder>> {
    let folder = site_folder(&input.site.name, input.environment);
    let mut out = Vec::new();
    for t in tenants(input)? {
        if !selected.contains(t.placed.booking.id.as_str()) {
            continue;
        }
        out.push(BookingFolder {
            booking: t.placed.booking.id.clone(),
            folder: booking_folder(&folder, &t.namespace),
            files: tenant_files(&t, &folder, input.site.delivery, options)?,
            namespace: t.namespace,
        });
    }
    Ok(out)
}

/// The folder of the booking with `namespace` inside a site's environment `folder`.
pub fn booking_folder(folder: &str, namespace: &str) -> String {
    format!("{folder}/bookings/{namespace}")
}

/// The booking's namespace, as [`render`] names it.
pub fn booking_namespace(p: &PlacedBooking<'_>) -> String {
    namespace_name(&p.offering.name, &p.organisation.name, &p.booking.id)
}

/// The entry points of a site's environment: `kustomization.yaml`, listing the folders
/// of the bookings with these `namespaces`, and `root.yaml` (Flux and Argo CD sites).
pub fn site_files<'n>(
    site: &SiteSpec,
    environment: Environment,
    namespaces: impl IntoIterator<Item = &'n str>,
    options: &RenderOptions,
) -> Result<Vec<RenderedFile>> {
    check_site(site, environment)?;
    let folder = site_folder(&site.name, environment);
    let mut resources: Vec<String> = namespaces
        .into_iter()
        .map(|ns| format!("bookings/{ns}"))
        .collect();
    resources.sort();
    resources.dedup();
    let kustomization = format!("{folder}/kustomization.yaml");
    let mut files = vec![RenderedFile {
        content: documents(&kustomization, &[root::kustomization(resources)?])?,
        path: kustomization,
    }];
    let root_objects = root::root(&folder, environment, site.delivery, options)?;
    if !root_objects.is_empty() {
        let path = format!("{folder}/root.yaml");
        files.push(RenderedFile {
            content: documents(&path, &root_objects)?,
            path,
        });
    }
    Ok(files)
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
fn tenants<'i>(input: &'i RenderInput<'_>) -> Result<Vec<Tenant<'i>>> {
    let site = input.site;
    check_site(site, input.environment)?;
    let mut placed: Vec<&PlacedBooking<'_>> = input.bookings.iter().collect();
    placed.sort_by(|a, b| a.booking.id.cmp(&b.booking.id));
    let mut tenants = Vec::with_capacity(placed.len());
    let mut namespaces: BTreeMap<String, &str> = BTreeMap::new();
    for p in placed {
        check(p, &site.name)?;
        let namespace = booking_namespace(p);
        if let Some(first) = namespaces.insert(namespace.clone(), &p.booking.id) {
            return Err(if first == p.booking.id {
                Error::DuplicateBooking {
                    booking: first.to_string(),
                }
            } else {
                Error::NamespaceCollision {
                    namespace,
                    first: first.to_string(),
                    second: p.booking.id.clone(),
                }
            });
        }
        let mut tenant = Tenant::new(p, namespace);
        tenant.dependencies = dependencies(p, &site.name)?;
        tenants.push(tenant);
    }

    // Who depends on whom, among the bookings of this render.
    let mut dependents: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for t in &tenants {
        for dependency in &t.placed.dependencies {
            dependents
                .entry(dependency.id.as_str())
                .or_default()
                .insert(t.namespace.clone());
        }
    }
    for t in &mut tenants {
        if let Some(of) = dependents.get(t.placed.booking.id.as_str()) {
            t.dependents = of.iter().cloned().collect();
        }
    }
    Ok(tenants)
}

/// The files of one booking's folder: its objects, and a `kustomization.yaml` listing
/// them, sorted by path.
fn tenant_files(
    t: &Tenant<'_>,
    folder: &str,
    delivery: verbund_domain::directory::Delivery,
    options: &RenderOptions,
) -> Result<Vec<RenderedFile>> {
    let dir = booking_folder(folder, &t.namespace);
    let mut files = Vec::new();
    let mut names = Vec::new();
    for (name, objects) in booking_files(t, delivery, options)? {
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
    files.sort();
    Ok(files)
}

/// The objects of a booking's folder, by file name.
fn booking_files(
    t: &Tenant<'_>,
    delivery: verbund_domain::directory::Delivery,
    options: &RenderOptions,
) -> Result<Vec<(&'static str, Vec<Value>)>> {
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
            vec![to_value("RoleBinding", &t.role_binding(options))?],
        ),
        (
            "externalsecrets.yaml",
            t.external_secrets(options)
                .iter()
                .map(|s| to_value("ExternalSecret", s))
                .collect::<Result<_>>()?,
        ),
        ("app.yaml", {
            let mut objects = app::application(t, delivery, options)?;
            if let Some(test) = &t.placed.offering.smoke_test {
                objects.push(to_value("Job", &smoke::smoke_test_job(t, test, delivery))?);
            }
            objects
        }),
    ])
}

/// Checks a placed booking's parts against each other and against the secrets rule.
fn check(p: &PlacedBooking<'_>, site: &str) -> Result<()> {
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
    if p.booking.plan != p.plan.name || p.offering.plan(&p.plan.name).is_none() {
        return Err(inconsistent(format!(
            "has plan `{}`; `{}` is not it or not a plan of `{}`",
            p.booking.plan, p.plan.name, p.offering.name
        )));
    }
    if let Some(other) = p.booking.site.as_deref().filter(|s| *s != site) {
        return Err(inconsistent(format!(
            "is placed on site `{other}`, not `{site}`"
        )));
    }
    if let Some(pointer) = secrets::find_literal_secret(&p.booking.config) {
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
