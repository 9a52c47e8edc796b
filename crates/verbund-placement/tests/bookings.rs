//! Booking behaviour through `verbund_placement::Bookings` on a real store, on SQLite
//! and on PostgreSQL: placement with dependencies, validation, approval, atomic
//! capacity, rejection, continuous compliance, cancellation and retention.
//!
//! PostgreSQL: see `verbund_testkit` (`VERBUND_TEST_POSTGRES`, `VERBUND_SKIP_POSTGRES`).

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};
use verbund_domain::booking::{Booking, BookingSpec, BookingState};
use verbund_domain::catalog::{OfferingSpec, VersionSpec};
use verbund_domain::directory::{Level, OrganisationSpec, ProviderSpec, Resources, SiteSpec};
use verbund_domain::page::PageRequest;
use verbund_placement::{
    document_id, ensure_default_policies, BookingError, Bookings, PolicySubmission,
};
use verbund_policy::PolicyLayer;
use verbund_store::{AuditFilter, BookingFilter, Store, StoreError};
use verbund_testkit::certified::certify_stated;
use verbund_testkit::on_both;

// Each `async fn name(store: Store)` runs on a fresh SQLite and PostgreSQL store
// (`verbund_testkit::on_both!`).

// ---------------------------------------------------------------------------------------
// Time

/// The day on which `by-1`'s BSI C5 type 2 attestation is valid for the last time.
fn c5_last_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 10).expect("a date")
}

/// 08:00 UTC on `day`.
fn at(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(8, 0, 0).expect("a time"))
}

/// The start of every test: the day before the C5 attestation's last valid day.
fn t0() -> DateTime<Utc> {
    at(c5_last_day()) - Duration::days(1)
}

const ADMIN: &str = "user/federation-admin";
const COMPLIANCE: &str = "system/compliance";

// ---------------------------------------------------------------------------------------
// The federation: Bund, Bayern and Schleswig-Holstein with a Kreis and a Gemeinde each;
// two public IT service providers and a private one with a US parent.

struct Fed {
    store: Store,
    bookings: Bookings,
    bayern: String,
    lk_muenchen: String,
    unterhaching: String,
    elmshorn: String,
}

fn org_spec(
    name: &str,
    level: Level,
    keys: Option<(&str, &str)>,
    parent: Option<&str>,
) -> OrganisationSpec {
    OrganisationSpec {
        name: name.into(),
        level,
        ars: keys.map(|k| k.0.into()),
        ags: keys.map(|k| k.1.into()),
        parent: parent.map(Into::into),
        population: None,
    }
}

fn provider(name: &str, public_law: bool, parent_jurisdiction: Option<&str>) -> ProviderSpec {
    serde_json::from_value(json!({
        "name": name,
        "display_name": format!("Provider {name}"),
        "legal_form": if public_law { "AöR" } else { "GmbH" },
        "public_law": public_law,
        "seat": {"city": "München", "country": "DE"},
        "jurisdictions": ["DE"],
        "parent_companies": parent_jurisdiction
            .map(|j| vec![json!({"name": "Mutterkonzern", "jurisdiction": j})])
            .unwrap_or_default(),
    }))
    .expect("provider fixture")
}

fn site(
    name: &str,
    provider: &str,
    region: &str,
    c5_until: NaiveDate,
    capabilities: &[&str],
    capacity: Resources,
) -> SiteSpec {
    serde_json::from_value(json!({
        "name": name,
        "display_name": format!("Rechenzentrum {name}"),
        "provider": provider,
        "location": {"country": "DE", "region": region, "city": format!("Stadt {region}")},
        "certifications": [
            {"scheme": "iso27001", "level": "it-grundschutz", "valid_until": "2028-12-31"},
            {"scheme": "bsi-c5", "level": "type2", "valid_until": c5_until},
        ],
        "kubernetes_version": "1.31",
        "capabilities": capabilities,
        "capacity": capacity,
        "environments": ["test", "prod"],
        "delivery": "flux"
    }))
    .expect("site fixture")
}

fn big() -> Resources {
    Resources {
        cpu_millis: 64_000,
        memory_mib: 262_144,
        storage_gib: 10_240,
    }
}

fn small_plan() -> Resources {
    Resources {
        cpu_millis: 1000,
        memory_mib: 1024,
        storage_gib: 10,
    }
}

fn times(r: Resources, n: u64) -> Resources {
    Resources {
        cpu_millis: r.cpu_millis * n,
        memory_mib: r.memory_mib * n,
        storage_gib: r.storage_gib * n,
    }
}

fn offering(name: &str, vendor: &str, classes: &[&str], extra: Value) -> OfferingSpec {
    let mut v = json!({
        "name": name,
        "display_name": format!("Angebot {name}"),
        "vendor": vendor,
        "category": "saas",
        "data_classes": classes,
        "plans": [
            {"name": "s", "display_name": "S", "replicas": 1,
             "resources": small_plan(), "monthly_price_cents": 9900},
            {"name": "m", "display_name": "M", "replicas": 2,
             "resources": times(small_plan(), 2), "monthly_price_cents": 19900}
        ]
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    serde_json::from_value(v).expect("offering fixture")
}

fn version(v: &str) -> VersionSpec {
    serde_json::from_value(json!({
        "version": v,
        "package": {"type": "helm", "repository": "https://charts.example.org",
                    "chart": "app", "chart_version": v}
    }))
    .expect("version fixture")
}

async fn publish(store: &Store, spec: &OfferingSpec) {
    store
        .put_offering(ADMIN, spec, t0())
        .await
        .unwrap_or_else(|e| panic!("put_offering `{}`: {e}", spec.name));
    store
        .publish_version(ADMIN, &spec.name, &version("1.0.0"), t0())
        .await
        .unwrap_or_else(|e| panic!("publish `{}`: {e}", spec.name));
}

/// The contact schema of `fachverfahren`.
fn contact_schema() -> Value {
    json!({
        "type": "object",
        "required": ["contact"],
        "properties": {
            "contact": {
                "type": "object",
                "required": ["email"],
                "properties": {"email": {"type": "string", "pattern": "^[^@\\s]+@[^@\\s]+$"}}
            }
        }
    })
}

fn good_config() -> Value {
    json!({"contact": {"email": "it@unterhaching.de"}})
}

/// Sites `by-1` (Bayern, C5 until `c5_last_day`), `sh-1` (Schleswig-Holstein) and `he-1`
/// (Hessen, private operator with a US parent); offerings `db` (personal data),
/// `fachverfahren` (special categories, needs `db`), `portal` (personal data) and
/// `antrag` (needs approval).
async fn federation(store: Store) -> Fed {
    let now = t0();
    let create = |spec: OrganisationSpec| {
        let store = store.clone();
        async move {
            store
                .create_organisation(ADMIN, &spec, now)
                .await
                .unwrap_or_else(|e| panic!("create `{}`: {e}", spec.name))
                .id
        }
    };
    let bund = create(org_spec(
        "Bundesrepublik Deutschland",
        Level::Bund,
        None,
        None,
    ))
    .await;
    let bayern = create(org_spec(
        "Freistaat Bayern",
        Level::Land,
        Some(("09", "09")),
        Some(&bund),
    ))
    .await;
    let sh = create(org_spec(
        "Schleswig-Holstein",
        Level::Land,
        Some(("01", "01")),
        Some(&bund),
    ))
    .await;
    let lk_muenchen = create(org_spec(
        "Landkreis München",
        Level::Kreis,
        Some(("09184", "09184")),
        Some(&bayern),
    ))
    .await;
    let unterhaching = create(org_spec(
        "Unterhaching",
        Level::Gemeinde,
        Some(("091840147147", "09184147")),
        Some(&lk_muenchen),
    ))
    .await;
    let pinneberg = create(org_spec(
        "Kreis Pinneberg",
        Level::Kreis,
        Some(("01056", "01056")),
        Some(&sh),
    ))
    .await;
    let elmshorn = create(org_spec(
        "Elmshorn",
        Level::Gemeinde,
        Some(("010560015015", "01056015")),
        Some(&pinneberg),
    ))
    .await;

    for p in [
        provider("it-bayern", true, None),
        provider("dataport", true, None),
        provider("cloudco", false, Some("US")),
    ] {
        store
            .put_provider(ADMIN, &p, now)
            .await
            .expect("put_provider");
    }
    let caps = ["storage:rwx", "ingress:nginx"];
    let far = NaiveDate::from_ymd_opt(2028, 12, 31).expect("a date");
    for s in [
        site("by-1", "it-bayern", "DE-BY", c5_last_day(), &caps, big()),
        site("sh-1", "dataport", "DE-SH", far, &caps, big()),
        site("he-1", "cloudco", "DE-HE", far, &caps, big()),
    ] {
        store.put_site(ADMIN, &s, now).await.expect("put_site");
    }
    certify_stated(&store, now).await;
    ensure_default_policies(&store, now)
        .await
        .expect("default policies");

    publish(
        &store,
        &offering("db", &bund, &["personal"], json!({"category": "paas"})),
    )
    .await;
    publish(
        &store,
        &offering(
            "fachverfahren",
            &bund,
            &["personal", "special-categories"],
            json!({"config_schema": contact_schema(), "dependencies": [{"offering": "db"}]}),
        ),
    )
    .await;
    publish(&store, &offering("portal", &bund, &["personal"], json!({}))).await;
    publish(
        &store,
        &offering(
            "antrag",
            &bund,
            &["internal"],
            json!({"requires_approval": true}),
        ),
    )
    .await;

    Fed {
        bookings: Bookings::new(store.clone()),
        store,
        bayern,
        lk_muenchen,
        unterhaching,
        elmshorn,
    }
}

fn spec(organisation: &str, offering: &str, plan: &str, config: Value) -> BookingSpec {
    BookingSpec {
        dependencies: Default::default(),
        ending: None,
        organisation: organisation.into(),
        offering: offering.into(),
        plan: plan.into(),
        config,
        channel: "stable".into(),
        windows: Vec::new(),
    }
}

impl Fed {
    async fn book(&self, s: &BookingSpec, now: DateTime<Utc>) -> Vec<Booking> {
        self.bookings
            .book(ADMIN, s, now)
            .await
            .unwrap_or_else(|e| panic!("book `{}`: {e}", s.offering))
    }

    async fn get(&self, id: &str) -> Booking {
        self.store.get_booking(id).await.expect("get_booking")
    }

    async fn all_bookings(&self, filter: &BookingFilter) -> Vec<Booking> {
        let page = PageRequest {
            limit: Some(1000),
            after: None,
        };
        self.store
            .list_bookings(filter, &page)
            .await
            .expect("list_bookings")
            .items
    }

    /// The actions recorded for one object, oldest first.
    async fn audit_actions(&self, object: &str) -> Vec<String> {
        let filter = AuditFilter {
            object: Some(object.into()),
            ..Default::default()
        };
        let page = PageRequest {
            limit: Some(1000),
            after: None,
        };
        let mut actions: Vec<String> = self
            .store
            .list_audit(&filter, &page)
            .await
            .expect("list_audit")
            .items
            .into_iter()
            .map(|e| e.action)
            .collect();
        actions.reverse();
        actions
    }

    async fn audit_head(&self) -> i64 {
        let page = PageRequest {
            limit: Some(1),
            after: None,
        };
        self.store
            .list_audit(&AuditFilter::default(), &page)
            .await
            .expect("list_audit")
            .items
            .first()
            .map_or(0, |e| e.seq)
    }

    async fn noncompliant_count(&self) -> i64 {
        self.store.booking_counts().await.expect("booking_counts").1
    }

    /// The chain is intact and the resources held on no site exceed its capacity.
    async fn check_invariants(&self) {
        let verified = self.store.verify_audit().await.expect("verify_audit");
        assert!(verified.is_ok(), "the audit chain is broken: {verified:?}");
        for u in self.store.site_usage().await.expect("site_usage") {
            assert!(
                u.used.fits_in(&u.site.spec.capacity),
                "site `{}` is overbooked: {:?} > {:?}",
                u.site.spec.name,
                u.used,
                u.site.spec.capacity
            );
        }
    }
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(r: Result<T, BookingError>, field: &str) {
    match r {
        Err(BookingError::Invalid(i)) => assert_eq!(i.field, field, "wrong field in `{i}`"),
        other => panic!("expected an invalid `{field}`, got {other:?}"),
    }
}

#[track_caller]
fn assert_transition<T: std::fmt::Debug>(r: Result<T, BookingError>) {
    match r {
        Err(BookingError::Transition(_)) => {}
        other => panic!("expected a refused transition, got {other:?}"),
    }
}

/// The ids of the policies that forbid `site` in a stored placement decision.
fn forbidding(decision: &Value, site: &str) -> Vec<String> {
    decision["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .filter(|c| c["site"] == site)
        .flat_map(|c| c["reasons"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["kind"] == "forbidden-by")
        .filter_map(|r| r["policy"].as_str().map(str::to_string))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The tests

on_both!(
    book_places_on_best_site_with_dependency,
    invalid_requests_store_nothing,
    approval_and_rejection,
    capacity_is_reserved_atomically,
    no_allowed_site_rejects_with_the_policy,
    c5_expiry_flags_affected_bookings,
    land_policy_flags_and_permits_are_refused,
    cancel_retain_delete,
    a_dependency_others_need_is_not_cancelled,
    a_booking_and_its_dependencies_run_where_all_may,
    a_dependency_that_needs_configuration_is_bound,
    approval_places_the_dependencies_too,
    a_land_asks_for_a_gaiax_label_level,
);

/// (a) The best allowed site, with the dependency on the same site and linked; a second
/// booking binds the existing dependency.
async fn book_places_on_best_site_with_dependency(store: Store) {
    let f = federation(store).await;
    let out = f
        .book(
            &spec(&f.unterhaching, "fachverfahren", "s", good_config()),
            t0(),
        )
        .await;
    assert_eq!(out.len(), 2, "the booking and its new `db`: {out:#?}");
    let (main, db) = (&out[0], &out[1]);
    assert_eq!(main.state, BookingState::Placed);
    // Own Land first; `he-1` is forbidden (private operator with a US parent).
    assert_eq!(main.site.as_deref(), Some("by-1"));
    assert_eq!(main.version.as_deref(), Some("1.0.0"));
    assert_eq!(db.offering, "db");
    assert_eq!(db.state, BookingState::Placed);
    assert_eq!(db.site, main.site, "a dependency runs on the same site");
    assert_eq!(db.dependency_of.as_deref(), Some(main.id.as_str()));
    assert_eq!(main.dependencies, vec![db.id.clone()]);
    let stored = f.get(&main.id).await;
    assert_eq!(stored.dependencies, vec![db.id.clone()]);
    // Lists carry the links too: the renderer reads a site's bookings from a list.
    let listed = f.all_bookings(&BookingFilter::default()).await;
    let listed_main = listed.iter().find(|b| b.id == main.id).expect("listed");
    assert_eq!(listed_main.dependencies, vec![db.id.clone()]);
    assert_eq!(
        f.get(&db.id).await.dependency_of.as_deref(),
        Some(main.id.as_str())
    );

    let decision = f
        .store
        .booking_decision(&main.id)
        .await
        .expect("booking_decision")
        .expect("a stored decision");
    assert_eq!(decision["site"], "by-1");
    let he = forbidding(&decision, "he-1");
    assert!(
        he.contains(&"federation/sovereignty/federation.special-categories-public-operator".into())
            && he.contains(
                &"federation/sovereignty/federation.special-categories-no-foreign-access".into()
            ),
        "{he:?}"
    );
    let explained = f
        .bookings
        .explain(&f.unterhaching, "fachverfahren", "s", t0())
        .await
        .expect("explain");
    assert_eq!(explained.site.as_deref(), Some("by-1"));
    assert_eq!(explained.verdict("sh-1").and_then(|v| v.rank), Some(2));

    // A second booking of the same organisation binds the existing `db`.
    let again = f
        .book(
            &spec(&f.unterhaching, "fachverfahren", "m", good_config()),
            t0(),
        )
        .await;
    assert_eq!(again.len(), 1, "no second `db`: {again:#?}");
    assert_eq!(again[0].site.as_deref(), Some("by-1"));
    assert_eq!(again[0].dependencies, vec![db.id.clone()]);
    let dbs = f
        .all_bookings(&BookingFilter {
            organisation: Some(f.unterhaching.clone()),
            offering: Some("db".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(dbs.len(), 1);

    // Another organisation gets its own `db`, in its own Land.
    let sh = f
        .book(
            &spec(&f.elmshorn, "fachverfahren", "s", good_config()),
            t0(),
        )
        .await;
    assert_eq!(sh.len(), 2);
    assert!(
        sh.iter().all(|b| b.site.as_deref() == Some("sh-1")),
        "{sh:#?}"
    );

    for b in [main, db] {
        assert_eq!(
            f.audit_actions(&format!("booking/{}", b.id)).await,
            vec!["booking.create"]
        );
    }
    f.check_invariants().await;
}

/// (b) Configuration, plan and channel are checked before anything is stored.
async fn invalid_requests_store_nothing(store: Store) {
    let f = federation(store).await;
    let head = f.audit_head().await;
    let org = f.unterhaching.clone();
    let book = |s: BookingSpec| {
        let bookings = f.bookings.clone();
        async move { bookings.book(ADMIN, &s, t0()).await }
    };

    assert_invalid(
        book(spec(
            &org,
            "fachverfahren",
            "s",
            json!({"contact": {"email": "keine-adresse"}}),
        ))
        .await,
        "/config/contact/email",
    );
    assert_invalid(
        book(spec(
            &org,
            "fachverfahren",
            "s",
            json!({"contact": {"email": 42}}),
        ))
        .await,
        "/config/contact/email",
    );
    assert_invalid(
        book(spec(&org, "fachverfahren", "s", json!({"contact": {}}))).await,
        "/config/contact",
    );
    assert_invalid(
        book(spec(&org, "fachverfahren", "xl", good_config())).await,
        "/plan",
    );
    let mut bad_channel = spec(&org, "fachverfahren", "s", good_config());
    bad_channel.channel = "beta".into();
    assert_invalid(book(bad_channel.clone()).await, "/channel");
    bad_channel.channel = "pinned:9.9.9".into();
    assert_invalid(book(bad_channel).await, "/channel");
    assert_invalid(
        book(spec(&org, "gibt-es-nicht", "s", good_config())).await,
        "/offering",
    );
    assert_invalid(
        book(spec("niemand", "portal", "s", json!({}))).await,
        "/organisation",
    );

    assert!(f.all_bookings(&BookingFilter::default()).await.is_empty());
    assert_eq!(
        f.audit_head().await,
        head,
        "no audit event for refused requests"
    );
    f.check_invariants().await;
}

/// (c) Approval: `awaiting-approval` → `placed`, or `rejected` with the reason.
async fn approval_and_rejection(store: Store) {
    let f = federation(store).await;
    let first = f
        .book(&spec(&f.unterhaching, "antrag", "s", json!({})), t0())
        .await;
    assert_eq!(first.len(), 1);
    let b = &first[0];
    assert_eq!(b.state, BookingState::AwaitingApproval);
    assert_eq!(b.site, None, "no site before approval");

    let approved = f
        .bookings
        .approve(ADMIN, &b.id, t0())
        .await
        .expect("approve");
    assert_eq!(approved.state, BookingState::Placed);
    assert_eq!(approved.site.as_deref(), Some("by-1"));
    assert_eq!(f.get(&b.id).await, approved);
    assert_transition(f.bookings.approve(ADMIN, &b.id, t0()).await);
    assert_transition(f.bookings.reject(ADMIN, &b.id, "zu spät", t0()).await);

    let second = f
        .book(&spec(&f.unterhaching, "antrag", "s", json!({})), t0())
        .await;
    let rejected = f
        .bookings
        .reject(ADMIN, &second[0].id, "kein Bedarf in der Gemeinde", t0())
        .await
        .expect("reject");
    assert_eq!(rejected.state, BookingState::Rejected);
    assert_eq!(
        rejected.reason.as_deref(),
        Some("kein Bedarf in der Gemeinde")
    );
    assert_eq!(rejected.site, None);
    assert_transition(f.bookings.approve(ADMIN, &second[0].id, t0()).await);
    assert_invalid(
        f.bookings.reject(ADMIN, &second[0].id, "  ", t0()).await,
        "/reason",
    );

    assert_eq!(
        f.audit_actions(&format!("booking/{}", b.id)).await,
        vec!["booking.create", "booking.approve"]
    );
    assert_eq!(
        f.audit_actions(&format!("booking/{}", second[0].id)).await,
        vec!["booking.create", "booking.reject"]
    );
    f.check_invariants().await;
}

/// (d) N+3 concurrent bookings on a site with room for N: exactly N land there, the
/// rest elsewhere or rejected for capacity; no site is ever overbooked.
async fn capacity_is_reserved_atomically(store: Store) {
    const N: u64 = 4;
    let f = federation(store).await;
    let far = NaiveDate::from_ymd_opt(2028, 12, 31).expect("a date");
    let caps = ["burst"];
    for s in [
        site(
            "by-burst",
            "it-bayern",
            "DE-BY",
            far,
            &caps,
            times(small_plan(), N),
        ),
        site(
            "sh-burst",
            "dataport",
            "DE-SH",
            far,
            &caps,
            times(small_plan(), 1),
        ),
    ] {
        f.store.put_site(ADMIN, &s, t0()).await.expect("put_site");
    }
    certify_stated(&f.store, t0()).await;
    let vendor = f.bayern.clone();
    publish(
        &f.store,
        &offering(
            "burst",
            &vendor,
            &["internal"],
            json!({"requirements": {"capabilities": ["burst"]}}),
        ),
    )
    .await;

    let tasks: Vec<_> = (0..N + 3)
        .map(|_| {
            let bookings = f.bookings.clone();
            let s = spec(&f.unterhaching, "burst", "s", json!({}));
            tokio::spawn(async move { bookings.book(ADMIN, &s, t0()).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        let mut b = t.await.expect("the task").expect("book");
        assert_eq!(b.len(), 1);
        out.push(b.remove(0));
    }
    let on = |site: &str| {
        out.iter()
            .filter(|b| b.state == BookingState::Placed && b.site.as_deref() == Some(site))
            .count() as u64
    };
    assert_eq!(on("by-burst"), N, "{out:#?}");
    assert_eq!(on("sh-burst"), 1, "{out:#?}");
    let rejected: Vec<&Booking> = out
        .iter()
        .filter(|b| b.state == BookingState::Rejected)
        .collect();
    assert_eq!(rejected.len(), 2, "{out:#?}");
    for b in rejected {
        let reason = b.reason.as_deref().unwrap_or_default();
        assert!(reason.contains("not enough free capacity"), "{reason}");
        let decision = f
            .store
            .booking_decision(&b.id)
            .await
            .expect("booking_decision")
            .expect("a stored decision");
        assert!(
            decision.to_string().contains("insufficient-capacity"),
            "{decision}"
        );
    }
    // What is stored, summed by hand, fits too.
    for (site, capacity) in [("by-burst", N), ("sh-burst", 1)] {
        let held = f
            .all_bookings(&BookingFilter {
                site: Some(site.into()),
                ..Default::default()
            })
            .await
            .into_iter()
            .filter(|b| b.state.holds_capacity())
            .count() as u64;
        assert!(held <= capacity, "{held} bookings on `{site}`");
    }
    f.check_invariants().await;
}

/// A Land asks for Gaia-X label level 3: the site of the provider with a US parent
/// (level 2: control and jurisdiction reach outside the EU/EEA) is forbidden by it,
/// the others are not; once a site's BSI C5 attestation expires it falls to level 1.
async fn a_land_asks_for_a_gaiax_label_level(store: Store) {
    let f = federation(store).await;
    let land = PolicySubmission {
        name: "souveraen".into(),
        layer: PolicyLayer::Land,
        owner: Some(f.bayern.clone()),
        text: r#"@id("gaia-x-stufe-3")
@description("bayerische Behörden nutzen nur Rechenzentren mit Gaia-X-Label Stufe 3")
forbid (principal, action == Verbund::Action::"place", resource)
unless { resource.gaiax_level >= 3 };"#
            .into(),
    };
    f.bookings
        .submit_policy(ADMIN, &land, t0())
        .await
        .expect("submit_policy");
    let rule = format!("land/{}/souveraen/gaia-x-stufe-3", f.bayern);
    let out = f
        .book(&spec(&f.unterhaching, "portal", "s", json!({})), t0())
        .await;
    let decision = f
        .store
        .booking_decision(&out[0].id)
        .await
        .expect("booking_decision")
        .expect("a stored decision");
    assert_eq!(forbidding(&decision, "he-1"), vec![rule.clone()]);
    assert_eq!(forbidding(&decision, "sh-1"), Vec::<String>::new());
    assert!(!forbidding(&decision, "by-1").contains(&rule), "{decision}");
    assert_ne!(out[0].site.as_deref(), Some("he-1"), "{:?}", out[0]);
    // After by-1's attestation expired, only sh-1 meets level 3.
    let later = c5_last_day() + chrono::Duration::days(1);
    let at = later.and_hms_opt(12, 0, 0).expect("noon").and_utc();
    let decision = f
        .bookings
        .explain(&f.unterhaching, "portal", "s", at)
        .await
        .expect("explain");
    let decision = serde_json::to_value(&decision).expect("json");
    assert!(forbidding(&decision, "by-1").contains(&rule), "{decision}");
    assert_eq!(forbidding(&decision, "sh-1"), Vec::<String>::new());
}

/// (e) No allowed site: rejected, and the reason names the forbidding policies.
async fn no_allowed_site_rejects_with_the_policy(store: Store) {
    let f = federation(store).await;
    let land = PolicySubmission {
        name: "daten-in-bayern".into(),
        layer: PolicyLayer::Land,
        owner: Some(f.bayern.clone()),
        text: r#"@id("nur-bayern")
@description("bayerische Behörden nutzen nur Rechenzentren in Bayern")
forbid (principal, action == Verbund::Action::"place", resource)
when { resource.region != "DE-BY" };"#
            .into(),
    };
    let own = PolicySubmission {
        name: "eigene-wahl".into(),
        layer: PolicyLayer::Organisation,
        owner: Some(f.unterhaching.clone()),
        text: r#"@id("kein-it-bayern")
@description("Unterhaching nutzt IT-Bayern nicht")
forbid (principal, action == Verbund::Action::"place", resource)
when { resource.provider == "it-bayern" };"#
            .into(),
    };
    for p in [&land, &own] {
        f.bookings
            .submit_policy(ADMIN, p, t0())
            .await
            .expect("submit_policy");
    }
    let out = f
        .book(&spec(&f.unterhaching, "portal", "s", json!({})), t0())
        .await;
    let b = &out[0];
    assert_eq!(b.state, BookingState::Rejected);
    assert_eq!(b.site, None);
    let land_id = format!("land/{}/daten-in-bayern/nur-bayern", f.bayern);
    let own_id = format!("organisation/{}/eigene-wahl/kein-it-bayern", f.unterhaching);
    let reason = b.reason.as_deref().unwrap_or_default();
    for needle in [
        land_id.as_str(),
        own_id.as_str(),
        "bayerische Behörden nutzen nur Rechenzentren in Bayern",
        "Unterhaching nutzt IT-Bayern nicht",
    ] {
        assert!(reason.contains(needle), "`{needle}` missing in `{reason}`");
    }
    let decision = f
        .store
        .booking_decision(&b.id)
        .await
        .expect("booking_decision")
        .expect("a stored decision");
    assert_eq!(forbidding(&decision, "by-1"), vec![own_id.clone()]);
    assert_eq!(forbidding(&decision, "sh-1"), vec![land_id.clone()]);

    // The Kreis above Unterhaching is bound by the Land, not by Unterhaching's own rule.
    let kreis = f
        .book(&spec(&f.lk_muenchen, "portal", "s", json!({})), t0())
        .await;
    assert_eq!(kreis[0].site.as_deref(), Some("by-1"));
    // Another Land's organisations are bound by neither.
    let elsewhere = f
        .book(&spec(&f.elmshorn, "portal", "s", json!({})), t0())
        .await;
    assert_eq!(elsewhere[0].site.as_deref(), Some("sh-1"));
    f.check_invariants().await;
}

/// (f) A BSI C5 type 2 attestation expires: in one re-evaluation, every booking with
/// special categories of personal data on that site is flagged, with a compliant target
/// proposed and the booking left where it is; renewal restores compliance.
async fn c5_expiry_flags_affected_bookings(store: Store) {
    let f = federation(store).await;
    let now = t0();
    let a = f
        .book(
            &spec(&f.unterhaching, "fachverfahren", "s", good_config()),
            now,
        )
        .await;
    let b = f
        .book(
            &spec(&f.lk_muenchen, "fachverfahren", "s", good_config()),
            now,
        )
        .await;
    let portal = f
        .book(&spec(&f.unterhaching, "portal", "s", json!({})), now)
        .await;
    let special = [a[0].clone(), b[0].clone()];
    let unaffected = [a[1].clone(), b[1].clone(), portal[0].clone()];
    for x in special.iter().chain(&unaffected) {
        assert_eq!(x.site.as_deref(), Some("by-1"), "{x:#?}");
    }

    // While the attestation is valid, all comply and nothing is recorded.
    let before = f
        .bookings
        .reevaluate(COMPLIANCE, now)
        .await
        .expect("reevaluate");
    assert_eq!(
        (before.checked, before.noncompliant, before.changed),
        (5, 0, 0)
    );

    // The day after its last valid day: one call flags both affected bookings.
    let after_expiry = at(c5_last_day()) + Duration::days(1);
    let summary = f
        .bookings
        .reevaluate(COMPLIANCE, after_expiry)
        .await
        .expect("reevaluate");
    assert_eq!(
        (summary.checked, summary.noncompliant, summary.changed),
        (5, 2, 2),
        "{summary:?}"
    );
    for x in &special {
        let now = f.get(&x.id).await;
        let c = now.compliance.clone().expect("a compliance verdict");
        assert!(!c.compliant);
        assert_eq!(c.checked_at, after_expiry);
        assert!(
            c.reasons.iter().any(|r| r.contains("BSI C5 type 2")
                && r.contains("federation/sovereignty/federation.special-categories-c5-type2")),
            "{:?}",
            c.reasons
        );
        assert_eq!(
            c.proposed_site.as_deref(),
            Some("sh-1"),
            "the other allowed site"
        );
        assert_eq!(now.site.as_deref(), Some("by-1"), "never moved silently");
        assert_eq!(now.state, BookingState::Placed);
        assert_eq!(
            f.audit_actions(&format!("booking/{}", x.id)).await,
            vec!["booking.create", "booking.compliance.flag"]
        );
    }
    for x in &unaffected {
        let now = f.get(&x.id).await;
        assert!(
            now.compliance.as_ref().is_none_or(|c| c.compliant),
            "{now:#?}"
        );
    }
    assert_eq!(f.noncompliant_count().await, 2);
    let flagged = f
        .all_bookings(&BookingFilter {
            noncompliant: true,
            ..Default::default()
        })
        .await;
    let mut flagged: Vec<String> = flagged.into_iter().map(|b| b.id).collect();
    flagged.sort();
    let mut expected: Vec<String> = special.iter().map(|b| b.id.clone()).collect();
    expected.sort();
    assert_eq!(flagged, expected);

    // Nothing changed since: nothing is recorded again.
    let head = f.audit_head().await;
    let again = f
        .bookings
        .reevaluate(COMPLIANCE, after_expiry + Duration::hours(1))
        .await
        .expect("reevaluate");
    assert_eq!((again.noncompliant, again.changed), (2, 0));
    assert_eq!(f.audit_head().await, head);

    // Renewing the attestation restores compliance.
    let renewed = site(
        "by-1",
        "it-bayern",
        "DE-BY",
        NaiveDate::from_ymd_opt(2029, 3, 10).expect("a date"),
        &["storage:rwx", "ingress:nginx"],
        big(),
    );
    f.store
        .put_site(ADMIN, &renewed, after_expiry + Duration::hours(2))
        .await
        .expect("put_site");
    certify_stated(&f.store, after_expiry + Duration::hours(2)).await;
    let restored = f
        .bookings
        .reevaluate(COMPLIANCE, after_expiry + Duration::hours(3))
        .await
        .expect("reevaluate");
    assert_eq!((restored.noncompliant, restored.changed), (0, 2));
    for x in &special {
        let c = f.get(&x.id).await.compliance.expect("a verdict");
        assert!(
            c.compliant && c.reasons.is_empty() && c.proposed_site.is_none(),
            "{c:?}"
        );
        assert_eq!(
            f.audit_actions(&format!("booking/{}", x.id)).await,
            vec![
                "booking.create",
                "booking.compliance.flag",
                "booking.compliance.restore"
            ]
        );
    }
    assert_eq!(f.noncompliant_count().await, 0);
    f.check_invariants().await;
}

/// (f) A Land policy submitted later flags the placements it now forbids; a Land
/// `permit` is refused and not stored.
async fn land_policy_flags_and_permits_are_refused(store: Store) {
    let f = federation(store).await;
    let here = f
        .book(&spec(&f.unterhaching, "portal", "s", json!({})), t0())
        .await;
    let there = f
        .book(&spec(&f.elmshorn, "portal", "s", json!({})), t0())
        .await;
    assert_eq!(here[0].site.as_deref(), Some("by-1"));
    assert_eq!(there[0].site.as_deref(), Some("sh-1"));

    let permit = PolicySubmission {
        name: "alles-erlaubt".into(),
        layer: PolicyLayer::Land,
        owner: Some(f.bayern.clone()),
        text: r#"permit (principal, action == Verbund::Action::"place", resource);"#.into(),
    };
    match f.bookings.submit_policy(ADMIN, &permit, t0()).await {
        Err(BookingError::Invalid(i)) => {
            assert_eq!(i.field, "/text");
            assert!(i.message.contains("permit"), "{i}");
        }
        other => panic!("expected the permit to be refused, got {other:?}"),
    }
    let id = document_id(Some(&f.bayern), "alles-erlaubt");
    assert!(f.store.policy(&id).await.expect("policy").is_none());

    let forbid = PolicySubmission {
        name: "kein-it-bayern".into(),
        layer: PolicyLayer::Land,
        owner: Some(f.bayern.clone()),
        text: r#"@id("ohne-it-bayern")
@description("Bayern verlagert alles aus IT-Bayern")
forbid (principal, action == Verbund::Action::"place", resource)
when { resource.provider == "it-bayern" };"#
            .into(),
    };
    f.bookings
        .submit_policy(ADMIN, &forbid, t0())
        .await
        .expect("submit_policy");
    let summary = f
        .bookings
        .reevaluate(COMPLIANCE, t0() + Duration::hours(1))
        .await
        .expect("reevaluate");
    assert_eq!(
        (summary.noncompliant, summary.changed),
        (1, 1),
        "{summary:?}"
    );
    let flagged = f.get(&here[0].id).await;
    let c = flagged.compliance.expect("a verdict");
    assert!(!c.compliant);
    let policy = format!("land/{}/kein-it-bayern/ohne-it-bayern", f.bayern);
    assert!(
        c.reasons.iter().any(|r| r.contains(&policy)),
        "{:?}",
        c.reasons
    );
    let proposed = c.proposed_site.expect("a proposed site");
    assert!(["sh-1", "he-1"].contains(&proposed.as_str()), "{proposed}");
    assert_eq!(
        flagged.site.as_deref(),
        Some("by-1"),
        "never moved silently"
    );
    // Schleswig-Holstein's booking is not bound by Bayern's rule.
    assert!(f
        .get(&there[0].id)
        .await
        .compliance
        .is_none_or(|c| c.compliant));
    assert_eq!(f.noncompliant_count().await, 1);
    f.check_invariants().await;
}

/// (g) Cancel → `cancelling` (still holding capacity) → sweep → `retained` (capacity
/// freed) → sweep after the retention period → `deleted`; every step audited.
async fn cancel_retain_delete(store: Store) {
    let f = federation(store).await;
    let far = NaiveDate::from_ymd_opt(2028, 12, 31).expect("a date");
    let solo = site("solo-1", "dataport", "DE-SH", far, &["solo"], small_plan());
    f.store
        .put_site(ADMIN, &solo, t0())
        .await
        .expect("put_site");
    certify_stated(&f.store, t0()).await;
    let vendor = f.bayern.clone();
    let offer = offering(
        "solo",
        &vendor,
        &["internal"],
        json!({"requirements": {"capabilities": ["solo"]}, "retention_days": 30}),
    );
    publish(&f.store, &offer).await;
    let s = spec(&f.elmshorn, "solo", "s", json!({}));

    let first = f.book(&s, t0()).await.remove(0);
    assert_eq!(first.site.as_deref(), Some("solo-1"));
    let full = f.book(&s, t0()).await.remove(0);
    assert_eq!(full.state, BookingState::Rejected, "the site is full");

    let now = t0() + Duration::hours(1);
    let cancelled = f
        .bookings
        .cancel(ADMIN, &first.id, now)
        .await
        .expect("cancel");
    assert_eq!(cancelled.state, BookingState::Cancelling);
    assert_eq!(
        f.book(&s, now).await.remove(0).state,
        BookingState::Rejected,
        "a cancelling booking still holds its capacity"
    );

    let moved = f
        .bookings
        .sweep("system/lifecycle", now)
        .await
        .expect("sweep");
    assert_eq!(moved, 1);
    assert_eq!(f.get(&first.id).await.state, BookingState::Retained);
    let next = f.book(&s, now).await.remove(0);
    assert_eq!(
        next.state,
        BookingState::Placed,
        "the freed capacity is used again"
    );
    assert_eq!(next.site.as_deref(), Some("solo-1"));

    let almost = now + Duration::days(30) - Duration::minutes(1);
    assert_eq!(
        f.bookings
            .sweep("system/lifecycle", almost)
            .await
            .expect("sweep"),
        0
    );
    assert_eq!(f.get(&first.id).await.state, BookingState::Retained);
    let later = now + Duration::days(i64::from(offer.retention_days) + 1);
    assert_eq!(
        f.bookings
            .sweep("system/lifecycle", later)
            .await
            .expect("sweep"),
        1
    );
    assert_eq!(f.get(&first.id).await.state, BookingState::Deleted);
    assert_eq!(f.get(&next.id).await.state, BookingState::Placed);
    assert_transition(f.bookings.cancel(ADMIN, &first.id, later).await);

    assert_eq!(
        f.audit_actions(&format!("booking/{}", first.id)).await,
        vec![
            "booking.create",
            "booking.cancel",
            "booking.retain",
            "booking.purge"
        ]
    );
    f.check_invariants().await;
}

/// A dependency is not cancelled while the bookings that depend on it run: 409 naming
/// them, nothing changed; once they are cancelled it goes too.
async fn a_dependency_others_need_is_not_cancelled(store: Store) {
    let f = federation(store).await;
    let s = spec(&f.unterhaching, "fachverfahren", "s", good_config());
    let out = f.book(&s, t0()).await;
    let (main, db) = (&out[0], &out[1]);
    // A second booking of the organisation binds the same `db`.
    let second = f.book(&s, t0()).await.remove(0);
    assert_eq!(second.dependencies, vec![db.id.clone()]);

    let refused = f.bookings.cancel(ADMIN, &db.id, t0()).await;
    let Err(BookingError::Store(StoreError::Conflict(message))) = refused else {
        panic!("not refused: {refused:?}");
    };
    for needed in [&main.id, &second.id] {
        assert!(message.contains(needed.as_str()), "{message}");
    }
    assert!(message.contains("`fachverfahren`"), "{message}");
    assert_eq!(f.get(&db.id).await.state, BookingState::Placed);
    assert_eq!(
        f.audit_actions(&format!("booking/{}", db.id)).await,
        vec!["booking.create"]
    );

    for dependent in [&main.id, &second.id] {
        f.bookings
            .cancel(ADMIN, dependent, t0())
            .await
            .expect("cancel a dependent");
    }
    let gone = f
        .bookings
        .cancel(ADMIN, &db.id, t0())
        .await
        .expect("cancel");
    assert_eq!(gone.state, BookingState::Cancelling);
    f.check_invariants().await;
}

/// `sh-1` is the only site with the capability `postgres-operator`, which `pg` needs;
/// `app` (personal data) needs `pg`.
async fn with_operator_database(f: &Fed) {
    let far = NaiveDate::from_ymd_opt(2028, 12, 31).expect("a date");
    let caps = ["storage:rwx", "ingress:nginx", "postgres-operator"];
    f.store
        .put_site(
            ADMIN,
            &site("sh-1", "dataport", "DE-SH", far, &caps, big()),
            t0(),
        )
        .await
        .expect("put_site");
    certify_stated(&f.store, t0()).await;
    let vendor = f.bayern.clone();
    let needs = |caps: &[&str]| json!({"requirements": {"capabilities": caps}});
    publish(
        &f.store,
        &offering("pg", &vendor, &["personal"], needs(&["postgres-operator"])),
    )
    .await;
    publish(
        &f.store,
        &offering(
            "app",
            &vendor,
            &["personal"],
            json!({"dependencies": [{"offering": "pg"}]}),
        ),
    )
    .await;
    publish(
        &f.store,
        &offering("gpu-only", &vendor, &["personal"], needs(&["gpu"])),
    )
    .await;
    publish(
        &f.store,
        &offering(
            "app-gpu",
            &vendor,
            &["personal"],
            json!({"dependencies": [{"offering": "gpu-only"}]}),
        ),
    )
    .await;
}

/// Issue 16 (Flensburg's OpenProject and Keycloak, Lübben's Nextcloud): the booking's
/// best site does not allow its dependency, another site allows both, so both go there
/// together; where no site allows both, the booking is rejected and says which
/// dependency is in the way.
async fn a_booking_and_its_dependencies_run_where_all_may(store: Store) {
    let f = federation(store).await;
    with_operator_database(&f).await;
    let out = f
        .book(&spec(&f.unterhaching, "app", "s", json!({})), t0())
        .await;
    assert_eq!(out.len(), 2, "`app` and its new `pg`: {out:#?}");
    let (app, pg) = (&out[0], &out[1]);
    assert_eq!(app.state, BookingState::Placed, "{app:#?}");
    assert_eq!(app.site.as_deref(), Some("sh-1"));
    assert_eq!(pg.offering, "pg");
    assert_eq!(pg.site.as_deref(), Some("sh-1"));
    assert_eq!(app.dependencies, vec![pg.id.clone()]);
    let decision = f
        .store
        .booking_decision(&app.id)
        .await
        .expect("booking_decision")
        .expect("a stored decision");
    assert_eq!(
        decision["site"], "sh-1",
        "the decision names the joint site"
    );
    let by = decision["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .find(|c| c["site"] == "by-1")
        .expect("a verdict on by-1");
    assert_eq!(
        (&by["allowed"], &by["rank"]),
        (&json!(true), &json!(1)),
        "alone, `app` would run in its own Land: {by}"
    );

    let rejected = f
        .book(&spec(&f.unterhaching, "app-gpu", "s", json!({})), t0())
        .await;
    assert_eq!(rejected.len(), 1, "no dependency is created: {rejected:#?}");
    assert_eq!(rejected[0].state, BookingState::Rejected);
    assert_eq!(rejected[0].site, None);
    assert!(rejected[0].dependencies.is_empty());
    let reason = rejected[0].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("`gpu-only`") && reason.contains("no site allows both"),
        "{reason}"
    );
    f.check_invariants().await;
}

/// Issue 16 (Matrix and Bauantrag online): a dependency that needs its own configuration
/// is not created with the booking; once the organisation booked it, the booking binds
/// it on its site, and one that may not run there is rejected saying so.
async fn a_dependency_that_needs_configuration_is_bound(store: Store) {
    let f = federation(store).await;
    with_operator_database(&f).await;
    let vendor = f.bayern.clone();
    let realm = json!({
        "type": "object",
        "required": ["realm"],
        "properties": {"realm": {"type": "string"}}
    });
    publish(
        &f.store,
        &offering(
            "sso",
            &vendor,
            &["personal"],
            json!({"config_schema": realm}),
        ),
    )
    .await;
    publish(
        &f.store,
        &offering(
            "chat",
            &vendor,
            &["personal"],
            json!({"dependencies": [{"offering": "pg"}, {"offering": "sso"}]}),
        ),
    )
    .await;

    let head = f.audit_head().await;
    let first = f
        .bookings
        .book(ADMIN, &spec(&f.unterhaching, "chat", "s", json!({})), t0())
        .await;
    match &first {
        Err(BookingError::Invalid(i)) => {
            assert_eq!(i.field, "/offering");
            assert!(
                i.message.contains("`sso`") && i.message.contains("book it first"),
                "{i}"
            );
        }
        other => panic!("expected `book it first`, got {other:?}"),
    }
    assert_eq!(f.audit_head().await, head, "nothing stored");

    // Elmshorn books `sso` in its own Land, where `pg` may run too: `chat` binds it.
    let sso = f
        .book(
            &spec(&f.elmshorn, "sso", "s", json!({"realm": "elmshorn"})),
            t0(),
        )
        .await;
    assert_eq!(sso[0].site.as_deref(), Some("sh-1"));
    let chat = f
        .book(&spec(&f.elmshorn, "chat", "s", json!({})), t0())
        .await;
    assert_eq!(
        chat.len(),
        2,
        "`chat` and its new `pg`, no second `sso`: {chat:#?}"
    );
    assert_eq!(chat[0].state, BookingState::Placed, "{chat:#?}");
    assert_eq!(chat[0].site.as_deref(), Some("sh-1"));
    assert_eq!(chat[1].offering, "pg");
    assert!(chat[0].dependencies.contains(&sso[0].id), "{chat:#?}");
    assert!(chat[0].dependencies.contains(&chat[1].id), "{chat:#?}");

    // Unterhaching's `sso` runs in Bayern, where `pg` may not: `chat` cannot run with it.
    let sso = f
        .book(
            &spec(
                &f.unterhaching,
                "sso",
                "s",
                json!({"realm": "unterhaching"}),
            ),
            t0(),
        )
        .await;
    assert_eq!(sso[0].site.as_deref(), Some("by-1"));
    let chat = f
        .book(&spec(&f.unterhaching, "chat", "s", json!({})), t0())
        .await;
    assert_eq!(chat.len(), 1, "{chat:#?}");
    assert_eq!(chat[0].state, BookingState::Rejected);
    let reason = chat[0].reason.clone().unwrap_or_default();
    // On `by-1` `pg` may not run; on `sh-1`, where it may, there is no `sso` to bind.
    assert!(
        reason.contains("no site allows both `chat`") && reason.contains("`pg` may not run"),
        "{reason}"
    );
    assert_eq!(
        f.all_bookings(&BookingFilter {
            organisation: Some(f.unterhaching.clone()),
            offering: Some("sso".into()),
            ..Default::default()
        })
        .await
        .len(),
        1,
        "no `sso` is created"
    );
    f.check_invariants().await;
}

/// Issue 16 (Wohnsitzanmeldung): approving a booking places it as booking places one
/// that needs no approval: with its dependencies on the same site, created or bound,
/// linked both ways and audited, all in one transaction.
async fn approval_places_the_dependencies_too(store: Store) {
    let f = federation(store).await;
    publish(
        &f.store,
        &offering(
            "meldung",
            &f.bayern,
            &["personal"],
            json!({"requires_approval": true, "dependencies": [{"offering": "db"}]}),
        ),
    )
    .await;
    let booked = f
        .book(&spec(&f.unterhaching, "meldung", "s", json!({})), t0())
        .await;
    assert_eq!(
        booked.len(),
        1,
        "no dependency before approval: {booked:#?}"
    );
    let main = &booked[0];
    assert_eq!(main.state, BookingState::AwaitingApproval);
    let dbs = BookingFilter {
        organisation: Some(f.unterhaching.clone()),
        offering: Some("db".into()),
        ..Default::default()
    };
    assert!(f.all_bookings(&dbs).await.is_empty());

    let approved = f
        .bookings
        .approve(ADMIN, &main.id, t0())
        .await
        .expect("approve");
    assert_eq!(approved.state, BookingState::Placed);
    assert_eq!(approved.site.as_deref(), Some("by-1"));
    let db = f.all_bookings(&dbs).await;
    assert_eq!(db.len(), 1, "approval creates the `db`: {db:#?}");
    let db = &db[0];
    assert_eq!(db.state, BookingState::Placed);
    assert_eq!(db.site, approved.site, "on the same site");
    assert_eq!(db.dependency_of.as_deref(), Some(main.id.as_str()));
    assert_eq!(approved.dependencies, vec![db.id.clone()]);
    assert_eq!(f.get(&main.id).await, approved);
    assert_eq!(
        f.audit_actions(&format!("booking/{}", main.id)).await,
        vec!["booking.create", "booking.approve"]
    );
    assert_eq!(
        f.audit_actions(&format!("booking/{}", db.id)).await,
        vec!["booking.create"]
    );

    // A second approval binds the `db` that is there.
    let second = f
        .book(&spec(&f.unterhaching, "meldung", "m", json!({})), t0())
        .await;
    let approved = f
        .bookings
        .approve(ADMIN, &second[0].id, t0())
        .await
        .expect("approve");
    assert_eq!(approved.dependencies, vec![db.id.clone()]);
    assert_eq!(f.all_bookings(&dbs).await.len(), 1, "no second `db`");
    f.check_invariants().await;
}
