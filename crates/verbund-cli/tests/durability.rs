//! A killed server loses no acknowledged write: SIGKILL `verbund serve` in the middle
//! of concurrent writes, restart it, and find every write that was answered with
//! success, with an audit chain that still verifies.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[allow(
    clippy::zombie_processes,
    reason = "`Server` kills and waits for the child on drop"
)]
async fn start(data: &Path) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_verbund"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("verbund serve starts");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
            if r.status().is_success() {
                return Server { child, base };
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("verbund serve did not become ready");
}

fn provider(n: usize) -> serde_json::Value {
    serde_json::json!({
        "name": format!("p-{n}"),
        "display_name": format!("Provider {n}"),
        "legal_form": "AöR",
        "public_law": true,
        "seat": {"city": "Kiel", "country": "DE"},
        "jurisdictions": ["DE"]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = start(dir.path()).await;
    let token = std::fs::read_to_string(dir.path().join("admin.token"))
        .expect("admin token written")
        .trim()
        .to_string();
    let client = reqwest::Client::new();

    // Eight writers put providers as fast as they can; the server is killed meanwhile.
    let mut writers = Vec::new();
    for w in 0..8 {
        let client = client.clone();
        let base = server.base.clone();
        let token = token.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..10_000 {
                let n = w * 100_000 + i;
                let r = client
                    .put(format!("{base}/api/v1/providers/p-{n}"))
                    .bearer_auth(&token)
                    .json(&provider(n))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => acknowledged.push(n),
                    _ => break,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.expect("writer"));
    }
    assert!(
        acknowledged.len() > 20,
        "too few writes before the kill: {}",
        acknowledged.len()
    );

    let server = start(dir.path()).await;
    for n in &acknowledged {
        let r = client
            .get(format!("{}/api/v1/providers/p-{n}", server.base))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "acknowledged provider p-{n} was lost");
    }
    let status: serde_json::Value = client
        .get(format!("{}/api/v1/audit/verify", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("verify")
        .json()
        .await
        .expect("json");
    assert_eq!(status["intact"], true, "{status}");
    // Bootstrap (user + token) plus at least one event per acknowledged write.
    assert!(status["verified"].as_i64().unwrap_or(0) >= acknowledged.len() as i64 + 2);

    let out = Command::new(env!("CARGO_BIN_EXE_verbund"))
        .args(["audit", "verify", "--data"])
        .arg(dir.path())
        .output()
        .expect("audit verify runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact"));
}
