//! Sealing round trips, and what a changed document or another site's identity meets.

use super::*;
use chrono::TimeZone;

fn secret() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "keycloak-config-secrets", "namespace": "keycloak-muenchen-1a2b3c",
                     "labels": {"app.kubernetes.io/managed-by": "verbund"}},
        "type": "Opaque",
        "data": {"ADMIN_PASSWORD": "aHVudGVyMg==", "SMTP_PASSWORD": "czNjcmV0"}
    })
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 6, 31, 38).unwrap()
}

#[test]
fn sealed_documents_open_with_the_sites_identity_only() {
    let (identity, recipient) = Identities::generate();
    let sealed = seal(&secret(), &recipient, now()).unwrap();
    assert!(is_sealed(&sealed));
    let text = sealed.to_string();
    for plain in ["aHVudGVyMg==", "czNjcmV0"] {
        assert!(!text.contains(plain), "{text}");
    }
    // What stays readable: everything but the data.
    assert_eq!(sealed["metadata"], secret()["metadata"]);
    assert_eq!(sealed["sops"]["lastmodified"], "2026-12-02T06:31:38Z");
    assert_eq!(sealed["sops"]["encrypted_regex"], ENCRYPTED_REGEX);
    assert!(sealed["data"]["ADMIN_PASSWORD"]
        .as_str()
        .unwrap()
        .starts_with("ENC[AES256_GCM,data:"));

    let ours = Identities::parse(&format!(
        "# created: now\n# public key: {recipient}\n{identity}\n"
    ))
    .unwrap();
    assert_eq!(open(&sealed, &ours).unwrap(), secret());

    let (other, _) = Identities::generate();
    let theirs = Identities::parse(&other).unwrap();
    assert!(matches!(open(&sealed, &theirs), Err(Error::NotForUs(r)) if r == recipient));
}

#[test]
fn sealing_is_randomised_and_the_digest_is_not() {
    let (_, recipient) = Identities::generate();
    let a = seal(&secret(), &recipient, now()).unwrap();
    let b = seal(&secret(), &recipient, now()).unwrap();
    assert_ne!(a["data"], b["data"]);
    assert_eq!(digest(&secret(), &recipient), digest(&secret(), &recipient));
    let mut changed = secret();
    changed["data"]["SMTP_PASSWORD"] = json!("b3RoZXI=");
    assert_ne!(digest(&secret(), &recipient), digest(&changed, &recipient));
    let (_, other) = Identities::generate();
    assert_ne!(digest(&secret(), &recipient), digest(&secret(), &other));
}

#[test]
fn a_changed_document_does_not_open() {
    let (identity, recipient) = Identities::generate();
    let ids = Identities::parse(&identity).unwrap();
    let sealed = seal(&secret(), &recipient, now()).unwrap();

    // Moved to another namespace: the MAC covers the readable values too.
    let mut moved = sealed.clone();
    moved["metadata"]["namespace"] = json!("elsewhere");
    assert!(matches!(open(&moved, &ids), Err(Error::Crypto(_))));

    // A value swapped into another key: its path is its additional data.
    let mut swapped = sealed.clone();
    swapped["data"]["SMTP_PASSWORD"] = sealed["data"]["ADMIN_PASSWORD"].clone();
    assert!(matches!(open(&swapped, &ids), Err(Error::Crypto(_))));

    // Another time stamp: the MAC's additional data.
    let mut later = sealed;
    later["sops"]["lastmodified"] = json!("2027-01-01T00:00:00Z");
    assert!(matches!(open(&later, &ids), Err(Error::Crypto(_))));
}

#[test]
fn bad_recipients_and_identities_are_refused() {
    assert!(matches!(
        seal(&secret(), "age1nope", now()),
        Err(Error::Recipient(_))
    ));
    assert!(matches!(
        Identities::parse("# nothing\n"),
        Err(Error::Identity)
    ));
    let (_, recipient) = Identities::generate();
    let sealed = seal(&secret(), &recipient, now()).unwrap();
    assert!(matches!(
        seal(&sealed, &recipient, now()),
        Err(Error::Format(_))
    ));
}

proptest::proptest! {
    /// Any string data opens as it was sealed.
    #[test]
    fn any_data_round_trips(values in proptest::collection::btree_map("[A-Z_]{1,8}", ".{0,40}", 0..5)) {
        let (identity, recipient) = Identities::generate();
        let mut doc = secret();
        doc["data"] = json!(values);
        let sealed = seal(&doc, &recipient, now()).unwrap();
        let opened = open(&sealed, &Identities::parse(&identity).unwrap()).unwrap();
        proptest::prop_assert_eq!(opened, doc);
    }
}
