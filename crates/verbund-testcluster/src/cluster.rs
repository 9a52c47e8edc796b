//! `Cluster`: starts etcd, the API server, the controller-manager, the scheduler and kwok
//! on free loopback ports in a fresh temporary folder, bootstraps what a site has, and
//! stops everything again on drop.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bootstrap;
use crate::env::TestEnv;
use crate::flux::{self, FluxControllers};
use crate::kubeconfig;
use crate::pki::{Pki, PkiFiles};
use crate::probe::{self, Prober};
use crate::process::{self, free_ports, Process, STOP_GRACE};
use crate::{Error, Result};

/// The prefix of the clusters' temporary folders.
const DIR_PREFIX: &str = "verbund-testcluster-";

/// The service network; its first address (`10.96.0.1`) is the `kubernetes` service.
pub const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16";
/// The pod network kwok hands pod IPs out of.
pub const POD_CIDR: &str = "10.244.0.1/16";
/// The service-account token issuer.
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// What [`Cluster::start`] creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// How many kwok nodes (default 3).
    pub nodes: usize,
    /// CPU capacity of each node (default `32`).
    pub node_cpu: String,
    /// Memory capacity of each node (default `128Gi`).
    pub node_memory: String,
    /// Pod capacity of each node (default 110).
    pub node_pods: u32,
    /// Ephemeral storage capacity of each node (default `1Ti`).
    pub node_ephemeral_storage: String,
    /// The nodes' `topology.kubernetes.io/region` (default `de-1`); their zones are
    /// `<region>-a`, `-b`, `-c`, … in turn.
    pub region: String,
    /// How long each start-up step may take (default 120 s: generous for a loaded
    /// 2-core machine).
    pub step_timeout: Duration,
    /// Whether pods labelled `kwok.verbund.dev/ready: never` never turn Ready (default
    /// true): a version that never comes up. A cluster that does not honour the label
    /// runs them like any pod (e.g. a test environment where the version works).
    pub never_ready: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            node_cpu: "32".to_owned(),
            node_memory: "128Gi".to_owned(),
            node_pods: 110,
            node_ephemeral_storage: "1Ti".to_owned(),
            region: "de-1".to_owned(),
            step_timeout: Duration::from_secs(120),
            never_ready: true,
        }
    }
}

/// The loopback ports of one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// etcd's client URL.
    pub etcd_client: u16,
    /// etcd's peer URL.
    pub etcd_peer: u16,
    /// etcd's metrics and `/health`.
    pub etcd_metrics: u16,
    /// The API server (HTTPS).
    pub apiserver: u16,
    /// The controller-manager's secure port (`/healthz`, `/metrics`).
    pub controller_manager: u16,
    /// The scheduler's secure port (`/healthz`, `/metrics`).
    pub scheduler: u16,
    /// kwok's health and metrics server (HTTP).
    pub kwok: u16,
}

/// A private Kubernetes control plane with kwok nodes. Dropping it stops every process
/// and removes its folder (kept with `VERBUND_KEEP_CLUSTER=1`).
pub struct Cluster {
    env: TestEnv,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    kubeconfig: PathBuf,
    config: kube::Config,
    server_url: String,
    ca_pem: String,
    ports: Ports,
    nodes: Vec<String>,
    crds: Vec<String>,
    startup: Duration,
    processes: Vec<Process>,
}

/// What is known once the API server answers.
struct Plane {
    pki: PkiFiles,
    ports: Ports,
    prober: Prober,
    timeout: Duration,
}

impl Cluster {
    /// Starts a cluster with the test environment found by [`TestEnv::locate`].
    pub async fn start(options: ClusterOptions) -> Result<Cluster> {
        Cluster::start_with_env(TestEnv::locate()?, options).await
    }

    /// Starts a cluster with the binaries and CRDs of `env`.
    pub async fn start_with_env(env: TestEnv, options: ClusterOptions) -> Result<Cluster> {
        let started = Instant::now();
        process::sweep_abandoned_dirs(&std::env::temp_dir(), DIR_PREFIX);
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|source| Error::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let root = dir.path().to_path_buf();
        process::register_dir(&root);
        process::own_dir(&root)?;
        for sub in ["pki", "logs", "etcd", "certs"] {
            create_dir(&root.join(sub))?;
        }

        let pki = Pki::generate()?;
        let pki_files = pki.write(&root.join("pki"))?;
        let [etcd_client, etcd_peer, etcd_metrics, apiserver, controller_manager, scheduler, kwok] =
            free_ports::<7>()?;
        let ports = Ports {
            etcd_client,
            etcd_peer,
            etcd_metrics,
            apiserver,
            controller_manager,
            scheduler,
            kwok,
        };
        let server_url = format!("https://127.0.0.1:{apiserver}");
        let kubeconfig_path = root.join("kubeconfig");
        kubeconfig::write(&kubeconfig_path, &server_url, &pki)?;
        let config = kubeconfig::load(&kubeconfig_path).await?;

        let mut cluster = Cluster {
            env,
            dir: Some(dir),
            root,
            kubeconfig: kubeconfig_path,
            config,
            server_url,
            ca_pem: pki.ca_cert.clone(),
            ports,
            nodes: Vec::new(),
            crds: Vec::new(),
            startup: Duration::ZERO,
            processes: Vec::new(),
        };
        let plane = Plane {
            pki: pki_files,
            ports,
            prober: Prober::new(&pki.ca_cert)?,
            timeout: options.step_timeout,
        };
        cluster.start_etcd(&plane).await?;
        cluster.start_apiserver(&plane).await?;
        cluster
            .start_controllers_and_bootstrap(&plane, &options)
            .await?;
        cluster.startup = started.elapsed();
        tracing::info!(
            server = cluster.server_url.as_str(),
            dir = %cluster.root.display(),
            nodes = cluster.nodes.len(),
            crds = cluster.crds.len(),
            startup_ms = cluster.startup.as_millis() as u64,
            "test cluster started"
        );
        Ok(cluster)
    }

    async fn start_etcd(&mut self, plane: &Plane) -> Result<()> {
        let ports = plane.ports;
        let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
        let client = format!("http://127.0.0.1:{}", ports.etcd_client);
        let args = vec![
            "--name=default".to_owned(),
            format!("--data-dir={}", self.root.join("etcd").display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=default={peer}"),
            "--initial-cluster-state=new".to_owned(),
            format!(
                "--listen-metrics-urls=http://127.0.0.1:{}",
                ports.etcd_metrics
            ),
            "--unsafe-no-fsync=true".to_owned(),
            "--log-level=warn".to_owned(),
        ];
        let mut etcd = self.spawn("etcd", &args, &[])?;
        let health = format!("http://127.0.0.1:{}/health", ports.etcd_metrics);
        let prober = plane.prober.clone();
        probe::until_ready(&mut etcd, plane.timeout, || prober.ok(&health)).await?;
        self.processes.push(etcd);
        Ok(())
    }

    async fn start_apiserver(&mut self, plane: &Plane) -> Result<()> {
        let pki = &plane.pki;
        let args = vec![
            format!(
                "--etcd-servers=http://127.0.0.1:{}",
                plane.ports.etcd_client
            ),
            format!("--secure-port={}", plane.ports.apiserver),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--cert-dir={}", self.root.join("certs").display()),
            format!("--client-ca-file={}", pki.ca_cert.display()),
            format!("--tls-cert-file={}", pki.serving_cert.display()),
            format!("--tls-private-key-file={}", pki.serving_key.display()),
            format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
            format!(
                "--service-account-key-file={}",
                pki.service_account_public_key.display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                pki.service_account_key.display()
            ),
            format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
            "--authorization-mode=RBAC".to_owned(),
            // The `kubernetes` Service keeps its ClusterIP, but a loopback address is not a
            // valid endpoint: the default reconciler would log a refused update every 10 s.
            "--endpoint-reconciler-type=none".to_owned(),
            // As on a real cluster: privileged pods are the admission's (PodSecurity's)
            // to refuse, not the API server's validation.
            "--allow-privileged=true".to_owned(),
            "--profiling=false".to_owned(),
        ];
        let mut apiserver = self.spawn("kube-apiserver", &args, &[])?;
        let client = self.client_checked()?;
        probe::until_ready(&mut apiserver, plane.timeout, || {
            let client = client.clone();
            async move {
                let request = http::Request::get("/readyz").body(Vec::new());
                let Ok(request) = request else { return false };
                matches!(
                    tokio::time::timeout(Duration::from_secs(2), client.request_text(request)).await,
                    Ok(Ok(body)) if body.trim() == "ok"
                )
            }
        })
        .await?;
        self.processes.push(apiserver);
        Ok(())
    }

    /// Starts the controller-manager, the scheduler and kwok, and meanwhile applies the
    /// CRDs, the site basics and the nodes; then waits for all of it.
    async fn start_controllers_and_bootstrap(
        &mut self,
        plane: &Plane,
        options: &ClusterOptions,
    ) -> Result<()> {
        let pki = &plane.pki;
        let kubeconfig = self.kubeconfig.display().to_string();
        let secure_serving = |port: u16| {
            vec![
                format!("--kubeconfig={kubeconfig}"),
                format!("--authentication-kubeconfig={kubeconfig}"),
                format!("--authorization-kubeconfig={kubeconfig}"),
                "--leader-elect=false".to_owned(),
                "--bind-address=127.0.0.1".to_owned(),
                format!("--secure-port={port}"),
                format!("--tls-cert-file={}", pki.serving_cert.display()),
                format!("--tls-private-key-file={}", pki.serving_key.display()),
                "--profiling=false".to_owned(),
            ]
        };
        let mut kcm_args = secure_serving(plane.ports.controller_manager);
        kcm_args.extend([
            format!(
                "--service-account-private-key-file={}",
                pki.service_account_key.display()
            ),
            format!("--root-ca-file={}", pki.ca_cert.display()),
            "--use-service-account-credentials=false".to_owned(),
            format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
            "--controllers=*".to_owned(),
        ]);
        let mut kcm = self.spawn("kube-controller-manager", &kcm_args, &[])?;
        let mut scheduler = self.spawn(
            "kube-scheduler",
            &secure_serving(plane.ports.scheduler),
            &[],
        )?;
        let kwok_config = self.root.join("kwok.yaml");
        crate::write_file(
            &kwok_config,
            kwok_configuration(options.never_ready).as_bytes(),
            0o644,
        )?;
        let kwok_args = vec![
            format!("--kubeconfig={kubeconfig}"),
            format!("--config={}", kwok_config.display()),
            "--manage-all-nodes=false".to_owned(),
            format!(
                "--manage-nodes-with-annotation-selector={}={}",
                bootstrap::KWOK_NODE_ANNOTATION,
                bootstrap::KWOK_NODE_VALUE
            ),
            "--manage-nodes-with-label-selector=".to_owned(),
            format!("--cidr={POD_CIDR}"),
            "--node-ip=127.0.0.1".to_owned(),
            "--node-lease-duration-seconds=40".to_owned(),
            format!("--server-address=127.0.0.1:{}", plane.ports.kwok),
        ];
        // kwok also loads `~/.kwok/kwok.yaml` if there is one: its home is the folder.
        let kwok_home = [("HOME", self.root.as_os_str().to_owned())];
        let mut kwok = self.spawn("kwok", &kwok_args, &kwok_home)?;

        let client = self.client_checked()?;
        let crd_files = self.env.crd_files()?;
        self.crds = bootstrap::apply_crds(&client, &crd_files).await?;
        bootstrap::apply_site_basics(&client).await?;
        self.nodes = bootstrap::create_nodes(&client, options).await?;

        let prober = &plane.prober;
        let kcm_health = format!(
            "https://127.0.0.1:{}/healthz",
            plane.ports.controller_manager
        );
        let scheduler_health = format!("https://127.0.0.1:{}/healthz", plane.ports.scheduler);
        let kwok_health = format!("http://127.0.0.1:{}/healthz", plane.ports.kwok);
        probe::until_ready(&mut kcm, plane.timeout, || prober.ok(&kcm_health)).await?;
        probe::until_ready(&mut scheduler, plane.timeout, || {
            prober.ok(&scheduler_health)
        })
        .await?;
        probe::until_ready(&mut kwok, plane.timeout, || prober.ok(&kwok_health)).await?;
        let nodes = self.nodes.clone();
        probe::until_ready(&mut kwok, plane.timeout, || {
            bootstrap::nodes_ready(&client, &nodes)
        })
        .await
        .map_err(|err| match err {
            Error::Start {
                component,
                reason,
                log,
                log_tail,
            } => Error::Start {
                component,
                reason: format!("nodes {nodes:?} not Ready: {reason}"),
                log,
                log_tail,
            },
            other => other,
        })?;
        bootstrap::wait_established(&client, &self.crds, plane.timeout).await?;
        self.processes.extend([kcm, scheduler, kwok]);
        Ok(())
    }

    /// Starts a binary of the test environment with its log in `logs/<name>.log`.
    pub(crate) fn spawn(
        &self,
        name: &str,
        args: &[String],
        envs: &[(&str, OsString)],
    ) -> Result<Process> {
        let program = self.env.require_bin(name)?;
        let log = self.logs_dir().join(format!("{name}.log"));
        Process::spawn(name, &program, args, envs, &log)
    }

    fn client_checked(&self) -> Result<kube::Client> {
        kube::Client::try_from(self.config.clone()).map_err(|source| Error::Kube {
            action: "build a client from the kubeconfig".to_owned(),
            source,
        })
    }

    /// A client with admin rights (group `system:masters`), built from the kubeconfig and
    /// bound to the calling tokio runtime (so a cluster shared between `#[tokio::test]`s,
    /// each with its own runtime, hands every test a working client).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime; and if the client cannot be built, which start-up has
    /// already proven it can.
    #[allow(
        clippy::expect_used,
        reason = "test support: start-up built this client already"
    )]
    pub fn client(&self) -> kube::Client {
        self.client_checked()
            .expect("the kubeconfig that started the cluster builds a client")
    }

    /// kube's configuration for this cluster (the kubeconfig, loaded).
    pub fn kube_config(&self) -> &kube::Config {
        &self.config
    }

    /// The admin kubeconfig file (inline CA and client certificate), for the Go binaries
    /// (`KUBECONFIG`, `--kubeconfig`) and `kube::Config::from_custom_kubeconfig`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kubeconfig file that acts as the ServiceAccount `namespace`/`name`, with a
    /// token from the TokenRequest API valid for `hours`: to run a component with exactly
    /// the rights its install manifests grant, not the admin's.
    pub async fn kubeconfig_for_service_account(
        &self,
        namespace: &str,
        name: &str,
        hours: i64,
    ) -> Result<PathBuf> {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        use k8s_openapi::api::core::v1::ServiceAccount;
        let accounts: kube::Api<ServiceAccount> = kube::Api::namespaced(self.client(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(),
                expiration_seconds: Some(hours * 3600),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let issued = accounts
            .create_token_request(name, &kube::api::PostParams::default(), &request)
            .await
            .map_err(|source| Error::Kube {
                action: format!("requesting a token for {namespace}/{name}"),
                source,
            })?;
        let token = issued.status.map(|s| s.token).unwrap_or_default();
        let path = self.root.join(format!("kubeconfig-{namespace}-{name}"));
        let text = kubeconfig::render_with_token(&self.server_url, &self.ca_pem, &token)?;
        crate::write_file(&path, text.as_bytes(), 0o600)?;
        Ok(path)
    }

    /// The API server's URL, `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The cluster CA's certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The ports the components listen on.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// A binary of the test environment (`kustomize`, `helm`, …), whether or not it exists.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.env.bin(name)
    }

    /// The test environment the cluster runs from.
    pub fn env(&self) -> &TestEnv {
        &self.env
    }

    /// The folder with one log file per process (`<name>.log`).
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// The cluster's temporary folder.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The names of the kwok nodes.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The names of the CRDs installed from `crds/`.
    pub fn crds(&self) -> &[String] {
        &self.crds
    }

    /// How long [`Cluster::start`] took, from the temporary folder to Ready nodes and
    /// Established CRDs.
    pub fn startup_duration(&self) -> Duration {
        self.startup
    }

    /// The process ids of the control plane, by component name.
    pub fn pids(&self) -> Vec<(&str, u32)> {
        self.processes
            .iter()
            .map(|process| (process.name(), process.pid()))
            .collect()
    }

    /// The last lines of a component's log (e.g. `kube-apiserver`), for test failures.
    pub fn log_tail(&self, component: &str) -> String {
        process::log_tail(&self.logs_dir().join(format!("{component}.log")))
    }

    /// Starts Flux's source-, kustomize- and helm-controller against this cluster, as
    /// processes outside it. They stop when the returned value is dropped.
    pub async fn start_flux(&self) -> Result<FluxControllers> {
        flux::start(self, &Prober::new(&self.ca_pem)?, Duration::from_secs(120)).await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        process::stop_all(&mut self.processes, STOP_GRACE);
        self.processes.clear();
        process::unregister_dir(&self.root);
        if let Some(dir) = self.dir.take() {
            if process::keep_requested() {
                process::disown_dir(&self.root);
                let kept = dir.keep();
                tracing::info!(dir = %kept.display(), "kept the test cluster's folder");
            } else if let Err(err) = dir.close() {
                tracing::warn!(dir = %self.root.display(), error = %err, "could not remove the test cluster's folder");
            }
        }
    }
}

/// kwok's configuration and stages (kwok v0.8 has none built in): nodes Ready at once,
/// pods Running and Ready, Job pods Succeeded, deleted pods removed. Written to the
/// cluster's folder and passed with `--config`; kwok's `HOME` is the folder, so that no
/// `~/.kwok/kwok.yaml` adds to it.
const KWOK_CONFIGURATION: &str = include_str!("kwok.yaml");

/// [`KWOK_CONFIGURATION`], without what makes labelled pods never ready unless
/// `never_ready`.
fn kwok_configuration(never_ready: bool) -> String {
    if never_ready {
        return KWOK_CONFIGURATION.to_string();
    }
    let mut out = Vec::new();
    let mut skip = 0;
    for document in KWOK_CONFIGURATION.split("\n---\n") {
        if document.trim_start().starts_with("# never-ready") {
            continue;
        }
        let mut lines = Vec::new();
        for line in document.lines() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if line.trim() == "# never-ready" {
                skip = 2;
                continue;
            }
            lines.push(line);
        }
        out.push(lines.join("\n"));
    }
    out.join("\n---\n")
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod kwok_tests {
    use super::*;

    #[test]
    fn a_cluster_that_does_not_honour_never_ready_has_no_trace_of_it() {
        let all = kwok_configuration(true);
        let plain = kwok_configuration(false);
        let key = r#"labels."kwok.verbund.dev/ready""#;
        assert!(all.contains(key));
        assert!(!plain.contains(key), "{plain}");
        assert_eq!(
            plain.matches("kind: Stage").count() + 1,
            all.matches("kind: Stage").count()
        );
        for document in plain.split("\n---\n") {
            serde_yaml_ng::from_str::<serde_json::Value>(document).expect("YAML");
        }
    }
}
