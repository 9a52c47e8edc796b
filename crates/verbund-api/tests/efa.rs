//! "Einer für Alle" in the catalog through the real router on SQLite and PostgreSQL
//! (issue 18): an offering states the OZG service it implements and its EfA status — the
//! operating Land and the Länder it serves —, the catalog filters by both, and a status
//! that cannot hold is refused and changes nothing.

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
use verbund_domain::directory::OzgService;

api_tests!(the_catalog_filters_einer_fuer_alle_services);

async fn names(kit: &Kit, query: &str) -> Vec<String> {
    all(&kit.app, &kit.admin, &format!("/api/v1/offerings{query}"))
        .await
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect()
}

async fn the_catalog_filters_einer_fuer_alle_services(kit: Kit) {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    let bund = create_org(app, admin, bund()).await;
    let service = |id: &str, name: &str| OzgService {
        id: id.into(),
        name: name.into(),
        situation: "Wohnen".into(),
        field: "Bauen & Wohnen".into(),
    };
    kit.store
        .import_ozg(
            "test/setup",
            "test",
            &[
                service("10048", "Baugenehmigung"),
                service("10236", "Wohngeld"),
            ],
            Utc::now(),
        )
        .await
        .expect("the OZG services");
    let efa = |name: &str, ozg: &str, efa: Value| {
        let mut o = offering(name, &bund);
        o["ozg_id"] = json!(ozg);
        o["efa"] = efa;
        o
    };
    for o in [
        // Bayern builds it for Bayern and Sachsen; Sachsen-Anhalt's for every Land.
        efa(
            "bauantrag",
            "10048",
            json!({"operator": "09", "for_laender": ["09", "14"]}),
        ),
        efa("wohngeld", "10236", json!({"operator": "15"})),
        offering("nextcloud", &bund),
    ] {
        ok(
            post(app, admin, "/api/v1/offerings", o).await,
            StatusCode::CREATED,
        );
    }
    let o = ok(
        get(app, admin, "/api/v1/offerings/bauantrag").await,
        StatusCode::OK,
    );
    assert_eq!(
        o["efa"],
        json!({"operator": "09", "for_laender": ["09", "14"]})
    );

    assert_eq!(names(&kit, "?efa=true").await, ["bauantrag", "wohngeld"]);
    assert_eq!(names(&kit, "?efa=false").await, ["nextcloud"]);
    assert_eq!(names(&kit, "?efa_for=14").await, ["bauantrag", "wohngeld"]);
    assert_eq!(names(&kit, "?efa_for=01").await, ["wohngeld"]);
    assert_eq!(names(&kit, "?efa_for=09&ozg_id=10048").await, ["bauantrag"]);
    let r = get(app, admin, "/api/v1/offerings?efa_for=17").await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("/efa_for"));

    // What cannot hold: EfA without the OZG service it implements, a Land that does not
    // exist — refused, nothing changed.
    let before = world(&kit).await;
    let mut no_ozg = offering("ohne-ozg", &bund);
    no_ozg["efa"] = json!({"operator": "09"});
    let r = post(app, admin, "/api/v1/offerings", no_ozg).await;
    let detail = assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("/efa"));
    assert!(detail.contains("ozg_id"), "{detail}");
    for (bad, at) in [
        (json!({"operator": "17"}), "/efa/operator"),
        (
            json!({"operator": "09", "for_laender": ["00"]}),
            "/efa/for_laender",
        ),
    ] {
        let r = post(
            app,
            admin,
            "/api/v1/offerings",
            efa("kaputt", "10048", bad.clone()),
        )
        .await;
        assert_problem(&r, StatusCode::BAD_REQUEST, Some(at));
    }
    assert_unchanged(&kit, &before, "refused EfA statuses").await;
    // Whom a service serves is the federation's statement, not its vendor's: the vendor
    // may change its offering, but not its EfA status.
    let (_, vendor) = kit
        .user(
            "anbieter",
            json!([{"role": "vendor", "organisation": bund}]),
        )
        .await;
    let mut theirs = ok(
        get(app, admin, "/api/v1/offerings/bauantrag").await,
        StatusCode::OK,
    );
    for k in ["latest_version", "created_at", "updated_at"] {
        theirs.as_object_mut().unwrap().remove(k);
    }
    theirs["description"] = json!("Neu beschrieben.");
    ok(
        put(app, &vendor, "/api/v1/offerings/bauantrag", theirs.clone()).await,
        StatusCode::OK,
    );
    theirs["efa"]["for_laender"] = json!([]);
    let r = put(app, &vendor, "/api/v1/offerings/bauantrag", theirs).await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    let mut own = efa("eigenes", "10048", json!({"operator": "11"}));
    own["vendor"] = json!(bund);
    let r = post(app, &vendor, "/api/v1/offerings", own).await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    // Taken back, an offering is EfA no more.
    let mut plain = ok(
        get(app, admin, "/api/v1/offerings/wohngeld").await,
        StatusCode::OK,
    );
    plain["efa"] = Value::Null;
    for k in ["latest_version", "created_at", "updated_at"] {
        plain.as_object_mut().unwrap().remove(k);
    }
    ok(
        put(app, admin, "/api/v1/offerings/wohngeld", plain).await,
        StatusCode::OK,
    );
    assert_eq!(names(&kit, "?efa=true").await, ["bauantrag"]);
}
