//! verbund's own Helm chart (`deploy/verbund`), proven by what reads it: `helm lint
//! --strict` and the chart's values schema, the real Kubernetes API server of the test
//! cluster (Pod Security `restricted` enforced, the controllers, kwok nodes), and the real
//! `verbund` binary with the chart's command line.
//!
//! - `helm lint --strict` passes with the `ci/` values and fails, naming them, without
//!   the values an installation must give (the public URL, the database Secret);
//! - `helm template` output, server-side applied into a namespace that enforces Pod
//!   Security `restricted` beside the Secret with the database URL, becomes a Deployment
//!   of two ready replicas (kwok fakes the pods, so the image need not exist): the
//!   ReplicaSet's pods pass admission, the PodDisruptionBudget allows one disruption of
//!   two healthy pods, and the Service's endpoints are both replicas on the one port that
//!   serves API, portal and Git endpoint;
//! - the container's command line, with the Secret's URL pointing at a fresh PostgreSQL
//!   database and the federation key where the chart mounts its Secret (read-only, for
//!   the pod's group), starts the real binary, whose answers to the probes' paths are
//!   200, which writes the desired state and serves the DID document of the public URL;
//! - with `serviceMonitor.enabled` the ServiceMonitor scrapes `/metrics` on the Service's
//!   port with the monitoring account's token: applied beside the chart's other objects,
//!   the API server checks it against the Prometheus Operator's CRD (from its Go module,
//!   see testenv/), and its selector, read back from the cluster, finds exactly the
//!   chart's Service, whose port it names.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ListParams, PostParams};
use kube::Api;
use serde_json::{json, Value};
use verbund_testcluster::{
    apply_objects, namespaced_objects, parse_objects, wait_for_deployment_ready, wait_for_value,
    workspace_root, Cluster, ClusterOptions, TestEnv,
};

mod common;
use common::{free_port, metrics, token, verbund};

const NAMESPACE: &str = "verbund-system";
const RELEASE: &str = "verbund";
const LIMIT: Duration = Duration::from_secs(90);

fn chart() -> PathBuf {
    workspace_root()
        .expect("the workspace")
        .join("deploy")
        .join("verbund")
}

/// The test environment's `helm`, with its homes in `home`.
fn helm(home: &Path, args: &[&str]) -> Output {
    let env = TestEnv::locate().unwrap_or_else(|e| panic!("{e}"));
    Command::new(env.bin("helm"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .args(args)
        .output()
        .expect("helm runs")
}

/// `helm template` of the chart with the minimal values and one `--set`, as it ran.
fn minimal_with(home: &Path, set: &str) -> Output {
    let chart = chart();
    let chart = chart.to_str().expect("path");
    let values = format!("{chart}/ci/minimal-values.yaml");
    helm(
        home,
        &["template", RELEASE, chart, "-f", &values, "--set", set],
    )
}

/// `helm template` of the chart with the `ci/` values file `values` and `--set`s.
fn template(home: &Path, values: &str, set: &[&str]) -> Vec<Value> {
    let chart = chart();
    let values = chart.join("ci").join(values);
    let mut args = vec![
        "template",
        RELEASE,
        chart.to_str().expect("path"),
        "--namespace",
        NAMESPACE,
        "-f",
        values.to_str().expect("path"),
    ];
    for s in set {
        args.extend(["--set", s]);
    }
    let out = helm(home, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_objects(&stdout).expect("the chart renders YAML")
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}: {objects:#?}");
    found[0]
}

fn container(objects: &[Value]) -> &Value {
    &one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

/// Polls `probe` every 250 ms until it yields a value; panics after `limit`.
async fn until<T>(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            eprintln!("{what}: after {:.1} s", start.elapsed().as_secs_f64());
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[test]
fn helm_lint_is_strict_and_the_schema_names_what_an_installation_must_give() {
    let home = tempfile::tempdir().expect("temp dir");
    let chart = chart();
    let chart = chart.to_str().expect("path");
    for values in ["minimal-values.yaml", "full-values.yaml"] {
        let values = format!("{chart}/ci/{values}");
        let out = helm(home.path(), &["lint", "--strict", chart, "-f", &values]);
        assert!(
            out.status.success(),
            "helm lint --strict -f {values}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = helm(home.path(), &["template", RELEASE, chart]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for missing in ["/publicUrl", "/database/existingSecret"] {
        assert!(stderr.contains(missing), "{missing}: {stderr}");
    }
    let out = minimal_with(home.path(), "replicas=0");
    assert!(!out.status.success(), "no replicas is refused");
}

#[test]
fn the_service_monitor_scrapes_every_replica_through_the_service() {
    let home = tempfile::tempdir().expect("temp dir");
    let minimal = template(home.path(), "minimal-values.yaml", &[]);
    assert!(
        minimal.iter().all(|o| o["kind"] != "ServiceMonitor"),
        "only when enabled"
    );
    let objects = template(home.path(), "full-values.yaml", &[]);
    let monitor = one(&objects, "ServiceMonitor");
    let service = one(&objects, "Service");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("a selector");
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(&service["metadata"]["labels"][key], value, "{key}");
    }
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        json!([NAMESPACE])
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    // `/metrics` needs a token: Prometheus sends the one in the named Secret.
    assert_eq!(
        endpoint["authorization"],
        json!({"type": "Bearer", "credentials": {"name": "verbund-metrics-token", "key": "token"}})
    );
    // Enabled without a token's Secret is refused, naming the value.
    let out = minimal_with(home.path(), "serviceMonitor.enabled=true");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a ServiceMonitor without a token");
    assert!(stderr.contains("bearerTokenSecret"), "{stderr}");
}

/// The chart's container command line runs the real binary (listening on a free port
/// and with a data folder and federation key of the test's instead of the pod's), with
/// the database URL in the environment variable the Secret fills; the probes' paths
/// answer 200, the replica writes the desired state and signs as the public URL's
/// `did:web`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_command_line_runs_the_real_binary_and_its_probes_answer() {
    let home = tempfile::tempdir().expect("temp dir");
    let objects = template(
        home.path(),
        "minimal-values.yaml",
        &["federationKey.existingSecret=verbund-federation-key"],
    );
    let c = container(&objects);
    // The federation key is the Secret's, mounted read-only and readable by the group.
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "federation-key")
        .expect("the federation key's volume");
    assert_eq!(volume["secret"]["secretName"], "verbund-federation-key");
    assert_eq!(volume["secret"]["defaultMode"], 0o440);
    let key_mount = c["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == "federation-key")
        .expect("the federation key is mounted");
    assert_eq!(key_mount["readOnly"], true);
    let key_dir = key_mount["mountPath"].as_str().expect("a path").to_owned();
    let key_file = home.path().join("federation.key");
    std::fs::write(
        &key_file,
        verbund_api::verbund_gaiax::generate_key().expect("a key"),
    )
    .expect("key");
    let port = free_port();
    let data = home.path().join("data");
    let original: Vec<String> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("an argument").to_owned())
        .collect();
    // The data folder is the volume mounted for it.
    let mounted = c["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == "data")
        .and_then(|m| m["mountPath"].as_str())
        .expect("the data volume is mounted");
    assert!(
        original.contains(&format!("--data={mounted}")),
        "{original:?}"
    );
    let args: Vec<String> = original
        .into_iter()
        .map(|a| {
            if a.starts_with("--listen=") {
                format!("--listen=127.0.0.1:{port}")
            } else if a.starts_with("--data=") {
                format!("--data={}", data.display())
            } else if let Some(path) = a.strip_prefix("--federation-key=") {
                assert_eq!(path, format!("{key_dir}/federation.key"));
                format!("--federation-key={}", key_file.display())
            } else {
                a
            }
        })
        .collect();
    let env: Vec<&str> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| e["name"].as_str().expect("a name"))
        .collect();
    assert!(env.contains(&"VERBUND_DATABASE_URL") && env.contains(&"VERBUND_REPLICA"));
    let db = common::Database::create("verbund_deploy");
    let log = home.path().join("verbund.log");
    let file = std::fs::File::create(&log).expect("log");
    let mut child = verbund()
        .args(&args)
        .env("VERBUND_DATABASE_URL", &db.url)
        .env("VERBUND_REPLICA", "verbund-5d8f7c9b4-x2x7q")
        .stdout(file.try_clone().expect("log"))
        .stderr(file)
        .spawn()
        .expect("verbund starts");
    let base = format!("http://127.0.0.1:{port}");
    let probe = |name: &str| {
        c[name]["httpGet"]["path"]
            .as_str()
            .expect("a path")
            .to_owned()
    };
    let result = async {
        for name in ["startupProbe", "readinessProbe", "livenessProbe"] {
            let path = probe(name);
            until(&format!("{name} {path}"), LIMIT, async || {
                let r = reqwest::get(format!("{base}{path}")).await.ok()?;
                (r.status() == 200).then_some(())
            })
            .await;
        }
        // The metrics need a token; the first start made the admin's.
        let anonymous = reqwest::get(format!("{base}/metrics"))
            .await
            .expect("metrics");
        assert_eq!(anonymous.status(), 401);
        let metrics = metrics(&base, &token(&data, "admin.token")).await;
        assert!(
            metrics.contains("verbund_desired_state_writer 1"),
            "{metrics}"
        );
        let did: Value = reqwest::get(format!("{base}/.well-known/did.json"))
            .await
            .expect("the DID document")
            .json()
            .await
            .expect("JSON");
        assert_eq!(did["id"], "did:web:verbund.example.de");
    };
    let outcome = tokio::time::timeout(LIMIT * 2, result).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        outcome.is_ok(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// The chart applied to the test cluster: two ready replicas under Pod Security
/// `restricted`, a PodDisruptionBudget that keeps one, and a Service whose endpoints are
/// both replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_runs_two_ready_replicas_on_kubernetes() {
    let home = tempfile::tempdir().expect("temp dir");
    let objects = template(
        home.path(),
        "minimal-values.yaml",
        &[
            "serviceMonitor.enabled=true",
            "serviceMonitor.bearerTokenSecret.name=verbund-metrics-token",
        ],
    );
    let cluster = Cluster::start(ClusterOptions::default())
        .await
        .unwrap_or_else(|e| panic!("the test cluster starts: {e}"));
    let client = cluster.client();

    // What the operator does first: the namespace (enforcing `restricted`) and the
    // Secret with the database URL (see README, "Production").
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": {"name": NAMESPACE, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        }}
    }))
    .expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace created");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "verbund-database", "namespace": NAMESPACE},
        "stringData": {"url": "postgres://verbund:secret@postgres.verbund-system:5432/verbund"}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret created");
    verbund_testcluster::wait_for_default_service_account(&client, NAMESPACE, LIMIT)
        .await
        .expect("the namespace's default service account");

    // Enforced indeed: a pod without the restricted settings is refused.
    let careless: Pod = serde_json::from_value(json!({
        "metadata": {"name": "careless", "namespace": NAMESPACE},
        "spec": {"containers": [{"name": "c", "image": "registry.verbund.example/verbund:0.1.0"}]}
    }))
    .expect("pod");
    let refused = Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &careless)
        .await
        .expect_err("Pod Security admission refuses it");
    assert!(refused.to_string().contains("restricted"), "{refused}");

    apply_objects(&client, &objects, "helm")
        .await
        .unwrap_or_else(|e| panic!("the chart applies: {e}"));
    let deployment = wait_for_deployment_ready(&client, NAMESPACE, "verbund", 2, LIMIT)
        .await
        .unwrap_or_else(|e| panic!("two ready replicas: {e}"));
    assert_eq!(deployment.spec.and_then(|s| s.replicas), Some(2));

    // The pods passed Pod Security admission (`restricted` is enforced) and take the
    // database URL from the Secret.
    let pods = Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().labels("app.kubernetes.io/name=verbund"))
        .await
        .expect("pods");
    assert_eq!(pods.items.len(), 2, "{pods:?}");
    let mut nodes = BTreeMap::new();
    for pod in &pods.items {
        let spec = pod.spec.as_ref().expect("spec");
        *nodes.entry(spec.node_name.clone()).or_insert(0) += 1;
        let c = &spec.containers[0];
        let url = c
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "VERBUND_DATABASE_URL")
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("the URL from a Secret");
        assert_eq!(
            (url.name.as_str(), url.key.as_str()),
            ("verbund-database", "url")
        );
        assert!(c.startup_probe.is_some() && c.readiness_probe.is_some());
        assert!(c.liveness_probe.is_some());
    }
    assert_eq!(nodes.len(), 2, "spread over nodes: {nodes:?}");

    // The budget sees both pods and lets one go.
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), NAMESPACE);
    wait_for_value(
        || async {
            let pdb = budgets.get_opt("verbund").await.ok()??;
            let status = pdb.status?;
            (status.current_healthy == 2 && status.disruptions_allowed == 1).then_some(())
        },
        LIMIT,
    )
    .await
    .expect("the PodDisruptionBudget allows one disruption of two healthy pods");

    // The one Service reaches every ready replica on the one port.
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    let ready = wait_for_value(
        || async {
            let list = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=verbund"))
                .await
                .ok()?;
            let mut ready = 0;
            for slice in &list.items {
                let port = slice.ports.iter().flatten().next()?;
                if port.name.as_deref() != Some("http") || port.port != Some(8080) {
                    return None;
                }
                ready += slice
                    .endpoints
                    .iter()
                    .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                    .count();
            }
            (ready == 2).then_some(ready)
        },
        LIMIT,
    )
    .await
    .expect("the Service's endpoints are both replicas");
    assert_eq!(ready, 2);

    service_monitor_selects_the_service(&client).await;
    drop(cluster);
}

/// The ServiceMonitor the API server accepted (validated against the Prometheus
/// Operator's CRD), read back: its selector, in the namespaces it names, finds exactly
/// the chart's Service, and it scrapes a port of that Service with the token's Secret.
/// A field the CRD does not know is refused, so the acceptance above means something.
async fn service_monitor_selects_the_service(client: &kube::Client) {
    let monitors = namespaced_objects(
        client,
        NAMESPACE,
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
    );
    let monitor = monitors
        .get(RELEASE)
        .await
        .expect("the ServiceMonitor was applied");
    let spec = &monitor.data["spec"];
    let labels: Vec<String> = spec["selector"]["matchLabels"]
        .as_object()
        .expect("a selector")
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().expect("a label value")))
        .collect();
    assert!(!labels.is_empty());
    let mut selected = Vec::new();
    for namespace in spec["namespaceSelector"]["matchNames"]
        .as_array()
        .expect("namespaces")
    {
        let namespace = namespace.as_str().expect("a namespace");
        let services = Api::<Service>::namespaced(client.clone(), namespace)
            .list(&ListParams::default().labels(&labels.join(",")))
            .await
            .expect("services");
        selected.extend(services.items);
    }
    assert_eq!(selected.len(), 1, "{selected:?}");
    let ports: Vec<String> = selected[0]
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .into_iter()
        .flatten()
        .filter_map(|p| p.name)
        .collect();
    let endpoint = &spec["endpoints"][0];
    assert!(
        ports.iter().any(|p| endpoint["port"] == p.as_str()),
        "{endpoint} names no port of {ports:?}"
    );
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(
        endpoint["authorization"]["credentials"]["name"],
        "verbund-metrics-token"
    );

    let mut careless = serde_json::to_value(&monitor).expect("JSON");
    careless["metadata"] = json!({"name": "careless", "namespace": NAMESPACE});
    careless["spec"]["endpoints"][0]["bearerTokenSecretName"] = json!("verbund-metrics-token");
    let refused = apply_objects(client, &[careless], "test")
        .await
        .expect_err("a field the CRD does not know");
    assert!(
        refused.to_string().contains("bearerTokenSecretName"),
        "{refused}"
    );
}
