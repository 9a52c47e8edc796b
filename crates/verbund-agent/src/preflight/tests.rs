//! The preflight's verdicts on facts, and the probe's objects, without a cluster.

use std::time::Duration;

use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{PodSpec, SecurityContext};
use serde_json::json;
use verbund_domain::preflight::{overall, PreflightReport};

use super::probe::{self, client_job, connection, namespace, policies, server, server_url};
use super::*;

use Connection::{Connected, Refused, Unfinished};
use PreflightVerdict::{Fail, Pass, Warn};

fn version(git: &str, minor: &str) -> Result<ServerVersion, String> {
    Ok(ServerVersion {
        git_version: git.into(),
        major: "1".into(),
        minor: minor.into(),
    })
}

fn served_all(delivery: Delivery) -> BTreeMap<String, Result<BTreeSet<String>, String>> {
    let mut served: BTreeMap<String, Result<BTreeSet<String>, String>> = BTreeMap::new();
    for a in required_apis(delivery)
        .into_iter()
        .chain(std::iter::once(&CLUSTER_SECRET_STORE))
    {
        served
            .entry(a.api_version())
            .or_insert_with(|| Ok(BTreeSet::new()))
            .as_mut()
            .map(|kinds| kinds.insert(a.kind.to_string()))
            .ok();
    }
    served
}

fn settings(delivery: Delivery) -> Settings {
    Settings {
        delivery,
        declared_kubernetes: Some("1.36".into()),
        secret_store: "verbund".into(),
        ingress_class: "nginx".into(),
        tenant_role: "edit".into(),
        probe: ProbeSettings::default(),
    }
}

/// A cluster that has everything.
fn good(delivery: Delivery) -> Facts {
    Facts {
        version: version("v1.36.3", "36"),
        served: served_all(delivery),
        secret_store: Lookup::Found(Readiness {
            status: Some("True".into()),
            reason: Some("Valid".into()),
            message: None,
        }),
        ingress_class: Lookup::Found(()),
        tenant_role: Lookup::Found(()),
        deployer_role: Lookup::Found(()),
        network_policy: Outcome::Ran {
            allowed: Connected,
            denied: Refused,
        },
    }
}

fn verdicts(checks: &[PreflightCheck]) -> Vec<(&str, PreflightVerdict)> {
    checks
        .iter()
        .map(|c| (c.name.as_str(), c.verdict))
        .collect()
}

#[test]
fn a_complete_cluster_passes_every_check_for_every_delivery_mode() {
    for delivery in [Delivery::Flux, Delivery::Argocd, Delivery::Agent] {
        let s = settings(delivery);
        let facts = good(delivery);
        let checks = judge(&s, &facts);
        assert_eq!(
            verdicts(&checks),
            [
                (KUBERNETES_VERSION, Pass),
                (CUSTOM_RESOURCES, Pass),
                (SECRET_STORE, Pass),
                (INGRESS_CLASS, Pass),
                (TENANT_ROLE, Pass),
                (DEPLOYER_ROLE, Pass),
                (NETWORK_POLICY, Pass),
            ],
            "{checks:#?}"
        );
        let r = report(&s, &facts, checks);
        assert_eq!(r.verdict(), Pass);
        assert_eq!(r.kubernetes_version.as_deref(), Some("v1.36.3"));
        r.validate().expect("the control plane accepts it");
    }
}

#[test]
fn the_kubernetes_version_must_be_supported_and_declared() {
    let check = |observed: Result<ServerVersion, String>, declared: Option<&str>| {
        let c = judge_version(&observed, declared);
        (c.verdict, c.reason)
    };
    assert_eq!(check(version("v1.36.3", "36"), Some("1.36")).0, Pass);
    assert_eq!(check(version("v1.30.0", "30+"), Some("1.30")).0, Pass);
    assert_eq!(check(version("v1.37.1", "37"), Some("1.37")).0, Pass);
    let (v, why) = check(version("v1.29.9", "29"), Some("1.29"));
    assert_eq!(v, Fail);
    assert!(why.contains("outside the supported 1.30 to 1.37"), "{why}");
    assert_eq!(check(version("v1.38.0", "38"), Some("1.38")).0, Fail);
    // A cluster older than declared would get offerings it cannot run; newer only warns.
    let (v, why) = check(version("v1.31.2", "31"), Some("1.33"));
    assert_eq!(v, Fail);
    assert!(why.contains("declares 1.33"), "{why}");
    let (v, why) = check(version("v1.36.3", "36"), Some("1.31"));
    assert_eq!(v, Warn);
    assert!(
        why.contains("set the site's kubernetes_version to 1.36"),
        "{why}"
    );
    assert_eq!(check(version("v1.36.3", "36"), None).0, Warn);
    assert_eq!(check(version("v1.36.3", "36"), Some("latest")).0, Warn);
    assert_eq!(
        check(Err("connection refused".into()), Some("1.36")).0,
        Fail
    );
    let odd = Ok(ServerVersion {
        git_version: "v2.0.0".into(),
        major: "2".into(),
        minor: "0".into(),
    });
    assert_eq!(check(odd, Some("1.36")).0, Fail);
}

#[test]
fn custom_resources_are_judged_per_delivery_mode() {
    // An agent site needs External Secrets only; Flux and Argo CD their own kinds too.
    let mut agent_only = served_all(Delivery::Agent);
    assert_eq!(judge_apis(Delivery::Agent, &agent_only).verdict, Pass);
    for a in FLUX_SITE.iter().chain(&ARGOCD_SITE) {
        agent_only.insert(a.api_version(), Ok(BTreeSet::new()));
    }
    let flux = judge_apis(Delivery::Flux, &agent_only);
    assert_eq!(flux.verdict, Fail);
    assert!(
        flux.reason
            .contains("helm.toolkit.fluxcd.io/v2 HelmRelease")
            && flux.reason.contains("install Flux (2.6 or later)"),
        "{}",
        flux.reason
    );
    assert_eq!(judge_apis(Delivery::Argocd, &agent_only).verdict, Fail);

    // A missing version counts, though the kind is served at another one.
    let mut old = served_all(Delivery::Flux);
    old.insert("external-secrets.io/v1alpha1".into(), Ok(BTreeSet::new()));
    let c = judge_apis(Delivery::Flux, &old);
    assert_eq!(c.verdict, Fail);
    assert_eq!(
        c.reason,
        "not served: external-secrets.io/v1alpha1 PushSecret; install the External Secrets Operator (0.16 or later)"
    );

    let mut broken = served_all(Delivery::Argocd);
    broken.insert("argoproj.io/v1alpha1".into(), Err("Forbidden (403)".into()));
    let c = judge_apis(Delivery::Argocd, &broken);
    assert_eq!(c.verdict, Fail);
    assert!(c.reason.starts_with("cannot discover"), "{}", c.reason);
}

#[test]
fn the_secret_store_must_exist_and_be_ready() {
    let served = served_all(Delivery::Flux);
    let judge = |store: Lookup<Readiness>| judge_secret_store("verbund", &served, &store);
    assert_eq!(judge(good(Delivery::Flux).secret_store).verdict, Pass);
    let missing = judge(Lookup::Missing);
    assert_eq!(missing.verdict, Fail);
    assert!(
        missing.reason.contains("`verbund` does not exist"),
        "{}",
        missing.reason
    );
    let fresh = judge(Lookup::Found(Readiness::default()));
    assert_eq!(fresh.verdict, Fail);
    assert!(
        fresh.reason.contains("no Ready condition"),
        "{}",
        fresh.reason
    );
    let broken = judge(Lookup::Found(Readiness {
        status: Some("False".into()),
        reason: Some("InvalidProviderConfig".into()),
        message: Some("unable to log in".into()),
    }));
    assert_eq!(broken.verdict, Fail);
    assert!(
        broken
            .reason
            .contains("Ready=False (InvalidProviderConfig: unable to log in)"),
        "{}",
        broken.reason
    );
    assert_eq!(judge(Lookup::Unreadable("Forbidden".into())).verdict, Fail);

    let mut without = served_all(Delivery::Flux);
    without.insert(
        "external-secrets.io/v1".into(),
        Ok(["ExternalSecret".to_string()].into()),
    );
    let c = judge_secret_store("verbund", &without, &Lookup::Missing);
    assert_eq!(c.verdict, Fail);
    assert!(
        c.reason
            .starts_with("ClusterSecretStore (external-secrets.io/v1) is not served"),
        "{}",
        c.reason
    );
}

#[test]
fn ingress_class_and_cluster_roles_must_exist() {
    assert_eq!(
        judge_ingress_class("nginx", &Lookup::Found(())).verdict,
        Pass
    );
    assert_eq!(judge_ingress_class("nginx", &Lookup::Missing).verdict, Fail);
    let mut facts = good(Delivery::Agent);
    facts.deployer_role = Lookup::Missing;
    facts.tenant_role = Lookup::Unreadable("Forbidden (403)".into());
    let checks = judge(&settings(Delivery::Agent), &facts);
    let deployer = &checks[5];
    assert_eq!(
        (deployer.name.as_str(), deployer.verdict),
        (DEPLOYER_ROLE, Fail)
    );
    assert!(
        deployer
            .reason
            .contains("`verbund-deployer` does not exist"),
        "{}",
        deployer.reason
    );
    assert!(
        deployer.reason.contains("verbund agent manifests --apply"),
        "{}",
        deployer.reason
    );
    assert_eq!(checks[4].verdict, Fail);
    let flux = judge(&settings(Delivery::Flux), &{
        let mut f = good(Delivery::Flux);
        f.deployer_role = Lookup::Missing;
        f
    });
    assert!(flux[5].reason.contains("root.yaml"), "{}", flux[5].reason);
}

#[test]
fn network_policy_passes_only_when_the_allowed_client_connects_and_the_denied_does_not() {
    let s = ProbeSettings::default();
    let judge = |allowed, denied| judge_network_policy(&s, &Outcome::Ran { allowed, denied });
    assert_eq!(judge(Connected, Refused).verdict, Pass);
    let open = judge(Connected, Connected);
    assert_eq!(open.verdict, Fail);
    assert!(
        open.reason.starts_with("NetworkPolicy is not enforced"),
        "{}",
        open.reason
    );
    let dead = judge(Refused, Refused);
    assert_eq!(dead.verdict, Fail);
    assert!(
        dead.reason
            .starts_with("the NetworkPolicy probe does not work"),
        "{}",
        dead.reason
    );
    assert_eq!(judge(Refused, Connected).verdict, Fail);
    for (a, d) in [
        (Unfinished, Refused),
        (Connected, Unfinished),
        (Unfinished, Unfinished),
    ] {
        let c = judge(a, d);
        assert_eq!(c.verdict, Fail);
        assert!(
            c.reason.contains("did not finish within 60s"),
            "{}",
            c.reason
        );
    }
    let c = judge_network_policy(
        &s,
        &Outcome::CouldNotRun("cannot create its objects: Forbidden".into()),
    );
    assert_eq!(c.verdict, Fail);
    assert!(c.reason.contains("could not run"), "{}", c.reason);
}

#[test]
fn every_failure_fails_the_whole_and_the_control_plane_accepts_every_reason() {
    let mut facts = good(Delivery::Flux);
    facts.version = version("v1.28.0", "28");
    facts.served = BTreeMap::new();
    facts.secret_store = Lookup::Unreadable("line one\nline two".into());
    facts.ingress_class = Lookup::Missing;
    facts.tenant_role = Lookup::Missing;
    facts.deployer_role = Lookup::Missing;
    facts.network_policy = Outcome::CouldNotRun("x".repeat(5000));
    let checks = judge(&settings(Delivery::Flux), &facts);
    assert!(checks.iter().all(|c| c.verdict == Fail), "{checks:#?}");
    assert_eq!(overall(&checks), Fail);
    let r: PreflightReport = report(&settings(Delivery::Flux), &facts, checks);
    r.validate()
        .expect("every reason is one line of bounded length");
}

#[test]
fn required_apis_are_what_the_renderer_and_the_agent_use() {
    use verbund_render::crd;
    let names = |d: Delivery| -> BTreeSet<(String, String)> {
        required_apis(d)
            .into_iter()
            .map(|a| (a.api_version(), a.kind.to_string()))
            .collect()
    };
    let pair = |v: &str, k: &str| (v.to_string(), k.to_string());
    let eso = [
        pair(crd::ExternalSecret::API_VERSION, crd::ExternalSecret::KIND),
        pair(crd::PushSecret::API_VERSION, crd::PushSecret::KIND),
        pair(crd::Password::API_VERSION, crd::Password::KIND),
    ];
    let flux = [
        pair(crd::GitRepository::API_VERSION, crd::GitRepository::KIND),
        pair(crd::HelmRepository::API_VERSION, crd::HelmRepository::KIND),
        pair(crd::OciRepository::API_VERSION, crd::OciRepository::KIND),
        pair(crd::Kustomization::API_VERSION, crd::Kustomization::KIND),
        pair(crd::HelmRelease::API_VERSION, crd::HelmRelease::KIND),
    ];
    let argocd = [
        pair(crd::Application::API_VERSION, crd::Application::KIND),
        pair(crd::AppProject::API_VERSION, crd::AppProject::KIND),
    ];
    assert_eq!(names(Delivery::Agent), eso.iter().cloned().collect());
    assert_eq!(
        names(Delivery::Flux),
        eso.iter().chain(&flux).cloned().collect()
    );
    assert_eq!(
        names(Delivery::Argocd),
        eso.iter().chain(&argocd).cloned().collect()
    );

    // Every custom kind verbund's own delivery applies on a Flux site is checked.
    let builtin = |g: &str| g.is_empty() || !g.contains('.') || g.ends_with(".k8s.io");
    for (group, kind, _) in verbund_render::root::SITE_KINDS {
        if !builtin(group) {
            assert!(
                required_apis(Delivery::Flux)
                    .iter()
                    .any(|a| a.group == group && a.kind == kind),
                "{group} {kind} is rendered but not checked"
            );
        }
    }
    // And every custom kind the agent applies, on an agent site.
    for k in crate::kinds::APPLIED {
        if !builtin(k.group) {
            assert!(
                required_apis(Delivery::Agent)
                    .iter()
                    .any(|a| a.api_version() == k.api_version() && a.kind == k.kind),
                "{} {} is applied but not checked",
                k.api_version(),
                k.kind
            );
        }
    }
}

#[test]
fn readiness_reads_the_ready_condition() {
    let store = json!({"status": {"conditions": [
        {"type": "Other", "status": "False"},
        {"type": "Ready", "status": "True", "reason": "Valid", "message": "store validated"},
    ]}});
    assert_eq!(
        readiness(&store),
        Readiness {
            status: Some("True".into()),
            reason: Some("Valid".into()),
            message: Some("store validated".into()),
        }
    );
    assert_eq!(readiness(&json!({"spec": {}})), Readiness::default());
}

// ---------------------------------------------------------------------------------------
// The probe's objects

/// What Pod Security `restricted` checks of a pod.
fn assert_restricted(spec: &PodSpec) {
    let pod = spec
        .security_context
        .as_ref()
        .expect("a pod security context");
    assert_eq!(pod.run_as_non_root, Some(true));
    assert_eq!(
        pod.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert!(spec.host_network.is_none() && spec.host_pid.is_none());
    for c in &spec.containers {
        let s: &SecurityContext = c
            .security_context
            .as_ref()
            .expect("a container security context");
        assert_eq!(s.allow_privilege_escalation, Some(false));
        assert_eq!(
            s.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_string()])
        );
        assert!(s.privileged.is_none());
        assert!(c
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .is_some());
    }
    for v in spec.volumes.iter().flatten() {
        assert!(v.host_path.is_none() && v.empty_dir.is_some(), "{v:?}");
    }
}

#[test]
fn the_probe_is_recognisably_verbunds_and_meets_pod_security_restricted() {
    let ns = namespace("verbund-preflight-0123456789ab", 1_800_000_000);
    let labels = ns.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "verbund");
    assert_eq!(labels[probe::PROBE_LABEL], "probe");
    assert_eq!(
        ns.metadata.annotations.unwrap_or_default()[probe::EXPIRES_ANNOTATION],
        "1800000000"
    );
    let name = probe::namespace_name(std::time::SystemTime::now());
    assert!(
        name.starts_with(probe::NAMESPACE_PREFIX) && name.len() == 30,
        "{name}"
    );
    verbund_domain::name::check_name("/name", &name).expect("a DNS label");

    let s = server(probe::DEFAULT_IMAGE);
    assert_restricted(s.spec.as_ref().expect("spec"));
    assert_eq!(
        s.metadata.labels.unwrap_or_default()[probe::ROLE_LABEL],
        "server"
    );

    for role in [probe::ALLOWED, probe::DENIED] {
        let job = client_job(
            role,
            "img",
            "http://10.0.0.1:8080/",
            Duration::from_secs(60),
        );
        let spec = job.spec.expect("spec");
        assert_eq!(
            spec.backoff_limit,
            Some(0),
            "one try: a retried pod would blur the result"
        );
        assert_eq!(spec.active_deadline_seconds, Some(60));
        let template = spec.template;
        assert_eq!(
            template.metadata.and_then(|m| m.labels).unwrap_or_default()[probe::ROLE_LABEL],
            role
        );
        let pod = template.spec.expect("pod spec");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_restricted(&pod);
    }

    // Default deny for every pod; the allowance only from `allowed` to the server port.
    let [deny, allow] = policies();
    let deny = deny.spec.expect("spec");
    assert_eq!(deny.pod_selector, Some(Default::default()));
    assert_eq!(deny.policy_types, Some(vec!["Ingress".to_string()]));
    assert!(deny.ingress.is_none());
    let allow = serde_json::to_value(allow.spec).expect("json");
    assert_eq!(
        allow,
        json!({
            "podSelector": {"matchLabels": {"verbund.dev/preflight-role": "server"}},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{"podSelector": {"matchLabels": {"verbund.dev/preflight-role": "allowed"}}}],
                "ports": [{"port": 8080, "protocol": "TCP"}],
            }],
        })
    );
    assert_eq!(server_url("10.244.0.7"), "http://10.244.0.7:8080/");
    assert_eq!(server_url("fd00::7"), "http://[fd00::7]:8080/");
}

#[test]
fn a_client_jobs_status_says_whether_it_connected() {
    let condition = |type_: &str, reason: &str| JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        ..JobCondition::default()
    };
    assert_eq!(connection(None), None);
    assert_eq!(connection(Some(&JobStatus::default())), None);
    let done = JobStatus {
        succeeded: Some(1),
        ..JobStatus::default()
    };
    assert_eq!(connection(Some(&done)), Some(Connected));
    let refused = JobStatus {
        failed: Some(1),
        conditions: Some(vec![condition("Failed", "BackoffLimitExceeded")]),
        ..JobStatus::default()
    };
    assert_eq!(connection(Some(&refused)), Some(Refused));
    let late = JobStatus {
        conditions: Some(vec![condition("Failed", "DeadlineExceeded")]),
        ..JobStatus::default()
    };
    assert_eq!(connection(Some(&late)), Some(Unfinished));
    let failing = JobStatus {
        failed: Some(1),
        ..JobStatus::default()
    };
    assert_eq!(connection(Some(&failing)), Some(Refused));
}
