//! Delivery of the desired state through the real binary: a booking made through the
//! API reaches the repository as a commit by its user, `verbund render` shows exactly
//! what was committed, a server killed while committing leaves a sound repository that
//! its restart brings in line, `verbund desired-state verify` finds and repairs a
//! commit made behind its back, and the demo's catalog books and delivers as its users
//! expect.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
use common::{get, post, token, verbund, Server};

const SITE: &str = "kommunal-by-muc-1";

/// Books nextcloud for an organisation; the answer's status and body.
async fn book(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    org: &str,
) -> Option<(u16, Value)> {
    let r = client
        .post(format!("{base}/api/v1/bookings"))
        .bearer_auth(token)
        .json(&json!({
            "organisation": org,
            "offering": "nextcloud",
            "plan": "s",
            "channel": "stable",
            "config": {"admin_email": "it@example.de", "domain": "cloud.example.de"}
        }))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.ok()?))
}

/// The id of the organisation with this ARS or AGS.
async fn organisation(base: &str, token: &str, key: &str) -> String {
    let page = get(base, token, &format!("/organisations?key={key}")).await;
    page["items"][0]["id"]
        .as_str()
        .expect("an organisation")
        .to_owned()
}

/// Runs git on the bare repository; panics on failure.
fn git(repo: &Path, args: &[&str]) -> String {
    let out = git_output(repo, args, &[]);
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn git_output(repo: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .env_remove("GIT_DIR")
        .envs(env.iter().copied())
        .output()
        .expect("git runs")
}

fn repository(data: &Path) -> PathBuf {
    data.join("desired-state.git")
}

/// `verbund desired-state verify --data <data>` with extra arguments.
fn verify(data: &Path, extra: &[&str]) -> Output {
    verbund()
        .args(["desired-state", "verify", "--data"])
        .arg(data)
        .args(extra)
        .output()
        .expect("verify runs")
}

#[track_caller]
fn assert_ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Commits authored by `author` in the repository.
fn commits_by(repo: &Path, author: &str) -> usize {
    git(repo, &["log", "--format=%an"])
        .lines()
        .filter(|a| *a == author)
        .count()
}

/// The paths of the files that deliver a booking, by the API.
async fn manifest_paths(base: &str, token: &str, id: &str) -> Vec<String> {
    get(base, token, &format!("/bookings/{id}/manifests"))
        .await
        .as_array()
        .expect("a list of files")
        .iter()
        .map(|f| f["path"].as_str().expect("a path").to_owned())
        .collect()
}

/// A booking through the demo's API is committed by its user within 5 s; `verbund
/// render` prints exactly the committed bytes; `verify` finds the repository in line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_booking_is_committed_by_its_user() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let data = dir.path().join("data");
    let server = Server::start("demo", &data).await;
    let repo = repository(&data);
    assert!(
        repo.join("HEAD").is_file(),
        "no repository at {}",
        repo.display()
    );
    assert!(
        !git(&repo, &["rev-list", "HEAD"]).is_empty(),
        "a first commit"
    );

    let token = token(&data, "tokens/it-muenchen.token");
    let muenchen = organisation(&server.base, &token, "09162000").await;
    let (status, created) = book(&reqwest::Client::new(), &server.base, &token, &muenchen)
        .await
        .expect("an answer");
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["booking"]["site"], SITE, "{created}");
    // The nextcloud and the postgresql it depends on (a new one, or the one München's
    // demo bookings already have).
    let mut ids = vec![created["booking"]["id"].as_str().expect("id").to_owned()];
    for d in created["booking"]["dependencies"]
        .as_array()
        .expect("dependencies")
    {
        ids.push(d.as_str().expect("id").to_owned());
    }
    assert_eq!(ids.len(), 2, "nextcloud and its postgresql: {created}");

    let deadline = Instant::now() + Duration::from_secs(5);
    while commits_by(&repo, "user/it-muenchen") == 0 {
        assert!(
            Instant::now() < deadline,
            "no commit by user/it-muenchen within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A site's whole state is for its operators and the federation admin.
    let admin = self::token(&data, "admin.token");
    let rendered = assert_ok(
        &verbund()
            .args([
                "render",
                "--site",
                SITE,
                "--server",
                &server.base,
                "--token",
                &admin,
            ])
            .output()
            .expect("render runs"),
    );
    for id in &ids {
        let paths = manifest_paths(&server.base, &token, id).await;
        assert!(paths.len() > 2, "{id}: {paths:?}");
        for path in paths {
            let committed = git(&repo, &["show", &format!("HEAD:{path}")]);
            assert!(
                rendered.contains(&format!("### {path}\n{committed}\n")),
                "`verbund render` differs from HEAD at {path}"
            );
        }
    }
    let out = verify(&data, &[]);
    assert!(assert_ok(&out).contains("in line"), "{out:?}");
}

/// SIGKILL while bookings are being committed, three times: each time the repository
/// passes `git fsck`, the restarted server brings it in line with the store, and every
/// acknowledged booking is stored and has its files at HEAD.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_while_committing_leaves_a_sound_repository() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let data = dir.path().join("data");
    let repo = repository(&data);
    let mut server = Server::start("demo", &data).await;
    let token = token(&data, "admin.token");
    let gemeinden: Vec<String> = get(
        &server.base,
        &token,
        "/organisations?level=gemeinde&limit=1000",
    )
    .await["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["id"].as_str().expect("id").to_owned())
        .collect();
    assert!(gemeinden.len() >= 10, "{gemeinden:?}");
    let client = reqwest::Client::new();
    let mut acknowledged: Vec<String> = Vec::new();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.subsec_nanos());

    for round in 0..3 {
        let before = commits_by(&repo, "user/admin");
        let mut writers = Vec::new();
        for w in 0..4 {
            let (client, base, token) = (client.clone(), server.base.clone(), token.clone());
            let orgs = gemeinden.clone();
            writers.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0.. {
                    let org = &orgs[(w * 7 + i * 3 + round) % orgs.len()];
                    match book(&client, &base, &token, org).await {
                        Some((201, body)) => {
                            ids.push(body["booking"]["id"].as_str().expect("id").to_owned());
                            for d in body["dependencies"].as_array().into_iter().flatten() {
                                ids.push(d["id"].as_str().expect("id").to_owned());
                            }
                        }
                        Some((status, body)) => panic!("booking answered {status}: {body}"),
                        None => break,
                    }
                }
                ids
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while commits_by(&repo, "user/admin") <= before {
            assert!(
                Instant::now() < deadline,
                "round {round}: no commit within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        tokio::time::sleep(Duration::from_millis(u64::from(seed % 400))).await;
        server.kill();
        for w in writers {
            acknowledged.extend(w.await.expect("writer"));
        }

        eprintln!(
            "round {round}: killed after {} acknowledged bookings and {} commits",
            acknowledged.len(),
            commits_by(&repo, "user/admin")
        );
        git(&repo, &["fsck", "--full", "--strict", "--no-progress"]);
        server = Server::start("serve", &data).await;
        let out = verify(&data, &[]);
        assert!(
            assert_ok(&out).contains("in line"),
            "round {round}: {out:?}"
        );
        let files: std::collections::HashSet<String> =
            git(&repo, &["ls-tree", "-r", "--name-only", "HEAD"])
                .lines()
                .map(str::to_owned)
                .collect();
        for id in &acknowledged {
            let b = get(&server.base, &token, &format!("/bookings/{id}")).await;
            let paths = manifest_paths(&server.base, &token, id).await;
            if b["state"] != "rejected" {
                assert!(!paths.is_empty(), "round {round}: {b}");
            }
            for p in paths {
                assert!(
                    files.contains(&p),
                    "round {round}: {p} of acknowledged {id} is not at HEAD"
                );
            }
        }
    }
    assert!(
        acknowledged.len() >= 6,
        "too few bookings: {}",
        acknowledged.len()
    );
}

/// Commits to `repo` by plumbing, as a hand edit would (blob, tree from the scratch
/// index `index`, commit by mallory, branch moved): `files` gets HEAD's tree and returns
/// the files to write, by path.
fn commit_behind_verbunds_back(
    repo: &Path,
    index: &Path,
    files: impl FnOnce(&dyn Fn(&[&str]) -> String) -> Vec<(String, Vec<u8>)>,
) {
    let index = index.to_str().expect("UTF-8 path");
    let with_index = [("GIT_INDEX_FILE", index)];
    let run = |args: &[&str]| {
        let out = git_output(repo, args, &with_index);
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let head = run(&["rev-parse", "HEAD"]).trim().to_owned();
    run(&["read-tree", "HEAD"]);
    for (path, content) in files(&run) {
        let mut child = Command::new("git")
            .arg("--git-dir")
            .arg(repo)
            .args(["hash-object", "-w", "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("git runs");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &content)
            .expect("write");
        let out = child.wait_with_output().expect("git ends");
        let blob = String::from_utf8(out.stdout).expect("UTF-8");
        run(&[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("100644,{},{path}", blob.trim()),
        ]);
    }
    let tree = run(&["write-tree"]).trim().to_owned();
    let out = git_output(
        repo,
        &["commit-tree", &tree, "-p", &head, "-m", "hand edit"],
        &[
            ("GIT_AUTHOR_NAME", "mallory"),
            ("GIT_AUTHOR_EMAIL", "mallory@example.org"),
            ("GIT_COMMITTER_NAME", "mallory"),
            ("GIT_COMMITTER_EMAIL", "mallory@example.org"),
        ],
    );
    let commit = String::from_utf8(out.stdout).expect("UTF-8");
    run(&["update-ref", "refs/heads/main", commit.trim(), &head]);
}

/// A file committed behind verbund's back is reported by `verify` (exit status 1, a
/// plain sentence, `extra     <path>`) and removed by `verify --repair`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_and_repairs_a_foreign_commit() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let data = dir.path().join("data");
    drop(Server::start("demo", &data).await);
    let repo = repository(&data);
    let extra = format!("sites/{SITE}/prod/bookings/fremd/deployment.yaml");

    commit_behind_verbunds_back(&repo, &dir.path().join("scratch-index"), |_| {
        vec![(extra.clone(), b"kind: Deployment\n".to_vec())]
    });

    let out = verify(&data, &[]);
    assert!(!out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.lines().any(|l| l == format!("extra     {extra}")),
        "{stdout}"
    );
    assert!(
        stderr.starts_with("error: the desired state differs") && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(assert_ok(&verify(&data, &["--repair"])).starts_with("repaired: "));
    assert!(assert_ok(&verify(&data, &[])).contains("in line"));
    git(&repo, &["fsck", "--full", "--strict", "--no-progress"]);
}

/// For each `async fn name(database: Option<common::Database>)`, the tests
/// `name::sqlite` (the data folder's SQLite file) and `name::postgres` (a fresh database).
macro_rules! on_sqlite_and_postgres {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(None).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(Some(super::common::Database::create("verbund_delivery"))).await;
                }
            }
        )*
    };
}

/// `--database-url` for a test on PostgreSQL, nothing on SQLite.
fn database_args(database: Option<&common::Database>) -> Vec<&str> {
    database.map_or(Vec::new(), |d| vec!["--database-url", d.url.as_str()])
}

/// What a server on the test's database starts with: on PostgreSQL also the federation
/// key its replicas share.
fn server_args(database: Option<&common::Database>) -> Vec<&str> {
    database.map_or(Vec::new(), |d| d.args().to_vec())
}

/// The store's URL: the test's PostgreSQL database, or the data folder's SQLite file.
fn store_url(data: &Path, database: Option<&common::Database>) -> String {
    match database {
        Some(d) => d.url.clone(),
        None => format!("sqlite://{}", data.join("verbund.db").display()),
    }
}

/// The booking of `offering` that the organisation with ARS `key` has.
async fn booking_of(base: &str, token: &str, key: &str, offering: &str) -> Value {
    let org = organisation(base, token, key).await;
    let page = get(base, token, &format!("/bookings?organisation={org}")).await;
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|b| b["offering"] == offering)
        .unwrap_or_else(|| panic!("no {offering} of {key}: {page}"))
        .clone()
}

/// Stores `config` as booking `id`'s configuration directly in the store, as data from
/// before a rule that the API enforces now would be.
async fn store_behind_the_apis_back(url: &str, id: &str, config: Value) {
    let store = verbund_store::Store::open(url).await.expect("the store");
    store
        .update_booking("test/legacy", id, chrono::Utc::now(), |b, _| {
            let mut booking = b.clone();
            booking.config = config;
            Ok::<_, verbund_store::StoreError>(Some(verbund_store::NewBooking {
                resources: Default::default(),
                booking,
                decision: None,
                action: "booking.update".into(),
                secrets: None,
            }))
        })
        .await
        .expect("stored");
    store.close().await;
}

/// Issue 15: two sites with a problem each — a booking of München's site whose stored
/// configuration the renderer refuses (U+007F, from before the API refused it), and on
/// Flensburg's site, which sorts after it, a change not delivered yet (and on SQLite a
/// file committed behind verbund's back) — are all reported by `verify` (exit status 1), which does not stop at the first site.
/// Then the server shows the refused booking's reason in `GET /bookings/{id}`, the list,
/// and `verbund booking get` / `list`, and brings the other site back in line.
async fn every_sites_problem_is_reported_and_a_refused_booking_shows_why(
    database: Option<common::Database>,
) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let data = dir.path().join("data");
    let db = server_args(database.as_ref());
    let url = store_url(&data, database.as_ref());
    let server = Server::start_with("demo", &[&db[..], &["--no-simulation"]].concat(), &data).await;
    let admin = token(&data, "admin.token");
    let refused = booking_of(&server.base, &admin, "091620000000", "nextcloud").await;
    let tampered = booking_of(&server.base, &admin, "010010000000", "jitsi-meet").await;
    drop(server);
    let refused_id = refused["id"].as_str().expect("an id");
    let refused_site = refused["site"].as_str().expect("placed");
    let tampered_site = tampered["site"].as_str().expect("placed");
    assert!(
        refused_site < tampered_site,
        "the refused booking's site is checked first: {refused_site}, {tampered_site}"
    );

    let mut config = refused["config"].clone();
    config["domain"] = json!("cloud\u{7F}.muenchen.de");
    store_behind_the_apis_back(&url, refused_id, config).await;
    // Flensburg's booking changed in the store while no server ran to deliver it.
    let mut config = tampered["config"].clone();
    config["domain"] = json!("meet2.flensburg.de");
    store_behind_the_apis_back(&url, tampered["id"].as_str().expect("id"), config).await;
    // And, on SQLite, where this folder's repository is the record (with PostgreSQL the
    // shared history is, and a hand edit of a replica's copy is undone as it catches
    // up), a file committed behind verbund's back.
    let extra = format!("sites/{tampered_site}/prod/bookings/fremd/deployment.yaml");
    let repo = repository(&data);
    if database.is_none() {
        commit_behind_verbunds_back(&repo, &dir.path().join("scratch-index"), |_| {
            vec![(extra.clone(), b"kind: Deployment\n".to_vec())]
        });
    }

    let out = verify(&data, &database_args(database.as_ref()));
    assert!(!out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stdout.lines().any(|l| l == format!("extra     {extra}")),
        database.is_none(),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("changed   sites/{tampered_site}/"))),
        "{stdout}"
    );
    let refusal = stdout
        .lines()
        .find(|l| l.starts_with(&format!("refused   sites/{refused_site}/")))
        .unwrap_or_else(|| panic!("no refused booking:\n{stdout}"));
    assert!(
        refusal.contains(&format!("booking {refused_id}: ")) && refusal.contains("U+007F"),
        "{refusal}"
    );
    let elsewhere =
        |l: &&str| !l.contains(&format!(" sites/{tampered_site}/")) && !l.starts_with("refused   ");
    assert_eq!(stdout.lines().find(elsewhere), None, "{stdout}");
    assert!(
        stderr.starts_with("error: the desired state differs from the store in ")
            && stderr.contains(
                " files, 1 bookings cannot be rendered and 0 folders cannot be rendered at all"
            ),
        "{stderr}"
    );

    // The server brings Flensburg's site back in line and shows why München's booking
    // is not delivered.
    let server = Server::start_with("serve", &db, &data).await;
    let base = &server.base;
    let shown = get(base, &admin, &format!("/bookings/{refused_id}")).await;
    let reason = shown["undeliverable"]["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason: {shown}"));
    assert!(
        reason.contains("U+007F") && reason.contains("/config/domain"),
        "{reason}"
    );
    assert!(shown["undeliverable"]["since"].is_string(), "{shown}");
    let other = get(
        base,
        &admin,
        &format!("/bookings/{}", tampered["id"].as_str().expect("id")),
    )
    .await;
    assert!(other["undeliverable"].is_null(), "{other}");
    let listed = get(base, &admin, &format!("/bookings?site={refused_site}")).await;
    let item = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|b| b["id"] == refused_id)
        .unwrap_or_else(|| panic!("not listed: {listed}"));
    assert_eq!(item["undeliverable"], shown["undeliverable"]);
    let cli = |args: &[&str]| {
        let out = verbund()
            .args(args)
            .args(["--server", base, "--token", &admin])
            .output()
            .expect("verbund runs");
        assert_ok(&out)
    };
    let got = cli(&["booking", "get", refused_id]);
    assert!(
        got.contains("Not delivered since ") && got.contains(reason),
        "{got}"
    );
    let list = cli(&["booking", "list", "--site", refused_site]);
    let row = list
        .lines()
        .find(|l| l.starts_with(refused_id))
        .unwrap_or_else(|| panic!("not listed:\n{list}"));
    assert!(row.contains("(undeliverable)"), "{row}");
    let head = git(&repo, &["ls-tree", "-r", "--name-only", "HEAD"]);
    assert!(!head.lines().any(|p| p == extra), "the foreign file stays");
    let delivered = git(
        &repo,
        &[
            "grep",
            "-l",
            "meet2.flensburg.de",
            "HEAD",
            "--",
            &format!("sites/{tampered_site}"),
        ],
    );
    assert!(!delivered.is_empty(), "Flensburg's change is delivered");
    drop(server);
    // What is left is the refused booking alone.
    let out = verify(&data, &database_args(database.as_ref()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("refused   "), "{stdout}");
}

on_sqlite_and_postgres!(every_sites_problem_is_reported_and_a_refused_booking_shows_why);

/// The URL that sites' roots named before each site had a repository of its own (with
/// neither `--repository-url` nor `--git-remote`).
const OLD_REPOSITORY_URL: &str = "https://git.verbund.invalid/desired-state.git";

/// Issue 15: a data folder as verbund left it before each site had a repository of its
/// own — one desired-state repository whose roots name the one URL every site pulled
/// from, no `DATA/sites/`, and (on PostgreSQL) no shared history — is migrated when
/// `verbund serve` starts: every site's repository appears holding exactly its folder of
/// the whole desired state, and every root names the site's own repository at verbund's
/// Git endpoint.
///
/// The older data folder is made from one of today's by taking away what it lacked: an
/// older binary cannot be built within a test, and what the older publisher wrote
/// differed from today's in nothing else the migration reads.
async fn an_older_data_folder_is_migrated_on_start(database: Option<common::Database>) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let data = dir.path().join("data");
    let db = server_args(database.as_ref());
    drop(Server::start_with("demo", &[&db[..], &["--no-simulation"]].concat(), &data).await);
    let repo = repository(&data);
    let sites_dir = data.join("sites");
    assert!(sites_dir.is_dir(), "today's layout");

    // Back to the older layout.
    commit_behind_verbunds_back(&repo, &dir.path().join("scratch-index"), |run| {
        run(&["ls-tree", "-r", "--name-only", "HEAD", "sites"])
            .lines()
            .filter_map(|path| {
                let site = path.split('/').nth(1)?;
                let text = run(&["cat-file", "blob", &format!("HEAD:{path}")]);
                let now = format!("http://127.0.0.1:8080/git/{site}.git");
                text.contains(&now).then(|| {
                    (
                        path.to_owned(),
                        text.replace(&now, OLD_REPOSITORY_URL).into_bytes(),
                    )
                })
            })
            .collect()
    });
    let old = git(&repo, &["grep", "-l", OLD_REPOSITORY_URL, "HEAD"]);
    assert!(old.lines().count() >= 2, "roots of several sites: {old}");
    std::fs::remove_dir_all(&sites_dir).expect("removed");
    if let Some(d) = &database {
        d.query(
            "DELETE FROM desired_state_packs; DELETE FROM desired_state_commits; \
             DELETE FROM desired_state_refs; DELETE FROM desired_state_cursor",
        );
    }

    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = Server::start_on(
        "serve",
        &[&db[..], &["--public-url", &base]].concat(),
        &data,
        port,
    )
    .await;
    let whole_sites = git(&repo, &["ls-tree", "--name-only", "HEAD", "sites/"]);
    let sites: Vec<&str> = whole_sites
        .lines()
        .map(|p| p.trim_start_matches("sites/"))
        .collect();
    assert!(sites.len() >= 2, "{whole_sites}");
    let mut roots = 0;
    for site in &sites {
        let own = sites_dir.join(format!("{site}.git"));
        assert!(own.is_dir(), "no repository of {site}");
        assert_eq!(
            git(&own, &["ls-tree", "-r", "--name-only", "HEAD"])
                .lines()
                .filter(|p| !p.starts_with(&format!("sites/{site}/")))
                .collect::<Vec<_>>(),
            Vec::<&str>::new(),
            "{site}'s repository holds only its folder"
        );
        let folder = format!("HEAD:sites/{site}");
        assert_eq!(
            git(&own, &["rev-parse", &folder]),
            git(&repo, &["rev-parse", &folder]),
            "{site}'s repository holds its folder of the whole desired state"
        );
        let named = git_output(&own, &["grep", "-l", "/git/", "HEAD"], &[]);
        for path in String::from_utf8_lossy(&named.stdout).lines() {
            let text = git(&own, &["cat-file", "blob", path]);
            assert!(
                text.contains(&format!("{base}/git/{site}.git")),
                "{path}:\n{text}"
            );
            roots += 1;
        }
    }
    assert!(roots >= 2, "roots naming verbund's Git endpoint: {roots}");
    let old = git_output(&repo, &["grep", "-l", OLD_REPOSITORY_URL, "HEAD"], &[]);
    assert!(
        old.stdout.is_empty(),
        "still the old URL: {}",
        String::from_utf8_lossy(&old.stdout)
    );
    drop(server);
    let same = [
        &database_args(database.as_ref())[..],
        &["--public-url", &base],
    ]
    .concat();
    assert!(assert_ok(&verify(&data, &same)).contains("in line"));
}

on_sqlite_and_postgres!(an_older_data_folder_is_migrated_on_start);

/// Issue 15: a commit behind verbund's back in a site's own repository (what the site
/// pulls over verbund's Git endpoint) — a file changed, one added, one removed — while
/// the whole desired state is in line. On SQLite, where this folder's repositories are
/// the record, `verify` lists each file for that site (exit status 1), `--repair` brings
/// the site's repository back to its folder of the whole desired state in a commit by
/// `system/cli` naming a `desired_state.reconcile` audit event that lists the site. On
/// PostgreSQL the shared history is the record: verify catches up with it, which moves
/// the replica's copy back onto it. Either way the site's repository then holds exactly
/// its folder again and `verify` finds everything in line.
async fn a_hand_edit_of_a_sites_own_repository_is_reported_and_repaired(
    database: Option<common::Database>,
) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let data = dir.path().join("data");
    let db = server_args(database.as_ref());
    let url = store_url(&data, database.as_ref());
    drop(Server::start_with("demo", &[&db[..], &["--no-simulation"]].concat(), &data).await);
    let whole = repository(&data);
    let own = data.join("sites").join(format!("{SITE}.git"));
    let files = git(&own, &["ls-tree", "-r", "--name-only", "HEAD"]);
    let mut in_bookings = files.lines().filter(|p| p.contains("/bookings/"));
    let changed = in_bookings.next().expect("a booking's file").to_owned();
    let removed = in_bookings.next().expect("a second file").to_owned();
    let extra = format!("sites/{SITE}/prod/bookings/fremd/deployment.yaml");
    let scratch = dir.path().join("scratch-work-tree");
    std::fs::create_dir(&scratch).expect("a folder");
    commit_behind_verbunds_back(&own, &dir.path().join("scratch-index"), |run| {
        let work_tree = scratch.to_str().expect("UTF-8 path");
        run(&[
            "--work-tree",
            work_tree,
            "update-index",
            "--force-remove",
            &removed,
        ]);
        vec![
            (changed.clone(), b"resources: []\n".to_vec()),
            (extra.clone(), b"kind: Deployment\n".to_vec()),
        ]
    });
    let at = |repo: &Path| git(repo, &["rev-parse", &format!("HEAD:sites/{SITE}")]);
    assert_ne!(
        at(&own),
        at(&whole),
        "the hand edit is in the site's repository"
    );

    let out = verify(&data, &database_args(database.as_ref()));
    if database.is_none() {
        assert!(!out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut expected = vec![
            format!("changed   {changed} in site {SITE}'s own repository"),
            format!("extra     {extra} in site {SITE}'s own repository"),
            format!("missing   {removed} in site {SITE}'s own repository"),
        ];
        expected.sort();
        let mut listed: Vec<&str> = stdout.lines().collect();
        listed.sort();
        assert_eq!(listed, expected, "{stdout}");
        assert!(
            stderr.starts_with("error: the desired state differs from the store in 0 files")
                && stderr.contains("and 1 sites' own repositories differ from it in 3 files")
                && stderr.lines().count() == 1,
            "{stderr}"
        );
        let repaired = assert_ok(&verify(&data, &["--repair"]));
        assert_eq!(
            repaired.trim(),
            format!("repaired: the own repository of site {SITE} brought in line with the desired state"),
        );
        let log = git(&own, &["log", "-1", "--format=%an%n%B"]);
        assert!(log.starts_with("system/cli\n"), "{log}");
        let seq: i64 = log
            .lines()
            .find_map(|l| l.strip_prefix("Audit-Event: "))
            .unwrap_or_else(|| panic!("no audit event named: {log}"))
            .trim()
            .parse()
            .expect("a sequence number");
        let store = verbund_store::Store::open(&url).await.expect("the store");
        let filter = verbund_store::AuditFilter {
            action: Some("desired_state.reconcile".into()),
            ..Default::default()
        };
        let page = verbund_domain::page::PageRequest {
            limit: Some(1000),
            after: None,
        };
        let events = store.list_audit(&filter, &page).await.expect("audit").items;
        store.close().await;
        let event = events
            .iter()
            .find(|e| e.seq == seq)
            .unwrap_or_else(|| panic!("no event {seq}: {events:?}"));
        assert_eq!(event.actor, "system/cli");
        assert_eq!(
            event.after.as_ref().map(|a| a["sites"].clone()),
            Some(json!([SITE]))
        );
    } else {
        assert!(assert_ok(&out).contains("in line"));
    }
    assert_eq!(at(&own), at(&whole));
    let now = git(&own, &["ls-tree", "-r", "--name-only", "HEAD"]);
    assert_eq!(now, files, "exactly the site's folder again");
    assert!(assert_ok(&verify(&data, &database_args(database.as_ref()))).contains("in line"));
    git(&own, &["fsck", "--full", "--strict", "--no-progress"]);
}

on_sqlite_and_postgres!(a_hand_edit_of_a_sites_own_repository_is_reported_and_repaired);

/// A site's token reads its own site's desired state over Git and nothing else: another
/// site's repository answers 404 (to its token as to a user's), no credentials 401, an
/// object of another site is not there to be asked for by its id, pushing is refused,
/// and a path outside the site repositories leads nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_site_fetches_only_its_own_desired_state_over_git() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let data = dir.path().join("data");
    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = Server::start_on("demo", &["--public-url", &base], &data, port).await;
    let admin = token(&data, "admin.token");
    let whole = repository(&data);
    // München's bookings are on SITE; Flensburg's on another site.
    let other = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let listing = git(&whole, &["ls-tree", "--name-only", "HEAD", "sites/"]);
            let busy: Vec<String> = listing
                .lines()
                .map(|s| s.trim_start_matches("sites/").to_owned())
                .filter(|s| {
                    s != SITE
                        && !git(
                            &whole,
                            &[
                                "ls-tree",
                                "-r",
                                "--name-only",
                                "HEAD",
                                &format!("sites/{s}/prod/bookings"),
                            ],
                        )
                        .trim()
                        .is_empty()
                })
                .collect();
            if let Some(site) = busy.first() {
                break site.clone();
            }
            assert!(Instant::now() < deadline, "no other site with bookings");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let site_token = |site: &str| {
        let site = site.to_owned();
        let (base, admin) = (base.clone(), admin.clone());
        async move {
            let r = reqwest::Client::new()
                .post(format!("{base}/api/v1/sites/{site}/tokens"))
                .bearer_auth(&admin)
                .json(&json!({"name": "git"}))
                .send()
                .await
                .expect("token");
            let v: Value = r.json().await.expect("JSON");
            v["secret"].as_str().expect("a secret").to_owned()
        }
    };
    let mine = site_token(SITE).await;
    let theirs = site_token(&other).await;
    let url = |token: &str, site: &str| {
        base.replacen("http://", &format!("http://site:{token}@"), 1) + &format!("/git/{site}.git")
    };
    let run = |args: &[&str], cwd: &Path| {
        Command::new("git")
            .args(args)
            .current_dir(cwd)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .expect("git runs")
    };

    // Its own: every file is its site's.
    let clone = dir.path().join("clone");
    let out = run(
        &[
            "clone",
            "--quiet",
            &url(&mine, SITE),
            clone.to_str().expect("path"),
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = String::from_utf8(run(&["ls-files"], &clone).stdout).expect("UTF-8");
    assert!(files.lines().count() > 10, "{files}");
    assert!(
        files
            .lines()
            .all(|f| f.starts_with(&format!("sites/{SITE}/"))),
        "{files}"
    );
    // The same content as the whole state's folder.
    let ours = String::from_utf8(run(&["rev-parse", &format!("HEAD:sites/{SITE}")], &clone).stdout)
        .expect("UTF-8");
    assert_eq!(
        ours.trim(),
        git(&whole, &["rev-parse", &format!("HEAD:sites/{SITE}")]).trim()
    );

    // Another site's repository: not found, with that site's neighbour's token.
    let out = run(&["ls-remote", &url(&theirs, SITE)], dir.path());
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let http = reqwest::Client::new();
    let refs = |site: &str| format!("{base}/git/{site}.git/info/refs?service=git-upload-pack");
    let r = http
        .get(refs(SITE))
        .basic_auth("x", Some(&theirs))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 404);
    // A user's token is no site token; no credentials at all asks for them.
    let r = http
        .get(refs(SITE))
        .basic_auth("admin", Some(&admin))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 401);
    let r = http.get(refs(SITE)).send().await.expect("GET");
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    // The other site's own token works for its own repository.
    let r = http
        .get(refs(&other))
        .basic_auth("x", Some(&theirs))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/x-git-upload-pack-advertisement"
    );

    // An object of the other site, asked for by its id through our repository: it is
    // not there (protocol v2 and v0).
    let blob = git(
        &whole,
        &[
            "ls-tree",
            "-r",
            "HEAD",
            &format!("sites/{other}/prod/bookings"),
        ],
    )
    .lines()
    .next()
    .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
    .expect("a blob of the other site");
    for protocol in ["2", "0"] {
        let out = run(
            &[
                "-c",
                &format!("protocol.version={protocol}"),
                "fetch",
                "origin",
                &blob,
            ],
            &clone,
        );
        assert!(
            !out.status.success(),
            "protocol {protocol} fetched another site's object"
        );
        let out = run(&["cat-file", "-e", &blob], &clone);
        assert!(!out.status.success(), "the object reached the clone");
    }
    let served = data.join("sites").join(format!("{SITE}.git"));
    assert!(
        !git_output(&served, &["cat-file", "-e", &blob], &[])
            .status
            .success(),
        "the site's repository holds it"
    );

    // Nobody pushes.
    std::fs::write(clone.join("extra.yaml"), "kind: ConfigMap\n").expect("write");
    run(
        &[
            "-c",
            "user.name=x",
            "-c",
            "user.email=x@x",
            "commit",
            "--quiet",
            "-am",
            "x",
        ],
        &clone,
    );
    let out = run(&["add", "extra.yaml"], &clone);
    assert!(out.status.success());
    run(
        &[
            "-c",
            "user.name=x",
            "-c",
            "user.email=x@x",
            "commit",
            "--quiet",
            "-m",
            "x",
        ],
        &clone,
    );
    let out = run(&["push", "origin", "HEAD:main"], &clone);
    assert!(!out.status.success(), "a push was accepted");
    let r = http
        .get(format!(
            "{base}/git/{SITE}.git/info/refs?service=git-receive-pack"
        ))
        .basic_auth("x", Some(&mine))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 403);
    // Paths that are no site's repository.
    for path in [
        "/git/..%2Fdesired-state.git/info/refs",
        "/git/desired-state.git/info/refs",
        "/git/Bad_Site.git/info/refs",
    ] {
        let r = http
            .get(format!("{base}{path}?service=git-upload-pack"))
            .basic_auth("x", Some(&mine))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
}

/// Books `offering` for `organisation` with `token`; the answer of `POST /bookings`.
async fn book_offering(
    base: &str,
    token: &str,
    organisation: &str,
    offering: &str,
    plan: &str,
    config: Value,
) -> Value {
    let body = json!({
        "organisation": organisation,
        "offering": offering,
        "plan": plan,
        "channel": "stable",
        "config": config,
    });
    post(base, token, "/bookings", &body, 201).await
}

/// The booking of an answer of `POST /bookings`, which must be placed, and whose
/// dependencies run on its site.
async fn placed(base: &str, token: &str, created: &Value) -> Value {
    let booking = &created["booking"];
    assert_eq!(booking["state"], "placed", "{created}");
    let site = &booking["site"];
    for id in booking["dependencies"].as_array().expect("dependencies") {
        let id = id.as_str().expect("an id");
        let dep = get(base, token, &format!("/bookings/{id}")).await;
        assert_eq!(&dep["site"], site, "a dependency on another site: {dep}");
    }
    booking.clone()
}

/// Issue 16, bookings of the demo catalog as its users met them: Flensburg's
/// OpenProject and Keycloak and Burg (Spreewald)'s Nextcloud run on a site where their
/// PostgreSQL may run too (not on their best site, where it may not); Matrix and
/// Bauantrag online bind the organisation's Keycloak; an approved Wohnsitzanmeldung
/// is delivered with its PostgreSQL's credentials and the network policy to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_catalog_books_as_its_users_expect() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let data = dir.path().join("data");
    let server = Server::start_with("demo", &["--no-simulation"], &data).await;
    let base = &server.base;
    let admin = token(&data, "admin.token");
    let it = token(&data, "tokens/it-flensburg.token");
    let flensburg = organisation(base, &it, "01001000").await;

    let openproject = book_offering(
        base,
        &it,
        &flensburg,
        "openproject",
        "s",
        json!({"domain": "projekte.flensburg.de", "admin_email": "it@flensburg.de"}),
    )
    .await;
    placed(base, &it, &openproject).await;
    let keycloak = book_offering(
        base,
        &it,
        &flensburg,
        "keycloak",
        "s",
        json!({"realm": "flensburg", "hostname": "login.flensburg.de"}),
    )
    .await;
    let keycloak = placed(base, &it, &keycloak).await;
    let burg = organisation(base, &admin, "12071032").await;
    let nextcloud = book_offering(
        base,
        &admin,
        &burg,
        "nextcloud",
        "s",
        json!({"domain": "cloud.burg-spreewald.de", "admin_email": "it@burg-spreewald.de"}),
    )
    .await;
    placed(base, &admin, &nextcloud).await;

    for (offering, plan, config) in [
        (
            "matrix-synapse",
            "s",
            json!({"server_name": "flensburg.de"}),
        ),
        (
            "bauantrag-online",
            "m",
            json!({"authority": "01001", "contact_email": "bauaufsicht@flensburg.de",
                   "land_building_code": "BauO-SH"}),
        ),
    ] {
        let created = book_offering(base, &it, &flensburg, offering, plan, config).await;
        let booking = placed(base, &it, &created).await;
        assert_eq!(booking["site"], keycloak["site"], "{created}");
        assert!(
            booking["dependencies"]
                .as_array()
                .is_some_and(|d| d.contains(&keycloak["id"])),
            "{offering} binds Flensburg's Keycloak: {created}"
        );
    }

    let meldung = book_offering(
        base,
        &it,
        &flensburg,
        "wohnsitzanmeldung",
        "s",
        json!({"municipality": "01001000", "contact_email": "meldeamt@flensburg.de",
               "melderegister": {"procedure": "okewo",
                                 "xmeld_endpoint": "https://xmeld.flensburg.de/"}}),
    )
    .await;
    assert_eq!(
        meldung["booking"]["state"], "awaiting-approval",
        "{meldung}"
    );
    let id = meldung["booking"]["id"].as_str().expect("an id");
    let approved = post(
        base,
        &admin,
        &format!("/bookings/{id}/approve"),
        &json!({}),
        200,
    )
    .await;
    assert_eq!(approved["state"], "placed", "{approved}");
    let dependencies = approved["dependencies"].as_array().expect("dependencies");
    assert_eq!(dependencies.len(), 1, "its PostgreSQL: {approved}");
    let postgresql = get(
        base,
        &it,
        &format!("/bookings/{}", dependencies[0].as_str().expect("an id")),
    )
    .await;
    assert_eq!(postgresql["offering"], "postgresql");
    assert_eq!(postgresql["site"], approved["site"]);
    let files = get(base, &it, &format!("/bookings/{id}/manifests")).await;
    let text = files.to_string();
    // The credentials its PostgreSQL made, read into its namespace, and the egress to it.
    for expected in ["ExternalSecret", "allow-to-dependencies"] {
        assert!(text.contains(expected), "no {expected} in {text}");
    }
}
