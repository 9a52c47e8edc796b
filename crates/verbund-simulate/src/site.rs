//! One simulated site: its bookings' simulations, its capacity, and the reports it would
//! send at a given moment. Pure (time and the rollout delays are parameters), so that
//! what a site reports can be tested without a network or a clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use verbund_domain::report::{
    AgentInfo, FreeCapacity, SiteHealth, SiteObservation, SiteReport, MAX_BOOKINGS_PER_REPORT,
};

use crate::faults::Faults;
use crate::model::{BookingSim, DesiredBooking, Resources, Timing};

/// What the simulator announces as agent name.
pub const AGENT_NAME: &str = concat!("verbund-simulate/", env!("CARGO_PKG_VERSION"));

/// A site's fixed characteristics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteProfile {
    /// Total allocatable capacity; free capacity is this minus the bookings' quotas.
    pub capacity: Resources,
    pub kubernetes_version: String,
}

impl Default for SiteProfile {
    fn default() -> Self {
        SiteProfile {
            capacity: Resources::DEFAULT_SITE,
            kubernetes_version: "v1.33.4".into(),
        }
    }
}

/// Per-site overrides of a profile, as written in a profiles file:
/// `<site>: { cpu_millis: 8000, memory_mib: 32768, storage_gib: 500, kubernetes_version: v1.31.2 }`,
/// every field optional.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ProfileOverride {
    cpu_millis: Option<u64>,
    memory_mib: Option<u64>,
    storage_gib: Option<u64>,
    kubernetes_version: Option<String>,
}

/// Reads per-site profiles (YAML, site → overrides of `defaults`).
pub fn profiles_from_yaml(
    text: &str,
    defaults: &SiteProfile,
) -> std::result::Result<BTreeMap<String, SiteProfile>, String> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let overrides: BTreeMap<String, ProfileOverride> =
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    Ok(overrides
        .into_iter()
        .map(|(site, o)| {
            let d = defaults.capacity;
            let profile = SiteProfile {
                capacity: Resources {
                    cpu_millis: o.cpu_millis.unwrap_or(d.cpu_millis),
                    memory_mib: o.memory_mib.unwrap_or(d.memory_mib),
                    storage_gib: o.storage_gib.unwrap_or(d.storage_gib),
                },
                kubernetes_version: o
                    .kubernetes_version
                    .unwrap_or_else(|| defaults.kubernetes_version.clone()),
            };
            (site, profile)
        })
        .collect())
}

/// A simulated site.
#[derive(Debug, Clone)]
pub struct SiteSim {
    name: String,
    profile: SiteProfile,
    timing: Timing,
    bookings: BTreeMap<String, BookingSim>,
    last_sequence: u64,
}

impl SiteSim {
    pub fn new(name: &str, profile: SiteProfile, timing: Timing) -> Self {
        SiteSim {
            name: name.to_owned(),
            profile,
            timing,
            bookings: BTreeMap::new(),
            last_sequence: 0,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes the repository's bookings of the site: new ones start their rollout at
    /// `now`, changed versions roll out, gone ones are removed. `delay` gives each new
    /// rollout its latency (the caller adds jitter).
    pub fn sync(
        &mut self,
        desired: &[DesiredBooking],
        now: Instant,
        faults: &Faults,
        mut delay: impl FnMut() -> Duration,
    ) {
        let mut next = BTreeMap::new();
        for d in desired {
            if next.contains_key(&d.booking) {
                continue;
            }
            let sim = match self.bookings.remove(&d.booking) {
                Some(mut sim) => {
                    if sim.desired().version != d.version {
                        sim.update(d.clone(), now, delay(), faults);
                    } else {
                        sim.update(d.clone(), now, Duration::ZERO, faults);
                    }
                    sim
                }
                None => BookingSim::new(d.clone(), now, delay(), self.timing.smoke),
            };
            next.insert(d.booking.clone(), sim);
        }
        self.bookings = next;
    }

    /// The next sequence: above the last one and at least the Unix time in milliseconds,
    /// so that a restarted simulator's reports are still accepted.
    fn next_sequence(&mut self, unix_millis: u64) -> u64 {
        self.last_sequence = (self.last_sequence + 1).max(unix_millis);
        self.last_sequence
    }

    /// The site's own observation.
    pub fn observation(&self, faults: &Faults) -> SiteObservation {
        let used = self.bookings.values().fold(Resources::default(), |sum, b| {
            sum.saturating_add(b.desired().quota)
        });
        let free = self.profile.capacity.saturating_sub(used);
        let unhealthy = faults.is_unhealthy(&self.name);
        SiteObservation {
            kubernetes_version: self.profile.kubernetes_version.clone(),
            free: FreeCapacity {
                cpu_millis: free.cpu_millis,
                memory_mib: free.memory_mib,
                storage_gib: free.storage_gib,
            },
            health: if unhealthy {
                SiteHealth::Unhealthy
            } else {
                SiteHealth::Healthy
            },
            message: unhealthy.then(|| "simulated: the site is configured unhealthy".to_string()),
        }
    }

    /// The batches the agent sends at `now` (at least one, also without bookings), each
    /// with its own increasing sequence.
    pub fn reports(
        &mut self,
        now: Instant,
        unix_millis: u64,
        interval_seconds: u32,
        faults: &Faults,
    ) -> Vec<SiteReport> {
        let site = self.observation(faults);
        let observations: Vec<_> = self
            .bookings
            .values()
            .map(|b| b.observe(&self.name, now, faults))
            .collect();
        let mut chunks: Vec<Vec<_>> = observations
            .chunks(MAX_BOOKINGS_PER_REPORT)
            .map(<[_]>::to_vec)
            .collect();
        if chunks.is_empty() {
            chunks.push(Vec::new());
        }
        chunks
            .into_iter()
            .map(|bookings| SiteReport {
                sequence: self.next_sequence(unix_millis),
                agent: AgentInfo {
                    name: AGENT_NAME.into(),
                    simulated: true,
                    interval_seconds,
                },
                site: site.clone(),
                bookings,
            })
            .collect()
    }
}

/// The interval an agent announces for a tick of `interval`: whole seconds, rounded up,
/// within what the control plane accepts.
pub fn announced_interval(interval: Duration) -> u32 {
    let secs = interval.as_millis().div_ceil(1000);
    let range = verbund_domain::report::INTERVAL_SECONDS;
    u32::try_from(secs)
        .unwrap_or(*range.end())
        .clamp(*range.start(), *range.end())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(booking: &str, version: &str, cpu: u64) -> DesiredBooking {
        DesiredBooking {
            export_job: None,
            booking: booking.into(),
            namespace: format!("ns-{booking}"),
            environment: "prod".into(),
            offering: "formulare".into(),
            version: version.into(),
            desired_replicas: 1,
            smoke_test: false,
            quota: Resources {
                cpu_millis: cpu,
                memory_mib: 1024,
                storage_gib: 10,
            },
        }
    }

    fn timing() -> Timing {
        Timing {
            latency: Duration::from_secs(2),
            smoke: Duration::from_secs(1),
        }
    }

    #[test]
    fn free_capacity_is_the_total_minus_the_quotas() {
        let t0 = Instant::now();
        let mut site = SiteSim::new("s", SiteProfile::default(), timing());
        let none = Faults::default();
        site.sync(
            &[desired("a", "1.0.0", 2000), desired("b", "1.0.0", 500)],
            t0,
            &none,
            || Duration::from_secs(2),
        );
        let free = site.observation(&none).free;
        assert_eq!(free.cpu_millis, 64_000 - 2500);
        assert_eq!(free.memory_mib, 256 * 1024 - 2048);
        assert_eq!(free.storage_gib, 4096 - 20);
        assert_eq!(site.observation(&none).health, SiteHealth::Healthy);
        let mut sick = Faults::default();
        sick.unhealthy.insert("s".into());
        assert_eq!(site.observation(&sick).health, SiteHealth::Unhealthy);
    }

    #[test]
    fn reports_are_labelled_simulated_with_increasing_sequences_and_validate() {
        let t0 = Instant::now();
        let none = Faults::default();
        let mut site = SiteSim::new("s", SiteProfile::default(), timing());
        site.sync(&[desired("a", "1.0.0", 1)], t0, &none, || {
            Duration::from_secs(2)
        });
        let first = site.reports(t0, 1_000, 10, &none);
        let second = site.reports(t0, 1_000, 10, &none);
        assert_eq!(first.len(), 1);
        assert!(first[0].agent.simulated);
        assert!(first[0].agent.name.starts_with("verbund-simulate/"));
        assert_eq!(first[0].sequence, 1_000);
        assert_eq!(second[0].sequence, 1_001);
        assert_eq!(site.reports(t0, 5_000, 10, &none)[0].sequence, 5_000);
        first[0].validate().unwrap();
    }

    #[test]
    fn large_sites_split_their_report_and_gone_bookings_are_dropped() {
        let t0 = Instant::now();
        let none = Faults::default();
        let mut site = SiteSim::new("s", SiteProfile::default(), timing());
        let many: Vec<_> = (0..MAX_BOOKINGS_PER_REPORT + 5)
            .map(|i| desired(&format!("b{i}"), "1.0.0", 0))
            .collect();
        site.sync(&many, t0, &none, || Duration::ZERO);
        let batches = site.reports(t0, 1, 10, &none);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].bookings.len(), 5);
        assert!(batches[1].sequence > batches[0].sequence);
        batches.iter().for_each(|b| b.validate().unwrap());
        site.sync(&many[..1], t0, &none, || Duration::ZERO);
        assert_eq!(site.reports(t0, 1, 10, &none)[0].bookings.len(), 1);
        site.sync(&[], t0, &none, || Duration::ZERO);
        let empty = site.reports(t0, 1, 10, &none);
        assert_eq!((empty.len(), empty[0].bookings.len()), (1, 0));
    }

    #[test]
    fn a_version_change_in_the_repository_rolls_out() {
        let t0 = Instant::now();
        let none = Faults::default();
        let mut site = SiteSim::new("s", SiteProfile::default(), timing());
        site.sync(&[desired("a", "1.0.0", 1)], t0, &none, || {
            Duration::from_secs(2)
        });
        let at = |s| t0 + Duration::from_secs(s);
        site.sync(&[desired("a", "2.0.0", 1)], at(10), &none, || {
            Duration::from_secs(2)
        });
        let version = |site: &mut SiteSim, s| {
            site.reports(at(s), 1, 10, &none)[0].bookings[0]
                .applied_version
                .clone()
        };
        assert_eq!(version(&mut site, 11).as_deref(), Some("1.0.0"));
        assert_eq!(version(&mut site, 12).as_deref(), Some("2.0.0"));
    }

    #[test]
    fn profiles_override_the_defaults_per_site() {
        let p = profiles_from_yaml(
            "small: { cpu_millis: 8000 }\nold: { kubernetes_version: v1.30.1 }\n",
            &SiteProfile::default(),
        )
        .unwrap();
        assert_eq!(p["small"].capacity.cpu_millis, 8000);
        assert_eq!(p["small"].capacity.memory_mib, 256 * 1024);
        assert_eq!(p["old"].kubernetes_version, "v1.30.1");
        assert!(profiles_from_yaml("x: { cpus: 1 }", &SiteProfile::default()).is_err());
    }

    #[test]
    fn the_announced_interval_is_within_bounds() {
        assert_eq!(announced_interval(Duration::from_millis(300)), 2);
        assert_eq!(announced_interval(Duration::from_millis(10_500)), 11);
        assert_eq!(announced_interval(Duration::from_secs(100_000)), 3600);
    }
}
