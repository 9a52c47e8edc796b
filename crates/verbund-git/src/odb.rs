//! Reading Git objects: one long-lived `git cat-file --batch` per repository, with a
//! bounded cache of parsed trees. Objects are content-addressed, so a cached tree is
//! valid forever; the cache only has to stay small.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::git;
use crate::oid::{Kind, Oid};
use crate::tree::{self, Entry};

/// Bytes of parsed trees the cache holds before it starts over.
const TREE_CACHE_BYTES: usize = 64 << 20;

/// Parsed trees, shared.
pub(crate) type Tree = Arc<Vec<Entry>>;

/// A running `git cat-file --batch`.
struct CatFile {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl CatFile {
    fn spawn(git_dir: &Path) -> Result<Self> {
        // Started outside the repository folder (`--git-dir`, not `-C`): it holds no lock,
        // ends when its input closes, and must not count as a git at work in the
        // repository for `remove_stale_locks`.
        let mut cmd = git::command_for_git_dir(git_dir, &["cat-file", "--batch"]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(Error::Spawn)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Spawn(std::io::Error::other(
                "no pipes to git cat-file",
            )));
        };
        Ok(CatFile {
            child,
            stdin,
            stdout: BufReader::with_capacity(1 << 16, stdout),
        })
    }

    fn read(&mut self, oid: Oid) -> std::io::Result<Option<(String, Vec<u8>)>> {
        // One write per request: the pipe is unbuffered, and each write wakes cat-file.
        let mut line = Vec::with_capacity(41);
        line.extend_from_slice(oid.hex().as_bytes());
        line.push(b'\n');
        self.stdin.write_all(&line)?;
        self.stdin.flush()?;
        let mut header = String::new();
        self.stdout.read_line(&mut header)?;
        let fields: Vec<&str> = header.trim_end().split(' ').collect();
        match fields.as_slice() {
            [_, "missing"] => Ok(None),
            [_, kind, size] => {
                let size: usize = size
                    .parse()
                    .map_err(|_| std::io::Error::other(format!("bad header `{header}`")))?;
                let mut data = vec![0u8; size + 1];
                self.stdout.read_exact(&mut data)?;
                data.pop();
                Ok(Some(((*kind).to_owned(), data)))
            }
            _ => Err(std::io::Error::other(format!("bad header `{header}`"))),
        }
    }
}

impl Drop for CatFile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads objects of one repository.
pub(crate) struct Odb {
    git_dir: PathBuf,
    cat: Option<CatFile>,
    trees: HashMap<Oid, Tree>,
    tree_bytes: usize,
    /// Root tree of the commits read last.
    commits: HashMap<Oid, Oid>,
}

impl Odb {
    pub(crate) fn new(git_dir: PathBuf) -> Self {
        Odb {
            git_dir,
            cat: None,
            trees: HashMap::new(),
            tree_bytes: 0,
            commits: HashMap::new(),
        }
    }

    /// An object's kind and content, or `None` when the repository does not have it.
    pub(crate) fn read(&mut self, oid: Oid) -> Result<Option<(String, Vec<u8>)>> {
        // A cat-file that died (or was fed garbage) is replaced once.
        for attempt in 0..2 {
            if self.cat.is_none() {
                self.cat = Some(CatFile::spawn(&self.git_dir)?);
            }
            let Some(cat) = self.cat.as_mut() else {
                continue;
            };
            match cat.read(oid) {
                Ok(object) => return Ok(object),
                Err(e) => {
                    self.cat = None;
                    if attempt == 1 {
                        return Err(Error::io("reading objects of", &self.git_dir, e));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The parsed tree `oid`.
    pub(crate) fn tree(&mut self, oid: Oid) -> Result<Tree> {
        if oid == Oid::EMPTY_TREE {
            return Ok(Arc::new(Vec::new()));
        }
        if let Some(tree) = self.trees.get(&oid) {
            return Ok(tree.clone());
        }
        match self.read(oid)? {
            Some((kind, data)) if kind == Kind::Tree.name() => {
                let tree = Arc::new(tree::parse(oid, &data)?);
                self.remember(oid, tree.clone(), data.len());
                Ok(tree)
            }
            Some(_) => Err(Error::CorruptObject(oid.to_string())),
            None => Err(Error::MissingObject(oid.to_string())),
        }
    }

    /// Keeps a parsed tree (of `size` bytes as an object) for later reads.
    pub(crate) fn remember(&mut self, oid: Oid, tree: Tree, size: usize) {
        let cost = size + tree.len() * 48;
        if self.tree_bytes + cost > TREE_CACHE_BYTES {
            self.trees.clear();
            self.tree_bytes = 0;
        }
        if self.trees.insert(oid, tree).is_none() {
            self.tree_bytes += cost;
        }
    }

    /// The root tree of commit `oid`.
    pub(crate) fn commit_tree(&mut self, commit: Oid) -> Result<Oid> {
        if let Some(tree) = self.commits.get(&commit) {
            return Ok(*tree);
        }
        let corrupt = || Error::CorruptObject(commit.to_string());
        let Some((kind, data)) = self.read(commit)? else {
            return Err(Error::MissingObject(commit.to_string()));
        };
        if kind != Kind::Commit.name() {
            return Err(corrupt());
        }
        let tree = data
            .strip_prefix(b"tree ")
            .and_then(|rest| rest.get(..40))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| hex.parse::<Oid>().ok())
            .ok_or_else(corrupt)?;
        self.note_commit(commit, tree);
        Ok(tree)
    }

    /// Records the root tree of a commit written in process.
    pub(crate) fn note_commit(&mut self, commit: Oid, tree: Oid) {
        if self.commits.len() > 64 {
            self.commits.clear();
        }
        self.commits.insert(commit, tree);
    }
}
