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
    match a[..common].cmp(&b[..common]) {
        Ordering::Equal => {}
        other => return other,
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
    let bad = || Error::CorruptObject(oid.to_string());
    let mut entries = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ').ok_or_else(bad)?;
        let mode = std::str::from_utf8(&rest[..space]).map_err(|_| bad())?;
        let mode = u32::from_str_radix(mode, 8).map_err(|_| bad())?;
        rest = &rest[space + 1..];
        let nul = rest.iter().position(|b| *b == 0).ok_or_else(bad)?;
        let name = rest[..nul].to_vec();
        let id: [u8; 20] = rest
            .get(nul + 1..nul + 21)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(bad)?;
        rest = &rest[nul + 21..];
        entries.push(Entry {
            name,
            mode,
            oid: Oid(id),
        });
    }
    Ok(entries)
}

/// A tree built from rendered files, with the objects below it.
#[derive(Debug)]
pub(crate) struct Node {
    pub oid: Oid,
    /// The tree object's bytes.
    pub data: Vec<u8>,
    /// Children in the tree's order: the index of a file in the sorted input, or a tree.
    pub children: Vec<(Vec<u8>, Child)>,
}

#[derive(Debug)]
pub(crate) enum Child {
    Blob(usize, Oid),
    Tree(Node),
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
pub(crate) fn build(leaves: &mut [Leaf<'_>], full: &dyn Fn(&str) -> String) -> Result<Node> {
    leaves.sort_unstable_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    for pair in leaves.windows(2) {
        if pair[0].path == pair[1].path {
            return Err(Error::DuplicatePath(full(pair[0].path)));
        }
    }
    let oids = hash_blobs(leaves);
    build_level(leaves, &oids, 0, 0, full)
}

fn build_level(
    leaves: &[Leaf<'_>],
    oids: &[Oid],
    first: usize,
    depth: usize,
    full: &dyn Fn(&str) -> String,
) -> Result<Node> {
    let mut children: Vec<(Vec<u8>, Child)> = Vec::new();
    // Byte order of whole paths is git's order of entries, so the tree is written as the
    // children are found.
    let mut data = Vec::new();
    let mut i = 0;
    while i < leaves.len() {
        let rest = &leaves[i].path[depth..];
        match rest.find('/') {
            None => {
                push_entry(&mut data, MODE_FILE, rest.as_bytes(), &oids[i]);
                children.push((rest.as_bytes().to_vec(), Child::Blob(first + i, oids[i])));
                i += 1;
            }
            Some(slash) => {
                let name = &rest[..slash];
                let prefix_len = depth + slash + 1;
                let prefix = &leaves[i].path[..prefix_len];
                let end = i + leaves[i..]
                    .iter()
                    .position(|l| !l.path.starts_with(prefix))
                    .unwrap_or(leaves.len() - i);
                // A file of the same name sorts before the folder, at this level.
                let file = &leaves[i].path[..prefix_len - 1];
                if leaves[..i]
                    .binary_search_by(|l| l.path.as_bytes().cmp(file.as_bytes()))
                    .is_ok()
                {
                    return Err(Error::PathConflict(full(file)));
                }
                let node =
                    build_level(&leaves[i..end], &oids[i..end], first + i, prefix_len, full)?;
                push_entry(&mut data, MODE_TREE, name.as_bytes(), &node.oid);
                children.push((name.as_bytes().to_vec(), Child::Tree(node)));
                i = end;
            }
        }
    }
    Ok(Node {
        oid: Oid::hash(Kind::Tree, &data),
        data,
        children,
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
