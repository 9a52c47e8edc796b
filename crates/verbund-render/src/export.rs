//! The data export of a temporary booking that ended (see `verbund_domain::ending`): the
//! offering's export Job and the one network policy it needs, in `export.yaml`, for as
//! long as the booking is being exported.
//!
//! The Job is named after the attempt (`data-export-<attempt>`), so a retry is a Job of
//! its own and a failed attempt's result is never read as the next one's. Like the smoke
//! test it runs once (`backoffLimit: 0`) within the offering's timeout, is kept after it
//! finished (the agent reads its result), meets Pod Security `restricted` and takes the
//! share the namespace's quota keeps free. It is told where to write by
//! `EXPORT_ENDPOINT`, `EXPORT_BUCKET` and `EXPORT_OBJECT`, and reads the booking's
//! configuration and declared secrets as the application does (the bucket's credentials
//! are such a secret: they reach the site only sealed): plain manifests' configuration
//! ConfigMap and its Secret as environment variables, a chart's secret values as the file
//! `/etc/verbund/config-secrets/values.yaml`. Both are optional references, as a booking
//! may set no secret. It states what it wrote as its termination message
//! (`verbund_domain::ending::ExportSums`, JSON).
//!
//! `default-deny` keeps every pod of the namespace from leaving it; `allow-export` lets
//! the export Job's pods (only) reach the target's port on any address, as a
//! NetworkPolicy cannot name a host.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, Container, EnvFromSource, EnvVar, PodTemplateSpec, SecretEnvSource,
    SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicyEgressRule, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use verbund_domain::catalog::{config_secret_name, DataExport, Package};
use verbund_domain::directory::Delivery;
use verbund_domain::ending::{ExportRun, ExportTarget};

use crate::smoke::{restricted_container, restricted_run_once, smoke_test_resources};
use crate::tenant::Tenant;

/// The label that marks a data-export Job and its pods (value `"true"`).
pub const EXPORT_LABEL: &str = "verbund.dev/export";
/// Where a chart's declared-secret values are mounted in the export Job.
pub const SECRETS_DIR: &str = "/etc/verbund/config-secrets";

/// The export Job of attempt `run`, writing to `target`.
pub(crate) fn export_job(
    tenant: &Tenant<'_>,
    export: &DataExport,
    run: &ExportRun,
    target: &ExportTarget,
    delivery: Delivery,
) -> Job {
    let mut labels = tenant.labels.clone();
    labels.insert(EXPORT_LABEL.to_string(), "true".to_string());
    let mut metadata = tenant.meta(&run.job());
    metadata.labels = Some(labels.clone());
    if delivery == Delivery::Argocd {
        metadata.annotations = Some(BTreeMap::from([(
            "argocd.argoproj.io/sync-wave".to_string(),
            "2".to_string(),
        )]));
    }
    let (env_from, volumes, mounts) = configuration(&tenant.placed.version.package);
    let env = [
        ("EXPORT_ENDPOINT", target.endpoint.as_str()),
        ("EXPORT_BUCKET", target.bucket.as_str()),
        ("EXPORT_OBJECT", run.object.as_str()),
    ]
    .into_iter()
    .map(|(name, value)| EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..EnvVar::default()
    })
    .collect();
    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(i64::from(export.timeout_seconds)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(k8s_openapi::api::core::v1::PodSpec {
                    containers: vec![Container {
                        name: "data-export".to_string(),
                        image: Some(export.image.clone()),
                        command: (!export.command.is_empty()).then(|| export.command.clone()),
                        env: Some(env),
                        env_from,
                        volume_mounts: mounts,
                        termination_message_policy: Some("File".to_string()),
                        security_context: Some(restricted_container()),
                        resources: Some(smoke_test_resources()),
                        ..Container::default()
                    }],
                    volumes,
                    ..restricted_run_once()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

type Configuration = (
    Option<Vec<EnvFromSource>>,
    Option<Vec<Volume>>,
    Option<Vec<VolumeMount>>,
);

/// How the export Job reads the booking's configuration and declared secrets: as the
/// package's application does.
fn configuration(package: &Package) -> Configuration {
    let secret = config_secret_name(package);
    match package {
        Package::Manifests {
            config_map: Some(name),
            ..
        } => (
            Some(vec![
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: name.clone(),
                        optional: Some(false),
                    }),
                    ..EnvFromSource::default()
                },
                EnvFromSource {
                    secret_ref: secret.map(|name| SecretEnvSource {
                        name,
                        optional: Some(true),
                    }),
                    ..EnvFromSource::default()
                },
            ]),
            None,
            None,
        ),
        Package::Manifests { .. } => (None, None, None),
        Package::Helm { .. } => (
            None,
            Some(vec![Volume {
                name: "config-secrets".to_string(),
                secret: Some(SecretVolumeSource {
                    secret_name: secret,
                    optional: Some(true),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            }]),
            Some(vec![VolumeMount {
                name: "config-secrets".to_string(),
                mount_path: SECRETS_DIR.to_string(),
                read_only: Some(true),
                ..VolumeMount::default()
            }]),
        ),
    }
}

/// `allow-export`: the export Job's pods may reach the target's port (443 unless the
/// endpoint names one) on any address.
pub(crate) fn allow_export(
    tenant: &Tenant<'_>,
    target: &ExportTarget,
) -> k8s_openapi::api::networking::v1::NetworkPolicy {
    tenant.policy(
        "allow-export",
        NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    EXPORT_LABEL.to_string(),
                    "true".to_string(),
                )])),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Egress".to_string()]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: None,
                ports: Some(vec![NetworkPolicyPort {
                    protocol: Some("TCP".to_string()),
                    port: Some(IntOrString::Int(port(target))),
                    ..NetworkPolicyPort::default()
                }]),
            }]),
            ..NetworkPolicySpec::default()
        },
    )
}

/// The endpoint's port: the one it names, else 443.
fn port(target: &ExportTarget) -> i32 {
    target
        .endpoint
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(443)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_the_endpoints_or_443() {
        let mut t: ExportTarget = "https://s3.example.de/b-1"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(port(&t), 443);
        t.endpoint = "https://minio.land.de:9000".into();
        assert_eq!(port(&t), 9000);
    }
}
