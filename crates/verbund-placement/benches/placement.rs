//! Placement at the scale of Germany: 100,000 bookings of the 10,787 real municipalities
//! (GV100AD, from `../shared/data/`) over 60 sites, decided by the Cedar policies of
//! three layers; then the re-evaluation of every placement after a policy change,
//! through the store (SQLite, and PostgreSQL when reachable).
//!
//! `cargo bench -p verbund-placement --bench placement` runs the full scenario;
//! under `cargo test` (no `--bench` argument) it runs a small smoke version.

use std::collections::BTreeSet;
use std::time::Instant;

use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::json;
use verbund_domain::booking::{Booking, BookingState};
use verbund_domain::catalog::{Category, DataClass, OfferingSpec, Package, Plan, VersionSpec};
use verbund_domain::directory::{
    Certification, Delivery, Environment, Level, Location, Organisation, OrganisationSpec,
    ProviderSpec, Resources, Seat, SiteSpec,
};
use verbund_placement::{Bookings, PolicySubmission};
use verbund_policy::{Candidate, Need, Placer, PolicyBook, PolicyDocument, PolicyLayer};
use verbund_store::{NewBooking, Store};

const REGIONS: [&str; 16] = [
    "DE-SH", "DE-HH", "DE-NI", "DE-HB", "DE-NW", "DE-HE", "DE-RP", "DE-BW", "DE-BY", "DE-SL",
    "DE-BE", "DE-BB", "DE-MV", "DE-SN", "DE-ST", "DE-TH",
];

fn gv100ad() -> Vec<verbund_domain::directory::KeyedOrganisation> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/GV100AD_301121.ASC"
    );
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    verbund_import::gv100ad::parse(std::io::BufReader::new(file))
        .expect("GV100AD parses")
        .organisations
}

/// The directory in memory, ids = ARS, Bund = "bund".
fn organisations(records: &[verbund_domain::directory::KeyedOrganisation]) -> Vec<Organisation> {
    let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut out = vec![Organisation {
        id: "bund".into(),
        name: "Bundesrepublik Deutschland".into(),
        level: Level::Bund,
        ars: None,
        ags: None,
        parent: None,
        land: None,
        population: None,
        created_at: t,
        updated_at: t,
    }];
    for r in records {
        out.push(Organisation {
            id: r.ars.clone(),
            name: r.name.clone(),
            level: r.level,
            ars: Some(r.ars.clone()),
            ags: r.ags.clone(),
            parent: Some(r.parent_ars.clone().unwrap_or_else(|| "bund".into())),
            land: Some(r.ars[..2].to_string()),
            population: r.population,
            created_at: t,
            updated_at: t,
        });
    }
    out
}

fn provider(i: usize) -> ProviderSpec {
    ProviderSpec {
        name: format!("provider-{i}"),
        display_name: format!("Provider {i}"),
        legal_form: if i % 5 == 4 { "GmbH" } else { "AöR" }.into(),
        public_law: i % 5 != 4,
        seat: Seat {
            city: "Berlin".into(),
            country: "DE".into(),
        },
        jurisdictions: ["DE".to_string()].into(),
        parent_companies: if i % 5 == 4 {
            vec![verbund_domain::directory::ParentCompany {
                name: "Global".into(),
                jurisdiction: "US".into(),
            }]
        } else {
            vec![]
        },
    }
}

fn site(i: usize) -> SiteSpec {
    let valid = NaiveDate::from_ymd_opt(2028, 12, 31).unwrap();
    let mut certifications = vec![Certification {
        scheme: "iso27001".into(),
        level: Some("it-grundschutz".into()),
        valid_until: valid,
    }];
    if i.is_multiple_of(3) {
        certifications.push(Certification {
            scheme: "bsi-c5".into(),
            level: Some("type2".into()),
            valid_until: valid,
        });
    }
    SiteSpec {
        name: format!("site-{i:02}"),
        display_name: format!("Site {i}"),
        provider: format!("provider-{}", i % 20),
        location: Location {
            country: "DE".into(),
            region: REGIONS[i % 16].into(),
            city: format!("City {i}"),
            latitude: None,
            longitude: None,
        },
        certifications,
        kubernetes_version: format!("1.{}", 29 + i % 4),
        capabilities: ["storage:rwo".to_string(), "ingress:nginx".to_string()].into(),
        capacity: Resources {
            cpu_millis: 4_000_000,
            memory_mib: 16_000_000,
            storage_gib: 4_000_000,
        },
        environments: [Environment::Test, Environment::Prod].into(),
        delivery: [Delivery::Flux, Delivery::Argocd, Delivery::Agent][i % 3],
    }
}

fn offering(name: &str, classes: &[DataClass]) -> OfferingSpec {
    OfferingSpec {
        name: name.into(),
        display_name: name.into(),
        description: String::new(),
        vendor: "bund".into(),
        category: Category::Saas,
        ozg_id: None,
        data_classes: classes.iter().copied().collect::<BTreeSet<_>>(),
        requirements: Default::default(),
        plans: vec![Plan {
            name: "s".into(),
            display_name: "S".into(),
            resources: Resources {
                cpu_millis: 500,
                memory_mib: 1024,
                storage_gib: 10,
            },
            replicas: 1,
            autoscaling: None,
            monthly_price_cents: 1000,
        }],
        config_schema: json!({"type": "object"}),
        dependencies: vec![],
        smoke_test: None,
        requires_approval: false,
        retention_days: 30,
    }
}

fn offerings() -> Vec<OfferingSpec> {
    vec![
        offering("website", &[DataClass::Public]),
        offering("collaboration", &[DataClass::Internal, DataClass::Personal]),
        offering(
            "meldewesen",
            &[DataClass::Personal, DataClass::SpecialCategories],
        ),
    ]
}

/// Federation defaults, a restriction for Bayern and one per Land for some Kreise.
fn policies(orgs: &[Organisation]) -> Vec<PolicyDocument> {
    let mut docs = PolicyBook::defaults().expect("defaults");
    docs.push(PolicyDocument {
        name: "daten-in-bayern".into(),
        layer: PolicyLayer::Land,
        owner: Some("09".into()),
        text: r#"@id("nur-bayern") forbid (principal, action == Verbund::Action::"place", resource) when { context.personal && resource.region != "DE-BY" };"#.into(),
    });
    for k in orgs.iter().filter(|o| o.level == Level::Kreis).step_by(40) {
        docs.push(PolicyDocument {
            name: "keine-privaten".into(),
            layer: PolicyLayer::Organisation,
            owner: Some(k.id.clone()),
            text: r#"@id("nur-oeffentlich") forbid (principal, action == Verbund::Action::"place", resource) when { !resource.public_law };"#.into(),
        });
    }
    docs
}

fn chain_of(orgs: &std::collections::HashMap<String, Organisation>, id: &str) -> Vec<String> {
    let mut chain = vec![id.to_string()];
    let mut cur = orgs.get(id).and_then(|o| o.parent.clone());
    while let Some(p) = cur {
        cur = orgs.get(&p).and_then(|o| o.parent.clone());
        chain.push(p);
    }
    chain
}

fn decisions(full: bool) {
    let records = gv100ad();
    let orgs = organisations(&records);
    let by_id: std::collections::HashMap<String, Organisation> =
        orgs.iter().map(|o| (o.id.clone(), o.clone())).collect();
    let gemeinden: Vec<&Organisation> =
        orgs.iter().filter(|o| o.level == Level::Gemeinde).collect();
    let book = PolicyBook::new(&policies(&orgs)).expect("policies compile");
    let candidates: Vec<Candidate> = (0..60)
        .map(|i| Candidate {
            site: site(i),
            provider: provider(i % 20),
            free: site(i).capacity,
        })
        .collect();
    let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let t = Instant::now();
    let mut placer = Placer::new(book, &orgs, candidates, today).expect("placer");
    let setup = t.elapsed();
    let offerings = offerings();
    let n = if full { 100_000 } else { 2_000 };
    let t = Instant::now();
    let (mut placed, mut rejected) = (0u64, 0u64);
    for i in 0..n {
        let org = gemeinden[i % gemeinden.len()];
        let o = &offerings[i % offerings.len()];
        let chain = chain_of(&by_id, &org.id);
        let d = placer
            .decide(
                org,
                &chain,
                Need {
                    offering: o,
                    plan: &o.plans[0],
                },
                &[],
            )
            .expect("decision");
        match d.site {
            Some(s) => {
                placer.reserve(&s, &o.plans[0].resources);
                placed += 1;
            }
            None => rejected += 1,
        }
    }
    let took = t.elapsed();
    let per_s = n as f64 / took.as_secs_f64();
    println!(
        "placement: {n} bookings of {} Gemeinden over 60 sites in {:.2} s = {:.0} bookings/s ({:.0} site verdicts/s); {placed} placed, {rejected} rejected; setup {:.0} ms",
        gemeinden.len(),
        took.as_secs_f64(),
        per_s,
        per_s * 60.0,
        setup.as_secs_f64() * 1000.0
    );
}

async fn reevaluation(url: &str, full: bool) {
    let store = Store::open(url).await.expect("store opens");
    let now = Utc::now();
    let records = gv100ad();
    store
        .import_organisations("bench", "gv100ad", &records, now)
        .await
        .expect("import");
    verbund_placement::ensure_default_policies(&store, now)
        .await
        .expect("defaults");
    for i in 0..20 {
        store
            .put_provider("bench", &provider(i), now)
            .await
            .expect("provider");
    }
    for i in 0..60 {
        store.put_site("bench", &site(i), now).await.expect("site");
    }
    let bund = store
        .list_organisations(
            &verbund_domain::directory::OrganisationFilter {
                level: Some(Level::Bund),
                ..Default::default()
            },
            &Default::default(),
        )
        .await
        .expect("bund")
        .items
        .remove(0);
    let vendor = store
        .create_organisation(
            "bench",
            &OrganisationSpec {
                name: "Vendor".into(),
                level: Level::Verband,
                ars: None,
                ags: None,
                parent: Some(bund.id.clone()),
                population: None,
            },
            now,
        )
        .await
        .expect("vendor");
    let offerings: Vec<OfferingSpec> = offerings()
        .into_iter()
        .map(|mut o| {
            o.vendor = vendor.id.clone();
            o
        })
        .collect();
    for o in &offerings {
        store.put_offering("bench", o, now).await.expect("offering");
        let v = VersionSpec {
            version: "1.0.0".into(),
            package: Package::Helm {
                repository: "https://charts.example.org".into(),
                chart: o.name.clone(),
                chart_version: "1.0.0".into(),
                values: json!({}),
            },
            changelog: String::new(),
        };
        store
            .publish_version("bench", &o.name, &v, now)
            .await
            .expect("version");
    }
    // All Gemeinden, by id.
    let mut gemeinden = Vec::new();
    let mut page = verbund_domain::page::PageRequest {
        limit: Some(1000),
        after: None,
    };
    loop {
        let p = store
            .list_organisations(
                &verbund_domain::directory::OrganisationFilter {
                    level: Some(Level::Gemeinde),
                    ..Default::default()
                },
                &page,
            )
            .await
            .expect("list");
        gemeinden.extend(p.items);
        match p.next {
            Some(n) => page.after = Some(n),
            None => break,
        }
    }
    let n = if full { 100_000 } else { 1_000 };
    let t = Instant::now();
    // Bulk-load bookings as already placed, in chunks of one transaction each.
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let rows: Vec<NewBooking> = chunk
            .iter()
            .map(|&i| {
                let org = &gemeinden[i % gemeinden.len()];
                let o = &offerings[i % offerings.len()];
                let site = format!("site-{:02}", (i * 7) % 60);
                NewBooking {
                    booking: Booking {
                        id: format!("b-{i:06}"),
                        organisation: org.id.clone(),
                        offering: o.name.clone(),
                        plan: "s".into(),
                        config: json!({}),
                        channel: "stable".into(),
                        state: BookingState::Active,
                        site: Some(site),
                        version: Some("1.0.0".into()),
                        reason: None,
                        dependency_of: None,
                        dependencies: vec![],
                        compliance: None,
                        created_at: now,
                        updated_at: now,
                        state_since: now,
                    },
                    resources: o.plans[0].resources,
                    decision: None,
                    action: "booking.create".into(),
                }
            })
            .collect();
        store
            .create_bookings("bench", "-", now, |_| {
                Ok::<_, verbund_store::StoreError>(rows)
            })
            .await
            .expect("bulk load");
    }
    let load = t.elapsed();
    let bookings = Bookings::new(store.clone());
    // A Land policy change: Bayern keeps personal data in Bayern.
    let land = store
        .find_organisation_by_key("09")
        .await
        .expect("land")
        .expect("Bayern");
    bookings
        .submit_policy(
            "bench",
            &PolicySubmission {
                name: "daten-in-bayern".into(),
                layer: PolicyLayer::Land,
                owner: Some(land.id),
                text: r#"@id("nur-bayern") forbid (principal, action == Verbund::Action::"place", resource) when { context.personal && resource.region != "DE-BY" };"#.into(),
            },
            now,
        )
        .await
        .expect("policy");
    let t = Instant::now();
    let summary = bookings
        .reevaluate("bench", now)
        .await
        .expect("re-evaluation");
    let took = t.elapsed();
    let t2 = Instant::now();
    let again = bookings
        .reevaluate("bench", now)
        .await
        .expect("re-evaluation");
    let took2 = t2.elapsed();
    println!(
        "re-evaluation ({}): {} placements in {:.2} s ({} non-compliant, {} flagged); unchanged re-run {:.2} s; bulk load of {n} bookings {:.1} s",
        if url.starts_with("sqlite") { "SQLite" } else { "PostgreSQL" },
        summary.checked,
        took.as_secs_f64(),
        summary.noncompliant,
        summary.changed,
        took2.as_secs_f64(),
        load.as_secs_f64()
    );
    assert_eq!(again.changed, 0);
    store.close().await;
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    decisions(full);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    rt.block_on(reevaluation(&url, full));
    if let Ok(pg) = std::env::var("VERBUND_BENCH_POSTGRES") {
        rt.block_on(async {
            use sqlx::Connection;
            let db = format!("verbund_bench_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(&pg).await.expect("postgres");
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut admin)
                .await
                .expect("create db");
            let base = pg.rsplit_once('/').map(|(b, _)| b).unwrap_or(&pg);
            reevaluation(&format!("{base}/{db}"), full).await;
            sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .ok();
        });
    }
}
