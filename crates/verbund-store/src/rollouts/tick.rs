//! One tick of the rollout engine, in named steps: load the running rollout and the
//! items the rules need, let the rules decide ([`step`]), sort the decisions, write
//! them, and audit them in the order they were decided.
//!
//! Only the loading and writing steps touch the database; sorting the decisions, the
//! bookings' moves and the audit order are plain functions of what was read. Every
//! step runs inside the one transaction of [`Store::tick_rollout`](crate::Store::tick_rollout)
//! (see the parent module for why a tick is one transaction).

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use sqlx::Row;
use verbund_domain::audit::Change;
use verbund_domain::booking::{transition, BookingEvent, BookingState};
use verbund_domain::rollout::{
    item_state_after, Action, ItemState, ItemView, Observed, Rollout, RolloutState, RolloutView,
};

use super::{rollout_row, set_items, set_state, tolerated, Ticked, ENGINE, ROLLOUT_COLUMNS};
use crate::bookings::IN_CHUNK;
use crate::error::{Result, StoreError};
use crate::rows::{parse_ts, parse_ts_opt, placeholders};
use crate::{Dialect, Write};

/// The rollout `id` if it is running, with the view the rules decide on.
pub(super) async fn load_running(
    w: &mut Write<'_>,
    id: &str,
) -> Result<Option<(Rollout, RolloutView)>> {
    let Some(row) = sqlx::query(&format!(
        "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1 AND state = 'running'"
    ))
    .bind(id)
    .fetch_optional(&mut *w.tx)
    .await?
    else {
        return Ok(None);
    };
    let rollout = rollout_row(&row)?;
    let view = RolloutView {
        state: rollout.state,
        version: rollout.version.clone(),
        policy: rollout.policy.clone(),
        current_wave: rollout.current_wave,
        waves: rollout.waves.iter().map(|w| w.stage).collect(),
        tolerated: tolerated(&row)?,
        smoke_test: row.try_get::<i64, _>(9)? != 0,
        loaded_through: rollout.current_wave + 1,
    };
    Ok(Some((rollout, view)))
}

/// The items a tick decides on, with what their sites last reported: the current and
/// the next wave, the reference bookings, and every item still in flight. Beside them,
/// the version each booking ran before the rollout (what a failure rolls back to).
pub(super) async fn load_items(
    w: &mut Write<'_>,
    id: &str,
    current_wave: u32,
) -> Result<(Vec<ItemView>, HashMap<String, Option<String>>)> {
    let rows = sqlx::query(
        "SELECT i.booking, i.site, i.wave, i.reference, i.state, i.since, i.ready_since, \
         b.state, b.version, b.channel, s.smoke_test, s.applied_version, s.problem, b.reason, \
         i.from_version \
         FROM rollout_items i LEFT JOIN bookings b ON b.id = i.booking \
         LEFT JOIN booking_status s ON s.booking = i.booking \
         WHERE i.rollout = $1 AND (i.wave IN ($2, $3) OR i.reference = 1 \
         OR i.state IN ('updating', 'baking', 'waiting')) ORDER BY i.wave, i.booking",
    )
    .bind(id)
    .bind(i64::from(current_wave))
    .bind(i64::from(current_wave) + 1)
    .fetch_all(&mut *w.tx)
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    let mut from = HashMap::with_capacity(rows.len());
    for r in &rows {
        let booking: String = r.try_get(0)?;
        let state: String = r.try_get(4)?;
        from.insert(booking.clone(), r.try_get(14)?);
        items.push(ItemView {
            booking,
            site: r.try_get(1)?,
            wave: r.try_get::<i64, _>(2)? as u32,
            reference: r.try_get::<i64, _>(3)? != 0,
            state: ItemState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("rollout item state `{state}`")))?,
            since: parse_ts(&r.try_get::<String, _>(5)?)?,
            ready_since: parse_ts_opt(r.try_get(6)?)?,
            observed: observed(r)?,
        });
    }
    Ok((items, from))
}

/// What the booking's site last reported of it, from a row of [`load_items`]; `None`
/// when the booking is gone.
fn observed(r: &sqlx::any::AnyRow) -> Result<Option<Observed>> {
    let Some(bs) = r.try_get::<Option<String>, _>(7)? else {
        return Ok(None);
    };
    let version: Option<String> = r.try_get(8)?;
    let applied: Option<String> = r.try_get(11)?;
    let smoke: Option<String> = r.try_get(10)?;
    Ok(Some(Observed {
        state: BookingState::parse(&bs)
            .ok_or_else(|| StoreError::Corrupt(format!("booking state `{bs}`")))?,
        smoke_passed: applied.is_some() && applied == version && smoke.as_deref() == Some("passed"),
        version,
        channel: r.try_get(9)?,
        problem: r
            .try_get::<Option<String>, _>(12)?
            .or(r.try_get::<Option<String>, _>(13)?),
    }))
}

/// The item decisions of a tick, sorted for writing: new item states grouped by
/// (state, reason) for few statements, the items whose bake time starts, and the
/// bookings to move to the new version or back to their previous one.
#[derive(Debug, Default)]
pub(super) struct ItemDecisions {
    pub(super) states: BTreeMap<(ItemState, Option<String>), Vec<String>>,
    pub(super) baking: Vec<String>,
    pub(super) to_new: Vec<String>,
    pub(super) to_old: Vec<(String, String)>,
}

/// The booking an item action concerns and the reason it gives; `None` for the
/// rollout's own actions.
fn item_of(action: &Action) -> Option<(&String, Option<&String>)> {
    match action {
        Action::Fail { booking, reason } | Action::Skip { booking, reason } => {
            Some((booking, Some(reason)))
        }
        Action::Start { booking }
        | Action::Wait { booking }
        | Action::Bake { booking }
        | Action::Pass { booking } => Some((booking, None)),
        Action::Advance { .. } | Action::Halt { .. } | Action::Complete => None,
    }
}

/// Sorts the item actions of a tick and counts them in `ticked`.
pub(super) fn sort_item_actions(actions: &[Action], ticked: &mut Ticked) -> ItemDecisions {
    let mut sorted = ItemDecisions::default();
    for a in actions {
        let (Some(state), Some((booking, reason))) = (item_state_after(a), item_of(a)) else {
            continue;
        };
        sorted
            .states
            .entry((state, reason.cloned()))
            .or_default()
            .push(booking.clone());
        match a {
            Action::Start { booking } => {
                ticked.started += 1;
                sorted.to_new.push(booking.clone());
            }
            Action::Bake { booking } => sorted.baking.push(booking.clone()),
            Action::Pass { .. } => ticked.passed += 1,
            Action::Fail { booking, reason } => {
                ticked.failed += 1;
                sorted.to_old.push((booking.clone(), reason.clone()));
            }
            Action::Skip { .. } => ticked.skipped += 1,
            Action::Wait { .. } => ticked.waiting += 1,
            Action::Advance { .. } | Action::Halt { .. } | Action::Complete => {}
        }
    }
    sorted
}

/// Writes the rollout's own actions (next wave, halt, completion) and counts them in
/// `ticked`; the audit event of each, by the index of its action.
pub(super) async fn apply_rollout_actions(
    w: &mut Write<'_>,
    id: &str,
    view: &RolloutView,
    actions: &[Action],
    at: &str,
    ticked: &mut Ticked,
) -> Result<HashMap<usize, (&'static str, Value)>> {
    let mut events = HashMap::new();
    for (i, a) in actions.iter().enumerate() {
        match a {
            Action::Advance { wave } => {
                ticked.advanced = Some(*wave);
                sqlx::query(
                    "UPDATE rollouts SET current_wave = $2, tolerated = 0, updated_at = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(i64::from(*wave))
                .bind(at)
                .execute(&mut *w.tx)
                .await?;
                let stage = view.waves.get(*wave as usize);
                events.insert(i, ("rollout.wave", json!({"wave": wave, "stage": stage})));
            }
            Action::Halt { reason } => {
                ticked.finished = Some(RolloutState::Halted);
                set_state(w, id, RolloutState::Halted, Some(reason), at).await?;
                events.insert(
                    i,
                    ("rollout.halt", json!({"state": "halted", "reason": reason})),
                );
            }
            Action::Complete => {
                ticked.finished = Some(RolloutState::Completed);
                set_state(w, id, RolloutState::Completed, None, at).await?;
                events.insert(i, ("rollout.complete", json!({"state": "completed"})));
            }
            _ => {}
        }
    }
    Ok(events)
}

/// Writes the items' new states and when their bake time started.
pub(super) async fn write_item_states(
    w: &mut Write<'_>,
    dialect: Dialect,
    id: &str,
    sorted: &ItemDecisions,
    at: &str,
) -> Result<()> {
    for ((state, reason), ids) in &sorted.states {
        set_items(w, dialect, id, ids, *state, reason.as_deref(), at).await?;
    }
    for chunk in sorted.baking.chunks(IN_CHUNK) {
        let sql = format!(
            "UPDATE rollout_items SET ready_since = {} WHERE rollout = {} AND booking IN ({})",
            placeholders(dialect, 1, 1),
            placeholders(dialect, 2, 1),
            placeholders(dialect, 3, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(at.to_owned()).bind(id.to_owned());
        for b in chunk {
            q = q.bind(b.clone());
        }
        q.execute(&mut *w.tx).await?;
    }
    Ok(())
}

/// Bookings that move to one desired version, by (version, state after, whether the
/// state changed).
pub(super) type Moves = BTreeMap<(String, &'static str, bool), Vec<String>>;

/// The bookings' desired versions after the tick — the new version for those started,
/// the previous one for those failed — and each change's audit event. A booking that
/// already runs its target (and is not degraded) or is gone does not move.
pub(super) fn booking_moves(
    id: &str,
    version: &str,
    sorted: &ItemDecisions,
    items: &[ItemView],
    from: &HashMap<String, Option<String>>,
) -> (Moves, HashMap<String, Change>) {
    let by_id: HashMap<&str, &ItemView> = items.iter().map(|i| (i.booking.as_str(), i)).collect();
    let targets = sorted
        .to_new
        .iter()
        .map(|b| (b, version.to_owned(), "booking.rollout", None))
        .chain(sorted.to_old.iter().filter_map(|(b, reason)| {
            let previous = from.get(b).cloned().flatten()?;
            Some((b, previous, "booking.rollback", Some(reason)))
        }));
    let mut moves = Moves::new();
    let mut changes = HashMap::new();
    for (booking, to, action, reason) in targets {
        let Some(o) = by_id
            .get(booking.as_str())
            .and_then(|i| i.observed.as_ref())
        else {
            continue;
        };
        if o.version.as_deref() == Some(to.as_str()) && o.state != BookingState::Degraded {
            continue;
        }
        let next_state = transition(o.state, BookingEvent::StartUpdate).unwrap_or(o.state);
        moves
            .entry((to.clone(), next_state.as_str(), next_state != o.state))
            .or_default()
            .push(booking.clone());
        changes.insert(
            booking.clone(),
            Change {
                actor: ENGINE.into(),
                action: action.into(),
                object: format!("booking/{booking}"),
                before: Some(json!({"version": o.version, "state": o.state})),
                after: Some(json!({
                    "version": to,
                    "state": next_state,
                    "rollout": id,
                    "reason": reason,
                })),
            },
        );
    }
    (moves, changes)
}

/// Writes the bookings' new desired versions; `state_since` moves only with the state.
pub(super) async fn write_booking_moves(
    w: &mut Write<'_>,
    dialect: Dialect,
    moves: &Moves,
    at: &str,
) -> Result<()> {
    for ((to, state, moved), ids) in moves {
        for chunk in ids.chunks(IN_CHUNK) {
            let since = if *moved {
                format!(", state_since = {}", placeholders(dialect, 4, 1))
            } else {
                String::new()
            };
            let first = if *moved { 5 } else { 4 };
            let sql = format!(
                "UPDATE bookings SET version = {}, state = {}, updated_at = {}{since} \
                 WHERE id IN ({})",
                placeholders(dialect, 1, 1),
                placeholders(dialect, 2, 1),
                placeholders(dialect, 3, 1),
                placeholders(dialect, first, chunk.len())
            );
            let mut q = sqlx::query(&sql)
                .bind(to.clone())
                .bind(state.to_string())
                .bind(at.to_owned());
            if *moved {
                q = q.bind(at.to_owned());
            }
            for b in chunk {
                q = q.bind(b.clone());
            }
            q.execute(&mut *w.tx).await?;
        }
    }
    Ok(())
}

/// The tick's audit events in the order of the decisions, so that the trail reads as the
/// engine decided (a wave opens before its bookings start).
pub(super) fn in_decision_order(
    id: &str,
    actions: &[Action],
    mut bookings: HashMap<String, Change>,
    mut rollout: HashMap<usize, (&'static str, Value)>,
) -> Vec<Change> {
    let mut changes = Vec::with_capacity(bookings.len() + rollout.len());
    for (i, a) in actions.iter().enumerate() {
        match a {
            Action::Start { booking } | Action::Fail { booking, .. } => {
                changes.extend(bookings.remove(booking));
            }
            _ => {
                if let Some((action, after)) = rollout.remove(&i) {
                    changes.push(Change {
                        actor: ENGINE.into(),
                        action: action.into(),
                        object: format!("rollout/{id}"),
                        before: None,
                        after: Some(after),
                    });
                }
            }
        }
    }
    changes
}

/// Counts the tick on the rollout.
pub(super) async fn count_tick(w: &mut Write<'_>, id: &str, at: &str) -> Result<()> {
    sqlx::query("UPDATE rollouts SET ticks = ticks + 1, updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(at)
        .execute(&mut *w.tx)
        .await?;
    Ok(())
}
