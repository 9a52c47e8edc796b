//! The whole decision, with real keys: what counts and every way a credential does not.

use chrono::{Duration, TimeZone};

use super::*;
use crate::{site_subject, verify_certification, verify_status_list, Refusal, TrustList};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn year() -> (DateTime<Utc>, DateTime<Utc>) {
    (now() - Duration::days(30), now() + Duration::days(335))
}

fn body() -> Issuer {
    Issuer::generate("did:web:zert.example.de", "Beispiel-Zertifizierung GmbH")
        .unwrap_or_else(|e| panic!("{e}"))
}

fn trusting(issuer: &Issuer, schemes: &[&str]) -> TrustList {
    let list = TrustList {
        issuers: vec![issuer.trusted(schemes)],
        ..Default::default()
    };
    assert!(list.validate().is_ok(), "{list:?}");
    list
}

fn refusal(jwt: &str, trust: &TrustList, subject: &str) -> Refusal {
    match verify_certification(jwt, trust, subject, now()) {
        Err(r) => r,
        Ok(c) => panic!("counted: {c:?}"),
    }
}

#[test]
fn a_credential_of_a_trusted_issuer_counts() {
    let zert = body();
    let trust = trusting(&zert, &["bsi-c5"]);
    let site = site_subject("by-1");
    let jwt = zert
        .certify(&site, "bsi-c5", Some("type2"), year(), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let c = verify_certification(&jwt, &trust, &site, now()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (c.scheme.as_str(), c.level.as_deref()),
        ("bsi-c5", Some("type2"))
    );
    assert_eq!(c.issuer, "did:web:zert.example.de");
    assert_eq!(c.valid_until, year().1);
}

#[test]
fn every_way_a_credential_does_not_count() {
    let zert = body();
    let trust = trusting(&zert, &["bsi-c5"]);
    let site = site_subject("by-1");
    // Self-signed: the operator's own key.
    let own =
        Issuer::generate("did:web:zert.example.de", "Betreiber").unwrap_or_else(|e| panic!("{e}"));
    let forged = own
        .certify(&site, "bsi-c5", Some("type2"), year(), None)
        .unwrap_or_else(|e| panic!("{e}"));
    // Its key id is the same as the body's: the signature gives it away.
    assert!(matches!(
        refusal(&forged, &trust, &site),
        Refusal::BadSignature(_)
    ));
    let stranger =
        Issuer::generate("did:web:self.example", "Selbst").unwrap_or_else(|e| panic!("{e}"));
    let unknown = stranger
        .certify(&site, "bsi-c5", None, year(), None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        refusal(&unknown, &trust, &site),
        Refusal::UnknownIssuer(_)
    ));
    // A real one, tampered with: the payload says type2 now.
    let real = zert
        .certify(&site, "bsi-c5", Some("type1"), year(), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let parts: Vec<&str> = real.split('.').collect();
    let payload = URL_SAFE_NO_PAD
        .decode(parts.get(1).copied().unwrap_or_default())
        .unwrap_or_default();
    let changed = String::from_utf8_lossy(&payload).replace("type1", "type2");
    let tampered = format!(
        "{}.{}.{}",
        parts.first().copied().unwrap_or_default(),
        URL_SAFE_NO_PAD.encode(changed),
        parts.get(2).copied().unwrap_or_default()
    );
    assert!(matches!(
        refusal(&tampered, &trust, &site),
        Refusal::BadSignature(_)
    ));
    // For another site.
    let other = zert
        .certify(&site_subject("he-1"), "bsi-c5", None, year(), None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        refusal(&other, &trust, &site),
        Refusal::OtherSubject { .. }
    ));
    // A scheme the issuer may not attest.
    let iso = zert
        .certify(&site, "iso27001", None, year(), None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        refusal(&iso, &trust, &site),
        Refusal::SchemeNotTrusted { .. }
    ));
    // Expired, and not yet valid.
    for span in [
        (now() - Duration::days(400), now() - Duration::days(1)),
        (now() + Duration::days(1), now() + Duration::days(400)),
    ] {
        let jwt = zert
            .certify(&site, "bsi-c5", None, span, None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            refusal(&jwt, &trust, &site),
            Refusal::NotValidNow { .. }
        ));
    }
    // Signed by the body, but naming another issuer.
    let mut vc: Value = serde_json::from_slice(&payload).unwrap_or_default();
    vc["issuer"] = json!("did:web:someone.else");
    let lying = zert.sign(&vc).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        refusal(&lying, &trust, &site),
        Refusal::IssuerMismatch { .. }
    ));
    assert!(matches!(
        refusal("not a jwt", &trust, &site),
        Refusal::Malformed(_)
    ));
}

#[test]
fn a_status_list_revokes_the_entries_it_sets() {
    let zert = body();
    let trust = trusting(&zert, &["bsi-c5"]);
    let list = "https://zert.example.de/status/1";
    let jwt = zert
        .status_list(list, 131_072, &[0, 7, 94_567])
        .unwrap_or_else(|e| panic!("{e}"));
    let verified = verify_status_list(&jwt, &trust, now()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(verified.id, list);
    for (index, set) in [
        (0, true),
        (1, false),
        (7, true),
        (8, false),
        (94_567, true),
        (94_568, false),
        (10_000_000, false),
    ] {
        assert_eq!(verified.is_set(index), set, "{index}");
    }
    let stranger =
        Issuer::generate("did:web:self.example", "Selbst").unwrap_or_else(|e| panic!("{e}"));
    let forged = stranger
        .status_list(list, 8, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        verify_status_list(&forged, &trust, now()),
        Err(Refusal::UnknownIssuer(_))
    ));
}

#[test]
fn a_trust_list_checks_its_form() {
    assert!(crate::list::PUBLIC_KEY.compiles());
    let zert = body();
    assert!(
        crate::list::PUBLIC_KEY.is_match(&zert.key().x),
        "{}",
        zert.key().x
    );
    let mut list = trusting(&zert, &["bsi-c5"]);
    list.issuers.push(zert.trusted(&["iso27001"]));
    assert_eq!(
        list.validate().map_err(|e| e.field).unwrap_err(),
        "/issuers/1/id"
    );
    let mut bad = trusting(&zert, &["bsi-c5"]);
    if let Some(k) = bad.issuers.first_mut().and_then(|i| i.keys.first_mut()) {
        k.x = "AAAA".into();
    }
    assert_eq!(
        bad.validate().map_err(|e| e.field).unwrap_err(),
        "/issuers/0/keys/0/x"
    );
    let removed = list.removed_in(&TrustList::default());
    assert_eq!(removed.first().copied(), Some("did:web:zert.example.de"));
}
