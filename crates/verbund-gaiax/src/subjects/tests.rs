//! The credentials built from domain objects, whole, and their signature.

use chrono::TimeZone;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::*;

fn federation() -> Federation {
    let rng = ring::rand::SystemRandom::new();
    let key = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    Federation::new(
        "https://verbund.example.de/",
        crate::pem(key.as_ref()).as_bytes(),
    )
    .unwrap()
}

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, day, 12, 0, 0).unwrap()
}

fn provider() -> Provider {
    serde_json::from_value(json!({
        "name": "nordwerk", "display_name": "Nordwerk IT AöR", "legal_form": "AöR",
        "public_law": true, "seat": {"city": "Hamburg", "country": "DE"},
        "jurisdictions": ["DE"], "created_at": at(1), "updated_at": at(2),
    }))
    .unwrap()
}

fn site(name: &str, region: &str, capabilities: &[&str], updated: u32) -> Site {
    serde_json::from_value(json!({
        "name": name, "display_name": format!("Rechenzentrum {name}"), "provider": "nordwerk",
        "location": {"country": "DE", "region": region, "city": "Hamburg"},
        "kubernetes_version": "1.31", "capabilities": capabilities,
        "capacity": {"cpu_millis": 1000, "memory_mib": 1024, "storage_gib": 10},
        "environments": ["prod"], "delivery": "flux",
        "created_at": at(1), "updated_at": at(updated),
    }))
    .unwrap()
}

fn offering(data_classes: &[&str], min_kubernetes: &str) -> Offering {
    serde_json::from_value(json!({
        "name": "fachverfahren", "display_name": "Fachverfahren", "description": "",
        "vendor": "org-1", "category": "saas", "data_classes": data_classes,
        "requirements": {"capabilities": ["storage:rwx"], "min_kubernetes": min_kubernetes},
        "plans": [{"name": "s", "display_name": "S", "replicas": 1, "monthly_price_cents": 100,
                   "resources": {"cpu_millis": 100, "memory_mib": 128, "storage_gib": 1}}],
        "dependencies": [{"offering": "postgresql"}, {"offering": "postgresql", "plan": "m"}],
        "created_at": at(1), "updated_at": at(3),
    }))
    .unwrap()
}

const BASE: &str = "https://verbund.example.de/api/v1/gaia-x";

#[test]
fn a_provider_is_a_legal_person_at_its_seat() {
    let address = json!({"type": "gx:Address", "countryCode": "DE", "locality": "Hamburg"});
    assert_eq!(
        federation().provider(&provider()),
        json!({
            "@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/gaia-x/development#"],
            "id": format!("{BASE}/providers/nordwerk"),
            "type": ["VerifiableCredential", "gx:LegalPerson"],
            "issuer": "did:web:verbund.example.de",
            "validFrom": "2027-03-02T12:00:00.000Z",
            "credentialSubject": {
                "id": format!("{BASE}/providers/nordwerk#subject"),
                "type": "gx:LegalPerson",
                "name": "Nordwerk IT AöR",
                "legalAddress": address,
                "headquartersAddress": address,
            },
        })
    );
}

#[test]
fn an_organisation_is_a_legal_person_in_its_land() {
    let org: Organisation = serde_json::from_value(json!({
        "id": "org-1", "name": "Freie und Hansestadt Hamburg", "level": "land", "ars": "02",
        "land": "02", "created_at": at(1), "updated_at": at(1),
    }))
    .unwrap();
    let subject = &federation().organisation(&org, None)["credentialSubject"];
    let address = json!({"type": "gx:Address", "countryCode": "DE", "region": "DE60"});
    assert_eq!(subject["legalAddress"], address);
    assert_eq!(subject["headquartersAddress"], address);
    assert_eq!(subject["id"], format!("{BASE}/organisations/org-1#subject"));
    // Its ARS is its number in the state's register.
    let number = format!("{BASE}/organisations/org-1/registration-number");
    assert_eq!(subject["registrationNumber"], format!("{number}#subject"));
    let registration = federation().organisation_registration(&org, None).unwrap();
    assert_eq!(registration["id"], number);
    assert_eq!(
        registration["credentialSubject"],
        json!({"id": format!("{number}#subject"), "type": "gx:LocalRegistrationNumber", "local": "02"})
    );
}

#[test]
fn the_bund_is_registered_by_the_number_the_federation_stated() {
    let bund: Organisation = serde_json::from_value(json!({
        "id": "bund", "name": "Bundesrepublik Deutschland", "level": "bund",
        "created_at": at(1), "updated_at": at(1),
    }))
    .unwrap();
    // Without an ARS and without a stated number: none.
    assert_eq!(federation().organisation_registration(&bund, None), None);
    let subject = &federation().organisation(&bund, None)["credentialSubject"];
    assert_eq!(subject.get("registrationNumber"), None);
    // Stated later: named, and both credentials valid from the statement on.
    let eori: Registration =
        serde_json::from_value(json!({"kind": "eori", "value": "DE1234567"})).unwrap();
    let stated = Some((&eori, at(5)));
    let legal = federation().organisation(&bund, stated);
    let number = format!("{BASE}/organisations/bund/registration-number");
    assert_eq!(
        legal["credentialSubject"]["registrationNumber"],
        format!("{number}#subject")
    );
    let since = at(5).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert_eq!(legal["validFrom"], since);
    let registration = federation()
        .organisation_registration(&bund, stated)
        .unwrap();
    assert_eq!(
        registration["credentialSubject"],
        json!({"id": format!("{number}#subject"), "type": "gx:EORI", "eori": "DE1234567"})
    );
    assert_eq!(registration["validFrom"], since);
}

#[test]
fn a_provider_names_the_registration_number_the_federation_stated() {
    let mut p = provider();
    assert_eq!(federation().provider_registration(&p), None);
    for (kind, gx_type, property, value) in [
        ("local", "gx:LocalRegistrationNumber", "local", "HRA 4711"),
        ("vat-id", "gx:VatID", "vatID", "DE123456789"),
        ("eori", "gx:EORI", "eori", "DE1234567"),
        ("euid", "gx:EUID", "euid", "DEK1101R.HRA4711"),
    ] {
        p.spec.registration =
            Some(serde_json::from_value(json!({"kind": kind, "value": value})).unwrap());
        let f = federation();
        let number = format!("{BASE}/providers/nordwerk/registration-number");
        assert_eq!(
            f.provider(&p)["credentialSubject"]["registrationNumber"],
            format!("{number}#subject")
        );
        assert_eq!(
            f.provider_registration(&p).unwrap(),
            json!({
                "@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/gaia-x/development#"],
                "id": number,
                "type": ["VerifiableCredential", gx_type],
                "issuer": "did:web:verbund.example.de",
                "validFrom": "2027-03-02T12:00:00.000Z",
                "credentialSubject": {"id": format!("{number}#subject"), "type": gx_type, property: value},
            })
        );
    }
}

#[test]
fn a_site_is_a_datacenter_with_one_zone_at_its_location() {
    let c = federation().site(&site("hh-1", "DE-HH", &[], 4));
    let at =
        json!({"type": "gx:Address", "countryCode": "DE", "region": "DE60", "locality": "Hamburg"});
    assert_eq!(c["type"], json!(["VerifiableCredential", "gx:Datacenter"]));
    assert_eq!(c["validFrom"], "2027-03-04T12:00:00.000Z");
    assert_eq!(
        c["credentialSubject"],
        json!({
            "id": format!("{BASE}/sites/hh-1#subject"),
            "type": "gx:Datacenter",
            "name": "Rechenzentrum hh-1",
            "maintainedBy": format!("{BASE}/providers/nordwerk#subject"),
            "aggregationOfResources": [{
                "id": format!("{BASE}/sites/hh-1#zone"),
                "type": "gx:AvailabilityZone",
                "name": "Rechenzentrum hh-1",
                "address": at,
            }],
            "location": at,
        })
    );
    let by = federation().site(&site("muc-1", "DE-BY", &[], 4));
    assert_eq!(by["credentialSubject"]["location"].get("region"), None);
}

#[test]
fn an_offering_aggregates_the_sites_that_offer_what_it_needs() {
    let f = federation();
    let sites = [
        site("hh-1", "DE-HH", &["storage:rwx"], 4),
        site("hh-2", "DE-HH", &[], 9),
        site("hh-3", "DE-HH", &["storage:rwx", "gpu"], 2),
    ];
    let c = f
        .offering(&offering(&["personal"], "1.29"), &sites)
        .unwrap();
    let s = &c["credentialSubject"];
    assert_eq!(
        s["aggregationOfResources"],
        json!([
            format!("{BASE}/sites/hh-1#subject"),
            format!("{BASE}/sites/hh-3#subject")
        ])
    );
    assert_eq!(
        s["providedBy"],
        format!("{BASE}/organisations/org-1#subject")
    );
    assert_eq!(
        s["dependsOn"],
        json!([format!("{BASE}/offerings/postgresql#subject")])
    );
    assert_eq!(s["dataProtectionRegime"], json!(["GDPR2016"]));
    assert_eq!(
        s.get("description"),
        None,
        "an empty description is no description"
    );
    // The latest change among the offering and every site, hh-2's though it is not listed.
    assert_eq!(c["validFrom"], "2027-03-09T12:00:00.000Z");
    let terms_of = terms(&offering(&["personal"], "1.29").spec).unwrap();
    assert_eq!(
        s["serviceOfferingTermsAndConditions"],
        json!({
            "type": "gx:TermsAndConditions",
            "url": format!("{BASE}/offerings/fachverfahren/terms"),
            "hash": hex::encode(Sha256::digest(&terms_of)),
        })
    );

    let newer = f.offering(&offering(&["public"], "1.32"), &sites).unwrap();
    let s = &newer["credentialSubject"];
    assert_eq!(s.get("aggregationOfResources"), None, "no site runs 1.32");
    assert_eq!(s.get("dataProtectionRegime"), None, "no personal data");
}

#[test]
fn an_offering_with_secrets_is_hosted_only_where_they_arrive_sealed() {
    let mut o = offering(&["internal"], "1.29").spec;
    o.config_schema = json!({"type": "object", "properties": {
        "password": {"type": "string", "writeOnly": true, "format": "password"}}});
    let mut s = site("hh-1", "DE-HH", &["storage:rwx"], 4).spec;
    assert!(!hosts(&o, &s), "no age recipient");
    s.age_recipient = Some("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into());
    assert!(hosts(&o, &s));
}

#[test]
fn terms_are_canonical_json_of_the_catalog_entry() {
    let o = offering(&["personal"], "1.29").spec;
    let text = String::from_utf8(terms(&o).unwrap()).unwrap();
    assert!(
        text.starts_with(r#"{"category":"saas","config_schema":{"type":"object"},"#),
        "{text}"
    );
    assert!(!text.contains(": ") && !text.contains(", ") && !text.contains('\n'));
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        serde_json::to_value(&o).unwrap()
    );
    let mut changed = o.clone();
    changed.retention_days += 1;
    assert_ne!(terms(&changed).unwrap(), text.as_bytes());
}

#[test]
fn a_credential_is_a_vc_jwt_that_verifies_with_the_did_documents_key() {
    let f = federation();
    let credential = f.provider(&provider());
    let jwt = f.sign(&credential).unwrap();
    let doc = f.did_document();
    assert_eq!(doc["id"], "did:web:verbund.example.de");
    let method = &doc["verificationMethod"][0];
    assert_eq!(method["type"], "JsonWebKey2020");
    assert_eq!(doc["assertionMethod"], json!([method["id"]]));
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("vc+jwt"));
    assert_eq!(header.kid.as_deref(), method["id"].as_str());
    let key =
        DecodingKey::from_ed_components(method["publicKeyJwk"]["x"].as_str().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let payload = jsonwebtoken::decode::<Value>(&jwt, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(payload, credential);
}
