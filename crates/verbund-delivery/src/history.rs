//! The desired-state history that several replicas share, kept in the store: how a
//! commit joins it and how a replica's own repositories follow it.
//!
//! # Why
//!
//! With several replicas on one PostgreSQL database each replica keeps its own bare
//! repositories in its data folder and serves the sites from them. Were each to commit
//! for itself, the sites would see as many histories as there are replicas, and a push to
//! a shared remote would be refused for all but one. So there is one history, in the
//! store (`verbund_store::Store::append_history`): the whole desired state
//! (`desired-state`) and each site's repository (`sites/<site>`) as a list of commits,
//! each with the pack holding the objects it added.
//!
//! # Invariant: a second replica never forks the history the sites follow
//!
//! - A commit joins the shared history *before* any branch names it: the writer's
//!   [`verbund_git::Change::commit_with`] stores its pack and moves the stored head with
//!   compare-and-swap, and only then moves its own branch. A commit that is refused (the
//!   shared history moved on, e.g. under a second writer) is named by no branch, so no
//!   site ever fetched it and no remote ever got it; a writer killed between the two
//!   steps finds its commit in the store and installs it like any other.
//! - Every replica installs the packs it lacks in the stored order and moves its branch
//!   with compare-and-swap, so its branch only ever names commits of the shared history,
//!   each a descendant of the one before.
//! - A repository that existed before its replicas shared it (or a copy whose branch
//!   names a commit the shared history never held) is seeded from the first writer's
//!   copy, as one pack of its whole history; every other copy moves onto that.
//!
//! A fresh replica installs every pack; `git gc` on one replica only repacks its own copy
//! (the packs in the store stay the source), so copies differ in their pack files but
//! never in their commits.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Mutex;

use tokio::runtime::Handle;
use verbund_git::{Author, Change, CommitId, DesiredStateRepo, Pack};
use verbund_store::{HistoryHead, NewHistoryCommit, Store};

use crate::Result;

/// The shared history's name of the whole desired state.
pub(crate) const WHOLE: &str = "desired-state";

/// The prefix of a site repository's name in the shared history: `sites/<site>`.
pub(crate) const SITE_PREFIX: &str = "sites/";

/// Bytes of packs read from the store at a time while catching up.
const READ_BYTES: i64 = 64 << 20;

/// The shared history as one replica sees it. Blocking: runs on the publisher's blocking
/// threads and reaches the store through the runtime handle.
pub(crate) struct SharedHistory {
    store: Store,
    /// This replica's name, recorded with every commit it writes.
    replica: String,
    /// Per repository: the number and commit of the shared history this replica's copy
    /// was last seen at.
    known: Mutex<HashMap<String, (i64, String)>>,
}

impl std::fmt::Debug for SharedHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedHistory")
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl SharedHistory {
    pub(crate) fn new(store: Store, replica: String) -> Self {
        SharedHistory {
            store,
            replica,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// This replica's name.
    pub(crate) fn replica(&self) -> &str {
        &self.replica
    }

    fn known(&self, name: &str) -> Option<(i64, String)> {
        self.known.lock().ok()?.get(name).cloned()
    }

    fn remember(&self, name: &str, seq: i64, commit: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.insert(name.to_owned(), (seq, commit.to_owned()));
        }
    }

    /// Whether this replica's copy of `head.repository` is known to be at `head`.
    pub(crate) fn is_current(&self, head: &HistoryHead) -> bool {
        self.known(&head.repository)
            .is_some_and(|(seq, commit)| seq == head.seq && commit == head.head)
    }

    /// Commits `change` (of `repo`, the copy of `name`) as the next commit of `name`'s
    /// shared history: its pack is stored and the stored head moved from the change's
    /// parent to it (compare-and-swap, together with `delivered`, the run of audit events
    /// it delivers) before `repo`'s branch moves. Refused, with nothing moved, when the
    /// shared history is no longer at the change's parent.
    #[allow(
        clippy::too_many_arguments,
        reason = "a commit's own arguments plus where it joins the history"
    )]
    pub(crate) fn commit(
        &self,
        name: &str,
        repo: &DesiredStateRepo,
        change: Change<'_>,
        author: &Author,
        message: &str,
        audit_events: &[i64],
        delivered: Option<RangeInclusive<i64>>,
    ) -> Result<Option<CommitId>> {
        let rt = Handle::current();
        let mut stored = None;
        let commit = change.commit_with(author, message, audit_events, |written| {
            let parent = written.parent();
            if let Some(parent) = &parent {
                self.ensure_seeded(name, repo, parent)?;
            }
            let pack = written.pack()?;
            let new = written.commit();
            let seq = rt.block_on(self.store.append_history(
                NewHistoryCommit {
                    repository: name,
                    old: parent.as_ref().map(|p| p.0.as_str()),
                    new: &new.0,
                    pack: &pack.pack,
                    idx: &pack.idx,
                    written_by: &self.replica,
                    delivered,
                },
                chrono::Utc::now(),
            ))?;
            stored = Some((seq, new));
            Ok::<_, crate::DeliveryError>(())
        })?;
        if let Some((seq, new)) = stored {
            self.remember(name, seq, &new.0);
        }
        Ok(commit)
    }

    /// Seeds `name`'s shared history with `head` when it has none yet: a repository
    /// that existed before its replicas shared it. When the shared history holds
    /// `head`, there is nothing to do; when it holds other commits, neither: the commit
    /// on top of `head` will be refused.
    fn ensure_seeded(&self, name: &str, repo: &DesiredStateRepo, head: &CommitId) -> Result<()> {
        if self.known(name).is_some_and(|(_, commit)| commit == head.0) {
            return Ok(());
        }
        let rt = Handle::current();
        if let Some(seq) = rt.block_on(self.store.history_seq(name, &head.0))? {
            self.remember(name, seq, &head.0);
            return Ok(());
        }
        if rt.block_on(self.store.history_head(name))?.is_some() {
            return Ok(());
        }
        self.seed(name, repo, head)
    }

    /// Stores one pack of `head`'s whole history as the first commit of `name`'s shared
    /// history (refused when it has one already).
    pub(crate) fn seed(&self, name: &str, repo: &DesiredStateRepo, head: &CommitId) -> Result<()> {
        let pack = repo.history_pack(head)?;
        let seq = Handle::current().block_on(self.store.append_history(
            NewHistoryCommit {
                repository: name,
                old: None,
                new: &head.0,
                pack: &pack.pack,
                idx: &pack.idx,
                written_by: &self.replica,
                delivered: None,
            },
            chrono::Utc::now(),
        ))?;
        tracing::info!(
            repository = name,
            commit = %head,
            pack_bytes = pack.pack.len(),
            "the shared desired-state history starts from this replica's repository"
        );
        self.remember(name, seq, &head.0);
        Ok(())
    }

    /// Makes `repo`, the copy of `name`, hold the shared history up to `head` (and
    /// whatever was stored after it meanwhile): installs the pack of every commit it
    /// lacks, in order, and moves its branch batch by batch with compare-and-swap. A copy
    /// whose branch names a commit the shared history never held (written by a replica
    /// before it shared the history) moves onto the shared history; what it held stays
    /// as unreferenced objects. Returns whether the branch moved.
    pub(crate) fn sync(
        &self,
        name: &str,
        repo: &DesiredStateRepo,
        head: &HistoryHead,
    ) -> Result<bool> {
        let rt = Handle::current();
        let local = repo.head()?;
        if local.as_ref().is_some_and(|l| l.0 == head.head) {
            self.remember(name, head.seq, &head.head);
            return Ok(false);
        }
        let mut at = match (&local, self.known(name)) {
            (None, _) => 0,
            (Some(l), Some((seq, commit))) if commit == l.0 => seq,
            (Some(l), _) => match rt.block_on(self.store.history_seq(name, &l.0))? {
                Some(seq) => seq,
                None => {
                    tracing::warn!(
                        repository = name,
                        local = %l,
                        "this replica's repository is not on the shared history; it moves onto it"
                    );
                    0
                }
            },
        };
        let started = std::time::Instant::now();
        let mut branch = local;
        let mut installed = 0usize;
        while at < head.seq {
            let commits = rt.block_on(self.store.history_after(name, at, READ_BYTES))?;
            let Some(last) = commits.last().map(|c| (c.seq, CommitId(c.new.clone()))) else {
                break;
            };
            for c in commits {
                repo.install_pack(&Pack {
                    pack: c.pack,
                    idx: c.idx,
                })?;
                installed += 1;
            }
            repo.move_head(branch.as_ref(), &last.1)?;
            at = last.0;
            self.remember(name, at, &last.1 .0);
            branch = Some(last.1);
        }
        if installed > 0 {
            tracing::debug!(
                repository = name,
                commits = installed,
                head = ?branch,
                ms = started.elapsed().as_millis() as u64,
                "caught up with the shared desired-state history"
            );
        }
        Ok(installed > 0)
    }
}
