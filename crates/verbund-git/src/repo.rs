//! The desired-state repository: a bare Git repository that verbund writes objects into
//! itself. Opening (and recovering after a crash), applying a batch of rendered folders
//! as one attributed commit, reading HEAD's trees, verifying HEAD against what the store
//! says, and housekeeping.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use verbund_render::RenderedFile;

use crate::change::Change;
use crate::compact::Folding;
use crate::error::{Error, Result};
use crate::git;
use crate::odb::{Odb, Tree};
use crate::oid::Oid;
use crate::pack;
use crate::paths;
use crate::refs::{self, Target};
use crate::tree::{self, Child, Entry, Leaf, Node, MODE_FILE};

/// Committer identity configured in a repository that has none of its own; the author of
/// every commit is the actor of its change.
pub const FALLBACK_NAME: &str = "verbund";
/// See [`FALLBACK_NAME`].
pub const FALLBACK_EMAIL: &str = "verbund@localhost";

/// The branch a new repository starts on.
pub const DEFAULT_BRANCH: &str = "main";

/// Configuration a repository gets on every open: refs and objects are fsynced by git
/// too (`gc`, `pack-objects`), as verbund fsyncs what it writes itself, so a commit
/// that was reported is on disk.
const DURABILITY: &[(&str, &str)] = &[("core.fsync", "committed"), ("core.fsyncMethod", "fsync")];

/// The full hexadecimal name of a commit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitId(pub String);

impl std::fmt::Display for CommitId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a commit is attributed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Author {
    /// `Name <email>` as it appears in a commit, with `<`, `>` and line breaks removed
    /// (they would end the identity early or forge another); an empty name becomes
    /// `unknown`, as git refuses a commit without one.
    pub(crate) fn ident(&self) -> String {
        let clean = |s: &str| {
            s.replace(['<', '>', '\n', '\r', '\0'], "")
                .trim()
                .to_owned()
        };
        let name = clean(&self.name);
        let name = if name.is_empty() {
            "unknown".to_owned()
        } else {
            name
        };
        format!("{name} <{}>", clean(&self.email))
    }
}

/// One change to the desired state: the complete content of the folders it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeBatch {
    /// Folders the batch owns completely, e.g. `sites/s1/prod`: any file below them that
    /// is not in [`ChangeBatch::files`] is deleted. Nothing outside them is touched. The
    /// folders must not lie inside each other.
    pub scope: Vec<String>,
    /// Every file of the scope; each must lie inside one of the scope's folders.
    pub files: Vec<RenderedFile>,
    /// The actor the commit is attributed to.
    pub author_name: String,
    /// See [`ChangeBatch::author_name`].
    pub author_email: String,
    /// The commit message (the subject first).
    pub message: String,
    /// Sequence numbers of the audit events behind the change; each becomes a trailer
    /// line `Audit-Event: <seq>`.
    pub audit_events: Vec<i64>,
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
}

/// A desired-state repository in the data folder: a bare Git repository. It belongs to
/// one verbund process (the leader) at a time; clones share one object reader.
#[derive(Clone)]
pub struct DesiredStateRepo {
    root: PathBuf,
    shared: Arc<Shared>,
}

struct Shared {
    committer: Author,
    odb: Mutex<Odb>,
    /// This process's hold on the repository (see [`Ownership`]), released with the
    /// last handle.
    owner: Arc<Ownership>,
}

/// The file whose lock says which process uses a repository: `<repo>/verbund.lock`.
const OWNER_LOCK: &str = "verbund.lock";

/// Which process looks after a repository: the one holding an OS lock on
/// [`OWNER_LOCK`] (released by the kernel when the process ends, however it ends),
/// shared by every handle of the process. verbund moves branches in-process and names
/// its temporary files itself, so clearing "stale" locks and temporaries while another
/// process works in the repository would remove live ones: only the owner's first
/// handle clears them. A second process (`verbund desired-state verify` beside a running
/// server, a server started before its predecessor ended) works beside the owner as a
/// guest and clears nothing; a guest claims the lock again whenever it starts a change,
/// so it becomes the owner once the other process is gone, before a third one could.
struct Ownership {
    file: fs::File,
    owner: std::sync::atomic::AtomicBool,
}

impl Drop for Ownership {
    fn drop(&mut self) {
        // Released explicitly: a process another thread is starting holds a copy of the
        // descriptor until it execs, which would otherwise keep the lock a moment longer.
        let _ = self.file.unlock();
    }
}

/// The repositories this process has open, by folder.
static OWNED: Mutex<Option<HashMap<PathBuf, std::sync::Weak<Ownership>>>> = Mutex::new(None);

impl Ownership {
    /// This process's hold on `root`, and whether stale locks and temporaries are to be
    /// cleared now: only when this process just became the owner.
    fn take(root: &Path) -> Result<(Arc<Ownership>, bool)> {
        let mut owned = OWNED.lock().unwrap_or_else(|p| p.into_inner());
        let owned = owned.get_or_insert_with(HashMap::new);
        if let Some(held) = owned.get(root).and_then(std::sync::Weak::upgrade) {
            return Ok((held, false));
        }
        let path = root.join(OWNER_LOCK);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("opening", &path, e))?;
        let held = Arc::new(Ownership {
            file,
            owner: std::sync::atomic::AtomicBool::new(false),
        });
        let owner = held.claim(&path)?;
        owned.retain(|_, weak| weak.strong_count() > 0);
        owned.insert(root.to_owned(), Arc::downgrade(&held));
        Ok((held, owner))
    }

    /// Takes the lock if this process does not hold it yet and nobody else does; whether
    /// this process owns the repository now.
    fn claim(&self, path: &Path) -> Result<bool> {
        use std::sync::atomic::Ordering::{Acquire, Release};
        if self.owner.load(Acquire) {
            return Ok(true);
        }
        match self.file.try_lock() {
            Ok(()) => {
                self.owner.store(true, Release);
                Ok(true)
            }
            Err(fs::TryLockError::WouldBlock) => Ok(false),
            Err(fs::TryLockError::Error(e)) => Err(Error::io("locking", path, e)),
        }
    }
}

impl std::fmt::Debug for DesiredStateRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesiredStateRepo")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl DesiredStateRepo {
    /// Opens the bare repository at `path`, or creates it (`git init --bare -b main`)
    /// when `path` does not exist or is an empty folder. A non-empty folder that is not a
    /// bare repository is refused. A committer identity is configured locally when none
    /// is, git is told to fsync objects and refs, and, by the first handle of the process
    /// that owns the repository (an OS lock on `verbund.lock`; a second process is a
    /// guest), lock and temporary files left by a crash are removed (see
    /// [`DesiredStateRepo::remove_stale_locks`]).
    pub fn open_or_init(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let is_repo = path.join("HEAD").is_file()
            && path.join("objects").is_dir()
            && path.join("refs").is_dir();
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
            git::run(&root, &["init", "--bare", "-q", "-b", DEFAULT_BRANCH], None)?;
        }
        let (owner, clear) = Ownership::take(&root)?;
        let committer = configure(&root)?;
        let repo = DesiredStateRepo {
            shared: Arc::new(Shared {
                committer,
                odb: Mutex::new(Odb::new(root.clone())),
                owner,
            }),
            root,
        };
        // Another handle of this process, or another process, may be committing right
        // now: its locks and temporaries are live. Only the owner's first handle clears
        // what is stale.
        if clear {
            repo.remove_stale_locks()?;
        }
        Ok(repo)
    }

    /// The repository's folder (the git directory itself).
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The identity every commit names as committer.
    pub fn committer(&self) -> &Author {
        &self.shared.committer
    }

    /// Removes lock files (`HEAD.lock`, `config.lock`, `packed-refs.lock`,
    /// `refs/**/*.lock`) and this crate's temporary pack files once no git process works
    /// in the repository any more. git creates a lock exclusively and renames it into
    /// place when done, so one that remains after every git in the repository has ended
    /// was left by a killed one. A git started by a verbund process that was killed
    /// outlives it and still holds its lock, so this first waits (up to [`LOCK_WAIT`]) for
    /// git processes whose working folder is the repository to end (found through
    /// `/proc`; where there is no `/proc` the wait is skipped). Returns the removed paths.
    pub(crate) fn remove_stale_locks(&self) -> Result<Vec<PathBuf>> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        while !git_processes_in(&self.root).is_empty() {
            if std::time::Instant::now() >= deadline {
                return Err(Error::Busy(self.root.clone()));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut removed = Vec::new();
        for name in ["HEAD.lock", "config.lock", "packed-refs.lock"] {
            let lock = self.root.join(name);
            if lock.is_file() {
                fs::remove_file(&lock).map_err(|e| Error::io("removing", &lock, e))?;
                removed.push(lock);
            }
        }
        let mut stack = vec![self.root.join("refs")];
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
        removed.extend(pack::remove_temporaries(&self.root)?);
        Ok(removed)
    }

    /// The commit HEAD names, or `None` while the branch is unborn.
    pub fn head(&self) -> Result<Option<CommitId>> {
        Ok(self.head_ref()?.1.map(|oid| CommitId(oid.to_string())))
    }

    /// The ref HEAD points to (`refs/heads/main`) and the commit it names.
    pub(crate) fn head_ref(&self) -> Result<(String, Option<Oid>)> {
        let head_file = self.root.join("HEAD");
        let head =
            fs::read_to_string(&head_file).map_err(|e| Error::io("reading", &head_file, e))?;
        let head = head.trim();
        match head.strip_prefix("ref: ") {
            Some(name) => Ok((name.to_owned(), self.read_ref(name)?)),
            None => Ok(("HEAD".to_owned(), Some(head.parse()?))),
        }
    }

    /// The value of a ref: its loose file, else its line in `packed-refs`.
    fn read_ref(&self, name: &str) -> Result<Option<Oid>> {
        let loose = self.root.join(name);
        match fs::read_to_string(&loose) {
            Ok(value) => return Ok(Some(value.trim().parse()?)),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound) => {}
            Err(e) => return Err(Error::io("reading", &loose, e)),
        }
        let packed = self.root.join("packed-refs");
        let text = match fs::read_to_string(&packed) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading", &packed, e)),
        };
        for line in text.lines() {
            if let Some((oid, refname)) = line.split_once(' ') {
                if refname == name && !line.starts_with(['#', '^']) {
                    return Ok(Some(oid.parse()?));
                }
            }
        }
        Ok(None)
    }

    /// Moves `branch` from `old` (`None`: unborn) to `new` with compare-and-swap, by
    /// git's lock protocol in-process (`refs.rs`); an `Unverified` name must be a commit
    /// the repository holds, as `git update-ref` demands. Fails with
    /// [`Error::HeadMoved`] when the branch is not at `old`; never overwrites.
    pub(crate) fn move_branch(
        &self,
        branch: &str,
        new: Oid,
        old: Option<Oid>,
        target: Target,
    ) -> Result<()> {
        let moved = refs::compare_and_swap(
            &self.root,
            branch,
            new,
            old,
            target,
            || self.read_ref(branch),
            |oid| Ok(matches!(self.odb().read(oid)?, Some((kind, _)) if kind == "commit")),
        )?;
        if moved {
            return Ok(());
        }
        Err(Error::HeadMoved {
            branch: branch.to_owned(),
            expected: old.unwrap_or(Oid::ZERO).to_string(),
        })
    }

    /// The root tree of HEAD, `None` while the branch is unborn.
    pub(crate) fn head_tree(&self) -> Result<Option<Oid>> {
        match self.head_ref()?.1 {
            Some(commit) => Ok(Some(self.odb().commit_tree(commit)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn odb(&self) -> MutexGuard<'_, Odb> {
        // A panic while holding the reader leaves at worst a cache without an entry.
        self.shared
            .odb
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn tree(&self, oid: Oid) -> Result<Tree> {
        self.odb().tree(oid)
    }

    /// The entry at `path` below the tree `root`.
    pub(crate) fn entry_at(&self, root: Oid, path: &str) -> Result<Option<Entry>> {
        let mut tree = root;
        let mut parts = path.split('/').peekable();
        while let Some(part) = parts.next() {
            let entries = self.tree(tree)?;
            let Some(entry) = entries.iter().find(|e| e.name == part.as_bytes()) else {
                return Ok(None);
            };
            if parts.peek().is_none() {
                return Ok(Some(entry.clone()));
            }
            if !entry.is_tree() {
                return Ok(None);
            }
            tree = entry.oid;
        }
        Ok(None)
    }

    /// The object name of the tree (or blob) at `path` in HEAD (`""` is the root tree),
    /// `None` when HEAD has nothing there or the branch is unborn.
    pub fn tree_oid_at(&self, path: &str) -> Result<Option<Oid>> {
        if !path.is_empty() {
            paths::check_path(path)?;
        }
        let Some(root) = self.head_tree()? else {
            return Ok(None);
        };
        if path.is_empty() {
            return Ok(Some(root));
        }
        Ok(self.entry_at(root, path)?.map(|e| e.oid))
    }

    /// The content of the file at `path` in HEAD, `None` when HEAD has no file there (or
    /// the branch is unborn).
    pub fn file_at_head(&self, path: &str) -> Result<Option<Vec<u8>>> {
        paths::check_path(path)?;
        let Some(root) = self.head_tree()? else {
            return Ok(None);
        };
        match self.entry_at(root, path)? {
            Some(entry) if !entry.is_tree() => match self.odb().read(entry.oid)? {
                Some((kind, content)) if kind == "blob" => Ok(Some(content)),
                _ => Err(Error::MissingObject(entry.oid.to_hex())),
            },
            _ => Ok(None),
        }
    }

    /// Every file below `folder` in HEAD with its content (as UTF-8, lossily), sorted by
    /// path; empty when HEAD has no such folder.
    pub fn files_under(&self, folder: &str) -> Result<Vec<RenderedFile>> {
        paths::check_path(folder)?;
        let Some(root) = self.head_tree()? else {
            return Ok(Vec::new());
        };
        let Some(entry) = self.entry_at(root, folder)?.filter(Entry::is_tree) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut stack = vec![(folder.to_owned(), entry.oid)];
        while let Some((path, tree)) = stack.pop() {
            for child in self.tree(tree)?.iter() {
                let child_path = join(&path, &child.name);
                if child.is_tree() {
                    stack.push((child_path, child.oid));
                } else {
                    match self.odb().read(child.oid)? {
                        Some((kind, content)) if kind == "blob" => out.push(RenderedFile {
                            path: child_path,
                            content: String::from_utf8_lossy(&content).into_owned(),
                        }),
                        _ => return Err(Error::MissingObject(child.oid.to_hex())),
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Starts a change based on the current HEAD (which may be unborn).
    pub fn change(&self) -> Result<Change<'_>> {
        // A guest becomes the owner as soon as the owner is gone (see `Ownership`).
        self.shared.owner.claim(&self.root.join(OWNER_LOCK))?;
        let (branch, parent) = self.head_ref()?;
        let base_tree = match parent {
            Some(commit) => self.odb().commit_tree(commit)?,
            None => Oid::EMPTY_TREE,
        };
        Ok(Change::new(self, branch, parent, base_tree))
    }

    /// Makes the scope of `batch` hold exactly its files and commits the result,
    /// attributed to the batch's actor: one [`Change`] with one
    /// [`Change::put_folder`] per scope folder. Returns `None`, and commits nothing, when
    /// HEAD already holds exactly the batch.
    pub fn apply(&self, batch: &ChangeBatch) -> Result<Option<CommitId>> {
        check_batch(&batch.scope, &batch.files)?;
        let mut scopes: Vec<&String> = batch.scope.iter().collect();
        scopes.sort();
        scopes.dedup();
        let mut change = self.change()?;
        for scope in scopes {
            let files = batch
                .files
                .iter()
                .filter(|f| paths::in_scope(&f.path, scope))
                .cloned()
                .collect();
            change.put_folder(scope, files)?;
        }
        let author = Author {
            name: batch.author_name.clone(),
            email: batch.author_email.clone(),
        };
        change.commit(&author, &batch.message, &batch.audit_events)
    }

    /// Compares what HEAD holds inside the `scope` folders with `expected` (every
    /// expected file must lie inside one of them). Empty when in line. Whole folders are
    /// compared by tree name first; only folders whose names differ are walked, and
    /// files are compared by blob name, so no content is read.
    pub fn verify(&self, expected: &[RenderedFile], scope: &[String]) -> Result<Vec<Difference>> {
        check_batch(scope, expected)?;
        let root = self.head_tree()?;
        let mut differences = Vec::new();
        let mut scopes: Vec<&String> = scope.iter().collect();
        scopes.sort();
        scopes.dedup();
        for folder in scopes {
            let mut leaves: Vec<Leaf<'_>> = expected
                .iter()
                .filter_map(|f| {
                    paths::inside(&f.path, folder).map(|rel| Leaf {
                        path: rel,
                        content: f.content.as_bytes(),
                    })
                })
                .collect();
            let node = if leaves.is_empty() {
                None
            } else {
                Some(tree::build(&mut leaves, &|rel| format!("{folder}/{rel}"))?)
            };
            let old = match root {
                Some(root) => self.entry_at(root, folder)?,
                None => None,
            };
            self.compare(folder, node.as_ref(), old.as_ref(), &mut differences)?;
        }
        differences.sort();
        differences.dedup();
        Ok(differences)
    }

    fn compare(
        &self,
        path: &str,
        new: Option<&Node<'_>>,
        old: Option<&Entry>,
        out: &mut Vec<Difference>,
    ) -> Result<()> {
        match (new, old) {
            (None, None) => {}
            (None, Some(old)) => self.all_extra(path, old, out)?,
            (Some(new), None) => all_missing(path, new, out),
            (Some(new), Some(old)) if !old.is_tree() => {
                out.push(Difference::Extra(path.to_owned()));
                all_missing(path, new, out);
            }
            (Some(new), Some(old)) if old.oid == new.oid => {}
            (Some(new), Some(old)) => {
                let old_entries = self.tree(old.oid)?;
                let by_name: HashMap<&[u8], &Entry> =
                    old_entries.iter().map(|e| (e.name.as_slice(), e)).collect();
                for (name, child) in &new.children {
                    let child_path = join(path, name);
                    let previous = by_name.get(name.as_slice()).copied();
                    match (child, previous) {
                        (Child::Blob(_, oid), Some(e)) if !e.is_tree() => {
                            if e.oid != *oid || e.mode != MODE_FILE {
                                out.push(Difference::Changed(child_path));
                            }
                        }
                        (Child::Blob(..), Some(e)) => {
                            out.push(Difference::Missing(child_path.clone()));
                            self.all_extra(&child_path, e, out)?;
                        }
                        (Child::Blob(..), None) => out.push(Difference::Missing(child_path)),
                        (Child::Tree(sub), previous) => {
                            self.compare(&child_path, Some(sub), previous, out)?;
                        }
                    }
                }
                let names: std::collections::HashSet<&[u8]> =
                    new.children.iter().map(|(n, _)| n.as_slice()).collect();
                for e in old_entries.iter() {
                    if !names.contains(e.name.as_slice()) {
                        self.all_extra(&join(path, &e.name), e, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn all_extra(&self, path: &str, entry: &Entry, out: &mut Vec<Difference>) -> Result<()> {
        self.each_file(path, entry, Difference::Extra, out)
    }

    /// Every file at or below `entry` (at `path`), as `mark` makes it a difference.
    fn each_file(
        &self,
        path: &str,
        entry: &Entry,
        mark: fn(String) -> Difference,
        out: &mut Vec<Difference>,
    ) -> Result<()> {
        if !entry.is_tree() {
            out.push(mark(path.to_owned()));
            return Ok(());
        }
        for child in self.tree(entry.oid)?.iter() {
            self.each_file(&join(path, &child.name), child, mark, out)?;
        }
        Ok(())
    }

    /// How HEAD differs from what it follows: exactly what `other`'s HEAD holds at
    /// `folder`, at the same path, and nothing else (a site's own repository and its
    /// folder of the whole desired state). `Missing` is in `other` but not here, `Extra`
    /// here but not in `other`, `Changed` in both with other content. Empty when in
    /// line. Trees are compared by name first and only those that differ are walked; no
    /// file is read, and nothing is written.
    pub fn verify_follows(
        &self,
        other: &DesiredStateRepo,
        folder: &str,
    ) -> Result<Vec<Difference>> {
        paths::check_path(folder)?;
        let expected = match other.head_tree()? {
            Some(root) => other.entry_at(root, folder)?,
            None => None,
        };
        let mut out = Vec::new();
        let mut tree = self.head_tree()?;
        let mut at = String::new();
        let parts: Vec<&str> = folder.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            // Down the folder's path: whatever lies beside it is extra.
            let mut next = None;
            if let Some(oid) = tree {
                for e in self.tree(oid)?.iter() {
                    if e.name == part.as_bytes() {
                        next = Some(e.clone());
                    } else {
                        self.all_extra(&below(&at, &e.name), e, &mut out)?;
                    }
                }
            }
            at = below(&at, part.as_bytes());
            if i + 1 == parts.len() {
                self.compare_with(other, &at, next.as_ref(), expected.as_ref(), &mut out)?;
                break;
            }
            tree = match next {
                Some(e) if e.is_tree() => Some(e.oid),
                Some(e) => {
                    self.all_extra(&at, &e, &mut out)?;
                    None
                }
                None => None,
            };
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Compares `mine` (of this repository) with `theirs` (of `other`), both at `path`.
    fn compare_with(
        &self,
        other: &DesiredStateRepo,
        path: &str,
        mine: Option<&Entry>,
        theirs: Option<&Entry>,
        out: &mut Vec<Difference>,
    ) -> Result<()> {
        match (mine, theirs) {
            (None, None) => {}
            (Some(m), None) => self.all_extra(path, m, out)?,
            (None, Some(t)) => other.each_file(path, t, Difference::Missing, out)?,
            (Some(m), Some(t)) if m.oid == t.oid && m.mode == t.mode => {}
            (Some(m), Some(t)) if m.is_tree() && t.is_tree() => {
                let mine = self.tree(m.oid)?;
                let theirs = other.tree(t.oid)?;
                let by_name: HashMap<&[u8], &Entry> =
                    theirs.iter().map(|e| (e.name.as_slice(), e)).collect();
                for e in mine.iter() {
                    let previous = by_name.get(e.name.as_slice()).copied();
                    self.compare_with(other, &join(path, &e.name), Some(e), previous, out)?;
                }
                let names: std::collections::HashSet<&[u8]> =
                    mine.iter().map(|e| e.name.as_slice()).collect();
                for e in theirs.iter() {
                    if !names.contains(e.name.as_slice()) {
                        other.each_file(&join(path, &e.name), e, Difference::Missing, out)?;
                    }
                }
            }
            (Some(m), Some(t)) if !m.is_tree() && !t.is_tree() => {
                out.push(Difference::Changed(path.to_owned()));
            }
            (Some(m), Some(t)) => {
                self.all_extra(path, m, out)?;
                other.each_file(path, t, Difference::Missing, out)?;
            }
        }
        Ok(())
    }

    /// Housekeeping: `git gc --auto`, which packs loose objects and folds many packs into
    /// one when git's thresholds say so. Runs in the calling thread; may take long on a
    /// large repository, so callers schedule it outside the request path.
    pub fn maintain(&self) -> Result<()> {
        git::run(&self.root, &["gc", "--auto", "--quiet"], None).map(|_| ())
    }

    /// How many pack files hold the repository's objects (each commit writes one).
    pub fn pack_count(&self) -> Result<usize> {
        crate::compact::pack_count(&self.root)
    }

    /// Folds the packs of single commits together when there are more than `limit`,
    /// as the repository grows rather than at the next housekeeping: readers (git
    /// serving a site's fetch, `fsck`, a cold clone) look into every pack, so their cost
    /// grows with the count. Only the small packs that break a geometric progression of
    /// sizes are folded, from the object names in their indexes, so the cost follows
    /// what was written since the last compaction, not the repository's size, and at
    /// most about log2(objects) packs remain (see [`crate::compact`]); `folding` says
    /// whether objects are tried as deltas of each other. Safe beside commits and
    /// readers. Returns whether it compacted.
    pub fn compact_over(&self, limit: usize, folding: Folding) -> Result<bool> {
        crate::compact::compact_over(&self.root, limit, folding)
    }
}

/// The expected object name of a folder holding exactly `files` (repository paths, each
/// inside `folder`), computed in process exactly as git would. A folder without files is
/// [`Oid::EMPTY_TREE`], which git never stores below the root: compare it with
/// `tree_oid_at(folder).unwrap_or(Oid::EMPTY_TREE)`.
pub fn folder_oid(folder: &str, files: &[RenderedFile]) -> Result<Oid> {
    let mut leaves = Leaf::of_folder(folder, files)?;
    if leaves.is_empty() {
        return Ok(Oid::EMPTY_TREE);
    }
    Ok(tree::build(&mut leaves, &|rel| format!("{folder}/{rel}"))?.oid)
}

fn all_missing(path: &str, node: &Node<'_>, out: &mut Vec<Difference>) {
    for (name, child) in &node.children {
        let child_path = join(path, name);
        match child {
            Child::Blob(..) => out.push(Difference::Missing(child_path)),
            Child::Tree(sub) => all_missing(&child_path, sub, out),
        }
    }
}

fn join(path: &str, name: &[u8]) -> String {
    format!("{path}/{}", String::from_utf8_lossy(name))
}

/// `name` inside `path`, where `""` is the root.
fn below(path: &str, name: &[u8]) -> String {
    if path.is_empty() {
        String::from_utf8_lossy(name).into_owned()
    } else {
        join(path, name)
    }
}

/// Sets what every open needs (committer identity, durability) where it is not set yet,
/// and returns the committer identity.
fn configure(root: &Path) -> Result<Author> {
    // Only the repository's own configuration counts: the committer must not depend on
    // who runs verbund.
    let get = |key: &str| -> Result<Option<String>> {
        let out = git::run_status(root, &["config", "--local", "--get", key], None, None)?;
        let value = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok((out.success() && !value.is_empty()).then_some(value))
    };
    let mut identity = Vec::new();
    for (key, fallback) in [("user.name", FALLBACK_NAME), ("user.email", FALLBACK_EMAIL)] {
        let value = match get(key)? {
            Some(value) => value,
            None => {
                git::run(root, &["config", "--local", key, fallback], None)?;
                fallback.to_owned()
            }
        };
        identity.push(value);
    }
    for (key, value) in DURABILITY {
        if get(key)?.as_deref() != Some(value) {
            git::run(root, &["config", "--local", key, value], None)?;
        }
    }
    let email = identity.pop().unwrap_or_default();
    let name = identity.pop().unwrap_or_default();
    Ok(Author { name, email })
}

/// How long [`DesiredStateRepo::remove_stale_locks`] waits for git processes of a
/// killed predecessor to end.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Ids of the running `git` processes whose working folder is `root` or below it (every
/// git this crate starts that may take a lock runs with `-C <root>`); empty where `/proc`
/// cannot be read.
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

/// Checks the scope and files of a batch: valid paths, each file strictly inside a scope
/// folder, no path twice.
fn check_batch(scope: &[String], files: &[RenderedFile]) -> Result<()> {
    for folder in scope {
        paths::check_path(folder)?;
    }
    let mut seen = std::collections::HashSet::with_capacity(files.len());
    for file in files {
        paths::check_path(&file.path)?;
        if !scope.iter().any(|s| paths::inside(&file.path, s).is_some()) {
            return Err(Error::OutsideScope(file.path.clone()));
        }
        if !seen.insert(file.path.as_str()) {
            return Err(Error::DuplicatePath(file.path.clone()));
        }
    }
    Ok(())
}
