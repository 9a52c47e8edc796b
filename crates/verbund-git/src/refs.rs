//! Moving a branch in-process, by git's own protocol for loose refs, instead of starting
//! `git update-ref` for every commit (two processes per change, ~2.5 ms each, on the
//! change path that issue 15 times).
//!
//! The protocol is the files backend's: create `<ref>.lock` exclusively (waiting up to a
//! second for another holder: another handle of this process, or `gc`'s `pack-refs`),
//! compare the ref's current value (its loose file, else its line in `packed-refs`) with
//! the expected one under the lock, write the new name, fsync it, rename the lock over
//! the ref and fsync the folder. Any git process that touches the ref takes the same
//! lock, so the two never interleave. Only the process that owns the repository (its
//! `verbund.lock`) clears locks on open, when it becomes the owner: a lock that remains
//! then was left by a killed process (`DesiredStateRepo::remove_stale_locks`).
//! Like `git update-ref`, a branch is never set to a name the repository does not hold
//! as a commit.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::oid::Oid;
use crate::pack::sync_dir;

/// How long a ref's lock is waited for: a holder fsyncs a file and a folder, which takes
/// more than git's default of 100 ms on a busy disk.
const LOCK_TIMEOUT: Duration = Duration::from_secs(1);

/// What the caller knows of the new commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The caller wrote it into this repository's objects a moment ago.
    Written,
    /// It came from elsewhere: it must be checked to be a commit the repository holds.
    Unverified,
}

/// A held `<ref>.lock`, removed when dropped unless it was renamed over the ref.
struct RefLock {
    path: PathBuf,
    file: Option<File>,
}

impl RefLock {
    fn take(lock: PathBuf) -> Result<Self> {
        let start = Instant::now();
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&lock) {
                Ok(file) => {
                    return Ok(RefLock {
                        path: lock,
                        file: Some(file),
                    })
                }
                Err(e)
                    if e.kind() == ErrorKind::AlreadyExists && start.elapsed() < LOCK_TIMEOUT =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(Error::io("locking", &lock, e)),
            }
        }
    }

    /// Writes `new` into the lock, makes it durable and renames it over `target`. An
    /// error after the rename (the folder's fsync) leaves the ref moved: the caller's
    /// next compare-and-swap from the old value is then refused, not lost.
    fn commit(mut self, new: Oid, target: &Path) -> Result<()> {
        let mut file = self.file.take().ok_or_else(|| {
            Error::io(
                "writing",
                &self.path,
                std::io::Error::other("lock without a file"),
            )
        })?;
        file.write_all(format!("{new}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("writing", &self.path, e))?;
        drop(file);
        fs::rename(&self.path, target).map_err(|e| Error::io("renaming into", target, e))?;
        self.path = PathBuf::new();
        if let Some(dir) = target.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

impl Drop for RefLock {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Moves the ref `name` of the repository at `git_dir` from `old` (`None`: it does not
/// exist) to `new`, reading its current value with `read` under the ref's lock and
/// checking an unverified `new` with `is_commit`. `Ok(false)` when the ref is not at
/// `old` (nothing changed).
pub(crate) fn compare_and_swap(
    git_dir: &Path,
    name: &str,
    new: Oid,
    old: Option<Oid>,
    target: Target,
    read: impl FnOnce() -> Result<Option<Oid>>,
    is_commit: impl FnOnce(Oid) -> Result<bool>,
) -> Result<bool> {
    let bad_part = |part: &str| part.is_empty() || part.starts_with('.') || part.ends_with(".lock");
    if !name.starts_with("refs/") || name.split('/').any(bad_part) {
        return Err(Error::io(
            "moving a ref in",
            git_dir,
            std::io::Error::other(format!("`{name}` is not a ref name verbund writes")),
        ));
    }
    let path = git_dir.join(name);
    let lock = RefLock::take(PathBuf::from(format!("{}.lock", path.display())))?;
    if read()? != old {
        return Ok(false);
    }
    if target == Target::Unverified && !is_commit(new)? {
        return Err(Error::io(
            "moving a ref in",
            git_dir,
            std::io::Error::other(format!("`{new}` is not a commit this repository holds")),
        ));
    }
    lock.commit(new, &path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(byte: u8) -> Oid {
        format!("{byte:02x}").repeat(20).parse().unwrap()
    }

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let refs = dir.path().join("refs/heads");
        fs::create_dir_all(&refs).unwrap();
        (dir, refs.join("main"))
    }

    fn current(path: &Path) -> Result<Option<Oid>> {
        match fs::read_to_string(path) {
            Ok(v) => Ok(Some(v.trim().parse()?)),
            Err(_) => Ok(None),
        }
    }

    #[test]
    fn moves_only_from_the_expected_value_and_leaves_no_lock() {
        let (dir, main) = setup();
        let git = dir.path();
        let yes = |_| Ok(true);
        let swap = |new, old| {
            compare_and_swap(
                git,
                "refs/heads/main",
                new,
                old,
                Target::Written,
                || current(&main),
                yes,
            )
        };
        assert!(swap(oid(1), None).unwrap());
        assert_eq!(fs::read_to_string(&main).unwrap(), format!("{}\n", oid(1)));
        assert!(!swap(oid(2), None).unwrap(), "not unborn any more");
        assert!(!swap(oid(2), Some(oid(3))).unwrap(), "not at 3");
        assert!(swap(oid(2), Some(oid(1))).unwrap());
        assert_eq!(current(&main).unwrap(), Some(oid(2)));
        assert!(!main.with_file_name("main.lock").exists());
    }

    #[test]
    fn a_held_lock_is_waited_for_then_refused_and_kept() {
        let (dir, main) = setup();
        let lock = main.with_file_name("main.lock");
        fs::write(&lock, "").unwrap();
        let started = Instant::now();
        let r = compare_and_swap(
            dir.path(),
            "refs/heads/main",
            oid(1),
            None,
            Target::Written,
            || current(&main),
            |_| Ok(true),
        );
        assert!(r.is_err());
        assert!(started.elapsed() >= LOCK_TIMEOUT);
        assert!(lock.exists(), "another holder's lock is not ours to remove");
        assert_eq!(current(&main).unwrap(), None);
    }

    #[test]
    fn an_unverified_name_must_be_a_commit_and_names_stay_inside() {
        let (dir, main) = setup();
        let r = compare_and_swap(
            dir.path(),
            "refs/heads/main",
            oid(1),
            None,
            Target::Unverified,
            || current(&main),
            |_| Ok(false),
        );
        assert!(r.is_err());
        assert!(!main.exists());
        for bad in [
            "HEAD",
            "refs/../config",
            "refs//main",
            "refs/heads/main.lock",
            "refs/./x",
        ] {
            let r = compare_and_swap(
                dir.path(),
                bad,
                oid(1),
                None,
                Target::Written,
                || Ok(None),
                |_| Ok(true),
            );
            assert!(r.is_err(), "{bad}");
        }
    }
}
