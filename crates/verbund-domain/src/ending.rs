//! Temporary bookings: an end date, the reminder before it, and the data export that
//! must be out and verified before anything of the booking is torn down.
//!
//! A vaccination campaign's appointment system or an election's tools are booked for
//! weeks, not for good. Such a booking carries an [`Ending`]: the last day it runs (German
//! local time) and the organisation's export target (an S3-compatible bucket). The
//! lifecycle sweep (see `verbund_placement`) then
//!
//! 1. reminds the organisation [`REMIND_DAYS`] before the end, once (an audit event that
//!    notifications follow; the portal shows it from the same instant, [`remind_at`]);
//! 2. at the end ([`end_at`], 00:00 German time after the last day) starts the export:
//!    the booking turns `exporting` and its desired state gains the offering's export
//!    Job ([`export_job_name`], one per attempt), which writes the tenant's data to
//!    [`ExportRun::object`] in the target, reads it back and reports both checksums as
//!    its termination message ([`ExportSums`]);
//! 3. judges what the site reports of that Job ([`judge_export`]): only a Job that
//!    succeeded with a well-formed SHA-256 of what it wrote, equal to the SHA-256 of what
//!    the target holds, of at least one byte, is verified. Then the booking is cancelled
//!    like any other (its workload removed, its retention record kept, the export's
//!    checksum with it). Anything else stops the tear-down with the reason and deletes
//!    nothing; the organisation may start the export again ([`ExportRun::retry`]).
//!
//! The organisation may also end a booking early, with the same export.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::capacity::{german_date, local_midnight, local_today, MAX_LEAD_DAYS};
use crate::error::{Invalid, Result};
use crate::name::Pattern;

/// Days before the end that the organisation is reminded.
pub const REMIND_DAYS: i64 = 14;
/// The most attempts one booking's export may take.
pub const MAX_ATTEMPTS: u32 = 20;

/// An S3-compatible bucket the organisation's data is exported to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportTarget {
    /// The service's address: `https://` and a host, optionally a port; no path, no
    /// credentials (those reach the export Job only as the booking's declared secrets).
    #[schema(schema_with = endpoint_schema)]
    pub endpoint: String,
    /// The bucket's name (3–63 lowercase letters, digits, `.` or `-`).
    #[schema(schema_with = bucket_schema)]
    pub bucket: String,
    /// Where in the bucket: empty, or path segments each ending in `/`.
    #[serde(default)]
    #[schema(schema_with = prefix_schema)]
    pub prefix: String,
}

/// `https://` and a host name (letters, digits, `.`, `-`), optionally a port.
pub static ENDPOINT: Pattern = Pattern::new(|| {
    "^https://[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$"
        .into()
});
/// An S3 bucket name.
pub static BUCKET: Pattern = Pattern::new(|| "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$".into());
/// Path segments of letters, digits, `-`, `_` and `.` (not `.` or `..` alone), each
/// ending in `/`.
pub static PREFIX: Pattern = Pattern::new(|| {
    "^([A-Za-z0-9_-][A-Za-z0-9._-]*/|\\.[A-Za-z0-9_-][A-Za-z0-9._-]*/|\\.\\.[A-Za-z0-9._-]+/)*$"
        .into()
});
const ENDPOINT_MAX: usize = 253;
const PREFIX_MAX: usize = 512;

fn endpoint_schema() -> utoipa::openapi::schema::Object {
    crate::name::bounded_schema(&ENDPOINT, ENDPOINT_MAX)
}

fn bucket_schema() -> utoipa::openapi::schema::Object {
    crate::name::bounded_schema(&BUCKET, 63)
}

fn prefix_schema() -> utoipa::openapi::schema::Object {
    crate::name::bounded_schema(&PREFIX, PREFIX_MAX)
}

impl ExportTarget {
    /// Checks the target's form; errors name the field below `field`.
    pub fn validate(&self, field: &str) -> Result<()> {
        crate::name::check_pattern(
            &format!("{field}/endpoint"),
            &self.endpoint,
            &ENDPOINT,
            ENDPOINT_MAX,
            "an https address of an S3-compatible service (`https://` and a host, \
             optionally `:port`, nothing else)",
        )?;
        crate::name::check_pattern(
            &format!("{field}/bucket"),
            &self.bucket,
            &BUCKET,
            63,
            "a bucket name (3–63 lowercase letters, digits, `.` or `-`)",
        )?;
        crate::name::check_pattern(
            &format!("{field}/prefix"),
            &self.prefix,
            &PREFIX,
            PREFIX_MAX,
            "a prefix (empty, or path segments of letters, digits, `.`, `_` or `-`, each \
             ending in `/`)",
        )
    }

    /// The target as one address: `https://host/bucket/prefix`.
    pub fn url(&self) -> String {
        format!("{}/{}/{}", self.endpoint, self.bucket, self.prefix)
    }
}

impl std::str::FromStr for ExportTarget {
    type Err = String;

    /// `https://s3.example.de/bucket/some/prefix/`: endpoint, bucket, prefix (a missing
    /// final `/` of the prefix is added).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!("`{s}` is not an export target (e.g. `https://s3.example.de/bucket/prefix/`)")
        };
        let rest = s.strip_prefix("https://").ok_or_else(bad)?;
        let (host, path) = rest.split_once('/').ok_or_else(bad)?;
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_string()
        } else {
            format!("{prefix}/")
        };
        let target = ExportTarget {
            endpoint: format!("https://{host}"),
            bucket: bucket.to_string(),
            prefix,
        };
        target.validate("").map_err(|e| e.message)?;
        Ok(target)
    }
}

/// What an organisation enters to make a booking temporary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndingSpec {
    /// The last day the booking runs (German local time, until 24:00).
    #[schema(value_type = String, format = Date)]
    pub ends_on: NaiveDate,
    /// Where its data is exported before it is torn down.
    pub export_to: ExportTarget,
}

impl EndingSpec {
    /// Checks the ending entered at `now`: its target's form, and that its last day is
    /// neither past nor more than five years ahead.
    pub fn validate(&self, field: &str, now: DateTime<Utc>) -> Result<()> {
        self.export_to.validate(&format!("{field}/export_to"))?;
        check_ends_on(&format!("{field}/ends_on"), self.ends_on, now)
    }
}

/// A last day must be today or later, and at most five years ahead.
pub fn check_ends_on(field: &str, ends_on: NaiveDate, now: DateTime<Utc>) -> Result<()> {
    let today = local_today(now);
    if ends_on < today {
        return Err(Invalid::meaning(
            field,
            format!(
                "the last day {} is past (today is {})",
                german_date(ends_on),
                german_date(today)
            ),
        ));
    }
    if ends_on > today + Duration::days(MAX_LEAD_DAYS) {
        return Err(Invalid::meaning(
            field,
            format!(
                "the last day {} is more than five years ahead",
                german_date(ends_on)
            ),
        ));
    }
    Ok(())
}

/// A temporary booking's end as stored: what was entered, whether the organisation was
/// reminded, and its export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Ending {
    /// The last day the booking runs (German local time).
    #[schema(value_type = String, format = Date)]
    pub ends_on: NaiveDate,
    pub export_to: ExportTarget,
    /// When the organisation was reminded of the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminded_at: Option<DateTime<Utc>>,
    /// The export, once the end came (or the organisation ended the booking early).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportRun>,
}

impl Ending {
    pub fn of(spec: &EndingSpec) -> Ending {
        Ending {
            ends_on: spec.ends_on,
            export_to: spec.export_to.clone(),
            reminded_at: None,
            export: None,
        }
    }

    /// The ending after an organisation entered `spec` at `now` for a booking whose
    /// ending is `current`: checked like a new one; refused once the end came (the export
    /// began); the reminder stays given only for the same last day.
    pub fn changed(
        current: Option<&Ending>,
        spec: &EndingSpec,
        now: DateTime<Utc>,
    ) -> Result<Ending> {
        if current.is_some_and(|c| c.export.is_some()) {
            return Err(Invalid::conflict(
                "/ending",
                "the booking has ended and its data is being exported: its end can no longer change",
            ));
        }
        spec.validate("/ending", now)?;
        let mut next = Ending::of(spec);
        next.reminded_at = current
            .filter(|c| c.ends_on == spec.ends_on)
            .and_then(|c| c.reminded_at);
        Ok(next)
    }

    pub fn spec(&self) -> EndingSpec {
        EndingSpec {
            ends_on: self.ends_on,
            export_to: self.export_to.clone(),
        }
    }
}

/// The instant a booking ends: 00:00 German local time after its last day.
pub fn end_at(ends_on: NaiveDate) -> DateTime<Utc> {
    local_midnight(ends_on + Duration::days(1))
}

/// From when the organisation is reminded: [`REMIND_DAYS`] before the end.
pub fn remind_at(ends_on: NaiveDate) -> DateTime<Utc> {
    end_at(ends_on) - Duration::days(REMIND_DAYS)
}

/// What the lifecycle sweep does next with an ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndingStep {
    /// Remind the organisation (once).
    Remind,
    /// The end came: export, then tear down.
    End,
}

/// The step due at `now`, if any: the end when it came and no export began, else the
/// reminder once it is due and not yet given.
pub fn due_step(ending: &Ending, now: DateTime<Utc>) -> Option<EndingStep> {
    if ending.export.is_some() {
        return None;
    }
    if now >= end_at(ending.ends_on) {
        Some(EndingStep::End)
    } else if now >= remind_at(ending.ends_on) && ending.reminded_at.is_none() {
        Some(EndingStep::Remind)
    } else {
        None
    }
}

/// The next instant an ending needs the sweep: its reminder or its end.
pub fn next_due(ending: &Ending) -> Option<DateTime<Utc>> {
    if ending.export.is_some() {
        return None;
    }
    Some(match ending.reminded_at {
        None => remind_at(ending.ends_on),
        Some(_) => end_at(ending.ends_on),
    })
}

/// One attempt at the export, and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExportRun {
    /// 1 for the first, counting up with each retry.
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    /// The object the export writes, in the target's bucket.
    pub object: String,
    pub outcome: ExportOutcome,
}

/// Where an export stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ExportOutcome {
    /// The Job is delivered; its result is not reported yet.
    Running,
    /// The data is out: the site reported the Job succeeded and the checksums agree.
    Verified {
        /// SHA-256 of the object, hex, as written and as read back from the target.
        sha256: String,
        bytes: u64,
        at: DateTime<Utc>,
    },
    /// The export failed or could not be verified; nothing is torn down.
    Failed { reason: String, at: DateTime<Utc> },
}

impl ExportRun {
    /// The first attempt, started at `now`.
    pub fn first(booking: &str, target: &ExportTarget, now: DateTime<Utc>) -> ExportRun {
        ExportRun::attempt(booking, target, 1, now)
    }

    fn attempt(booking: &str, target: &ExportTarget, attempt: u32, now: DateTime<Utc>) -> Self {
        ExportRun {
            attempt,
            started_at: now,
            object: export_object(booking, target, attempt, now),
            outcome: ExportOutcome::Running,
        }
    }

    /// The next attempt after a failed one, or why there is none.
    pub fn retry(
        &self,
        booking: &str,
        target: &ExportTarget,
        now: DateTime<Utc>,
    ) -> std::result::Result<ExportRun, String> {
        match self.outcome {
            ExportOutcome::Failed { .. } if self.attempt < MAX_ATTEMPTS => {
                Ok(ExportRun::attempt(booking, target, self.attempt + 1, now))
            }
            ExportOutcome::Failed { .. } => Err(format!(
                "the export failed {MAX_ATTEMPTS} times; ask the site's operator"
            )),
            ExportOutcome::Running => Err("the export is still running".into()),
            ExportOutcome::Verified { .. } => Err("the export is done and verified".into()),
        }
    }

    /// The export Job of this attempt.
    pub fn job(&self) -> String {
        export_job_name(self.attempt)
    }

    pub fn is_running(&self) -> bool {
        matches!(self.outcome, ExportOutcome::Running)
    }
}

/// `data-export-<attempt>`: each attempt a Job of its own, so that a failed Job's result
/// is never read as the next one's.
pub fn export_job_name(attempt: u32) -> String {
    format!("data-export-{attempt}")
}

/// `<prefix><booking>/<YYYY-MM-DD>-<attempt>.tar.gz`: per booking, day and attempt, so
/// that no export overwrites another.
fn export_object(booking: &str, target: &ExportTarget, attempt: u32, now: DateTime<Utc>) -> String {
    format!(
        "{}{booking}/{}-{attempt}.tar.gz",
        target.prefix,
        local_today(now).format("%Y-%m-%d")
    )
}

/// What the export Job states in its termination message (JSON): the SHA-256 of what it
/// wrote, the SHA-256 of the object as the target returns it, and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportSums {
    #[schema(schema_with = sha256_schema)]
    pub sha256: String,
    #[schema(schema_with = sha256_schema)]
    pub read_back_sha256: String,
    pub bytes: u64,
}

/// A SHA-256, 64 lowercase hex digits.
pub static SHA256: Pattern = Pattern::new(|| "^[0-9a-f]{64}$".into());

fn sha256_schema() -> utoipa::openapi::schema::Object {
    SHA256.schema()
}

/// The export Job as a site sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportObservation {
    /// The Job's name (`data-export-<attempt>`).
    #[schema(schema_with = job_schema)]
    pub job: String,
    pub status: ExportStatus,
    /// What it reported, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sums: Option<ExportSums>,
    /// Why it failed, or what its termination message said that is not [`ExportSums`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = message_schema)]
    pub message: Option<String>,
}

/// The longest message of an export observation.
pub const MESSAGE_MAX: usize = 1000;

fn job_schema() -> utoipa::openapi::schema::Object {
    crate::name::name_schema()
}

fn message_schema() -> utoipa::openapi::schema::Object {
    crate::directory::nullable(crate::name::line_schema(MESSAGE_MAX))
}

/// The export Job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExportStatus {
    Running,
    Succeeded,
    Failed,
}

impl ExportObservation {
    /// Checks the observation's form; errors name the field below `field`.
    pub fn validate(&self, field: &str) -> Result<()> {
        crate::name::check_name(&format!("{field}/job"), &self.job)?;
        if let Some(s) = &self.sums {
            for (name, sum) in [
                ("sha256", &s.sha256),
                ("read_back_sha256", &s.read_back_sha256),
            ] {
                crate::name::check_pattern(
                    &format!("{field}/sums/{name}"),
                    sum,
                    &SHA256,
                    64,
                    "a SHA-256 (64 lowercase hex digits)",
                )?;
            }
        }
        if let Some(m) = &self.message {
            crate::name::check_line(&format!("{field}/message"), m, MESSAGE_MAX, false)?;
        }
        Ok(())
    }
}

/// What a site's observation says of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportVerdict {
    /// Nothing to decide yet (not reported, another attempt's Job, still running).
    Pending,
    /// The data is out, as written.
    Verified { sha256: String, bytes: u64 },
    /// Why the export cannot count.
    Failed(String),
}

/// Judges what the site reports of the export Job of `run`: only this attempt's Job
/// counts; it is verified when it succeeded and reported a SHA-256 of what it wrote equal
/// to the SHA-256 of what the target holds, of at least one byte.
pub fn judge_export(run: &ExportRun, observed: Option<&ExportObservation>) -> ExportVerdict {
    let Some(o) = observed.filter(|o| o.job == run.job()) else {
        return ExportVerdict::Pending;
    };
    let said = |m: &Option<String>| m.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
    match (o.status, &o.sums) {
        (ExportStatus::Running, _) => ExportVerdict::Pending,
        (ExportStatus::Failed, _) => ExportVerdict::Failed(format!(
            "the export Job {} failed{}",
            o.job,
            said(&o.message)
        )),
        (ExportStatus::Succeeded, None) => ExportVerdict::Failed(format!(
            "the export Job {} succeeded but reported no checksums{}",
            o.job,
            said(&o.message)
        )),
        (ExportStatus::Succeeded, Some(s)) if s.sha256 != s.read_back_sha256 => {
            ExportVerdict::Failed(format!(
                "the target holds other data than was written: SHA-256 {} written, {} read back",
                s.sha256, s.read_back_sha256
            ))
        }
        (ExportStatus::Succeeded, Some(s)) if s.bytes == 0 => {
            ExportVerdict::Failed("the export wrote no data (0 bytes)".into())
        }
        (ExportStatus::Succeeded, Some(s)) => ExportVerdict::Verified {
            sha256: s.sha256.clone(),
            bytes: s.bytes,
        },
    }
}

#[cfg(test)]
mod tests;
