//! The desired-state repository: opening (and recovering after a crash), applying a
//! batch of rendered files as one attributed commit, verifying HEAD against what the
//! store says, and repairing the work tree.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use verbund_render::RenderedFile;

use crate::error::{Error, Result};
use crate::git;
use crate::worktree;

/// Committer identity configured in a repository that has none of its own; the author of
/// every commit is the actor of its batch.
pub const FALLBACK_NAME: &str = "verbund";
/// See [`FALLBACK_NAME`].
pub const FALLBACK_EMAIL: &str = "verbund@localhost";

/// The branch a new repository starts on.
pub const DEFAULT_BRANCH: &str = "main";

/// The full hexadecimal name of a commit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitId(pub String);

impl std::fmt::Display for CommitId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One change to the desired state: the complete content of the folders it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeBatch {
    /// Folders the batch owns completely, e.g. `sites/s1/prod`: any file below them that
    /// is not in [`ChangeBatch::files`] is deleted. Nothing outside them is touched.
    pub scope: Vec<String>,
    /// Every file of the scope; each must lie inside one of the scope's folders.
    pub files: Vec<RenderedFile>,
    /// The actor the commit is attributed to.
    pub author_name: String,
    /// See [`ChangeBatch::author_name`].
    pub author_email: String,
    /// The commit message (the subject first).
    pub message: String,
    /// Sequence number of the audit event behind the change; becomes the trailer
    /// `Audit-Event: <seq>`.
    pub audit_event: Option<i64>,
}

/// How the committed desired state differs from the expected one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Difference {
    /// Expected, but not at HEAD.
    Missing(String),
    /// At HEAD inside the scope, but not expected.
    Extra(String),
    /// At HEAD with other content than expected.
    Changed(String),
    /// Differs between HEAD and the work tree or index (uncommitted or stray file).
    Uncommitted(String),
}

/// A desired-state repository in the data folder. The repository belongs to one
/// verbund process (the leader) at a time.
#[derive(Debug, Clone)]
pub struct DesiredStateRepo {
    root: PathBuf,
}

impl DesiredStateRepo {
    /// Opens the repository at `path`, or creates it (`git init -b main`) when `path`
    /// does not exist or is an empty folder. A non-empty folder that is not a repository
    /// is refused. A committer identity is configured locally when none is, and lock
    /// files left by a crash are removed (see [`DesiredStateRepo::remove_stale_locks`]).
    pub fn open_or_init(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let is_repo = path.join(".git").exists();
        if !is_repo {
            match fs::read_dir(path) {
                Ok(mut entries) => {
                    if entries.next().is_some() {
                        return Err(Error::NotARepository(path.to_owned()));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    fs::create_dir_all(path).map_err(|e| Error::io("creating", path, e))?;
                }
                Err(e) => return Err(Error::io("listing", path, e)),
            }
        }
        let root = fs::canonicalize(path).map_err(|e| Error::io("resolving", path, e))?;
        if !is_repo {
            git::run(&root, &["init", "-q", "-b", DEFAULT_BRANCH], None)?;
        }
        let repo = DesiredStateRepo { root };
        repo.remove_stale_locks()?;
        repo.configure_identity()?;
        Ok(repo)
    }

    /// The work tree's root folder.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Removes lock files under `.git` (`index.lock`, `HEAD.lock`, `config.lock`,
    /// `packed-refs.lock` and `refs/**/*.lock`) once no git process works in the
    /// repository any more. git creates a lock exclusively and renames it into place when
    /// done, so one that remains after every git in the repository has ended was left by a
    /// killed one. A git started by a verbund process that was killed outlives it and
    /// still holds its lock, so this first waits (up to [`LOCK_WAIT`]) for git processes
    /// whose working folder is the repository to end (found through `/proc`; where there
    /// is no `/proc` the wait is skipped). Returns the removed paths.
    pub fn remove_stale_locks(&self) -> Result<Vec<PathBuf>> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        while !git_processes_in(&self.root).is_empty() {
            if std::time::Instant::now() >= deadline {
                return Err(Error::Busy(self.root.clone()));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let git_dir = self.root.join(".git");
        let mut removed = Vec::new();
        for name in ["index.lock", "HEAD.lock", "config.lock", "packed-refs.lock"] {
            let lock = git_dir.join(name);
            if lock.is_file() {
                fs::remove_file(&lock).map_err(|e| Error::io("removing", &lock, e))?;
                removed.push(lock);
            }
        }
        let mut stack = vec![git_dir.join("refs")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "lock") {
                    fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e))?;
                    removed.push(path);
                }
            }
        }
        Ok(removed)
    }

    fn configure_identity(&self) -> Result<()> {
        for (key, value) in [("user.name", FALLBACK_NAME), ("user.email", FALLBACK_EMAIL)] {
            let out =
                git::run_status(&self.root, &["config", "--local", "--get", key], None, None)?;
            if !out.success() || out.stdout.iter().all(u8::is_ascii_whitespace) {
                git::run(&self.root, &["config", "--local", key, value], None)?;
            }
        }
        Ok(())
    }

    /// Brings the scope of `batch` in line with its files and commits the result,
    /// attributed to the batch's actor. Only files whose bytes differ are written (each
    /// atomically); files inside the scope that the batch no longer has are deleted.
    /// Returns `None`, and commits nothing, when HEAD already holds exactly the batch.
    ///
    /// What is committed is everything inside the scope that differs from HEAD, not only
    /// what this call wrote, so a batch interrupted by a crash is completed by the next.
    pub fn apply(&self, batch: &ChangeBatch) -> Result<Option<CommitId>> {
        let expected = check_batch(&batch.scope, &batch.files)?;

        let mut writes = Vec::new();
        for (path, content) in &expected {
            let full = self.root.join(path);
            if !worktree::same_content(&full, content)? {
                writes.push((full, *content));
            }
        }
        let mut dirs: BTreeSet<PathBuf> = writes
            .iter()
            .filter_map(|(full, _)| full.parent().map(Path::to_owned))
            .collect();
        worktree::write_all(&writes)?;
        for scope in &batch.scope {
            for path in worktree::list_files(&self.root, scope)? {
                if !expected.contains_key(path.as_str()) {
                    worktree::remove_file(&self.root, &path)?;
                    if let Some(dir) = self.root.join(&path).parent() {
                        dirs.insert(dir.to_owned());
                    }
                }
            }
        }
        for dir in &dirs {
            worktree::sync_dir(dir)?;
        }

        let changed = self.changed_paths(&batch.scope)?;
        if changed.is_empty() {
            return Ok(None);
        }
        // Staging by scope stages exactly the changed paths (all of them lie inside the
        // scope, and nothing else inside it differs) and keeps git from matching thousands
        // of single-path pathspecs.
        let specs: Vec<String> = batch
            .scope
            .iter()
            .filter(|scope| changed.iter().any(|path| worktree::in_scope(path, scope)))
            .map(|scope| git::literal(scope))
            .collect();
        let mut pathspecs = Vec::new();
        for spec in &specs {
            pathspecs.extend_from_slice(spec.as_bytes());
            pathspecs.push(0);
        }
        let from_stdin = ["--pathspec-from-file=-", "--pathspec-file-nul"];
        let mut add = vec!["add", "-A"];
        add.extend(from_stdin);
        git::run(&self.root, &add, Some(&pathspecs))?;

        // The index may lag behind HEAD after a crash between a commit's ref update and
        // its index update: then status sees changes that staging turns into none.
        let mut diff = vec!["diff", "--cached", "--quiet", "--no-renames", "--"];
        diff.extend(specs.iter().map(String::as_str));
        let staged = git::run_status(&self.root, &diff, None, None)?;
        match staged.status.code() {
            Some(0) => return Ok(None),
            Some(1) => {}
            _ => return Err(git::failure(&diff, &staged)),
        }

        // `<`, `>` and line breaks would end the identity early or forge another.
        let clean = |s: &str| s.replace(['<', '>', '\n', '\r'], "").trim().to_owned();
        let author = format!(
            "{} <{}>",
            clean(&batch.author_name),
            clean(&batch.author_email)
        );
        let author_arg = format!("--author={author}");
        let trailer;
        let mut commit = vec![
            "commit",
            "-q",
            "--no-verify",
            "--allow-empty-message",
            "--only",
        ];
        commit.push(&author_arg);
        if let Some(seq) = batch.audit_event {
            trailer = format!("--trailer=Audit-Event: {seq}");
            commit.push(&trailer);
        }
        // The message goes through a file: standard input carries the pathspecs.
        let message_file = self.root.join(".git").join("VERBUND_COMMIT_MSG");
        fs::write(&message_file, batch.message.as_bytes())
            .map_err(|e| Error::io("writing", &message_file, e))?;
        let message_arg = format!("--file={}", message_file.display());
        commit.push(&message_arg);
        commit.extend(from_stdin);
        let result = git::run(&self.root, &commit, Some(&pathspecs));
        let _ = fs::remove_file(&message_file);
        result?;
        let head = git::run_text(&self.root, &["rev-parse", "HEAD"])?;
        Ok(Some(CommitId(head.trim().to_owned())))
    }

    /// Paths inside `scope` that differ between HEAD, the index and the work tree.
    fn changed_paths(&self, scope: &[String]) -> Result<BTreeSet<String>> {
        if scope.is_empty() {
            return Ok(BTreeSet::new());
        }
        let mut args = vec![
            "status".to_owned(),
            "--porcelain=v1".to_owned(),
            "-z".to_owned(),
            "--no-renames".to_owned(),
            "--untracked-files=all".to_owned(),
            "--".to_owned(),
        ];
        args.extend(scope.iter().map(|s| git::literal(s)));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = git::run(&self.root, &args, None)?;
        let mut paths = BTreeSet::new();
        for entry in out.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let path = entry.get(3..).ok_or_else(|| Error::Parse {
                command: args.join(" "),
                detail: String::from_utf8_lossy(entry).into_owned(),
            })?;
            paths.insert(String::from_utf8_lossy(path).into_owned());
        }
        Ok(paths)
    }

    /// Compares the files committed at HEAD inside `scope` with `expected` (read from
    /// Git's objects, not the work tree), and reports in addition every path inside the
    /// scope where the work tree or index differs from HEAD. Empty when in line. Every
    /// expected file must lie inside `scope`, as in [`DesiredStateRepo::apply`].
    pub fn verify(&self, expected: &[RenderedFile], scope: &[String]) -> Result<Vec<Difference>> {
        let expected = check_batch(scope, expected)?;
        let committed = self.committed_files(scope)?;
        let mut differences = Vec::new();
        for (path, content) in &expected {
            match committed.get(*path) {
                None => differences.push(Difference::Missing((*path).to_owned())),
                Some(actual) if actual.as_slice() != *content => {
                    differences.push(Difference::Changed((*path).to_owned()));
                }
                Some(_) => {}
            }
        }
        for path in committed.keys() {
            if !expected.contains_key(path.as_str()) {
                differences.push(Difference::Extra(path.clone()));
            }
        }
        for path in self.changed_paths(scope)? {
            differences.push(Difference::Uncommitted(path));
        }
        differences.sort();
        Ok(differences)
    }

    /// The files committed at HEAD inside `scope`, with their content.
    fn committed_files(&self, scope: &[String]) -> Result<BTreeMap<String, Vec<u8>>> {
        let head = git::run_status(
            &self.root,
            &["rev-parse", "--verify", "-q", "HEAD"],
            None,
            None,
        )?;
        if !head.success() || scope.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut args = vec![
            "ls-tree".to_owned(),
            "-r".to_owned(),
            "-z".to_owned(),
            "HEAD".to_owned(),
            "--".to_owned(),
        ];
        args.extend(scope.iter().map(|s| git::literal(s)));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = git::run(&self.root, &args, None)?;
        let mut paths = Vec::new();
        let mut oids = Vec::new();
        for entry in out.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let parsed = entry.split_once('\t').and_then(|(meta, path)| {
                let mut fields = meta.split(' ');
                let (_mode, _kind, oid) = (fields.next()?, fields.next()?, fields.next()?);
                Some((path.to_owned(), oid.to_owned()))
            });
            let (path, oid) = parsed.ok_or_else(|| Error::Parse {
                command: args.join(" "),
                detail: entry.clone().into_owned(),
            })?;
            paths.push(path);
            oids.push(oid);
        }
        let blobs = git::cat_blobs(&self.root, &oids)?;
        Ok(paths
            .into_iter()
            .zip(blobs)
            .map(|(path, blob)| (path, blob.map(|(_, content)| content).unwrap_or_default()))
            .collect())
    }

    /// Throws away whatever inside the batch's scope differs from HEAD (staged changes,
    /// modified, deleted and untracked files, as `git reset`, `git checkout -- <scope>`
    /// and `git clean -fdx -- <scope>` do) and then applies the batch. Used after a
    /// restart to bring the repository back in line with the store.
    pub fn repair(&self, batch: &ChangeBatch) -> Result<Option<CommitId>> {
        check_batch(&batch.scope, &batch.files)?;
        let has_head = git::run_status(
            &self.root,
            &["rev-parse", "--verify", "-q", "HEAD"],
            None,
            None,
        )?
        .success();
        for scope in &batch.scope {
            let spec = git::literal(scope);
            if has_head {
                git::run(&self.root, &["reset", "-q", "HEAD", "--", &spec], None)?;
            }
            let tracked = git::run(&self.root, &["ls-files", "-z", "--", &spec], None)?;
            if !tracked.is_empty() {
                git::run(&self.root, &["checkout", "-q", "--", &spec], None)?;
            }
            git::run(
                &self.root,
                &["clean", "-q", "-f", "-d", "-x", "--", &spec],
                None,
            )?;
        }
        self.apply(batch)
    }
}

/// How long [`DesiredStateRepo::remove_stale_locks`] waits for git processes of a
/// killed predecessor to end.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Ids of the running `git` processes whose working folder is `root` or below it (every git this
/// crate starts runs with `-C <root>`); empty where `/proc` cannot be read.
fn git_processes_in(root: &Path) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = fs::read_to_string(entry.path().join("comm")).ok()?;
            let cwd = fs::read_link(entry.path().join("cwd")).ok()?;
            (comm.trim_end() == "git" && cwd.starts_with(root)).then_some(pid)
        })
        .collect()
}

/// Checks the scope and files of a batch and indexes the files by path.
fn check_batch<'a>(
    scope: &[String],
    files: &'a [RenderedFile],
) -> Result<BTreeMap<&'a str, &'a [u8]>> {
    for folder in scope {
        worktree::check_path(folder)?;
    }
    let mut expected = BTreeMap::new();
    for file in files {
        worktree::check_path(&file.path)?;
        if !scope.iter().any(|s| worktree::in_scope(&file.path, s)) {
            return Err(Error::OutsideScope(file.path.clone()));
        }
        if expected
            .insert(file.path.as_str(), file.content.as_bytes())
            .is_some()
        {
            return Err(Error::DuplicatePath(file.path.clone()));
        }
    }
    Ok(expected)
}
