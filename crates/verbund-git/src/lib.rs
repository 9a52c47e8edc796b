//! Delivers rendered desired state into the desired-state Git repository in the data
//! folder, one attributed commit per change, and pushes it to the Git server the sites'
//! engines pull from.
//!
//! Architecture Invariant: this crate knows files and Git, nothing of bookings, policy
//! or the store. Its input is [`verbund_render::RenderedFile`]s and the folders a change
//! owns ([`ChangeBatch`]); what a booking is, and who may change it, was decided before.
//!
//! # Why the git executable
//!
//! The crate drives the `git` command line through [`std::process::Command`] rather
//! than a library: `gix` cannot push, and the project's dependency list allows the git
//! CLI where `gix` lacks a feature. Using one tool for every operation keeps the on-disk
//! format and locking identical to what operators use to inspect the repository. Every
//! call is isolated from the caller's `GIT_*` environment and runs without hooks,
//! signing or line-ending conversion. The calls block; async callers use
//! `spawn_blocking`.
//!
//! # Crash safety
//!
//! - A file is replaced by writing a temporary file in the same folder, `fsync`, and a
//!   rename, followed by an `fsync` of the folder; a crash leaves the old or the new
//!   file, and at worst a stray temporary file that the next apply prunes.
//! - Commits are written by git, whose object writes and ref updates are atomic (lock
//!   file plus rename).
//! - [`DesiredStateRepo::open_or_init`] removes lock files a killed git left behind.
//! - [`DesiredStateRepo::apply`] commits everything inside its scope that differs from
//!   HEAD, so the next apply after a crash completes the interrupted one;
//!   [`DesiredStateRepo::verify`] compares HEAD's objects with what the store expects,
//!   and [`DesiredStateRepo::repair`] discards the scope's uncommitted state and applies.
//!
//! # History
//!
//! [`DesiredStateRepo::scan_history_for_secrets`] reads every blob ever committed and
//! reports secrets, so that tests (and operators) can prove none was ever delivered.

// Library code reports failures as errors, never by aborting; tests may unwrap.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod error;
mod git;
pub mod push;
pub mod repo;
pub mod scan;
mod worktree;

pub use error::{Error, Result};
pub use push::PushOptions;
pub use repo::{ChangeBatch, CommitId, DesiredStateRepo, Difference};
pub use scan::{Finding, FindingKind};
pub use verbund_render::RenderedFile;
