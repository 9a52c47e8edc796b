//! Every list endpoint of the API at the scale of Germany under 16 concurrent clients
//! (issue 16; target: p99 under 50 ms for each).
//!
//! `cargo bench -p verbund-api --bench lists` loads `verbund_testkit::germany` (the real
//! 10,787 Gemeinden, 20 providers, 60 sites, three offerings, 100,000 bookings bulk-loaded
//! with their audit events) into SQLite, and into PostgreSQL beside it
//! (`VERBUND_TEST_POSTGRES`; skipped with a note when unreachable), adds 500 users with a
//! token each, a site token per site, a second version of an offering and a running
//! rollout of it over its bookings, and lets PostgreSQL settle (`Scratch::settle`: the
//! statistics and visibility map autovacuum keeps in service). Then 16 clients (tasks on a multi-threaded runtime)
//! send requests at once, each walking the list of endpoints below in its own order: first
//! as the federation administrator (who sees everything, so every page is full and none
//! needs judging item by item), then as the delegated administrator of Bayern (whose
//! pages of bookings are judged organisation by organisation; the lists it may not read
//! are named and left out). Each request goes through the whole router in-process
//! (authentication, Cedar, store, JSON; no HTTP socket) and is timed on its own, to the
//! last byte of its body; the client checks the body is a list afterwards, without
//! building a JSON tree. A first page and, for the long lists, the page that the first
//! page's `next` cursor points to; and for the bookings a walk through every page, the
//! clients taking the pages in turn (client `c` in round `r` page `c × rounds + r`), so
//! that each request reads other bookings of other organisations than the last.
//!
//! Printed per endpoint: requests, mean, p50, p99, max and whether p99 < 50 ms.
//! `VERBUND_BENCH_BOOKINGS` changes the 100,000, `VERBUND_BENCH_ROUNDS` the 40 rounds per
//! client (16 × 40 = 640 requests per endpoint), `VERBUND_BENCH_CLIENTS` the 16 clients
//! (with 1, each request's own cost shows), `VERBUND_DATABASE_CONNECTIONS` the pooled
//! connections (as `verbund serve` takes it; by default `Store::open`'s),
//! `VERBUND_BENCH_BACKENDS=sqlite` leaves PostgreSQL out. Without `--bench`, as under
//! `cargo test --all-targets`, a small smoke version runs with the same assertions on
//! status and shape.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::Utc;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};
use verbund_api::AppState;
use verbund_domain::account::{Membership, Role, UserSpec};
use verbund_domain::booking::BookingState;
use verbund_store::Store;
use verbund_testkit::measure::{backends, env_usize, full_run, ms, percentile, send, send_json};
use verbund_testkit::{germany, Scratch};

// The allocator `verbund` runs with (see crates/verbund-cli/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The issue's target for every list's 99th percentile.
const TARGET_P99: Duration = Duration::from_millis(50);
/// Clients sending at once (`VERBUND_BENCH_CLIENTS`; 1 shows each request's own cost).
const CLIENTS: usize = 16;

/// A request as `token`, with a JSON body when one is given.
fn request(method: &str, uri: &str, token: &str, body: Option<Value>) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(AUTHORIZATION, format!("Bearer {token}"));
    if body.is_some() {
        req = req.header(CONTENT_TYPE, "application/json");
    }
    req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request")
}

/// Whether `body` is a list answer: short lists (policies, an offering's versions) are
/// plain arrays, pages a record with `items`, a provider's facts a record with `facts`.
/// Read without building the JSON tree (the client's work shares the server's cores).
fn is_list(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Listed {
        items: Option<Vec<IgnoredAny>>,
        facts: Option<Vec<IgnoredAny>>,
    }
    if body.first() == Some(&b'[') {
        return serde_json::from_slice::<Vec<IgnoredAny>>(body).is_ok();
    }
    serde_json::from_slice::<Listed>(body).is_ok_and(|l| l.items.is_some() || l.facts.is_some())
}

/// A user with one membership and a token; the token.
async fn user_token(store: &Store, name: &str, membership: Membership) -> String {
    let now = Utc::now();
    let user = store
        .create_user(
            "system/bench",
            &UserSpec {
                name: name.into(),
                display_name: format!("Bench {name}"),
                email: None,
                memberships: vec![membership],
            },
            now,
        )
        .await
        .expect("user");
    verbund_api::issue_token(store, "system/bench", &user.id, "bench", None, now)
        .await
        .expect("token")
        .1
}

/// Users, tokens, site tokens, a second version and a running rollout, beside the
/// fleet's directory and bookings.
async fn populate(
    store: &Store,
    app: &Router,
    admin: &str,
    fleet: &germany::Fleet,
    users: usize,
) -> String {
    let now = Utc::now();
    for i in 0..users {
        let org = &fleet.gemeinden[i % fleet.gemeinden.len()];
        let membership = Membership {
            role: Role::OrgAdmin,
            organisation: Some(org.id.clone()),
            provider: None,
            delegated: false,
        };
        user_token(store, &format!("user-{i:04}"), membership).await;
    }
    for i in 0..germany::SITES {
        let site = germany::site(i).name;
        verbund_api::issue_site_token(store, "system/bench", &site, "bench", None, now)
            .await
            .expect("site token");
    }
    let offering = &fleet.offerings[0].name;
    let mut next = germany::version(offering);
    next.version = "1.1.0".into();
    store
        .publish_version("system/bench", offering, &next, now)
        .await
        .expect("second version");
    let (status, _, rollout) = send_json(
        app,
        request(
            "POST",
            "/api/v1/rollouts",
            admin,
            Some(json!({"offering": offering, "version": "1.1.0"})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{rollout}");
    rollout["id"].as_str().expect("rollout id").to_owned()
}

/// The endpoints measured: a name and the URI of its first page.
fn endpoints(rollout: &str, offering: &str) -> Vec<(String, String)> {
    let site = germany::site(0).name;
    let provider = germany::provider(0).name;
    [
        ("organisations", "/api/v1/organisations".to_owned()),
        (
            "organisations?land=09&level=gemeinde",
            "/api/v1/organisations?land=09&level=gemeinde".to_owned(),
        ),
        ("providers", "/api/v1/providers".to_owned()),
        ("sites", "/api/v1/sites".to_owned()),
        ("offerings", "/api/v1/offerings".to_owned()),
        (
            "offerings/{name}/versions",
            format!("/api/v1/offerings/{offering}/versions"),
        ),
        ("users", "/api/v1/users".to_owned()),
        ("tokens", "/api/v1/tokens".to_owned()),
        (
            "sites/{name}/tokens",
            format!("/api/v1/sites/{site}/tokens"),
        ),
        ("audit", "/api/v1/audit".to_owned()),
        ("bookings", "/api/v1/bookings".to_owned()),
        ("bookings?site=…", format!("/api/v1/bookings?site={site}")),
        ("policies", "/api/v1/policies".to_owned()),
        ("rollouts", "/api/v1/rollouts".to_owned()),
        (
            "rollouts/{id}/items",
            format!("/api/v1/rollouts/{rollout}/items"),
        ),
        (
            "rollouts/{id}/sites/{site}",
            format!("/api/v1/rollouts/{rollout}/sites/{site}"),
        ),
        ("fact-proposals", "/api/v1/fact-proposals".to_owned()),
        (
            "providers/{name}/facts",
            format!("/api/v1/providers/{provider}/facts"),
        ),
    ]
    .into_iter()
    .map(|(n, u)| (n.to_owned(), u))
    .collect()
}

/// The endpoints `token` may read (the others, refused, are named and left out), each
/// with the page its first page's `next` cursor points to, when it has one.
async fn with_second_pages(
    app: &Router,
    token: &str,
    first: Vec<(String, String)>,
) -> (Vec<(String, Vec<String>)>, Vec<String>) {
    let mut all = Vec::with_capacity(first.len() * 2);
    let mut refused = Vec::new();
    for (name, uri) in first {
        let (status, _, body) = send_json(app, request("GET", &uri, token, None)).await;
        if matches!(status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
            refused.push(format!("{name} ({})", status.as_u16()));
            continue;
        }
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        if let Some(next) = body.get("next").and_then(Value::as_str) {
            all.push((format!("{name} (page 2)"), vec![after(&uri, next)]));
        }
        all.push((name, vec![uri]));
    }
    all.sort();
    (all, refused)
}

/// `uri` continued after the cursor `next`.
fn after(uri: &str, next: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let cursor = next
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    format!("{uri}{sep}after={cursor}")
}

/// Every page of the list at `uri` as `token` sees it, following the cursors: a walk
/// through the whole list, whose pages the clients take in turn, each page of other
/// bookings (and organisations) than the one before — where the first and second pages,
/// asked again and again, meet what earlier requests left in caches.
async fn every_page(app: &Router, token: &str, uri: &str) -> Vec<String> {
    let mut pages = vec![uri.to_owned()];
    loop {
        let last = pages.last().expect("a page").clone();
        let (status, _, body) = send_json(app, request("GET", &last, token, None)).await;
        assert_eq!(status, StatusCode::OK, "{last}: {body}");
        match body.get("next").and_then(Value::as_str) {
            Some(next) => pages.push(after(uri, next)),
            None => return pages,
        }
    }
}

/// The administrator of a Land with delegation (Bayern, 2,000 Gemeinden below it): it
/// sees the Land's bookings, each page judged organisation by organisation from the
/// chains the page names, where the federation administrator's pages need no judging.
async fn land_admin(store: &Store, fleet: &germany::Fleet) -> String {
    let gemeinde = fleet
        .gemeinden
        .iter()
        .find(|g| g.land.as_deref() == Some("09"))
        .expect("a Gemeinde in Bayern");
    let chain = store
        .organisation_chains(std::slice::from_ref(&gemeinde.id))
        .await
        .expect("chain")
        .remove(&gemeinde.id)
        .expect("the Gemeinde's chain");
    let land = chain
        .iter()
        .rev()
        .nth(1)
        .expect("a Land above the Gemeinde");
    let membership = Membership {
        role: Role::OrgAdmin,
        organisation: Some(land.clone()),
        provider: None,
        delegated: true,
    };
    user_token(store, "bench-land-admin", membership).await
}

async fn run(backend: &str, full: bool) {
    let bookings = env_usize("VERBUND_BENCH_BOOKINGS", if full { 100_000 } else { 600 });
    let users = if full { 500 } else { 20 };
    let Some(scratch) = Scratch::for_backend(backend, "bench_lists").await else {
        return;
    };
    let connections = std::env::var("VERBUND_DATABASE_CONNECTIONS").ok().map(|n| {
        n.parse::<u32>()
            .expect("VERBUND_DATABASE_CONNECTIONS: a number")
    });
    let store = Store::open_with(&scratch.url, connections)
        .await
        .expect("store opens");
    println!(
        "{backend}: {} pooled database connections",
        connections.unwrap_or(verbund_store::default_connections(store.dialect()))
    );
    let now = Utc::now();
    let load = Instant::now();
    verbund_placement::ensure_default_policies(&store, now)
        .await
        .expect("default policies");
    let fleet = germany::load(&store, now).await;
    fleet
        .book(&store, bookings, BookingState::Active, now)
        .await;
    let app = verbund_api::app(AppState::new(store.clone()));
    let admin = user_token(&store, "bench-admin", Membership::federation_admin()).await;
    let rollout = populate(&store, &app, &admin, &fleet, users).await;
    let land = land_admin(&store, &fleet).await;
    scratch.settle().await;
    println!(
        "{backend}: loaded {} Gemeinden, {bookings} bookings, {users} users in {:.0} s",
        fleet.gemeinden.len(),
        load.elapsed().as_secs_f64(),
    );
    let endpoints = endpoints(&rollout, &fleet.offerings[0].name);
    for (caller, token) in [("federation admin", &admin), ("Land admin", &land)] {
        let (mut uris, refused) = with_second_pages(&app, token, endpoints.clone()).await;
        let walk = every_page(&app, token, "/api/v1/bookings").await;
        println!(
            "{backend}, {caller}: {} pages of bookings to walk",
            walk.len()
        );
        uris.push(("bookings (every page in turn)".to_owned(), walk));
        if !refused.is_empty() {
            println!(
                "{backend}, {caller}: refused, so not measured: {}",
                refused.join(", ")
            );
        }
        measure(&format!("{backend}, {caller}"), &app, token, uris).await;
    }
    store.close().await;
    scratch.remove().await;
}

/// Sends the lists `uris` from 16 clients at once as `token`, and prints each one's
/// times and whether its p99 is under the target.
///
/// Each entry's pages are taken in turn: client `c` in round `r` asks for page
/// `c × rounds + r` (most entries have one).
async fn measure(label: &str, app: &Router, token: &str, uris: Vec<(String, Vec<String>)>) {
    let rounds = env_usize("VERBUND_BENCH_ROUNDS", if full_run() { 40 } else { 1 });
    let clients_n = env_usize("VERBUND_BENCH_CLIENTS", CLIENTS);
    println!(
        "{label}: {} list requests × {clients_n} clients × {rounds} rounds",
        uris.len()
    );
    // Every client walks the endpoints from its own offset, so that at any moment the
    // 16 requests in flight are of different kinds.
    let uris = Arc::new(uris);
    let started = Instant::now();
    let mut clients = Vec::with_capacity(clients_n);
    for c in 0..clients_n {
        let (app, token, uris) = (app.clone(), token.to_owned(), uris.clone());
        clients.push(tokio::spawn(async move {
            let mut times: Vec<(usize, Duration)> = Vec::with_capacity(rounds * uris.len());
            for round in 0..rounds {
                for k in 0..uris.len() {
                    let e = (k + c + round) % uris.len();
                    let pages = &uris[e].1;
                    let uri = &pages[(c * rounds + round) % pages.len()];
                    let (status, body, took) = send(&app, request("GET", uri, &token, None)).await;
                    assert_eq!(status, StatusCode::OK, "{uri}: {body:?}");
                    assert!(is_list(&body), "{uri}: a list: {body:?}");
                    times.push((e, took));
                }
            }
            times
        }));
    }
    let mut by_endpoint: BTreeMap<usize, Vec<Duration>> = BTreeMap::new();
    for client in clients {
        for (e, took) in client.await.expect("client") {
            by_endpoint.entry(e).or_default().push(took);
        }
    }
    let wall = started.elapsed();
    let total: usize = by_endpoint.values().map(Vec::len).sum();
    println!(
        "{label}: {total} requests in {:.1} s ({:.0} requests/s)",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64()
    );
    println!("| caller | endpoint | requests | mean | p50 | p99 | max | p99 < 50 ms |");
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    let mut missed = Vec::new();
    for (e, mut times) in by_endpoint {
        times.sort();
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        let p99 = percentile(&times, 0.99);
        let met = p99 < TARGET_P99;
        if !met {
            missed.push(uris[e].0.clone());
        }
        println!(
            "| {label} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
            uris[e].0,
            times.len(),
            ms(mean),
            ms(percentile(&times, 0.5)),
            ms(p99),
            ms(*times.last().expect("a request")),
            if met { "met" } else { "**missed**" }
        );
    }
    if missed.is_empty() {
        println!("{label}: every list's p99 under 50 ms");
    } else {
        println!("{label}: p99 of 50 ms missed by: {}", missed.join(", "));
    }
}

fn main() {
    let full = full_run();
    let backends = backends(full);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for backend in &backends {
        rt.block_on(run(backend, full));
    }
}
