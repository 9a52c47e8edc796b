use super::*;
use chrono::{NaiveDate, TimeZone};
use proptest::prelude::*;

fn t(s: i64) -> DateTime<Utc> {
    // A Wednesday, 10:00 UTC (11:00 in Germany, winter).
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap() + Duration::seconds(s)
}

fn candidate(id: &str, site: &str) -> Candidate {
    Candidate {
        booking: id.into(),
        organisation: format!("org-{id}"),
        site: Some(site.into()),
        channel: "stable".into(),
        version: Some("1.0.0".into()),
        state: BookingState::Active,
        early_adopter: false,
        tenants: Vec::new(),
    }
}

fn site(name: &str, has_test: bool) -> SiteCandidate {
    SiteCandidate {
        name: name.into(),
        has_test,
        reference: None,
    }
}

fn plan_of(candidates: &[Candidate], sites: &[SiteCandidate], policy: &RolloutPolicy) -> Plan {
    plan(&PlanInput {
        offering: "o",
        version: "2.0.0",
        policy,
        candidates,
        sites,
    })
    .unwrap()
}

#[test]
fn plan_orders_test_canary_production_and_leaves_out_what_it_must() {
    let mut cs: Vec<Candidate> = (0..10).map(|i| candidate(&format!("a{i}"), "a")).collect();
    cs.extend((0..3).map(|i| candidate(&format!("b{i}"), "b")));
    cs.push(candidate("u0", "untested"));
    let mut pinned = candidate("p0", "a");
    pinned.channel = "pinned:1.0.0".into();
    let mut newer = candidate("n0", "a");
    newer.version = Some("2.0.0".into());
    let mut placed = candidate("q0", "b");
    placed.state = BookingState::Placed;
    let mut early = candidate("e0", "b");
    early.early_adopter = true;
    cs.extend([pinned, newer, placed, early]);
    let policy = RolloutPolicy {
        canary_percent: 10,
        wave_size: 4,
        max_concurrent_sites: 1,
        ..RolloutPolicy::default()
    };
    let p = plan_of(
        &cs,
        &[site("a", true), site("b", true), site("untested", false)],
        &policy,
    );
    let stages: Vec<Stage> = p.waves.iter().map(|w| w.stage).collect();
    assert_eq!(stages[0], Stage::Test);
    assert_eq!(stages[1], Stage::Canary);
    assert!(stages[2..].iter().all(|s| *s == Stage::Production));
    assert_eq!(p.waves[0].sites, vec!["a", "b"]);
    assert!(p.waves[0].items.iter().all(|i| i.booking.is_none()));
    // Early adopter plus 10 % of the remaining 13, rounded up: 2.
    let canary: Vec<_> = p.waves[1]
        .items
        .iter()
        .filter_map(|i| i.booking.clone())
        .collect();
    assert_eq!(canary.len(), 3);
    assert!(canary.contains(&"e0".to_string()));
    assert_eq!(p.pinned.len(), 1);
    assert_eq!(p.pinned[0].reason, "pinned to 1.0.0");
    let reasons: Vec<&str> = p.excluded.iter().map(|e| e.reason.as_str()).collect();
    assert!(reasons.contains(&"already runs 2.0.0"));
    assert!(reasons.contains(&"not running (state `placed`)"));
    assert!(reasons.contains(&"site `untested` has no test environment"));
    assert_eq!(p.untested_sites, vec!["untested"]);
    // Smaller site first; at most one site and four bookings per production wave.
    assert_eq!(p.waves[2].sites, vec!["b"]);
    for w in &p.waves[2..] {
        assert_eq!(w.sites.len(), 1);
        assert!(w.items.len() <= 4);
    }
    assert_eq!(p.bookings(), 14);
}

#[test]
fn untested_sites_may_be_allowed() {
    let cs = [candidate("u0", "untested")];
    let policy = RolloutPolicy {
        untested_sites: UntestedSites::Allow,
        canary_percent: 0,
        ..RolloutPolicy::default()
    };
    let p = plan_of(&cs, &[site("untested", false)], &policy);
    assert_eq!(p.waves.len(), 1);
    assert_eq!(p.waves[0].stage, Stage::Production);
}

#[test]
fn bad_policies_and_versions_are_refused() {
    let bad = RolloutPolicy {
        wave_size: 0,
        ..RolloutPolicy::default()
    };
    assert_eq!(bad.validate().unwrap_err().field, "/policy/wave_size");
    let e = plan(&PlanInput {
        offering: "o",
        version: "two",
        policy: &RolloutPolicy::default(),
        candidates: &[],
        sites: &[],
    })
    .unwrap_err();
    assert_eq!(e.field, "/version");
}

proptest! {
    /// Every chosen booking is in exactly one wave; production waves keep to their
    /// size and site limits; the plan is deterministic.
    #[test]
    fn plans_cover_each_booking_once_within_limits(
        sizes in proptest::collection::vec(0usize..40, 1..8),
        wave_size in 1u32..10,
        concurrent in 1u32..4,
        canary in 0u32..50,
    ) {
        let mut cs = Vec::new();
        let mut sites = Vec::new();
        for (s, n) in sizes.iter().enumerate() {
            sites.push(site(&format!("s{s}"), true));
            for i in 0..*n {
                cs.push(candidate(&format!("s{s}-{i}"), &format!("s{s}")));
            }
        }
        let policy = RolloutPolicy { wave_size, max_concurrent_sites: concurrent, canary_percent: canary, ..RolloutPolicy::default() };
        let p = plan_of(&cs, &sites, &policy);
        let mut seen: Vec<String> = p.waves.iter().filter(|w| w.stage != Stage::Test)
            .flat_map(|w| w.items.iter().filter_map(|i| i.booking.clone())).collect();
        seen.sort();
        let mut all: Vec<String> = cs.iter().map(|c| c.booking.clone()).collect();
        all.sort();
        prop_assert_eq!(seen, all);
        for w in p.waves.iter().filter(|w| w.stage == Stage::Production) {
            prop_assert!(w.sites.len() <= concurrent as usize);
            for s in &w.sites {
                prop_assert!(w.items.iter().filter(|i| &i.site == s).count() <= wave_size as usize);
            }
        }
        prop_assert_eq!(plan_of(&cs, &sites, &policy), p);
    }
}

// --- step -------------------------------------------------------------------------------

struct World {
    rollout: RolloutView,
    items: Vec<ItemView>,
}

impl World {
    /// A rollout over sites `a` and `b`: test wave (references), one canary booking,
    /// then one production wave per site.
    fn new(bake: u32, budget: u32) -> World {
        let mut items = Vec::new();
        let mut add = |booking: &str, site: &str, wave: u32, reference: bool| {
            items.push(ItemView {
                booking: booking.into(),
                site: site.into(),
                wave,
                reference,
                state: ItemState::Pending,
                since: t(0),
                ready_since: None,
                observed: Some(Observed {
                    state: BookingState::Active,
                    version: Some("1.0.0".into()),
                    channel: "stable".into(),
                    smoke_passed: true,
                    problem: None,
                }),
            });
        };
        add("ref-a", "a", 0, true);
        add("ref-b", "b", 0, true);
        add("a1", "a", 1, false);
        add("a2", "a", 2, false);
        add("a3", "a", 2, false);
        add("b1", "b", 3, false);
        World {
            rollout: RolloutView {
                state: RolloutState::Running,
                version: "2.0.0".into(),
                policy: RolloutPolicy {
                    bake_seconds: bake,
                    failure_budget: budget,
                    progress_deadline_seconds: 600,
                    ..RolloutPolicy::default()
                },
                current_wave: 0,
                waves: vec![
                    Stage::Test,
                    Stage::Canary,
                    Stage::Production,
                    Stage::Production,
                ],
                tolerated: 0,
                smoke_test: true,
                loaded_through: u32::MAX,
            },
            items,
        }
    }

    /// Runs one tick and writes its actions back, as the store does.
    fn tick(&mut self, now: DateTime<Utc>) -> Vec<Action> {
        let actions = step(&self.rollout, &self.items, now);
        for a in &actions {
            match a {
                Action::Advance { wave } => {
                    self.rollout.current_wave = *wave;
                    self.rollout.tolerated = 0;
                }
                Action::Halt { .. } => self.rollout.state = RolloutState::Halted,
                Action::Complete => self.rollout.state = RolloutState::Completed,
                other => {
                    let id = match other {
                        Action::Start { booking }
                        | Action::Wait { booking }
                        | Action::Bake { booking }
                        | Action::Pass { booking }
                        | Action::Fail { booking, .. }
                        | Action::Skip { booking, .. } => booking.clone(),
                        _ => unreachable!(),
                    };
                    let it = self.items.iter_mut().find(|i| i.booking == id).unwrap();
                    it.state = item_state_after(other).unwrap();
                    it.since = now;
                    if matches!(other, Action::Bake { .. }) {
                        it.ready_since = Some(now);
                    }
                    let Some(o) = it.observed.as_mut() else {
                        continue;
                    };
                    if matches!(other, Action::Start { .. }) {
                        o.version = Some("2.0.0".into());
                        o.state = BookingState::Updating;
                    }
                    if matches!(other, Action::Fail { .. }) {
                        o.version = Some("1.0.0".into());
                        o.state = BookingState::Updating;
                    }
                }
            }
        }
        actions
    }

    /// The sites report every booking running the new version as ready.
    fn all_ready(&mut self) {
        for it in &mut self.items {
            let o = it.observed.as_mut().unwrap();
            if o.version.as_deref() == Some("2.0.0") && o.state == BookingState::Updating {
                o.state = BookingState::Active;
            }
        }
    }

    fn degrade(&mut self, booking: &str, problem: &str) {
        let o = self.item(booking).observed.as_mut().unwrap();
        o.state = BookingState::Degraded;
        o.problem = Some(problem.into());
    }

    fn item(&mut self, booking: &str) -> &mut ItemView {
        self.items
            .iter_mut()
            .find(|i| i.booking == booking)
            .unwrap()
    }

    fn states(&self) -> Vec<(String, ItemState)> {
        self.items
            .iter()
            .map(|i| (i.booking.clone(), i.state))
            .collect()
    }
}

#[test]
fn a_clean_rollout_runs_every_wave_in_order() {
    let mut w = World::new(0, 0);
    let first = w.tick(t(0));
    assert_eq!(
        first,
        vec![
            Action::Start {
                booking: "ref-a".into()
            },
            Action::Start {
                booking: "ref-b".into()
            },
        ]
    );
    // Nothing ready: nothing moves, the wave holds.
    assert!(w.tick(t(1)).is_empty());
    let mut order = Vec::new();
    for s in 2..10 {
        w.all_ready();
        for a in w.tick(t(s)) {
            if let Action::Start { booking } = a {
                order.push(booking);
            }
        }
    }
    assert_eq!(order, vec!["a1", "a2", "a3", "b1"]);
    assert_eq!(w.rollout.state, RolloutState::Completed);
    assert!(w.items.iter().all(|i| i.state == ItemState::Passed));
}

#[test]
fn bake_time_must_pass_before_a_wave_advances() {
    let mut w = World::new(60, 0);
    w.tick(t(0));
    w.all_ready();
    let a = w.tick(t(1));
    assert!(a.iter().all(|a| matches!(a, Action::Bake { .. })), "{a:?}");
    assert!(w.tick(t(60)).is_empty());
    let a = w.tick(t(61));
    assert!(a.contains(&Action::Advance { wave: 1 }), "{a:?}");
    assert!(a.contains(&Action::Start {
        booking: "a1".into()
    }));
}

#[test]
fn losing_readiness_during_bake_fails() {
    let mut w = World::new(60, 0);
    w.tick(t(0));
    w.all_ready();
    w.tick(t(1));
    w.degrade("ref-b", "1 of 2 replicas ready");
    let a = w.tick(t(2));
    assert!(a.contains(&Action::Fail {
        booking: "ref-b".into(),
        reason: "1 of 2 replicas ready".into()
    }));
}

#[test]
fn a_failing_test_stage_keeps_that_site_out_of_production() {
    let mut w = World::new(0, 0);
    w.tick(t(0));
    w.degrade("ref-b", "the smoke test failed");
    w.item("ref-a").observed.as_mut().unwrap().state = BookingState::Active;
    for s in 1..10 {
        w.tick(t(s));
        w.all_ready();
    }
    assert_eq!(w.rollout.state, RolloutState::Completed);
    let states = w.states();
    assert!(states.contains(&("ref-b".into(), ItemState::Failed)));
    assert!(states.contains(&("b1".into(), ItemState::Skipped)));
    assert!(states.contains(&("a3".into(), ItemState::Passed)));
}

#[test]
fn a_test_failure_halts_when_the_policy_says_so() {
    let mut w = World::new(0, 0);
    w.rollout.policy.test_failure = TestFailure::Halt;
    w.tick(t(0));
    w.degrade("ref-b", "the smoke test failed");
    let a = w.tick(t(1));
    assert!(matches!(a.last(), Some(Action::Halt { .. })), "{a:?}");
    assert_eq!(w.rollout.state, RolloutState::Halted);
    assert!(w.tick(t(2)).is_empty(), "a halted rollout does nothing");
}

#[test]
fn production_failures_over_budget_halt_within_budget_go_on() {
    for (budget, halts) in [(0, true), (1, false)] {
        let mut w = World::new(0, budget);
        w.tick(t(0));
        w.all_ready();
        w.tick(t(1)); // test passes, canary a1 starts
        w.all_ready();
        w.tick(t(2)); // a1 passes, a2 and a3 start
        w.degrade("a2", "the smoke test failed");
        w.all_ready();
        let a = w.tick(t(3));
        assert!(a.contains(&Action::Fail {
            booking: "a2".into(),
            reason: "the smoke test failed".into()
        }));
        assert_eq!(w.rollout.state == RolloutState::Halted, halts, "{a:?}");
        if halts {
            let Some(Action::Halt { reason }) = a.last() else {
                panic!()
            };
            assert_eq!(
                reason,
                "wave 2 (production): 1 of 2 bookings failed, the budget is 0"
            );
            // Resuming accepts the failures so far.
            w.rollout.state = RolloutState::Running;
            w.rollout.tolerated = 1;
        }
        for s in 4..8 {
            w.all_ready();
            w.tick(t(s));
        }
        assert_eq!(w.rollout.state, RolloutState::Completed);
    }
}

#[test]
fn a_booking_not_ready_by_the_deadline_fails() {
    let mut w = World::new(0, 0);
    w.tick(t(0));
    assert!(w.tick(t(600)).is_empty());
    let a = w.tick(t(601));
    assert!(a.iter().any(|a| matches!(a, Action::Fail { reason, .. } if reason == "not ready with 2.0.0 within 600 s")));
}

#[test]
fn the_smoke_test_must_have_passed() {
    let mut w = World::new(0, 0);
    w.tick(t(0));
    w.all_ready();
    for it in &mut w.items {
        it.observed.as_mut().unwrap().smoke_passed = false;
    }
    assert!(w.tick(t(1)).is_empty());
}

#[test]
fn paused_rollouts_do_nothing() {
    let mut w = World::new(0, 0);
    w.rollout.state = RolloutState::Paused;
    assert!(w.tick(t(0)).is_empty());
}

#[test]
fn a_window_booking_waits_without_holding_up_its_wave() {
    let mut w = World::new(0, 0);
    // Saturday and Sunday, 02:00–05:00 German time.
    w.item("a1").observed.as_mut().unwrap().channel = "window:sat,sun 02:00-05:00".into();
    w.tick(t(0));
    w.all_ready();
    let a = w.tick(t(1));
    assert!(
        a.contains(&Action::Wait {
            booking: "a1".into()
        }),
        "{a:?}"
    );
    assert!(a.contains(&Action::Advance { wave: 2 }), "{a:?}");
    for s in 2..6 {
        w.all_ready();
        w.tick(t(s));
    }
    assert_eq!(
        w.rollout.state,
        RolloutState::Running,
        "still waiting for a1"
    );
    // Saturday 28 November, 02:30 in Germany is 01:30 UTC.
    let saturday = Utc.with_ymd_and_hms(2026, 11, 28, 1, 30, 0).unwrap();
    let a = w.tick(saturday);
    assert_eq!(
        a,
        vec![Action::Start {
            booking: "a1".into()
        }]
    );
    w.all_ready();
    w.tick(saturday + Duration::seconds(1));
    assert_eq!(w.rollout.state, RolloutState::Completed);
}

#[test]
fn a_retried_site_runs_its_test_stage_before_production() {
    let mut w = World::new(0, 0);
    w.rollout.current_wave = 3;
    for it in &mut w.items {
        it.state = ItemState::Passed;
    }
    // Retry puts the reference and the production booking of b into the current wave.
    for id in ["ref-b", "b1"] {
        let it = w.item(id);
        it.state = ItemState::Pending;
        it.wave = 3;
    }
    let a = w.tick(t(0));
    assert_eq!(
        a,
        vec![Action::Start {
            booking: "ref-b".into()
        }]
    );
    w.all_ready();
    let a = w.tick(t(1));
    assert_eq!(
        a,
        vec![
            Action::Pass {
                booking: "ref-b".into()
            },
            Action::Start {
                booking: "b1".into()
            }
        ]
    );
}

#[test]
fn cancelled_or_changed_bookings_are_skipped() {
    let mut w = World::new(0, 0);
    w.tick(t(0));
    w.item("ref-a").observed = None;
    w.item("ref-b").observed.as_mut().unwrap().version = Some("1.5.0".into());
    let a = w.tick(t(1));
    assert!(a.contains(&Action::Skip {
        booking: "ref-a".into(),
        reason: "the booking is gone".into()
    }));
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::Skip { booking, .. } if booking == "ref-b")));
}

#[test]
fn german_local_time_follows_summer_time() {
    let local = |y, m, d, h, min| german_local(Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap());
    let at = |y, m, d, h, min| {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    };
    // 2026: summer time from 29 March 01:00 UTC until 25 October 01:00 UTC.
    assert_eq!(local(2026, 3, 29, 0, 59), at(2026, 3, 29, 1, 59));
    assert_eq!(local(2026, 3, 29, 1, 0), at(2026, 3, 29, 3, 0));
    assert_eq!(local(2026, 10, 25, 0, 59), at(2026, 10, 25, 2, 59));
    assert_eq!(local(2026, 10, 25, 1, 0), at(2026, 10, 25, 2, 0));
    assert_eq!(local(2026, 7, 1, 22, 30), at(2026, 7, 2, 0, 30));
}

#[test]
fn reference_configs_fill_required_properties_validly() {
    let schema = serde_json::json!({
        "type": "object",
        "required": ["domain", "admin_email", "realm", "size", "ldap"],
        "properties": {
            "domain": {"type": "string", "pattern": "^([a-z0-9-]+\\.)+[a-z]{2,63}$"},
            "admin_email": {"type": "string", "format": "email", "pattern": "@"},
            "realm": {"type": "string", "default": "verbund"},
            "size": {"type": "integer", "minimum": 3},
            "ldap": {"type": "object", "required": ["url"], "properties": {"url": {"type": "string", "pattern": "^ldaps://"}}},
            "optional": {"type": "string"}
        }
    });
    let config = reference_config(&schema);
    assert_eq!(
        config,
        serde_json::json!({
            "domain": "test.verbund.invalid",
            "admin_email": "test@verbund.invalid",
            "realm": "verbund",
            "size": 3,
            "ldap": {"url": "ldaps://test.verbund.invalid"}
        })
    );
    crate::booking::validate_config(&schema, &config).unwrap();
}

#[test]
fn a_tick_advances_no_further_than_the_waves_it_was_given() {
    let mut w = World::new(0, 0);
    w.rollout.loaded_through = 1;
    w.tick(t(0));
    w.all_ready();
    // The canary wave has nothing left to do (its site was skipped): wave 1 is through
    // at once, but wave 2 was not read, so the tick stops at the advance into it.
    w.item("a1").state = ItemState::Skipped;
    let a = w.tick(t(1));
    assert_eq!(a.last(), Some(&Action::Advance { wave: 2 }), "{a:?}");
    assert!(
        !a.iter().any(|a| matches!(a, Action::Start { .. })),
        "{a:?}"
    );
    w.rollout.loaded_through = 3;
    let a = w.tick(t(2));
    assert_eq!(
        a,
        vec![
            Action::Start {
                booking: "a2".into()
            },
            Action::Start {
                booking: "a3".into()
            }
        ]
    );
}
