//! The smoke-test Job of a booking whose offering has a smoke test.
//!
//! The control plane learns whether a version works from the site's agent, which reads
//! the Job's outcome. So the Job is named after the version (`smoke-test-<version>`,
//! dots as dashes): every new version gets a Job of its own and runs its check once,
//! and an old version's result can never be mistaken for the new one's. It runs once
//! (`backoffLimit: 0`) within the offering's timeout (`activeDeadlineSeconds`), and is
//! kept after it finished (no `ttlSecondsAfterFinished`), or the agent could not read
//! its result and a GitOps engine would recreate it. Its pod meets Pod Security
//! `restricted`, like the namespace demands; it asks for a small fixed share
//! ([`SMOKE_TEST_CPU_MILLIS`], [`SMOKE_TEST_MEMORY_MIB`]) that the namespace's quota keeps
//! free for it (see [`crate::resources`]).
//!
//! On Argo CD sites it carries sync wave 2, after the application (wave 1). Elsewhere
//! (Flux, the agent) it starts as soon as it is applied, possibly before the
//! application is up: a smoke test must wait for the application itself, retrying
//! until its deadline, rather than fail on the first refused connection.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements,
    SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use verbund_domain::catalog::SmokeTest;
use verbund_domain::directory::Delivery;

use crate::names::{short_hash, slug, MAX_LABEL};
use crate::resources::{cpu, memory, SMOKE_TEST_CPU_MILLIS, SMOKE_TEST_MEMORY_MIB};
use crate::tenant::Tenant;

/// The label that marks a smoke-test Job (value `"true"`).
pub const SMOKE_TEST_LABEL: &str = "verbund.dev/smoke-test";

/// `smoke-test-<version>`: the version's dots (and anything else not allowed in a
/// DNS-1123 label) as dashes; a name longer than 63 characters is cut and ends in a
/// hash of the version, so that distinct versions keep distinct Jobs.
pub fn smoke_test_name(version: &str) -> String {
    const PREFIX: &str = "smoke-test-";
    let name = format!("{PREFIX}{}", slug(version));
    if name.len() <= MAX_LABEL {
        return name;
    }
    let hash = short_hash(version);
    let keep = MAX_LABEL - PREFIX.len() - hash.len() - 1;
    let head = slug(version);
    let head = head.get(..keep).unwrap_or("").trim_end_matches('-');
    format!("{PREFIX}{head}-{hash}")
}

/// The Job that runs `test` against the booking's applied version.
pub(crate) fn smoke_test_job(tenant: &Tenant<'_>, test: &SmokeTest, delivery: Delivery) -> Job {
    let mut labels = tenant.labels.clone();
    labels.insert(SMOKE_TEST_LABEL.to_string(), "true".to_string());
    let mut metadata = tenant.meta(&smoke_test_name(&tenant.placed.version.version));
    metadata.labels = Some(labels.clone());
    if delivery == Delivery::Argocd {
        metadata.annotations = Some(BTreeMap::from([(
            "argocd.argoproj.io/sync-wave".to_string(),
            "2".to_string(),
        )]));
    }
    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(i64::from(test.timeout_seconds)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "smoke-test".to_string(),
                        image: Some(test.image.clone()),
                        command: (!test.command.is_empty()).then(|| test.command.clone()),
                        security_context: Some(restricted_container()),
                        resources: Some(smoke_test_resources()),
                        ..Container::default()
                    }],
                    ..restricted_run_once()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// A pod that runs once, without the API's token, under Pod Security `restricted`.
pub(crate) fn restricted_run_once() -> PodSpec {
    PodSpec {
        restart_policy: Some("Never".to_string()),
        automount_service_account_token: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_string(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        ..PodSpec::default()
    }
}

/// The smoke test's fixed share, requests and limits alike (the data export has the
/// same: the namespace's quota keeps it free for either, and a booking being exported
/// gets no new version, so no smoke test runs beside it).
pub(crate) fn smoke_test_resources() -> ResourceRequirements {
    let amounts = std::collections::BTreeMap::from([
        ("cpu".to_string(), cpu(SMOKE_TEST_CPU_MILLIS)),
        ("memory".to_string(), memory(SMOKE_TEST_MEMORY_MIB)),
    ]);
    ResourceRequirements {
        limits: Some(amounts.clone()),
        requests: Some(amounts),
        ..ResourceRequirements::default()
    }
}

/// A container's share of Pod Security `restricted`.
pub(crate) fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_version() {
        assert_eq!(smoke_test_name("1.4.0"), "smoke-test-1-4-0");
        assert_eq!(smoke_test_name("2.0.0-rc.1+b7"), "smoke-test-2-0-0-rc-1-b7");
        let long = format!("1.0.0-{}", "a".repeat(80));
        let name = smoke_test_name(&long);
        assert!(name.len() <= 63, "{name}");
        assert_ne!(name, smoke_test_name(&format!("1.0.0-{}", "a".repeat(81))));
    }
}
