//! A shared instance at the scale of "Einer für Alle" (issue 18): the real Gemeinden,
//! 60 sites and offerings (`verbund_testkit::germany`), 100,000 bookings, and one Land's
//! instance of a shared offering with 10,000 Gemeinden as its tenants, on SQLite and
//! PostgreSQL:
//!
//! 1. `POST /api/v1/bookings/{instance}/tenancies` through the real router as the
//!    federation admin: one more tenancy, placed (the tenant's policies checked for the
//!    instance's site) and committed — p50, p99, max of `VERBUND_BENCH_READS` (default
//!    50) requests;
//! 2. the instance's folder rendered with its 10,000 tenants (what the publisher writes
//!    after each of them), and its tenant list: how many ConfigMaps, the largest one's
//!    data and whole object, against the limits Kubernetes sets (1 MiB per ConfigMap,
//!    256 KiB of annotations for a client-side apply).
//!
//! Target (issue 18): one tenancy added → committed p99 < 50 ms.
//! `cargo bench -p verbund-api --bench shared` runs it in full (`VERBUND_BENCH_TENANTS`
//! changes the 10,000, `VERBUND_BENCH_BOOKINGS` the 100,000;
//! `VERBUND_BENCH_BACKENDS=sqlite` skips PostgreSQL); without `--bench`, as under
//! `cargo test --all-targets`, a small smoke version runs.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Instant;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Request, StatusCode};
use chrono::Utc;
use serde_json::{json, Value};
use verbund_api::AppState;
use verbund_domain::account::{Membership, UserSpec};
use verbund_domain::booking::{BookingSpec, BookingState};
use verbund_domain::catalog::DataClass;
use verbund_domain::directory::Level;
use verbund_domain::shared::{Tenancy, TenancySpec};
use verbund_store::Store;
use verbund_testkit::measure::{backends, env_usize, full_run, ms, percentile, send_json};
use verbund_testkit::{germany, Scratch};

// The allocator `verbund` runs with (see crates/verbund-cli/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn run(backend: &str, full: bool) {
    let bookings = env_usize("VERBUND_BENCH_BOOKINGS", if full { 100_000 } else { 600 });
    let tenants = env_usize("VERBUND_BENCH_TENANTS", if full { 10_000 } else { 200 });
    let reads = env_usize("VERBUND_BENCH_READS", if full { 50 } else { 5 });
    let Some(scratch) = Scratch::for_backend(backend, "bench_shared").await else {
        return;
    };
    let store = Store::open(&scratch.url).await.expect("store opens");
    let now = Utc::now();
    verbund_placement::ensure_default_policies(&store, now)
        .await
        .expect("default policies");
    let fleet = germany::load(&store, now).await;
    fleet
        .book_with(&store, bookings, BookingState::Active, false, now)
        .await;

    // The shared offering, and Schleswig-Holstein's instance of it.
    let mut spec = germany::offering("bauportal", &[DataClass::Internal]);
    spec.vendor = fleet.offerings[0].vendor.clone();
    spec.tenancy = Tenancy::Shared;
    spec.tenant_schema = Some(json!({
        "type": "object", "required": ["kennung"],
        "properties": {"kennung": {"type": "string", "pattern": "^[a-z0-9-]{2,40}$"}}
    }));
    store
        .put_offering("bench", &spec, now)
        .await
        .expect("offering");
    store
        .publish_version("bench", "bauportal", &germany::version("bauportal"), now)
        .await
        .expect("version");
    let land = store
        .find_organisation_by_key("01")
        .await
        .expect("find")
        .expect("Schleswig-Holstein");
    assert_eq!(land.level, Level::Land);
    let bookings_service = verbund_placement::Bookings::new(store.clone());
    let instance = bookings_service
        .book(
            "bench",
            &BookingSpec {
                organisation: land.id.clone(),
                offering: "bauportal".into(),
                plan: spec.plans[0].name.clone(),
                config: json!({}),
                channel: "stable".into(),
                windows: Vec::new(),
                ending: None,
                dependencies: Default::default(),
            },
            now,
        )
        .await
        .expect("the instance")
        .remove(0);
    assert_eq!(
        instance.state,
        BookingState::Placed,
        "{:?}",
        instance.reason
    );

    // Its tenants, through the booking service (the API's own path without HTTP).
    let t = Instant::now();
    let tenant = |i: usize| &fleet.gemeinden[i % fleet.gemeinden.len()];
    for i in 0..tenants {
        let t = bookings_service
            .book_tenancy(
                "bench",
                &instance.id,
                &TenancySpec {
                    organisation: tenant(i).id.clone(),
                    config: json!({"kennung": format!("gemeinde-{i}")}),
                },
                now,
            )
            .await
            .expect("a tenancy");
        assert_eq!(t.state, BookingState::Placed, "{:?}", t.reason);
    }
    println!(
        "{backend}: {tenants} tenancies booked in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let app = verbund_api::app(AppState::new(store.clone()));
    let user = store
        .create_user(
            "system/bench",
            &UserSpec {
                name: "bench-admin".into(),
                display_name: "Bench".into(),
                email: None,
                memberships: vec![Membership::federation_admin()],
            },
            now,
        )
        .await
        .expect("user");
    let (_, token) = verbund_api::issue_token(&store, "system/bench", &user.id, "bench", None, now)
        .await
        .expect("token");
    let mut times = Vec::with_capacity(reads);
    for i in 0..reads {
        let org = tenant(tenants + i);
        let body = json!({"organisation": org.id, "config": {"kennung": format!("neu-{i}")}});
        let req = Request::post(format!("/api/v1/bookings/{}/tenancies", instance.id))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        let (status, took, v) = send_json(&app, req).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        assert_eq!(v["state"], "placed", "{v}");
        times.push(took);
    }
    times.sort();
    println!(
        "{backend}: POST /api/v1/bookings/{{instance}}/tenancies beside {tenants} tenants over \
         {bookings} bookings: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({reads} requests)",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().expect("a request")),
    );

    // The instance's folder, rendered with all its tenants.
    let options = verbund_render::RenderOptions::new("https://verbund.example/git/{site}.git");
    let stored = store.get_booking(&instance.id).await.expect("the instance");
    let t = Instant::now();
    let files = verbund_delivery::render_booking(&store, &stored, &options)
        .await
        .expect("rendered");
    let took = t.elapsed();
    let list = files
        .iter()
        .find(|f| f.path.ends_with("/tenants.yaml"))
        .expect("the tenant list");
    let mut maps = 0;
    let mut listed = 0;
    let (mut largest_data, mut largest_object) = (0, 0);
    for doc in serde_yaml_ng::Deserializer::from_str(&list.content) {
        let cm: Value = serde::Deserialize::deserialize(doc).expect("a ConfigMap");
        let data = cm["data"].as_object().expect("data");
        let bytes: usize = data
            .iter()
            .map(|(k, v)| k.len() + v.as_str().unwrap().len())
            .sum();
        let object = serde_json::to_string(&cm).unwrap().len();
        assert!(bytes <= verbund_render::tenant_list::LIST_BUDGET);
        assert!(object < 256 * 1024, "fits a client-side apply's annotation");
        maps += 1;
        listed += data.len();
        largest_data = largest_data.max(bytes);
        largest_object = largest_object.max(object);
    }
    assert_eq!(listed, tenants + reads, "the list names every tenant");
    println!(
        "{backend}: the instance's folder with {listed} tenants rendered in {:.1} ms: \
         {maps} ConfigMaps, the largest {largest_data} bytes of data ({largest_object} bytes \
         as an object; limits: 1,048,576 per ConfigMap, 262,144 of annotations)",
        ms(took)
    );
    store.close().await;
    scratch.remove().await;
}

fn main() {
    let full = full_run();
    let backends = backends(full);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for backend in &backends {
        rt.block_on(run(backend, full));
    }
}
