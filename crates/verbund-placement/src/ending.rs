//! Temporary bookings' ends, carried out (the rules are `verbund_domain::ending`'s): the
//! reminder, the export, its verdict, and only then the tear-down.
//!
//! Every step is one booking update whose decision is taken again inside the serialised
//! write transaction, on the booking as stored then: however many replicas sweep at
//! once, an organisation is reminded once, an export starts once, and a verdict is
//! recorded once. A verified export cancels the booking like an organisation's
//! cancellation does (the sweep then retains it: workload removed, capacity freed, data
//! kept for the offering's retention period, the export's checksum in the record).

use chrono::{DateTime, Utc};
use verbund_domain::booking::{transition, Booking, BookingEvent, BookingState};
use verbund_domain::capacity::{german_date, local_today};
use verbund_domain::catalog::OfferingSpec;
use verbund_domain::directory::Resources;
use verbund_domain::ending::{
    due_step, judge_export, next_due, Ending, EndingStep, ExportOutcome, ExportRun, ExportTarget,
    ExportVerdict,
};
use verbund_domain::Invalid;
use verbund_store::NewBooking;

use crate::service::{plan, BookingError, Bookings};

/// What one pass over the temporary bookings did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndingPass {
    pub reminded: u64,
    pub ended: u64,
    pub verified: u64,
    pub failed: u64,
}

impl EndingPass {
    pub fn total(&self) -> u64 {
        self.reminded + self.ended + self.verified + self.failed
    }
}

/// What a step did to one booking.
enum Done {
    Reminded,
    Ended,
    Verified,
    Failed,
}

impl Bookings {
    /// Carries out what is due of every temporary booking at `now`: reminders, ends
    /// (exports started) and the verdicts on exports the sites reported. One booking's
    /// trouble is logged and keeps the others from nothing.
    pub async fn carry_out_endings(
        &self,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<EndingPass, BookingError> {
        let mut pass = EndingPass::default();
        for b in self.store().bookings_ending().await? {
            match self.ending_step(actor, &b, now).await {
                Ok(Some(Done::Reminded)) => pass.reminded += 1,
                Ok(Some(Done::Ended)) => pass.ended += 1,
                Ok(Some(Done::Verified)) => pass.verified += 1,
                Ok(Some(Done::Failed)) => pass.failed += 1,
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(booking = %b.id, error = %e, "a temporary booking's end failed");
                }
            }
        }
        Ok(pass)
    }

    /// The next instant a temporary booking needs the sweep (a reminder or an end), if
    /// any: housekeeping sleeps no longer.
    pub async fn next_ending(&self) -> Result<Option<DateTime<Utc>>, BookingError> {
        Ok(self
            .store()
            .bookings_ending()
            .await?
            .iter()
            .filter_map(|b| b.ending.as_ref().and_then(next_due))
            .min())
    }

    async fn ending_step(
        &self,
        actor: &str,
        b: &Booking,
        now: DateTime<Utc>,
    ) -> Result<Option<Done>, BookingError> {
        let running = b
            .ending
            .as_ref()
            .and_then(|e| e.export.as_ref())
            .filter(|r| r.is_running());
        if b.state == BookingState::Exporting && running.is_some() {
            return self.judge(actor, &b.id, now).await;
        }
        let Some(step) = b.ending.as_ref().and_then(|e| due_step(e, now)) else {
            return Ok(None);
        };
        let offering = self.offering(&b.offering, "/offering").await?.spec;
        let mut done = None;
        self.store()
            .update_booking(actor, &b.id, now, |stored, _| {
                let Some(ending) = stored.ending.as_ref() else {
                    return Ok::<_, BookingError>(None);
                };
                // Decided again on the booking as stored in this transaction.
                if due_step(ending, now) != Some(step) || stored.state.is_final() {
                    return Ok(None);
                }
                if step == EndingStep::End && !stored.state.holds_capacity() {
                    done = Some(Done::Ended);
                    return end_undelivered(stored, now).map(Some);
                }
                let mut next = stored.clone();
                next.updated_at = now;
                let mut ending = ending.clone();
                let action = match step {
                    EndingStep::Remind => {
                        ending.reminded_at = Some(now);
                        done = Some(Done::Reminded);
                        "booking.end-reminder"
                    }
                    EndingStep::End => {
                        next.state = transition(stored.state, BookingEvent::End)?;
                        next.state_since = now;
                        next.reason = Some(format!(
                            "ended after {}: its data is being exported to {}",
                            german_date(ending.ends_on),
                            ending.export_to.url()
                        ));
                        ending.export = Some(ExportRun::first(&stored.id, &ending.export_to, now));
                        done = Some(Done::Ended);
                        "booking.end"
                    }
                };
                next.ending = Some(ending);
                Ok(Some(NewBooking {
                    resources: held(&offering, &next)?,
                    booking: next,
                    decision: None,
                    action: action.into(),
                    secrets: None,
                }))
            })
            .await?;
        Ok(done)
    }

    /// Records the verdict on the running export of booking `id` from its site's last
    /// report, if there is one.
    async fn judge(
        &self,
        actor: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Done>, BookingError> {
        let status = self.store().booking_statuses(&[id.to_string()]).await?;
        let observed = status.first().and_then(|s| s.export.clone());
        let current = self.store().get_booking(id).await?;
        // Most passes find nothing new: decided without the write transaction first.
        let run = current.ending.as_ref().and_then(|e| e.export.as_ref());
        if run.is_none_or(|r| judge_export(r, observed.as_ref()) == ExportVerdict::Pending) {
            return Ok(None);
        }
        let offering = self.offering(&current.offering, "/offering").await?.spec;
        let mut done = None;
        self.store()
            .update_booking(actor, id, now, |stored, _| {
                let Some(mut ending) = stored.ending.clone() else {
                    return Ok::<_, BookingError>(None);
                };
                let Some(run) = ending.export.as_mut().filter(|r| r.is_running()) else {
                    return Ok(None);
                };
                if stored.state != BookingState::Exporting {
                    return Ok(None);
                }
                let mut next = stored.clone();
                let action = match judge_export(run, observed.as_ref()) {
                    ExportVerdict::Pending => return Ok(None),
                    ExportVerdict::Verified { sha256, bytes } => {
                        run.outcome = ExportOutcome::Verified {
                            sha256: sha256.clone(),
                            bytes,
                            at: now,
                        };
                        next.state = transition(stored.state, BookingEvent::ExportVerified)?;
                        next.state_since = now;
                        next.reason = Some(format!(
                            "its data is out: {bytes} bytes at {}{} (SHA-256 {sha256})",
                            ending.export_to.url(),
                            run.object
                                .strip_prefix(&ending.export_to.prefix)
                                .unwrap_or(&run.object)
                        ));
                        done = Some(Done::Verified);
                        "booking.export-verified"
                    }
                    ExportVerdict::Failed(reason) => {
                        next.reason =
                            Some(format!("the export failed, nothing is torn down: {reason}"));
                        run.outcome = ExportOutcome::Failed { reason, at: now };
                        done = Some(Done::Failed);
                        "booking.export-failed"
                    }
                };
                next.updated_at = now;
                next.ending = Some(ending);
                Ok(Some(NewBooking {
                    resources: held(&offering, &next)?,
                    booking: next,
                    decision: None,
                    action: action.into(),
                    secrets: None,
                }))
            })
            .await?;
        Ok(done)
    }

    /// Ends a booking now, before its last day (or makes a booking that runs for good
    /// end now): its data is exported to `export_to`, or to the target it names.
    pub async fn end_now(
        &self,
        actor: &str,
        id: &str,
        export_to: Option<ExportTarget>,
        now: DateTime<Utc>,
    ) -> Result<Booking, BookingError> {
        if let Some(t) = &export_to {
            t.validate("/export_to")?;
        }
        let current = self.store().get_booking(id).await?;
        let offering = self.offering(&current.offering, "/offering").await?.spec;
        if offering.data_export.is_none() {
            return Err(no_export(&offering).into());
        }
        self.check_may_end(&current).await?;
        self.store()
            .update_booking(actor, id, now, |stored, _| {
                if stored.ending.as_ref().is_some_and(|e| e.export.is_some()) {
                    return Err(Invalid::conflict(
                        "/",
                        "the booking has ended already; its export is under way or done",
                    )
                    .into());
                }
                let target = match (&export_to, &stored.ending) {
                    (Some(t), _) => t.clone(),
                    (None, Some(e)) => e.export_to.clone(),
                    (None, None) => {
                        return Err(Invalid::meaning(
                            "/export_to",
                            "the booking names no export target: give the bucket its data \
                             is exported to",
                        )
                        .into())
                    }
                };
                let mut next = stored.clone();
                next.state = transition(stored.state, BookingEvent::End)?;
                next.state_since = now;
                next.updated_at = now;
                next.reason = Some(format!(
                    "ended early: its data is being exported to {}",
                    target.url()
                ));
                let mut ending = stored.ending.clone().unwrap_or_else(|| Ending {
                    ends_on: local_today(now),
                    export_to: target.clone(),
                    reminded_at: None,
                    export: None,
                });
                ending.ends_on = ending.ends_on.min(local_today(now));
                ending.export_to = target;
                ending.export = Some(ExportRun::first(&stored.id, &ending.export_to, now));
                next.ending = Some(ending);
                Ok::<_, BookingError>(Some(NewBooking {
                    resources: held(&offering, &next)?,
                    booking: next,
                    decision: None,
                    action: "booking.end".into(),
                    secrets: None,
                }))
            })
            .await
    }

    /// Starts a failed export again: a new attempt, with a Job of its own.
    pub async fn retry_export(
        &self,
        actor: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Booking, BookingError> {
        let current = self.store().get_booking(id).await?;
        let offering = self.offering(&current.offering, "/offering").await?.spec;
        self.store()
            .update_booking(actor, id, now, |stored, _| {
                let not_exporting = || Invalid::conflict("/", "the booking is not being exported");
                let mut ending = stored
                    .ending
                    .clone()
                    .filter(|_| stored.state == BookingState::Exporting)
                    .ok_or_else(not_exporting)?;
                let again = ending
                    .export
                    .as_ref()
                    .ok_or_else(not_exporting)?
                    .retry(&stored.id, &ending.export_to, now)
                    .map_err(|m| Invalid::conflict("/", m))?;
                let mut next = stored.clone();
                next.reason = Some(format!(
                    "the export is being tried again (attempt {}) to {}",
                    again.attempt,
                    ending.export_to.url()
                ));
                ending.export = Some(again);
                next.ending = Some(ending);
                next.updated_at = now;
                Ok::<_, BookingError>(Some(NewBooking {
                    resources: held(&offering, &next)?,
                    booking: next,
                    decision: None,
                    action: "booking.export-retry".into(),
                    secrets: None,
                }))
            })
            .await
    }
}

/// A booking whose end came before it was ever delivered (still awaiting approval):
/// nothing runs and nothing holds its data, so it is cancelled without an export.
fn end_undelivered(b: &Booking, now: DateTime<Utc>) -> Result<NewBooking, BookingError> {
    let mut next = b.clone();
    next.state = transition(b.state, BookingEvent::Cancel)?;
    next.state_since = now;
    next.updated_at = now;
    next.reason = Some("its last day passed before it was delivered; nothing to export".into());
    Ok(NewBooking {
        booking: next,
        resources: Resources::default(),
        decision: None,
        action: "booking.end".into(),
        secrets: None,
    })
}

/// The capacity a booking holds: its plan in effect while it holds any.
fn held(offering: &OfferingSpec, b: &Booking) -> Result<Resources, BookingError> {
    if !b.state.holds_capacity() {
        return Ok(Resources::default());
    }
    Ok(plan(offering, b.plan_in_effect())?.resources)
}

fn no_export(offering: &OfferingSpec) -> Invalid {
    Invalid::conflict(
        "/",
        format!(
            "offering `{}` declares no data export, so its bookings cannot be ended with one \
             (cancel it instead: its data is kept for the retention period)",
            offering.name
        ),
    )
}
