//! Tenant isolation through the real router, on SQLite and on PostgreSQL: every endpoint ×
//! every role × an object of a foreign organisation is refused — 403, or 404 where the API
//! hides existence — and a refused write changes nothing; lists, search filters and paging
//! never surface another tenant's bookings, policies or accounts.
//!
//! The federation is built from the demo data: the Bund, Bayern and Schleswig-Holstein, a
//! Kreis with two Gemeinden in each — organisation A is Ettal (Landkreis
//! Garmisch-Partenkirchen), B is Büsum (Kreis Dithmarschen) — a municipal enterprise below
//! A (for delegation), two providers with one site each, two vendors with one offering
//! each. Expected answers come from one table of endpoints with a rule per role; list
//! answers are compared with the same query evaluated over everything the federation
//! admin sees, so a leak and an over-eager filter both fail.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::any::Any;
use std::collections::{BTreeSet, HashMap};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use chrono::{NaiveDate, Utc};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tower::ServiceExt;
use verbund_api::AppState;
use verbund_domain::account::UserSpec;
use verbund_domain::catalog::{OfferingSpec, VersionSpec};
use verbund_domain::directory::{Certification, KeyedOrganisation, ProviderSpec, SiteSpec};
use verbund_store::Store;
use verbund_testkit::Scratch;

const MUNICIPALITIES: &str = include_str!("../../verbund-cli/demo/municipalities.yaml");
const PROVIDERS: &str = include_str!("../../verbund-cli/demo/providers.yaml");
const SITES: &str = include_str!("../../verbund-cli/demo/sites.yaml");
const OFFERINGS: &str = include_str!("../../verbund-cli/demo/offerings.yaml");

/// The actor recorded for what the test sets up behind the API's back.
const SETUP: &str = "test/isolation";

/// Provider 1 (Bayern) and its site, which the provider operator runs.
const P1: &str = "kommunal-it-bayern";
const S1: &str = "kommunal-by-muc-1";
/// Provider 2 (Schleswig-Holstein) and its site.
const P2: &str = "nordwerk-it";
const S2: &str = "nordwerk-ki-1";
/// Vendor 1's offering, and a copy of it that needs a federation admin's approval.
const JITSI: &str = "jitsi-meet";
const REVIEWED: &str = "jitsi-meet-freigabe";
/// Vendor 2's offering; it needs `storage:rwx`, which only S1 has.
const COLLABORA: &str = "collabora-online";

/// A forbid that fits every layer, for submissions that must be refused.
const FORBID_ALL: &str = "@id(\"alles-verboten\")\n\
    forbid (principal, action == Verbund::Action::\"place\", resource);";

// ---------------------------------------------------------------------------------------
// The tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_isolation() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_isolation() {
    run(Backend::Postgres).await;
}

async fn isolation(store: Store, backend: Backend) {
    let started = std::time::Instant::now();
    let w = federation(store).await;
    let endpoints = endpoints();
    let tally = matrix(&w, &endpoints).await;
    let mut lists = list_checks(&w, "before the changes", true).await;
    let positives = positive_checks(&w).await;
    // B has withdrawn its policy by now.
    lists += list_checks(&w, "after the changes", false).await;
    let chain = ok(
        w.get(Role::Federation, "/api/v1/audit/verify").await,
        "verify the audit chain",
    );
    assert_eq!(
        chain["intact"],
        json!(true),
        "the audit chain is broken: {chain}"
    );
    println!(
        "isolation on {}: {} (role × endpoint) cells checked ({} roles × {} endpoints, {} cells \
         with each role's foreign objects): {} refused with 403, {} hidden with 404 (each \
         answered like an unknown id), {} allowed by design; {} list, filter and paging checks; \
         {} positive checks; {:.1} s",
        backend.name(),
        tally.pairs.len(),
        Role::ALL.len(),
        endpoints.len(),
        tally.cells,
        tally.forbidden,
        tally.hidden,
        tally.allowed,
        lists,
        positives,
        started.elapsed().as_secs_f64(),
    );
}

// ---------------------------------------------------------------------------------------
// Roles, and what each must never see

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Role {
    Federation,
    Auditor,
    /// Provider operator of P1.
    Operator,
    /// Vendor V1.
    Vendor,
    /// Org admin of A (Ettal).
    AdminA,
    /// Org member of A.
    MemberA,
    /// Org admin of A with delegation (A and the organisations below it).
    DelegatedA,
    /// Org admin of B (Büsum).
    AdminB,
}

impl Role {
    const ALL: [Role; 8] = [
        Role::Federation,
        Role::Auditor,
        Role::Operator,
        Role::Vendor,
        Role::AdminA,
        Role::MemberA,
        Role::DelegatedA,
        Role::AdminB,
    ];

    fn name(self) -> &'static str {
        match self {
            Role::Federation => "federation-admin",
            Role::Auditor => "auditor",
            Role::Operator => "provider-operator of P1",
            Role::Vendor => "vendor V1",
            Role::AdminA => "org-admin of A",
            Role::MemberA => "org-member of A",
            Role::DelegatedA => "delegated org-admin of A",
            Role::AdminB => "org-admin of B",
        }
    }
}

/// A string a role must never find in a response, unless it asked for it by name.
struct Secret {
    value: String,
    what: String,
    /// An organisation id: public in the directory and the catalog.
    organisation: bool,
}

fn secret(value: &str, what: &str) -> Secret {
    Secret {
        value: value.to_string(),
        what: what.to_string(),
        organisation: false,
    }
}

fn org_secret(value: &str, what: &str) -> Secret {
    Secret {
        organisation: true,
        ..secret(value, what)
    }
}

/// Fails if `response` contains a secret that the request did not name itself (a 404
/// echoes the id asked for).
#[track_caller]
fn assert_no_leak(cell: &str, request: &str, response: &str, secrets: &[Secret], public: bool) {
    for s in secrets {
        if public && s.organisation {
            continue;
        }
        if response.contains(&s.value) && !request.contains(&s.value) {
            panic!(
                "{cell}: the response leaks {} (`{}`): {response}",
                s.what, s.value
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// The federation

#[derive(Debug, Clone)]
struct Account {
    id: String,
    secret: String,
    token: String,
}

struct Orgs {
    bund: String,
    bayern: String,
    sh: String,
    /// Landkreis Garmisch-Partenkirchen, A's parent.
    gap: String,
    /// A.
    ettal: String,
    unterammergau: String,
    /// A municipal enterprise below A.
    child: String,
    dithmarschen: String,
    /// B.
    buesum: String,
    heide: String,
    v1: String,
    v2: String,
}

struct Bookings {
    a: String,
    a_wait: String,
    child: String,
    /// Of A's Kreis: above A, so foreign to A's roles too.
    kreis: String,
    b: String,
    b_collabora: String,
    b_wait: String,
}

struct Templates {
    a: String,
    b: String,
}

struct Policies {
    federation: String,
    bayern: String,
    a: String,
    b: String,
}

struct World {
    app: Router,
    accounts: HashMap<Role, Account>,
    /// Org member of both A and B.
    dual: Account,
    org: Orgs,
    specs: HashMap<String, Value>,
    booking: Bookings,
    policy: Policies,
    /// Each side's template, for its Land.
    template: Templates,
}

/// An entry of `offerings.yaml`.
#[derive(Deserialize)]
struct OfferingEntry {
    offering: OfferingSpec,
    versions: Vec<VersionSpec>,
}

fn demo<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> T {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("demo file {name} is invalid: {e}"))
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("serialisable")
}

async fn account(store: &Store, name: &str, memberships: Value) -> Account {
    let spec: UserSpec = serde_json::from_value(json!({
        "name": name,
        "display_name": format!("{name} (isolation test)"),
        "memberships": memberships,
    }))
    .expect("a user spec");
    let user = store
        .create_user(SETUP, &spec, Utc::now())
        .await
        .unwrap_or_else(|e| panic!("cannot create user `{name}`: {e}"));
    let (token, secret) =
        verbund_api::issue_token(store, SETUP, &user.id, "isolation", None, Utc::now())
            .await
            .expect("issue a token");
    Account {
        id: user.id,
        secret,
        token: token.id,
    }
}

/// Creates something as `token` through the API; returns the body.
async fn create(app: &Router, token: &str, path: &str, body: &Value) -> Value {
    let r = call(app, token, &Method::POST, path, Some(body)).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "POST {path} {body}: {}",
        r.text
    );
    r.json
}

async fn federation(store: Store) -> World {
    let now = Utc::now();
    verbund_placement::ensure_default_policies(&store, now)
        .await
        .expect("store the federation policies");
    let app = verbund_api::app(AppState::new(store.clone()));
    let admin = account(&store, "admin", json!([{"role": "federation-admin"}])).await;
    let fed = admin.secret.as_str();
    let mut specs: HashMap<String, Value> = HashMap::new();

    // Organisations, from the demo's GV100AD extract where it has them.
    let keyed: Vec<KeyedOrganisation> = demo("municipalities.yaml", MUNICIPALITIES);
    let keyed = |ars: &str| -> Value {
        let o = keyed
            .iter()
            .find(|o| o.ars == ars)
            .unwrap_or_else(|| panic!("the demo has no organisation with ARS `{ars}`"));
        json!({"name": o.name, "level": o.level, "ars": o.ars, "ags": o.ags, "population": o.population})
    };
    let mut org = async |spec: Value, parent: Option<&str>| -> String {
        let mut spec = spec;
        if let Some(p) = parent {
            spec["parent"] = json!(p);
        }
        let body = create(&app, fed, "/api/v1/organisations", &spec).await;
        let id = body["id"].as_str().expect("an organisation id").to_string();
        specs.insert(id.clone(), spec);
        id
    };
    let bund = org(
        json!({"name": "Bundesrepublik Deutschland", "level": "bund"}),
        None,
    )
    .await;
    let bayern = org(keyed("09"), Some(&bund)).await;
    let sh = org(keyed("01"), Some(&bund)).await;
    let gap = org(keyed("09180"), Some(&bayern)).await;
    let ettal = org(keyed("091805135115"), Some(&gap)).await;
    let unterammergau = org(
        json!({"name": "Unterammergau", "level": "gemeinde"}),
        Some(&gap),
    )
    .await;
    let child = org(
        json!({"name": "Kommunalunternehmen Wasserversorgung Ettal", "level": "verband"}),
        Some(&ettal),
    )
    .await;
    let dithmarschen = org(keyed("01051"), Some(&sh)).await;
    let buesum = org(keyed("010515178013"), Some(&dithmarschen)).await;
    let heide = org(
        json!({"name": "Heide, Stadt", "level": "gemeinde"}),
        Some(&dithmarschen),
    )
    .await;
    let v1 = org(
        json!({"name": "Videokonferenz-Verbund (Test)", "level": "verband"}),
        Some(&bund),
    )
    .await;
    let v2 = org(
        json!({"name": "Bürosoftware-Verbund (Test)", "level": "verband"}),
        Some(&bund),
    )
    .await;
    let o = Orgs {
        bund,
        bayern,
        sh,
        gap,
        ettal,
        unterammergau,
        child,
        dithmarschen,
        buesum,
        heide,
        v1,
        v2,
    };

    // Providers and sites, with certificates valid far into the future.
    let providers: Vec<ProviderSpec> = demo("providers.yaml", PROVIDERS);
    for name in [P1, P2] {
        let p = providers
            .iter()
            .find(|p| p.name == name)
            .expect("a demo provider");
        create(&app, fed, "/api/v1/providers", &to_json(p)).await;
        specs.insert(name.to_string(), to_json(p));
    }
    let sites: Vec<SiteSpec> = demo("sites.yaml", SITES);
    let far = NaiveDate::from_ymd_opt(2099, 12, 31).expect("a date");
    for name in [S1, S2] {
        let mut s = sites
            .iter()
            .find(|s| s.name == name)
            .expect("a demo site")
            .clone();
        s.certifications = vec![
            Certification {
                scheme: "iso27001".into(),
                level: Some("it-grundschutz".into()),
                valid_until: far,
            },
            Certification {
                scheme: "bsi-c5".into(),
                level: Some("type2".into()),
                valid_until: far,
            },
        ];
        create(&app, fed, "/api/v1/sites", &to_json(&s)).await;
        specs.insert(name.to_string(), to_json(&s));
    }
    verbund_testkit::certified::certify_stated(&store, Utc::now()).await;

    // Accounts.
    let mut accounts = HashMap::new();
    accounts.insert(Role::Federation, admin.clone());
    let people = [
        (Role::Auditor, "auditor", json!([{"role": "auditor"}])),
        (
            Role::Operator,
            "operator-p1",
            json!([{"role": "provider-operator", "provider": P1}]),
        ),
        (
            Role::Vendor,
            "vendor-v1",
            json!([{"role": "vendor", "organisation": o.v1}]),
        ),
        (
            Role::AdminA,
            "admin-ettal",
            json!([{"role": "org-admin", "organisation": o.ettal}]),
        ),
        (
            Role::MemberA,
            "member-ettal",
            json!([{"role": "org-member", "organisation": o.ettal}]),
        ),
        (
            Role::DelegatedA,
            "it-ettal",
            json!([{"role": "org-admin", "organisation": o.ettal, "delegated": true}]),
        ),
        (
            Role::AdminB,
            "admin-buesum",
            json!([{"role": "org-admin", "organisation": o.buesum}]),
        ),
    ];
    for (role, name, memberships) in people {
        accounts.insert(role, account(&store, name, memberships).await);
    }
    // Someone working for both authorities (e.g. under an administrative agreement).
    let dual = account(
        &store,
        "springer",
        json!([
            {"role": "org-member", "organisation": o.ettal},
            {"role": "org-member", "organisation": o.buesum},
        ]),
    )
    .await;
    let vendor = accounts[&Role::Vendor].secret.clone();

    // The catalog: V1 publishes its own offerings, V2's come from the federation admin.
    let entries: Vec<OfferingEntry> = demo("offerings.yaml", OFFERINGS);
    let entry = |name: &str| {
        entries
            .iter()
            .find(|e| e.offering.name == name)
            .unwrap_or_else(|| panic!("the demo has no offering `{name}`"))
    };
    let jitsi = entry(JITSI);
    let mut spec = jitsi.offering.clone();
    spec.vendor = o.v1.clone();
    create(&app, &vendor, "/api/v1/offerings", &to_json(&spec)).await;
    specs.insert(JITSI.to_string(), to_json(&spec));
    // The newest version is published later, as a positive check.
    for v in &jitsi.versions[..jitsi.versions.len() - 1] {
        create(
            &app,
            &vendor,
            &format!("/api/v1/offerings/{JITSI}/versions"),
            &to_json(v),
        )
        .await;
    }
    spec.name = REVIEWED.into();
    spec.display_name = "Jitsi Meet (mit Freigabe)".into();
    spec.requires_approval = true;
    create(&app, &vendor, "/api/v1/offerings", &to_json(&spec)).await;
    specs.insert(REVIEWED.to_string(), to_json(&spec));
    create(
        &app,
        &vendor,
        &format!("/api/v1/offerings/{REVIEWED}/versions"),
        &to_json(&jitsi.versions[0]),
    )
    .await;
    let collabora = entry(COLLABORA);
    let mut spec = collabora.offering.clone();
    spec.vendor = o.v2.clone();
    spec.requirements.capabilities.insert("storage:rwx".into());
    create(&app, fed, "/api/v1/offerings", &to_json(&spec)).await;
    specs.insert(COLLABORA.to_string(), to_json(&spec));
    for v in &collabora.versions {
        create(
            &app,
            fed,
            &format!("/api/v1/offerings/{COLLABORA}/versions"),
            &to_json(v),
        )
        .await;
    }

    // Bookings, by the federation admin.
    let book = async |org: &str, offering: &str, config: Value, state: &str, site: Option<&str>| {
        let body =
            json!({"organisation": org, "offering": offering, "plan": "s", "config": config});
        let b = create(&app, fed, "/api/v1/bookings", &body).await["booking"].clone();
        assert_eq!(b["state"], json!(state), "booking {body}: {b}");
        if let Some(site) = site {
            assert_eq!(b["site"], json!(site), "booking {body}: {b}");
        }
        b["id"].as_str().expect("a booking id").to_string()
    };
    let placed = "placed";
    let waiting = "awaiting-approval";
    let booking = Bookings {
        a: book(
            &o.ettal,
            JITSI,
            json!({"domain": "meet.ettal.de"}),
            placed,
            Some(S1),
        )
        .await,
        a_wait: book(
            &o.ettal,
            REVIEWED,
            json!({"domain": "konferenz.ettal.de"}),
            waiting,
            None,
        )
        .await,
        child: book(
            &o.child,
            JITSI,
            json!({"domain": "meet.wasser-ettal.de"}),
            placed,
            None,
        )
        .await,
        kreis: book(
            &o.gap,
            JITSI,
            json!({"domain": "meet.lra-gap.de"}),
            placed,
            Some(S1),
        )
        .await,
        b: book(
            &o.buesum,
            JITSI,
            json!({"domain": "meet.buesum.de"}),
            placed,
            Some(S2),
        )
        .await,
        b_collabora: book(
            &o.buesum,
            COLLABORA,
            json!({"wopi_hosts": ["cloud.buesum.de"]}),
            placed,
            Some(S1),
        )
        .await,
        b_wait: book(
            &o.buesum,
            REVIEWED,
            json!({"domain": "konferenz.buesum.de"}),
            waiting,
            None,
        )
        .await,
    };

    // Policies: Bayern's (by the federation admin), A's and B's (by their org admins).
    let submit = async |token: &str, name: &str, layer: &str, owner: &str, text: &str| {
        let body = json!({"name": name, "layer": layer, "owner": owner, "text": text});
        create(&app, token, "/api/v1/policies", &body).await["id"]
            .as_str()
            .expect("a policy id")
            .to_string()
    };
    let bayern_policy = submit(
        fed,
        "oeffentliche-betreiber",
        "land",
        &o.bayern,
        "@id(\"oeffentliche-betreiber\")\n\
         @description(\"policy-marker-bayern: Bavarian authorities use operators governed by public law only\")\n\
         forbid (principal, action == Verbund::Action::\"place\", resource) when { !resource.public_law };",
    )
    .await;
    let a_policy = submit(
        &accounts[&Role::AdminA].secret,
        "ohne-kommunal-it-bayern",
        "organisation",
        &o.ettal,
        "@id(\"ohne-kommunal-it-bayern\")\n\
         @description(\"policy-marker-ettal: Ettal leaves Kommunale IT Bayern\")\n\
         forbid (principal, action == Verbund::Action::\"place\", resource) \
         when { resource.provider == \"kommunal-it-bayern\" };",
    )
    .await;
    let b_policy = submit(
        &accounts[&Role::AdminB].secret,
        "ohne-nordwerk",
        "organisation",
        &o.buesum,
        "@id(\"ohne-nordwerk\")\n\
         @description(\"policy-marker-buesum: Büsum no longer books Nordwerk IT\")\n\
         forbid (principal, action == Verbund::Action::\"place\", resource) \
         when { resource.provider == \"nordwerk-it\" };",
    )
    .await;
    let all = ok(
        call(&app, fed, &Method::GET, "/api/v1/policies", None).await,
        "list policies",
    );
    let federation_policy = all
        .as_array()
        .expect("a list of policies")
        .iter()
        .find(|p| p["layer"] == "federation")
        .and_then(|p| p["id"].as_str())
        .expect("a federation policy")
        .to_string();

    // The new policies make A's and B's first bookings non-compliant.
    let summary = ok(
        call(
            &app,
            fed,
            &Method::POST,
            "/api/v1/compliance/reevaluate",
            None,
        )
        .await,
        "re-evaluate",
    );
    for (id, compliant) in [
        (&booking.a, false),
        (&booking.kreis, true),
        (&booking.b, false),
        (&booking.b_collabora, true),
    ] {
        let b = ok(
            call(
                &app,
                fed,
                &Method::GET,
                &format!("/api/v1/bookings/{id}"),
                None,
            )
            .await,
            "read a booking",
        );
        // Only changes are recorded: a booking that stays compliant has no verdict.
        assert_eq!(
            b["compliance"]["compliant"] != json!(false),
            compliant,
            "compliance of {b} after {summary}"
        );
    }

    // Templates of A's and B's bookings, for their own Land only.
    let publish = async |booking: &str, name: &str| -> String {
        let body = json!({"booking": booking, "name": name, "display_name": "Vorlage",
                          "visibility": "land"});
        create(&app, fed, "/api/v1/templates", &body).await["id"]
            .as_str()
            .expect("a template id")
            .to_string()
    };
    let template = Templates {
        a: publish(&booking.a, "jitsi-ettal").await,
        b: publish(&booking.b, "jitsi-buesum").await,
    };
    World {
        app,
        accounts,
        dual,
        org: o,
        specs,
        template,
        booking,
        policy: Policies {
            federation: federation_policy,
            bayern: bayern_policy,
            a: a_policy,
            b: b_policy,
        },
    }
}

impl World {
    fn token(&self, role: Role) -> &str {
        &self.accounts[&role].secret
    }

    fn id(&self, role: Role) -> &str {
        &self.accounts[&role].id
    }

    async fn send(&self, role: Role, method: Method, path: &str, body: Option<&Value>) -> Resp {
        call(&self.app, self.token(role), &method, path, body).await
    }

    async fn get(&self, role: Role, path: &str) -> Resp {
        self.send(role, Method::GET, path, None).await
    }

    /// The number of audit events, verified by the federation admin: every write appends
    /// one, so an unchanged count means nothing was written.
    async fn audit_count(&self) -> i64 {
        let v = ok(
            self.get(Role::Federation, "/api/v1/audit/verify").await,
            "verify the audit chain",
        );
        assert_eq!(v["intact"], json!(true), "the audit chain is broken: {v}");
        v["verified"].as_i64().expect("a count")
    }

    /// The objects of a foreign organisation each role is checked against.
    fn foreign(&self, role: Role) -> Vec<Foreign> {
        let (o, b, p) = (&self.org, &self.booking, &self.policy);
        let s = |v: &str| Some(v.to_string());
        let b_side = Foreign {
            label: "B, Büsum (Schleswig-Holstein)",
            org: s(&o.buesum),
            booking: s(&b.b),
            awaiting: s(&b.b_wait),
            policy: s(&p.b),
            user: s(self.id(Role::AdminB)),
            token: s(&self.accounts[&Role::AdminB].token),
            provider: s(P2),
            site: s(S2),
            offering: s(COLLABORA),
            vendor: s(&o.v2),
            template: s(&self.template.b),
        };
        // Delegation reaches down, never up: A's Kreis and Land are foreign to A's roles.
        let above_a = Foreign {
            label: "above A: Landkreis Garmisch-Partenkirchen, Bayern",
            org: s(&o.gap),
            booking: s(&b.kreis),
            policy: s(&p.bayern),
            ..Foreign::default()
        };
        let a_side = Foreign {
            label: "A, Ettal (Bayern)",
            org: s(&o.ettal),
            booking: s(&b.a),
            awaiting: s(&b.a_wait),
            policy: s(&p.a),
            user: s(self.id(Role::AdminA)),
            token: s(&self.accounts[&Role::AdminA].token),
            provider: s(P1),
            site: s(S1),
            offering: s(JITSI),
            vendor: s(&o.v1),
            template: s(&self.template.a),
        };
        match role {
            Role::AdminA | Role::MemberA | Role::DelegatedA => vec![b_side, above_a],
            Role::AdminB => vec![a_side],
            _ => vec![b_side],
        }
    }

    /// What `role` must never see.
    fn secrets(&self, role: Role) -> Vec<Secret> {
        let (o, b, p) = (&self.org, &self.booking, &self.policy);
        let mut out = Vec::new();
        let others = |out: &mut Vec<Secret>| {
            for (r, a) in &self.accounts {
                if *r != role {
                    out.push(secret(&a.token, &format!("the token id of {}", r.name())));
                }
            }
            out.push(secret(
                &self.dual.token,
                "the token id of the member of A and B",
            ));
        };
        match role {
            Role::Federation | Role::Auditor => {}
            Role::AdminA | Role::MemberA | Role::DelegatedA => {
                out.push(org_secret(&o.buesum, "B's organisation id"));
                for (id, what) in [
                    (&b.b, "B's booking"),
                    (&b.b_collabora, "B's Collabora booking"),
                    (&b.b_wait, "B's booking awaiting approval"),
                    (&b.kreis, "the booking of A's Kreis"),
                    (&p.b, "B's policy id"),
                ] {
                    out.push(secret(id, what));
                }
                if role != Role::DelegatedA {
                    out.push(secret(&b.child, "the booking of A's child organisation"));
                }
                out.push(secret("policy-marker-buesum", "B's policy"));
                out.push(secret(self.id(Role::AdminB), "the user id of B's admin"));
                out.push(secret(
                    &self.dual.id,
                    "the user id of the member of A and B",
                ));
                others(&mut out);
            }
            Role::AdminB => {
                out.push(org_secret(&o.ettal, "A's organisation id"));
                out.push(org_secret(&o.child, "the id of A's child organisation"));
                for (id, what) in [
                    (&b.a, "A's booking"),
                    (&b.a_wait, "A's booking awaiting approval"),
                    (&b.child, "the booking of A's child organisation"),
                    (&b.kreis, "the booking of A's Kreis"),
                    (&p.a, "A's policy id"),
                    (&p.bayern, "Bayern's policy id"),
                ] {
                    out.push(secret(id, what));
                }
                out.push(secret("policy-marker-ettal", "A's policy"));
                out.push(secret("policy-marker-bayern", "Bayern's policy"));
                for r in [Role::AdminA, Role::MemberA, Role::DelegatedA] {
                    out.push(secret(
                        self.id(r),
                        &format!("the user id of the {}", r.name()),
                    ));
                }
                out.push(secret(
                    &self.dual.id,
                    "the user id of the member of A and B",
                ));
                others(&mut out);
            }
            Role::Operator => {
                // Tenants on P1's site are the operator's business, with their compliance
                // (which names the policy that A's booking violates); nothing else is.
                for (id, what) in [
                    (&b.b, "B's booking on P2's site"),
                    (&b.a_wait, "A's booking awaiting approval"),
                    (&b.b_wait, "B's booking awaiting approval"),
                    (&p.b, "B's policy id"),
                    (&p.bayern, "Bayern's policy id"),
                ] {
                    out.push(secret(id, what));
                }
                out.push(secret("policy-marker-buesum", "B's policy"));
                out.push(secret("policy-marker-bayern", "Bayern's policy"));
                others(&mut out);
            }
            Role::Vendor => {
                out.push(org_secret(&o.ettal, "A's organisation id"));
                out.push(org_secret(&o.buesum, "B's organisation id"));
                for (id, what) in [
                    (&b.a, "A's booking"),
                    (&b.a_wait, "A's booking awaiting approval"),
                    (&b.child, "the booking of A's child organisation"),
                    (&b.kreis, "the booking of A's Kreis"),
                    (&b.b, "B's booking"),
                    (&b.b_collabora, "B's Collabora booking"),
                    (&b.b_wait, "B's booking awaiting approval"),
                    (&p.a, "A's policy id"),
                    (&p.b, "B's policy id"),
                    (&p.bayern, "Bayern's policy id"),
                ] {
                    out.push(secret(id, what));
                }
                for m in ["ettal", "buesum", "bayern"] {
                    out.push(secret(
                        &format!("policy-marker-{m}"),
                        "an organisation's policy",
                    ));
                }
                others(&mut out);
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// The endpoint table

/// Objects of one foreign organisation, by placeholder name.
#[derive(Debug, Clone, Default)]
struct Foreign {
    label: &'static str,
    org: Option<String>,
    /// A placed booking.
    booking: Option<String>,
    /// A booking awaiting approval.
    awaiting: Option<String>,
    policy: Option<String>,
    user: Option<String>,
    token: Option<String>,
    provider: Option<String>,
    site: Option<String>,
    offering: Option<String>,
    vendor: Option<String>,
    template: Option<String>,
}

impl Foreign {
    fn lookup(&self, w: &World, key: &str) -> Option<String> {
        match key {
            "org" => self.org.clone(),
            "booking" => self.booking.clone(),
            "awaiting" => self.awaiting.clone(),
            "policy" => self.policy.clone(),
            "user" => self.user.clone(),
            "token" => self.token.clone(),
            "provider" => self.provider.clone(),
            "site" => self.site.clone(),
            "offering" => self.offering.clone(),
            "vendor" => self.vendor.clone(),
            "template" => self.template.clone(),
            "federation_policy" => Some(w.policy.federation.clone()),
            other => panic!("unknown placeholder `{other}`"),
        }
    }

    /// A value the body builder declared in `needs` (so it is there).
    fn get(&self, key: &str) -> String {
        match key {
            "org" => self.org.clone(),
            "provider" => self.provider.clone(),
            "site" => self.site.clone(),
            "offering" => self.offering.clone(),
            "user" => self.user.clone(),
            _ => None,
        }
        .unwrap_or_else(|| panic!("`{key}` is not in `needs`"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// 2xx: allowed by design.
    Allowed,
    /// 403.
    Forbidden,
    /// 404, exactly like an unknown id.
    Hidden,
    /// Not run: the federation admin's writes would succeed (they are exercised by the
    /// setup and the positive checks).
    Skip,
}

type BodyFn = fn(&World, &Foreign) -> Value;

struct Endpoint {
    method: Method,
    /// With `{placeholders}` filled from the foreign objects.
    path: &'static str,
    /// Placeholders the body uses besides those in the path.
    needs: &'static [&'static str],
    body: Option<BodyFn>,
    want: fn(Role) -> Want,
    /// The directory and the catalog: organisation ids are public there.
    public: bool,
}

fn ep(method: Method, path: &'static str, want: fn(Role) -> Want) -> Endpoint {
    Endpoint {
        method,
        path,
        needs: &[],
        body: None,
        want,
        public: false,
    }
}

impl Endpoint {
    fn body(mut self, needs: &'static [&'static str], body: BodyFn) -> Self {
        self.needs = needs;
        self.body = Some(body);
        self
    }

    fn public(mut self) -> Self {
        self.public = true;
        self
    }

    fn placeholders(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut rest = self.path;
        while let Some(start) = rest.find('{') {
            let end = rest[start..].find('}').expect("a closed placeholder") + start;
            out.push(&rest[start + 1..end]);
            rest = &rest[end + 1..];
        }
        out
    }

    /// The path with the foreign objects filled in; `None` when the set lacks one.
    fn resolve(&self, w: &World, f: &Foreign) -> Option<String> {
        let mut path = self.path.to_string();
        for key in self.placeholders() {
            path = path.replace(&format!("{{{key}}}"), &f.lookup(w, key)?);
        }
        Some(path)
    }

    fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Everyone: the directory, the catalog, the caller's own account.
fn everyone(_: Role) -> Want {
    Want::Allowed
}

/// Writes only the federation admin may do.
fn federation_writes(r: Role) -> Want {
    match r {
        Role::Federation => Want::Skip,
        _ => Want::Forbidden,
    }
}

/// Reads for the federation admin only.
fn federation_reads(r: Role) -> Want {
    match r {
        Role::Federation => Want::Allowed,
        _ => Want::Forbidden,
    }
}

/// Reads for the federation admin and auditors (oversight), refused to everyone else.
fn oversight(r: Role) -> Want {
    match r {
        Role::Federation | Role::Auditor => Want::Allowed,
        _ => Want::Forbidden,
    }
}

/// Rollouts are seen by the federation, auditors, vendors and operators (each scoped),
/// not by organisations.
fn rollout_readers(r: Role) -> Want {
    match r {
        Role::Federation | Role::Auditor | Role::Vendor | Role::Operator => Want::Allowed,
        _ => Want::Forbidden,
    }
}

/// A foreign object whose existence is secret.
fn hidden(r: Role) -> Want {
    match r {
        Role::Federation | Role::Auditor => Want::Allowed,
        _ => Want::Hidden,
    }
}

/// A write on a foreign object whose existence is secret; auditors see it but may not
/// change it.
fn hidden_write(r: Role) -> Want {
    match r {
        Role::Federation => Want::Skip,
        Role::Auditor => Want::Forbidden,
        _ => Want::Hidden,
    }
}

/// A write on another user's token: hidden from everyone but the federation admin.
fn hidden_token(r: Role) -> Want {
    match r {
        Role::Federation => Want::Skip,
        _ => Want::Hidden,
    }
}

fn version(v: &str) -> Value {
    json!({
        "version": v,
        "package": {"type": "helm", "repository": "https://charts.example.org",
                    "chart": "uebernahme", "chart_version": v},
        "changelog": "Takeover.",
    })
}

/// Every route in `src/routes`, with the rule for each role against foreign objects.
fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    vec![
        // organisations.rs
        ep(M::GET, "/api/v1/organisations?parent={org}", everyone).public(),
        ep(M::GET, "/api/v1/organisations/{org}", everyone).public(),
        ep(M::POST, "/api/v1/organisations", federation_writes).body(&["org"], |_, f| {
            json!({"name": "Zweckverband Übernahme", "level": "verband", "parent": f.get("org")})
        }),
        ep(M::PUT, "/api/v1/organisations/{org}", federation_writes).body(&["org"], |w, f| {
            let mut s = w.specs[&f.get("org")].clone();
            s["population"] = json!(1);
            s
        }),
        // providers.rs
        ep(M::GET, "/api/v1/providers", everyone).public(),
        ep(M::GET, "/api/v1/providers/{provider}", everyone).public(),
        ep(M::POST, "/api/v1/providers", federation_writes).body(&["provider"], |w, f| {
            let mut p = w.specs[&f.get("provider")].clone();
            p["name"] = json!("uebernahme-it");
            p
        }),
        ep(M::PUT, "/api/v1/providers/{provider}", federation_writes).body(&["provider"], |w, f| {
            let mut p = w.specs[&f.get("provider")].clone();
            p["display_name"] = json!("Übernommen");
            p
        }),
        // sites.rs
        ep(M::GET, "/api/v1/sites?provider={provider}", everyone).public(),
        ep(M::GET, "/api/v1/sites/{site}", everyone).public(),
        ep(M::POST, "/api/v1/sites", federation_writes).body(&["site"], |w, f| {
            // A new site for the foreign provider.
            let mut s = w.specs[&f.get("site")].clone();
            s["name"] = json!("uebernahme-1");
            s
        }),
        ep(M::PUT, "/api/v1/sites/{site}", federation_writes).body(&["site"], |w, f| {
            let mut s = w.specs[&f.get("site")].clone();
            s["display_name"] = json!("Übernommen");
            s
        }),
        ep(M::PUT, "/api/v1/sites/{site}", federation_writes).body(&["site"], |w, f| {
            // The foreign site moved to P1, the provider operator's own.
            let mut s = w.specs[&f.get("site")].clone();
            s["provider"] = json!(P1);
            s
        }),
        // reports.rs: a site's tokens are the business of the federation and the site's
        // own provider only.
        ep(M::GET, "/api/v1/sites/{site}/tokens", federation_reads),
        ep(M::POST, "/api/v1/sites/{site}/tokens", federation_writes)
            .body(&[], |_, _| json!({"name": "uebernahme"})),
        // fleet.rs: everyone sees the fleet, scoped to what they may see (the leak check
        // searches the answer for every foreign id).
        ep(M::GET, "/api/v1/fleet", everyone),
        // A foreign site's health history: for oversight only (it is another provider's
        // and holds none of the caller's bookings).
        ep(M::GET, "/api/v1/fleet/sites/{site}/history", oversight),
        // rollouts.rs: the federation, auditors, vendors (their own offerings') and
        // operators (their own sites' part) see rollouts; only the offering's vendor and
        // the federation start or control them. Organisations opt in as early adopters
        // for themselves only.
        ep(M::GET, "/api/v1/rollouts", rollout_readers),
        ep(M::POST, "/api/v1/rollouts", federation_writes).body(&["offering"], |_, f| {
            json!({"offering": f.get("offering"), "version": "99.0.0"})
        }),
        ep(M::POST, "/api/v1/rollouts/plan", oversight).body(&["offering"], |_, f| {
            // The first demo version of the offering (or of what it copies) is published.
            let offering = f.get("offering");
            let source = if offering == REVIEWED { JITSI } else { offering.as_str() };
            let entries: Vec<OfferingEntry> = demo("offerings.yaml", OFFERINGS);
            let first = entries
                .iter()
                .find(|e| e.offering.name == source)
                .map(|e| e.versions[0].version.clone());
            json!({"offering": offering, "version": first})
        }),
        ep(M::GET, "/api/v1/organisations/{org}/early-adopter", hidden),
        ep(M::PUT, "/api/v1/organisations/{org}/early-adopter", federation_writes)
            .body(&[], |_, _| json!({"early_adopter": true})),
        // offerings.rs
        ep(M::GET, "/api/v1/offerings?vendor={vendor}", everyone).public(),
        ep(M::GET, "/api/v1/offerings/{offering}", everyone).public(),
        ep(M::GET, "/api/v1/offerings/{offering}/versions", everyone).public(),
        ep(M::POST, "/api/v1/offerings", federation_writes).body(&["offering"], |w, f| {
            // A new offering in the foreign vendor's name.
            let mut o = w.specs[&f.get("offering")].clone();
            o["name"] = json!("uebernahme-app");
            o
        }),
        ep(M::PUT, "/api/v1/offerings/{offering}", federation_writes).body(&["offering"], |w, f| {
            let mut o = w.specs[&f.get("offering")].clone();
            o["display_name"] = json!("Übernommen");
            o
        }),
        ep(M::PUT, "/api/v1/offerings/{offering}", federation_writes).body(&["offering"], |w, f| {
            // The foreign offering moved to V1, the vendor's own organisation.
            let mut o = w.specs[&f.get("offering")].clone();
            o["vendor"] = json!(w.org.v1);
            o
        }),
        ep(M::POST, "/api/v1/offerings/{offering}/versions", federation_writes)
            .body(&[], |_, _| version("99.0.0")),
        // users.rs
        ep(M::GET, "/api/v1/users?organisation={org}", oversight),
        ep(M::GET, "/api/v1/users", oversight),
        ep(M::GET, "/api/v1/users/{user}", hidden),
        ep(M::POST, "/api/v1/users", federation_writes).body(&["org"], |_, f| {
            json!({"name": "uebernahme", "display_name": "Übernahme",
                   "memberships": [{"role": "org-admin", "organisation": f.get("org")}]})
        }),
        ep(M::GET, "/api/v1/users/me", everyone),
        // tokens.rs
        ep(M::GET, "/api/v1/tokens", everyone),
        ep(M::GET, "/api/v1/tokens?user={user}", federation_reads),
        ep(M::POST, "/api/v1/tokens", federation_writes)
            .body(&["user"], |_, f| json!({"name": "uebernahme", "user": f.get("user")})),
        ep(M::DELETE, "/api/v1/tokens/{token}", hidden_token),
        // audit.rs
        ep(M::GET, "/api/v1/audit", oversight),
        ep(M::GET, "/api/v1/audit/verify", oversight),
        // bookings.rs: a filter naming a foreign organisation answers an empty list (the
        // list checks compare every answer with what the role may see).
        ep(M::GET, "/api/v1/bookings?organisation={org}", everyone),
        ep(M::POST, "/api/v1/bookings", federation_writes).body(&["org"], |_, f| {
            json!({"organisation": f.get("org"), "offering": JITSI, "plan": "s",
                   "config": {"domain": "meet.uebernahme.de"}})
        }),
        ep(M::GET, "/api/v1/bookings/{booking}", hidden),
        ep(M::PATCH, "/api/v1/bookings/{booking}", hidden_write)
            .body(&[], |_, _| json!({"config": {"domain": "meet.uebernahme.de"}})),
        ep(M::DELETE, "/api/v1/bookings/{booking}", hidden_write),
        ep(M::POST, "/api/v1/bookings/{awaiting}/approve", hidden_write),
        ep(M::POST, "/api/v1/bookings/{awaiting}/reject", hidden_write)
            .body(&[], |_, _| json!({"reason": "übernommen"})),
        ep(M::GET, "/api/v1/bookings/{booking}/placement", hidden),
        // tenancies.rs: a foreign instance's tenants are as secret as the instance; a
        // tenancy for a foreign organisation is refused before the instance is looked at.
        ep(M::GET, "/api/v1/bookings/{booking}/tenancies", hidden),
        ep(M::POST, "/api/v1/bookings/{booking}/tenancies", federation_writes)
            .body(&["org"], |_, f| {
                json!({"organisation": f.get("org"), "config": {}})
            }),
        ep(M::GET, "/api/v1/offerings/{offering}/instances", everyone).public(),
        // templates.rs: a template for another Land is as secret as an unknown one; an
        // adoption for a foreign organisation is refused before the template is looked at.
        ep(M::GET, "/api/v1/templates/{template}", hidden),
        ep(M::PUT, "/api/v1/templates/{template}", hidden_write).body(&[], |_, _| {
            json!({"booking": "0190f0b6-0000-7000-8000-000000000000", "name": "jitsi-buesum",
                   "display_name": "Übernahme", "visibility": "everyone"})
        }),
        ep(M::POST, "/api/v1/templates/{template}/adopt", federation_writes)
            .body(&["org"], |_, f| json!({"organisation": f.get("org")})),
        ep(M::POST, "/api/v1/placement/explain", oversight).body(&["org"], |_, f| {
            json!({"organisation": f.get("org"), "offering": JITSI, "plan": "s"})
        }),
        ep(M::POST, "/api/v1/compliance/reevaluate", federation_writes),
        // policies.rs
        ep(M::GET, "/api/v1/policies?organisation={org}", oversight),
        ep(M::GET, "/api/v1/policies", oversight),
        ep(M::GET, "/api/v1/policies/{policy}", hidden),
        ep(M::GET, "/api/v1/policies/{policy}/versions", hidden),
        ep(M::POST, "/api/v1/policies", federation_writes).body(&["org"], |_, f| {
            json!({"name": "uebernahme", "layer": "organisation", "owner": f.get("org"),
                   "text": FORBID_ALL})
        }),
        ep(M::POST, "/api/v1/policies", federation_writes).body(&[], |_, _| {
            json!({"name": "uebernahme", "layer": "federation", "text": FORBID_ALL})
        }),
        ep(M::DELETE, "/api/v1/policies/{policy}", hidden_write),
        ep(M::DELETE, "/api/v1/policies/{federation_policy}", federation_writes),
    ]
}

// ---------------------------------------------------------------------------------------
// The matrix

#[derive(Default)]
struct Tally {
    cells: usize,
    pairs: BTreeSet<(Role, usize)>,
    allowed: usize,
    forbidden: usize,
    hidden: usize,
}

async fn matrix(w: &World, endpoints: &[Endpoint]) -> Tally {
    let mut tally = Tally::default();
    let mut events = w.audit_count().await;
    for role in Role::ALL {
        let secrets = w.secrets(role);
        for (n, f) in w.foreign(role).iter().enumerate() {
            for (i, e) in endpoints.iter().enumerate() {
                let general = e.placeholders().is_empty() && e.needs.is_empty();
                if general && n > 0 {
                    // Not about any one organisation: checked with the first set only.
                    continue;
                }
                let want = (e.want)(role);
                if want == Want::Skip {
                    continue;
                }
                let Some(path) = e.resolve(w, f) else {
                    continue;
                };
                if e.needs.iter().any(|k| f.lookup(w, k).is_none()) {
                    continue;
                }
                let body = e.body.map(|b| b(w, f));
                let cell = format!("{} as {} against {}", e.label(), role.name(), f.label);
                let r = w.send(role, e.method.clone(), &path, body.as_ref()).await;
                let request = format!(
                    "{path} {}",
                    body.as_ref().map(Value::to_string).unwrap_or_default()
                );
                match want {
                    Want::Allowed => {
                        assert!(
                            r.status.is_success(),
                            "{cell}: expected success, got {}: {}",
                            r.status,
                            r.text
                        );
                        tally.allowed += 1;
                    }
                    Want::Forbidden => {
                        assert_refused(&cell, &r, StatusCode::FORBIDDEN);
                        tally.forbidden += 1;
                    }
                    Want::Hidden => {
                        assert_refused(&cell, &r, StatusCode::NOT_FOUND);
                        assert_like_unknown(w, role, e, f, &path, body.as_ref(), &r, &cell).await;
                        tally.hidden += 1;
                    }
                    Want::Skip => unreachable!("skipped above"),
                }
                assert_no_leak(&cell, &request, &r.text, &secrets, e.public);
                if e.method != Method::GET {
                    let now = w.audit_count().await;
                    assert_eq!(
                        now,
                        events,
                        "{cell} changed stored state: {} new audit events",
                        now - events
                    );
                    events = now;
                }
                tally.cells += 1;
                tally.pairs.insert((role, i));
            }
        }
    }
    tally
}

#[track_caller]
fn assert_refused(cell: &str, r: &Resp, status: StatusCode) {
    assert_eq!(
        r.status, status,
        "{cell}: expected {status}, got {}: {}",
        r.status, r.text
    );
    assert_eq!(
        r.json["status"],
        json!(status.as_u16()),
        "{cell}: not a problem document: {}",
        r.text
    );
}

/// A hidden object must answer exactly like one that does not exist.
#[allow(clippy::too_many_arguments, reason = "one call site; the cell's parts")]
async fn assert_like_unknown(
    w: &World,
    role: Role,
    e: &Endpoint,
    f: &Foreign,
    path: &str,
    body: Option<&Value>,
    r: &Resp,
    cell: &str,
) {
    let key = e.placeholders()[0];
    let real = f.lookup(w, key).expect("resolved before");
    let unknown = uuid::Uuid::now_v7().to_string();
    let twin = w
        .send(role, e.method.clone(), &path.replace(&real, &unknown), body)
        .await;
    let norm = |text: &str, id: &str| -> Value {
        serde_json::from_str(&text.replace(id, "<id>")).unwrap_or(Value::Null)
    };
    assert_eq!(
        (twin.status, norm(&twin.text, &unknown)),
        (r.status, norm(&r.text, &real)),
        "{cell}: a hidden object answers differently from an unknown one"
    );
}

// ---------------------------------------------------------------------------------------
// Lists, search filters and paging

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .or_else(|| page.as_array())
        .unwrap_or_else(|| panic!("not a list: {page}"))
        .iter()
        .map(|i| i["id"].as_str().expect("an id").to_string())
        .collect()
}

fn set(ids: Vec<String>) -> BTreeSet<String> {
    ids.into_iter().collect()
}

type Matcher = Box<dyn Fn(&Value) -> bool + Send + Sync>;

impl World {
    /// Whether `role` may see booking `b` (the rule the role policies implement).
    fn sees_booking(&self, role: Role, b: &Value) -> bool {
        let org = b["organisation"].as_str().unwrap_or_default();
        match role {
            Role::Federation | Role::Auditor => true,
            Role::AdminA | Role::MemberA => org == self.org.ettal,
            Role::DelegatedA => org == self.org.ettal || org == self.org.child,
            Role::AdminB => org == self.org.buesum,
            Role::Operator => b["site"] == json!(S1),
            Role::Vendor => false,
        }
    }

    /// Booking queries and what each matches.
    fn booking_queries(&self) -> Vec<(String, Matcher)> {
        let field = |name: &'static str, value: String| -> Matcher {
            Box::new(move |b: &Value| b[name].as_str() == Some(value.as_str()))
        };
        let mut out: Vec<(String, Matcher)> = vec![("".into(), Box::new(|_: &Value| true))];
        let o = &self.org;
        for org in [&o.ettal, &o.child, &o.gap, &o.bayern, &o.buesum, &o.heide] {
            out.push((
                format!("organisation={org}"),
                field("organisation", org.clone()),
            ));
        }
        for site in [S1, S2] {
            out.push((format!("site={site}"), field("site", site.into())));
        }
        for offering in [JITSI, REVIEWED, COLLABORA] {
            out.push((
                format!("offering={offering}"),
                field("offering", offering.into()),
            ));
        }
        for state in ["placed", "awaiting-approval", "cancelling", "rejected"] {
            out.push((format!("state={state}"), field("state", state.into())));
        }
        let noncompliant = |b: &Value| b["compliance"]["compliant"] == json!(false);
        out.push(("noncompliant=true".into(), Box::new(noncompliant)));
        let buesum = o.buesum.clone();
        out.push((
            format!("organisation={buesum}&site={S1}"),
            Box::new(move |b: &Value| b["organisation"] == json!(buesum) && b["site"] == json!(S1)),
        ));
        out.push((
            format!("site={S1}&noncompliant=true"),
            Box::new(move |b: &Value| b["site"] == json!(S1) && noncompliant(b)),
        ));
        out.push((
            format!("offering={JITSI}&state=placed"),
            Box::new(|b: &Value| b["offering"] == json!(JITSI) && b["state"] == json!("placed")),
        ));
        out
    }
}

fn with_query(base: &str, query: &str, extra: &str) -> String {
    match (query.is_empty(), extra.is_empty()) {
        (true, true) => base.to_string(),
        (true, false) => format!("{base}?{extra}"),
        (false, true) => format!("{base}?{query}"),
        (false, false) => format!("{base}?{query}&{extra}"),
    }
}

/// Every list and filter, for every role, against the oracle; returns the number of checks.
async fn list_checks(w: &World, stage: &str, b_policy_in_force: bool) -> usize {
    let mut checks = 0;
    let all = ok(
        w.get(Role::Federation, "/api/v1/bookings?limit=1000").await,
        "list all bookings",
    );
    assert!(all.get("next").is_none(), "more than 1000 bookings");
    let all: Vec<Value> = all["items"].as_array().expect("items").clone();
    let queries = w.booking_queries();
    for role in Role::ALL {
        let secrets = w.secrets(role);
        let visible: Vec<&Value> = all.iter().filter(|b| w.sees_booking(role, b)).collect();
        for (query, matches) in &queries {
            let expected: BTreeSet<String> = visible
                .iter()
                .filter(|b| matches(b))
                .map(|b| b["id"].as_str().expect("an id").to_string())
                .collect();
            let path = with_query("/api/v1/bookings", query, "limit=1000");
            let cell = format!("{stage}: GET {path} as {}", role.name());
            let r = w.get(role, &path).await;
            assert_eq!(r.status, StatusCode::OK, "{cell}: {}", r.text);
            assert_eq!(set(ids(&r.json)), expected, "{cell}");
            assert_no_leak(&cell, &path, &r.text, &secrets, false);
            checks += 1;
        }
        // Paging one by one shows the same, and no cursor names a foreign booking.
        for query in ["", &format!("offering={JITSI}"), "noncompliant=true"] {
            let expected: Vec<String> = {
                let (_, matches) = queries
                    .iter()
                    .find(|(q, _)| q == query)
                    .expect("a known query");
                let mut v: Vec<String> = visible
                    .iter()
                    .filter(|b| matches(b))
                    .map(|b| b["id"].as_str().expect("an id").to_string())
                    .collect();
                v.sort();
                v
            };
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let extra = match &after {
                    Some(a) => format!("limit=1&after={a}"),
                    None => "limit=1".to_string(),
                };
                let path = with_query("/api/v1/bookings", query, &extra);
                let cell = format!("{stage}: GET {path} as {}", role.name());
                let r = w.get(role, &path).await;
                assert_eq!(r.status, StatusCode::OK, "{cell}: {}", r.text);
                assert_no_leak(&cell, &path, &r.text, &secrets, false);
                seen.extend(ids(&r.json));
                checks += 1;
                match r.json["next"].as_str() {
                    Some(n) => after = Some(n.to_string()),
                    None => break,
                }
                assert!(seen.len() <= all.len(), "{cell}: paging does not end");
            }
            assert_eq!(
                seen,
                expected,
                "{stage}: paging `{query}` one by one as {}",
                role.name()
            );
        }
        // A foreign booking as the cursor is only a position.
        let b = &w.booking.b;
        let path = format!("/api/v1/bookings?after={b}&limit=1000");
        let r = w.get(role, &path).await;
        let expected: BTreeSet<String> = visible
            .iter()
            .filter_map(|x| x["id"].as_str())
            .filter(|id| id > &b.as_str())
            .map(str::to_string)
            .collect();
        assert_eq!(
            set(ids(&ok(r, &path))),
            expected,
            "{stage}: GET {path} as {}",
            role.name()
        );
        checks += 1;
    }
    checks += policy_lists(w, stage).await;
    checks += user_lists(w, stage).await;
    checks += explanations(w, stage, b_policy_in_force).await;
    // Operations endpoints are outside the API and name no tenant; the metrics are the
    // federation's, for its admins and auditors only (and the monitoring role).
    let anonymous = call(&w.app, "", &Method::GET, "/metrics", None).await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "{stage}: /metrics"
    );
    for role in Role::ALL {
        let want = match role {
            Role::Federation | Role::Auditor => StatusCode::OK,
            _ => StatusCode::FORBIDDEN,
        };
        let r = call(&w.app, w.token(role), &Method::GET, "/metrics", None).await;
        assert_eq!(r.status, want, "{stage}: /metrics as {}", role.name());
        checks += 1;
    }
    let metrics = call(
        &w.app,
        w.token(Role::Auditor),
        &Method::GET,
        "/metrics",
        None,
    )
    .await;
    let mut everything = w.secrets(Role::Vendor);
    everything.push(secret(&w.org.child, "an organisation id"));
    assert_no_leak(
        &format!("{stage}: GET /metrics"),
        "",
        &metrics.text,
        &everything,
        false,
    );
    checks + 1
}

/// The organisation and its ancestors, nearest first.
fn chain(w: &World, org: &str) -> Vec<String> {
    let o = &w.org;
    let up: &[&String] = if org == o.child {
        &[&o.child, &o.ettal, &o.gap, &o.bayern, &o.bund]
    } else if org == o.ettal {
        &[&o.ettal, &o.gap, &o.bayern, &o.bund]
    } else if org == o.buesum {
        &[&o.buesum, &o.dithmarschen, &o.sh, &o.bund]
    } else {
        panic!("no chain for `{org}`")
    };
    up.iter().map(|s| s.to_string()).collect()
}

async fn policy_lists(w: &World, stage: &str) -> usize {
    let mut checks = 0;
    let all = ok(
        w.get(Role::Federation, "/api/v1/policies").await,
        "list all policies",
    );
    let in_force = |org: &str| -> BTreeSet<String> {
        let chain = chain(w, org);
        all.as_array()
            .expect("a list")
            .iter()
            .filter(|p| {
                p["owner"]
                    .as_str()
                    .is_none_or(|o| chain.iter().any(|c| c == o))
            })
            .map(|p| p["id"].as_str().expect("an id").to_string())
            .collect()
    };
    let o = &w.org;
    let (a_roles, b_roles) = (
        [Role::AdminA, Role::MemberA, Role::DelegatedA],
        [Role::AdminB],
    );
    let mut cases: Vec<(Role, String, Option<BTreeSet<String>>)> = Vec::new();
    for role in a_roles {
        cases.push((
            role,
            format!("organisation={}", o.ettal),
            Some(in_force(&o.ettal)),
        ));
        let child = (role == Role::DelegatedA).then(|| in_force(&o.child));
        cases.push((role, format!("organisation={}", o.child), child));
        for foreign in [&o.buesum, &o.gap, &o.bayern, &o.unterammergau] {
            cases.push((role, format!("organisation={foreign}"), None));
        }
        cases.push((role, String::new(), None));
    }
    for role in b_roles {
        cases.push((
            role,
            format!("organisation={}", o.buesum),
            Some(in_force(&o.buesum)),
        ));
        cases.push((role, format!("organisation={}", o.ettal), None));
        cases.push((role, String::new(), None));
    }
    for role in [Role::Operator, Role::Vendor] {
        for org in [&o.ettal, &o.buesum] {
            cases.push((role, format!("organisation={org}"), None));
        }
        cases.push((role, String::new(), None));
    }
    for (role, query, expected) in cases {
        let path = with_query("/api/v1/policies", &query, "");
        let cell = format!("{stage}: GET {path} as {}", role.name());
        let r = w.get(role, &path).await;
        match expected {
            Some(expected) => {
                assert_eq!(r.status, StatusCode::OK, "{cell}: {}", r.text);
                assert_eq!(set(ids(&r.json)), expected, "{cell}");
                assert!(!expected.is_empty());
            }
            None => assert_refused(&cell, &r, StatusCode::FORBIDDEN),
        }
        assert_no_leak(&cell, &path, &r.text, &w.secrets(role), false);
        checks += 1;
    }
    // Reading by id: the own organisation's yes, a foreign one's answers as unknown, the
    // federation's are public.
    let p = &w.policy;
    let mut reads = vec![
        (Role::AdminB, &p.bayern, false),
        (Role::AdminB, &p.a, false),
    ];
    for role in a_roles {
        reads.push((role, &p.a, true));
        reads.push((role, &p.b, false));
    }
    for role in Role::ALL {
        reads.push((role, &p.federation, true));
    }
    for (role, id, readable) in reads {
        for suffix in ["", "/versions"] {
            let path = format!("/api/v1/policies/{id}{suffix}");
            let cell = format!("{stage}: GET {path} as {}", role.name());
            let r = w.get(role, &path).await;
            if readable {
                assert_eq!(r.status, StatusCode::OK, "{cell}: {}", r.text);
            } else {
                assert_refused(&cell, &r, StatusCode::NOT_FOUND);
            }
            assert_no_leak(&cell, &path, &r.text, &w.secrets(role), false);
            checks += 1;
        }
    }
    checks
}

async fn user_lists(w: &World, stage: &str) -> usize {
    let mut checks = 0;
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let page = ok(
            w.get(
                Role::Federation,
                &format!("/api/v1/users?limit=1000{after}"),
            )
            .await,
            "list all users",
        );
        all.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next"].as_str() {
            Some(n) => after = format!("&after={n}"),
            None => break,
        }
    }
    // An org admin sees the accounts whose every organisation is its own.
    let own_accounts = |org: &str| -> BTreeSet<String> {
        all.iter()
            .filter(|u| {
                let orgs: Vec<&str> = u["memberships"]
                    .as_array()
                    .expect("memberships")
                    .iter()
                    .filter_map(|m| m["organisation"].as_str())
                    .collect();
                orgs.contains(&org) && orgs.iter().all(|o| *o == org)
            })
            .map(|u| u["id"].as_str().expect("an id").to_string())
            .collect()
    };
    let o = &w.org;
    let cases: Vec<(Role, &String, Option<BTreeSet<String>>)> = vec![
        (Role::AdminA, &o.ettal, Some(own_accounts(&o.ettal))),
        (Role::DelegatedA, &o.ettal, Some(own_accounts(&o.ettal))),
        (Role::AdminB, &o.buesum, Some(own_accounts(&o.buesum))),
        (Role::MemberA, &o.ettal, None),
        (Role::AdminA, &o.buesum, None),
        (Role::AdminA, &o.child, None),
        (Role::AdminA, &o.gap, None),
        (Role::DelegatedA, &o.buesum, None),
        (Role::AdminB, &o.ettal, None),
        (Role::Operator, &o.ettal, None),
        (Role::Vendor, &o.v1, None),
    ];
    for (role, org, expected) in cases {
        let path = format!("/api/v1/users?organisation={org}");
        let cell = format!("{stage}: GET {path} as {}", role.name());
        let r = w.get(role, &path).await;
        match expected {
            Some(expected) => {
                assert_eq!(r.status, StatusCode::OK, "{cell}: {}", r.text);
                assert!(
                    expected.contains(w.id(role)),
                    "{cell}: the caller is missing from {expected:?}"
                );
                assert_eq!(set(ids(&r.json)), expected, "{cell}");
                // One by one, too.
                let mut seen = Vec::new();
                let mut cursor = String::new();
                loop {
                    let path = format!("/api/v1/users?organisation={org}&limit=1{cursor}");
                    let r = w.get(role, &path).await;
                    assert_eq!(r.status, StatusCode::OK, "{cell}: {}", r.text);
                    assert_no_leak(
                        &format!("{cell}, paged"),
                        &path,
                        &r.text,
                        &w.secrets(role),
                        false,
                    );
                    seen.extend(ids(&r.json));
                    checks += 1;
                    match r.json["next"].as_str() {
                        Some(n) => cursor = format!("&after={n}"),
                        None => break,
                    }
                    assert!(seen.len() <= all.len(), "{cell}: paging does not end");
                }
                assert_eq!(set(seen), expected, "{cell}, paged one by one");
            }
            None => assert_refused(&cell, &r, StatusCode::FORBIDDEN),
        }
        assert_no_leak(&cell, &path, &r.text, &w.secrets(role), false);
        checks += 1;
    }
    // Reading one account.
    let reads = [
        (Role::AdminA, w.id(Role::MemberA).to_string(), true),
        (Role::AdminA, w.dual.id.clone(), false),
        (Role::AdminA, w.id(Role::AdminB).to_string(), false),
        (Role::AdminA, w.id(Role::Operator).to_string(), false),
        (Role::AdminB, w.dual.id.clone(), false),
        (Role::MemberA, w.id(Role::AdminA).to_string(), false),
    ];
    for (role, id, readable) in reads {
        let path = format!("/api/v1/users/{id}");
        let cell = format!("{stage}: GET {path} as {}", role.name());
        let r = w.get(role, &path).await;
        if readable {
            assert_eq!(r.status, StatusCode::OK, "{cell}: {}", r.text);
        } else {
            assert_refused(&cell, &r, StatusCode::NOT_FOUND);
        }
        checks += 1;
    }
    checks
}

/// Placement explanations name the policies of the organisation's own chain only.
async fn explanations(w: &World, stage: &str, b_policy_in_force: bool) -> usize {
    let mut checks = 0;
    let o = &w.org;
    for (role, org, own) in [
        (Role::AdminA, &o.ettal, "policy-marker-ettal"),
        (Role::MemberA, &o.ettal, "policy-marker-ettal"),
        (Role::DelegatedA, &o.child, "policy-marker-ettal"),
        (Role::AdminB, &o.buesum, "policy-marker-buesum"),
    ] {
        let own = Some(own).filter(|_| role != Role::AdminB || b_policy_in_force);
        let body = json!({"organisation": org, "offering": JITSI, "plan": "s"});
        let cell = format!("{stage}: explain {org} as {}", role.name());
        let r = w
            .send(role, Method::POST, "/api/v1/placement/explain", Some(&body))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{cell}: {}", r.text);
        if let Some(own) = own {
            assert!(
                r.text.contains(own),
                "{cell}: the organisation's own policy is missing: {}",
                r.text
            );
        }
        assert_no_leak(&cell, &body.to_string(), &r.text, &w.secrets(role), false);
        checks += 1;
    }
    for (role, id) in [(Role::AdminA, &w.booking.a), (Role::AdminB, &w.booking.b)] {
        for suffix in ["", "/placement"] {
            let path = format!("/api/v1/bookings/{id}{suffix}");
            let cell = format!("{stage}: GET {path} as {}", role.name());
            let r = w.get(role, &path).await;
            assert_eq!(r.status, StatusCode::OK, "{cell}: {}", r.text);
            assert_no_leak(&cell, &path, &r.text, &w.secrets(role), false);
            checks += 1;
        }
    }
    checks
}

// ---------------------------------------------------------------------------------------
// Positive checks: what each role may do, so that the refusals are not vacuous

struct Expect<'a> {
    w: &'a World,
    checks: usize,
}

impl Expect<'_> {
    /// Sends the request and asserts the status; asserts the audit trail grew exactly
    /// when the request should write.
    async fn check(
        &mut self,
        role: Role,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
    ) -> Value {
        let before = self.w.audit_count().await;
        let r = self.w.send(role, method.clone(), path, body.as_ref()).await;
        let cell = format!("{method} {path} as {}", role.name());
        assert_eq!(r.status, status, "{cell}: {}", r.text);
        let after = self.w.audit_count().await;
        if method == Method::GET || !status.is_success() {
            assert_eq!(after, before, "{cell} changed stored state");
        } else {
            assert!(after > before, "{cell} succeeded without an audit event");
        }
        self.checks += 1;
        r.json
    }
}

async fn positive_checks(w: &World) -> usize {
    use Method as M;
    use StatusCode as S;
    let mut x = Expect { w, checks: 0 };
    let (b, p, o) = (&w.booking, &w.policy, &w.org);
    let a = format!("/api/v1/bookings/{}", b.a);
    let child = format!("/api/v1/bookings/{}", b.child);
    let config = |d: &str| Some(json!({"config": {"domain": d}}));

    // The org admin reads and changes its own booking; the member only reads it.
    x.check(Role::AdminA, M::GET, &a, None, S::OK).await;
    let changed = x
        .check(Role::AdminA, M::PATCH, &a, config("video.ettal.de"), S::OK)
        .await;
    assert_eq!(changed["config"]["domain"], json!("video.ettal.de"));
    x.check(Role::MemberA, M::GET, &a, None, S::OK).await;
    x.check(
        Role::MemberA,
        M::PATCH,
        &a,
        config("x.ettal.de"),
        S::FORBIDDEN,
    )
    .await;
    x.check(Role::MemberA, M::DELETE, &a, None, S::FORBIDDEN)
        .await;
    x.check(Role::DelegatedA, M::GET, &a, None, S::OK).await;

    // Delegation reaches the child organisation; without it, the child's booking is foreign.
    x.check(Role::AdminA, M::GET, &child, None, S::NOT_FOUND)
        .await;
    x.check(Role::MemberA, M::GET, &child, None, S::NOT_FOUND)
        .await;
    x.check(Role::AdminA, M::DELETE, &child, None, S::NOT_FOUND)
        .await;
    x.check(Role::DelegatedA, M::GET, &child, None, S::OK).await;
    x.check(
        Role::DelegatedA,
        M::GET,
        &format!("{child}/placement"),
        None,
        S::OK,
    )
    .await;
    x.check(
        Role::DelegatedA,
        M::PATCH,
        &child,
        config("video.wasser-ettal.de"),
        S::OK,
    )
    .await;
    let cancelled = x
        .check(Role::DelegatedA, M::DELETE, &child, None, S::OK)
        .await;
    assert_eq!(cancelled["state"], json!("cancelling"));

    // The operator of P1 reads the bookings on its site, also B's, but writes none.
    let b_collabora = format!("/api/v1/bookings/{}", b.b_collabora);
    x.check(Role::Operator, M::GET, &a, None, S::OK).await;
    x.check(Role::Operator, M::GET, &b_collabora, None, S::OK)
        .await;
    x.check(
        Role::Operator,
        M::GET,
        &format!("{b_collabora}/placement"),
        None,
        S::OK,
    )
    .await;
    x.check(
        Role::Operator,
        M::PATCH,
        &b_collabora,
        Some(json!({"plan": "m"})),
        S::FORBIDDEN,
    )
    .await;
    x.check(Role::Operator, M::DELETE, &a, None, S::FORBIDDEN)
        .await;
    x.check(
        Role::Operator,
        M::POST,
        &format!("/api/v1/bookings/{}/approve", b.a_wait),
        None,
        S::NOT_FOUND,
    )
    .await;
    // … and changes its own site and provider.
    let mut site = w.specs[S1].clone();
    site["display_name"] = json!("Rechenzentrum München (Isolationstest)");
    x.check(
        Role::Operator,
        M::PUT,
        &format!("/api/v1/sites/{S1}"),
        Some(site),
        S::OK,
    )
    .await;

    // The auditor reads everything and changes nothing.
    let trail = x
        .check(Role::Auditor, M::GET, "/api/v1/audit?limit=5", None, S::OK)
        .await;
    assert_eq!(
        item_count(&trail),
        5,
        "the auditor reads the trail: {trail}"
    );
    x.check(
        Role::Auditor,
        M::GET,
        &format!("/api/v1/bookings/{}", b.b),
        None,
        S::OK,
    )
    .await;
    x.check(
        Role::Auditor,
        M::PATCH,
        &a,
        config("x.ettal.de"),
        S::FORBIDDEN,
    )
    .await;
    x.check(
        Role::Auditor,
        M::POST,
        "/api/v1/compliance/reevaluate",
        None,
        S::FORBIDDEN,
    )
    .await;

    // Approval is the federation admin's; the org admin sees its request but may not.
    let a_wait = format!("/api/v1/bookings/{}", b.a_wait);
    x.check(
        Role::AdminA,
        M::POST,
        &format!("{a_wait}/approve"),
        None,
        S::FORBIDDEN,
    )
    .await;
    let approved = x
        .check(
            Role::Federation,
            M::POST,
            &format!("{a_wait}/approve"),
            None,
            S::OK,
        )
        .await;
    // A's own policy now keeps it off P1's site.
    assert_eq!(approved["site"], json!(S2), "{approved}");
    let reason = Some(json!({"reason": "Freigabe verweigert"}));
    let rejected = x
        .check(
            Role::Federation,
            M::POST,
            &format!("/api/v1/bookings/{}/reject", b.b_wait),
            reason,
            S::OK,
        )
        .await;
    assert_eq!(rejected["state"], json!("rejected"));

    // The vendor publishes and changes its own offering.
    let jitsi: Vec<OfferingEntry> = demo("offerings.yaml", OFFERINGS);
    let newest = jitsi
        .iter()
        .find(|e| e.offering.name == JITSI)
        .and_then(|e| e.versions.last())
        .expect("a demo version");
    x.check(
        Role::Vendor,
        M::POST,
        &format!("/api/v1/offerings/{JITSI}/versions"),
        Some(to_json(newest)),
        S::CREATED,
    )
    .await;
    let mut offering = w.specs[JITSI].clone();
    offering["display_name"] = json!("Jitsi Meet – Videokonferenzen (V1)");
    x.check(
        Role::Vendor,
        M::PUT,
        &format!("/api/v1/offerings/{JITSI}"),
        Some(offering),
        S::OK,
    )
    .await;

    // The org admin books for its organisation (the member may not), and manages its
    // accounts: members and admins, but never a delegation it does not hold.
    let booking = json!({"organisation": o.ettal, "offering": JITSI, "plan": "s",
                         "config": {"domain": "meet2.ettal.de"}});
    x.check(
        Role::MemberA,
        M::POST,
        "/api/v1/bookings",
        Some(booking.clone()),
        S::FORBIDDEN,
    )
    .await;
    x.check(
        Role::AdminA,
        M::POST,
        "/api/v1/bookings",
        Some(booking),
        S::CREATED,
    )
    .await;
    let user = |name: &str, delegated: bool| {
        Some(json!({"name": name, "display_name": name,
                    "memberships": [{"role": "org-admin", "organisation": o.ettal, "delegated": delegated}]}))
    };
    x.check(
        Role::AdminA,
        M::POST,
        "/api/v1/users",
        user("neu-ettal", false),
        S::CREATED,
    )
    .await;
    x.check(
        Role::AdminA,
        M::POST,
        "/api/v1/users",
        user("kreis-ettal", true),
        S::FORBIDDEN,
    )
    .await;
    x.check(
        Role::MemberA,
        M::POST,
        "/api/v1/users",
        user("selbst-ettal", false),
        S::FORBIDDEN,
    )
    .await;

    // Org admins withdraw their own policies, never another's.
    x.check(
        Role::AdminA,
        M::DELETE,
        &format!("/api/v1/policies/{}", p.b),
        None,
        S::NOT_FOUND,
    )
    .await;
    x.check(
        Role::AdminB,
        M::DELETE,
        &format!("/api/v1/policies/{}", p.b),
        None,
        S::OK,
    )
    .await;
    let versions = x
        .check(
            Role::AdminB,
            M::GET,
            &format!("/api/v1/policies/{}/versions", p.b),
            None,
            S::OK,
        )
        .await;
    assert_eq!(versions.as_array().map(Vec::len), Some(2), "{versions}");

    // Finally A cancels its first booking.
    let cancelled = x.check(Role::AdminA, M::DELETE, &a, None, S::OK).await;
    assert_eq!(cancelled["state"], json!("cancelling"));
    x.checks
}

fn item_count(page: &Value) -> usize {
    page["items"].as_array().map_or(0, Vec::len)
}

// ---------------------------------------------------------------------------------------
// Requests

struct Resp {
    status: StatusCode,
    text: String,
    json: Value,
}

/// Sends one request through the router, without a socket.
async fn call(
    app: &Router,
    token: &str,
    method: &Method,
    path: &str,
    body: Option<&Value>,
) -> Resp {
    let mut b = Request::builder().method(method.clone()).uri(path);
    if !token.is_empty() {
        b = b.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = match body {
        Some(v) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(v.to_string())),
        None => b.body(Body::empty()),
    }
    .expect("a valid request");
    let resp = app
        .clone()
        .oneshot(req)
        .await
        .expect("the router is infallible");
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .expect("the body")
        .to_bytes();
    Resp {
        status,
        text: String::from_utf8_lossy(&bytes).into_owned(),
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

#[track_caller]
fn ok(r: Resp, what: &str) -> Value {
    assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.text);
    r.json
}

// ---------------------------------------------------------------------------------------
// Databases

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// A throw-away database (see `verbund_testkit::Scratch`); `None` when PostgreSQL is
/// unreachable and `VERBUND_SKIP_POSTGRES=1`.
async fn scratch(backend: Backend) -> Option<Scratch> {
    match backend {
        Backend::Sqlite => Some(Scratch::sqlite()),
        Backend::Postgres => Scratch::postgres("the PostgreSQL run").await,
    }
}

/// Runs the test on a fresh database and drops it afterwards, also when the test fails.
async fn run(backend: Backend) {
    let Some(scratch) = scratch(backend).await else {
        return;
    };
    let outcome: Result<(), Box<dyn Any + Send>> = match Store::open(&scratch.url).await {
        Ok(store) => {
            let s = store.clone();
            let r = tokio::spawn(isolation(s, backend)).await;
            store.close().await;
            r.map_err(|e| match e.try_into_panic() {
                Ok(panic) => panic,
                Err(e) => Box::new(format!("the test was cancelled: {e}")),
            })
        }
        Err(e) => Err(Box::new(format!(
            "cannot open the store on `{}`: {e}",
            scratch.url
        ))),
    };
    scratch.remove().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
