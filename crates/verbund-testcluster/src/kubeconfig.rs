//! The admin kubeconfig: the CA and the client certificate inline (`*-data`), so that the
//! Go components and kube's rustls client read the same file and trust the same CA.

use std::path::Path;

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::pki::Pki;
use crate::{write_file, Error, Result};

/// The name of the kubeconfig's cluster, user and context.
pub const CONTEXT: &str = "verbund-testcluster";

/// The kubeconfig for `server`, as YAML.
pub(crate) fn render(server: &str, pki: &Pki) -> Result<String> {
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
    let document = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CONTEXT,
            "cluster": {
                "server": server,
                "certificate-authority-data": b64(&pki.ca_cert),
            },
        }],
        "users": [{
            "name": CONTEXT,
            "user": {
                "client-certificate-data": b64(&pki.admin_cert),
                "client-key-data": b64(&pki.admin_key),
            },
        }],
        "contexts": [{
            "name": CONTEXT,
            "context": { "cluster": CONTEXT, "user": CONTEXT, "namespace": "default" },
        }],
        "current-context": CONTEXT,
    });
    serde_yaml_ng::to_string(&document).map_err(|source| Error::Yaml {
        path: "kubeconfig".into(),
        source,
    })
}

/// A kubeconfig for `server` that authenticates with a bearer `token` (e.g. a service
/// account's), as YAML.
pub(crate) fn render_with_token(server: &str, ca_pem: &str, token: &str) -> Result<String> {
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
    let document = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CONTEXT,
            "cluster": { "server": server, "certificate-authority-data": b64(ca_pem) },
        }],
        "users": [{ "name": CONTEXT, "user": { "token": token } }],
        "contexts": [{
            "name": CONTEXT,
            "context": { "cluster": CONTEXT, "user": CONTEXT, "namespace": "default" },
        }],
        "current-context": CONTEXT,
    });
    serde_yaml_ng::to_string(&document).map_err(|source| Error::Yaml {
        path: "kubeconfig".into(),
        source,
    })
}

/// Writes the kubeconfig (mode 0600: it holds the admin key).
pub(crate) fn write(path: &Path, server: &str, pki: &Pki) -> Result<()> {
    write_file(path, render(server, pki)?.as_bytes(), 0o600)
}

/// kube's client configuration from the kubeconfig file, as any consumer would load it.
pub(crate) async fn load(path: &Path) -> Result<kube::Config> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
        path: path.to_path_buf(),
        source,
    })?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| Error::Kubeconfig {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kube_loads_the_kubeconfig_and_rustls_accepts_its_keys() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("kubeconfig");
        let pki = Pki::generate().expect("certificates");
        write(&path, "https://127.0.0.1:6443", &pki).expect("written");
        let config = load(&path).await.expect("kube reads the kubeconfig");
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert_eq!(config.root_cert.as_ref().map(Vec::len), Some(1));
        kube::Client::try_from(config).expect("rustls accepts the CA and the admin key");
    }
}
