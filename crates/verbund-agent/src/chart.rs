//! Renders a booking's Helm chart (`helm.yaml`, see
//! [`verbund_domain::tenancy::AgentChart`]) into plain objects, because an agent site runs
//! no Helm controller.
//!
//! Why the `helm` CLI: Helm's template engine is Go's; reimplementing it would be a
//! second, subtly different Helm. The agent runs `helm template` like it runs `git`: a
//! tool in its image, given exactly the chart coordinates and values verbund rendered,
//! with `--skip-tests` and `--no-hooks` (hooks are Helm's own life cycle, which the agent
//! does not run) and the cluster's Kubernetes version. The output is vendor content:
//! the caller checks every object against the tenant kinds and applies it as the
//! booking's deployer.
//!
//! Rendering costs a chart download and a process; [`Charts`] keeps each output by the
//! digest of its request, so an unchanged booking is rendered once per agent process.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::process::Command;
use verbund_domain::tenancy::AgentChart;

use crate::desired::parse;
use crate::error::{Error, Result};

/// Renders charts with a `helm` binary, remembering each output.
#[derive(Debug)]
pub struct Charts {
    helm: PathBuf,
    /// `--kube-version` for `helm template`, e.g. `v1.36.3`.
    kube_version: Option<String>,
    rendered: Mutex<HashMap<[u8; 32], Vec<Value>>>,
}

impl Charts {
    /// Charts rendered by `helm` (a path, or a name on `PATH`).
    pub fn new(helm: impl Into<PathBuf>, kube_version: Option<String>) -> Self {
        Self {
            helm: helm.into(),
            kube_version,
            rendered: Mutex::new(HashMap::new()),
        }
    }

    /// The objects `chart` renders to, with `secret_values` (the opened Secret its
    /// `values_secret` names) merged over its values by Helm itself (a second
    /// `--values` file, which wins, as Flux's `valuesFrom` would).
    pub async fn render(
        &self,
        chart: &AgentChart,
        secret_values: Option<&Value>,
    ) -> Result<Vec<Value>> {
        let request = serde_json::to_vec(&(chart, secret_values))
            .map_err(|e| failed(chart, e.to_string()))?;
        let key: [u8; 32] = Sha256::digest(&request).into();
        if let Some(objects) = self.cached(&key) {
            return Ok(objects);
        }
        let objects = self.template(chart, secret_values).await?;
        if let Ok(mut cache) = self.rendered.lock() {
            cache.insert(key, objects.clone());
        }
        Ok(objects)
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Vec<Value>> {
        self.rendered.lock().ok()?.get(key).cloned()
    }

    async fn template(
        &self,
        chart: &AgentChart,
        secret_values: Option<&Value>,
    ) -> Result<Vec<Value>> {
        // A folder of its own (mode 0700), removed when rendered.
        let dir = tempfile::tempdir().map_err(|e| failed(chart, e.to_string()))?;
        let values = dir.path().join("values.json");
        let text =
            serde_json::to_vec(&chart.spec.values).map_err(|e| failed(chart, e.to_string()))?;
        tokio::fs::write(&values, text)
            .await
            .map_err(|e| failed(chart, e.to_string()))?;
        let secret_file = dir.path().join("secret-values.json");
        if let Some(secret) = secret_values {
            let text = serde_json::to_vec(secret).map_err(|e| failed(chart, e.to_string()))?;
            tokio::fs::write(&secret_file, text)
                .await
                .map_err(|e| failed(chart, e.to_string()))?;
        }
        let spec = &chart.spec;
        let mut command = Command::new(&self.helm);
        command
            .arg("template")
            .arg(&chart.metadata.name)
            .env("HELM_CACHE_HOME", dir.path().join("cache"))
            .env("HELM_CONFIG_HOME", dir.path().join("config"))
            .env("HELM_DATA_HOME", dir.path().join("data"));
        if spec.repository.starts_with("oci://") {
            command.arg(format!(
                "{}/{}",
                spec.repository.trim_end_matches('/'),
                spec.chart
            ));
        } else {
            command.arg(&spec.chart).arg("--repo").arg(&spec.repository);
        }
        command
            .arg("--version")
            .arg(&spec.version)
            .arg("--namespace")
            .arg(&chart.metadata.namespace)
            .arg("--values")
            .arg(&values)
            .args(["--skip-tests", "--no-hooks"]);
        if secret_values.is_some() {
            command.arg("--values").arg(&secret_file);
        }
        if let Some(version) = &self.kube_version {
            command.arg("--kube-version").arg(version);
        }
        let output = command
            .output()
            .await
            .map_err(|e| failed(chart, format!("cannot run `{}`: {e}", self.helm.display())))?;
        if !output.status.success() {
            return Err(failed(
                chart,
                String::from_utf8_lossy(&output.stderr).trim().to_string(),
            ));
        }
        let text = String::from_utf8(output.stdout)
            .map_err(|_| failed(chart, "helm wrote output that is not UTF-8".into()))?;
        parse(
            &format!("{}/{} (helm template)", spec.repository, spec.chart),
            &text,
        )
    }
}

fn failed(chart: &AgentChart, message: String) -> Error {
    Error::Chart {
        chart: format!(
            "{} {} from {}",
            chart.spec.chart, chart.spec.version, chart.spec.repository
        ),
        message,
    }
}
