//! An operator's controls of a rollout, one function each: pause, resume, abort, retry
//! a site, skip a site. Each writes inside the transaction of
//! [`Store::control_rollout`](crate::Store::control_rollout), which loads the rollout,
//! checks that the control is allowed in its state, and audits what the function returns
//! as the actor's.

use serde_json::{json, Value};
use verbund_domain::audit::Change;
use verbund_domain::rollout::{ItemState, Rollout, RolloutItem, RolloutState};

use super::{roll_back, set_items, set_state};
use crate::bookings::IN_CHUNK;
use crate::error::{Result, StoreError};
use crate::rows::placeholders;
use crate::{Dialect, Write};

/// What a control did: the state it leaves (for the rollout's audit event) and the
/// bookings' own audit events.
pub(super) type Done = (Value, Vec<Change>);

/// The reason aborted items and bookings carry.
const ABORTED: &str = "the rollout was aborted";

/// Refuses a site the rollout has no bookings on.
pub(super) fn require_site(id: &str, items: &[RolloutItem], site: &str) -> Result<()> {
    if items.iter().any(|i| i.site == site) {
        Ok(())
    } else {
        Err(StoreError::Invalid(verbund_domain::Invalid::unknown(
            "/site",
            format!("rollout `{id}` has no bookings on site `{site}`"),
        )))
    }
}

pub(super) async fn pause(w: &mut Write<'_>, id: &str, at: &str) -> Result<Done> {
    set_state(w, id, RolloutState::Paused, None, at).await?;
    Ok((json!({"state": "paused"}), Vec::new()))
}

/// Resumes the rollout. Resuming a halted rollout accepts the current wave's failures
/// so far (`tolerated`); resuming a paused one keeps what was accepted before.
pub(super) async fn resume(
    w: &mut Write<'_>,
    id: &str,
    rollout: &Rollout,
    items: &[RolloutItem],
    tolerated_before: u32,
    at: &str,
) -> Result<Done> {
    let tolerated = if rollout.state == RolloutState::Halted {
        items
            .iter()
            .filter(|i| i.wave == rollout.current_wave && i.state == ItemState::Failed)
            .count() as i64
    } else {
        tolerated_before.into()
    };
    set_state(w, id, RolloutState::Running, None, at).await?;
    sqlx::query("UPDATE rollouts SET tolerated = $2 WHERE id = $1")
        .bind(id)
        .bind(tolerated)
        .execute(&mut *w.tx)
        .await?;
    Ok((
        json!({"state": "running", "accepted_failures": tolerated}),
        Vec::new(),
    ))
}

/// Aborts the rollout: bookings already given the new version go back to their previous
/// one, those not yet started are skipped.
pub(super) async fn abort(
    w: &mut Write<'_>,
    dialect: Dialect,
    id: &str,
    actor: &str,
    items: &[RolloutItem],
    at: &str,
) -> Result<Done> {
    let mut back = Vec::new();
    let mut skip = Vec::new();
    for i in items {
        match (i.state, &i.from_version) {
            // A reference booking created by this rollout has no earlier version: it
            // keeps the new one in its test environment.
            (ItemState::Passed, None) => {}
            (ItemState::Updating | ItemState::Baking | ItemState::Passed, Some(_)) => back.push(i),
            (
                ItemState::Pending | ItemState::Waiting | ItemState::Updating | ItemState::Baking,
                _,
            ) => skip.push(i.booking.clone()),
            _ => {}
        }
    }
    let ids: Vec<String> = back.iter().map(|i| i.booking.clone()).collect();
    set_items(
        w,
        dialect,
        id,
        &ids,
        ItemState::RolledBack,
        Some(ABORTED),
        at,
    )
    .await?;
    set_items(w, dialect, id, &skip, ItemState::Skipped, Some(ABORTED), at).await?;
    let mut changes = Vec::new();
    for i in back {
        if let Some(previous) = &i.from_version {
            changes.extend(roll_back(w, actor, &i.booking, previous, id, ABORTED, at).await?);
        }
    }
    let reason = format!("aborted by {actor}");
    set_state(w, id, RolloutState::Aborted, Some(&reason), at).await?;
    Ok((
        json!({"state": "aborted", "rolled_back": ids.len(), "skipped": skip.len()}),
        changes,
    ))
}

/// Gives a site's failed, skipped or rolled-back bookings another try in the current
/// wave (the last one, if the rollout had completed), and runs the rollout again.
pub(super) async fn retry_site(
    w: &mut Write<'_>,
    dialect: Dialect,
    id: &str,
    rollout: &Rollout,
    items: &[RolloutItem],
    site: &str,
    at: &str,
) -> Result<Done> {
    require_site(id, items, site)?;
    let retried: Vec<String> = items
        .iter()
        .filter(|i| {
            i.site == site
                && matches!(
                    i.state,
                    ItemState::Failed | ItemState::Skipped | ItemState::RolledBack
                )
        })
        .map(|i| i.booking.clone())
        .collect();
    if retried.is_empty() {
        return Err(StoreError::Conflict(format!(
            "site `{site}` has no failed or skipped bookings in rollout `{id}`"
        )));
    }
    let wave = if rollout.state == RolloutState::Completed {
        rollout.waves.len().saturating_sub(1) as u32
    } else {
        rollout.current_wave
    };
    for chunk in retried.chunks(IN_CHUNK) {
        let sql = format!(
            "UPDATE rollout_items SET state = 'pending', wave = {}, since = {}, \
             ready_since = NULL, reason = NULL WHERE rollout = {} AND booking IN ({})",
            placeholders(dialect, 1, 1),
            placeholders(dialect, 2, 1),
            placeholders(dialect, 3, 1),
            placeholders(dialect, 4, chunk.len())
        );
        let mut q = sqlx::query(&sql)
            .bind(i64::from(wave))
            .bind(at.to_owned())
            .bind(id.to_owned());
        for b in chunk {
            q = q.bind(b.clone());
        }
        q.execute(&mut *w.tx).await?;
    }
    sqlx::query(
        "UPDATE rollouts SET state = 'running', reason = NULL, finished_at = NULL, \
         current_wave = $2, updated_at = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(i64::from(wave))
    .bind(at)
    .execute(&mut *w.tx)
    .await?;
    Ok((
        json!({"site": site, "retried": retried.len(), "wave": wave, "state": "running"}),
        Vec::new(),
    ))
}

/// Skips a site's bookings that have not started yet, with the operator's reason.
#[allow(clippy::too_many_arguments)]
pub(super) async fn skip_site(
    w: &mut Write<'_>,
    dialect: Dialect,
    id: &str,
    actor: &str,
    items: &[RolloutItem],
    site: &str,
    reason: &str,
    at: &str,
) -> Result<Done> {
    require_site(id, items, site)?;
    let skipped: Vec<String> = items
        .iter()
        .filter(|i| i.site == site && matches!(i.state, ItemState::Pending | ItemState::Waiting))
        .map(|i| i.booking.clone())
        .collect();
    let why = format!("site `{site}` skipped by {actor}: {reason}");
    set_items(w, dialect, id, &skipped, ItemState::Skipped, Some(&why), at).await?;
    Ok((
        json!({"site": site, "skipped": skipped.len(), "reason": reason}),
        Vec::new(),
    ))
}
