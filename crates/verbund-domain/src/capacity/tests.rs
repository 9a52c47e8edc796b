#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::json;

use super::*;

fn offering() -> OfferingSpec {
    serde_json::from_value(json!({
        "name": "termine", "display_name": "Termine", "vendor": "v", "category": "saas",
        "data_classes": ["personal"],
        "plans": [
            {"name": "s", "display_name": "S", "replicas": 1, "monthly_price_cents": 100,
             "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 10}},
            {"name": "l", "display_name": "L", "replicas": 4, "monthly_price_cents": 400,
             "resources": {"cpu_millis": 2000, "memory_mib": 2048, "storage_gib": 10}}
        ],
        "config_schema": {"type": "object"}
    }))
    .unwrap()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn spec(from: NaiveDate, to: NaiveDate, plan: &str) -> WindowSpec {
    WindowSpec {
        from,
        to,
        plan: plan.into(),
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 10, 12, 0, 0).unwrap()
}

#[test]
fn a_window_runs_from_local_midnight_to_local_midnight_across_the_clock_change() {
    let w = check_windows(
        "/windows",
        &[spec(day(2027, 3, 1), day(2027, 5, 31), "l")],
        &offering(),
        "s",
        &[],
        now(),
    )
    .unwrap();
    // 1 March is winter time (UTC+1), 1 June summer time (UTC+2).
    assert_eq!(
        w[0].starts_at,
        Utc.with_ymd_and_hms(2027, 2, 28, 23, 0, 0).unwrap()
    );
    assert_eq!(
        w[0].ends_at,
        Utc.with_ymd_and_hms(2027, 5, 31, 22, 0, 0).unwrap()
    );
    assert_eq!(w[0].state, WindowState::Scheduled);
    assert_eq!(w[0].span(), "1.3.2027–31.5.2027");
    assert_eq!(w[0].delta().cpu_millis, 1500);
}

#[test]
fn bad_windows_are_refused_naming_the_window() {
    let o = offering();
    let refuse = |specs: &[WindowSpec]| {
        check_windows("/windows", specs, &o, "s", &[], now())
            .unwrap_err()
            .field
    };
    assert_eq!(
        refuse(&[spec(day(2027, 5, 1), day(2027, 4, 1), "l")]),
        "/windows/0"
    );
    // Over before today (German time).
    assert_eq!(
        refuse(&[spec(day(2026, 12, 1), day(2027, 1, 9), "l")]),
        "/windows/0"
    );
    assert_eq!(
        refuse(&[spec(day(2033, 1, 1), day(2033, 2, 1), "l")]),
        "/windows/0"
    );
    assert_eq!(
        refuse(&[spec(day(2027, 3, 1), day(2027, 4, 1), "xl")]),
        "/windows/0/plan"
    );
    assert_eq!(
        refuse(&[spec(day(2027, 3, 1), day(2027, 4, 1), "s")]),
        "/windows/0/plan"
    );
    let overlapping = [
        spec(day(2027, 6, 1), day(2027, 6, 30), "l"),
        spec(day(2027, 3, 1), day(2027, 6, 1), "l"),
    ];
    assert_eq!(refuse(&overlapping), "/windows/0");
    let many: Vec<WindowSpec> = (1..=13)
        .map(|m| spec(day(2028, 1, m), day(2028, 1, m), "l"))
        .collect();
    assert_eq!(refuse(&many), "/windows");
    // A window that began today is still bookable.
    check_windows(
        "/windows",
        &[spec(day(2027, 1, 10), day(2027, 1, 20), "l")],
        &o,
        "s",
        &[],
        now(),
    )
    .unwrap();
}

#[test]
fn a_running_window_is_kept_and_new_ones_may_not_overlap_it() {
    let o = offering();
    let mut running = check_windows(
        "/windows",
        &[spec(day(2027, 1, 1), day(2027, 1, 31), "l")],
        &o,
        "s",
        &[],
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
    )
    .unwrap();
    running[0].state = WindowState::Active;
    let e = check_windows(
        "/windows",
        &[spec(day(2027, 1, 20), day(2027, 2, 5), "l")],
        &o,
        "s",
        &running,
        now(),
    )
    .unwrap_err();
    assert!(e.message.contains("runs now"), "{}", e.message);
    let kept = check_windows(
        "/windows",
        &[spec(day(2027, 3, 1), day(2027, 3, 5), "l")],
        &o,
        "s",
        &running,
        now(),
    )
    .unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0].state, WindowState::Active);
}

fn window(from: NaiveDate, to: NaiveDate, state: WindowState) -> CapacityWindow {
    let mut w = check_windows(
        "/w",
        &[spec(from, to, "l")],
        &offering(),
        "s",
        &[],
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    )
    .unwrap()
    .remove(0);
    w.state = state;
    w
}

#[test]
fn the_timeline_knows_the_fullest_moment_in_any_span() {
    let spring = window(day(2027, 3, 1), day(2027, 5, 31), WindowState::Scheduled);
    let april = window(day(2027, 4, 1), day(2027, 4, 30), WindowState::Scheduled);
    let now_running = window(day(2027, 1, 1), day(2027, 1, 31), WindowState::Active);
    let t = Timeline::of([&spring, &april, &now_running]);
    // April holds both spring windows, 2 × 1500 m, where now holds January's one.
    assert_eq!(t.peak().cpu_millis, 1500);
    let jan = (
        local_midnight(day(2027, 1, 15)),
        local_midnight(day(2027, 1, 20)),
    );
    assert_eq!(t.peak_between(jan.0, jan.1).cpu_millis, 0);
    let feb = (
        local_midnight(day(2027, 2, 1)),
        local_midnight(day(2027, 3, 1)),
    );
    assert_eq!(t.peak_between(feb.0, feb.1).cpu_millis, -1500);
    let march = (
        local_midnight(day(2027, 3, 1)),
        local_midnight(day(2027, 4, 1)),
    );
    assert_eq!(t.peak_between(march.0, march.1).cpu_millis, 0);
    // One step at a time gives the same function as all at once.
    let mut one_by_one = Timeline::default();
    for w in [&now_running, &april, &spring] {
        one_by_one.add_window(w);
    }
    assert_eq!(one_by_one, t);
    let levels = t.levels(jan.0, local_midnight(day(2028, 1, 1)));
    let cpu: Vec<i64> = levels.iter().map(|(_, l)| l.cpu_millis).collect();
    assert_eq!(cpu, [0, -1500, 0, 1500, 0, -1500]);
}

#[test]
fn a_window_fits_beside_the_fullest_moment_inside_it_only() {
    let other = window(day(2027, 3, 1), day(2027, 3, 31), WindowState::Scheduled);
    let t = Timeline::of([&other]);
    // Now 2,000 m are free; in March 1,500 m fewer.
    let left = Load {
        cpu_millis: 2000,
        memory_mib: 10_000,
        storage_gib: 100,
    };
    assert_eq!(free_at_peak(left, &t).cpu_millis, 500);
    let april = [window(
        day(2027, 4, 1),
        day(2027, 4, 30),
        WindowState::Scheduled,
    )];
    let claim = Claim {
        base: Resources::default(),
        windows: &april,
    };
    assert!(window_misfit(&claim, left, &t).is_none());
    let march = [window(
        day(2027, 3, 15),
        day(2027, 4, 15),
        WindowState::Scheduled,
    )];
    let claim = Claim {
        base: Resources::default(),
        windows: &march,
    };
    let (w, room) = window_misfit(&claim, left, &t).unwrap();
    assert_eq!(w.from, day(2027, 3, 15));
    assert_eq!(room.cpu_millis, 500);
}

#[test]
fn the_plan_in_effect_is_the_running_window_s() {
    let w = [window(
        day(2027, 1, 1),
        day(2027, 1, 31),
        WindowState::Active,
    )];
    assert_eq!(plan_in_effect("s", &w), "l");
    let w = [window(
        day(2027, 1, 1),
        day(2027, 1, 31),
        WindowState::Ended,
    )];
    assert_eq!(plan_in_effect("s", &w), "s");
}

#[test]
fn the_outlook_shows_each_month_s_fullest_moment() {
    let spring = window(day(2027, 3, 1), day(2027, 5, 31), WindowState::Scheduled);
    let t = Timeline::of([&spring]);
    let capacity = Resources {
        cpu_millis: 4000,
        memory_mib: 100_000,
        storage_gib: 1000,
    };
    let now_reserved = Resources {
        cpu_millis: 1000,
        memory_mib: 0,
        storage_gib: 0,
    };
    let o = outlook("s1", "p1", capacity, now_reserved, &t, now(), 12);
    let months: Vec<(&str, u32)> = o
        .months
        .iter()
        .map(|m| (m.month.as_str(), m.percent))
        .collect();
    assert_eq!(months.len(), 12);
    assert_eq!(months[0], ("2027-01", 25));
    assert_eq!(months[2], ("2027-03", 63), "2,500 of 4,000 m, rounded up");
    assert_eq!(months[5], ("2027-06", 25));
    assert_eq!(months[11].0, "2027-12");
    assert_eq!(o.peak.cpu_millis, 2500);
    assert_eq!(o.peak_at, Some(spring.starts_at));
    let cpu: Vec<u64> = o.steps.iter().map(|s| s.reserved.cpu_millis).collect();
    assert_eq!(cpu, [1000, 2500, 1000]);
    assert_eq!(percent_used(&capacity, &capacity), 100);
    assert_eq!(
        percent_used(
            &Resources {
                cpu_millis: 3999,
                ..Default::default()
            },
            &capacity
        ),
        100
    );
}

#[test]
fn a_window_ending_when_another_begins_is_not_counted_with_it() {
    // Spring ends at 24:00 on 31 May, June begins at 00:00 on 1 June: one instant.
    let spring = window(day(2027, 3, 1), day(2027, 5, 31), WindowState::Scheduled);
    let june = window(day(2027, 6, 1), day(2027, 6, 30), WindowState::Scheduled);
    assert_eq!(spring.ends_at, june.starts_at);
    let a = Timeline::of([&june, &spring]);
    let b = Timeline::of([&spring, &june]);
    let mut c = Timeline::default();
    c.add_window(&june);
    c.add_window(&spring);
    for t in [&a, &b, &c] {
        assert_eq!(t.peak().cpu_millis, 1500, "{t:?}");
        let around = (
            local_midnight(day(2027, 5, 15)),
            local_midnight(day(2027, 6, 15)),
        );
        assert_eq!(t.peak_between(around.0, around.1).cpu_millis, 1500);
    }
    assert_eq!(a, b);
    assert_eq!(a, c);
}

#[test]
fn an_overbooked_present_makes_no_room_later() {
    // 500 m over capacity now; in July 2,500 m more.
    let july = window(day(2027, 7, 1), day(2027, 7, 31), WindowState::Scheduled);
    let t = Timeline::of([&july]);
    let left = Load {
        cpu_millis: -500,
        memory_mib: 10_000,
        storage_gib: 100,
    };
    let march = (
        local_midnight(day(2027, 3, 1)),
        local_midnight(day(2027, 4, 1)),
    );
    assert_eq!(free_between(left, &t, march.0, march.1).cpu_millis, 0);
    assert_eq!(free_at_peak(left, &t).cpu_millis, 0);
}

#[test]
fn a_cancelled_booking_begins_no_window_and_a_long_one_is_a_plan() {
    let w = [window(
        day(2027, 1, 1),
        day(2027, 1, 31),
        WindowState::Scheduled,
    )];
    let (after, _, change) = advance(&w, now(), true).unwrap();
    assert_eq!(change, WindowChange::Skip);
    assert_eq!(after[0].state, WindowState::Ended);
    let (after, _, change) = advance(&w, now(), false).unwrap();
    assert_eq!(change, WindowChange::Start);
    assert_eq!(after[0].state, WindowState::Active);
    let e = check_windows(
        "/windows",
        &[spec(day(2027, 3, 1), day(2028, 3, 1), "l")],
        &offering(),
        "s",
        &[],
        now(),
    )
    .unwrap_err();
    assert_eq!(e.field, "/windows/0");
}
