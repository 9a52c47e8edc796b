//! A booking's dependencies through the real router on SQLite and PostgreSQL (issue 18,
//! reuse within an organisation): a dependency that needs a configuration of its own is
//! booked together with the booking that needs it, in one request and on one site; a
//! later booking binds the organisation's running one by choice; the preview offers the
//! running candidates; the bound booking shows its dependents and cannot be cancelled
//! before them; and every malformed or foreign choice is refused and changes nothing.

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
use chrono::Utc;
use common::*;
use serde_json::{json, Value};

api_tests!(
    a_configured_dependency_comes_with_the_booking_and_is_bound_by_the_next,
    dependency_choices_that_cannot_hold_are_refused_and_change_nothing,
);

struct World {
    muenchen: String,
    augsburg: String,
}

/// Bayern with München and Augsburg; two sites; `keycloak` (needs a realm, has a declared
/// secret) and `matrix`, which depends on it; both internal data.
async fn world(kit: &Kit) -> World {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    verbund_placement::ensure_default_policies(&kit.store, Utc::now())
        .await
        .expect("default policies");
    let bund = create_org(app, admin, bund()).await;
    let by = create_org(app, admin, land("Bayern", "09", &bund)).await;
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
    ok(
        post(app, admin, "/api/v1/providers", provider("p1")).await,
        StatusCode::CREATED,
    );
    // Sites that can receive sealed secrets (Keycloak declares one).
    let (_, recipient) = verbund_seal::Identities::generate();
    for name in ["s1", "s2"] {
        let mut s = site(name, "p1");
        s["age_recipient"] = json!(recipient);
        ok(
            post(app, admin, "/api/v1/sites", s).await,
            StatusCode::CREATED,
        );
    }
    let mut keycloak = offering("keycloak", &bund);
    keycloak["data_classes"] = json!(["internal"]);
    keycloak["plans"] = json!([
        {"name": "s", "display_name": "Small", "replicas": 1,
         "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 10},
         "monthly_price_cents": 9900},
        {"name": "m", "display_name": "Medium", "replicas": 2,
         "resources": {"cpu_millis": 1000, "memory_mib": 1024, "storage_gib": 20},
         "monthly_price_cents": 19900}
    ]);
    keycloak["config_schema"] = json!({
        "type": "object",
        "required": ["realm"],
        "properties": {
            "realm": {"type": "string", "pattern": "^[a-z]+$"},
            "admin_password": {"type": "string", "writeOnly": true, "minLength": 12}
        }
    });
    // It can be booked for a time (it exports its data at the end).
    keycloak["data_export"] = json!({"image": "registry.example.de/keycloak/export:1.0",
                                     "command": ["/export"]});
    let mut matrix = offering("matrix", &bund);
    matrix["data_classes"] = json!(["internal"]);
    matrix["dependencies"] = json!([{"offering": "keycloak"}]);
    // An archive whose bookings need a federation admin's approval, and a file system
    // that needs it.
    let mut archiv = offering("archiv", &bund);
    archiv["data_classes"] = json!(["internal"]);
    archiv["requires_approval"] = json!(true);
    let mut akte = offering("akte", &bund);
    akte["data_classes"] = json!(["internal"]);
    akte["dependencies"] = json!([{"offering": "archiv"}]);
    for o in [keycloak, matrix, archiv, akte] {
        let name = o["name"].as_str().unwrap().to_string();
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
    World { muenchen, augsburg }
}

fn matrix(organisation: &str, dependencies: Value) -> Value {
    json!({"organisation": organisation, "offering": "matrix", "plan": "s",
           "config": {"domain": "chat.example.de"}, "dependencies": dependencies})
}

async fn preview(kit: &Kit, organisation: &str) -> Value {
    ok(
        post(
            &kit.app,
            &kit.admin,
            "/api/v1/placement/preview",
            json!({"organisation": organisation, "offering": "matrix", "plan": "s"}),
        )
        .await,
        StatusCode::OK,
    )
}

async fn keycloaks(kit: &Kit, organisation: &str) -> Vec<Value> {
    all(
        &kit.app,
        &kit.admin,
        &format!("/api/v1/bookings?organisation={organisation}&offering=keycloak"),
    )
    .await
}

async fn a_configured_dependency_comes_with_the_booking_and_is_bound_by_the_next(kit: Kit) {
    let w = world(&kit).await;
    let (app, admin) = (&kit.app, kit.admin.as_str());

    // Keycloak needs a realm: without one given, and with none running, Matrix cannot
    // be booked — and the refusal says how it can.
    let unconfigured = matrix(&w.muenchen, json!({}));
    let detail = refused_with(&kit, unconfigured, StatusCode::CONFLICT, None).await;
    assert!(detail.contains("needs its own configuration"), "{detail}");
    assert!(detail.contains("`dependencies`"), "{detail}");
    let p = preview(&kit, &w.muenchen).await;
    let dep = &p["dependencies"][0];
    assert_eq!(dep["offering"], "keycloak");
    assert!(dep["needs_configuration"].is_string(), "{p}");
    assert_eq!(dep["running"], json!([]));

    // Booked together: one request, Keycloak created with its realm (its password kept
    // apart), on Matrix's site, as Matrix's dependency.
    let together = matrix(
        &w.muenchen,
        json!({"keycloak": {"plan": "m",
                            "config": {"realm": "muenchen", "admin_password": "correct-horse-battery"}}}),
    );
    let created = ok(
        post(app, admin, "/api/v1/bookings", together).await,
        StatusCode::CREATED,
    );
    let first = &created["booking"];
    assert_eq!(first["state"], "placed", "{created}");
    let kc = &created["dependencies"][0];
    assert_eq!(kc["offering"], "keycloak");
    assert_eq!(kc["plan"], "m");
    assert_eq!(kc["config"], json!({"realm": "muenchen"}));
    assert_eq!(kc["secrets_set"], json!(["/admin_password"]));
    assert_eq!(kc["site"], first["site"]);
    assert_eq!(kc["dependency_of"], first["id"]);
    assert_eq!(first["dependencies"], json!([kc["id"]]));
    assert!(!created.to_string().contains("correct-horse"), "{created}");
    let kc_id = kc["id"].as_str().unwrap().to_string();

    // The preview now offers the running Keycloak to bind.
    let p = preview(&kit, &w.muenchen).await;
    let running = &p["dependencies"][0]["running"];
    assert_eq!(running[0]["id"], kc_id.as_str(), "{p}");
    assert_eq!(running[0]["site"], first["site"]);
    assert_eq!(p["dependencies"][0]["bound"], kc_id.as_str());

    // A second Matrix binds it by choice: on its site, no new Keycloak.
    let bound = ok(
        post(
            app,
            admin,
            "/api/v1/bookings",
            matrix(&w.muenchen, json!({"keycloak": {"booking": kc_id}})),
        )
        .await,
        StatusCode::CREATED,
    );
    let second = &bound["booking"];
    assert_eq!(second["state"], "placed", "{bound}");
    assert_eq!(second["site"], first["site"]);
    assert_eq!(second["dependencies"], json!([kc_id]));
    assert_eq!(bound["dependencies"], json!([]), "nothing new is created");
    assert_eq!(keycloaks(&kit, &w.muenchen).await.len(), 1);

    // The Keycloak shows both bookings that depend on it, and cannot go before them.
    let view = ok(
        get(app, admin, &format!("/api/v1/bookings/{kc_id}")).await,
        StatusCode::OK,
    );
    let mut dependents: Vec<&str> = view["dependents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    dependents.sort_unstable();
    let mut expected = vec![
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    ];
    expected.sort_unstable();
    assert_eq!(dependents, expected, "{view}");
    assert!(view["dependents"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["offering"] == "matrix"));
    let r = delete(app, admin, &format!("/api/v1/bookings/{kc_id}")).await;
    let detail = assert_problem(&r, StatusCode::CONFLICT, None);
    for id in &expected {
        assert!(detail.contains(id), "{detail}");
    }
}

async fn dependency_choices_that_cannot_hold_are_refused_and_change_nothing(kit: Kit) {
    let w = world(&kit).await;
    let (app, admin) = (&kit.app, kit.admin.as_str());
    // Augsburg runs a Keycloak and a Matrix of its own; München books nothing yet.
    let theirs = ok(
        post(
            app,
            admin,
            "/api/v1/bookings",
            matrix(
                &w.augsburg,
                json!({"keycloak": {"config": {"realm": "augsburg"}}}),
            ),
        )
        .await,
        StatusCode::CREATED,
    );
    let their_matrix = theirs["booking"]["id"].as_str().unwrap().to_string();
    let their_keycloak = theirs["dependencies"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let before = world_state(&kit).await;
    for (choice, pointer, says) in [
        (
            json!({"postgresql": {"config": {}}}),
            "/dependencies/postgresql",
            "does not depend on `postgresql`",
        ),
        (
            json!({"keycloak": {"booking": their_keycloak, "config": {"realm": "x"}}}),
            "/dependencies/keycloak",
            "not both",
        ),
        (json!({"keycloak": {}}), "/dependencies/keycloak", "say how"),
        (
            json!({"keycloak": {"booking": their_keycloak, "plan": "m"}}),
            "/dependencies/keycloak/plan",
            "keeps its plan",
        ),
        // Another organisation's Keycloak is not München's to bind.
        (
            json!({"keycloak": {"booking": their_keycloak}}),
            "/dependencies/keycloak/booking",
            "no booking",
        ),
        (
            json!({"keycloak": {"config": {"realm": "Not A Realm"}}}),
            "/dependencies/keycloak/config/realm",
            "",
        ),
        (
            json!({"keycloak": {"config": {}}}),
            "/dependencies/keycloak/config",
            "realm",
        ),
        (
            json!({"keycloak": {"plan": "xl", "config": {"realm": "muenchen"}}}),
            "/dependencies/keycloak/plan",
            "no plan `xl`",
        ),
    ] {
        let r = post(
            app,
            admin,
            "/api/v1/bookings",
            matrix(&w.muenchen, choice.clone()),
        )
        .await;
        assert!(
            r.0 == StatusCode::UNPROCESSABLE_ENTITY || r.0 == StatusCode::NOT_FOUND,
            "{choice}: {} {}",
            r.0,
            r.2
        );
        assert_eq!(r.2["field"], pointer, "{choice}: {}", r.2);
        let detail = r.2["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{choice}: {detail}");
    }
    // Augsburg's own Matrix is no Keycloak.
    let body = matrix(&w.augsburg, json!({"keycloak": {"booking": their_matrix}}));
    let detail = refused_with(&kit, body, UNPROCESSABLE, Some(BOUND_AT)).await;
    assert!(detail.contains("not of `keycloak`"), "{detail}");
    assert_unchanged(&kit, &before, "refused dependency choices").await;

    // A Keycloak booked for a time ends on its own: it is never bound, by choice or by
    // placement.
    let in_a_year = (Utc::now() + chrono::Duration::days(365))
        .date_naive()
        .to_string();
    let temporary = ok(
        post(
            app,
            admin,
            "/api/v1/bookings",
            json!({"organisation": w.muenchen, "offering": "keycloak", "plan": "s",
                   "config": {"realm": "muenchen"},
                   "ending": {"ends_on": in_a_year,
                              "export_to": {"endpoint": "https://s3.muenchen.de",
                                            "bucket": "exporte", "prefix": "keycloak/"}}}),
        )
        .await,
        StatusCode::CREATED,
    );
    let temporary = temporary["booking"]["id"].as_str().unwrap().to_string();
    let body = matrix(&w.muenchen, json!({"keycloak": {"booking": temporary}}));
    let detail = refused_with(&kit, body, UNPROCESSABLE, Some(BOUND_AT)).await;
    assert!(detail.contains("booked for a time"), "{detail}");
    let unconfigured = matrix(&w.muenchen, json!({}));
    let detail = refused_with(&kit, unconfigured, StatusCode::CONFLICT, None).await;
    assert!(detail.contains("needs its own configuration"), "{detail}");

    // An archive's bookings need approval: it is not booked along with a file system,
    // neither by placement nor configured by choice.
    let refused = ok(
        post(
            app,
            admin,
            "/api/v1/bookings",
            json!({"organisation": w.muenchen, "offering": "akte", "plan": "s", "config": {}}),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_eq!(refused["booking"]["state"], "rejected", "{refused}");
    let reason = refused["booking"]["reason"].as_str().unwrap();
    assert!(reason.contains("approval"), "{reason}");
    assert_eq!(refused["dependencies"], json!([]));
    let body = json!({"organisation": w.muenchen, "offering": "akte", "plan": "s",
                      "config": {}, "dependencies": {"archiv": {"config": {}}}});
    let detail = refused_with(&kit, body, UNPROCESSABLE, Some("/dependencies/archiv")).await;
    assert!(detail.contains("approval"), "{detail}");
}

const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;
/// Where a binding's refusal points.
const BOUND_AT: &str = "/dependencies/keycloak/booking";

/// Books `body` as the admin, which must be refused with `status` at `pointer`; the
/// problem's detail.
async fn refused_with(kit: &Kit, body: Value, status: StatusCode, pointer: Option<&str>) -> String {
    let r = post(&kit.app, &kit.admin, "/api/v1/bookings", body).await;
    assert_problem(&r, status, pointer)
}

/// Everything a refused booking must leave as it was.
async fn world_state(kit: &Kit) -> Value {
    common::world(kit).await
}
