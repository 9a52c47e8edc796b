//! Behaviour of the desired-state repository against real git in temporary folders:
//! attributed commits, idempotent re-apply, scoped changes that write only what changed,
//! verify, git-compatible object names and packs, crash recovery, the history secret scan
//! and push.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use verbund_git::{
    folder_oid, Author, ChangeBatch, DesiredStateRepo, Difference, Error, FindingKind, Folding,
    Oid, PushOptions, RenderedFile,
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

fn fsck(dir: &Path) {
    git(
        dir,
        &[
            "fsck",
            "--full",
            "--strict",
            "--no-progress",
            "--no-dangling",
        ],
    );
}

fn commits(repo: &DesiredStateRepo) -> u32 {
    git(repo.path(), &["rev-list", "--count", "HEAD"])
        .trim()
        .parse()
        .unwrap()
}

/// Every object in the repository.
fn objects(repo: &DesiredStateRepo) -> std::collections::BTreeSet<String> {
    git(
        repo.path(),
        &[
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objectname) %(objecttype)",
        ],
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Every file of HEAD with its content, as git reads it.
fn head_files(repo: &DesiredStateRepo) -> BTreeMap<String, String> {
    git(repo.path(), &["ls-tree", "-r", "--name-only", "HEAD"])
        .lines()
        .map(|path| {
            let content = git(repo.path(), &["cat-file", "blob", &format!("HEAD:{path}")]);
            (path.to_owned(), content)
        })
        .collect()
}

fn file(path: &str, content: &str) -> RenderedFile {
    RenderedFile {
        path: path.to_owned(),
        content: content.to_owned(),
    }
}

fn author() -> Author {
    Author {
        name: "Erika Mustermann".to_owned(),
        email: "erika@kiel.de".to_owned(),
    }
}

fn batch(scope: &[&str], files: Vec<RenderedFile>) -> ChangeBatch {
    ChangeBatch {
        scope: scope.iter().map(|s| s.to_string()).collect(),
        files,
        author_name: "Erika Mustermann".to_owned(),
        author_email: "erika@kiel.de".to_owned(),
        message: "Book nextcloud for Kiel".to_owned(),
        audit_events: vec![42],
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

#[test]
fn first_apply_commits_with_author_and_audit_trailers() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path().join("desired-state.git")).unwrap();
    assert_eq!(repo.head().unwrap(), None);
    assert_eq!(repo.tree_oid_at("").unwrap(), None);
    let mut b = batch(&["sites/s1/prod"], site_files());
    b.audit_events = vec![42, 43];
    b.author_name = "Erika <x@y>\nMustermann".to_owned();
    let id = repo.apply(&b).unwrap().unwrap();
    assert_eq!(repo.head().unwrap(), Some(id.clone()));
    let log = git(repo.path(), &["log", "-1", "--format=%H%n%an%n%ae%n%B"]);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], id.0);
    assert_eq!(lines[1], "Erika x@yMustermann");
    assert_eq!(lines[2], "erika@kiel.de");
    assert_eq!(
        lines[3..].join("\n").trim_end(),
        "Book nextcloud for Kiel\n\nAudit-Event: 42\nAudit-Event: 43"
    );
    let trailers = git(
        repo.path(),
        &[
            "log",
            "-1",
            "--format=%(trailers:key=Audit-Event,valueonly)",
        ],
    );
    assert_eq!(trailers.trim(), "42\n43");
    assert_eq!(
        git(repo.path(), &["symbolic-ref", "--short", "HEAD"]).trim(),
        "main"
    );
    assert_eq!(
        git(repo.path(), &["rev-parse", "--is-bare-repository"]).trim(),
        "true"
    );
    assert_eq!(
        git(repo.path(), &["log", "-1", "--format=%cn <%ce>"]).trim(),
        "verbund <verbund@localhost>"
    );
    assert_eq!(
        git(repo.path(), &["config", "core.fsync"]).trim(),
        "committed"
    );
    let files = head_files(&repo);
    assert_eq!(files.len(), 5);
    assert_eq!(
        files["sites/s1/prod/bookings/a/app.yaml"],
        "kind: HelmRelease\nname: a\n"
    );
    fsck(repo.path());
    // Reopening an existing repository works and keeps its history.
    let again = DesiredStateRepo::open_or_init(repo.path()).unwrap();
    assert_eq!(commits(&again), 1);
    assert_eq!(again.head().unwrap(), Some(id));
}

#[test]
fn unchanged_reapply_creates_no_commit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    let b = batch(&["sites/s1/prod"], site_files());
    assert!(repo.apply(&b).unwrap().is_some());
    let before = objects(&repo);
    assert_eq!(repo.apply(&b).unwrap(), None);
    assert_eq!(repo.apply(&b).unwrap(), None);
    assert_eq!(commits(&repo), 1);
    // An empty batch on an empty scope commits nothing either, on a born or unborn branch.
    assert_eq!(
        repo.apply(&batch(&["sites/s9/test"], vec![])).unwrap(),
        None
    );
    let empty = DesiredStateRepo::open_or_init(dir.path().join("empty")).unwrap();
    assert_eq!(
        empty.apply(&batch(&["sites/s9/test"], vec![])).unwrap(),
        None
    );
    assert_eq!(empty.head().unwrap(), None);
    // No object and no stray file was written by the no-op changes.
    assert_eq!(objects(&repo), before);
    let pack_dir = repo.path().join("objects/pack");
    let names: Vec<String> = std::fs::read_dir(&pack_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| n.starts_with("pack-")), "{names:?}");
}

#[test]
fn changing_one_file_writes_only_the_changed_objects() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    let mut files = site_files();
    repo.apply(&batch(&["sites/s1/prod"], files.clone()))
        .unwrap();
    let before = objects(&repo);
    files[2].content = "kind: HelmRelease\nname: a\nversion: 2\n".to_owned();
    let mut b = batch(&["sites/s1/prod"], files.clone());
    b.audit_events = vec![];
    b.message = "Update a".to_owned();
    assert!(repo.apply(&b).unwrap().is_some());
    let added: Vec<String> = objects(&repo).difference(&before).cloned().collect();
    let kinds = |kind: &str| added.iter().filter(|o| o.ends_with(kind)).count();
    // The blob, the trees a, bookings, prod, s1, sites and the root, and the commit.
    assert_eq!(
        (kinds(" blob"), kinds(" tree"), kinds(" commit")),
        (1, 6, 1),
        "{added:?}"
    );
    assert_eq!(commits(&repo), 2);
    let changed = git(repo.path(), &["show", "--name-only", "--format=%B", "HEAD"]);
    let changed: Vec<&str> = changed.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(changed, ["Update a", "sites/s1/prod/bookings/a/app.yaml"]);
    fsck(repo.path());
}

#[test]
fn a_cancelled_booking_disappears_and_nothing_outside_the_puts_changes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    let other = vec![file("sites/s2/prod/kustomization.yaml", "resources: []\n")];
    repo.apply(&batch(&["sites/s2/prod"], other.clone()))
        .unwrap();
    repo.apply(&batch(&["sites/s1/prod"], site_files()))
        .unwrap();
    let s2_before = repo.tree_oid_at("sites/s2").unwrap().unwrap();

    let without_b: Vec<RenderedFile> = site_files()
        .into_iter()
        .filter(|f| !f.path.contains("/bookings/b/"))
        .collect();
    repo.apply(&batch(&["sites/s1/prod"], without_b)).unwrap();
    assert_eq!(repo.tree_oid_at("sites/s1/prod/bookings/b").unwrap(), None);
    assert!(repo
        .tree_oid_at("sites/s1/prod/bookings/a/app.yaml")
        .unwrap()
        .is_some());
    assert_eq!(repo.tree_oid_at("sites/s2").unwrap(), Some(s2_before));
    let changed = git(repo.path(), &["show", "--name-status", "--format=", "HEAD"]);
    assert_eq!(
        changed.trim(),
        "D\tsites/s1/prod/bookings/b/app.yaml\nD\tsites/s1/prod/bookings/b/namespace.yaml"
    );

    // Through a change: one booking folder removed, one file replaced, one removed.
    let mut change = repo.change().unwrap();
    change
        .put_folder("sites/s1/prod/bookings/a", vec![])
        .unwrap();
    change
        .put_file("sites/s1/prod/kustomization.yaml", Some("resources: []\n"))
        .unwrap();
    change
        .put_file("sites/s2/prod/kustomization.yaml", None)
        .unwrap();
    change
        .put_folder(
            "sites/s3/prod/bookings/c",
            vec![file("sites/s3/prod/bookings/c/app.yaml", "c\n")],
        )
        .unwrap();
    assert_eq!(change.list("sites").unwrap(), ["s1", "s3"]);
    assert_eq!(
        change.list("sites/s1/prod").unwrap(),
        ["kustomization.yaml"]
    );
    assert_eq!(
        change.list("sites/s3/prod/bookings/c").unwrap(),
        ["app.yaml"]
    );
    assert_eq!(change.list("sites/s3/prod/bookings").unwrap(), ["c"]);
    assert_eq!(change.list("nowhere").unwrap(), Vec::<String>::new());
    let id = change.commit(&author(), "Cancel a", &[7]).unwrap().unwrap();
    assert_eq!(repo.head().unwrap(), Some(id));
    let files = head_files(&repo);
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        [
            "sites/s1/prod/kustomization.yaml",
            "sites/s3/prod/bookings/c/app.yaml"
        ]
    );
    fsck(repo.path());
}

#[test]
fn batches_and_changes_are_checked() {
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
    let nested = batch(&["s", "s/t"], vec![file("s/t/a", "1")]);
    assert!(matches!(repo.apply(&nested), Err(Error::Overlap(_))));
    let conflict = batch(&["s"], vec![file("s/a", "1"), file("s/a/b", "2")]);
    assert!(matches!(repo.apply(&conflict), Err(Error::PathConflict(p)) if p == "s/a"));

    let mut change = repo.change().unwrap();
    change.put_folder("s/t", vec![file("s/t/a", "1")]).unwrap();
    assert!(matches!(
        change.put_file("s/t/b", Some("x")),
        Err(Error::Overlap(_))
    ));
    assert!(matches!(
        change.put_folder("s", vec![]),
        Err(Error::Overlap(_))
    ));
    assert!(matches!(
        change.put_folder("s/t", vec![]),
        Err(Error::Overlap(_))
    ));
    assert!(matches!(
        change.put_file("../x", None),
        Err(Error::InvalidPath(_))
    ));
    assert!(matches!(
        change.put_folder("u", vec![file("v/a", "")]),
        Err(Error::OutsideScope(_))
    ));
    change.put_file("s/u", Some("x")).unwrap();
    drop(change);
    assert_eq!(repo.head().unwrap(), None);
    assert!(matches!(
        repo.tree_oid_at("a/../b"),
        Err(Error::InvalidPath(_))
    ));
}

#[test]
fn a_change_fails_when_the_branch_moved_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    let mut first = repo.change().unwrap();
    first.put_file("a", Some("1")).unwrap();
    let mut second = repo.change().unwrap();
    second.put_file("b", Some("2")).unwrap();
    let id = first.commit(&author(), "first", &[]).unwrap().unwrap();
    let err = second.commit(&author(), "second", &[]).unwrap_err();
    assert!(matches!(err, Error::HeadMoved { .. }), "{err}");
    assert_eq!(repo.head().unwrap(), Some(id));
    assert_eq!(head_files(&repo).len(), 1);
}

/// Takes `file`'s lock once nobody holds it. A process another test thread is starting
/// holds a copy of every descriptor until it execs, so a released lock can stay taken for
/// a moment.
fn lock_when_free(file: &std::fs::File) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(e) = file.try_lock() {
        assert!(Instant::now() < deadline, "the lock stays taken: {e:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One process owns a repository: while a handle is open, another process cannot take
/// `verbund.lock` (here: another open file description, as another process has), and a
/// second handle of the same process leaves live locks alone; once every handle is
/// gone, the next opener owns it and clears what was left.
#[test]
fn one_process_owns_a_repository_and_only_its_first_handle_clears_locks() {
    let dir = tempfile::tempdir().unwrap();
    let first = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    let other_process = std::fs::File::open(dir.path().join("verbund.lock")).unwrap();
    assert!(matches!(
        other_process.try_lock(),
        Err(std::fs::TryLockError::WouldBlock)
    ));
    // A ref lock of the first handle, as it holds one mid-commit.
    let live = dir.path().join("refs/heads/main.lock");
    std::fs::write(&live, "").unwrap();
    let second = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    assert!(live.exists(), "a second handle removed a live lock");
    drop((first, second));
    lock_when_free(&other_process);
    // Now another process owns it: this one opens as a guest and clears nothing …
    let guest = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    assert!(live.exists(), "a guest removed a lock");
    // … until the owner is gone: the guest's next change claims the repository, so a
    // later process cannot take it from under the guest's work.
    other_process.unlock().unwrap();
    drop(guest.change().unwrap());
    let later = std::fs::File::open(dir.path().join("verbund.lock")).unwrap();
    assert!(matches!(
        later.try_lock(),
        Err(std::fs::TryLockError::WouldBlock)
    ));
    drop((guest, later));
    let free = std::fs::File::open(dir.path().join("verbund.lock")).unwrap();
    lock_when_free(&free);
    free.unlock().unwrap();
    let _third = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    assert!(!live.exists(), "a stale lock survived the first open");
}

/// Two writers of one repository (two handles of one process) race from
/// the same parent many times: each round exactly one moves the branch, the other is
/// told it moved, no lock is left, and git reads a sound history of the winners.
#[test]
fn racing_writers_move_the_branch_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let a = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    let b = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    let mut wins = 0;
    for round in 0..20 {
        let barrier = std::sync::Barrier::new(2);
        let results: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = [(&a, "a"), (&b, "b")]
                .into_iter()
                .map(|(repo, who)| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        let mut change = repo.change().unwrap();
                        change
                            .put_file(&format!("{who}/{round}"), Some("x"))
                            .unwrap();
                        barrier.wait();
                        match change.commit(&author(), who, &[]) {
                            Ok(Some(_)) => true,
                            Err(Error::HeadMoved { .. }) => false,
                            other => panic!("round {round}, {who}: {other:?}"),
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|w| **w).count(),
            1,
            "round {round}: {results:?}"
        );
        wins += 1;
    }
    assert_eq!(
        git(dir.path(), &["rev-list", "--count", "HEAD"]).trim(),
        wins.to_string()
    );
    assert!(!dir.path().join("refs/heads/main.lock").exists());
    fsck(dir.path());
}

#[test]
fn refuses_a_non_empty_folder_that_is_not_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("something"), "x").unwrap();
    let err = DesiredStateRepo::open_or_init(dir.path()).unwrap_err();
    assert!(matches!(err, Error::NotARepository(_)), "{err}");
    assert!(!dir.path().join("HEAD").exists());
    // An empty existing folder is initialised as a bare repository.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    DesiredStateRepo::open_or_init(&empty).unwrap();
    assert!(empty.join("HEAD").is_file() && empty.join("objects").is_dir());
}

#[test]
fn verify_reports_missing_extra_and_changed() {
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
    expected.retain(|f| !f.path.contains("/bookings/b/")); // all of b is extra
    expected.push(file("sites/s1/prod/bookings/c/app.yaml", "new"));
    expected.push(file(
        "sites/s1/prod/bookings/a/app.yaml/x",
        "a file became a folder",
    ));
    expected.retain(|f| f.path != "sites/s1/prod/bookings/a/app.yaml");
    assert_eq!(
        repo.verify(&expected, &scope).unwrap(),
        vec![
            Difference::Missing("sites/s1/prod/bookings/a/app.yaml/x".into()),
            Difference::Missing("sites/s1/prod/bookings/c/app.yaml".into()),
            Difference::Extra("sites/s1/prod/bookings/a/app.yaml".into()),
            Difference::Extra("sites/s1/prod/bookings/b/app.yaml".into()),
            Difference::Extra("sites/s1/prod/bookings/b/namespace.yaml".into()),
            Difference::Extra("sites/s1/prod/kustomization.yaml".into()),
            Difference::Changed("sites/s1/prod/bookings/a/namespace.yaml".into()),
        ]
    );
    // Nothing expected in a scope that holds files: all of them are extra.
    assert_eq!(repo.verify(&[], &scope).unwrap().len(), files.len());
    assert!(matches!(
        repo.verify(&[file("x/y", "")], &scope),
        Err(Error::OutsideScope(_))
    ));
}

#[test]
fn folder_oids_match_git() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    let shapes: Vec<Vec<&str>> = vec![
        vec!["f/a"],
        // git sorts a tree as if its name ended in `/`: a-b, a.b, a/, a0.
        vec!["f/a/x", "f/a.b", "f/a-b", "f/a0", "f/a/y/z"],
        vec!["f/a.b/c", "f/a/c", "f/a-b/c", "f/ab", "f/A", "f/_", "f/~"],
        vec!["f/über/ä.yaml", "f/x y", "f/1", "f/10", "f/9"],
        vec!["f/deep/er/and/deeper/still.yaml", "f/deep/er.yaml"],
    ];
    for (i, shape) in shapes.iter().enumerate() {
        let files: Vec<RenderedFile> = shape
            .iter()
            .enumerate()
            .map(|(j, p)| file(p, &format!("content {i} {j}\n")))
            .collect();
        let expected = folder_oid("f", &files).unwrap();
        repo.apply(&batch(&["f"], files)).unwrap();
        let actual = git(repo.path(), &["rev-parse", "HEAD:f"]);
        assert_eq!(expected.to_string(), actual.trim(), "shape {shape:?}");
        assert_eq!(repo.tree_oid_at("f").unwrap(), Some(expected));
        let root: Oid = git(repo.path(), &["rev-parse", "HEAD^{tree}"])
            .trim()
            .parse()
            .unwrap();
        assert_eq!(repo.tree_oid_at("").unwrap(), Some(root));
    }
    assert_eq!(folder_oid("f", &[]).unwrap(), Oid::EMPTY_TREE);
    assert!(matches!(
        folder_oid("f", &[file("g/a", "")]),
        Err(Error::OutsideScope(_))
    ));
    fsck(repo.path());
}

#[test]
fn a_large_cold_write_reads_back_identically_and_survives_gc() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    let mut expected = BTreeMap::new();
    let mut change = repo.change().unwrap();
    for site in 0..4 {
        let folder = format!("sites/s{site}/prod");
        let mut files = vec![file(
            &format!("{folder}/kustomization.yaml"),
            "resources: []\n",
        )];
        for booking in 0..500 {
            for name in ["namespace.yaml", "app.yaml", "netpol.yaml"] {
                files.push(file(
                    &format!("{folder}/bookings/ns-{booking:04}/{name}"),
                    &format!("kind: {name}\nmetadata:\n  name: b{booking}\n  site: s{site}\n"),
                ));
            }
        }
        for f in &files {
            expected.insert(f.path.clone(), f.content.clone());
        }
        change.put_folder(&folder, files).unwrap();
    }
    assert_eq!(change.list("sites/s3/prod/bookings").unwrap().len(), 500);
    change.commit(&author(), "cold", &[1]).unwrap().unwrap();
    fsck(repo.path());
    assert_eq!(head_files(&repo).len(), expected.len());
    // `git archive` reads every blob through git's own pack reader.
    let archive = dir.path().join("head.tar");
    git(
        repo.path(),
        &["archive", "-o", archive.to_str().unwrap(), "HEAD"],
    );
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    for (path, content) in &expected {
        assert_eq!(
            &std::fs::read_to_string(out.join(path)).unwrap(),
            content,
            "{path}"
        );
    }
    // Many small commits (one pack each), then housekeeping folds them together.
    git(repo.path(), &["config", "gc.autoPackLimit", "4"]);
    for i in 0..6 {
        let mut change = repo.change().unwrap();
        change
            .put_file(
                "sites/s0/prod/kustomization.yaml",
                Some(&format!("round {i}\n")),
            )
            .unwrap();
        change.commit(&author(), "small", &[]).unwrap().unwrap();
    }
    repo.maintain().unwrap();
    let packs = std::fs::read_dir(repo.path().join("objects/pack"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "pack")
        })
        .count();
    assert!(packs < 4, "{packs} packs after gc");
    fsck(repo.path());
    let files: Vec<RenderedFile> = expected
        .iter()
        .filter(|(p, _)| p.starts_with("sites/s1/"))
        .map(|(p, c)| file(p, c))
        .collect();
    assert_eq!(
        repo.verify(&files, &["sites/s1/prod".to_owned()]).unwrap(),
        vec![]
    );
}

/// Every commit writes a pack; beyond the limit, compaction folds them as the repository
/// grows (geometric: the small packs of recent commits), so readers never meet hundreds.
#[test]
fn packs_are_compacted_as_they_grow() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path().join("r.git")).unwrap();
    for i in 0..40 {
        let mut change = repo.change().unwrap();
        change
            .put_file(
                &format!("sites/s0/prod/bookings/b{i}/kustomization.yaml"),
                Some(&format!("round {i}\n")),
            )
            .unwrap();
        change.commit(&author(), "small", &[]).unwrap().unwrap();
    }
    assert!(repo.pack_count().unwrap() >= 40);
    assert!(
        !repo.compact_over(64, Folding::Quick).unwrap(),
        "under the limit: nothing done"
    );
    assert!(repo.compact_over(32, Folding::Quick).unwrap());
    let packs = repo.pack_count().unwrap();
    assert!(packs <= 8, "{packs} packs after compaction");
    // Nothing lost: every commit's files still read, and git finds the repository whole.
    git(repo.path(), &["fsck", "--no-dangling", "--strict"]);
    for i in 0..40 {
        assert_eq!(
            repo.file_at_head(&format!("sites/s0/prod/bookings/b{i}/kustomization.yaml"))
                .unwrap(),
            Some(format!("round {i}\n").into_bytes())
        );
    }
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
    b.audit_events = vec![round as i64];
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
    let path = dir.path().join("repo.git");
    let repo = DesiredStateRepo::open_or_init(&path).unwrap();
    repo.apply(&batch(&["sites/s1/prod"], site_files()))
        .unwrap();
    // The children own the repository in turn (each clears what the one killed before
    // left): this process lets go, and counts their commits with git itself.
    drop(repo);
    let commits = |path: &Path| -> u32 {
        git(path, &["rev-list", "--count", "HEAD"])
            .trim()
            .parse()
            .unwrap()
    };
    let exe = std::env::current_exe().unwrap();
    // The first child runs until it has committed a round, so that later ones find
    // history to protect; the others are killed at points spread over rounds.
    for (i, delay) in [300u64, 150, 520, 880, 1220, 77, 401]
        .into_iter()
        .enumerate()
    {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CRASH_CHILD, &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("child.log")).unwrap())
            .spawn()
            .unwrap();
        if i == 0 {
            let deadline = Instant::now() + Duration::from_secs(120);
            while commits(&path) < 2 {
                assert!(Instant::now() < deadline, "the child never committed");
                assert!(child.try_wait().unwrap().is_none(), "the child failed");
                std::thread::sleep(Duration::from_millis(20));
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
    assert!(commits(&path) > 1, "no child committed a round");
    // Whatever the kills left, a lock of a killed git is certainly stale now.
    std::fs::write(path.join("refs/heads/main.lock"), "").unwrap();
    let repo = DesiredStateRepo::open_or_init(&path).unwrap();
    assert!(!path.join("refs/heads/main.lock").exists());
    let leftovers: Vec<String> = std::fs::read_dir(path.join("objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("pack-"))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new());
    fsck(&path);

    let wanted = large_batch(1000);
    repo.apply(&wanted).unwrap();
    assert_eq!(repo.verify(&wanted.files, &wanted.scope).unwrap(), vec![]);
    // The other site was never touched.
    let s1 = vec!["sites/s1/prod".to_owned()];
    assert_eq!(repo.verify(&site_files(), &s1).unwrap(), vec![]);
    assert_eq!(repo.apply(&wanted).unwrap(), None);
    fsck(&path);
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
    let repo = DesiredStateRepo::open_or_init(dir.path().join("local.git")).unwrap();
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

#[test]
fn a_repository_follows_one_folder_of_another_and_holds_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let main = DesiredStateRepo::open_or_init(dir.path().join("main.git")).unwrap();
    let site = DesiredStateRepo::open_or_init(dir.path().join("a.git")).unwrap();
    let follow = |message: &str| {
        let mut change = site.change().unwrap();
        change.put_tree_from("sites/a", &main).unwrap();
        change.commit(&author(), message, &[7]).unwrap()
    };
    main.apply(&batch(
        &["sites"],
        vec![
            file("sites/a/prod/kustomization.yaml", "a: 1\n"),
            file("sites/a/prod/bookings/x/ns.yaml", "x: 1\n"),
            file(
                "sites/b/prod/kustomization.yaml",
                "b: secret of another tenant\n",
            ),
        ],
    ))
    .unwrap();
    assert!(follow("first").is_some());
    assert_eq!(follow("again"), None, "nothing new, no commit");
    // Changes in main: one of `a`, one of `b` only.
    main.apply(&batch(
        &["sites/a/prod/bookings"],
        vec![
            file("sites/a/prod/bookings/x/ns.yaml", "x: 2\n"),
            file("sites/a/prod/bookings/y/ns.yaml", "y: 1\n"),
        ],
    ))
    .unwrap();
    main.apply(&batch(
        &["sites/b"],
        vec![file("sites/b/prod/kustomization.yaml", "b: 2\n")],
    ))
    .unwrap();
    assert!(follow("second").is_some());
    assert_eq!(
        site.tree_oid_at("sites/a").unwrap(),
        main.tree_oid_at("sites/a").unwrap()
    );
    assert_eq!(
        head_files(&site),
        BTreeMap::from([
            (
                "sites/a/prod/bookings/x/ns.yaml".to_string(),
                "x: 2\n".to_string()
            ),
            (
                "sites/a/prod/bookings/y/ns.yaml".to_string(),
                "y: 1\n".to_string()
            ),
            (
                "sites/a/prod/kustomization.yaml".to_string(),
                "a: 1\n".to_string()
            ),
        ])
    );
    // Not one object of `b`, ever, and only the second version's new objects were added.
    let b_objects: Vec<String> = ["b: secret of another tenant\n", "b: 2\n"]
        .iter()
        .map(|c| {
            let mut child = Command::new("git")
                .args(["hash-object", "--stdin"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), c.as_bytes()).unwrap();
            String::from_utf8(child.wait_with_output().unwrap().stdout)
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    for object in objects(&site) {
        assert!(!b_objects.iter().any(|b| object.starts_with(b)), "{object}");
    }
    assert_eq!(commits(&site), 2);
    let log = git(site.path(), &["log", "-1", "--format=%an%n%B"]);
    assert!(log.contains("Audit-Event: 7"), "{log}");
    fsck(site.path());
    // A folder gone from main goes from the follower.
    main.apply(&batch(&["sites/a"], vec![])).unwrap();
    assert!(follow("gone").is_some());
    assert_eq!(site.tree_oid_at("sites/a").unwrap(), None);
    fsck(site.path());
}

/// Commits `files` (each replacing one file) in `repo` through `commit_with`, handing
/// the written pack to the caller; returns the commit and its pack.
fn commit_capturing(
    repo: &DesiredStateRepo,
    files: &[(&str, &str)],
    message: &str,
) -> (
    verbund_git::CommitId,
    Option<verbund_git::CommitId>,
    verbund_git::Pack,
) {
    let mut change = repo.change().unwrap();
    for (path, content) in files {
        change.put_file(path, Some(content)).unwrap();
    }
    let mut captured = None;
    let commit = change
        .commit_with(&author(), message, &[1], |written| {
            captured = Some((written.commit(), written.parent(), written.pack()?));
            Ok::<_, Error>(())
        })
        .unwrap()
        .unwrap();
    let (written, parent, pack) = captured.unwrap();
    assert_eq!(written, commit);
    (commit, parent, pack)
}

#[test]
fn a_copy_that_installs_each_commits_pack_holds_the_same_history() {
    let dir = tempfile::tempdir().unwrap();
    let writer = DesiredStateRepo::open_or_init(dir.path().join("writer.git")).unwrap();
    let copy = DesiredStateRepo::open_or_init(dir.path().join("copy.git")).unwrap();
    let mut packs = Vec::new();
    for (i, files) in [
        vec![("sites/a/prod/kustomization.yaml", "a: 1\n")],
        vec![("sites/a/prod/bookings/x/ns.yaml", "x: 1\n")],
        vec![("sites/a/prod/kustomization.yaml", "a: 2\n")],
    ]
    .iter()
    .enumerate()
    {
        packs.push(commit_capturing(&writer, files, &format!("change {i}")));
    }
    for (commit, parent, pack) in &packs {
        assert!(copy.install_pack(pack).unwrap(), "a new pack is written");
        assert!(!copy.install_pack(pack).unwrap(), "the same pack only once");
        copy.move_head(parent.as_ref(), commit).unwrap();
        assert_eq!(copy.head().unwrap().as_ref(), Some(commit));
    }
    assert_eq!(
        git(copy.path(), &["rev-list", "HEAD"]),
        git(writer.path(), &["rev-list", "HEAD"])
    );
    assert_eq!(head_files(&copy), head_files(&writer));
    fsck(copy.path());
    // The copy reads what it installed through its own object reader, too.
    assert_eq!(
        copy.file_at_head("sites/a/prod/kustomization.yaml")
            .unwrap()
            .as_deref(),
        Some(&b"a: 2\n"[..])
    );
    assert_eq!(
        copy.tree_oid_at("sites").unwrap(),
        writer.tree_oid_at("sites").unwrap()
    );
    // The writer's own packs are there already: nothing to install.
    assert!(!writer.install_pack(&packs[2].2).unwrap());
}

#[test]
fn a_copy_starts_from_one_pack_of_the_whole_history() {
    let dir = tempfile::tempdir().unwrap();
    let writer = DesiredStateRepo::open_or_init(dir.path().join("writer.git")).unwrap();
    writer.apply(&batch(&["sites"], site_files())).unwrap();
    let (second, _, _) = commit_capturing(&writer, &[("sites/s1/test/x.yaml", "x\n")], "two");
    let history = writer.history_pack(&second).unwrap();
    let copy = DesiredStateRepo::open_or_init(dir.path().join("copy.git")).unwrap();
    copy.install_pack(&history).unwrap();
    copy.move_head(None, &second).unwrap();
    assert_eq!(commits(&copy), 2);
    assert_eq!(head_files(&copy), head_files(&writer));
    fsck(copy.path());
    // No temporary file of the history pack is left in the writer.
    let leftovers: Vec<_> = std::fs::read_dir(writer.path().join("objects/pack"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tmp_"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_refused_publication_leaves_the_branch_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path()).unwrap();
    let (first, _, _) = commit_capturing(&repo, &[("a", "1")], "first");
    let mut change = repo.change().unwrap();
    change.put_file("a", Some("2")).unwrap();
    let refused: Result<_, Error> = change.commit_with(&author(), "second", &[], |_| {
        Err(Error::HeadMoved {
            branch: "refs/heads/main".into(),
            expected: "elsewhere".into(),
        })
    });
    assert!(matches!(refused, Err(Error::HeadMoved { .. })));
    assert_eq!(repo.head().unwrap(), Some(first));
    assert_eq!(head_files(&repo).get("a").map(String::as_str), Some("1"));
    fsck(repo.path());
}

#[test]
fn a_copy_refuses_broken_packs_and_moves_only_from_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let writer = DesiredStateRepo::open_or_init(dir.path().join("writer.git")).unwrap();
    let copy = DesiredStateRepo::open_or_init(dir.path().join("copy.git")).unwrap();
    let (first, _, pack1) = commit_capturing(&writer, &[("a", "1")], "first");
    let (second, _, pack2) = commit_capturing(&writer, &[("a", "2")], "second");

    let mut truncated = pack1.clone();
    truncated.pack.truncate(truncated.pack.len() - 1);
    let mut flipped = pack1.clone();
    let middle = flipped.pack.len() / 2;
    flipped.pack[middle] ^= 1;
    let mismatched = verbund_git::Pack {
        pack: pack1.pack.clone(),
        idx: pack2.idx.clone(),
    };
    for broken in [&truncated, &flipped, &mismatched] {
        let err = copy.install_pack(broken).unwrap_err();
        assert!(matches!(err, Error::InvalidPack(_)), "{err}");
    }
    assert!(std::fs::read_dir(copy.path().join("objects/pack"))
        .map(|d| d.count() == 0)
        .unwrap_or(true));

    // A commit the copy does not hold cannot become its HEAD.
    assert!(copy.move_head(None, &second).is_err());
    copy.install_pack(&pack1).unwrap();
    copy.move_head(None, &first).unwrap();
    copy.install_pack(&pack2).unwrap();
    // Compare-and-swap: from an old value that is not the branch's, nothing moves.
    let err = copy.move_head(None, &second).unwrap_err();
    assert!(matches!(err, Error::HeadMoved { .. }), "{err}");
    assert_eq!(copy.head().unwrap(), Some(first.clone()));
    copy.move_head(Some(&first), &second).unwrap();
    assert_eq!(copy.head().unwrap(), Some(second));
    fsck(copy.path());
}

/// Compaction runs beside commits (the publisher starts it on a task of its own): packs
/// written while it folds others stay, nothing a commit wrote is lost, and git finds the
/// repository whole.
#[test]
fn compaction_beside_commits_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path().join("r.git")).unwrap();
    let path = |i: usize| format!("sites/s{}/prod/bookings/b{i}/kustomization.yaml", i % 3);
    let commit = |i: usize| {
        let mut change = repo.change().unwrap();
        change
            .put_file(&path(i), Some(&format!("round {i}\n")))
            .unwrap();
        change.commit(&author(), "small", &[]).unwrap().unwrap();
    };
    for i in 0..60 {
        commit(i);
    }
    let compactor = repo.clone();
    let compactions = std::thread::spawn(move || {
        (0..20)
            .filter(|_| compactor.compact_over(4, Folding::Quick).unwrap())
            .count()
    });
    for i in 60..160 {
        commit(i);
    }
    assert!(compactions.join().unwrap() > 0, "no compaction ran");
    repo.compact_over(4, Folding::Deltified).unwrap();
    git(repo.path(), &["fsck", "--no-dangling", "--strict"]);
    for i in 0..160 {
        assert_eq!(
            repo.file_at_head(&path(i)).unwrap(),
            Some(format!("round {i}\n").into_bytes()),
            "{}",
            path(i)
        );
    }
}

/// A quick fold copies objects as they are (each version of a rewritten tree whole);
/// housekeeping's deltified fold takes up what quick folds wrote, wherever it stands in
/// the progression, and stores those versions as deltas: the repository shrinks.
#[test]
fn quick_folds_are_folded_again_with_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let repo = DesiredStateRepo::open_or_init(dir.path().join("r.git")).unwrap();
    let mut first = repo.change().unwrap();
    for i in 0..400 {
        let path = format!("sites/s0/prod/bookings/b{i:04}/kustomization.yaml");
        first
            .put_file(&path, Some(&format!("booking {i}\n")))
            .unwrap();
    }
    first.commit(&author(), "first", &[]).unwrap().unwrap();
    for i in 0..40 {
        let mut change = repo.change().unwrap();
        let path = format!("sites/s0/prod/bookings/n{i:04}/kustomization.yaml");
        change.put_file(&path, Some("new\n")).unwrap();
        change.commit(&author(), "small", &[]).unwrap().unwrap();
    }
    let pack_bytes = || -> u64 {
        std::fs::read_dir(repo.path().join("objects/pack"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
            .map(|e| e.metadata().unwrap().len())
            .sum()
    };
    assert!(repo.compact_over(8, Folding::Quick).unwrap());
    let quick = pack_bytes();
    assert!(repo.compact_over(1, Folding::Deltified).unwrap());
    let deltified = pack_bytes();
    assert!(
        deltified * 2 < quick,
        "{quick} bytes after the quick fold, {deltified} after the deltified one"
    );
    git(repo.path(), &["fsck", "--no-dangling", "--strict"]);
    assert_eq!(
        repo.file_at_head("sites/s0/prod/bookings/n0039/kustomization.yaml")
            .unwrap(),
        Some(b"new\n".to_vec())
    );
}
