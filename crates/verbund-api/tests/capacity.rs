//! Capacity that follows the calendar, through the real router on SQLite and PostgreSQL
//! with a controlled clock: a booking's capacity windows reserved ahead by placement, a
//! window no site can hold refused with its reason, windows changed on a running booking,
//! and the lifecycle sweep starting and ending a window exactly once, also with two
//! replicas sweeping at the same moment, the desired state following the plan in effect.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use common::*;
use serde_json::{json, Value};
use verbund_store::Store;

api_tests!(
    windows_are_reserved_ahead_and_an_overbooked_one_is_refused,
    windows_change_on_a_running_booking_only_where_they_fit,
    bad_windows_are_refused_and_change_nothing,
    a_window_starts_and_ends_exactly_once,
    the_outlook_shows_when_a_site_fills_up_to_whom_may_see_it,
    a_window_ending_when_another_begins_is_not_counted_with_it,
    dropping_a_smaller_window_must_fit_beside_the_others,
    a_window_whose_plan_is_gone_is_skipped_and_the_sweep_goes_on,
    a_plan_another_offering_depends_on_stays,
);

/// 10 January 2027, noon: before every window of these tests.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 10, 12, 0, 0).unwrap()
}

/// One site of 4 cores; an offering with plans `s` (0.5 cores), `l` (2) and `xl` (3.5);
/// two Gemeinden. Returns their ids.
async fn federation(kit: &Kit) -> (String, String) {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    verbund_placement::ensure_default_policies(&kit.store, Utc::now())
        .await
        .expect("default policies");
    let bund = create_org(app, admin, bund()).await;
    let hh = create_org(app, admin, land("Hamburg", "02", &bund)).await;
    let a = create_org(
        app,
        admin,
        gemeinde("Hamburg", "020000000000", "02000000", &hh),
    )
    .await;
    let sh = create_org(app, admin, land("Schleswig-Holstein", "01", &bund)).await;
    let b = create_org(
        app,
        admin,
        gemeinde("Flensburg", "010010000000", "01001000", &sh),
    )
    .await;
    ok(
        post(app, admin, "/api/v1/providers", provider("p1")).await,
        StatusCode::CREATED,
    );
    let mut s = site("s1", "p1");
    s["capacity"] = json!({"cpu_millis": 4000, "memory_mib": 16384, "storage_gib": 1000});
    s["certifications"]
        .as_array_mut()
        .expect("certifications")
        .push(
            json!({"scheme": "iso27001", "level": "it-grundschutz", "valid_until": "2027-12-31"}),
        );
    ok(
        post(app, admin, "/api/v1/sites", s).await,
        StatusCode::CREATED,
    );
    certify(kit).await;
    let mut o = offering("termine", &a);
    o["plans"] = json!([plan("s", 500), plan("l", 2000), plan("xl", 3500)]);
    ok(
        post(app, admin, "/api/v1/offerings", o).await,
        StatusCode::CREATED,
    );
    ok(
        post(
            app,
            admin,
            "/api/v1/offerings/termine/versions",
            version("1.0.0"),
        )
        .await,
        StatusCode::CREATED,
    );
    (a, b)
}

/// A plan of `termine`: `cpu` millicores, the rest alike.
fn plan(name: &str, cpu: u64) -> Value {
    json!({"name": name, "display_name": name.to_uppercase(), "replicas": 1,
           "resources": {"cpu_millis": cpu, "memory_mib": 512, "storage_gib": 10},
           "monthly_price_cents": 100})
}

/// Books `termine` on plan `s` with `windows` at `t0`; returns the booking.
async fn book(kit: &Kit, org: &str, windows: Value) -> Value {
    book_on(kit, org, "s", windows).await
}

/// Books `termine` on `plan` with `windows` at `t0`; returns the booking.
async fn book_on(kit: &Kit, org: &str, plan: &str, windows: Value) -> Value {
    let body =
        json!({"organisation": org, "offering": "termine", "plan": plan, "windows": windows});
    let r = ok(
        post(&kit.app_at(t0()), &kit.admin, "/api/v1/bookings", body).await,
        StatusCode::CREATED,
    );
    r["booking"].clone()
}

/// A booking as the API shows it now.
async fn read(kit: &Kit, id: &str) -> Value {
    ok(
        get(&kit.app, &kit.admin, &format!("/api/v1/bookings/{id}")).await,
        StatusCode::OK,
    )
}

/// The federation admin's capacity outlook as of `t0`.
async fn outlook(kit: &Kit) -> Value {
    ok(
        get(&kit.app_at(t0()), &kit.admin, "/api/v1/fleet/capacity").await,
        StatusCode::OK,
    )
}

fn window(from: &str, to: &str, plan: &str) -> Value {
    json!({"from": from, "to": to, "plan": plan})
}

async fn patch(kit: &Kit, id: &str, body: Value) -> Resp {
    send(
        &kit.app_at(t0()),
        request(
            Method::PATCH,
            &format!("/api/v1/bookings/{id}"),
            &kit.admin,
            Some(&body),
        ),
    )
    .await
}

async fn windows_are_reserved_ahead_and_an_overbooked_one_is_refused(kit: Kit) {
    let (a_org, b_org) = federation(&kit).await;
    // Spring on 3.5 cores: the site is full from March to May.
    let a = book(
        &kit,
        &a_org,
        json!([window("2027-03-01", "2027-05-31", "xl")]),
    )
    .await;
    assert_eq!(a["state"], "placed", "{a}");
    let w = &a["windows"][0];
    assert_eq!(w["state"], "scheduled");
    assert_eq!(
        w["starts_at"], "2027-02-28T23:00:00Z",
        "00:00 German winter time"
    );
    assert_eq!(
        w["ends_at"], "2027-05-31T22:00:00Z",
        "24:00 German summer time"
    );
    assert_eq!(w["reserves"]["cpu_millis"], 3500);
    // April does not fit beside it; the reason names the window.
    let b = book(
        &kit,
        &b_org,
        json!([window("2027-04-01", "2027-04-30", "l")]),
    )
    .await;
    assert_eq!(b["state"], "rejected", "{b}");
    let reason = b["reason"].as_str().unwrap();
    assert!(reason.contains("1.4.2027–30.4.2027"), "{reason}");
    // June does.
    let b = book(
        &kit,
        &b_org,
        json!([window("2027-06-01", "2027-06-30", "l")]),
    )
    .await;
    assert_eq!(b["state"], "placed", "{b}");
    // Now 1 core is reserved, but from March to May all 4 are: a booking held for good
    // does not fit any more, although it would today.
    let c = book(&kit, &b_org, json!([])).await;
    assert_eq!(c["state"], "rejected", "{c}");
    assert!(
        c["reason"]
            .as_str()
            .unwrap()
            .contains("not enough free capacity"),
        "{c}"
    );
    // The placement decision says why, per site.
    let d = ok(
        get(
            &kit.app,
            &kit.admin,
            &format!("/api/v1/bookings/{}/placement", b["id"].as_str().unwrap()),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(d["site"], "s1", "{d}");
}

async fn windows_change_on_a_running_booking_only_where_they_fit(kit: Kit) {
    let (a_org, b_org) = federation(&kit).await;
    let a = book(
        &kit,
        &a_org,
        json!([window("2027-03-01", "2027-05-31", "xl")]),
    )
    .await;
    let b = book(
        &kit,
        &b_org,
        json!([window("2027-06-01", "2027-06-30", "l")]),
    )
    .await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    // July beside `b`'s own plan fits exactly: 3.5 + 0.5 cores.
    let changed = ok(
        patch(
            &kit,
            a_id,
            json!({"windows": [window("2027-03-01", "2027-05-31", "xl"), window("2027-07-01", "2027-07-31", "xl")]}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(changed["windows"].as_array().unwrap().len(), 2, "{changed}");
    // June holds `b`'s window: 3.5 + 2 cores do not fit. Refused, naming the window.
    let r = patch(
        &kit,
        a_id,
        json!({"windows": [window("2027-03-01", "2027-05-31", "xl"), window("2027-06-01", "2027-06-10", "xl")]}),
    )
    .await;
    let detail = assert_problem(&r, StatusCode::CONFLICT, Some("/windows/1"));
    assert!(detail.contains("1.6.2027–10.6.2027"), "{detail}");
    let now = read(&kit, a_id).await;
    assert_eq!(
        now["windows"], changed["windows"],
        "the refused change changed nothing"
    );
    // A window on the booking's new plan is no window: refused.
    let r = patch(&kit, b_id, json!({"plan": "l"})).await;
    assert_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/windows/0/plan"),
    );
    // A larger plan for good must fit at the fullest moment ahead (spring): it does not.
    let r = patch(&kit, b_id, json!({"plan": "l", "windows": []})).await;
    assert_problem(&r, StatusCode::CONFLICT, Some("/plan"));
    // Removing `a`'s windows frees the spring; then it fits.
    ok(
        patch(&kit, a_id, json!({"windows": []})).await,
        StatusCode::OK,
    );
    let b = ok(
        patch(&kit, b_id, json!({"plan": "l", "windows": []})).await,
        StatusCode::OK,
    );
    assert_eq!(b["plan"], "l");
    assert!(b.get("windows").is_none(), "{b}");
}

async fn bad_windows_are_refused_and_change_nothing(kit: Kit) {
    let (a_org, _) = federation(&kit).await;
    let app = kit.app_at(t0());
    let try_book = async |windows: Value| {
        let body =
            json!({"organisation": a_org, "offering": "termine", "plan": "s", "windows": windows});
        post(&app, &kit.admin, "/api/v1/bookings", body).await
    };
    // An unknown plan is not found, as the booking's own `plan` is.
    let r = try_book(json!([window("2027-03-01", "2027-05-31", "xxl")])).await;
    assert_problem(&r, StatusCode::NOT_FOUND, Some("/windows/0/plan"));
    let cases = [
        (
            json!([window("2027-03-01", "2027-05-31", "s")]),
            "/windows/0/plan",
        ),
        (
            json!([window("2027-05-31", "2027-03-01", "l")]),
            "/windows/0",
        ),
        (
            json!([window("2026-12-01", "2027-01-09", "l")]),
            "/windows/0",
        ),
        (
            json!([
                window("2027-03-01", "2027-05-31", "l"),
                window("2027-05-31", "2027-06-30", "l")
            ]),
            "/windows/1",
        ),
    ];
    for (windows, field) in cases {
        let r = try_book(windows.clone()).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some(field));
    }
    // Not a date, an unknown field: refused by the contract.
    for windows in [
        json!([{"from": "1.3.2027", "to": "2027-05-31", "plan": "l"}]),
        json!([{"from": "2027-03-01", "to": "2027-05-31", "plan": "l", "replicas": 9}]),
        json!({"from": "2027-03-01"}),
    ] {
        let r = try_book(windows.clone()).await;
        assert!(r.0.is_client_error(), "{windows} was taken: {}", r.2);
    }
    let list = ok(
        get(&kit.app, &kit.admin, "/api/v1/bookings").await,
        StatusCode::OK,
    );
    assert_eq!(list["items"], json!([]), "nothing was booked");
}

/// The plan a booking's delivered manifests carry (the tenant namespace's label).
async fn delivered_plan(kit: &Kit, id: &str) -> String {
    let files = ok(
        get(
            &kit.app,
            &kit.admin,
            &format!("/api/v1/bookings/{id}/manifests"),
        )
        .await,
        StatusCode::OK,
    );
    files
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["content"].as_str())
        .flat_map(str::lines)
        .find_map(|l| l.trim().strip_prefix("verbund.dev/plan: "))
        .expect("a plan label")
        .trim_matches('"')
        .to_string()
}

async fn audit_count(kit: &Kit, action: &str) -> usize {
    let events = ok(
        get(
            &kit.app,
            &kit.admin,
            &format!("/api/v1/audit?action={action}&limit=100"),
        )
        .await,
        StatusCode::OK,
    );
    events["items"].as_array().unwrap().len()
}

async fn site_used(kit: &Kit) -> u64 {
    let s = ok(
        get(&kit.app, &kit.admin, "/api/v1/fleet/capacity").await,
        StatusCode::OK,
    );
    s["sites"][0]["reserved_now"]["cpu_millis"]
        .as_u64()
        .unwrap()
}

/// What the outlook (as of `t0`, before the windows) shows the site reserving at each
/// change ahead, in millicores.
async fn reserved_steps(kit: &Kit) -> Vec<u64> {
    let o = outlook(kit).await;
    o["sites"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reserved"]["cpu_millis"].as_u64().unwrap())
        .collect()
}

async fn a_window_starts_and_ends_exactly_once(kit: Kit) {
    let (a_org, _) = federation(&kit).await;
    let a = book(
        &kit,
        &a_org,
        json!([window("2027-03-01", "2027-05-31", "l")]),
    )
    .await;
    let id = a["id"].as_str().unwrap();
    let replicas = [
        verbund_placement::Bookings::new(kit.store.clone()),
        verbund_placement::Bookings::new(Store::open(&kit.url).await.unwrap()),
    ];
    let sweep_both = async |at: DateTime<Utc>| {
        let (x, y) = tokio::join!(
            replicas[0].sweep("system/lifecycle", at),
            replicas[1].sweep("system/lifecycle", at)
        );
        x.unwrap() + y.unwrap()
    };
    // Before: its own plan.
    assert_eq!(
        sweep_both(Utc.with_ymd_and_hms(2027, 2, 28, 22, 59, 0).unwrap()).await,
        0
    );
    assert_eq!(delivered_plan(&kit, id).await, "s");
    assert_eq!(site_used(&kit).await, 500);
    // 1 March, 00:00 German time: both replicas sweep; the window starts once.
    let start = Utc.with_ymd_and_hms(2027, 2, 28, 23, 0, 0).unwrap();
    assert_eq!(sweep_both(start).await, 1);
    assert_eq!(sweep_both(start).await, 0, "nothing is due twice");
    assert_eq!(audit_count(&kit, "booking.window-start").await, 1);
    let during = read(&kit, id).await;
    assert_eq!(during["windows"][0]["state"], "active", "{during}");
    assert_eq!(during["plan"], "s", "the booking's own plan stays");
    assert_eq!(delivered_plan(&kit, id).await, "l");
    assert_eq!(site_used(&kit).await, 2000);
    // This process's copy of the windows ahead: only the end is left.
    assert_eq!(reserved_steps(&kit).await, [2000, 500]);
    // 1 June, 00:00 German summer time: it ends once, carried out by the other replica;
    // this process sees it at once (its copy of the windows is read again).
    let end = Utc.with_ymd_and_hms(2027, 5, 31, 22, 0, 0).unwrap();
    assert_eq!(replicas[1].sweep("system/lifecycle", end).await.unwrap(), 1);
    assert_eq!(sweep_both(end).await, 0);
    assert_eq!(reserved_steps(&kit).await, [500]);
    assert_eq!(audit_count(&kit, "booking.window-end").await, 1);
    let after = read(&kit, id).await;
    assert_eq!(after["windows"][0]["state"], "ended", "{after}");
    assert_eq!(delivered_plan(&kit, id).await, "s");
    assert_eq!(site_used(&kit).await, 500);
}

async fn the_outlook_shows_when_a_site_fills_up_to_whom_may_see_it(kit: Kit) {
    let (a_org, b_org) = federation(&kit).await;
    book(
        &kit,
        &a_org,
        json!([window("2027-03-01", "2027-05-31", "xl")]),
    )
    .await;
    book(
        &kit,
        &b_org,
        json!([window("2027-06-01", "2027-06-30", "l")]),
    )
    .await;
    let app = kit.app_at(t0());
    let o = ok(
        get(&app, &kit.admin, "/api/v1/fleet/capacity").await,
        StatusCode::OK,
    );
    let s1 = &o["sites"][0];
    assert_eq!(s1["site"], "s1");
    assert_eq!(s1["capacity"]["cpu_millis"], 4000);
    assert_eq!(s1["reserved_now"]["cpu_millis"], 1000);
    assert_eq!(s1["peak"]["cpu_millis"], 4000, "spring is full: {s1}");
    assert_eq!(s1["peak_at"], "2027-02-28T23:00:00Z");
    let months: Vec<(String, u64)> = s1["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["month"].as_str().unwrap().to_string(),
                m["percent"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(months.len(), 12);
    assert_eq!(months[0], ("2027-01".to_string(), 25));
    assert_eq!(months[2], ("2027-03".to_string(), 100));
    assert_eq!(months[5], ("2027-06".to_string(), 63), "2,500 of 4,000 m");
    assert_eq!(months[6], ("2027-07".to_string(), 25));
    let cpu: Vec<u64> = s1["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reserved"]["cpu_millis"].as_u64().unwrap())
        .collect();
    // Spring ends at the very moment June begins: one step.
    assert_eq!(cpu, [1000, 4000, 2500, 1000]);
    let two = ok(
        get(&app, &kit.admin, "/api/v1/fleet/capacity?months=2").await,
        StatusCode::OK,
    );
    assert_eq!(two["sites"][0]["months"].as_array().unwrap().len(), 2);
    assert_eq!(two["sites"][0]["peak"]["cpu_millis"], 1000, "{two}");
    for bad in ["?months=0", "?months=25", "?months=x"] {
        let r = get(&app, &kit.admin, &format!("/api/v1/fleet/capacity{bad}")).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, None);
    }
    // Another provider's operator sees its own sites only (none here); an organisation's
    // admin, planning a campaign, sees every site.
    ok(
        post(&kit.app, &kit.admin, "/api/v1/providers", provider("p2")).await,
        StatusCode::CREATED,
    );
    let (_, other) = kit
        .user(
            "op2",
            json!([{"role": "provider-operator", "provider": "p2"}]),
        )
        .await;
    let o = ok(
        get(&app, &other, "/api/v1/fleet/capacity").await,
        StatusCode::OK,
    );
    assert_eq!(o["sites"], json!([]), "{o}");
    let (_, own) = kit
        .user(
            "op1",
            json!([{"role": "provider-operator", "provider": "p1"}]),
        )
        .await;
    let o = ok(
        get(&app, &own, "/api/v1/fleet/capacity").await,
        StatusCode::OK,
    );
    assert_eq!(o["sites"][0]["site"], "s1");
    let (_, org_admin) = kit
        .user("hh", json!([{"role": "org-admin", "organisation": a_org}]))
        .await;
    let o = ok(
        get(&app, &org_admin, "/api/v1/fleet/capacity").await,
        StatusCode::OK,
    );
    assert_eq!(o["sites"].as_array().unwrap().len(), 1);
    let r = get(&app, "no-such-token", "/api/v1/fleet/capacity").await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, None);
}

async fn a_window_ending_when_another_begins_is_not_counted_with_it(kit: Kit) {
    let (a_org, b_org) = federation(&kit).await;
    // June first, then spring ending at the very instant June begins.
    let a = book(
        &kit,
        &a_org,
        json!([window("2027-06-01", "2027-06-30", "l")]),
    )
    .await;
    assert_eq!(a["state"], "placed", "{a}");
    let b = book(
        &kit,
        &b_org,
        json!([window("2027-03-01", "2027-05-31", "l")]),
    )
    .await;
    assert_eq!(b["state"], "placed", "{b}");
    // 1,000 m now, at most 2,500 m ever: a plan `s` for good fits.
    let o = outlook(&kit).await;
    assert_eq!(o["sites"][0]["peak"]["cpu_millis"], 2500, "{o}");
    let c = book(&kit, &b_org, json!([])).await;
    assert_eq!(c["state"], "placed", "{c}");
}

async fn dropping_a_smaller_window_must_fit_beside_the_others(kit: Kit) {
    let (a_org, b_org) = federation(&kit).await;
    // `a` runs `l` (2,000 m), only `s` in July; `b` takes July's room for `xl`.
    let a = book_on(
        &kit,
        &a_org,
        "l",
        json!([window("2027-07-01", "2027-07-31", "s")]),
    )
    .await;
    assert_eq!(a["state"], "placed", "{a}");
    let b = book(
        &kit,
        &b_org,
        json!([window("2027-07-01", "2027-07-31", "xl")]),
    )
    .await;
    assert_eq!(b["state"], "placed", "{b}");
    // Without its window, `a`'s 2,000 m would hold in July beside `b`'s 3,500 m.
    let r = patch(&kit, a["id"].as_str().unwrap(), json!({"windows": []})).await;
    assert_problem(&r, StatusCode::CONFLICT, Some("/plan"));
    let o = outlook(&kit).await;
    assert_eq!(
        o["sites"][0]["months"][6]["percent"], 100,
        "July stays full: {o}"
    );
}

async fn a_window_whose_plan_is_gone_is_skipped_and_the_sweep_goes_on(kit: Kit) {
    let (a_org, b_org) = federation(&kit).await;
    // `b` runs `xl`, only `s` in March; `a` runs `s`, `l` in March.
    let b = book_on(
        &kit,
        &b_org,
        "xl",
        json!([window("2027-03-01", "2027-03-31", "s")]),
    )
    .await;
    assert_eq!(b["state"], "placed", "{b}");
    let a = book(
        &kit,
        &a_org,
        json!([window("2027-03-01", "2027-03-31", "l")]),
    )
    .await;
    assert_eq!(a["state"], "placed", "{a}");
    // The vendor may not drop plan `l`: `a`'s window uses it.
    let mut o = offering("termine", &a_org);
    o["plans"] = json!([plan("s", 500), plan("xl", 3500)]);
    let r = put(&kit.app, &kit.admin, "/api/v1/offerings/termine", o.clone()).await;
    let detail = assert_problem(&r, StatusCode::CONFLICT, Some("/plans"));
    assert!(detail.contains("plan `l` is used by 1 booking"), "{detail}");
    // An offering stored without it before that rule: written behind the store's back.
    let raw = sqlx::AnyPool::connect(&kit.url).await.unwrap();
    sqlx::query("UPDATE offerings SET spec = $1 WHERE name = 'termine'")
        .bind(o.to_string())
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    let start = Utc.with_ymd_and_hms(2027, 2, 28, 23, 0, 0).unwrap();
    let bookings = verbund_placement::Bookings::new(kit.store.clone());
    let n = bookings.sweep("system/lifecycle", start).await.unwrap();
    assert_eq!(n, 2);
    let a = read(&kit, a["id"].as_str().unwrap()).await;
    assert_eq!(a["windows"][0]["state"], "ended", "never begun: {a}");
    assert_eq!(a["plan"], "s");
    let b = read(&kit, b["id"].as_str().unwrap()).await;
    assert_eq!(b["windows"][0]["state"], "active", "{b}");
    assert_eq!(audit_count(&kit, "booking.window-skip").await, 1);
}

async fn a_plan_another_offering_depends_on_stays(kit: Kit) {
    let (a_org, _) = federation(&kit).await;
    let mut portal = offering("portal", &a_org);
    portal["dependencies"] = json!([{"offering": "termine", "plan": "l"}]);
    ok(
        post(&kit.app, &kit.admin, "/api/v1/offerings", portal).await,
        StatusCode::CREATED,
    );
    let mut o = offering("termine", &a_org);
    o["plans"] = json!([plan("s", 500), plan("xl", 3500)]);
    let r = put(&kit.app, &kit.admin, "/api/v1/offerings/termine", o).await;
    let detail = assert_problem(&r, StatusCode::CONFLICT, Some("/plans"));
    assert!(detail.contains("named by offering `portal`"), "{detail}");
    // A plan no one names or uses goes.
    let mut o = offering("termine", &a_org);
    o["plans"] = json!([plan("s", 500), plan("l", 2000)]);
    ok(
        put(&kit.app, &kit.admin, "/api/v1/offerings/termine", o).await,
        StatusCode::OK,
    );
}
