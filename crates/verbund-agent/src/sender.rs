//! Sends a site's reports to the control plane.
//!
//! One sender per site: it holds the site's token, which the control plane accepts only
//! for that site's reports and preflight. Transport failures and 5xx answers are retried
//! with back-off; a 4xx answer is final (the batch is wrong, or the token), so it is
//! returned with the server's problem detail for the operator.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use verbund_domain::preflight::{PreflightReport, PreflightRequirements, SitePreflight};
use verbund_domain::report::SiteReport;

/// The control plane's answer to an accepted (or already known) batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// False when the batch's sequence was not above the last accepted one: nothing changed.
    pub accepted: bool,
    /// The highest sequence accepted for the site so far.
    pub sequence: u64,
    /// Bookings in the batch.
    pub bookings: usize,
    /// Lifecycle moves the batch caused (provisioning → active, active → degraded, …).
    pub transitions: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The control plane refused the batch; retrying would not help.
    #[error("the control plane refused the request ({status}): {detail}")]
    Refused { status: u16, detail: String },
    /// The control plane could not be reached or failed, also after retries.
    #[error("the control plane is unreachable: {0}")]
    Unreachable(String),
}

/// Posts reports for one site.
#[derive(Clone)]
pub struct ReportSender {
    client: reqwest::Client,
    /// `…/api/v1/sites/{site}`.
    site_url: String,
    token: String,
    attempts: u32,
}

impl ReportSender {
    /// `server` is the control plane's base URL, e.g. `https://verbund.example`.
    pub fn new(server: &str, site: &str, token: &str) -> Self {
        #[allow(
            clippy::expect_used,
            reason = "a client with only a timeout set fails to build only when the TLS backend \
                      cannot start, a broken installation that no report could pass anyway"
        )]
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client with default TLS");
        Self {
            client,
            site_url: format!("{}/api/v1/sites/{site}", server.trim_end_matches('/')),
            token: token.to_string(),
            attempts: 4,
        }
    }

    /// How often to try before giving up (default 4; at least 1).
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    pub async fn send(&self, report: &SiteReport) -> Result<Receipt, SendError> {
        self.request(reqwest::Method::POST, "reports", Some(report))
            .await
    }

    /// What the control plane expects of the site's cluster, for its preflight.
    pub async fn preflight_requirements(&self) -> Result<PreflightRequirements, SendError> {
        self.request::<(), _>(reqwest::Method::GET, "preflight", None)
            .await
    }

    /// Reports the site's preflight; the answer is the preflight as the control plane
    /// keeps it (with its overall verdict).
    pub async fn send_preflight(
        &self,
        report: &PreflightReport,
    ) -> Result<SitePreflight, SendError> {
        self.request(reqwest::Method::POST, "preflight", Some(report))
            .await
    }

    /// One request to `…/sites/{site}/{path}`, retried as the module says.
    async fn request<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, SendError> {
        let mut delay = Duration::from_millis(200);
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            match self.try_request(method.clone(), path, body).await {
                Ok(receipt) => return Ok(receipt),
                Err(SendError::Unreachable(why)) => {
                    tracing::debug!(attempt, path, %why, "request to the control plane failed, retrying");
                    last = why;
                }
                Err(refused) => return Err(refused),
            }
            if attempt < self.attempts {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
        Err(SendError::Unreachable(last))
    }

    async fn try_request<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, SendError> {
        let mut request = self
            .client
            .request(method, format!("{}/{path}", self.site_url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| SendError::Unreachable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|e| SendError::Unreachable(format!("unreadable answer: {e}")));
        }
        let body = response.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|p| p.get("detail").and_then(|d| d.as_str()).map(String::from))
            .unwrap_or(body);
        if status.is_server_error() || status.as_u16() == 429 {
            Err(SendError::Unreachable(format!("{status}: {detail}")))
        } else {
            Err(SendError::Refused {
                status: status.as_u16(),
                detail,
            })
        }
    }
}
