//! Test support: a private, real Kubernetes control plane for integration tests, so that
//! what verbund writes is proven by the API server, the controllers and Flux themselves.
//!
//! # What [`Cluster::start`] starts
//!
//! In a fresh temporary folder (`verbund-testcluster-*`), every process in its own process
//! group with its output in `logs/<name>.log`:
//!
//! | component | listens on (all `127.0.0.1`, free ports) | notes |
//! | --- | --- | --- |
//! | etcd | client, peer, metrics (`/health`) | data in `etcd/`, `--unsafe-no-fsync` |
//! | kube-apiserver | secure port (HTTPS) | RBAC; the default admission plugins, PodSecurity included; `--allow-privileged` (refusing privileged pods is PodSecurity's job); services `10.96.0.0/16`; `--endpoint-reconciler-type=none` (a loopback address cannot be the `kubernetes` Service's endpoint) |
//! | kube-controller-manager | secure port (`/healthz`, `/metrics`) | all default controllers; no leader election |
//! | kube-scheduler | secure port (`/healthz`, `/metrics`) | no leader election |
//! | kwok | health and metrics (HTTP) | manages nodes annotated `kwok.x-k8s.io/node=fake` with node leases; its stages (`src/kwok.yaml`, kwok v0.8 has none built in): nodes Ready, pods Running and Ready with an IP from `10.244.0.0/16`, Job pods Succeeded (a data-export pod once a test annotates it with its container's termination message), deleted pods removed |
//!
//! [`Cluster::ports`] tells the ports; [`Cluster::pids`] the process ids.
//!
//! Certificates are made in process with rcgen (ECDSA P-256): a CA, one serving
//! certificate (for `127.0.0.1`, `localhost`, `10.96.0.1` and `kubernetes.default.svc`,
//! also used by the controller-manager and the scheduler), an admin client certificate
//! (`O=system:masters`) and the service-account signing key. The kubeconfig
//! ([`Cluster::kubeconfig_path`]) carries the CA and the admin certificate inline.
//!
//! Then it server-side applies every CRD in the test environment's `crds/` and waits until
//! each is Established (Flux's source, kustomize and helm CRDs, Argo CD's `Application` and
//! `AppProject`, External Secrets' `ExternalSecret`, `SecretStore`,
//! `ClusterSecretStore`, the Prometheus Operator's `ServiceMonitor`); creates the namespaces a site has (`ingress-nginx`,
//! `flux-system`, `argocd`) and the IngressClass `nginx`; and creates
//! [`ClusterOptions::nodes`] nodes (default 3: 32 CPU, 128Gi, 110 pods each; region
//! `de-1`, zones `de-1-a`, `-b`, `-c`; `kubernetes.io/os=linux`; no taints) and waits
//! until they are Ready.
//!
//! [`Cluster::start_flux`] adds Flux's source-, kustomize- and helm-controller as
//! processes outside the cluster (`KUBECONFIG`, all namespaces, no leader election, each
//! with its own metrics and health port; source-controller's artifacts in the folder,
//! served on a free port).
//!
//! [`ChartRepository::serve`] packages the project's own charts (`charts/`) at the versions
//! a test names with the test environment's `helm` and serves them as a Helm repository
//! on a free loopback port, so charts are fetched as from a real repository.
//!
//! # Lifetime
//!
//! Dropping a [`Cluster`] (or [`FluxControllers`]) sends SIGTERM to every process group,
//! SIGKILL after 3 s, and removes the folder. No process outlives the test binary: the
//! kernel SIGKILLs the children when it dies (`PR_SET_PDEATHSIG`), and a cluster held in a
//! `static` (shared by the tests of one binary) is killed and removed by an `atexit` hook.
//! The folder of a test binary that was killed outright (SIGKILL) is removed by the next
//! [`Cluster::start`] on the machine, once its owner process is gone.
//! [`Cluster::client`] builds a client bound to the calling runtime, so such a shared
//! cluster serves `#[tokio::test]`s that each have their own runtime.
//!
//! # Environment
//!
//! - `VERBUND_TESTENV`: a folder with `bin/` and `crds/`; default `target/testenv` in the
//!   workspace (built by `testenv/build.sh`). Missing binaries are an error that says to
//!   run `testenv/build.sh`; tests fail rather than skip.
//! - `VERBUND_KEEP_CLUSTER=1`: keep the temporary folder (logs, etcd data, kubeconfig)
//!   after the cluster is dropped; the processes are stopped all the same.
//!
//! # Start-up time
//!
//! Measured on the 2-core, 24 GiB development machine (`tests/cluster.rs` prints it): 3.7 to
//! 5.1 s from nothing to Ready, untainted nodes and Established CRDs (etcd healthy after
//! about 0.4 s, the API server's `/readyz` after about 2.5 s more, the controllers, kwok,
//! the CRDs and the nodes in the rest); two clusters starting side by side take 5.3 to 6.1 s
//! each.
//! [`Cluster::start_flux`] returns after 1.3 to 1.4 s. A cluster's folder holds about
//! 125 MB (mostly etcd's preallocated WAL).

// Test support: a failed expectation here is a failed test. It controls its processes
// through libc (process groups, signals), which needs `unsafe`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(unsafe_code)]

mod bootstrap;
mod charts;
mod cluster;
mod env;
mod flux;
mod kubeconfig;
mod objects;
mod pki;
mod probe;
mod process;
mod wait;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use bootstrap::{INGRESS_CLASS, KWOK_NODE_ANNOTATION, KWOK_NODE_VALUE, SITE_NAMESPACES};
pub use charts::ChartRepository;
pub use cluster::{
    Cluster, ClusterOptions, Ports, POD_CIDR, SERVICE_ACCOUNT_ISSUER, SERVICE_CLUSTER_IP_RANGE,
};
pub use env::{workspace_root, TestEnv, TESTENV_VAR};
pub use flux::{FluxController, FluxControllers, FLUX_CONTROLLERS, FLUX_NAMESPACE};
pub use kubeconfig::CONTEXT;
pub use objects::{apply_objects, namespaced_objects, parse_objects};
pub use wait::{
    wait_for, wait_for_default_service_account, wait_for_deployment_ready, wait_for_namespace_gone,
    wait_for_value, POLL_INTERVAL,
};

/// The environment variable that keeps a dropped cluster's folder when set to `1`.
pub const KEEP_VAR: &str = "VERBUND_KEEP_CLUSTER";

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a cluster could not be started, or a wait gave up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binaries or CRDs are not built.
    #[error("the test environment in `{root}` lacks {missing}: run `testenv/build.sh`")]
    MissingTestEnv {
        /// The folder searched.
        root: PathBuf,
        /// What is missing.
        missing: String,
    },
    /// A file or folder could not be read or written.
    #[error("`{path}`: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A tool of the test environment (e.g. `helm package`) ran and failed.
    #[error("`{command}` failed: {reason}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and error output.
        reason: String,
    },
    /// A component's binary could not be started.
    #[error("cannot start {component} (`{program}`): {source}")]
    Spawn {
        /// The component.
        component: String,
        /// Its binary.
        program: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A component started but did not become ready (or exited).
    #[error("{component} did not come up: {reason}; the end of `{log}`:\n{log_tail}")]
    Start {
        /// The component.
        component: String,
        /// What went wrong.
        reason: String,
        /// Its log file (gone after the drop unless `VERBUND_KEEP_CLUSTER=1`).
        log: PathBuf,
        /// The last lines of its log.
        log_tail: String,
    },
    /// Certificate generation failed.
    #[error("cannot generate the cluster's certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The kubeconfig could not be read or turned into a client configuration.
    #[error("kubeconfig `{path}`: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// A YAML document could not be read or written.
    #[error("YAML in `{path}`: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A manifest is not a Kubernetes object.
    #[error("manifest `{path}`: {reason}")]
    Manifest {
        /// The file (or object name).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An API request failed.
    #[error("cannot {action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The health-probe HTTP client could not be built.
    #[error("cannot build the health-probe client: {0}")]
    Http(#[source] reqwest::Error),
    /// A wait gave up.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was waited for (for [`wait_for`], the caller's file and line).
        what: String,
        /// The timeout.
        after: Duration,
    },
}

/// Writes a file with the given mode (keys 0600), replacing any previous content.
pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(contents).map_err(io)
}
