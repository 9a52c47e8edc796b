//! The NetworkPolicy probe: proves that the cluster's network enforces NetworkPolicy,
//! which is what keeps one booking's namespace from another's.
//!
//! In a temporary namespace of its own (`verbund-preflight-<hex>`, Pod Security
//! `restricted`, labelled `app.kubernetes.io/managed-by=verbund` and
//! `verbund.dev/preflight=probe`) it runs a small HTTP server pod and, once that is Ready,
//! two client Jobs with the same image: one that a NetworkPolicy allows to reach the
//! server and one that only the namespace's default-deny policy applies to. A client
//! succeeds when it connected. Enforcement is proven when the allowed client connects
//! and the denied one does not; both connecting means NetworkPolicy is not enforced;
//! neither means the probe itself does not work.
//!
//! The namespace is always deleted afterwards — after success, failure, a timeout or an
//! interruption — and the probe waits (up to its timeout) until it is gone. A namespace
//! left by a probe that was killed outright carries an expiry annotation; the next probe
//! on the cluster deletes it.
//!
//! The objects are built by pure functions ([`namespace`], [`policies`], [`server`],
//! [`client_job`]) and [`connection`] reads a Job's result; only [`run`] talks to the
//! cluster.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, Namespace, Pod,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe as ReadinessProbe, ResourceRequirements,
    SeccompProfile, SecurityContext, ServiceAccount, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::Client;

use super::describe;

/// The image of the probe's server and clients: a small one with `httpd` and `wget`.
pub const DEFAULT_IMAGE: &str = "docker.io/library/busybox:1.37";
/// How long the probe may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The prefix of the probe's namespaces.
pub const NAMESPACE_PREFIX: &str = "verbund-preflight-";
/// The label every object of the probe carries (value `probe`).
pub const PROBE_LABEL: &str = "verbund.dev/preflight";
/// The label that tells the probe's pods apart (`server`, `allowed`, `denied`).
pub const ROLE_LABEL: &str = "verbund.dev/preflight-role";
/// When (Unix seconds) a probe's namespace is surely abandoned and may be swept.
pub const EXPIRES_ANNOTATION: &str = "verbund.dev/preflight-expires";
/// The server's port.
pub const PORT: i32 = 8080;
/// The names of the probe's objects.
pub const SERVER: &str = "server";
pub const ALLOWED: &str = "allowed";
pub const DENIED: &str = "denied";

/// The user the probe's containers run as (busybox's `nobody`).
const NOBODY: i64 = 65534;
/// How often the probe looks at its objects.
const POLL: Duration = Duration::from_millis(500);

/// How the probe runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    /// The image of the server and the clients; it needs `sh`, `httpd` and `wget`
    /// (busybox has them).
    pub image: String,
    /// How long the server may take to become Ready and the clients to finish; the
    /// namespace's deletion is waited for as long again.
    pub timeout: Duration,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            image: DEFAULT_IMAGE.to_string(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// What one client Job found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// It reached the server.
    Connected,
    /// It did not (refused, dropped or timed out on every attempt).
    Refused,
    /// It had no result in time.
    Unfinished,
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Both clients ran (or ran out of time).
    Ran {
        allowed: Connection,
        denied: Connection,
    },
    /// The probe could not run its clients; the sentence says why.
    CouldNotRun(String),
}

/// The probe's outcome, and what became of its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub outcome: Outcome,
    pub namespace: String,
    /// Whether the namespace was gone when the probe returned (else it is still being
    /// deleted by the cluster).
    pub removed: bool,
    /// Abandoned probe namespaces of earlier runs that were deleted.
    pub swept: Vec<String>,
    /// Whether it was interrupted (its outcome then proves nothing either way).
    pub interrupted: bool,
}

fn labels(role: Option<&str>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            "verbund".to_string(),
        ),
        (
            "app.kubernetes.io/part-of".to_string(),
            "verbund".to_string(),
        ),
        (PROBE_LABEL.to_string(), "probe".to_string()),
    ]);
    if let Some(role) = role {
        l.insert(ROLE_LABEL.to_string(), role.to_string());
    }
    l
}

fn role_selector(role: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(ROLE_LABEL.to_string(), role.to_string())])),
        ..LabelSelector::default()
    }
}

/// A fresh namespace name, `verbund-preflight-<12 hex digits>`.
pub fn namespace_name(now: SystemTime) -> String {
    let nanos = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 40);
    format!("{NAMESPACE_PREFIX}{:012x}", mixed & 0xffff_ffff_ffff)
}

/// The probe's namespace: Pod Security `restricted`, verbund's labels, and the time after
/// which any later probe may delete it.
pub fn namespace(name: &str, expires_unix: u64) -> Namespace {
    let mut l = labels(None);
    l.insert(
        "pod-security.kubernetes.io/enforce".to_string(),
        "restricted".to_string(),
    );
    l.insert(
        "pod-security.kubernetes.io/enforce-version".to_string(),
        "latest".to_string(),
    );
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(l),
            annotations: Some(BTreeMap::from([(
                EXPIRES_ANNOTATION.to_string(),
                expires_unix.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// Default deny for every pod's ingress, and the one allowance: the `allowed` client to
/// the server's port.
pub fn policies() -> [NetworkPolicy; 2] {
    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(labels(None)),
        ..ObjectMeta::default()
    };
    [
        NetworkPolicy {
            metadata: meta("default-deny"),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(vec!["Ingress".to_string()]),
                ..NetworkPolicySpec::default()
            }),
        },
        NetworkPolicy {
            metadata: meta("allow-client"),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(role_selector(SERVER)),
                policy_types: Some(vec!["Ingress".to_string()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(role_selector(ALLOWED)),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![NetworkPolicyPort {
                        port: Some(IntOrString::Int(PORT)),
                        protocol: Some("TCP".to_string()),
                        ..NetworkPolicyPort::default()
                    }]),
                }]),
                ..NetworkPolicySpec::default()
            }),
        },
    ]
}

/// What Pod Security `restricted` asks of a pod: not root, the runtime's seccomp
/// profile; and no service account token, which the probe does not need.
fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NOBODY),
        run_as_group: Some(NOBODY),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// … and of a container: no privilege escalation, no capabilities.
fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Capabilities::default()
        }),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        ..SecurityContext::default()
    }
}

fn small() -> ResourceRequirements {
    let q = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.to_string())),
            ("memory".to_string(), Quantity(memory.to_string())),
        ])
    };
    ResourceRequirements {
        requests: Some(q("10m", "16Mi")),
        limits: Some(q("100m", "32Mi")),
        ..ResourceRequirements::default()
    }
}

/// The server: busybox `httpd` on [`PORT`], serving one file from an `emptyDir`.
pub fn server(image: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(SERVER.to_string()),
            labels: Some(labels(Some(SERVER))),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            security_context: Some(pod_security()),
            containers: vec![Container {
                name: SERVER.to_string(),
                image: Some(image.to_string()),
                command: Some(vec![
                    "sh".to_string(),
                    "-c".to_string(),
                    format!("echo verbund-preflight > /srv/index.html && exec httpd -f -p {PORT} -h /srv"),
                ]),
                ports: Some(vec![ContainerPort {
                    container_port: PORT,
                    protocol: Some("TCP".to_string()),
                    ..ContainerPort::default()
                }]),
                readiness_probe: Some(ReadinessProbe {
                    tcp_socket: Some(TCPSocketAction {
                        port: IntOrString::Int(PORT),
                        ..TCPSocketAction::default()
                    }),
                    period_seconds: Some(1),
                    ..ReadinessProbe::default()
                }),
                security_context: Some(container_security()),
                resources: Some(small()),
                volume_mounts: Some(vec![VolumeMount {
                    name: "srv".to_string(),
                    mount_path: "/srv".to_string(),
                    ..VolumeMount::default()
                }]),
                ..Container::default()
            }],
            volumes: Some(vec![Volume {
                name: "srv".to_string(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// The server's URL at `ip` (IPv6 in brackets).
pub fn server_url(ip: &str) -> String {
    if ip.contains(':') {
        format!("http://[{ip}]:{PORT}/")
    } else {
        format!("http://{ip}:{PORT}/")
    }
}

/// A client Job labelled `role` (`allowed` or `denied`): it tries three times to fetch
/// `url` and succeeds when one try connected. It runs once (no retries of the pod) and
/// at most `timeout`.
pub fn client_job(role: &str, image: &str, url: &str, timeout: Duration) -> Job {
    let script = "sleep 2; for i in 1 2 3; do wget -q -T 3 -O /dev/null \"$URL\" && exit 0; sleep 2; done; exit 1";
    Job {
        metadata: ObjectMeta {
            name: Some(role.to_string()),
            labels: Some(labels(Some(role))),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(
                i64::try_from(timeout.as_secs().max(1)).unwrap_or(i64::MAX),
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(Some(role))),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_string()),
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security()),
                    containers: vec![Container {
                        name: "client".to_string(),
                        image: Some(image.to_string()),
                        command: Some(vec!["sh".to_string(), "-c".to_string(), script.to_string()]),
                        env: Some(vec![EnvVar {
                            name: "URL".to_string(),
                            value: Some(url.to_string()),
                            ..EnvVar::default()
                        }]),
                        security_context: Some(container_security()),
                        resources: Some(small()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// A client Job's result so far: `None` while it runs.
pub fn connection(status: Option<&JobStatus>) -> Option<Connection> {
    let status = status?;
    if status.succeeded.unwrap_or(0) > 0 {
        return Some(Connection::Connected);
    }
    let failed = status
        .conditions
        .iter()
        .flatten()
        .find(|c| matches!(c.type_.as_str(), "Failed" | "FailureTarget") && c.status == "True");
    match failed {
        // Stopped by its deadline: the client never had its say.
        Some(c) if c.reason.as_deref() == Some("DeadlineExceeded") => Some(Connection::Unfinished),
        Some(_) => Some(Connection::Refused),
        None if status.failed.unwrap_or(0) > 0 => Some(Connection::Refused),
        None => None,
    }
}

/// Whether a pod is Ready, and its IP.
fn ready_ip(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    ready.then(|| status.pod_ip.clone()).flatten()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs the probe; the namespace is deleted however it ends (`interrupted` included).
pub async fn run(
    client: &Client,
    settings: &ProbeSettings,
    interrupted: impl Future<Output = ()>,
) -> Probe {
    let swept = sweep(client).await;
    let name = namespace_name(SystemTime::now());
    // Long enough for this probe and its cleanup, short enough that a killed probe's
    // namespace goes with the next run.
    let expires = unix_now() + 2 * settings.timeout.as_secs() + 60;
    let (outcome, interrupted) = tokio::select! {
        outcome = probe(client, settings, &name, expires) => (outcome, false),
        () = interrupted => (Outcome::CouldNotRun("the probe was interrupted".into()), true),
    };
    let removed = remove(client, &name, settings.timeout).await;
    tracing::info!(namespace = %name, removed, ?outcome, "NetworkPolicy probe done");
    Probe {
        outcome,
        namespace: name,
        removed,
        swept,
        interrupted,
    }
}

/// Everything of the probe between creating its namespace and deleting it.
async fn probe(client: &Client, settings: &ProbeSettings, name: &str, expires: u64) -> Outcome {
    let deadline = Instant::now() + settings.timeout;
    let pp = PostParams::default();
    let create = async {
        Api::<Namespace>::all(client.clone())
            .create(&pp, &namespace(name, expires))
            .await?;
        let policies_api = Api::<NetworkPolicy>::namespaced(client.clone(), name);
        for p in policies() {
            policies_api.create(&pp, &p).await?;
        }
        Ok::<_, kube::Error>(())
    };
    if let Err(e) = create.await {
        return Outcome::CouldNotRun(format!("cannot create its objects: {}", describe(&e)));
    }
    // Pods are refused until the controller-manager has made the namespace's default
    // ServiceAccount (which they are admitted under, although they mount no token).
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), name);
    loop {
        match accounts.get_opt("default").await {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
            Ok(None) => {
                return Outcome::CouldNotRun(format!(
                    "its namespace got no default ServiceAccount within {}s; is the controller-manager running?",
                    settings.timeout.as_secs()
                ))
            }
            Err(e) => return Outcome::CouldNotRun(format!("cannot read its namespace's ServiceAccount: {}", describe(&e))),
        }
    }
    if let Err(e) = Api::<Pod>::namespaced(client.clone(), name)
        .create(&pp, &server(&settings.image))
        .await
    {
        return Outcome::CouldNotRun(format!("cannot create its server pod: {}", describe(&e)));
    }
    let pods = Api::<Pod>::namespaced(client.clone(), name);
    let ip = loop {
        match pods.get_opt(SERVER).await {
            Ok(Some(pod)) => {
                if let Some(ip) = ready_ip(&pod) {
                    break ip;
                }
            }
            Ok(None) => return Outcome::CouldNotRun("its server pod disappeared".into()),
            Err(e) => {
                return Outcome::CouldNotRun(format!(
                    "cannot read its server pod: {}",
                    describe(&e)
                ))
            }
        }
        if Instant::now() >= deadline {
            return Outcome::CouldNotRun(format!(
                "its server pod did not become Ready within {}s; check that the cluster can pull `{}` and schedule pods",
                settings.timeout.as_secs(),
                settings.image
            ));
        }
        tokio::time::sleep(POLL).await;
    };
    let url = server_url(&ip);
    let jobs = Api::<Job>::namespaced(client.clone(), name);
    let left = deadline.saturating_duration_since(Instant::now());
    for role in [ALLOWED, DENIED] {
        if let Err(e) = jobs
            .create(&pp, &client_job(role, &settings.image, &url, left))
            .await
        {
            return Outcome::CouldNotRun(format!(
                "cannot create its {role} client: {}",
                describe(&e)
            ));
        }
    }
    let mut results: [Option<Connection>; 2] = [None, None];
    loop {
        for (result, role) in results.iter_mut().zip([ALLOWED, DENIED]) {
            if result.is_some() {
                continue;
            }
            match jobs.get_opt(role).await {
                Ok(Some(job)) => *result = connection(job.status.as_ref()),
                Ok(None) => return Outcome::CouldNotRun(format!("its {role} client disappeared")),
                Err(e) => {
                    return Outcome::CouldNotRun(format!(
                        "cannot read its {role} client: {}",
                        describe(&e)
                    ))
                }
            }
        }
        if let [Some(allowed), Some(denied)] = results {
            return Outcome::Ran { allowed, denied };
        }
        if Instant::now() >= deadline {
            return Outcome::Ran {
                allowed: results[0].unwrap_or(Connection::Unfinished),
                denied: results[1].unwrap_or(Connection::Unfinished),
            };
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Deletes the namespace (if it was made) and waits up to `wait` until it is gone.
async fn remove(client: &Client, name: &str, wait: Duration) -> bool {
    let namespaces = Api::<Namespace>::all(client.clone());
    match namespaces.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return true,
        Err(e) => {
            tracing::warn!(namespace = %name, error = %describe(&e), "cannot delete the probe's namespace");
            return false;
        }
    }
    let deadline = Instant::now() + wait.max(Duration::from_secs(10));
    loop {
        match namespaces.get_opt(name).await {
            Ok(None) => return true,
            Ok(Some(_)) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
            Ok(Some(_)) => {
                tracing::warn!(namespace = %name, "the probe's namespace is still being deleted");
                return false;
            }
            Err(e) => {
                tracing::warn!(namespace = %name, error = %describe(&e), "cannot see whether the probe's namespace is gone");
                return false;
            }
        }
    }
}

/// Deletes probe namespaces whose expiry has passed (left by a probe that was killed).
async fn sweep(client: &Client) -> Vec<String> {
    let namespaces = Api::<Namespace>::all(client.clone());
    let list = match namespaces
        .list(&ListParams::default().labels(&format!("{PROBE_LABEL}=probe")))
        .await
    {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %describe(&e), "cannot list earlier probes' namespaces");
            return Vec::new();
        }
    };
    let now = unix_now();
    let mut swept = Vec::new();
    for ns in list.items {
        let Some(name) = ns.metadata.name.clone() else {
            continue;
        };
        let expired = ns
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(EXPIRES_ANNOTATION))
            .and_then(|e| e.parse::<u64>().ok())
            .is_none_or(|e| e < now);
        let deleting = ns.metadata.deletion_timestamp.is_some();
        if expired && !deleting && name.starts_with(NAMESPACE_PREFIX) {
            match namespaces.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {
                    tracing::info!(namespace = %name, "deleted an abandoned probe namespace");
                    swept.push(name);
                }
                Err(e) => {
                    tracing::warn!(namespace = %name, error = %describe(&e), "cannot delete an abandoned probe namespace")
                }
            }
        }
    }
    swept
}
