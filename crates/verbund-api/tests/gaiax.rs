//! Gaia-X credentials out, through the real router on SQLite and PostgreSQL: the
//! federation's DID document is open at `/.well-known/did.json`; every provider, vendor
//! organisation, site and offering has a credential that whoever may read the object
//! reads, that verifies with the DID document's key, names the facts as they are and is
//! re-issued when one changes; an offering's terms are served as the bytes whose SHA-256
//! its credential states; a legal person's registration number (a provider's, stated by
//! the federation; an organisation's ARS or stated number) is a credential of its own that its
//! `gx:LegalPerson` names — the Bund, without an ARS, has the number a federation admin
//! states for it. Their subjects conform wholly to the Gaia-X 25.11 SHACL shapes
//! (pyshacl over the published shapes, ontology and context in `../shared/data/`), and
//! pyshacl does report a property the closed shapes do not know.
//!
//! pyshacl runs in the Python named by `VERBUND_PYSHACL` (`./scripts/test` installs it);
//! without it the test fails rather than skip.

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
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use axum::http::{header, Method, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use verbund_api::verbund_gaiax::{generate_key, Federation};
use verbund_api::AppState;

use common::*;

api_tests!(
    every_credential_verifies_and_conforms,
    without_a_federation_key_nothing_is_issued,
);

const PUBLIC_URL: &str = "https://verbund.example.de";
const DID: &str = "did:web:verbund.example.de";

/// The variable naming the Python with pyshacl.
const PYSHACL_VAR: &str = "VERBUND_PYSHACL";

/// The published Gaia-X 25.11 shapes, ontology and context (never copied here).
const GAIAX_DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/gaiax-25.11"
);

/// The kit's application issuing as the federation at [`PUBLIC_URL`] with a fresh key.
fn issuing_app(kit: &Kit) -> Router {
    let key = generate_key().unwrap();
    let federation = Federation::new(PUBLIC_URL, key.as_bytes()).unwrap();
    verbund_api::app(AppState {
        gaiax: Some(Arc::new(federation)),
        ..AppState::new(kit.store.clone())
    })
}

/// Status, content type and the body's bytes.
async fn raw(app: &Router, token: &str, path: &str) -> (StatusCode, String, Vec<u8>) {
    let resp = app
        .clone()
        .oneshot(request(Method::GET, path, token, None))
        .await
        .unwrap();
    let kind = resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, kind, body.to_vec())
}

struct World {
    /// The organisations that vend: Hamburg (a Land, one NUTS-2 region) and the Bund.
    vendors: Vec<String>,
    /// An org admin of Hamburg: reads what everybody reads.
    reader: String,
}

/// Providers `nordwerk` (Hamburg) and `kommunal-by` (München); sites `nordwerk-hh-1`
/// (Hamburg: DE60), `nordwerk-b-1` (Berlin: DE30, no capabilities) and `kommunal-muc-1`
/// (Bayern, several NUTS-2 regions; Kubernetes 1.29); the offerings `postgresql` (the
/// Bund's, internal data, needs `storage:rwo`) and `fachverfahren` (Hamburg's, personal
/// data, needs `storage:rwx` and Kubernetes 1.30, depends on `postgresql`).
async fn world(kit: &Kit) -> World {
    let (app, admin) = (&kit.app, kit.admin.as_str());
    let bund = create_org(app, admin, bund()).await;
    let hamburg = create_org(
        app,
        admin,
        land("Freie und Hansestadt Hamburg", "02", &bund),
    )
    .await;
    let mut nordwerk = provider("nordwerk");
    nordwerk["registration"] = json!({"kind": "local", "value": "HRA 4711"});
    let mut by = provider("kommunal-by");
    by["seat"] = json!({"city": "München", "country": "DE"});
    by["registration"] = json!({"kind": "vat-id", "value": "DE123456789"});
    for p in [nordwerk, by] {
        ok(
            post(app, admin, "/api/v1/providers", p).await,
            StatusCode::CREATED,
        );
    }
    let mut hh = site("nordwerk-hh-1", "nordwerk");
    hh["capabilities"] = json!(["storage:rwx", "storage:rwo"]);
    let mut b = site("nordwerk-b-1", "nordwerk");
    b["location"] = json!({"country": "DE", "region": "DE-BE", "city": "Berlin"});
    b["capabilities"] = json!([]);
    let mut muc = site("kommunal-muc-1", "kommunal-by");
    muc["location"] = json!({"country": "DE", "region": "DE-BY", "city": "München"});
    muc["capabilities"] = json!(["storage:rwx", "storage:rwo"]);
    muc["kubernetes_version"] = json!("1.29");
    for s in [hh, b, muc] {
        ok(
            post(app, admin, "/api/v1/sites", s).await,
            StatusCode::CREATED,
        );
    }
    certify(kit).await;
    let mut pg = offering("postgresql", &bund);
    pg["data_classes"] = json!(["internal"]);
    pg["requirements"] = json!({"capabilities": ["storage:rwo"]});
    let mut fv = offering("fachverfahren", &hamburg);
    fv["requirements"] = json!({"capabilities": ["storage:rwx"], "min_kubernetes": "1.30"});
    fv["dependencies"] = json!([{"offering": "postgresql"}]);
    for o in [pg, fv] {
        ok(
            post(app, admin, "/api/v1/offerings", o).await,
            StatusCode::CREATED,
        );
    }
    let (_, reader) = kit
        .user(
            "hh-admin",
            json!([{"role": "org-admin", "organisation": hamburg}]),
        )
        .await;
    World {
        vendors: vec![hamburg, bund],
        reader,
    }
}

/// The payload of `jwt` after checking its header and signature against the DID
/// document `did`: EdDSA, `vc+jwt`, a `kid` that is one of its assertion methods.
fn verified(jwt: &str, did: &Value) -> Value {
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("vc+jwt"));
    let kid = header.kid.expect("the header names its key");
    assert!(kid.starts_with(&format!("{DID}#")), "{kid}");
    assert!(
        did["assertionMethod"]
            .as_array()
            .unwrap()
            .contains(&json!(kid)),
        "{kid} asserts for {DID}"
    );
    let method = did["verificationMethod"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == kid.as_str())
        .expect("the key is in the DID document");
    assert_eq!(method["type"], "JsonWebKey2020");
    assert_eq!(method["controller"], DID);
    let jwk = &method["publicKeyJwk"];
    assert_eq!(
        (&jwk["kty"], &jwk["crv"]),
        (&json!("OKP"), &json!("Ed25519"))
    );
    let key = DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .expect("the signature verifies with the DID document's key")
        .claims
}

/// Reads the credential at `path` as `token`, checks it against `did` and the object's
/// `updated` time, and returns it.
async fn credential(app: &Router, token: &str, path: &str, did: &Value, updated: &Value) -> Value {
    let body = ok(get(app, token, path).await, StatusCode::OK);
    let payload = verified(body["jwt"].as_str().unwrap(), did);
    assert_eq!(
        payload, body["credential"],
        "the payload is the credential shown"
    );
    assert_eq!(
        payload["id"],
        format!("{PUBLIC_URL}{path}"),
        "it is where it is served"
    );
    assert_eq!(payload["issuer"], DID);
    assert_eq!(
        payload["@context"],
        json!([
            "https://www.w3.org/ns/credentials/v2",
            "https://w3id.org/gaia-x/development#"
        ])
    );
    assert_eq!(payload["validFrom"], millis(updated), "{path}");
    assert_eq!(
        payload["credentialSubject"]["id"],
        format!("{PUBLIC_URL}{path}#subject")
    );
    payload
}

/// An RFC 3339 time of the API as the credentials state it: to the millisecond, in UTC.
fn millis(time: &Value) -> String {
    chrono::DateTime::parse_from_rfc3339(time.as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn subject_of(kind: &str, name: &str) -> String {
    format!("{PUBLIC_URL}/api/v1/gaia-x/{kind}/{name}#subject")
}

/// Reads objects as the admin and their credentials as a reader, checked with the DID
/// document.
struct Reader<'a> {
    app: &'a Router,
    admin: &'a str,
    reader: &'a str,
    did: &'a Value,
}

impl Reader<'_> {
    /// The object `/api/v1/{kind}/{name}` and the subject of its credential, which is
    /// valid from the object's last change, or from `later` if that is later.
    async fn issued(&self, kind: &str, name: &str, later: Option<&str>) -> (Value, Value) {
        let object = ok(
            get(self.app, self.admin, &format!("/api/v1/{kind}/{name}")).await,
            StatusCode::OK,
        );
        let from = millis(&object["updated_at"]).max(later.unwrap_or_default().to_string());
        let path = format!("/api/v1/gaia-x/{kind}/{name}");
        let c = credential(self.app, self.reader, &path, self.did, &json!(from)).await;
        (object, c["credentialSubject"].clone())
    }
}

async fn every_credential_verifies_and_conforms(kit: Kit) {
    let w = world(&kit).await;
    let app = issuing_app(&kit);
    let (admin, reader) = (kit.admin.as_str(), w.reader.as_str());

    // The DID document is open, at both places did:web may resolve it.
    let (status, kind, bytes) = raw(&app, "", "/.well-known/did.json").await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::OK, "application/did+ld+json")
    );
    let did: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(did["id"], DID);
    assert_eq!(ok(get(&app, "", "/did.json").await, StatusCode::OK), did);

    // Each credential: readable by who may read its object, verified, its facts.
    let read = Reader {
        app: &app,
        admin,
        reader,
        did: &did,
    };
    let mut subjects = Vec::new();
    // The registration numbers the legal persons name, each a credential of its own.
    let mut registrations = Vec::new();
    for (name, gx_type, property, number) in [
        (
            "nordwerk",
            "gx:LocalRegistrationNumber",
            "local",
            "HRA 4711",
        ),
        ("kommunal-by", "gx:VatID", "vatID", "DE123456789"),
    ] {
        let (p, s) = read.issued("providers", name, None).await;
        assert_eq!(s["type"], "gx:LegalPerson");
        assert_eq!(s["name"], p["display_name"]);
        let seat =
            json!({"type": "gx:Address", "countryCode": "DE", "locality": p["seat"]["city"]});
        assert_eq!(
            (&s["legalAddress"], &s["headquartersAddress"]),
            (&seat, &seat)
        );
        let path = format!("/api/v1/gaia-x/providers/{name}/registration-number");
        assert_eq!(
            s["registrationNumber"],
            format!("{PUBLIC_URL}{path}#subject")
        );
        let r = credential(&app, reader, &path, &did, &p["updated_at"]).await;
        assert_eq!(r["type"], json!(["VerifiableCredential", gx_type]));
        assert_eq!(r["credentialSubject"][property], number);
        registrations.push(r["credentialSubject"].clone());
        subjects.push(s);
    }
    // The Bund has no ARS: until the federation states its number, its credential names
    // none and there is no number to read; only a federation admin states one, in its
    // kind's form — then both are issued, valid from the statement on.
    let bund_id = &w.vendors[1];
    let number_path = format!("/api/v1/gaia-x/organisations/{bund_id}/registration-number");
    let detail = assert_problem(
        &get(&app, reader, &number_path).await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert!(detail.contains("Regionalschlüssel"), "{detail}");
    let (_, s) = read.issued("organisations", bund_id, None).await;
    assert_eq!(s.get("registrationNumber"), None);
    let statement = format!("/api/v1/organisations/{bund_id}/registration");
    let eori = json!({"registration": {"kind": "eori", "value": "DE1234567"}});
    let r = put(&app, reader, &statement, eori.clone()).await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    let bad = json!({"registration": {"kind": "eori", "value": "1234567"}});
    let r = put(&app, admin, &statement, bad).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("/registration/value"));
    let stated = ok(put(&app, admin, &statement, eori).await, StatusCode::OK);
    assert_eq!(stated["stated_by"], "user/admin");
    assert_eq!(
        ok(get(&app, reader, &statement).await, StatusCode::OK),
        stated
    );
    let trail = audit_actions(&kit, &format!("organisation/{bund_id}")).await;
    assert!(
        trail.iter().any(|(_, a)| a == "organisation.registration"),
        "{trail:?}"
    );
    let stated_at = stated["stated_at"].as_str().unwrap().to_string();
    let since = millis(&json!(stated_at));

    // A Gebietskörperschaft's number in the state's register is its ARS; the Bund's is
    // the one the federation stated.
    for (id, region, number) in w
        .vendors
        .iter()
        .zip([
            (
                Some("DE60"),
                ("gx:LocalRegistrationNumber", "local", "02", None),
            ),
            (None, ("gx:EORI", "eori", "DE1234567", Some(since.as_str()))),
        ])
        .map(|(id, (r, n))| (id, r, n))
    {
        let (gx_type, property, value, later) = number;
        let (o, s) = read.issued("organisations", id, later).await;
        assert_eq!(s["name"], o["name"]);
        assert_eq!(s["legalAddress"]["countryCode"], "DE");
        let found = s["legalAddress"].get("region").and_then(Value::as_str);
        assert_eq!(found, region);
        let path = format!("/api/v1/gaia-x/organisations/{id}/registration-number");
        assert_eq!(
            s["registrationNumber"],
            format!("{PUBLIC_URL}{path}#subject")
        );
        let from = later.map_or_else(|| o["updated_at"].clone(), |l| json!(l));
        let r = credential(&app, reader, &path, &did, &from).await;
        assert_eq!(r["credentialSubject"]["type"], gx_type);
        assert_eq!(r["credentialSubject"][property], value);
        registrations.push(r["credentialSubject"].clone());
        subjects.push(s);
    }
    let legal_persons: BTreeSet<String> = subjects
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    for (name, region, provider) in [
        ("nordwerk-hh-1", Some("DE60"), "nordwerk"),
        ("nordwerk-b-1", Some("DE30"), "nordwerk"),
        ("kommunal-muc-1", None, "kommunal-by"),
    ] {
        let (site, s) = read.issued("sites", name, None).await;
        assert_eq!(s["type"], "gx:Datacenter");
        assert_eq!(s["maintainedBy"], subject_of("providers", provider));
        let location = &s["location"];
        assert_eq!(location["countryCode"], "DE");
        assert_eq!(location["locality"], site["location"]["city"]);
        let found = location.get("region").and_then(Value::as_str);
        assert_eq!(found, region, "{name}");
        let zone = &s["aggregationOfResources"][0];
        assert_eq!(
            (&zone["type"], &zone["address"]),
            (&json!("gx:AvailabilityZone"), location)
        );
        subjects.push(s);
    }
    let latest_site = all(&app, admin, "/api/v1/sites")
        .await
        .iter()
        .map(|s| millis(&s["updated_at"]))
        .max();
    let both = ["kommunal-muc-1", "nordwerk-hh-1"];
    for (name, vendor, hosts, gdpr) in [
        ("postgresql", &w.vendors[1], &both[..], false),
        ("fachverfahren", &w.vendors[0], &both[1..], true),
    ] {
        let (o, s) = read.issued("offerings", name, latest_site.as_deref()).await;
        assert_eq!(s["type"], "gx:ServiceOffering");
        assert_eq!(s["providedBy"], subject_of("organisations", vendor));
        let hosted: Vec<_> = hosts.iter().map(|h| subject_of("sites", h)).collect();
        assert_eq!(s["aggregationOfResources"], json!(hosted), "{name}");
        assert_eq!(s.get("dataProtectionRegime").is_some(), gdpr, "{name}");
        // The terms are served as the very bytes whose SHA-256 the credential states.
        let terms = &s["serviceOfferingTermsAndConditions"];
        let url = terms["url"].as_str().unwrap();
        let (status, kind, bytes) = raw(&app, reader, url.strip_prefix(PUBLIC_URL).unwrap()).await;
        assert_eq!(
            (status, kind.as_str()),
            (StatusCode::OK, "application/json")
        );
        assert_eq!(terms["hash"], hex::encode(Sha256::digest(&bytes)));
        let document: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(document["name"], name);
        assert_eq!(document["plans"], o["plans"]);
        subjects.push(s);
    }
    assert_eq!(
        subjects[8]["dependsOn"],
        json!([subject_of("offerings", "postgresql")])
    );

    // Who may not read, or asks for nothing there is, learns nothing.
    assert_problem(
        &get(&app, "", "/api/v1/gaia-x/sites/nordwerk-hh-1").await,
        StatusCode::UNAUTHORIZED,
        None,
    );
    for path in [
        "/api/v1/gaia-x/providers/nowhere",
        "/api/v1/gaia-x/providers/nowhere/registration-number",
        "/api/v1/gaia-x/organisations/nobody",
        "/api/v1/gaia-x/sites/nowhere",
        "/api/v1/gaia-x/offerings/nothing",
        "/api/v1/gaia-x/offerings/nothing/terms",
    ] {
        assert_problem(&get(&app, reader, path).await, StatusCode::NOT_FOUND, None);
    }

    // A changed fact re-issues the credentials that state it.
    let mut hh = ok(
        get(&app, admin, "/api/v1/sites/nordwerk-hh-1").await,
        StatusCode::OK,
    );
    let before = credential(
        &app,
        reader,
        "/api/v1/gaia-x/sites/nordwerk-hh-1",
        &did,
        &hh["updated_at"],
    )
    .await;
    for field in ["created_at", "updated_at"] {
        hh.as_object_mut().unwrap().remove(field);
    }
    hh["display_name"] = json!("Nordwerk Rechenzentrum Hamburg-Harburg");
    let hh = ok(
        put(&app, admin, "/api/v1/sites/nordwerk-hh-1", hh).await,
        StatusCode::OK,
    );
    let after = credential(
        &app,
        reader,
        "/api/v1/gaia-x/sites/nordwerk-hh-1",
        &did,
        &hh["updated_at"],
    )
    .await;
    assert!(after["validFrom"].as_str() > before["validFrom"].as_str());
    assert_eq!(
        after["credentialSubject"]["name"],
        "Nordwerk Rechenzentrum Hamburg-Harburg"
    );
    let offering = ok(
        get(&app, reader, "/api/v1/gaia-x/offerings/postgresql").await,
        StatusCode::OK,
    );
    assert_eq!(offering["credential"]["validFrom"], after["validFrom"]);

    // The shapes: everything verbund issues conforms — the Bund's legal person too, now
    // that it names its number; an unknown property does not.
    let issued_all: Vec<Value> = subjects.iter().chain(&registrations).cloned().collect();
    let mut unknown = issued_all.clone();
    unknown[0]["legalName"] = json!("Nordwerk IT AöR");
    let bund = subject_of("organisations", bund_id);
    assert!(legal_persons.contains(&bund));
    let reports = shacl(json!({
        "issued": issued_all,
        "unknown": unknown,
    }));
    assert_eq!(
        reports["issued"]["conforms"], true,
        "{:#}",
        reports["issued"]
    );

    let unknown = &reports["unknown"];
    assert_eq!(unknown["conforms"], false);
    let results = unknown["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{unknown:#}");
    assert_eq!(
        results[0]["sourceConstraintComponent"],
        "http://www.w3.org/ns/shacl#ClosedConstraintComponent"
    );
    assert_eq!(
        results[0]["resultPath"],
        "https://w3id.org/gaia-x/development#legalName"
    );

    // A number the federation withdraws is no longer named, nor served.
    let mut by = ok(
        get(&app, admin, "/api/v1/providers/kommunal-by").await,
        StatusCode::OK,
    );
    for field in ["created_at", "updated_at"] {
        by.as_object_mut().unwrap().remove(field);
    }
    by["registration"] = Value::Null;
    ok(
        put(&app, admin, "/api/v1/providers/kommunal-by", by).await,
        StatusCode::OK,
    );
    let legal = ok(
        get(&app, reader, "/api/v1/gaia-x/providers/kommunal-by").await,
        StatusCode::OK,
    );
    assert_eq!(
        legal["credential"]["credentialSubject"].get("registrationNumber"),
        None
    );
    let detail = assert_problem(
        &get(
            &app,
            reader,
            "/api/v1/gaia-x/providers/kommunal-by/registration-number",
        )
        .await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert!(detail.contains("no registration number"), "{detail}");
}

async fn without_a_federation_key_nothing_is_issued(kit: Kit) {
    world(&kit).await;
    let detail = assert_problem(
        &get(&kit.app, "", "/.well-known/did.json").await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert!(detail.contains("without a federation key"), "{detail}");
    for path in [
        "/api/v1/gaia-x/providers/nordwerk",
        "/api/v1/gaia-x/sites/nordwerk-hh-1",
        "/api/v1/gaia-x/offerings/postgresql",
        "/api/v1/gaia-x/offerings/postgresql/terms",
    ] {
        let detail = assert_problem(
            &get(&kit.app, &kit.admin, path).await,
            StatusCode::NOT_FOUND,
            None,
        );
        assert!(detail.contains("without a federation key"), "{detail}");
    }
}

/// Validates each case's credential subjects, merged into one graph, with pyshacl against
/// the published shapes; per case, whether it conforms and each result's focus node,
/// path, constraint component and message.
fn shacl(cases: Value) -> Value {
    let python = match std::env::var_os(PYSHACL_VAR) {
        Some(path) if !path.is_empty() => path,
        _ => panic!(
            "the Gaia-X test needs pyshacl: set {PYSHACL_VAR} to a Python that has it \
             (./scripts/test installs it from PyPI into target/pyshacl and sets it; by hand: \
             `python3 -m venv target/pyshacl && target/pyshacl/bin/pip install \
             pyshacl==0.40.1`, then {PYSHACL_VAR}=$PWD/target/pyshacl/bin/python)"
        ),
    };
    let mut child = Command::new(python)
        .args(["-c", VALIDATE, GAIAX_DATA])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pyshacl's Python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cases.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "pyshacl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Reads credential subjects with the published context (and `id`/`type` as the VC
/// context names them, which cannot be fetched here), adds the ontology's named
/// `rdfs:subClassOf` triples (the shapes ask for class membership: a `gx:Datacenter` is
/// a `gx:Resource`) and validates with the shapes, without further inference.
const VALIDATE: &str = r#"
import json, sys
import pyshacl, rdflib
from rdflib import URIRef
from rdflib.namespace import RDF, RDFS, SH

data = sys.argv[1]
cases = json.load(sys.stdin)
with open(data + "/gx.context.jsonld") as f:
    context = dict(json.load(f)["@context"], id="@id", type="@type")
shapes = rdflib.Graph().parse(data + "/gx.shacl.ttl", format="turtle")
ontology = rdflib.Graph().parse(data + "/gx.owl.ttl", format="turtle")
classes = [(s, p, o) for s, p, o in ontology.triples((None, RDFS.subClassOf, None))
           if isinstance(s, URIRef) and isinstance(o, URIRef)]
out = {}
for name, subjects in cases.items():
    graph = rdflib.Graph()
    for subject in subjects:
        graph.parse(data=json.dumps(dict(subject, **{"@context": context})), format="json-ld")
    for triple in classes:
        graph.add(triple)
    conforms, report, _ = pyshacl.validate(graph, shacl_graph=shapes, inference="none")
    results = [{key: str(report.value(r, SH[key])) for key in
                ("focusNode", "resultPath", "sourceConstraintComponent", "resultMessage")}
               for r in report.subjects(RDF.type, SH.ValidationResult)]
    out[name] = {"conforms": bool(conforms), "results": results}
json.dump(out, sys.stdout)
"#;
