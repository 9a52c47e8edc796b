//! Crash-safe changes to the work tree: path checks, atomic file replacement (temporary
//! file in the same folder, fsync, rename, fsync of the folder) and the listing and
//! pruning of the folders a batch owns.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Prefix of the temporary files of [`write_atomic`]; one left by a crash lies inside
/// a scope and is pruned by the next apply like any other stray file.
const TEMP_PREFIX: &str = ".verbund-tmp-";

/// Checks that `path` is a clean relative path (`a/b/c`, no `.`, `..`, empty parts,
/// backslashes or `.git`), so that it can name nothing outside the work tree.
pub(crate) fn check_path(path: &str) -> Result<()> {
    let invalid = || Error::InvalidPath(path.to_owned());
    if path.is_empty() || path.contains('\\') || path.contains('\0') {
        return Err(invalid());
    }
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.eq_ignore_ascii_case(".git") {
            return Err(invalid());
        }
    }
    Ok(())
}

/// Whether `path` is `scope` or lies below it.
pub(crate) fn in_scope(path: &str, scope: &str) -> bool {
    path == scope
        || path
            .strip_prefix(scope)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether the file at `path` already holds exactly `content`.
pub(crate) fn same_content(path: &Path, content: &[u8]) -> Result<bool> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == content.len() as u64 => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("inspecting", path, e)),
    }
    let current = fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    Ok(current == content)
}

/// Replaces the file at `path` with `content` so that a crash leaves either the old or
/// the new file, never a torn one. A folder in the way (a file replacing a folder) is
/// removed first. The parent folder is not synced here; see [`sync_dir`].
pub(crate) fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .ok_or_else(|| Error::InvalidPath(path.display().to_string()))?;
    prepare_dir(dir)?;
    if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        fs::remove_dir_all(path).map_err(|e| Error::io("removing", path, e))?;
    }
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = fs::File::create(&temp).map_err(|e| Error::io("creating", &temp, e))?;
        file.write_all(content)
            .map_err(|e| Error::io("writing", &temp, e))?;
        file.sync_all()
            .map_err(|e| Error::io("syncing", &temp, e))?;
        fs::rename(&temp, path).map_err(|e| Error::io("renaming into", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Writes many files with [`write_atomic`] on a few threads: every file needs its own
/// `fsync`, and the file system commits concurrent ones together.
pub(crate) fn write_all(writes: &[(PathBuf, &[u8])]) -> Result<()> {
    const THREADS: usize = 8;
    const MIN_PER_THREAD: usize = 32;
    if writes.len() <= MIN_PER_THREAD {
        return writes
            .iter()
            .try_for_each(|(path, content)| write_atomic(path, content));
    }
    let per_thread = writes.len().div_ceil(THREADS).max(MIN_PER_THREAD);
    std::thread::scope(|scope| {
        let workers: Vec<_> = writes
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .try_for_each(|(path, content)| write_atomic(path, content))
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker.join().unwrap_or_else(|_| {
                Err(Error::io(
                    "writing",
                    PathBuf::new(),
                    std::io::Error::other("a writer thread panicked"),
                ))
            })
        })
    })
}

/// Creates `dir` and its parents, removing a file that stands where a folder must be.
fn prepare_dir(dir: &Path) -> Result<()> {
    match fs::create_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(first) => {
            // A file where a folder must be: remove the first one on the way and retry.
            let mut ancestor = Some(dir);
            while let Some(a) = ancestor {
                if fs::symlink_metadata(a).is_ok_and(|m| !m.is_dir()) {
                    fs::remove_file(a).map_err(|e| Error::io("removing", a, e))?;
                    return fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e));
                }
                ancestor = a.parent();
            }
            Err(Error::io("creating", dir, first))
        }
    }
}

/// Flushes a folder's entries (the renames into it) to disk.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    match fs::File::open(dir) {
        Ok(handle) => handle.sync_all().map_err(|e| Error::io("syncing", dir, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("opening", dir, e)),
    }
}

/// Every file (and symlink) below `root/scope`, as repository-relative paths.
pub(crate) fn list_files(root: &Path, scope: &str) -> Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    let mut stack: Vec<(PathBuf, String)> = vec![(root.join(scope), scope.to_owned())];
    while let Some((dir, rel)) = stack.pop() {
        let meta = match fs::symlink_metadata(&dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("inspecting", &dir, e)),
        };
        if !meta.is_dir() {
            found.insert(rel);
            continue;
        }
        let entries = fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            stack.push((entry.path(), format!("{rel}/{name}")));
        }
    }
    Ok(found)
}

/// Removes the file at `root/path` and then every folder above it that became empty
/// (Git keeps no empty folders, so none of them is anyone's content).
pub(crate) fn remove_file(root: &Path, path: &str) -> Result<()> {
    let full = root.join(path);
    match fs::remove_file(&full) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("removing", &full, e)),
    }
    let mut dir = full.parent();
    while let Some(d) = dir {
        if d == root {
            break;
        }
        // Fails when the folder is not empty, which ends the climb.
        if fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}
