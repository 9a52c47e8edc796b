//! Behaviour of the desired-state repository against real git in temporary folders:
//! attributed commits, idempotent re-apply, scoped pruning, verify, crash recovery,
//! the history secret scan and push.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use verbund_git::{
    ChangeBatch, DesiredStateRepo, Difference, Error, FindingKind, PushOptions, RenderedFile,
};

const CRASH_CHILD: &str = "VERBUND_GIT_CRASH_CHILD";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn commits(repo: &DesiredStateRepo) -> u32 {
    git(repo.path(), &["rev-list", "--count", "HEAD"])
        .trim()
        .parse()
        .unwrap()
}

fn file(path: &str, content: &str) -> RenderedFile {
    RenderedFile {
        path: path.to_owned(),
        content: content.to_owned(),
    }
}

fn batch(scope: &[&str], files: Vec<RenderedFile>) -> ChangeBatch {
    ChangeBatch {
        scope: scope.iter().map(|s| s.to_string()).collect(),
        files,
        author_name: "Erika Mustermann".to_owned(),
        author_email: "erika@kiel.de".to_owned(),
        message: "Book nextcloud for Kiel".to_owned(),
        audit_event: Some(42),
    }
}

/// Two bookings of site s1's prod environment.
fn site_files() -> Vec<RenderedFile> {
    vec![
        file("sites/s1/prod/kustomization.yaml", "resources: [a, b]\n"),
        file(
            "sites/s1/prod/bookings/a/namespace.yaml",
            "kind: Namespace\nname: a\n",
        ),
        file(
            "sites/s1/prod/bookings/a/app.yaml",
            "kind: HelmRelease\nname: a\n",
        ),
        file(
            "sites/s1/prod/bookings/b/namespace.yaml",
            "kind: Namespace\nname: b\n",
        ),
        file(
            "sites/s1/prod/bookings/b/app.yaml",
            "kind: HelmRelease\nname: b\n",
        ),
    ]
}

fn inodes(root: &Path, files: &[RenderedFile]) -> BTreeMap<String, (u64, i64, i64)> {
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(root.join(&f.path)).unwrap();
            (f.path.clone(), (m.ino(), m.mtime(), m.mtime_nsec()))
        })
        .collect()
}

#[test]
fn first_apply_commits_with_author_and_audit_trailer() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path().join("desired-state")).unwrap();
    let id = repo
        .apply(&batch(&["sites/s1/prod"], site_files()))
        .unwrap()
        .unwrap();
    let log = git(repo.path(), &["log", "-1", "--format=%H%n%an%n%ae%n%B"]);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], id.0);
    assert_eq!(lines[1], "Erika Mustermann");
    assert_eq!(lines[2], "erika@kiel.de");
    assert_eq!(lines[3], "Book nextcloud for Kiel");
    assert!(lines.contains(&"Audit-Event: 42"), "{log}");
    assert_eq!(
        git(repo.path(), &["branch", "--show-current"]).trim(),
        "main"
    );
    assert_eq!(
        git(repo.path(), &["log", "-1", "--format=%cn"]).trim(),
        "verbund"
    );
    let tracked = git(repo.path(), &["ls-files"]);
    assert_eq!(tracked.lines().count(), 5);
    // Reopening an existing repository works and keeps its history.
    let again = DesiredStateRepo::open_or_init(repo.path()).unwrap();
    assert_eq!(commits(&again), 1);
}

#[test]
fn unchanged_reapply_creates_no_commit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    let b = batch(&["sites/s1/prod"], site_files());
    assert!(repo.apply(&b).unwrap().is_some());
    assert_eq!(repo.apply(&b).unwrap(), None);
    assert_eq!(repo.apply(&b).unwrap(), None);
    assert_eq!(commits(&repo), 1);
    // An empty batch on an empty scope commits nothing either.
    assert_eq!(
        repo.apply(&batch(&["sites/s9/test"], vec![])).unwrap(),
        None
    );
}

#[test]
fn changing_one_file_writes_only_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    let mut files = site_files();
    repo.apply(&batch(&["sites/s1/prod"], files.clone()))
        .unwrap();
    let before = inodes(repo.path(), &files);
    std::thread::sleep(Duration::from_millis(20));
    files[2].content = "kind: HelmRelease\nname: a\nversion: 2\n".to_owned();
    let mut b = batch(&["sites/s1/prod"], files.clone());
    b.audit_event = None;
    b.message = "Update a".to_owned();
    assert!(repo.apply(&b).unwrap().is_some());
    let after = inodes(repo.path(), &files);
    for f in &files {
        if f.path == files[2].path {
            assert_ne!(
                before[&f.path], after[&f.path],
                "{} was not rewritten",
                f.path
            );
        } else {
            assert_eq!(before[&f.path], after[&f.path], "{} was rewritten", f.path);
        }
    }
    assert_eq!(commits(&repo), 2);
    let changed = git(repo.path(), &["show", "--name-only", "--format=%s", "HEAD"]);
    let changed: Vec<&str> = changed.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(changed, ["Update a", "sites/s1/prod/bookings/a/app.yaml"]);
}

#[test]
fn a_cancelled_booking_disappears_and_nothing_outside_the_scope_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    let other = vec![file("sites/s2/prod/kustomization.yaml", "resources: []\n")];
    repo.apply(&batch(&["sites/s2/prod"], other.clone()))
        .unwrap();
    repo.apply(&batch(&["sites/s1/prod"], site_files()))
        .unwrap();
    std::fs::write(repo.path().join("NOTES.local"), "operator notes").unwrap();
    std::fs::write(repo.path().join("sites/s1/test.local"), "beside the scope").unwrap();
    let other_before = inodes(repo.path(), &other);

    let without_b: Vec<RenderedFile> = site_files()
        .into_iter()
        .filter(|f| !f.path.contains("/bookings/b/"))
        .collect();
    repo.apply(&batch(&["sites/s1/prod"], without_b)).unwrap();

    assert!(!repo.path().join("sites/s1/prod/bookings/b").exists());
    assert!(repo
        .path()
        .join("sites/s1/prod/bookings/a/app.yaml")
        .exists());
    assert_eq!(inodes(repo.path(), &other), other_before);
    assert!(repo.path().join("NOTES.local").exists());
    assert!(repo.path().join("sites/s1/test.local").exists());
    let changed = git(repo.path(), &["show", "--name-status", "--format=", "HEAD"]);
    assert_eq!(
        changed.trim(),
        "D\tsites/s1/prod/bookings/b/app.yaml\nD\tsites/s1/prod/bookings/b/namespace.yaml"
    );
    let tracked = git(repo.path(), &["ls-files"]);
    assert!(tracked.contains("sites/s2/prod/kustomization.yaml"));
    assert!(!tracked.contains("NOTES.local"));
}

#[test]
fn batches_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    let outside = batch(&["sites/s1/prod"], vec![file("sites/s1/prodx/a.yaml", "")]);
    assert!(matches!(repo.apply(&outside), Err(Error::OutsideScope(_))));
    for bad in [
        "../escape.yaml",
        "sites/s1/prod/../../x",
        "/abs",
        "sites/.git/x",
        "a//b",
    ] {
        let b = batch(&["sites/s1/prod"], vec![file(bad, "")]);
        assert!(
            matches!(repo.apply(&b), Err(Error::InvalidPath(_))),
            "{bad}"
        );
    }
    let twice = batch(&["s"], vec![file("s/a", "1"), file("s/a", "2")]);
    assert!(matches!(repo.apply(&twice), Err(Error::DuplicatePath(_))));
    assert!(matches!(
        repo.apply(&batch(&[".."], vec![])),
        Err(Error::InvalidPath(_))
    ));
}

#[test]
fn refuses_a_non_empty_folder_that_is_not_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("something"), "x").unwrap();
    let err = DesiredStateRepo::open_or_init(dir.path()).unwrap_err();
    assert!(matches!(err, Error::NotARepository(_)), "{err}");
    assert!(!dir.path().join(".git").exists());
    // An empty existing folder is initialised.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    DesiredStateRepo::open_or_init(&empty).unwrap();
    assert!(empty.join(".git").is_dir());
}

#[test]
fn verify_reports_missing_extra_changed_and_uncommitted() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    let scope = vec!["sites/s1/prod".to_owned()];
    let files = site_files();
    assert_eq!(
        repo.verify(&files, &scope).unwrap().len(),
        files.len(),
        "an empty repository misses every file"
    );
    repo.apply(&batch(&["sites/s1/prod"], files.clone()))
        .unwrap();
    assert_eq!(repo.verify(&files, &scope).unwrap(), vec![]);

    let mut expected = files.clone();
    expected.remove(0); // kustomization.yaml is now extra at HEAD
    expected[0].content = "changed".to_owned(); // bookings/a/namespace.yaml
    expected.push(file("sites/s1/prod/bookings/c/app.yaml", "new"));
    // Garbage in the work tree is reported but does not mask HEAD.
    std::fs::write(
        repo.path().join("sites/s1/prod/bookings/a/app.yaml"),
        "garbage",
    )
    .unwrap();
    std::fs::write(repo.path().join("sites/s1/prod/stray.yaml"), "stray").unwrap();
    assert_eq!(
        repo.verify(&expected, &scope).unwrap(),
        vec![
            Difference::Missing("sites/s1/prod/bookings/c/app.yaml".into()),
            Difference::Extra("sites/s1/prod/kustomization.yaml".into()),
            Difference::Changed("sites/s1/prod/bookings/a/namespace.yaml".into()),
            Difference::Uncommitted("sites/s1/prod/bookings/a/app.yaml".into()),
            Difference::Uncommitted("sites/s1/prod/stray.yaml".into()),
        ]
    );
    // Repair discards the garbage; the original batch is then in line again.
    assert_eq!(
        repo.repair(&batch(&["sites/s1/prod"], files.clone()))
            .unwrap(),
        None
    );
    assert_eq!(repo.verify(&files, &scope).unwrap(), vec![]);
    assert_eq!(commits(&repo), 1);
}

fn large_batch(round: usize) -> ChangeBatch {
    let files = (0..5000)
        .map(|i| {
            file(
                &format!("sites/big/prod/bookings/b{:02}/f{i:04}.yaml", i % 50),
                &format!("kind: ConfigMap\nround: {round}\nindex: {i}\n"),
            )
        })
        .collect();
    let mut b = batch(&["sites/big/prod"], files);
    b.message = format!("round {round}");
    b.audit_event = Some(round as i64);
    b
}

/// Not a test on its own: the child process of `survives_being_killed_mid_apply`, which
/// applies large batches until it is killed.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CRASH_CHILD) else {
        return;
    };
    let repo = DesiredStateRepo::open_or_init(&path).unwrap();
    for round in 1.. {
        repo.apply(&large_batch(round)).unwrap();
    }
}

#[test]
fn survives_being_killed_mid_apply() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    let repo = DesiredStateRepo::open_or_init(&path).unwrap();
    repo.apply(&batch(&["sites/s1/prod"], site_files()))
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    // The first child runs until it has committed a round, so that later ones find
    // history to protect; the others are killed at points spread over write, stage and
    // commit of a round.
    for (i, delay) in [1500u64, 700, 2600, 4400, 6100].into_iter().enumerate() {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CRASH_CHILD, &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("child.log")).unwrap())
            .spawn()
            .unwrap();
        if i == 0 {
            let deadline = Instant::now() + Duration::from_secs(120);
            while commits(&repo) < 2 {
                assert!(Instant::now() < deadline, "the child never committed");
                assert!(child.try_wait().unwrap().is_none(), "the child failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        std::thread::sleep(Duration::from_millis(delay));
        assert!(
            child.try_wait().unwrap().is_none(),
            "child {i} ended by itself: {}",
            std::fs::read_to_string(dir.path().join("child.log")).unwrap()
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    // The children got far enough to commit.
    assert!(commits(&repo) > 1, "no child committed a round");
    // Whatever the kills left, a lock of a killed git is certainly stale now.
    std::fs::write(path.join(".git/index.lock"), "").unwrap();
    let repo = DesiredStateRepo::open_or_init(&path).unwrap();
    assert!(!path.join(".git/index.lock").exists());
    git(&path, &["fsck", "--full", "--no-progress"]);

    let wanted = large_batch(1000);
    repo.repair(&wanted).unwrap();
    assert_eq!(repo.verify(&wanted.files, &wanted.scope).unwrap(), vec![]);
    // The other site was never touched.
    let s1 = vec!["sites/s1/prod".to_owned()];
    assert_eq!(repo.verify(&site_files(), &s1).unwrap(), vec![]);
    assert_eq!(repo.apply(&wanted).unwrap(), None);
    git(&path, &["fsck", "--full", "--no-progress"]);
}

#[test]
fn secret_scan_finds_a_secret_anywhere_in_history() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    let secret = file(
        "sites/s1/prod/bookings/a/leak.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: hunter2}\n",
    );
    let mut files = site_files();
    files.push(secret);
    repo.apply(&batch(&["sites/s1/prod"], files)).unwrap();
    // Removed again: still in history.
    repo.apply(&batch(&["sites/s1/prod"], site_files()))
        .unwrap();
    let findings = repo.scan_history_for_secrets().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].path, "sites/s1/prod/bookings/a/leak.yaml");
    assert_eq!(findings[0].kind, FindingKind::SecretObject);
}

#[test]
fn secret_scan_finds_nothing_in_a_normal_repository() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    assert_eq!(repo.scan_history_for_secrets().unwrap(), vec![]);
    let mut files = site_files();
    files.push(file(
        "sites/s1/prod/bookings/a/externalsecrets.yaml",
        "kind: ExternalSecret\nspec:\n  secretStoreRef: {name: verbund, kind: ClusterSecretStore}\n  data:\n  - secretKey: password\n    remoteRef: {key: verbund/a/pg}\n",
    ));
    files.push(file(
        "sites/s1/prod/bookings/b/values.yaml",
        "kind: HelmRelease\nspec:\n  values:\n    existingSecret: pg-credentials\n    replicaCount: 2\n",
    ));
    repo.apply(&batch(&["sites/s1/prod"], files)).unwrap();
    assert_eq!(repo.scan_history_for_secrets().unwrap(), vec![]);
}

#[test]
fn push_to_a_bare_repository_and_fail_bounded_on_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path().join("local")).unwrap();
    repo.apply(&batch(&["sites/s1/prod"], site_files()))
        .unwrap();
    let remote = dir.path().join("remote.git");
    git(
        dir.path(),
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    repo.push(remote.to_str().unwrap(), "main").unwrap();
    let head = git(repo.path(), &["rev-parse", "HEAD"]);
    assert_eq!(git(&remote, &["rev-parse", "main"]), head);
    // A second push of the same state is a no-op success.
    repo.push(remote.to_str().unwrap(), "main").unwrap();

    let options = PushOptions {
        attempts: 3,
        initial_backoff: Duration::from_millis(50),
        ..PushOptions::default()
    };
    let missing = dir.path().join("does/not/exist.git");
    let started = Instant::now();
    let err = repo
        .push_with(missing.to_str().unwrap(), "main", &options)
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, Error::PushFailed { attempts: 3, .. }),
        "{err}"
    );
    assert!(took >= Duration::from_millis(150), "no back-off: {took:?}");
    assert!(took < Duration::from_secs(10), "unbounded: {took:?}");
    assert!(matches!(
        repo.push(remote.to_str().unwrap(), "bad..name"),
        Err(Error::InvalidBranch(_))
    ));
}
