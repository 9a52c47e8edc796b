//! The real consumer: the `sops` CLI (built by `testenv/build.sh`) opens what
//! `verbund-seal` sealed, as JSON and as YAML, with the site's age identity; and
//! `verbund-seal` opens what `sops` itself encrypted.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::process::Command;

use chrono::Utc;
use serde_json::{json, Value};
use verbund_seal::{open, seal, Identities};

fn sops() -> PathBuf {
    let dir = std::env::var_os("VERBUND_TESTENV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/testenv"),
        PathBuf::from,
    );
    let bin = dir.join("bin/sops");
    assert!(
        bin.exists(),
        "{} is missing: run testenv/build.sh",
        bin.display()
    );
    bin
}

fn secret() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "verbund-config-secrets", "namespace": "keycloak-muenchen-0a1b2c3d",
                     "labels": {"app.kubernetes.io/managed-by": "verbund", "verbund.dev/booking": "b-1"}},
        "type": "Opaque",
        "data": {"values.yaml": "eyJhZG1pbiI6eyJwYXNzd29yZCI6Imh1bnRlcjIsXCJ9In0=", "EMPTY": ""}
    })
}

fn run_sops(args: &[&str], identity: &str) -> std::process::Output {
    Command::new(sops())
        .args(args)
        .env("SOPS_AGE_KEY", identity)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("run sops")
}

#[test]
fn sops_opens_what_verbund_sealed() {
    let (identity, recipient) = Identities::generate();
    let sealed = seal(&secret(), &recipient, Utc::now()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, text, kind) in [
        (
            "secret.json",
            serde_json::to_string_pretty(&sealed).unwrap(),
            "json",
        ),
        // Read by sops's YAML reader. Written as flow YAML (every string quoted), as a
        // writer must: a plain `lastmodified: 2026-…Z` (what serde_yaml_ng writes) is a
        // timestamp to sops's YAML reader, which then refuses the document. verbund's own
        // writer quotes it; the committed `secrets.yaml` is opened by sops in
        // verbund-cli's flux_on_kubernetes.
        (
            "secret.yaml",
            serde_json::to_string(&sealed).unwrap(),
            "yaml",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &text).unwrap();
        assert!(!text.contains("eyJhZG1pbiI6"), "{text}");
        let out = run_sops(
            &[
                "decrypt",
                "--input-type",
                kind,
                "--output-type",
                "json",
                path.to_str().unwrap(),
            ],
            &identity,
        );
        assert!(
            out.status.success(),
            "sops decrypt {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let opened: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(opened, secret(), "{name}");

        // Another site's identity opens nothing.
        let (other, _) = Identities::generate();
        let out = run_sops(
            &[
                "decrypt",
                "--input-type",
                kind,
                "--output-type",
                "json",
                path.to_str().unwrap(),
            ],
            &other,
        );
        assert!(!out.status.success(), "{name} opened with another identity");
    }
}

#[test]
fn verbund_opens_what_sops_encrypted() {
    let (identity, recipient) = Identities::generate();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.json");
    std::fs::write(&path, serde_json::to_string_pretty(&secret()).unwrap()).unwrap();
    let out = run_sops(
        &[
            "encrypt",
            "--age",
            &recipient,
            "--encrypted-regex",
            verbund_seal::ENCRYPTED_REGEX,
            "--input-type",
            "json",
            "--output-type",
            "json",
            path.to_str().unwrap(),
        ],
        &identity,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let encrypted: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids = Identities::parse(&identity).unwrap();
    assert_eq!(open(&encrypted, &ids).unwrap(), secret());
}
