//! Capacity over time: a booking's scheduled peaks and what they reserve on its site.
//!
//! Authorities' loads follow the calendar (tax returns in spring, an election's eight
//! weeks), so a booking may carry *capacity windows*: German local dates, first and last
//! day inclusive, with the plan that holds between them. A site's reserved capacity is
//! then a step function of time, not a number: what its bookings hold now, plus, at each
//! window's start, the difference between the window's plan and the booking's own, minus
//! it again at the window's end. [`Timeline`] is that function for one site, kept as the
//! future steps relative to now; placement asks it for the fullest moment in a span, and
//! the capacity outlook draws it. Both read the same steps, so what the portal shows is
//! what placement decided on.
//!
//! A window's start and end are carried out by the lifecycle sweep (see
//! `verbund_placement`): [`WindowState`] records which has happened, so that each is
//! done once however many replicas sweep.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Berlin;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::catalog::OfferingSpec;
use crate::directory::Resources;
use crate::error::{Invalid, Result};

/// The most windows one booking may carry.
pub const MAX_WINDOWS: usize = 12;
/// How far ahead a window may start, in days (five years).
pub const MAX_LEAD_DAYS: i64 = 5 * 366;
/// How long a window may last, in days, first and last day included.
pub const MAX_WINDOW_DAYS: i64 = 366;

/// A capacity window as an organisation enters it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// First day (German local time, from 00:00).
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    /// Last day, inclusive (German local time, until 24:00).
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
    /// The offering's plan that holds during the window.
    pub plan: String,
}

impl std::str::FromStr for WindowSpec {
    type Err = String;

    /// `2027-03-01..2027-05-31=l`: first and last day, and the plan.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("`{s}` is not a capacity window (e.g. `2027-03-01..2027-05-31=l`)");
        let (span, plan) = s.split_once('=').ok_or_else(bad)?;
        let (from, to) = span.split_once("..").ok_or_else(bad)?;
        let day = |d: &str| NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").map_err(|_| bad());
        let plan = plan.trim();
        if plan.is_empty() {
            return Err(bad());
        }
        Ok(WindowSpec {
            from: day(from)?,
            to: day(to)?,
            plan: plan.to_string(),
        })
    }
}

/// Which of a window's two changes verbund has carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WindowState {
    /// Not begun: the booking runs its own plan.
    Scheduled,
    /// Begun: the booking runs the window's plan and its site reserves it.
    Active,
    /// Over: back to the booking's own plan.
    Ended,
}

/// A booking's capacity window, with the instants it begins and ends and what it
/// reserves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CapacityWindow {
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
    pub plan: String,
    /// 00:00 German local time on `from`.
    pub starts_at: DateTime<Utc>,
    /// 24:00 German local time on `to`.
    pub ends_at: DateTime<Utc>,
    pub state: WindowState,
    /// What the window's plan reserves.
    #[schema(inline)]
    pub reserves: Resources,
    /// What the booking's own plan reserves (the level the window returns to).
    #[schema(inline)]
    pub base: Resources,
}

impl CapacityWindow {
    /// What the window adds to its site while it holds (negative for a smaller plan).
    pub fn delta(&self) -> Load {
        Load::of(&self.reserves).minus(Load::of(&self.base))
    }

    /// The window as entered.
    pub fn spec(&self) -> WindowSpec {
        WindowSpec {
            from: self.from,
            to: self.to,
            plan: self.plan.clone(),
        }
    }

    /// "1.3.2027–31.5.2027", as the portal and reasons write it.
    pub fn span(&self) -> String {
        format!("{}–{}", german_date(self.from), german_date(self.to))
    }
}

/// A date as Germans write it: `1.3.2027`.
pub fn german_date(d: NaiveDate) -> String {
    format!("{}.{}.{}", d.day(), d.month(), d.year())
}

/// 00:00 German local time on `date`, as an instant. Midnight exists on every day in
/// Germany (the clocks change at 02:00 and 03:00).
pub fn local_midnight(date: NaiveDate) -> DateTime<Utc> {
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    Berlin
        .from_local_datetime(&naive)
        .earliest()
        .map_or_else(|| naive.and_utc(), |t| t.with_timezone(&Utc))
}

/// Today in Germany.
pub fn local_today(now: DateTime<Utc>) -> NaiveDate {
    crate::rollout::german_local(now).date()
}

/// The plan a booking runs now: its active window's, else its own.
pub fn plan_in_effect<'a>(plan: &'a str, windows: &'a [CapacityWindow]) -> &'a str {
    windows
        .iter()
        .find(|w| w.state == WindowState::Active)
        .map_or(plan, |w| w.plan.as_str())
}

/// What is wrong with the windows entered for a booking, so that the API and the portal
/// can each say it in their reader's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowFault {
    /// More than [`MAX_WINDOWS`].
    TooMany {
        count: usize,
    },
    EndsBeforeStart,
    /// Its last day is before today (German time).
    Over,
    /// It starts more than five years ahead.
    TooFarAhead,
    /// It lasts longer than a year ([`MAX_WINDOW_DAYS`]): that is a plan, not a peak.
    TooLong,
    /// No plan of the offering by that name.
    UnknownPlan {
        plans: Vec<String>,
    },
    /// The booking's own plan: the window would change nothing.
    OwnPlan,
    /// It overlaps another window entered (its span).
    Overlaps {
        other: String,
    },
    /// It overlaps the booking's window that runs now (its span).
    OverlapsRunning {
        running: String,
    },
}

/// A fault of the window at `index` of those entered (`None`: of all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowProblem {
    pub index: Option<usize>,
    pub fault: WindowFault,
}

impl WindowProblem {
    /// The JSON pointer of what is wrong, below `field`.
    pub fn pointer(&self, field: &str) -> String {
        match (self.index, &self.fault) {
            (None, _) => field.to_string(),
            (Some(i), WindowFault::UnknownPlan { .. } | WindowFault::OwnPlan) => {
                format!("{field}/{i}/plan")
            }
            (Some(i), _) => format!("{field}/{i}"),
        }
    }

    /// The API's error: what is wrong, in English, at its pointer.
    pub fn invalid(&self, field: &str, specs: &[WindowSpec], offering: &OfferingSpec) -> Invalid {
        let at = self.pointer(field);
        let spec = self.index.and_then(|i| specs.get(i));
        let span = spec.map(|s| format!("{}–{}", german_date(s.from), german_date(s.to)));
        let span = span.unwrap_or_default();
        match &self.fault {
            WindowFault::TooMany { count } => Invalid::meaning(
                at,
                format!("a booking may carry at most {MAX_WINDOWS} capacity windows, not {count}"),
            ),
            WindowFault::EndsBeforeStart => {
                Invalid::meaning(at, format!("the window {span} ends before it begins"))
            }
            WindowFault::Over => Invalid::meaning(
                at,
                format!("the window {span} is over and cannot be booked"),
            ),
            WindowFault::TooFarAhead => Invalid::meaning(
                at,
                format!("the window {span} starts more than five years ahead"),
            ),
            WindowFault::TooLong => Invalid::meaning(
                at,
                format!(
                    "the window {span} lasts longer than {MAX_WINDOW_DAYS} days; change the plan instead"
                ),
            ),
            WindowFault::UnknownPlan { plans } => Invalid::unknown(
                at,
                format!(
                    "offering `{}` has no plan `{}` (plans: {})",
                    offering.name,
                    spec.map(|s| s.plan.as_str()).unwrap_or_default(),
                    plans.join(", ")
                ),
            ),
            WindowFault::OwnPlan => Invalid::meaning(
                at,
                format!(
                    "`{}` is the booking's own plan; a window changes it",
                    spec.map(|s| s.plan.as_str()).unwrap_or_default()
                ),
            ),
            WindowFault::Overlaps { other } => {
                Invalid::meaning(at, format!("the windows {other} and {span} overlap"))
            }
            WindowFault::OverlapsRunning { running } => Invalid::conflict(
                at,
                format!("the window {span} overlaps the window {running} that runs now"),
            ),
        }
    }
}

/// The first fault of the windows entered for a booking of `offering` with plan
/// `base_plan`, given the windows it has begun already (`kept`), at `now`; `None` when
/// they may be booked. The one decision of the API and the portal.
pub fn window_problem(
    specs: &[WindowSpec],
    offering: &OfferingSpec,
    base_plan: &str,
    kept: &[CapacityWindow],
    now: DateTime<Utc>,
) -> Option<WindowProblem> {
    let at = |index: usize, fault: WindowFault| {
        Some(WindowProblem {
            index: Some(index),
            fault,
        })
    };
    if specs.len() > MAX_WINDOWS {
        return Some(WindowProblem {
            index: None,
            fault: WindowFault::TooMany { count: specs.len() },
        });
    }
    let today = local_today(now);
    for (i, s) in specs.iter().enumerate() {
        if s.to < s.from {
            return at(i, WindowFault::EndsBeforeStart);
        }
        if s.to < today {
            return at(i, WindowFault::Over);
        }
        if (s.from - today).num_days() > MAX_LEAD_DAYS {
            return at(i, WindowFault::TooFarAhead);
        }
        if (s.to - s.from).num_days() >= MAX_WINDOW_DAYS {
            return at(i, WindowFault::TooLong);
        }
        if offering.plan(&s.plan).is_none() {
            let plans = offering.plans.iter().map(|p| p.name.clone()).collect();
            return at(i, WindowFault::UnknownPlan { plans });
        }
        if s.plan == base_plan {
            return at(i, WindowFault::OwnPlan);
        }
        let running = kept.iter().filter(|w| w.state == WindowState::Active);
        if let Some(r) = running.clone().find(|r| s.from <= r.to && r.from <= s.to) {
            return at(i, WindowFault::OverlapsRunning { running: r.span() });
        }
    }
    let mut order: Vec<usize> = (0..specs.len()).collect();
    order.sort_by_key(|&i| specs.get(i).map(|s| s.from));
    for pair in order.windows(2) {
        if let (Some(a), Some(b)) = (pair.first(), pair.get(1)) {
            if let (Some(x), Some(y)) = (specs.get(*a), specs.get(*b)) {
                if y.from <= x.to {
                    let other = format!("{}–{}", german_date(x.from), german_date(x.to));
                    return at(*b, WindowFault::Overlaps { other });
                }
            }
        }
    }
    None
}

/// Checks the windows entered for a booking of `offering` with plan `base_plan`
/// ([`window_problem`]) and turns them into the windows to keep, sorted by start: the
/// booking's begun ones (`kept`: one that runs stays as it is; ended ones are history)
/// and the new ones, scheduled. A window entered while it already runs begins at once
/// (the sweep starts it).
pub fn check_windows(
    field: &str,
    specs: &[WindowSpec],
    offering: &OfferingSpec,
    base_plan: &str,
    kept: &[CapacityWindow],
    now: DateTime<Utc>,
) -> Result<Vec<CapacityWindow>> {
    if let Some(p) = window_problem(specs, offering, base_plan, kept, now) {
        return Err(p.invalid(field, specs, offering));
    }
    let resources = |plan: &str| offering.plan(plan).map(|p| p.resources).unwrap_or_default();
    let base = resources(base_plan);
    let mut windows: Vec<CapacityWindow> = kept
        .iter()
        .filter(|w| w.state != WindowState::Scheduled)
        .cloned()
        .collect();
    windows.extend(specs.iter().map(|s| CapacityWindow {
        from: s.from,
        to: s.to,
        plan: s.plan.clone(),
        starts_at: local_midnight(s.from),
        ends_at: local_midnight(s.to.succ_opt().unwrap_or(s.to)),
        state: WindowState::Scheduled,
        reserves: resources(&s.plan),
        base,
    }));
    windows.sort_by_key(|w| w.from);
    Ok(windows)
}

/// A window's change that is due at `now` and not carried out yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowChange {
    /// It begins: the booking runs the window's plan.
    Start,
    /// It is over (also a window that was never begun because it passed unseen).
    End,
    /// It would begin, but the booking is being cancelled: it never begins.
    Skip,
}

impl WindowChange {
    /// The audit action that records it.
    pub fn action(self) -> &'static str {
        match self {
            WindowChange::Start => "booking.window-start",
            WindowChange::End => "booking.window-end",
            WindowChange::Skip => "booking.window-skip",
        }
    }
}

/// The change of `w` due at `now`, if any.
pub fn next_change(w: &CapacityWindow, now: DateTime<Utc>) -> Option<WindowChange> {
    match w.state {
        WindowState::Scheduled | WindowState::Active if w.ends_at <= now => Some(WindowChange::End),
        WindowState::Scheduled if w.starts_at <= now => Some(WindowChange::Start),
        _ => None,
    }
}

/// Carries out the first change due at `now` among a booking's windows: ends come before
/// starts, so that the plan of a window that is over never meets the next one's. A
/// booking being cancelled (`cancelling`) begins no window: its start is skipped (the
/// window ends unbegun). Returns the windows after it and the change, or `None` when
/// nothing is due.
pub fn advance(
    windows: &[CapacityWindow],
    now: DateTime<Utc>,
    cancelling: bool,
) -> Option<(Vec<CapacityWindow>, usize, WindowChange)> {
    let due = |want: WindowChange| {
        windows
            .iter()
            .position(|w| next_change(w, now) == Some(want))
            .map(|i| (i, want))
    };
    let (i, mut change) = due(WindowChange::End).or_else(|| due(WindowChange::Start))?;
    if cancelling && change == WindowChange::Start {
        change = WindowChange::Skip;
    }
    let mut next = windows.to_vec();
    if let Some(w) = next.get_mut(i) {
        w.state = match change {
            WindowChange::Start => WindowState::Active,
            WindowChange::End | WindowChange::Skip => WindowState::Ended,
        };
    }
    Some((next, i, change))
}

/// Resources with a sign: a change of what a site reserves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    pub cpu_millis: i64,
    pub memory_mib: i64,
    pub storage_gib: i64,
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Load {
    pub fn of(r: &Resources) -> Load {
        Load {
            cpu_millis: signed(r.cpu_millis),
            memory_mib: signed(r.memory_mib),
            storage_gib: signed(r.storage_gib),
        }
    }

    pub fn plus(self, o: Load) -> Load {
        Load {
            cpu_millis: self.cpu_millis.saturating_add(o.cpu_millis),
            memory_mib: self.memory_mib.saturating_add(o.memory_mib),
            storage_gib: self.storage_gib.saturating_add(o.storage_gib),
        }
    }

    pub fn minus(self, o: Load) -> Load {
        Load {
            cpu_millis: self.cpu_millis.saturating_sub(o.cpu_millis),
            memory_mib: self.memory_mib.saturating_sub(o.memory_mib),
            storage_gib: self.storage_gib.saturating_sub(o.storage_gib),
        }
    }

    /// The larger of the two in each dimension.
    pub fn max(self, o: Load) -> Load {
        Load {
            cpu_millis: self.cpu_millis.max(o.cpu_millis),
            memory_mib: self.memory_mib.max(o.memory_mib),
            storage_gib: self.storage_gib.max(o.storage_gib),
        }
    }

    /// As resources, negatives as zero.
    pub fn clamped(self) -> Resources {
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        Resources {
            cpu_millis: u(self.cpu_millis),
            memory_mib: u(self.memory_mib),
            storage_gib: u(self.storage_gib),
        }
    }
}

/// One site's reserved capacity ahead, relative to what it reserves now: the changes
/// its bookings' windows will make, in time order. A step at or before the present
/// (a window whose start the sweep has not carried out yet) counts as happening now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    steps: Vec<(DateTime<Utc>, Load)>,
    /// The highest level ahead in each dimension, at least zero (now).
    peak: Load,
}

impl Timeline {
    /// The changes ahead of these windows (see [`Timeline::add_window`]), sorted once.
    pub fn of<'a>(windows: impl IntoIterator<Item = &'a CapacityWindow>) -> Timeline {
        let mut steps = Vec::new();
        for w in windows {
            let d = w.delta();
            if w.state == WindowState::Scheduled {
                steps.push((w.starts_at, d));
            }
            if w.state != WindowState::Ended {
                steps.push((w.ends_at, Load::default().minus(d)));
            }
        }
        steps.sort_by_key(|(t, _)| *t);
        // One step per instant: a window that ends when another begins is not counted
        // with it, whichever came first.
        let mut merged: Vec<(DateTime<Utc>, Load)> = Vec::with_capacity(steps.len());
        for (at, load) in steps {
            match merged.last_mut() {
                Some((t, l)) if *t == at => *l = l.plus(load),
                _ => merged.push((at, load)),
            }
        }
        let mut t = Timeline {
            steps: merged,
            peak: Load::default(),
        };
        t.peak = t.highest();
        t
    }

    /// The changes a booking's window will still make: its start, unless begun, and its
    /// end, unless over.
    pub fn add_window(&mut self, w: &CapacityWindow) {
        let d = w.delta();
        for (at, load) in [
            (w.starts_at, d, w.state == WindowState::Scheduled),
            (
                w.ends_at,
                Load::default().minus(d),
                w.state != WindowState::Ended,
            ),
        ]
        .into_iter()
        .filter_map(|(at, load, ahead)| ahead.then_some((at, load)))
        {
            // One step per instant (see `of`).
            match self.steps.binary_search_by_key(&at, |(t, _)| *t) {
                Ok(i) => {
                    if let Some((_, l)) = self.steps.get_mut(i) {
                        *l = l.plus(load);
                    }
                }
                Err(i) => self.steps.insert(i, (at, load)),
            }
        }
        self.peak = self.highest();
    }

    fn highest(&self) -> Load {
        let mut level = Load::default();
        let mut peak = Load::default();
        for (_, d) in &self.steps {
            level = level.plus(*d);
            peak = peak.max(level);
        }
        peak
    }

    /// The highest level ahead, relative to now (at least zero, the present).
    pub fn peak(&self) -> Load {
        self.peak
    }

    /// The highest level in `[from, to)`, relative to now: the level reached at `from`
    /// (every step up to it) and every step inside.
    pub fn peak_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Load {
        let mut level = Load::default();
        let mut inside = self.steps.iter().peekable();
        while let Some((_, d)) = inside.next_if(|(t, _)| *t <= from) {
            level = level.plus(*d);
        }
        let mut peak = level;
        for (_, d) in inside.take_while(|(t, _)| *t < to) {
            level = level.plus(*d);
            peak = peak.max(level);
        }
        peak
    }

    /// The level relative to now at `from` and after each change until `to`: the step
    /// function an outlook draws.
    pub fn levels(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, Load)> {
        let mut level = Load::default();
        let mut out = Vec::new();
        let mut steps = self.steps.iter().peekable();
        while let Some((_, d)) = steps.next_if(|(t, _)| *t <= from) {
            level = level.plus(*d);
        }
        out.push((from, level));
        for (t, d) in steps.take_while(|(t, _)| *t < to) {
            level = level.plus(*d);
            match out.last_mut() {
                Some(last) if last.0 == *t => last.1 = level,
                _ => out.push((*t, level)),
            }
        }
        out
    }

    /// Whether nothing will change.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// What a booking asks of a site over time: its own plan outside its windows, and each
/// window's plan inside it.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub base: Resources,
    pub windows: &'a [CapacityWindow],
}

/// The first window of `claim` that does not fit on a site with `left` (its capacity
/// minus what it reserves now, negative when it is overbooked) and the changes ahead
/// `timeline`: a window fits when its plan fits beside the fullest moment within it.
/// `None` when all fit.
pub fn window_misfit<'a>(
    claim: &Claim<'a>,
    left: Load,
    timeline: &Timeline,
) -> Option<(&'a CapacityWindow, Resources)> {
    claim
        .windows
        .iter()
        .filter(|w| w.state != WindowState::Ended)
        .find_map(|w| {
            let room = free_between(left, timeline, w.starts_at, w.ends_at);
            (!w.reserves.fits_in(&room)).then_some((w, room))
        })
}

/// The capacity left at the fullest moment in `[from, to)` of a site with `left` now
/// (signed, clamped only here: an overbooked present never makes room later).
pub fn free_between(
    left: Load,
    timeline: &Timeline,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Resources {
    left.minus(timeline.peak_between(from, to)).clamped()
}

/// The capacity left at the fullest moment ahead of a site with `left` now.
pub fn free_at_peak(left: Load, timeline: &Timeline) -> Resources {
    left.minus(timeline.peak()).clamped()
}

/// What a site reserves over the coming months, as the outlook shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SiteOutlook {
    pub site: String,
    pub provider: String,
    /// The site's `prod` capacity.
    #[schema(inline)]
    pub capacity: Resources,
    /// What its bookings reserve now.
    #[schema(inline)]
    pub reserved_now: Resources,
    /// The most it will reserve in the outlook's span, and when that begins (not shown
    /// to an organisation: the instant is another organisation's window's).
    #[schema(inline)]
    pub peak: Resources,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_at: Option<DateTime<Utc>>,
    /// Every change of what it reserves in the span: from `at` on, `reserved` (empty for
    /// an organisation, for the same reason).
    pub steps: Vec<ReservedStep>,
    /// Each month (German local time) with the most it reserves in it.
    pub months: Vec<MonthOutlook>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReservedStep {
    pub at: DateTime<Utc>,
    #[schema(inline)]
    pub reserved: Resources,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MonthOutlook {
    /// `2027-03`.
    pub month: String,
    /// The most reserved at any moment of the month.
    #[schema(inline)]
    pub peak: Resources,
    /// That peak's share of the capacity, in per cent, in the dimension that is fullest
    /// (CPU, memory or storage); above 100 when the site is overbooked.
    pub percent: u32,
}

/// The share of `capacity` that `reserved` takes in its fullest dimension, in per cent
/// (rounded up: the outlook never understates how full a site is).
pub fn percent_used(reserved: &Resources, capacity: &Resources) -> u32 {
    let share = |r: u64, c: u64| -> u64 {
        if c == 0 {
            if r == 0 {
                0
            } else {
                100
            }
        } else {
            (r.saturating_mul(100)).div_ceil(c)
        }
    };
    let p = share(reserved.cpu_millis, capacity.cpu_millis)
        .max(share(reserved.memory_mib, capacity.memory_mib))
        .max(share(reserved.storage_gib, capacity.storage_gib));
    u32::try_from(p).unwrap_or(u32::MAX)
}

/// The first day of the month `n` months after the one `day` lies in.
fn month_start(day: NaiveDate, n: u32) -> NaiveDate {
    let index = day.year() * 12 + day.month0() as i32 + n as i32;
    NaiveDate::from_ymd_opt(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1).unwrap_or(day)
}

/// A site's outlook from `now` over `months` calendar months (the current one first):
/// what it reserves now plus the changes its bookings' windows will make.
pub fn outlook(
    site: &str,
    provider: &str,
    capacity: Resources,
    reserved_now: Resources,
    timeline: &Timeline,
    now: DateTime<Utc>,
    months: u32,
) -> SiteOutlook {
    let today = local_today(now);
    let until = local_midnight(month_start(today, months));
    let at = |level: Load| Load::of(&reserved_now).plus(level).clamped();
    let levels = timeline.levels(now, until);
    let steps: Vec<ReservedStep> = levels
        .iter()
        .map(|(t, level)| ReservedStep {
            at: *t,
            reserved: at(*level),
        })
        .collect();
    let mut peak = (Load::default(), now);
    for (t, level) in &levels {
        if percent_used(&at(*level), &capacity) > percent_used(&at(peak.0), &capacity) {
            peak = (*level, *t);
        }
    }
    let months = (0..months)
        .map(|m| {
            let first = month_start(today, m);
            let from = local_midnight(first).max(now);
            let to = local_midnight(month_start(today, m + 1));
            let reserved = at(timeline.peak_between(from, to));
            MonthOutlook {
                month: format!("{}-{:02}", first.year(), first.month()),
                percent: percent_used(&reserved, &capacity),
                peak: reserved,
            }
        })
        .collect();
    SiteOutlook {
        site: site.to_string(),
        provider: provider.to_string(),
        capacity,
        reserved_now,
        peak: at(peak.0),
        peak_at: Some(peak.1),
        steps,
        months,
    }
}

impl SiteOutlook {
    /// The outlook by month only: without the instants of the changes (and of the
    /// peak), which are other bookings' windows'.
    pub fn months_only(mut self) -> SiteOutlook {
        self.steps.clear();
        self.peak_at = None;
        self
    }
}

#[cfg(test)]
mod tests;
