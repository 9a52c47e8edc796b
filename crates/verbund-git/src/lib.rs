//! Delivers rendered desired state into the desired-state Git repository in the data
//! folder, one attributed commit per change, and pushes it to the Git server the sites'
//! engines pull from.
//!
//! Architecture Invariant: this crate knows files and Git, nothing of bookings, policy
//! or the store. Its input is [`verbund_render::RenderedFile`]s and the folders a change
//! owns ([`Change::put_folder`], [`ChangeBatch`]); what a booking is, and who may change
//! it, was decided before.
//!
//! # Why a bare repository with its own object writing
//!
//! At the design scale (100,000 bookings of about seven files, 700,000 files and 530 MB
//! of YAML) a work tree driven by `git add`/`status`/`commit` cannot commit a booking in
//! milliseconds or everything in seconds, and `git fast-import` is too slow as well. So
//! the repository is **bare** and this crate writes Git objects itself: blob, tree and
//! commit names are SHA-1s computed in process ([`oid`]), a [`Change`] turns each folder
//! put into it into the objects HEAD lacks at once (memory stays bounded by one folder),
//! all objects of a change go into one pack file with its index (zlib at a fast level,
//! on all cores), and the commit rewrites only the trees above the put paths. Because
//! the names are git's, [`folder_oid`] and [`DesiredStateRepo::tree_oid_at`] let callers
//! and [`DesiredStateRepo::verify`] compare whole folders without reading a file.
//!
//! The git executable is still used where it is cheap and its behaviour matters more
//! than its speed: `init`, `config`, reading old trees (one long-lived
//! `git cat-file --batch`, with a bounded cache of parsed trees), `gc`
//! ([`DesiredStateRepo::maintain`]), push and
//! the history scan (`gix` cannot push, and the project's dependency list allows the git
//! CLI where `gix` lacks a feature). Every call is isolated from the caller's `GIT_*`
//! environment and runs without hooks or signing. The calls block; async callers use
//! `spawn_blocking`.
//!
//! # Crash safety
//!
//! - A change's pack is written under a temporary name, its checksum completed, fsynced
//!   with its index, renamed into place (pack before index, as git only reads packs
//!   that have an index) and the folder fsynced, all before the branch moves. A crash
//!   before that leaves an unreferenced temporary file, which the next open removes;
//!   objects are never deleted, and duplicates across packs are harmless.
//! - The branch moves by git's own protocol for loose refs, in-process (`refs.rs`: an
//!   exclusive `<ref>.lock`, the old value compared under it, the new one written and
//!   fsynced, renamed over the ref, the folder fsynced): atomic, and refused
//!   ([`Error::HeadMoved`]) when someone else moved it, never silently overwritten. It
//!   replaced `git update-ref`, two processes per change on the change path.
//! - [`DesiredStateRepo::open_or_init`] removes lock files and temporary packs a killed
//!   process left behind, after waiting for git processes still working in the
//!   repository.
//! - There is no work tree to repair: after a crash HEAD is the old or the new commit,
//!   and applying the store's state again (or [`DesiredStateRepo::verify`]) completes or
//!   confirms it.
//!
//! # Copies that follow one history
//!
//! [`Change::commit_with`] hands the commit's pack ([`Written::pack`]) to a publishing
//! step before the branch moves, and [`DesiredStateRepo::install_pack`] with
//! [`DesiredStateRepo::move_head`] makes another copy hold the same commit (see
//! [`transfer`]): how several control-plane replicas keep one history without this crate
//! knowing where the packs travel.
//!
//! # History
//!
//! [`DesiredStateRepo::scan_history_for_secrets`] reads every blob ever committed and
//! reports secrets, so that tests (and operators) can prove none was ever delivered.

pub mod change;
mod compact;
pub mod error;
mod git;
mod odb;
pub mod oid;
mod pack;
mod paths;
pub mod push;
mod refs;
pub mod repo;
pub mod scan;
pub mod transfer;
mod tree;

pub use change::Change;
pub use compact::Folding;
pub use error::{Error, Result};
pub use oid::Oid;
pub use push::PushOptions;
pub use repo::{folder_oid, Author, ChangeBatch, CommitId, DesiredStateRepo, Difference};
pub use scan::{Finding, FindingKind};
pub use transfer::{Pack, Written};
pub use verbund_render::RenderedFile;
