//! `verbund agent preflight`: checks whether this cluster can run what verbund's desired
//! state needs, prints each check, reports the result to the control plane with the
//! site's token (unless `--no-report`), and exits non-zero when a check failed — a site
//! whose last preflight failed gets no new bookings.
//!
//! What the control plane expects (the site's delivery mode and declared Kubernetes
//! version) is asked from it with the same token; `--delivery` stands in when it cannot
//! be asked. The checks themselves are `verbund_agent::preflight`'s.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use verbund_agent::preflight::probe::{Probe, DEFAULT_IMAGE};
use verbund_agent::preflight::{self, ProbeSettings, Settings};
use verbund_agent::ReportSender;
use verbund_domain::directory::Delivery;
use verbund_domain::preflight::{PreflightCheck, PreflightVerdict};

use crate::agent::{parse_duration, shutdown, site_token};
use crate::client::{emit, print_data, Format, Table};

#[derive(Debug, clap::Args)]
pub struct PreflightArgs {
    /// The control plane's base URL, e.g. `https://verbund.example`.
    #[arg(long, env = "VERBUND_SERVER")]
    pub server: String,
    /// The site this cluster is.
    #[arg(long, env = "VERBUND_SITE")]
    pub site: String,
    /// File with the site's token; without it, `VERBUND_SITE_TOKEN`.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The site's delivery mode; asked from the control plane when not given.
    #[arg(long, value_parser = ["flux", "argocd", "agent"])]
    pub delivery: Option<String>,
    /// The ClusterSecretStore every ExternalSecret reads from.
    #[arg(long, default_value = "verbund")]
    pub secret_store: String,
    /// The IngressClass bookings' Ingresses name.
    #[arg(long, default_value = "nginx")]
    pub ingress_class: String,
    /// The ClusterRole bound to each booking's tenant group.
    #[arg(long, default_value = "edit")]
    pub tenant_role: String,
    /// The image of the NetworkPolicy probe's pods (needs `sh`, `httpd` and `wget`).
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub probe_image: String,
    /// How long the probe's server may take to be Ready and its clients to finish.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub probe_timeout: Duration,
    /// Check and print only; do not report to the control plane.
    #[arg(long)]
    pub no_report: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// What is printed with `-o json|yaml`.
#[derive(Debug, Serialize)]
struct Printed<'a> {
    site: &'a str,
    delivery: Delivery,
    verdict: PreflightVerdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    kubernetes_version: Option<&'a str>,
    checks: &'a [PreflightCheck],
    /// The probe's temporary namespace, and whether it was gone at the end.
    probe_namespace: &'a str,
    probe_namespace_removed: bool,
}

fn delivery_from(name: &str) -> anyhow::Result<Delivery> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .with_context(|| format!("`{name}` is not a delivery mode (flux, argocd, agent)"))
}

fn delivery_name(d: Delivery) -> String {
    match serde_json::to_value(d) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{d:?}"),
    }
}

/// The delivery mode and declared version to check for: the control plane's word, or
/// `--delivery` when it cannot be asked.
async fn expectations(
    args: &PreflightArgs,
    sender: Option<&ReportSender>,
) -> anyhow::Result<(Delivery, Option<String>)> {
    let given = args.delivery.as_deref().map(delivery_from).transpose()?;
    let asked = match sender {
        Some(s) => Some(s.preflight_requirements().await),
        None => None,
    };
    match (given, asked) {
        (Some(given), Some(Ok(r))) if r.delivery != given => anyhow::bail!(
            "the control plane says site `{}` receives its desired state by `{}`, not `{}`: drop --delivery or correct the site",
            args.site,
            delivery_name(r.delivery),
            delivery_name(given)
        ),
        (_, Some(Ok(r))) => Ok((r.delivery, Some(r.kubernetes_version))),
        (Some(given), Some(Err(e))) => {
            eprintln!(
                "note: cannot ask the control plane about site `{}` ({e}); checking for --delivery {} without its declared Kubernetes version",
                args.site,
                delivery_name(given)
            );
            Ok((given, None))
        }
        (Some(given), None) => Ok((given, None)),
        (None, Some(Err(e))) => Err(anyhow::anyhow!(
            "cannot ask the control plane for site `{}`'s delivery mode ({e}); give --delivery flux|argocd|agent",
            args.site
        )),
        (None, None) => {
            anyhow::bail!("without a site token, give --delivery flux|argocd|agent (and --no-report)")
        }
    }
}

fn print(args: &PreflightArgs, printed: &Printed<'_>) -> anyhow::Result<()> {
    if args.output != Format::Table {
        return print_data(args.output, printed);
    }
    let mut t = Table::new(&["CHECK", "VERDICT", "REASON"]);
    for c in printed.checks {
        t.row(vec![
            c.name.clone(),
            c.verdict.as_str().to_string(),
            c.reason.clone(),
        ]);
    }
    emit(&t.to_string())?;
    emit(&format!(
        "\npreflight of site `{}` ({}): {}\n",
        printed.site,
        delivery_name(printed.delivery),
        printed.verdict.as_str()
    ))
}

/// Runs the checks, prints and reports them.
pub async fn run(args: PreflightArgs) -> anyhow::Result<()> {
    let token = match site_token(args.token_file.as_deref()) {
        Ok(t) => Some(t),
        Err(e) if args.no_report => {
            tracing::debug!(error = %e, "no site token; not asking the control plane");
            None
        }
        Err(e) => {
            return Err(
                e.context("the preflight is reported with the site's token (or pass --no-report)")
            )
        }
    };
    let sender = token
        .as_deref()
        .map(|t| ReportSender::new(&args.server, &args.site, t));
    let (delivery, declared) = expectations(&args, sender.as_ref()).await?;
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes client: neither in a cluster nor a usable kubeconfig")?;
    let settings = Settings {
        delivery,
        declared_kubernetes: declared,
        secret_store: args.secret_store.clone(),
        ingress_class: args.ingress_class.clone(),
        tenant_role: args.tenant_role.clone(),
        probe: ProbeSettings {
            image: args.probe_image.clone(),
            timeout: args.probe_timeout,
        },
    };
    tracing::info!(site = %args.site, delivery = %delivery_name(delivery), "preflight started");
    let (facts, probe): (_, Probe) = preflight::observe(&client, &settings, shutdown()).await;
    if probe.interrupted {
        anyhow::bail!(
            "interrupted; the probe's namespace `{}` was {}, nothing was reported",
            probe.namespace,
            if probe.removed {
                "deleted"
            } else {
                "left to the cluster to delete"
            }
        );
    }
    let checks = preflight::judge(&settings, &facts);
    let report = preflight::report(&settings, &facts, checks);
    let verdict = report.verdict();
    print(
        &args,
        &Printed {
            site: &args.site,
            delivery,
            verdict,
            kubernetes_version: report.kubernetes_version.as_deref(),
            checks: &report.checks,
            probe_namespace: &probe.namespace,
            probe_namespace_removed: probe.removed,
        },
    )?;
    for swept in &probe.swept {
        eprintln!("note: deleted the abandoned probe namespace `{swept}` of an earlier run");
    }
    if !probe.removed {
        eprintln!(
            "note: the probe's namespace `{}` is still being deleted by the cluster",
            probe.namespace
        );
    }
    match (&sender, args.no_report) {
        (Some(sender), false) => {
            let stored = sender
                .send_preflight(&report)
                .await
                .context("cannot report the preflight to the control plane")?;
            eprintln!(
                "reported to {}: site `{}` {} its preflight",
                args.server,
                stored.site,
                match stored.verdict {
                    PreflightVerdict::Fail =>
                        "failed (it gets no new bookings until a preflight passes)",
                    PreflightVerdict::Warn => "passed with warnings",
                    PreflightVerdict::Pass => "passed",
                }
            );
        }
        _ => eprintln!("not reported (--no-report)"),
    }
    if verdict == PreflightVerdict::Fail {
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| c.verdict == PreflightVerdict::Fail)
            .map(|c| c.name.as_str())
            .collect();
        anyhow::bail!(
            "site `{}` failed its preflight: {} of {} checks failed ({})",
            args.site,
            failed.len(),
            report.checks.len(),
            failed.join(", ")
        );
    }
    Ok(())
}
