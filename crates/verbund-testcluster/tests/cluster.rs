//! Proves the test cluster is real: the API server's version, PodSecurity admission,
//! Deployments and Jobs run to Ready and Succeeded on kwok nodes, quotas are counted and
//! enforced, namespaces finalize, the engines' CRDs are served, and Flux comes up.
//!
//! The tests of this binary share one cluster (started by whichever test comes first);
//! each works in namespaces of its own.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ResourceQuota};
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::OnceCell;
use verbund_testcluster::{
    wait_for, wait_for_default_service_account, wait_for_deployment_ready, wait_for_namespace_gone,
    wait_for_value, Cluster, ClusterOptions,
};

const WAIT: Duration = Duration::from_secs(90);

static CLUSTER: OnceCell<Cluster> = OnceCell::const_new();

async fn cluster() -> &'static Cluster {
    CLUSTER
        .get_or_init(|| async {
            let cluster = Cluster::start(ClusterOptions::default())
                .await
                .expect("the test cluster starts (build it with testenv/build.sh)");
            eprintln!(
                "test cluster started in {:.1} s at {} ({})",
                cluster.startup_duration().as_secs_f64(),
                cluster.server_url(),
                cluster.dir().display()
            );
            cluster
        })
        .await
}

/// Creates a namespace with PodSecurity `restricted` enforced, and waits for its default
/// ServiceAccount (pods are refused before it exists).
async fn restricted_namespace(client: &Client, name: &str) -> Namespace {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }))
    .expect("a namespace");
    let created = namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace created");
    wait_for_default_service_account(client, name, WAIT)
        .await
        .expect("the controller-manager makes the default ServiceAccount");
    created
}

/// A pod spec that passes PodSecurity `restricted`.
fn restricted_spec(cpu: &str, restart_policy: &str) -> serde_json::Value {
    json!({
        "restartPolicy": restart_policy,
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "seccompProfile": { "type": "RuntimeDefault" },
        },
        "containers": [{
            "name": "app",
            "image": "registry.k8s.io/pause:3.10",
            "resources": { "requests": { "cpu": cpu, "memory": "64Mi" } },
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": { "drop": ["ALL"] },
            },
        }],
    })
}

fn pod(name: &str, spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec })).expect("a pod")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_kubernetes_1_36_with_ready_kwok_nodes_and_site_basics() {
    let cluster = cluster().await;
    let client = cluster.client();

    let version = client.apiserver_version().await.expect("/version");
    assert_eq!(version.git_version, "v1.36.3");

    let nodes: Api<Node> = Api::all(client.clone());
    let nodes = nodes
        .list(&ListParams::default())
        .await
        .expect("nodes")
        .items;
    assert_eq!(nodes.len(), 3);
    let mut zones = Vec::new();
    for node in &nodes {
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels
                .get("topology.kubernetes.io/region")
                .map(String::as_str),
            Some("de-1")
        );
        assert_eq!(
            labels.get("kubernetes.io/os").map(String::as_str),
            Some("linux")
        );
        zones.extend(labels.get("topology.kubernetes.io/zone").cloned());
        assert!(node
            .spec
            .as_ref()
            .and_then(|spec| spec.taints.as_ref())
            .is_none_or(Vec::is_empty));
        let status = node.status.clone().expect("node status");
        let allocatable = status.allocatable.expect("allocatable");
        assert_eq!(allocatable["cpu"].0, "32");
        assert_eq!(allocatable["memory"].0, "128Gi");
        assert_eq!(allocatable["pods"].0, "110");
        let ready = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .any(|condition| condition.type_ == "Ready" && condition.status == "True");
        assert!(ready, "node {:?} is not Ready", node.metadata.name);
    }
    zones.sort();
    assert_eq!(zones, ["de-1-a", "de-1-b", "de-1-c"]);
    // kwok keeps the nodes alive with leases, as kubelets do.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    wait_for(
        || async {
            leases
                .list(&ListParams::default())
                .await
                .is_ok_and(|list| list.items.len() == 3)
        },
        WAIT,
    )
    .await
    .expect("one lease per node");

    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in ["kube-system", "ingress-nginx", "flux-system", "argocd"] {
        assert!(
            namespaces
                .get_opt(name)
                .await
                .expect("get namespace")
                .is_some(),
            "{name}"
        );
    }
    let classes: Api<IngressClass> = Api::all(client.clone());
    let nginx = classes.get("nginx").await.expect("the nginx IngressClass");
    assert_eq!(
        nginx.spec.and_then(|spec| spec.controller).as_deref(),
        Some("k8s.io/ingress-nginx")
    );

    // The kubeconfig works for a consumer that loads it like any other.
    let kubeconfig = kube::config::Kubeconfig::read_from(cluster.kubeconfig_path()).expect("read");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("load");
    let other = Client::try_from(config).expect("client");
    other
        .apiserver_version()
        .await
        .expect("the kubeconfig's client is admitted");
    assert!(cluster.bin("kustomize").is_file());
    assert!(cluster.bin("helm").is_file());
    assert!(cluster.logs_dir().join("kube-apiserver.log").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_security_restricted_refuses_a_privileged_pod_and_admits_a_restricted_one() {
    let client = cluster().await.client();
    restricted_namespace(&client, "psa").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "psa");

    let privileged = pod(
        "privileged",
        json!({
            "containers": [{
                "name": "app",
                "image": "registry.k8s.io/pause:3.10",
                "securityContext": { "privileged": true },
            }],
        }),
    );
    let refused = pods
        .create(&PostParams::default(), &privileged)
        .await
        .expect_err("PodSecurity refuses a privileged pod");
    match refused {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(
                status
                    .message
                    .contains("violates PodSecurity \"restricted:latest\""),
                "{}",
                status.message
            );
            assert!(status.message.contains("privileged"), "{}", status.message);
        }
        other => panic!("expected a refusal by the API server, got {other}"),
    }

    pods.create(
        &PostParams::default(),
        &pod("restricted", restricted_spec("10m", "Always")),
    )
    .await
    .expect("PodSecurity admits a restricted pod");
    let running = wait_for_value(
        || async {
            let pod = pods.get("restricted").await.ok()?;
            let status = pod.status?;
            (status.phase.as_deref() == Some("Running")).then_some(pod.spec?.node_name?)
        },
        WAIT,
    )
    .await
    .expect("the restricted pod runs");
    assert!(running.starts_with("kwok-node-"), "{running}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_gets_ready_on_kwok_nodes_and_its_namespace_finalizes() {
    let cluster = cluster().await;
    let client = cluster.client();
    restricted_namespace(&client, "apps").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "apps");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 3,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": restricted_spec("100m", "Always"),
            },
        },
    }))
    .expect("a deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("deployment created");
    let ready = wait_for_deployment_ready(&client, "apps", "web", 3, WAIT)
        .await
        .expect("three ready replicas");
    assert_eq!(
        ready.status.and_then(|status| status.ready_replicas),
        Some(3)
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "apps");
    let pods = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("pods")
        .items;
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        let node = pod
            .spec
            .as_ref()
            .and_then(|spec| spec.node_name.clone())
            .expect("scheduled");
        assert!(cluster.nodes().contains(&node), "{node}");
        let status = pod.status.as_ref().expect("status");
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.pod_ip.is_some(), "kwok gives pods an IP");
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|condition| condition.type_ == "Ready" && condition.status == "True");
        assert!(ready);
    }

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete("apps", &DeleteParams::default())
        .await
        .expect("deletion accepted");
    wait_for_namespace_gone(&client, "apps", WAIT)
        .await
        .expect("the namespace controller finalizes the namespace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_completes() {
    let client = cluster().await.client();
    restricted_namespace(&client, "jobs").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "jobs");
    let job: Job = serde_json::from_value(json!({
        "metadata": { "name": "smoke" },
        "spec": {
            "backoffLimit": 0,
            "template": { "spec": restricted_spec("50m", "Never") },
        },
    }))
    .expect("a job");
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("job created");
    wait_for(
        || async {
            jobs.get("smoke")
                .await
                .ok()
                .and_then(|job| job.status?.succeeded)
                == Some(1)
        },
        WAIT,
    )
    .await
    .expect("the job succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_quota_is_counted_and_enforced() {
    let client = cluster().await.client();
    restricted_namespace(&client, "quota").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "quota");
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": { "name": "plan" },
        "spec": { "hard": { "pods": "2", "requests.cpu": "1" } },
    }))
    .expect("a quota");
    quotas
        .create(&PostParams::default(), &quota)
        .await
        .expect("quota created");
    let used = |quota: &ResourceQuota| -> BTreeMap<String, String> {
        quota
            .status
            .as_ref()
            .and_then(|status| status.used.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| (key, value.0))
            .collect()
    };
    wait_for(
        || async {
            quotas
                .get("plan")
                .await
                .is_ok_and(|quota| used(&quota).contains_key("pods"))
        },
        WAIT,
    )
    .await
    .expect("the controller-manager fills status.used");

    let pods: Api<Pod> = Api::namespaced(client.clone(), "quota");
    pods.create(
        &PostParams::default(),
        &pod("first", restricted_spec("600m", "Always")),
    )
    .await
    .expect("within the quota");
    wait_for(
        || async {
            quotas.get("plan").await.is_ok_and(|quota| {
                let used = used(&quota);
                used.get("pods").map(String::as_str) == Some("1")
                    && used.get("requests.cpu").map(String::as_str) == Some("600m")
            })
        },
        WAIT,
    )
    .await
    .expect("status.used counts the pod");

    let refused = pods
        .create(
            &PostParams::default(),
            &pod("second", restricted_spec("600m", "Always")),
        )
        .await
        .expect_err("over the quota");
    match refused {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(
                status.message.contains("exceeded quota: plan"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a refusal by the API server, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engines_crds_are_served() {
    let client = cluster().await.client();
    let served = [
        ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
        ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
        ("source.toolkit.fluxcd.io/v1", "GitRepository"),
        ("source.toolkit.fluxcd.io/v1", "HelmRepository"),
        ("source.toolkit.fluxcd.io/v1", "OCIRepository"),
        ("argoproj.io/v1alpha1", "Application"),
        ("argoproj.io/v1alpha1", "AppProject"),
        ("external-secrets.io/v1", "ExternalSecret"),
        ("external-secrets.io/v1", "SecretStore"),
        ("external-secrets.io/v1", "ClusterSecretStore"),
    ];
    for (group_version, kind) in served {
        let resources = client
            .list_api_group_resources(group_version)
            .await
            .unwrap_or_else(|err| panic!("{group_version} is served: {err}"));
        assert!(
            resources
                .resources
                .iter()
                .any(|resource| resource.kind == kind),
            "{kind} in {group_version}"
        );
    }

    // Which versions of ExternalSecret the vendored CRD serves, for the renderer's choice.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let external_secrets = crds
        .get("externalsecrets.external-secrets.io")
        .await
        .expect("the ExternalSecret CRD");
    let versions: Vec<(String, bool, bool)> = external_secrets
        .spec
        .versions
        .iter()
        .map(|version| (version.name.clone(), version.served, version.storage))
        .collect();
    eprintln!("ExternalSecret versions (name, served, storage): {versions:?}");
    assert!(versions
        .iter()
        .any(|(name, served, _)| name == "v1" && *served));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_controllers_become_ready_and_stop_on_drop() {
    let cluster = cluster().await;
    let started = std::time::Instant::now();
    let flux = cluster
        .start_flux()
        .await
        .expect("Flux's controllers start");
    eprintln!(
        "Flux controllers ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let http = reqwest::Client::new();
    let pids = flux.pids();
    assert_eq!(
        pids.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        [
            "source-controller",
            "kustomize-controller",
            "helm-controller"
        ]
    );
    for controller in flux.controllers() {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", controller.pid))
            .expect("the controller's /proc/<pid>/stat");
        assert!(
            stat.contains(&format!(
                "({})",
                &controller.name[..controller.name.len().min(15)]
            )),
            "{stat}"
        );
        let ready = http
            .get(&controller.ready_url)
            .send()
            .await
            .expect("readyz answers");
        assert!(
            ready.status().is_success(),
            "{}: {}",
            controller.name,
            ready.status()
        );
        let metrics = http
            .get(&controller.metrics_url)
            .send()
            .await
            .expect("metrics answer");
        assert!(metrics.status().is_success());
    }
    let storage = http
        .get(flux.storage_url())
        .send()
        .await
        .expect("the artifact server answers");
    assert!(storage.status().as_u16() < 500);

    drop(flux);
    for (name, pid) in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{name} ({pid}) outlived its FluxControllers"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_cluster_leaves_no_process_and_no_folder() {
    let own = Cluster::start(ClusterOptions {
        nodes: 1,
        ..ClusterOptions::default()
    })
    .await
    .expect("a second, private cluster starts");
    eprintln!(
        "a one-node cluster started in {:.1} s",
        own.startup_duration().as_secs_f64()
    );
    assert_eq!(own.nodes(), ["kwok-node-0"]);
    let pids: Vec<(String, u32)> = own
        .pids()
        .into_iter()
        .map(|(name, pid)| (name.to_owned(), pid))
        .collect();
    assert_eq!(pids.len(), 5, "{pids:?}");
    let dir = own.dir().to_path_buf();
    assert!(dir.is_dir());

    drop(own);
    for (name, pid) in &pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{name} ({pid}) outlived its Cluster"
        );
    }
    if std::env::var("VERBUND_KEEP_CLUSTER").as_deref() != Ok("1") {
        assert!(!dir.exists(), "{} was not removed", dir.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_labelled_never_ready_run_but_never_turn_ready() {
    let cluster = cluster().await;
    let client = cluster.client();
    restricted_namespace(&client, "never").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "never");
    for (name, labels) in [
        ("good", json!({ "app": "good" })),
        (
            "bad",
            json!({ "app": "bad", "kwok.verbund.dev/ready": "never" }),
        ),
    ] {
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": { "app": name } },
                "template": {
                    "metadata": { "labels": labels },
                    "spec": restricted_spec("100m", "Always"),
                },
            },
        }))
        .expect("a deployment");
        deployments
            .create(&PostParams::default(), &deployment)
            .await
            .expect("deployment created");
    }
    wait_for_deployment_ready(&client, "never", "good", 1, WAIT)
        .await
        .expect("the unlabelled one comes up");
    // The labelled one's pod runs, and stays unready.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "never");
    let pod = wait_for_value(
        || async {
            let list = pods
                .list(&ListParams::default().labels("app=bad"))
                .await
                .ok()?;
            list.items
                .into_iter()
                .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        },
        WAIT,
    )
    .await
    .expect("the labelled pod runs");
    let ready = |p: &Pod| {
        p.status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| c.type_ == "Ready" && c.status == "True")
    };
    assert!(!ready(&pod));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let bad = deployments.get("bad").await.expect("deployment");
    assert_eq!(bad.status.and_then(|s| s.ready_replicas).unwrap_or(0), 0);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete("never", &DeleteParams::default())
        .await
        .expect("deletion accepted");
}
