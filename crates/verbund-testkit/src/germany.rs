//! The federation at the design scale, for benchmarks: the real municipality directory
//! (GV100AD from `../shared/data/`, 10,787 Gemeinden), 20 providers with 60 sites over
//! the 16 Länder (a third each delivered by Flux, Argo CD and the agent), three
//! offerings with Helm packages, and up to 100,000 bookings of the Gemeinden spread over
//! the sites, bulk-loaded straight into the store.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use verbund_domain::booking::{Booking, BookingState};
use verbund_domain::catalog::{Category, DataClass, OfferingSpec, Package, Plan, VersionSpec};
use verbund_domain::directory::{
    Certification, Delivery, Environment, KeyedOrganisation, Level, Location, Organisation,
    OrganisationFilter, OrganisationSpec, ProviderSpec, Resources, Seat, SiteSpec,
};
use verbund_domain::page::PageRequest;
use verbund_store::{NewBooking, Store};

/// ISO 3166-2 codes of the Länder, in the order of their keys.
pub const REGIONS: [&str; 16] = [
    "DE-SH", "DE-HH", "DE-NI", "DE-HB", "DE-NW", "DE-HE", "DE-RP", "DE-BW", "DE-BY", "DE-SL",
    "DE-BE", "DE-BB", "DE-MV", "DE-SN", "DE-ST", "DE-TH",
];

/// Sites of the federation.
pub const SITES: usize = 60;
/// Providers running them.
pub const PROVIDERS: usize = 20;

/// The official municipality directory from `../shared/data/`.
pub fn gv100ad() -> Vec<KeyedOrganisation> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/GV100AD_301121.ASC"
    );
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    verbund_import::gv100ad::parse(std::io::BufReader::new(file))
        .expect("GV100AD parses")
        .organisations
}

pub fn provider(i: usize) -> ProviderSpec {
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
        registration: Some(verbund_domain::registration::Registration {
            kind: verbund_domain::registration::RegistrationKind::Local,
            value: format!("HRB {}", 10_000 + i),
        }),
    }
}

pub fn site(i: usize) -> SiteSpec {
    let valid = NaiveDate::from_ymd_opt(2028, 12, 31).expect("a date");
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
        provider: format!("provider-{}", i % PROVIDERS),
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
        age_recipient: None,
    }
}

pub fn offering(name: &str, classes: &[DataClass]) -> OfferingSpec {
    OfferingSpec {
        efa: None,
        data_export: None,
        name: name.into(),
        display_name: name.into(),
        description: String::new(),
        description_language: None,
        vendor: "bund".into(),
        category: Category::Saas,
        ozg_id: None,
        data_classes: classes.iter().copied().collect::<BTreeSet<_>>(),
        requirements: Default::default(),
        plans: vec![
            Plan {
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
            },
            // What a booking's capacity windows hold (see [`window`]).
            Plan {
                name: "l".into(),
                display_name: "L".into(),
                resources: Resources {
                    cpu_millis: 2000,
                    memory_mib: 4096,
                    storage_gib: 10,
                },
                replicas: 4,
                autoscaling: None,
                monthly_price_cents: 4000,
            },
        ],
        config_schema: json!({"type": "object"}),
        dependencies: vec![],
        smoke_test: None,
        requires_approval: false,
        retention_days: 30,
        tenancy: Default::default(),
        tenant_schema: None,
        credentials: false,
    }
}

/// A public website, a collaboration suite and a registration office procedure.
pub fn offerings() -> Vec<OfferingSpec> {
    vec![
        offering("website", &[DataClass::Public]),
        offering("collaboration", &[DataClass::Internal, DataClass::Personal]),
        offering(
            "meldewesen",
            &[DataClass::Personal, DataClass::SpecialCategories],
        ),
    ]
}

/// Version 1.0.0 of an offering: a Helm chart of the same name.
pub fn version(offering: &str) -> VersionSpec {
    VersionSpec {
        version: "1.0.0".into(),
        package: Package::Helm {
            repository: "https://charts.example.org".into(),
            chart: offering.into(),
            chart_version: "1.0.0".into(),
            values: json!({"ingress": {"enabled": true}}),
        },
        changelog: String::new(),
    }
}

/// Booking `i`'s capacity window on plan `l` if it has one: every tenth booking, 30 to 90
/// days long, beginning 1 to 300 days after `now` (so that the windows of all bookings
/// spread over the coming year and overlap as real campaigns would).
pub fn window(
    i: usize,
    offering: &OfferingSpec,
    now: DateTime<Utc>,
) -> Option<verbund_domain::capacity::CapacityWindow> {
    if !i.is_multiple_of(10) {
        return None;
    }
    let today = verbund_domain::capacity::local_today(now);
    let from = today + chrono::Duration::days(1 + (i / 10 % 300) as i64);
    let to = from + chrono::Duration::days(30 + (i / 10 % 61) as i64);
    let spec = verbund_domain::capacity::WindowSpec {
        from,
        to,
        plan: "l".into(),
    };
    verbund_domain::capacity::check_windows("/windows", &[spec], offering, "s", &[], now)
        .ok()
        .and_then(|mut w| w.pop())
}

/// What [`load`] put into the store.
pub struct Fleet {
    /// Every Gemeinde, by id.
    pub gemeinden: Vec<Organisation>,
    /// The offerings, with the vendor's id filled in.
    pub offerings: Vec<OfferingSpec>,
}

/// Loads the directory, default policies, providers, sites (their certificates attested
/// by the test certification body) and offerings, without bookings.
pub async fn load(store: &Store, now: DateTime<Utc>) -> Fleet {
    let records = gv100ad();
    store
        .import_organisations("bench", "gv100ad", &records, now)
        .await
        .expect("import");
    for i in 0..PROVIDERS {
        store
            .put_provider("bench", &provider(i), now)
            .await
            .expect("provider");
    }
    for i in 0..SITES {
        store.put_site("bench", &site(i), now).await.expect("site");
    }
    // Their certificates count as a certification body's credentials.
    crate::certified::certify_stated(store, now).await;
    let bund = store
        .list_organisations(
            &OrganisationFilter {
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
        store
            .publish_version("bench", &o.name, &version(&o.name), now)
            .await
            .expect("version");
    }
    let mut gemeinden = Vec::new();
    let mut page = PageRequest {
        limit: Some(1000),
        after: None,
    };
    loop {
        let p = store
            .list_organisations(
                &OrganisationFilter {
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
    Fleet {
        gemeinden,
        offerings,
    }
}

impl Fleet {
    /// Bulk-loads bookings `b-000000` … as already placed in `state`: booking `i` is
    /// Gemeinde `i mod n`'s, of offering `i mod 3`, on site `7i mod 60`; one transaction
    /// per 10,000.
    pub async fn book(&self, store: &Store, n: usize, state: BookingState, now: DateTime<Utc>) {
        self.book_with(store, n, state, false, now).await;
    }

    /// As [`Fleet::book`], every tenth booking with a capacity window ([`window`]) when
    /// `windows` says so.
    pub async fn book_with(
        &self,
        store: &Store,
        n: usize,
        state: BookingState,
        windows: bool,
        now: DateTime<Utc>,
    ) {
        for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
            let rows: Vec<NewBooking> = chunk
                .iter()
                .map(|&i| {
                    let org = &self.gemeinden[i % self.gemeinden.len()];
                    let o = &self.offerings[i % self.offerings.len()];
                    NewBooking {
                        booking: Booking {
                            ending: None,
                            id: format!("b-{i:06}"),
                            organisation: org.id.clone(),
                            offering: o.name.clone(),
                            plan: "s".into(),
                            config: json!({}),
                            channel: "stable".into(),
                            state,
                            site: Some(format!("site-{:02}", (i * 7) % SITES)),
                            version: Some("1.0.0".into()),
                            environment: Default::default(),
                            reason: None,
                            dependency_of: None,
                            dependencies: vec![],
                            compliance: None,
                            created_at: now,
                            updated_at: now,
                            state_since: now,
                            undeliverable: None,
                            instance: None,
                            secrets_set: Vec::new(),
                            windows: if windows {
                                window(i, o, now).into_iter().collect()
                            } else {
                                Vec::new()
                            },
                        },
                        resources: o.plans[0].resources,
                        decision: None,
                        action: "booking.create".into(),
                        secrets: None,
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
    }
}
