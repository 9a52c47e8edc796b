//! A site's preflight: whether its cluster can run what verbund's desired state needs,
//! checked by `verbund agent preflight` in the cluster and kept by the control plane.
//!
//! The agent sends a [`PreflightReport`] (each check with its verdict and a sentence an
//! operator can act on); the control plane stores it as the site's [`SitePreflight`] and
//! placement reads it: a site whose last preflight failed gets no new bookings. Both
//! sides judge the whole by the same rule ([`overall`]: the worst check), so what the
//! command line calls failed is exactly what placement excludes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::directory::Delivery;
use crate::error::{Invalid, Result};
// The same agent sends its reports and its preflight: one limit for its name and for the
// Kubernetes version it reads.
use crate::report::{MAX_AGENT, MAX_VERSION};

/// Most checks one preflight may carry.
pub const MAX_CHECKS: usize = 32;
/// Longest reason, in characters.
const MAX_REASON: usize = 1000;

/// The verdict of one check, or of a whole preflight; ordered from best to worst.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum PreflightVerdict {
    /// The cluster has what verbund needs.
    Pass,
    /// Worth the operator's attention, but bookings can run.
    Warn,
    /// Bookings cannot run as verbund renders them; no new bookings are placed here.
    Fail,
}

impl PreflightVerdict {
    pub const ALL: [PreflightVerdict; 3] = [Self::Pass, Self::Warn, Self::Fail];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreflightCheck {
    /// Stable identifier, e.g. `network-policy` (a DNS-1123 label).
    #[schema(schema_with = crate::name::name_schema)]
    pub name: String,
    pub verdict: PreflightVerdict,
    /// One sentence an operator can act on, e.g. "NetworkPolicy is not enforced: …".
    #[schema(schema_with = reason_schema)]
    pub reason: String,
}

fn reason_schema() -> utoipa::openapi::schema::Object {
    crate::name::line_text_schema(MAX_REASON)
}

fn agent_schema() -> utoipa::openapi::schema::Object {
    crate::name::line_text_schema(MAX_AGENT)
}

fn version_schema() -> utoipa::openapi::schema::Object {
    crate::directory::nullable(crate::name::line_text_schema(MAX_VERSION))
}

fn checks_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(utoipa::openapi::Ref::from_schema_name("PreflightCheck"))
        .min_items(Some(1))
        .max_items(Some(MAX_CHECKS))
        .build()
}

/// What `verbund agent preflight` sends: `POST /api/v1/sites/{name}/preflight`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreflightReport {
    /// Who checked, e.g. `verbund-agent/0.1.0`.
    #[schema(schema_with = agent_schema)]
    pub agent: String,
    /// The delivery mode the checks were made for; must be the site's own.
    pub delivery: Delivery,
    /// The version the cluster's API server reports, e.g. `v1.36.3`, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = version_schema)]
    pub kubernetes_version: Option<String>,
    /// The checks, each named once.
    #[schema(schema_with = checks_schema)]
    pub checks: Vec<PreflightCheck>,
}

/// The worst verdict of `checks`: one failed check fails the preflight.
pub fn overall(checks: &[PreflightCheck]) -> PreflightVerdict {
    checks
        .iter()
        .map(|c| c.verdict)
        .max()
        .unwrap_or(PreflightVerdict::Pass)
}

fn check_line(field: &str, value: &str, max: usize) -> Result<()> {
    crate::name::check_line(field, value, max, true)
}

impl PreflightReport {
    /// Checks the report on its own (the store checks it against the site).
    pub fn validate(&self) -> Result<()> {
        check_line("/agent", &self.agent, MAX_AGENT)?;
        if let Some(v) = &self.kubernetes_version {
            check_line("/kubernetes_version", v, MAX_VERSION)?;
        }
        if self.checks.is_empty() {
            return Err(Invalid::new("/checks", "must name at least one check"));
        }
        if self.checks.len() > MAX_CHECKS {
            return Err(Invalid::new(
                "/checks",
                format!("holds {} checks, at most {MAX_CHECKS}", self.checks.len()),
            ));
        }
        for (i, c) in self.checks.iter().enumerate() {
            crate::name::check_name(&format!("/checks/{i}/name"), &c.name)?;
            check_line(&format!("/checks/{i}/reason"), &c.reason, MAX_REASON)?;
            if self.checks.iter().take(i).any(|o| o.name == c.name) {
                return Err(Invalid::meaning(
                    format!("/checks/{i}/name"),
                    format!("check `{}` is reported twice", c.name),
                ));
            }
        }
        Ok(())
    }

    /// The whole preflight's verdict.
    pub fn verdict(&self) -> PreflightVerdict {
        overall(&self.checks)
    }
}

/// What the control plane expects of a site's cluster, for `verbund agent preflight`:
/// `GET /api/v1/sites/{name}/preflight` with the site's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PreflightRequirements {
    pub site: String,
    /// How the site receives its desired state, which decides the custom resources it
    /// needs.
    pub delivery: Delivery,
    /// The Kubernetes minor version the site declares, e.g. `1.31` (placement decides
    /// by it).
    pub kubernetes_version: String,
}

/// A site's last preflight, as the control plane keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SitePreflight {
    pub site: String,
    pub reported_at: DateTime<Utc>,
    pub agent: String,
    pub delivery: Delivery,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// The worst verdict of the checks.
    pub verdict: PreflightVerdict,
    pub checks: Vec<PreflightCheck>,
}

impl SitePreflight {
    /// The stored form of `report`, received from `site` at `now`.
    pub fn new(site: &str, report: &PreflightReport, now: DateTime<Utc>) -> Self {
        SitePreflight {
            site: site.to_string(),
            reported_at: now,
            agent: report.agent.clone(),
            delivery: report.delivery,
            kubernetes_version: report.kubernetes_version.clone(),
            verdict: report.verdict(),
            checks: report.checks.clone(),
        }
    }

    /// Whether this preflight keeps new bookings off the site.
    pub fn failed(&self) -> bool {
        self.verdict == PreflightVerdict::Fail
    }

    /// The reasons of the failed checks, in the order they were reported.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| c.verdict == PreflightVerdict::Fail)
            .map(|c| c.reason.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, verdict: PreflightVerdict) -> PreflightCheck {
        PreflightCheck {
            name: name.into(),
            verdict,
            reason: format!("{name} is as it is"),
        }
    }

    fn report(checks: Vec<PreflightCheck>) -> PreflightReport {
        PreflightReport {
            agent: "verbund-agent/test".into(),
            delivery: Delivery::Flux,
            kubernetes_version: Some("v1.36.3".into()),
            checks,
        }
    }

    #[test]
    fn the_worst_check_decides() {
        use PreflightVerdict::*;
        assert_eq!(overall(&[]), Pass);
        assert_eq!(overall(&[check("a", Pass), check("b", Warn)]), Warn);
        assert_eq!(
            overall(&[check("a", Fail), check("b", Warn), check("c", Pass)]),
            Fail
        );
        let stored = SitePreflight::new(
            "s1",
            &report(vec![check("a", Pass), check("network-policy", Fail)]),
            Utc::now(),
        );
        assert!(stored.failed());
        assert_eq!(stored.failures(), ["network-policy is as it is"]);
        let fine = SitePreflight::new("s1", &report(vec![check("a", Warn)]), Utc::now());
        assert!(!fine.failed());
        assert!(fine.failures().is_empty());
    }

    #[test]
    fn bad_reports_are_refused_with_a_pointer() {
        use PreflightVerdict::*;
        assert!(report(vec![check("a", Pass)]).validate().is_ok());
        assert_eq!(report(vec![]).validate().unwrap_err().field, "/checks");
        assert_eq!(
            report(vec![check("a", Pass), check("a", Fail)])
                .validate()
                .unwrap_err()
                .field,
            "/checks/1/name"
        );
        assert_eq!(
            report(vec![check("Not A Name", Pass)])
                .validate()
                .unwrap_err()
                .field,
            "/checks/0/name"
        );
        let mut long = report(vec![check("a", Pass)]);
        long.checks[0].reason = "x".repeat(MAX_REASON + 1);
        assert_eq!(long.validate().unwrap_err().field, "/checks/0/reason");
        let mut control = report(vec![check("a", Pass)]);
        control.checks[0].reason = "two\nlines".into();
        assert_eq!(control.validate().unwrap_err().field, "/checks/0/reason");
        let many = report(
            (0..=MAX_CHECKS)
                .map(|i| check(&format!("c{i}"), Pass))
                .collect(),
        );
        assert_eq!(many.validate().unwrap_err().field, "/checks");
        let mut anonymous = report(vec![check("a", Pass)]);
        anonymous.agent = " ".into();
        assert_eq!(anonymous.validate().unwrap_err().field, "/agent");
    }

    #[test]
    fn verdicts_round_trip() {
        for v in PreflightVerdict::ALL {
            assert_eq!(PreflightVerdict::parse(v.as_str()), Some(v));
            assert_eq!(
                serde_json::to_value(v).unwrap(),
                serde_json::json!(v.as_str())
            );
        }
    }
}
