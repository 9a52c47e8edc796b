//! The steps of [`Store::ingest_report`](crate::Store::ingest_report), all inside its one
//! write transaction: read what the report names, judge each observation (pure), upsert
//! the observations, write and audit the bookings' moves, and record the site's own
//! status where its story turns.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::Row;
use verbund_domain::audit::Change;
use verbund_domain::booking::{transition, BookingEvent, BookingState};
use verbund_domain::report::{assess, BookingObservation, SiteReport, SiteStatus};
use verbund_domain::Invalid;

use super::{saturating, site_status, Move, SITE_STATUS_COLUMNS, UPSERT_ROWS};
use crate::bookings::IN_CHUNK;
use crate::rows::{placeholders, to_json};
use crate::{Dialect, Result, StoreError, Write};

/// What a report needs to know of a booking it names.
pub(super) struct Known {
    site: Option<String>,
    state: BookingState,
    version: Option<String>,
    offering: String,
    reason: Option<String>,
}

/// One observation of the report, judged: the booking as stored, the problem the
/// observation shows, and the lifecycle move it causes, if any.
pub(super) struct Judged<'a> {
    /// The booking judged: the one observed, or a tenancy of the shared instance observed.
    booking: &'a str,
    obs: &'a BookingObservation,
    known: &'a Known,
    problem: Option<String>,
    event: Option<(BookingEvent, BookingState)>,
    /// A tenancy judged by its instance's observation: it moves, but the observation is
    /// the instance's, not its own.
    tenancy: bool,
}

impl Judged<'_> {
    /// The move this observation causes.
    pub(super) fn caused_move(&self) -> Option<Move> {
        self.event.map(|(_, to)| Move {
            booking: self.booking.to_owned(),
            from: self.known.state,
            to,
        })
    }
}

/// The site's status as last stored, if it reported before.
pub(super) async fn previous_status(w: &mut Write<'_>, site: &str) -> Result<Option<SiteStatus>> {
    sqlx::query(&format!(
        "SELECT {SITE_STATUS_COLUMNS} FROM site_status WHERE site = $1"
    ))
    .bind(site)
    .fetch_optional(&mut *w.tx)
    .await?
    .map(|r| site_status(&r))
    .transpose()
}

/// The tenancies of the shared instances a report names that follow their instance's
/// observations (provisioning, active or degraded ones), by instance: a tenancy has no
/// namespace of its own, so its instance's health is its health.
pub(super) async fn known_tenancies(
    w: &mut Write<'_>,
    dialect: Dialect,
    report: &SiteReport,
) -> Result<BTreeMap<String, Vec<(String, Known)>>> {
    let mut out: BTreeMap<String, Vec<(String, Known)>> = BTreeMap::new();
    let only = " AND state IN ('provisioning','active','degraded')";
    for (id, instance, known) in read_known(w, dialect, report, "instance", only).await? {
        if let Some(instance) = instance {
            out.entry(instance).or_default().push((id, known));
        }
    }
    Ok(out)
}

/// The stored state of every booking the report names (those that exist).
pub(super) async fn known_bookings(
    w: &mut Write<'_>,
    dialect: Dialect,
    report: &SiteReport,
) -> Result<HashMap<String, Known>> {
    Ok(read_known(w, dialect, report, "id", "")
        .await?
        .into_iter()
        .map(|(id, _, known)| (id, known))
        .collect())
}

/// The stored bookings whose `column` is one of the bookings the report names, and that
/// meet the condition `only` (SQL, empty for none): their id, instance and state.
async fn read_known(
    w: &mut Write<'_>,
    dialect: Dialect,
    report: &SiteReport,
    column: &str,
    only: &str,
) -> Result<Vec<(String, Option<String>, Known)>> {
    let ids: Vec<&String> = report.bookings.iter().map(|b| &b.booking).collect();
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT id, site, state, version, offering, reason, instance FROM bookings \
             WHERE {column} IN ({}){only} ORDER BY id",
            placeholders(dialect, 1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind((*id).clone());
        }
        for r in q.fetch_all(&mut *w.tx).await? {
            let state: String = r.try_get(2)?;
            out.push((
                r.try_get(0)?,
                r.try_get(6)?,
                Known {
                    site: r.try_get(1)?,
                    state: BookingState::parse(&state)
                        .ok_or_else(|| StoreError::Corrupt(format!("booking state `{state}`")))?,
                    version: r.try_get(3)?,
                    offering: r.try_get(4)?,
                    reason: r.try_get(5)?,
                },
            ));
        }
    }
    Ok(out)
}

/// Judges every observation of the report against the stored booking. A booking that is
/// not placed on `site` refuses the whole report, naming it.
///
/// The tenancies of an observed shared instance (`tenancies`, by instance) are judged
/// by its observation at its desired version, except while it is updating: its tenants
/// wait with it, and the rollout's gates judge the instance.
pub(super) fn judge<'a>(
    site: &str,
    report: &'a SiteReport,
    known: &'a HashMap<String, Known>,
    tenancies: &'a BTreeMap<String, Vec<(String, Known)>>,
) -> Result<Vec<Judged<'a>>> {
    let mut judged = judge_observed(site, report, known)?;
    let mut following = Vec::new();
    for j in &judged {
        let Some(of) = tenancies.get(j.booking) else {
            continue;
        };
        if j.known.state == BookingState::Updating {
            continue;
        }
        let desired = j.known.version.as_deref().unwrap_or_default();
        for (id, t) in of {
            let event = assess(t.state, desired, j.obs)
                .and_then(|event| Some((event, transition(t.state, event).ok()?)));
            following.push(Judged {
                booking: id,
                obs: j.obs,
                known: t,
                problem: j.problem.clone(),
                event,
                tenancy: true,
            });
        }
    }
    judged.extend(following);
    Ok(judged)
}

/// Judges every observation of the report against the stored booking it names.
fn judge_observed<'a>(
    site: &str,
    report: &'a SiteReport,
    known: &'a HashMap<String, Known>,
) -> Result<Vec<Judged<'a>>> {
    report
        .bookings
        .iter()
        .enumerate()
        .map(|(i, obs)| {
            let known = known
                .get(&obs.booking)
                .filter(|k| k.site.as_deref() == Some(site))
                .ok_or_else(|| {
                    Invalid::unknown(
                        format!("/bookings/{i}/booking"),
                        format!("booking `{}` is not placed on site `{site}`", obs.booking),
                    )
                })?;
            let desired = known.version.as_deref().unwrap_or_default();
            // `assess` proposes only moves the life cycle allows; `transition` says where.
            let event = assess(known.state, desired, obs)
                .and_then(|event| Some((event, transition(known.state, event).ok()?)));
            Ok(Judged {
                booking: &obs.booking,
                obs,
                known,
                problem: obs.problem(desired),
                event,
                tenancy: false,
            })
        })
        .collect()
}

/// Upserts the observations as the bookings' last reported status.
pub(super) async fn upsert_observations(
    w: &mut Write<'_>,
    dialect: Dialect,
    site: &str,
    sequence: i64,
    judged: &[Judged<'_>],
    at: &str,
) -> Result<()> {
    let observed: Vec<&Judged<'_>> = judged.iter().filter(|j| !j.tenancy).collect();
    for chunk in observed.chunks(UPSERT_ROWS) {
        let mut sql = String::from(
            "INSERT INTO booking_status (booking, site, offering, sequence, observed_at, \
             applied_version, desired_replicas, ready_replicas, smoke_test, conditions, problem, export) VALUES ",
        );
        for j in 0..chunk.len() {
            if j > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            sql.push_str(&placeholders(dialect, j * 12 + 1, 12));
            sql.push(')');
        }
        sql.push_str(
            " ON CONFLICT (booking) DO UPDATE SET site = excluded.site, \
             sequence = excluded.sequence, observed_at = excluded.observed_at, \
             applied_version = excluded.applied_version, \
             desired_replicas = excluded.desired_replicas, \
             ready_replicas = excluded.ready_replicas, smoke_test = excluded.smoke_test, \
             conditions = excluded.conditions, problem = excluded.problem, \
             export = excluded.export",
        );
        let mut q = sqlx::query(&sql);
        for j in chunk {
            let obs = j.obs;
            q = q
                .bind(obs.booking.clone())
                .bind(site.to_string())
                .bind(j.known.offering.clone())
                .bind(sequence)
                .bind(at.to_owned())
                .bind(obs.applied_version.clone())
                .bind(i64::from(obs.desired_replicas))
                .bind(i64::from(obs.ready_replicas))
                .bind(obs.smoke_test.as_str())
                .bind(to_json(&obs.conditions)?)
                .bind(j.problem.clone())
                .bind(obs.export.as_ref().map(to_json).transpose()?);
        }
        q.execute(&mut *w.tx).await?;
    }
    Ok(())
}

/// Writes the bookings' moves, one statement per target state and reason, and returns
/// each move's audit event with the observation that caused it (the rest of the booking
/// is unchanged).
pub(super) async fn write_moves(
    w: &mut Write<'_>,
    dialect: Dialect,
    actor: &str,
    report: &SiteReport,
    judged: &[Judged<'_>],
    at: &str,
) -> Result<Vec<Change>> {
    let mut groups: BTreeMap<(&'static str, Option<String>), Vec<String>> = BTreeMap::new();
    let mut changes = Vec::new();
    for j in judged {
        let Some((event, to)) = j.event else { continue };
        let (k, obs) = (j.known, j.obs);
        let (action, reason) = match event {
            BookingEvent::Degrade => ("booking.degrade", j.problem.clone()),
            _ => ("booking.ready", None),
        };
        groups
            .entry((to.as_str(), reason.clone()))
            .or_default()
            .push(j.booking.to_owned());
        changes.push(Change {
            actor: actor.to_owned(),
            action: action.into(),
            object: format!("booking/{}", j.booking),
            before: Some(json!({"state": k.state, "reason": k.reason})),
            after: Some(json!({
                "state": to,
                "reason": reason,
                "observed": {
                    "sequence": report.sequence,
                    "applied_version": obs.applied_version,
                    "desired_version": k.version,
                    "ready_replicas": obs.ready_replicas,
                    "desired_replicas": obs.desired_replicas,
                    "smoke_test": obs.smoke_test,
                },
            })),
        });
    }
    for ((to, reason), ids) in &groups {
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "UPDATE bookings SET state = {}, reason = {}, updated_at = {}, \
                 state_since = {} WHERE id IN ({})",
                placeholders(dialect, 1, 1),
                placeholders(dialect, 2, 1),
                placeholders(dialect, 3, 1),
                placeholders(dialect, 4, 1),
                placeholders(dialect, 5, chunk.len())
            );
            let mut q = sqlx::query(&sql)
                .bind(*to)
                .bind(reason.clone())
                .bind(at.to_owned())
                .bind(at.to_owned());
            for id in chunk {
                q = q.bind(id.clone());
            }
            q.execute(&mut *w.tx).await?;
        }
    }
    Ok(changes)
}

/// Stores what the site reports of itself; it is no longer silent.
pub(super) async fn store_site_status(
    w: &mut Write<'_>,
    site: &str,
    sequence: i64,
    report: &SiteReport,
    at: &str,
) -> Result<()> {
    let o = &report.site;
    sqlx::query(&format!(
        "INSERT INTO site_status ({SITE_STATUS_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL) \
         ON CONFLICT (site) DO UPDATE SET sequence = excluded.sequence, \
         reported_at = excluded.reported_at, interval_seconds = excluded.interval_seconds, \
         agent = excluded.agent, simulated = excluded.simulated, \
         kubernetes_version = excluded.kubernetes_version, \
         free_cpu_millis = excluded.free_cpu_millis, free_memory_mib = excluded.free_memory_mib, \
         free_storage_gib = excluded.free_storage_gib, health = excluded.health, \
         message = excluded.message, silent_since = NULL"
    ))
    .bind(site)
    .bind(sequence)
    .bind(at)
    .bind(i64::from(report.agent.interval_seconds))
    .bind(&report.agent.name)
    .bind(i64::from(report.agent.simulated))
    .bind(&o.kubernetes_version)
    .bind(saturating(o.free.cpu_millis))
    .bind(saturating(o.free.memory_mib))
    .bind(saturating(o.free.storage_gib))
    .bind(o.health.as_str())
    .bind(o.message.clone())
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

/// The site's own story is audited where it turns: first report, back from silence, or
/// a change of the health it reports.
pub(super) async fn audit_site_turn(
    w: &mut Write<'_>,
    actor: &str,
    site: &str,
    previous: Option<&SiteStatus>,
    report: &SiteReport,
    now: DateTime<Utc>,
) -> Result<()> {
    let o = &report.site;
    let action = match previous {
        None => "site.reporting",
        Some(p) if p.silent_since.is_some() => "site.reporting",
        Some(p) if p.reported_health != o.health => "site.health",
        Some(_) => return Ok(()),
    };
    let change = Change {
        actor: actor.to_owned(),
        action: action.into(),
        object: format!("site/{site}"),
        before: previous.map(|p| {
            json!({
                "health": p.reported_health,
                "silent_since": p.silent_since,
                "agent": p.agent,
            })
        }),
        after: Some(json!({
            "health": o.health,
            "message": o.message,
            "agent": report.agent.name,
            "simulated": report.agent.simulated,
        })),
    };
    w.audit(change, now).await?;
    Ok(())
}
