//! A Helm chart repository on loopback for tests: the project's own charts (`charts/` of
//! the workspace) packaged at the versions a test asks for, indexed, and served over
//! HTTP, so that `helm template --repo`, Flux's source-controller and the site agent
//! fetch them as they would from a real repository, with no network.
//!
//! Packaging follows `charts/README.md`: `helm package <chart> --version V --app-version V`
//! for every requested version (so the image tag and `app.kubernetes.io/version` follow
//! the version), then `helm repo index --url <base URL>`. Helm runs with its cache,
//! configuration and data homes in a folder of its own, so a developer's Helm setup
//! neither leaks in nor is touched.
//!
//! The server runs on a thread of its own with its own tokio runtime rather than as a task
//! of the caller's runtime: a repository outlives no test, but a test may call blocking
//! tools (`helm`) from its runtime's threads, and the server must keep answering then.
//! Dropping the [`ChartRepository`] stops the server, joins its thread and removes the
//! folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread::JoinHandle;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::oneshot;

use crate::{Error, Result};

/// A served Helm repository of the project's own charts; dropping it stops the server.
pub struct ChartRepository {
    url: String,
    packages: Vec<(String, String)>,
    dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ChartRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChartRepository")
            .field("url", &self.url)
            .field("packages", &self.packages)
            .finish_non_exhaustive()
    }
}

impl ChartRepository {
    /// Packages each `(chart, version)` of `packages` from the chart folder
    /// `charts_dir/<chart>` with `helm` (the test environment's, see
    /// [`crate::TestEnv::require_bin`]), indexes them and serves the repository on a free
    /// loopback port.
    pub fn serve<C, V>(charts_dir: &Path, packages: &[(C, V)], helm: &Path) -> Result<Self>
    where
        C: AsRef<str>,
        V: AsRef<str>,
    {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let dir = tempfile::Builder::new()
            .prefix("verbund-charts-")
            .tempdir()
            .map_err(io(&std::env::temp_dir()))?;
        let served = dir.path().join("repo");
        let helm_home = dir.path().join("helm");
        std::fs::create_dir_all(&served).map_err(io(&served))?;
        std::fs::create_dir_all(&helm_home).map_err(io(&helm_home))?;

        let listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(io(Path::new("127.0.0.1:0")))?;
        listener.set_nonblocking(true).map_err(io(&served))?;
        let address: SocketAddr = listener.local_addr().map_err(io(&served))?;
        let url = format!("http://{address}");

        let mut packaged = Vec::new();
        for (chart, version) in packages {
            let (chart, version) = (chart.as_ref(), version.as_ref());
            let source = charts_dir.join(chart);
            if !source.join("Chart.yaml").is_file() {
                return Err(Error::Manifest {
                    path: source,
                    reason: "no Chart.yaml: not a chart folder".to_owned(),
                });
            }
            let mut command = helm_command(helm, &helm_home);
            command
                .arg("package")
                .arg(&source)
                .args(["--version", version, "--app-version", version, "-d"])
                .arg(&served);
            run(command)?;
            packaged.push((chart.to_owned(), version.to_owned()));
        }
        let mut index = helm_command(helm, &helm_home);
        index
            .args(["repo", "index"])
            .arg(&served)
            .args(["--url", &url]);
        run(index)?;

        let (shutdown, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io(&served))?;
        let root = Arc::new(served.clone());
        let thread = std::thread::Builder::new()
            .name(format!("chart-repository-{}", address.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let app = Router::new().route("/{file}", get(file)).with_state(root);
                    // Not a graceful shutdown: a client holding a keep-alive connection
                    // must not keep the test waiting. Dropping the runtime ends the
                    // connections' tasks.
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
            })
            .map_err(io(&served))?;
        tracing::info!(
            url = url.as_str(),
            charts = packaged.len(),
            "chart repository serving"
        );
        Ok(Self {
            url,
            packages: packaged,
            dir: Some(dir),
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The repository's base URL, `http://127.0.0.1:<port>` (no trailing slash), as
    /// `helm template --repo` and a Flux `HelmRepository` take it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `(chart, version)` pairs it serves, in the order they were packaged.
    pub fn packages(&self) -> &[(String, String)] {
        &self.packages
    }

    /// Whether it serves `chart` at `version`.
    pub fn serves(&self, chart: &str, version: &str) -> bool {
        self.packages
            .iter()
            .any(|(c, v)| c == chart && v == version)
    }
}

impl Drop for ChartRepository {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// `helm` with its homes in `home`, so no user configuration is read or written.
fn helm_command(helm: &Path, home: &Path) -> Command {
    let mut command = Command::new(helm);
    command
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    command
}

fn run(mut command: Command) -> Result<()> {
    let described = format!("{command:?}");
    let output = command.output().map_err(|source| Error::Spawn {
        component: "helm".to_owned(),
        program: PathBuf::from(command.get_program()),
        source,
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::Command {
        command: described,
        reason: format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    })
}

/// One file of the repository's folder (`index.yaml`, `<chart>-<version>.tgz`).
async fn file(State(root): State<Arc<PathBuf>>, UrlPath(name): UrlPath<String>) -> Response {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && name.is_ascii();
    if !plain {
        return StatusCode::NOT_FOUND.into_response();
    }
    let content_type = if name.ends_with(".yaml") {
        "application/yaml"
    } else if name.ends_with(".tgz") {
        "application/gzip"
    } else {
        "application/octet-stream"
    };
    match tokio::fs::read(root.join(&name)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
