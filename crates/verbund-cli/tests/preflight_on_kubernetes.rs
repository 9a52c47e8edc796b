//! `verbund agent preflight` against a real Kubernetes API server (the test cluster:
//! kube-apiserver v1.36 with Pod Security admission, the controllers, kwok nodes and the
//! CRDs of Flux, Argo CD and External Secrets) and a real `verbund serve`, through the
//! real binary with the cluster's kubeconfig.
//!
//! The test cluster has no network: kwok fakes pods' status, so every Job "succeeds".
//! The honest result of the NetworkPolicy probe there is "NetworkPolicy is not
//! enforced" — which this test asserts exactly, and which proves that the probe can fail.
//! The other checks move as the cluster gets what they ask for: the ClusterSecretStore
//! first missing, then present without a Ready status (still failing); the
//! `verbund-deployer` ClusterRole missing, then created. Afterwards the probe's namespace
//! is gone, the control plane keeps the failed preflight, shows it in the fleet view and
//! places no new booking on the site, while the booking placed before stays. A run with
//! `--no-report` tells the control plane nothing; a run interrupted (SIGINT) while its
//! probe runs deletes the probe's namespace all the same and reports nothing.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};
use verbund_testcluster::{wait_for, Cluster, ClusterOptions};

mod common;
use common::{get, token, verbund, Server};

const SITE: &str = "kwok-1";
const WAIT: Duration = Duration::from_secs(120);

// ------------------------------------------------------------------ the control plane

async fn post(base: &str, token: &str, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "POST {path}: {status} {body}");
    body
}

/// A federation with one site (`kwok-1`, Flux, Kubernetes 1.36, in Hamburg), one
/// Gemeinde and one offering; returns the Gemeinde's id.
async fn federation(base: &str, admin: &str) -> String {
    post(
        base,
        admin,
        "/providers",
        json!({
            "name": "testbetrieb", "display_name": "Testbetrieb AöR", "legal_form": "AöR",
            "public_law": true, "seat": {"city": "Hamburg", "country": "DE"},
            "jurisdictions": ["DE"],
        }),
    )
    .await;
    post(
        base,
        admin,
        "/sites",
        json!({
            "name": SITE, "display_name": "kwok test cluster", "provider": "testbetrieb",
            "location": {"country": "DE", "region": "DE-HH", "city": "Hamburg"},
            "certifications": [
                {"scheme": "iso27001", "level": "it-grundschutz", "valid_until": "2099-12-31"},
                {"scheme": "bsi-c5", "level": "type2", "valid_until": "2099-12-31"},
            ],
            "kubernetes_version": "1.36",
            "capabilities": ["ingress:nginx"],
            "capacity": {"cpu_millis": 64000, "memory_mib": 131072, "storage_gib": 1024},
            "environments": ["test", "prod"],
            "delivery": "flux",
        }),
    )
    .await;
    let org = |body: Value| async move {
        post(base, admin, "/organisations", body).await["id"]
            .as_str()
            .expect("id")
            .to_string()
    };
    let bund = org(json!({"name": "Bundesrepublik Deutschland", "level": "bund"})).await;
    let land =
        org(json!({"name": "Hamburg", "level": "land", "ars": "02", "ags": "02", "parent": bund}))
            .await;
    let gemeinde = org(json!({"name": "Hamburg", "level": "gemeinde", "ars": "020000000000", "ags": "02000000", "parent": land})).await;
    post(
        base,
        admin,
        "/offerings",
        json!({
            "name": "portal", "display_name": "Portal", "description": "A test offering.",
            "vendor": gemeinde, "category": "saas", "data_classes": ["internal"],
            "plans": [{"name": "s", "display_name": "Small", "replicas": 1,
                       "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 1},
                       "monthly_price_cents": 9900}],
            "config_schema": {"type": "object"},
        }),
    )
    .await;
    post(
        base,
        admin,
        "/offerings/portal/versions",
        json!({
            "version": "1.0.0",
            "package": {"type": "helm", "repository": "https://charts.example.org",
                        "chart": "app", "chart_version": "1.0.0"},
            "changelog": "First release.",
        }),
    )
    .await;
    gemeinde
}

async fn book(base: &str, admin: &str, organisation: &str) -> Value {
    post(
        base,
        admin,
        "/bookings",
        json!({"organisation": organisation, "offering": "portal", "plan": "s", "config": {}}),
    )
    .await["booking"]
        .clone()
}

// ------------------------------------------------------------------ the command

/// `verbund agent preflight` for the site against the cluster; `extra` arguments last.
fn preflight(cluster: &Cluster, base: &str, token_file: &Path, extra: &[&str]) -> Output {
    verbund()
        .args([
            "agent",
            "preflight",
            "--server",
            base,
            "--site",
            SITE,
            "--token-file",
        ])
        .arg(token_file)
        .args(["--probe-timeout", "60s"])
        .args(extra)
        .env("KUBECONFIG", cluster.kubeconfig_path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("VERBUND_SITE_TOKEN")
        .output()
        .expect("verbund agent preflight runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The table's rows: (check, verdict, reason).
fn rows(stdout: &str) -> Vec<(String, String, String)> {
    stdout
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let mut cells = l.split_whitespace();
            let name = cells.next().unwrap_or_default().to_string();
            let verdict = cells.next().unwrap_or_default().to_string();
            (name, verdict, cells.collect::<Vec<_>>().join(" "))
        })
        .collect()
}

fn verdict_of<'a>(rows: &'a [(String, String, String)], check: &str) -> (&'a str, &'a str) {
    rows.iter()
        .find(|(n, _, _)| n == check)
        .map(|(_, v, r)| (v.as_str(), r.as_str()))
        .unwrap_or_else(|| panic!("no row `{check}` in {rows:?}"))
}

// ------------------------------------------------------------------ the cluster

async fn probe_namespaces(client: &Client) -> Vec<String> {
    Api::<Namespace>::all(client.clone())
        .list(&ListParams::default().labels("verbund.dev/preflight=probe"))
        .await
        .expect("namespaces listed")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_finds_what_the_kwok_cluster_lacks_and_keeps_bookings_off_it() {
    let cluster = Cluster::start(ClusterOptions::default())
        .await
        .unwrap_or_else(|e| panic!("the test cluster starts: {e}"));
    let client = cluster.client();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = Server::start("serve", &data).await;
    let base = server.base.clone();
    let admin = token(&data, "admin.token");
    let gemeinde = federation(&base, &admin).await;

    // A site that never reported a preflight is placed as before.
    let before = book(&base, &admin, &gemeinde).await;
    assert_eq!(before["state"], "placed", "{before}");
    assert_eq!(before["site"], SITE);
    let fleet = get(&base, &admin, "/fleet").await;
    assert_eq!(fleet["sites"][0]["preflight"], Value::Null, "{fleet}");

    let secret = post(
        &base,
        &admin,
        &format!("/sites/{SITE}/tokens"),
        json!({"name": "preflight"}),
    )
    .await["secret"]
        .as_str()
        .expect("a site token")
        .to_string();
    let token_file = dir.path().join("site.token");
    std::fs::write(&token_file, &secret).expect("token file");

    // 1. The cluster as it comes: no ClusterSecretStore, no deployer role, no network.
    let started = std::time::Instant::now();
    let first = preflight(&cluster, &base, &token_file, &[]);
    let (stdout, stderr) = (text(&first.stdout), text(&first.stderr));
    eprintln!(
        "first preflight in {:.1} s:\n{stdout}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        !first.status.success(),
        "a failed check fails the command:\n{stdout}\n{stderr}"
    );
    let table = rows(&stdout);
    assert_eq!(
        table.iter().map(|(n, _, _)| n.as_str()).collect::<Vec<_>>(),
        [
            "kubernetes-version",
            "custom-resources",
            "secret-store",
            "ingress-class",
            "tenant-role",
            "deployer-role",
            "network-policy",
        ],
        "{stdout}"
    );
    let (v, why) = verdict_of(&table, "kubernetes-version");
    assert_eq!(v, "pass", "{why}");
    assert!(
        why.contains("v1.36") && why.contains("declared 1.36"),
        "{why}"
    );
    assert_eq!(
        verdict_of(&table, "custom-resources"),
        (
            "pass",
            "all 8 custom resources a Flux site needs are served"
        )
    );
    let (v, why) = verdict_of(&table, "secret-store");
    assert_eq!(v, "fail");
    assert!(
        why.starts_with("the ClusterSecretStore `verbund` does not exist"),
        "{why}"
    );
    assert_eq!(verdict_of(&table, "ingress-class").0, "pass");
    assert_eq!(
        verdict_of(&table, "tenant-role"),
        ("pass", "the ClusterRole `edit` exists")
    );
    let (v, why) = verdict_of(&table, "deployer-role");
    assert_eq!(v, "fail");
    assert!(
        why.contains("`verbund-deployer` does not exist") && why.contains("root.yaml"),
        "{why}"
    );
    let (v, why) = verdict_of(&table, "network-policy");
    assert_eq!(v, "fail");
    assert!(why.starts_with("NetworkPolicy is not enforced:"), "{why}");
    assert!(
        stdout.contains(&format!("preflight of site `{SITE}` (flux): fail")),
        "{stdout}"
    );
    assert!(stderr.contains("failed its preflight"), "{stderr}");
    assert!(
        probe_namespaces(&client).await.is_empty(),
        "the probe leaves nothing behind"
    );

    // 2. What an operator adds: a ClusterSecretStore (no External Secrets controller runs
    // here, so it never gets a Ready status) and the deployer role.
    let store_kind = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("external-secrets.io", "v1", "ClusterSecretStore"),
        "clustersecretstores",
    );
    let store: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
        "metadata": {"name": "verbund"},
        "spec": {"provider": {"fake": {"data": []}}},
    }))
    .expect("a ClusterSecretStore");
    Api::<DynamicObject>::all_with(client.clone(), &store_kind)
        .create(&PostParams::default(), &store)
        .await
        .expect("the ClusterSecretStore is created");
    let deployer: ClusterRole =
        serde_json::from_value(verbund_domain::tenancy::deployer_cluster_role())
            .expect("a ClusterRole");
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &deployer)
        .await
        .expect("the deployer role is created");

    let started = std::time::Instant::now();
    let second = preflight(&cluster, &base, &token_file, &["-o", "json"]);
    eprintln!(
        "second preflight in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (stdout, stderr) = (text(&second.stdout), text(&second.stderr));
    assert!(!second.status.success(), "{stdout}\n{stderr}");
    let printed: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("JSON ({e}): {stdout}"));
    let verdicts: Vec<(String, String)> = printed["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().into(),
                c["verdict"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("kubernetes-version", "pass"),
        ("custom-resources", "pass"),
        ("secret-store", "fail"),
        ("ingress-class", "pass"),
        ("tenant-role", "pass"),
        ("deployer-role", "pass"),
        ("network-policy", "fail"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    assert_eq!(verdicts, expected, "{stdout}");
    assert_eq!(printed["verdict"], "fail");
    assert_eq!(
        printed["kubernetes_version"]
            .as_str()
            .map(|v| v.starts_with("v1.36")),
        Some(true)
    );
    assert!(
        printed["checks"][2]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("has no Ready condition yet")),
        "{stdout}"
    );
    let network = printed["checks"][6]["reason"].as_str().unwrap_or_default();
    assert!(
        network.starts_with("NetworkPolicy is not enforced:"),
        "{network}"
    );

    // The probe's namespace is gone, and no other probe namespace is left.
    let probe_ns = printed["probe_namespace"]
        .as_str()
        .expect("the probe's namespace");
    assert!(probe_ns.starts_with("verbund-preflight-"), "{probe_ns}");
    assert_eq!(printed["probe_namespace_removed"], true);
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(probe_ns)
            .await
            .expect("read")
            .is_none(),
        "`{probe_ns}` is gone"
    );
    assert!(probe_namespaces(&client).await.is_empty());

    // 3. The control plane keeps it, shows it, and places no new booking on the site.
    let fleet = get(&base, &admin, "/fleet").await;
    let site = &fleet["sites"][0];
    assert_eq!(site["site"], SITE);
    assert_eq!(site["preflight"]["verdict"], "fail", "{site}");
    assert_eq!(site["preflight"]["delivery"], "flux");
    assert_eq!(site["preflight"]["checks"][6]["reason"], network);
    let audit = get(
        &base,
        &admin,
        &format!("/audit?object=site%2F{SITE}&limit=100"),
    )
    .await;
    let preflights = audit["items"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["action"] == "site.preflight" && e["actor"] == format!("site/{SITE}"))
        .count();
    assert_eq!(preflights, 2, "both runs are audited as the site: {audit}");

    let after = book(&base, &admin, &gemeinde).await;
    assert_eq!(after["state"], "rejected", "{after}");
    let reason = after["reason"].as_str().unwrap_or_default();
    // The reason names the site and each failed check, in the order they were checked.
    assert!(
        reason.starts_with(&format!(
            "no site may host this booking: {SITE} (failed its preflight: the ClusterSecretStore `verbund` has no Ready condition yet"
        )),
        "{reason}"
    );
    assert!(
        reason.contains(" — NetworkPolicy is not enforced:"),
        "{reason}"
    );
    // The booking placed before stays where it is.
    let kept = get(
        &base,
        &admin,
        &format!("/bookings/{}", before["id"].as_str().expect("id")),
    )
    .await;
    assert_eq!(kept["site"], SITE, "{kept}");
    assert_ne!(kept["state"], "rejected", "{kept}");

    // `--no-report` checks without telling the control plane.
    let quiet = preflight(&cluster, &base, &token_file, &["--no-report", "-o", "json"]);
    assert!(!quiet.status.success());
    assert!(text(&quiet.stderr).contains("not reported (--no-report)"));
    let audit = get(
        &base,
        &admin,
        &format!("/audit?object=site%2F{SITE}&limit=100"),
    )
    .await;
    assert_eq!(
        audit["items"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["action"] == "site.preflight")
            .count(),
        2
    );
    assert!(probe_namespaces(&client).await.is_empty());

    // Interrupted while its probe runs: the namespace is deleted all the same, and
    // nothing is reported.
    let child = verbund()
        .args([
            "agent",
            "preflight",
            "--server",
            &base,
            "--site",
            SITE,
            "--token-file",
        ])
        .arg(&token_file)
        .env("KUBECONFIG", cluster.kubeconfig_path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("verbund agent preflight starts");
    let watched = client.clone();
    wait_for(
        move || {
            let client = watched.clone();
            async move { !probe_namespaces(&client).await.is_empty() }
        },
        WAIT,
    )
    .await
    .expect("the probe creates its namespace");
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(interrupted.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("joined")
        .expect("the command ends");
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("interrupted; the probe's namespace `verbund-preflight-"),
        "{stderr}"
    );
    assert!(
        stderr.contains("was deleted, nothing was reported"),
        "{stderr}"
    );
    assert!(probe_namespaces(&client).await.is_empty());
    let audit = get(
        &base,
        &admin,
        &format!("/audit?object=site%2F{SITE}&limit=100"),
    )
    .await;
    assert_eq!(
        audit["items"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["action"] == "site.preflight")
            .count(),
        2
    );
    drop(server);
}
