//! One change to the desired state: folders and files put into it are turned into Git
//! objects at once (only those HEAD lacks) and written to the change's pending pack, so
//! memory stays bounded by one folder; the commit then rewrites only the trees above the
//! put paths, makes the pack durable and moves the branch with compare-and-swap.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use verbund_render::RenderedFile;

use crate::error::{Error, Result};
use crate::odb::Tree;
use crate::oid::{Kind, Oid};
use crate::pack::PackWriter;
use crate::paths;
use crate::refs::Target;
use crate::repo::{Author, CommitId, DesiredStateRepo};
use crate::transfer::Written;
use crate::tree::{self, Child, Entry, Leaf, Node, MODE_FILE, MODE_TREE};

/// The content of object `oid` of `source`, which must be of `kind`.
fn read_object(source: &DesiredStateRepo, oid: Oid, kind: &str) -> Result<Vec<u8>> {
    match source.odb().read(oid)? {
        Some((found, content)) if found == kind => Ok(content),
        _ => Err(Error::MissingObject(oid.to_hex())),
    }
}

/// What a change puts at a path.
#[derive(Clone, Copy, Debug)]
enum Put {
    /// A folder with this tree, or no folder.
    Folder(Option<Oid>),
    /// A file with this blob, or no file.
    File(Option<Oid>),
}

impl Put {
    fn entry(self, name: &str) -> Option<Entry> {
        let (mode, oid) = match self {
            Put::Folder(oid) => (MODE_TREE, oid?),
            Put::File(oid) => (MODE_FILE, oid?),
        };
        Some(Entry {
            name: name.as_bytes().to_vec(),
            mode,
            oid,
        })
    }
}

/// A change being prepared on top of the HEAD it started from; see
/// [`DesiredStateRepo::change`]. Dropping it without [`Change::commit`] leaves the
/// repository as it was.
pub struct Change<'r> {
    repo: &'r DesiredStateRepo,
    branch: String,
    parent: Option<Oid>,
    base_tree: Oid,
    puts: BTreeMap<String, Put>,
    writer: RefCell<PackWriter>,
}

impl std::fmt::Debug for Change<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Change")
            .field("branch", &self.branch)
            .field("parent", &self.parent)
            .field("puts", &self.puts)
            .finish_non_exhaustive()
    }
}

impl<'r> Change<'r> {
    pub(crate) fn new(
        repo: &'r DesiredStateRepo,
        branch: String,
        parent: Option<Oid>,
        base_tree: Oid,
    ) -> Self {
        Change {
            repo,
            branch,
            parent,
            base_tree,
            puts: BTreeMap::new(),
            writer: RefCell::new(PackWriter::new(repo.path())),
        }
    }

    /// The commit the change is based on, `None` when the branch was unborn.
    pub fn parent(&self) -> Option<CommitId> {
        self.parent.map(|oid| CommitId(oid.to_string()))
    }

    /// The folder's content becomes exactly `files` (repository paths, each inside
    /// `folder`); no files removes the folder. The folder's new blobs and trees that
    /// HEAD's version of the folder lacks are written to the pending pack right away and
    /// the contents dropped, so memory stays bounded by one folder.
    pub fn put_folder(&mut self, folder: &str, files: Vec<RenderedFile>) -> Result<()> {
        let mut leaves = Leaf::of_folder(folder, &files)?;
        self.check_overlap(folder)?;
        if leaves.is_empty() {
            self.puts.insert(folder.to_owned(), Put::Folder(None));
            return Ok(());
        }
        let node = tree::build(&mut leaves, &|rel| format!("{folder}/{rel}"))?;
        let old = self
            .repo
            .entry_at(self.base_tree, folder)?
            .filter(Entry::is_tree)
            .map(|e| e.oid);
        let mut objects = Vec::new();
        self.collect_new(&node, old, &mut objects)?;
        self.writer.borrow_mut().add(&objects)?;
        self.puts
            .insert(folder.to_owned(), Put::Folder(Some(node.oid)));
        Ok(())
    }

    /// The objects of `node` that the old tree `old` lacks, walking both and skipping
    /// equal subtrees.
    fn collect_new<'a>(
        &self,
        node: &'a Node<'a>,
        old: Option<Oid>,
        out: &mut Vec<(Oid, Kind, &'a [u8])>,
    ) -> Result<()> {
        if old == Some(node.oid) {
            return Ok(());
        }
        let old_tree: Tree = match old {
            Some(oid) => self.repo.tree(oid)?,
            None => Arc::new(Vec::new()),
        };
        let by_name: HashMap<&[u8], &Entry> =
            old_tree.iter().map(|e| (e.name.as_slice(), e)).collect();
        for (name, child) in &node.children {
            let previous = by_name.get(name.as_slice());
            match child {
                Child::Blob(content, oid) => {
                    if previous.map(|e| e.oid) != Some(*oid) {
                        out.push((*oid, Kind::Blob, content));
                    }
                }
                Child::Tree(sub) => {
                    let previous = previous.filter(|e| e.is_tree()).map(|e| e.oid);
                    self.collect_new(sub, previous, out)?;
                }
            }
        }
        out.push((node.oid, Kind::Tree, &node.data));
        Ok(())
    }

    /// The folder becomes exactly what `source`'s HEAD holds at `folder` (nothing, if it
    /// holds nothing there). The objects this change's base lacks are read from `source`
    /// and written to the pending pack, walking both trees and skipping equal subtrees, so
    /// a folder that changed in one file costs that file and the trees above it. This is
    /// how another repository follows one folder of `source`'s history, e.g. a site's own
    /// repository following its folder of the whole desired state.
    pub fn put_tree_from(&mut self, folder: &str, source: &DesiredStateRepo) -> Result<()> {
        paths::check_path(folder)?;
        self.check_overlap(folder)?;
        let new = source.tree_oid_at(folder)?;
        let Some(new) = new else {
            self.puts.insert(folder.to_owned(), Put::Folder(None));
            return Ok(());
        };
        let old = self
            .repo
            .entry_at(self.base_tree, folder)?
            .filter(Entry::is_tree)
            .map(|e| e.oid);
        self.copy_missing(source, new, old)?;
        self.puts.insert(folder.to_owned(), Put::Folder(Some(new)));
        Ok(())
    }

    /// Copies the tree `new` of `source`, and everything below it that the tree `old` of
    /// this repository lacks, into the pending pack.
    fn copy_missing(&self, source: &DesiredStateRepo, new: Oid, old: Option<Oid>) -> Result<()> {
        if old == Some(new) {
            return Ok(());
        }
        let old_tree: Tree = match old {
            Some(oid) => self.repo.tree(oid)?,
            None => Arc::new(Vec::new()),
        };
        let by_name: HashMap<&[u8], &Entry> =
            old_tree.iter().map(|e| (e.name.as_slice(), e)).collect();
        for entry in source.tree(new)?.iter() {
            let previous = by_name.get(entry.name.as_slice());
            if previous.map(|e| e.oid) == Some(entry.oid) {
                continue;
            }
            if entry.is_tree() {
                let previous = previous.filter(|e| e.is_tree()).map(|e| e.oid);
                self.copy_missing(source, entry.oid, previous)?;
            } else {
                let content = read_object(source, entry.oid, "blob")?;
                self.writer
                    .borrow_mut()
                    .add(&[(entry.oid, Kind::Blob, &content)])?;
            }
        }
        let data = read_object(source, new, "tree")?;
        self.writer.borrow_mut().add(&[(new, Kind::Tree, &data)])?;
        Ok(())
    }

    /// One file replaced (`Some`) or removed (`None`).
    pub fn put_file(&mut self, path: &str, content: Option<&str>) -> Result<()> {
        paths::check_path(path)?;
        self.check_overlap(path)?;
        let put = match content {
            None => Put::File(None),
            Some(content) => {
                let oid = Oid::hash(Kind::Blob, content.as_bytes());
                let old = self.repo.entry_at(self.base_tree, path)?;
                if old.map(|e| e.oid) != Some(oid) {
                    self.writer
                        .borrow_mut()
                        .add(&[(oid, Kind::Blob, content.as_bytes())])?;
                }
                Put::File(Some(oid))
            }
        };
        self.puts.insert(path.to_owned(), put);
        Ok(())
    }

    /// Fails when `path` is, contains or lies inside a path already put.
    fn check_overlap(&self, path: &str) -> Result<()> {
        let overlap = || Err(Error::Overlap(path.to_owned()));
        if self.puts.contains_key(path) {
            return overlap();
        }
        for (i, _) in path.match_indices('/') {
            if self.puts.contains_key(&path[..i]) {
                return overlap();
            }
        }
        let below = format!("{path}/");
        if self
            .puts
            .range(below.clone()..)
            .next()
            .is_some_and(|(p, _)| p.starts_with(&below))
        {
            return overlap();
        }
        Ok(())
    }

    /// Entry names directly inside `folder` (`""` is the root) as of HEAD with this
    /// change's puts applied, sorted; empty when there is no such folder.
    pub fn list(&self, folder: &str) -> Result<Vec<String>> {
        if !folder.is_empty() {
            paths::check_path(folder)?;
        }
        // A put at or above the folder decides alone.
        let ends = folder
            .match_indices('/')
            .map(|(i, _)| i)
            .chain(std::iter::once(folder.len()))
            .filter(|end| *end > 0);
        for end in ends {
            let Some(put) = self.puts.get(&folder[..end]) else {
                continue;
            };
            let Put::Folder(Some(mut oid)) = *put else {
                return Ok(Vec::new());
            };
            let rest = folder[end..].trim_start_matches('/');
            if !rest.is_empty() {
                for part in rest.split('/') {
                    let tree = self.tree(oid)?;
                    match tree.iter().find(|e| e.name == part.as_bytes()) {
                        Some(e) if e.is_tree() => oid = e.oid,
                        _ => return Ok(Vec::new()),
                    }
                }
            }
            return Ok(names(&self.tree(oid)?));
        }
        let old = if folder.is_empty() {
            Some(self.base_tree)
        } else {
            self.repo
                .entry_at(self.base_tree, folder)?
                .filter(Entry::is_tree)
                .map(|e| e.oid)
        };
        let puts: Vec<(&str, Put)> = if folder.is_empty() {
            self.puts
                .iter()
                .map(|(p, put)| (p.as_str(), *put))
                .collect()
        } else {
            let below = format!("{folder}/");
            self.puts
                .range(below.clone()..)
                .take_while(|(p, _)| p.starts_with(&below))
                .map(|(p, put)| (&p[below.len()..], *put))
                .collect()
        };
        Ok(names(&self.merge(old, &puts, false)?))
    }

    /// A tree of HEAD or of this change.
    fn tree(&self, oid: Oid) -> Result<Tree> {
        if let Some((kind, data)) = self.writer.borrow_mut().read(&oid)? {
            if kind != Kind::Tree {
                return Err(Error::CorruptObject(oid.to_string()));
            }
            return Ok(Arc::new(tree::parse(oid, &data)?));
        }
        self.repo.tree(oid)
    }

    /// The entries of the old tree `old` with `puts` (relative to it, in byte order)
    /// applied; with `write`, new subtrees go into the pending pack.
    fn merge(&self, old: Option<Oid>, puts: &[(&str, Put)], write: bool) -> Result<Vec<Entry>> {
        let mut entries: Vec<Entry> = match old {
            Some(oid) => self.repo.tree(oid)?.as_ref().clone(),
            None => Vec::new(),
        };
        // The paths below one folder are contiguous in byte order.
        let groups = puts.chunk_by(|(a, _), (b, _)| {
            first_folder(a).is_some() && first_folder(a) == first_folder(b)
        });
        for group in groups {
            let [(path, put), ..] = group else { continue };
            match first_folder(path) {
                None => {
                    entries.retain(|e| e.name != path.as_bytes());
                    entries.extend(put.entry(path));
                }
                Some(name) => self.merge_folder(&mut entries, name, group, write)?,
            }
        }
        tree::sort(&mut entries);
        Ok(entries)
    }

    /// Applies `puts` (all below `name/`) to the folder `name` of `entries`: it is merged
    /// with the old folder of that name, replaced, or removed when nothing is left of it.
    fn merge_folder(
        &self,
        entries: &mut Vec<Entry>,
        name: &str,
        puts: &[(&str, Put)],
        write: bool,
    ) -> Result<()> {
        let prefix = format!("{name}/");
        let below: Vec<(&str, Put)> = puts
            .iter()
            .filter_map(|(p, put)| Some((p.strip_prefix(&prefix)?, *put)))
            .collect();
        let old_child = entries
            .iter()
            .find(|e| e.name == name.as_bytes() && e.is_tree())
            .map(|e| e.oid);
        let child = self.merge(old_child, &below, write)?;
        if child.is_empty() {
            // Removing what is not there leaves a file of that name alone.
            if old_child.is_some() {
                entries.retain(|e| e.name != name.as_bytes());
            }
            return Ok(());
        }
        let data = tree::serialize(&child);
        let oid = Oid::hash(Kind::Tree, &data);
        if write && old_child != Some(oid) {
            self.writer.borrow_mut().add(&[(oid, Kind::Tree, &data)])?;
            self.repo.odb().remember(oid, Arc::new(child), data.len());
        }
        entries.retain(|e| e.name != name.as_bytes());
        entries.push(Entry {
            name: name.as_bytes().to_vec(),
            mode: MODE_TREE,
            oid,
        });
        Ok(())
    }

    /// Writes the new root tree (rewriting only the ancestors of the put paths) and the
    /// commit, makes the pending pack durable, and moves the branch from the change's
    /// parent to the new commit with compare-and-swap. The commit's author is `author`,
    /// its committer the repository's identity, and its message `message` followed by a
    /// blank line and one `Audit-Event: <seq>` trailer per audit event. Returns `None`,
    /// and writes no commit, when the new root tree equals HEAD's; fails with
    /// [`Error::HeadMoved`] when the branch moved since the change started.
    pub fn commit(
        self,
        author: &Author,
        message: &str,
        audit_events: &[i64],
    ) -> Result<Option<CommitId>> {
        self.commit_with(author, message, audit_events, |_| Ok::<_, Error>(()))
    }

    /// [`Change::commit`] with a step between the commit's objects becoming durable and
    /// the branch moving: `publish` gets the [`Written`] commit (its name, its parent and
    /// the pack holding its objects) and may refuse it, e.g. when a shared record of the
    /// history has moved on; then the branch stays where it was and the error is
    /// returned. The pack stays in the repository unreferenced, which is harmless.
    pub fn commit_with<E>(
        self,
        author: &Author,
        message: &str,
        audit_events: &[i64],
        publish: impl FnOnce(&Written) -> std::result::Result<(), E>,
    ) -> std::result::Result<Option<CommitId>, E>
    where
        E: From<Error>,
    {
        let puts: Vec<(&str, Put)> = self
            .puts
            .iter()
            .map(|(p, put)| (p.as_str(), *put))
            .collect();
        let entries = self.merge(Some(self.base_tree), &puts, true)?;
        let data = tree::serialize(&entries);
        let root = Oid::hash(Kind::Tree, &data);
        if root == self.base_tree {
            return Ok(None);
        }
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let commit = commit_bytes(
            root,
            self.parent,
            &author.ident(),
            &self.repo.committer().ident(),
            seconds,
            message,
            audit_events,
        );
        let commit_oid = Oid::hash(Kind::Commit, &commit);
        let mut writer = self.writer.into_inner();
        writer.add(&[
            (root, Kind::Tree, &data),
            (commit_oid, Kind::Commit, &commit),
        ])?;
        let pack = writer.finish()?.ok_or_else(|| {
            Error::io(
                "writing",
                self.repo.path(),
                std::io::Error::other("a commit without a pack"),
            )
        })?;
        publish(&Written {
            commit: commit_oid,
            parent: self.parent,
            pack,
        })?;
        self.repo
            .move_branch(&self.branch, commit_oid, self.parent, Target::Written)?;
        let mut odb = self.repo.odb();
        odb.note_commit(commit_oid, root);
        odb.remember(root, Arc::new(entries), data.len());
        Ok(Some(CommitId(commit_oid.to_string())))
    }
}

fn names(entries: &[Entry]) -> Vec<String> {
    let mut names: Vec<String> = entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .collect();
    names.sort();
    names
}

/// The bytes of a commit object.
fn commit_bytes(
    tree: Oid,
    parent: Option<Oid>,
    author: &str,
    committer: &str,
    seconds: u64,
    message: &str,
    audit_events: &[i64],
) -> Vec<u8> {
    let mut text = format!("tree {tree}\n");
    if let Some(parent) = parent {
        text.push_str(&format!("parent {parent}\n"));
    }
    text.push_str(&format!("author {author} {seconds} +0000\n"));
    text.push_str(&format!("committer {committer} {seconds} +0000\n\n"));
    let message = message.replace('\0', "");
    let message = message.trim_end();
    if !message.is_empty() {
        text.push_str(message);
        text.push('\n');
    }
    if !audit_events.is_empty() {
        if !message.is_empty() {
            text.push('\n');
        }
        for seq in audit_events {
            text.push_str(&format!("Audit-Event: {seq}\n"));
        }
    }
    text.into_bytes()
}
/// The folder a relative path starts with, `None` for a file of the top level.
fn first_folder(path: &str) -> Option<&str> {
    path.split_once('/').map(|(folder, _)| folder)
}
