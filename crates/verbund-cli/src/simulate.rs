//! `verbund simulate`: simulated site agents for demos and load tests.
//!
//! Each simulated site reads its desired state from the desired-state repository and
//! reports through the real report API with a site token of its own (minted here with a
//! federation admin's token unless given), labelled `simulated: true`. Faults are
//! injected with a YAML file that is re-read on every tick. The `demo` command starts
//! the same simulation in process with tokens it issued itself ([`start_in_process`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;

pub use verbund_simulate::{
    Faults, Simulation, SimulationConfig, SimulationHandle, SiteProfile, SiteStats,
};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Base URL of the verbund server.
    #[arg(long, env = "VERBUND_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// A federation admin's API token, used to issue each simulated site a token of its
    /// own; without one, the file `$VERBUND_DATA/admin.token` is used.
    #[arg(long, env = "VERBUND_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The desired-state repository: a path or a Git URL (default:
    /// `$VERBUND_DATA/desired-state.git`, VERBUND_DATA defaulting to `data`). It is only
    /// read, also while the server writes it.
    #[arg(long, env = "VERBUND_SIMULATE_REPOSITORY")]
    pub repository: Option<String>,
    /// Simulate only this site (repeatable); default: every site with a folder in the
    /// repository, including sites added later.
    #[arg(long = "site")]
    pub sites: Vec<String>,
    /// Use this site token instead of issuing one, as `SITE=TOKEN` (repeatable).
    #[arg(long = "site-token", value_name = "SITE=TOKEN")]
    pub site_tokens: Vec<String>,
    /// How often each site reports (e.g. `10s`, `500ms`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub interval: Duration,
    /// How long a version takes to become ready after it is first seen.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub latency: Duration,
    /// Up to this much is added to each rollout's latency, at random.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub jitter: Duration,
    /// YAML faults file, re-read on every tick: `never_ready: ["<offering>@<version>"]`,
    /// `failing_smoke: [<site> | <booking> | "<offering>@<version>" | "<booking>@<version>"]`,
    /// `silent: [<site>]`,
    /// `unhealthy: [<site>]`, `degraded: [<booking>]`, `drop_reports: 0.0..1.0`.
    #[arg(long)]
    pub faults: Option<PathBuf>,
    /// Kubernetes version the sites report.
    #[arg(long, default_value = "v1.33.4")]
    pub kubernetes_version: String,
    /// Allocatable CPU of each site, in millicores.
    #[arg(long, default_value_t = 64_000)]
    pub cpu_millis: u64,
    /// Allocatable memory of each site, in MiB.
    #[arg(long, default_value_t = 256 * 1024)]
    pub memory_mib: u64,
    /// Allocatable storage of each site, in GiB.
    #[arg(long, default_value_t = 4 * 1024)]
    pub storage_gib: u64,
    /// YAML file of per-site overrides of the four settings above, e.g.
    /// `site-a: { cpu_millis: 8000, kubernetes_version: v1.31.2 }`.
    #[arg(long)]
    pub profiles: Option<PathBuf>,
}

/// `300ms`, `10s`, `2m`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like `10s` or `500ms`"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown unit `{other}` (use ms, s, m or h)")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("`{text}` is not a duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn data_folder() -> PathBuf {
    std::env::var_os("VERBUND_DATA")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data"))
}

fn user_token(given: Option<&str>) -> anyhow::Result<String> {
    if let Some(t) = given.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(t.to_string());
    }
    let path = data_folder().join("admin.token");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        anyhow!(
            "no API token to issue site tokens with: pass `--token`, set VERBUND_TOKEN, or \
             point VERBUND_DATA at the server's data folder (cannot read {}: {e})",
            path.display()
        )
    })?;
    let token = text.trim().to_string();
    if token.is_empty() {
        bail!("no API token: {} is empty", path.display());
    }
    Ok(token)
}

/// The configuration `args` describe (without starting anything).
pub fn config(args: &SimulateArgs) -> anyhow::Result<SimulationConfig> {
    let server = args.server.trim_end_matches('/').to_string();
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        bail!("the server URL `{server}` must start with `http://` or `https://`");
    }
    if args.interval < Duration::from_millis(100) {
        bail!("the interval must be at least 100ms");
    }
    let repository = match &args.repository {
        Some(r) => r.clone(),
        None => data_folder()
            .join("desired-state.git")
            .display()
            .to_string(),
    };
    let mut tokens = BTreeMap::new();
    for pair in &args.site_tokens {
        let (site, token) = pair
            .split_once('=')
            .filter(|(s, t)| !s.is_empty() && !t.is_empty())
            .ok_or_else(|| anyhow!("`--site-token` takes `SITE=TOKEN`"))?;
        tokens.insert(site.to_string(), token.to_string());
    }
    let sites: Option<BTreeSet<String>> =
        (!args.sites.is_empty()).then(|| args.sites.iter().cloned().collect());
    let all_tokens_given = sites
        .as_ref()
        .is_some_and(|s| s.iter().all(|site| tokens.contains_key(site)));
    let mint_with = if all_tokens_given {
        None
    } else {
        Some(user_token(args.token.as_deref())?)
    };
    let mut config = SimulationConfig::new(server, repository, tokens)
        .interval(args.interval)
        .latency(args.latency);
    config.mint_with = mint_with;
    config.sites = sites;
    config.jitter = args.jitter;
    config.faults_file = args.faults.clone();
    if let Some(path) = &args.faults {
        config.faults = Faults::read(path).context("cannot use the faults file")?;
    }
    config.default_profile = SiteProfile {
        capacity: verbund_simulate::Resources {
            cpu_millis: args.cpu_millis,
            memory_mib: args.memory_mib,
            storage_gib: args.storage_gib,
        },
        kubernetes_version: args.kubernetes_version.clone(),
    };
    if let Some(path) = &args.profiles {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the profiles file {}", path.display()))?;
        config.profiles = verbund_simulate::profiles_from_yaml(&text, &config.default_profile)
            .map_err(|e| anyhow!("profiles file {}: {e}", path.display()))?;
    }
    Ok(config)
}

/// Runs the simulation until Ctrl-C.
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let config = config(&args)?;
    let repository = config.repository.clone();
    let sim = Simulation::start(config)
        .await
        .with_context(|| format!("cannot read the desired state from `{repository}`"))?;
    tracing::info!(server = %args.server, repository = %repository, interval = ?args.interval, "simulating sites; Ctrl-C stops");
    let mut summary = tokio::time::interval(Duration::from_secs(30).max(args.interval));
    summary.tick().await;
    loop {
        tokio::select! {
            signal = tokio::signal::ctrl_c() => {
                signal.context("cannot wait for Ctrl-C")?;
                break;
            }
            _ = summary.tick() => log_stats(&sim.stats()),
        }
    }
    let stats = sim.stats();
    sim.stop().await;
    log_stats(&stats);
    Ok(())
}

fn log_stats(stats: &BTreeMap<String, SiteStats>) {
    for (site, s) in stats {
        tracing::info!(
            site = %site,
            sent = s.sent,
            dropped = s.dropped,
            silent = s.silent,
            failed = s.failed,
            last_error = s.last_error.as_deref().unwrap_or(""),
            "simulated site"
        );
    }
}

/// Starts simulated agents in this process, e.g. for `verbund demo`, with site tokens
/// the caller issued (`site → secret`). Stop them with [`SimulationHandle::stop`].
pub async fn start_in_process(
    server: &str,
    repository: &std::path::Path,
    tokens: BTreeMap<String, String>,
    interval: Duration,
    latency: Duration,
) -> anyhow::Result<SimulationHandle> {
    let config = SimulationConfig::new(server, repository.display().to_string(), tokens)
        .interval(interval)
        .latency(latency);
    Simulation::start(config)
        .await
        .with_context(|| format!("cannot simulate sites from {}", repository.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
