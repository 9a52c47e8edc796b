//! The site agent for real: `verbund agent run --apply` applies a site's desired state,
//! fetched from verbund's own Git endpoint with the site's token, to a real Kubernetes
//! API server (with controller-manager, scheduler and kwok nodes, see
//! `verbund-testcluster`), reports what runs, and the control plane acts on it.
//!
//! One site with two clusters, as data centers run them: production and the test
//! environment, each with its own agent. Through the real binaries:
//!
//! - the agent is installed from `verbund agent manifests --apply` and runs with its own
//!   service account's rights, never the admin's; vendor content is applied as the
//!   booking's deployer;
//! - a booking of the demo's Hundesteuer-Anmeldung (plain manifests that read a
//!   ConfigMap verbund renders from the booking's configuration) for Dresden lands on the
//!   Saxon agent site; its namespace, quota, network policies, bindings and deployer
//!   appear, its pod runs, the agent reports, and the booking turns `active`;
//! - a new version rolls the Deployment at the plan's full size, which needs the quota's
//!   room for the surge pod, test environment first;
//! - a version whose pods never become ready (kwok's stage for the label
//!   `kwok.verbund.dev/ready: never`, honoured by the production cluster only: the
//!   version works in the test environment and hangs in production) degrades the booking,
//!   the rollout halts and rolls it back, and the Deployment runs the old version again;
//! - secrets by declaration: the vendor declares a configuration field secret, the site
//!   registers its age recipient, and the production agent, started with
//!   `--age-identity`, opens the booking's sealed `secrets.yaml` and applies the Secret
//!   with the value (the test environment's agent has no identity and no such booking);
//! - the booking is ended with its data exported: the offering's export Job is applied
//!   with its network policy and runs on a kwok node (kwok runs no containers, so the
//!   test states what the export container would as its termination message, through
//!   kwok's stage for export pods); an attempt whose checksums disagree keeps everything,
//!   the retried attempt is verified, and only then is the namespace pruned until it is
//!   gone;
//! - a booking of a Helm chart (the project's own Bauantrag online, served from a local
//!   Helm repository) is rendered by the agent with `helm template` and runs within its
//!   quota, while its dependencies' charts, which cannot be fetched here (public
//!   registries), are those bookings' problem alone.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{json, Value};
use verbund_testcluster::{
    apply_objects, parse_objects, workspace_root, ChartRepository, Cluster, ClusterOptions,
};

mod common;
use common::{declare_secret, free_port, get, post, set_secret, token, verbund, Server};

const SITE: &str = "landes-it-sn-dd-1";
const OFFERING: &str = "hundesteuer-anmeldung";
/// Dresden, Stadt (a kreisfreie Stadt in Sachsen, the Land of the agent site).
const DRESDEN: &str = "14612";
const LIMIT: Duration = Duration::from_secs(90);

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

/// `verbund agent run --apply` for the site's `environment` against `cluster`; its log
/// is shown when the test fails.
struct Agent(Child, std::path::PathBuf);

impl Agent {
    /// Installs the agent as `verbund agent manifests --apply` describes it (namespace,
    /// service account, its roles, the `verbund-deployer` role; not the Deployment: it runs
    /// here as a process) and starts it with its service account's rights only.
    async fn install_and_start(
        base: &str,
        site_token: &str,
        environment: &str,
        cluster: &Cluster,
        dir: &Path,
        age_identity: Option<&Path>,
    ) -> Agent {
        let repository = format!("{base}/git/{SITE}.git");
        let out = verbund()
            .args([
                "agent",
                "manifests",
                "--site",
                SITE,
                "--server",
                base,
                "--apply",
            ])
            .args(["--repository", &repository])
            .output()
            .expect("verbund agent manifests");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let objects: Vec<Value> = parse_objects(&String::from_utf8_lossy(&out.stdout))
            .expect("install manifests")
            .into_iter()
            .filter(|o| o["kind"] != "Deployment")
            .collect();
        apply_objects(&cluster.client(), &objects, "test-operator")
            .await
            .expect("the install manifests apply");
        let kubeconfig = cluster
            .kubeconfig_for_service_account("verbund-system", "verbund-agent", 2)
            .await
            .expect("the agent's service account token");
        Agent::start(
            base,
            site_token,
            environment,
            cluster,
            &kubeconfig,
            dir,
            age_identity,
        )
    }

    fn start(
        base: &str,
        site_token: &str,
        environment: &str,
        cluster: &Cluster,
        kubeconfig: &Path,
        dir: &Path,
        age_identity: Option<&Path>,
    ) -> Agent {
        let cache = dir.join(format!("agent-{environment}"));
        let path = dir.join(format!("agent-{environment}.log"));
        let log = std::fs::File::create(&path).expect("log");
        let mut command = verbund();
        command.args(["agent", "run", "--server", base, "--site", SITE, "--apply"]);
        if let Some(identity) = age_identity {
            command.arg("--age-identity").arg(identity);
        }
        let child = command
            .args(["--repository", &format!("{base}/git/{SITE}.git")])
            .args([
                "--environment",
                environment,
                "--interval",
                "1s",
                "--resync",
                "20s",
            ])
            .arg("--cache-dir")
            .arg(&cache)
            .arg("--helm")
            .arg(cluster.bin("helm"))
            .env("KUBECONFIG", kubeconfig)
            .env("VERBUND_SITE_TOKEN", site_token)
            .env("VERBUND_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("verbund agent starts");
        Agent(child, path)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.1).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- {} (last lines) ---", self.1.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// The manifests of Hundesteuer-Anmeldung at `version`, from the demo's 1.0.0, with the
/// image's tag and, for a version that never comes up, kwok's never-ready label. The
/// Deployment gives up after 20 s (`progressDeadlineSeconds`): the vendor's choice,
/// which Kubernetes reports as `Progressing=False`.
fn hundesteuer(version: &str, never_ready: bool) -> Value {
    let mut pod_labels = json!({"app.kubernetes.io/name": "hundesteuer"});
    if never_ready {
        pod_labels["kwok.verbund.dev/ready"] = json!("never");
    }
    json!({
        "version": version,
        "changelog": format!("Hundesteuer-Anmeldung {version} (test)."),
        "package": {
            "type": "manifests",
            "config_map": "hundesteuer-config",
            "scale_target": "hundesteuer",
            "manifests": [
                {"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "hundesteuer", "labels": {"app.kubernetes.io/name": "hundesteuer"}},
                 "spec": {"replicas": 1, "progressDeadlineSeconds": 20,
                          "selector": {"matchLabels": {"app.kubernetes.io/name": "hundesteuer"}},
                          "template": {"metadata": {"labels": pod_labels},
                                       "spec": {"containers": [{
                                           "name": "app",
                                           "image": format!("registry.example.org/verbund-demo/hundesteuer:{version}"),
                                           "ports": [{"containerPort": 8080}],
                                           "envFrom": [{"configMapRef": {"name": "hundesteuer-config"}}],
                                           "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false,
                                                               "capabilities": {"drop": ["ALL"]},
                                                               "seccompProfile": {"type": "RuntimeDefault"}}}]}}}},
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hundesteuer"},
                 "spec": {"selector": {"app.kubernetes.io/name": "hundesteuer"},
                          "ports": [{"port": 80, "targetPort": 8080}]}}
            ]
        }
    })
}

/// The Deployment `hundesteuer` of `namespace`, once it runs `version` with every
/// replica ready and no old one left.
async fn running(client: &Client, namespace: &str, version: &str) -> Option<Deployment> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let d = deployments.get_opt("hundesteuer").await.ok()??;
    let image = d
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()?;
    let status = d.status.as_ref()?;
    let done = image.ends_with(&format!(":{version}"))
        && status.ready_replicas == Some(1)
        && status.updated_replicas == Some(1)
        && status.replicas == Some(1)
        && d.metadata.labels.as_ref()?.get("verbund.dev/version")? == version;
    done.then_some(d)
}

async fn booking(base: &str, admin: &str, id: &str) -> Value {
    get(base, admin, &format!("/bookings/{id}")).await
}

/// The namespace of the booking `id` in `client`'s cluster.
async fn namespace_of(client: &Client, id: &str) -> Option<String> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let list = namespaces
        .list(&ListParams::default().labels(&format!("verbund.dev/booking={id}")))
        .await
        .ok()?;
    list.items.first()?.metadata.name.clone()
}

/// The running pod of the export Job `job` in `namespace`, by name.
async fn export_pod(client: &Client, namespace: &str, job: &str) -> Option<String> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .ok()?;
    pods.items
        .into_iter()
        .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .and_then(|p| p.metadata.name)
}

/// Plays the export container on a kwok node: annotates its pod with what the container
/// states as its termination message when it ends, which kwok's stage for export pods
/// turns into the pod's end (`src/kwok.yaml` of `verbund-testcluster`).
async fn finish_export(client: &Client, namespace: &str, pod: &str, message: &str) {
    let patch = json!({"metadata": {"annotations": {
        "kwok.verbund.dev/termination-message": message}}});
    Api::<Pod>::namespaced(client.clone(), namespace)
        .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate the export's pod");
}

/// Starts a rollout of `version` with a short bake time, one booking per wave.
async fn roll_out(base: &str, admin: &str, version: &str) -> String {
    let body = json!({"offering": OFFERING, "version": version, "policy": {
        "bake_seconds": 2, "canary_percent": 0, "wave_size": 1, "max_concurrent_sites": 1,
        "failure_budget": 0, "progress_deadline_seconds": 180
    }});
    let r = post(base, admin, "/rollouts", &body, 201).await;
    r["id"].as_str().expect("a rollout id").to_owned()
}

async fn rollout_state(base: &str, admin: &str, id: &str) -> String {
    get(base, admin, &format!("/rollouts/{id}")).await["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until rollout `id` is in `state`; when it is not within [`LIMIT`], shows the
/// rollout and its items before failing, so that a stalled rollout says where it stands.
async fn until_rollout(base: &str, admin: &str, id: &str, state: &str) {
    let start = Instant::now();
    while start.elapsed() < LIMIT {
        if rollout_state(base, admin, id).await == state {
            eprintln!(
                "rollout {id} {state}: after {:.1} s",
                start.elapsed().as_secs_f64()
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rollout = get(base, admin, &format!("/rollouts/{id}")).await;
    let items = get(base, admin, &format!("/rollouts/{id}/items")).await;
    panic!("rollout {id} is not {state} within {LIMIT:?}:\n{rollout:#}\n{items:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_agent_applies_a_booking_that_runs_rolls_out_halts_rolls_back_and_is_pruned() {
    let prod = Cluster::start(ClusterOptions::default())
        .await
        .expect("the production cluster starts (testenv/build.sh builds its parts)");
    let test = Cluster::start(ClusterOptions {
        never_ready: false,
        ..ClusterOptions::default()
    })
    .await
    .expect("the test environment's cluster starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let charts = ChartRepository::serve(
        &workspace_root().expect("the workspace").join("charts"),
        &[("bauantrag-online", "2.3.0"), ("bauantrag-online", "2.4.0")],
        &prod.bin("helm"),
    )
    .expect("the demo's charts are served");
    let server = Server::start_on(
        "demo",
        &[
            "--no-simulation",
            "--rollout-interval-ms",
            "200",
            "--public-url",
            &base,
            "--charts",
            charts.url(),
        ],
        &data,
        port,
    )
    .await;
    let admin = token(&data, "admin.token");
    let site_token = post(
        &base,
        &admin,
        &format!("/sites/{SITE}/tokens"),
        &json!({"name": "agent"}),
        201,
    )
    .await["secret"]
        .as_str()
        .expect("a site token")
        .to_owned();

    // Dresden books Hundesteuer-Anmeldung; placement keeps it in Sachsen.
    let page = get(&base, &admin, &format!("/organisations?key={DRESDEN}")).await;
    let dresden = page["items"][0]["id"].as_str().expect("Dresden").to_owned();
    let booked = post(&base, &admin, "/bookings", &json!({
        "organisation": dresden, "offering": OFFERING, "plan": "s", "channel": "stable",
        "config": {"municipality": "14612000", "contact_email": "steueramt@dresden.de",
                   "tax_rates": {"first_dog": 10800, "further_dog": 18000}, "sepa_mandate": true}
    }), 201).await["booking"].clone();
    let id = booked["id"].as_str().expect("a booking id").to_owned();
    assert_eq!(booked["site"], SITE, "{booked}");

    // The site's age identity (as `age-keygen` writes it), for the production agent only.
    let (identity, recipient) = verbund_seal::Identities::generate();
    let identity_file = dir.path().join("identity.agekey");
    std::fs::write(&identity_file, format!("{identity}\n")).expect("identity");
    let _prod_agent = Agent::install_and_start(
        &base,
        &site_token,
        "prod",
        &prod,
        dir.path(),
        Some(&identity_file),
    )
    .await;
    let _test_agent =
        Agent::install_and_start(&base, &site_token, "test", &test, dir.path(), None).await;
    let client = prod.client();

    // Applied: the tenancy, the configuration, and the pod runs.
    let ns = until("the booking's namespace appears", LIMIT, async || {
        namespace_of(&client, &id).await
    })
    .await;
    let namespace = Api::<Namespace>::all(client.clone())
        .get(&ns)
        .await
        .expect("namespace");
    let labels = namespace.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    assert!(!labels.contains_key("app.kubernetes.io/instance"));
    until("the 1.0.0 Deployment is ready", LIMIT, async || {
        running(&client, &ns, "1.0.0").await
    })
    .await;
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), &ns)
        .get("verbund")
        .await
        .expect("quota");
    let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
    // Plan s: 250m at 1 pod, plus a surge pod's 250m (no smoke test).
    assert_eq!(hard.get("requests.cpu").map(|q| q.0.as_str()), Some("500m"));
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect("policies");
    let mut names: Vec<String> = policies
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "allow-dns",
            "allow-ingress-controller",
            "allow-same-namespace",
            "default-deny"
        ]
    );
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect("bindings");
    let mut names: Vec<String> = bindings
        .items
        .iter()
        .filter_map(|b| b.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["verbund-deployer", "verbund-tenant"]);
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .get("verbund-deployer")
        .await
        .expect("the deployer");
    let config = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("hundesteuer-config")
        .await
        .expect("the configuration");
    let data_keys = config.data.unwrap_or_default();
    assert_eq!(
        data_keys.get("MUNICIPALITY").map(String::as_str),
        Some("14612000")
    );
    assert_eq!(
        data_keys.get("TAX_RATES_FIRST_DOG").map(String::as_str),
        Some("10800")
    );
    // The agent reported, and the control plane made the booking active.
    until("the booking turns active", LIMIT, async || {
        (booking(&base, &admin, &id).await["state"] == "active").then_some(())
    })
    .await;

    // A new version, test environment first, then production: the Deployment rolls
    // (a surge pod beside the old one, which the quota admits).
    post(
        &base,
        &admin,
        &format!("/offerings/{OFFERING}/versions?rollout=false"),
        &hundesteuer("1.1.0", false),
        201,
    )
    .await;
    let rollout = roll_out(&base, &admin, "1.1.0").await;
    until_rollout(&base, &admin, &rollout, "completed").await;
    until("production runs 1.1.0", LIMIT, async || {
        running(&client, &ns, "1.1.0").await
    })
    .await;
    let test_client = test.client();
    let reference = until(
        "the test tenant's booking runs in the test cluster",
        LIMIT,
        async || {
            let namespaces: Api<Namespace> = Api::all(test_client.clone());
            let list = namespaces
                .list(&ListParams::default().labels("verbund.dev/offering=hundesteuer-anmeldung"))
                .await
                .ok()?;
            list.items.first()?.metadata.name.clone()
        },
    )
    .await;
    until("the test environment runs 1.1.0", LIMIT, async || {
        running(&test_client, &reference, "1.1.0").await
    })
    .await;
    assert_eq!(booking(&base, &admin, &id).await["version"], "1.1.0");

    // A version that passes the test environment but never comes up in production:
    // degraded, halted, rolled back.
    post(
        &base,
        &admin,
        &format!("/offerings/{OFFERING}/versions?rollout=false"),
        &hundesteuer("1.2.0", true),
        201,
    )
    .await;
    let rollout = roll_out(&base, &admin, "1.2.0").await;
    until_rollout(&base, &admin, &rollout, "halted").await;
    let audit = get(
        &base,
        &admin,
        &format!("/audit?object=booking/{id}&limit=200"),
    )
    .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"booking.rollback"), "{actions:?}");
    // The site said so first (Kubernetes' progress deadline, reported by the agent), not
    // the engine's own, longer deadline.
    assert!(actions.contains(&"booking.degrade"), "{actions:?}");
    let halted = get(&base, &admin, &format!("/rollouts/{rollout}")).await;
    assert!(
        halted["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("1 of 1 bookings failed"),
        "{halted}"
    );
    until("production runs 1.1.0 again", LIMIT, async || {
        running(&client, &ns, "1.1.0").await
    })
    .await;
    until("the booking is active on 1.1.0 again", LIMIT, async || {
        let b = booking(&base, &admin, &id).await;
        (b["state"] == "active" && b["version"] == "1.1.0").then_some(())
    })
    .await;

    // Secrets by declaration: the vendor declares the SMTP password secret, the site
    // registers its recipient, Dresden sets it; the agent opens it and applies the Secret.
    const VALUE: &str = "Dresdner-Hunde-geheim";
    declare_secret(&base, &admin, OFFERING, "smtp_password", SITE, &recipient).await;
    set_secret(&base, &admin, &booked, "smtp_password", VALUE).await;
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &ns);
    let held = until(
        "the agent opens and applies the booking's Secret",
        LIMIT,
        async || {
            let s = secrets.get_opt("hundesteuer-config-secrets").await.ok()??;
            Some(s.data?.get("SMTP_PASSWORD")?.0.clone())
        },
    )
    .await;
    assert_eq!(held, VALUE.as_bytes());

    // A chart on an agent site: rendered by the agent, applied as the deployer. Its
    // PostgreSQL holds special categories of personal data, which need a BSI C5 type 2
    // attestation: a federation admin checked the site's new one by hand, and the
    // federation attests it. Its Keycloak needs a configuration of its own: Dresden books
    // it first.
    post(
        &base,
        &admin,
        &format!("/sites/{SITE}/attestations"),
        &json!({
            "certification": {"scheme": "bsi-c5", "level": "type2", "valid_until": "2027-10-31"},
            "evidence": "BSI-C5-Typ-2-Testat des Rechenzentrums Dresden, Prüfbericht gesehen",
        }),
        201,
    )
    .await;
    let keycloak = post(
        &base,
        &admin,
        "/bookings",
        &json!({
            "organisation": dresden, "offering": "keycloak", "plan": "s", "channel": "stable",
            "config": {"realm": "dresden", "hostname": "login.dresden.de"}
        }),
        201,
    )
    .await;
    assert_eq!(keycloak["booking"]["site"], SITE, "{keycloak}");
    let bauantrag = post(&base, &admin, "/bookings", &json!({
        "organisation": dresden, "offering": "bauantrag-online", "plan": "m", "channel": "stable",
        "config": {"authority": "14612", "contact_email": "bauaufsicht@dresden.de",
                   "land_building_code": "SächsBO"}
    }), 201).await;
    let chart_id = bauantrag["booking"]["id"]
        .as_str()
        .expect("a booking id")
        .to_owned();
    assert_eq!(bauantrag["booking"]["site"], SITE, "{bauantrag}");
    // Dresden's Keycloak (and the PostgreSQL booked with it) run on the site already:
    // bound, not booked again.
    let bound: Vec<String> = bauantrag["booking"]["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .filter_map(|d| d.as_str().map(str::to_owned))
        .collect();
    assert_eq!(bound.len(), 2, "{bauantrag}");
    assert!(bound.contains(
        &keycloak["booking"]["id"]
            .as_str()
            .expect("an id")
            .to_owned()
    ));
    let chart_ns = until("the chart booking's namespace appears", LIMIT, async || {
        namespace_of(&client, &chart_id).await
    })
    .await;
    let deployment = until("the chart's Deployment is ready", LIMIT, async || {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &chart_ns);
        let d = deployments.get_opt("bauantrag-online").await.ok()??;
        (d.status.as_ref()?.ready_replicas? >= 2).then_some(d)
    })
    .await;
    let labels = deployment.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("verbund")
    );
    assert_eq!(labels.get("verbund.dev/booking"), Some(&chart_id));
    // Its plan `m` scales between 2 and 4 replicas: the chart's HorizontalPodAutoscaler,
    // made from the values verbund renders for the plan, is on the cluster as applied.
    let autoscalers: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &chart_ns);
    let hpa = autoscalers
        .get("bauantrag-online")
        .await
        .expect("the plan's autoscaler is applied");
    let spec = hpa.spec.expect("an autoscaler's spec");
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 4));
    assert_eq!(spec.scale_target_ref.name, "bauantrag-online");
    until("the chart booking turns active", LIMIT, async || {
        (booking(&base, &admin, &chart_id).await["state"] == "active").then_some(())
    })
    .await;
    // Its dependencies' tenancy is applied; their charts cannot be fetched here.
    for id in &bound {
        until("a dependency's namespace appears", LIMIT, async || {
            namespace_of(&client, id).await
        })
        .await;
        assert_ne!(booking(&base, &admin, id).await["state"], "active", "{id}");
    }

    // Ended early, its data exported to Dresden's bucket: the export Job and its network
    // policy are applied beside the running application, and its pod runs on a kwok node.
    let target = json!({"endpoint": "https://s3.dresden.de", "bucket": "exporte",
                        "prefix": "hundesteuer/"});
    let ended = post(
        &base,
        &admin,
        &format!("/bookings/{id}/end"),
        &json!({"export_to": target}),
        200,
    )
    .await;
    assert_eq!(ended["state"], "exporting", "{ended}");
    let first = until("the first export's pod runs", LIMIT, async || {
        export_pod(&client, &ns, "data-export-1").await
    })
    .await;
    let policy = Api::<NetworkPolicy>::namespaced(client.clone(), &ns)
        .get("allow-export")
        .await
        .expect("allow-export is applied");
    assert_eq!(
        policy.spec.and_then(|s| s.egress).map(|e| e.len()),
        Some(1),
        "one way out, for the export's pods"
    );
    let job = Api::<Job>::namespaced(client.clone(), &ns)
        .get("data-export-1")
        .await
        .expect("the export Job");
    let env: Vec<String> = job
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|c| c.env.unwrap_or_default())
        .map(|e| format!("{}={}", e.name, e.value.unwrap_or_default()))
        .collect();
    assert!(
        env.contains(&"EXPORT_BUCKET=exporte".to_string()),
        "{env:?}"
    );
    // The target holds other bytes than were written: the attempt fails and nothing goes.
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    let sums = |written: &str, read_back: &str| {
        json!({"sha256": written, "read_back_sha256": read_back, "bytes": 4096}).to_string()
    };
    finish_export(&client, &ns, &first, &sums(&a, &b)).await;
    let failed = until("the first export is judged failed", LIMIT, async || {
        let b = booking(&base, &admin, &id).await;
        (b["ending"]["export"]["outcome"]["state"] == "failed").then_some(b)
    })
    .await;
    assert_eq!(failed["state"], "exporting", "{failed}");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("read back"),
        "{failed}"
    );
    assert!(
        Api::<Deployment>::namespaced(client.clone(), &ns)
            .get_opt("hundesteuer")
            .await
            .expect("deployments")
            .is_some(),
        "nothing is torn down before the data is out"
    );
    // Tried again: a Job of its own; this time the sums agree, and the booking goes.
    post(
        &base,
        &admin,
        &format!("/bookings/{id}/export/retry"),
        &json!({}),
        200,
    )
    .await;
    let second = until("the second export's pod runs", LIMIT, async || {
        export_pod(&client, &ns, "data-export-2").await
    })
    .await;
    finish_export(&client, &ns, &second, &sums(&a, &a)).await;
    let verified = until("the export is verified", LIMIT, async || {
        let b = booking(&base, &admin, &id).await;
        (b["ending"]["export"]["outcome"]["state"] == "verified").then_some(b)
    })
    .await;
    assert_eq!(
        verified["ending"]["export"]["outcome"]["sha256"],
        a.as_str()
    );
    until("the namespace is gone", LIMIT, async || {
        Api::<Namespace>::all(client.clone())
            .get_opt(&ns)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    drop(server);
}
