//! Delivery of the desired state through the real binary: a booking made through the
//! API reaches the repository as a commit by its user, `verbund render` shows exactly
//! what was committed, a server killed while committing leaves a sound repository that
//! its restart brings in line, and `verbund desired-state verify` finds and repairs a
//! commit made behind its back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
use common::{get, token, verbund, Server};

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

/// A file committed behind verbund's back is reported by `verify` (exit status 1, a
/// plain sentence, `extra     <path>`) and removed by `verify --repair`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_and_repairs_a_foreign_commit() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let data = dir.path().join("data");
    drop(Server::start("demo", &data).await);
    let repo = repository(&data);
    let extra = format!("sites/{SITE}/prod/bookings/fremd/deployment.yaml");

    // A commit by plumbing: blob, tree from a scratch index, commit, branch moved.
    let index = dir.path().join("scratch-index");
    let index = index.to_str().expect("UTF-8 path");
    let with_index = [("GIT_INDEX_FILE", index)];
    let run = |args: &[&str]| {
        let out = git_output(&repo, args, &with_index);
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("UTF-8")
            .trim()
            .to_owned()
    };
    let blob = {
        let mut child = Command::new("git")
            .arg("--git-dir")
            .arg(&repo)
            .args(["hash-object", "-w", "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("git runs");
        std::io::Write::write_all(
            &mut child.stdin.take().expect("stdin"),
            b"kind: Deployment\n",
        )
        .expect("write");
        let out = child.wait_with_output().expect("git ends");
        String::from_utf8(out.stdout)
            .expect("UTF-8")
            .trim()
            .to_owned()
    };
    let head = run(&["rev-parse", "HEAD"]);
    run(&["read-tree", "HEAD"]);
    run(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("100644,{blob},{extra}"),
    ]);
    let tree = run(&["write-tree"]);
    let commit = {
        let out = git_output(
            &repo,
            &["commit-tree", &tree, "-p", &head, "-m", "hand edit"],
            &[
                ("GIT_AUTHOR_NAME", "mallory"),
                ("GIT_AUTHOR_EMAIL", "mallory@example.org"),
                ("GIT_COMMITTER_NAME", "mallory"),
                ("GIT_COMMITTER_EMAIL", "mallory@example.org"),
            ],
        );
        String::from_utf8(out.stdout)
            .expect("UTF-8")
            .trim()
            .to_owned()
    };
    run(&["update-ref", "refs/heads/main", &commit, &head]);

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
