//! The engine: while this process leads, it ticks every running rollout.
//!
//! # Leadership
//!
//! On PostgreSQL several control-plane replicas share one database; exactly one of
//! them runs the engine. It holds a session advisory lock on a connection of its own
//! ([`verbund_store::Leadership`]). When that process dies, PostgreSQL ends its session
//! and frees the lock, and the next replica that asks takes over, within one
//! `standby` interval. The follower resumes from the store, where every tick's result
//! is committed, so the takeover neither repeats nor skips a wave. On SQLite (one
//! process) the engine always leads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use verbund_store::Store;

/// What the engine is doing, for `/metrics` and `/readyz`.
#[derive(Debug, Default)]
pub struct EngineStatus {
    leader: AtomicBool,
    ticks: AtomicU64,
    changes: AtomicU64,
}

impl EngineStatus {
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// Ticks run (one per running rollout and interval).
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    /// Ticks that changed something.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }
}

/// The rollout engine of one control-plane process.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    every: Duration,
    standby: Duration,
    wake: Arc<Notify>,
    status: Arc<EngineStatus>,
    name: String,
    on_change: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Engine {
    /// An engine that ticks every `every` while leading and asks for leadership every
    /// `standby` while following.
    pub fn new(
        store: Store,
        clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
        every: Duration,
        standby: Duration,
        name: impl Into<String>,
    ) -> Engine {
        Engine {
            store,
            clock,
            every,
            standby,
            wake: Arc::new(Notify::new()),
            status: Arc::new(EngineStatus::default()),
            name: name.into(),
            on_change: None,
        }
    }

    /// Calls `f` after every tick that changed something (e.g. to wake the publisher,
    /// which delivers the bookings' new versions).
    pub fn on_change(mut self, f: impl Fn() + Send + Sync + 'static) -> Engine {
        self.on_change = Some(Arc::new(f));
        self
    }

    pub fn status(&self) -> Arc<EngineStatus> {
        self.status.clone()
    }

    /// Wakes the engine for a tick now (a rollout was started or controlled).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs forever: follow until leading, then tick until leadership is lost.
    pub async fn run(self) {
        loop {
            let leadership = match self.store.try_lead().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "rollout engine cannot ask for leadership");
                    None
                }
            };
            let Some(mut leadership) = leadership else {
                tokio::time::sleep(self.standby).await;
                continue;
            };
            self.status.leader.store(true, Ordering::Relaxed);
            tracing::info!(replica = %self.name, "this replica leads the rollout engine");
            while leadership.holds().await {
                self.tick_all().await;
                tokio::select! {
                    _ = tokio::time::sleep(self.every) => {}
                    _ = self.wake.notified() => {}
                }
            }
            self.status.leader.store(false, Ordering::Relaxed);
            tracing::warn!(replica = %self.name, "this replica lost the lead of the rollout engine");
        }
    }

    /// One tick of every running rollout. Errors are logged; the next tick tries again
    /// from the stored state.
    pub async fn tick_all(&self) {
        let ids = match self.store.running_rollouts().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "rollout engine cannot list running rollouts");
                return;
            }
        };
        for id in ids {
            let now = (self.clock)();
            self.status.ticks.fetch_add(1, Ordering::Relaxed);
            match self.store.tick_rollout(&id, now).await {
                Ok(t) if t.actions > 0 => {
                    self.status.changes.fetch_add(1, Ordering::Relaxed);
                    if let Some(f) = &self.on_change {
                        f();
                    }
                    tracing::info!(
                        rollout = %id,
                        started = t.started,
                        passed = t.passed,
                        failed = t.failed,
                        skipped = t.skipped,
                        waiting = t.waiting,
                        advanced = ?t.advanced,
                        finished = ?t.finished,
                        "rollout advanced"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(rollout = %id, error = %e, "rollout tick failed"),
            }
        }
    }
}
