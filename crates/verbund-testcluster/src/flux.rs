//! Flux's source-, kustomize- and helm-controller run as processes outside the cluster
//! against its API server, each on its own metrics and health ports, so that tests see the
//! real reconcilers act on the desired state.

use std::ffi::OsString;
use std::time::Duration;

use crate::cluster::Cluster;
use crate::probe::{self, Prober};
use crate::process::{self, free_ports, Process, STOP_GRACE};
use crate::Result;

/// The namespace the controllers believe they run in (`RUNTIME_NAMESPACE`).
pub const FLUX_NAMESPACE: &str = "flux-system";

/// The three controllers, in the order they start.
pub const FLUX_CONTROLLERS: [&str; 3] = [
    "source-controller",
    "kustomize-controller",
    "helm-controller",
];

/// One controller's process and ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluxController {
    /// `source-controller`, `kustomize-controller` or `helm-controller`.
    pub name: &'static str,
    /// Its process id (for `/proc/<pid>/stat` and `status`).
    pub pid: u32,
    /// Its Prometheus metrics, `http://127.0.0.1:<port>/metrics`.
    pub metrics_url: String,
    /// Its readiness endpoint, `http://127.0.0.1:<port>/readyz`.
    pub ready_url: String,
}

/// Running Flux controllers; dropping this stops them.
pub struct FluxControllers {
    controllers: Vec<FluxController>,
    storage_url: String,
    processes: Vec<Process>,
}

impl FluxControllers {
    /// The controllers with their pids and endpoints.
    pub fn controllers(&self) -> &[FluxController] {
        &self.controllers
    }

    /// The process ids, by controller name.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.controllers
            .iter()
            .map(|controller| (controller.name, controller.pid))
            .collect()
    }

    /// The pid of one controller.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.controllers
            .iter()
            .find(|controller| controller.name == name)
            .map(|controller| controller.pid)
    }

    /// Where source-controller serves its artifacts, `http://127.0.0.1:<port>/` (answering
    /// once [`crate::Cluster::start_flux`] returns).
    pub fn storage_url(&self) -> &str {
        &self.storage_url
    }
}

impl Drop for FluxControllers {
    fn drop(&mut self) {
        process::stop_all(&mut self.processes, STOP_GRACE);
    }
}

pub(crate) async fn start(
    cluster: &Cluster,
    prober: &Prober,
    timeout: Duration,
) -> Result<FluxControllers> {
    for name in FLUX_CONTROLLERS {
        cluster.env().require_bin(name)?;
    }
    let [storage, source_metrics, source_health, kustomize_metrics, kustomize_health, helm_metrics, helm_health] =
        free_ports::<7>()?;
    let storage_dir = cluster.dir().join("flux-storage");
    std::fs::create_dir_all(&storage_dir).map_err(|source| crate::Error::Io {
        path: storage_dir.clone(),
        source,
    })?;
    let storage_addr = format!("127.0.0.1:{storage}");
    let envs: Vec<(&str, OsString)> = vec![
        (
            "KUBECONFIG",
            cluster.kubeconfig_path().as_os_str().to_owned(),
        ),
        ("RUNTIME_NAMESPACE", OsString::from(FLUX_NAMESPACE)),
    ];
    let common = |metrics: u16, health: u16| {
        vec![
            format!("--metrics-addr=127.0.0.1:{metrics}"),
            format!("--health-addr=127.0.0.1:{health}"),
            "--enable-leader-election=false".to_owned(),
            "--watch-all-namespaces=true".to_owned(),
            "--log-encoding=json".to_owned(),
            "--log-level=info".to_owned(),
        ]
    };
    let mut source_args = common(source_metrics, source_health);
    source_args.extend([
        format!("--storage-path={}", storage_dir.display()),
        format!("--storage-addr={storage_addr}"),
        format!("--storage-adv-addr={storage_addr}"),
    ]);
    let plan = [
        (
            "source-controller",
            source_args,
            source_metrics,
            source_health,
        ),
        (
            "kustomize-controller",
            common(kustomize_metrics, kustomize_health),
            kustomize_metrics,
            kustomize_health,
        ),
        (
            "helm-controller",
            common(helm_metrics, helm_health),
            helm_metrics,
            helm_health,
        ),
    ];

    let mut processes = Vec::new();
    let mut controllers = Vec::new();
    for (name, args, metrics, health) in plan {
        let process = cluster.spawn(name, &args, &envs)?;
        controllers.push(FluxController {
            name,
            pid: process.pid(),
            metrics_url: format!("http://127.0.0.1:{metrics}/metrics"),
            ready_url: format!("http://127.0.0.1:{health}/readyz"),
        });
        processes.push(process);
    }
    let storage_url = format!("http://{storage_addr}/");
    for (process, controller) in processes.iter_mut().zip(&controllers) {
        probe::until_ready(process, timeout, || prober.ok(&controller.ready_url)).await?;
        if controller.name == "source-controller" {
            // Its artifact server starts only once the manager runs its controllers,
            // after `/readyz` already answers.
            probe::until_ready(process, timeout, || prober.answers(&storage_url)).await?;
        }
    }
    Ok(FluxControllers {
        controllers,
        storage_url,
        processes,
    })
}
