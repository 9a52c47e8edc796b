//! `--apply`: the agent as the site's delivery engine. It applies the desired state of
//! its site's environment with server-side apply and prunes what is no longer desired.
//!
//! Two kinds of content, two sets of rights: verbund's own objects (the tenancy: the
//! namespace, its quota, policies, bindings, credentials and configuration, the smoke
//! test) are applied with the agent's rights; a booking's vendor content (its `app/`
//! manifests, or the objects its chart renders to) is first checked against the kinds a
//! tenant may own ([`verbund_domain::tenancy::check_tenant_object`], the rule that also
//! decided at publish time), placed in the booking's namespace with verbund's labels,
//! and applied *as the booking's deployer* (`Impersonate-User:
//! system:serviceaccount:<namespace>:verbund-deployer`), so the API server refuses
//! whatever its tenant may not do. A booking whose content is refused or fails is that
//! booking's problem: the others are applied.
//!
//! Why server-side apply: the agent owns exactly the fields it sets (field manager
//! `verbund-agent`, forced, so that a hand edit of those fields is taken back), and
//! fields others own (controllers, HPAs) stay theirs. Order: by kind as
//! [`crate::kinds::APPLIED`] lists them (namespaces first, then quotas, limits, policies
//! and bindings, then the application), within a kind as the kustomizations list them;
//! pruning after everything was applied.
//!
//! # Prune rule ([`plan_prune`])
//!
//! Candidates are the objects of the kinds in [`crate::kinds::APPLIED`] labelled
//! `app.kubernetes.io/managed-by=verbund` and without `ownerReferences` (objects a
//! controller made from one of ours are the controller's to delete). Of those:
//! - a Namespace labelled `verbund.dev/booking` that is not desired (its booking folder
//!   is gone) is deleted, and with it everything inside;
//! - a namespaced object inside a namespace that holds desired objects, but which is not
//!   desired itself (same kind, namespace and name), is deleted; e.g. the previous
//!   version's smoke-test Job.
//!
//! Objects in other namespaces are never touched. So one applying agent per cluster:
//! two (say the `prod` and `test` environments of a site on one cluster) would prune
//! each other's booking namespaces. If objects failed to apply, pruning still runs: it
//! only removes what is not desired, whatever happened to what is.
//!
//! # When
//!
//! [`run`] applies when the fetched commit changed, and every `resync` anyway, to take
//! back drift.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::Resource;
use kube::Client;
use serde_json::{Map, Value};
use verbund_domain::tenancy::{check_tenant_object, DEPLOYER};

use crate::chart::Charts;
use crate::desired::{DesiredState, Repository, TenantContent};
use crate::error::{Error, Result};
use crate::kinds::{self, Kind};
use crate::observe::BOOKING_LABEL;
use crate::sealed::{chart_values, open_sealed};
use verbund_seal::Identities;

/// The field manager of everything the agent applies.
pub const FIELD_MANAGER: &str = "verbund-agent";
/// The selector of what verbund manages.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by=verbund";

/// An object of the desired state, of a kind the agent applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub kind: &'static Kind,
    pub namespace: Option<String>,
    pub name: String,
    pub object: Value,
    /// Who applies it: the agent itself (`None`), or, for vendor content, the booking's
    /// deployer (`system:serviceaccount:<namespace>:verbund-deployer`).
    pub deployer: Option<String>,
}

/// Where an object is, for pruning.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: &'static str,
    pub api_version: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// An object found in the cluster.
#[derive(Debug, Clone)]
pub struct Existing {
    pub kind: &'static Kind,
    pub object: DynamicObject,
}

impl Desired {
    fn key(&self) -> ObjectKey {
        ObjectKey {
            kind: self.kind.kind,
            api_version: self.kind.api_version(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

/// The objects the agent applies, in order; objects of other kinds or without a name
/// are refused (returned as errors, not applied).
pub fn classify(objects: Vec<Value>) -> (Vec<Desired>, Vec<Error>) {
    let mut desired = Vec::new();
    let mut refused = Vec::new();
    for mut object in objects {
        let deployer = object
            .as_object_mut()
            .and_then(|m| m.remove(AS_USER))
            .and_then(|v| v.as_str().map(str::to_string));
        let api_version = text_at(&object, "/apiVersion")
            .unwrap_or_default()
            .to_string();
        let kind_name = text_at(&object, "/kind").unwrap_or_default().to_string();
        let Some(kind) = kinds::find(&api_version, &kind_name) else {
            refused.push(Error::UnknownKind {
                api_version,
                kind: kind_name,
            });
            continue;
        };
        let Some(name) = text_at(&object, "/metadata/name").map(String::from) else {
            refused.push(Error::Desired {
                path: format!("{api_version} {kind_name}"),
                message: "an object without `metadata.name`".into(),
            });
            continue;
        };
        let namespace = kind
            .namespaced
            .then(|| text_at(&object, "/metadata/namespace").map(String::from))
            .flatten();
        if kind.namespaced && namespace.is_none() {
            refused.push(Error::Desired {
                path: format!("{kind_name} {name}"),
                message: "a namespaced object without `metadata.namespace`".into(),
            });
            continue;
        }
        desired.push(Desired {
            kind,
            namespace,
            name,
            object,
            deployer,
        });
    }
    // Stable: within a kind, the kustomizations' order.
    desired.sort_by_key(|d| kinds::APPLIED.iter().position(|k| k == d.kind));
    (desired, refused)
}

/// What to delete: see the module's prune rule.
pub fn plan_prune(desired: &[Desired], existing: &[Existing]) -> Vec<ObjectKey> {
    let wanted: BTreeSet<ObjectKey> = desired.iter().map(Desired::key).collect();
    let scope: BTreeSet<&str> = desired
        .iter()
        .filter_map(|d| match d.kind.namespaced {
            true => d.namespace.as_deref(),
            false if d.kind.kind == "Namespace" => Some(d.name.as_str()),
            false => None,
        })
        .collect();
    let mut out: Vec<ObjectKey> = existing
        .iter()
        .filter(|e| {
            let meta = &e.object.metadata;
            let managed = meta
                .labels
                .as_ref()
                .and_then(|l| l.get("app.kubernetes.io/managed-by"))
                .is_some_and(|v| v == "verbund");
            let owned = meta
                .owner_references
                .as_ref()
                .is_some_and(|o| !o.is_empty());
            managed && !owned && meta.deletion_timestamp.is_none() && e.kind.prune
        })
        .filter_map(|e| {
            let meta = &e.object.metadata;
            let key = ObjectKey {
                kind: e.kind.kind,
                api_version: e.kind.api_version(),
                namespace: e.kind.namespaced.then(|| meta.namespace.clone()).flatten(),
                name: meta.name.clone()?,
            };
            if wanted.contains(&key) {
                return None;
            }
            let prune = if e.kind.kind == "Namespace" {
                meta.labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key(BOOKING_LABEL))
            } else {
                key.namespace
                    .as_deref()
                    .is_some_and(|ns| scope.contains(ns))
            };
            prune.then_some(key)
        })
        .collect();
    // Inside namespaces first, namespaces last.
    out.sort_by_key(|k| (k.kind == "Namespace", k.clone()));
    out
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub applied: usize,
    pub pruned: usize,
    /// Objects refused or failed, one sentence each.
    pub problems: Vec<String>,
}

/// Applies and prunes with a Kubernetes client.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    charts: std::sync::Arc<Charts>,
    /// The site's age identity, which opens the bookings' sealed Secrets.
    identities: Option<std::sync::Arc<Identities>>,
}

impl Applier {
    /// An applier that renders charts with `charts`.
    pub fn new(client: Client, charts: Charts) -> Self {
        Self {
            client,
            charts: std::sync::Arc::new(charts),
            identities: None,
        }
    }

    /// The applier opening sealed Secrets with `identities` (the site's age identity);
    /// without, a booking with sealed secrets is not applied.
    pub fn with_identities(mut self, identities: Identities) -> Self {
        self.identities = Some(std::sync::Arc::new(identities));
        self
    }

    fn api(&self, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        let resource = kind.api_resource();
        match namespace {
            Some(ns) if kind.namespaced => Api::namespaced_with(self.client.clone(), ns, &resource),
            _ => Api::all_with(self.client.clone(), &resource),
        }
    }

    /// Applies `desired` (a site environment's desired state) within `scope`, then
    /// prunes within it. A failed object is logged and counted; the others go on.
    pub async fn apply(&self, desired: DesiredState, scope: &Scope) -> Result<ApplyOutcome> {
        let desired = scope.select(desired);
        let mut outcome = ApplyOutcome::default();
        let labels = namespace_labels(&desired.objects);
        // Sealed Secrets opened; a booking whose Secret cannot be opened is held back.
        let opened = open_sealed(desired.objects, self.identities.as_deref());
        let mut held: BTreeSet<String> = BTreeSet::new();
        for (namespace, reason) in &opened.failed {
            tracing::warn!(%namespace, %reason, "booking not applied");
            outcome
                .problems
                .push(format!("booking namespace `{namespace}`: {reason}"));
            held.insert(namespace.clone());
        }
        let mut objects = opened.objects;
        let mut as_deployer = Vec::new();
        for tenant in &desired.tenants {
            if held.contains(&tenant.namespace) {
                continue;
            }
            match self
                .tenant_objects(tenant, &objects, labels.get(&tenant.namespace))
                .await
            {
                Ok(o) => as_deployer.extend(o),
                Err(e) => {
                    tracing::warn!(namespace = %tenant.namespace, error = %e, "booking content not applied");
                    outcome.problems.push(e.to_string());
                    held.insert(tenant.namespace.clone());
                }
            }
        }
        // A held-back booking's Secret stays as the cluster has it.
        objects.retain(|o| {
            !(text_at(o, "/kind") == Some("Secret")
                && text_at(o, "/metadata/namespace").is_some_and(|n| held.contains(n)))
        });
        objects.extend(as_deployer);
        let (desired, refused) = classify(objects);
        for e in refused {
            tracing::warn!(error = %e, "not applied");
            outcome.problems.push(e.to_string());
        }
        let params = &PatchParams::apply(FIELD_MANAGER).force();
        // Kind by kind in the table's order (namespaces before what lives in them, the
        // tenancy before the workloads), the objects of one kind side by side.
        for of_kind in desired.chunk_by(|a, b| a.kind == b.kind) {
            let mut results: Vec<(&Desired, Result<()>)> = Vec::with_capacity(of_kind.len());
            for chunk in of_kind.chunks(CONCURRENT_APPLIES) {
                let applied =
                    futures::future::join_all(chunk.iter().map(|d| self.apply_one(d, params)))
                        .await;
                results.extend(chunk.iter().zip(applied));
            }
            for (d, result) in results {
                match result {
                    Ok(()) => outcome.applied += 1,
                    Err(e) => {
                        tracing::warn!(kind = d.kind.kind, namespace = ?d.namespace, name = %d.name, error = %e, "apply failed");
                        outcome
                            .problems
                            .push(format!("{} {}: {e}", d.kind.kind, d.name));
                    }
                }
            }
        }
        let existing = self.existing(scope).await?;
        // Nothing inside a held-back booking's namespace is pruned: what runs keeps
        // running until its content can be applied again.
        let prune = plan_prune(&desired, &existing).into_iter().filter(|k| {
            k.kind == "Namespace" || !k.namespace.as_ref().is_some_and(|n| held.contains(n))
        });
        for key in prune {
            let Some(kind) = kinds::find(&key.api_version, key.kind) else {
                continue;
            };
            let api = self.api(kind, key.namespace.as_deref());
            match api.delete(&key.name, &DeleteParams::background()).await {
                Ok(_) => {
                    tracing::info!(kind = key.kind, namespace = ?key.namespace, name = %key.name, "pruned");
                    outcome.pruned += 1;
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    tracing::warn!(kind = key.kind, name = %key.name, error = %e, "prune failed");
                    outcome
                        .problems
                        .push(format!("{} {}: {e}", key.kind, key.name));
                }
            }
        }
        Ok(outcome)
    }

    /// Server-side applies one object, with the agent's rights or as its deployer.
    async fn apply_one(&self, d: &Desired, params: &PatchParams) -> Result<()> {
        match d.deployer.as_deref() {
            None => self
                .api(d.kind, d.namespace.as_deref())
                .patch(&d.name, params, &Patch::Apply(&d.object))
                .await
                .map(|_| ())
                .map_err(Error::from),
            Some(user) => self.patch_as(user, d, params).await,
        }
    }

    /// A booking's vendor content as objects to apply as its deployer: its manifests and
    /// its chart's output, each checked, in its namespace, with verbund's labels.
    /// `opened` are verbund's own objects with the sealed Secrets opened, where a
    /// chart's secret values are read.
    async fn tenant_objects(
        &self,
        tenant: &TenantContent,
        opened: &[Value],
        labels: Option<&Map<String, Value>>,
    ) -> Result<Vec<Value>> {
        let mut objects = tenant.manifests.clone();
        if let Some(chart) = &tenant.chart {
            let secret_values = match &chart.spec.values_secret {
                Some(secret) => Some(chart_values(opened, &tenant.namespace, secret).map_err(
                    |message| Error::Tenant {
                        namespace: tenant.namespace.clone(),
                        message,
                    },
                )?),
                None => None,
            };
            objects.extend(self.charts.render(chart, secret_values.as_ref()).await?);
        }
        let user = format!("system:serviceaccount:{}:{DEPLOYER}", tenant.namespace);
        objects
            .into_iter()
            .map(|object| {
                check_tenant_object(&object).map_err(|refusal| Error::Tenant {
                    namespace: tenant.namespace.clone(),
                    message: refusal.to_string(),
                })?;
                Ok(placed(object, &tenant.namespace, labels, &user))
            })
            .collect()
    }

    /// Server-side apply of `d` as `user`: the API server decides with that user's
    /// rights.
    async fn patch_as(&self, user: &str, d: &Desired, params: &PatchParams) -> Result<()> {
        let resource = d.kind.api_resource();
        let url = DynamicObject::url_path(&resource, d.namespace.as_deref());
        let mut request = kube::core::Request::new(url)
            .patch(&d.name, params, &Patch::Apply(&d.object))
            .map_err(|e| Error::Desired {
                path: format!("{} {}", d.kind.kind, d.name),
                message: e.to_string(),
            })?;
        let header = http::HeaderValue::from_str(user).map_err(|e| Error::Desired {
            path: format!("{} {}", d.kind.kind, d.name),
            message: e.to_string(),
        })?;
        request.headers_mut().insert("Impersonate-User", header);
        self.client.request::<DynamicObject>(request).await?;
        Ok(())
    }

    /// Every object verbund manages within `scope`, of the kinds the agent applies. A
    /// kind the cluster does not serve (no External Secrets installed) has none. Within
    /// a scope of namespaces, each kind is listed in those namespaces only, and the
    /// namespaces themselves by name — never every namespace of the site — side by side.
    async fn existing(&self, scope: &Scope) -> Result<Vec<Existing>> {
        let mut lists = Vec::new();
        for kind in &kinds::APPLIED {
            match scope {
                Scope::All => lists.push((kind, None, ListParams::default().labels(MANAGED_BY))),
                Scope::Namespaces(set) => {
                    for namespace in set {
                        let params = ListParams::default().labels(MANAGED_BY);
                        if kind.namespaced {
                            lists.push((kind, Some(namespace.as_str()), params));
                        } else {
                            let by_name = params.fields(&format!("metadata.name={namespace}"));
                            lists.push((kind, None, by_name));
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        for chunk in lists.chunks(CONCURRENT_APPLIES) {
            let listed = futures::future::join_all(
                chunk.iter().map(|(kind, namespace, params)| async move {
                    self.api(kind, *namespace).list(params).await
                }),
            )
            .await;
            for (&(kind, _, _), list) in chunk.iter().zip(listed) {
                match list {
                    Ok(list) => out.extend(
                        list.items
                            .into_iter()
                            .filter(|o| scope.contains(kind, &o.metadata))
                            .map(|object| Existing { kind, object }),
                    ),
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(out)
    }
}

/// What one pass applies and prunes: the whole site, or only the bookings of some
/// namespaces (those a new commit changed, or removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Namespaces(BTreeSet<String>),
}

impl Scope {
    /// Whether an object of `kind` with `meta` lies in the scope.
    fn contains(&self, kind: &Kind, meta: &kube::api::ObjectMeta) -> bool {
        let Scope::Namespaces(set) = self else {
            return true;
        };
        let place = if kind.namespaced {
            meta.namespace.as_deref()
        } else if kind.kind == "Namespace" {
            meta.name.as_deref()
        } else {
            None
        };
        place.is_some_and(|p| set.contains(p))
    }

    /// The part of `desired` in the scope.
    fn select(&self, desired: DesiredState) -> DesiredState {
        let Scope::Namespaces(set) = self else {
            return desired;
        };
        let place = |o: &Value| {
            if is_namespace(o) {
                text_at(o, "/metadata/name").map(str::to_string)
            } else {
                text_at(o, "/metadata/namespace").map(str::to_string)
            }
        };
        DesiredState {
            objects: desired
                .objects
                .into_iter()
                .filter(|o| place(o).is_some_and(|p| set.contains(&p)))
                .collect(),
            tenants: desired
                .tenants
                .into_iter()
                .filter(|t| set.contains(&t.namespace))
                .collect(),
        }
    }
}

/// The text at `pointer` (a JSON pointer, `/metadata/name`) in `object`, if it is text.
pub(crate) fn text_at<'v>(object: &'v Value, pointer: &str) -> Option<&'v str> {
    object.pointer(pointer).and_then(Value::as_str)
}

/// Whether `o` is a Namespace.
fn is_namespace(o: &Value) -> bool {
    text_at(o, "/kind") == Some("Namespace") && text_at(o, "/apiVersion") == Some("v1")
}

/// How many objects of one kind are applied at once.
const CONCURRENT_APPLIES: usize = 16;

/// The labels of each booking namespace among `objects`, by name: what a booking's
/// vendor content is labelled with (verbund's `verbund.dev/*` and `managed-by`).
fn namespace_labels(objects: &[Value]) -> std::collections::BTreeMap<String, Map<String, Value>> {
    objects
        .iter()
        .filter(|o| is_namespace(o))
        .filter_map(|o| {
            let name = text_at(o, "/metadata/name")?.to_string();
            let labels: Map<String, Value> = o
                .pointer("/metadata/labels")?
                .as_object()?
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("verbund.dev/") || *k == "app.kubernetes.io/managed-by"
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Some((name, labels))
        })
        .collect()
}

/// `object` in `namespace`, with verbund's `labels` (which win over the vendor's), marked
/// to be applied as `user`.
fn placed(
    mut object: Value,
    namespace: &str,
    labels: Option<&Map<String, Value>>,
    user: &str,
) -> Value {
    if let Some(map) = object.as_object_mut() {
        let metadata = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert("namespace".into(), Value::String(namespace.to_string()));
            let existing = metadata
                .entry("labels")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(existing) = existing.as_object_mut() {
                existing.insert(
                    "app.kubernetes.io/managed-by".into(),
                    Value::String("verbund".into()),
                );
                for (k, v) in labels.into_iter().flatten() {
                    existing.insert(k.clone(), v.clone());
                }
            }
        }
        map.insert(AS_USER.into(), Value::String(user.to_string()));
    }
    object
}

/// A marker key (never sent) on vendor content: the user it is applied as.
const AS_USER: &str = "$verbund-apply-as";

/// Whether to apply `commit`, given the last applied commit and how long ago that was.
pub fn due(last: Option<(&str, Duration)>, commit: &str, resync: Duration) -> bool {
    match last {
        Some((applied, ago)) => applied != commit || ago >= resync,
        None => true,
    }
}

/// Fetches every `poll`, applies `folder` when the commit changed or `resync` has
/// passed since the last apply. Never returns; errors are logged.
pub async fn run(
    applier: Applier,
    repository: Repository,
    folder: String,
    poll: Duration,
    resync: Duration,
) {
    // The commit last applied, and when the site was last applied whole.
    let mut last: Option<(String, Instant)> = None;
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let commit = match repository.fetch().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "desired state not fetched");
                continue;
            }
        };
        if !due(
            last.as_ref().map(|(c, at)| (c.as_str(), at.elapsed())),
            &commit,
            resync,
        ) {
            continue;
        }
        // A new commit within the resync period applies only the bookings it changed;
        // otherwise the whole site, to take back drift.
        let scope = match &last {
            Some((previous, at)) if at.elapsed() < resync => {
                match repository
                    .changed_bookings(previous, &commit, &folder)
                    .await
                {
                    Ok(namespaces) => Scope::Namespaces(namespaces),
                    Err(e) => {
                        tracing::warn!(error = %e, "changes not read, applying the whole site");
                        Scope::All
                    }
                }
            }
            _ => Scope::All,
        };
        let started = Instant::now();
        let read = match &scope {
            Scope::All => repository.desired(&commit, &folder).await,
            Scope::Namespaces(namespaces) => {
                repository.desired_of(&commit, &folder, namespaces).await
            }
        };
        let desired = match read {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(commit = %commit, error = %e, "desired state unreadable, nothing applied");
                continue;
            }
        };
        let whole = scope == Scope::All;
        match applier.apply(desired, &scope).await {
            Ok(outcome) => {
                tracing::info!(
                    commit = %commit,
                    whole,
                    applied = outcome.applied,
                    pruned = outcome.pruned,
                    problems = outcome.problems.len(),
                    millis = started.elapsed().as_millis() as u64,
                    "desired state applied"
                );
                let at = match (&last, whole) {
                    (Some((_, at)), false) => *at,
                    _ => Instant::now(),
                };
                last = Some((commit, at));
            }
            Err(e) => tracing::warn!(commit = %commit, error = %e, "apply failed"),
        }
    }
}
