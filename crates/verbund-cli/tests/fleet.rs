//! Fleet health through the real binaries: `verbund demo --no-simulation` as the control
//! plane and one `verbund simulate` process per site, reading the desired-state
//! repository and reporting over HTTP. The demo's bookings go provisioning → active,
//! an injected failing smoke test degrades a booking and its removal restores it, and a
//! simulated site killed with SIGKILL turns `unknown` within one and a half of its
//! report intervals.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{get, metrics, token, verbund, Server};

/// The simulated agents' report interval (whole seconds: the interval they announce).
const INTERVAL: Duration = Duration::from_secs(2);

/// A `verbund simulate` for one site; killed when dropped.
struct Simulated(Child);

impl Simulated {
    fn start(base: &str, admin: &str, data: &Path, site: &str, faults: &Path) -> Simulated {
        let log = std::fs::File::create(data.with_extension(format!("simulate-{site}.log")))
            .expect("log file");
        let child = verbund()
            .args(["simulate", "--server", base, "--site", site])
            .arg("--repository")
            .arg(data.join("desired-state.git"))
            .args(["--interval", "2s", "--latency", "300ms", "--faults"])
            .arg(faults)
            .env("VERBUND_TOKEN", admin)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("verbund simulate starts");
        Simulated(child)
    }
}

impl Drop for Simulated {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for<F>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: AsyncFnMut() -> bool,
{
    let t = Instant::now();
    loop {
        if check().await {
            return t.elapsed();
        }
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn booking(base: &str, admin: &str, id: &str) -> Value {
    get(base, admin, &format!("/bookings/{id}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_sites_drive_booking_health() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = Server::start_with("demo", &["--no-simulation"], &data).await;
    let base = server.base.clone();
    let admin = token(&data, "admin.token");

    // The demo's bookings, once the publisher has delivered them.
    let mut bookings: Vec<Value> = Vec::new();
    wait_for(
        "the demo bookings are provisioning",
        Duration::from_secs(30),
        async || {
            let page = get(&base, &admin, "/bookings?limit=100").await;
            bookings = page["items"].as_array().cloned().unwrap_or_default();
            !bookings.is_empty() && bookings.iter().all(|b| b["state"] == "provisioning")
        },
    )
    .await;
    let mut sites: Vec<String> = bookings
        .iter()
        .map(|b| b["site"].as_str().expect("a site").to_string())
        .collect();
    sites.sort();
    sites.dedup();
    assert!(sites.len() >= 2, "the demo books on two sites: {sites:?}");

    let faults = dir.path().join("faults.yaml");
    std::fs::write(&faults, "").expect("faults file");
    let mut agents: Vec<(String, Simulated)> = sites
        .iter()
        .map(|s| {
            (
                s.clone(),
                Simulated::start(&base, &admin, &data, s, &faults),
            )
        })
        .collect();

    // provisioning → active, attributed to the sites, labelled simulated.
    let ids: Vec<String> = bookings
        .iter()
        .map(|b| b["id"].as_str().expect("id").to_string())
        .collect();
    let took = wait_for(
        "every booking is active",
        Duration::from_secs(30),
        async || {
            for id in &ids {
                if booking(&base, &admin, id).await["state"] != "active" {
                    return false;
                }
            }
            true
        },
    )
    .await;
    eprintln!(
        "{} bookings active {took:?} after the agents started",
        ids.len()
    );
    let b = booking(&base, &admin, &ids[0]).await;
    assert_eq!(b["observed"]["simulated"], true, "{b}");
    assert_eq!(b["observed"]["site_health"], "healthy", "{b}");
    let fleet = get(&base, &admin, "/fleet").await;
    for s in &sites {
        let entry = fleet["sites"]
            .as_array()
            .expect("sites")
            .iter()
            .find(|e| e["site"] == s.as_str())
            .expect("the site in the fleet view");
        assert_eq!(entry["simulated"], true, "{entry}");
        assert_eq!(entry["health"], "healthy", "{entry}");
    }

    // A failing smoke test degrades one booking; without the fault it recovers.
    let victim = &ids[0];
    std::fs::write(&faults, format!("failing_smoke: [\"{victim}\"]\n")).expect("faults");
    wait_for(
        "the booking is degraded",
        Duration::from_secs(15),
        async || booking(&base, &admin, victim).await["state"] == "degraded",
    )
    .await;
    let b = booking(&base, &admin, victim).await;
    assert_eq!(b["reason"], "the smoke test failed", "{b}");
    std::fs::write(&faults, "").expect("faults");
    wait_for(
        "the booking recovers",
        Duration::from_secs(15),
        async || booking(&base, &admin, victim).await["state"] == "active",
    )
    .await;
    let history = get(
        &base,
        &admin,
        &format!("/audit?object=booking%2F{victim}&limit=100"),
    )
    .await;
    let moves: Vec<(String, String)> = history["items"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["actor"].as_str().is_some_and(|a| a.starts_with("site/")))
        .map(|e| {
            (
                e["actor"].as_str().unwrap().into(),
                e["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    let actions: Vec<&str> = moves.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(
        actions,
        ["booking.ready", "booking.degrade", "booking.ready"],
        "{moves:?}"
    );

    // SIGKILL one simulated site: unknown within 1.5 intervals of its last report.
    let (killed, mut agent) = agents.remove(0);
    agent.0.kill().expect("SIGKILL");
    let _ = agent.0.wait();
    let killed_at = Instant::now();
    let mut seen = Value::Null;
    let took = wait_for("the killed site turns unknown", INTERVAL * 3, async || {
        seen = get(&base, &admin, "/fleet").await;
        seen["stale_sites"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == killed.as_str()))
    })
    .await;
    eprintln!("killed site {killed} unknown {took:?} after SIGKILL");
    assert!(
        killed_at.elapsed() <= INTERVAL * 3 / 2 + Duration::from_millis(500),
        "unknown only after {took:?}"
    );
    for (other, _) in &agents {
        assert!(
            !seen["stale_sites"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == other.as_str()),
            "the live site {other} stays known: {seen}"
        );
    }
    // Its bookings show it, and the silence is audited once.
    let on_killed = bookings
        .iter()
        .find(|b| b["site"] == killed.as_str())
        .and_then(|b| b["id"].as_str())
        .expect("a booking on the killed site");
    let b = booking(&base, &admin, on_killed).await;
    assert_eq!(b["observed"]["site_health"], "unknown", "{b}");
    assert_eq!(b["state"], "active", "silence is not a failure: {b}");
    wait_for(
        "the silence is audited",
        Duration::from_secs(5),
        async || {
            let events = get(
                &base,
                &admin,
                &format!("/audit?object=site%2F{killed}&limit=100"),
            )
            .await;
            events["items"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|e| e["action"] == "site.silent" && e["actor"] == "system/fleet")
            })
        },
    )
    .await;
    // Prometheus shows it too.
    let metrics = metrics(&base, &admin).await;
    assert!(
        metrics.contains(&format!(
            "verbund_site_health{{site=\"{killed}\",health=\"unknown\"}} 1"
        )),
        "{metrics}"
    );
    drop(server);
}
