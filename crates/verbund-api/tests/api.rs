//! Behaviour of the REST API through the real router (`oneshot`, no sockets), each test on
//! SQLite and on PostgreSQL: authentication, refused input that must change nothing,
//! filters and pagination, role scopes, the audit trail, OpenAPI and operations endpoints,
//! and snapshots of the problem documents clients see.

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

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use chrono::{Duration, Utc};
use serde_json::{json, Value};

use common::*;

// ---------------------------------------------------------------------------------------
// 1. Authentication

api_tests!(
    missing_token_is_unauthenticated,
    garbage_token_is_unauthenticated,
    bearer_scheme_is_case_insensitive,
    revoked_token_is_unauthenticated,
    expired_token_is_unauthenticated,
);

async fn missing_token_is_unauthenticated(kit: Kit) {
    let r = get(&kit.app, "", "/api/v1/organisations").await;
    let detail = assert_problem(&r, StatusCode::UNAUTHORIZED, None);
    assert!(
        detail.contains("Bearer"),
        "the detail should say how: {detail}"
    );
    let challenge = r.1.get(header::WWW_AUTHENTICATE).expect("WWW-Authenticate");
    assert!(
        challenge.to_str().unwrap().starts_with("Bearer"),
        "{challenge:?}"
    );
    // Writes are refused the same way, and before the body is looked at.
    let before = world(&kit).await;
    let r = post(&kit.app, "", "/api/v1/organisations", bund()).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, None);
    assert_unchanged(&kit, &before, "an unauthenticated POST").await;
}

async fn garbage_token_is_unauthenticated(kit: Kit) {
    let well_formed_but_unknown = format!("Bearer vbd_{}", "0".repeat(64));
    for auth in [
        "Bearer garbage",
        "Bearer ",
        "Basic YWRtaW46YWRtaW4=",
        "garbage",
        &well_formed_but_unknown,
    ] {
        let req = Request::get("/api/v1/organisations")
            .header(header::AUTHORIZATION, auth)
            .body(Body::empty())
            .unwrap();
        let r = send(&kit.app, req).await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, None);
        assert!(
            r.1.get(header::WWW_AUTHENTICATE).is_some(),
            "`{auth}`: a 401 needs a challenge"
        );
    }
}

async fn bearer_scheme_is_case_insensitive(kit: Kit) {
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let req = Request::get("/api/v1/users/me")
            .header(header::AUTHORIZATION, format!("{scheme} {}", kit.admin))
            .body(Body::empty())
            .unwrap();
        let me = ok(send(&kit.app, req).await, StatusCode::OK);
        assert_eq!(me["name"], "admin", "`{scheme}`");
    }
}

async fn revoked_token_is_unauthenticated(kit: Kit) {
    let issued = ok(
        post(
            &kit.app,
            &kit.admin,
            "/api/v1/tokens",
            json!({"name": "ci"}),
        )
        .await,
        StatusCode::CREATED,
    );
    let secret = issued["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("vbd_"), "{secret}");
    let id = issued["id"].as_str().expect("token id").to_string();
    ok(
        get(&kit.app, &secret, "/api/v1/users/me").await,
        StatusCode::OK,
    );
    let revoked = ok(
        delete(&kit.app, &kit.admin, &format!("/api/v1/tokens/{id}")).await,
        StatusCode::OK,
    );
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let r = get(&kit.app, &secret, "/api/v1/users/me").await;
    let detail = assert_problem(&r, StatusCode::UNAUTHORIZED, None);
    assert!(detail.contains("revoked"), "{detail}");
    // The admin's own token is untouched.
    ok(
        get(&kit.app, &kit.admin, "/api/v1/users/me").await,
        StatusCode::OK,
    );
}

async fn expired_token_is_unauthenticated(kit: Kit) {
    let now = Utc::now();
    let (_, secret) = verbund_api::issue_token(
        &kit.store,
        SETUP_ACTOR,
        &kit.admin_id,
        "short-lived",
        Some(now + Duration::hours(1)),
        now,
    )
    .await
    .expect("issue a token");
    let me = ok(
        get(&kit.app, &secret, "/api/v1/users/me").await,
        StatusCode::OK,
    );
    assert_eq!(me["name"], "admin");
    let later = kit.app_at(now + Duration::hours(2));
    let r = get(&later, &secret, "/api/v1/users/me").await;
    let detail = assert_problem(&r, StatusCode::UNAUTHORIZED, None);
    assert!(detail.contains("expired"), "{detail}");
    // A token without an expiry still works at that time.
    ok(
        get(&later, &kit.admin, "/api/v1/users/me").await,
        StatusCode::OK,
    );
}

// ---------------------------------------------------------------------------------------
// 2. Refused input changes nothing

/// Bund, Bayern, provider `alpha` with site `alpha-1`, offering `nextcloud` of Bayern
/// with version 2.0.0; returns Bayern's id.
async fn directory(kit: &Kit) -> String {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    let bund = create_org(app, admin, bund()).await;
    let bayern = create_org(app, admin, land("Freistaat Bayern", "09", &bund)).await;
    ok(
        post(app, admin, "/api/v1/providers", provider("alpha")).await,
        StatusCode::CREATED,
    );
    ok(
        post(app, admin, "/api/v1/sites", site("alpha-1", "alpha")).await,
        StatusCode::CREATED,
    );
    ok(
        post(
            app,
            admin,
            "/api/v1/offerings",
            offering("nextcloud", &bayern),
        )
        .await,
        StatusCode::CREATED,
    );
    ok(
        post(
            app,
            admin,
            "/api/v1/offerings/nextcloud/versions",
            version("2.0.0"),
        )
        .await,
        StatusCode::CREATED,
    );
    bayern
}

/// Sends `req` as the admin, asserts the problem and that nothing changed; returns the detail.
async fn refused(
    kit: &Kit,
    what: &str,
    req: Request<Body>,
    status: StatusCode,
    field: Option<&str>,
) -> String {
    let before = world(kit).await;
    let r = send(&kit.app, req).await;
    let detail = assert_problem(&r, status, field);
    assert_unchanged(kit, &before, what).await;
    detail
}

fn admin_json(kit: &Kit, method: Method, path: &str, body: Value) -> Request<Body> {
    request(method, path, &kit.admin, Some(&body))
}

api_tests!(
    refused_organisations_change_nothing,
    refused_sites_change_nothing,
    refused_catalog_changes_nothing,
    malformed_requests_change_nothing,
    nul_characters_are_refused_everywhere,
    a_pinned_channel_names_a_published_version,
);

async fn refused_organisations_change_nothing(kit: Kit) {
    let bayern = directory(&kit).await;
    let bund = ok(
        get(&kit.app, &kit.admin, "/api/v1/organisations?level=bund").await,
        StatusCode::OK,
    )["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let orgs = "/api/v1/organisations";

    let d = refused(
        &kit,
        "an unknown parent",
        admin_json(
            &kit,
            Method::POST,
            orgs,
            kreis("Landkreis X", "09184", "nope"),
        ),
        StatusCode::NOT_FOUND,
        Some("/parent"),
    )
    .await;
    assert!(d.contains("`nope`"), "{d}");

    let d = refused(
        &kit,
        "a malformed ARS",
        admin_json(
            &kit,
            Method::POST,
            orgs,
            kreis("Landkreis X", "0916", &bayern),
        ),
        StatusCode::BAD_REQUEST,
        Some("/ars"),
    )
    .await;
    assert!(d.contains("`0916`") && d.contains("ARS"), "{d}");

    let mut bad_ags = gemeinde("Y", "091620000000", "09162000", &bayern);
    bad_ags["ags"] = json!("0916200");
    let d = refused(
        &kit,
        "a malformed AGS",
        admin_json(&kit, Method::POST, orgs, bad_ags),
        StatusCode::BAD_REQUEST,
        Some("/ags"),
    )
    .await;
    assert!(d.contains("`0916200`") && d.contains("AGS"), "{d}");

    let d = refused(
        &kit,
        "a duplicate ARS",
        admin_json(
            &kit,
            Method::POST,
            orgs,
            land("Bayern, noch einmal", "09", &bund),
        ),
        StatusCode::CONFLICT,
        None,
    )
    .await;
    assert!(d.contains("`09`"), "{d}");

    let d = refused(
        &kit,
        "a second Bund",
        admin_json(&kit, Method::POST, orgs, common::bund()),
        StatusCode::CONFLICT,
        None,
    )
    .await;
    assert!(d.contains("Bund"), "{d}");
}

async fn refused_sites_change_nothing(kit: Kit) {
    directory(&kit).await;

    let mut no_prod = site("alpha-2", "alpha");
    no_prod["environments"] = json!(["test"]);
    let d = refused(
        &kit,
        "a site without prod",
        admin_json(&kit, Method::POST, "/api/v1/sites", no_prod),
        StatusCode::BAD_REQUEST,
        Some("/environments"),
    )
    .await;
    assert!(d.contains("`prod`"), "{d}");

    let d = refused(
        &kit,
        "a site of an unknown provider",
        admin_json(
            &kit,
            Method::POST,
            "/api/v1/sites",
            site("ghost-1", "ghost"),
        ),
        StatusCode::NOT_FOUND,
        Some("/provider"),
    )
    .await;
    assert!(d.contains("`ghost`"), "{d}");

    let d = refused(
        &kit,
        "a PUT whose name differs from the path",
        admin_json(
            &kit,
            Method::PUT,
            "/api/v1/sites/alpha-1",
            site("alpha-9", "alpha"),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/name"),
    )
    .await;
    assert!(d.contains("`alpha-9`") && d.contains("`alpha-1`"), "{d}");

    let d = refused(
        &kit,
        "a second POST of a site",
        admin_json(
            &kit,
            Method::POST,
            "/api/v1/sites",
            site("alpha-1", "alpha"),
        ),
        StatusCode::CONFLICT,
        None,
    )
    .await;
    assert!(d.contains("`alpha-1`"), "{d}");
}

async fn refused_catalog_changes_nothing(kit: Kit) {
    let bayern = directory(&kit).await;

    let mut bad_schema = offering("opendesk", &bayern);
    bad_schema["config_schema"] = json!({"type": "objekt"});
    let d = refused(
        &kit,
        "an invalid JSON Schema",
        admin_json(&kit, Method::POST, "/api/v1/offerings", bad_schema),
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/config_schema"),
    )
    .await;
    assert!(d.contains("JSON Schema"), "{d}");

    let versions = "/api/v1/offerings/nextcloud/versions";
    let d = refused(
        &kit,
        "a non-semver version",
        admin_json(&kit, Method::POST, versions, version("2.1")),
        StatusCode::BAD_REQUEST,
        Some("/version"),
    )
    .await;
    assert!(d.contains("`2.1`") && d.contains("semantic version"), "{d}");

    let d = refused(
        &kit,
        "a shrinking version",
        admin_json(&kit, Method::POST, versions, version("1.9.9")),
        StatusCode::CONFLICT,
        Some("/version"),
    )
    .await;
    assert!(d.contains("`1.9.9`") && d.contains("`2.0.0`"), "{d}");

    let d = refused(
        &kit,
        "a republished version",
        admin_json(&kit, Method::POST, versions, version("2.0.0")),
        StatusCode::CONFLICT,
        Some("/version"),
    )
    .await;
    assert!(d.contains("`2.0.0`"), "{d}");

    // Vendor content a tenant may not own is refused at publish time, naming the object:
    // the same check the renderer makes, so nothing accepted here is refused later.
    let manifests = |objects: Value| {
        json!({"version": "3.0.0", "changelog": "Neu.",
               "package": {"type": "manifests", "manifests": objects}})
    };
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "app"},
        "spec": {"selector": {"matchLabels": {"app": "a"}},
                 "template": {"metadata": {"labels": {"app": "a"}},
                              "spec": {"containers": [{"name": "a", "image": "registry.example.org/a:1"}]}}}});
    let cluster_admin = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "vendor-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]});
    let d = refused(
        &kit,
        "a cluster-admin ClusterRoleBinding",
        admin_json(
            &kit,
            Method::POST,
            versions,
            manifests(json!([deployment.clone(), cluster_admin])),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/package/manifests/1"),
    )
    .await;
    assert!(
        d.contains("ClusterRoleBinding") && d.contains("vendor-admin"),
        "{d}"
    );
    for (what, object) in [
        (
            "a Flux Kustomization",
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "escape"}, "spec": {"path": "./", "prune": true, "interval": "1m",
            "sourceRef": {"kind": "GitRepository", "name": "flux-system", "namespace": "flux-system"}}}),
        ),
        (
            "an Argo CD Application",
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "escape"}, "spec": {"project": "default"}}),
        ),
        (
            "a Role granting more",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "bind"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole", "name": "admin"}, "subjects": []}),
        ),
        (
            "a RoleBinding for another tenant's ServiceAccount",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "bind"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role", "name": "app"},
            "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "other-tenant"}]}),
        ),
    ] {
        let d = refused(
            &kit,
            what,
            admin_json(
                &kit,
                Method::POST,
                versions,
                manifests(json!([deployment.clone(), object])),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("/package/manifests/1"),
        )
        .await;
        assert!(d.contains("escape") || d.contains("bind"), "{what}: {d}");
    }
    let mut control = version("3.0.0");
    control["package"]["values"] = json!({"banner": "Willkommen\u{85}"});
    let d = refused(
        &kit,
        "a value no GitOps engine carries",
        admin_json(&kit, Method::POST, versions, control),
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/package/values/banner"),
    )
    .await;
    assert!(d.contains("U+0085"), "{d}");

    // A plan may autoscale only where the offering's latest version can scale it.
    let mut plain = offering("formulare", &bayern);
    ok(
        post(&kit.app, &kit.admin, "/api/v1/offerings", plain.clone()).await,
        StatusCode::CREATED,
    );
    ok(
        post(
            &kit.app,
            &kit.admin,
            "/api/v1/offerings/formulare/versions",
            manifests(json!([deployment])),
        )
        .await,
        StatusCode::CREATED,
    );
    plain["plans"][0]["replicas"] = json!(2);
    plain["plans"][0]["autoscaling"] = json!({"min_replicas": 2, "max_replicas": 4});
    let d = refused(
        &kit,
        "an autoscaling plan the latest version cannot scale",
        admin_json(&kit, Method::PUT, "/api/v1/offerings/formulare", plain),
        StatusCode::CONFLICT,
        Some("/plans/0/autoscaling"),
    )
    .await;
    assert!(d.contains("scale_target"), "{d}");
}

async fn malformed_requests_change_nothing(kit: Kit) {
    directory(&kit).await;
    let admin = kit.admin.clone();
    let raw = |method: Method, path: &str, content_type: &str, body: Vec<u8>| {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {admin}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };

    let mut unknown = provider("beta");
    unknown["colour"] = json!("blue");
    let d = refused(
        &kit,
        "an unknown field",
        admin_json(&kit, Method::POST, "/api/v1/providers", unknown),
        StatusCode::BAD_REQUEST,
        Some("/colour"),
    )
    .await;
    assert!(d.contains("unknown field `colour`"), "{d}");

    let mut nested = offering("beta", "whatever");
    nested["plans"][0]["gpu"] = json!(1);
    let d = refused(
        &kit,
        "an unknown nested field",
        admin_json(&kit, Method::POST, "/api/v1/offerings", nested),
        StatusCode::BAD_REQUEST,
        Some("/plans/0/gpu"),
    )
    .await;
    assert!(d.contains("unknown field `gpu`"), "{d}");

    let mut missing = provider("beta");
    missing.as_object_mut().unwrap().remove("seat");
    let d = refused(
        &kit,
        "a missing field",
        admin_json(&kit, Method::POST, "/api/v1/providers", missing),
        StatusCode::BAD_REQUEST,
        Some(""),
    )
    .await;
    assert!(d.contains("missing field `seat`"), "{d}");

    let d = refused(
        &kit,
        "an unknown level",
        admin_json(
            &kit,
            Method::POST,
            "/api/v1/organisations",
            json!({"name": "Stadt", "level": "stadt"}),
        ),
        StatusCode::BAD_REQUEST,
        Some("/level"),
    )
    .await;
    assert!(d.contains("`stadt`"), "{d}");

    let d = refused(
        &kit,
        "broken JSON",
        raw(
            Method::POST,
            "/api/v1/providers",
            "application/json",
            br#"{"name": "beta","#.to_vec(),
        ),
        StatusCode::BAD_REQUEST,
        None,
    )
    .await;
    assert!(d.contains("not valid JSON"), "{d}");

    let d = refused(
        &kit,
        "a wrong content type",
        raw(
            Method::POST,
            "/api/v1/providers",
            "text/plain",
            provider("beta").to_string().into_bytes(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        None,
    )
    .await;
    assert!(d.contains("application/json"), "{d}");

    // Valid JSON, just too much of it: a description of 1 MiB and a bit.
    let mut huge = offering("huge", "whatever");
    huge["description"] = json!("x".repeat(verbund_api::MAX_BODY_BYTES + 1));
    let d = refused(
        &kit,
        "an oversized body",
        raw(
            Method::POST,
            "/api/v1/offerings",
            "application/json",
            huge.to_string().into_bytes(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
    )
    .await;
    assert!(d.contains(&verbund_api::MAX_BODY_BYTES.to_string()), "{d}");

    for (path, needle) in [
        ("/api/v1/organisations?level=stadt", "stadt"),
        ("/api/v1/organisations?limit=viele", "limit"),
        ("/api/v1/organisations?land=9", "`9`"),
        ("/api/v1/organisations?land=17", "`17`"),
        ("/api/v1/offerings?category=cloud", "cloud"),
    ] {
        let r = get(&kit.app, &kit.admin, path).await;
        let d = assert_problem(&r, StatusCode::BAD_REQUEST, None);
        assert!(d.contains(needle), "{path}: {d}");
    }
}

/// A NUL character (U+0000) cannot be stored by PostgreSQL: every string of every body
/// refuses it, on both databases alike, naming the field. The document says so of every
/// string, so it is a refusal of form (400).
async fn nul_characters_are_refused_everywhere(kit: Kit) {
    let bayern = directory(&kit).await;
    let cases = [
        (
            "a token name",
            "/api/v1/tokens",
            json!({"name": "x\u{0}"}),
            "/name",
        ),
        (
            "an organisation name",
            "/api/v1/organisations",
            kreis("Landkreis\u{0}X", "09184", &bayern),
            "/name",
        ),
        (
            "a display name",
            "/api/v1/users",
            json!({"name": "nul", "display_name": "N\u{0}L", "memberships": []}),
            "/display_name",
        ),
        (
            "a booking's configuration",
            "/api/v1/bookings",
            json!({"organisation": bayern, "offering": "nextcloud", "plan": "s",
                   "config": {"domain": "cloud.example\u{0}"}}),
            "/config/domain",
        ),
        (
            "a key of a booking's configuration",
            "/api/v1/bookings",
            json!({"organisation": bayern, "offering": "nextcloud", "plan": "s",
                   "config": {"dom\u{0}ain": "cloud.example"}}),
            "/config/dom\u{0}ain",
        ),
    ];
    for (what, path, body, pointer) in cases {
        let d = refused(
            &kit,
            what,
            admin_json(&kit, Method::POST, path, body),
            StatusCode::BAD_REQUEST,
            Some(pointer),
        )
        .await;
        assert!(d.contains("NUL"), "{what}: {d}");
    }
    assert!(all(&kit.app, &kit.admin, "/api/v1/bookings")
        .await
        .is_empty());
    // A query parameter is refused too, as a bad request.
    let r = get(&kit.app, &kit.admin, "/api/v1/organisations?after=x%00").await;
    let d = assert_problem(&r, StatusCode::BAD_REQUEST, None);
    assert!(d.contains("`after`"), "{d}");
    // The same text without the NUL is fine.
    ok(
        post(&kit.app, &kit.admin, "/api/v1/tokens", json!({"name": "x"})).await,
        StatusCode::CREATED,
    );
}

/// A booking pinned to a version that was never published would never run: booking and
/// changing the channel refuse it as naming what does not exist (404), at `/channel`.
async fn a_pinned_channel_names_a_published_version(kit: Kit) {
    verbund_placement::ensure_default_policies(&kit.store, Utc::now())
        .await
        .expect("default policies");
    let bayern = directory(&kit).await;
    // Personal data needs an ISO 27001 site.
    let mut certified = site("alpha-2", "alpha");
    certified["certifications"] = json!([{"scheme": "iso27001", "level": "it-grundschutz",
                                          "valid_until": "2099-12-31"}]);
    ok(
        post(&kit.app, &kit.admin, "/api/v1/sites", certified).await,
        StatusCode::CREATED,
    );
    certify(&kit).await;
    let book = |channel: &str| {
        json!({"organisation": bayern, "offering": "nextcloud", "plan": "s",
               "config": {}, "channel": channel})
    };
    let d = refused(
        &kit,
        "a booking pinned to no version",
        admin_json(&kit, Method::POST, "/api/v1/bookings", book("pinned:9.9.9")),
        StatusCode::NOT_FOUND,
        Some("/channel"),
    )
    .await;
    assert!(d.contains("`9.9.9`"), "{d}");
    assert!(all(&kit.app, &kit.admin, "/api/v1/bookings")
        .await
        .is_empty());

    let b = ok(
        post(
            &kit.app,
            &kit.admin,
            "/api/v1/bookings",
            book("pinned:2.0.0"),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_ne!(b["booking"]["state"], "rejected", "{b}");
    let path = format!(
        "/api/v1/bookings/{}",
        b["booking"]["id"].as_str().expect("id")
    );
    let before = ok(get(&kit.app, &kit.admin, &path).await, StatusCode::OK);
    let audit = audit_count(&kit).await;
    let d = refused(
        &kit,
        "a change pinning to no version",
        admin_json(
            &kit,
            Method::PATCH,
            &path,
            json!({"channel": "pinned:3.0.0"}),
        ),
        StatusCode::NOT_FOUND,
        Some("/channel"),
    )
    .await;
    assert!(d.contains("`3.0.0`"), "{d}");
    assert_eq!(
        ok(get(&kit.app, &kit.admin, &path).await, StatusCode::OK),
        before
    );
    assert_eq!(audit_count(&kit).await, audit);
    let changed = ok(
        send(
            &kit.app,
            admin_json(&kit, Method::PATCH, &path, json!({"channel": "stable"})),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(changed["channel"], "stable", "{changed}");
    assert_ne!(changed["state"], "rejected", "{changed}");
}

// ---------------------------------------------------------------------------------------
// 3. Filters and pagination

api_tests!(organisation_filters_and_pages);

async fn organisation_filters_and_pages(kit: Kit) {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    let bund = create_org(app, admin, bund()).await;
    let by = create_org(app, admin, land("Freistaat Bayern", "09", &bund)).await;
    let bw = create_org(app, admin, land("Baden-Württemberg", "08", &bund)).await;
    let lk_m = create_org(app, admin, kreis("Landkreis München", "09184", &by)).await;
    let lk_mue = create_org(app, admin, kreis("Landkreis Mühldorf a.Inn", "09183", &by)).await;
    let lk_es = create_org(app, admin, kreis("Landkreis Esslingen", "08116", &bw)).await;
    let mut spec = gemeinde("München", "091620000000", "09162000", &by);
    spec["population"] = json!(1_510_378_i64);
    let muenchen = create_org(app, admin, spec).await;
    let read = ok(
        get(app, admin, &format!("/api/v1/organisations/{muenchen}")).await,
        StatusCode::OK,
    );
    assert_eq!(read["population"], 1_510_378_i64);
    assert_eq!(read["land"], "09");
    assert_eq!(read["parent"], json!(by));
    let muehldorf = create_org(
        app,
        admin,
        gemeinde("Mühldorf a.Inn", "091830139139", "09183139", &lk_mue),
    )
    .await;
    let murnau = create_org(
        app,
        admin,
        gemeinde("Murnau a.Staffelsee", "091800125125", "09180125", &by),
    )
    .await;
    let unterhaching = create_org(
        app,
        admin,
        gemeinde("Unterhaching", "091840148148", "09184148", &lk_m),
    )
    .await;
    let esslingen = create_org(
        app,
        admin,
        gemeinde("Esslingen am Neckar", "081160019019", "08116019", &lk_es),
    )
    .await;
    let everyone: BTreeSet<String> = [
        &bund,
        &by,
        &bw,
        &lk_m,
        &lk_mue,
        &lk_es,
        &muenchen,
        &muehldorf,
        &murnau,
        &unterhaching,
        &esslingen,
    ]
    .into_iter()
    .cloned()
    .collect();

    let ids = |items: Vec<Value>| -> BTreeSet<String> {
        items
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect()
    };
    let set = |xs: &[&String]| -> BTreeSet<String> { xs.iter().map(|s| s.to_string()).collect() };
    let q = |query: String| format!("/api/v1/organisations?{query}");

    assert_eq!(
        ids(all(app, admin, "/api/v1/organisations").await),
        everyone
    );
    assert_eq!(
        ids(all(app, admin, &q("level=land".into())).await),
        set(&[&by, &bw])
    );
    assert_eq!(
        ids(all(app, admin, &q(format!("parent={by}"))).await),
        set(&[&lk_m, &lk_mue, &muenchen, &murnau])
    );
    assert_eq!(
        ids(all(app, admin, &q("land=09".into())).await),
        set(&[
            &by,
            &lk_m,
            &lk_mue,
            &muenchen,
            &muehldorf,
            &murnau,
            &unterhaching
        ])
    );
    assert_eq!(
        ids(all(app, admin, &q("land=08&level=gemeinde".into())).await),
        set(&[&esslingen])
    );
    assert_eq!(
        ids(all(app, admin, &q(format!("name={}", enc("Mü")))).await),
        set(&[&muenchen, &muehldorf]),
        "the prefix `Mü` matches München and Mühldorf, not Murnau"
    );
    assert_eq!(
        ids(all(app, admin, &q(format!("name={}", enc("Landkreis Mü")))).await),
        set(&[&lk_m, &lk_mue])
    );
    assert_eq!(
        ids(all(app, admin, &q(format!("name={}", enc("Baden-Württemberg")))).await),
        set(&[&bw])
    );
    assert!(all(app, admin, &q(format!("name={}", enc("Mü-"))))
        .await
        .is_empty());
    assert_eq!(
        ids(all(app, admin, &q("key=091620000000".into())).await),
        set(&[&muenchen]),
        "by ARS"
    );
    assert_eq!(
        ids(all(app, admin, &q("key=09162000".into())).await),
        set(&[&muenchen]),
        "by AGS"
    );
    assert_eq!(ids(all(app, admin, &q("key=09".into())).await), set(&[&by]));
    assert!(all(app, admin, &q("key=09999".into())).await.is_empty());

    // Walk with two items per page: every organisation exactly once, in a stable order.
    for (filter, expected) in [
        ("", everyone.clone()),
        (
            "land=09&",
            set(&[
                &by,
                &lk_m,
                &lk_mue,
                &muenchen,
                &muehldorf,
                &murnau,
                &unterhaching,
            ]),
        ),
    ] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let url = match &after {
                Some(a) => q(format!("{filter}limit=2&after={}", enc(a))),
                None => q(format!("{filter}limit=2")),
            };
            let page = ok(get(app, admin, &url).await, StatusCode::OK);
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 2, "{url} returned {} items", items.len());
            seen.extend(items.iter().map(|o| o["id"].as_str().unwrap().to_string()));
            pages += 1;
            assert!(pages <= expected.len(), "pagination does not end");
            match page["next"].as_str() {
                Some(n) => {
                    assert_eq!(items.len(), 2, "only the last page may be short");
                    after = Some(n.to_string());
                }
                None => break,
            }
        }
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "an item was returned twice: {seen:?}"
        );
        assert_eq!(unique, expected, "filter `{filter}`");
        assert_eq!(pages, expected.len().div_ceil(2), "filter `{filter}`");
    }
}

// ---------------------------------------------------------------------------------------
// 4. Authorization by role

/// Two Länder (X = Bayern, Y = Baden-Württemberg), providers `alpha` and `beta` with a
/// site each, an offering of each Land.
struct Scene {
    bund: String,
    x: String,
    y: String,
}

async fn scene(kit: &Kit) -> Scene {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    let bund = create_org(app, admin, bund()).await;
    let x = create_org(app, admin, land("Freistaat Bayern", "09", &bund)).await;
    let y = create_org(app, admin, land("Baden-Württemberg", "08", &bund)).await;
    for p in ["alpha", "beta"] {
        ok(
            post(app, admin, "/api/v1/providers", provider(p)).await,
            StatusCode::CREATED,
        );
        ok(
            post(app, admin, "/api/v1/sites", site(&format!("{p}-1"), p)).await,
            StatusCode::CREATED,
        );
    }
    for (name, vendor) in [("offering-x", &x), ("offering-y", &y)] {
        ok(
            post(app, admin, "/api/v1/offerings", offering(name, vendor)).await,
            StatusCode::CREATED,
        );
    }
    Scene { bund, x, y }
}

/// Sends a write that must be refused with 403 and change nothing.
async fn forbidden(kit: &Kit, token: &str, method: Method, path: &str, body: Value) {
    let before = world(kit).await;
    let r = send(&kit.app, request(method.clone(), path, token, Some(&body))).await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    assert_unchanged(kit, &before, &format!("a refused {method} {path}")).await;
}

api_tests!(
    auditor_reads_but_never_writes,
    provider_operator_is_scoped_to_its_provider,
    vendor_is_scoped_to_its_organisation,
    org_admin_is_scoped_to_its_organisation,
    org_member_sees_only_what_is_its_own,
    tokens_are_managed_by_their_owner,
);

async fn auditor_reads_but_never_writes(kit: Kit) {
    let s = scene(&kit).await;
    let (_, auditor) = kit.user("auditor", json!([{"role": "auditor"}])).await;
    let events = audit_count(&kit).await;
    let page = ok(
        get(&kit.app, &auditor, "/api/v1/audit").await,
        StatusCode::OK,
    );
    assert_eq!(page["items"].as_array().unwrap().len() as i64, events);
    let status = ok(
        get(&kit.app, &auditor, "/api/v1/audit/verify").await,
        StatusCode::OK,
    );
    assert_eq!(status, json!({"intact": true, "verified": events}));
    ok(
        get(&kit.app, &auditor, "/api/v1/users").await,
        StatusCode::OK,
    );

    let mut alpha = provider("alpha");
    alpha["display_name"] = json!("Changed");
    let mut alpha_1 = site("alpha-1", "alpha");
    alpha_1["display_name"] = json!("Changed");
    let mut offering_x = offering("offering-x", &s.x);
    offering_x["display_name"] = json!("Changed");
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/organisations",
            kreis("Landkreis Z", "09184", &s.x),
        ),
        (
            Method::PUT,
            &format!("/api/v1/organisations/{}", s.x),
            land("Bayern", "09", &s.bund),
        ),
        (Method::PUT, "/api/v1/providers/alpha", alpha),
        (Method::POST, "/api/v1/providers", provider("gamma")),
        (Method::PUT, "/api/v1/sites/alpha-1", alpha_1),
        (Method::PUT, "/api/v1/offerings/offering-x", offering_x),
        (
            Method::POST,
            "/api/v1/offerings/offering-x/versions",
            version("1.0.0"),
        ),
        (
            Method::POST,
            "/api/v1/users",
            json!({"name": "mallory", "display_name": "Mallory",
                   "memberships": [{"role": "federation-admin"}]}),
        ),
    ] {
        forbidden(&kit, &auditor, method, path, body).await;
    }
}

async fn provider_operator_is_scoped_to_its_provider(kit: Kit) {
    scene(&kit).await;
    let (_, op) = kit
        .user(
            "operator-alpha",
            json!([{"role": "provider-operator", "provider": "alpha"}]),
        )
        .await;
    let mut own = site("alpha-1", "alpha");
    own["kubernetes_version"] = json!("1.32");
    let updated = ok(
        put(&kit.app, &op, "/api/v1/sites/alpha-1", own).await,
        StatusCode::OK,
    );
    assert_eq!(updated["kubernetes_version"], "1.32");
    // A new site's placement facts are the federation's to state (issue 17).
    forbidden(
        &kit,
        &op,
        Method::PUT,
        "/api/v1/sites/alpha-2",
        site("alpha-2", "alpha"),
    )
    .await;
    let mut alpha = provider("alpha");
    alpha["display_name"] = json!("Alpha AöR");
    ok(
        put(&kit.app, &op, "/api/v1/providers/alpha", alpha).await,
        StatusCode::OK,
    );

    let mut foreign = site("beta-1", "beta");
    foreign["kubernetes_version"] = json!("1.32");
    forbidden(&kit, &op, Method::PUT, "/api/v1/sites/beta-1", foreign).await;
    // Naming its own provider does not let it take over another provider's site.
    forbidden(
        &kit,
        &op,
        Method::PUT,
        "/api/v1/sites/beta-1",
        site("beta-1", "alpha"),
    )
    .await;
    forbidden(
        &kit,
        &op,
        Method::POST,
        "/api/v1/sites",
        site("beta-2", "beta"),
    )
    .await;
    forbidden(
        &kit,
        &op,
        Method::PUT,
        "/api/v1/providers/beta",
        provider("beta"),
    )
    .await;
    forbidden(
        &kit,
        &op,
        Method::POST,
        "/api/v1/providers",
        provider("gamma"),
    )
    .await;
}

async fn vendor_is_scoped_to_its_organisation(kit: Kit) {
    let s = scene(&kit).await;
    let (_, vendor) = kit
        .user("vendor-x", json!([{"role": "vendor", "organisation": s.x}]))
        .await;
    let v = ok(
        post(
            &kit.app,
            &vendor,
            "/api/v1/offerings/offering-x/versions",
            version("1.0.0"),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_eq!(v["offering"], "offering-x");
    let o = ok(
        get(&kit.app, &vendor, "/api/v1/offerings/offering-x").await,
        StatusCode::OK,
    );
    assert_eq!(o["latest_version"], "1.0.0");
    ok(
        post(
            &kit.app,
            &vendor,
            "/api/v1/offerings",
            offering("opendesk", &s.x),
        )
        .await,
        StatusCode::CREATED,
    );

    forbidden(
        &kit,
        &vendor,
        Method::POST,
        "/api/v1/offerings/offering-y/versions",
        version("1.0.0"),
    )
    .await;
    let mut y = offering("offering-y", &s.y);
    y["display_name"] = json!("Taken over");
    forbidden(
        &kit,
        &vendor,
        Method::PUT,
        "/api/v1/offerings/offering-y",
        y,
    )
    .await;
    // Claiming another Land's offering for its own organisation is refused too.
    forbidden(
        &kit,
        &vendor,
        Method::PUT,
        "/api/v1/offerings/offering-y",
        offering("offering-y", &s.x),
    )
    .await;
    forbidden(
        &kit,
        &vendor,
        Method::POST,
        "/api/v1/offerings",
        offering("foreign", &s.y),
    )
    .await;
}

async fn org_admin_is_scoped_to_its_organisation(kit: Kit) {
    let s = scene(&kit).await;
    let (_, oa) = kit
        .user(
            "orgadmin-x",
            json!([{"role": "org-admin", "organisation": s.x}]),
        )
        .await;
    let member = ok(
        post(
            &kit.app,
            &oa,
            "/api/v1/users",
            json!({"name": "member-x", "display_name": "Member X",
                   "memberships": [{"role": "org-member", "organisation": s.x}]}),
        )
        .await,
        StatusCode::CREATED,
    );
    let listed = ok(
        get(
            &kit.app,
            &oa,
            &format!("/api/v1/users?organisation={}", s.x),
        )
        .await,
        StatusCode::OK,
    );
    let names: BTreeSet<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["member-x", "orgadmin-x"]));
    let id = member["id"].as_str().unwrap();
    ok(
        get(&kit.app, &oa, &format!("/api/v1/users/{id}")).await,
        StatusCode::OK,
    );

    for memberships in [
        json!([{"role": "org-member", "organisation": s.y}]),
        json!([{"role": "federation-admin"}]),
        json!([{"role": "auditor"}]),
        json!([{"role": "vendor", "organisation": s.x}]),
        json!([{"role": "org-member", "organisation": s.x},
               {"role": "org-member", "organisation": s.y}]),
    ] {
        forbidden(
            &kit,
            &oa,
            Method::POST,
            "/api/v1/users",
            json!({"name": "eve", "display_name": "Eve", "memberships": memberships}),
        )
        .await;
    }
    let r = get(
        &kit.app,
        &oa,
        &format!("/api/v1/users?organisation={}", s.y),
    )
    .await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    let r = get(&kit.app, &oa, "/api/v1/users").await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
}

async fn org_member_sees_only_what_is_its_own(kit: Kit) {
    let s = scene(&kit).await;
    let (member_id, member) = kit
        .user(
            "member-x",
            json!([{"role": "org-member", "organisation": s.x}]),
        )
        .await;
    let (other_id, _) = kit
        .user(
            "member-y",
            json!([{"role": "org-member", "organisation": s.y}]),
        )
        .await;

    // The directory and the catalog are open to every signed-in user.
    for path in [
        "/api/v1/organisations",
        "/api/v1/providers",
        "/api/v1/sites",
        "/api/v1/offerings",
    ] {
        ok(get(&kit.app, &member, path).await, StatusCode::OK);
    }
    for path in ["/api/v1/audit", "/api/v1/audit/verify", "/api/v1/users"] {
        let r = get(&kit.app, &member, path).await;
        assert_problem(&r, StatusCode::FORBIDDEN, None);
    }
    let me = ok(
        get(&kit.app, &member, "/api/v1/users/me").await,
        StatusCode::OK,
    );
    assert_eq!(me["id"], json!(member_id));
    ok(
        get(&kit.app, &member, &format!("/api/v1/users/{member_id}")).await,
        StatusCode::OK,
    );

    // Foreign users answer exactly like users that do not exist.
    for id in [&other_id, &kit.admin_id] {
        let r = get(&kit.app, &member, &format!("/api/v1/users/{id}")).await;
        let d = assert_problem(&r, StatusCode::NOT_FOUND, None);
        assert_eq!(d, format!("user `{id}` not found"));
    }
    let r = get(&kit.app, &member, "/api/v1/users/no-such-user").await;
    let d = assert_problem(&r, StatusCode::NOT_FOUND, None);
    assert_eq!(d, "user `no-such-user` not found");

    forbidden(
        &kit,
        &member,
        Method::POST,
        "/api/v1/organisations",
        kreis("Landkreis Z", "09184", &s.x),
    )
    .await;
}

async fn tokens_are_managed_by_their_owner(kit: Kit) {
    let s = scene(&kit).await;
    let (member_id, member) = kit
        .user(
            "member-x",
            json!([{"role": "org-member", "organisation": s.x}]),
        )
        .await;

    let issued = ok(
        post(
            &kit.app,
            &member,
            "/api/v1/tokens",
            json!({"name": "laptop"}),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_eq!(issued["user"], json!(member_id));
    let own_id = issued["id"].as_str().unwrap().to_string();
    let listed = ok(
        get(&kit.app, &member, "/api/v1/tokens").await,
        StatusCode::OK,
    );
    let tokens = listed["items"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "the kit's token and the new one: {listed}");
    assert!(tokens.iter().all(|t| t["user"] == json!(member_id)));
    assert!(
        tokens.iter().all(|t| t.get("secret").is_none()),
        "a list never shows secrets: {listed}"
    );

    let admin_tokens = ok(
        get(
            &kit.app,
            &kit.admin,
            &format!("/api/v1/tokens?user={}", kit.admin_id),
        )
        .await,
        StatusCode::OK,
    );
    let admin_token = admin_tokens["items"][0]["id"].as_str().unwrap().to_string();
    let before = world(&kit).await;
    let r = delete(&kit.app, &member, &format!("/api/v1/tokens/{admin_token}")).await;
    let d = assert_problem(&r, StatusCode::NOT_FOUND, None);
    assert_eq!(d, format!("token `{admin_token}` not found"));
    let r = get(
        &kit.app,
        &member,
        &format!("/api/v1/tokens?user={}", kit.admin_id),
    )
    .await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    let r = post(
        &kit.app,
        &member,
        "/api/v1/tokens",
        json!({"name": "stolen", "user": kit.admin_id}),
    )
    .await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    assert_unchanged(&kit, &before, "refused token requests").await;
    ok(
        get(&kit.app, &kit.admin, "/api/v1/users/me").await,
        StatusCode::OK,
    );

    let revoked = ok(
        delete(&kit.app, &member, &format!("/api/v1/tokens/{own_id}")).await,
        StatusCode::OK,
    );
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let secret = issued["secret"].as_str().unwrap();
    let r = get(&kit.app, secret, "/api/v1/users/me").await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, None);
    ok(
        get(&kit.app, &member, "/api/v1/users/me").await,
        StatusCode::OK,
    );
}

// ---------------------------------------------------------------------------------------
// 5. Audit trail

api_tests!(audit_trail_records_and_verifies);

async fn audit_trail_records_and_verifies(kit: Kit) {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    let setup_events = audit_count(&kit).await;
    let bund = create_org(app, admin, bund()).await;
    let by = create_org(app, admin, land("Freistaat Bayern", "09", &bund)).await;
    ok(
        post(app, admin, "/api/v1/providers", provider("alpha")).await,
        StatusCode::CREATED,
    );
    ok(
        put(app, admin, "/api/v1/sites/alpha", site("alpha", "alpha")).await,
        StatusCode::CREATED,
    );
    ok(
        put(app, admin, "/api/v1/sites/beta", site("beta", "alpha")).await,
        StatusCode::CREATED,
    );
    // An unchanged apply records nothing.
    ok(
        put(app, admin, "/api/v1/sites/alpha", site("alpha", "alpha")).await,
        StatusCode::OK,
    );
    let mut changed = site("alpha", "alpha");
    changed["kubernetes_version"] = json!("1.32");
    ok(
        put(app, admin, "/api/v1/sites/alpha", changed).await,
        StatusCode::OK,
    );
    ok(
        post(app, admin, "/api/v1/offerings", offering("nextcloud", &by)).await,
        StatusCode::CREATED,
    );
    ok(
        post(
            app,
            admin,
            "/api/v1/offerings/nextcloud/versions",
            version("1.0.0"),
        )
        .await,
        StatusCode::CREATED,
    );
    let (_, op) = kit
        .user(
            "operator",
            json!([{"role": "provider-operator", "provider": "alpha"}]),
        )
        .await;
    let mut by_op = site("alpha", "alpha");
    by_op["kubernetes_version"] = json!("1.33");
    ok(
        put(app, &op, "/api/v1/sites/alpha", by_op).await,
        StatusCode::OK,
    );

    let events = all(app, admin, "/api/v1/audit").await;
    let total = audit_count(&kit).await;
    assert_eq!(events.len() as i64, total);
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let newest_first: Vec<i64> = (1..=total).rev().collect();
    assert_eq!(seqs, newest_first, "gapless, newest first");
    let summary = |items: &[Value]| -> Vec<(String, String, String)> {
        items
            .iter()
            .map(|e| {
                (
                    e["actor"].as_str().unwrap().to_string(),
                    e["action"].as_str().unwrap().to_string(),
                    e["object"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let ours: Vec<(String, String, String)> = summary(&events)
        .into_iter()
        .filter(|(actor, _, _)| actor != SETUP_ACTOR)
        .collect();
    let expected: Vec<(&str, &str, String)> = vec![
        ("user/operator", "site.update", "site/alpha".into()),
        ("user/admin", "user.create", String::new()),
        (
            "user/admin",
            "offering.version.publish",
            "offering/nextcloud/versions/1.0.0".into(),
        ),
        ("user/admin", "offering.create", "offering/nextcloud".into()),
        ("user/admin", "site.update", "site/alpha".into()),
        ("user/admin", "site.create", "site/beta".into()),
        ("user/admin", "site.create", "site/alpha".into()),
        ("user/admin", "provider.create", "provider/alpha".into()),
        (
            "user/admin",
            "organisation.create",
            format!("organisation/{by}"),
        ),
        (
            "user/admin",
            "organisation.create",
            format!("organisation/{bund}"),
        ),
    ];
    assert_eq!(ours.len(), expected.len(), "{ours:#?}");
    for (got, want) in ours.iter().zip(&expected) {
        assert_eq!((got.0.as_str(), got.1.as_str()), (want.0, want.1));
        if !want.2.is_empty() {
            assert_eq!(got.2, want.2);
        }
    }
    assert_eq!(
        total,
        setup_events + expected.len() as i64 + 1,
        "the kit's token"
    );

    let sites = all(app, admin, "/api/v1/audit?action=site.").await;
    assert_eq!(
        summary(&sites),
        vec![
            (
                "user/operator".into(),
                "site.update".into(),
                "site/alpha".into()
            ),
            (
                "user/admin".into(),
                "site.update".into(),
                "site/alpha".into()
            ),
            (
                "user/admin".into(),
                "site.create".into(),
                "site/beta".into()
            ),
            (
                "user/admin".into(),
                "site.create".into(),
                "site/alpha".into()
            ),
        ]
    );
    let alpha = all(app, admin, "/api/v1/audit?object=site/alpha").await;
    assert_eq!(alpha.len(), 3);
    assert!(alpha.iter().all(|e| e["object"] == "site/alpha"));
    assert_eq!(alpha[0]["after"]["kubernetes_version"], "1.33");
    assert_eq!(alpha[0]["before"]["kubernetes_version"], "1.32");
    let by_admin = all(app, admin, "/api/v1/audit?actor=user/admin").await;
    assert_eq!(by_admin.len(), expected.len() - 1);
    assert!(by_admin.iter().all(|e| e["actor"] == "user/admin"));
    let combined = all(
        app,
        admin,
        "/api/v1/audit?actor=user/operator&action=site.&object=site/",
    )
    .await;
    assert_eq!(combined.len(), 1);
    // `_` and `%` are literal in the prefixes.
    assert!(all(app, admin, "/api/v1/audit?action=site_")
        .await
        .is_empty());
    assert!(all(app, admin, "/api/v1/audit?action=%25").await.is_empty());

    // Pages of two walk the same events.
    let mut walked = Vec::new();
    let mut url = "/api/v1/audit?limit=2".to_string();
    loop {
        let page = ok(get(app, admin, &url).await, StatusCode::OK);
        walked.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_i64().unwrap()),
        );
        match page["next"].as_str() {
            Some(n) => url = format!("/api/v1/audit?limit=2&after={n}"),
            None => break,
        }
    }
    assert_eq!(walked, newest_first);

    let status = ok(
        get(app, admin, "/api/v1/audit/verify").await,
        StatusCode::OK,
    );
    assert_eq!(status, json!({"intact": true, "verified": total}));
}

// ---------------------------------------------------------------------------------------
// 6. OpenAPI and operations

/// Every route the API router serves, with its methods in lowercase, read from the
/// `.route("…", get(…).post(…))` calls in `src/routes/` (health and metrics excepted:
/// they live outside `/api/v1`). Reading the source is the only way to enumerate what
/// axum routes; a route added there without documentation fails the OpenAPI test.
fn served_routes() -> BTreeSet<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("src/routes") {
        let path = entry.expect("a directory entry").path();
        // Served beside the API, not under /api/v1: health and metrics, and Git's smart
        // HTTP protocol for the sites (git.rs), which no OpenAPI client speaks.
        if path
            .file_name()
            .is_some_and(|n| n == "health.rs" || n == "git.rs")
        {
            continue;
        }
        let src = std::fs::read_to_string(&path).expect("a route module");
        let mut rest = src.as_str();
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + ".route(".len()..];
            // The arguments up to the matching parenthesis.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(j, _)| j)
                .expect("balanced parentheses");
            let args = &rest[..end];
            let route = args.split('"').nth(1).expect("a route path literal");
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = args.match_indices(&format!("{method}(")).any(|(k, _)| {
                    k == 0
                        || !args.as_bytes()[k - 1].is_ascii_alphanumeric()
                            && args.as_bytes()[k - 1] != b'_'
                });
                if called {
                    out.insert((format!("/api/v1{route}"), method.to_string()));
                }
            }
        }
    }
    out
}

api_tests!(
    openapi_document_lists_every_route,
    operations_endpoints,
    metrics_need_a_token_that_may_read_them,
);

async fn openapi_document_lists_every_route(kit: Kit) {
    let r = get(&kit.app, "", "/api/v1/openapi.json").await;
    let doc = ok(r, StatusCode::OK);
    let parsed = oas3::from_json(doc.to_string()).expect("a structurally valid OpenAPI document");
    let version = parsed
        .validate_version()
        .expect("a supported OpenAPI version");
    assert_eq!(version.major, 3, "{}", parsed.openapi);
    assert!(!parsed.info.title.is_empty());

    let mut documented = BTreeSet::new();
    for (path, method, op) in parsed.operations() {
        documented.insert((path.clone(), method.as_str().to_lowercase()));
        assert!(
            !op.responses(&parsed).is_empty(),
            "{method} {path} documents no response"
        );
        assert!(
            !op.security.is_empty(),
            "{method} {path} does not say it needs a bearer token"
        );
    }
    let served = served_routes();
    for (path, method) in [
        ("/api/v1/organisations", "post"),
        ("/api/v1/providers/{name}", "put"),
        ("/api/v1/sites/{name}", "put"),
        ("/api/v1/offerings/{name}", "put"),
        ("/api/v1/offerings/{name}/versions", "post"),
        ("/api/v1/users/{id}", "get"),
        ("/api/v1/tokens/{id}", "delete"),
        ("/api/v1/audit/verify", "get"),
    ] {
        assert!(
            served.contains(&(path.to_string(), method.to_string())),
            "reading the routes from the source missed {method} {path}: {served:?}"
        );
    }
    assert_eq!(documented, served, "the document and the router disagree");
    let components = parsed.components.as_ref().expect("components");
    assert!(
        components.security_schemes.contains_key("bearer"),
        "no bearer security scheme"
    );

    // Every `$ref` points at something the document defines.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for r in found {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref `{r}`"));
        assert!(doc.pointer(pointer).is_some(), "dangling $ref `{r}`");
    }

    // Every documented operation is really routed: none falls through to the fallback
    // or answers 405.
    for (path, method) in &documented {
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "unknown" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let body = matches!(method, Method::POST | Method::PUT).then(|| json!({}));
        let r = send(
            &kit.app,
            request(method.clone(), &concrete, &kit.admin, body.as_ref()),
        )
        .await;
        assert_ne!(r.0, StatusCode::METHOD_NOT_ALLOWED, "{method} {concrete}");
        assert_ne!(
            r.2["detail"], "no such API endpoint",
            "{method} {concrete} is documented but not routed"
        );
    }
    let r = get(&kit.app, &kit.admin, "/api/v1/nothing-here").await;
    let d = assert_problem(&r, StatusCode::NOT_FOUND, None);
    assert_eq!(d, "no such API endpoint");

    // A known path with an unsupported method is a problem too, and says what is allowed.
    for (method, path, allowed) in [
        (Method::DELETE, "/api/v1/organisations", "GET,HEAD,POST"),
        (Method::PATCH, "/api/v1/sites/alpha", "GET,HEAD,PUT"),
        (Method::GET, "/api/v1/tokens/some-id", "DELETE"),
    ] {
        let r = send(&kit.app, request(method.clone(), path, &kit.admin, None)).await;
        let d = assert_problem(&r, StatusCode::METHOD_NOT_ALLOWED, None);
        assert!(d.contains(&format!("`{method}`")), "{d}");
        let allow =
            r.1.get(header::ALLOW)
                .map(|v| v.to_str().unwrap().replace(' ', ""));
        assert_eq!(allow.as_deref(), Some(allowed), "{method} {path}");
    }
}

/// The metrics show federation-wide site health and booking counts: Cedar lets the
/// federation's admins and auditors and the `monitoring` role read them, nobody else; the
/// probes stay open.
async fn metrics_need_a_token_that_may_read_them(kit: Kit) {
    let r = get(&kit.app, "", "/metrics").await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, None);
    assert!(!r.2.to_string().contains("verbund_"), "{}", r.2);
    let r = get(&kit.app, "garbage", "/metrics").await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, None);
    let bund = create_org(&kit.app, &kit.admin, bund()).await;
    let (_, member) = kit
        .user(
            "member",
            json!([{"role": "org-member", "organisation": bund}]),
        )
        .await;
    let r = get(&kit.app, &member, "/metrics").await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    let (_, auditor) = kit.user("pruefer", json!([{"role": "auditor"}])).await;
    let (_, prometheus) = kit
        .user("prometheus", json!([{"role": "monitoring"}]))
        .await;
    for token in [&kit.admin, &auditor, &prometheus] {
        let r = get(&kit.app, token, "/metrics").await;
        assert_eq!(r.0, StatusCode::OK, "{}", r.2);
        assert!(
            r.2.as_str().is_some_and(|t| t.contains("verbund_bookings")),
            "{}",
            r.2
        );
    }
    // The monitoring role reads the metrics and no tenant's data.
    for path in [
        "/api/v1/bookings",
        "/api/v1/audit",
        "/api/v1/users",
        "/api/v1/fleet",
    ] {
        let r = get(&kit.app, &prometheus, path).await;
        assert!(
            r.0 == StatusCode::FORBIDDEN
                || r.2["items"].as_array().is_some_and(Vec::is_empty)
                || r.2["sites"].as_array().is_some_and(Vec::is_empty),
            "{path}: {} {}",
            r.0,
            r.2
        );
    }
    // A monitoring account is federation-wide, not an organisation's.
    let r = post(
        &kit.app,
        &kit.admin,
        "/api/v1/users",
        json!({"name": "p2", "display_name": "P2",
               "memberships": [{"role": "monitoring", "organisation": bund}]}),
    )
    .await;
    assert_problem(
        &r,
        StatusCode::BAD_REQUEST,
        Some("/memberships/0/organisation"),
    );
    // The probes carry no token.
    assert_eq!(get(&kit.app, "", "/healthz").await.0, StatusCode::OK);
    assert_eq!(get(&kit.app, "", "/readyz").await.0, StatusCode::OK);
}

async fn operations_endpoints(kit: Kit) {
    let r = get(&kit.app, "", "/healthz").await;
    assert_eq!(r.0, StatusCode::OK);
    let r = get(&kit.app, "", "/readyz").await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);

    ok(
        get(&kit.app, &kit.admin, "/api/v1/organisations").await,
        StatusCode::OK,
    );
    ok(
        get(&kit.app, &kit.admin, "/api/v1/organisations").await,
        StatusCode::OK,
    );
    let r = get(&kit.app, "", "/api/v1/providers").await;
    assert_eq!(r.0, StatusCode::UNAUTHORIZED);
    let r = get(&kit.app, &kit.admin, "/api/v1/sites/unknown").await;
    assert_eq!(r.0, StatusCode::NOT_FOUND);

    let r = get(&kit.app, &kit.admin, "/metrics").await;
    assert_eq!(r.0, StatusCode::OK);
    let text = r.2.as_str().expect("metrics are text").to_string();
    let line = |route: &str, status: u16| {
        text.lines()
            .find(|l| {
                l.starts_with("verbund_http_requests_total{")
                    && l.contains(&format!("route=\"{route}\""))
                    && l.contains(&format!("status=\"{status}\""))
            })
            .map(str::to_string)
    };
    let orgs = line("/api/v1/organisations", 200)
        .unwrap_or_else(|| panic!("no counter for the organisations list:\n{text}"));
    assert!(orgs.contains("method=\"GET\""), "{orgs}");
    assert!(orgs.ends_with(" 2"), "two requests: {orgs}");
    assert!(
        line("/api/v1/providers", 401).is_some(),
        "refused requests are counted:\n{text}"
    );
    assert!(
        line("/api/v1/sites/{name}", 404).is_some(),
        "routes are labelled by pattern, not by path:\n{text}"
    );
    assert!(
        text.contains("verbund_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// 7. Problem documents as clients see them

api_tests!(problem_documents);

/// A JSON snapshot with sorted keys: the order of a parsed `Value` depends on serde_json's
/// `preserve_order` feature, which a dependency may switch on for the whole build.
fn snapshot(name: &str, value: &Value) {
    insta::with_settings!({sort_maps => true}, {
        insta::assert_json_snapshot!(name, value);
    });
}

async fn problem_documents(kit: Kit) {
    let bund = create_org(&kit.app, &kit.admin, bund()).await;
    let r = post(
        &kit.app,
        &kit.admin,
        "/api/v1/organisations",
        land("Freistaat Bayern", "0916", &bund),
    )
    .await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("/ars"));
    snapshot("problem_validation", &r.2);

    let r = get(&kit.app, "", "/api/v1/organisations").await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, None);
    snapshot("problem_unauthenticated", &r.2);

    let r = get(&kit.app, &kit.admin, "/api/v1/sites/dataport-hh-1").await;
    assert_problem(&r, StatusCode::NOT_FOUND, None);
    snapshot("problem_not_found", &r.2);
}

// ---------------------------------------------------------------------------------------
// Portal passwords

api_tests!(
    passwords_belong_to_their_owners_and_administrators_send_resets,
    offboarding_disables_removes_roles_and_revokes_at_once,
);

/// The stored password hash of the account named `name`.
async fn password_hash(kit: &Kit, name: &str) -> Option<String> {
    kit.store
        .credential(name)
        .await
        .expect("credential")
        .and_then(|(_, c)| c)
        .and_then(|c| c.password_hash)
}

async fn passwords_belong_to_their_owners_and_administrators_send_resets(kit: Kit) {
    let bund = create_org(&kit.app, &kit.admin, bund()).await;
    let sh = create_org(
        &kit.app,
        &kit.admin,
        land("Schleswig-Holstein", "01", &bund),
    )
    .await;
    let hh = create_org(&kit.app, &kit.admin, land("Hamburg", "02", &bund)).await;
    let (clerk, clerk_token) = kit
        .user("clerk", json!([{"role": "org-member", "organisation": sh}]))
        .await;
    let (_, sh_admin) = kit
        .user(
            "sh-admin",
            json!([{"role": "org-admin", "organisation": sh}]),
        )
        .await;
    let (_, hh_admin) = kit
        .user(
            "hh-admin",
            json!([{"role": "org-admin", "organisation": hh}]),
        )
        .await;
    let path = format!("/api/v1/users/{clerk}/password");
    let change = |current: &str, new: &str| json!({"current_password": current, "password": new});

    // Nobody sets another person's password: not the account's administrator, not a
    // federation admin; a foreign administrator does not even see the account.
    let before = audit_count(&kit).await;
    for (token, status) in [
        (&sh_admin, StatusCode::FORBIDDEN),
        (&kit.admin, StatusCode::FORBIDDEN),
        (&hh_admin, StatusCode::NOT_FOUND),
    ] {
        let r = put(&kit.app, token, &path, change("", "long enough really")).await;
        assert_problem(&r, status, None);
    }
    // The owner needs the current password, and has none yet.
    let r = put(
        &kit.app,
        &clerk_token,
        &path,
        json!({"password": "long enough really"}),
    )
    .await;
    assert_problem(&r, StatusCode::BAD_REQUEST, None);
    let r = put(
        &kit.app,
        &clerk_token,
        &path,
        change("", "long enough really"),
    )
    .await;
    assert_problem(&r, StatusCode::CONFLICT, None);
    assert_eq!(audit_count(&kit).await, before);
    assert_eq!(password_hash(&kit, "clerk").await, None);

    // The administrator hands out a reset; not for their own account, not abroad.
    let reset = format!("/api/v1/users/{clerk}/password-reset");
    let r = post(&kit.app, &hh_admin, &reset, json!({})).await;
    assert_problem(&r, StatusCode::NOT_FOUND, None);
    let r = post(&kit.app, &clerk_token, &reset, json!({})).await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    let first = ok(
        post(&kit.app, &sh_admin, &reset, json!({})).await,
        StatusCode::CREATED,
    );
    let issued = ok(
        post(&kit.app, &sh_admin, &reset, json!({})).await,
        StatusCode::CREATED,
    );
    assert_eq!(issued["user"], clerk.as_str());
    let token = issued["token"].as_str().expect("a token").to_string();
    assert!(token.starts_with("vbr_") && token.len() == 68, "{token}");
    let events = all(
        &kit.app,
        &kit.admin,
        "/api/v1/audit?action=user.password-reset",
    )
    .await;
    assert_eq!(events[0]["actor"], "user/sh-admin");
    assert!(
        !events.iter().any(|e| e.to_string().contains(&token)),
        "no token in the trail"
    );

    // The person completes it (no bearer token); the first, superseded token, a made-up
    // one and a short password are refused.
    let complete = |t: &str, p: &str| json!({"token": t, "password": p});
    let r = post(
        &kit.app,
        "",
        "/api/v1/password-reset",
        complete(&token, "short"),
    )
    .await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("/password"));
    for wrong in [first["token"].as_str().unwrap_or_default(), "vbr_made-up"] {
        let r = post(
            &kit.app,
            "",
            "/api/v1/password-reset",
            complete(wrong, "correct horse battery"),
        )
        .await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("/token"));
    }
    let r = post(
        &kit.app,
        "",
        "/api/v1/password-reset",
        complete(&token, "correct horse battery"),
    )
    .await;
    assert_eq!(ok(r, StatusCode::OK)["id"], clerk.as_str());
    let h = password_hash(&kit, "clerk").await.expect("a hash");
    assert!(verbund_api::password::verify("correct horse battery", &h));
    let r = post(
        &kit.app,
        "",
        "/api/v1/password-reset",
        complete(&token, "another horse battery"),
    )
    .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("/token"));

    // Now the owner changes it, knowing the current one.
    let r = put(
        &kit.app,
        &clerk_token,
        &path,
        change("wrong horse battery", "new horse battery"),
    )
    .await;
    assert_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/current_password"),
    );
    let r = put(
        &kit.app,
        &clerk_token,
        &path,
        change("correct horse battery", "new horse battery"),
    )
    .await;
    assert_eq!(ok(r, StatusCode::OK)["id"], clerk.as_str());
    let h = password_hash(&kit, "clerk").await.expect("a hash");
    assert!(verbund_api::password::verify("new horse battery", &h));
    let events = all(&kit.app, &kit.admin, "/api/v1/audit?action=user.password").await;
    assert_eq!(events[0]["actor"], "user/clerk");
    assert_eq!(
        events[1]["actor"], "user/clerk",
        "the reset is completed by its owner"
    );
    assert!(
        !events.iter().any(|e| e.to_string().contains("argon2")),
        "no hash in the trail"
    );

    // Wrong current passwords are limited like sign-ins.
    let max = verbund_store::LockPolicy::default().max_failures;
    for _ in 1..max {
        let r = put(
            &kit.app,
            &clerk_token,
            &path,
            change("guess horse battery", "x horse battery"),
        )
        .await;
        assert_problem(
            &r,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("/current_password"),
        );
    }
    let r = put(
        &kit.app,
        &clerk_token,
        &path,
        change("guess horse battery", "x horse battery"),
    )
    .await;
    assert_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/current_password"),
    );
    let r = put(
        &kit.app,
        &clerk_token,
        &path,
        change("new horse battery", "x horse battery"),
    )
    .await;
    assert_problem(&r, StatusCode::TOO_MANY_REQUESTS, None);
    assert!(r.1.get(header::RETRY_AFTER).is_some(), "{:?}", r.1);

    // An account of an identity provider has no local password: no reset, no change.
    let spec: verbund_domain::account::UserSpec = serde_json::from_value(
        json!({"name": "erika", "display_name": "Erika", "memberships": [{"role": "org-member", "organisation": sh}]}),
    )
    .expect("a spec");
    let erika = kit
        .store
        .create_oidc_user(
            "system/oidc",
            "https://id.example/realms/v",
            "sub-erika",
            &spec,
            Utc::now(),
        )
        .await
        .expect("an OIDC user");
    let (_, erika_token) =
        verbund_api::issue_token(&kit.store, "test/setup", &erika.id, "t", None, Utc::now())
            .await
            .expect("a token");
    let r = post(
        &kit.app,
        &sh_admin,
        &format!("/api/v1/users/{}/password-reset", erika.id),
        json!({}),
    )
    .await;
    assert_problem(&r, StatusCode::CONFLICT, None);
    let r = put(
        &kit.app,
        &erika_token,
        &format!("/api/v1/users/{}/password", erika.id),
        change("", "long enough really"),
    )
    .await;
    assert_problem(&r, StatusCode::CONFLICT, None);
    assert_eq!(password_hash(&kit, "erika").await, None);

    // Argon2 work is bounded: with every permit taken, a change is refused at once.
    let hashing = verbund_api::password::HashingLimit::new(1);
    let app = verbund_api::app(verbund_api::AppState {
        hashing: hashing.clone(),
        ..verbund_api::AppState::new(kit.store.clone())
    });
    let held = hashing.exhaust().await.expect("the permits");
    let r = post(
        &app,
        "",
        "/api/v1/password-reset",
        complete("vbr_x", "long enough really"),
    )
    .await;
    assert_problem(&r, StatusCode::SERVICE_UNAVAILABLE, None);
    assert_eq!(
        r.1.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()),
        Some("1")
    );
    drop(held);
    let r = post(
        &app,
        "",
        "/api/v1/password-reset",
        complete("vbr_x", "long enough really"),
    )
    .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("/token"));
}

async fn offboarding_disables_removes_roles_and_revokes_at_once(kit: Kit) {
    let bund = create_org(&kit.app, &kit.admin, bund()).await;
    let sh = create_org(
        &kit.app,
        &kit.admin,
        land("Schleswig-Holstein", "01", &bund),
    )
    .await;
    let hh = create_org(&kit.app, &kit.admin, land("Hamburg", "02", &bund)).await;
    let (leaver, leaver_token) = kit
        .user(
            "leaver",
            json!([{"role": "org-admin", "organisation": sh}, {"role": "org-member", "organisation": sh}]),
        )
        .await;
    let (sh_admin_id, sh_admin) = kit
        .user(
            "sh-admin",
            json!([{"role": "org-admin", "organisation": sh}]),
        )
        .await;
    let (_, hh_admin) = kit
        .user(
            "hh-admin",
            json!([{"role": "org-admin", "organisation": hh}]),
        )
        .await;
    let me = |token: &str| {
        let app = kit.app.clone();
        let token = token.to_string();
        async move { get(&app, &token, "/api/v1/users/me").await.0 }
    };
    assert_eq!(me(&leaver_token).await, StatusCode::OK);

    // Disable: the account's token stops working at once.
    let disable = format!("/api/v1/users/{leaver}/disable");
    assert_problem(
        &post(&kit.app, &hh_admin, &disable, json!({})).await,
        StatusCode::NOT_FOUND,
        None,
    );
    let own = format!("/api/v1/users/{sh_admin_id}/disable");
    assert_problem(
        &post(&kit.app, &sh_admin, &own, json!({})).await,
        StatusCode::FORBIDDEN,
        None,
    );
    let u = ok(
        post(&kit.app, &sh_admin, &disable, json!({})).await,
        StatusCode::OK,
    );
    assert!(u["disabled_at"].is_string(), "{u}");
    assert_eq!(me(&leaver_token).await, StatusCode::UNAUTHORIZED);
    let listed = ok(
        get(&kit.app, &sh_admin, &format!("/api/v1/users/{leaver}")).await,
        StatusCode::OK,
    );
    assert_eq!(listed["disabled_at"], u["disabled_at"]);
    let u = ok(
        post(
            &kit.app,
            &sh_admin,
            &format!("/api/v1/users/{leaver}/enable"),
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    assert!(u.get("disabled_at").is_none(), "{u}");
    assert_eq!(me(&leaver_token).await, StatusCode::OK);

    // Remove a role; an org admin cannot hand out a federation role on the way.
    let roles = format!("/api/v1/users/{leaver}/roles");
    let r = put(
        &kit.app,
        &sh_admin,
        &roles,
        json!({"memberships": [{"role": "federation-admin"}]}),
    )
    .await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    let r = put(
        &kit.app,
        &hh_admin,
        &roles,
        json!({"memberships": [{"role": "org-member", "organisation": hh}]}),
    )
    .await;
    assert_problem(&r, StatusCode::NOT_FOUND, None);
    let r = put(&kit.app, &sh_admin, &roles, json!({"memberships": []})).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("/memberships"));
    let u = ok(
        put(
            &kit.app,
            &sh_admin,
            &roles,
            json!({"memberships": [{"role": "org-member", "organisation": sh}]}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(
        u["memberships"],
        json!([{"role": "org-member", "organisation": sh}])
    );
    // Its token acts with the roles it has now: no more account administration.
    let r = post(
        &kit.app,
        &leaver_token,
        &format!("/api/v1/users/{sh_admin_id}/disable"),
        json!({}),
    )
    .await;
    assert_problem(&r, StatusCode::NOT_FOUND, None);

    // Revoke: every token of the account, in one step.
    verbund_api::issue_token(
        &kit.store,
        "test/setup",
        &leaver,
        "second",
        None,
        Utc::now(),
    )
    .await
    .expect("a second token");
    let r = ok(
        post(
            &kit.app,
            &sh_admin,
            &format!("/api/v1/users/{leaver}/revoke"),
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(r, json!({"tokens": 2, "sessions": 0}));
    assert_eq!(me(&leaver_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&sh_admin).await, StatusCode::OK, "nobody else's");

    let trail: Vec<String> = all(
        &kit.app,
        &kit.admin,
        &format!("/api/v1/audit?object=user/{leaver}"),
    )
    .await
    .iter()
    .map(|e| {
        format!(
            "{} {}",
            e["actor"].as_str().unwrap_or(""),
            e["action"].as_str().unwrap_or("")
        )
    })
    .collect();
    for expected in [
        "user/sh-admin user.disable",
        "user/sh-admin user.enable",
        "user/sh-admin user.roles",
        "user/sh-admin user.revoke",
    ] {
        assert!(
            trail.iter().any(|e| e == expected),
            "{expected} in {trail:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Secrets by declaration

api_tests!(declared_secrets_are_write_only_and_free_form_ones_refused);

/// A Keycloak-like offering: `password_policy` is named and no secret, `admin_password`
/// and the SMTP password are declared secret, `extra` and `env` are the tenant's.
fn keycloak(vendor: &str) -> Value {
    let mut o = offering("keycloak", vendor);
    o["config_schema"] = json!({
        "type": "object",
        "properties": {
            "password_policy": {"type": "string"},
            "admin_password": {"type": "string", "writeOnly": true, "minLength": 12},
            "smtp": {"type": "object", "properties": {
                "host": {"type": "string"},
                "password": {"type": "string", "format": "password"}
            }},
            "database_url": {"type": "string"},
            "extra": {"type": "object", "additionalProperties": true},
            "env": {"type": "array", "items": {"type": "object"}}
        }
    });
    o
}

async fn declared_secrets_are_write_only_and_free_form_ones_refused(kit: Kit) {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    verbund_placement::ensure_default_policies(&kit.store, Utc::now())
        .await
        .expect("default policies");
    let bund = create_org(app, admin, bund()).await;
    ok(
        post(app, admin, "/api/v1/providers", provider("p1")).await,
        StatusCode::CREATED,
    );
    let (_, recipient) = verbund_seal::Identities::generate();

    // A site's age recipient is checked.
    let mut wrong = site("sealed", "p1");
    wrong["age_recipient"] = json!("age1notarecipient");
    let r = post(app, admin, "/api/v1/sites", wrong).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("/age_recipient"));
    // Of the recipient's form, but its checksum does not hold: no schema says that.
    let mut garbled = recipient.to_string();
    let last = if garbled.ends_with('q') { "p" } else { "q" };
    garbled.replace_range(garbled.len() - 1.., last);
    let mut wrong = site("sealed", "p1");
    wrong["age_recipient"] = json!(garbled);
    let r = post(app, admin, "/api/v1/sites", wrong).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("/age_recipient"));
    // Argo CD with a recipient, Flux without one, Flux with one.
    for (name, delivery, age) in [
        ("argo", "argocd", Some(&recipient)),
        ("plain", "flux", None),
        ("sealed", "flux", Some(&recipient)),
    ] {
        let mut spec = site(name, "p1");
        spec["delivery"] = json!(delivery);
        // What the federation's policy asks of a site for personal data.
        spec["certifications"]
            .as_array_mut()
            .expect("certifications")
            .push(json!({"scheme": "iso27001", "level": "it-grundschutz", "valid_until": "2027-12-31"}));
        if let Some(age) = age {
            spec["age_recipient"] = json!(age);
        }
        let s = ok(
            post(app, admin, "/api/v1/sites", spec).await,
            StatusCode::CREATED,
        );
        assert_eq!(s["age_recipient"].as_str(), age.map(String::as_str), "{s}");
    }
    certify(&kit).await;
    ok(
        post(app, admin, "/api/v1/offerings", keycloak(&bund)).await,
        StatusCode::CREATED,
    );
    ok(
        post(
            app,
            admin,
            "/api/v1/offerings/keycloak/versions",
            version("1.0.0"),
        )
        .await,
        StatusCode::CREATED,
    );
    let booking = |config: Value| json!({"organisation": bund, "offering": "keycloak", "plan": "s", "config": config});

    // Free-form secrets are refused, naming the pointer; nothing is stored.
    let before = audit_count(&kit).await;
    for (config, pointer) in [
        (
            json!({"extra": {"smtp_pass": "x9"}}),
            "/config/extra/smtp_pass",
        ),
        (
            json!({"extra": {"Passwort": "x9"}}),
            "/config/extra/Passwort",
        ),
        (
            json!({"extra": {"passwords": ["ok", "hunter2"]}}),
            "/config/extra/passwords/0",
        ),
        (
            json!({"env": [{"name": "DB_PASSWORD", "value": "x9"}]}),
            "/config/env/0/value",
        ),
        (
            json!({"database_url": "postgres://u:pw@h/db"}),
            "/config/database_url",
        ),
        // A secret's value must be carriable too.
        (
            json!({"admin_password": "long enough\u{7f}secret"}),
            "/config/admin_password",
        ),
    ] {
        let r = post(app, admin, "/api/v1/bookings", booking(config.clone())).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some(pointer));
    }
    // A declared secret that breaks the schema is refused without being quoted back.
    let r = post(
        app,
        admin,
        "/api/v1/bookings",
        booking(json!({"admin_password": "tiny-pw"})),
    )
    .await;
    let detail = assert_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/config/admin_password"),
    );
    assert!(!r.2.to_string().contains("tiny-pw"), "{detail}");
    assert_eq!(audit_count(&kit).await, before);

    // Declared secrets are accepted, kept apart, and only on a site that can receive them.
    let config = json!({
        "password_policy": "length(12) and notUsername",
        "admin_password": "hunter2-hunter2",
        "smtp": {"host": "mail.example", "password": "smtp-s3cret"},
    });
    let created = ok(
        post(app, admin, "/api/v1/bookings", booking(config)).await,
        StatusCode::CREATED,
    );
    let b = &created["booking"];
    let id = b["id"].as_str().expect("id").to_string();
    assert_eq!(b["site"], "sealed", "{created}");
    assert_eq!(
        b["config"],
        json!({"password_policy": "length(12) and notUsername", "smtp": {"host": "mail.example"}})
    );
    assert_eq!(
        b["secrets_set"],
        json!(["/admin_password", "/smtp/password"])
    );
    let verdicts = created["placement"]["candidates"]
        .as_array()
        .expect("candidates");
    for (site, why) in [("argo", "Argo CD"), ("plain", "age recipient")] {
        let v = verdicts
            .iter()
            .find(|v| v["site"] == site)
            .expect("verdict");
        assert_eq!(v["allowed"], false, "{v}");
        assert!(v["reasons"].to_string().contains(why), "{v}");
    }

    // A change that leaves them out keeps them; an empty string removes one.
    let path = format!("/api/v1/bookings/{id}");
    let patch = async |config: Value| {
        let r = request_json(app, admin, Method::PATCH, &path, json!({"config": config})).await;
        ok(r, StatusCode::OK)
    };
    let r = patch(b["config"].clone()).await;
    assert_eq!(
        r["secrets_set"],
        json!(["/admin_password", "/smtp/password"])
    );
    let r = patch(
        json!({"admin_password": "", "smtp": {"host": "mail.example", "password": "n3u-smtp"}}),
    )
    .await;
    assert_eq!(r["secrets_set"], json!(["/smtp/password"]));
    assert_eq!(
        kit.store
            .booking_secrets(std::slice::from_ref(&id))
            .await
            .unwrap()[&id],
        [("/smtp/password".to_string(), "n3u-smtp".to_string())].into()
    );

    // No answer ever holds a value: the booking, the list, its placement, its manifests
    // (the Secret sealed for the site), the audit trail.
    let manifests = get(app, admin, &format!("/api/v1/bookings/{id}/manifests")).await;
    let manifests = ok(manifests, StatusCode::OK).to_string();
    assert!(manifests.contains("ENC[AES256_GCM,"), "{manifests}");
    let answers = [
        ok(get(app, admin, &path).await, StatusCode::OK).to_string(),
        all(app, admin, "/api/v1/bookings")
            .await
            .iter()
            .map(Value::to_string)
            .collect(),
        ok(
            get(app, admin, &format!("{path}/placement")).await,
            StatusCode::OK,
        )
        .to_string(),
        manifests,
        all(app, admin, "/api/v1/audit")
            .await
            .iter()
            .map(Value::to_string)
            .collect(),
    ];
    for answer in &answers {
        for value in ["hunter2-hunter2", "smtp-s3cret", "n3u-smtp", "tiny-pw"] {
            assert!(!answer.contains(value), "`{value}` in {answer}");
        }
    }
}

async fn request_json(
    app: &axum::Router,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
) -> Resp {
    send(app, request(method, path, token, Some(&body))).await
}

// ---------------------------------------------------------------------------------------
// Idempotent booking and the booking list's organisation chains

api_tests!(
    a_retried_booking_books_once,
    concurrent_retries_book_once,
    booking_lists_over_many_organisation_chains,
);

/// The Bund, Bayern, a certified site (personal data needs ISO 27001) and a published
/// offering under the default policies: something Bayern can book.
async fn bookable(kit: &Kit) -> String {
    verbund_placement::ensure_default_policies(&kit.store, Utc::now())
        .await
        .expect("default policies");
    let bayern = directory(kit).await;
    let mut certified = site("alpha-2", "alpha");
    certified["certifications"] = json!([{"scheme": "iso27001", "level": "it-grundschutz",
                                          "valid_until": "2099-12-31"}]);
    ok(
        post(&kit.app, &kit.admin, "/api/v1/sites", certified).await,
        StatusCode::CREATED,
    );
    certify(kit).await;
    bayern
}

/// `POST /bookings` with an `Idempotency-Key` and the body as written.
fn book_with_key(token: &str, key: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/api/v1/bookings")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .expect("a valid request")
}

fn replayed(r: &Resp) -> Option<&str> {
    r.1.get("idempotent-replayed").and_then(|v| v.to_str().ok())
}

async fn a_retried_booking_books_once(kit: Kit) {
    let bayern = bookable(&kit).await;
    let now = Utc::now();
    let app = kit.app_at(now);
    let body = json!({"organisation": bayern, "offering": "nextcloud", "plan": "s",
                      "config": {"domain": "a.example"}})
    .to_string();

    let first = send(&app, book_with_key(&kit.admin, "k-1", &body)).await;
    assert_eq!(replayed(&first), None);
    let first = ok(first, StatusCode::CREATED);
    let id = first["booking"]["id"].as_str().expect("id").to_string();
    assert_ne!(first["booking"]["state"], "rejected", "{first}");
    let events = audit_count(&kit).await;

    // The retry (the same request, written differently, with the key quoted as a
    // structured-field string) answers the first one's booking and books nothing.
    let retry_body = format!(
        r#"{{ "plan": "s", "config": {{"domain": "a.example"}}, "offering": "nextcloud", "organisation": "{bayern}" }}"#
    );
    let retry = send(&app, book_with_key(&kit.admin, "\"k-1\"", &retry_body)).await;
    assert_eq!(replayed(&retry), Some("true"));
    let retry = ok(retry, StatusCode::CREATED);
    assert_eq!(retry["booking"]["id"], json!(id), "{retry}");
    assert_eq!(retry["placement"], first["placement"]);
    assert_eq!(retry["dependencies"], first["dependencies"]);
    assert_eq!(audit_count(&kit).await, events);
    assert_eq!(all(&app, &kit.admin, "/api/v1/bookings").await.len(), 1);

    // The same key with another body is refused and changes nothing.
    let other = json!({"organisation": bayern, "offering": "nextcloud", "plan": "s",
                       "config": {"domain": "b.example"}})
    .to_string();
    let r = send(&app, book_with_key(&kit.admin, "k-1", &other)).await;
    let d = assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, None);
    assert_eq!(
        r.2["type"],
        "https://verbund.dev/problems/idempotency-key-reused"
    );
    assert!(d.contains("`k-1`") && d.contains(&id), "{d}");
    assert_eq!(audit_count(&kit).await, events);
    assert_eq!(all(&app, &kit.admin, "/api/v1/bookings").await.len(), 1);

    // A malformed key is a bad request, and books nothing.
    for bad in ["", "\"k-1", &"k".repeat(256)] {
        let r = send(&app, book_with_key(&kit.admin, bad, &body)).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, None);
    }
    assert_eq!(audit_count(&kit).await, events);

    // Keys belong to their account: Bayern's own admin books with the same key.
    let (_, bayern_admin) = kit
        .user(
            "bayern-admin",
            json!([{"role": "org-admin", "organisation": bayern}]),
        )
        .await;
    let theirs = ok(
        send(&app, book_with_key(&bayern_admin, "k-1", &body)).await,
        StatusCode::CREATED,
    );
    assert_ne!(theirs["booking"]["id"], json!(id));

    // Without a key, the same request books again; a day later, so does the key.
    let again = ok(
        post(
            &app,
            &kit.admin,
            "/api/v1/bookings",
            serde_json::from_str(&body).unwrap(),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_ne!(again["booking"]["id"], json!(id));
    let tomorrow = kit.app_at(now + Duration::hours(24));
    let r = send(&tomorrow, book_with_key(&kit.admin, "k-1", &other)).await;
    assert_eq!(replayed(&r), None);
    let later = ok(r, StatusCode::CREATED);
    assert_ne!(later["booking"]["id"], json!(id));
    assert_eq!(all(&app, &kit.admin, "/api/v1/bookings").await.len(), 4);

    // The OpenAPI document names the header and the refusal.
    let doc = ok(get(&app, "", "/api/v1/openapi.json").await, StatusCode::OK);
    let op = &doc["paths"]["/api/v1/bookings"]["post"];
    let params = op["parameters"].as_array().expect("parameters");
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
        "{op}"
    );
    assert!(op["responses"]["422"].is_object(), "{op}");
}

async fn concurrent_retries_book_once(kit: Kit) {
    let bayern = bookable(&kit).await;
    let body = json!({"organisation": bayern, "offering": "nextcloud", "plan": "s"}).to_string();
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let app = kit.app.clone();
            let req = book_with_key(&kit.admin, "k-2", &body);
            tokio::spawn(async move { send(&app, req).await })
        })
        .collect();
    let mut ids = BTreeSet::new();
    let mut first_answers = 0;
    for t in tries {
        let r = t.await.expect("a retry");
        if replayed(&r).is_none() {
            first_answers += 1;
        }
        let created = ok(r, StatusCode::CREATED);
        ids.insert(created["booking"]["id"].as_str().expect("id").to_string());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(first_answers, 1);
    let listed = all(&kit.app, &kit.admin, "/api/v1/bookings").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"].as_str(), ids.first().map(String::as_str));
}

/// A page of bookings of organisations in many chains (two Länder, their Kreise and
/// Gemeinden) lists for each caller exactly the bookings of its organisations, in pages
/// of any size, as one read per booking would.
async fn booking_lists_over_many_organisation_chains(kit: Kit) {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    let bayern = directory(&kit).await;
    let bund = ok(
        get(app, admin, &format!("/api/v1/organisations/{bayern}")).await,
        StatusCode::OK,
    )["parent"]
        .as_str()
        .expect("Bayern's parent")
        .to_string();
    let mut orgs = vec![bund.clone(), bayern.clone()];
    let mut subtree: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    subtree.insert("09", vec![bayern.clone()]);
    let hamburg = create_org(app, admin, land("Hamburg", "02", &bund)).await;
    orgs.push(hamburg.clone());
    subtree.insert("02", vec![hamburg.clone()]);
    for (land_key, land_id) in [("09", &bayern), ("02", &hamburg)] {
        for k in 1..=2 {
            let kreis_key = format!("{land_key}{k:03}");
            let kreis_id = create_org(
                app,
                admin,
                kreis(&format!("Kreis {kreis_key}"), &kreis_key, land_id),
            )
            .await;
            orgs.push(kreis_id.clone());
            subtree.entry(land_key).or_default().push(kreis_id.clone());
            for g in 1..=3 {
                let ags = format!("{kreis_key}{g:03}");
                let ars = format!("{kreis_key}0000{g:03}");
                let g_id = create_org(
                    app,
                    admin,
                    gemeinde(&format!("Gemeinde {ags}"), &ars, &ags, &kreis_id),
                )
                .await;
                orgs.push(g_id.clone());
                subtree.entry(land_key).or_default().push(g_id);
            }
        }
    }
    // Two bookings per organisation, stored directly (placement is not the point).
    let now = Utc::now();
    let mut expected_all = BTreeSet::new();
    for (i, org) in orgs.iter().enumerate() {
        let new: Vec<verbund_store::NewBooking> = (0..2)
            .map(|j| {
                let id = format!("b-{i:02}-{j}");
                expected_all.insert(id.clone());
                let booking: verbund_domain::booking::Booking = serde_json::from_value(json!({
                    "id": id, "organisation": org, "offering": "nextcloud", "plan": "s",
                    "config": {}, "channel": "stable", "state": "placed", "site": "alpha-1",
                    "version": "1.0.0", "created_at": now, "updated_at": now,
                    "state_since": now,
                }))
                .expect("a booking");
                verbund_store::NewBooking {
                    booking,
                    resources: Default::default(),
                    decision: None,
                    action: "booking.create".into(),
                    secrets: None,
                }
            })
            .collect();
        kit.store
            .create_bookings(SETUP_ACTOR, org, now, move |_| {
                Ok::<_, verbund_store::StoreError>(new)
            })
            .await
            .expect("store the bookings");
    }
    let ids = |items: &[Value]| -> BTreeSet<String> {
        items
            .iter()
            .map(|b| b["id"].as_str().expect("id").to_string())
            .collect()
    };
    let pages = |token: String| {
        let app = app.clone();
        async move {
            let mut out = Vec::new();
            for limit in [1000, 7, 1] {
                out.push(all_in_pages_of(&app, &token, "/api/v1/bookings", limit).await);
            }
            out
        }
    };
    for got in pages(kit.admin.clone()).await {
        assert_eq!(ids(&got), expected_all);
    }
    // A delegated admin of Bayern sees Bayern's whole subtree; a plain member of one
    // Kreis only that Kreis's own bookings.
    let bayern = &subtree["09"][0];
    let (_, delegated) = kit
        .user(
            "bayern-delegated",
            json!([{"role": "org-admin", "organisation": bayern, "delegated": true}]),
        )
        .await;
    let index = |o: &String| orgs.iter().position(|x| x == o).expect("an organisation");
    let bookings_of = |set: &[String]| -> BTreeSet<String> {
        set.iter()
            .flat_map(|o| {
                let i = index(o);
                [format!("b-{i:02}-0"), format!("b-{i:02}-1")]
            })
            .collect()
    };
    for got in pages(delegated).await {
        assert_eq!(ids(&got), bookings_of(&subtree["09"]));
    }
    let kreis = &subtree["02"][1];
    let (_, member) = kit
        .user(
            "kreis-member",
            json!([{"role": "org-member", "organisation": kreis}]),
        )
        .await;
    for got in pages(member).await {
        assert_eq!(ids(&got), bookings_of(std::slice::from_ref(kreis)));
    }
}

// ---------------------------------------------------------------------------------------
// Facts with provenance (issue 17): the operator does not state the facts that constrain it

api_tests!(
    an_operator_cannot_make_its_provider_public_law_or_drop_its_parent,
    an_operator_cannot_certify_its_own_site,
    an_approved_proposal_changes_placement_and_names_both_persons,
    nobody_approves_their_own_proposal,
    operators_keep_editing_what_placement_does_not_read,
);

/// What the attacks of issue 17 start from: a GmbH with a US parent and its Berlin site
/// with ISO 27001 but no BSI C5 type 2, an offering that processes special categories of
/// personal data, the federation's default policies, and the provider's operator.
struct FactScene {
    bund: String,
    /// The operator of `gamma`: its id and token.
    operator_id: String,
    operator: String,
}

async fn fact_scene(kit: &Kit) -> FactScene {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    verbund_placement::ensure_default_policies(&kit.store, Utc::now())
        .await
        .expect("default policies");
    let bund = create_org(app, admin, bund()).await;
    let mut gamma = provider("gamma");
    gamma["legal_form"] = json!("GmbH");
    gamma["public_law"] = json!(false);
    gamma["seat"] = json!({"city": "Berlin", "country": "DE"});
    gamma["parent_companies"] = json!([{"name": "Gamma Cloud Inc.", "jurisdiction": "US"}]);
    ok(
        post(app, admin, "/api/v1/providers", gamma).await,
        StatusCode::CREATED,
    );
    ok(
        post(app, admin, "/api/v1/sites", gamma_site()).await,
        StatusCode::CREATED,
    );
    let mut register = offering("register", &bund);
    register["data_classes"] = json!(["special-categories"]);
    ok(
        post(app, admin, "/api/v1/offerings", register).await,
        StatusCode::CREATED,
    );
    ok(
        post(
            app,
            admin,
            "/api/v1/offerings/register/versions",
            version("1.0.0"),
        )
        .await,
        StatusCode::CREATED,
    );
    let (operator_id, operator) = kit
        .user(
            "operator-gamma",
            json!([{"role": "provider-operator", "provider": "gamma"}]),
        )
        .await;
    // gamma-1's ISO 27001 certificate, attested by a certification body.
    certify(kit).await;
    let scene = FactScene {
        bund,
        operator_id,
        operator,
    };
    assert!(
        !may_place(kit, &scene).await,
        "the scene starts with gamma-1 forbidden for special categories"
    );
    scene
}

fn gamma_site() -> Value {
    let mut s = site("gamma-1", "gamma");
    s["location"] = json!({"country": "DE", "region": "DE-BE", "city": "Berlin"});
    s["certifications"] = json!([
        {"scheme": "iso27001", "level": "it-grundschutz", "valid_until": "2099-12-31"}
    ]);
    s
}

fn gamma_provider_as_stored() -> Value {
    let mut gamma = provider("gamma");
    gamma["legal_form"] = json!("GmbH");
    gamma["public_law"] = json!(false);
    gamma["seat"] = json!({"city": "Berlin", "country": "DE"});
    gamma["parent_companies"] = json!([{"name": "Gamma Cloud Inc.", "jurisdiction": "US"}]);
    gamma
}

/// Whether placement allows a booking of `register` on `gamma-1` now.
async fn may_place(kit: &Kit, scene: &FactScene) -> bool {
    let d = ok(
        post(
            &kit.app,
            &kit.admin,
            "/api/v1/placement/explain",
            json!({"organisation": scene.bund, "offering": "register", "plan": "s"}),
        )
        .await,
        StatusCode::OK,
    );
    let verdict = d["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .find(|c| c["site"] == "gamma-1")
        .cloned()
        .expect("gamma-1 is a candidate");
    verdict["allowed"].as_bool().expect("allowed")
}

/// Books `register` for the Bund and returns the site it was placed on, if any.
async fn book_register(kit: &Kit, scene: &FactScene) -> Option<String> {
    let b = ok(
        post(
            &kit.app,
            &kit.admin,
            "/api/v1/bookings",
            json!({"organisation": scene.bund, "offering": "register", "plan": "s",
                   "config": {"domain": "register.example"}}),
        )
        .await,
        StatusCode::CREATED,
    );
    b["booking"]["site"].as_str().map(String::from)
}

/// Answers `202` with a pending proposal of exactly `facts`; returns it.
#[track_caller]
fn proposed(r: Resp, facts: Value) -> Value {
    let p = ok(r, StatusCode::ACCEPTED);
    assert_eq!(p["state"], "pending", "{p}");
    assert_eq!(p["facts"], facts, "{p}");
    p
}

async fn an_operator_cannot_make_its_provider_public_law_or_drop_its_parent(kit: Kit) {
    let scene = fact_scene(&kit).await;
    let stored = ok(
        get(&kit.app, &kit.admin, "/api/v1/providers/gamma").await,
        StatusCode::OK,
    );
    let mut attack = gamma_provider_as_stored();
    attack["public_law"] = json!(true);
    attack["parent_companies"] = json!([]);
    let r = put(
        &kit.app,
        &scene.operator,
        "/api/v1/providers/gamma",
        attack.clone(),
    )
    .await;
    let location = r.1.get(header::LOCATION).cloned();
    let p = proposed(r, json!({"public_law": true, "parent_companies": []}));
    assert_eq!(p["proposed_by"], "user/operator-gamma");
    assert_eq!(p["proposer_id"], json!(scene.operator_id));
    assert_eq!(
        location.and_then(|l| l.to_str().ok().map(String::from)),
        Some(format!(
            "/api/v1/fact-proposals/{}",
            p["id"].as_str().unwrap()
        ))
    );
    // The provider is as the federation stated it, and placement did not move.
    assert_eq!(
        ok(
            get(&kit.app, &kit.admin, "/api/v1/providers/gamma").await,
            StatusCode::OK
        ),
        stored
    );
    assert!(!may_place(&kit, &scene).await);
    assert_eq!(book_register(&kit, &scene).await, None);
    // Asked again, the same proposal answers; nothing new is recorded.
    let events = audit_count(&kit).await;
    let again = proposed(
        put(&kit.app, &scene.operator, "/api/v1/providers/gamma", attack).await,
        json!({"public_law": true, "parent_companies": []}),
    );
    assert_eq!(again["id"], p["id"]);
    assert_eq!(audit_count(&kit).await, events);
    // Both sides see the pending proposal.
    for token in [&kit.admin, &scene.operator] {
        let list = all(&kit.app, token, "/api/v1/fact-proposals?state=pending").await;
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0]["id"], p["id"]);
        let sheet = ok(
            get(&kit.app, token, "/api/v1/providers/gamma/facts").await,
            StatusCode::OK,
        );
        assert_eq!(sheet["pending"][0]["id"], p["id"], "{sheet}");
    }
    // Another provider's operator sees nothing of it.
    ok(
        post(&kit.app, &kit.admin, "/api/v1/providers", provider("delta")).await,
        StatusCode::CREATED,
    );
    let (_, stranger) = kit
        .user(
            "operator-delta",
            json!([{"role": "provider-operator", "provider": "delta"}]),
        )
        .await;
    assert!(all(&kit.app, &stranger, "/api/v1/fact-proposals")
        .await
        .is_empty());
    let r = get(
        &kit.app,
        &stranger,
        &format!("/api/v1/fact-proposals/{}", p["id"].as_str().unwrap()),
    )
    .await;
    assert_problem(&r, StatusCode::NOT_FOUND, None);
    // Neither may the operator register a provider: its facts are the federation's.
    forbidden(
        &kit,
        &scene.operator,
        Method::POST,
        "/api/v1/providers",
        provider("gamma-two"),
    )
    .await;
}

async fn an_operator_cannot_certify_its_own_site(kit: Kit) {
    let scene = fact_scene(&kit).await;
    let stored = ok(
        get(&kit.app, &kit.admin, "/api/v1/sites/gamma-1").await,
        StatusCode::OK,
    );
    let mut attack = gamma_site();
    attack["certifications"]
        .as_array_mut()
        .unwrap()
        .push(json!({"scheme": "bsi-c5", "level": "type2", "valid_until": "2099-12-31"}));
    let certifications = attack["certifications"].clone();
    let r = put(&kit.app, &scene.operator, "/api/v1/sites/gamma-1", attack).await;
    proposed(r, json!({"certifications": certifications}));
    assert_eq!(
        ok(
            get(&kit.app, &kit.admin, "/api/v1/sites/gamma-1").await,
            StatusCode::OK
        ),
        stored
    );
    assert!(!may_place(&kit, &scene).await);
    // A new site with whatever certifications the operator likes: refused outright.
    let mut own = gamma_site();
    own["name"] = json!("gamma-2");
    own["certifications"] = certifications;
    forbidden(
        &kit,
        &scene.operator,
        Method::POST,
        "/api/v1/sites",
        own.clone(),
    )
    .await;
    forbidden(
        &kit,
        &scene.operator,
        Method::PUT,
        "/api/v1/sites/gamma-2",
        own,
    )
    .await;
}

async fn an_approved_proposal_changes_placement_and_names_both_persons(kit: Kit) {
    let scene = fact_scene(&kit).await;
    let mut provider_facts = gamma_provider_as_stored();
    provider_facts["public_law"] = json!(true);
    provider_facts["parent_companies"] = json!([]);
    let on_provider = proposed(
        put(
            &kit.app,
            &scene.operator,
            "/api/v1/providers/gamma",
            provider_facts,
        )
        .await,
        json!({"public_law": true, "parent_companies": []}),
    );
    let mut certified = gamma_site();
    certified["certifications"]
        .as_array_mut()
        .unwrap()
        .push(json!({"scheme": "bsi-c5", "level": "type2", "valid_until": "2099-12-31"}));
    let on_site = proposed(
        put(
            &kit.app,
            &scene.operator,
            "/api/v1/sites/gamma-1",
            certified.clone(),
        )
        .await,
        json!({"certifications": certified["certifications"]}),
    );
    let id = |p: &Value| p["id"].as_str().unwrap().to_string();

    // The operator cannot approve, nor reject.
    for action in ["approve", "reject"] {
        let r = post(
            &kit.app,
            &scene.operator,
            &format!("/api/v1/fact-proposals/{}/{action}", id(&on_site)),
            json!({"reason": "mine"}),
        )
        .await;
        assert_problem(&r, StatusCode::FORBIDDEN, None);
    }
    assert!(!may_place(&kit, &scene).await);
    // The site's BSI C5 type 2 certificate arrives as its certification body's
    // credential: still no placement, for the provider's facts in force are the stated
    // ones (a GmbH with a US parent), not the operator's proposal.
    let c5: verbund_domain::directory::Certification = serde_json::from_value(
        json!({"scheme": "bsi-c5", "level": "type2", "valid_until": "2099-12-31"}),
    )
    .unwrap();
    verbund_testkit::certified::hand_in(&kit.store, "gamma-1", &c5, Utc::now()).await;
    assert!(!may_place(&kit, &scene).await);

    // A second federation admin approves the provider's facts: public law, no foreign
    // parent — and placement allows gamma-1.
    let (_, approver) = kit
        .user("admin-two", json!([{"role": "federation-admin"}]))
        .await;
    let approved = ok(
        post(
            &kit.app,
            &approver,
            &format!("/api/v1/fact-proposals/{}/approve", id(&on_provider)),
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["decided_by"], "user/admin-two");
    let gamma = ok(
        get(&kit.app, &kit.admin, "/api/v1/providers/gamma").await,
        StatusCode::OK,
    );
    assert_eq!(gamma["public_law"], true);
    assert_eq!(gamma["parent_companies"], json!([]));
    assert!(may_place(&kit, &scene).await);
    // Approved once is decided: not again, and not rejected after.
    let again = post(
        &kit.app,
        &approver,
        &format!("/api/v1/fact-proposals/{}/approve", id(&on_provider)),
        json!({}),
    )
    .await;
    assert_problem(&again, StatusCode::CONFLICT, None);

    // Then the site's certification claim: approved, it is a stated fact with its
    // provenance (placement counts the credential), and a booking goes to gamma-1.
    ok(
        post(
            &kit.app,
            &kit.admin,
            &format!("/api/v1/fact-proposals/{}/approve", id(&on_site)),
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    assert!(may_place(&kit, &scene).await);
    assert_eq!(
        book_register(&kit, &scene).await.as_deref(),
        Some("gamma-1")
    );

    // Every fact shows who stated it and who approved it, when.
    let sheet = ok(
        get(&kit.app, &scene.operator, "/api/v1/sites/gamma-1/facts").await,
        StatusCode::OK,
    );
    let fact = |sheet: &Value, field: &str| -> Value {
        sheet["facts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == field)
            .cloned()
            .unwrap_or_else(|| panic!("no fact `{field}` in {sheet}"))
    };
    let c = fact(&sheet, "certifications");
    assert_eq!(c["value"], certified["certifications"]);
    assert_eq!(c["stated_by"], "user/operator-gamma");
    assert_eq!(c["approved_by"], "user/admin");
    assert_eq!(c["proposal"], on_site["id"]);
    assert!(
        c["stated_at"].is_string() && c["approved_at"].is_string(),
        "{c}"
    );
    let l = fact(&sheet, "location");
    assert_eq!(
        l["stated_by"], "user/admin",
        "stated when the site was registered"
    );
    assert!(l.get("approved_by").is_none(), "{l}");
    assert_eq!(sheet["pending"], json!([]));
    let sheet = ok(
        get(&kit.app, &kit.admin, "/api/v1/providers/gamma/facts").await,
        StatusCode::OK,
    );
    let p = fact(&sheet, "public_law");
    assert_eq!(
        (&p["value"], &p["stated_by"], &p["approved_by"]),
        (
            &json!(true),
            &json!("user/operator-gamma"),
            &json!("user/admin-two")
        )
    );

    // The audit trail names both persons of each approval, on the object itself.
    let events = all(
        &kit.app,
        &kit.admin,
        "/api/v1/audit?action=provider.facts.approve",
    )
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["actor"], "user/admin-two");
    assert_eq!(e["object"], "provider/gamma");
    assert_eq!(e["after"]["proposed_by"], "user/operator-gamma");
    assert_eq!(e["after"]["approved_by"], "user/admin-two");
    assert_eq!(e["before"]["facts"]["public_law"], false);
    let events = all(&kit.app, &kit.admin, "/api/v1/audit?object=site/gamma-1").await;
    let approval = events
        .iter()
        .find(|e| e["action"] == "site.facts.approve")
        .expect("the site's approval is audited");
    assert_eq!(approval["actor"], "user/admin");
    assert_eq!(approval["after"]["proposed_by"], "user/operator-gamma");
    let proposals = all(
        &kit.app,
        &kit.admin,
        "/api/v1/audit?action=site.facts.propose",
    )
    .await;
    assert_eq!(proposals.len(), 1);
    assert_eq!(proposals[0]["actor"], "user/operator-gamma");
    let status = ok(
        get(&kit.app, &kit.admin, "/api/v1/audit/verify").await,
        StatusCode::OK,
    );
    assert_eq!(status["intact"], true);

    // A rejected proposal changes nothing.
    let mut moved = certified;
    moved["location"] = json!({"country": "US", "region": "US-VA", "city": "Ashburn"});
    let away = proposed(
        put(&kit.app, &scene.operator, "/api/v1/sites/gamma-1", moved).await,
        json!({"location": {"country": "US", "region": "US-VA", "city": "Ashburn"}}),
    );
    let rejected = ok(
        post(
            &kit.app,
            &approver,
            &format!("/api/v1/fact-proposals/{}/reject", id(&away)),
            json!({"reason": "no such data center"}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(rejected["state"], "rejected");
    assert_eq!(rejected["reason"], "no such data center");
    let site = ok(
        get(&kit.app, &kit.admin, "/api/v1/sites/gamma-1").await,
        StatusCode::OK,
    );
    assert_eq!(site["location"]["city"], "Berlin");
    assert!(may_place(&kit, &scene).await);
}

async fn nobody_approves_their_own_proposal(kit: Kit) {
    let scene = fact_scene(&kit).await;
    // A proposal of the admin's own account (made, say, while it was an operator):
    // the admin may not approve it; another federation admin may.
    let mut spec: verbund_domain::directory::SiteSpec =
        serde_json::from_value(gamma_site()).unwrap();
    spec.certifications.push(
        serde_json::from_value(
            json!({"scheme": "bsi-c5", "level": "type2", "valid_until": "2099-12-31"}),
        )
        .unwrap(),
    );
    let own = kit
        .store
        .apply_as_operator("user/admin", &kit.admin_id, &spec, Utc::now())
        .await
        .expect("a proposal")
        .expect("the certification is a fact change");
    let before = world(&kit).await;
    let r = post(
        &kit.app,
        &kit.admin,
        &format!("/api/v1/fact-proposals/{}/approve", own.id),
        json!({}),
    )
    .await;
    let detail = assert_problem(&r, StatusCode::FORBIDDEN, None);
    assert!(detail.contains("four eyes"), "{detail}");
    assert_unchanged(&kit, &before, "approving one's own proposal").await;
    let p = ok(
        get(
            &kit.app,
            &kit.admin,
            &format!("/api/v1/fact-proposals/{}", own.id),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(p["state"], "pending");
    assert!(!may_place(&kit, &scene).await);
    let (_, other) = kit
        .user("admin-two", json!([{"role": "federation-admin"}]))
        .await;
    ok(
        post(
            &kit.app,
            &other,
            &format!("/api/v1/fact-proposals/{}/approve", own.id),
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
}

async fn operators_keep_editing_what_placement_does_not_read(kit: Kit) {
    let scene = fact_scene(&kit).await;
    let mut p = gamma_provider_as_stored();
    p["display_name"] = json!("Gamma Rechenzentren");
    let got = ok(
        put(&kit.app, &scene.operator, "/api/v1/providers/gamma", p).await,
        StatusCode::OK,
    );
    assert_eq!(got["display_name"], "Gamma Rechenzentren");
    let mut s = gamma_site();
    s["display_name"] = json!("Gamma Berlin");
    s["kubernetes_version"] = json!("1.32");
    s["capabilities"] = json!(["storage:rwx", "ingress:nginx", "gpu"]);
    s["capacity"] = json!({"cpu_millis": 128000, "memory_mib": 524288, "storage_gib": 20480});
    let got = ok(
        put(
            &kit.app,
            &scene.operator,
            "/api/v1/sites/gamma-1",
            s.clone(),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(got["display_name"], "Gamma Berlin");
    assert_eq!(got["capacity"]["cpu_millis"], 128000);
    assert_eq!(
        got["capabilities"],
        json!(["gpu", "ingress:nginx", "storage:rwx"])
    );
    assert!(all(&kit.app, &kit.admin, "/api/v1/fact-proposals")
        .await
        .is_empty());
    assert_eq!(
        audit_actions(&kit, "site/gamma-1").await[0],
        ("user/operator-gamma".to_string(), "site.update".to_string())
    );
    // Operational fields and a fact in one request: the first apply, the fact waits.
    s["display_name"] = json!("Gamma Berlin-Mitte");
    s["environments"] = json!(["prod"]);
    let p = proposed(
        put(&kit.app, &scene.operator, "/api/v1/sites/gamma-1", s).await,
        json!({"environments": ["prod"]}),
    );
    let site = ok(
        get(&kit.app, &kit.admin, "/api/v1/sites/gamma-1").await,
        StatusCode::OK,
    );
    assert_eq!(site["display_name"], "Gamma Berlin-Mitte");
    assert_eq!(site["environments"], json!(["test", "prod"]));
    assert_eq!(p["object"], "gamma-1");
    // A federation admin states facts directly, recorded as stated by them.
    let mut direct = gamma_site();
    direct["display_name"] = json!("Gamma Berlin-Mitte");
    direct["kubernetes_version"] = json!("1.32");
    direct["capabilities"] = json!(["storage:rwx", "ingress:nginx", "gpu"]);
    direct["capacity"] = json!({"cpu_millis": 128000, "memory_mib": 524288, "storage_gib": 20480});
    direct["location"]["city"] = json!("Berlin-Spandau");
    let got = ok(
        put(&kit.app, &kit.admin, "/api/v1/sites/gamma-1", direct).await,
        StatusCode::OK,
    );
    assert_eq!(got["location"]["city"], "Berlin-Spandau");
    let sheet = ok(
        get(&kit.app, &kit.admin, "/api/v1/sites/gamma-1/facts").await,
        StatusCode::OK,
    );
    let location = sheet["facts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "location")
        .cloned()
        .unwrap();
    assert_eq!(location["stated_by"], "user/admin");
}
