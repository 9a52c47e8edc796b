//! Which replica writes the desired state, and how every replica follows the one history.
//!
//! With a shared history (several replicas on one PostgreSQL database, see `history`)
//! exactly one replica writes: the one holding the store's writer lock
//! ([`Store::try_lead_delivery`], a session advisory lock of its own, freed by the server
//! when that process dies). It follows the audit trail, commits, reconciles and pushes.
//! Every replica, the writer included, brings its repositories in line with the shared
//! history every [`FOLLOW_EVERY`], and asks for the lock as often. A replica that becomes
//! the writer first catches up, then goes on from the last audit event the shared history
//! reflects ([`Store::delivered_cursor`], stored with each commit), so every change not
//! yet committed is committed once, by it, on top of its predecessor's last commit; then
//! it reconciles, which also lets each site's repository catch up with a commit the
//! predecessor made but did not follow. Leadership keeps the others from trying;
//! compare-and-swap on the shared head makes a second writer fail rather than fork.
//!
//! Without a shared history (SQLite, one process) the publisher always writes and none of
//! this runs.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use verbund_git::{Author, Change, CommitId, Folding};
use verbund_store::{Leadership, Store};

use super::{blocking, Publisher, Reconciled, ACTOR, POLL_EVERY};
use crate::history::{SharedHistory, SITE_PREFIX, WHOLE};
use crate::Result;

/// How often a replica with a shared history catches up with it, asks for the writer's
/// lock, and (as the writer) looks at the audit trail without being woken: changes made
/// through another replica reach the writer this way.
pub(crate) const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// A replica's part in the shared history.
pub(crate) struct Replica {
    history: Arc<SharedHistory>,
    /// Held while this replica writes.
    leadership: tokio::sync::Mutex<Option<Leadership>>,
    writer: AtomicBool,
    /// The last delivered cursor recorded in the store.
    recorded: AtomicI64,
}

impl Replica {
    pub(crate) fn new(store: Store, name: String) -> Replica {
        Replica {
            history: Arc::new(SharedHistory::new(store, name)),
            leadership: tokio::sync::Mutex::new(None),
            writer: AtomicBool::new(false),
            recorded: AtomicI64::new(0),
        }
    }

    pub(crate) fn history(&self) -> Arc<SharedHistory> {
        self.history.clone()
    }
}

impl Publisher {
    /// Whether this replica writes the desired state: with a shared history while it
    /// holds the writer's lock, always without one.
    pub fn is_writer(&self) -> bool {
        self.inner
            .replica
            .as_ref()
            .is_none_or(|r| r.writer.load(Ordering::Relaxed))
    }

    /// How long the publisher waits between passes unless woken.
    pub(super) fn poll_every(&self) -> Duration {
        match self.inner.replica {
            Some(_) => FOLLOW_EVERY,
            None => POLL_EVERY,
        }
    }

    /// Commits a change of the whole desired state: as the next commit of the shared
    /// history if there is one (with `delivered`, the run of audit events it delivers),
    /// else locally.
    pub(super) fn commit_whole(
        &self,
        change: Change<'_>,
        author: &Author,
        message: &str,
        audit_events: &[i64],
        delivered: Option<std::ops::RangeInclusive<i64>>,
    ) -> Result<Option<CommitId>> {
        match &self.inner.replica {
            Some(r) => r.history.commit(
                WHOLE,
                &self.inner.repo,
                change,
                author,
                message,
                audit_events,
                delivered,
            ),
            None => Ok(change.commit(author, message, audit_events)?),
        }
    }

    /// [`Publisher::start`] with a shared history: becomes the writer if no other replica
    /// is (and then reconciles), else catches up with the shared history.
    pub(super) async fn start_replica(&self) -> Result<Reconciled> {
        if self.try_lead().await? {
            return self.take_over(true).await;
        }
        self.catch_up().await?;
        Ok(Reconciled::default())
    }

    /// One pass of the running publisher ([`Publisher::spawn`] makes one whenever woken
    /// and every few seconds). Without a shared history: deliver what the audit trail
    /// holds. With one: a writer that lost its lock stops writing; a replica that gets the
    /// lock takes over; the writer catches up (a no-op unless someone else wrote),
    /// delivers and records how far; the others catch up.
    pub async fn pass(&self) -> Result<()> {
        let Some(replica) = &self.inner.replica else {
            return self.deliver_pending().await.map(drop);
        };
        {
            let mut lead = replica.leadership.lock().await;
            if let Some(held) = lead.as_mut() {
                if !held.holds().await {
                    *lead = None;
                    replica.writer.store(false, Ordering::Relaxed);
                    tracing::warn!(replica = %replica.history.replica(), "this replica lost the writer's lock; it follows the shared desired-state history");
                }
            }
        }
        if !self.is_writer() {
            if self.try_lead().await? {
                self.take_over(false).await?;
                return Ok(());
            }
            self.catch_up().await?;
            return Ok(());
        }
        self.catch_up().await?;
        self.deliver_pending().await?;
        self.record_cursor().await
    }

    /// Takes the writer's lock if it is free.
    async fn try_lead(&self) -> Result<bool> {
        let Some(replica) = &self.inner.replica else {
            return Ok(true);
        };
        let mut lead = replica.leadership.lock().await;
        if lead.is_some() {
            return Ok(true);
        }
        *lead = self.inner.store.try_lead_delivery().await?;
        Ok(lead.is_some())
    }

    /// What a replica does when it becomes the writer: catch up with the shared history
    /// and seed it with any repository it lacks; finish what may not have followed the
    /// last commit (its run is delivered again: no commit, as HEAD holds it, but the
    /// sites' repositories follow and placed bookings move on); deliver every audit event
    /// after the last one the shared history reflects, each run once, on top of the last
    /// commit; push. A replica that `starts` (and the very first writer) also reconciles,
    /// as a single control plane does; one that takes over a running one does not, so
    /// that each change still in flight gets a commit of its own.
    async fn take_over(&self, starts: bool) -> Result<Reconciled> {
        let Some(replica) = &self.inner.replica else {
            return self.reconcile(ACTOR, "start").await;
        };
        let started = std::time::Instant::now();
        let caught_up = self.catch_up().await?;
        {
            let _job = self.inner.job.lock().await;
            let this = self.clone();
            blocking(move || this.seed_blocking()).await?;
        }
        let delivered = self.inner.store.delivered_cursor().await?;
        let mut commits = 0;
        if let Some(d) = delivered {
            if let Some(from) = d.last_run_from {
                commits += self.deliver_again(from, d.through).await?;
            }
            replica.recorded.fetch_max(d.through, Ordering::SeqCst);
            self.inner.cursor.store(d.through, Ordering::SeqCst);
            commits += self.deliver_pending().await?.len();
        }
        let mut reconciled = Reconciled::default();
        if starts || delivered.is_none() {
            let head = self.inner.store.audit_head().await?;
            let reason = if starts { "start" } else { "takeover" };
            reconciled = self.reconcile(ACTOR, reason).await?;
            self.inner.cursor.fetch_max(head, Ordering::SeqCst);
        }
        self.record_cursor().await?;
        replica.writer.store(true, Ordering::Relaxed);
        self.inner.push_wake.notify_one();
        tracing::info!(
            replica = %replica.history.replica(),
            starts,
            caught_up,
            delivered_through = ?delivered.map(|d| d.through),
            commits,
            reconciled = reconciled.commit.is_some(),
            ms = started.elapsed().as_millis() as u64,
            "this replica writes the desired state"
        );
        Ok(reconciled)
    }

    /// Delivers the run of audit events `from..=through` again, as one run (as its
    /// commit did): see [`Publisher::take_over`]. Returns the commits made (none when the
    /// commit is at HEAD).
    async fn deliver_again(&self, from: i64, through: i64) -> Result<usize> {
        let _job = self.inner.job.lock().await;
        let events = self
            .inner
            .store
            .audit_after(
                from - 1,
                "",
                u32::try_from(through - from + 1).unwrap_or(u32::MAX),
            )
            .await?;
        let events: Vec<_> = events
            .into_iter()
            .filter(|e| e.seq <= through)
            .filter(super::is_relevant)
            .collect();
        let mut commits = 0;
        for run in super::runs_by_actor(events) {
            let this = self.clone();
            if let Some(commit) = blocking(move || this.deliver_blocking(&run)).await? {
                self.committed(&Some(commit));
                commits += 1;
            }
        }
        Ok(commits)
    }

    /// Brings every repository of this replica in line with the shared history (see
    /// `SharedHistory::sync`); returns how many moved. Nothing without a shared history.
    pub async fn catch_up(&self) -> Result<usize> {
        if self.inner.replica.is_none() {
            return Ok(0);
        }
        let job = self.inner.job.lock().await;
        let this = self.clone();
        let moved = blocking(move || this.catch_up_blocking()).await?;
        drop(job);
        if moved > 0 {
            self.compact_in_background();
        }
        Ok(moved)
    }

    fn catch_up_blocking(&self) -> Result<usize> {
        let Some(replica) = &self.inner.replica else {
            return Ok(0);
        };
        let rt = tokio::runtime::Handle::current();
        let mut moved = 0;
        for head in rt.block_on(self.inner.store.history_heads())? {
            if replica.history.is_current(&head) {
                continue;
            }
            let repo = if head.repository == WHOLE {
                self.inner.repo.clone()
            } else if let Some(site) = head.repository.strip_prefix(SITE_PREFIX) {
                self.inner.sites.repo(site)?
            } else {
                continue;
            };
            if replica.history.sync(&head.repository, &repo, &head)? {
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// Seeds the shared history with every repository of this replica it lacks: the
    /// whole desired state and the sites' repositories that existed before the replicas
    /// shared one history.
    fn seed_blocking(&self) -> Result<()> {
        let Some(replica) = &self.inner.replica else {
            return Ok(());
        };
        let rt = tokio::runtime::Handle::current();
        let shared: std::collections::BTreeSet<String> = rt
            .block_on(self.inner.store.history_heads())?
            .into_iter()
            .map(|h| h.repository)
            .collect();
        let mut local = vec![(WHOLE.to_owned(), self.inner.repo.clone())];
        for site in self.inner.sites.existing()? {
            local.push((
                format!("{SITE_PREFIX}{site}"),
                self.inner.sites.repo(&site)?,
            ));
        }
        for (name, repo) in local {
            if shared.contains(&name) {
                continue;
            }
            if let Some(head) = repo.head()? {
                replica.history.seed(&name, &repo, &head)?;
            }
        }
        Ok(())
    }

    /// Records in the store how far the shared desired state reflects the audit trail,
    /// where a new writer goes on from.
    async fn record_cursor(&self) -> Result<()> {
        let Some(replica) = &self.inner.replica else {
            return Ok(());
        };
        let cursor = self.cursor();
        if cursor > replica.recorded.load(Ordering::SeqCst) {
            self.inner.store.advance_delivered_cursor(cursor).await?;
            replica.recorded.fetch_max(cursor, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Housekeeping of this replica's own copies, in the whole desired state and every
    /// site's repository: what quick folds and recent commits left is folded again with
    /// deltas, beside commits (see `verbund_git::Folding`); then `git gc --auto` under
    /// the job, so it never meets a commit or a catch-up. The shared history is
    /// untouched: packing is local.
    pub async fn maintain(&self) -> Result<()> {
        self.compact_grown(1, Folding::Deltified).await?;
        let _job = self.inner.job.lock().await;
        let _compaction = self.inner.compaction.lock().await;
        let this = self.clone();
        blocking(move || {
            this.inner.repo.maintain()?;
            for site in this.inner.sites.existing()? {
                this.inner.sites.repo(&site)?.maintain()?;
            }
            Ok(())
        })
        .await
    }
}
