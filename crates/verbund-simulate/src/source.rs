//! Reading the desired-state repository, read-only, from another process.
//!
//! The simulator reads the same repository the control plane writes, usually while the
//! server runs. `verbund_git::DesiredStateRepo::open_or_init` is made for the writer:
//! it configures the repository and removes lock files and temporary packs it believes
//! a crashed writer left, which would break a live server's commit in progress. So this
//! reader never writes to the repository: it resolves HEAD with `git rev-parse` and
//! reads trees and blobs through one long-lived `git cat-file --batch` (started outside
//! the repository, like verbund-git's own reader, so the writer's stale-lock check does
//! not wait for it). Folders are content-addressed, so a booking folder whose tree did
//! not change is not parsed again. A remote URL is fetched into a private cache first.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::desired::{self, FolderFiles, ENVIRONMENTS};
use crate::error::{Error, Result};
use crate::model::DesiredBooking;

/// The desired state of every site at one commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fleet {
    /// The commit read; `None` while the repository has no commit.
    pub head: Option<String>,
    /// Per site (folder under `sites/`), its bookings of both environments.
    pub sites: BTreeMap<String, Vec<DesiredBooking>>,
}

/// Environment variables that would point git elsewhere than the repository we name.
const ISOLATE: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
];

fn git(git_dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    // git runs in `/` (never inside a repository by accident), so a relative path is
    // made absolute against this process's working directory first.
    let git_dir = match std::env::current_dir() {
        Ok(cwd) if git_dir.is_relative() => cwd.join(git_dir),
        _ => git_dir.to_path_buf(),
    };
    cmd.current_dir("/").arg("--git-dir").arg(git_dir);
    for var in ISOLATE {
        cmd.env_remove(var);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0").env("LC_ALL", "C");
    cmd
}

fn run(git_dir: &Path, args: &[&str]) -> Result<std::process::Output> {
    git(git_dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(Error::Spawn)
}

fn failed(git_dir: &Path, args: &[&str], out: &std::process::Output) -> Error {
    Error::Git {
        command: args.join(" "),
        repository: git_dir.display().to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    }
}

/// One tree entry.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    oid: String,
    is_tree: bool,
}

/// The entries of a tree object, up to the first truncated or malformed one.
fn parse_tree(data: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((entry, after)) = parse_entry(rest) {
        out.push(entry);
        rest = after;
    }
    out
}

/// The first entry of `data` (`<mode> <name>\0<20-byte name>`) and the bytes after it.
fn parse_entry(data: &[u8]) -> Option<(Entry, &[u8])> {
    let mut fields = data.splitn(2, |b| *b == b' ');
    let (mode, after_mode) = (fields.next()?, fields.next()?);
    let mut fields = after_mode.splitn(2, |b| *b == 0);
    let (name, after_name) = (fields.next()?, fields.next()?);
    let (oid, rest) = after_name.split_first_chunk::<20>()?;
    let entry = Entry {
        name: String::from_utf8_lossy(name).into_owned(),
        oid: oid.iter().map(|b| format!("{b:02x}")).collect(),
        is_tree: mode == b"40000",
    };
    Some((entry, rest))
}

struct CatFile {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl CatFile {
    fn spawn(git_dir: &Path) -> Result<Self> {
        let mut child = git(git_dir)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(Error::Spawn)?;
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
            stdout: BufReader::new(stdout),
        })
    }

    fn read(&mut self, name: &str) -> std::io::Result<Option<(String, Vec<u8>)>> {
        writeln!(self.stdin, "{name}")?;
        self.stdin.flush()?;
        let mut header = String::new();
        if self.stdout.read_line(&mut header)? == 0 {
            return Err(std::io::Error::other("git cat-file ended"));
        }
        let fields: Vec<&str> = header.trim_end().split(' ').collect();
        match fields.as_slice() {
            [_, "missing"] | [_, "ambiguous"] => Ok(None),
            [_, kind, size] => {
                let size: usize = size
                    .parse()
                    .map_err(|_| std::io::Error::other(format!("bad header `{header}`")))?;
                let mut data = vec![0; size + 1];
                self.stdout.read_exact(&mut data)?;
                data.pop();
                Ok(Some(((*kind).to_owned(), data)))
            }
            _ => Err(std::io::Error::other(format!(
                "bad header `{}`",
                header.trim_end()
            ))),
        }
    }
}

impl Drop for CatFile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A read-only reader of a desired-state repository (a local path or a remote URL).
pub struct GitReader {
    git_dir: PathBuf,
    remote: Option<String>,
    cat: Option<CatFile>,
    /// Parsed booking folders by tree name (`None`: not a booking, or unreadable).
    folders: HashMap<String, Option<DesiredBooking>>,
}

impl std::fmt::Debug for GitReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitReader")
            .field("git_dir", &self.git_dir)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

/// Whether `repository` names a remote rather than a local path.
pub fn is_remote(repository: &str) -> bool {
    repository.contains("://") || repository.starts_with("git@")
}

impl GitReader {
    /// A reader of the repository at a local path (bare or not), or of a remote URL
    /// fetched into a cache under `cache_dir` (the system's temporary folder if `None`).
    pub fn open(repository: &str, cache_dir: Option<&Path>) -> Result<Self> {
        let (git_dir, remote) = if is_remote(repository) {
            let base = cache_dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for b in repository.bytes() {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            let dir = base.join(format!("verbund-simulate-{hash:016x}.git"));
            if !dir.join("HEAD").is_file() {
                let out = Command::new("git")
                    .args(["init", "--bare", "-q"])
                    .arg(&dir)
                    .output()
                    .map_err(Error::Spawn)?;
                if !out.status.success() {
                    return Err(failed(&dir, &["init", "--bare"], &out));
                }
            }
            (dir, Some(repository.to_owned()))
        } else {
            let path = PathBuf::from(repository);
            let out = run(&path, &["rev-parse", "--absolute-git-dir"]);
            let dir = match out {
                Ok(o) if o.status.success() => {
                    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
                }
                Ok(o) => return Err(failed(&path, &["rev-parse", "--absolute-git-dir"], &o)),
                Err(e) => return Err(e),
            };
            (dir, None)
        };
        Ok(GitReader {
            git_dir,
            remote,
            cat: None,
            folders: HashMap::new(),
        })
    }

    /// The commit HEAD names now (after fetching, for a remote), `None` while unborn.
    pub fn head(&mut self) -> Result<Option<String>> {
        let reference = if let Some(url) = &self.remote {
            let args = [
                "fetch",
                "-q",
                "--depth",
                "1",
                url,
                "+HEAD:refs/heads/simulated",
            ];
            let out = run(&self.git_dir, &args)?;
            if !out.status.success() {
                // Keep reading what was fetched last; say why once per tick.
                tracing::warn!(remote = %url, error = %String::from_utf8_lossy(&out.stderr).trim(), "fetching the desired state failed");
            }
            "refs/heads/simulated^{commit}"
        } else {
            "HEAD^{commit}"
        };
        let out = run(&self.git_dir, &["rev-parse", "--verify", "-q", reference])?;
        if !out.status.success() {
            return Ok(None);
        }
        let head = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok((!head.is_empty()).then_some(head))
    }

    fn object(&mut self, name: &str) -> Result<Option<(String, Vec<u8>)>> {
        for attempt in 0..2 {
            if self.cat.is_none() {
                self.cat = Some(CatFile::spawn(&self.git_dir)?);
            }
            let Some(cat) = self.cat.as_mut() else {
                continue;
            };
            match cat.read(name) {
                Ok(found) => return Ok(found),
                Err(e) => {
                    // A broken reader is replaced once (e.g. after repacking).
                    self.cat = None;
                    if attempt == 1 {
                        return Err(Error::Read {
                            repository: self.git_dir.display().to_string(),
                            source: e,
                        });
                    }
                }
            }
        }
        Ok(None)
    }

    fn tree(&mut self, name: &str) -> Result<Vec<Entry>> {
        Ok(match self.object(name)? {
            Some((kind, data)) if kind == "tree" => parse_tree(&data),
            _ => Vec::new(),
        })
    }

    fn blob(&mut self, oid: &str) -> Result<Option<Vec<u8>>> {
        Ok(match self.object(oid)? {
            Some((kind, data)) if kind == "blob" => Some(data),
            _ => None,
        })
    }

    /// Reads every site's bookings at `commit`.
    pub fn scan(&mut self, commit: &str) -> Result<Fleet> {
        let mut fleet = Fleet {
            head: Some(commit.to_owned()),
            sites: BTreeMap::new(),
        };
        let mut used = HashMap::new();
        for site in self.tree(&format!("{commit}:sites"))? {
            if !site.is_tree {
                continue;
            }
            let mut bookings = Vec::new();
            for env_entry in self.tree(&site.oid)? {
                if !env_entry.is_tree || !ENVIRONMENTS.contains(&env_entry.name.as_str()) {
                    continue;
                }
                let folder = format!("sites/{}/{}", site.name, env_entry.name);
                self.environment(&folder, &env_entry, &mut used, &mut bookings)?;
            }
            fleet.sites.insert(site.name, bookings);
        }
        self.folders = used;
        Ok(fleet)
    }

    fn environment(
        &mut self,
        folder: &str,
        env: &Entry,
        used: &mut HashMap<String, Option<DesiredBooking>>,
        out: &mut Vec<DesiredBooking>,
    ) -> Result<()> {
        let entries = self.tree(&env.oid)?;
        let bookings: HashMap<String, String> =
            match entries.iter().find(|e| e.name == "bookings" && e.is_tree) {
                Some(b) => self
                    .tree(&b.oid.clone())?
                    .into_iter()
                    .filter(|e| e.is_tree)
                    .map(|e| (e.name, e.oid))
                    .collect(),
                None => HashMap::new(),
            };
        // The booking folders the environment's shards list (`../../bookings/<ns>`).
        let listed = match entries.iter().find(|e| e.name == "shards" && e.is_tree) {
            Some(shards) => {
                let mut listed = Vec::new();
                for shard in self.tree(&shards.oid.clone())? {
                    if !shard.is_tree {
                        continue;
                    }
                    let Some(k) = self
                        .tree(&shard.oid)?
                        .into_iter()
                        .find(|e| e.name == "kustomization.yaml" && !e.is_tree)
                    else {
                        continue;
                    };
                    let path = format!("{folder}/shards/{}/kustomization.yaml", shard.name);
                    let bytes = self.blob(&k.oid)?.unwrap_or_default();
                    match desired::kustomization_resources(&path, &bytes) {
                        Ok(resources) => listed.extend(resources.into_iter().filter_map(|r| {
                            r.trim_end_matches('/')
                                .strip_prefix("../../bookings/")
                                .map(String::from)
                        })),
                        Err(e) => {
                            tracing::warn!(error = %e, path = %path, "unreadable shard, simulating every booking folder");
                            listed = bookings.keys().cloned().collect();
                            break;
                        }
                    }
                }
                listed
            }
            None => Vec::new(),
        };
        for namespace in listed {
            let Some(oid) = bookings.get(&namespace) else {
                continue;
            };
            let parsed = match used.get(oid).or_else(|| self.folders.get(oid)) {
                Some(known) => known.clone(),
                None => {
                    let path = format!("{folder}/bookings/{namespace}");
                    self.parse_folder(&path, &env.name, oid)?
                }
            };
            if let Some(b) = &parsed {
                let mut b = b.clone();
                b.environment = env.name.clone();
                out.push(b);
            }
            used.insert(oid.clone(), parsed);
        }
        Ok(())
    }

    fn parse_folder(
        &mut self,
        path: &str,
        environment: &str,
        oid: &str,
    ) -> Result<Option<DesiredBooking>> {
        // What deploys the application: the engine's objects, an agent's chart, the
        // vendor's manifests in `app/`, the smoke test and the data export.
        let mut namespace = None;
        let mut quota = None;
        let mut app: Vec<u8> = Vec::new();
        let mut add = |bytes: Option<Vec<u8>>| {
            if let Some(bytes) = bytes {
                app.extend_from_slice(b"\n---\n");
                app.extend_from_slice(&bytes);
            }
        };
        for entry in self.tree(oid)? {
            match (entry.name.as_str(), entry.is_tree) {
                ("namespace.yaml", false) => namespace = self.blob(&entry.oid)?,
                ("quota.yaml", false) => quota = self.blob(&entry.oid)?,
                ("app.yaml" | "helm.yaml" | "smoke-test.yaml" | "export.yaml", false) => {
                    add(self.blob(&entry.oid)?)
                }
                ("app", true) => {
                    for file in self.tree(&entry.oid)? {
                        if file.name == "manifests.yaml" && !file.is_tree {
                            add(self.blob(&file.oid)?);
                        }
                    }
                }
                _ => {}
            }
        }
        let files = FolderFiles {
            namespace: namespace.as_deref(),
            app: (!app.is_empty()).then_some(app.as_slice()),
            quota: quota.as_deref(),
        };
        match desired::booking(path, environment, files) {
            Ok(b) => Ok(b),
            Err(e) => {
                tracing::warn!(folder = %path, error = %e, "booking folder not simulated");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree cut short anywhere yields its whole entries only, never a panic.
    #[test]
    fn a_truncated_tree_yields_its_whole_entries() {
        let data = [&b"40000 a\0"[..], &[1; 20], b"100644 b.yaml\0", &[2; 20]].concat();
        let names =
            |data: &[u8]| -> Vec<String> { parse_tree(data).into_iter().map(|e| e.name).collect() };
        assert_eq!(names(&data), ["a", "b.yaml"]);
        let first = parse_tree(&data);
        assert!(first[0].is_tree && !first[1].is_tree);
        assert_eq!(first[0].oid, "01".repeat(20));
        for end in 0..data.len() {
            let whole = if end < 28 { 0 } else { 1 };
            assert_eq!(names(&data[..end]).len(), whole, "{end} bytes");
        }
    }
}
