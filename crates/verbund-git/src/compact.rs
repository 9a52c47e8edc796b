//! Folding the packs of single commits together as the repository grows.
//!
//! Every commit writes one pack ([`crate::pack`]); readers (git serving a site's fetch,
//! `fsck`, `cat-file`) look into every pack, so their cost grows with the count. Git's
//! own `repack --geometric` folds the small packs but first walks the whole tree of every
//! new commit to find path names for its delta search: at the scale of Germany (700,000
//! files) that walk made a compaction of 32 booking changes take 1.3 s of both cores, more
//! CPU than the 32 changes themselves. Here the packs to fold are chosen by the same
//! geometric rule, and `git pack-objects` is handed exactly their objects (read from
//! their indexes), so the cost follows what recent commits wrote, never the size of
//! the repository. It runs on one thread, leaving the other cores to the changes.
//!
//! Two strengths ([`Folding`]): as commits come in, packs are folded without a delta
//! search ([`Folding::Quick`]: the search over the large `bookings` trees a change
//! rewrites costs ~10 ms of CPU per change, measured beside the changes as a p50 of 46
//! instead of 38 ms); in housekeeping they are folded again with git's delta search
//! ([`Folding::Deltified`]), which stores each rewritten tree as a delta of its former
//! self, so the repository's size does not grow with every change either.
//!
//! Safe beside commits, catch-ups and readers, as git's own repacks are: the new pack and
//! its index are in place and on disk before a folded pack is removed (index first, so
//! no reader finds an index without its pack); a pack that appears meanwhile was not
//! chosen and stays; readers that opened a removed pack keep reading it or look again.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::git;
use crate::oid::Oid;
use crate::pack::{sync_dir, INDEX_HEADER, INDEX_MAGIC};

/// A pack is folded with the smaller ones while it holds fewer than this many times
/// their objects together (git's `--geometric=2`).
const FACTOR: u64 = 2;

/// One pack of the repository: its path without extension, and how many objects its
/// index lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackFile {
    pub stem: PathBuf,
    pub objects: u64,
}

/// How thoroughly packs are folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folding {
    /// Objects are copied as they are: cheap enough to run beside every burst of
    /// commits; a tree rewritten by many changes is stored whole each time.
    Quick,
    /// Objects stored whole are tried as deltas of each other (git's default window):
    /// the repository stays small, at ~10 ms of CPU per change folded.
    Deltified,
}

/// Folds the packs of the repository at `git_dir` when it holds more than `limit`;
/// returns whether it did.
pub(crate) fn compact_over(git_dir: &Path, limit: usize, folding: Folding) -> Result<bool> {
    // Counting names first: this runs after every burst of commits, for every site's
    // repository, and most have few packs.
    if pack_count(git_dir)? <= limit {
        return Ok(false);
    }
    let packs = packs(git_dir)?;
    if packs.len() <= limit {
        return Ok(false);
    }
    let quick = quick_packs(git_dir);
    let mut chosen = to_fold(packs.clone());
    if folding == Folding::Deltified {
        // What was folded quickly is folded again, now with deltas, wherever it stands.
        let extra: Vec<PackFile> = packs
            .into_iter()
            .filter(|p| quick.contains(&p.stem) && !chosen.contains(p))
            .collect();
        chosen.extend(extra);
    }
    // One pack is folded alone only to give a quick fold its deltas.
    let worth_it = match chosen.as_slice() {
        [] => false,
        [one] => folding == Folding::Deltified && quick.contains(&one.stem),
        _ => true,
    };
    if !worth_it {
        return Ok(false);
    }
    let mut names = Vec::new();
    for pack in &chosen {
        names.extend(object_names(&pack.stem.with_extension("idx"))?);
    }
    names.sort_unstable();
    names.dedup();
    let mut input = String::with_capacity(names.len() * 41);
    for name in &names {
        input.push_str(&name.hex());
        input.push('\n');
    }
    let pack_dir = git_dir.join("objects").join("pack");
    let base = pack_dir.join("pack");
    let base = base.to_string_lossy();
    // git does not search deltas for objects it can copy whole from a pack (measured:
    // a fold of quick-folded trees came out byte for byte the same), hence
    // `--no-reuse-delta` where deltas are wanted.
    let window = match folding {
        Folding::Quick => "--window=0",
        Folding::Deltified => "--no-reuse-delta",
    };
    let args = [
        "-c",
        "pack.threads=1",
        "pack-objects",
        "-q",
        "--delta-base-offset",
        window,
        base.as_ref(),
    ];
    let out = git::run(git_dir, &args, Some(input.as_bytes()))?;
    let written = String::from_utf8_lossy(&out).trim().to_owned();
    if written.len() != 40 || !written.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Parse {
            command: args.join(" "),
            detail: format!("`{written}` names no pack"),
        });
    }
    sync_dir(&pack_dir)?;
    let kept = pack_dir.join(format!("pack-{written}"));
    let mut still_quick: Vec<PathBuf> = quick
        .into_iter()
        .filter(|stem| {
            stem.with_extension("idx").is_file() && !chosen.iter().any(|p| p.stem == *stem)
        })
        .collect();
    if folding == Folding::Quick {
        still_quick.push(kept.clone());
    }
    record_quick_packs(git_dir, &still_quick)?;
    for pack in chosen.iter().filter(|p| p.stem != kept) {
        remove(&pack.stem)?;
    }
    sync_dir(&pack_dir)?;
    Ok(true)
}

/// Where the packs of quick folds are listed, for the next deltified fold: beside the
/// objects, not among them, so that git sees no stray file in `objects/pack`.
fn quick_list(git_dir: &Path) -> PathBuf {
    git_dir.join("verbund-quick-packs")
}

/// The packs that quick folds wrote and no deltified fold has folded since. A list that
/// cannot be read is empty: those packs then stay as they are until `git gc`.
fn quick_packs(git_dir: &Path) -> Vec<PathBuf> {
    let pack_dir = git_dir.join("objects").join("pack");
    fs::read_to_string(quick_list(git_dir))
        .unwrap_or_default()
        .lines()
        .filter(|name| name.starts_with("pack-") && !name.contains('/'))
        .map(|name| pack_dir.join(name))
        .collect()
}

fn record_quick_packs(git_dir: &Path, stems: &[PathBuf]) -> Result<()> {
    let mut text = String::new();
    for name in stems.iter().filter_map(|s| s.file_name()?.to_str()) {
        text.push_str(name);
        text.push('\n');
    }
    let path = quick_list(git_dir);
    let temp = path.with_extension("tmp");
    fs::write(&temp, text).map_err(|e| Error::io("writing", &temp, e))?;
    fs::rename(&temp, &path).map_err(|e| Error::io("renaming into", &path, e))
}

/// How many pack files the repository holds (each commit writes one).
pub(crate) fn pack_count(git_dir: &Path) -> Result<usize> {
    let dir = git_dir.join("objects").join("pack");
    match fs::read_dir(&dir) {
        Ok(entries) => Ok(entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
            .count()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::io("listing", &dir, e)),
    }
}

/// The packs of the repository that may be folded: those with an index, without a
/// `.keep` file.
pub(crate) fn packs(git_dir: &Path) -> Result<Vec<PackFile>> {
    let dir = git_dir.join("objects").join("pack");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing", &dir, e)),
    };
    let mut packs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let named_pack = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pack-") && n.ends_with(".idx"));
        if !named_pack
            || !path.with_extension("pack").is_file()
            || path.with_extension("keep").exists()
        {
            continue;
        }
        packs.push(PackFile {
            objects: object_count(&path)?,
            stem: path.with_extension(""),
        });
    }
    Ok(packs)
}

/// The packs to fold into one, by git's geometric rule: sorted by object count, the
/// largest packs that each hold at least [`FACTOR`] times the next smaller one stay;
/// everything below the first pair that breaks this is folded, and so is each pack
/// above that holds fewer than [`FACTOR`] times the folded objects. What stays (with the
/// new pack) forms a geometric progression: after any compaction about log2(objects)
/// packs remain, and the largest pack (the first commit of everything) is read again
/// only when the others together reach half its size.
pub(crate) fn to_fold(mut packs: Vec<PackFile>) -> Vec<PackFile> {
    packs.sort_by(|a, b| a.objects.cmp(&b.objects).then_with(|| a.stem.cmp(&b.stem)));
    let weights: Vec<u64> = packs.iter().map(|p| p.objects).collect();
    let broken = weights.windows(2).rposition(
        |pair| matches!(pair, [smaller, larger] if *larger < FACTOR.saturating_mul(*smaller)),
    );
    let mut split = broken.map_or(0, |i| i + 2);
    let mut total: u64 = weights.iter().take(split).sum();
    while let Some(&next) = weights.get(split) {
        if next >= FACTOR.saturating_mul(total) {
            break;
        }
        total = total.saturating_add(next);
        split += 1;
    }
    packs.truncate(split);
    packs
}

/// How many objects the version-2 index at `idx` lists (its last fan-out entry).
fn object_count(idx: &Path) -> Result<u64> {
    let mut header = [0u8; INDEX_HEADER];
    File::open(idx)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|e| Error::io("reading", idx, e))?;
    check_header(idx, &header)?;
    let last = header.last_chunk::<4>().copied().unwrap_or_default();
    Ok(u64::from(u32::from_be_bytes(last)))
}

/// The object names the version-2 index at `idx` lists.
fn object_names(idx: &Path) -> Result<Vec<Oid>> {
    let bytes = fs::read(idx).map_err(|e| Error::io("reading", idx, e))?;
    let header = bytes
        .first_chunk::<INDEX_HEADER>()
        .ok_or_else(|| not_an_index(idx))?;
    check_header(idx, header)?;
    let count = u32::from_be_bytes(header.last_chunk::<4>().copied().unwrap_or_default());
    let names = bytes
        .get(INDEX_HEADER..)
        .and_then(|rest| rest.get(..count as usize * 20))
        .ok_or_else(|| not_an_index(idx))?;
    Ok(names
        .chunks_exact(20)
        .filter_map(|c| c.try_into().ok().map(Oid))
        .collect())
}

fn check_header(idx: &Path, header: &[u8]) -> Result<()> {
    if header.starts_with(INDEX_MAGIC) {
        Ok(())
    } else {
        Err(not_an_index(idx))
    }
}

fn not_an_index(idx: &Path) -> Error {
    Error::InvalidPack(format!("`{}` is no version-2 pack index", idx.display()))
}

/// Removes a folded pack: its index first, then the pack and what git keeps beside it.
fn remove(stem: &Path) -> Result<()> {
    for extension in ["idx", "pack", "rev", "bitmap"] {
        let path = stem.with_extension(extension);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing", &path, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(name: &str, objects: u64) -> PackFile {
        PackFile {
            stem: PathBuf::from(name),
            objects,
        }
    }

    fn names(packs: &[PackFile]) -> Vec<&str> {
        packs.iter().filter_map(|p| p.stem.to_str()).collect()
    }

    #[test]
    fn the_small_packs_of_recent_commits_are_folded_and_the_first_commit_stays() {
        let mut packs: Vec<PackFile> = (0..33).map(|i| pack(&format!("c{i:02}"), 12)).collect();
        packs.push(pack("base", 700_000));
        let chosen = to_fold(packs);
        assert_eq!(chosen.len(), 33);
        assert!(!names(&chosen).contains(&"base"));
    }

    #[test]
    fn an_earlier_fold_joins_when_it_is_not_twice_the_new_ones() {
        let mut packs: Vec<PackFile> = (0..33).map(|i| pack(&format!("c{i:02}"), 12)).collect();
        packs.push(pack("earlier", 500));
        packs.push(pack("base", 700_000));
        assert!(names(&to_fold(packs.clone())).contains(&"earlier"));
        packs.retain(|p| p.stem != Path::new("earlier"));
        packs.push(pack("earlier", 800));
        assert!(!names(&to_fold(packs)).contains(&"earlier"));
    }

    #[test]
    fn packs_that_already_form_a_progression_stay() {
        assert!(to_fold(vec![pack("small", 1), pack("large", 1_000)]).is_empty());
        assert!(to_fold(vec![pack("only", 5)]).is_empty());
        assert_eq!(
            names(&to_fold(vec![pack("a", 7), pack("b", 8), pack("c", 1_000)])),
            ["a", "b"]
        );
    }

    #[test]
    fn what_stays_is_a_geometric_progression() {
        let packs: Vec<PackFile> = [3, 5, 9, 40, 41, 200, 1_000, 5_000]
            .iter()
            .enumerate()
            .map(|(i, n)| pack(&format!("p{i}"), *n))
            .collect();
        let chosen = to_fold(packs.clone());
        let folded: u64 = chosen.iter().map(|p| p.objects).sum();
        let mut rest: Vec<u64> = packs
            .iter()
            .filter(|p| !chosen.contains(p))
            .map(|p| p.objects)
            .collect();
        rest.insert(0, folded);
        for pair in rest.windows(2) {
            assert!(pair[1] >= FACTOR * pair[0], "{rest:?}");
        }
    }
}
