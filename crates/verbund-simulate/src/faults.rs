//! Failure injection: which sites, bookings or versions misbehave, and how.
//!
//! Demos and the rollout engine's tests need failures on demand: a version that never
//! becomes ready, a smoke test that fails, a site whose agent dies, a booking that loses
//! replicas, reports lost in transit. [`Faults`] is the rule set (also the format of the
//! YAML faults file); [`FaultsHandle`] is how a running simulation is told to change it.
//! Removing a fault lets the affected bookings recover on the next report.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The faults in force. Every list is matched exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// `<offering>@<version>` that never becomes ready (0 ready replicas,
    /// `Ready=False`, reason `ProgressDeadlineExceeded`).
    pub never_ready: BTreeSet<String>,
    /// Sites, booking ids, `<offering>@<version>` or `<booking id>@<version>` whose
    /// smoke test fails (the last: that one booking, only while it runs that version, e.g.
    /// to fail one production booking in a rollout's wave and let its rollback recover).
    pub failing_smoke: BTreeSet<String>,
    /// Sites whose agent stops reporting entirely.
    pub silent: BTreeSet<String>,
    /// Sites that report themselves unhealthy.
    pub unhealthy: BTreeSet<String>,
    /// Booking ids whose ready replicas drop below the desired count.
    pub degraded: BTreeSet<String>,
    /// Probability (0.0 to 1.0) that a report is lost in transit.
    pub drop_reports: f64,
}

fn release(offering: &str, version: &str) -> String {
    format!("{offering}@{version}")
}

impl Faults {
    /// Parses and checks a faults file's YAML (an empty document means no faults).
    pub fn from_yaml(text: &str) -> std::result::Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Faults::default());
        }
        let faults: Faults = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        faults.validate().map_err(|e| e.to_string())?;
        Ok(faults)
    }

    /// Reads the faults file at `path`; a missing file means no faults.
    pub fn read(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Faults::from_yaml(&text).map_err(|reason| Error::Faults {
                path: path.to_owned(),
                reason,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Faults::default()),
            Err(e) => Err(Error::Faults {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.drop_reports) {
            return Err(Error::InvalidFaults(format!(
                "drop_reports must be between 0.0 and 1.0, not {}",
                self.drop_reports
            )));
        }
        Ok(())
    }

    pub fn never_ready(&self, offering: &str, version: &str) -> bool {
        self.never_ready.contains(&release(offering, version))
    }

    pub fn failing_smoke(&self, site: &str, booking: &str, offering: &str, version: &str) -> bool {
        self.failing_smoke.contains(site)
            || self.failing_smoke.contains(booking)
            || self.failing_smoke.contains(&release(offering, version))
            || self.failing_smoke.contains(&release(booking, version))
    }

    pub fn is_silent(&self, site: &str) -> bool {
        self.silent.contains(site)
    }

    pub fn is_unhealthy(&self, site: &str) -> bool {
        self.unhealthy.contains(site)
    }

    pub fn is_degraded(&self, booking: &str) -> bool {
        self.degraded.contains(booking)
    }
}

/// Shared, changeable faults of a running simulation; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct FaultsHandle(Arc<RwLock<Faults>>);

impl FaultsHandle {
    pub fn new(faults: Faults) -> Self {
        FaultsHandle(Arc::new(RwLock::new(faults)))
    }

    /// The faults in force now.
    pub fn get(&self) -> Faults {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces all faults.
    pub fn set(&self, faults: Faults) -> Result<()> {
        faults.validate()?;
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = faults;
        Ok(())
    }

    /// Changes the faults in place, e.g. `h.update(|f| { f.silent.insert("s1".into()); })`.
    pub fn update(&self, change: impl FnOnce(&mut Faults)) -> Result<()> {
        let mut next = self.get();
        change(&mut next);
        self.set(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_format_parses_and_is_checked() {
        let f = Faults::from_yaml(
            "never_ready: [\"formulare@1.5.0\"]\nfailing_smoke: [site-a, b-1, \"nextcloud@29.0.4\"]\nsilent: [site-b]\ndegraded: [b-2]\ndrop_reports: 0.5\n",
        )
        .unwrap();
        assert!(f.never_ready("formulare", "1.5.0"));
        assert!(!f.never_ready("formulare", "1.4.0"));
        assert!(f.failing_smoke("site-a", "x", "o", "1.0.0"));
        assert!(f.failing_smoke("s", "b-1", "o", "1.0.0"));
        assert!(f.failing_smoke("s", "x", "nextcloud", "29.0.4"));
        assert!(!f.failing_smoke("s", "x", "nextcloud", "29.0.5"));
        assert!(!f.failing_smoke("s", "b-2", "o", "1.1.0"));
        assert!(f.is_silent("site-b") && !f.is_silent("site-a"));
        assert!(f.is_degraded("b-2"));
        assert_eq!(Faults::from_yaml("").unwrap(), Faults::default());
        assert!(Faults::from_yaml("drop_reports: 1.5").is_err());
        assert!(Faults::from_yaml("silence: [x]").is_err());
    }

    #[test]
    fn a_booking_at_a_version_fails_only_while_it_runs_that_version() {
        let f = Faults::from_yaml("failing_smoke: [\"b-1@2.0.0\"]\n").unwrap();
        assert!(f.failing_smoke("s", "b-1", "o", "2.0.0"));
        assert!(
            !f.failing_smoke("s", "b-1", "o", "1.0.0"),
            "its rollback recovers"
        );
        assert!(
            !f.failing_smoke("s", "b-2", "o", "2.0.0"),
            "other bookings pass"
        );
    }

    #[test]
    fn the_handle_refuses_bad_settings_and_keeps_the_old_ones() {
        let h = FaultsHandle::default();
        h.update(|f| {
            f.silent.insert("s".into());
        })
        .unwrap();
        assert!(h.update(|f| f.drop_reports = -0.1).is_err());
        assert!(h.get().is_silent("s"));
        assert_eq!(h.get().drop_reports, 0.0);
    }
}
