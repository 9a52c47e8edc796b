//! How one simulated booking behaves over time: pure, with the time passed in.
//!
//! A real cluster takes a while to roll out a version, then the pods become ready, then
//! the smoke-test Job runs. The rollout engine and the lifecycle rules (provisioning →
//! active, active → degraded → active) are tested against that timing, so it is modelled
//! here once, without sleeps: [`BookingSim::observe`] answers "what would the agent see
//! at `now`", given the faults in force.

use std::time::{Duration, Instant};

use verbund_domain::ending::{ExportObservation, ExportStatus, ExportSums};
use verbund_domain::report::{BookingObservation, Condition, SmokeResult};

use crate::faults::Faults;

/// Resource amounts: what a booking's quota requests, or what a site has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    pub cpu_millis: u64,
    pub memory_mib: u64,
    pub storage_gib: u64,
}

impl Resources {
    /// 64 cores, 256 GiB memory, 4 TiB storage.
    pub const DEFAULT_SITE: Resources = Resources {
        cpu_millis: 64_000,
        memory_mib: 256 * 1024,
        storage_gib: 4 * 1024,
    };

    pub fn saturating_sub(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_mib: self.memory_mib.saturating_sub(other.memory_mib),
            storage_gib: self.storage_gib.saturating_sub(other.storage_gib),
        }
    }

    pub fn saturating_add(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_mib: self.memory_mib.saturating_add(other.memory_mib),
            storage_gib: self.storage_gib.saturating_add(other.storage_gib),
        }
    }
}

/// One booking as the desired-state repository describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredBooking {
    /// The booking id (`verbund.dev/booking` of the namespace).
    pub booking: String,
    /// The namespace (= the folder's name).
    pub namespace: String,
    /// `prod` or `test`.
    pub environment: String,
    pub offering: String,
    pub version: String,
    pub desired_replicas: u32,
    /// Whether `app.yaml` carries a smoke-test Job.
    pub smoke_test: bool,
    /// The data-export Job (`export.yaml`) of a booking being exported.
    pub export_job: Option<String>,
    /// What the ResourceQuota requests.
    pub quota: Resources,
}

/// How long the simulated cluster takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// From first seeing a version to its pods being ready.
    pub latency: Duration,
    /// From ready to the smoke test's result.
    pub smoke: Duration,
}

/// One version being rolled out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rollout {
    version: String,
    /// When it is applied and its pods are ready (unless a fault holds it back).
    ready_at: Instant,
}

/// A simulated booking: the version that runs and the one being rolled out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingSim {
    desired: DesiredBooking,
    /// The last version that became ready, serving until the target is ready.
    serving: Option<Rollout>,
    /// The newest desired version.
    target: Rollout,
    smoke_delay: Duration,
    /// Since when the current export Job is there.
    export_since: Option<Instant>,
}

impl BookingSim {
    /// A booking first seen at `now`; `delay` is the rollout latency for this version
    /// (the caller adds jitter).
    pub fn new(desired: DesiredBooking, now: Instant, delay: Duration, smoke: Duration) -> Self {
        BookingSim {
            export_since: desired.export_job.as_ref().map(|_| now),
            target: Rollout {
                version: desired.version.clone(),
                ready_at: now + delay,
            },
            desired,
            serving: None,
            smoke_delay: smoke,
        }
    }

    pub fn desired(&self) -> &DesiredBooking {
        &self.desired
    }

    /// Takes the repository's newest description of the booking. A new version starts a
    /// rollout at `now` taking `delay`; the version serving so far keeps serving until
    /// the new one is ready.
    pub fn update(
        &mut self,
        desired: DesiredBooking,
        now: Instant,
        delay: Duration,
        faults: &Faults,
    ) {
        if desired.version != self.target.version {
            if self.target_ready(now, faults) {
                self.serving = Some(self.target.clone());
            }
            self.target = Rollout {
                version: desired.version.clone(),
                ready_at: now + delay,
            };
        }
        if desired.export_job != self.desired.export_job {
            self.export_since = desired.export_job.as_ref().map(|_| now);
        }
        self.desired = desired;
    }

    fn held_back(&self, version: &str, faults: &Faults) -> bool {
        faults.never_ready(&self.desired.offering, version)
    }

    fn target_ready(&self, now: Instant, faults: &Faults) -> bool {
        now >= self.target.ready_at && !self.held_back(&self.target.version, faults)
    }

    /// What the agent sees of the booking at `now` on `site`.
    pub fn observe(&self, site: &str, now: Instant, faults: &Faults) -> BookingObservation {
        let d = &self.desired;
        let desired_replicas = d.desired_replicas;
        let target = &self.target;
        let mut obs = BookingObservation {
            export: None,
            booking: d.booking.clone(),
            applied_version: None,
            desired_replicas,
            ready_replicas: 0,
            conditions: Vec::new(),
            smoke_test: if d.smoke_test {
                SmokeResult::Pending
            } else {
                SmokeResult::None
            },
        };
        let (version, ready_since) = if now < target.ready_at {
            // Rolling out: what served before still serves.
            match &self.serving {
                Some(old) => (old.version.clone(), old.ready_at),
                None => {
                    obs.conditions
                        .push(condition("Ready", "Unknown", "Progressing"));
                    return obs;
                }
            }
        } else if self.held_back(&target.version, faults) {
            obs.applied_version = Some(target.version.clone());
            obs.conditions.push(Condition {
                message: Some(format!(
                    "version {} did not become ready in time",
                    target.version
                )),
                ..condition("Ready", "False", "ProgressDeadlineExceeded")
            });
            return obs;
        } else {
            (target.version.clone(), target.ready_at)
        };
        obs.ready_replicas = desired_replicas;
        obs.conditions.push(condition("Ready", "True", "Ready"));
        if faults.is_degraded(&d.booking) {
            obs.ready_replicas = desired_replicas.saturating_sub(1);
            obs.conditions.push(condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
            ));
        }
        if d.smoke_test && now >= ready_since + self.smoke_delay {
            obs.smoke_test = if faults.failing_smoke(site, &d.booking, &d.offering, &version) {
                SmokeResult::Failed
            } else {
                SmokeResult::Passed
            };
        }
        obs.applied_version = Some(version);
        obs.export = self.export(now);
        obs
    }

    /// The export Job: running, then (after the smoke test's delay) succeeded with
    /// simulated sums — a SHA-256 of the booking and the Job's name, as written and as
    /// read back.
    fn export(&self, now: Instant) -> Option<ExportObservation> {
        use sha2::Digest;
        let job = self.desired.export_job.clone()?;
        if self
            .export_since
            .is_none_or(|since| now < since + self.smoke_delay)
        {
            return Some(ExportObservation {
                job,
                status: ExportStatus::Running,
                sums: None,
                message: None,
            });
        }
        let sha256 = hex::encode(sha2::Sha256::digest(
            format!("{}/{job}", self.desired.booking).as_bytes(),
        ));
        Some(ExportObservation {
            job,
            status: ExportStatus::Succeeded,
            sums: Some(ExportSums {
                read_back_sha256: sha256.clone(),
                sha256,
                bytes: 1 << 20,
            }),
            message: Some("simulated".into()),
        })
    }
}

fn condition(kind: &str, status: &str, reason: &str) -> Condition {
    Condition {
        kind: kind.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verbund_domain::booking::{BookingEvent, BookingState};
    use verbund_domain::report::assess;

    const L: Duration = Duration::from_secs(2);
    const S: Duration = Duration::from_secs(1);

    fn booking(version: &str, smoke: bool) -> DesiredBooking {
        DesiredBooking {
            export_job: None,
            booking: "b1".into(),
            namespace: "formulare-x".into(),
            environment: "prod".into(),
            offering: "formulare".into(),
            version: version.into(),
            desired_replicas: 2,
            smoke_test: smoke,
            quota: Resources::default(),
        }
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// (applied version, ready replicas, smoke result) at `ms` after t0.
    fn seen(
        sim: &BookingSim,
        t0: Instant,
        ms: u64,
        faults: &Faults,
    ) -> (Option<String>, u32, SmokeResult) {
        let o = sim.observe("site", at(t0, ms), faults);
        (o.applied_version, o.ready_replicas, o.smoke_test)
    }

    #[test]
    fn an_export_job_runs_then_succeeds_with_agreeing_sums() {
        let t0 = Instant::now();
        let none = Faults::default();
        let mut sim = BookingSim::new(booking("1.0.0", false), t0, L, S);
        assert_eq!(sim.observe("site", at(t0, 2500), &none).export, None);
        let exporting = DesiredBooking {
            export_job: Some("data-export-1".into()),
            ..booking("1.0.0", false)
        };
        sim.update(exporting, at(t0, 3000), L, &none);
        let running = sim.observe("site", at(t0, 3500), &none).export.unwrap();
        assert_eq!(running.status, ExportStatus::Running);
        let done = sim.observe("site", at(t0, 4000), &none).export.unwrap();
        assert_eq!(done.status, ExportStatus::Succeeded);
        let sums = done.sums.unwrap();
        assert_eq!(sums.sha256, sums.read_back_sha256);
        assert!(done.job == "data-export-1" && sums.bytes > 0);
    }

    #[test]
    fn a_new_booking_becomes_ready_after_the_latency_then_passes_its_smoke_test() {
        let t0 = Instant::now();
        let none = Faults::default();
        let sim = BookingSim::new(booking("1.0.0", true), t0, L, S);
        assert_eq!(seen(&sim, t0, 0, &none), (None, 0, SmokeResult::Pending));
        assert_eq!(seen(&sim, t0, 1999, &none), (None, 0, SmokeResult::Pending));
        let v = Some("1.0.0".to_string());
        assert_eq!(
            seen(&sim, t0, 2000, &none),
            (v.clone(), 2, SmokeResult::Pending)
        );
        assert_eq!(
            seen(&sim, t0, 3000, &none),
            (v.clone(), 2, SmokeResult::Passed)
        );
        let o = sim.observe("site", at(t0, 3000), &none);
        assert_eq!(
            assess(BookingState::Provisioning, "1.0.0", &o),
            Some(BookingEvent::BecomeReady)
        );
        let o = sim.observe("site", at(t0, 2500), &none);
        assert_eq!(assess(BookingState::Provisioning, "1.0.0", &o), None);
    }

    #[test]
    fn without_a_smoke_test_it_reports_none() {
        let t0 = Instant::now();
        let sim = BookingSim::new(booking("1.0.0", false), t0, L, S);
        let none = Faults::default();
        assert_eq!(seen(&sim, t0, 0, &none).2, SmokeResult::None);
        assert_eq!(
            seen(&sim, t0, 2000, &none),
            (Some("1.0.0".into()), 2, SmokeResult::None)
        );
    }

    #[test]
    fn an_update_keeps_the_old_version_serving_until_the_new_one_is_ready() {
        let t0 = Instant::now();
        let none = Faults::default();
        let mut sim = BookingSim::new(booking("1.0.0", true), t0, L, S);
        sim.update(booking("1.1.0", true), at(t0, 5000), L, &none);
        assert_eq!(
            seen(&sim, t0, 5000, &none),
            (Some("1.0.0".into()), 2, SmokeResult::Passed)
        );
        assert_eq!(seen(&sim, t0, 6999, &none).0.as_deref(), Some("1.0.0"));
        assert_eq!(
            seen(&sim, t0, 7000, &none),
            (Some("1.1.0".into()), 2, SmokeResult::Pending)
        );
        assert_eq!(
            seen(&sim, t0, 8000, &none),
            (Some("1.1.0".into()), 2, SmokeResult::Passed)
        );
        // The same version again changes nothing.
        sim.update(booking("1.1.0", true), at(t0, 9000), L, &none);
        assert_eq!(seen(&sim, t0, 9000, &none).0.as_deref(), Some("1.1.0"));
    }

    #[test]
    fn an_update_before_the_first_rollout_finished_starts_over_with_nothing_serving() {
        let t0 = Instant::now();
        let none = Faults::default();
        let mut sim = BookingSim::new(booking("1.0.0", false), t0, L, S);
        sim.update(booking("1.1.0", false), at(t0, 1000), L, &none);
        assert_eq!(seen(&sim, t0, 2500, &none).0, None);
        assert_eq!(seen(&sim, t0, 3000, &none).0.as_deref(), Some("1.1.0"));
    }

    #[test]
    fn never_ready_holds_the_version_back_until_the_fault_is_removed() {
        let t0 = Instant::now();
        let mut faults = Faults::default();
        faults.never_ready.insert("formulare@1.0.0".into());
        let sim = BookingSim::new(booking("1.0.0", true), t0, L, S);
        let o = sim.observe("site", at(t0, 60_000), &faults);
        assert_eq!(o.applied_version.as_deref(), Some("1.0.0"));
        assert_eq!(o.ready_replicas, 0);
        assert_eq!(o.conditions[0].status, "False");
        assert_eq!(
            o.conditions[0].reason.as_deref(),
            Some("ProgressDeadlineExceeded")
        );
        assert_eq!(
            assess(BookingState::Provisioning, "1.0.0", &o),
            Some(BookingEvent::Degrade)
        );
        faults.never_ready.clear();
        let o = sim.observe("site", at(t0, 61_000), &faults);
        assert_eq!(o.ready_replicas, 2);
        assert_eq!(
            assess(BookingState::Degraded, "1.0.0", &o),
            Some(BookingEvent::BecomeReady)
        );
    }

    #[test]
    fn a_held_back_update_shows_the_new_version_failing() {
        let t0 = Instant::now();
        let mut faults = Faults::default();
        faults.never_ready.insert("formulare@2.0.0".into());
        let mut sim = BookingSim::new(booking("1.0.0", false), t0, L, S);
        sim.update(booking("2.0.0", false), at(t0, 3000), L, &faults);
        assert_eq!(
            seen(&sim, t0, 4000, &faults),
            (Some("1.0.0".into()), 2, SmokeResult::None)
        );
        assert_eq!(
            seen(&sim, t0, 5000, &faults),
            (Some("2.0.0".into()), 0, SmokeResult::None)
        );
    }

    #[test]
    fn failing_smoke_and_degraded_are_live_and_recover() {
        let t0 = Instant::now();
        let sim = BookingSim::new(booking("1.0.0", true), t0, L, S);
        for key in ["site", "b1", "formulare@1.0.0"] {
            let mut faults = Faults::default();
            faults.failing_smoke.insert(key.into());
            assert_eq!(
                seen(&sim, t0, 3000, &faults).2,
                SmokeResult::Failed,
                "{key}"
            );
        }
        let mut faults = Faults::default();
        faults.degraded.insert("b1".into());
        let o = sim.observe("site", at(t0, 3000), &faults);
        assert_eq!(o.ready_replicas, 1);
        assert_eq!(
            assess(BookingState::Active, "1.0.0", &o),
            Some(BookingEvent::Degrade)
        );
        let o = sim.observe("site", at(t0, 3000), &Faults::default());
        assert_eq!(
            assess(BookingState::Degraded, "1.0.0", &o),
            Some(BookingEvent::BecomeReady)
        );
    }
}
