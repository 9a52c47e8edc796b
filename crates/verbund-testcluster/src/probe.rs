//! Health probes of the components' own ports, and the loop that waits for a component to
//! come up while watching that its process has not died.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::process::Process;
use crate::{Error, Result};

/// How often a start-up wait asks again.
const POLL: Duration = Duration::from_millis(100);
/// How long one probe request may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// An HTTP(S) client for health endpoints: trusts the cluster's CA (the controller-manager
/// and the scheduler serve with the cluster's serving certificate).
#[derive(Clone)]
pub(crate) struct Prober {
    http: reqwest::Client,
}

impl Prober {
    pub(crate) fn new(ca_pem: &str) -> Result<Prober> {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).map_err(Error::Http)?;
        let http = reqwest::Client::builder()
            .add_root_certificate(ca)
            .no_proxy()
            .timeout(PROBE_TIMEOUT)
            .build()
            .map_err(Error::Http)?;
        Ok(Prober { http })
    }

    /// Whether `url` answers 200 OK.
    pub(crate) async fn ok(&self, url: &str) -> bool {
        match self.http.get(url).send().await {
            Ok(response) => response.status() == reqwest::StatusCode::OK,
            Err(_) => false,
        }
    }

    /// Whether `url` answers at all (any HTTP status).
    pub(crate) async fn answers(&self, url: &str) -> bool {
        self.http.get(url).send().await.is_ok()
    }
}

/// Waits until `ready` says yes, failing early (with the log's tail) if the process exits,
/// and after `timeout` otherwise.
pub(crate) async fn until_ready<F, Fut>(
    process: &mut Process,
    timeout: Duration,
    mut ready: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if let Some(status) = process.exit_status() {
            return Err(process.start_error(format!("exited with {status} while starting")));
        }
        if ready().await {
            tracing::info!(
                component = process.name(),
                pid = process.pid(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "ready"
            );
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(process.start_error(format!("not ready after {timeout:?}")));
        }
        tokio::time::sleep(POLL).await;
    }
}
