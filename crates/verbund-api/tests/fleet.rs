//! Site reports and fleet health through the real router, on SQLite and PostgreSQL:
//! site tokens, the lifecycle moves reports drive, idempotent sequences, refused batches
//! that change nothing, silence turning a site `unknown`, the fleet view per caller, and
//! sites' preflights: kept, audited, refused for the wrong site, and keeping new
//! bookings off a site that failed.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use chrono::{Duration, Utc};
use common::*;
use serde_json::{json, Value};

api_tests!(
    reports_drive_the_lifecycle,
    repeated_and_late_reports_change_nothing,
    sequences_without_room_are_refused_and_the_site_goes_on,
    a_version_with_build_metadata_is_reported_back,
    bad_reports_are_refused_and_change_nothing,
    silent_sites_turn_unknown,
    a_sites_history_shows_its_turns_to_whom_may_see_it,
    fleet_is_scoped_to_the_caller,
    preflights_are_kept_audited_and_shown,
    bad_preflights_are_refused_and_change_nothing,
    a_failed_preflight_keeps_new_bookings_off_the_site,
);

/// Two providers with a site each, two Gemeinden with an admin each, one offering; one
/// booking per Gemeinde, moved to `provisioning` as the publisher would.
struct Fleet {
    /// The site the bookings landed on, and the other one.
    site: String,
    other: String,
    /// Booking of the first and the second Gemeinde.
    a: String,
    b: String,
    a_admin: String,
    a_org: String,
    b_org: String,
    /// Site tokens of `site` and `other`.
    token: String,
    other_token: String,
}

async fn fleet(kit: &Kit) -> Fleet {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    verbund_placement::ensure_default_policies(&kit.store, Utc::now())
        .await
        .expect("default policies");
    let bund = create_org(app, admin, bund()).await;
    let hh = create_org(app, admin, land("Hamburg", "02", &bund)).await;
    let a_org = create_org(
        app,
        admin,
        gemeinde("Hamburg", "020000000000", "02000000", &hh),
    )
    .await;
    let sh = create_org(app, admin, land("Schleswig-Holstein", "01", &bund)).await;
    let b_org = create_org(
        app,
        admin,
        gemeinde("Flensburg", "010010000000", "01001000", &sh),
    )
    .await;
    for p in ["p1", "p2"] {
        ok(
            post(app, admin, "/api/v1/providers", provider(p)).await,
            StatusCode::CREATED,
        );
    }
    let add_site = async |name: &str, p: &str| {
        let mut spec = site(name, p);
        spec["certifications"]
            .as_array_mut()
            .expect("certifications")
            .push(json!({"scheme": "iso27001", "level": "it-grundschutz", "valid_until": "2027-12-31"}));
        ok(
            post(app, admin, "/api/v1/sites", spec).await,
            StatusCode::CREATED,
        );
        certify(kit).await;
    };
    // The second site comes after the bookings, so both land on the first.
    add_site("s1", "p1").await;
    let vendor = a_org.clone();
    ok(
        post(app, admin, "/api/v1/offerings", offering("portal", &vendor)).await,
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
    let book = async |org: &str| {
        let body = json!({"organisation": org, "offering": "portal", "plan": "s", "config": {}});
        let b = ok(
            post(app, admin, "/api/v1/bookings", body).await,
            StatusCode::CREATED,
        );
        assert_eq!(b["booking"]["state"], "placed", "{b}");
        (
            b["booking"]["id"].as_str().expect("id").to_string(),
            b["booking"]["site"].as_str().expect("site").to_string(),
        )
    };
    let (a, site_a) = book(&a_org).await;
    let (b, site_b) = book(&b_org).await;
    assert_eq!((site_a.as_str(), site_b.as_str()), ("s1", "s1"));
    add_site("s2", "p2").await;
    provision(kit, &[a.clone(), b.clone()]).await;
    let other = if site_a == "s1" { "s2" } else { "s1" }.to_string();
    let token = site_token(kit, &site_a).await;
    let other_token = site_token(kit, &other).await;
    let (_, a_admin) = kit
        .user(
            "hh-admin",
            json!([{"role": "org-admin", "organisation": a_org}]),
        )
        .await;
    Fleet {
        site: site_a,
        other,
        a,
        b,
        a_admin,
        a_org,
        b_org,
        token,
        other_token,
    }
}

/// Moves placed bookings to `provisioning`, as the publisher does once it delivered them.
async fn provision(kit: &Kit, ids: &[String]) {
    kit.store
        .advance_bookings(
            "test/publisher",
            ids,
            verbund_domain::booking::BookingState::Placed,
            verbund_domain::booking::BookingState::Provisioning,
            "booking.provision",
            Utc::now(),
        )
        .await
        .expect("provision");
}

impl Fleet {
    /// Posts a report of `bookings` as the bookings' own site, with its token.
    async fn report(&self, app: &axum::Router, sequence: u64, bookings: Vec<Value>) -> Resp {
        send_report(app, &self.token, &self.site, &report(sequence, bookings)).await
    }
}

fn observation(booking: &str, version: &str, ready: u32, smoke: &str) -> Value {
    json!({"booking": booking, "applied_version": version, "desired_replicas": 1,
           "ready_replicas": ready, "conditions": [], "smoke_test": smoke})
}

fn report(sequence: u64, bookings: Vec<Value>) -> Value {
    json!({
        "sequence": sequence,
        "agent": {"name": "verbund-agent/test", "interval_seconds": 10},
        "site": {"kubernetes_version": "v1.33.2", "health": "healthy",
                 "free": {"cpu_millis": 1000, "memory_mib": 2048, "storage_gib": 100}},
        "bookings": bookings,
    })
}

async fn send_report(app: &axum::Router, token: &str, site: &str, body: &Value) -> Resp {
    post(
        app,
        token,
        &format!("/api/v1/sites/{site}/reports"),
        body.clone(),
    )
    .await
}

async fn state_of(kit: &Kit, id: &str) -> Value {
    ok(
        get(&kit.app, &kit.admin, &format!("/api/v1/bookings/{id}")).await,
        StatusCode::OK,
    )
}

async fn reports_drive_the_lifecycle(kit: Kit) {
    let f = fleet(&kit).await;
    let app = &kit.app;
    let used = async || -> Vec<(String, verbund_domain::directory::Resources)> {
        let usage = kit.store.site_usage().await.expect("usage");
        usage
            .into_iter()
            .map(|u| (u.site.spec.name, u.used))
            .collect()
    };
    let capacity_before = used().await;
    // Not ready yet: nothing moves, but the observation is recorded.
    let r = ok(
        f.report(app, 1, vec![observation(&f.a, "1.0.0", 0, "pending")])
            .await,
        StatusCode::OK,
    );
    assert_eq!(
        r,
        json!({"accepted": true, "sequence": 1, "bookings": 1, "transitions": 0})
    );
    let a = state_of(&kit, &f.a).await;
    assert_eq!(a["state"], "provisioning");
    assert_eq!(a["observed"]["ready_replicas"], 0);
    assert_eq!(a["observed"]["problem"], "0 of 1 replicas ready");
    assert_eq!(a["observed"]["site_health"], "healthy");
    assert_eq!(a["observed"]["simulated"], false);

    // Ready with a passed smoke test: provisioning → active, attributed to the site.
    let ready = vec![
        observation(&f.a, "1.0.0", 1, "passed"),
        observation(&f.b, "1.0.0", 1, "none"),
    ];
    let r = ok(
        send_report(app, &f.token, &f.site, &report(2, ready)).await,
        StatusCode::OK,
    );
    assert_eq!(r["transitions"], 2);
    assert_eq!(state_of(&kit, &f.a).await["state"], "active");
    assert_eq!(state_of(&kit, &f.b).await["state"], "active");
    let site_actor = format!("site/{}", f.site);
    assert!(
        audit_actions(&kit, &format!("booking/{}", f.a))
            .await
            .contains(&(site_actor.clone(), "booking.ready".into())),
        "the move is audited as the site"
    );

    // A failing smoke test degrades it, with the reason; a passing one restores it.
    let r = f
        .report(app, 3, vec![observation(&f.a, "1.0.0", 1, "failed")])
        .await;
    assert_eq!(ok(r, StatusCode::OK)["transitions"], 1);
    let a = state_of(&kit, &f.a).await;
    assert_eq!(a["state"], "degraded");
    assert_eq!(a["reason"], "the smoke test failed");
    let r = f
        .report(app, 4, vec![observation(&f.a, "1.0.0", 1, "passed")])
        .await;
    assert_eq!(ok(r, StatusCode::OK)["transitions"], 1);
    let a = state_of(&kit, &f.a).await;
    assert_eq!(a["state"], "active");
    assert!(a.get("reason").is_none(), "{a}");
    let actions: Vec<String> = audit_actions(&kit, &format!("booking/{}", f.a))
        .await
        .into_iter()
        .filter(|(actor, _)| *actor == site_actor)
        .map(|(_, a)| a)
        .collect();
    assert_eq!(
        actions,
        ["booking.ready", "booking.degrade", "booking.ready"]
    );

    // The fleet view counts them, with the version the site runs.
    let fleet = ok(get(app, &kit.admin, "/api/v1/fleet").await, StatusCode::OK);
    let s = fleet["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == f.site.as_str())
        .unwrap()
        .clone();
    assert_eq!(s["bookings"], json!({"active": 2}));
    assert_eq!(s["health"], "healthy");
    assert_eq!(s["kubernetes_version"], "v1.33.2");
    let o = &fleet["offerings"][0];
    assert_eq!(o["versions_in_use"], json!({"1.0.0": 2}));
    assert_eq!(o["desired_versions"], json!({"1.0.0": 2}));
    assert_eq!(fleet["bookings"], json!({"active": 2}));

    // Moves between states that hold capacity leave the sites' usage as it was.
    assert_eq!(used().await, capacity_before);
    // The moves were written in bulk, chained like every other event.
    let chain = ok(
        get(app, &kit.admin, "/api/v1/audit/verify").await,
        StatusCode::OK,
    );
    assert_eq!(chain["intact"], true, "{chain}");

    // Metrics: reports counted, the site's health exposed.
    let r = get(app, &kit.admin, "/metrics").await;
    let text = r.2.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("verbund_site_reports_total{outcome=\"accepted\"} 4"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "verbund_site_health{{site=\"{}\",health=\"healthy\"}} 1",
            f.site
        )),
        "{text}"
    );
    assert!(
        text.contains("verbund_bookings{state=\"active\"} 2"),
        "{text}"
    );
}

async fn repeated_and_late_reports_change_nothing(kit: Kit) {
    let f = fleet(&kit).await;
    let app = &kit.app;
    let ready = report(10, vec![observation(&f.a, "1.0.0", 1, "passed")]);
    ok(
        send_report(app, &f.token, &f.site, &ready).await,
        StatusCode::OK,
    );
    assert_eq!(state_of(&kit, &f.a).await["state"], "active");
    let audit = audit_count(&kit).await;
    // The same batch again, and an older one saying it is not ready: both acknowledged
    // as known, neither moves anything back.
    let r = ok(
        send_report(app, &f.token, &f.site, &ready).await,
        StatusCode::OK,
    );
    assert_eq!(
        r,
        json!({"accepted": false, "sequence": 10, "bookings": 1, "transitions": 0})
    );
    let late = report(9, vec![observation(&f.a, "1.0.0", 0, "failed")]);
    let r = ok(
        send_report(app, &f.token, &f.site, &late).await,
        StatusCode::OK,
    );
    assert_eq!(r["accepted"], false);
    let a = state_of(&kit, &f.a).await;
    assert_eq!(a["state"], "active");
    assert_eq!(a["observed"]["sequence"], 10);
    assert_eq!(a["observed"]["ready_replicas"], 1);
    assert_eq!(audit_count(&kit).await, audit, "nothing audited");
}

/// A sequence that leaves no room for the next one (`i64::MAX`, or anything more than a
/// day ahead of the clock in Unix milliseconds) would freeze its site for good: it is
/// refused, and the site keeps reporting; one stored before there was a ceiling does not
/// block either.
async fn sequences_without_room_are_refused_and_the_site_goes_on(kit: Kit) {
    let f = fleet(&kit).await;
    let app = &kit.app;
    let seen = |ready: u32| vec![observation(&f.a, "1.0.0", ready, "pending")];
    assert_eq!(
        ok(f.report(app, 5, seen(0)).await, StatusCode::OK)["accepted"],
        true
    );
    let audit = audit_count(&kit).await;
    let two_days_ahead = u64::try_from((Utc::now() + Duration::days(2)).timestamp_millis())
        .expect("after the epoch");
    for sequence in [
        i64::MAX as u64,
        i64::MAX as u64 + 1,
        u64::MAX,
        two_days_ahead,
    ] {
        let r = f.report(app, sequence, seen(1)).await;
        let d = assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("/sequence"));
        assert!(d.contains(&format!("`{sequence}`")), "{d}");
    }
    assert_eq!(audit_count(&kit).await, audit, "nothing audited");
    assert_eq!(state_of(&kit, &f.a).await["observed"]["sequence"], 5);
    // The next ordinary report is accepted.
    let r = ok(f.report(app, 6, seen(1)).await, StatusCode::OK);
    assert_eq!(
        (&r["accepted"], &r["sequence"]),
        (&json!(true), &json!(6)),
        "{r}"
    );
    assert_eq!(state_of(&kit, &f.a).await["observed"]["ready_replicas"], 1);

    // A site that was frozen before the ceiling existed thaws with its next report.
    let mut frozen: verbund_domain::report::SiteReport =
        serde_json::from_value(report(i64::MAX as u64, seen(1))).expect("a report");
    frozen.bookings.clear();
    kit.store
        .ingest_report(&f.site, &frozen, Utc::now())
        .await
        .expect("stored behind the API's back");
    let r = ok(f.report(app, 7, seen(1)).await, StatusCode::OK);
    assert_eq!(
        (&r["accepted"], &r["sequence"]),
        (&json!(true), &json!(7)),
        "{r}"
    );
    let r = ok(f.report(app, 7, seen(1)).await, StatusCode::OK);
    assert_eq!(r["accepted"], false, "and counts on from there: {r}");
}

/// A version with build metadata travels in the desired state's labels as `_` (a label
/// allows no `+`); read back the one way the domain defines, the report carrying it is
/// accepted and moves its booking, so the site does not turn `unknown`.
async fn a_version_with_build_metadata_is_reported_back(kit: Kit) {
    let f = fleet(&kit).await;
    let (app, admin) = (&kit.app, kit.admin.as_str());
    let published = "1.1.0-RC.1+build.7";
    ok(
        post(app, admin, "/api/v1/offerings", offering("rc", &f.a_org)).await,
        StatusCode::CREATED,
    );
    ok(
        post(
            app,
            admin,
            "/api/v1/offerings/rc/versions",
            version(published),
        )
        .await,
        StatusCode::CREATED,
    );
    let body = json!({"organisation": f.a_org, "offering": "rc", "plan": "s", "config": {},
                      "channel": format!("pinned:{published}")});
    let b = ok(
        post(app, admin, "/api/v1/bookings", body).await,
        StatusCode::CREATED,
    );
    let id = b["booking"]["id"].as_str().expect("id").to_string();
    let (site, token) = if b["booking"]["site"] == json!(f.site) {
        (&f.site, &f.token)
    } else {
        (&f.other, &f.other_token)
    };
    assert_eq!(b["booking"]["version"], published, "{b}");
    provision(&kit, std::slice::from_ref(&id)).await;

    // What the site is given: the namespace's version label.
    let files = ok(
        get(app, admin, &format!("/api/v1/bookings/{id}/manifests")).await,
        StatusCode::OK,
    );
    let namespace = files
        .as_array()
        .expect("files")
        .iter()
        .find(|f| {
            f["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/namespace.yaml"))
        })
        .expect("a namespace.yaml");
    let namespace: Value =
        serde_yaml_ng::from_str(namespace["content"].as_str().expect("content")).expect("YAML");
    let label = namespace["metadata"]["labels"]["verbund.dev/version"]
        .as_str()
        .expect("a version label");
    assert_eq!(label, "1.1.0-RC.1_build.7");
    let reported =
        verbund_domain::catalog::version_from_label(label).expect("the label holds a version");
    assert_eq!(reported, published);

    let r = ok(
        send_report(
            app,
            token,
            site,
            &report(1, vec![observation(&id, &reported, 1, "passed")]),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(
        (&r["accepted"], &r["transitions"]),
        (&json!(true), &json!(1)),
        "{r}"
    );
    assert_eq!(state_of(&kit, &id).await["state"], "active");
    let fleet = ok(get(app, admin, "/api/v1/fleet").await, StatusCode::OK);
    let health = fleet["sites"]
        .as_array()
        .expect("sites")
        .iter()
        .find(|s| s["site"] == json!(site))
        .map(|s| s["health"].clone());
    assert_eq!(health, Some(json!("healthy")), "{fleet}");
}

async fn bad_reports_are_refused_and_change_nothing(kit: Kit) {
    let f = fleet(&kit).await;
    let app = &kit.app;
    ok(
        f.report(app, 5, vec![observation(&f.a, "1.0.0", 0, "pending")])
            .await,
        StatusCode::OK,
    );
    let snapshot = async || {
        let mut fleet = ok(get(app, &kit.admin, "/api/v1/fleet").await, StatusCode::OK);
        fleet["generated_at"] = Value::Null;
        for s in fleet["sites"].as_array_mut().unwrap() {
            s["report_lag_seconds"] = Value::Null;
        }
        json!({
            "a": state_of(&kit, &f.a).await,
            "b": state_of(&kit, &f.b).await,
            "fleet": fleet,
            "audit": audit_count(&kit).await,
        })
    };
    let before = snapshot().await;
    let ready = |seq| report(seq, vec![observation(&f.a, "1.0.0", 1, "passed")]);

    // Another site's token.
    let r = send_report(app, &f.other_token, &f.site, &ready(6)).await;
    let detail = assert_problem(&r, StatusCode::FORBIDDEN, None);
    assert!(
        detail.contains(&format!("belongs to site `{}`", f.other)),
        "{detail}"
    );
    // A user's token (even the federation admin's) cannot report.
    let r = send_report(app, &kit.admin, &f.site, &ready(6)).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, None);
    // A site token opens nothing else.
    let r = get(app, &f.token, "/api/v1/fleet").await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, None);
    // A booking not placed on that site, within an otherwise good batch.
    let mut foreign = ready(6);
    foreign["bookings"]
        .as_array_mut()
        .unwrap()
        .push(observation(&f.b, "1.0.0", 1, "passed"));
    let r = send_report(app, &f.other_token, &f.other, &foreign).await;
    let detail = assert_problem(&r, StatusCode::NOT_FOUND, Some("/bookings/0/booking"));
    assert!(detail.contains("is not placed on site"), "{detail}");
    let mut unknown = ready(6);
    unknown["bookings"]
        .as_array_mut()
        .unwrap()
        .push(observation("no-such-booking", "1.0.0", 1, "passed"));
    let r = send_report(app, &f.token, &f.site, &unknown).await;
    assert_problem(&r, StatusCode::NOT_FOUND, Some("/bookings/1/booking"));
    // Malformed: not JSON, a wrong type, an unknown field, an invalid version.
    let raw = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/sites/{}/reports", f.site))
        .header(header::AUTHORIZATION, format!("Bearer {}", f.token))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"sequence\": 7,"))
        .unwrap();
    assert_problem(&send(app, raw).await, StatusCode::BAD_REQUEST, None);
    let mut wrong = ready(6);
    wrong["bookings"][0]["ready_replicas"] = json!("one");
    assert_problem(
        &send_report(app, &f.token, &f.site, &wrong).await,
        StatusCode::BAD_REQUEST,
        Some("/bookings/0/ready_replicas"),
    );
    let mut extra = ready(6);
    extra["site"]["owner"] = json!("me");
    assert_problem(
        &send_report(app, &f.token, &f.site, &extra).await,
        StatusCode::BAD_REQUEST,
        None,
    );
    let mut bad_version = ready(6);
    bad_version["bookings"][0]["applied_version"] = json!("latest");
    assert_problem(
        &send_report(app, &f.token, &f.site, &bad_version).await,
        StatusCode::BAD_REQUEST,
        Some("/bookings/0/applied_version"),
    );
    // Oversized: more bookings than a batch may carry, and more bytes than the limit.
    let many: Vec<Value> = (0..=verbund_domain::report::MAX_BOOKINGS_PER_REPORT)
        .map(|i| observation(&format!("b{i}"), "1.0.0", 1, "none"))
        .collect();
    assert_problem(
        &send_report(app, &f.token, &f.site, &report(6, many)).await,
        StatusCode::BAD_REQUEST,
        Some("/bookings"),
    );
    let mut huge = ready(6);
    huge["site"]["message"] = json!("x".repeat(verbund_domain::report::MAX_REPORT_BYTES));
    assert_problem(
        &send_report(app, &f.token, &f.site, &huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
    );
    // A revoked token.
    let tokens = ok(
        get(
            app,
            &kit.admin,
            &format!("/api/v1/sites/{}/tokens", f.other),
        )
        .await,
        StatusCode::OK,
    );
    let id = tokens[0]["id"].as_str().unwrap();
    assert!(
        tokens[0].get("secret").is_none(),
        "secrets are never listed"
    );
    ok(
        delete(
            app,
            &kit.admin,
            &format!("/api/v1/sites/{}/tokens/{id}", f.other),
        )
        .await,
        StatusCode::OK,
    );
    let r = send_report(app, &f.other_token, &f.other, &report(6, vec![])).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, None);

    // Nothing changed but the revocation's audit event.
    let mut after = snapshot().await;
    assert_eq!(after["audit"], json!(before["audit"].as_i64().unwrap() + 1));
    after["audit"] = before["audit"].clone();
    assert_eq!(after, before);
    // Every refusal was counted by reason.
    let r = get(app, &kit.admin, "/metrics").await;
    let text = r.2.as_str().unwrap_or_default().to_string();
    for (reason, n) in [
        ("wrong-site", 1),
        ("unauthenticated", 2),
        ("foreign-booking", 2),
        ("malformed", 3),
        ("invalid", 2),
        ("too-large", 1),
    ] {
        assert!(
            text.contains(&format!(
                "verbund_site_reports_total{{outcome=\"refused-{reason}\"}} {n}"
            )),
            "{reason}: {text}"
        );
    }
    // The good report still works afterwards.
    assert_eq!(
        ok(
            send_report(app, &f.token, &f.site, &ready(6)).await,
            StatusCode::OK
        )["transitions"],
        1
    );
}

async fn silent_sites_turn_unknown(kit: Kit) {
    let f = fleet(&kit).await;
    ok(
        f.report(&kit.app, 1, vec![observation(&f.a, "1.0.0", 1, "passed")])
            .await,
        StatusCode::OK,
    );
    let health = async |app: &axum::Router| {
        let fleet = ok(get(app, &kit.admin, "/api/v1/fleet").await, StatusCode::OK);
        let a = ok(
            get(app, &kit.admin, &format!("/api/v1/bookings/{}", f.a)).await,
            StatusCode::OK,
        );
        (fleet, a["observed"]["site_health"].clone())
    };
    // The interval is 10 s: within 15 s the site is still healthy, after that unknown.
    let soon = kit.app_at(Utc::now() + Duration::seconds(12));
    let (fleet, booking) = health(&soon).await;
    assert_eq!(
        fleet["stale_sites"],
        json!([f.other]),
        "only the never-reporting site"
    );
    assert_eq!(booking, "healthy");
    let later_at = Utc::now() + Duration::seconds(16);
    let later = kit.app_at(later_at);
    let (fleet, booking) = health(&later).await;
    let mut stale = vec![f.site.clone(), f.other.clone()];
    stale.sort();
    assert_eq!(fleet["stale_sites"], json!(stale));
    assert_eq!(booking, "unknown", "the booking shows its site's silence");
    assert_eq!(
        state_of(&kit, &f.a).await["state"],
        "active",
        "silence is not a failure"
    );
    // The watchdog records it once; a new report brings the site back, also audited.
    let marked = kit
        .store
        .mark_silent_sites("system/fleet", later_at)
        .await
        .unwrap();
    assert_eq!(marked, std::slice::from_ref(&f.site));
    assert!(kit
        .store
        .mark_silent_sites("system/fleet", later_at)
        .await
        .unwrap()
        .is_empty());
    let site_events = audit_actions(&kit, &format!("site/{}", f.site)).await;
    assert!(
        site_events.contains(&("system/fleet".into(), "site.silent".into())),
        "{site_events:?}"
    );
    let back = kit.app_at(later_at);
    ok(f.report(&back, 2, vec![]).await, StatusCode::OK);
    let (fleet, booking) = health(&back).await;
    assert_eq!(fleet["stale_sites"], json!([f.other]));
    assert_eq!(booking, "healthy");
    let site_events = audit_actions(&kit, &format!("site/{}", f.site)).await;
    let reporting = site_events
        .iter()
        .filter(|(_, a)| a == "site.reporting")
        .count();
    assert_eq!(reporting, 2, "first report and return: {site_events:?}");
}

async fn a_sites_history_shows_its_turns_to_whom_may_see_it(kit: Kit) {
    let f = fleet(&kit).await;
    let start = Utc::now();
    let history = |app: axum::Router, caller: String, query: String| {
        let site = f.site.clone();
        async move {
            get(
                &app,
                &caller,
                &format!("/api/v1/fleet/sites/{site}/history{query}"),
            )
            .await
        }
    };
    // Never reported: the whole window is unknown, with no turn.
    let none = ok(
        history(kit.app.clone(), kit.admin.clone(), String::new()).await,
        StatusCode::OK,
    );
    assert_eq!(none["turns"], json!([]));
    assert_eq!(none["spans"].as_array().unwrap().len(), 1, "{none}");
    assert_eq!(none["spans"][0]["health"], "unknown");
    // Reporting, a degraded report, silence, and back.
    ok(f.report(&kit.app, 1, vec![]).await, StatusCode::OK);
    let mut degraded = report(2, vec![]);
    degraded["site"]["health"] = json!("degraded");
    degraded["site"]["message"] = json!("one node of three is down");
    let later = kit.app_at(start + Duration::seconds(5));
    ok(
        send_report(&later, &f.token, &f.site, &degraded).await,
        StatusCode::OK,
    );
    let silent_at = start + Duration::seconds(30);
    kit.store
        .mark_silent_sites("system/fleet", silent_at)
        .await
        .unwrap();
    let back = kit.app_at(start + Duration::seconds(60));
    ok(
        send_report(&back, &f.token, &f.site, &report(3, vec![])).await,
        StatusCode::OK,
    );
    let now = kit.app_at(start + Duration::seconds(90));
    let h = ok(
        history(now.clone(), kit.admin.clone(), "?days=1".into()).await,
        StatusCode::OK,
    );
    let kinds: Vec<(&str, &str)> = h["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["kind"].as_str().unwrap(), t["health"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("reporting", "healthy"),
            ("health", "degraded"),
            ("silent", "unknown"),
            ("reporting", "healthy")
        ],
        "{h}"
    );
    assert_eq!(h["turns"][1]["message"], "one node of three is down");
    let spans: Vec<&str> = h["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["health"].as_str().unwrap())
        .collect();
    assert_eq!(
        spans,
        ["unknown", "healthy", "degraded", "unknown", "healthy"],
        "{h}"
    );
    assert_eq!(h["spans"][0]["from"], h["from"]);
    assert_eq!(h["spans"][4]["until"], h["until"]);
    // The site's provider may read it, another provider's operator and the
    // organisations whose bookings run there may not (they see its current health in
    // the fleet); an unknown site is not found.
    let (own, other) = if f.site == "s1" {
        ("p1", "p2")
    } else {
        ("p2", "p1")
    };
    for (login, provider, want) in [
        ("op-own", own, StatusCode::OK),
        ("op-other", other, StatusCode::FORBIDDEN),
    ] {
        let (_, operator) = kit
            .user(
                login,
                json!([{"role": "provider-operator", "provider": provider}]),
            )
            .await;
        let r = history(now.clone(), operator, String::new()).await;
        assert_eq!(r.0, want, "{login}: {}", r.2);
    }
    let r = history(now.clone(), f.a_admin.clone(), String::new()).await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.2);
    // A person who is both: an organisation's admin and the site's provider's operator.
    let (_, both) = kit
        .user(
            "op-and-admin",
            json!([{"role": "org-admin", "organisation": f.a_org},
                   {"role": "provider-operator", "provider": own}]),
        )
        .await;
    let r = history(now.clone(), both, String::new()).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    let unknown = get(&now, &kit.admin, "/api/v1/fleet/sites/nowhere-1/history").await;
    assert_eq!(unknown.0, StatusCode::NOT_FOUND);
    // Bounds are refused, not clamped.
    for bad in ["?days=0", "?days=367", "?days=x"] {
        let r = history(now.clone(), kit.admin.clone(), bad.into()).await;
        assert_eq!(r.0, StatusCode::BAD_REQUEST, "{bad}: {}", r.2);
    }
}

async fn fleet_is_scoped_to_the_caller(kit: Kit) {
    let f = fleet(&kit).await;
    let app = &kit.app;
    ok(
        f.report(
            app,
            1,
            vec![
                observation(&f.a, "1.0.0", 1, "passed"),
                observation(&f.b, "1.0.0", 0, "pending"),
            ],
        )
        .await,
        StatusCode::OK,
    );
    let all = ok(get(app, &kit.admin, "/api/v1/fleet").await, StatusCode::OK);
    assert_eq!(all["organisations"].as_array().unwrap().len(), 2);
    assert_eq!(all["sites"].as_array().unwrap().len(), 2);
    // The Gemeinde's admin sees its own booking and the site it runs on, nothing else.
    let own = ok(get(app, &f.a_admin, "/api/v1/fleet").await, StatusCode::OK);
    assert_eq!(own["bookings"], json!({"active": 1}));
    assert_eq!(
        own["organisations"],
        json!([{"organisation": f.a_org, "bookings": {"active": 1}}])
    );
    let sites: Vec<&str> = own["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["site"].as_str().unwrap())
        .collect();
    assert_eq!(sites, [f.site.as_str()]);
    assert_eq!(own["offerings"][0]["versions_in_use"], json!({"1.0.0": 1}));
    let text = own.to_string();
    assert!(
        !text.contains(&f.b_org) && !text.contains(&f.other),
        "{text}"
    );
    // A provider's operator sees its own sites.
    let provider = if f.other == "s1" { "p1" } else { "p2" };
    let (_, operator) = kit
        .user(
            "op",
            json!([{"role": "provider-operator", "provider": provider}]),
        )
        .await;
    let theirs = ok(get(app, &operator, "/api/v1/fleet").await, StatusCode::OK);
    let sites: Vec<&str> = theirs["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["site"].as_str().unwrap())
        .collect();
    assert_eq!(sites, [f.other.as_str()]);
    assert_eq!(theirs["bookings"], json!({}));
    assert_eq!(theirs["stale_sites"], json!([f.other]));
    // … and may not issue tokens for another provider's site.
    let r = post(
        app,
        &operator,
        &format!("/api/v1/sites/{}/tokens", f.site),
        json!({"name": "x"}),
    )
    .await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    let r = post(
        app,
        &operator,
        &format!("/api/v1/sites/{}/tokens", f.other),
        json!({"name": "agent"}),
    )
    .await;
    ok(r, StatusCode::CREATED);
}

// ---------------------------------------------------------------------------------------
// Preflight

/// A preflight of a Flux site; `failing` names the checks that failed.
fn preflight(failing: &[&str]) -> Value {
    let checks: Vec<Value> = [
        ("kubernetes-version", "Kubernetes v1.31.4 is supported (1.30 to 1.37) and matches the site's declared 1.31"),
        ("custom-resources", "all 8 custom resources a Flux site needs are served"),
        ("network-policy", "NetworkPolicy is enforced: the probe's allowed client connected and the client a default-deny policy forbids did not"),
    ]
    .into_iter()
    .map(|(name, pass)| {
        if failing.contains(&name) {
            let reason = match name {
                "network-policy" => "NetworkPolicy is not enforced: the probe's client that a default-deny policy forbids connected all the same".to_string(),
                other => format!("{other} failed"),
            };
            json!({"name": name, "verdict": "fail", "reason": reason})
        } else {
            json!({"name": name, "verdict": "pass", "reason": pass})
        }
    })
    .collect();
    json!({"agent": "verbund-agent/test", "delivery": "flux",
           "kubernetes_version": "v1.31.4", "checks": checks})
}

async fn send_preflight(app: &axum::Router, token: &str, site: &str, body: &Value) -> Resp {
    post(
        app,
        token,
        &format!("/api/v1/sites/{site}/preflight"),
        body.clone(),
    )
    .await
}

/// The fleet view's entry of `site`.
async fn fleet_site(kit: &Kit, site: &str) -> Value {
    let fleet = ok(
        get(&kit.app, &kit.admin, "/api/v1/fleet").await,
        StatusCode::OK,
    );
    fleet["sites"]
        .as_array()
        .expect("sites")
        .iter()
        .find(|s| s["site"] == site)
        .cloned()
        .unwrap_or_else(|| panic!("site `{site}` in the fleet view: {fleet}"))
}

async fn preflights_are_kept_audited_and_shown(kit: Kit) {
    let f = fleet(&kit).await;
    let app = &kit.app;
    // What the site's cluster must have, asked with its own token.
    let r = ok(
        get(
            app,
            &f.token,
            &format!("/api/v1/sites/{}/preflight", f.site),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(
        r,
        json!({"site": f.site, "delivery": "flux", "kubernetes_version": "1.31"})
    );
    // Never reported: the fleet says so with null.
    assert_eq!(fleet_site(&kit, &f.site).await["preflight"], Value::Null);

    let stored = ok(
        send_preflight(app, &f.token, &f.site, &preflight(&[])).await,
        StatusCode::OK,
    );
    assert_eq!(stored["verdict"], "pass");
    assert_eq!(stored["site"], f.site.as_str());
    let shown = fleet_site(&kit, &f.site).await;
    assert_eq!(shown["preflight"]["verdict"], "pass", "{shown}");
    assert_eq!(
        shown["preflight"]["checks"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(shown["preflight"]["reported_at"], stored["reported_at"]);
    assert_eq!(fleet_site(&kit, &f.other).await["preflight"], Value::Null);

    // A later one replaces it; the server judges the whole by the worst check.
    let failed = ok(
        send_preflight(app, &f.token, &f.site, &preflight(&["network-policy"])).await,
        StatusCode::OK,
    );
    assert_eq!(failed["verdict"], "fail");
    let shown = fleet_site(&kit, &f.site).await;
    assert_eq!(shown["preflight"]["verdict"], "fail");
    assert_eq!(shown["preflight"]["checks"][2]["verdict"], "fail");

    // Both audited as the site, the second with the first as its `before`.
    let site_actor = format!("site/{}", f.site);
    let actions = audit_actions(&kit, &format!("site/{}", f.site)).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == (site_actor.clone(), "site.preflight".to_string()))
            .count(),
        2,
        "{actions:?}"
    );
    let events = ok(
        get(
            app,
            &kit.admin,
            &format!(
                "/api/v1/audit?object={}&limit=1",
                enc(&format!("site/{}", f.site))
            ),
        )
        .await,
        StatusCode::OK,
    );
    let last = &events["items"][0];
    assert_eq!(last["action"], "site.preflight");
    assert_eq!(last["before"]["verdict"], "pass", "{last}");
    assert_eq!(last["after"]["verdict"], "fail", "{last}");
    let chain = ok(
        get(app, &kit.admin, "/api/v1/audit/verify").await,
        StatusCode::OK,
    );
    assert_eq!(chain["intact"], true, "{chain}");

    // The OpenAPI document describes both operations with the site token.
    let doc = ok(get(app, "", "/api/v1/openapi.json").await, StatusCode::OK);
    let path = &doc["paths"]["/api/v1/sites/{name}/preflight"];
    assert_eq!(
        path["post"]["security"],
        json!([{"site-token": []}]),
        "{path}"
    );
    assert!(path["get"].is_object(), "{path}");
    assert!(doc["components"]["schemas"]["PreflightReport"].is_object());
}

async fn bad_preflights_are_refused_and_change_nothing(kit: Kit) {
    let f = fleet(&kit).await;
    let app = &kit.app;
    let before = (fleet_site(&kit, &f.site).await, audit_count(&kit).await);
    let good = preflight(&[]);
    // Another site's token, for reading and for reporting.
    let r = send_preflight(app, &f.other_token, &f.site, &good).await;
    let detail = assert_problem(&r, StatusCode::FORBIDDEN, None);
    assert!(
        detail.contains(&format!("belongs to site `{}`", f.other)),
        "{detail}"
    );
    let r = get(
        app,
        &f.other_token,
        &format!("/api/v1/sites/{}/preflight", f.site),
    )
    .await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    // ... even with a malformed body: the token is judged first.
    let r = send_preflight(app, &f.other_token, &f.site, &json!({"checks": 1})).await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    // A user's token, even the federation admin's, is no site token.
    let r = send_preflight(app, &kit.admin, &f.site, &good).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, None);
    // Checks made for another delivery mode than the site's.
    let mut agent = good.clone();
    agent["delivery"] = json!("agent");
    let r = send_preflight(app, &f.token, &f.site, &agent).await;
    let detail = assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("/delivery"));
    assert!(detail.contains("--delivery flux"), "{detail}");
    // Invalid: no checks, a check twice, a bad verdict, an unknown field.
    let mut empty = good.clone();
    empty["checks"] = json!([]);
    assert_problem(
        &send_preflight(app, &f.token, &f.site, &empty).await,
        StatusCode::BAD_REQUEST,
        Some("/checks"),
    );
    let mut twice = good.clone();
    let first = twice["checks"][0].clone();
    twice["checks"].as_array_mut().unwrap().push(first);
    assert_problem(
        &send_preflight(app, &f.token, &f.site, &twice).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/checks/3/name"),
    );
    let mut verdict = good.clone();
    verdict["checks"][0]["verdict"] = json!("maybe");
    assert_problem(
        &send_preflight(app, &f.token, &f.site, &verdict).await,
        StatusCode::BAD_REQUEST,
        None,
    );
    let mut extra = good.clone();
    extra["verdict"] = json!("pass");
    assert_problem(
        &send_preflight(app, &f.token, &f.site, &extra).await,
        StatusCode::BAD_REQUEST,
        None,
    );
    let after = (fleet_site(&kit, &f.site).await, audit_count(&kit).await);
    assert_eq!(after.0["preflight"], before.0["preflight"]);
    assert_eq!(after.1, before.1, "a refused preflight is not audited");
}

async fn a_failed_preflight_keeps_new_bookings_off_the_site(kit: Kit) {
    let f = fleet(&kit).await;
    let app = &kit.app;
    let book = async || {
        let body =
            json!({"organisation": f.a_org, "offering": "portal", "plan": "s", "config": {}});
        ok(
            post(app, &kit.admin, "/api/v1/bookings", body).await,
            StatusCode::CREATED,
        )["booking"]
            .clone()
    };
    let explain = async || {
        let body = json!({"organisation": f.a_org, "offering": "portal", "plan": "s"});
        ok(
            post(app, &kit.admin, "/api/v1/placement/explain", body).await,
            StatusCode::OK,
        )
    };
    let verdict_on = |d: &Value, site: &str| -> Value {
        d["candidates"]
            .as_array()
            .expect("candidates")
            .iter()
            .find(|c| c["site"] == site)
            .cloned()
            .unwrap_or(Value::Null)
    };
    // Neither site reported a preflight: both may take bookings, as before.
    let d = explain().await;
    assert_eq!(verdict_on(&d, &f.site)["allowed"], true, "{d}");
    assert_eq!(verdict_on(&d, &f.other)["allowed"], true, "{d}");
    let a_before = state_of(&kit, &f.a).await;

    // The other site fails its preflight: new bookings go to the first.
    ok(
        send_preflight(
            app,
            &f.other_token,
            &f.other,
            &preflight(&["network-policy"]),
        )
        .await,
        StatusCode::OK,
    );
    let d = explain().await;
    let v = verdict_on(&d, &f.other);
    assert_eq!(v["allowed"], false, "{d}");
    assert_eq!(v["reasons"][0]["kind"], "preflight-failed", "{v}");
    assert_eq!(
        v["reasons"][0]["failures"],
        json!(["NetworkPolicy is not enforced: the probe's client that a default-deny policy forbids connected all the same"])
    );
    assert_eq!(book().await["site"], f.site.as_str());

    // Both failed: the booking is rejected, and the reason names the failed checks.
    ok(
        send_preflight(
            app,
            &f.token,
            &f.site,
            &preflight(&["network-policy", "custom-resources"]),
        )
        .await,
        StatusCode::OK,
    );
    let rejected = book().await;
    assert_eq!(rejected["state"], "rejected", "{rejected}");
    let reason = rejected["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "{} (failed its preflight: NetworkPolicy is not enforced",
            f.other
        )),
        "{reason}"
    );
    assert!(reason.contains("custom-resources failed"), "{reason}");

    // Existing placements stay where they are, in their state, and are not flagged.
    assert_eq!(state_of(&kit, &f.a).await["site"], a_before["site"]);
    assert_eq!(state_of(&kit, &f.a).await["state"], a_before["state"]);
    let summary = ok(
        post(app, &kit.admin, "/api/v1/compliance/reevaluate", json!({})).await,
        StatusCode::OK,
    );
    assert_eq!(summary["noncompliant"], 0, "{summary}");

    // A warning is no failure: the site takes bookings again.
    let mut warned = preflight(&[]);
    warned["checks"][0]["verdict"] = json!("warn");
    ok(
        send_preflight(app, &f.token, &f.site, &warned).await,
        StatusCode::OK,
    );
    assert_eq!(book().await["site"], f.site.as_str());
}
