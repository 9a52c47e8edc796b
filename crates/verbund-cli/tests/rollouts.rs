//! Staged rollouts through the real binaries: `verbund demo --no-simulation` (or two
//! `--database-url postgres://…` replicas) as the control plane, one `verbund simulate`
//! process per site with a faults file of its own, and a new version of `jitsi-meet`
//! rolled out over bookings on three sites in different Länder.
//!
//! - a clean rollout goes test stage → canary → production waves, one wave after the
//!   other, and every booking ends active on the new version;
//! - a site whose test environment fails its smoke test gets no production update while
//!   the others complete;
//! - a failure in a production wave halts the rollout and rolls the booking back;
//! - pause stops new starts, resume goes on, abort rolls back what changed (`verbund
//!   rollout plan|pause|resume|abort`);
//! - a control plane killed with SIGKILL mid-wave and restarted finishes the rollout
//!   with no wave repeated or skipped;
//! - on PostgreSQL, the second replica takes over the engine from a killed leader.
//!
//! Exactly once is read from the audit trail: one `booking.rollout` per started
//! booking, `rollout.wave` numbered 1, 2, … without gaps or repeats, and each booking's
//! start between its wave's `rollout.wave` and the next.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
use common::{get, metrics, post, simulate, token, verbund, Server};

const OFFERING: &str = "jitsi-meet";
/// The version the demo's bookings run.
const OLD: &str = "2.0.9646";
/// The version the tests publish and roll out.
const NEW: &str = "2.0.9700";
/// Organisations (ARS) booked besides the demo's Flensburg booking: Kiel and Hamburg in
/// the north, München and Nürnberg in Bayern; placement keeps each in its own Land.
const ORGANISATIONS: [&str; 4] = [
    "010020000000",
    "020000000000",
    "091620000000",
    "095640000000",
];
/// The engine's tick.
const TICK_MS: &str = "200";
/// How long a whole rollout may take.
const ROLLOUT_LIMIT: Duration = Duration::from_secs(120);

/// The policy of every test: short bake, one booking per site and one site per wave.
fn policy(canary_percent: u32) -> Value {
    json!({
        "bake_seconds": 1,
        "canary_percent": canary_percent,
        "wave_size": 1,
        "max_concurrent_sites": 1,
        "failure_budget": 0,
        "progress_deadline_seconds": 60
    })
}

/// One `verbund simulate --site <site>` with its own faults file; killed when dropped.
struct Agent {
    child: Child,
    faults: PathBuf,
}

impl Agent {
    fn start(base: &str, admin: &str, repository: &Path, dir: &Path, site: &str) -> Agent {
        let faults = dir.join(format!("faults-{site}.yaml"));
        std::fs::write(&faults, "").expect("faults file");
        let log = dir.join(format!("simulate-{site}.log"));
        let timing = ["1s", "400ms"];
        let child = simulate(base, admin, site, repository, &faults, timing, &log);
        Agent { child, faults }
    }

    fn set_faults(&self, yaml: &str) {
        std::fs::write(&self.faults, yaml).expect("faults file");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` every 100 ms until it yields a value; panics after `limit`.
async fn until<T>(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `verbund <args…> -o json` against the server; its parsed output.
fn cli(base: &str, admin: &str, args: &[&str]) -> Value {
    let out = verbund()
        .args(args)
        .args(["--server", base, "--token", admin, "-o", "json"])
        .output()
        .expect("verbund runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "verbund {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("verbund {args:?}: {e}: {stdout}"))
}

/// Books `jitsi-meet` for [`ORGANISATIONS`]; every production booking of the offering
/// (the demo's included) with its site.
async fn book(base: &str, admin: &str) -> BTreeMap<String, String> {
    for key in ORGANISATIONS {
        let orgs = get(base, admin, &format!("/organisations?key={key}")).await;
        let org = orgs["items"][0]["id"].as_str().expect("an organisation");
        let config = json!({"domain": format!("meet.k{key}.de")});
        let body =
            json!({"organisation": org, "offering": OFFERING, "plan": "s", "config": config});
        post(base, admin, "/bookings", &body, 201).await;
    }
    let page = get(
        base,
        admin,
        &format!("/bookings?offering={OFFERING}&limit=100"),
    )
    .await;
    let bookings: BTreeMap<String, String> = page["items"]
        .as_array()
        .expect("bookings")
        .iter()
        .filter(|b| b["environment"] == "prod")
        .map(|b| {
            assert_eq!(b["version"], OLD, "{b}");
            (
                b["id"].as_str().expect("id").to_owned(),
                b["site"].as_str().expect("placed").to_owned(),
            )
        })
        .collect();
    assert_eq!(bookings.len(), ORGANISATIONS.len() + 1, "{bookings:?}");
    let sites: BTreeSet<&String> = bookings.values().collect();
    assert!(sites.len() >= 3, "bookings on several sites: {bookings:?}");
    bookings
}

async fn booking(base: &str, admin: &str, id: &str) -> Value {
    get(base, admin, &format!("/bookings/{id}")).await
}

/// Waits until every booking is `active` on `version`.
async fn all_active(
    base: &str,
    admin: &str,
    ids: impl IntoIterator<Item = &String>,
    version: &str,
) {
    let ids: Vec<&String> = ids.into_iter().collect();
    until(
        &format!("bookings active on {version}"),
        Duration::from_secs(60),
        async || {
            for id in &ids {
                let b = booking(base, admin, id).await;
                if b["state"] != "active" || b["version"] != version {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

/// Publishes [`NEW`] without starting a rollout.
async fn publish(base: &str, admin: &str) {
    let spec = json!({
        "version": NEW,
        "package": {
            "type": "helm",
            "repository": "https://jitsi-contrib.github.io/jitsi-helm/",
            "chart": "jitsi-meet",
            "chart_version": "1.5.1",
            "values": {"web": {"ingress": {"enabled": true, "ingressClassName": "nginx"}}}
        },
        "changelog": "Jitsi Meet stable-9700 (test)."
    });
    let published = post(
        base,
        admin,
        &format!("/offerings/{OFFERING}/versions?rollout=false"),
        &spec,
        201,
    )
    .await;
    assert!(published["rollout"].is_null(), "{published}");
}

/// `POST /rollouts/plan` (`start: false`) or `POST /rollouts` of [`NEW`] with
/// [`policy`]`(canary_percent)`.
async fn rollout_of_new(base: &str, admin: &str, canary_percent: u32, start: bool) -> Value {
    let body = json!({"offering": OFFERING, "version": NEW, "policy": policy(canary_percent)});
    if !start {
        return post(base, admin, "/rollouts/plan", &body, 200).await;
    }
    let r = post(base, admin, "/rollouts", &body, 201).await;
    assert_eq!(r["state"], "running", "{r}");
    r
}

/// Starts the rollout of [`NEW`]; its id and the answer.
async fn start_rollout(base: &str, admin: &str, canary_percent: u32) -> (String, Value) {
    let r = rollout_of_new(base, admin, canary_percent, true).await;
    (r["id"].as_str().expect("an id").to_owned(), r)
}

/// The stages of a plan's or a rollout's waves.
fn stages(v: &Value) -> Vec<String> {
    v["waves"]
        .as_array()
        .expect("waves")
        .iter()
        .map(|w| w["stage"].as_str().expect("a stage").to_owned())
        .collect()
}

async fn rollout(base: &str, admin: &str, id: &str) -> Value {
    get(base, admin, &format!("/rollouts/{id}")).await
}

/// The rollout's items by booking.
async fn items(base: &str, admin: &str, id: &str) -> BTreeMap<String, Value> {
    let page = get(base, admin, &format!("/rollouts/{id}/items?limit=1000")).await;
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["booking"].as_str().expect("booking").to_owned(),
                i.clone(),
            )
        })
        .collect()
}

/// Waits until the rollout is in `state`; panics early if it finishes otherwise.
async fn wait_state(base: &str, admin: &str, id: &str, state: &str) -> Value {
    until(&format!("rollout {state}"), ROLLOUT_LIMIT, async || {
        let r = rollout(base, admin, id).await;
        if r["state"] == state {
            return Some(r);
        }
        let other = ["completed", "aborted", "halted"];
        assert!(
            !other.contains(&r["state"].as_str().unwrap_or_default()),
            "expected {state}: {r:#}"
        );
        None
    })
    .await
}

/// Waits until a production wave is the current one and one of its bookings is in
/// flight; the rollout then.
async fn mid_production_wave(base: &str, admin: &str, id: &str) -> Value {
    until("a production wave in flight", ROLLOUT_LIMIT, async || {
        let r = rollout(base, admin, id).await;
        let wave = &r["waves"][r["current_wave"].as_u64()? as usize];
        let in_flight = wave["bookings"]["updating"].as_u64().unwrap_or(0)
            + wave["bookings"]["baking"].as_u64().unwrap_or(0);
        (wave["stage"] == "production" && in_flight > 0).then_some(r)
    })
    .await
}

/// Audit events (oldest first) whose action starts with `action`.
async fn audit(base: &str, admin: &str, action: &str) -> Vec<Value> {
    let page = get(base, admin, &format!("/audit?action={action}&limit=1000")).await;
    let mut events = page["items"].as_array().expect("events").clone();
    assert!(page["next"].is_null(), "more than one page of {action}");
    events.sort_by_key(|e| e["seq"].as_i64());
    events
}

/// The `booking.rollout` events of rollout `id`, as (seq, at, booking).
async fn starts(base: &str, admin: &str, id: &str) -> Vec<(i64, String, String)> {
    audit(base, admin, "booking.rollout")
        .await
        .iter()
        .filter(|e| e["after"]["rollout"] == id)
        .map(|e| {
            let object = e["object"].as_str().expect("object");
            let booking = object.strip_prefix("booking/").expect("a booking");
            let at = e["at"].as_str().expect("at").to_owned();
            (e["seq"].as_i64().expect("seq"), at, booking.to_owned())
        })
        .collect()
}

/// Exactly once: each of `started` has one `booking.rollout` of the rollout and no other
/// booking has any; `rollout.wave` goes 1, 2, … up to the current wave without gaps or
/// repeats; each start lies between its wave's `rollout.wave` and the next one.
async fn assert_exactly_once(base: &str, admin: &str, id: &str, started: &BTreeSet<String>) {
    let r = rollout(base, admin, id).await;
    let items = items(base, admin, id).await;
    let starts = starts(base, admin, id).await;
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, _, b) in &starts {
        *count.entry(b).or_default() += 1;
    }
    for b in started {
        assert_eq!(
            count.get(b.as_str()),
            Some(&1),
            "booking.rollout of {b}: {starts:?}"
        );
    }
    assert_eq!(
        count.len(),
        started.len(),
        "started only {started:?}: {starts:?}"
    );
    let object = format!("rollout/{id}");
    // (seq, at, wave number) of each `rollout.wave`.
    let waves: Vec<(i64, String, u64)> = audit(base, admin, "rollout.wave")
        .await
        .iter()
        .filter(|e| e["object"] == object.as_str())
        .map(|e| {
            let at = e["at"].as_str().unwrap().to_owned();
            (
                e["seq"].as_i64().unwrap(),
                at,
                e["after"]["wave"].as_u64().unwrap(),
            )
        })
        .collect();
    let numbers: Vec<u64> = waves.iter().map(|w| w.2).collect();
    let current = r["current_wave"].as_u64().expect("current wave");
    assert_eq!(
        numbers,
        (1..=current).collect::<Vec<_>>(),
        "rollout.wave events"
    );
    // A wave's bookings start in the tick that opens it (written in the same
    // transaction, just before its `rollout.wave`) or later, never after the next
    // wave opened.
    for (seq, at, b) in &starts {
        let wave = items[b]["wave"].as_u64().expect("wave") as usize;
        let previous = wave.checked_sub(2).map_or(0, |w| waves[w].0);
        let opened = wave.checked_sub(1).map(|w| waves[w].1.as_str());
        let next = waves.get(wave).map_or(i64::MAX, |w| w.0);
        assert!(
            previous < *seq && opened.is_none_or(|o| o <= at.as_str()) && *seq < next,
            "{b} of wave {wave} started at {seq} ({at}), outside its wave: {waves:?}"
        );
    }
}

async fn leader(base: &str, admin: &str) -> bool {
    let text = metrics(base, admin).await;
    let line = text
        .lines()
        .find(|l| l.starts_with("verbund_rollout_engine_leader "))
        .unwrap_or_else(|| panic!("no leader metric:\n{text}"));
    line.ends_with(" 1")
}

/// A demo control plane on SQLite with the test's bookings on several sites, each site
/// simulated by its own process, everything active on [`OLD`] and [`NEW`] published.
struct Fleet {
    dir: tempfile::TempDir,
    data: PathBuf,
    server: Server,
    base: String,
    admin: String,
    /// Production bookings of the offering → site.
    bookings: BTreeMap<String, String>,
    agents: BTreeMap<String, Agent>,
}

const DEMO: [&str; 3] = ["--no-simulation", "--rollout-interval-ms", TICK_MS];

impl Fleet {
    async fn start() -> Fleet {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let server = Server::start_with("demo", &DEMO, &data).await;
        let base = server.base.clone();
        let admin = token(&data, "admin.token");
        let bookings = book(&base, &admin).await;
        let agents = agents(&base, &admin, &data, dir.path(), &bookings);
        all_active(&base, &admin, bookings.keys(), OLD).await;
        publish(&base, &admin).await;
        Fleet {
            dir,
            data,
            server,
            base,
            admin,
            bookings,
            agents,
        }
    }

    fn sites(&self) -> BTreeSet<String> {
        self.bookings.values().cloned().collect()
    }

    fn on(&self, site: &str) -> BTreeSet<String> {
        self.bookings
            .iter()
            .filter(|(_, s)| *s == site)
            .map(|(b, _)| b.clone())
            .collect()
    }
}

/// One simulated agent per site of `bookings`, reading `data`'s repository.
fn agents(
    base: &str,
    admin: &str,
    data: &Path,
    dir: &Path,
    bookings: &BTreeMap<String, String>,
) -> BTreeMap<String, Agent> {
    let repository = data.join("desired-state.git");
    let sites: BTreeSet<&String> = bookings.values().collect();
    sites
        .into_iter()
        .map(|s| (s.clone(), Agent::start(base, admin, &repository, dir, s)))
        .collect()
}

/// Every production booking and every reference booking of the rollout is active on
/// [`NEW`]; the reference bookings run in the `test` environment of their own site.
async fn assert_all_on_new(base: &str, admin: &str, id: &str, bookings: &BTreeMap<String, String>) {
    all_active(base, admin, bookings.keys(), NEW).await;
    let references: Vec<Value> = items(base, admin, id)
        .await
        .into_values()
        .filter(|i| i["reference"] == true)
        .collect();
    let ids: Vec<String> = references
        .iter()
        .map(|i| i["booking"].as_str().unwrap().to_owned())
        .collect();
    all_active(base, admin, &ids, NEW).await;
    for i in &references {
        let b = booking(base, admin, i["booking"].as_str().unwrap()).await;
        assert_eq!(b["environment"], "test", "{b}");
        assert_eq!(b["site"], i["site"], "{b}");
    }
}

/// Test stage on every site's reference booking, then canary, then production waves,
/// in order, as planned beforehand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_rollout_goes_through_every_stage_in_order() {
    let f = Fleet::start().await;
    let (base, admin) = (f.base.as_str(), f.admin.as_str());
    let plan = rollout_of_new(base, admin, 20, false).await;
    let stages = stages(&plan);
    let production = f.bookings.len() - 1;
    let mut expected = vec!["test", "canary"];
    expected.extend(std::iter::repeat_n("production", production));
    assert_eq!(stages, expected, "{plan:#}");
    let test_sites: BTreeSet<String> = plan["waves"][0]["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(test_sites, f.sites(), "a test stage on each affected site");

    let (id, r) = start_rollout(base, admin, 20).await;
    assert_eq!(self::stages(&r), stages, "the rollout follows its plan");
    let started = items(base, admin, &id).await;
    for w in plan["waves"].as_array().unwrap() {
        for planned in w["items"].as_array().unwrap() {
            let Some(b) = planned["booking"].as_str() else {
                continue;
            };
            assert_eq!(started[b]["wave"], w["index"], "{planned} in {w}");
        }
    }
    // Wave 0: one reference booking per affected site, in its test environment.
    let page = get(base, admin, &format!("/rollouts/{id}/items?wave=0")).await;
    let references = page["items"].as_array().expect("items");
    assert!(references.iter().all(|i| i["reference"] == true), "{page}");
    let sites: BTreeSet<String> = references
        .iter()
        .map(|i| i["site"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!((references.len(), &sites), (f.sites().len(), &f.sites()));

    let done = wait_state(base, admin, &id, "completed").await;
    assert!(done["finished_at"].is_string(), "{done:#}");
    assert_eq!(
        done["bookings"],
        json!({"passed": f.bookings.len() + f.sites().len()})
    );
    for (i, w) in done["waves"].as_array().unwrap().iter().enumerate() {
        assert_eq!(w["index"], i, "{w}");
        assert_eq!(w["status"], "done", "{w}");
        assert_eq!(w["stage"], stages[i], "{w}");
        let n = if i == 0 { f.sites().len() } else { 1 };
        assert_eq!(w["bookings"], json!({"passed": n}), "{w}");
    }
    for s in done["sites"].as_array().unwrap() {
        assert_eq!(s["test"], "passed", "{s}");
    }
    let production: BTreeSet<String> = f.bookings.keys().cloned().collect();
    assert_exactly_once(base, admin, &id, &production).await;
    assert_all_on_new(base, admin, &id, &f.bookings).await;
    // Nothing was rolled back.
    assert!(audit(base, admin, "booking.rollback").await.is_empty());
}

/// `verbund rollout plan` shows the plan the API makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbund_rollout_plan_shows_the_plan_of_the_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = Server::start_with("demo", &DEMO, &data).await;
    let (base, admin) = (server.base.as_str(), token(&data, "admin.token"));
    publish(base, &admin).await;
    let api = rollout_of_new(base, &admin, 20, false).await;
    assert!(
        !api["waves"].as_array().expect("waves").is_empty(),
        "{api:#}"
    );
    let flags = [
        ("--canary-percent", "20"),
        ("--wave-size", "1"),
        ("--max-concurrent-sites", "1"),
        ("--bake-seconds", "1"),
        ("--progress-deadline-seconds", "60"),
    ];
    let mut args = vec!["rollout", "plan", "--offering", OFFERING, "--version", NEW];
    args.extend(flags.iter().flat_map(|(k, v)| [*k, *v]));
    assert_eq!(cli(base, &admin, &args), api);
}

/// The smoke test of one site's test environment fails: that site's production
/// bookings are skipped and keep the old version, the other sites complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_test_stage_keeps_its_site_out_of_production() {
    let f = Fleet::start().await;
    let (base, admin) = (f.base.as_str(), f.admin.as_str());
    // The site with the most bookings fails the new version's smoke test (its
    // production bookings never get it, so only its reference booking is affected).
    let failing = f
        .sites()
        .into_iter()
        .max_by_key(|s| f.on(s).len())
        .expect("a site");
    f.agents[&failing].set_faults(&format!("failing_smoke: [\"{OFFERING}@{NEW}\"]\n"));
    let (id, _) = start_rollout(base, admin, 0).await;

    let done = wait_state(base, admin, &id, "completed").await;
    let items = items(base, admin, &id).await;
    for i in items.values() {
        let on_failing = i["site"] == failing.as_str();
        let expected = match (on_failing, i["reference"] == true) {
            (true, true) => "failed",
            (true, false) => "skipped",
            (false, _) => "passed",
        };
        assert_eq!(i["state"], expected, "{i}");
        if on_failing && i["reference"] == false {
            let reason = i["reason"].as_str().unwrap_or_default();
            assert!(reason.contains("test stage"), "{i}");
        }
    }
    let site = done["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == failing.as_str())
        .expect("the failing site");
    assert_eq!(site["test"], "failed", "{site}");
    assert_eq!(
        site["bookings"],
        json!({"skipped": f.on(&failing).len()}),
        "{site}"
    );

    let others: BTreeMap<String, String> = f
        .bookings
        .iter()
        .filter(|(_, s)| **s != failing)
        .map(|(b, s)| (b.clone(), s.clone()))
        .collect();
    all_active(base, admin, others.keys(), NEW).await;
    let kept = f.on(&failing);
    all_active(base, admin, &kept, OLD).await;
    let started: BTreeSet<String> = others.keys().cloned().collect();
    assert_exactly_once(base, admin, &id, &started).await;
}

/// A booking of a production wave fails its smoke test on the new version: the rollout
/// halts with the reason, the booking goes back to its previous version (audited) and
/// recovers there; later waves never start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_in_a_production_wave_halts_and_rolls_back() {
    let f = Fleet::start().await;
    let (base, admin) = (f.base.as_str(), f.admin.as_str());
    let plan = rollout_of_new(base, admin, 0, false).await;
    // The second production wave's booking fails, on the new version only.
    let wave = &plan["waves"][2];
    assert_eq!(wave["stage"], "production", "{plan:#}");
    let victim = wave["items"][0]["booking"].as_str().unwrap().to_owned();
    let site = f.bookings[&victim].clone();
    f.agents[&site].set_faults(&format!("failing_smoke: [\"{victim}@{NEW}\"]\n"));
    let (id, _) = start_rollout(base, admin, 0).await;

    let halted = wait_state(base, admin, &id, "halted").await;
    let reason = halted["reason"].as_str().expect("a reason");
    assert!(
        reason.contains("wave 2") && reason.contains("1 of 1 bookings failed"),
        "{reason}"
    );
    assert_eq!(halted["current_wave"], 2, "{halted:#}");
    let items = items(base, admin, &id).await;
    assert_eq!(items[&victim]["state"], "failed", "{:#}", items[&victim]);
    let mut started = BTreeSet::new();
    for (b, i) in &items {
        match i["wave"].as_u64().unwrap() {
            0 | 1 => assert_eq!(i["state"], "passed", "{i}"),
            2 => {}
            _ => assert_eq!(i["state"], "pending", "later waves wait: {i}"),
        }
        if i["wave"].as_u64().unwrap() >= 1 && i["state"] != "pending" {
            started.insert(b.clone());
        }
    }
    // Rolled back to the old version, audited, and active there again.
    let rollbacks = audit(base, admin, "booking.rollback").await;
    assert_eq!(rollbacks.len(), 1, "{rollbacks:#?}");
    let back = &rollbacks[0];
    assert_eq!(back["object"], format!("booking/{victim}"));
    assert_eq!(back["actor"], "system/rollouts");
    assert_eq!(back["before"]["version"], NEW, "{back}");
    assert_eq!(back["after"]["version"], OLD, "{back}");
    assert_eq!(back["after"]["rollout"], id.as_str(), "{back}");
    all_active(base, admin, [&victim], OLD).await;
    // The bookings of later waves were never touched.
    let untouched: Vec<&String> = items
        .iter()
        .filter(|(_, i)| i["state"] == "pending")
        .map(|(b, _)| b)
        .collect();
    assert!(!untouched.is_empty());
    all_active(base, admin, untouched, OLD).await;
    assert_exactly_once(base, admin, &id, &started).await;
    // Halted stays halted: the engine starts nothing more.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rollout(base, admin, &id).await["state"], "halted");
    assert_eq!(starts(base, admin, &id).await.len(), started.len());
}

/// Pause (CLI) stops new starts while the wave's booking finishes on its site; resume
/// (CLI) goes on; abort (CLI) rolls back every booking the rollout changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_abort_through_the_cli() {
    let f = Fleet::start().await;
    let (base, admin) = (f.base.as_str(), f.admin.as_str());
    let (id, _) = start_rollout(base, admin, 20).await;

    let mid = mid_production_wave(base, admin, &id).await;
    let paused = cli(base, admin, &["rollout", "pause", &id]);
    assert_eq!(paused["state"], "paused", "{paused:#}");
    let wave = paused["current_wave"].as_u64().unwrap();
    assert!(wave >= mid["current_wave"].as_u64().unwrap());
    // The in-flight booking becomes active on the new version on its site…
    let before = items(base, admin, &id).await;
    let in_flight: Vec<String> = before
        .iter()
        .filter(|(_, i)| i["state"] == "updating" || i["state"] == "baking")
        .map(|(b, _)| b.clone())
        .collect();
    assert!(!in_flight.is_empty(), "{before:#?}");
    all_active(base, admin, &in_flight, NEW).await;
    let starts_paused = starts(base, admin, &id).await;
    // …while the paused engine decides nothing: ten ticks later, no item moved.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let r = rollout(base, admin, &id).await;
    assert_eq!(
        (r["state"].as_str(), r["current_wave"].as_u64()),
        (Some("paused"), Some(wave))
    );
    assert_eq!(
        items(base, admin, &id).await,
        before,
        "nothing moves while paused"
    );
    assert_eq!(starts(base, admin, &id).await, starts_paused);
    let pending = before.values().filter(|i| i["state"] == "pending").count();
    assert!(pending > 0, "later waves are pending: {before:#?}");

    let resumed = cli(base, admin, &["rollout", "resume", &id]);
    assert_eq!(resumed["state"], "running", "{resumed:#}");
    until("the next wave starts", ROLLOUT_LIMIT, async || {
        (starts(base, admin, &id).await.len() > starts_paused.len()).then_some(())
    })
    .await;

    let aborted = cli(base, admin, &["rollout", "abort", &id]);
    assert_eq!(aborted["state"], "aborted", "{aborted:#}");
    assert_eq!(aborted["reason"], "aborted by user/admin", "{aborted:#}");
    let started: BTreeSet<String> = starts(base, admin, &id)
        .await
        .into_iter()
        .map(|(_, _, b)| b)
        .collect();
    let after = items(base, admin, &id).await;
    for (b, i) in &after {
        if i["reference"] == true {
            continue;
        }
        let expected = if started.contains(b) {
            "rolled-back"
        } else {
            "skipped"
        };
        assert_eq!(i["state"], expected, "{i}");
    }
    let rollbacks: BTreeSet<String> = audit(base, admin, "booking.rollback")
        .await
        .iter()
        .filter(|e| e["actor"] == "user/admin" && e["after"]["version"] == OLD)
        .map(|e| {
            e["object"]
                .as_str()
                .unwrap()
                .trim_start_matches("booking/")
                .to_owned()
        })
        .collect();
    assert_eq!(
        rollbacks, started,
        "every changed booking is rolled back, audited"
    );
    all_active(base, admin, f.bookings.keys(), OLD).await;
    assert_exactly_once(base, admin, &id, &started).await;
    let listed = cli(base, admin, &["rollout", "list", "--state", "aborted"]);
    assert_eq!(listed[0]["id"], id.as_str(), "{listed:#}");
}

/// The control plane is killed with SIGKILL in the middle of a production wave and
/// restarted on the same data folder and port: the rollout completes, no wave is
/// repeated or skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_wave_repeats_and_skips_nothing() {
    let mut f = Fleet::start().await;
    let (id, _) = start_rollout(&f.base, &f.admin, 20).await;

    let mid = mid_production_wave(&f.base, &f.admin, &id).await;
    f.server.kill();
    eprintln!(
        "killed in wave {} of {}",
        mid["current_wave"],
        mid["waves"].as_array().unwrap().len()
    );
    let port = f.server.port();
    f.server = Server::start_on("demo", &DEMO, &f.data, port).await;
    let (base, admin) = (f.base.as_str(), f.admin.as_str());

    wait_state(base, admin, &id, "completed").await;
    let production: BTreeSet<String> = f.bookings.keys().cloned().collect();
    assert_exactly_once(base, admin, &id, &production).await;
    assert_all_on_new(base, admin, &id, &f.bookings).await;
    let verified = get(base, admin, "/audit/verify").await;
    assert_eq!(verified["intact"], true, "{verified}");
    drop(f.dir);
}

/// Two replicas on one PostgreSQL database: the first leads the engine and is killed
/// with SIGKILL mid-rollout; the second takes over and finishes it exactly once. The
/// simulated sites report to the second and read its desired-state repository.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_replica_takes_over_on_postgres() {
    let db = common::Database::create("verbund_rollout");
    let dir = tempfile::tempdir().expect("temp dir");
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let shared = [&db.args()[..], &["--rollout-interval-ms", TICK_MS]].concat();
    let mut a = Server::start_with(
        "demo",
        &[&shared[..], &["--no-simulation", "--replica", "a"]].concat(),
        &data_a,
    )
    .await;
    let b = Server::start_with(
        "serve",
        &[&shared[..], &["--replica", "b"]].concat(),
        &data_b,
    )
    .await;
    let admin = token(&data_a, "admin.token");
    let base = b.base.as_str();
    assert!(leader(&a.base, &admin).await, "the first replica leads");
    assert!(!leader(base, &admin).await, "the second follows");

    let bookings = book(base, &admin).await;
    let _agents = agents(base, &admin, &data_b, dir.path(), &bookings);
    all_active(base, &admin, bookings.keys(), OLD).await;
    publish(base, &admin).await;
    let (id, _) = start_rollout(base, &admin, 20).await;

    let mid = mid_production_wave(base, &admin, &id).await;
    assert!(leader(&a.base, &admin).await && !leader(base, &admin).await);
    a.kill();
    eprintln!("leader killed in wave {}", mid["current_wave"]);
    let took = Instant::now();
    until(
        "the second replica leads",
        Duration::from_secs(15),
        async || leader(base, &admin).await.then_some(()),
    )
    .await;
    eprintln!(
        "the second replica leads {:?} after the kill",
        took.elapsed()
    );

    wait_state(base, &admin, &id, "completed").await;
    let production: BTreeSet<String> = bookings.keys().cloned().collect();
    assert_exactly_once(base, &admin, &id, &production).await;
    assert_all_on_new(base, &admin, &id, &bookings).await;
    let verified = get(base, &admin, "/audit/verify").await;
    assert_eq!(verified["intact"], true, "{verified}");
    drop(b);
    drop(db);
}

// ---------------------------------------------------------------------------------------
// One desired-state history across replicas

/// Whether the replica at `base` writes the desired state (its `/metrics`).
async fn writer(base: &str, admin: &str) -> bool {
    let text = metrics(base, admin).await;
    let line = text
        .lines()
        .find(|l| l.starts_with("verbund_desired_state_writer "))
        .unwrap_or_else(|| panic!("no writer metric:\n{text}"));
    line.ends_with(" 1")
}

/// Runs git in `dir`; its standard output (it must succeed).
fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The `Audit-Event:` trailers of every commit of `repo`'s history, one list per commit.
fn named_events(repo: &Path) -> Vec<Vec<i64>> {
    git_in(repo, &["log", "--format=%B%x00"])
        .split('\0')
        .map(|message| {
            message
                .lines()
                .filter_map(|l| l.strip_prefix("Audit-Event: "))
                .map(|s| s.trim().parse().expect("a sequence number"))
                .collect()
        })
        .collect()
}

/// Books a small PostgreSQL through `base` every 250 ms until `stop`, for the
/// organisations of [`ORGANISATIONS`] in turn; the placed bookings (id, site).
async fn book_series(
    base: String,
    admin: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<(String, String)> {
    let mut orgs = Vec::new();
    for key in ORGANISATIONS {
        let found = get(&base, &admin, &format!("/organisations?key={key}")).await;
        orgs.push(found["items"][0]["id"].as_str().expect("id").to_owned());
    }
    let mut placed = Vec::new();
    for n in 0.. {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let body = json!({
            "organisation": orgs[n % orgs.len()],
            "offering": "postgresql",
            "plan": "s",
            "config": {"database": format!("failover_{n}")}
        });
        let created = post(&base, &admin, "/bookings", &body, 201).await;
        let b = &created["booking"];
        if b["state"] == "placed" {
            placed.push((
                b["id"].as_str().expect("id").to_owned(),
                b["site"].as_str().expect("site").to_owned(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    placed
}

/// Several replicas, one desired-state history (on PostgreSQL, through the real
/// binaries): replica `a` writes and pushes to a bare repository, `b` follows it commit
/// for commit and serves its own copies; `a` is killed with SIGKILL in the middle of a
/// production wave while bookings keep arriving through `b`. Then `b` writes within
/// seconds and continues the same line in every repository (its first commit's parent is
/// `a`'s last; `a`'s copy is an ancestor of `b`'s), every audit event is named by at most
/// one commit and each booking's and each rollout start's by exactly one, each site's
/// repository fetched from `b` over Git holds every booking as the API renders it, and no
/// push was refused. Prints the failover time (kill → `b`'s first commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_writer_continues_the_one_desired_state_history() {
    let db = common::Database::create("verbund_rollout");
    let dir = tempfile::tempdir().expect("temp dir");
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let remote = dir.path().join("remote.git");
    git_in(
        dir.path(),
        &["init", "-q", "--bare", "-b", "main", "remote.git"],
    );
    let remote_arg = remote.display().to_string();
    let shared = [
        &db.args()[..],
        &[
            "--rollout-interval-ms",
            TICK_MS,
            "--git-remote",
            remote_arg.as_str(),
        ],
    ]
    .concat();
    let mut a = Server::start_with(
        "demo",
        &[&shared[..], &["--no-simulation", "--replica", "a"]].concat(),
        &data_a,
    )
    .await;
    let b = Server::start_with(
        "serve",
        &[&shared[..], &["--replica", "b"]].concat(),
        &data_b,
    )
    .await;
    let admin = token(&data_a, "admin.token");
    let base = b.base.as_str();
    let (whole_a, whole_b) = (
        data_a.join("desired-state.git"),
        data_b.join("desired-state.git"),
    );
    assert!(writer(&a.base, &admin).await, "the first replica writes");
    assert!(!writer(base, &admin).await, "the second follows");
    assert_eq!(
        git_in(&whole_b, &["rev-parse", "HEAD"]),
        git_in(&whole_a, &["rev-parse", "HEAD"]),
        "the second starts on the first's history"
    );

    let bookings = book(base, &admin).await;
    let _agents = agents(base, &admin, &data_b, dir.path(), &bookings);
    all_active(base, &admin, bookings.keys(), OLD).await;
    publish(base, &admin).await;
    let (id, _) = start_rollout(base, &admin, 20).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let series = tokio::spawn(book_series(base.to_owned(), admin.clone(), stop.clone()));

    let mid = mid_production_wave(base, &admin, &id).await;
    assert!(writer(&a.base, &admin).await && !writer(base, &admin).await);
    let killed = chrono::Utc::now();
    a.kill();
    let took = Instant::now();
    eprintln!("writer killed in wave {}", mid["current_wave"]);
    until(
        "the second replica writes",
        Duration::from_secs(15),
        async || writer(base, &admin).await.then_some(()),
    )
    .await;
    let writes_after = took.elapsed();

    wait_state(base, &admin, &id, "completed").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let series = series.await.expect("the series of bookings");
    assert!(series.len() >= 5, "bookings kept arriving: {series:?}");
    // Everything delivered and pushed.
    let status = until(
        "delivered and pushed",
        Duration::from_secs(30),
        async || {
            let s = get(base, &admin, "/desired-state").await;
            let done = s["delivered_event"].as_i64()? >= s["latest_event"].as_i64()?
                && s["pushed"] == s["head"]
                && !s["head"].is_null();
            done.then_some(s)
        },
    )
    .await;
    assert!(
        status["writer"] == true && status["push_error"].is_null(),
        "{status:#}"
    );

    // One line per repository in the shared history: numbered without gaps, each commit
    // moving the branch from the one before; the second replica's first commit follows
    // the first replica's last.
    let rows = db.query(
        "SELECT repository, seq, COALESCE(old, ''), new, written_by, created_at \
         FROM desired_state_commits ORDER BY repository, seq",
    );
    let mut by_repository: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for row in rows {
        by_repository.entry(row[0].clone()).or_default().push(row);
    }
    let mut first_by_b = None;
    for (repository, commits) in &by_repository {
        let mut previous = String::new();
        for (i, c) in commits.iter().enumerate() {
            assert_eq!(c[1], (i + 1).to_string(), "{repository}: {commits:?}");
            assert_eq!(c[2], previous, "{repository} is one line: {commits:?}");
            previous = c[3].clone();
        }
        if let Some(handover) = commits.iter().position(|c| c[4] == "b") {
            assert!(
                commits[handover..].iter().all(|c| c[4] == "b"),
                "{repository}: only b writes after a: {commits:?}"
            );
            if repository == "desired-state" {
                assert!(handover > 0, "a wrote before b");
                first_by_b = Some(commits[handover].clone());
            }
        }
    }
    let first_by_b = first_by_b.expect("b committed to the whole desired state");
    let first_at = chrono::DateTime::parse_from_rfc3339(&first_by_b[5]).expect("a time");
    let failover = first_at.with_timezone(&chrono::Utc) - killed;
    eprintln!(
        "failover: b writes {writes_after:?} after the kill; its first commit {} ms after the kill",
        failover.num_milliseconds()
    );
    assert!(failover < chrono::Duration::seconds(10), "{failover}");

    // The replicas' own repositories agree: b's holds the shared history, a's (as it was
    // killed) is a part of it, and the first commit of b's is a child of a's last.
    let whole = &by_repository["desired-state"];
    let shared_line: Vec<String> = whole.iter().rev().map(|c| c[3].clone()).collect();
    assert_eq!(
        git_in(&whole_b, &["rev-list", "HEAD"])
            .lines()
            .collect::<Vec<_>>(),
        shared_line,
        "b's repository is the shared history"
    );
    assert_eq!(
        git_in(&whole_b, &["rev-parse", &format!("{}^", first_by_b[3])]),
        first_by_b[2]
    );
    let a_head = git_in(&whole_a, &["rev-parse", "HEAD"]);
    assert_eq!(
        git_in(&whole_a, &["rev-list", &a_head]),
        git_in(&whole_b, &["rev-list", &a_head]),
        "a's history is b's up to a's last commit"
    );
    git_in(&whole_b, &["merge-base", "--is-ancestor", &a_head, "HEAD"]);
    git_in(&whole_b, &["fsck", "--full", "--strict", "--no-progress"]);
    assert_eq!(
        git_in(&remote, &["rev-list", "HEAD"]),
        git_in(&whole_b, &["rev-list", "HEAD"]),
        "the remote got the one history, fast-forward after fast-forward"
    );
    for server_log in [a.log_text(), b.log_text()] {
        assert!(
            !server_log.contains("pushing the desired state failed"),
            "a refused push:\n{server_log}"
        );
    }

    // Exactly once: no audit event is named by two commits; each rollout start and each
    // booking of the series is named by one.
    let named = named_events(&whole_b);
    let mut count: BTreeMap<i64, usize> = BTreeMap::new();
    for seq in named.iter().flatten() {
        *count.entry(*seq).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "named by several commits: {twice:?}");
    for (seq, _, booking) in starts(base, &admin, &id).await {
        assert_eq!(count.get(&seq), Some(&1), "the start of {booking}");
    }
    for (booking, _) in &series {
        let events = get(
            base,
            &admin,
            &format!("/audit?object=booking/{booking}&action=booking.create"),
        )
        .await;
        let seq = events["items"][0]["seq"]
            .as_i64()
            .expect("a booking.create");
        assert_eq!(count.get(&seq), Some(&1), "the booking {booking}");
    }

    // Each site's repository, fetched from b over Git with its own token, holds every
    // booking of the series as the API renders it, on the shared line.
    let sites: BTreeSet<&String> = series.iter().map(|(_, s)| s).collect();
    for site in sites {
        let created = post(
            base,
            &admin,
            &format!("/sites/{site}/tokens"),
            &json!({"name": "git"}),
            201,
        )
        .await;
        let secret = created["secret"].as_str().expect("a secret");
        let url = base.replacen("http://", &format!("http://site:{secret}@"), 1)
            + &format!("/git/{site}.git");
        let clone = dir.path().join(format!("clone-{site}"));
        git_in(
            dir.path(),
            &["clone", "--quiet", &url, clone.to_str().expect("path")],
        );
        assert_eq!(
            git_in(&clone, &["rev-list", "HEAD"]),
            git_in(
                &data_b.join(format!("sites/{site}.git")),
                &["rev-list", "HEAD"]
            )
        );
        let repository = format!("sites/{site}");
        let shared_line: Vec<String> = by_repository[&repository]
            .iter()
            .rev()
            .map(|c| c[3].clone())
            .collect();
        assert_eq!(
            git_in(&clone, &["rev-list", "HEAD"])
                .lines()
                .collect::<Vec<_>>(),
            shared_line,
            "{site}"
        );
        for (booking, _) in series.iter().filter(|(_, s)| s == site) {
            let files = get(base, &admin, &format!("/bookings/{booking}/manifests")).await;
            let files = files.as_array().expect("files");
            assert!(!files.is_empty(), "{booking}");
            for f in files {
                let path = f["path"].as_str().expect("path");
                let content = std::fs::read_to_string(clone.join(path))
                    .unwrap_or_else(|e| panic!("{path} of {booking} in {site}'s repository: {e}"));
                assert_eq!(content, f["content"].as_str().expect("content"), "{path}");
            }
        }
    }

    let production: BTreeSet<String> = bookings.keys().cloned().collect();
    assert_exactly_once(base, &admin, &id, &production).await;
    assert_all_on_new(base, &admin, &id, &bookings).await;
    drop(b);
    drop(db);
}
