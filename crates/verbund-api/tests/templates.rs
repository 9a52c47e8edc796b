//! Nachnutzung through the real router on SQLite and PostgreSQL (issue 18): München
//! publishes its Hundesteuer booking's configuration as a template for Bayern; Augsburg
//! adopts it with one change (the lineage recorded and shown, the difference named);
//! Flensburg, in another Land, does not see it; München changes its booking and the
//! template, Augsburg sees the change and takes it over, keeping its own; and every
//! template or adoption that cannot hold is refused and changes nothing.

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
use chrono::Utc;
use common::*;
use serde_json::{json, Value};

api_tests!(a_template_is_published_adopted_and_its_change_taken_over);

struct World {
    muenchen: String,
    augsburg: String,
    flensburg: String,
    /// München's Hundesteuer booking.
    booking: String,
}

fn config(municipality: &str, rate: u32) -> Value {
    json!({"municipality": municipality, "rate_first_dog": rate, "rate_further_dog": 150,
           "sepa_mandate": true, "admin_password": "ein-geheimes-passwort"})
}

async fn world(kit: &Kit) -> World {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    verbund_placement::ensure_default_policies(&kit.store, Utc::now())
        .await
        .expect("default policies");
    let bund = create_org(app, admin, bund()).await;
    let by = create_org(app, admin, land("Bayern", "09", &bund)).await;
    let sh = create_org(app, admin, land("Schleswig-Holstein", "01", &bund)).await;
    let muenchen = create_org(
        app,
        admin,
        gemeinde("München", "091620000000", "09162000", &by),
    )
    .await;
    let augsburg = create_org(
        app,
        admin,
        gemeinde("Augsburg", "097610000000", "09761000", &by),
    )
    .await;
    let flensburg = create_org(
        app,
        admin,
        gemeinde("Flensburg", "010010000000", "01001000", &sh),
    )
    .await;
    ok(
        post(app, admin, "/api/v1/providers", provider("p1")).await,
        StatusCode::CREATED,
    );
    let (_, recipient) = verbund_seal::Identities::generate();
    let mut s = site("s1", "p1");
    s["age_recipient"] = json!(recipient);
    ok(
        post(app, admin, "/api/v1/sites", s).await,
        StatusCode::CREATED,
    );
    let mut o = offering("hundesteuer", &bund);
    o["data_classes"] = json!(["internal"]);
    o["config_schema"] = json!({
        "type": "object",
        "required": ["municipality", "rate_first_dog"],
        "properties": {
            "municipality": {"type": "string", "minLength": 2},
            "rate_first_dog": {"type": "integer", "minimum": 0},
            "rate_further_dog": {"type": "integer", "minimum": 0},
            "sepa_mandate": {"type": "boolean"},
            "admin_password": {"type": "string", "writeOnly": true, "minLength": 12}
        }
    });
    ok(
        post(app, admin, "/api/v1/offerings", o).await,
        StatusCode::CREATED,
    );
    ok(
        post(
            app,
            admin,
            "/api/v1/offerings/hundesteuer/versions?rollout=false",
            version("1.0.0"),
        )
        .await,
        StatusCode::CREATED,
    );
    let created = ok(
        post(
            app,
            admin,
            "/api/v1/bookings",
            json!({"organisation": muenchen, "offering": "hundesteuer", "plan": "s",
                   "config": config("München", 100)}),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_eq!(created["booking"]["state"], "placed", "{created}");
    World {
        booking: created["booking"]["id"].as_str().unwrap().to_string(),
        muenchen,
        augsburg,
        flensburg,
    }
}

fn template_spec(booking: &str) -> Value {
    json!({"booking": booking, "name": "hundesteuer-muenchen",
           "display_name": "Hundesteuer nach Münchner Satzung",
           "description": "Sätze und SEPA wie in München.", "visibility": "land"})
}

async fn patch(app: &axum::Router, token: &str, path: &str, body: Value) -> Resp {
    send(app, request(Method::PATCH, path, token, Some(&body))).await
}

async fn a_template_is_published_adopted_and_its_change_taken_over(kit: Kit) {
    let w = world(&kit).await;
    let app = &kit.app;
    let (_, muc) = kit
        .user(
            "muenchen",
            json!([{"role": "org-admin", "organisation": w.muenchen}]),
        )
        .await;
    let (_, aug) = kit
        .user(
            "augsburg",
            json!([{"role": "org-admin", "organisation": w.augsburg}]),
        )
        .await;
    let (_, fl) = kit
        .user(
            "flensburg",
            json!([{"role": "org-admin", "organisation": w.flensburg}]),
        )
        .await;

    // Refused, changing nothing: another organisation's booking (hidden), a name that
    // is no label, a booking that does not exist.
    let before = audit_count(&kit).await;
    assert_problem(
        &post(app, &aug, "/api/v1/templates", template_spec(&w.booking)).await,
        StatusCode::NOT_FOUND,
        None,
    );
    let mut bad = template_spec(&w.booking);
    bad["name"] = json!("Groß und klein");
    assert_eq!(
        post(app, &muc, "/api/v1/templates", bad).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(audit_count(&kit).await, before);

    // München publishes: the configuration without its secret, the plan, version 1.
    let t = ok(
        post(app, &muc, "/api/v1/templates", template_spec(&w.booking)).await,
        StatusCode::CREATED,
    );
    let id = t["id"].as_str().unwrap().to_string();
    assert_eq!(t["version"], 1);
    assert_eq!(t["plan"], "s");
    assert_eq!(t["organisation"], json!(w.muenchen));
    assert!(
        t["config"].get("admin_password").is_none(),
        "no secret in a template: {t}"
    );
    assert_eq!(t["config"]["rate_first_dog"], 100);
    assert!(
        t.get("booking").is_none() && t.get("source").is_none(),
        "{t}"
    );
    assert_problem(
        &post(app, &muc, "/api/v1/templates", template_spec(&w.booking)).await,
        StatusCode::CONFLICT,
        None,
    );

    // Bayern's Augsburg sees it; Flensburg, in Schleswig-Holstein, does not.
    let seen = all(app, &aug, "/api/v1/templates?offering=hundesteuer").await;
    assert_eq!(seen.len(), 1);
    assert!(all(app, &fl, "/api/v1/templates").await.is_empty());
    assert_eq!(
        get(app, &fl, &format!("/api/v1/templates/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    let before = audit_count(&kit).await;
    assert_problem(
        &post(
            app,
            &fl,
            &format!("/api/v1/templates/{id}/adopt"),
            json!({"organisation": w.flensburg}),
        )
        .await,
        StatusCode::NOT_FOUND,
        None,
    );
    // Augsburg cannot adopt for München, nor with a configuration the schema refuses.
    assert_problem(
        &post(
            app,
            &aug,
            &format!("/api/v1/templates/{id}/adopt"),
            json!({"organisation": w.muenchen}),
        )
        .await,
        StatusCode::FORBIDDEN,
        None,
    );
    let mut wrong = t["config"].clone();
    wrong["rate_first_dog"] = json!(-5);
    assert_problem(
        &post(
            app,
            &aug,
            &format!("/api/v1/templates/{id}/adopt"),
            json!({"organisation": w.augsburg, "config": wrong}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/config/rate_first_dog"),
    );
    assert_eq!(audit_count(&kit).await, before, "refusals change nothing");

    // Augsburg adopts it with one change.
    let mut mine = t["config"].clone();
    mine["municipality"] = json!("Augsburg");
    let adopted = ok(
        post(
            app,
            &aug,
            &format!("/api/v1/templates/{id}/adopt"),
            json!({"organisation": w.augsburg, "config": mine}),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_eq!(adopted["differences"], json!(["/municipality"]));
    assert_eq!(adopted["booking"]["state"], "placed", "{adopted}");
    let booking = adopted["booking"]["id"].as_str().unwrap().to_string();
    let view = ok(
        get(app, &aug, &format!("/api/v1/bookings/{booking}")).await,
        StatusCode::OK,
    );
    let lineage = &view["template"];
    assert_eq!(lineage["template"], json!(id));
    assert_eq!(lineage["version"], 1);
    assert_eq!(lineage["organisation"], json!(w.augsburg));
    assert_eq!(lineage["publisher"], "München");
    assert_eq!(lineage["differences"], json!(["/municipality"]));
    assert_eq!(lineage["changes"], json!([]));
    let adoptions = audit_actions(&kit, &format!("template/{id}")).await;
    assert!(
        adoptions.iter().any(|(_, a)| a == "template.adopt"),
        "{adoptions:?}"
    );
    let listed = all(app, &aug, "/api/v1/templates?offering=hundesteuer").await;
    assert_eq!(listed[0]["adopters"], 1);

    // München raises its rate and changes the template: version 2; Augsburg sees it.
    let mut raised = config("München", 120);
    raised.as_object_mut().unwrap().remove("admin_password");
    ok(
        patch(
            app,
            &muc,
            &format!("/api/v1/bookings/{}", w.booking),
            json!({"config": raised}),
        )
        .await,
        StatusCode::OK,
    );
    let t2 = ok(
        put(
            app,
            &muc,
            &format!("/api/v1/templates/{id}"),
            template_spec(&w.booking),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(t2["version"], 2);
    assert_eq!(t2["config"]["rate_first_dog"], 120);
    let view = ok(
        get(app, &aug, &format!("/api/v1/bookings/{booking}/template")).await,
        StatusCode::OK,
    );
    assert_eq!(view["current_version"], 2);
    assert_eq!(view["changes"], json!(["/rate_first_dog"]));
    // Only its publisher changes a template.
    assert_problem(
        &put(
            app,
            &aug,
            &format!("/api/v1/templates/{id}"),
            template_spec(&booking),
        )
        .await,
        StatusCode::FORBIDDEN,
        None,
    );

    // Augsburg takes the change over and keeps its own.
    let taken = ok(
        post(
            app,
            &aug,
            &format!("/api/v1/bookings/{booking}/template/take-over"),
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(taken["config"]["rate_first_dog"], 120);
    assert_eq!(taken["config"]["municipality"], "Augsburg");
    let view = ok(
        get(app, &aug, &format!("/api/v1/bookings/{booking}/template")).await,
        StatusCode::OK,
    );
    assert_eq!(view["version"], 2);
    assert_eq!(view["changes"], json!([]));
    assert_eq!(view["differences"], json!(["/municipality"]));
    // Taking over again changes and records nothing.
    let before = audit_count(&kit).await;
    ok(
        post(
            app,
            &aug,
            &format!("/api/v1/bookings/{booking}/template/take-over"),
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(audit_count(&kit).await, before);
    let actions = audit_actions(&kit, &format!("template/{id}")).await;
    for action in [
        "template.publish",
        "template.adopt",
        "template.update",
        "template.take-over",
    ] {
        assert!(
            actions.iter().any(|(_, a)| a == action),
            "{action}: {actions:?}"
        );
    }
    // A booking not adopted has no lineage.
    assert_eq!(
        get(
            app,
            &muc,
            &format!("/api/v1/bookings/{}/template", w.booking)
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}
