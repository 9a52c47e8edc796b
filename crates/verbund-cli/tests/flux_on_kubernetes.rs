//! Flux for real: Flux's own source-, kustomize- and helm-controller (built from their Go
//! modules, see `verbund-testcluster`) pull a Flux site's desired state from verbund's
//! Git endpoint over smart HTTP with the site's token and apply it to a real API server
//! with kwok nodes.
//!
//! Through the real binaries and the real controllers:
//!
//! - the operator's part is only what the README asks of it: the Secret `verbund-git`
//!   with the site's token, and the site's `root.yaml` (fetched with `git clone` from
//!   verbund, as the operator would);
//! - a booking's namespace, quota, network policies, role bindings and deployer appear;
//!   its plain manifests are applied by a Kustomization of its own, and a Helm chart (the
//!   project's Bauantrag online, from a local Helm repository) by a HelmRelease, both as
//!   the booking's deployer; their Deployments get ready on kwok nodes;
//! - the root's inventory holds only the shards (a bound independent of the number of
//!   bookings), each shard's only its bookings' objects;
//! - secrets by declaration: the vendor declares a configuration field secret
//!   (`writeOnly`), the operator registers the site's age recipient and creates the
//!   Secret `verbund-sops-age` in `flux-system` (as the README says); the booking's value
//!   reaches its namespace as a Secret that kustomize-controller decrypted, the real
//!   `sops --decrypt` opens the `secrets.yaml` verbund committed; a chart's declared
//!   secret (Bauantrag's `smtp_password`) reaches the chart through its HelmRelease's
//!   `valuesFrom` (the decrypted `verbund-config-secrets`), and the chart's own Secret
//!   holds it; no commit of the site's repository nor of the whole desired state holds
//!   either value anywhere;
//! - a cancellation is pruned by Flux until the namespace is gone.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DynamicObject, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};
use verbund_testcluster::{
    apply_objects, namespaced_objects, parse_objects, workspace_root, ChartRepository, Cluster,
    ClusterOptions,
};

mod common;
use common::{declare_secret, free_port, get, post, set_secret, token, Server};

/// Köln, Stadt: its bookings, and the special categories of personal data its
/// Bauantrag's PostgreSQL holds, land on a Flux site of the Bund in Nordrhein-Westfalen.
const KOELN: &str = "05315";
const LIMIT: Duration = Duration::from_secs(180);

async fn until<T>(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            eprintln!("{what}: after {:.1} s", start.elapsed().as_secs_f64());
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `git clone` of the site's repository from verbund with the site's token.
fn clone(base: &str, site: &str, site_token: &str, into: &Path) {
    let url = base.replacen("http://", &format!("http://{site}:{site_token}@"), 1);
    let out = Command::new("git")
        .args(["clone", "--quiet", &format!("{url}/git/{site}.git")])
        .arg(into)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git clone");
    assert!(
        out.status.success(),
        "git clone: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn namespace_of(client: &Client, id: &str) -> Option<String> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let list = namespaces
        .list(&ListParams::default().labels(&format!("verbund.dev/booking={id}")))
        .await
        .ok()?;
    list.items.first()?.metadata.name.clone()
}

async fn ready_deployment(client: &Client, namespace: &str, name: &str) -> Option<Deployment> {
    let d = Api::<Deployment>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .ok()??;
    let status = d.status.as_ref()?;
    (status.ready_replicas? >= 1 && status.ready_replicas == status.replicas).then_some(d)
}

fn flux_kustomizations(client: &Client, namespace: &str) -> Api<DynamicObject> {
    namespaced_objects(
        client,
        namespace,
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flux_pulls_a_sites_desired_state_from_verbund_applies_it_and_prunes_a_cancellation() {
    let cluster = Cluster::start(ClusterOptions::default())
        .await
        .expect("the cluster starts (testenv/build.sh builds its parts)");
    let _flux = cluster
        .start_flux()
        .await
        .expect("Flux's controllers start");
    let client = cluster.client();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let charts = ChartRepository::serve(
        &workspace_root().expect("the workspace").join("charts"),
        &[("bauantrag-online", "2.3.0"), ("bauantrag-online", "2.4.0")],
        &cluster.bin("helm"),
    )
    .expect("the demo's charts are served");
    let server = Server::start_on(
        "demo",
        &[
            "--no-simulation",
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

    // Köln books Hundesteuer-Anmeldung (plain manifests), a Keycloak and, on it,
    // Bauantrag online (the project's chart).
    let page = get(&base, &admin, &format!("/organisations?key={KOELN}")).await;
    let koeln = page["items"][0]["id"].as_str().expect("Köln").to_owned();
    let book = async |offering: &str, plan: &str, config: Value| -> Value {
        post(
            &base,
            &admin,
            "/bookings",
            &json!({
                "organisation": koeln, "offering": offering, "plan": plan,
                "channel": "stable", "config": config
            }),
            201,
        )
        .await["booking"]
            .clone()
    };
    let hundesteuer = book(
        "hundesteuer-anmeldung",
        "s",
        json!({
            "municipality": "05315000", "contact_email": "steueramt@stadt-koeln.de",
            "tax_rates": {"first_dog": 12000, "further_dog": 18000}
        }),
    )
    .await;
    let site = hundesteuer["site"].as_str().expect("placed").to_owned();
    let delivery = get(&base, &admin, &format!("/sites/{site}")).await["delivery"].clone();
    assert_eq!(delivery, "flux", "{hundesteuer}");
    let keycloak = book(
        "keycloak",
        "s",
        json!({"realm": "koeln", "hostname": "login.stadt-koeln.de"}),
    )
    .await;
    let bauantrag = book("bauantrag-online", "m", json!({
        "authority": "05315", "contact_email": "bauaufsicht@stadt-koeln.de", "land_building_code": "BauO-NRW"
    })).await;
    for b in [&keycloak, &bauantrag] {
        assert_eq!(b["site"], site.as_str(), "{b}");
    }

    // The operator's part: the site's token as Flux's Git credentials, and root.yaml.
    let site_token = post(
        &base,
        &admin,
        &format!("/sites/{site}/tokens"),
        &json!({"name": "flux"}),
        201,
    )
    .await["secret"]
        .as_str()
        .expect("a site token")
        .to_owned();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "verbund-git", "namespace": "flux-system"},
        "stringData": {"username": site, "password": site_token}
    }))
    .expect("a secret");
    Api::<Secret>::namespaced(client.clone(), "flux-system")
        .create(&PostParams::default(), &secret)
        .await
        .expect("the Git credentials");
    let checkout = dir.path().join("checkout");
    until(
        "the bookings reach the site's repository",
        LIMIT,
        async || {
            let _ = std::fs::remove_dir_all(&checkout);
            clone(&base, &site, &site_token, &checkout);
            let bookings = checkout.join(format!("sites/{site}/prod/bookings"));
            let names: Vec<String> = std::fs::read_dir(&bookings)
                .ok()?
                .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect();
            [
                "hundesteuer-anmeldung-",
                "keycloak-",
                "bauantrag-online-",
                "postgresql-",
            ]
            .iter()
            .all(|prefix| names.iter().any(|n| n.starts_with(prefix)))
            .then_some(())
        },
    )
    .await;
    // The site's repository holds its own folder and nothing else.
    let sites: Vec<String> = std::fs::read_dir(checkout.join("sites"))
        .expect("sites")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(sites, std::slice::from_ref(&site));
    let root = std::fs::read_to_string(checkout.join(format!("sites/{site}/prod/root.yaml")))
        .expect("root.yaml");
    assert!(
        root.contains(&format!("url: {base}/git/{site}.git")),
        "{root}"
    );
    apply_objects(
        &client,
        &parse_objects(&root).expect("root.yaml parses"),
        "test-operator",
    )
    .await
    .expect("root.yaml applies");

    // Flux pulls and applies: the tenancy, the manifests, the chart.
    let ns = until("the Hundesteuer namespace appears", LIMIT, async || {
        namespace_of(&client, hundesteuer["id"].as_str()?).await
    })
    .await;
    until("Hundesteuer's Deployment is ready", LIMIT, async || {
        ready_deployment(&client, &ns, "hundesteuer").await
    })
    .await;
    Api::<ResourceQuota>::namespaced(client.clone(), &ns)
        .get("verbund")
        .await
        .expect("the quota");
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect("policies");
    assert!(policies
        .items
        .iter()
        .any(|p| p.metadata.name.as_deref() == Some("default-deny")));
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
    // The manifests came through the booking's own Kustomization, as its deployer.
    let app = flux_kustomizations(&client, &ns)
        .get("hundesteuer-anmeldung")
        .await
        .expect("the booking's Kustomization");
    assert_eq!(app.data["spec"]["serviceAccountName"], "verbund-deployer");
    let chart_ns = until("Bauantrag's namespace appears", LIMIT, async || {
        namespace_of(&client, bauantrag["id"].as_str()?).await
    })
    .await;
    until(
        "Bauantrag's chart is installed and ready",
        LIMIT,
        async || ready_deployment(&client, &chart_ns, "bauantrag-online").await,
    )
    .await;

    // The root's inventory holds only shards (each a Kustomization and its own Git source,
    // which leaves out every other shard's bookings); each shard only its bookings' objects.
    let shards = flux_kustomizations(&client, "flux-system");
    let root = until("the root reports its inventory", LIMIT, async || {
        let r = shards.get("verbund-prod").await.ok()?;
        let entries = r.data["status"]["inventory"]["entries"].as_array()?.clone();
        (!entries.is_empty()).then_some(entries)
    })
    .await;
    assert!(root.len() <= 2 * 64, "{root:?}");
    for entry in &root {
        let id = entry["id"].as_str().unwrap_or_default();
        assert!(
            id.starts_with("flux-system_verbund-prod-")
                && (id.ends_with("_kustomize.toolkit.fluxcd.io_Kustomization")
                    || id.ends_with("_source.toolkit.fluxcd.io_GitRepository")),
            "{id}"
        );
    }
    let all = shards.list(&ListParams::default()).await.expect("shards");
    for shard in all.items.iter().filter(|s| {
        s.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("verbund-prod-"))
    }) {
        for entry in shard.data["status"]["inventory"]["entries"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let id = entry["id"].as_str().unwrap_or_default();
            let namespace = id.split('_').next().unwrap_or_default();
            assert!(namespace.is_empty() || namespace != "kube-system", "{id}");
        }
    }

    // Each shard's Git source hands kustomize-controller only that shard: the artifact
    // source-controller built for it holds the shard's folder and its bookings' folders,
    // none of another shard (so a booking's Kustomization never unpacks the whole site).
    let artifacts = cluster.dir().join("flux-storage/gitrepository/flux-system");
    let mut checked = 0;
    for source in std::fs::read_dir(&artifacts)
        .expect("Flux's artifacts")
        .flatten()
    {
        let name = source.file_name().to_string_lossy().into_owned();
        let Some(shard) = name.strip_prefix("verbund-prod-") else {
            continue;
        };
        for tarball in std::fs::read_dir(source.path())
            .expect("artifacts")
            .flatten()
        {
            if !tarball.path().to_string_lossy().ends_with(".tar.gz") {
                continue;
            }
            let listing = std::process::Command::new("tar")
                .arg("tzf")
                .arg(tarball.path())
                .output()
                .expect("tar");
            let listing = String::from_utf8_lossy(&listing.stdout);
            let prefix = format!("sites/{site}/prod/bookings/");
            for path in listing.lines() {
                let path = path.trim_start_matches("./");
                if let Some(rest) = path.strip_prefix(&prefix) {
                    let namespace = rest.split('/').next().unwrap_or_default();
                    assert!(
                        namespace.is_empty() || verbund_render::root::shard_of(namespace) == shard,
                        "shard {shard}'s artifact holds {path}"
                    );
                } else if let Some(rest) = path.strip_prefix(&format!("sites/{site}/prod/shards/"))
                {
                    let other = rest.split('/').next().unwrap_or_default();
                    assert!(
                        other.is_empty() || other == shard,
                        "shard {shard}'s artifact holds {path}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no shard artifact in {}", artifacts.display());

    secrets_by_declaration(
        &base,
        &admin,
        &site,
        &client,
        (&ns, &hundesteuer),
        (&chart_ns, &bauantrag),
        dir.path(),
    )
    .await;

    // Cancelled: Flux prunes the namespace until it is gone.
    let r = reqwest::Client::new()
        .delete(format!(
            "{base}/api/v1/bookings/{}",
            hundesteuer["id"].as_str().expect("an id")
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("cancel");
    assert_eq!(r.status().as_u16(), 200);
    until(
        "Flux prunes the cancelled booking's namespace",
        LIMIT,
        async || {
            Api::<Namespace>::all(client.clone())
                .get_opt(&ns)
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
    drop(server);
}

/// Every commit of the repository at `git_dir` (bare or not), searched for `needle` in
/// every file: the paths that hold it.
fn grep_history(git_dir: &Path, needle: &str) -> Vec<String> {
    let revs = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["rev-list", "--all"])
        .output()
        .expect("git rev-list");
    let revs = String::from_utf8_lossy(&revs.stdout).into_owned();
    assert!(
        !revs.trim().is_empty(),
        "no commits in {}",
        git_dir.display()
    );
    let mut found = Vec::new();
    for rev in revs.lines() {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(git_dir)
            .args(["grep", "-l", "-F", "-a", needle, rev])
            .output()
            .expect("git grep");
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned),
        );
    }
    found
}

/// Secrets by declaration on a Flux site (see the module).
async fn secrets_by_declaration(
    base: &str,
    admin: &str,
    site: &str,
    client: &Client,
    (ns, hundesteuer): (&str, &Value),
    (chart_ns, bauantrag): (&str, &Value),
    dir: &Path,
) {
    const VALUE: &str = "Wau-Wau-geheim-2026";
    const CHART_VALUE: &str = "Bauaufsicht-Relay-7f3a";
    let (identity, recipient) = verbund_seal::Identities::generate();
    // The operator: the site's age identity for Flux, and its recipient for verbund.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "verbund-sops-age", "namespace": "flux-system"},
        "stringData": {"identity.agekey": identity}
    }))
    .expect("a secret");
    Api::<Secret>::namespaced(client.clone(), "flux-system")
        .create(&PostParams::default(), &secret)
        .await
        .expect("the age identity");
    // The vendor declares the SMTP password secret, the site registers its recipient, and
    // the tenant sets it.
    declare_secret(
        base,
        admin,
        "hundesteuer-anmeldung",
        "smtp_password",
        site,
        &recipient,
    )
    .await;
    set_secret(base, admin, hundesteuer, "smtp_password", VALUE).await;

    // kustomize-controller decrypts: the booking's namespace holds the value.
    let held = until("Flux decrypts the booking's Secret", LIMIT, async || {
        secret_value(client, ns, "hundesteuer-config-secrets", "SMTP_PASSWORD").await
    })
    .await;
    assert_eq!(held, VALUE.as_bytes());

    // A chart's declared secret: kustomize-controller decrypts the booking's
    // `verbund-config-secrets`, helm-controller merges its `values.yaml` into the release's
    // values (`valuesFrom`), and the chart renders the value into its own Secret.
    declare_secret(
        base,
        admin,
        "bauantrag-online",
        "smtp_password",
        site,
        &recipient,
    )
    .await;
    set_secret(base, admin, bauantrag, "smtp_password", CHART_VALUE).await;
    let held = until(
        "helm-controller renders the chart with the decrypted value",
        LIMIT,
        async || secret_value(client, chart_ns, "bauantrag-online-mail", "SMTP_PASSWORD").await,
    )
    .await;
    assert_eq!(held, CHART_VALUE.as_bytes());
    let releases = namespaced_objects(client, chart_ns, "helm.toolkit.fluxcd.io/v2", "HelmRelease");
    let release = releases
        .get("bauantrag-online")
        .await
        .expect("the HelmRelease");
    assert_eq!(
        release.data["spec"]["valuesFrom"],
        json!([{"kind": "Secret", "name": "verbund-config-secrets", "valuesKey": "values.yaml"}])
    );
    assert!(
        release.data["spec"]["values"]
            .get("smtp_password")
            .is_none(),
        "{}",
        release.data["spec"]["values"]
    );
    // The same upgrade rolls the Deployment out with the value from that Secret (the
    // Secret may exist a moment before the Deployment is updated).
    let from = until(
        "Bauantrag's new pods read the value from the chart's Secret, and are ready",
        LIMIT,
        async || {
            let d = ready_deployment(client, chart_ns, "bauantrag-online").await?;
            let env = d.spec?.template.spec?.containers.first()?.env.clone()?;
            let from = env.into_iter().find(|e| e.name == "SMTP_PASSWORD")?;
            from.value_from?.secret_key_ref
        },
    )
    .await;
    assert_eq!(from.name, "bauantrag-online-mail");

    // The committed document: the real sops opens it with the site's identity.
    let checkout = dir.join("checkout-secrets");
    let site_token = post(
        base,
        admin,
        &format!("/sites/{site}/tokens"),
        &json!({"name": "check"}),
        201,
    )
    .await["secret"]
        .as_str()
        .expect("a site token")
        .to_owned();
    clone(base, site, &site_token, &checkout);
    let folder = checkout.join(format!("sites/{site}/prod/bookings/{ns}"));
    let sealed = folder.join("secrets.yaml");
    let kustomization =
        std::fs::read_to_string(folder.join("kustomization.yaml")).expect("kustomization");
    assert!(kustomization.contains("secrets.yaml"), "{kustomization}");
    let text = std::fs::read_to_string(&sealed).expect("secrets.yaml");
    assert!(
        text.contains("ENC[AES256_GCM,") && !text.contains(VALUE),
        "{text}"
    );
    let sops = std::env::var_os("VERBUND_TESTENV")
        .map_or_else(
            || {
                workspace_root()
                    .expect("the workspace")
                    .join("target/testenv")
            },
            std::path::PathBuf::from,
        )
        .join("bin/sops");
    let out = Command::new(&sops)
        .args(["decrypt", "--input-type", "yaml", "--output-type", "json"])
        .arg(&sealed)
        .env("SOPS_AGE_KEY", &identity)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env("HOME", dir)
        .output()
        .expect("sops runs");
    assert!(
        out.status.success(),
        "sops decrypt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opened: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    use base64::Engine;
    let encoded = opened["data"]["SMTP_PASSWORD"].as_str().expect("the value");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    assert_eq!(decoded, VALUE.as_bytes());

    // Nowhere in Git: no commit of the site's repository, nor of the whole desired state
    // (the server's own bare repositories), holds the value, plain or base64.
    let mut needles = Vec::new();
    for value in [VALUE, CHART_VALUE] {
        needles.push(value.to_owned());
        needles.push(base64::engine::general_purpose::STANDARD.encode(value));
    }
    let mut repositories = vec![checkout.join(".git")];
    for entry in walk(&dir.join("data")) {
        if entry.extension().is_some_and(|e| e == "git") && entry.join("HEAD").exists() {
            repositories.push(entry);
        }
    }
    assert!(repositories.len() >= 3, "{repositories:?}");
    for git_dir in &repositories {
        for needle in &needles {
            let found = grep_history(git_dir, needle);
            assert!(
                found.is_empty(),
                "{} holds the secret: {found:?}",
                git_dir.display()
            );
        }
    }
}

/// The value under `key` of the Secret `name` in `namespace`, once it exists.
async fn secret_value(client: &Client, namespace: &str, name: &str, key: &str) -> Option<Vec<u8>> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .ok()??;
    Some(secret.data?.get(key)?.0.clone())
}

/// Every folder below `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.push(path.clone());
            out.extend(walk(&path));
        }
    }
    out
}
