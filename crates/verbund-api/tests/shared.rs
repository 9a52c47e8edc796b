//! Shared instances through the real router on SQLite and PostgreSQL (issue 18, "Einer
//! für Alle"): a Land books the one instance of a shared offering; 100 Gemeinden book
//! tenancies in it; those whose Land forbids the instance's site are refused with the
//! policy's reason; the instance's desired state lists exactly its tenants; its reports
//! carry its tenants along; a rollout of it is one rollout for all of them; a cancelled
//! tenancy leaves the instance and the other tenants untouched; and every tenancy that
//! cannot hold is refused and changes nothing.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use chrono::Utc;
use common::*;
use serde_json::{json, Value};

api_tests!(
    a_land_runs_one_instance_for_its_gemeinden,
    tenancies_that_cannot_hold_are_refused_and_change_nothing,
    an_einer_fuer_alle_instance_serves_the_laender_it_names,
);

/// How many Gemeinden book a tenancy: 90 of Schleswig-Holstein, 10 of Bayern.
const SH_GEMEINDEN: usize = 90;
const BY_GEMEINDEN: usize = 10;

struct World {
    bund: String,
    sh: String,
    /// Schleswig-Holstein's Gemeinden, then Bayern's.
    gemeinden: Vec<String>,
    /// Schleswig-Holstein's instance of `bauportal`.
    instance: String,
    /// A dedicated booking (of `jitsi`) of Schleswig-Holstein.
    dedicated: String,
}

/// The shared offering: each tenant names its portal's short name.
fn bauportal(vendor: &str) -> Value {
    let mut o = offering("bauportal", vendor);
    o["data_classes"] = json!(["internal"]);
    o["plans"] = json!([
        {"name": "s", "display_name": "Small", "replicas": 1,
         "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 10},
         "monthly_price_cents": 9900},
        {"name": "m", "display_name": "Medium", "replicas": 2,
         "resources": {"cpu_millis": 1000, "memory_mib": 1024, "storage_gib": 20},
         "monthly_price_cents": 19900}
    ]);
    o["tenancy"] = json!("shared");
    o["data_export"] = json!({"image": "registry.example.de/bauportal/export:1.0",
                              "command": ["/export"]});
    o["tenant_schema"] = json!({
        "type": "object",
        "required": ["kennung"],
        "additionalProperties": false,
        "properties": {
            "kennung": {"type": "string", "pattern": "^[a-z0-9-]{2,40}$"},
            "ansprechpartner": {"type": "string"}
        }
    });
    o
}

/// The Bund, Schleswig-Holstein and Bayern with their Gemeinden, two sites in Hamburg,
/// Bayern's policy that its data stays in Bayern, and Schleswig-Holstein's instance.
async fn world(kit: &Kit) -> World {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    verbund_placement::ensure_default_policies(&kit.store, Utc::now())
        .await
        .expect("default policies");
    let bund = create_org(app, admin, bund()).await;
    let sh = create_org(app, admin, land("Schleswig-Holstein", "01", &bund)).await;
    let by = create_org(app, admin, land("Bayern", "09", &bund)).await;
    let mut gemeinden = Vec::new();
    for i in 0..SH_GEMEINDEN {
        let ags = format!("01051{i:03}");
        let ars = format!("010510000{i:03}");
        gemeinden.push(
            create_org(
                app,
                admin,
                gemeinde(&format!("SH-Gemeinde {i}"), &ars, &ags, &sh),
            )
            .await,
        );
    }
    for i in 0..BY_GEMEINDEN {
        let ags = format!("09181{i:03}");
        let ars = format!("091810000{i:03}");
        gemeinden.push(
            create_org(
                app,
                admin,
                gemeinde(&format!("BY-Gemeinde {i}"), &ars, &ags, &by),
            )
            .await,
        );
    }
    ok(
        post(app, admin, "/api/v1/providers", provider("p1")).await,
        StatusCode::CREATED,
    );
    for name in ["s1", "s2"] {
        ok(
            post(app, admin, "/api/v1/sites", site(name, "p1")).await,
            StatusCode::CREATED,
        );
    }
    ok(
        post(
            app,
            admin,
            "/api/v1/policies",
            json!({"name": "daten-in-bayern", "layer": "land", "owner": by, "text":
                "@id(\"daten-in-bayern\")\n\
                 @description(\"Bayerns Daten bleiben in Bayern\")\n\
                 forbid (principal, action == Verbund::Action::\"place\", resource) \
                 when { resource.region != \"DE-BY\" };"}),
        )
        .await,
        StatusCode::CREATED,
    );
    let mut jitsi = offering("jitsi", &bund);
    jitsi["data_classes"] = json!(["internal"]);
    for o in [bauportal(&bund), jitsi] {
        let name = o["name"].as_str().unwrap().to_string();
        ok(
            post(app, admin, "/api/v1/offerings", o).await,
            StatusCode::CREATED,
        );
        ok(
            post(
                app,
                admin,
                &format!("/api/v1/offerings/{name}/versions?rollout=false"),
                version("1.0.0"),
            )
            .await,
            StatusCode::CREATED,
        );
    }
    let book = async |offering: &str| {
        let created = ok(
            post(
                app,
                admin,
                "/api/v1/bookings",
                json!({"organisation": sh, "offering": offering, "plan": "s"}),
            )
            .await,
            StatusCode::CREATED,
        );
        assert_eq!(created["booking"]["state"], "placed", "{created}");
        created["booking"]["id"].as_str().unwrap().to_string()
    };
    let instance = book("bauportal").await;
    let dedicated = book("jitsi").await;
    World {
        bund,
        sh,
        gemeinden,
        instance,
        dedicated,
    }
}

async fn tenancy(kit: &Kit, instance: &str, organisation: &str, config: Value) -> Resp {
    post(
        &kit.app,
        &kit.admin,
        &format!("/api/v1/bookings/{instance}/tenancies"),
        json!({"organisation": organisation, "config": config}),
    )
    .await
}

async fn read(kit: &Kit, id: &str) -> Value {
    ok(
        get(&kit.app, &kit.admin, &format!("/api/v1/bookings/{id}")).await,
        StatusCode::OK,
    )
}

/// The tenancies the instance's rendered desired state lists: the ids its tenant list's
/// ConfigMaps hold, and the entries themselves.
async fn listed_tenants(kit: &Kit, instance: &str) -> (BTreeSet<String>, Vec<Value>) {
    let files = ok(
        get(
            &kit.app,
            &kit.admin,
            &format!("/api/v1/bookings/{instance}/manifests"),
        )
        .await,
        StatusCode::OK,
    );
    let Some(file) = files
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("/tenants.yaml"))
    else {
        return Default::default();
    };
    let mut ids = BTreeSet::new();
    let mut entries = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(file["content"].as_str().unwrap()) {
        let cm: Value = serde::Deserialize::deserialize(doc).expect("a YAML document");
        assert_eq!(cm["kind"], "ConfigMap");
        assert_eq!(
            cm["metadata"]["labels"]["verbund.dev/tenant-list"],
            "bauportal"
        );
        for (key, entry) in cm["data"].as_object().unwrap() {
            let entry: Value = serde_json::from_str(entry.as_str().unwrap()).unwrap();
            assert_eq!(format!("{}.json", entry["booking"].as_str().unwrap()), *key);
            ids.insert(entry["booking"].as_str().unwrap().to_string());
            entries.push(entry);
        }
    }
    (ids, entries)
}

async fn a_land_runs_one_instance_for_its_gemeinden(kit: Kit) {
    let w = world(&kit).await;
    let app = &kit.app;
    let instance = read(&kit, &w.instance).await;
    let site = instance["site"].as_str().unwrap().to_string();
    let used_before = kit.store.site_usage().await.unwrap();

    // The catalog offers the instance to every organisation that may book.
    let (_, member) = kit
        .user(
            "gemeinde-0",
            json!([{"role": "org-admin", "organisation": w.gemeinden[0]}]),
        )
        .await;
    let offered = ok(
        get(app, &member, "/api/v1/offerings/bauportal/instances").await,
        StatusCode::OK,
    );
    assert_eq!(offered.as_array().unwrap().len(), 1, "{offered}");
    assert_eq!(offered[0]["booking"], json!(w.instance));
    assert_eq!(offered[0]["organisation_name"], "Schleswig-Holstein");
    assert_eq!(offered[0]["tenants"], 0);

    // 100 Gemeinden book tenancies; the first as its own admin.
    let mut placed = BTreeSet::new();
    let mut refused = Vec::new();
    for (i, g) in w.gemeinden.iter().enumerate() {
        let config = json!({"kennung": format!("gemeinde-{i}")});
        let r = if i == 0 {
            post(
                app,
                &member,
                &format!("/api/v1/bookings/{}/tenancies", w.instance),
                json!({"organisation": g, "config": config}),
            )
            .await
        } else {
            tenancy(&kit, &w.instance, g, config).await
        };
        let t = ok(r, StatusCode::CREATED);
        assert_eq!(t["instance"], json!(w.instance));
        assert_eq!(t["offering"], "bauportal");
        assert_eq!(t["organisation"], json!(g));
        match t["state"].as_str().unwrap() {
            "placed" => {
                assert!(i < SH_GEMEINDEN, "a Bavarian tenancy was placed: {t}");
                assert_eq!(
                    t["site"],
                    json!(site),
                    "a tenancy runs where its instance runs"
                );
                placed.insert(t["id"].as_str().unwrap().to_string());
            }
            "rejected" => {
                assert!(
                    i >= SH_GEMEINDEN,
                    "a tenancy of Schleswig-Holstein was refused: {t}"
                );
                let reason = t["reason"].as_str().unwrap();
                assert!(
                    reason.contains(&format!("`{site}`"))
                        && reason.contains("Bayerns Daten bleiben in Bayern"),
                    "the refusal names the site and the Land's policy: {reason}"
                );
                assert!(t.get("site").is_none(), "{t}");
                refused.push(t["id"].as_str().unwrap().to_string());
            }
            other => panic!("a tenancy in state `{other}`: {t}"),
        }
    }
    assert_eq!(placed.len(), SH_GEMEINDEN);
    assert_eq!(refused.len(), BY_GEMEINDEN);
    // "Where is our data?": the Gemeinde sees its tenancy on the instance's site, not the
    // Land's instance itself.
    let own = all(app, &member, "/api/v1/bookings").await;
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(own[0]["site"], json!(site));
    assert_eq!(own[0]["instance"], json!(w.instance));
    assert_eq!(
        get(app, &member, &format!("/api/v1/bookings/{}", w.instance))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Tenancies hold no capacity: the instance holds it for all of them.
    assert_eq!(
        kit.store
            .site_usage()
            .await
            .unwrap()
            .iter()
            .map(|u| u.used)
            .collect::<Vec<_>>(),
        used_before.iter().map(|u| u.used).collect::<Vec<_>>()
    );

    // The instance's desired state lists exactly its tenants, with their configuration.
    let (listed, entries) = listed_tenants(&kit, &w.instance).await;
    assert_eq!(listed, placed);
    let first = entries
        .iter()
        .find(|e| e["organisation"] == "010510000000")
        .expect("the first Gemeinde by its ARS");
    assert_eq!(first["name"], "SH-Gemeinde 0");
    assert_eq!(first["config"], json!({"kennung": "gemeinde-0"}));
    let viewed = read(&kit, &w.instance).await;
    assert_eq!(viewed["tenancies"], json!(SH_GEMEINDEN));
    assert_eq!(
        viewed["dependents"],
        json!([]),
        "tenancies are counted, not listed"
    );
    // Its operator lists them all, the refused ones too.
    let (_, sh_admin) = kit
        .user(
            "sh-admin",
            json!([{"role": "org-admin", "organisation": w.sh}]),
        )
        .await;
    let tenancies = all_in_pages_of(
        app,
        &sh_admin,
        &format!("/api/v1/bookings/{}/tenancies", w.instance),
        7,
    )
    .await;
    assert_eq!(tenancies.len(), SH_GEMEINDEN + BY_GEMEINDEN);

    // Delivered, the instance's reports carry its tenants: ready → all active.
    let mut delivered: Vec<String> = placed.iter().cloned().collect();
    delivered.push(w.instance.clone());
    kit.store
        .advance_bookings(
            "test/publisher",
            &delivered,
            verbund_domain::booking::BookingState::Placed,
            verbund_domain::booking::BookingState::Provisioning,
            "booking.provision",
            Utc::now(),
        )
        .await
        .unwrap();
    let token = site_token(&kit, &site).await;
    let report = |sequence: u64, ready: u32| {
        json!({
            "sequence": sequence,
            "agent": {"name": "verbund-agent/test", "interval_seconds": 10},
            "site": {"kubernetes_version": "v1.33.2", "health": "healthy",
                     "free": {"cpu_millis": 1000, "memory_mib": 2048, "storage_gib": 100}},
            "bookings": [{"booking": w.instance, "applied_version": "1.0.0",
                          "desired_replicas": 1, "ready_replicas": ready,
                          "conditions": [], "smoke_test": "passed"}],
        })
    };
    let r = ok(
        post(
            app,
            &token,
            &format!("/api/v1/sites/{site}/reports"),
            report(1, 1),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(r["transitions"], json!(SH_GEMEINDEN + 1), "{r}");
    let some = placed.iter().nth(1).unwrap().clone();
    let t = read(&kit, &some).await;
    assert_eq!(t["state"], "active");
    assert_eq!(
        t["observed"]["booking"],
        json!(w.instance),
        "a tenancy shows what its site reports of its instance"
    );
    // The instance fails: its tenants with it; then back.
    ok(
        post(
            app,
            &token,
            &format!("/api/v1/sites/{site}/reports"),
            report(2, 0),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(read(&kit, &some).await["state"], "degraded");
    ok(
        post(
            app,
            &token,
            &format!("/api/v1/sites/{site}/reports"),
            report(3, 1),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(read(&kit, &some).await["state"], "active");

    // A new version: one rollout for the instance and all its tenants.
    ok(
        post(
            app,
            &kit.admin,
            "/api/v1/offerings/bauportal/versions?rollout=false",
            version("1.1.0"),
        )
        .await,
        StatusCode::CREATED,
    );
    let plan = ok(
        post(
            app,
            &kit.admin,
            "/api/v1/rollouts/plan",
            json!({"offering": "bauportal", "version": "1.1.0"}),
        )
        .await,
        StatusCode::OK,
    );
    let items: Vec<&Value> = plan["waves"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["stage"] != "test")
        .flat_map(|w| w["items"].as_array().unwrap())
        .collect();
    assert_eq!(items.len(), 1, "only the instance is rolled out: {plan}");
    assert_eq!(items[0]["booking"], json!(w.instance));
    let tenants: BTreeSet<&str> = items[0]["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let sh_gemeinden: BTreeSet<&str> = w.gemeinden[..SH_GEMEINDEN]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tenants, sh_gemeinden,
        "the plan lists exactly the instance's tenants"
    );

    // A cancelled tenancy: the instance and the other tenants stay as they were.
    let others_before: Vec<Value> = {
        let mut v = Vec::new();
        for id in placed.iter().skip(2).take(5) {
            v.push(read(&kit, id).await);
        }
        v
    };
    let instance_before = read(&kit, &w.instance).await;
    let gone = placed.iter().next().unwrap().clone();
    let cancelled = ok(
        delete(app, &kit.admin, &format!("/api/v1/bookings/{gone}")).await,
        StatusCode::OK,
    );
    assert_eq!(cancelled["state"], "cancelling");
    verbund_placement::Bookings::new(kit.store.clone())
        .sweep("test/sweep", Utc::now())
        .await
        .unwrap();
    assert_eq!(read(&kit, &gone).await["state"], "retained");
    let (listed, _) = listed_tenants(&kit, &w.instance).await;
    let mut remaining = placed.clone();
    remaining.remove(&gone);
    assert_eq!(listed, remaining);
    let instance_after = read(&kit, &w.instance).await;
    for key in ["state", "site", "version", "plan", "config"] {
        assert_eq!(instance_after[key], instance_before[key], "{key}");
    }
    assert_eq!(instance_after["tenancies"], json!(SH_GEMEINDEN - 1));
    for before in &others_before {
        let after = read(&kit, before["id"].as_str().unwrap()).await;
        assert_eq!(after["state"], before["state"]);
        assert_eq!(after["updated_at"], before["updated_at"]);
    }
    // The instance cannot go before its tenants; the refusal counts them.
    let detail = assert_problem(
        &delete(app, &kit.admin, &format!("/api/v1/bookings/{}", w.instance)).await,
        StatusCode::CONFLICT,
        None,
    );
    assert!(
        detail.contains(&format!("{} more", SH_GEMEINDEN - 1 - 10)),
        "{detail}"
    );
    // Nor can the offering stop being shared under them.
    let mut dedicated = bauportal(&w.bund);
    dedicated["tenancy"] = json!("dedicated");
    dedicated.as_object_mut().unwrap().remove("tenant_schema");
    assert_problem(
        &put(app, &kit.admin, "/api/v1/offerings/bauportal", dedicated).await,
        StatusCode::CONFLICT,
        None,
    );
    // A tenant changes its own configuration, and only that.
    let changed = ok(
        send(
            app,
            request(
                axum::http::Method::PATCH,
                &format!("/api/v1/bookings/{some}"),
                &kit.admin,
                Some(&json!({"config": {"kennung": "neu"}})),
            ),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(changed["config"], json!({"kennung": "neu"}));
    assert_problem(
        &send(
            app,
            request(
                axum::http::Method::PATCH,
                &format!("/api/v1/bookings/{some}"),
                &kit.admin,
                Some(&json!({"plan": "s"})),
            ),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/plan"),
    );
    // The instance cannot end under its tenants; a tenancy has nothing to export.
    assert_problem(
        &post(
            app,
            &kit.admin,
            &format!("/api/v1/bookings/{}/end", w.instance),
            json!({"export_to": {"endpoint": "https://s3.example.de", "bucket": "exporte", "prefix": "bauportal/"}}),
        )
        .await,
        StatusCode::CONFLICT,
        None,
    );
    // Its operator ends a tenancy in it; a Gemeinde cannot end another's.
    let other = placed.iter().nth(2).unwrap().clone();
    assert_eq!(
        delete(app, &member, &format!("/api/v1/bookings/{other}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let ended = ok(
        delete(app, &sh_admin, &format!("/api/v1/bookings/{other}")).await,
        StatusCode::OK,
    );
    assert_eq!(ended["state"], "cancelling");
    // The instance grows: its tenants run on its new plan.
    ok(
        send(
            app,
            request(
                axum::http::Method::PATCH,
                &format!("/api/v1/bookings/{}", w.instance),
                &kit.admin,
                Some(&json!({"plan": "m"})),
            ),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(read(&kit, &some).await["plan"], "m");
}

async fn tenancies_that_cannot_hold_are_refused_and_change_nothing(kit: Kit) {
    let w = world(&kit).await;
    let app = &kit.app;
    let g = &w.gemeinden[0];
    let before = audit_count(&kit).await;
    // A configuration the tenant schema refuses, at its pointer.
    assert_problem(
        &tenancy(&kit, &w.instance, g, json!({"kennung": "Groß Buchstaben"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/config/kennung"),
    );
    assert_problem(
        &tenancy(&kit, &w.instance, g, json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/config"),
    );
    // Too large for the instance's tenant list.
    assert_problem(
        &tenancy(
            &kit,
            &w.instance,
            g,
            json!({"kennung": "gross", "ansprechpartner": "x".repeat(20_000)}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/config"),
    );
    // Not a shared offering's instance.
    assert_problem(
        &tenancy(&kit, &w.dedicated, g, json!({"kennung": "a1"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some(""),
    );
    // The instance's own organisation.
    assert_problem(
        &tenancy(&kit, &w.instance, &w.sh, json!({"kennung": "a1"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/organisation"),
    );
    // Unknown instance and unknown organisation.
    assert_problem(
        &tenancy(
            &kit,
            "0190aaaa-0000-7000-8000-000000000000",
            g,
            json!({"kennung": "a1"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        None,
    );
    let r = tenancy(
        &kit,
        &w.instance,
        "keine-gemeinde",
        json!({"kennung": "a1"}),
    )
    .await;
    assert!(
        matches!(
            r.0,
            StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY
        ),
        "{}",
        r.2
    );
    // A body that breaks the document.
    assert_problem(
        &post(
            app,
            &kit.admin,
            &format!("/api/v1/bookings/{}/tenancies", w.instance),
            json!({"organisation": g, "config": {"kennung": "a1"}, "plan": "s"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        None,
    );
    assert_eq!(audit_count(&kit).await, before, "a refusal changes nothing");

    // Another Gemeinde's admin cannot book for it; a tenancy cannot host tenants; an
    // organisation is a tenant once.
    let (_, other) = kit
        .user(
            "gemeinde-1",
            json!([{"role": "org-admin", "organisation": w.gemeinden[1]}]),
        )
        .await;
    let before = audit_count(&kit).await;
    assert_problem(
        &post(
            app,
            &other,
            &format!("/api/v1/bookings/{}/tenancies", w.instance),
            json!({"organisation": g, "config": {"kennung": "a1"}}),
        )
        .await,
        StatusCode::FORBIDDEN,
        None,
    );
    // Nor does it see another organisation's dedicated booking through this door.
    assert_problem(
        &post(
            app,
            &other,
            &format!("/api/v1/bookings/{}/tenancies", w.dedicated),
            json!({"organisation": w.gemeinden[1], "config": {"kennung": "a1"}}),
        )
        .await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert_eq!(audit_count(&kit).await, before);
    let t = ok(
        tenancy(&kit, &w.instance, g, json!({"kennung": "a1"})).await,
        StatusCode::CREATED,
    );
    let t = t["id"].as_str().unwrap();
    let before = audit_count(&kit).await;
    assert_problem(
        &tenancy(&kit, &w.instance, g, json!({"kennung": "a2"})).await,
        StatusCode::CONFLICT,
        None,
    );
    assert_problem(
        &tenancy(&kit, t, &w.gemeinden[1], json!({"kennung": "a2"})).await,
        StatusCode::CONFLICT,
        None,
    );
    assert_eq!(audit_count(&kit).await, before);
    // A cancelled instance takes no tenants (once its tenants are gone).
    ok(
        delete(app, &kit.admin, &format!("/api/v1/bookings/{t}")).await,
        StatusCode::OK,
    );
    verbund_placement::Bookings::new(kit.store.clone())
        .sweep("test/sweep", Utc::now())
        .await
        .unwrap();
    ok(
        delete(app, &kit.admin, &format!("/api/v1/bookings/{}", w.instance)).await,
        StatusCode::OK,
    );
    let before = audit_count(&kit).await;
    assert_problem(
        &tenancy(&kit, &w.instance, &w.gemeinden[1], json!({"kennung": "a2"})).await,
        StatusCode::CONFLICT,
        None,
    );
    assert_eq!(audit_count(&kit).await, before);
    let offered = ok(
        get(app, &kit.admin, "/api/v1/offerings/bauportal/instances").await,
        StatusCode::OK,
    );
    assert_eq!(offered, json!([]));
}

/// An "Einer für Alle" service that is shared: only its operating Land runs instances
/// of it, and only the Länder it names join them; each refusal names why and stores
/// nothing.
async fn an_einer_fuer_alle_instance_serves_the_laender_it_names(kit: Kit) {
    let w = world(&kit).await;
    let app = &kit.app;
    kit.store
        .import_ozg(
            "test/setup",
            "test",
            &[verbund_domain::directory::OzgService {
                id: "10236".into(),
                name: "Wohngeld".into(),
                situation: "Wohnen".into(),
                field: "Bauen & Wohnen".into(),
            }],
            Utc::now(),
        )
        .await
        .expect("the OZG service");
    let mut o = bauportal(&w.bund);
    o["name"] = json!("wohngeld");
    o["ozg_id"] = json!("10236");
    o["efa"] = json!({"operator": "01", "for_laender": ["01", "02"]});
    ok(
        post(app, &kit.admin, "/api/v1/offerings", o).await,
        StatusCode::CREATED,
    );
    ok(
        post(
            app,
            &kit.admin,
            "/api/v1/offerings/wohngeld/versions?rollout=false",
            version("1.0.0"),
        )
        .await,
        StatusCode::CREATED,
    );
    let bayern = kit
        .store
        .find_organisation_by_key("09")
        .await
        .unwrap()
        .expect("Bayern");
    let before = audit_count(&kit).await;
    let detail = assert_problem(
        &post(
            app,
            &kit.admin,
            "/api/v1/bookings",
            json!({"organisation": bayern.id, "offering": "wohngeld", "plan": "s"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/organisation"),
    );
    assert!(detail.contains("operated by the Land `01`"), "{detail}");
    assert_eq!(audit_count(&kit).await, before);
    let instance = ok(
        post(
            app,
            &kit.admin,
            "/api/v1/bookings",
            json!({"organisation": w.sh, "offering": "wohngeld", "plan": "s"}),
        )
        .await,
        StatusCode::CREATED,
    );
    let instance = instance["booking"]["id"].as_str().unwrap().to_string();
    // A Bavarian Gemeinde is not served; one of Schleswig-Holstein is.
    let before = audit_count(&kit).await;
    assert_problem(
        &tenancy(
            &kit,
            &instance,
            &w.gemeinden[SH_GEMEINDEN],
            json!({"kennung": "by-0"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/organisation"),
    );
    assert_eq!(audit_count(&kit).await, before);
    let t = ok(
        tenancy(&kit, &instance, &w.gemeinden[0], json!({"kennung": "sh-0"})).await,
        StatusCode::CREATED,
    );
    assert_eq!(t["state"], "placed", "{t}");
}
