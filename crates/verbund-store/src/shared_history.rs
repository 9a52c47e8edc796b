//! The desired-state history several replicas share: each repository's commits in order,
//! each with the pack (and index) holding the objects it added, where each repository's
//! branch stands, and the last audit event the history reflects.
//!
//! Why in the store: with several replicas on one PostgreSQL database every replica keeps
//! its own bare repositories (and serves them to the sites), so they must hold one
//! history, never a fork. The writer stores each commit here, with compare-and-swap on the
//! repository's head, *before* its own branch moves; the others install what they lack
//! from here. What Git objects and packs are is `verbund-git`'s business: here they are
//! bytes and names.
//!
//! These rows are derived data: each commit names the audit events behind it in its
//! message, so appending one writes no audit event of its own (see
//! [`Store::begin_derived`]).

use std::ops::RangeInclusive;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::rollouts::Leadership;
use crate::rows::{parse_ts, stored_time, ts};
use crate::{Result, Store, StoreError};

/// The advisory lock the replica that writes the desired state holds (PostgreSQL).
const WRITER_LOCK: i64 = 7312;

/// A pack is stored in chunks of at most this many bytes.
const CHUNK_BYTES: usize = 8 << 20;

/// Commits read per [`Store::history_after`] at most.
const COMMITS_PER_READ: i64 = 256;

/// The name of the publisher's cursor row.
const CURSOR: &str = "publisher";

/// Where a repository of the shared history stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryHead {
    /// `desired-state` or `sites/<site>`.
    pub repository: String,
    /// The commit its branch names.
    pub head: String,
    /// The number of that commit in the repository's history (from 1).
    pub seq: i64,
}

/// One commit of a repository's shared history, with the pack that holds its objects.
#[derive(Clone, PartialEq, Eq)]
pub struct HistoryCommit {
    pub seq: i64,
    /// The commit the branch moved from (`None`: it was unborn).
    pub old: Option<String>,
    /// The commit the branch moved to.
    pub new: String,
    pub pack: Vec<u8>,
    pub idx: Vec<u8>,
    /// The replica that wrote it.
    pub written_by: String,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for HistoryCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryCommit")
            .field("seq", &self.seq)
            .field("old", &self.old)
            .field("new", &self.new)
            .field("pack_bytes", &self.pack.len())
            .field("written_by", &self.written_by)
            .finish_non_exhaustive()
    }
}

/// A commit to append to a repository's shared history.
#[derive(Debug, Clone)]
pub struct NewHistoryCommit<'a> {
    pub repository: &'a str,
    /// The head the history must be at (`None`: the repository has no history yet).
    pub old: Option<&'a str>,
    pub new: &'a str,
    pub pack: &'a [u8],
    pub idx: &'a [u8],
    pub written_by: &'a str,
    /// The run of audit events this commit delivers, if it delivers one: afterwards the
    /// desired state reflects every event up to its end (see [`Delivered`]).
    pub delivered: Option<RangeInclusive<i64>>,
}

/// How far the shared desired state reflects the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Every audit event up to this one is reflected.
    pub through: i64,
    /// The first event of the run the last commit delivered, while its writer may not
    /// have finished what follows the commit (the sites' repositories, the bookings'
    /// move to provisioning); `None` once it has.
    pub last_run_from: Option<i64>,
}

/// Commit rows without their packs.
struct StoredCommit {
    seq: i64,
    old: Option<String>,
    new: String,
    idx: Vec<u8>,
    pack_bytes: i64,
    written_by: String,
    created_at: DateTime<Utc>,
}

fn commit_row(r: &AnyRow) -> Result<StoredCommit> {
    Ok(StoredCommit {
        seq: r.try_get(0)?,
        old: r.try_get(1)?,
        new: r.try_get(2)?,
        idx: r.try_get(3)?,
        pack_bytes: r.try_get(4)?,
        written_by: r.try_get(5)?,
        created_at: parse_ts(&r.try_get::<String, _>(6)?)?,
    })
}

impl Store {
    /// Where every repository of the shared history stands, by name.
    pub async fn history_heads(&self) -> Result<Vec<HistoryHead>> {
        sqlx::query("SELECT repository, head, seq FROM desired_state_refs ORDER BY repository")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(HistoryHead {
                    repository: r.try_get(0)?,
                    head: r.try_get(1)?,
                    seq: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Where `repository` stands, `None` when it has no shared history yet.
    pub async fn history_head(&self, repository: &str) -> Result<Option<HistoryHead>> {
        sqlx::query("SELECT repository, head, seq FROM desired_state_refs WHERE repository = $1")
            .bind(repository)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| {
                Ok(HistoryHead {
                    repository: r.try_get(0)?,
                    head: r.try_get(1)?,
                    seq: r.try_get(2)?,
                })
            })
            .transpose()
    }

    /// The number of `commit` in `repository`'s shared history, `None` when the history
    /// never held it.
    pub async fn history_seq(&self, repository: &str, commit: &str) -> Result<Option<i64>> {
        Ok(sqlx::query(
            "SELECT MAX(seq) FROM desired_state_commits WHERE repository = $1 AND new = $2",
        )
        .bind(repository)
        .bind(commit)
        .fetch_one(&self.pool)
        .await?
        .try_get::<Option<i64>, _>(0)?)
    }

    /// The commits of `repository` after number `after`, in order, with their packs: as
    /// many as fit into `max_bytes` of pack, and at least one if there is one.
    pub async fn history_after(
        &self,
        repository: &str,
        after: i64,
        max_bytes: i64,
    ) -> Result<Vec<HistoryCommit>> {
        let rows = sqlx::query(
            "SELECT seq, old, new, idx, pack_bytes, written_by, created_at \
             FROM desired_state_commits WHERE repository = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(repository)
        .bind(after)
        .bind(COMMITS_PER_READ)
        .fetch_all(&self.pool)
        .await?;
        let mut commits = Vec::new();
        let mut bytes = 0;
        for row in &rows {
            let row = commit_row(row)?;
            if !commits.is_empty() && bytes + row.pack_bytes > max_bytes {
                break;
            }
            bytes += row.pack_bytes;
            commits.push(row);
        }
        let Some(last) = commits.last().map(|c| c.seq) else {
            return Ok(Vec::new());
        };
        let chunks = sqlx::query(
            "SELECT seq, data FROM desired_state_packs \
             WHERE repository = $1 AND seq > $2 AND seq <= $3 ORDER BY seq, chunk",
        )
        .bind(repository)
        .bind(after)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        let mut chunks = chunks.iter().peekable();
        let mut out = Vec::with_capacity(commits.len());
        for c in commits {
            let mut pack = Vec::with_capacity(usize::try_from(c.pack_bytes).unwrap_or(0));
            while let Some(chunk) = chunks.next_if(|r| r.try_get::<i64, _>(0).ok() == Some(c.seq)) {
                pack.extend_from_slice(&chunk.try_get::<Vec<u8>, _>(1)?);
            }
            if pack.len() as i64 != c.pack_bytes {
                return Err(StoreError::Corrupt(format!(
                    "the pack of commit {} of `{repository}` holds {} of {} bytes",
                    c.seq,
                    pack.len(),
                    c.pack_bytes
                )));
            }
            out.push(HistoryCommit {
                seq: c.seq,
                old: c.old,
                new: c.new,
                pack,
                idx: c.idx,
                written_by: c.written_by,
                created_at: c.created_at,
            });
        }
        Ok(out)
    }

    /// Appends a commit to its repository's shared history and moves the head to it, in
    /// one transaction, if the head is still `old` (compare-and-swap); refused with
    /// [`StoreError::Conflict`] otherwise, changing nothing. Returns the commit's number.
    pub async fn append_history(&self, c: NewHistoryCommit<'_>, now: DateTime<Utc>) -> Result<i64> {
        let now = ts(&stored_time(now));
        let mut w = self.begin_derived().await?;
        let moved = match c.old {
            Some(old) => {
                sqlx::query(
                    "UPDATE desired_state_refs SET head = $1, seq = seq + 1, updated_at = $2 \
                     WHERE repository = $3 AND head = $4 RETURNING seq",
                )
                .bind(c.new)
                .bind(&now)
                .bind(c.repository)
                .bind(old)
                .fetch_optional(&mut *w.tx)
                .await?
            }
            None => {
                sqlx::query(
                    "INSERT INTO desired_state_refs (repository, head, seq, updated_at) \
                     VALUES ($1, $2, 1, $3) ON CONFLICT (repository) DO NOTHING RETURNING seq",
                )
                .bind(c.repository)
                .bind(c.new)
                .bind(&now)
                .fetch_optional(&mut *w.tx)
                .await?
            }
        };
        let Some(seq) = moved.map(|r| r.try_get::<i64, _>(0)).transpose()? else {
            return Err(StoreError::Conflict(format!(
                "the shared history of `{}` is no longer at {}",
                c.repository,
                c.old.unwrap_or("its start")
            )));
        };
        let chunks: Vec<&[u8]> = c.pack.chunks(CHUNK_BYTES).collect();
        sqlx::query(
            "INSERT INTO desired_state_commits \
             (repository, seq, old, new, idx, pack_bytes, chunks, written_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(c.repository)
        .bind(seq)
        .bind(c.old)
        .bind(c.new)
        .bind(c.idx)
        .bind(c.pack.len() as i64)
        .bind(chunks.len() as i32)
        .bind(c.written_by)
        .bind(&now)
        .execute(&mut *w.tx)
        .await?;
        for (i, chunk) in chunks.iter().enumerate() {
            sqlx::query(
                "INSERT INTO desired_state_packs (repository, seq, chunk, data) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(c.repository)
            .bind(seq)
            .bind(i as i32)
            .bind(*chunk)
            .execute(&mut *w.tx)
            .await?;
        }
        if let Some(run) = c.delivered {
            advance_cursor(&mut w.tx, *run.end(), Some(*run.start())).await?;
        }
        w.commit().await?;
        Ok(seq)
    }

    /// How far the shared desired state reflects the audit trail, as its writers
    /// recorded it; `None` before the first record.
    pub async fn delivered_cursor(&self) -> Result<Option<Delivered>> {
        sqlx::query("SELECT delivered, run_from FROM desired_state_cursor WHERE name = $1")
            .bind(CURSOR)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| {
                Ok(Delivered {
                    through: r.try_get(0)?,
                    last_run_from: r.try_get(1)?,
                })
            })
            .transpose()
    }

    /// Records that the shared desired state reflects every audit event up to `through`
    /// and that its writer finished what follows its last commit; a lower value than the
    /// recorded one changes nothing.
    pub async fn advance_delivered_cursor(&self, through: i64) -> Result<()> {
        let mut w = self.begin_derived().await?;
        advance_cursor(&mut w.tx, through, None).await?;
        w.commit().await
    }

    /// Tries to become the replica that writes the desired state: on PostgreSQL a session
    /// advisory lock of its own (not the rollout engine's), held on a connection of its
    /// own and freed by the server when that process dies; on SQLite always.
    pub async fn try_lead_delivery(&self) -> Result<Option<Leadership>> {
        self.try_lead_with(WRITER_LOCK).await
    }
}

/// Moves the cursor forward to `through` (with the start of the run a commit delivered,
/// or `None` when everything after that commit is done, which also clears the run at the
/// same position).
async fn advance_cursor(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    through: i64,
    run_from: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO desired_state_cursor (name, delivered, run_from) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET delivered = excluded.delivered, \
         run_from = excluded.run_from \
         WHERE desired_state_cursor.delivered < excluded.delivered \
         OR (desired_state_cursor.delivered = excluded.delivered AND excluded.run_from IS NULL)",
    )
    .bind(CURSOR)
    .bind(through)
    .bind(run_from)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
