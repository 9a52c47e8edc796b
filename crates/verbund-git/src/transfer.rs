//! Copies of one repository that follow one history: the pack a commit wrote (what a
//! copy holding the commit's parent needs to hold the commit too), installing such a pack
//! and moving the branch with compare-and-swap, and one pack of a commit's whole history
//! to start a copy from nothing.
//!
//! Why: several control-plane replicas each keep their own bare repositories, and a site
//! must see one history whichever replica serves it. Objects are named by their content,
//! so a copy that installs the same packs and moves its branch to the same commits holds
//! the same repository as far as any Git client can tell, commit for commit. Where the
//! packs travel between the copies (verbund keeps them in its store) is the caller's
//! business: this module knows files and Git only.
//!
//! Installing is as crash-safe as committing: the pack and its index are checked, written
//! under temporary names, fsynced and renamed into place (pack first) before the branch
//! may move, and the branch moves only by compare-and-swap (`refs.rs`), which also
//! refuses a name that is not a commit the repository holds.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::git;
use crate::oid::Oid;
use crate::pack::{self, TEMP_PREFIX};
use crate::refs::Target;
use crate::repo::{CommitId, DesiredStateRepo};

/// A pack file with its version-2 index, as bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Pack {
    /// The pack file (`PACK…`, ending in the SHA-1 of what precedes it).
    pub pack: Vec<u8>,
    /// Its index (`.idx`).
    pub idx: Vec<u8>,
}

impl std::fmt::Debug for Pack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pack")
            .field("pack_bytes", &self.pack.len())
            .field("idx_bytes", &self.idx.len())
            .finish()
    }
}

impl Pack {
    /// Reads a pack and the index beside it (`<name>.pack`, `<name>.idx`).
    pub fn read(pack: &Path) -> Result<Pack> {
        let idx = pack.with_extension("idx");
        Ok(Pack {
            pack: fs::read(pack).map_err(|e| Error::io("reading", pack, e))?,
            idx: fs::read(&idx).map_err(|e| Error::io("reading", &idx, e))?,
        })
    }

    /// The pack's checksum, which names it (`pack-<checksum>.pack`), once pack and index
    /// are checked to be whole and to belong together.
    pub fn checksum(&self) -> Result<String> {
        Ok(pack::check_pack(&self.pack, &self.idx)?.to_string())
    }
}

/// A commit whose objects are durable in the repository but which no branch names yet:
/// what [`crate::Change::commit_with`] hands to its publishing step.
#[derive(Debug)]
pub struct Written {
    pub(crate) commit: Oid,
    pub(crate) parent: Option<Oid>,
    pub(crate) pack: PathBuf,
}

impl Written {
    /// The new commit.
    pub fn commit(&self) -> CommitId {
        CommitId(self.commit.to_string())
    }

    /// The commit the branch names now and will move from (`None`: unborn).
    pub fn parent(&self) -> Option<CommitId> {
        self.parent.map(|oid| CommitId(oid.to_string()))
    }

    /// The pack holding every object the commit added to its parent's: with it, a copy
    /// of the repository that holds the parent holds the commit.
    pub fn pack(&self) -> Result<Pack> {
        Pack::read(&self.pack)
    }
}

impl DesiredStateRepo {
    /// Installs `pack` into `objects/pack` durably, unless a pack of the same checksum is
    /// there already; the branch does not move (see [`DesiredStateRepo::move_head`]).
    /// Refused with [`Error::InvalidPack`] when the pack or its index is not whole or they
    /// do not belong together. Returns whether anything was written.
    pub fn install_pack(&self, pack: &Pack) -> Result<bool> {
        pack::install(self.path(), &pack.pack, &pack.idx)
    }

    /// Moves the branch HEAD names from `expected` (`None`: unborn) to `new`, which the
    /// repository must hold, with compare-and-swap; fails with [`Error::HeadMoved`] when
    /// the branch is elsewhere.
    pub fn move_head(&self, expected: Option<&CommitId>, new: &CommitId) -> Result<()> {
        let (branch, _) = self.head_ref()?;
        let expected = expected.map(|c| c.0.parse::<Oid>()).transpose()?;
        self.move_branch(&branch, new.0.parse()?, expected, Target::Unverified)
    }

    /// One pack of every object reachable from `commit` (its whole history), written by
    /// `git pack-objects` (which may store objects as deltas): what a copy that holds
    /// nothing needs to hold `commit`.
    pub fn history_pack(&self, commit: &CommitId) -> Result<Pack> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let oid: Oid = commit.0.parse()?;
        let base = self.path().join("objects").join("pack").join(format!(
            "{TEMP_PREFIX}history_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let base_arg = base.to_string_lossy().into_owned();
        let args = [
            "pack-objects",
            "--revs",
            "--delta-base-offset",
            "-q",
            base_arg.as_str(),
        ];
        let input = format!("{oid}\n");
        let out = git::run(self.path(), &args, Some(input.as_bytes()))?;
        let name = String::from_utf8_lossy(&out).trim().to_owned();
        if name.len() != 40 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Parse {
                command: args.join(" "),
                detail: format!("`{name}` names no pack"),
            });
        }
        let pack_path = PathBuf::from(format!("{base_arg}-{name}.pack"));
        let read = Pack::read(&pack_path);
        let _ = fs::remove_file(&pack_path);
        let _ = fs::remove_file(pack_path.with_extension("idx"));
        read
    }
}
