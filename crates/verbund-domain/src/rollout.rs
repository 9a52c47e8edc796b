//! Staged rollouts: how a new version of an offering reaches every booking that follows
//! it, and the rules that decide each next step.
//!
//! A rollout is planned once ([`plan`]) and then driven by [`step`], a pure function of
//! the rollout, its items (one per booking) as the store holds them, what the sites
//! report about those bookings, and the current time. The engine calls it on every tick
//! and writes the actions it returns in one transaction, so that a control plane killed
//! at any moment resumes exactly where the last committed tick left it: no wave is
//! repeated or skipped, because the waves and the items' states are the stored truth and
//! `step` only ever reads them.
//!
//! # Stages
//!
//! 0. **Test**: each affected site's `test` environment, where the site's reference
//!    booking (its test tenant) gets the version and the offering's smoke test must pass.
//!    A site whose test stage fails never gets the version in production: its
//!    production items are skipped (or the whole rollout halts, if the policy says so).
//! 1. **Canary**: the bookings of organisations that opted in as early adopters, and a
//!    share of the remaining production bookings spread over the sites.
//! 2. **Production waves**: the rest, by site, at most `wave_size` bookings per site and
//!    `max_concurrent_sites` sites per wave; smaller sites first.
//!
//! # Gates
//!
//! A booking passes when its site reports the new version ready (and its smoke test
//! passed) continuously for the bake time. It fails when it degrades, or is not ready
//! within the progress deadline; a failed booking is rolled back to its previous
//! version at once. More failures in a wave than its budget halt the rollout.
//!
//! # Maintenance windows
//!
//! A booking on a `window:` channel is started only while its window is open (German
//! local time). Until then it waits without holding up its wave; the rollout completes
//! when the last waiting booking has passed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::ops::RangeInclusive;

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::booking::{BookingState, MaintenanceWindow, UpdateChannel};
use crate::error::{Invalid, Result};

/// What happens to a site whose test stage fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TestFailure {
    /// The site gets no production update; the other sites go on.
    #[default]
    ExcludeSite,
    /// The whole rollout halts.
    Halt,
}

/// What happens to a site without a `test` environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UntestedSites {
    /// Its bookings are left out: nothing reaches production untested.
    #[default]
    Exclude,
    /// Its bookings are updated in the production waves without a test stage.
    Allow,
}

/// The bounds of a rollout policy's numbers, which `RolloutPolicy::validate` checks and
/// its schema states.
pub const CANARY_PERCENT: RangeInclusive<u32> = 0..=50;
pub const WAVE_SIZE: RangeInclusive<u32> = 1..=10_000;
pub const MAX_CONCURRENT_SITES: RangeInclusive<u32> = 1..=100;
pub const BAKE_SECONDS: RangeInclusive<u32> = 0..=86_400;
pub const FAILURE_BUDGET: RangeInclusive<u32> = 0..=10_000;
pub const PROGRESS_DEADLINE_SECONDS: RangeInclusive<u32> = 10..=86_400;

use crate::name::integer_schema as bounded;

fn canary_percent_schema() -> utoipa::openapi::schema::Object {
    bounded(CANARY_PERCENT)
}
fn wave_size_schema() -> utoipa::openapi::schema::Object {
    bounded(WAVE_SIZE)
}
fn max_concurrent_sites_schema() -> utoipa::openapi::schema::Object {
    bounded(MAX_CONCURRENT_SITES)
}
fn bake_seconds_schema() -> utoipa::openapi::schema::Object {
    bounded(BAKE_SECONDS)
}
fn failure_budget_schema() -> utoipa::openapi::schema::Object {
    bounded(FAILURE_BUDGET)
}
fn progress_deadline_schema() -> utoipa::openapi::schema::Object {
    bounded(PROGRESS_DEADLINE_SECONDS)
}

/// How a rollout proceeds. Every field has a default, so `{}` is a valid policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutPolicy {
    /// Share of the production bookings (besides early adopters) in the canary stage,
    /// in percent, 0–50.
    #[schema(schema_with = canary_percent_schema)]
    pub canary_percent: u32,
    /// Bookings per site in one production wave, 1–10,000.
    #[schema(schema_with = wave_size_schema)]
    pub wave_size: u32,
    /// Sites in one production wave, 1–100.
    #[schema(schema_with = max_concurrent_sites_schema)]
    pub max_concurrent_sites: u32,
    /// How long a booking must stay ready before it passes, in seconds (0–86,400).
    #[schema(schema_with = bake_seconds_schema)]
    pub bake_seconds: u32,
    /// Failed bookings a wave tolerates before the rollout halts (0–10,000).
    #[schema(schema_with = failure_budget_schema)]
    pub failure_budget: u32,
    /// How long a booking may take to report the new version ready, in seconds
    /// (10–86,400).
    #[schema(schema_with = progress_deadline_schema)]
    pub progress_deadline_seconds: u32,
    pub test_failure: TestFailure,
    pub untested_sites: UntestedSites,
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        RolloutPolicy {
            canary_percent: 5,
            wave_size: 100,
            max_concurrent_sites: 5,
            bake_seconds: 300,
            failure_budget: 0,
            progress_deadline_seconds: 1800,
            test_failure: TestFailure::ExcludeSite,
            untested_sites: UntestedSites::Exclude,
        }
    }
}

impl RolloutPolicy {
    pub fn validate(&self) -> Result<()> {
        let check = |field: &str, value: u32, range: RangeInclusive<u32>| {
            if range.contains(&value) {
                Ok(())
            } else {
                Err(Invalid::new(
                    format!("/policy/{field}"),
                    format!(
                        "must be between {} and {}, not {value}",
                        range.start(),
                        range.end()
                    ),
                ))
            }
        };
        check("canary_percent", self.canary_percent, CANARY_PERCENT)?;
        check("wave_size", self.wave_size, WAVE_SIZE)?;
        check(
            "max_concurrent_sites",
            self.max_concurrent_sites,
            MAX_CONCURRENT_SITES,
        )?;
        check("bake_seconds", self.bake_seconds, BAKE_SECONDS)?;
        check("failure_budget", self.failure_budget, FAILURE_BUDGET)?;
        check(
            "progress_deadline_seconds",
            self.progress_deadline_seconds,
            PROGRESS_DEADLINE_SECONDS,
        )?;
        Ok(())
    }
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutState {
    /// The engine advances it.
    Running,
    /// Stopped by an operator; nothing starts until it is resumed.
    Paused,
    /// Stopped by a gate; the failed bookings are rolled back. Resume accepts the
    /// failures so far and goes on; abort rolls back the rest.
    Halted,
    /// Every item is through.
    Completed,
    /// Stopped for good; what it changed was rolled back.
    Aborted,
}

impl RolloutState {
    pub const ALL: [RolloutState; 5] = [
        RolloutState::Running,
        RolloutState::Paused,
        RolloutState::Halted,
        RolloutState::Completed,
        RolloutState::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::Paused => "paused",
            RolloutState::Halted => "halted",
            RolloutState::Completed => "completed",
            RolloutState::Aborted => "aborted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        matches!(self, RolloutState::Completed | RolloutState::Aborted)
    }
}

impl fmt::Display for RolloutState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one booking of a rollout is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ItemState {
    /// Its wave has not started.
    Pending,
    /// Its wave started, its maintenance window is closed.
    Waiting,
    /// Its desired version is the new one; the site has not reported it ready.
    Updating,
    /// Reported ready; the bake time runs.
    Baking,
    /// Ready for the whole bake time.
    Passed,
    /// Failed its gate and was rolled back to its previous version.
    Failed,
    /// Rolled back because the rollout was aborted.
    RolledBack,
    /// Left out (its site failed its test stage or was skipped, the booking was
    /// cancelled, the rollout was aborted before it started).
    Skipped,
}

impl ItemState {
    pub const ALL: [ItemState; 8] = [
        ItemState::Pending,
        ItemState::Waiting,
        ItemState::Updating,
        ItemState::Baking,
        ItemState::Passed,
        ItemState::Failed,
        ItemState::RolledBack,
        ItemState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::Waiting => "waiting",
            ItemState::Updating => "updating",
            ItemState::Baking => "baking",
            ItemState::Passed => "passed",
            ItemState::Failed => "failed",
            ItemState::RolledBack => "rolled-back",
            ItemState::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether nothing more happens to the item.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            ItemState::Passed | ItemState::Failed | ItemState::RolledBack | ItemState::Skipped
        )
    }

    /// Whether its booking's desired version is the new one.
    pub fn is_in_flight(self) -> bool {
        matches!(self, ItemState::Updating | ItemState::Baking)
    }
}

impl fmt::Display for ItemState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a wave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Test,
    Canary,
    Production,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Test => "test",
            Stage::Canary => "canary",
            Stage::Production => "production",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Stage::Test, Stage::Canary, Stage::Production]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

// ---------------------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------------------

/// A production booking of the offering, as planning sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub booking: String,
    pub organisation: String,
    pub site: Option<String>,
    pub channel: String,
    pub version: Option<String>,
    pub state: BookingState,
    /// The organisation opted in as an early adopter.
    pub early_adopter: bool,
    /// A shared instance's tenant organisations (ids), sorted: updated with it.
    pub tenants: Vec<String>,
}

/// A site some candidate runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteCandidate {
    pub name: String,
    pub has_test: bool,
    /// The site's live reference booking of the offering, and its version.
    pub reference: Option<(String, Option<String>)>,
}

/// A booking the plan leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Excluded {
    pub booking: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    pub reason: String,
}

/// One booking of a planned wave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlannedItem {
    /// `None` for a reference booking created when the rollout starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking: Option<String>,
    pub site: String,
    /// The version it runs now (what a rollback returns to).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
    /// It waits for a maintenance window.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub window: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub early_adopter: bool,
    /// A shared instance's tenant organisations (ids): one rollout updates them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
}

/// A wave of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlannedWave {
    pub index: u32,
    pub stage: Stage,
    /// The sites it touches.
    pub sites: Vec<String>,
    pub items: Vec<PlannedItem>,
}

/// What a rollout will do, before it starts. Named `RolloutPlan` in the OpenAPI
/// document, where `Plan` is an offering's plan (`catalog::Plan`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = RolloutPlan)]
pub struct Plan {
    pub offering: String,
    pub version: String,
    pub policy: RolloutPolicy,
    pub waves: Vec<PlannedWave>,
    /// Bookings pinned to a version: left alone.
    pub pinned: Vec<Excluded>,
    /// Other bookings left out (already on the version, not running yet, untested site).
    pub excluded: Vec<Excluded>,
    /// Affected sites without a `test` environment.
    pub untested_sites: Vec<String>,
}

impl Plan {
    /// Production bookings the rollout will update (test stage not counted).
    pub fn bookings(&self) -> usize {
        self.waves
            .iter()
            .filter(|w| w.stage != Stage::Test)
            .map(|w| w.items.len())
            .sum()
    }
}

/// What planning needs: the offering's production bookings and their sites.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub offering: &'a str,
    pub version: &'a str,
    pub policy: &'a RolloutPolicy,
    pub candidates: &'a [Candidate],
    pub sites: &'a [SiteCandidate],
}

/// Plans a rollout. Deterministic: the same input gives the same plan.
pub fn plan(input: &PlanInput<'_>) -> Result<Plan> {
    input.policy.validate()?;
    let target = semver::Version::parse(input.version).map_err(|e| {
        Invalid::new(
            "/version",
            format!("`{}` is not a semantic version: {e}", input.version),
        )
    })?;
    let sites: HashMap<&str, &SiteCandidate> =
        input.sites.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut pinned = Vec::new();
    let mut excluded = Vec::new();
    let mut untested = BTreeSet::new();
    let mut chosen: Vec<&Candidate> = Vec::new();
    for c in input.candidates {
        let leave = |reason: String| Excluded {
            booking: c.booking.clone(),
            site: c.site.clone(),
            reason,
        };
        if let Ok(UpdateChannel::Pinned(v)) = c.channel.parse::<UpdateChannel>() {
            pinned.push(leave(format!("pinned to {v}")));
            continue;
        }
        let Some(site) = c.site.as_deref() else {
            excluded.push(leave("not placed".into()));
            continue;
        };
        if !matches!(
            c.state,
            BookingState::Provisioning
                | BookingState::Active
                | BookingState::Updating
                | BookingState::Degraded
        ) {
            excluded.push(leave(format!("not running (state `{}`)", c.state)));
            continue;
        }
        let current = c
            .version
            .as_deref()
            .and_then(|v| semver::Version::parse(v).ok());
        if current.as_ref().is_some_and(|v| *v >= target) {
            excluded.push(leave(format!(
                "already runs {}",
                c.version.as_deref().unwrap_or_default()
            )));
            continue;
        }
        let has_test = sites.get(site).is_some_and(|s| s.has_test);
        if !has_test {
            untested.insert(site.to_owned());
            if input.policy.untested_sites == UntestedSites::Exclude {
                excluded.push(leave(format!("site `{site}` has no test environment")));
                continue;
            }
        }
        chosen.push(c);
    }
    chosen.sort_by(|a, b| (a.site.as_deref(), &a.booking).cmp(&(b.site.as_deref(), &b.booking)));

    let item = |c: &Candidate| PlannedItem {
        booking: Some(c.booking.clone()),
        site: c.site.clone().unwrap_or_default(),
        from_version: c.version.clone(),
        window: matches!(
            c.channel.parse::<UpdateChannel>(),
            Ok(UpdateChannel::Window(_))
        ),
        early_adopter: c.early_adopter,
        tenants: c.tenants.clone(),
    };
    let mut waves = Vec::new();

    // Stage 1: the test environment of every affected site that has one.
    let affected: BTreeSet<&str> = chosen.iter().filter_map(|c| c.site.as_deref()).collect();
    let test_items: Vec<PlannedItem> = affected
        .iter()
        .filter_map(|s| sites.get(s))
        .filter(|s| s.has_test)
        .map(|s| PlannedItem {
            booking: s.reference.as_ref().map(|r| r.0.clone()),
            site: s.name.clone(),
            from_version: s.reference.as_ref().and_then(|r| r.1.clone()),
            window: false,
            early_adopter: false,
            tenants: Vec::new(),
        })
        .collect();
    if !test_items.is_empty() {
        waves.push(wave(Stage::Test, test_items));
    }

    // Stage 2: early adopters, then a share of the rest spread evenly over the sorted
    // list (and so over the sites).
    let (early, rest): (Vec<&Candidate>, Vec<&Candidate>) =
        chosen.iter().partition(|c| c.early_adopter);
    let share = (rest.len() as u64 * u64::from(input.policy.canary_percent)).div_ceil(100) as usize;
    let mut canary: Vec<PlannedItem> = early.iter().map(|c| item(c)).collect();
    let mut in_canary = vec![false; rest.len()];
    if share > 0 {
        let stride = rest.len() as f64 / share as f64;
        for k in 0..share {
            let i = ((k as f64 + 0.5) * stride) as usize;
            if let Some(chosen) = in_canary.get_mut(i.min(rest.len() - 1)) {
                *chosen = true;
            }
        }
    }
    canary.extend(
        rest.iter()
            .zip(&in_canary)
            .filter(|(_, c)| **c)
            .map(|(c, _)| item(c)),
    );
    if !canary.is_empty() {
        canary.sort_by(|a, b| (&a.site, &a.booking).cmp(&(&b.site, &b.booking)));
        waves.push(wave(Stage::Canary, canary));
    }

    // Production waves: per site chunks of `wave_size`, smaller sites first, at most
    // `max_concurrent_sites` sites per wave.
    let mut by_site: BTreeMap<&str, Vec<PlannedItem>> = BTreeMap::new();
    for (c, _) in rest.iter().zip(&in_canary).filter(|(_, c)| !**c) {
        by_site
            .entry(c.site.as_deref().unwrap_or_default())
            .or_default()
            .push(item(c));
    }
    let mut queue: Vec<(&str, std::vec::IntoIter<PlannedItem>, usize)> = by_site
        .into_iter()
        .map(|(s, items)| {
            let n = items.len();
            (s, items.into_iter(), n)
        })
        .collect();
    queue.sort_by_key(|(s, _, n)| (*n, *s));
    let size = input.policy.wave_size as usize;
    let concurrent = input.policy.max_concurrent_sites as usize;
    loop {
        let mut items = Vec::new();
        let mut used = 0;
        for (_, iter, _) in queue.iter_mut() {
            if used == concurrent {
                break;
            }
            let chunk: Vec<PlannedItem> = iter.by_ref().take(size).collect();
            if !chunk.is_empty() {
                used += 1;
                items.extend(chunk);
            }
        }
        if items.is_empty() {
            break;
        }
        queue.retain(|(_, iter, _)| iter.len() > 0);
        waves.push(wave(Stage::Production, items));
    }
    for (i, w) in waves.iter_mut().enumerate() {
        w.index = i as u32;
    }
    Ok(Plan {
        offering: input.offering.to_owned(),
        version: input.version.to_owned(),
        policy: input.policy.clone(),
        waves,
        pinned,
        excluded,
        untested_sites: untested.into_iter().collect(),
    })
}

fn wave(stage: Stage, items: Vec<PlannedItem>) -> PlannedWave {
    let sites: BTreeSet<&str> = items.iter().map(|i| i.site.as_str()).collect();
    PlannedWave {
        index: 0,
        stage,
        sites: sites.into_iter().map(str::to_owned).collect(),
        items,
    }
}

// ---------------------------------------------------------------------------------------
// The engine's rules
// ---------------------------------------------------------------------------------------

/// A rollout as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutView {
    pub state: RolloutState,
    pub version: String,
    pub policy: RolloutPolicy,
    pub current_wave: u32,
    pub waves: Vec<Stage>,
    /// Failures of the current wave an operator accepted by resuming after a halt.
    pub tolerated: u32,
    /// Whether the offering has a smoke test that must pass.
    pub smoke_test: bool,
    /// The last wave whose items are all given to [`step`]: the engine reads the current
    /// and the next wave (and whatever is in flight, waiting, or a reference), not the
    /// whole rollout, so that a tick costs what its wave costs. `step` advances no
    /// further than this wave in one call.
    pub loaded_through: u32,
}

/// What the site last said about an item's booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub state: BookingState,
    /// The booking's desired version now.
    pub version: Option<String>,
    pub channel: String,
    /// The smoke test result the site reported for the running version.
    pub smoke_passed: bool,
    /// Why the booking is degraded, if it is.
    pub problem: Option<String>,
}

/// One item of a rollout, with what is known about its booking (`None`: the booking is
/// gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemView {
    pub booking: String,
    pub site: String,
    pub wave: u32,
    pub reference: bool,
    pub state: ItemState,
    pub since: DateTime<Utc>,
    pub ready_since: Option<DateTime<Utc>>,
    pub observed: Option<Observed>,
}

/// A change [`step`] decides; the engine writes them all in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Give the booking the new version.
    Start {
        booking: String,
    },
    /// Its window is closed; start it when it opens.
    Wait {
        booking: String,
    },
    /// It reported ready: the bake time starts.
    Bake {
        booking: String,
    },
    Pass {
        booking: String,
    },
    /// It failed: mark it and roll it back to its previous version.
    Fail {
        booking: String,
        reason: String,
    },
    Skip {
        booking: String,
        reason: String,
    },
    /// The current wave is through; the next one starts.
    Advance {
        wave: u32,
    },
    Halt {
        reason: String,
    },
    Complete,
}

/// The engine's decisions for one tick. Runs the whole cascade at once: a wave that
/// passes in this tick is followed by starting the next one, so that a zero bake time
/// costs no extra ticks.
pub fn step(rollout: &RolloutView, items: &[ItemView], now: DateTime<Utc>) -> Vec<Action> {
    let mut actions = Vec::new();
    if rollout.state != RolloutState::Running {
        return actions;
    }
    let mut items: Vec<ItemView> = items.to_vec();
    let bake = Duration::seconds(i64::from(rollout.policy.bake_seconds));
    let deadline = Duration::seconds(i64::from(rollout.policy.progress_deadline_seconds));
    let mut current = rollout.current_wave;
    let mut tolerated = rollout.tolerated;

    // 1. What the sites reported about the bookings in flight.
    for it in items.iter_mut().filter(|i| i.state.is_in_flight()) {
        let decision = judge(rollout, it, now, bake, deadline);
        if let Some(action) = decision {
            apply(it, &action, now);
            actions.push(action);
        }
    }
    // A site whose reference booking failed gets no production update.
    let failed_tests: BTreeSet<String> = items
        .iter()
        .filter(|i| i.reference && i.state == ItemState::Failed)
        .map(|i| i.site.clone())
        .collect();
    for it in items.iter_mut().filter(|i| {
        !i.reference
            && matches!(i.state, ItemState::Pending | ItemState::Waiting)
            && failed_tests.contains(&i.site)
    }) {
        let action = Action::Skip {
            booking: it.booking.clone(),
            reason: format!("site `{}` failed its test stage", it.site),
        };
        apply(it, &action, now);
        actions.push(action);
    }

    loop {
        let wave = current as usize;
        let stage = rollout.waves.get(wave).copied();
        // 2. The gate of the current wave.
        if let Some(stage) = stage {
            let in_wave = || items.iter().filter(|i| i.wave == current);
            let failed = in_wave().filter(|i| i.state == ItemState::Failed).count() as u32;
            let halt = match stage {
                Stage::Test => {
                    let all = in_wave().count();
                    let done_failed = in_wave()
                        .filter(|i| matches!(i.state, ItemState::Failed | ItemState::Skipped))
                        .count();
                    if failed > tolerated && rollout.policy.test_failure == TestFailure::Halt {
                        Some(format!(
                            "{failed} site(s) failed the test stage and the policy halts on a test failure"
                        ))
                    } else if all > 0 && done_failed == all && failed > tolerated {
                        Some("no site passed its test stage".to_owned())
                    } else {
                        None
                    }
                }
                _ if failed > rollout.policy.failure_budget + tolerated => Some(format!(
                    "wave {current} ({}): {failed} of {} bookings failed, the budget is {}",
                    stage.as_str(),
                    in_wave().count(),
                    rollout.policy.failure_budget
                )),
                _ => None,
            };
            if let Some(reason) = halt {
                actions.push(Action::Halt { reason });
                return actions;
            }
            // 3. Start what is pending in the current wave; a production booking only
            // once its site's reference booking passed (a retried site re-runs its test
            // stage in the current wave first).
            let references: HashMap<String, ItemState> = items
                .iter()
                .filter(|i| i.reference)
                .map(|i| (i.site.clone(), i.state))
                .collect();
            for it in items
                .iter_mut()
                .filter(|i| i.wave == current && i.state == ItemState::Pending)
            {
                let action = match references.get(&it.site) {
                    Some(ItemState::Passed) | None => start(it, now),
                    Some(_) if it.reference => start(it, now),
                    Some(ItemState::Failed | ItemState::Skipped | ItemState::RolledBack) => {
                        Action::Skip {
                            booking: it.booking.clone(),
                            reason: format!("site `{}` did not pass its test stage", it.site),
                        }
                    }
                    Some(_) => continue,
                };
                apply(it, &action, now);
                actions.push(action);
            }
        }
        // 4. Bookings waiting for their window, in this or an earlier wave.
        for it in items
            .iter_mut()
            .filter(|i| i.wave <= current && i.state == ItemState::Waiting)
        {
            if window_open(it, now) {
                let action = Action::Start {
                    booking: it.booking.clone(),
                };
                apply(it, &action, now);
                actions.push(action);
            }
        }
        // 5. The wave is through when nothing of it is in flight or pending.
        let through = items
            .iter()
            .filter(|i| i.wave == current)
            .all(|i| i.state.is_done() || i.state == ItemState::Waiting);
        if !through {
            return actions;
        }
        if (current as usize) + 1 < rollout.waves.len() {
            current += 1;
            tolerated = 0;
            actions.push(Action::Advance { wave: current });
            if current > rollout.loaded_through {
                return actions;
            }
            continue;
        }
        if items.iter().all(|i| i.state.is_done()) {
            actions.push(Action::Complete);
        }
        return actions;
    }
}

/// The verdict on an item in flight.
fn judge(
    rollout: &RolloutView,
    it: &ItemView,
    now: DateTime<Utc>,
    bake: Duration,
    deadline: Duration,
) -> Option<Action> {
    let booking = it.booking.clone();
    let Some(o) = &it.observed else {
        return Some(Action::Skip {
            booking,
            reason: "the booking is gone".into(),
        });
    };
    if !o.state.is_live() {
        return Some(Action::Skip {
            booking,
            reason: format!("the booking is {}", o.state),
        });
    }
    if o.version.as_deref() != Some(rollout.version.as_str()) {
        return Some(Action::Skip {
            booking,
            reason: format!(
                "the booking's version was changed to {} outside the rollout",
                o.version.as_deref().unwrap_or("none")
            ),
        });
    }
    let ready = o.state == BookingState::Active && (o.smoke_passed || !rollout.smoke_test);
    match (it.state, ready) {
        (_, false) if o.state == BookingState::Degraded => Some(Action::Fail {
            booking,
            reason: o
                .problem
                .clone()
                .unwrap_or_else(|| "the booking degraded".into()),
        }),
        (ItemState::Updating, true) if bake.is_zero() => Some(Action::Pass { booking }),
        (ItemState::Updating, true) => Some(Action::Bake { booking }),
        (ItemState::Updating, false) if now - it.since > deadline => Some(Action::Fail {
            booking,
            reason: format!(
                "not ready with {} within {} s",
                rollout.version, rollout.policy.progress_deadline_seconds
            ),
        }),
        (ItemState::Baking, true) if it.ready_since.is_some_and(|r| now - r >= bake) => {
            Some(Action::Pass { booking })
        }
        (ItemState::Baking, false) => Some(Action::Fail {
            booking,
            reason: "lost readiness during the bake time".into(),
        }),
        _ => None,
    }
}

fn start(it: &ItemView, now: DateTime<Utc>) -> Action {
    if window_open(it, now) {
        Action::Start {
            booking: it.booking.clone(),
        }
    } else {
        Action::Wait {
            booking: it.booking.clone(),
        }
    }
}

fn window_open(it: &ItemView, now: DateTime<Utc>) -> bool {
    match it
        .observed
        .as_ref()
        .and_then(|o| o.channel.parse::<UpdateChannel>().ok())
    {
        Some(UpdateChannel::Window(w)) => w.is_open(now),
        _ => true,
    }
}

/// What an action does to the item, as the store will write it.
fn apply(it: &mut ItemView, action: &Action, now: DateTime<Utc>) {
    let next = match action {
        Action::Start { .. } => ItemState::Updating,
        Action::Wait { .. } => ItemState::Waiting,
        Action::Bake { .. } => {
            it.ready_since = Some(now);
            ItemState::Baking
        }
        Action::Pass { .. } => ItemState::Passed,
        Action::Fail { .. } => ItemState::Failed,
        Action::Skip { .. } => ItemState::Skipped,
        _ => return,
    };
    it.state = next;
    it.since = now;
}

/// The item state an action leads to, for the store.
pub fn item_state_after(action: &Action) -> Option<ItemState> {
    Some(match action {
        Action::Start { .. } => ItemState::Updating,
        Action::Wait { .. } => ItemState::Waiting,
        Action::Bake { .. } => ItemState::Baking,
        Action::Pass { .. } => ItemState::Passed,
        Action::Fail { .. } => ItemState::Failed,
        Action::Skip { .. } => ItemState::Skipped,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// Views and control
// ---------------------------------------------------------------------------------------

/// Bookings per item state.
pub type Counts = BTreeMap<ItemState, u64>;

/// A wave as stored, with where its bookings are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WaveSummary {
    pub index: u32,
    pub stage: Stage,
    /// `pending`, `running` or `done`.
    pub status: String,
    pub sites: Vec<String>,
    #[schema(value_type = BTreeMap<String, u64>)]
    pub bookings: Counts,
}

/// A site's part in a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SiteSummary {
    pub site: String,
    /// The state of its reference booking in the test stage (none: untested site).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<ItemState>,
    #[schema(value_type = BTreeMap<String, u64>)]
    pub bookings: Counts,
}

/// A stored rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rollout {
    pub id: String,
    pub offering: String,
    pub version: String,
    pub state: RolloutState,
    /// Why it halted, or was aborted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub policy: RolloutPolicy,
    pub current_wave: u32,
    pub waves: Vec<WaveSummary>,
    pub sites: Vec<SiteSummary>,
    /// Every item, by state.
    #[schema(value_type = BTreeMap<String, u64>)]
    pub bookings: Counts,
    pub pinned: Vec<Excluded>,
    pub excluded: Vec<Excluded>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// One booking of a stored rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RolloutItem {
    pub booking: String,
    pub site: String,
    pub wave: u32,
    /// The site's reference booking (test stage).
    pub reference: bool,
    pub state: ItemState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
    pub since: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_since: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an operator does to a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Pause,
    /// Goes on after a pause, or after a halt (accepting the failures so far).
    Resume,
    /// Stops for good and rolls back every booking it changed.
    Abort,
    /// Runs a site's failed or skipped bookings again (its test stage first).
    RetrySite(String),
    /// Leaves a site's bookings that have not started out, e.g. during maintenance.
    SkipSite {
        site: String,
        reason: String,
    },
}

impl Control {
    pub fn action(&self) -> &'static str {
        match self {
            Control::Pause => "rollout.pause",
            Control::Resume => "rollout.resume",
            Control::Abort => "rollout.abort",
            Control::RetrySite(_) => "rollout.retry-site",
            Control::SkipSite { .. } => "rollout.skip-site",
        }
    }

    /// Whether the control applies to a rollout in `state`.
    pub fn allowed_in(&self, state: RolloutState) -> bool {
        use RolloutState as S;
        match self {
            Control::Pause => state == S::Running,
            Control::Resume => matches!(state, S::Paused | S::Halted),
            Control::Abort => matches!(state, S::Running | S::Paused | S::Halted),
            Control::RetrySite(_) => {
                matches!(state, S::Running | S::Paused | S::Halted | S::Completed)
            }
            Control::SkipSite { .. } => matches!(state, S::Running | S::Paused | S::Halted),
        }
    }
}

/// A configuration for a site's reference booking: the schema's defaults, examples or
/// simplest valid values for every required property. The caller validates it against
/// the schema; an offering whose schema admits no such value needs its vendor to add
/// defaults.
pub fn reference_config(schema: &serde_json::Value) -> serde_json::Value {
    use serde_json::{json, Value};
    fn value_for(schema: &Value) -> Value {
        if let Some(v) = schema.get("default").or_else(|| schema.get("const")) {
            return v.clone();
        }
        if let Some(v) = schema.get("examples").and_then(|e| e.get(0)) {
            return v.clone();
        }
        if let Some(v) = schema.get("enum").and_then(|e| e.get(0)) {
            return v.clone();
        }
        let kind = match schema.get("type") {
            Some(Value::Array(kinds)) => kinds.first().and_then(Value::as_str).unwrap_or("object"),
            Some(Value::String(k)) => k.as_str(),
            _ => "object",
        };
        match kind {
            "string" => {
                // The first of a few plausible test values that the property admits.
                let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0);
                let padded = format!("test{}", "x".repeat(min.saturating_sub(4) as usize));
                let candidates = [
                    padded.as_str(),
                    "test.verbund.invalid",
                    "test@verbund.invalid",
                    "https://test.verbund.invalid",
                    "ldaps://test.verbund.invalid",
                    "test-1",
                ];
                let fits = |c: &&&str| {
                    crate::catalog::config_validator(schema).is_ok_and(|v| v.is_valid(&json!(c)))
                };
                json!(candidates.iter().find(fits).copied().unwrap_or("test"))
            }
            "integer" | "number" => schema.get("minimum").cloned().unwrap_or(json!(1)),
            "boolean" => json!(false),
            "array" => json!([]),
            "null" => Value::Null,
            _ => {
                let mut out = serde_json::Map::new();
                let props = schema.get("properties").and_then(Value::as_object);
                for name in schema
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    let sub = props
                        .and_then(|p| p.get(name))
                        .cloned()
                        .unwrap_or(json!({}));
                    out.insert(name.to_owned(), value_for(&sub));
                }
                Value::Object(out)
            }
        }
    }
    value_for(schema)
}

// ---------------------------------------------------------------------------------------
// Maintenance windows in German local time
// ---------------------------------------------------------------------------------------

impl MaintenanceWindow {
    /// Whether the window is open at `now`, read in German local time (CET, CEST in
    /// summer).
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let local = german_local(now);
        let day = local.weekday().num_days_from_monday() as u8;
        let minute = (local.hour() * 60 + local.minute()) as u16;
        self.days.contains(&day) && minute >= self.start && minute < self.end
    }
}

/// German local time (Europe/Berlin, from the time zone database): maintenance windows
/// and capacity windows are written in it.
pub fn german_local(now: DateTime<Utc>) -> chrono::NaiveDateTime {
    now.with_timezone(&chrono_tz::Europe::Berlin).naive_local()
}

#[cfg(test)]
mod tests;
