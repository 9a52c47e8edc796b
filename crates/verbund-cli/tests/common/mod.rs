//! The test kit of the binary's behaviour tests: the real `verbund` with none of the
//! caller's settings, a server on a free port that is killed when dropped (its log shown
//! when the test fails), and small API helpers.

#![allow(dead_code, reason = "not every test uses every helper")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_verbund");

/// A command of the binary with none of the caller's VERBUND_* settings.
pub fn verbund() -> Command {
    let mut c = Command::new(BIN);
    for var in [
        "VERBUND_SERVER",
        "VERBUND_TOKEN",
        "VERBUND_DATA",
        "VERBUND_DATABASE_URL",
        "VERBUND_LISTEN",
        "VERBUND_REPOSITORY_URL",
        "VERBUND_GIT_REMOTE",
    ] {
        c.env_remove(var);
    }
    c.env("VERBUND_LOG", "warn");
    c
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `verbund demo` or `verbund serve` on a data folder; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Server {
    /// Starts `verbund <command>` on `data` and waits until it is ready.
    pub async fn start(command: &str, data: &Path) -> Server {
        Self::start_with(command, &[], data).await
    }

    /// Starts `verbund <command> <extra…>` on `data` and waits until it is ready.
    pub async fn start_with(command: &str, extra: &[&str], data: &Path) -> Server {
        Self::start_on(command, extra, data, free_port()).await
    }

    /// Starts `verbund <command> <extra…>` on `data` listening on `port` (e.g. again on
    /// the port of a server that was killed) and waits until it is ready. Each start
    /// logs to a file of its own.
    pub async fn start_on(command: &str, extra: &[&str], data: &Path, port: u16) -> Server {
        let mut log = data.with_extension(format!("{port}.log"));
        for n in 1.. {
            if !log.exists() {
                break;
            }
            log = data.with_extension(format!("{port}-{n}.log"));
        }
        let file = std::fs::File::create(&log).expect("log file");
        let child = verbund()
            .args([command, "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("verbund starts");
        let mut server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/readyz", server.base)).await {
                if r.status().is_success() {
                    return server;
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "verbund {command} exited with {status}:\n{}",
                    server.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "verbund {command} did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port in the base URL")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash or the OOM killer would.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}", self.log_text());
        }
    }
}

/// Starts `verbund simulate` for one site, reading `repository` and the faults file
/// `faults`, reporting every `interval` to `base` with a site token minted with `admin`;
/// its output goes to `log`.
pub fn simulate(
    base: &str,
    admin: &str,
    site: &str,
    repository: &Path,
    faults: &Path,
    timing: [&str; 2],
    log: &Path,
) -> Child {
    let [interval, latency] = timing;
    let log = std::fs::File::create(log).expect("log file");
    verbund()
        .args(["simulate", "--server", base, "--site", site, "--repository"])
        .arg(repository)
        .args(["--interval", interval, "--latency", latency, "--faults"])
        .arg(faults)
        .env("VERBUND_TOKEN", admin)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("verbund simulate starts")
}

pub fn token(data: &Path, file: &str) -> String {
    std::fs::read_to_string(data.join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .trim()
        .to_owned()
}

/// The Prometheus text of `/metrics`, read with `token` (an account that may read them).
pub async fn metrics(base: &str, token: &str) -> String {
    let r = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .expect("metrics");
    assert!(r.status().is_success(), "GET /metrics: {}", r.status());
    r.text().await.expect("text")
}

pub async fn get(base: &str, token: &str, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.expect("JSON")
}

/// PUT `body`, a record as GET returned it (what the server keeps itself, its times and
/// latest version, is left out); the answer must be 200.
pub async fn put(base: &str, token: &str, path: &str, mut body: Value) -> Value {
    if let Some(map) = body.as_object_mut() {
        for kept in ["created_at", "updated_at", "latest_version"] {
            map.remove(kept);
        }
    }
    send(base, token, reqwest::Method::PUT, path, &body, 200).await
}

/// PATCH `body`; the answer must be 200.
pub async fn patch(base: &str, token: &str, path: &str, body: &Value) -> Value {
    send(base, token, reqwest::Method::PATCH, path, body, 200).await
}

/// Secrets by declaration, the vendor's and the operator's part: `field` of `offering`'s
/// configuration is declared secret (`writeOnly`), and `site` registers its age
/// `recipient`.
pub async fn declare_secret(
    base: &str,
    token: &str,
    offering: &str,
    field: &str,
    site: &str,
    recipient: &str,
) {
    let mut o = get(base, token, &format!("/offerings/{offering}")).await;
    o["config_schema"]["properties"][field] =
        serde_json::json!({"type": "string", "writeOnly": true});
    put(base, token, &format!("/offerings/{offering}"), o).await;
    let mut s = get(base, token, &format!("/sites/{site}")).await;
    s["age_recipient"] = serde_json::json!(recipient);
    put(base, token, &format!("/sites/{site}"), s).await;
}

/// The tenant's part: sets the declared-secret `field` of `booking` (as it was booked) to
/// `value`; the answer names the field as set and never shows the value.
pub async fn set_secret(base: &str, token: &str, booking: &Value, field: &str, value: &str) {
    let id = booking["id"].as_str().expect("a booking id");
    let mut config = booking["config"].clone();
    config[field] = serde_json::json!(value);
    let body = serde_json::json!({"config": config});
    let changed = patch(base, token, &format!("/bookings/{id}"), &body).await;
    assert_eq!(
        changed["secrets_set"],
        serde_json::json!([format!("/{field}")]),
        "{changed}"
    );
    assert!(!changed.to_string().contains(value), "{changed}");
}

/// POST `body`; the status must be `expected`.
pub async fn post(base: &str, token: &str, path: &str, body: &Value, expected: u16) -> Value {
    send(base, token, reqwest::Method::POST, path, body, expected).await
}

async fn send(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: &Value,
    expected: u16,
) -> Value {
    let r = reqwest::Client::new()
        .request(method.clone(), format!("{base}/api/v1{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    assert_eq!(status, expected, "{method} {path}: {text}");
    serde_json::from_str(&text).expect("JSON")
}

/// The PostgreSQL server the tests use when `VERBUND_TEST_POSTGRES` is not set.
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh PostgreSQL database on the server `VERBUND_TEST_POSTGRES` names (by default
/// the local one), for `verbund --database-url`; dropped when this is dropped. With the
/// federation key its replicas share (on PostgreSQL none is generated for them).
pub struct Database {
    pub name: String,
    pub url: String,
    admin: String,
    key: String,
    _key_dir: tempfile::TempDir,
}

/// Runs `sql` with psql on the database at `url`; its rows, fields separated by `|`.
fn psql(url: &str, sql: &str) -> Vec<Vec<String>> {
    let out = Command::new("psql")
        .args([url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

impl Database {
    /// Creates `<prefix>_<process>_<time>`.
    pub fn create(prefix: &str) -> Database {
        let admin =
            std::env::var("VERBUND_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a time after 1970")
            .as_nanos();
        let name = format!("{prefix}_{}_{nanos:x}", std::process::id());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let server = admin.rsplit_once('/').map_or(admin.as_str(), |(s, _)| s);
        let key_dir = tempfile::tempdir().expect("a folder for the federation key");
        let key = key_dir.path().join("federation.key");
        std::fs::write(
            &key,
            verbund_api::verbund_gaiax::generate_key().expect("a federation key"),
        )
        .expect("write the federation key");
        Database {
            url: format!("{server}/{name}"),
            name,
            admin,
            key: key.display().to_string(),
            _key_dir: key_dir,
        }
    }

    /// What a replica on this database is started with: its URL and the federation key.
    pub fn args(&self) -> [&str; 4] {
        [
            "--database-url",
            self.url.as_str(),
            "--federation-key",
            self.key.as_str(),
        ]
    }

    /// Runs `sql` on this database; its rows, fields separated by `|`.
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        psql(&self.url, sql)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.admin)
            .arg("-c")
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}
