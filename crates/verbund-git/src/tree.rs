//! Git trees in process: parsing and writing the tree format, git's entry order, and
//! building the trees of a folder from rendered files (with their blob names hashed on
//! all cores), so that a folder's object name is known without asking git.

use std::cmp::Ordering;

use verbund_render::RenderedFile;

use crate::error::{Error, Result};
use crate::oid::{Kind, Oid};
use crate::paths;

/// Mode of a regular file, the only kind of file this crate writes.
pub(crate) const MODE_FILE: u32 = 0o100644;
/// Mode of a tree (a folder).
pub(crate) const MODE_TREE: u32 = 0o40000;

/// One entry of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: Vec<u8>,
    pub mode: u32,
    pub oid: Oid,
}

impl Entry {
    pub(crate) fn is_tree(&self) -> bool {
        self.mode == MODE_TREE
    }
}

/// Git's order of tree entries: by name, where a tree's name compares as if it ended
/// in `/`.
pub(crate) fn compare(a: &[u8], a_tree: bool, b: &[u8], b_tree: bool) -> Ordering {
    let common = a.len().min(b.len());
    if let Some(order) = a.iter().zip(b).map(|(x, y)| x.cmp(y)).find(|o| o.is_ne()) {
        return order;
    }
    let end = |name: &[u8], tree: bool| {
        name.get(common)
            .copied()
            .unwrap_or(if tree { b'/' } else { 0 })
    };
    end(a, a_tree).cmp(&end(b, b_tree))
}

/// Sorts entries into git's order.
pub(crate) fn sort(entries: &mut [Entry]) {
    entries.sort_by(|a, b| compare(&a.name, a.is_tree(), &b.name, b.is_tree()));
}

/// The bytes of a tree object with `entries` (already in git's order).
pub(crate) fn serialize(entries: &[Entry]) -> Vec<u8> {
    let size = entries.iter().map(|e| e.name.len() + 28).sum();
    let mut data = Vec::with_capacity(size);
    for entry in entries {
        push_entry(&mut data, entry.mode, &entry.name, &entry.oid);
    }
    data
}

/// Appends one entry in the tree format: octal mode, space, name, NUL, binary name.
fn push_entry(data: &mut Vec<u8>, mode: u32, name: &[u8], oid: &Oid) {
    match mode {
        MODE_FILE => data.extend_from_slice(b"100644 "),
        MODE_TREE => data.extend_from_slice(b"40000 "),
        other => data.extend_from_slice(format!("{other:o} ").as_bytes()),
    }
    data.extend_from_slice(name);
    data.push(0);
    data.extend_from_slice(&oid.0);
}

/// The entries of a tree object.
pub(crate) fn parse(oid: Oid, data: &[u8]) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (entry, after) =
            parse_entry(rest).ok_or_else(|| Error::CorruptObject(oid.to_string()))?;
        entries.push(entry);
        rest = after;
    }
    Ok(entries)
}

/// The first entry of `data` and the bytes after it; `None` when the entry is truncated
/// or malformed.
fn parse_entry(data: &[u8]) -> Option<(Entry, &[u8])> {
    let (mode, after_mode) = split_once(data, b' ')?;
    let mode = u32::from_str_radix(std::str::from_utf8(mode).ok()?, 8).ok()?;
    let (name, after_name) = split_once(after_mode, 0)?;
    let (id, rest) = after_name.split_first_chunk::<20>()?;
    let entry = Entry {
        name: name.to_vec(),
        mode,
        oid: Oid(*id),
    };
    Some((entry, rest))
}

/// The bytes before and after the first `separator`.
fn split_once(data: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let mut parts = data.splitn(2, |b| *b == separator);
    Some((parts.next()?, parts.next()?))
}

/// A tree built from rendered files, with the objects below it.
#[derive(Debug)]
pub(crate) struct Node<'a> {
    pub oid: Oid,
    /// The tree object's bytes.
    pub data: Vec<u8>,
    /// Children in the tree's order: a file's content and blob name, or a tree.
    pub children: Vec<(Vec<u8>, Child<'a>)>,
}

#[derive(Debug)]
pub(crate) enum Child<'a> {
    Blob(&'a [u8], Oid),
    Tree(Node<'a>),
}

/// A file to build trees from: its path relative to the folder and its content.
pub(crate) struct Leaf<'a> {
    pub path: &'a str,
    pub content: &'a [u8],
}

impl<'a> Leaf<'a> {
    /// The leaves of `files` relative to `folder`, checking every path and that each
    /// lies inside the folder.
    pub(crate) fn of_folder(folder: &str, files: &'a [RenderedFile]) -> Result<Vec<Leaf<'a>>> {
        paths::check_path(folder)?;
        files
            .iter()
            .map(|file| {
                paths::check_path(&file.path)?;
                let path = paths::inside(&file.path, folder)
                    .ok_or_else(|| Error::OutsideScope(file.path.clone()))?;
                Ok(Leaf {
                    path,
                    content: file.content.as_bytes(),
                })
            })
            .collect()
    }
}

/// Builds the tree of a folder from its files (paths relative to the folder, already
/// checked). Sorts `leaves` into git's order (byte order of whole paths, which is git's
/// order at every level). `full` turns a relative path back into the caller's for errors.
pub(crate) fn build<'a>(
    leaves: &mut [Leaf<'a>],
    full: &dyn Fn(&str) -> String,
) -> Result<Node<'a>> {
    leaves.sort_unstable_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    if let Some(twice) = leaves.windows(2).find_map(|pair| match pair {
        [a, b] if a.path == b.path => Some(a.path),
        _ => None,
    }) {
        return Err(Error::DuplicatePath(full(twice)));
    }
    let hashed: Vec<Hashed<'a>> = leaves
        .iter()
        .zip(hash_blobs(leaves))
        .map(|(leaf, oid)| Hashed {
            path: leaf.path,
            content: leaf.content,
            oid,
        })
        .collect();
    build_level(&hashed, "", full)
}

/// A leaf with its blob name.
struct Hashed<'a> {
    path: &'a str,
    content: &'a [u8],
    oid: Oid,
}

/// The tree of the leaves below `prefix` (empty, or a folder path ending in `/`), in byte
/// order, each of which starts with `prefix`.
fn build_level<'a>(
    leaves: &[Hashed<'a>],
    prefix: &str,
    full: &dyn Fn(&str) -> String,
) -> Result<Node<'a>> {
    let mut children: Vec<(Vec<u8>, Child<'a>)> = Vec::new();
    // Byte order of whole paths is git's order of entries, so the tree is written as the
    // children are found.
    let mut data = Vec::new();
    // A folder's leaves are contiguous in byte order; each file is an entry of its own.
    let entries = leaves.chunk_by(|a, b| {
        matches!(
            (level_entry(a.path, prefix), level_entry(b.path, prefix)),
            (Some(LevelEntry::Folder(x)), Some(LevelEntry::Folder(y))) if x == y
        )
    });
    for entry in entries {
        let [first, ..] = entry else { continue };
        match level_entry(first.path, prefix) {
            Some(LevelEntry::File(name)) => {
                push_entry(&mut data, MODE_FILE, name.as_bytes(), &first.oid);
                let blob = Child::Blob(first.content, first.oid);
                children.push((name.as_bytes().to_vec(), blob));
            }
            Some(LevelEntry::Folder(name)) => {
                // A file of the same name sorts before the folder, at this level.
                let file = format!("{prefix}{name}");
                if leaves
                    .binary_search_by(|l| l.path.as_bytes().cmp(file.as_bytes()))
                    .is_ok()
                {
                    return Err(Error::PathConflict(full(&file)));
                }
                let node = build_level(entry, &format!("{file}/"), full)?;
                push_entry(&mut data, MODE_TREE, name.as_bytes(), &node.oid);
                children.push((name.as_bytes().to_vec(), Child::Tree(node)));
            }
            // Every leaf of a level starts with its prefix (see `build`).
            None => return Err(Error::InvalidPath(full(first.path))),
        }
    }
    Ok(Node {
        oid: Oid::hash(Kind::Tree, &data),
        data,
        children,
    })
}

/// What a path is at the level of the folder `prefix`.
enum LevelEntry<'p> {
    /// A file of the folder.
    File(&'p str),
    /// A file below the named folder of the folder.
    Folder(&'p str),
}

fn level_entry<'p>(path: &'p str, prefix: &str) -> Option<LevelEntry<'p>> {
    let rest = path.strip_prefix(prefix)?;
    Some(match rest.split_once('/') {
        Some((folder, _)) => LevelEntry::Folder(folder),
        None => LevelEntry::File(rest),
    })
}

/// Blob names of all leaves, hashed on up to [`crate::pack::threads`] threads.
fn hash_blobs(leaves: &[Leaf<'_>]) -> Vec<Oid> {
    crate::pack::parallel_map(
        leaves,
        |leaf| leaf.content.len(),
        || (),
        |(), leaf| Oid::hash(Kind::Blob, leaf.content),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_trees_as_if_they_ended_in_a_slash() {
        let mut entries: Vec<Entry> = [("a", true), ("a.b", false), ("a-b", false), ("a0", false)]
            .iter()
            .map(|(n, tree)| Entry {
                name: n.as_bytes().to_vec(),
                mode: if *tree { MODE_TREE } else { MODE_FILE },
                oid: Oid::EMPTY_TREE,
            })
            .collect();
        sort(&mut entries);
        let names: Vec<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
        assert_eq!(names, [&b"a-b"[..], b"a.b", b"a", b"a0"]);
        let data = serialize(&entries);
        assert_eq!(parse(Oid::EMPTY_TREE, &data).unwrap(), entries);
    }

    /// Every prefix of a valid tree either ends on an entry boundary (and parses) or is
    /// refused as corrupt: a truncated tree is an error, never a panic.
    #[test]
    fn truncated_trees_are_corrupt() {
        let entries = vec![
            Entry {
                name: b"a.yaml".to_vec(),
                mode: MODE_FILE,
                oid: Oid::hash(Kind::Blob, b"a"),
            },
            Entry {
                name: b"b".to_vec(),
                mode: MODE_TREE,
                oid: Oid::EMPTY_TREE,
            },
        ];
        let data = serialize(&entries);
        let first_end = serialize(&entries[..1]).len();
        for end in 0..data.len() {
            let parsed = parse(Oid::EMPTY_TREE, &data[..end]);
            match end {
                0 => assert_eq!(parsed.unwrap(), []),
                _ if end == first_end => assert_eq!(parsed.unwrap(), entries[..1]),
                _ => assert!(
                    matches!(parsed, Err(Error::CorruptObject(_))),
                    "{end} bytes: {parsed:?}"
                ),
            }
        }
    }

    #[test]
    fn malformed_tree_entries_are_corrupt() {
        let oid = [7u8; 20];
        let entry = |mode: &[u8], name: &[u8]| [mode, b" ", name, b"\0", &oid].concat();
        assert_eq!(
            parse(Oid::EMPTY_TREE, &entry(b"100644", b"a")).unwrap()[0].oid,
            Oid(oid)
        );
        for data in [
            entry(b"10064x", b"a"),
            entry(b"", b"a"),
            entry(b"\xff", b"a"),
            b"100644 a".to_vec(),
            b"100644".to_vec(),
            b" \0".to_vec(),
        ] {
            let parsed = parse(Oid::EMPTY_TREE, &data);
            assert!(matches!(parsed, Err(Error::CorruptObject(_))), "{data:?}");
        }
    }

    #[test]
    fn a_file_and_a_folder_of_the_same_name_conflict() {
        let mut leaves = vec![
            Leaf {
                path: "a",
                content: b"",
            },
            Leaf {
                path: "a-b",
                content: b"",
            },
            Leaf {
                path: "a/b",
                content: b"",
            },
        ];
        let err = build(&mut leaves, &|p| p.to_owned()).unwrap_err();
        assert!(matches!(err, Error::PathConflict(p) if p == "a"));
    }
}
