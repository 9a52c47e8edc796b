//! What runs on the site, as the control plane wants to hear it: reflector stores of the
//! cluster's objects ([`Stores`]) and a pure function from their snapshot to the report's
//! observations ([`observe`]).
//!
//! Why two halves: the stores are I/O (watches that follow the cluster), the reading is
//! a decision that tests pin down exactly from recorded API responses.
//!
//! # What is watched
//!
//! | store | selector | why |
//! | --- | --- | --- |
//! | Namespaces | label `verbund.dev/booking` | one per booking, its id in the label |
//! | Deployments, StatefulSets | all | Helm charts label their workloads their own way, so the booking's are those *in its namespace* |
//! | Jobs | label `verbund.dev/smoke-test=true` | the smoke tests |
//! | Jobs, Pods | label `verbund.dev/export=true` | data exports, with their pods' termination messages |
//! | HelmReleases (Flux), Applications (Argo CD) | all | the application's own verdict |
//! | Nodes | all | capacity, site health |
//! | Pods | not `Succeeded`/`Failed` | requests, for free capacity |
//!
//! # Rules
//!
//! - **applied_version** is the `verbund.dev/version` label (a semantic version, `_`
//!   read back as `+`) of what delivers the application, once it has acted on it:
//!   a HelmRelease whose `status.observedGeneration` is its generation and whose `Ready`
//!   is `True` or `False` (an attempt at this version finished); an Application that is
//!   `Synced`; otherwise (plain manifests) the label all of the namespace's labelled
//!   Deployments and StatefulSets agree on, each observed by its controller
//!   (`status.observedGeneration` ≥ generation). While an upgrade is still under way,
//!   or the workloads disagree, no version is reported: the control plane keeps waiting.
//!   (Except a HelmRelease whose in-flight change keeps the chart version of Helm's last
//!   deployed release, `status.history[0]`: a values change, not an upgrade; it reports
//!   its label, so that a running booking does not look gone during a reconfiguration.)
//!   Chart versions are not used: a verbund version is the offering's, not the chart's.
//! - **replicas**: `spec.replicas` (default 1) and `status.readyReplicas`, summed over the
//!   namespace's Deployments and StatefulSets.
//! - **conditions**: the HelmRelease's `Ready`; the Application's `Healthy`
//!   (`status.health.status` is `Healthy` → True, `Degraded`/`Missing` → False, else
//!   Unknown) and `Synced` (`Synced` → True, `OutOfSync` → False, else Unknown); each
//!   Deployment's `Available` (its message names the Deployment). At most 32.
//! - **smoke_test**: the smoke-test Job (`verbund.dev/smoke-test=true`) whose
//!   `verbund.dev/version` is the applied version: succeeded → passed, failed →
//!   failed, otherwise pending. The agent cannot know whether an offering has a smoke
//!   test, only whether a Job exists: a namespace without any smoke-test Job reports
//!   `none`; one with smoke-test Jobs but none for the applied version (the new Job not
//!   created yet) or without an applied version reports `pending`.
//! - **export**: the namespace's data-export Job of the highest attempt
//!   (`data-export-<n>`), if any: `Complete` → succeeded, `Failed` → failed (with the
//!   Job's or its pod's reason), otherwise running. The sums are its pod's termination
//!   message (`terminated.message` of the container `data-export`), read as
//!   [`ExportSums`]; a message that is not is reported as the message, without sums,
//!   which the control plane does not accept as verified.
//! - **site**: the API server's `/version`; free capacity is the allocatable of the
//!   Ready nodes minus the requests of the pods bound to them (not finished; per pod
//!   the larger of its containers' sum and its largest init container, plus overhead);
//!   storage is `ephemeral-storage` (persistent volumes are the storage system's,
//!   which the cluster does not account per node), 0 where nodes do not report it.
//!   Health: all nodes Ready → healthy, some → degraded, none (or no nodes) → unhealthy.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::{self, store::Writer, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;
use verbund_domain::ending::{ExportObservation, ExportStatus, ExportSums};
use verbund_domain::report::{
    BookingObservation, Condition, FreeCapacity, SiteHealth, SiteObservation, SmokeResult,
};

use crate::apply::text_at;
use crate::error::{Error, Result};
use crate::kinds;

pub const BOOKING_LABEL: &str = "verbund.dev/booking";
pub const VERSION_LABEL: &str = "verbund.dev/version";
pub const SMOKE_TEST_LABEL: &str = "verbund.dev/smoke-test";
pub const EXPORT_LABEL: &str = "verbund.dev/export";
/// The label the Job controller puts on a Job's pods.
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
const MAX_CONDITIONS: usize = 32;

/// Everything [`observe`] reads, at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub kubernetes_version: String,
    pub namespaces: Vec<Arc<Namespace>>,
    pub deployments: Vec<Arc<Deployment>>,
    pub stateful_sets: Vec<Arc<StatefulSet>>,
    pub jobs: Vec<Arc<Job>>,
    pub helm_releases: Vec<Arc<DynamicObject>>,
    pub applications: Vec<Arc<DynamicObject>>,
    pub nodes: Vec<Arc<Node>>,
    pub pods: Vec<Arc<Pod>>,
    pub export_jobs: Vec<Arc<Job>>,
    pub export_pods: Vec<Arc<Pod>>,
}

/// The site's condition and one observation per booking namespace, sorted by booking.
pub fn observe(s: &Snapshot) -> (SiteObservation, Vec<BookingObservation>) {
    (site(s), bookings(s))
}

// ------------------------------------------------------------------- bookings

fn bookings(s: &Snapshot) -> Vec<BookingObservation> {
    // Indexed once: a site has thousands of namespaces.
    let index = Index {
        deployments: by_namespace(&s.deployments),
        stateful_sets: by_namespace(&s.stateful_sets),
        jobs: by_namespace(&s.jobs),
        export_jobs: by_namespace(&s.export_jobs),
        export_pods: by_namespace(&s.export_pods),
        releases: by_namespace(&s.helm_releases),
        applications: by_label(&s.applications, BOOKING_LABEL),
    };
    let mut out: Vec<BookingObservation> = s
        .namespaces
        .iter()
        .filter_map(|ns| {
            let booking = ns.labels().get(BOOKING_LABEL)?.clone();
            let name = ns.metadata.name.as_deref()?;
            Some(booking_in(&index, &booking, name))
        })
        .collect();
    out.sort_by(|a, b| a.booking.cmp(&b.booking));
    out.dedup_by(|a, b| a.booking == b.booking);
    out
}

/// A snapshot's objects by namespace (Applications by booking label), each list sorted
/// by name: stores have no order, the report has one.
struct Index<'s> {
    deployments: BTreeMap<&'s str, Vec<Arc<Deployment>>>,
    stateful_sets: BTreeMap<&'s str, Vec<Arc<StatefulSet>>>,
    jobs: BTreeMap<&'s str, Vec<Arc<Job>>>,
    export_jobs: BTreeMap<&'s str, Vec<Arc<Job>>>,
    export_pods: BTreeMap<&'s str, Vec<Arc<Pod>>>,
    releases: BTreeMap<&'s str, Vec<Arc<DynamicObject>>>,
    applications: BTreeMap<&'s str, Vec<Arc<DynamicObject>>>,
}

fn group<'s, K: Resource>(
    objects: &'s [Arc<K>],
    key: impl Fn(&'s K) -> Option<&'s str>,
) -> BTreeMap<&'s str, Vec<Arc<K>>> {
    let mut out: BTreeMap<&str, Vec<Arc<K>>> = BTreeMap::new();
    for o in objects {
        if let Some(k) = key(o) {
            out.entry(k).or_default().push(o.clone());
        }
    }
    for list in out.values_mut() {
        list.sort_by(|a, b| {
            (&a.meta().namespace, &a.meta().name).cmp(&(&b.meta().namespace, &b.meta().name))
        });
    }
    out
}

fn by_namespace<K: Resource>(objects: &[Arc<K>]) -> BTreeMap<&str, Vec<Arc<K>>> {
    group(objects, |o| o.meta().namespace.as_deref())
}

fn by_label<'s, K: Resource>(objects: &'s [Arc<K>], label: &str) -> BTreeMap<&'s str, Vec<Arc<K>>> {
    group(objects, |o| {
        o.meta()
            .labels
            .as_ref()
            .and_then(|l| l.get(label))
            .map(String::as_str)
    })
}

fn booking_in(index: &Index<'_>, booking: &str, namespace: &str) -> BookingObservation {
    let deployments = index
        .deployments
        .get(namespace)
        .cloned()
        .unwrap_or_default();
    let stateful_sets = index
        .stateful_sets
        .get(namespace)
        .cloned()
        .unwrap_or_default();
    let releases = index.releases.get(namespace).cloned().unwrap_or_default();
    let jobs = index.jobs.get(namespace).cloned().unwrap_or_default();
    // Applications live in Argo CD's namespace; they carry the booking's label.
    let applications = index.applications.get(booking).cloned().unwrap_or_default();

    let mut desired = 0u32;
    let mut ready = 0u32;
    for d in &deployments {
        desired += replicas(d.spec.as_ref().and_then(|s| s.replicas));
        ready += deployment_ready(d);
    }
    for st in &stateful_sets {
        desired += replicas(st.spec.as_ref().and_then(|s| s.replicas));
        let status = st.status.as_ref();
        // Only pods of the current revision count (a StatefulSet updates in order).
        ready += replicas_seen(status.and_then(|s| s.ready_replicas))
            .min(replicas_seen(status.and_then(|s| s.updated_replicas)));
    }

    let mut conditions = Vec::new();
    let mut versions: Vec<Option<String>> = Vec::new();
    for r in &releases {
        let ready = dynamic_condition(r, "Ready");
        if let Some(c) = &ready {
            conditions.push(c.clone());
        }
        versions.push(helm_release_version(r, ready.as_ref()));
    }
    for a in &applications {
        let health = text_at(&a.data, "/status/health/status");
        let sync = text_at(&a.data, "/status/sync/status");
        let healthy = match health {
            Some("Healthy") => "True",
            Some("Degraded" | "Missing") => "False",
            _ => "Unknown",
        };
        let synced = match sync {
            Some("Synced") => "True",
            Some("OutOfSync") => "False",
            _ => "Unknown",
        };
        conditions.push(condition("Healthy", healthy, health, None));
        conditions.push(condition("Synced", synced, sync, None));
        versions.push(
            (sync == Some("Synced"))
                .then(|| label_version(a.labels()))
                .flatten(),
        );
    }
    if releases.is_empty() && applications.is_empty() {
        versions.push(workload_version(&deployments, &stateful_sets));
    }
    for d in &deployments {
        let name = d.metadata.name.as_deref().unwrap_or_default();
        let found = |kind: &str| {
            d.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        };
        // Available; and Progressing once it is False: Kubernetes' own verdict that a
        // rollout exceeded its `progressDeadlineSeconds` (a version that never comes up
        // while the old pods keep serving).
        let available = found("Available");
        let stalled = found("Progressing").filter(|c| c.status == "False");
        for c in available.into_iter().chain(stalled) {
            let message = match &c.message {
                Some(m) => format!("deployment {name}: {m}"),
                None => format!("deployment {name}"),
            };
            conditions.push(condition(
                &c.type_,
                &c.status,
                c.reason.as_deref(),
                Some(&message),
            ));
        }
    }
    conditions.truncate(MAX_CONDITIONS);

    // All that deliver the application must agree on the version.
    let applied_version = match versions.split_first() {
        Some((first, rest)) if rest.iter().all(|v| v == first) => first.clone(),
        _ => None,
    };
    let smoke_test = smoke(&jobs, applied_version.as_deref());
    let export = export(
        index
            .export_jobs
            .get(namespace)
            .map(Vec::as_slice)
            .unwrap_or_default(),
        index
            .export_pods
            .get(namespace)
            .map(Vec::as_slice)
            .unwrap_or_default(),
    );
    BookingObservation {
        export,
        booking: booking.to_string(),
        applied_version,
        desired_replicas: desired,
        ready_replicas: ready,
        conditions,
        smoke_test,
    }
}

/// The HelmRelease's version label once an attempt at its generation finished, or while
/// a change is under way that keeps the chart version Helm last deployed.
fn helm_release_version(r: &DynamicObject, ready: Option<&Condition>) -> Option<String> {
    let observed = r
        .data
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    let finished = ready.is_some_and(|c| c.status == "True" || c.status == "False");
    if finished && observed.is_some() && observed == r.metadata.generation {
        return label_version(r.labels());
    }
    let last_release = r.data.pointer("/status/history/0");
    let last = |field: &str| last_release?.get(field)?.as_str();
    let wanted = text_at(&r.data, "/spec/chart/spec/version");
    let same_chart =
        last("status") == Some("deployed") && wanted.is_some() && last("chartVersion") == wanted;
    same_chart.then(|| label_version(r.labels())).flatten()
}

/// The ready pods of a Deployment that run its current template. During a rolling
/// update the old pods stay ready while the new ones start, so `readyReplicas` alone would
/// call a version ready whose pods never come up: the old pods (`replicas -
/// updatedReplicas`) are taken off, and nothing counts before the controller has seen
/// the current generation.
fn deployment_ready(d: &Deployment) -> u32 {
    let Some(status) = d.status.as_ref() else {
        return 0;
    };
    let seen =
        status.observed_generation.is_some() && status.observed_generation >= d.metadata.generation;
    if !seen {
        return 0;
    }
    let total = replicas_seen(status.replicas);
    let updated = replicas_seen(status.updated_replicas);
    let old = total.saturating_sub(updated);
    replicas_seen(status.ready_replicas)
        .saturating_sub(old)
        .min(updated)
}

fn replicas(spec: Option<i32>) -> u32 {
    u32::try_from(spec.unwrap_or(1)).unwrap_or(0)
}

fn replicas_seen(status: Option<i32>) -> u32 {
    u32::try_from(status.unwrap_or(0)).unwrap_or(0)
}

/// The version label as a semantic version (the renderer writes `+` as `_`).
fn label_version(labels: &BTreeMap<String, String>) -> Option<String> {
    verbund_domain::catalog::version_from_label(labels.get(VERSION_LABEL)?)
}

/// The version the labelled workloads agree on, once each controller has seen it.
fn workload_version(
    deployments: &[Arc<Deployment>],
    stateful_sets: &[Arc<StatefulSet>],
) -> Option<String> {
    let mut versions = BTreeSet::new();
    let mut seen = true;
    for d in deployments {
        if let Some(v) = label_version(d.labels()) {
            versions.insert(v);
            let observed = d.status.as_ref().and_then(|s| s.observed_generation);
            seen &= observed.is_some() && observed >= d.metadata.generation;
        }
    }
    for st in stateful_sets {
        if let Some(v) = label_version(st.labels()) {
            versions.insert(v);
            let observed = st.status.as_ref().and_then(|s| s.observed_generation);
            seen &= observed.is_some() && observed >= st.metadata.generation;
        }
    }
    (seen && versions.len() == 1)
        .then(|| versions.pop_first())
        .flatten()
}

fn smoke(jobs: &[Arc<Job>], applied: Option<&str>) -> SmokeResult {
    let smoke_jobs: Vec<&Arc<Job>> = jobs
        .iter()
        .filter(|j| j.labels().get(SMOKE_TEST_LABEL).map(String::as_str) == Some("true"))
        .collect();
    if smoke_jobs.is_empty() {
        return SmokeResult::None;
    }
    let Some(applied) = applied else {
        return SmokeResult::Pending;
    };
    let Some(job) = smoke_jobs
        .iter()
        .find(|j| label_version(j.labels()).as_deref() == Some(applied))
    else {
        return SmokeResult::Pending;
    };
    let Some(status) = &job.status else {
        return SmokeResult::Pending;
    };
    let condition = |kind: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == kind && c.status == "True")
    };
    if condition("Failed") || status.failed.unwrap_or(0) > 0 {
        SmokeResult::Failed
    } else if condition("Complete") || status.succeeded.unwrap_or(0) > 0 {
        SmokeResult::Passed
    } else {
        SmokeResult::Pending
    }
}

/// The export Job of the highest attempt, as the report states it.
fn export(jobs: &[Arc<Job>], pods: &[Arc<Pod>]) -> Option<ExportObservation> {
    let attempt = |j: &Arc<Job>| {
        j.metadata
            .name
            .as_deref()
            .and_then(|n| n.strip_prefix("data-export-"))
            .and_then(|n| n.parse::<u32>().ok())
    };
    let job = jobs
        .iter()
        .filter(|j| attempt(j).is_some())
        .max_by_key(|j| attempt(j))?;
    let name = job.metadata.name.clone()?;
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    let found = |kind: &str| {
        conditions
            .into_iter()
            .flatten()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    let terminated = pods
        .iter()
        .filter(|p| p.labels().get(JOB_NAME_LABEL) == Some(&name))
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter(|c| c.name == "data-export")
        .find_map(|c| c.state.as_ref()?.terminated.clone());
    let said = terminated.as_ref().and_then(|t| t.message.clone());
    let (status, sums, message) = if let Some(failed) = found("Failed") {
        let why = failed.message.clone().or(failed.reason.clone());
        (ExportStatus::Failed, None, said.or(why))
    } else if found("Complete").is_some() {
        match said
            .as_deref()
            .map(str::trim)
            .map(serde_json::from_str::<ExportSums>)
        {
            Some(Ok(sums)) => (ExportStatus::Succeeded, Some(sums), None),
            Some(Err(e)) => (
                ExportStatus::Succeeded,
                None,
                Some(format!(
                    "its termination message is not the export's sums ({e})"
                )),
            ),
            None => (
                ExportStatus::Succeeded,
                None,
                Some("its pod left no termination message".to_string()),
            ),
        }
    } else {
        (ExportStatus::Running, None, None)
    };
    Some(ExportObservation {
        job: name,
        status,
        sums,
        message: message.map(|m| clean(&m, verbund_domain::ending::MESSAGE_MAX)),
    })
}

fn dynamic_condition(o: &DynamicObject, kind: &str) -> Option<Condition> {
    let c = o
        .data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| text_at(c, "/type") == Some(kind))?;
    Some(condition(
        kind,
        text_at(c, "/status").unwrap_or("Unknown"),
        text_at(c, "/reason"),
        text_at(c, "/message"),
    ))
}

fn condition(kind: &str, status: &str, reason: Option<&str>, message: Option<&str>) -> Condition {
    let status = match status {
        "True" | "False" => status,
        _ => "Unknown",
    };
    Condition {
        kind: kind.to_string(),
        status: status.to_string(),
        reason: reason.map(|r| clean(r, 200)),
        message: message.map(|m| clean(m, 1000)),
    }
}

/// Text the report accepts: no control characters, at most `max` bytes.
pub(crate) fn clean(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > max {
        let mut end = max;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

// ----------------------------------------------------------------------- site

fn site(s: &Snapshot) -> SiteObservation {
    let is_ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    let mut ready_nodes = BTreeSet::new();
    let mut not_ready = Vec::new();
    let (mut cpu, mut memory, mut storage) = (0f64, 0f64, 0f64);
    for n in &s.nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        if !is_ready(n) {
            not_ready.push(name);
            continue;
        }
        let allocatable = n.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let get = |key: &str| allocatable.and_then(|a| a.get(key)).map_or(0.0, quantity);
        cpu += get("cpu");
        memory += get("memory");
        storage += get("ephemeral-storage");
        ready_nodes.insert(name);
    }
    for p in &s.pods {
        let spec = p.spec.as_ref();
        let on_ready_node = spec
            .and_then(|s| s.node_name.as_ref())
            .is_some_and(|n| ready_nodes.contains(n));
        let finished = p
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|phase| phase == "Succeeded" || phase == "Failed");
        if !on_ready_node || finished {
            continue;
        }
        let requested = pod_requests(p);
        cpu -= requested[0];
        memory -= requested[1];
        storage -= requested[2];
    }
    let health = match (s.nodes.len(), not_ready.len()) {
        (0, _) => SiteHealth::Unhealthy,
        (_, 0) => SiteHealth::Healthy,
        (all, n) if n == all => SiteHealth::Unhealthy,
        _ => SiteHealth::Degraded,
    };
    let message = match health {
        _ if s.nodes.is_empty() => Some("no nodes".to_string()),
        SiteHealth::Healthy => None,
        _ => {
            let shown: Vec<&str> = not_ready.iter().take(10).map(String::as_str).collect();
            let more = not_ready.len().saturating_sub(shown.len());
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            Some(clean(
                &format!(
                    "{} of {} nodes not ready: {}{tail}",
                    not_ready.len(),
                    s.nodes.len(),
                    shown.join(", ")
                ),
                1000,
            ))
        }
    };
    let whole = |v: f64| if v > 0.0 { v.floor() as u64 } else { 0 };
    SiteObservation {
        kubernetes_version: clean(&s.kubernetes_version, 50),
        free: FreeCapacity {
            cpu_millis: whole(cpu * 1000.0 + 1e-6),
            memory_mib: whole(memory / f64::from(1u32 << 20)),
            storage_gib: whole(storage / f64::from(1u32 << 30)),
        },
        health,
        message,
    }
}

/// CPU (cores), memory and ephemeral storage (bytes) a pod requests.
fn pod_requests(p: &Pod) -> [f64; 3] {
    const KEYS: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];
    let Some(spec) = &p.spec else {
        return [0.0; 3];
    };
    let request = |c: &k8s_openapi::api::core::v1::Container, key: &str| {
        c.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(key))
            .map_or(0.0, quantity)
    };
    let mut out = [0.0; 3];
    for (slot, key) in out.iter_mut().zip(&KEYS) {
        let containers: f64 = spec.containers.iter().map(|c| request(c, key)).sum();
        let init = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| request(c, key))
            .fold(0.0, f64::max);
        let overhead = spec
            .overhead
            .as_ref()
            .and_then(|o| o.get(*key))
            .map_or(0.0, quantity);
        *slot = containers.max(init) + overhead;
    }
    out
}

/// A Kubernetes quantity in base units (cores, bytes); 0 if unreadable.
pub fn quantity(q: &Quantity) -> f64 {
    let s = q.0.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let Ok(number) = number.parse::<f64>() else {
        return 0.0;
    };
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => match exp[1..].parse::<i32>() {
            Ok(e) => 10f64.powi(e),
            Err(_) => return 0.0,
        },
        _ => return 0.0,
    };
    number * factor
}

// --------------------------------------------------------------------- stores

/// Reflector stores of what [`observe`] reads, kept current by watches.
#[derive(Clone)]
pub struct Stores {
    client: Client,
    namespaces: Store<Namespace>,
    deployments: Store<Deployment>,
    stateful_sets: Store<StatefulSet>,
    jobs: Store<Job>,
    helm_releases: Store<DynamicObject>,
    applications: Store<DynamicObject>,
    nodes: Store<Node>,
    pods: Store<Pod>,
    export_jobs: Store<Job>,
    export_pods: Store<Pod>,
}

impl Stores {
    /// Starts a watch per store on the runtime; they run until the process ends and
    /// restart with back-off after errors (a missing CRD only leaves its store empty
    /// and not ready: see [`Stores::wait_until_ready`]).
    pub fn start(client: Client) -> Self {
        fn spawn<K>(kind: String, api: Api<K>, config: watcher::Config, writer: Writer<K>)
        where
            K: Resource
                + Clone
                + serde::de::DeserializeOwned
                + std::fmt::Debug
                + Send
                + Sync
                + 'static,
            K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
        {
            let stream = watcher(api, config).default_backoff().reflect(writer);
            tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    if let Err(e) = event {
                        tracing::warn!(kind = %kind, error = %e, "watch failed, retrying");
                    }
                }
            });
        }
        fn typed<K>(client: &Client, config: watcher::Config) -> Store<K>
        where
            K: Resource<DynamicType = ()>
                + Clone
                + serde::de::DeserializeOwned
                + std::fmt::Debug
                + Send
                + Sync
                + 'static,
        {
            let (reader, writer) = reflector::store();
            spawn(
                K::kind(&()).to_string(),
                Api::<K>::all(client.clone()),
                config,
                writer,
            );
            reader
        }
        fn dynamic(client: &Client, resource: kube::core::ApiResource) -> Store<DynamicObject> {
            let writer = Writer::new(resource.clone());
            let reader = writer.as_reader();
            spawn(
                resource.kind.clone(),
                Api::<DynamicObject>::all_with(client.clone(), &resource),
                watcher::Config::default(),
                writer,
            );
            reader
        }
        let all = watcher::Config::default;
        Self {
            namespaces: typed(&client, all().labels(BOOKING_LABEL)),
            deployments: typed(&client, all()),
            stateful_sets: typed(&client, all()),
            jobs: typed(&client, all().labels(&format!("{SMOKE_TEST_LABEL}=true"))),
            helm_releases: dynamic(&client, kinds::helm_release()),
            applications: dynamic(&client, kinds::application()),
            nodes: typed(&client, all()),
            pods: typed(
                &client,
                all().fields("status.phase!=Succeeded,status.phase!=Failed"),
            ),
            export_jobs: typed(&client, all().labels(&format!("{EXPORT_LABEL}=true"))),
            export_pods: typed(&client, all().labels(&format!("{EXPORT_LABEL}=true"))),
            client,
        }
    }

    /// Waits until the core stores are filled; HelmReleases and Applications are not
    /// awaited, since a site runs only one of Flux and Argo CD (or neither).
    pub async fn wait_until_ready(&self) -> Result<()> {
        self.namespaces
            .wait_until_ready()
            .await
            .map_err(|_| Error::NotReady("namespaces"))?;
        self.deployments
            .wait_until_ready()
            .await
            .map_err(|_| Error::NotReady("deployments"))?;
        self.stateful_sets
            .wait_until_ready()
            .await
            .map_err(|_| Error::NotReady("statefulsets"))?;
        self.jobs
            .wait_until_ready()
            .await
            .map_err(|_| Error::NotReady("jobs"))?;
        self.nodes
            .wait_until_ready()
            .await
            .map_err(|_| Error::NotReady("nodes"))?;
        self.pods
            .wait_until_ready()
            .await
            .map_err(|_| Error::NotReady("pods"))?;
        self.export_jobs
            .wait_until_ready()
            .await
            .map_err(|_| Error::NotReady("export jobs"))?;
        self.export_pods
            .wait_until_ready()
            .await
            .map_err(|_| Error::NotReady("export pods"))?;
        Ok(())
    }

    /// The stores' content now, with the API server's version.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let version = self.client.apiserver_version().await?;
        Ok(Snapshot {
            kubernetes_version: version.git_version,
            namespaces: self.namespaces.state(),
            deployments: self.deployments.state(),
            stateful_sets: self.stateful_sets.state(),
            jobs: self.jobs.state(),
            helm_releases: self.helm_releases.state(),
            applications: self.applications.state(),
            nodes: self.nodes.state(),
            pods: self.pods.state(),
            export_jobs: self.export_jobs.state(),
            export_pods: self.export_pods.state(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(generation: i64, status: serde_json::Value) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "app", "generation": generation},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": status,
        }))
        .expect("a deployment")
    }

    #[test]
    fn only_ready_pods_of_the_current_template_count() {
        // Rolled out: both new pods ready.
        let done = deployment(
            3,
            serde_json::json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2}),
        );
        assert_eq!(deployment_ready(&done), 2);
        // A surge pod of a new version that never comes up: the two old pods are ready.
        let hanging = deployment(
            4,
            serde_json::json!({"observedGeneration": 4, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 2}),
        );
        assert_eq!(deployment_ready(&hanging), 0);
        // Half way: one new ready, one old ready.
        let half = deployment(
            4,
            serde_json::json!({"observedGeneration": 4, "replicas": 2, "updatedReplicas": 1, "readyReplicas": 2}),
        );
        assert_eq!(deployment_ready(&half), 1);
        // The controller has not seen the new generation yet.
        let unseen = deployment(
            5,
            serde_json::json!({"observedGeneration": 4, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2}),
        );
        assert_eq!(deployment_ready(&unseen), 0);
    }

    fn export_job(attempt: u32, condition: Option<&str>) -> Arc<Job> {
        let conditions: Vec<serde_json::Value> = condition
            .map(
                |c| serde_json::json!({"type": c, "status": "True", "message": "DeadlineExceeded"}),
            )
            .into_iter()
            .collect();
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("data-export-{attempt}"), "namespace": "ns",
                             "labels": {"verbund.dev/export": "true"}},
                "status": {"conditions": conditions}
            }))
            .unwrap_or_default(),
        )
    }

    fn export_pod(attempt: u32, message: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("data-export-{attempt}-x"), "namespace": "ns",
                             "labels": {"batch.kubernetes.io/job-name": format!("data-export-{attempt}")}},
                "status": {"containerStatuses": [{
                    "name": "data-export", "image": "i", "imageID": "", "ready": false,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "message": message}}
                }]}
            }))
            .unwrap_or_default(),
        )
    }

    #[test]
    fn the_export_is_the_latest_attempts_job_with_its_pods_sums() {
        let a = "a".repeat(64);
        let sums = format!(r#"{{"sha256":"{a}","read_back_sha256":"{a}","bytes":42}}"#);
        assert_eq!(export(&[], &[]), None);
        let seen = export(
            &[
                export_job(1, Some("Failed")),
                export_job(2, Some("Complete")),
            ],
            &[
                export_pod(1, "AccessDenied"),
                export_pod(2, &format!("{sums}\n")),
            ],
        )
        .unwrap_or_else(|| panic!("no export"));
        assert_eq!(seen.job, "data-export-2");
        assert_eq!(seen.status, ExportStatus::Succeeded);
        assert_eq!(seen.sums.map(|s| s.bytes), Some(42));

        let failed = export(
            &[export_job(1, Some("Failed"))],
            &[export_pod(1, "AccessDenied")],
        )
        .unwrap_or_else(|| panic!("no export"));
        assert_eq!(failed.status, ExportStatus::Failed);
        assert_eq!(failed.message.as_deref(), Some("AccessDenied"));

        let garbled = export(&[export_job(3, Some("Complete"))], &[export_pod(3, "done")])
            .unwrap_or_else(|| panic!("no export"));
        assert_eq!(
            (garbled.status, garbled.sums),
            (ExportStatus::Succeeded, None)
        );
        assert!(garbled
            .message
            .unwrap_or_default()
            .contains("not the export's sums"));

        let running = export(&[export_job(1, None)], &[]).unwrap_or_else(|| panic!("no export"));
        assert_eq!(running.status, ExportStatus::Running);
    }
}
