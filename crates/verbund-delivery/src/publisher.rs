//! The publisher keeps the desired-state repository in line with the store: it follows
//! the audit trail as its event log and commits each batch of booking changes, attributed
//! to the actor with the audit events as trailers, and it can reconcile (or verify) the
//! whole repository against a render of the entire store.
//!
//! # Why the audit trail is the event log
//!
//! Every change of a booking is an audit event, stored in the same transaction as the
//! change. Following the trail from a cursor therefore sees every acknowledged change
//! exactly once, whichever process or request made it, and a wake-up that is lost (or a
//! process killed between a booking and its commit) costs only latency: on start the
//! publisher reconciles everything and then follows the trail from its head.
//!
//! # Incremental delivery
//!
//! A changed booking rewrites its own folder, the folders of the bookings it depends on
//! (their network policies admit it) and of the bookings that depend on it (they reach
//! it), and its site's entry files and shards, whose lists of folders are read from the
//! repository itself. Nothing else is rendered, so one change costs the same whatever
//! the size of the fleet. A booking that leaves the delivered states (retained, deleted)
//! loses its folder. A changed site is rendered whole.
//!
//! # Lifecycle
//!
//! Once a commit holds a `placed` booking's folder, the booking moves on to
//! `provisioning`: from then on the site's engine is applying it.
//!
//! # Blocking work
//!
//! Repository work blocks (it hashes, compresses and runs `git`), so every job runs on a
//! blocking thread and reaches the async store through the runtime handle. One job runs
//! at a time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use verbund_domain::audit::{AuditEvent, Change as AuditChange};
use verbund_domain::booking::{Booking, BookingState};
use verbund_domain::directory::{Environment, Site, SiteSpec};
use verbund_domain::page::PageRequest;
use verbund_git::{
    folder_oid, Author, CommitId, DesiredStateRepo, Difference, Folding, PushOptions,
};
use verbund_placement::Bookings;
use verbund_render::{
    booking_folder, listed_namespaces, names::namespace_name, site_files, site_folder, RenderInput,
    RenderOptions, RenderedFile,
};
use verbund_store::{SiteFilter, Store};

use crate::records::Records;
use crate::sites::SiteRepos;
use replicas::Replica;

mod replicas;
use crate::{delivered, render_loaded, render_site_with, DeliveryError, Result};

/// The actor of the publisher's own audit events and lifecycle moves.
pub const ACTOR: &str = "system/delivery";

/// Audit events read per pass.
const EVENTS_PER_PASS: u32 = 2000;

/// How often the publisher looks at the audit trail without being woken.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// The folder holding every site.
const SITES: &str = "sites";

/// What a push remote names a site's repository by.
const SITE_PLACEHOLDER: &str = "{site}";

/// How the publisher delivers.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// The renderer's settings (repository URL and branch the sites follow, …).
    pub render: RenderOptions,
    /// A Git remote of the operator's (GitLab, Forgejo, a bare repository) every commit is
    /// pushed to. With `{site}` in it, each site's own repository is pushed to the URL
    /// with the site's name put in (one remote repository per site, so a site's
    /// credentials there reach only its own tenants); without, the whole desired state.
    pub remote: Option<String>,
    /// How hard one push tries before it is left to the next commit or retry.
    pub push: PushOptions,
    /// Where each site's own repository lives (`<dir>/<site>.git`); by default the
    /// folder `sites` beside the whole desired state.
    pub sites_dir: Option<std::path::PathBuf>,
    /// Share one history with other replicas through the store (PostgreSQL): only the
    /// replica holding the store's writer lock delivers, commits and pushes, and every
    /// replica's repositories follow the shared history (see `history`).
    pub shared_history: bool,
    /// This replica's name, recorded with each commit of the shared history it writes.
    pub replica: String,
}

impl PublisherOptions {
    pub fn new(render: RenderOptions) -> Self {
        PublisherOptions {
            render,
            remote: None,
            push: PushOptions::default(),
            sites_dir: None,
            shared_history: false,
            replica: format!("pid-{}", std::process::id()),
        }
    }
}

/// What a reconciliation changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// The commit, if anything differed.
    pub commit: Option<CommitId>,
    /// The folders (`sites/<site>/<environment>`, or a removed `sites/<site>`) rewritten.
    pub folders: Vec<String>,
    /// Bookings whose folders were rendered.
    pub bookings: usize,
    /// Folders that could not be rendered (they keep their last committed state), with
    /// the reason.
    pub failures: Vec<(String, String)>,
    /// Bookings the renderer refused (each keeps its last delivered folder).
    pub refused: Vec<RefusedBooking>,
    /// Sites whose own repository differed from their folder of the whole desired state
    /// (a commit behind verbund's back) and was brought back in line with it.
    pub sites: Vec<String>,
    /// Time spent reading the store.
    pub load: Duration,
    /// Time spent rendering (and hashing) on every core, overlapping with `write`.
    pub render: Duration,
    /// Time spent comparing with HEAD, writing objects and committing.
    pub write: Duration,
}

/// The outcome of the last push, for health and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushStatus {
    /// The commit last pushed successfully.
    pub pushed: Option<String>,
    /// Why the last push failed, if it did.
    pub error: Option<String>,
}

/// More packs than this in one repository and the publisher folds them after its
/// commits (`DesiredStateRepo::compact_over`, [`Folding::Quick`]), in the background:
/// the next change does not wait for it. Housekeeping folds them again with deltas
/// ([`Folding::Deltified`]). Git's own threshold for `gc --auto` is 50.
pub const PACKS_BEFORE_COMPACTION: usize = 32;

/// Keeps the desired-state repository in line with the store. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    bookings: Bookings,
    repo: DesiredStateRepo,
    options: PublisherOptions,
    /// The last audit event delivered.
    cursor: AtomicI64,
    /// One job at a time.
    job: tokio::sync::Mutex<()>,
    /// One compaction at a time, beside the jobs (see [`Publisher::compact_grown`]).
    compaction: Arc<tokio::sync::Mutex<()>>,
    wake: Notify,
    push_wake: Notify,
    push_status: Mutex<PushStatus>,
    commits: AtomicI64,
    /// Per site folder: the digest of the inputs of its last render, and the tree it
    /// rendered to (see `Records::fingerprint`).
    memo: Mutex<HashMap<String, Remembered>>,
    /// Per site folder: the tree of its shards last written, and the namespaces they
    /// list (see `Publisher::listed_at_head`).
    listed: Mutex<ListedMemo>,
    /// Each site's own repository.
    sites: SiteRepos,
    /// With a shared history: whether this replica writes, and the history itself.
    replica: Option<Replica>,
}

/// The digest of a folder's render inputs and the tree they rendered to.
type Remembered = ([u8; 20], Option<verbund_git::Oid>);

/// Per site folder: the tree of its shards and the namespaces they list.
type ListedMemo = HashMap<String, (verbund_git::Oid, BTreeSet<String>)>;

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("repository", &self.inner.repo.path())
            .field("cursor", &self.inner.cursor.load(Ordering::Relaxed))
            .finish()
    }
}

impl Publisher {
    /// Opens (or creates) the repository at `path`. Blocks briefly (runs `git`).
    pub fn open(store: Store, path: &Path, options: PublisherOptions) -> Result<Self> {
        let repo = DesiredStateRepo::open_or_init(path)?;
        let sites_dir = options.sites_dir.clone().unwrap_or_else(|| {
            path.parent()
                .unwrap_or_else(|| Path::new("."))
                .join("sites")
        });
        let replica = options
            .shared_history
            .then(|| Replica::new(store.clone(), options.replica.clone()));
        let sites = SiteRepos::new(sites_dir).sharing(replica.as_ref().map(Replica::history));
        Ok(Publisher {
            inner: Arc::new(Inner {
                bookings: Bookings::new(store.clone()),
                store,
                repo,
                options,
                cursor: AtomicI64::new(0),
                job: tokio::sync::Mutex::new(()),
                compaction: Arc::new(tokio::sync::Mutex::new(())),
                wake: Notify::new(),
                push_wake: Notify::new(),
                push_status: Mutex::new(PushStatus::default()),
                commits: AtomicI64::new(0),
                memo: Mutex::new(HashMap::new()),
                listed: Mutex::new(HashMap::new()),
                sites,
                replica,
            }),
        })
    }

    pub fn repo(&self) -> &DesiredStateRepo {
        &self.inner.repo
    }

    pub fn options(&self) -> &PublisherOptions {
        &self.inner.options
    }

    /// Each site's own repository (see [`SiteRepos`]).
    pub fn sites(&self) -> &SiteRepos {
        &self.inner.sites
    }

    /// Commits made by this publisher since it was opened.
    pub fn commits(&self) -> i64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// The last audit event delivered.
    pub fn cursor(&self) -> i64 {
        self.inner.cursor.load(Ordering::Relaxed)
    }

    pub fn push_status(&self) -> PushStatus {
        self.inner
            .push_status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Asks the running publisher to look at the audit trail now.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Brings the repository in line with the whole store and follows the audit trail
    /// from its current head: what a starting control plane does before serving. With a
    /// shared history, the replica first catches up with it and only then, if it becomes
    /// the writer, reconciles (see `replicas`).
    pub async fn start(&self) -> Result<Reconciled> {
        if self.inner.replica.is_some() {
            return self.start_replica().await;
        }
        let head = self.inner.store.audit_head().await?;
        let reconciled = self.reconcile(ACTOR, "start").await?;
        self.inner.cursor.fetch_max(head, Ordering::SeqCst);
        Ok(reconciled)
    }

    /// Runs the publisher until the process ends: delivers what the audit trail shows
    /// whenever woken (or every few seconds), and pushes every new commit.
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        if self.inner.options.remote.is_some() {
            let pusher = self.clone();
            tokio::spawn(async move { pusher.push_loop().await });
        }
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.pass().await {
                    tracing::error!(error = %e, "delivering the desired state failed");
                }
                tokio::select! {
                    _ = this.inner.wake.notified() => {}
                    _ = tokio::time::sleep(this.poll_every()) => {}
                }
            }
        })
    }

    async fn push_loop(&self) {
        let Some(remote) = self.inner.options.remote.clone() else {
            return;
        };
        // Per site (with `{site}` in the remote): the commit last pushed, so that a
        // commit touching one site pushes one repository.
        let mut pushed_sites: HashMap<String, String> = HashMap::new();
        // The first push happens at once: the remote may be behind a HEAD made earlier.
        let mut first = true;
        let mut retry = false;
        loop {
            if first {
                first = false;
            } else if retry {
                tokio::select! {
                    _ = self.inner.push_wake.notified() => {}
                    _ = tokio::time::sleep(self.inner.options.push.max_backoff) => {}
                }
            } else {
                self.inner.push_wake.notified().await;
            }
            // Only the writer pushes: it is at the head of the shared history, so each
            // push is a fast-forward of the last, whichever replica made that one.
            if !self.is_writer() {
                retry = false;
                continue;
            }
            let this = self.clone();
            let target = remote.clone();
            let already = std::mem::take(&mut pushed_sites);
            let result = tokio::task::spawn_blocking(move || {
                let mut pushed = already;
                let outcome = this.push_once(&target, &mut pushed);
                (outcome, pushed)
            })
            .await;
            let mut status = match self.inner.push_status.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            match result {
                Ok((Ok(head), pushed)) => {
                    pushed_sites = pushed;
                    status.pushed = head.map(|h| h.0);
                    status.error = None;
                    retry = false;
                }
                Ok((Err(e), pushed)) => {
                    pushed_sites = pushed;
                    tracing::warn!(error = %e, remote = %remote, "pushing the desired state failed; will retry");
                    status.error = Some(e.to_string());
                    retry = true;
                }
                Err(e) => {
                    status.error = Some(e.to_string());
                    retry = true;
                }
            }
        }
    }

    /// One push to `target`: the whole desired state, or with `{site}` in it each site's
    /// repository. The head of the whole state it pushed.
    fn push_once(
        &self,
        target: &str,
        pushed: &mut HashMap<String, String>,
    ) -> Result<Option<CommitId>> {
        let head = self.inner.repo.head()?;
        if target.contains(SITE_PLACEHOLDER) {
            self.push_sites(target, pushed)?;
        } else {
            self.inner.repo.push_with(
                target,
                &self.inner.options.render.branch,
                &self.inner.options.push,
            )?;
        }
        Ok(head)
    }

    /// Pushes each site's repository whose head moved since `pushed` to `template` with
    /// `{site}` replaced by its name; `pushed` keeps what went through, also on failure.
    fn push_sites(&self, template: &str, pushed: &mut HashMap<String, String>) -> Result<()> {
        let mut first_error = None;
        for site in self.inner.sites.existing()? {
            let repo = self.inner.sites.repo(&site)?;
            let Some(head) = repo.head()? else {
                continue;
            };
            if pushed.get(&site) == Some(&head.0) {
                continue;
            }
            let url = template.replace(SITE_PLACEHOLDER, &site);
            match repo.push_with(
                &url,
                &self.inner.options.render.branch,
                &self.inner.options.push,
            ) {
                Ok(()) => {
                    pushed.insert(site, head.0);
                }
                Err(e) => {
                    // The other sites are pushed all the same: one site's remote does
                    // not hold up another's.
                    first_error.get_or_insert_with(|| {
                        DeliveryError::Inconsistent(format!("site `{site}`: {e}"))
                    });
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn committed(&self, commit: &Option<CommitId>) {
        if commit.is_some() {
            self.inner.commits.fetch_add(1, Ordering::Relaxed);
            self.inner.push_wake.notify_one();
        }
    }

    /// Renders the whole store and commits whatever differs from HEAD as one commit
    /// attributed to `actor`, recorded as a `desired_state.reconcile` audit event whose
    /// sequence number the commit names. Placed bookings move on to provisioning.
    pub async fn reconcile(&self, actor: &str, reason: &str) -> Result<Reconciled> {
        let _job = self.inner.job.lock().await;
        let this = self.clone();
        let actor = actor.to_owned();
        let reason = reason.to_owned();
        let reconciled = blocking(move || this.reconcile_blocking(&actor, &reason)).await?;
        self.committed(&reconciled.commit);
        Ok(reconciled)
    }

    fn reconcile_blocking(&self, actor: &str, reason: &str) -> Result<Reconciled> {
        let rt = Handle::current();
        let store = &self.inner.store;
        let repo = &self.inner.repo;
        let sites = rt.block_on(all_sites(store))?;
        let mut change = repo.change()?;
        let mut folders = Vec::new();
        let mut placed = Vec::new();
        let mut refused = Vec::new();
        let mut rendered = Vec::new();
        let mut written = Duration::ZERO;
        let fleet = self.render_fleet(&sites, true, |site| {
            // A tenancy is delivered with its instance's folder, or not at all.
            let not_refused = |b: &&Booking| {
                !site
                    .refused
                    .iter()
                    .any(|r| r.booking == b.id || b.instance.as_deref() == Some(&r.booking))
            };
            placed.extend(
                site.bookings
                    .iter()
                    .filter(|b| b.state == BookingState::Placed)
                    .filter(not_refused)
                    .map(|b| b.id.clone()),
            );
            if !site.unchanged {
                rendered.extend(
                    site.bookings
                        .iter()
                        .filter(not_refused)
                        .map(|b| b.id.clone()),
                );
            }
            refused.extend(site.refused.iter().cloned());
            let t = Instant::now();
            if !site.unchanged && site.oid != repo.tree_oid_at(&site.folder)? {
                change.put_folder(&site.folder, site.files)?;
                folders.push(site.folder);
            }
            written += t.elapsed();
            Ok(())
        })?;
        let known: BTreeSet<&str> = sites.iter().map(|s| s.spec.name.as_str()).collect();
        for name in change.list(SITES)? {
            if !known.contains(name.as_str()) {
                let folder = format!("{SITES}/{name}");
                change.put_folder(&folder, Vec::new())?;
                folders.push(folder);
            }
        }
        let t = Instant::now();
        // Sites whose own repository left the whole state's folder behind verbund's back:
        // following it again is a repair, recorded like one. (A repository that does not
        // exist yet is created, not repaired.)
        let existing = self.inner.sites.existing()?;
        let mut drifted = Vec::new();
        for site in &existing {
            if !self.inner.sites.verify(site, repo)?.is_empty() {
                tracing::warn!(%site, "the site's own repository differs from its folder of the desired state; it is brought back in line");
                drifted.push(site.clone());
            }
        }
        let mut followed: BTreeSet<String> = sites.iter().map(|s| s.spec.name.clone()).collect();
        followed.extend(existing);
        let event = if folders.is_empty() && drifted.is_empty() {
            None
        } else {
            let mut after = serde_json::Map::new();
            after.insert("reason".into(), json!(reason));
            after.insert("folders".into(), json!(folders));
            if !drifted.is_empty() {
                after.insert("sites".into(), json!(drifted));
            }
            Some(rt.block_on(store.record_event(
                AuditChange {
                    actor: actor.to_owned(),
                    action: "desired_state.reconcile".into(),
                    object: format!("desired-state/{}", self.inner.options.render.branch),
                    before: None,
                    after: Some(serde_json::Value::Object(after)),
                },
                chrono::Utc::now(),
            ))?)
        };
        let commit = match &event {
            Some(event) if !folders.is_empty() => {
                let message = format!(
                    "Reconcile the desired state with the store ({reason})\n\n{}",
                    summary(&folders)
                );
                self.commit_whole(change, &author(actor), &message, &[event.seq], None)?
            }
            _ => None,
        };
        // Every site's own repository follows (on the first start this creates them
        // from an existing whole-state repository); a repaired one names the event.
        let message = format!("Follow the desired state ({reason})");
        for site in &followed {
            let events = match &event {
                Some(event) if drifted.contains(site) => vec![event.seq],
                _ => Vec::new(),
            };
            self.inner
                .sites
                .follow(site, repo, &author(actor), &message, &events)?;
        }
        written += t.elapsed();
        // Whether committed now or already at HEAD (a crash between a commit and this
        // step), these placed bookings' folders are delivered.
        if !placed.is_empty() {
            rt.block_on(
                self.inner
                    .bookings
                    .mark_delivered(ACTOR, &placed, chrono::Utc::now()),
            )
            .map_err(|e| DeliveryError::Job(e.to_string()))?;
        }
        for (folder, error) in &fleet.failures {
            tracing::error!(%folder, %error, "this folder cannot be rendered; it keeps its last committed state");
        }
        refused.sort();
        self.record_deliverability(&refused, &rendered)?;
        tracing::info!(
            reason,
            bookings = fleet.bookings,
            folders = folders.len(),
            load_ms = fleet.load.as_millis() as u64,
            render_ms = fleet.render.as_millis() as u64,
            write_ms = written.as_millis() as u64,
            commit = commit.as_ref().map(|c| c.0.as_str()).unwrap_or("none"),
            "desired state reconciled"
        );
        Ok(Reconciled {
            commit,
            folders,
            bookings: fleet.bookings,
            failures: fleet.failures,
            refused,
            sites: drifted,
            load: fleet.load,
            render: fleet.render,
            write: written,
        })
    }

    /// Renders every site's environments, on every core, and hands each folder to
    /// `sink` (on the calling thread, in no particular order) with the object name its
    /// tree will have. A folder the renderer refuses is reported in the result instead.
    fn render_fleet(
        &self,
        sites: &[Site],
        memoised: bool,
        mut sink: impl FnMut(RenderedSite) -> Result<()>,
    ) -> Result<Fleet> {
        let rt = Handle::current();
        let store = &self.inner.store;
        let t = Instant::now();
        // Every site environment's bookings, read concurrently (the pool bounds it).
        let mut reads = Vec::new();
        for site in sites {
            for environment in [Environment::Test, Environment::Prod] {
                let read = site.spec.environments.contains(&environment).then(|| {
                    let store = store.clone();
                    let name = site.spec.name.clone();
                    rt.spawn(async move { delivered(&store, &name, environment).await })
                });
                reads.push((&site.spec, environment, read));
            }
        }
        let mut jobs = Vec::with_capacity(reads.len());
        for (spec, environment, read) in reads {
            let bookings = match read {
                Some(handle) => Some(
                    rt.block_on(handle)
                        .map_err(|e| DeliveryError::Job(e.to_string()))??,
                ),
                None => None,
            };
            jobs.push((spec, environment, bookings));
        }
        let mut records = Records::default();
        for (spec, _, bookings) in &jobs {
            if let Some(bookings) = bookings {
                rt.block_on(records.load(store, bookings))?;
                rt.block_on(records.seal(store, spec, bookings))?;
            }
        }
        let load = t.elapsed();
        let t = Instant::now();
        let bookings = jobs.iter().map(|j| j.2.as_ref().map_or(0, Vec::len)).sum();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut failures = Vec::new();
        let records = &records;
        let jobs = &jobs;
        std::thread::scope(|scope| -> Result<()> {
            // A small queue: at most a few rendered sites wait in memory at a time.
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<RenderedSite>>(workers);
            for _ in 0..workers {
                let tx = tx.clone();
                let next = &next;
                scope.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((spec, environment, bookings)) = jobs.get(i) else {
                        break;
                    };
                    let folder = site_folder(&spec.name, *environment);
                    let site = self.render_job(
                        records,
                        spec,
                        *environment,
                        bookings.as_deref(),
                        &folder,
                        memoised,
                    );
                    let site = site.map_err(|e| (folder, e));
                    let sent = match site {
                        Ok(site) => tx.send(Ok(site)),
                        Err((folder, e)) => tx.send(Err(DeliveryError::Folder {
                            folder,
                            message: e.to_string(),
                        })),
                    };
                    if sent.is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            for site in rx {
                match site {
                    Ok(site) => sink(site)?,
                    Err(DeliveryError::Folder { folder, message }) => {
                        failures.push((folder, message));
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })?;
        failures.sort();
        Ok(Fleet {
            bookings,
            failures,
            load,
            render: t.elapsed(),
        })
    }

    /// The folders of `ids` in one site's `environment`, rendered from
    /// `on_site` (the site's bookings they link to or are linked from), and the site's
    /// entry points. The site's `kustomization.yaml` keeps HEAD's list of folders with
    /// the gone ones taken out and the rendered ones in: never a folder that merely sits
    /// in the repository (one committed behind verbund's back stays inert until a
    /// reconciliation removes it).
    fn site_update(
        &self,
        records: &Records,
        spec: &SiteSpec,
        environment: Environment,
        ids: &BTreeSet<String>,
        on_site: Vec<Booking>,
    ) -> Result<SiteUpdate> {
        let options = &self.inner.options.render;
        let folder = site_folder(&spec.name, environment);
        let (delivered, gone): (Vec<Booking>, Vec<Booking>) =
            on_site.into_iter().partition(|b| b.state.is_delivered());
        let by_id: HashMap<&str, &Booking> = delivered.iter().map(|b| (b.id.as_str(), b)).collect();
        let selected: BTreeSet<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| by_id.contains_key(id))
            .collect();
        let input = RenderInput {
            site: spec,
            environment,
            bookings: records.placed(&delivered, &by_id)?,
        };
        let mut namespaces = self.listed_at_head(&folder)?;
        let mut update = SiteUpdate::default();
        let (folders, refused) =
            verbund_render::render_folders_sealed(&input, options, &selected, &records.sealed)?;
        // A refused booking's folder stays as HEAD has it (and so does its listing).
        update.refused = refused
            .into_iter()
            .map(|r| RefusedBooking {
                folder: folder.clone(),
                booking: r.booking,
                reason: r.error.to_string(),
            })
            .collect();
        let is_placed = |id: &str| {
            by_id
                .get(id)
                .is_some_and(|b| b.state == BookingState::Placed)
        };
        for f in folders {
            update.rendered.push(f.booking.clone());
            // A shared instance's folder delivers its tenant list too.
            for id in std::iter::once(&f.booking).chain(&f.tenancies) {
                if is_placed(id) {
                    update.placed.push(id.clone());
                }
            }
            namespaces.insert(f.namespace);
            update.folders.push((f.folder, f.files));
        }
        // A tenancy has no folder: its instance's tenant list no longer names it.
        for b in gone
            .iter()
            .filter(|b| ids.contains(&b.id) && b.instance.is_none())
        {
            let organisation = records.organisation(b)?;
            let namespace = namespace_name(&b.offering, &organisation.name, &b.id);
            update
                .folders
                .push((booking_folder(&folder, &namespace), Vec::new()));
            namespaces.remove(&namespace);
        }
        let (shards, entry): (Vec<RenderedFile>, Vec<RenderedFile>) = site_files(
            spec,
            environment,
            namespaces.iter().map(String::as_str),
            options,
        )?
        .into_iter()
        .partition(|f| f.path.starts_with(&format!("{folder}/shards/")));
        update.entry = ENTRY_FILES
            .iter()
            .map(|name| {
                let path = format!("{folder}/{name}");
                let content = entry
                    .iter()
                    .find(|f| f.path == path)
                    .map(|f| f.content.clone());
                (path, content)
            })
            .collect();
        let shards_folder = format!("{folder}/shards");
        if let Ok(tree) = folder_oid(&shards_folder, &shards) {
            self.remember_listed(&folder, tree, namespaces);
        }
        update.shards = (shards_folder, shards);
        Ok(update)
    }

    /// The namespaces of the bookings HEAD's shards of a site environment `folder` list.
    fn listed_at_head(&self, folder: &str) -> Result<BTreeSet<String>> {
        let repo = &self.inner.repo;
        let shards = format!("{folder}/shards");
        let Some(tree) = repo.tree_oid_at(&shards)? else {
            return Ok(BTreeSet::new());
        };
        // The shards a change wrote are what the next change of the folder starts from:
        // known by their tree's name, they are not read back and parsed again.
        if let Some((known, listed)) = self.lock_listed().get(folder) {
            if *known == tree {
                return Ok(listed.clone());
            }
        }
        let mut out = BTreeSet::new();
        for shard in repo.change()?.list(&shards)? {
            let path = format!("{shards}/{shard}/kustomization.yaml");
            if let Some(text) = repo.file_at_head(&path)? {
                out.extend(listed_namespaces(&String::from_utf8_lossy(&text)));
            }
        }
        self.remember_listed(folder, tree, out.clone());
        Ok(out)
    }

    /// Remembers that the shards tree `tree` of `folder` lists `namespaces`.
    fn remember_listed(&self, folder: &str, tree: verbund_git::Oid, namespaces: BTreeSet<String>) {
        self.lock_listed()
            .insert(folder.to_owned(), (tree, namespaces));
    }

    /// The listing memo; one that a panicking holder left is still right, as each entry
    /// is keyed by the name of the tree it describes.
    fn lock_listed(&self) -> std::sync::MutexGuard<'_, ListedMemo> {
        self.inner
            .listed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Renders one site environment's folder, unless `memoised` and its inputs are
    /// those of the last render whose tree HEAD holds (then only its tree is known).
    fn render_job(
        &self,
        records: &Records,
        spec: &SiteSpec,
        environment: Environment,
        bookings: Option<&[Booking]>,
        folder: &str,
        memoised: bool,
    ) -> Result<RenderedSite> {
        let options = &self.inner.options.render;
        let Some(bookings) = bookings else {
            return Ok(RenderedSite {
                folder: folder.to_owned(),
                files: Vec::new(),
                oid: None,
                bookings: Vec::new(),
                unchanged: false,
                refused: Vec::new(),
            });
        };
        let fingerprint = records.fingerprint(spec, environment, bookings, options)?;
        let remembered = self
            .inner
            .memo
            .lock()
            .ok()
            .and_then(|m| m.get(folder).copied());
        if let Some((known, oid)) = remembered.filter(|_| memoised) {
            if known == fingerprint && oid == self.inner.repo.tree_oid_at(folder)? {
                return Ok(RenderedSite {
                    folder: folder.to_owned(),
                    files: Vec::new(),
                    oid,
                    bookings: bookings.to_vec(),
                    unchanged: true,
                    refused: Vec::new(),
                });
            }
        }
        let rendered = render_loaded(records, spec, environment, bookings, options)?;
        let (files, refused) = self.with_refused_kept(spec, environment, folder, rendered)?;
        let oid = if files.is_empty() {
            None
        } else {
            Some(folder_oid(folder, &files)?)
        };
        if let Ok(mut memo) = self.inner.memo.lock() {
            memo.insert(folder.to_owned(), (fingerprint, oid));
        }
        Ok(RenderedSite {
            folder: folder.to_owned(),
            files,
            oid,
            bookings: bookings.to_vec(),
            unchanged: false,
            refused,
        })
    }

    /// A render's files, with the last delivered folder of each refused booking kept (and
    /// listed in its shard) where HEAD has one: a booking the renderer refuses keeps what
    /// its site already runs, and its site keeps everything else. Also the refusals.
    fn with_refused_kept(
        &self,
        spec: &SiteSpec,
        environment: Environment,
        folder: &str,
        rendered: verbund_render::Rendered,
    ) -> Result<(Vec<RenderedFile>, Vec<RefusedBooking>)> {
        let refused: Vec<RefusedBooking> = rendered
            .refused
            .iter()
            .map(|r| RefusedBooking {
                folder: folder.to_owned(),
                booking: r.booking.clone(),
                reason: r.error.to_string(),
            })
            .collect();
        let mut kept = Vec::new();
        let mut kept_namespaces = Vec::new();
        for r in &rendered.refused {
            let Some(namespace) = &r.namespace else {
                continue;
            };
            let files = self
                .inner
                .repo
                .files_under(&booking_folder(folder, namespace))?;
            if !files.is_empty() {
                kept.extend(files);
                kept_namespaces.push(namespace.clone());
            }
        }
        if kept_namespaces.is_empty() {
            return Ok((rendered.files, refused));
        }
        let bookings = format!("{folder}/bookings/");
        let mut namespaces: BTreeSet<String> = rendered
            .files
            .iter()
            .filter_map(|f| f.path.strip_prefix(&bookings)?.split('/').next())
            .map(str::to_owned)
            .collect();
        namespaces.extend(kept_namespaces);
        let mut files: Vec<RenderedFile> = rendered
            .files
            .into_iter()
            .filter(|f| f.path.starts_with(&bookings))
            .collect();
        files.extend(kept);
        files.extend(site_files(
            spec,
            environment,
            namespaces.iter().map(String::as_str),
            &self.inner.options.render,
        )?);
        files.sort();
        Ok((files, refused))
    }

    /// Records which bookings the renderer refused and which it rendered again.
    fn record_deliverability(&self, refused: &[RefusedBooking], rendered: &[String]) -> Result<()> {
        let refused: BTreeMap<String, String> = refused
            .iter()
            .map(|r| (r.booking.clone(), r.reason.clone()))
            .collect();
        for (booking, reason) in &refused {
            tracing::warn!(%booking, %reason, "this booking cannot be delivered; its site keeps what it had");
        }
        Handle::current()
            .block_on(self.inner.store.record_deliverability(
                ACTOR,
                &refused,
                rendered,
                chrono::Utc::now(),
            ))
            .map_err(DeliveryError::from)?;
        Ok(())
    }

    /// Renders the whole store and compares it with HEAD, changing nothing: every site
    /// and environment, every difference, every refused booking, and every folder that
    /// cannot be rendered at all.
    pub async fn verify(&self) -> Result<Verification> {
        let this = self.clone();
        blocking(move || {
            let rt = Handle::current();
            let repo = &this.inner.repo;
            let sites = rt.block_on(all_sites(&this.inner.store))?;
            let mut found = Verification::default();
            let fleet = this.render_fleet(&sites, false, |site| {
                if site.oid != repo.tree_oid_at(&site.folder)? {
                    found
                        .differences
                        .extend(repo.verify(&site.files, std::slice::from_ref(&site.folder))?);
                }
                found.refused.extend(site.refused);
                Ok(())
            })?;
            found.failures = fleet.failures;
            let known: BTreeSet<&str> = sites.iter().map(|s| s.spec.name.as_str()).collect();
            if repo.tree_oid_at(SITES)?.is_some() {
                for name in repo.change()?.list(SITES)? {
                    if !known.contains(name.as_str()) {
                        found
                            .differences
                            .extend(repo.verify(&[], &[format!("{SITES}/{name}")])?);
                    }
                }
            }
            // Each site's own repository, which is what the site pulls, against its folder
            // of the whole desired state (also a repository of a site no longer stored).
            let mut names: BTreeSet<String> = known.iter().map(|s| (*s).to_owned()).collect();
            names.extend(this.inner.sites.existing()?);
            for site in names {
                found
                    .sites
                    .extend(
                        this.inner
                            .sites
                            .verify(&site, repo)?
                            .into_iter()
                            .map(|difference| SiteDifference {
                                site: site.clone(),
                                difference,
                            }),
                    );
            }
            found.differences.sort();
            found.refused.sort();
            found.sites.sort();
            Ok(found)
        })
        .await
    }

    /// Delivers every booking and site change the audit trail holds after the cursor:
    /// one commit per run of events by the same actor. Returns the commits made.
    pub async fn deliver_pending(&self) -> Result<Vec<CommitId>> {
        let _job = self.inner.job.lock().await;
        let mut commits = Vec::new();
        loop {
            let cursor = self.inner.cursor.load(Ordering::SeqCst);
            let events = self
                .inner
                .store
                .audit_after(cursor, "", EVENTS_PER_PASS)
                .await?;
            let Some(last) = events.last().map(|e| e.seq) else {
                break;
            };
            for run in runs_by_actor(events.into_iter().filter(is_relevant).collect()) {
                let this = self.clone();
                let done = run.last().map_or(cursor, |e| e.seq);
                // A site the renderer refuses is skipped inside (and logged); what fails
                // here is the store or the repository: the run is tried again on the next
                // pass, and nothing after it is delivered before it.
                if let Some(commit) = blocking(move || this.deliver_blocking(&run)).await? {
                    self.committed(&Some(commit.clone()));
                    commits.push(commit);
                }
                self.inner.cursor.fetch_max(done, Ordering::SeqCst);
            }
            self.inner.cursor.fetch_max(last, Ordering::SeqCst);
        }
        drop(_job);
        if !commits.is_empty() {
            self.compact_in_background();
        }
        Ok(commits)
    }

    /// Starts a quick fold ([`Folding::Quick`]) on its own task unless a compaction is
    /// running (the commits after it start the next). The change that triggered it, and
    /// the changes after it, do not wait: measured at the scale of Germany, a compaction
    /// in the change path made one change in 32 wait 1.2–1.6 s. Folding beside commits
    /// is safe (see `DesiredStateRepo::compact_over`): the new pack is on disk before a
    /// folded one goes, and a commit's pack that appears meanwhile is not touched.
    pub fn compact_in_background(&self) {
        let Ok(running) = self.inner.compaction.clone().try_lock_owned() else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this
                .compact_unlocked(PACKS_BEFORE_COMPACTION, Folding::Quick)
                .await
            {
                tracing::warn!(error = %e, "compacting the desired-state repositories failed");
            }
            drop(running);
        });
    }

    /// Waits until no compaction runs (one started by [`Publisher::compact_in_background`]
    /// before this call has finished).
    pub async fn compaction_finished(&self) {
        drop(self.inner.compaction.lock().await);
    }

    /// Folds the packs of the repositories (the whole desired state and each site's)
    /// that hold more than `limit`, as `folding` says. Runs beside commits and
    /// catch-ups, one compaction at a time. Returns how many repositories were
    /// compacted.
    pub async fn compact_grown(&self, limit: usize, folding: Folding) -> Result<usize> {
        let _running = self.inner.compaction.lock().await;
        self.compact_unlocked(limit, folding).await
    }

    async fn compact_unlocked(&self, limit: usize, folding: Folding) -> Result<usize> {
        let this = self.clone();
        blocking(move || {
            let mut compacted = usize::from(this.inner.repo.compact_over(limit, folding)?);
            for site in this.inner.sites.existing()? {
                let repo = this.inner.sites.repo(&site)?;
                compacted += usize::from(repo.compact_over(limit, folding)?);
            }
            Ok(compacted)
        })
        .await
    }

    /// Delivers one run of events by one actor as one commit.
    fn deliver_blocking(&self, events: &[AuditEvent]) -> Result<Option<CommitId>> {
        let rt = Handle::current();
        let store = &self.inner.store;
        let options = &self.inner.options.render;
        let mut changed_ids = BTreeSet::new();
        let mut changed_sites = BTreeSet::new();
        for e in events {
            if let Some(id) = e.object.strip_prefix("booking/") {
                changed_ids.insert(id.to_owned());
            } else if let Some(name) = e.object.strip_prefix("site/") {
                changed_sites.insert(name.to_owned());
            }
        }

        // What to rewrite, by site: the changed bookings, their dependencies and their
        // dependents.
        let changed_ids: Vec<String> = changed_ids.into_iter().collect();
        let mut touched: BTreeMap<(String, Environment), BTreeSet<String>> = BTreeMap::new();
        let mut loaded = rt.block_on(store.bookings_by_ids(&changed_ids))?;
        let dependents = rt.block_on(store.dependents_of(&changed_ids))?;
        loaded.extend(rt.block_on(store.bookings_by_ids(&dependents))?);
        for b in &loaded {
            let Some(site) = &b.site else { continue };
            if changed_sites.contains(site) {
                continue;
            }
            let ids = touched.entry((site.clone(), b.environment)).or_default();
            ids.insert(b.id.clone());
            ids.extend(b.dependencies.iter().cloned());
        }
        // What to render them with: every booking they link to, and every dependent of
        // theirs (network policies admit dependents).
        let touched_ids: Vec<String> = touched.values().flatten().cloned().collect();
        let mut context_ids: BTreeSet<String> = touched_ids.iter().cloned().collect();
        context_ids.extend(rt.block_on(store.dependents_of(&touched_ids))?);
        let first =
            rt.block_on(store.bookings_by_ids(&context_ids.iter().cloned().collect::<Vec<_>>()))?;
        for b in &first {
            context_ids.extend(b.dependencies.iter().cloned());
        }
        let context =
            rt.block_on(store.bookings_by_ids(&context_ids.into_iter().collect::<Vec<_>>()))?;

        let mut records = Records::default();
        let mut change = self.inner.repo.change()?;
        let mut placed = Vec::new();
        let mut refused = Vec::new();
        let mut rendered = Vec::new();
        for ((site, environment), ids) in &touched {
            let Some(spec) = rt.block_on(find_site(store, site))? else {
                continue;
            };
            let on_site: Vec<Booking> = context
                .iter()
                .filter(|b| {
                    b.site.as_deref() == Some(site.as_str()) && b.environment == *environment
                })
                .cloned()
                .collect();
            rt.block_on(records.load(store, &on_site))?;
            rt.block_on(records.seal(store, &spec, &on_site))?;
            // A site the renderer refuses keeps its committed state; the others go on.
            match self.site_update(&records, &spec, *environment, ids, on_site) {
                Ok(update) => {
                    placed.extend(update.placed);
                    refused.extend(update.refused);
                    rendered.extend(update.rendered);
                    for (folder, files) in update.folders {
                        change.put_folder(&folder, files)?;
                    }
                    for (path, content) in update.entry {
                        change.put_file(&path, content.as_deref())?;
                    }
                    let (shards, files) = update.shards;
                    change.put_folder(&shards, files)?;
                }
                Err(e) => {
                    tracing::error!(site = %site, error = %e, "these changes of the site cannot be delivered; it keeps its committed state");
                }
            }
        }
        for site in &changed_sites {
            let spec = rt.block_on(find_site(store, site))?;
            for environment in [Environment::Test, Environment::Prod] {
                let folder = site_folder(site, environment);
                let files: Vec<RenderedFile> = match &spec {
                    Some(spec) if spec.environments.contains(&environment) => {
                        let whole = rt
                            .block_on(render_site_with(
                                store,
                                &mut records,
                                spec,
                                environment,
                                options,
                            ))
                            .and_then(|(site_render, bookings)| {
                                let (files, site_refused) = self.with_refused_kept(
                                    spec,
                                    environment,
                                    &folder,
                                    site_render,
                                )?;
                                rendered.extend(
                                    bookings
                                        .iter()
                                        .filter(|b| !site_refused.iter().any(|r| r.booking == b.id))
                                        .map(|b| b.id.clone()),
                                );
                                refused.extend(site_refused);
                                Ok(files)
                            });
                        match whole {
                            Ok(files) => files,
                            Err(e) => {
                                tracing::error!(%folder, error = %e, "this folder cannot be rendered; it keeps its committed state");
                                continue;
                            }
                        }
                    }
                    _ => Vec::new(),
                };
                change.put_folder(&folder, files)?;
            }
        }

        let Some(actor) = events.first().map(|e| e.actor.as_str()) else {
            return Ok(None);
        };
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        let message = format!("{}\n\n{}", subject(events), event_lines(events));
        let commit = self.commit_whole(change, &author(actor), &message, &seqs, run_of(&seqs))?;
        // The sites' own repositories follow, whether committed now or already at HEAD
        // (a crash between the two): a site reads its own.
        let mut sites: BTreeSet<&str> = touched.keys().map(|(site, _)| site.as_str()).collect();
        sites.extend(changed_sites.iter().map(String::as_str));
        for site in sites {
            self.inner
                .sites
                .follow(site, &self.inner.repo, &author(actor), &message, &seqs)?;
        }
        self.record_deliverability(&refused, &rendered)?;
        // Whether committed now or already at HEAD (a crash between a commit and this
        // step), these placed bookings' folders are delivered.
        if !placed.is_empty() {
            rt.block_on(
                self.inner
                    .bookings
                    .mark_delivered(ACTOR, &placed, chrono::Utc::now()),
            )
            .map_err(|e| DeliveryError::Job(e.to_string()))?;
        }
        Ok(commit)
    }
}

/// The files a site environment's folder holds beside its shards and bookings.
const ENTRY_FILES: [&str; 3] = ["kustomization.yaml", "root.yaml", "shards.yaml"];

/// What one site's environment gets from an incremental delivery.
#[derive(Default)]
struct SiteUpdate {
    /// Booking folders and their files (none: the folder goes).
    folders: Vec<(String, Vec<RenderedFile>)>,
    /// The site's entry files ([`ENTRY_FILES`]) and their content (none: the file goes).
    entry: Vec<(String, Option<String>)>,
    /// The `shards` folder and all its files.
    shards: (String, Vec<RenderedFile>),
    /// Bookings rendered while `placed`.
    placed: Vec<String>,
    /// Bookings rendered.
    rendered: Vec<String>,
    /// Bookings the renderer refused.
    refused: Vec<RefusedBooking>,
}

/// One site environment's rendered folder.
struct RenderedSite {
    folder: String,
    files: Vec<RenderedFile>,
    /// The folder's tree, `None` when it has no files.
    oid: Option<verbund_git::Oid>,
    /// The bookings rendered into it.
    bookings: Vec<Booking>,
    /// Not rendered: its inputs are those of the tree HEAD holds.
    unchanged: bool,
    /// Bookings the renderer refused (their last delivered folder is kept in `files`).
    refused: Vec<RefusedBooking>,
}

/// A booking the renderer refused, in a site environment's folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RefusedBooking {
    /// `sites/<site>/<environment>`.
    pub folder: String,
    pub booking: String,
    pub reason: String,
}

/// What `verify` found: every difference of HEAD from a render of the store, every
/// booking the renderer refuses, every folder that cannot be rendered at all, and every
/// difference of a site's own repository from its folder at HEAD.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    pub differences: Vec<Difference>,
    pub refused: Vec<RefusedBooking>,
    /// Site environment folders that cannot be rendered, with the reason.
    pub failures: Vec<(String, String)>,
    /// How sites' own repositories differ from their folders of HEAD, by site.
    pub sites: Vec<SiteDifference>,
}

impl Verification {
    /// Whether HEAD is exactly what the store renders, with nothing refused, and every
    /// site's own repository holds exactly its folder of HEAD.
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
            && self.refused.is_empty()
            && self.failures.is_empty()
            && self.sites.is_empty()
    }
}

/// A difference of a site's own repository (what the site pulls) from its folder of the
/// whole desired state: `Missing` is in the folder but not in the site's repository,
/// `Extra` in the site's repository only.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SiteDifference {
    pub site: String,
    pub difference: Difference,
}

/// What rendering the fleet took.
struct Fleet {
    bookings: usize,
    failures: Vec<(String, String)>,
    load: Duration,
    render: Duration,
}

/// Runs `job` on a blocking thread.
async fn blocking<T, F>(job: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| DeliveryError::Job(e.to_string()))?
}

/// The site, or `None` when it no longer exists.
async fn find_site(
    store: &Store,
    name: &str,
) -> Result<Option<verbund_domain::directory::SiteSpec>> {
    match store.get_site(name).await {
        Ok(site) => Ok(Some(site.spec)),
        Err(verbund_store::StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn all_sites(store: &Store) -> Result<Vec<Site>> {
    let mut sites = Vec::new();
    let mut page = PageRequest {
        limit: Some(1000),
        after: None,
    };
    loop {
        let p = store.list_sites(&SiteFilter::default(), &page).await?;
        sites.extend(p.items);
        match p.next {
            Some(n) => page.after = Some(n),
            None => break,
        }
    }
    Ok(sites)
}

/// Events about what runs, not what should: the publisher's own move to provisioning and
/// its record of refused bookings, the lifecycle moves sites' reports cause, sites'
/// health, credentials and preflights.
const NOT_DESIRED_STATE: [&str; 10] = [
    "booking.provision",
    "booking.ready",
    "booking.degrade",
    "site.reporting",
    "site.health",
    "site.silent",
    "site.token.",
    "site.preflight",
    "booking.undeliverable",
    "booking.deliverable",
];

/// Events that change the desired state: any change of a booking or a site, except
/// those in [`NOT_DESIRED_STATE`].
fn is_relevant(e: &AuditEvent) -> bool {
    (e.object.starts_with("booking/") || e.object.starts_with("site/"))
        && !NOT_DESIRED_STATE
            .iter()
            .any(|a| e.action == *a || (a.ends_with('.') && e.action.starts_with(a)))
}

/// The audit events from the first to the last of `seqs` (in order), if there are any.
fn run_of(seqs: &[i64]) -> Option<std::ops::RangeInclusive<i64>> {
    Some(*seqs.first()?..=*seqs.last()?)
}

/// Splits events into runs of consecutive events by the same actor.
fn runs_by_actor(events: Vec<AuditEvent>) -> Vec<Vec<AuditEvent>> {
    let mut runs: Vec<Vec<AuditEvent>> = Vec::new();
    for e in events {
        match runs.last_mut() {
            Some(run) if run.first().is_some_and(|f| f.actor == e.actor) => run.push(e),
            _ => runs.push(vec![e]),
        }
    }
    runs
}

/// The commit author for an audit actor (`user/erika` → `erika <erika@users.verbund.invalid>`).
fn author(actor: &str) -> Author {
    let name = actor.strip_prefix("user/").unwrap_or(actor);
    let local: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    Author {
        name: actor.to_owned(),
        email: format!("{local}@users.verbund.invalid"),
    }
}

fn subject(events: &[AuditEvent]) -> String {
    match events {
        [one] => format!("{} {}", one.action, one.object),
        [first, ..] => format!("{} changes by {}", events.len(), first.actor),
        [] => "no changes".to_owned(),
    }
}

/// At most this many event lines in a commit message; the trailers name all of them.
const MAX_LINES: usize = 50;

fn event_lines(events: &[AuditEvent]) -> String {
    let mut lines: Vec<String> = events
        .iter()
        .take(MAX_LINES)
        .map(|e| format!("{} {} (audit event {})", e.action, e.object, e.seq))
        .collect();
    if events.len() > MAX_LINES {
        lines.push(format!("… and {} more", events.len() - MAX_LINES));
    }
    lines.join("\n")
}

fn summary(folders: &[String]) -> String {
    let mut lines: Vec<String> = folders.iter().take(MAX_LINES).cloned().collect();
    if folders.len() > MAX_LINES {
        lines.push(format!("… and {} more folders", folders.len() - MAX_LINES));
    }
    lines.join("\n")
}
