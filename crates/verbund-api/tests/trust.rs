//! Certifications that are proven, not claimed, through the real router on SQLite and
//! PostgreSQL: the federation states its trust list; a site's operator hands in the
//! credential its certification body signed, and only then may special categories of
//! personal data go there; a self-signed, tampered, foreign, expired or out-of-scope
//! credential is refused with the reason and changes nothing; expiry, revocation by the
//! issuer's status list, and the issuer leaving the trust list each make the booking
//! non-compliant at the next evaluation. A certification a federation admin checked by
//! hand is attested by the federation's key and counts only where the trust list names
//! the federation itself.

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
use chrono::{DateTime, Duration, TimeZone, Utc};
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use verbund_api::AppState;
use verbund_gaiax::Federation;
use verbund_trust::{site_subject, Issuer, IssuerKey, StatusRef, TrustList, TrustedIssuer};

api_tests!(
    a_credential_of_a_trusted_body_lets_special_categories_in,
    credentials_that_prove_nothing_are_refused_and_change_nothing,
    expiry_revocation_and_distrust_make_bookings_non_compliant,
    the_federation_attests_what_it_checked_by_hand,
);

/// 1 March 2027, noon.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 12, 0, 0).unwrap()
}

const LIST: &str = "https://zert.example.de/status/1";

struct World {
    gemeinde: String,
    operator: String,
    zert: Issuer,
}

/// A Gemeinde; provider `p1` (public law, in Germany) with site `s1`, ISO 27001 stated by
/// the federation (counted only while the trust list says so: a federation in passage)
/// but no BSI C5; an offering of special categories of personal data; an
/// operator of `p1`; a certification body `zert` (not yet on the trust list).
async fn world(kit: &Kit) -> World {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    verbund_placement::ensure_default_policies(&kit.store, Utc::now())
        .await
        .expect("default policies");
    let bund = create_org(app, admin, bund()).await;
    let by = create_org(app, admin, land("Bayern", "09", &bund)).await;
    let gemeinde = create_org(
        app,
        admin,
        gemeinde("Unterhaching", "091840148148", "09184148", &by),
    )
    .await;
    ok(
        post(app, admin, "/api/v1/providers", provider("p1")).await,
        StatusCode::CREATED,
    );
    let mut s = site("s1", "p1");
    s["certifications"] =
        json!([{"scheme": "iso27001", "level": "it-grundschutz", "valid_until": "2028-12-31"}]);
    ok(
        post(app, admin, "/api/v1/sites", s).await,
        StatusCode::CREATED,
    );
    let mut o = offering("gesundheit", &bund);
    o["data_classes"] = json!(["special-categories"]);
    ok(
        post(app, admin, "/api/v1/offerings", o).await,
        StatusCode::CREATED,
    );
    ok(
        post(
            app,
            admin,
            "/api/v1/offerings/gesundheit/versions",
            version("1.0.0"),
        )
        .await,
        StatusCode::CREATED,
    );
    let (_, operator) = kit
        .user(
            "betrieb",
            json!([{"role": "provider-operator", "provider": "p1"}]),
        )
        .await;
    World {
        gemeinde,
        operator,
        zert: Issuer::generate("did:web:zert.example.de", "Beispiel-Zertifizierung GmbH").unwrap(),
    }
}

async fn trust(kit: &Kit, token: &str, list: &TrustList) -> Resp {
    send(
        &kit.app_at(t0()),
        request(
            axum::http::Method::PUT,
            "/api/v1/trust-list",
            token,
            Some(&serde_json::to_value(list).unwrap()),
        ),
    )
    .await
}

async fn submit(kit: &Kit, token: &str, site: &str, jwt: &str) -> Resp {
    post(
        &kit.app_at(t0()),
        token,
        &format!("/api/v1/sites/{site}/credentials"),
        json!({"jwt": jwt}),
    )
    .await
}

/// C5 type 2 for `s1`, valid 30 days back to 60 days ahead, entry 3 of the status list.
fn c5(zert: &Issuer) -> String {
    c5_at(zert, 3)
}

/// The same, at entry `index` of the status list.
fn c5_at(zert: &Issuer, index: u64) -> String {
    zert.certify(
        &site_subject("s1"),
        "bsi-c5",
        Some("type2"),
        (t0() - Duration::days(30), t0() + Duration::days(60)),
        Some(&StatusRef {
            list: LIST.into(),
            index,
        }),
    )
    .unwrap()
}

async fn book(kit: &Kit, org: &str) -> Value {
    let body = json!({"organisation": org, "offering": "gesundheit", "plan": "s"});
    ok(
        post(&kit.app_at(t0()), &kit.admin, "/api/v1/bookings", body).await,
        StatusCode::CREATED,
    )["booking"]
        .clone()
}

/// Re-evaluates every placement at `at` and says whether booking `id` complies (a
/// booking never flagged has no verdict stored: it complies).
async fn compliance_at(kit: &Kit, id: &str, at: DateTime<Utc>) -> bool {
    ok(
        post(
            &kit.app_at(at),
            &kit.admin,
            "/api/v1/compliance/reevaluate",
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    ok(
        get(&kit.app, &kit.admin, &format!("/api/v1/bookings/{id}")).await,
        StatusCode::OK,
    )["compliance"]["compliant"]
        != false
}

async fn a_credential_of_a_trusted_body_lets_special_categories_in(kit: Kit) {
    let w = world(&kit).await;
    let refused = book(&kit, &w.gemeinde).await;
    assert_eq!(refused["state"], "rejected", "no C5 yet: {refused}");
    // By default a certification only stated in site facts counts for nothing: not even
    // s1's ISO 27001.
    let reason = refused["reason"].as_str().unwrap();
    assert!(reason.contains("ISO 27001"), "{reason}");
    // Only the federation states whom it trusts.
    let list = TrustList {
        issuers: vec![w.zert.trusted(&["bsi-c5"])],
        count_stated_certifications: true,
    };
    let r = trust(&kit, &w.operator, &list).await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.2);
    let stored = ok(trust(&kit, &kit.admin, &list).await, StatusCode::OK);
    assert_eq!(stored["version"], 1);
    assert_eq!(stored["issuers"][0]["id"], "did:web:zert.example.de");
    // The operator hands in what the body signed: it counts.
    let c = ok(
        submit(&kit, &w.operator, "s1", &c5(&w.zert)).await,
        StatusCode::CREATED,
    );
    assert_eq!(c["scheme"], "bsi-c5");
    assert_eq!(c["level"], "type2");
    assert_eq!(c["issuer_name"], "Beispiel-Zertifizierung GmbH");
    assert!(
        c["submitted_by"].as_str().unwrap().contains("betrieb"),
        "{c}"
    );
    let placed = book(&kit, &w.gemeinde).await;
    assert_eq!(placed["state"], "placed", "{placed}");
    assert_eq!(placed["site"], "s1");
    // Audited, both the list and the credential.
    let trail = audit_actions(&kit, "site/s1").await;
    assert!(
        trail.iter().any(|(_, a)| a == "site.credential-add"),
        "{trail:?}"
    );
    let trail = audit_actions(&kit, "trust-list/federation").await;
    assert_eq!(trail.len(), 1, "{trail:?}");
    let listed = ok(
        get(&kit.app, &w.operator, "/api/v1/sites/s1/credentials").await,
        StatusCode::OK,
    );
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

async fn credentials_that_prove_nothing_are_refused_and_change_nothing(kit: Kit) {
    let w = world(&kit).await;
    let list = TrustList {
        issuers: vec![w.zert.trusted(&["bsi-c5"])],
        count_stated_certifications: true,
    };
    ok(trust(&kit, &kit.admin, &list).await, StatusCode::OK);
    let site = site_subject("s1");
    let year = (t0() - Duration::days(30), t0() + Duration::days(335));
    // Self-signed by the operator, under the body's name and key id.
    let own = Issuer::generate("did:web:zert.example.de", "Betreiber").unwrap();
    let forged = own
        .certify(&site, "bsi-c5", Some("type2"), year, None)
        .unwrap();
    // A key nobody trusts.
    let stranger = Issuer::generate("did:web:betreiber.example", "Betreiber").unwrap();
    let unknown = stranger
        .certify(&site, "bsi-c5", Some("type2"), year, None)
        .unwrap();
    // The body's, for another site; for a scheme it may not attest; expired.
    let other = w
        .zert
        .certify(&site_subject("s2"), "bsi-c5", Some("type2"), year, None)
        .unwrap();
    let iso = w.zert.certify(&site, "iso27001", None, year, None).unwrap();
    let expired = w
        .zert
        .certify(
            &site,
            "bsi-c5",
            Some("type2"),
            (t0() - Duration::days(400), t0() - Duration::days(1)),
            None,
        )
        .unwrap();
    ok(
        post(&kit.app, &kit.admin, "/api/v1/providers", provider("p2")).await,
        StatusCode::CREATED,
    );
    let (_, stranger_op) = kit
        .user(
            "fremd",
            json!([{"role": "provider-operator", "provider": "p2"}]),
        )
        .await;
    let before = world_state(&kit).await;
    for (jwt, says) in [
        (forged.as_str(), "signature does not verify"),
        (unknown.as_str(), "no issuer on the federation's trust list"),
        (other.as_str(), "urn:verbund:site:s2"),
        (iso.as_str(), "may not attest `iso27001`"),
        (expired.as_str(), "not now"),
        ("eyJhbGciOiJub25lIn0.e30.", "EdDSA"),
    ] {
        let r = submit(&kit, &w.operator, "s1", jwt).await;
        let detail = assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("/jwt"));
        assert!(detail.contains(says), "{says}: {detail}");
    }
    // Another provider's operator may not hand in for s1; an unknown site is not found.
    let r = submit(&kit, &stranger_op, "s1", &c5(&w.zert)).await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.2);
    let r = submit(&kit, &kit.admin, "nirgends", &c5(&w.zert)).await;
    assert_eq!(r.0, StatusCode::NOT_FOUND, "{}", r.2);
    assert_eq!(world_state(&kit).await, before, "nothing changed");
    let b = book(&kit, &w.gemeinde).await;
    assert_eq!(b["state"], "rejected", "{b}");
}

/// What the refused submissions must leave as it was.
async fn world_state(kit: &Kit) -> Value {
    json!({
        "credentials": ok(get(&kit.app, &kit.admin, "/api/v1/sites/s1/credentials").await, StatusCode::OK),
        "audit": audit_count(kit).await,
    })
}

async fn expiry_revocation_and_distrust_make_bookings_non_compliant(kit: Kit) {
    let w = world(&kit).await;
    let list = TrustList {
        issuers: vec![w.zert.trusted(&["bsi-c5"])],
        count_stated_certifications: true,
    };
    ok(trust(&kit, &kit.admin, &list).await, StatusCode::OK);
    ok(
        submit(&kit, &w.operator, "s1", &c5(&w.zert)).await,
        StatusCode::CREATED,
    );
    let b = book(&kit, &w.gemeinde).await;
    let id = b["id"].as_str().unwrap();
    assert!(compliance_at(&kit, id, t0()).await);
    // Expiry: 61 days on, the attestation no longer holds.
    assert!(!compliance_at(&kit, id, t0() + Duration::days(62)).await);
    assert!(compliance_at(&kit, id, t0()).await);

    // Revocation: only a trusted issuer's list counts; its entry 3 revokes the credential.
    let stranger = Issuer::generate("did:web:betreiber.example", "Betreiber").unwrap();
    let forged = stranger.status_list(LIST, 1024, &[3]).unwrap();
    let r = post(
        &kit.app_at(t0()),
        &kit.admin,
        "/api/v1/status-lists",
        json!({"jwt": forged}),
    )
    .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("/jwt"));
    let untouched = w.zert.status_list(LIST, 1024, &[2, 4]).unwrap();
    let applied = ok(
        post(
            &kit.app_at(t0()),
            &kit.admin,
            "/api/v1/status-lists",
            json!({"jwt": untouched}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(applied["revoked"], json!([]));
    let revoking = w.zert.status_list(LIST, 1024, &[3]).unwrap();
    let r = post(
        &kit.app_at(t0()),
        &w.operator,
        "/api/v1/status-lists",
        json!({"jwt": revoking}),
    )
    .await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.2);
    let applied = ok(
        post(
            &kit.app_at(t0()),
            &kit.admin,
            "/api/v1/status-lists",
            json!({"jwt": revoking}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(applied["revoked"].as_array().unwrap().len(), 1, "{applied}");
    assert!(!compliance_at(&kit, id, t0()).await);
    let creds = ok(
        get(&kit.app, &kit.admin, "/api/v1/sites/s1/credentials").await,
        StatusCode::OK,
    );
    assert!(
        creds[0]["revoked_reason"].as_str().unwrap().contains(LIST),
        "{creds}"
    );

    // The revoked credential does not come back by being handed in again; a new one
    // makes the booking compliant again; then the body leaves the trust list.
    let again = submit(&kit, &w.operator, "s1", &c5(&w.zert)).await;
    let detail = assert_problem(&again, StatusCode::CONFLICT, None);
    assert!(detail.contains("handed in before"), "{detail}");
    ok(
        submit(&kit, &w.operator, "s1", &c5_at(&w.zert, 4)).await,
        StatusCode::CREATED,
    );
    assert!(compliance_at(&kit, id, t0()).await);
    let stored = ok(
        trust(&kit, &kit.admin, &TrustList::default()).await,
        StatusCode::OK,
    );
    assert_eq!(stored["version"], 2);
    assert!(!compliance_at(&kit, id, t0()).await);
    let creds = ok(
        get(&kit.app, &kit.admin, "/api/v1/sites/s1/credentials").await,
        StatusCode::OK,
    );
    assert!(
        creds[1]["revoked_reason"]
            .as_str()
            .unwrap()
            .contains("left the trust list"),
        "{creds}"
    );
}

/// How many credentials `s1` has, revoked ones included.
async fn credential_count(kit: &Kit) -> usize {
    ok(
        get(&kit.app, &kit.admin, "/api/v1/sites/s1/credentials").await,
        StatusCode::OK,
    )
    .as_array()
    .unwrap()
    .len()
}

async fn the_federation_attests_what_it_checked_by_hand(kit: Kit) {
    let w = world(&kit).await;
    let key = verbund_gaiax::generate_key().unwrap();
    let federation =
        Arc::new(Federation::new("https://verbund.example.de", key.as_bytes()).unwrap());
    let app = verbund_api::app(AppState {
        clock: Arc::new(FixedClock(t0())),
        gaiax: Some(federation.clone()),
        ..AppState::new(kit.store.clone())
    });
    let attest = |token: &str, app: &axum::Router, until: &str| {
        let body = json!({
            "certification": {"scheme": "bsi-c5", "level": "type2", "valid_until": until},
            "evidence": "Testat C5 Typ 2 Nr. 4711 der Beispiel-Prüfstelle vom 2. Februar 2027 und der Prüfbericht gelesen",
        });
        let (app, token) = (app.clone(), token.to_string());
        async move { post(&app, &token, "/api/v1/sites/s1/attestations", body).await }
    };

    // The operator cannot have the federation vouch for its own site.
    let r = attest(&w.operator, &app, "2027-06-30").await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.2);
    // Signed is not trusted: without the federation on its own trust list it counts for
    // nothing, is refused with the reason, and nothing is stored.
    let detail = assert_problem(
        &attest(&kit.admin, &app, "2027-06-30").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/certification"),
    );
    assert!(detail.contains("federation itself"), "{detail}");
    assert!(detail.contains(federation.did()), "{detail}");
    // Named for ISO 27001 only, it may not attest C5.
    let list = |schemes: &[&str]| TrustList {
        issuers: vec![federation.trusted(schemes)],
        count_stated_certifications: true,
    };
    let strict = |schemes: &[&str]| TrustList {
        count_stated_certifications: false,
        ..list(schemes)
    };
    ok(
        trust(&kit, &kit.admin, &list(&["iso27001"])).await,
        StatusCode::OK,
    );
    let detail = assert_problem(
        &attest(&kit.admin, &app, "2027-06-30").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/certification/scheme"),
    );
    assert!(detail.contains("may not attest `bsi-c5`"), "{detail}");
    // A certification that is over, and a server without the federation's key, attest
    // nothing either.
    assert_problem(
        &attest(&kit.admin, &app, "2027-02-28").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/certification/valid_until"),
    );
    assert_problem(
        &attest(&kit.admin, &kit.app_at(t0()), "2027-06-30").await,
        StatusCode::CONFLICT,
        None,
    );
    assert_eq!(credential_count(&kit).await, 0);
    let refused = book(&kit, &w.gemeinde).await;
    assert_eq!(refused["state"], "rejected", "{refused}");

    // With C5 in its scope, the attestation counts: special categories may go to s1. The
    // federation names itself with its own key (no JWK copied by hand): only a
    // federation admin, only on a server that holds the key, only with scheme names.
    let name_itself = |token: &str, app: &axum::Router, schemes: Value| {
        let (app, token) = (app.clone(), token.to_string());
        async move {
            put(
                &app,
                &token,
                "/api/v1/trust-list/federation",
                json!({ "schemes": schemes }),
            )
            .await
        }
    };
    let schemes = json!(["iso27001", "bsi-c5"]);
    let r = name_itself(&w.operator, &app, schemes.clone()).await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.2);
    let r = name_itself(&kit.admin, &kit.app_at(t0()), schemes.clone()).await;
    assert_problem(&r, StatusCode::CONFLICT, None);
    for bad in [json!([]), json!(["Not A Scheme"])] {
        let r = name_itself(&kit.admin, &app, bad).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, Some("/schemes"));
    }
    let stored = ok(name_itself(&kit.admin, &app, schemes).await, StatusCode::OK);
    assert_eq!(stored["issuers"].as_array().unwrap().len(), 1, "{stored}");
    assert_eq!(stored["issuers"][0]["id"], federation.did());
    assert_eq!(
        stored["issuers"][0]["schemes"],
        json!(["bsi-c5", "iso27001"])
    );
    assert_eq!(stored["count_stated_certifications"], true, "kept");
    let c = ok(
        attest(&kit.admin, &app, "2027-06-30").await,
        StatusCode::CREATED,
    );
    assert_eq!(c["issuer"], federation.did());
    assert_eq!(
        (&c["scheme"], &c["level"]),
        (&json!("bsi-c5"), &json!("type2"))
    );
    assert_eq!(c["valid_until"], "2027-06-30T23:59:59Z");
    let placed = book(&kit, &w.gemeinde).await;
    assert_eq!(placed["state"], "placed", "{placed}");
    assert_eq!(placed["site"], "s1");
    // What the federation signed counts once: handed in again (as an operator could,
    // reading it from the site's credentials) it is refused.
    let again = submit(&kit, &w.operator, "s1", c["jwt"].as_str().unwrap()).await;
    let detail = assert_problem(&again, StatusCode::CONFLICT, None);
    assert!(detail.contains("handed in before"), "{detail}");

    // Whoever reads it verifies it with the key of the federation's DID document, and
    // reads what was checked.
    let did = ok(get(&app, "", "/.well-known/did.json").await, StatusCode::OK);
    let jwk = &did["verificationMethod"][0]["publicKeyJwk"];
    let from_did = TrustList {
        issuers: vec![TrustedIssuer {
            id: did["id"].as_str().unwrap().into(),
            name: "verbund".into(),
            keys: vec![IssuerKey {
                kid: did["verificationMethod"][0]["id"].as_str().unwrap().into(),
                kty: jwk["kty"].as_str().unwrap().into(),
                crv: jwk["crv"].as_str().unwrap().into(),
                x: jwk["x"].as_str().unwrap().into(),
            }],
            schemes: ["bsi-c5".to_string()].into(),
        }],
        ..Default::default()
    };
    let jwt = c["jwt"].as_str().unwrap();
    verbund_trust::verify_certification(jwt, &from_did, &site_subject("s1"), t0())
        .expect("the attestation verifies with the DID document's key");
    let payload: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            jwt.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(
        payload["evidence"][0]["description"]
            .as_str()
            .unwrap()
            .contains("Nr. 4711"),
        "{payload}"
    );
    let trail = audit_actions(&kit, "site/s1").await;
    assert!(
        trail.iter().any(|(_, a)| a == "site.credential-add"),
        "{trail:?}"
    );

    // Once the federation takes certifications only as credentials, the ISO 27001 it
    // once stated in s1's facts counts no more: the booking is flagged at the next
    // evaluation, until the federation attests that certificate too.
    let id = placed["id"].as_str().unwrap();
    assert!(compliance_at(&kit, id, t0()).await);
    let stored_list = ok(
        trust(&kit, &kit.admin, &strict(&["iso27001", "bsi-c5"])).await,
        StatusCode::OK,
    );
    assert_eq!(stored_list["count_stated_certifications"], false);
    assert!(
        !compliance_at(&kit, id, t0()).await,
        "ISO 27001 only stated"
    );
    let iso = json!({
        "certification": {"scheme": "iso27001", "level": "it-grundschutz", "valid_until": "2028-12-31"},
        "evidence": "ISO-27001-Zertifikat auf Basis von IT-Grundschutz BSI-IGZ-0123-2025 gesehen",
    });
    ok(
        post(&app, &kit.admin, "/api/v1/sites/s1/attestations", iso).await,
        StatusCode::CREATED,
    );
    assert!(compliance_at(&kit, id, t0()).await, "attested now");
    // A list that leaves the field out counts only credentials, as the default does.
    let absent =
        json!({"issuers": [serde_json::to_value(federation.trusted(&["iso27001"])).unwrap()]});
    let r = send(
        &kit.app_at(t0()),
        request(
            axum::http::Method::PUT,
            "/api/v1/trust-list",
            &kit.admin,
            Some(&absent),
        ),
    )
    .await;
    assert_eq!(ok(r, StatusCode::OK)["count_stated_certifications"], false);
    // That list names the federation for ISO 27001 alone: its C5 attestation, which the
    // list no longer covers, stops counting — the booking of special categories is
    // flagged, and the credential says why.
    assert!(!compliance_at(&kit, id, t0()).await, "C5 left the scope");
    let credentials = ok(
        get(&app, &kit.admin, "/api/v1/sites/s1/credentials").await,
        StatusCode::OK,
    );
    let c5 = credentials
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["scheme"] == "bsi-c5" && c["issuer"] == federation.did())
        .cloned()
        .unwrap();
    let reason = c5["revoked_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("may not attest `bsi-c5`"), "{c5}");
    let iso = credentials
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["scheme"] == "iso27001")
        .cloned()
        .unwrap();
    assert!(iso.get("revoked_at").is_none(), "ISO 27001 stays: {iso}");
}
