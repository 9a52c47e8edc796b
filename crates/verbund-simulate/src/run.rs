//! Running simulated sites: one task reads the repository when HEAD moves, one task per
//! site reports on its interval through the real agent's [`ReportSender`].
//!
//! Everything a run needs is in [`SimulationConfig`]; [`Simulation::start`] returns a
//! [`SimulationHandle`] to change the faults, add sites, read counters and stop. The
//! repository is read once per HEAD change for all sites (not once per site), and a site
//! whose folder appears later is picked up when a token can be had for it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use verbund_agent::{ReportSender, SendError};

use crate::error::{Error, Result};
use crate::faults::{Faults, FaultsHandle};
use crate::model::Timing;
use crate::site::{announced_interval, SiteProfile, SiteSim};
use crate::source::{Fleet, GitReader};

/// What to simulate and where to report.
#[derive(Debug, Clone)]
pub struct SimulationConfig {
    /// The control plane's base URL, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    /// The desired-state repository: a local path (bare or not) or a remote URL.
    pub repository: String,
    /// Site tokens by site. Without `sites`, these sites are simulated (plus, with
    /// `mint_with`, every site with a folder in the repository).
    pub tokens: BTreeMap<String, String>,
    /// A user token allowed to issue site tokens (`POST /api/v1/sites/{site}/tokens`),
    /// used for sites without a token in `tokens`.
    pub mint_with: Option<String>,
    /// Only these sites, if given.
    pub sites: Option<BTreeSet<String>>,
    /// How often each site reports (and the repository is checked for a new HEAD).
    pub interval: Duration,
    /// From first seeing a version to its pods being ready.
    pub latency: Duration,
    /// Up to this much is added to each rollout's latency, at random.
    pub jitter: Duration,
    /// From ready to the smoke test's result.
    pub smoke_delay: Duration,
    /// The faults in force at the start.
    pub faults: Faults,
    /// A YAML faults file, re-read every interval; when its content changes it replaces
    /// the faults in force (a missing file means none).
    pub faults_file: Option<PathBuf>,
    /// Capacity and Kubernetes version of every site without its own profile.
    pub default_profile: SiteProfile,
    pub profiles: BTreeMap<String, SiteProfile>,
    /// Where a remote repository is fetched to (the temporary folder if `None`).
    pub cache_dir: Option<PathBuf>,
}

impl SimulationConfig {
    /// Reports every 10 s, rollouts take 2 s, smoke tests 1 s, no faults.
    pub fn new(
        server: impl Into<String>,
        repository: impl Into<String>,
        tokens: BTreeMap<String, String>,
    ) -> Self {
        SimulationConfig {
            server: server.into(),
            repository: repository.into(),
            tokens,
            mint_with: None,
            sites: None,
            interval: Duration::from_secs(10),
            latency: Duration::from_secs(2),
            jitter: Duration::ZERO,
            smoke_delay: Duration::from_secs(1),
            faults: Faults::default(),
            faults_file: None,
            default_profile: SiteProfile::default(),
            profiles: BTreeMap::new(),
            cache_dir: None,
        }
    }

    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets the rollout latency and a smoke delay of half of it.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self.smoke_delay = latency / 2;
        self
    }

    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }
}

/// What one simulated site did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteStats {
    /// Batches the control plane acknowledged.
    pub sent: u64,
    /// Batches lost on purpose (`drop_reports`).
    pub dropped: u64,
    /// Ticks skipped because the site is `silent`.
    pub silent: u64,
    /// Batches refused or not delivered.
    pub failed: u64,
    /// The last sequence sent.
    pub last_sequence: u64,
    /// The last error, for operators.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Shared {
    stats: Mutex<BTreeMap<String, SiteStats>>,
    tokens: Mutex<BTreeMap<String, String>>,
}

impl Shared {
    fn stat(&self, site: &str, change: impl FnOnce(&mut SiteStats)) {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        change(stats.entry(site.to_owned()).or_default());
    }
}

/// Starts simulations.
#[derive(Debug)]
pub struct Simulation;

impl Simulation {
    /// Reads the repository once (failing if it cannot be read) and starts the
    /// simulation's tasks on the current tokio runtime.
    pub async fn start(config: SimulationConfig) -> Result<SimulationHandle> {
        config.faults.validate()?;
        if config.interval.is_zero() {
            return Err(Error::Config(
                "the report interval must be above zero".into(),
            ));
        }
        let repository = config.repository.clone();
        let cache = config.cache_dir.clone();
        let (reader, fleet) = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut reader = GitReader::open(&repository, cache.as_deref())?;
            let fleet = match reader.head()? {
                Some(head) => reader.scan(&head)?,
                None => Fleet::default(),
            };
            Ok((reader, fleet))
        })
        .await
        .map_err(|e| Error::Read {
            repository: config.repository.clone(),
            source: std::io::Error::other(e),
        })??;
        let faults = FaultsHandle::new(config.faults.clone());
        let shared = Arc::new(Shared {
            tokens: Mutex::new(config.tokens.clone()),
            ..Shared::default()
        });
        let (fleet_tx, fleet_rx) = watch::channel(Arc::new(fleet));
        let (stop_tx, stop_rx) = watch::channel(false);
        let (sites_tx, sites_rx) = watch::channel(());
        let config = Arc::new(config);
        let watcher = tokio::spawn(watch_repository(
            reader,
            config.clone(),
            faults.clone(),
            fleet_tx,
            stop_rx.clone(),
        ));
        let supervisor = tokio::spawn(supervise(
            config.clone(),
            shared.clone(),
            faults.clone(),
            fleet_rx,
            sites_rx,
            stop_rx,
        ));
        Ok(SimulationHandle {
            faults,
            shared,
            stop: stop_tx,
            sites_changed: sites_tx,
            tasks: vec![watcher, supervisor],
        })
    }
}

/// A running simulation. Keep it for as long as the sites should report: dropping it
/// stops the tasks as well (without waiting for them, unlike [`SimulationHandle::stop`]).
#[derive(Debug)]
pub struct SimulationHandle {
    faults: FaultsHandle,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    sites_changed: watch::Sender<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl SimulationHandle {
    /// The faults in force, changeable at runtime (effective from the next report).
    pub fn faults(&self) -> &FaultsHandle {
        &self.faults
    }

    /// Simulates `site` (too) with `token`, from its next tick; replaces its token if it
    /// is already simulated.
    pub fn add_site(&self, site: &str, token: &str) {
        self.shared
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(site.to_owned(), token.to_owned());
        self.sites_changed.send_replace(());
    }

    /// Counters per simulated site.
    pub fn stats(&self) -> BTreeMap<String, SiteStats> {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops every task and waits for them.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Re-reads the repository when HEAD moved, and the faults file when it changed.
async fn watch_repository(
    reader: GitReader,
    config: Arc<SimulationConfig>,
    faults: FaultsHandle,
    fleet: watch::Sender<Arc<Fleet>>,
    mut stop: watch::Receiver<bool>,
) {
    let reader = Arc::new(Mutex::new(reader));
    let mut last_faults_file: Option<String> = None;
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        if let Some(path) = &config.faults_file {
            match tokio::fs::read_to_string(path).await {
                Ok(text) if last_faults_file.as_deref() != Some(text.as_str()) => {
                    match Faults::from_yaml(&text) {
                        Ok(f) => {
                            tracing::info!(file = %path.display(), "faults file applied");
                            let _ = faults.set(f);
                            last_faults_file = Some(text);
                        }
                        Err(reason) => {
                            tracing::warn!(file = %path.display(), %reason, "faults file not applied, keeping the faults in force");
                            last_faults_file = Some(text);
                        }
                    }
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if last_faults_file.as_deref().is_some_and(|t| !t.is_empty()) {
                        let _ = faults.set(Faults::default());
                    }
                    last_faults_file = Some(String::new());
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "faults file unreadable")
                }
            }
        }
        let known = fleet.borrow().head.clone();
        let reader = reader.clone();
        let read = tokio::task::spawn_blocking(move || -> Result<Option<Fleet>> {
            let mut reader = reader.lock().unwrap_or_else(|p| p.into_inner());
            let head = reader.head()?;
            if head == known {
                return Ok(None);
            }
            match head {
                Some(h) => reader.scan(&h).map(Some),
                None => Ok(Some(Fleet::default())),
            }
        })
        .await;
        match read {
            Ok(Ok(Some(next))) => {
                tracing::debug!(head = ?next.head, sites = next.sites.len(), "desired state read");
                fleet.send_replace(Arc::new(next));
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "reading the desired state failed"),
            Err(e) => tracing::warn!(error = %e, "reading the desired state failed"),
        }
    }
}

/// Keeps one task per wanted site.
async fn supervise(
    config: Arc<SimulationConfig>,
    shared: Arc<Shared>,
    faults: FaultsHandle,
    mut fleet: watch::Receiver<Arc<Fleet>>,
    mut sites_changed: watch::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    let mut running: BTreeMap<String, (String, JoinHandle<()>)> = BTreeMap::new();
    let mut retry = tokio::time::interval(config.interval.max(Duration::from_secs(1)));
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let client = reqwest::Client::new();
    // Sites whose token could not be issued: when to try again, and the wait after that.
    let mut backoff: BTreeMap<String, (Instant, Duration)> = BTreeMap::new();
    loop {
        let snapshot = fleet.borrow_and_update().clone();
        let tokens = shared
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let wanted: BTreeSet<String> = match &config.sites {
            Some(only) => only.clone(),
            None => {
                let mut all: BTreeSet<String> = tokens.keys().cloned().collect();
                if config.mint_with.is_some() {
                    all.extend(snapshot.sites.keys().cloned());
                }
                all
            }
        };
        for site in &wanted {
            let token = match tokens.get(site) {
                Some(t) => t.clone(),
                None => match &config.mint_with {
                    Some(_)
                        if backoff
                            .get(site)
                            .is_some_and(|(at, _)| Instant::now() < *at) =>
                    {
                        continue
                    }
                    Some(user_token) => {
                        match mint_site_token(&client, &config.server, user_token, site).await {
                            Ok(t) => {
                                backoff.remove(site);
                                tracing::info!(site = %site, "site token issued for the simulation");
                                shared
                                    .tokens
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .insert(site.clone(), t.clone());
                                t
                            }
                            Err(e) => {
                                let wait =
                                    backoff.get(site).map_or(Duration::from_secs(5), |(_, w)| {
                                        (*w * 2).min(Duration::from_secs(300))
                                    });
                                tracing::warn!(site = %site, error = %e, retry_in = ?wait, "site not simulated yet");
                                backoff.insert(site.clone(), (Instant::now() + wait, wait));
                                continue;
                            }
                        }
                    }
                    None => continue,
                },
            };
            if running.get(site).is_some_and(|(t, _)| *t == token) {
                continue;
            }
            if let Some((_, old)) = running.remove(site) {
                old.abort();
            }
            let task = tokio::spawn(run_site(
                site.clone(),
                token.clone(),
                config.clone(),
                shared.clone(),
                faults.clone(),
                fleet.clone(),
                stop.clone(),
            ));
            running.insert(site.clone(), (token, task));
        }
        tokio::select! {
            changed = fleet.changed() => if changed.is_err() { break },
            changed = sites_changed.changed() => if changed.is_err() { break },
            _ = retry.tick() => {}
            _ = stop.changed() => break,
        }
    }
    for (_, (_, task)) in running {
        let _ = task.await;
    }
}

/// Issues a token for `site` with a user token (`POST /api/v1/sites/{site}/tokens`).
pub async fn mint_site_token(
    client: &reqwest::Client,
    server: &str,
    user_token: &str,
    site: &str,
) -> Result<String> {
    let fail = |reason: String| Error::Token {
        site: site.to_owned(),
        reason,
    };
    let url = format!(
        "{}/api/v1/sites/{site}/tokens",
        server.trim_end_matches('/')
    );
    let response = client
        .post(&url)
        .bearer_auth(user_token)
        .json(&serde_json::json!({ "name": "simulate" }))
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        let detail = body
            .get("detail")
            .and_then(|d| d.as_str())
            .unwrap_or_default()
            .to_owned();
        return Err(fail(format!("{status}: {detail}")));
    }
    ["secret", "token"]
        .iter()
        .find_map(|k| body.get(*k).and_then(|v| v.as_str()).map(String::from))
        .ok_or_else(|| fail("the answer holds no secret".into()))
}

/// One site's agent: sync with the repository, report, wait, again.
async fn run_site(
    site: String,
    token: String,
    config: Arc<SimulationConfig>,
    shared: Arc<Shared>,
    faults: FaultsHandle,
    mut fleet: watch::Receiver<Arc<Fleet>>,
    mut stop: watch::Receiver<bool>,
) {
    let timing = Timing {
        latency: config.latency,
        smoke: config.smoke_delay,
    };
    let profile = config
        .profiles
        .get(&site)
        .cloned()
        .unwrap_or_else(|| config.default_profile.clone());
    let mut sim = SiteSim::new(&site, profile, timing);
    let sender = ReportSender::new(&config.server, &site, &token).with_attempts(1);
    let interval_seconds = announced_interval(config.interval);
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut head: Option<Option<String>> = None;
    let mut excluded: BTreeSet<String> = BTreeSet::new();
    let mut last_logged: Option<String> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let now = Instant::now();
        let f = faults.get();
        let snapshot = fleet.borrow_and_update().clone();
        if head.as_ref() != Some(&snapshot.head) {
            let empty = Vec::new();
            let desired = snapshot.sites.get(&site).unwrap_or(&empty);
            let mut rng = rand::thread_rng();
            let jitter = config.jitter;
            sim.sync(desired, now, &f, || {
                let extra = if jitter.is_zero() {
                    Duration::ZERO
                } else {
                    jitter.mul_f64(rng.gen_range(0.0..=1.0))
                };
                config.latency + extra
            });
            head = Some(snapshot.head.clone());
            // The repository moved: give left-out bookings another chance.
            excluded.clear();
        }
        if f.is_silent(&site) {
            shared.stat(&site, |s| s.silent += 1);
            continue;
        }
        for mut report in sim.reports(now, unix_millis(), interval_seconds, &f) {
            if f.drop_reports > 0.0 && rand::thread_rng().gen_bool(f.drop_reports) {
                shared.stat(&site, |s| s.dropped += 1);
                continue;
            }
            report.bookings.retain(|b| !excluded.contains(&b.booking));
            let outcome = loop {
                match sender.send(&report).await {
                    // The repository may list a booking the control plane no longer
                    // places here (it lags the store a little): leave it out and resend,
                    // as the batch is refused as a whole.
                    Err(SendError::Refused {
                        status: 422,
                        detail,
                    }) => match refused_booking(&detail) {
                        Some(b) if report.bookings.iter().any(|o| o.booking == b) => {
                            tracing::info!(site = %site, booking = %b, "booking not placed on the site, left out of the reports");
                            report.bookings.retain(|o| o.booking != b);
                            excluded.insert(b);
                        }
                        _ => {
                            break Err(SendError::Refused {
                                status: 422,
                                detail,
                            })
                        }
                    },
                    other => break other,
                }
            };
            match outcome {
                Ok(_) => {
                    if last_logged.take().is_some() {
                        tracing::info!(site = %site, "reports accepted again");
                    }
                    shared.stat(&site, |s| {
                        s.sent += 1;
                        s.last_sequence = report.sequence;
                    })
                }
                Err(e) => {
                    // Said once per distinct error, not on every tick.
                    let text = e.to_string();
                    if last_logged.as_deref() != Some(text.as_str()) {
                        match &e {
                            SendError::Refused { .. } => {
                                tracing::warn!(site = %site, error = %e, "report refused")
                            }
                            SendError::Unreachable(_) => {
                                tracing::warn!(site = %site, error = %e, "report not delivered")
                            }
                        }
                        last_logged = Some(text);
                    }
                    shared.stat(&site, |s| {
                        s.failed += 1;
                        s.last_error = Some(e.to_string());
                    });
                }
            }
        }
    }
}

/// The booking a refusal names as not placed on the site (`booking `<id>` is not placed
/// on site …`).
fn refused_booking(detail: &str) -> Option<String> {
    if !detail.contains("is not placed on site") {
        return None;
    }
    let start = detail.find("booking `")? + "booking `".len();
    let end = detail[start..].find('`')? + start;
    Some(detail[start..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_booking_that_is_not_placed_here() {
        assert_eq!(
            refused_booking("/bookings/3/booking: booking `b-7` is not placed on site `s`")
                .as_deref(),
            Some("b-7")
        );
        assert_eq!(refused_booking("the sequence is too large"), None);
    }
}
