//! Staged rollouts through the real router, on SQLite and PostgreSQL, with the engine's
//! ticks driven by hand at chosen times and the sites' reports posted as agents would:
//! the plan before the start, gates with bake time, a failing test stage keeping its
//! site out of production, a production failure halting and rolling back, the controls
//! and who may use them, early adopters in the canary, and bad input changing nothing.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use common::*;
use serde_json::{json, Value};
use sqlx::Row;
use verbund_domain::booking::BookingState;

api_tests!(
    a_rollout_passes_its_gates_halts_on_failure_and_resumes,
    a_failing_test_stage_keeps_its_site_out_of_production,
    controls_are_audited_and_limited_to_who_may,
    early_adopters_come_first_and_bad_input_changes_nothing,
);

/// Two sites of two providers; bookings `a` and `b` on `s1`, `c` on `s2`, all active on
/// 1.0.0 of `portal` (which has a smoke test); version 2.0.0 published without a
/// rollout.
struct World {
    a: String,
    b: String,
    c: String,
    orgs: [String; 3],
    tokens: [(String, String); 2],
    vendor: String,
    /// Report sequence per site.
    seq: std::sync::atomic::AtomicU64,
}

async fn federation(kit: &Kit) -> World {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    verbund_placement::ensure_default_policies(&kit.store, Utc::now())
        .await
        .expect("default policies");
    let bund = create_org(app, admin, bund()).await;
    let hh = create_org(app, admin, land("Hamburg", "02", &bund)).await;
    let sh = create_org(app, admin, land("Schleswig-Holstein", "01", &bund)).await;
    let a_org = create_org(
        app,
        admin,
        gemeinde("Hamburg", "020000000000", "02000000", &hh),
    )
    .await;
    let b_org = create_org(
        app,
        admin,
        gemeinde("Flensburg", "010010000000", "01001000", &sh),
    )
    .await;
    let c_org = create_org(
        app,
        admin,
        gemeinde("Kiel", "010020000000", "01002000", &sh),
    )
    .await;
    for p in ["p1", "p2"] {
        ok(
            post(app, admin, "/api/v1/providers", provider(p)).await,
            StatusCode::CREATED,
        );
    }
    let mut s1 = site("s1", "p1");
    s1["certifications"]
        .as_array_mut()
        .expect("certifications")
        .push(
            json!({"scheme": "iso27001", "level": "it-grundschutz", "valid_until": "2027-12-31"}),
        );
    ok(
        post(app, admin, "/api/v1/sites", s1.clone()).await,
        StatusCode::CREATED,
    );
    certify(kit).await;
    let mut spec = offering("portal", &a_org);
    spec["smoke_test"] =
        json!({"image": "registry.example.org/portal-smoke:1", "command": ["/smoke"]});
    spec["config_schema"] = json!({"type": "object", "required": ["domain"],
        "properties": {"domain": {"type": "string", "pattern": "^[a-z.]+$"}}});
    ok(
        post(app, admin, "/api/v1/offerings", spec).await,
        StatusCode::CREATED,
    );
    ok(
        post(
            app,
            admin,
            "/api/v1/offerings/portal/versions",
            version("1.0.0"),
        )
        .await,
        StatusCode::CREATED,
    );
    let book = async |org: &str| -> (String, String) {
        let body = json!({"organisation": org, "offering": "portal", "plan": "s",
                          "config": {"domain": "portal.example.de"}});
        let b = ok(
            post(app, admin, "/api/v1/bookings", body).await,
            StatusCode::CREATED,
        );
        (
            b["booking"]["id"].as_str().expect("id").to_string(),
            b["booking"]["site"].as_str().expect("site").to_string(),
        )
    };
    let (a, sa) = book(&a_org).await;
    let (b, sb) = book(&b_org).await;
    // s1 is full from now on, so the third booking lands on s2.
    s1["capacity"] = json!({"cpu_millis": 1000, "memory_mib": 1024, "storage_gib": 20});
    ok(
        put(app, admin, "/api/v1/sites/s1", s1).await,
        StatusCode::OK,
    );
    let mut s2 = site("s2", "p2");
    s2["certifications"] = json!([{"scheme": "bsi-c5", "level": "type2", "valid_until": "2027-12-31"},
        {"scheme": "iso27001", "level": "it-grundschutz", "valid_until": "2027-12-31"}]);
    ok(
        post(app, admin, "/api/v1/sites", s2).await,
        StatusCode::CREATED,
    );
    certify(kit).await;
    let (c, sc) = book(&c_org).await;
    assert_eq!((sa.as_str(), sb.as_str(), sc.as_str()), ("s1", "s1", "s2"));
    let w = World {
        a,
        b,
        c,
        orgs: [a_org.clone(), b_org, c_org],
        tokens: [
            ("s1".into(), site_token(kit, "s1").await),
            ("s2".into(), site_token(kit, "s2").await),
        ],
        vendor: a_org,
        seq: std::sync::atomic::AtomicU64::new(0),
    };
    provision(kit).await;
    for id in [&w.a, &w.b, &w.c] {
        w.report(kit, id, "1.0.0", "passed").await;
        assert_eq!(state(kit, id).await["state"], "active");
    }
    ok(
        post(
            app,
            admin,
            "/api/v1/offerings/portal/versions?rollout=false",
            version("2.0.0"),
        )
        .await,
        StatusCode::CREATED,
    );
    w
}

impl World {
    /// The booking's site reports it running `version` with the smoke test `smoke`.
    async fn report(&self, kit: &Kit, booking: &str, version: &str, smoke: &str) {
        let site = state(kit, booking).await["site"]
            .as_str()
            .expect("site")
            .to_string();
        let token = &self.tokens.iter().find(|t| t.0 == site).expect("token").1;
        let sequence = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let body = json!({
            "sequence": sequence,
            "agent": {"name": "verbund-agent/test", "interval_seconds": 10},
            "site": {"kubernetes_version": "v1.33.2", "health": "healthy",
                     "free": {"cpu_millis": 1000, "memory_mib": 2048, "storage_gib": 100}},
            "bookings": [{"booking": booking, "applied_version": version, "desired_replicas": 1,
                          "ready_replicas": 1, "conditions": [], "smoke_test": smoke}],
        });
        ok(
            post(
                &kit.app,
                token,
                &format!("/api/v1/sites/{site}/reports"),
                body,
            )
            .await,
            StatusCode::OK,
        );
    }
}

/// What the publisher does after committing: placed bookings move to provisioning.
async fn provision(kit: &Kit) {
    let placed: Vec<String> = kit
        .store
        .list_bookings(
            &verbund_store::BookingFilter {
                state: Some(BookingState::Placed),
                ..Default::default()
            },
            &verbund_domain::page::PageRequest::default(),
        )
        .await
        .expect("placed")
        .items
        .into_iter()
        .map(|b| b.id)
        .collect();
    kit.store
        .advance_bookings(
            "test/publisher",
            &placed,
            BookingState::Placed,
            BookingState::Provisioning,
            "booking.provision",
            Utc::now(),
        )
        .await
        .expect("provision");
}

async fn state(kit: &Kit, id: &str) -> Value {
    ok(
        get(&kit.app, &kit.admin, &format!("/api/v1/bookings/{id}")).await,
        StatusCode::OK,
    )
}

/// A rollout as its page shows it, after checking that its counts (kept by the store's
/// triggers beside the items) are those of its items, in total and per wave.
async fn rollout(kit: &Kit, id: &str) -> Value {
    let r = ok(
        get(&kit.app, &kit.admin, &format!("/api/v1/rollouts/{id}")).await,
        StatusCode::OK,
    );
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_wave: BTreeMap<u64, BTreeMap<String, u64>> = BTreeMap::new();
    for (_, wave, state, _) in items(kit, id).await {
        *total.entry(state.clone()).or_default() += 1;
        *per_wave.entry(wave).or_default().entry(state).or_default() += 1;
    }
    assert_eq!(r["bookings"], json!(total), "the rollout's counts: {r}");
    for w in r["waves"].as_array().expect("waves") {
        let index = w["index"].as_u64().expect("index");
        let counted = per_wave.remove(&index).unwrap_or_default();
        assert_eq!(w["bookings"], json!(counted), "wave {index}'s counts: {r}");
    }
    r
}

async fn tick(kit: &Kit, id: &str, at: DateTime<Utc>) -> verbund_store::Ticked {
    kit.store.tick_rollout(id, at).await.expect("tick")
}

/// Items of a rollout: booking → (wave, state).
async fn items(kit: &Kit, id: &str) -> Vec<(String, u64, String, bool)> {
    all(
        &kit.app,
        &kit.admin,
        &format!("/api/v1/rollouts/{id}/items"),
    )
    .await
    .iter()
    .map(|i| {
        (
            i["booking"].as_str().expect("booking").to_string(),
            i["wave"].as_u64().expect("wave"),
            i["state"].as_str().expect("state").to_string(),
            i["reference"].as_bool().expect("reference"),
        )
    })
    .collect()
}

async fn references(kit: &Kit, id: &str) -> Vec<(String, String)> {
    all(
        &kit.app,
        &kit.admin,
        &format!("/api/v1/rollouts/{id}/items?wave=0"),
    )
    .await
    .iter()
    .map(|i| {
        (
            i["site"].as_str().expect("site").to_string(),
            i["booking"].as_str().expect("booking").to_string(),
        )
    })
    .collect()
}

fn policy() -> Value {
    json!({"canary_percent": 30, "wave_size": 1, "max_concurrent_sites": 1,
           "bake_seconds": 60, "progress_deadline_seconds": 600})
}

async fn start(kit: &Kit, policy: Value) -> String {
    let r = ok(
        post(
            &kit.app,
            &kit.admin,
            "/api/v1/rollouts",
            json!({"offering": "portal", "version": "2.0.0", "policy": policy}),
        )
        .await,
        StatusCode::CREATED,
    );
    if kit.backend == Backend::Postgres {
        planner_knows_the_items(kit).await;
    }
    r["id"].as_str().expect("id").to_string()
}

/// PostgreSQL's planner statistics count a new rollout's items as soon as it is created:
/// without them it takes the items of a rollout it has not seen for a few rows and
/// sorts them all for every page (`Store::refresh_statistics`).
async fn planner_knows_the_items(kit: &Kit) {
    let raw = sqlx::AnyPool::connect(&kit.url).await.unwrap();
    let row = sqlx::query(
        "SELECT CAST(c.reltuples AS BIGINT), (SELECT COUNT(*) FROM rollout_items) \
         FROM pg_class c WHERE c.relname = 'rollout_items'",
    )
    .fetch_one(&raw)
    .await
    .unwrap();
    let (planned, stored): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(planned, stored, "the planner's row count of rollout_items");
    raw.close().await;
}

/// (actor, action) of every audit event on `object`, oldest first.
async fn actions_on(kit: &Kit, object: &str) -> Vec<(String, String)> {
    let mut trail = audit_actions(kit, object).await;
    trail.reverse();
    trail
}

async fn a_rollout_passes_its_gates_halts_on_failure_and_resumes(kit: Kit) {
    let w = federation(&kit).await;
    let app = &kit.app;
    let t0 = Utc::now();
    // The plan, before anything starts: test stage on both sites, one canary booking,
    // then one booking per production wave.
    let plan = ok(
        post(
            app,
            &kit.admin,
            "/api/v1/rollouts/plan",
            json!({"offering": "portal", "version": "2.0.0", "policy": policy()}),
        )
        .await,
        StatusCode::OK,
    );
    let stages: Vec<&str> = plan["waves"]
        .as_array()
        .expect("waves")
        .iter()
        .map(|w| w["stage"].as_str().expect("stage"))
        .collect();
    assert_eq!(
        stages,
        ["test", "canary", "production", "production"],
        "{plan}"
    );
    assert_eq!(plan["waves"][0]["sites"], json!(["s1", "s2"]));
    assert_eq!(
        kit.store.running_rollouts().await.expect("running"),
        Vec::<String>::new()
    );

    let id = start(&kit, policy()).await;
    // A second rollout of the same offering waits for this one.
    let again = post(
        app,
        &kit.admin,
        "/api/v1/rollouts",
        json!({"offering": "portal", "version": "2.0.0"}),
    )
    .await;
    assert_problem(&again, StatusCode::CONFLICT, None);

    // Stage 1: each site's reference booking, created in its test environment.
    let refs = references(&kit, &id).await;
    assert_eq!(refs.len(), 2);
    for (site, r) in &refs {
        let b = state(&kit, r).await;
        assert_eq!(
            (
                b["environment"].as_str(),
                b["site"].as_str(),
                b["version"].as_str()
            ),
            (Some("test"), Some(site.as_str()), Some("2.0.0"))
        );
        assert_eq!(b["organisation"], format!("testmandant-{site}"));
    }
    let t = tick(&kit, &id, t0).await;
    assert_eq!(t.started, 2);
    // Production untouched while the test stage runs.
    assert_eq!(state(&kit, &w.a).await["version"], "1.0.0");
    provision(&kit).await;
    for (_, r) in &refs {
        // Running but the smoke test still pending: no gate passes.
        w.report(&kit, r, "2.0.0", "pending").await;
    }
    assert_eq!(tick(&kit, &id, t0 + Duration::seconds(1)).await.actions, 0);
    for (_, r) in &refs {
        w.report(&kit, r, "2.0.0", "passed").await;
    }
    // Ready: the bake time starts; it must run out before the wave passes.
    tick(&kit, &id, t0 + Duration::seconds(2)).await;
    assert_eq!(tick(&kit, &id, t0 + Duration::seconds(61)).await.actions, 0);
    let t = tick(&kit, &id, t0 + Duration::seconds(62)).await;
    assert_eq!((t.passed, t.advanced, t.started), (2, Some(1), 1), "{t:?}");
    let r = rollout(&kit, &id).await;
    assert_eq!(r["current_wave"], 1);
    assert_eq!(r["waves"][0]["status"], "done");
    assert_eq!(r["sites"][0]["test"], "passed");

    // Stage 2: the canary booking gets 2.0.0 through the desired state.
    let canary: Vec<String> = items(&kit, &id)
        .await
        .into_iter()
        .filter(|i| i.1 == 1)
        .map(|i| i.0)
        .collect();
    assert_eq!(canary.len(), 1);
    let b = state(&kit, &canary[0]).await;
    assert_eq!(
        (b["state"].as_str(), b["version"].as_str()),
        (Some("updating"), Some("2.0.0"))
    );
    assert!(actions_on(&kit, &format!("booking/{}", canary[0]))
        .await
        .contains(&("system/rollouts".into(), "booking.rollout".into())));
    w.report(&kit, &canary[0], "2.0.0", "passed").await;
    tick(&kit, &id, t0 + Duration::seconds(63)).await;
    let t = tick(&kit, &id, t0 + Duration::seconds(123)).await;
    assert_eq!((t.passed, t.advanced, t.started), (1, Some(2), 1), "{t:?}");

    // Production wave 2: its booking fails the smoke test → rolled back, halted.
    let wave2: Vec<String> = items(&kit, &id)
        .await
        .into_iter()
        .filter(|i| i.1 == 2)
        .map(|i| i.0)
        .collect();
    let failing = wave2[0].clone();
    w.report(&kit, &failing, "2.0.0", "failed").await;
    assert_eq!(state(&kit, &failing).await["state"], "degraded");
    let t = tick(&kit, &id, t0 + Duration::seconds(124)).await;
    assert_eq!(
        (t.failed, t.finished),
        (1, Some(verbund_domain::rollout::RolloutState::Halted))
    );
    let r = rollout(&kit, &id).await;
    assert_eq!(r["state"], "halted");
    assert_eq!(
        r["reason"],
        "wave 2 (production): 1 of 1 bookings failed, the budget is 0"
    );
    let b = state(&kit, &failing).await;
    assert_eq!(
        (b["state"].as_str(), b["version"].as_str()),
        (Some("updating"), Some("1.0.0"))
    );
    assert!(actions_on(&kit, &format!("booking/{failing}"))
        .await
        .contains(&("system/rollouts".into(), "booking.rollback".into())));
    // Halted: nothing moves until someone decides.
    assert_eq!(
        tick(&kit, &id, t0 + Duration::seconds(125)).await.actions,
        0
    );
    w.report(&kit, &failing, "1.0.0", "passed").await;
    assert_eq!(state(&kit, &failing).await["state"], "active");

    // Resume accepts the failure and goes on with the last wave.
    let r = ok(
        post(
            app,
            &kit.admin,
            &format!("/api/v1/rollouts/{id}/resume"),
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(r["state"], "running");
    let t = tick(&kit, &id, t0 + Duration::seconds(126)).await;
    assert_eq!((t.advanced, t.started), (Some(3), 1), "{t:?}");
    let last: Vec<String> = items(&kit, &id)
        .await
        .into_iter()
        .filter(|i| i.1 == 3)
        .map(|i| i.0)
        .collect();
    w.report(&kit, &last[0], "2.0.0", "passed").await;
    tick(&kit, &id, t0 + Duration::seconds(127)).await;
    let t = tick(&kit, &id, t0 + Duration::seconds(190)).await;
    assert_eq!(
        t.finished,
        Some(verbund_domain::rollout::RolloutState::Completed)
    );
    let r = rollout(&kit, &id).await;
    assert_eq!(r["state"], "completed");
    assert_eq!(r["bookings"], json!({"passed": 4, "failed": 1}));
    assert!(r["finished_at"].is_string());
    // Every booking ran through the rollout once; the failed one stays on 1.0.0.
    for b in [&w.a, &w.b, &w.c] {
        let expected = if *b == failing { "1.0.0" } else { "2.0.0" };
        assert_eq!(state(&kit, b).await["version"], expected);
        let rollouts = actions_on(&kit, &format!("booking/{b}"))
            .await
            .iter()
            .filter(|a| a.1 == "booking.rollout")
            .count();
        assert_eq!(rollouts, 1);
    }
    let trail: Vec<String> = actions_on(&kit, &format!("rollout/{id}"))
        .await
        .into_iter()
        .map(|a| format!("{} {}", a.0, a.1))
        .collect();
    assert_eq!(
        trail,
        [
            "user/admin rollout.start",
            "system/rollouts rollout.wave",
            "system/rollouts rollout.wave",
            "system/rollouts rollout.halt",
            "user/admin rollout.resume",
            "system/rollouts rollout.wave",
            "system/rollouts rollout.complete",
        ]
    );
}

async fn a_failing_test_stage_keeps_its_site_out_of_production(kit: Kit) {
    let w = federation(&kit).await;
    let t0 = Utc::now();
    let id = start(&kit, json!({"canary_percent": 0, "bake_seconds": 0})).await;
    tick(&kit, &id, t0).await;
    provision(&kit).await;
    let refs = references(&kit, &id).await;
    for (site, r) in &refs {
        let smoke = if site == "s2" { "failed" } else { "passed" };
        w.report(&kit, r, "2.0.0", smoke).await;
    }
    // s1 passes and goes on; s2 failed and its production booking is skipped.
    for s in 1..5 {
        tick(&kit, &id, t0 + Duration::seconds(s)).await;
        for b in [&w.a, &w.b] {
            if state(&kit, b).await["version"] == "2.0.0" {
                w.report(&kit, b, "2.0.0", "passed").await;
            }
        }
    }
    let r = rollout(&kit, &id).await;
    assert_eq!(r["state"], "completed", "{r}");
    let s2 = r["sites"]
        .as_array()
        .expect("sites")
        .iter()
        .find(|s| s["site"] == "s2")
        .expect("s2")
        .clone();
    assert_eq!(s2["test"], "failed");
    assert_eq!(s2["bookings"], json!({"skipped": 1}));
    assert_eq!(state(&kit, &w.c).await["version"], "1.0.0");
    assert_eq!(state(&kit, &w.a).await["version"], "2.0.0");
    let skipped = ok(
        get(
            &kit.app,
            &kit.admin,
            &format!("/api/v1/rollouts/{id}/items?site=s2&state=skipped"),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(
        skipped["items"][0]["reason"],
        "site `s2` failed its test stage"
    );

    // Fixed at s2: retry runs its test stage again, then its production booking.
    let r = ok(
        post(
            &kit.app,
            &kit.admin,
            &format!("/api/v1/rollouts/{id}/sites/s2/retry"),
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(r["state"], "running");
    let reference = refs.iter().find(|r| r.0 == "s2").expect("s2").1.clone();
    let t = tick(&kit, &id, t0 + Duration::seconds(10)).await;
    assert_eq!(t.started, 1, "only the reference starts: {t:?}");
    assert_eq!(state(&kit, &w.c).await["version"], "1.0.0");
    w.report(&kit, &reference, "2.0.0", "passed").await;
    let t = tick(&kit, &id, t0 + Duration::seconds(11)).await;
    assert_eq!((t.passed, t.started), (1, 1), "{t:?}");
    w.report(&kit, &w.c, "2.0.0", "passed").await;
    tick(&kit, &id, t0 + Duration::seconds(12)).await;
    assert_eq!(rollout(&kit, &id).await["state"], "completed");
    assert_eq!(state(&kit, &w.c).await["version"], "2.0.0");
    // The reference bookings stay for the next rollout, in the test environment only.
    let fleet = ok(
        get(&kit.app, &kit.admin, "/api/v1/fleet").await,
        StatusCode::OK,
    );
    assert!(fleet["organisations"]
        .as_array()
        .expect("orgs")
        .iter()
        .any(|o| o["organisation"] == "testmandant-s2"));
    let usage = kit.store.site_usage().await.expect("usage");
    let s2 = usage.iter().find(|u| u.site.spec.name == "s2").expect("s2");
    assert_eq!(
        s2.used.cpu_millis, 500,
        "reference bookings hold no production capacity"
    );
}

async fn controls_are_audited_and_limited_to_who_may(kit: Kit) {
    let w = federation(&kit).await;
    let app = &kit.app;
    let t0 = Utc::now();
    let id = start(&kit, json!({"canary_percent": 0, "bake_seconds": 0})).await;
    let (_, vendor) = kit
        .user(
            "vendor",
            json!([{"role": "vendor", "organisation": w.vendor}]),
        )
        .await;
    let (_, op1) = kit
        .user(
            "op1",
            json!([{"role": "provider-operator", "provider": "p1"}]),
        )
        .await;
    let (_, op2) = kit
        .user(
            "op2",
            json!([{"role": "provider-operator", "provider": "p2"}]),
        )
        .await;
    let (_, auditor) = kit.user("auditor", json!([{"role": "auditor"}])).await;
    let (_, org_admin) = kit
        .user(
            "org",
            json!([{"role": "org-admin", "organisation": w.orgs[1]}]),
        )
        .await;
    let path = |rest: &str| format!("/api/v1/rollouts/{id}{rest}");

    // Who sees what.
    assert_eq!(
        ok(get(app, &auditor, &path("")).await, StatusCode::OK)["id"],
        id
    );
    assert_eq!(
        ok(get(app, &vendor, &path("")).await, StatusCode::OK)["id"],
        id
    );
    let seen = ok(get(app, &op2, &path("")).await, StatusCode::OK);
    let sites: Vec<&str> = seen["sites"]
        .as_array()
        .expect("sites")
        .iter()
        .map(|s| s["site"].as_str().expect("site"))
        .collect();
    assert_eq!(sites, ["s2"], "an operator sees only its own sites' part");
    assert_problem(
        &get(app, &op2, &path("/items")).await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert_eq!(
        ok(get(app, &op2, &path("/sites/s2")).await, StatusCode::OK)["items"]
            .as_array()
            .expect("items")
            .len(),
        2
    );
    assert_problem(
        &get(app, &op1, &path("/sites/s2")).await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert_problem(
        &get(app, &org_admin, "/api/v1/rollouts").await,
        StatusCode::FORBIDDEN,
        None,
    );
    assert_problem(
        &get(app, "", "/api/v1/rollouts").await,
        StatusCode::UNAUTHORIZED,
        None,
    );
    assert_eq!(
        ok(get(app, &vendor, "/api/v1/rollouts").await, StatusCode::OK)["items"]
            .as_array()
            .expect("items")
            .len(),
        1
    );

    // Who may control: not the auditor, not another provider's operator.
    let before = audit_count(&kit).await;
    for (token, p) in [
        (&auditor, path("/pause")),
        (&org_admin, path("/pause")),
        (&op1, path("/sites/s2/skip")),
        (&auditor, path("/sites/s2/skip")),
    ] {
        let r = post(app, token, &p, json!({"reason": "x"})).await;
        assert!(
            matches!(r.0, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
            "{p}: {}",
            r.2
        );
    }
    assert_eq!(audit_count(&kit).await, before, "refusals change nothing");

    // The vendor pauses: nothing starts. Resume: the test stage starts.
    let r = ok(
        post(app, &vendor, &path("/pause"), json!({})).await,
        StatusCode::OK,
    );
    assert_eq!(r["state"], "paused");
    assert_problem(
        &post(app, &vendor, &path("/pause"), json!({})).await,
        StatusCode::CONFLICT,
        None,
    );
    assert_eq!(tick(&kit, &id, t0).await.actions, 0);
    ok(
        post(app, &vendor, &path("/resume"), json!({})).await,
        StatusCode::OK,
    );
    assert_eq!(tick(&kit, &id, t0).await.started, 2);
    provision(&kit).await;
    for (_, r) in references(&kit, &id).await {
        w.report(&kit, &r, "2.0.0", "passed").await;
    }
    // s2's operator skips its site for maintenance; s1's bookings start.
    let r = ok(
        post(
            app,
            &op2,
            &path("/sites/s2/skip"),
            json!({"reason": "Wartungsfenster"}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(r["sites"][0]["bookings"], json!({"skipped": 1}));
    let t = tick(&kit, &id, t0 + Duration::seconds(1)).await;
    assert_eq!(t.started, 2, "{t:?}");
    w.report(&kit, &w.a, "2.0.0", "passed").await;

    // Abort rolls back everything the rollout changed, the references included.
    let r = ok(
        post(app, &kit.admin, &path("/abort"), json!({})).await,
        StatusCode::OK,
    );
    assert_eq!(r["state"], "aborted");
    assert_eq!(r["reason"], "aborted by user/admin");
    for b in [&w.a, &w.b] {
        let s = state(&kit, b).await;
        assert_eq!(s["version"], "1.0.0", "{s}");
    }
    assert_eq!(state(&kit, &w.c).await["version"], "1.0.0");
    // Production is rolled back or skipped; the reference bookings this rollout created
    // have no earlier version and keep theirs in the test environments.
    for (booking, _, state, reference) in items(&kit, &id).await {
        if reference {
            assert_eq!(state, "passed", "{booking}");
            assert_eq!(self::state(&kit, &booking).await["version"], "2.0.0");
        } else {
            assert!(
                state == "rolled-back" || state == "skipped",
                "{booking}: {state}"
            );
        }
    }
    assert!(actions_on(&kit, &format!("booking/{}", w.a))
        .await
        .contains(&("user/admin".into(), "booking.rollback".into())));
    assert_problem(
        &post(app, &kit.admin, &path("/resume"), json!({})).await,
        StatusCode::CONFLICT,
        None,
    );
    assert_eq!(tick(&kit, &id, t0 + Duration::seconds(5)).await.actions, 0);
    let trail: Vec<(String, String)> = actions_on(&kit, &format!("rollout/{id}")).await;
    assert_eq!(
        trail,
        [
            ("user/admin".to_string(), "rollout.start".to_string()),
            ("user/vendor".into(), "rollout.pause".into()),
            ("user/vendor".into(), "rollout.resume".into()),
            ("user/op2".into(), "rollout.skip-site".into()),
            ("system/rollouts".into(), "rollout.wave".into()),
            ("user/admin".into(), "rollout.abort".into()),
        ]
    );
}

async fn early_adopters_come_first_and_bad_input_changes_nothing(kit: Kit) {
    let w = federation(&kit).await;
    let app = &kit.app;
    let (_, c_admin) = kit
        .user(
            "kiel",
            json!([{"role": "org-admin", "organisation": w.orgs[2]}]),
        )
        .await;
    let (_, b_admin) = kit
        .user(
            "flensburg",
            json!([{"role": "org-admin", "organisation": w.orgs[1]}]),
        )
        .await;
    let ea = |org: &str| format!("/api/v1/organisations/{org}/early-adopter");
    // Only the organisation's own admin opts it in.
    assert_problem(
        &put(
            app,
            &b_admin,
            &ea(&w.orgs[2]),
            json!({"early_adopter": true}),
        )
        .await,
        StatusCode::FORBIDDEN,
        None,
    );
    let r = ok(
        put(
            app,
            &c_admin,
            &ea(&w.orgs[2]),
            json!({"early_adopter": true}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(r["early_adopter"], true);
    assert_eq!(
        ok(get(app, &c_admin, &ea(&w.orgs[2])).await, StatusCode::OK)["early_adopter"],
        true
    );
    // Pin b: it is listed, not updated.
    ok(
        send(
            app,
            request(
                axum::http::Method::PATCH,
                &format!("/api/v1/bookings/{}", w.b),
                &kit.admin,
                Some(&json!({"channel": "pinned:1.0.0"})),
            ),
        )
        .await,
        StatusCode::OK,
    );
    let plan = ok(
        post(
            app,
            &kit.admin,
            "/api/v1/rollouts/plan",
            json!({"offering": "portal", "version": "2.0.0", "policy": {"canary_percent": 0}}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(plan["waves"][1]["stage"], "canary");
    assert_eq!(plan["waves"][1]["items"][0]["booking"], w.c);
    assert_eq!(plan["waves"][1]["items"][0]["early_adopter"], true);
    assert_eq!(plan["pinned"][0]["booking"], w.b);
    assert_eq!(plan["pinned"][0]["reason"], "pinned to 1.0.0");

    // Bad input: refused with the pointer, nothing stored.
    let before = world_snapshot(&kit).await;
    for (body, status, field) in [
        (
            json!({"offering": "portal", "version": "9.9.9"}),
            StatusCode::NOT_FOUND,
            Some("/version"),
        ),
        (
            json!({"offering": "portal", "version": "2.0.0", "policy": {"wave_size": 0}}),
            StatusCode::BAD_REQUEST,
            Some("/policy/wave_size"),
        ),
        (
            json!({"offering": "portal", "version": "2.0.0", "policy": {"bake": 1}}),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            json!({"offering": "nope", "version": "2.0.0"}),
            StatusCode::NOT_FOUND,
            None,
        ),
        (json!({"offering": "portal"}), StatusCode::BAD_REQUEST, None),
    ] {
        for path in ["/api/v1/rollouts", "/api/v1/rollouts/plan"] {
            let r = post(app, &kit.admin, path, body.clone()).await;
            assert_problem(&r, status, field);
        }
    }
    assert_problem(
        &get(app, &kit.admin, "/api/v1/rollouts/nope").await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert_problem(
        &post(app, &kit.admin, "/api/v1/rollouts/nope/pause", json!({})).await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert_eq!(world_snapshot(&kit).await, before);

    // Publishing a version starts a rollout with the default policy.
    let published = ok(
        post(
            app,
            &kit.admin,
            "/api/v1/offerings/portal/versions",
            version("2.1.0"),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_eq!(published["version"], "2.1.0");
    assert_eq!(published["rollout"]["version"], "2.1.0");
    assert_eq!(published["rollout"]["state"], "running");
    assert_eq!(published["rollout"]["policy"]["bake_seconds"], 300);
    let id = published["rollout"]["id"].as_str().expect("id");
    assert_problem(
        &post(
            app,
            &kit.admin,
            &format!("/api/v1/rollouts/{id}/sites/s9/skip"),
            json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
        None,
    );
}

/// Bookings, rollouts and the audit trail's length.
async fn world_snapshot(kit: &Kit) -> Value {
    json!({
        "bookings": all(&kit.app, &kit.admin, "/api/v1/bookings").await,
        "rollouts": all(&kit.app, &kit.admin, "/api/v1/rollouts").await,
        "audit": audit_count(kit).await,
    })
}
