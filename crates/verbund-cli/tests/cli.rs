//! The `verbund` client commands, end to end: a real `verbund serve` on a free port, and
//! the binary run against it as a user would, checking what it prints and its exit code.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_verbund");

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").port()
}

/// Whether `GET /healthz` answers 200.
fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.starts_with("HTTP/1.1 200")
}

/// A command of the binary with none of the caller's VERBUND_* settings.
fn verbund() -> Command {
    let mut c = Command::new(BIN);
    for var in [
        "VERBUND_SERVER",
        "VERBUND_TOKEN",
        "VERBUND_DATA",
        "VERBUND_DATABASE_URL",
        "VERBUND_LISTEN",
    ] {
        c.env_remove(var);
    }
    c.env("VERBUND_LOG", "warn");
    c
}

/// A running `verbund serve` on its own data folder; killed when dropped, also when a
/// test panics, and then its log is shown.
struct Server {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
    token: String,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("temporary folder");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("serve.log")).expect("log file");
        let child = verbund()
            .args(["serve", "--data"])
            .arg(dir.path().join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start verbund serve");
        let mut server = Server {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
            token: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !healthy(port) {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("verbund serve exited with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "verbund serve did not become healthy in time"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let token_file = server.data().join("admin.token");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&token_file)
                .expect("admin.token exists")
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o777,
                0o600,
                "admin.token must be readable by its owner only"
            );
        }
        server.token = std::fs::read_to_string(&token_file)
            .expect("read admin.token")
            .trim()
            .to_string();
        assert!(server.token.starts_with("vbd_"), "{}", server.token);
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes a file into the test's folder and returns its path.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path.display().to_string()
    }

    /// Creates the Bund through `verbund org create` and returns its id.
    fn create_bund(&self) -> String {
        let bund = self.file("bund.yaml", "name: Bund\nlevel: bund\n");
        self.json(&["org", "create", "-f", &bund])["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    /// Runs a client command as the federation admin (flags after the subcommand).
    fn run(&self, args: &[&str]) -> Run {
        self.run_as(&self.token, args)
    }

    fn run_as(&self, token: &str, args: &[&str]) -> Run {
        let out = verbund()
            .args(args)
            .args(["--server", &self.url, "--token", token])
            .output()
            .expect("run verbund");
        Run::new(args, out)
    }

    /// Runs a command expected to succeed and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.run(args).ok()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let out = self.ok(&a);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}):\n{out}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default();
            eprintln!("--- verbund serve log ---\n{log}");
        }
    }
}

/// The outcome of one run of the binary.
struct Run {
    args: String,
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn new(args: &[&str], out: Output) -> Run {
        Run {
            args: args.join(" "),
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(self) -> String {
        assert!(
            self.success,
            "`verbund {}` failed:\n{}\n{}",
            self.args, self.stdout, self.stderr
        );
        self.stdout
    }

    /// Asserts failure and returns stderr, which must be one `error: …` sentence.
    fn fails(self) -> String {
        assert!(
            !self.success,
            "`verbund {}` should have failed:\n{}",
            self.args, self.stdout
        );
        assert!(self.stderr.starts_with("error: "), "{}", self.stderr);
        self.stderr
    }
}

/// The arguments as the runner takes them.
fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn items(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not a list: {v}"))
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

const PROVIDER: &str = "\
name: nordwerk-it
display_name: Nordwerk IT AöR
legal_form: AöR
public_law: true
seat: {city: Hamburg, country: DE}
jurisdictions: [DE]
";

fn site(name: &str, region: &str, k8s: &str) -> String {
    format!(
        "- name: {name}
  display_name: Rechenzentrum {name}
  provider: nordwerk-it
  location: {{country: DE, region: {region}, city: Hamburg}}
  certifications:
    - {{scheme: iso27001, level: it-grundschutz, valid_until: 2027-09-30}}
  kubernetes_version: \"{k8s}\"
  capacity: {{cpu_millis: 64000, memory_mib: 262144, storage_gib: 10000}}
  environments: [test, prod]
  delivery: flux
"
    )
}

#[test]
fn directory_apply_refusals_and_audit() {
    let s = Server::start();

    // A provider from a file with one object, two sites from a file with a list.
    let provider = s.file("provider.yaml", PROVIDER);
    assert_eq!(
        s.ok(&["provider", "apply", "-f", &provider]),
        "provider/nordwerk-it created\n"
    );
    let sites = s.file(
        "sites.yaml",
        &(site("nordwerk-hh-1", "DE-HH", "1.31") + &site("nordwerk-hh-2", "DE-HH", "1.31")),
    );
    assert_eq!(
        lines(&s.ok(&["site", "apply", "-f", &sites])),
        ["site/nordwerk-hh-1 created", "site/nordwerk-hh-2 created"]
    );
    // Re-applying changes nothing; changing one site changes only that one.
    assert_eq!(
        lines(&s.ok(&["site", "apply", "-f", &sites])),
        [
            "site/nordwerk-hh-1 unchanged",
            "site/nordwerk-hh-2 unchanged"
        ]
    );
    assert_eq!(
        s.ok(&["provider", "apply", "-f", &provider]),
        "provider/nordwerk-it unchanged\n"
    );
    let changed = s.file(
        "changed.yaml",
        &(site("nordwerk-hh-1", "DE-HH", "1.32") + &site("nordwerk-hh-2", "DE-HH", "1.31")),
    );
    assert_eq!(
        lines(&s.ok(&["site", "apply", "-f", &changed])),
        [
            "site/nordwerk-hh-1 configured",
            "site/nordwerk-hh-2 unchanged"
        ]
    );

    let list = s.json(&["site", "list"]);
    assert_eq!(items(&list).len(), 2, "{list}");
    assert_eq!(list[0]["kubernetes_version"], "1.32");
    let table = s.ok(&["site", "list", "--provider", "nordwerk-it"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "PROVIDER",
            "REGION",
            "CITY",
            "K8S",
            "DELIVERY",
            "CERTIFICATIONS"
        ]
    );
    assert!(
        table.contains("iso27001 it-grundschutz until 2027-09-30"),
        "{table}"
    );
    let yaml = s.ok(&["provider", "get", "nordwerk-it", "-o", "yaml"]);
    let p: Value = serde_yaml_ng::from_str(&yaml).expect("provider get -o yaml is YAML");
    assert_eq!(p["seat"]["city"], "Hamburg");

    // The server refuses an invalid site; the sentence names the field; nothing changes.
    let bad = s.file("bad.yaml", &site("nordwerk-xx-1", "XX-1", "1.31"));
    let err = s.run(&["site", "apply", "-f", &bad]).fails();
    assert!(
        err.contains("the server refused the request (422 Unprocessable input)"),
        "{err}"
    );
    assert!(
        err.contains("/location/region: `XX-1` is not an ISO 3166-2 code"),
        "{err}"
    );
    assert!(err.contains("nothing was applied"), "{err}");
    // Several documents: the first is applied, the second fails, the third is not tried.
    let mixed = s.file(
        "mixed.yaml",
        &format!(
            "{}---\n{}---\n{}",
            site("nordwerk-hh-2", "DE-HH", "1.31"),
            site("nordwerk-xx-1", "XX-1", "1.31"),
            site("nordwerk-hh-3", "DE-HH", "1.31")
        ),
    );
    let run = s.run(&["site", "apply", "-f", &mixed]);
    assert_eq!(run.stdout, "site/nordwerk-hh-2 unchanged\n");
    let err = run.fails();
    assert!(
        err.contains("stopped at site/nordwerk-xx-1, object 2 of 3")
            && err.contains("applied before it: site/nordwerk-hh-2; 1 after it not attempted"),
        "{err}"
    );
    assert_eq!(items(&s.json(&["site", "list"])).len(), 2);

    // Files are checked before anything is sent: unknown fields and broken YAML.
    let unknown = s.file(
        "unknown.yaml",
        &site("nordwerk-hh-9", "DE-HH", "1.31")
            .replace("city: Hamburg}", "city: Hamburg, zip: 20095}"),
    );
    let err = s.run(&["site", "apply", "-f", &unknown]).fails();
    assert!(
        err.contains("unknown.yaml (item 1, `nordwerk-hh-9`): /location/zip: unknown field `zip`"),
        "{err}"
    );
    let broken = s.file("broken.yaml", "- name: a\n  location: {country: DE\n");
    let err = s.run(&["site", "apply", "-f", &broken]).fails();
    assert!(
        err.contains("broken.yaml is not valid YAML or JSON") && err.contains("line"),
        "{err}"
    );
    assert_eq!(items(&s.json(&["site", "list"])).len(), 2);

    // A wrong token, no server, no token at all.
    let err = s.run_as("vbd_wrong", &["site", "list"]).fails();
    assert!(
        err.contains("did not accept the API token") && err.contains("401"),
        "{err}"
    );
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let run = verbund()
        .args(["site", "list", "--server", &nobody, "--token", &s.token])
        .output()
        .unwrap();
    let err = Run::new(&["site", "list"], run).fails();
    assert!(
        err.contains(&format!(
            "cannot reach the verbund server at {nobody}: is `verbund serve` running?"
        )),
        "{err}"
    );
    let run = verbund()
        .current_dir(s.dir.path())
        .args(["site", "list", "--server", &s.url])
        .env("VERBUND_DATA", "/nonexistent")
        .output()
        .unwrap();
    let err = Run::new(&["site", "list"], run).fails();
    assert!(
        err.contains("no API token") && err.contains("/nonexistent/admin.token"),
        "{err}"
    );
    // Without `--token`, the admin token in VERBUND_DATA is used; env vars work too.
    let run = verbund()
        .env("VERBUND_SERVER", &s.url)
        .env("VERBUND_DATA", s.data())
        .args(["site", "list"])
        .output()
        .unwrap();
    assert!(Run::new(&["site", "list"], run)
        .ok()
        .contains("nordwerk-hh-1"));

    // Organisations: the Bund, then a Land below it.
    let bund = s.file(
        "bund.yaml",
        "name: Bundesrepublik Deutschland\nlevel: bund\n",
    );
    let bund = s.json(&["org", "create", "-f", &bund]);
    let bund_id = bund["id"].as_str().expect("the Bund has an id");
    let land = s.file(
        "land.json",
        &format!(r#"[{{"name": "Hamburg", "level": "land", "ars": "02", "parent": "{bund_id}", "population": 1892122}}]"#),
    );
    let out = s.ok(&["org", "create", "-f", &land]);
    assert!(
        out.starts_with("organisation/") && out.ends_with("created (Hamburg, land)\n"),
        "{out}"
    );
    let lands = s.json(&["org", "list", "--level", "land"]);
    assert_eq!(items(&lands).len(), 1);
    assert_eq!(lands[0]["name"], "Hamburg");
    let table = s.ok(&["org", "list", "--level", "land"]);
    assert!(
        table.starts_with("ID") && table.contains("1892122"),
        "{table}"
    );
    let by_key = s.json(&["org", "get", "02"]);
    assert_eq!(by_key["name"], "Hamburg");
    assert_eq!(s.json(&["org", "get", bund_id])["level"], "bund");
    let err = s.run(&["org", "get", "17"]).fails();
    assert!(
        err.contains("no organisation has the ARS or AGS `17`"),
        "{err}"
    );
    let orphan = s.file("orphan.yaml", "name: Kreis ohne Land\nlevel: kreis\n");
    let err = s.run(&["org", "create", "-f", &orphan]).fails();
    assert!(err.contains("/parent"), "{err}");

    // Every change is in the audit trail, and the chain is intact.
    let audit = s.ok(&["audit", "list", "--all", "--limit", "3"]);
    for action in [
        "provider.create",
        "site.create",
        "site.update",
        "organisation.create",
        "user.create",
    ] {
        assert!(audit.contains(action), "{action} missing:\n{audit}");
    }
    let sites_only = s.json(&["audit", "list", "--action", "site."]);
    assert_eq!(items(&sites_only).len(), 3, "{sites_only}");
    assert!(items(&sites_only).iter().all(|e| e["object"]
        .as_str()
        .unwrap_or_default()
        .starts_with("site/")));
    let verify = verbund()
        .args(["audit", "verify", "--data"])
        .arg(s.data())
        .output()
        .unwrap();
    let out = Run::new(&["audit", "verify"], verify).ok();
    assert!(out.contains("intact"), "{out}");
}

/// Issue 17 through the binary: an operator's `site apply` that adds a certification only
/// proposes it (the rest applies); the operator cannot approve; a federation admin
/// approves with `verbund facts approve`, after which `verbund facts site` names both.
#[test]
fn operators_propose_placement_facts_that_a_federation_admin_approves() {
    let s = Server::start();
    s.ok(&[
        "provider",
        "apply",
        "-f",
        &s.file("provider.yaml", PROVIDER),
    ]);
    s.ok(&[
        "site",
        "apply",
        "-f",
        &s.file("site.yaml", &site("nordwerk-hh-1", "DE-HH", "1.31")),
    ]);
    let user = s.json(&[
        "user",
        "create",
        "-f",
        &s.file(
            "operator.yaml",
            "name: betrieb\ndisplay_name: Betrieb Nordwerk\nmemberships:\n  - {role: provider-operator, provider: nordwerk-it}\n",
        ),
    ]);
    let id = user[0]["id"]
        .as_str()
        .or(user["id"].as_str())
        .expect("user id")
        .to_string();
    let token = s.json(&["token", "create", "betrieb", "--user", &id])["secret"]
        .as_str()
        .expect("secret")
        .to_string();

    // The same site with a newer Kubernetes (operational) and a BSI C5 type 2 (a fact).
    let iso = "    - {scheme: iso27001, level: it-grundschutz, valid_until: 2027-09-30}\n";
    let certified = site("nordwerk-hh-1", "DE-HH", "1.32").replace(
        iso,
        &format!("{iso}    - {{scheme: bsi-c5, level: type2, valid_until: 2099-12-31}}\n"),
    );
    let out = s
        .run_as(
            &token,
            &["site", "apply", "-f", &s.file("certified.yaml", &certified)],
        )
        .ok();
    let proposal = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix("fact-proposal/"))
        .map(|w| w.trim_end_matches(','))
        .unwrap_or_else(|| panic!("no proposal named: {out}"))
        .to_string();
    assert!(
        out.contains("waiting for a federation admin's approval"),
        "{out}"
    );
    let site_now = s.json(&["site", "get", "nordwerk-hh-1"]);
    assert_eq!(site_now["kubernetes_version"], "1.32", "the rest applied");
    assert_eq!(site_now["certifications"].as_array().map(Vec::len), Some(1));
    let pending = s
        .run_as(&token, &["facts", "list", "--state", "pending"])
        .ok();
    assert!(pending.contains(&proposal), "{pending}");

    let err = s.run_as(&token, &["facts", "approve", &proposal]).fails();
    assert!(err.contains("403"), "{err}");
    let out = s.ok(&["facts", "approve", &proposal]);
    assert!(
        out.starts_with(&format!("fact-proposal/{proposal} approved")),
        "{out}"
    );
    let sheet = s.json(&["facts", "site", "nordwerk-hh-1"]);
    let c = items(&sheet["facts"])
        .iter()
        .find(|f| f["field"] == "certifications")
        .expect("certifications")
        .clone();
    assert_eq!(c["stated_by"], "user/betrieb");
    assert_eq!(c["approved_by"], "user/admin");
    let table = s.ok(&["facts", "site", "nordwerk-hh-1"]);
    assert!(table.contains("no pending proposals"), "{table}");
    let err = s.run(&["facts", "approve", &proposal]).fails();
    assert!(
        err.contains("409") && err.contains("approved already"),
        "{err}"
    );
}

#[test]
fn tokens_are_shown_once_and_revocable() {
    let s = Server::start();
    let out = s.ok(&["token", "create", "ci", "--expires-in-days", "30"]);
    assert_eq!(out.matches("vbd_").count(), 1, "{out}");
    let secret = out
        .split_whitespace()
        .find(|w| w.starts_with("vbd_"))
        .expect("the secret is printed")
        .to_string();
    let id = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix("token/"))
        .expect("the token id is printed")
        .to_string();

    let me = s.run_as(&secret, &["user", "me"]).ok();
    assert!(
        me.contains("admin") && me.contains("federation-admin"),
        "{me}"
    );
    let tokens = s.ok(&["token", "list"]);
    assert!(
        tokens.contains(&id) && tokens.contains("ci") && !tokens.contains("vbd_"),
        "{tokens}"
    );

    assert_eq!(
        s.ok(&["token", "revoke", &id]),
        format!("token/{id} revoked\n")
    );
    let err = s.run_as(&secret, &["user", "me"]).fails();
    assert!(
        err.contains("API token") && err.contains("revoked"),
        "{err}"
    );
    let list = s.json(&["token", "list"]);
    let ci = items(&list)
        .iter()
        .find(|t| t["id"] == id.as_str())
        .expect("ci is listed");
    assert!(ci["revoked_at"].is_string(), "{ci}");
    assert!(s.ok(&["token", "list"]).contains("revoked"));
    let err = s.run(&["token", "revoke", "no-such-token"]).fails();
    assert!(err.contains("404"), "{err}");
}

fn offering(vendor: &str, versions: &[&str]) -> String {
    let mut text = format!(
        "offering:
  name: nextcloud
  display_name: Nextcloud
  vendor: {vendor}
  category: saas
  data_classes: [personal]
  plans:
    - name: s
      display_name: Small
      replicas: 1
      resources: {{cpu_millis: 500, memory_mib: 1024, storage_gib: 50}}
      monthly_price_cents: 9900
versions:
"
    );
    for v in versions {
        text.push_str(&format!(
            "  - version: {v}
    package: {{type: helm, repository: https://nextcloud.github.io/helm, chart: nextcloud, chart_version: {v}}}
"
        ));
    }
    text
}

#[test]
fn offerings_publish_only_new_versions_that_grow() {
    let s = Server::start();
    let bund_id = s.create_bund();
    let vendor = s.file(
        "vendor.yaml",
        &format!("name: Open-Source-Verband der Verwaltung\nlevel: verband\nparent: {bund_id}\n"),
    );
    let vendor_id = s.json(&["org", "create", "-f", &vendor])["id"]
        .as_str()
        .expect("id")
        .to_string();

    let file = s.file(
        "nextcloud.yaml",
        &offering(&vendor_id, &["29.0.0", "29.0.1"]),
    );
    assert_eq!(
        lines(&s.ok(&["offering", "publish", "-f", &file])),
        [
            "offering/nextcloud created",
            "offering/nextcloud@29.0.0 published",
            "offering/nextcloud@29.0.1 published"
        ]
    );
    assert_eq!(
        lines(&s.ok(&["offering", "publish", "-f", &file])),
        [
            "offering/nextcloud unchanged",
            "offering/nextcloud@29.0.0 already published",
            "offering/nextcloud@29.0.1 already published"
        ]
    );
    let versions = s.json(&["offering", "versions", "nextcloud"]);
    let names: Vec<&str> = items(&versions)
        .iter()
        .filter_map(|v| v["version"].as_str())
        .collect();
    assert_eq!(names, ["29.0.1", "29.0.0"]);
    let list = s.ok(&["offering", "list", "--vendor", &vendor_id]);
    assert!(
        list.contains("nextcloud") && list.contains("29.0.1"),
        "{list}"
    );
    assert_eq!(
        s.json(&["offering", "get", "nextcloud"])["latest_version"],
        "29.0.1"
    );

    // A version below the latest is refused by the server, naming `/version`.
    let lower = s.file(
        "lower.yaml",
        &offering(&vendor_id, &["29.0.0", "29.0.1", "28.0.9"]),
    );
    let run = s.run(&["offering", "publish", "-f", &lower]);
    assert!(
        run.stdout
            .contains("offering/nextcloud@29.0.1 already published"),
        "{}",
        run.stdout
    );
    let err = run.fails();
    assert!(
        err.contains("stopped at offering/nextcloud@28.0.9"),
        "{err}"
    );
    assert!(
        err.contains("/version: `28.0.9` is not newer than the latest published version `29.0.1`"),
        "{err}"
    );
    assert_eq!(
        items(&s.json(&["offering", "versions", "nextcloud"])).len(),
        2
    );
}

/// `--set` values are read as the offering's configuration schema wants them: a key that
/// looks like a number stays text where a string is wanted, a number where one is.
#[test]
fn book_reads_set_values_by_the_schema() {
    let s = Server::start();
    let bund_id = s.create_bund();
    let mut text = offering(&bund_id, &["29.0.0"]);
    text = text.replace(
        "versions:\n",
        "  config_schema:
    type: object
    properties:
      municipality: {type: string, pattern: '^[0-9]{8}$'}
      quota: {type: integer}
versions:
",
    );
    let file = s.file("nextcloud.yaml", &text);
    s.ok(&["offering", "publish", "-f", &file]);
    let created = s.json(&[
        "book",
        "--org",
        &bund_id,
        "--offering",
        "nextcloud",
        "--plan",
        "s",
        "--set",
        "municipality=14522150",
        "--set",
        "quota=3",
    ]);
    assert_eq!(
        created["booking"]["config"],
        serde_json::json!({"municipality": "14522150", "quota": 3}),
        "{created}"
    );
    // An offering that does not exist is named as such.
    let err = s
        .run(&[
            "book",
            "--org",
            &bund_id,
            "--offering",
            "nope",
            "--plan",
            "s",
            "--set",
            "a=1",
        ])
        .fails();
    assert!(err.contains("404") || err.contains("nope"), "{err}");
}

/// A pool of no connections, or of words, is refused in words before anything is created.
#[test]
fn serve_refuses_a_pool_of_no_connections() {
    for (value, says) in [("0", "0 is not in 1..=1000"), ("lots", "invalid digit")] {
        let home = tempfile::tempdir().expect("temporary folder");
        let data = home.path().join("data");
        let out = verbund()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .args(["--database-connections", value])
            .output()
            .expect("run verbund");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("--database-connections") && stderr.contains(says),
            "{stderr}"
        );
        assert!(!data.exists(), "the data folder was created anyway");
    }
}

/// A namespace Kubernetes would refuse is refused before anything is printed, in words.
#[test]
fn agent_manifests_refuse_a_bad_namespace() {
    let out = verbund()
        .args([
            "agent",
            "manifests",
            "--site",
            "s",
            "--server",
            "https://verbund.example",
        ])
        .args(["--namespace", "Bad_NS"])
        .output()
        .expect("run verbund");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "printed manifests anyway");
    assert!(
        stderr.contains("`Bad_NS` cannot name a Kubernetes namespace")
            && stderr.contains("lowercase letters"),
        "{stderr}"
    );
    let out = verbund()
        .args([
            "agent",
            "manifests",
            "--site",
            "s",
            "--server",
            "https://verbund.example",
        ])
        .args(["--namespace", "verbund-agent"])
        .output()
        .expect("run verbund");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("namespace: verbund-agent"));
}

/// A certification body's credential from a file counts once its issuer is on the trust
/// list; the operator's own signature is refused in a sentence.
#[test]
fn a_site_credential_counts_only_from_a_trusted_body() {
    let s = Server::start();
    s.ok(&[
        "provider",
        "apply",
        "-f",
        &s.file("provider.yaml", PROVIDER),
    ]);
    let sites = s.file("site.yaml", &site("nordwerk-hh-1", "DE-HH", "1.31"));
    s.ok(&["site", "apply", "-f", &sites]);
    let zert =
        verbund_trust::Issuer::generate("did:web:zert.example.de", "Beispiel-Zertifizierung")
            .expect("an issuer");
    let list = serde_json::json!({"issuers": [zert.trusted(&["bsi-c5"])]});
    let out = s.ok(&[
        "trust",
        "apply",
        "-f",
        &s.file("trust.json", &list.to_string()),
    ]);
    assert_eq!(out, "trust-list version 1 stated\n");
    let listed = s.ok(&["trust", "list"]);
    assert!(listed.contains("did:web:zert.example.de"), "{listed}");
    let now = chrono::Utc::now();
    let span = (
        now - chrono::Duration::days(1),
        now + chrono::Duration::days(365),
    );
    let subject = verbund_trust::site_subject("nordwerk-hh-1");
    // The operator's own signature counts for nothing, in a plain sentence.
    let own = verbund_trust::Issuer::generate("did:web:nordwerk.example", "Nordwerk").expect("own");
    let forged = own
        .certify(&subject, "bsi-c5", Some("type2"), span, None)
        .expect("forged");
    let err = s
        .run(&[
            "trust",
            "add",
            "nordwerk-hh-1",
            "-f",
            &s.file("forged.jwt", &forged),
        ])
        .fails();
    assert!(
        err.contains("no issuer on the federation's trust list"),
        "{err}"
    );
    let jwt = zert
        .certify(&subject, "bsi-c5", Some("type2"), span, None)
        .expect("jwt");
    let out = s.ok(&[
        "trust",
        "add",
        "nordwerk-hh-1",
        "-f",
        &s.file("c5.jwt", &format!("{jwt}\n")),
    ]);
    assert!(
        out.contains("bsi-c5 type2 for site/nordwerk-hh-1, attested by Beispiel-Zertifizierung"),
        "{out}"
    );
    let table = s.ok(&["trust", "credentials", "nordwerk-hh-1"]);
    assert!(table.contains("bsi-c5 (type2)"), "{table}");
}

#[test]
fn a_booking_for_a_time_takes_its_end_and_ends_with_an_export() {
    use chrono::Datelike;
    let s = Server::start();
    let bund_id = s.create_bund();
    let text = offering(&bund_id, &["29.0.0"]).replace(
        "versions:\n",
        "  data_export: {image: registry.example.de/nextcloud-export:1, command: [/export]}\nversions:\n",
    );
    let file = s.file("nextcloud.yaml", &text);
    s.ok(&["offering", "publish", "-f", &file]);
    s.ok(&[
        "provider",
        "apply",
        "-f",
        &s.file("provider.yaml", PROVIDER),
    ]);
    let sites = s.file("site.yaml", &site("nordwerk-hh-1", "DE-HH", "1.31"));
    s.ok(&["site", "apply", "-f", &sites]);
    // The site's ISO 27001 counts only as a credential: the federation names itself on
    // its trust list and attests the certificate a federation admin checked by hand.
    let named = s.ok(&["trust", "federation", "--scheme", "iso27001"]);
    assert!(named.contains("the federation attests iso27001"), "{named}");
    let attested = s.ok(&[
        "trust",
        "attest",
        "nordwerk-hh-1",
        "--scheme",
        "iso27001",
        "--level",
        "it-grundschutz",
        "--until",
        "2027-09-30",
        "--evidence",
        "ISO-27001-Zertifikat BSI-IGZ-0815 gesehen",
    ]);
    assert!(attested.contains("it counts"), "{attested}");
    let last_day = format!("{}-06-30", chrono::Utc::now().year() + 1);
    let book = |extra: &[&str]| -> Vec<String> {
        [
            "book",
            "--org",
            &bund_id,
            "--offering",
            "nextcloud",
            "--plan",
            "s",
        ]
        .iter()
        .chain(extra)
        .map(|a| a.to_string())
        .collect()
    };
    // Both or neither, and a target clap can read.
    let err = s.run(&strs(&book(&["--ends-on", &last_day]))).fails();
    assert!(err.contains("--export-to"), "{err}");
    let err = s
        .run(&strs(&book(&[
            "--ends-on",
            &last_day,
            "--export-to",
            "http://s3.example.de/b-1",
        ])))
        .fails();
    assert!(err.contains("is not an export target"), "{err}");
    let listed = s.json(&["booking", "list"]);
    assert_eq!(items(&listed).len(), 0, "nothing was booked: {listed}");
    let created = s.json(&strs(&book(&[
        "--ends-on",
        &last_day,
        "--export-to",
        "https://s3.example.de/exporte/cloud",
    ])));
    let b = &created["booking"];
    assert_eq!(b["ending"]["ends_on"], last_day.as_str(), "{created}");
    assert_eq!(b["ending"]["export_to"]["prefix"], "cloud/");
    let id = b["id"].as_str().expect("id");
    // Ended early: exporting, and the table says to where.
    let out = s.ok(&["booking", "end", id]);
    assert!(out.contains("exporting"), "{out}");
    assert!(
        out.contains("its data is exported to https://s3.example.de/exporte/cloud/"),
        "{out}"
    );
    assert!(out.contains("Job data-export-1"), "{out}");
    let err = s.run(&["booking", "retry-export", id]).fails();
    assert!(err.contains("still running"), "{err}");
}

/// Capacity windows from the command line: `--window FROM..TO=PLAN` books them with the
/// booking; a window that is not one is refused in a sentence before anything is sent,
/// and one the API refuses books nothing.
#[test]
fn book_takes_capacity_windows() {
    use chrono::Datelike;
    let s = Server::start();
    let bund_id = s.create_bund();
    let text = offering(&bund_id, &["29.0.0"]).replace(
        "versions:\n",
        "    - name: l
      display_name: Large
      replicas: 4
      resources: {cpu_millis: 2000, memory_mib: 4096, storage_gib: 50}
      monthly_price_cents: 29900
versions:
",
    );
    let file = s.file("nextcloud.yaml", &text);
    s.ok(&["offering", "publish", "-f", &file]);
    let year = chrono::Utc::now().year() + 1;
    let book = |window: &str| -> Vec<String> {
        [
            "book",
            "--org",
            &bund_id,
            "--offering",
            "nextcloud",
            "--plan",
            "s",
            "--window",
            window,
        ]
        .map(String::from)
        .to_vec()
    };
    let err = s.run(&strs(&book("1.3.-31.5.=l"))).fails();
    assert!(
        err.contains("is not a capacity window (e.g. `2027-03-01..2027-05-31=l`)"),
        "{err}"
    );
    let err = s
        .run(&strs(&book(&format!("{year}-03-01..{year}-05-31=xl"))))
        .fails();
    assert!(err.contains("no plan `xl`"), "{err}");
    let listed = s.json(&["booking", "list"]);
    assert_eq!(items(&listed).len(), 0, "nothing was booked: {listed}");
    let created = s.json(&strs(&book(&format!("{year}-03-01..{year}-05-31=l"))));
    let w = &created["booking"]["windows"][0];
    assert_eq!(w["from"], format!("{year}-03-01"), "{created}");
    assert_eq!(w["plan"], "l");
    assert_eq!(w["state"], "scheduled");
}

/// Issue 18 through the binary: a dependency that needs a configuration of its own is
/// created with the booking from a file (`--with`), and the next booking binds the
/// running one (`--bind`); a flag that is not NAME=VALUE is one sentence.
#[test]
fn a_booking_brings_a_configured_dependency_and_the_next_binds_it() {
    let s = Server::start();
    let bund_id = s.create_bund();
    let offerings = format!(
        "offering:
  name: sso
  display_name: Anmeldedienst
  vendor: {bund_id}
  category: paas
  data_classes: [internal]
  plans:
    - {{name: s, display_name: Klein, replicas: 1, resources: {{cpu_millis: 500, memory_mib: 512, storage_gib: 5}}, monthly_price_cents: 100}}
    - {{name: m, display_name: Mittel, replicas: 2, resources: {{cpu_millis: 1000, memory_mib: 1024, storage_gib: 10}}, monthly_price_cents: 200}}
  config_schema: {{type: object, required: [realm], properties: {{realm: {{type: string}}}}}}
versions:
  - version: 1.0.0
    package: {{type: helm, repository: https://charts.example.de, chart: sso, chart_version: 1.0.0}}
"
    );
    s.ok(&["offering", "publish", "-f", &s.file("sso.yaml", &offerings)]);
    let chat = format!(
        "offering:
  name: chat
  display_name: Chat
  vendor: {bund_id}
  category: saas
  data_classes: [internal]
  dependencies: [{{offering: sso}}]
  plans:
    - {{name: s, display_name: Klein, replicas: 1, resources: {{cpu_millis: 500, memory_mib: 512, storage_gib: 5}}, monthly_price_cents: 100}}
versions:
  - version: 1.0.0
    package: {{type: helm, repository: https://charts.example.de, chart: chat, chart_version: 1.0.0}}
"
    );
    s.ok(&["offering", "publish", "-f", &s.file("chat.yaml", &chat)]);
    s.ok(&[
        "provider",
        "apply",
        "-f",
        &s.file("provider.yaml", PROVIDER),
    ]);
    s.ok(&[
        "site",
        "apply",
        "-f",
        &s.file("site.yaml", &site("nordwerk-hh-1", "DE-HH", "1.31")),
    ]);
    let book = |extra: &[&str]| -> Vec<String> {
        [
            "book",
            "--org",
            &bund_id,
            "--offering",
            "chat",
            "--plan",
            "s",
            "-o",
            "json",
        ]
        .iter()
        .chain(extra)
        .map(|a| a.to_string())
        .collect()
    };

    // Without a realm for its sign-on, chat cannot be booked; with one, both are.
    let err = s.run(&strs(&book(&[]))).fails();
    assert!(err.contains("needs its own configuration"), "{err}");
    let realm = s.file("realm.yaml", "realm: bund\n");
    let with = format!("sso:m={realm}");
    let first: Value = serde_json::from_str(&s.ok(&strs(&book(&["--with", &with])))).expect("json");
    assert_eq!(first["booking"]["state"], "placed", "{first}");
    let sso = &first["dependencies"][0];
    assert_eq!(
        (&sso["offering"], &sso["plan"], &sso["config"]),
        (&json!("sso"), &json!("m"), &json!({"realm": "bund"}))
    );
    let sso_id = sso["id"].as_str().expect("id").to_string();

    // The next chat binds it.
    let bind = format!("sso={sso_id}");
    let second: Value =
        serde_json::from_str(&s.ok(&strs(&book(&["--bind", &bind])))).expect("json");
    assert_eq!(
        second["booking"]["dependencies"],
        json!([sso_id]),
        "{second}"
    );
    assert_eq!(second["dependencies"], json!([]));

    let err = s.run(&strs(&book(&["--bind", "sso"]))).fails();
    assert!(err.contains("is not NAME=VALUE"), "{err}");
}

/// Issue 18 through the binary: a Land runs the one instance of a shared offering; a
/// Gemeinde finds it (`booking instances`), joins it with its tenant configuration typed
/// by the tenant schema (`booking join --set`), and the Land lists its tenants
/// (`booking tenants`); a configuration the tenant schema refuses is one sentence.
#[test]
fn a_gemeinde_joins_the_shared_instance_of_its_land() {
    let s = Server::start();
    let bund_id = s.create_bund();
    let land = s.file(
        "land.yaml",
        &format!(
            "name: Schleswig-Holstein\nlevel: land\nars: \"01\"\nags: \"01\"\nparent: {bund_id}\n"
        ),
    );
    let land_id = s.json(&["org", "create", "-f", &land])["id"]
        .as_str()
        .expect("id")
        .to_string();
    let gemeinde = s.file(
        "gemeinde.yaml",
        &format!(
            "name: Flensburg, Stadt\nlevel: gemeinde\nars: \"010010000000\"\nags: \"01001000\"\nparent: {land_id}\n"
        ),
    );
    s.ok(&["org", "create", "-f", &gemeinde]);
    let portal = format!(
        "offering:
  name: bauportal
  display_name: Bauportal
  vendor: {bund_id}
  category: saas
  data_classes: [internal]
  tenancy: shared
  tenant_schema: {{type: object, required: [kennung, postfaecher], properties: {{kennung: {{type: string}}, postfaecher: {{type: integer, minimum: 1}}}}}}
  plans:
    - {{name: s, display_name: Klein, replicas: 1, resources: {{cpu_millis: 500, memory_mib: 512, storage_gib: 5}}, monthly_price_cents: 100}}
versions:
  - version: 1.0.0
    package: {{type: helm, repository: https://charts.example.de, chart: bauportal, chart_version: 1.0.0}}
"
    );
    offering_on_a_site(&s, &portal);
    let instance = s.json(&[
        "book",
        "--org",
        "01",
        "--offering",
        "bauportal",
        "--plan",
        "s",
    ]);
    let instance = instance["booking"]["id"].as_str().expect("id").to_string();
    let listed = s.ok(&["booking", "instances", "bauportal"]);
    assert!(
        listed.contains(&instance) && listed.contains("Schleswig-Holstein"),
        "{listed}"
    );

    let join = |set: &[&str]| -> Vec<String> {
        [
            "booking",
            "join",
            &instance,
            "--org",
            "01001000",
            "--offering",
            "bauportal",
        ]
        .iter()
        .chain(set)
        .map(|a| a.to_string())
        .collect()
    };
    let err = s
        .run(&strs(&join(&[
            "--set",
            "kennung=flensburg",
            "--set",
            "postfaecher=0",
        ])))
        .fails();
    assert!(err.contains("/config/postfaecher"), "{err}");
    let tenancy = s.json(&strs(&join(&[
        "--set",
        "kennung=flensburg",
        "--set",
        "postfaecher=3",
    ])));
    assert_eq!(tenancy["instance"], json!(instance), "{tenancy}");
    assert_eq!(tenancy["state"], "placed", "{tenancy}");
    assert_eq!(
        tenancy["config"],
        json!({"kennung": "flensburg", "postfaecher": 3})
    );
    let tenants = s.json(&["booking", "tenants", &instance]);
    assert_eq!(items(&tenants).len(), 1, "{tenants}");
    assert_eq!(items(&tenants)[0]["id"], tenancy["id"]);
}

/// Issue 18 through the binary: München publishes its booking's configuration as a
/// template for Bayern (`template publish`), Augsburg adopts it with one change
/// (`template adopt --set`, the difference named), and a name that is no label is one
/// sentence.
#[test]
fn a_template_is_published_and_adopted_through_the_binary() {
    let s = Server::start();
    let bund_id = s.create_bund();
    let land = s.file(
        "land.yaml",
        &format!("name: Bayern\nlevel: land\nars: \"09\"\nags: \"09\"\nparent: {bund_id}\n"),
    );
    let land_id = s.json(&["org", "create", "-f", &land])["id"]
        .as_str()
        .expect("id")
        .to_string();
    for (name, ars, ags) in [
        ("München", "091620000000", "09162000"),
        ("Augsburg", "097610000000", "09761000"),
    ] {
        let g = s.file(
            &format!("{ags}.yaml"),
            &format!("name: {name}\nlevel: gemeinde\nars: \"{ars}\"\nags: \"{ags}\"\nparent: {land_id}\n"),
        );
        s.ok(&["org", "create", "-f", &g]);
    }
    let offering = format!(
        "offering:
  name: hundesteuer
  display_name: Hundesteuer
  vendor: {bund_id}
  category: saas
  data_classes: [internal]
  config_schema: {{type: object, required: [municipality], properties: {{municipality: {{type: string}}, rate: {{type: integer}}}}}}
  plans:
    - {{name: s, display_name: Klein, replicas: 1, resources: {{cpu_millis: 500, memory_mib: 512, storage_gib: 5}}, monthly_price_cents: 100}}
versions:
  - version: 1.0.0
    package: {{type: helm, repository: https://charts.example.de, chart: hundesteuer, chart_version: 1.0.0}}
"
    );
    offering_on_a_site(&s, &offering);
    let booked = s.json(&[
        "book",
        "--org",
        "09162000",
        "--offering",
        "hundesteuer",
        "--plan",
        "s",
        "--set",
        "municipality=München",
        "--set",
        "rate=90",
    ]);
    let booking = booked["booking"]["id"].as_str().expect("id").to_string();
    let err = s
        .run(&[
            "template",
            "publish",
            "--booking",
            &booking,
            "--name",
            "Groß",
            "--title",
            "Hundesteuer",
        ])
        .fails();
    assert!(err.contains("/name"), "{err}");
    let t = s.json(&[
        "template",
        "publish",
        "--booking",
        &booking,
        "--name",
        "hundesteuer-muenchen",
        "--title",
        "Hundesteuer wie in München",
    ]);
    let id = t["id"].as_str().expect("id").to_string();
    assert_eq!(t["config"], json!({"municipality": "München", "rate": 90}));
    let listed = s.ok(&["template", "list", "--offering", "hundesteuer"]);
    assert!(listed.contains("hundesteuer-muenchen"), "{listed}");
    let adopted = s.json(&[
        "template",
        "adopt",
        &id,
        "--org",
        "09761000",
        "--set",
        "municipality=Augsburg",
    ]);
    assert_eq!(
        adopted["differences"],
        json!(["/municipality"]),
        "{adopted}"
    );
    assert_eq!(
        adopted["booking"]["config"],
        json!({"municipality": "Augsburg", "rate": 90})
    );
    let table = s.ok(&["template", "get", &id]);
    assert!(table.contains("hundesteuer-muenchen"), "{table}");
}

/// Publishes the offering of `yaml` and one site in Hamburg to book it on.
fn offering_on_a_site(s: &Server, yaml: &str) {
    s.ok(&["offering", "publish", "-f", &s.file("offering.yaml", yaml)]);
    s.ok(&[
        "provider",
        "apply",
        "-f",
        &s.file("provider.yaml", PROVIDER),
    ]);
    s.ok(&[
        "site",
        "apply",
        "-f",
        &s.file("site.yaml", &site("nordwerk-hh-1", "DE-HH", "1.31")),
    ]);
}
