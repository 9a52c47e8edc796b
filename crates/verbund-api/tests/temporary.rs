//! Temporary bookings, through the real router on SQLite and PostgreSQL with a controlled
//! clock: the organisation reminded once before the end, the export Job rendered into
//! the desired state at the end, its completion reported by the booking's site, the
//! checksums verified, and only then the booking torn down with its record kept —
//! exactly once with two replicas sweeping. An export that fails or cannot be verified
//! keeps everything, says why, and may be tried again. Bad input changes nothing, and
//! no organisation can end another's booking.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use axum::http::StatusCode;
use chrono::{DateTime, TimeZone, Utc};
use common::*;
use serde_json::{json, Value};
use verbund_store::Store;

api_tests!(
    a_temporary_booking_is_reminded_exported_verified_and_torn_down,
    a_failed_export_keeps_everything_until_an_attempt_is_verified,
    bad_endings_are_refused_and_change_nothing,
);

/// 10 January 2027, noon.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 10, 12, 0, 0).unwrap()
}

fn target() -> Value {
    json!({"endpoint": "https://s3.stadt-flensburg.de", "bucket": "exporte",
           "prefix": "impfzentrum/"})
}

/// One site; an offering with a data export (`impfen`) and one without (`ohne`); two
/// Gemeinden. Returns their ids.
async fn federation(kit: &Kit) -> (String, String) {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    verbund_placement::ensure_default_policies(&kit.store, Utc::now())
        .await
        .expect("default policies");
    let bund = create_org(app, admin, bund()).await;
    let sh = create_org(app, admin, land("Schleswig-Holstein", "01", &bund)).await;
    let a = create_org(
        app,
        admin,
        gemeinde("Flensburg", "010010000000", "01001000", &sh),
    )
    .await;
    let b = create_org(
        app,
        admin,
        gemeinde("Kiel", "010020000000", "01002000", &sh),
    )
    .await;
    ok(
        post(app, admin, "/api/v1/providers", provider("p1")).await,
        StatusCode::CREATED,
    );
    let mut s = site("s1", "p1");
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
    for (name, export) in [("impfen", true), ("ohne", false)] {
        let mut o = offering(name, &a);
        if export {
            o["data_export"] = json!({"image": "registry.example.de/impfen/export:1.0",
                                      "command": ["/export"], "timeout_seconds": 1800});
        }
        ok(
            post(app, admin, "/api/v1/offerings", o).await,
            StatusCode::CREATED,
        );
        ok(
            post(
                app,
                admin,
                &format!("/api/v1/offerings/{name}/versions"),
                version("1.0.0"),
            )
            .await,
            StatusCode::CREATED,
        );
    }
    (a, b)
}

/// Books `offering` for `org` at `t0`, with `ending` (JSON `null` for none).
async fn book(kit: &Kit, org: &str, offering: &str, ending: Value) -> Value {
    let mut body = json!({"organisation": org, "offering": offering, "plan": "s"});
    if !ending.is_null() {
        body["ending"] = ending;
    }
    let r = ok(
        post(&kit.app_at(t0()), &kit.admin, "/api/v1/bookings", body).await,
        StatusCode::CREATED,
    );
    r["booking"].clone()
}

async fn read(kit: &Kit, id: &str) -> Value {
    ok(
        get(&kit.app, &kit.admin, &format!("/api/v1/bookings/{id}")).await,
        StatusCode::OK,
    )
}

/// The booking's delivered files by name (its folder in the site's desired state).
async fn delivered(kit: &Kit, id: &str) -> Vec<(String, String)> {
    let r = get(
        &kit.app,
        &kit.admin,
        &format!("/api/v1/bookings/{id}/manifests"),
    )
    .await;
    if r.0 != StatusCode::OK {
        return Vec::new();
    }
    r.2.as_array()
        .expect("files")
        .iter()
        .map(|f| {
            let path = f["path"].as_str().unwrap_or_default();
            let name = path.rsplit('/').next().unwrap_or_default().to_string();
            (name, f["content"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

async fn export_yaml(kit: &Kit, id: &str) -> Option<String> {
    delivered(kit, id)
        .await
        .into_iter()
        .find(|(name, _)| name == "export.yaml")
        .map(|(_, content)| content)
}

async fn count(kit: &Kit, action: &str) -> usize {
    let events = ok(
        get(
            &kit.app,
            &kit.admin,
            &format!("/api/v1/audit?action={action}&limit=100"),
        )
        .await,
        StatusCode::OK,
    );
    // The filter matches a prefix (`booking.end` also finds `booking.end-reminder`).
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .count()
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

/// The site's agent, reporting the booking's export Job.
struct Site {
    token: String,
    sequence: std::sync::atomic::AtomicU64,
}

impl Site {
    async fn new(kit: &Kit) -> Site {
        Site {
            token: site_token(kit, "s1").await,
            sequence: std::sync::atomic::AtomicU64::new(1),
        }
    }

    async fn report(&self, kit: &Kit, at: DateTime<Utc>, booking: &str, export: Value) -> Resp {
        let sequence = self
            .sequence
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let body = json!({
            "sequence": sequence,
            "agent": {"name": "verbund-agent/test", "interval_seconds": 10},
            "site": {"kubernetes_version": "v1.33.2", "health": "healthy",
                     "free": {"cpu_millis": 1000, "memory_mib": 2048, "storage_gib": 100}},
            "bookings": [{"booking": booking, "applied_version": "1.0.0", "desired_replicas": 1,
                          "ready_replicas": 1, "conditions": [], "smoke_test": "none",
                          "export": export}],
        });
        post(
            &kit.app_at(at),
            &self.token,
            "/api/v1/sites/s1/reports",
            body,
        )
        .await
    }
}

fn succeeded(job: &str, written: &str, read_back: &str) -> Value {
    json!({"job": job, "status": "succeeded",
           "sums": {"sha256": written, "read_back_sha256": read_back, "bytes": 52_428_800}})
}

fn sha(c: char) -> String {
    c.to_string().repeat(64)
}

async fn a_temporary_booking_is_reminded_exported_verified_and_torn_down(kit: Kit) {
    let (a_org, _) = federation(&kit).await;
    let a = book(
        &kit,
        &a_org,
        "impfen",
        json!({"ends_on": "2027-06-30", "export_to": target()}),
    )
    .await;
    assert_eq!(a["state"], "placed", "{a}");
    assert_eq!(a["ending"]["ends_on"], "2027-06-30");
    assert_eq!(a["ending"]["export_to"], target());
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
    // Fourteen days before the end (1 July, 00:00 German summer time): reminded once.
    let remind = Utc.with_ymd_and_hms(2027, 6, 16, 22, 0, 0).unwrap();
    assert_eq!(sweep_both(remind - chrono::Duration::minutes(1)).await, 0);
    assert_eq!(sweep_both(remind).await, 1);
    assert_eq!(sweep_both(remind).await, 0, "nothing is due twice");
    assert_eq!(count(&kit, "booking.end-reminder").await, 1);
    let reminded = read(&kit, id).await;
    assert_eq!(reminded["ending"]["reminded_at"], "2027-06-16T22:00:00Z");
    assert_eq!(reminded["state"], "placed");
    assert_eq!(
        export_yaml(&kit, id).await,
        None,
        "no export before the end"
    );

    // The end: exporting, once; the export Job is in the desired state beside the app.
    let end = Utc.with_ymd_and_hms(2027, 6, 30, 22, 0, 0).unwrap();
    assert_eq!(sweep_both(end - chrono::Duration::minutes(1)).await, 0);
    assert_eq!(sweep_both(end).await, 1);
    assert_eq!(sweep_both(end).await, 0);
    assert_eq!(count(&kit, "booking.end").await, 1);
    let ended = read(&kit, id).await;
    assert_eq!(ended["state"], "exporting", "{ended}");
    let run = &ended["ending"]["export"];
    assert_eq!(run["attempt"], 1);
    assert_eq!(run["outcome"]["state"], "running");
    assert_eq!(
        run["object"],
        format!("impfzentrum/{id}/2027-07-01-1.tar.gz")
    );
    let job = export_yaml(&kit, id).await.expect("export.yaml");
    for needed in [
        "kind: Job",
        "name: data-export-1",
        "image: registry.example.de/impfen/export:1.0",
        "activeDeadlineSeconds: 1800",
        "EXPORT_OBJECT",
        "kind: NetworkPolicy",
        "name: allow-export",
    ] {
        assert!(job.contains(needed), "{needed} missing:\n{job}");
    }
    let files: Vec<String> = delivered(&kit, id)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        files.contains(&"app.yaml".to_string()),
        "the app keeps running: {files:?}"
    );
    assert_eq!(
        site_used(&kit).await,
        500,
        "capacity is held while exporting"
    );

    // The site reports the Job running, then done with agreeing checksums.
    let site = Site::new(&kit).await;
    let running = json!({"job": "data-export-1", "status": "running"});
    ok(site.report(&kit, end, id, running).await, StatusCode::OK);
    assert_eq!(sweep_both(end).await, 0);
    assert_eq!(read(&kit, id).await["state"], "exporting");
    let done = succeeded("data-export-1", &sha('a'), &sha('a'));
    ok(site.report(&kit, end, id, done).await, StatusCode::OK);
    // Verified once (then the same pass retains it: cancelling → retained).
    assert!(sweep_both(end).await >= 2);
    assert_eq!(sweep_both(end).await, 0);
    assert_eq!(count(&kit, "booking.export-verified").await, 1);
    let after = read(&kit, id).await;
    assert_eq!(after["state"], "retained", "{after}");
    let outcome = &after["ending"]["export"]["outcome"];
    assert_eq!(outcome["state"], "verified");
    assert_eq!(outcome["sha256"], sha('a'));
    assert_eq!(outcome["bytes"], 52_428_800);
    assert!(
        after["reason"].as_str().unwrap().contains(&sha('a')),
        "the record names the checksum: {after}"
    );
    assert_eq!(delivered(&kit, id).await, Vec::new(), "torn down");
    assert_eq!(site_used(&kit).await, 0);
    let trail: Vec<String> = audit_actions(&kit, &format!("booking/{id}"))
        .await
        .into_iter()
        .map(|(_, action)| action)
        .collect();
    for action in [
        "booking.end-reminder",
        "booking.end",
        "booking.export-verified",
        "booking.retain",
    ] {
        assert!(trail.contains(&action.to_string()), "{action}: {trail:?}");
    }
}

async fn a_failed_export_keeps_everything_until_an_attempt_is_verified(kit: Kit) {
    let (a_org, _) = federation(&kit).await;
    let a = book(
        &kit,
        &a_org,
        "impfen",
        json!({"ends_on": "2027-06-30", "export_to": target()}),
    )
    .await;
    let id = a["id"].as_str().unwrap();
    let sweeper = verbund_placement::Bookings::new(kit.store.clone());
    let at = Utc.with_ymd_and_hms(2027, 3, 1, 9, 0, 0).unwrap();
    // Ended early by the organisation: to its own target.
    let ended = ok(
        post(
            &kit.app_at(at),
            &kit.admin,
            &format!("/api/v1/bookings/{id}/end"),
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(ended["state"], "exporting", "{ended}");
    assert_eq!(ended["ending"]["ends_on"], "2027-03-01");
    let site = Site::new(&kit).await;

    // The Job fails: nothing is torn down, the reason says why.
    let failed = json!({"job": "data-export-1", "status": "failed", "message": "AccessDenied"});
    ok(site.report(&kit, at, id, failed).await, StatusCode::OK);
    assert_eq!(sweeper.sweep("system/lifecycle", at).await.unwrap(), 1);
    assert_eq!(sweeper.sweep("system/lifecycle", at).await.unwrap(), 0);
    let b = read(&kit, id).await;
    assert_eq!(b["state"], "exporting");
    assert_eq!(b["ending"]["export"]["outcome"]["state"], "failed");
    assert!(
        b["reason"].as_str().unwrap().contains("AccessDenied"),
        "{b}"
    );
    assert!(export_yaml(&kit, id)
        .await
        .unwrap()
        .contains("data-export-1"));
    assert_eq!(site_used(&kit).await, 500);
    assert_eq!(count(&kit, "booking.export-failed").await, 1);

    // Tried again: a Job of its own. The old Job's success does not count for it.
    let retried = ok(
        post(
            &kit.app_at(at),
            &kit.admin,
            &format!("/api/v1/bookings/{id}/export/retry"),
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(retried["ending"]["export"]["attempt"], 2);
    let job = export_yaml(&kit, id).await.unwrap();
    assert!(
        job.contains("name: data-export-2") && !job.contains("data-export-1"),
        "{job}"
    );
    let old = succeeded("data-export-1", &sha('a'), &sha('a'));
    ok(site.report(&kit, at, id, old).await, StatusCode::OK);
    assert_eq!(sweeper.sweep("system/lifecycle", at).await.unwrap(), 0);
    // The target holds other data than was written: not verified, nothing deleted.
    let torn = succeeded("data-export-2", &sha('a'), &sha('b'));
    ok(site.report(&kit, at, id, torn).await, StatusCode::OK);
    assert_eq!(sweeper.sweep("system/lifecycle", at).await.unwrap(), 1);
    let b = read(&kit, id).await;
    assert_eq!(b["state"], "exporting");
    assert!(b["reason"].as_str().unwrap().contains("read back"), "{b}");
    // A retry while one runs is refused.
    let again = ok(
        post(
            &kit.app_at(at),
            &kit.admin,
            &format!("/api/v1/bookings/{id}/export/retry"),
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(again["ending"]["export"]["attempt"], 3);
    let r = post(
        &kit.app_at(at),
        &kit.admin,
        &format!("/api/v1/bookings/{id}/export/retry"),
        json!({}),
    )
    .await;
    assert_problem(&r, StatusCode::CONFLICT, None);
    // The third attempt is verified: now it goes.
    let good = succeeded("data-export-3", &sha('c'), &sha('c'));
    ok(site.report(&kit, at, id, good).await, StatusCode::OK);
    sweeper.sweep("system/lifecycle", at).await.unwrap();
    let b = read(&kit, id).await;
    assert_eq!(b["state"], "retained", "{b}");
    assert_eq!(b["ending"]["export"]["outcome"]["sha256"], sha('c'));
    assert_eq!(count(&kit, "booking.export-failed").await, 2);
    assert_eq!(count(&kit, "booking.export-retry").await, 2);
}

async fn bad_endings_are_refused_and_change_nothing(kit: Kit) {
    let (a_org, b_org) = federation(&kit).await;
    let app = kit.app_at(t0());
    let try_book = async |offering: &str, ending: Value| {
        let body =
            json!({"organisation": a_org, "offering": offering, "plan": "s", "ending": ending});
        post(&app, &kit.admin, "/api/v1/bookings", body).await
    };
    let before = world(&kit).await;
    let good = json!({"ends_on": "2027-06-30", "export_to": target()});
    let r = try_book("ohne", good.clone()).await;
    let detail = assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("/ending"));
    assert!(detail.contains("no data export"), "{detail}");
    for (ending, field) in [
        (
            json!({"ends_on": "2027-01-09", "export_to": target()}),
            "/ending/ends_on",
        ),
        (
            json!({"ends_on": "2033-01-10", "export_to": target()}),
            "/ending/ends_on",
        ),
        (
            json!({"ends_on": "2027-06-30", "export_to": {"endpoint": "http://s3.example.de", "bucket": "exporte"}}),
            "/ending/export_to/endpoint",
        ),
        (
            json!({"ends_on": "2027-06-30", "export_to": {"endpoint": "https://u:pw@s3.example.de", "bucket": "exporte"}}),
            "/ending/export_to/endpoint",
        ),
        (
            json!({"ends_on": "2027-06-30", "export_to": {"endpoint": "https://s3.example.de", "bucket": "Exporte"}}),
            "/ending/export_to/bucket",
        ),
        (
            json!({"ends_on": "2027-06-30", "export_to": {"endpoint": "https://s3.example.de", "bucket": "exporte", "prefix": "../x/"}}),
            "/ending/export_to/prefix",
        ),
    ] {
        let r = try_book("impfen", ending.clone()).await;
        assert!(r.0.is_client_error(), "{ending} was taken: {}", r.2);
        let problem = r.2.to_string();
        assert!(problem.contains(field), "{ending}: {problem}");
    }
    for ending in [
        json!({"ends_on": "30.6.2027", "export_to": target()}),
        json!({"ends_on": "2027-06-30"}),
        json!({"ends_on": "2027-06-30", "export_to": target(), "keep": true}),
    ] {
        let r = try_book("impfen", ending.clone()).await;
        assert!(r.0.is_client_error(), "{ending} was taken: {}", r.2);
    }
    assert_unchanged(&kit, &before, "refused endings").await;

    // Ending a booking that runs for good needs a target; Kiel cannot end Flensburg's.
    let a = book(&kit, &a_org, "impfen", Value::Null).await;
    let id = a["id"].as_str().unwrap();
    let (_, kiel) = kit
        .user(
            "kiel",
            json!([{"role": "org-admin", "organisation": b_org}]),
        )
        .await;
    let end = format!("/api/v1/bookings/{id}/end");
    let r = post(&app, &kiel, &end, json!({"export_to": target()})).await;
    assert_eq!(r.0, StatusCode::NOT_FOUND, "{}", r.2);
    let r = post(&app, &kit.admin, &end, json!({})).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("/export_to"));
    let r = post(
        &app,
        &kit.admin,
        &format!("/api/v1/bookings/{id}/export/retry"),
        json!({}),
    )
    .await;
    assert_problem(&r, StatusCode::CONFLICT, None);
    assert_eq!(read(&kit, id).await["state"], "placed");
    // A site's malformed export report is refused whole.
    let site = Site::new(&kit).await;
    let bad = succeeded("data-export-1", &sha('a').to_uppercase(), &sha('a'));
    let r = site.report(&kit, t0(), id, bad).await;
    assert_problem(
        &r,
        StatusCode::BAD_REQUEST,
        Some("/bookings/0/export/sums/sha256"),
    );
    // Made temporary later, then ended: its end can no longer change.
    let patched = ok(
        send(
            &app,
            request(
                axum::http::Method::PATCH,
                &format!("/api/v1/bookings/{id}"),
                &kit.admin,
                Some(&json!({"ending": {"ends_on": "2027-02-28", "export_to": target()}})),
            ),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(patched["ending"]["ends_on"], "2027-02-28");
    ok(
        post(&app, &kit.admin, &end, json!({})).await,
        StatusCode::OK,
    );
    let r = send(
        &app,
        request(
            axum::http::Method::PATCH,
            &format!("/api/v1/bookings/{id}"),
            &kit.admin,
            Some(&json!({"ending": {"ends_on": "2027-03-31", "export_to": target()}})),
        ),
    )
    .await;
    assert_problem(&r, StatusCode::CONFLICT, None);
    let r = post(&app, &kit.admin, &end, json!({})).await;
    assert_problem(&r, StatusCode::CONFLICT, None);
}
