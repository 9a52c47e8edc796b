//! `verbund agent`: the site agent in a site's cluster. `run` watches the cluster and
//! reports to the control plane every interval (and, with `--apply`, applies the site's
//! desired state from the Git repository); `manifests` prints what installs it;
//! `preflight` checks whether the cluster can run verbund's desired state
//! (`crate::preflight`).
//!
//! The Kubernetes client comes from the usual places (`kube::Client::try_default`: the
//! pod's service account in the cluster, else the kubeconfig). The site token is never
//! an argument (it would show in the process list): it is read from `--token-file` or
//! the environment variable `VERBUND_SITE_TOKEN`, which the install manifests fill from
//! the Secret `verbund-agent-token`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use verbund_agent::apply::{self, Applier};
use verbund_agent::chart::Charts;
use verbund_agent::desired::Repository;
use verbund_agent::install::{manifests, to_yaml, Install, DEFAULT_IMAGE};
use verbund_agent::observe::Stores;
use verbund_agent::{report, ReportSender};
use verbund_seal::Identities;

/// `verbund agent …`
#[derive(Debug, clap::Subcommand)]
pub enum AgentCommand {
    /// Watch the cluster and report to the control plane (and apply, with `--apply`).
    Run(AgentArgs),
    /// Print the agent's install manifests (namespace, RBAC, Deployment) as YAML.
    Manifests(AgentManifestsArgs),
    /// Check whether this cluster can run what verbund's desired state needs, and report
    /// it (a site whose preflight failed gets no new bookings).
    Preflight(crate::preflight::PreflightArgs),
}

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The control plane's base URL, e.g. `https://verbund.example`.
    #[arg(long, env = "VERBUND_SERVER")]
    pub server: String,
    /// The site this cluster is.
    #[arg(long, env = "VERBUND_SITE")]
    pub site: String,
    /// File with the site's token; without it, `VERBUND_SITE_TOKEN`.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Time between reports (and fetches of the desired state): `30s`, `2m`, `1h`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Also apply the site's desired state (sites whose delivery mode is the agent).
    #[arg(long, requires = "repository")]
    pub apply: bool,
    /// The desired-state repository's URL (with `--apply`).
    #[arg(long, env = "VERBUND_REPOSITORY")]
    pub repository: Option<String>,
    /// Its branch.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// The site's environment this cluster runs.
    #[arg(long, default_value = "prod", value_parser = ["prod", "test"])]
    pub environment: String,
    /// Where the repository is cached.
    #[arg(long, default_value = "/var/cache/verbund")]
    pub cache_dir: PathBuf,
    /// Apply an unchanged commit again after this long, to take back drift.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub resync: Duration,
    /// The `helm` binary that renders bookings' charts (with `--apply`).
    #[arg(long, env = "VERBUND_HELM", default_value = "helm")]
    pub helm: PathBuf,
    /// File with the site's age identity (`AGE-SECRET-KEY-1…`, as `age-keygen` writes
    /// it), whose recipient the site registered: opens the bookings' sealed secrets
    /// (with `--apply`). Without it, a booking with sealed secrets is not applied.
    #[arg(long, env = "VERBUND_AGE_IDENTITY")]
    pub age_identity: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct AgentManifestsArgs {
    #[arg(long)]
    pub site: String,
    /// The control plane's base URL the agent reports to.
    #[arg(long)]
    pub server: String,
    /// The agent's namespace.
    #[arg(long, default_value = "verbund-system", value_parser = parse_namespace)]
    pub namespace: String,
    /// The agent's image.
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// Also let the agent apply the desired state (adds the write ClusterRole).
    #[arg(long, requires = "repository")]
    pub apply: bool,
    #[arg(long)]
    pub repository: Option<String>,
    #[arg(long, default_value = "main")]
    pub branch: String,
}

/// Runs `verbund agent <command>`.
pub async fn command(command: AgentCommand) -> anyhow::Result<()> {
    match command {
        AgentCommand::Run(args) => run(args).await,
        AgentCommand::Manifests(args) => {
            print!("{}", manifests_yaml(&args));
            Ok(())
        }
        AgentCommand::Preflight(args) => crate::preflight::run(args).await,
    }
}

/// The site token: from `token_file`, else `VERBUND_SITE_TOKEN`; never an argument.
pub(crate) fn site_token(token_file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let token = match token_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the site token from {}", path.display()))?
            .trim()
            .to_string(),
        None => std::env::var("VERBUND_SITE_TOKEN")
            .context("no site token: give --token-file or set VERBUND_SITE_TOKEN")?
            .trim()
            .to_string(),
    };
    anyhow::ensure!(!token.is_empty(), "the site token is empty");
    Ok(token)
}

/// The install manifests for `args`, as YAML.
pub fn manifests_yaml(args: &AgentManifestsArgs) -> String {
    to_yaml(&manifests(&Install {
        site: args.site.clone(),
        server: args.server.clone(),
        namespace: args.namespace.clone(),
        image: args.image.clone(),
        apply: match (&args.apply, &args.repository) {
            (true, Some(repository)) => Some((repository.clone(), args.branch.clone())),
            _ => None,
        },
    }))
}

/// Reports (and applies) until SIGINT or SIGTERM.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let token = site_token(args.token_file.as_deref())?;
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes client: neither in a cluster nor a usable kubeconfig")?;
    let sender = ReportSender::new(&args.server, &args.site, &token);
    let stores = Stores::start(client.clone());
    tracing::info!(site = %args.site, server = %args.server, apply = args.apply, "agent started");
    let mut tasks = vec![tokio::spawn(report::run(stores, sender, args.interval))];
    if args.apply {
        let url = args
            .repository
            .as_deref()
            .context("--apply needs --repository")?;
        std::fs::create_dir_all(&args.cache_dir)
            .with_context(|| format!("cannot create {}", args.cache_dir.display()))?;
        let repository = Repository::new(url, &args.branch, &args.cache_dir).with_token(&token);
        let folder = format!("sites/{}/{}", args.site, args.environment);
        let kube_version = client.apiserver_version().await.map(|v| v.git_version).ok();
        let charts = Charts::new(&args.helm, kube_version);
        let mut applier = Applier::new(client, charts);
        // A missing identity file (the install manifests mount the Secret optionally) is
        // no reason to stop the site: only bookings with sealed secrets wait for it.
        if let Some(path) = args.age_identity.as_ref().filter(|p| {
            let there = p.exists();
            if !there {
                tracing::warn!(path = %p.display(), "no age identity: bookings with sealed secrets are not applied");
            }
            there
        }) {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the age identity from {}", path.display()))?;
            let identities = Identities::parse(&text)
                .with_context(|| format!("{} holds no age identity", path.display()))?;
            tracing::info!(recipients = ?identities.recipients(), "sealed secrets open with this identity");
            applier = applier.with_identities(identities);
        }
        tasks.push(tokio::spawn(apply::run(
            applier,
            repository,
            folder,
            args.interval,
            args.resync,
        )));
    }
    shutdown().await;
    tracing::info!("agent stopping");
    for task in tasks {
        task.abort();
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `30s`, `5m`, `1h`, or plain seconds.
/// A namespace name Kubernetes accepts, or why not, in words.
fn parse_namespace(text: &str) -> Result<String, String> {
    if verbund_render::names::is_dns_label(text) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` cannot name a Kubernetes namespace: use 1 to 63 lowercase letters, \
             digits and hyphens, beginning and ending with a letter or digit (e.g. `verbund-system`)"
        ))
    }
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like `30s`, `5m` or `1h`"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => {
            return Err(format!(
                "`{text}` is not a duration like `30s`, `5m` or `1h`"
            ))
        }
    };
    if seconds == 0 {
        return Err("a duration must be more than 0 seconds".into());
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("1d").is_err());
    }

    #[test]
    fn namespaces_are_checked_in_words() {
        assert_eq!(
            parse_namespace("verbund-system").as_deref(),
            Ok("verbund-system")
        );
        for bad in ["Bad_NS", "", "-x", "x-", &"a".repeat(64)] {
            let e = parse_namespace(bad).unwrap_err();
            assert!(e.contains(&format!("`{bad}`")) && !e.contains("DNS"), "{e}");
        }
    }
}
