//! Background maintenance: moving writes down the pipeline and keeping the tiers healthy.
//!
//! One tick, run by the maintenance thread every 200 ms, or sooner when nudged (and by
//! [`Store::maintain`] in tests, which drive the clock themselves):
//!
//! ```text
//!  0. warm GC horizon             the oldest pinned snapshot (see `archive`)
//!  1. memtable over its limits?   sync the log, freeze, ingest into warm ─► Warm watermark
//!                                 (without background threads, warm compactions run here)
//!  2. committer                   commit HIGH+ changes on its triggers    ─► Cold watermark
//!                                 (at once when a wait asks, or a CRITICAL write's
//!                                  debounce has passed)
//!  3. remote                      push every N commits or for CRITICAL    ─► Remote watermark
//!  4. archival, when due          old or excess warm entries committed to cold, then marked
//!  5. health                      probes feed the breakers; a degraded store drains its queue
//!  6. WAL                         drop files every stage has passed
//! ```
//!
//! Steps 2 and 3 run only while their breaker lets calls through, and report every failure
//! and success to it, so a dead remote trips its breaker instead of being hammered.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use strata_gitsync::Oid;
use strata_tiering::clock::Clock;
use strata_tiering::router::{Downstream, HealthReport, Stage, StageReceipt, TierId};
use strata_tiering::Lsn;
use strata_wal::Log;

use crate::error::{Error, Result};
use crate::store::{Inner, Store};

/// How long the maintenance thread sleeps between ticks when nothing nudges it.
const TICK_EVERY: Duration = Duration::from_millis(200);

/// Requests from the write path and from waiters, picked up by the next tick.
#[derive(Debug, Default)]
struct Wants {
    /// A waiter wants the cold tier to reach this LSN.
    cold: Lsn,
    /// The newest CRITICAL write not yet pushed, and when the first of them arrived.
    critical: Option<(Lsn, u64)>,
    stop: bool,
    nudged: bool,
}

/// The Router's [`Downstream`]: records what later stages are asked for and wakes the
/// maintenance thread.
#[derive(Debug)]
pub(crate) struct Nudge {
    clock: Arc<dyn Clock>,
    wants: Mutex<Wants>,
    wake: Condvar,
}

impl Nudge {
    pub fn new(clock: Arc<dyn Clock>) -> Nudge {
        Nudge {
            clock,
            wants: Mutex::new(Wants::default()),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Wants> {
        self.wants.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_all();
    }

    /// Sleeps until nudged, stopped or `timeout`; returns false once stopped.
    fn wait(&self, timeout: Duration) -> bool {
        let mut wants = self.lock();
        if !wants.nudged && !wants.stop {
            wants = self
                .wake
                .wait_timeout(wants, timeout)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        wants.nudged = false;
        !wants.stop
    }
}

impl Downstream for Nudge {
    fn request(&self, stage: Stage, lsn: Lsn) {
        let now = self.clock.now_ms();
        let mut wants = self.lock();
        match stage {
            Stage::Cold => wants.cold = wants.cold.max(lsn),
            Stage::Remote => {
                wants.critical = Some(match wants.critical {
                    Some((pending, since)) => (pending.max(lsn), since),
                    None => (lsn, now),
                });
            }
            Stage::Memory | Stage::Wal | Stage::Warm => {}
        }
        wants.nudged = true;
        drop(wants);
        self.wake.notify_all();
    }
}

/// The maintenance thread; stopped and joined when dropped.
pub(crate) struct Worker {
    nudge: Arc<Nudge>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Worker {
    /// Starts ticking `inner` until dropped. The thread holds only a weak handle between
    /// ticks, so the store can close while it sleeps.
    pub fn start(inner: &Arc<Inner>) -> Result<Worker> {
        let nudge = Arc::clone(&inner.nudge);
        let weak: Weak<Inner> = Arc::downgrade(inner);
        let thread_nudge = Arc::clone(&nudge);
        let handle = std::thread::Builder::new()
            .name("strata-maintenance".into())
            .spawn(move || loop {
                // The first tick comes at once: whatever recovery left pending (a commit, a
                // push) starts moving without waiting for a write.
                let Some(inner) = weak.upgrade() else { break };
                inner.tick();
                drop(inner);
                if !thread_nudge.wait(TICK_EVERY) {
                    break;
                }
            })
            .map_err(|source| Error::Io {
                op: "start the maintenance thread",
                path: inner.dir.clone(),
                source,
            })?;
        Ok(Worker {
            nudge,
            handle: Mutex::new(Some(handle)),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.nudge.stop();
        let handle = self
            .handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            // A panic in the thread has already been reported by the runtime.
            let _ = handle.join();
        }
    }
}

/// What one maintenance tick did.
#[derive(Debug, Default, Clone)]
pub struct MaintenanceReport {
    /// The LSN the memtable was flushed through, if it was.
    pub flushed: Option<Lsn>,
    /// The commit made, if one was.
    pub committed: Option<String>,
    /// The remote head verified by a push, if one happened.
    pub pushed: Option<String>,
    /// The health probes run.
    pub health: HealthReport,
    /// Entries an archival pass moved from warm to cold.
    pub archived: usize,
    /// The WAL position below which files were dropped.
    pub wal_kept_from: Option<Lsn>,
    /// Failures, one line each; each was also reported to its tier's breaker.
    pub errors: Vec<String>,
}

fn line(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

impl Inner {
    pub(crate) fn lock_maintenance(&self) -> MutexGuard<'_, ()> {
        self.maintenance
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// One maintenance pass (see the module documentation).
    pub(crate) fn tick(&self) -> MaintenanceReport {
        let _one = self.lock_maintenance();
        let mut report = MaintenanceReport::default();
        if self.read_only {
            return report;
        }
        let limits = (
            self.config.memtable_flush_bytes,
            self.config.memtable_flush_items,
        );
        // Before the flush, whose ingest may start a compaction that reads the horizon.
        self.update_gc_horizon();
        let retry = !self
            .unflushed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty();
        if retry || self.hot.should_flush(limits.0, limits.1) {
            match self.flush_memtable() {
                Ok(flushed) => report.flushed = flushed,
                Err(e) => report.errors.push(line(&e)),
            }
        }
        if self.compact_in_maintenance {
            if let Err(e) = self.warm.compact() {
                report.errors.push(line(&e));
            }
        }
        let (cold_wanted, critical) = {
            let wants = self.nudge.lock();
            (wants.cold, wants.critical)
        };
        let now = self.clock.now_ms();
        let debounce = self
            .remote
            .as_ref()
            .map_or(Duration::ZERO, |_| self.critical_debounce());
        let critical_due = critical.is_some_and(|(lsn, since)| {
            lsn > self.cold_watermark()
                && now.saturating_sub(since) >= u64::try_from(debounce.as_millis()).unwrap_or(0)
        });
        let force_commit = cold_wanted > self.cold_watermark() || critical_due;
        match self.commit(force_commit) {
            Ok(commit) => report.committed = commit,
            Err(e) => report.errors.push(line(&e)),
        }
        if let (Some(remote), Some((lsn, _))) = (&self.remote, critical) {
            remote.note_critical(lsn);
        }
        match self.push(false) {
            Ok(pushed) => report.pushed = pushed.map(|oid| oid.to_string()),
            Err(e) => report.errors.push(line(&e)),
        }
        // After the push: a merge of packs can take a while, and nothing waits for it.
        self.cold.store().merge_packs();
        match self.archive_if_due(false) {
            Ok(archived) => report.archived = archived.map_or(0, |a| a.archived),
            Err(e) => report.errors.push(line(&e)),
        }
        {
            let _gate = self.write_gate();
            report.health = self.router.health_tick();
        }
        match self.truncate_wal() {
            Ok(kept) => report.wal_kept_from = kept,
            Err(e) => report.errors.push(line(&e)),
        }
        report
    }

    fn critical_debounce(&self) -> Duration {
        Duration::from_millis(self.config.critical_debounce_ms)
    }

    /// Everything below this LSN that the cold tier needs is committed.
    pub(crate) fn cold_watermark(&self) -> Lsn {
        self.committer.needs_log_from().saturating_sub(1)
    }

    /// Freezes the memtable, syncs the log and writes it to warm, after any memtable an
    /// earlier flush froze but failed to write; returns the LSN flushed through, or `None`
    /// if there was nothing to flush. The caller holds the maintenance lock.
    pub(crate) fn flush_memtable(&self) -> Result<Option<Lsn>> {
        let log_error = |source| {
            let error = strata_tiering::Error::Log {
                op: "sync",
                key: None,
                source,
            };
            self.router.report_failure(TierId::Log, &error);
            Error::from(error)
        };
        let (frozen, through) = {
            let _exclusive = self.gate.write().unwrap_or_else(PoisonError::into_inner);
            (self.hot.freeze(), self.wal.last_lsn())
        };
        // Queued before anything can fail: a frozen memtable left out of the queue would
        // never reach warm while later flushes moved the flushed LSN past its data.
        let mut queue = self
            .unflushed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(frozen) = frozen {
            queue.push_back((frozen, through));
        }
        // The flushed LSN must be durable in the log: after a crash the log restarts after
        // its last durable record, and a flushed LSN beyond that would be handed out again.
        self.wal.sync().map_err(log_error)?;
        // The frozen memtable's records now end the older files, which WAL truncation can drop
        // once this flush is in, instead of waiting for the active file to fill. A failed roll
        // costs only that (the log then starts a fresh file at its next write), and a failing
        // disk shows in the next append or health probe.
        if !queue.is_empty() {
            let _ = self.wal.roll();
        }
        let mut flushed = None;
        // Oldest first: the manifest's flushed LSN may pass a memtable only once it is in.
        while let Some((frozen, through)) = queue.front() {
            if let Err(e) = self.warm.ingest(frozen.iter(), Some(*through)) {
                let error = e.into_tier_error("warm");
                self.router.report_failure(TierId::Warm, &error);
                return Err(error.into());
            }
            // Before the versions leave hot: a promotion racing this flush then reads warm
            // again for them (see `Router::note_flush`).
            self.router.note_flush();
            self.hot.release(frozen);
            self.router.report_success(TierId::Warm);
            self.router
                .watermarks()
                .advance(Stage::Warm, *through, None);
            flushed = Some(*through);
            queue.pop_front();
        }
        Ok(flushed)
    }

    /// Runs the committer: a commit if a trigger fired, or at once when `force`.
    fn commit(&self, force: bool) -> Result<Option<String>> {
        if !force && !self.router.breaker(TierId::Cold).allow() {
            return Ok(None);
        }
        let before = self.cold.store().head();
        let outcome = if force {
            self.committer.sync().map(|_| ())
        } else {
            self.committer.poll().map(|_| ())
        };
        match outcome {
            Ok(()) => {
                self.router.report_success(TierId::Cold);
                let head = self.cold.store().head();
                self.router.watermarks().advance(
                    Stage::Cold,
                    self.cold_watermark(),
                    head.map(|h| h.to_string()),
                );
                Ok((head != before)
                    .then(|| head.map(|h| h.to_string()))
                    .flatten())
            }
            Err(e) => {
                let error = strata_tiering::Error::from(e);
                self.router.report_failure(TierId::Cold, &error);
                Err(error.into())
            }
        }
    }

    /// Pushes if due (or at once when `force`); returns the verified remote head.
    fn push(&self, force: bool) -> Result<Option<Oid>> {
        let Some(remote) = &self.remote else {
            return Ok(None);
        };
        if !force && !self.router.breaker(TierId::Remote).allow() {
            return Ok(None);
        }
        let outcome = if force {
            remote.push().map(Some)
        } else {
            remote.poll()
        };
        match outcome {
            Ok(report) => {
                self.router.report_success(TierId::Remote);
                let Some(report) = report else {
                    return Ok(None);
                };
                self.router.watermarks().advance(
                    Stage::Remote,
                    report.pushed_lsn,
                    Some(report.head.to_string()),
                );
                let mut wants = self.nudge.lock();
                if wants
                    .critical
                    .is_some_and(|(lsn, _)| lsn <= report.pushed_lsn)
                {
                    wants.critical = None;
                }
                Ok(Some(report.head))
            }
            Err(e) => {
                let error = strata_tiering::Error::from(e);
                self.router.report_failure(TierId::Remote, &error);
                Err(error.into())
            }
        }
    }

    /// Drops WAL files below the oldest record any stage still needs.
    fn truncate_wal(&self) -> Result<Option<Lsn>> {
        let flushed = self.warm.flushed_lsn().unwrap_or(0);
        let keep_from = (flushed + 1).min(self.committer.needs_log_from());
        if keep_from <= 1 {
            return Ok(None);
        }
        let before = self.wal.record_bytes();
        self.wal.truncate_before(keep_from)?;
        let dropped = before.saturating_sub(self.wal.record_bytes());
        self.wal_dropped.fetch_add(dropped, Ordering::Relaxed);
        Ok(Some(keep_from))
    }

    /// Brings everything acknowledged so far to `stage`, now.
    pub(crate) fn force(&self, stage: Stage) -> Result<StageReceipt> {
        self.writable("sync")?;
        if stage != Stage::Memory {
            self.log_queued_writes()?;
        }
        let watermarks = Arc::clone(self.router.watermarks());
        let synced = {
            let _gate = self.write_gate();
            self.wal
                .sync()
                .map_err(|source| strata_tiering::Error::Log {
                    op: "sync",
                    key: None,
                    source,
                })?
        };
        watermarks.advance(Stage::Wal, synced, None);
        match stage {
            Stage::Memory | Stage::Wal => {}
            Stage::Warm => {
                let _one = self.lock_maintenance();
                self.flush_memtable()?;
                // Every logged write up to `synced` was in the memtable flushed or an earlier one.
                watermarks.advance(Stage::Warm, synced, None);
            }
            Stage::Cold => {
                let _one = self.lock_maintenance();
                self.commit_now()?;
            }
            Stage::Remote => {
                if self.remote.is_none() {
                    return Err(Error::NoRemote {
                        dir: self.dir.clone(),
                    });
                }
                let _one = self.lock_maintenance();
                self.commit_now()?;
                self.push(true)?;
            }
        }
        Ok(watermarks.receipt(stage))
    }

    fn commit_now(&self) -> Result<()> {
        self.commit(true).map(|_| ())
    }

    /// The last step of closing: sync the log and record that the shutdown was clean, unless
    /// writes accepted while degraded could not be moved into the log: they are lost with the
    /// process, and the close says so instead.
    pub(crate) fn shut_down(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        if self.read_only {
            // The directory is another process's: a clean marker here would be a lie.
            return Ok(());
        }
        let queued = self.log_queued_writes();
        let synced = self.wal.sync();
        synced.map_err(|source| strata_tiering::Error::Log {
            op: "sync",
            key: None,
            source,
        })?;
        queued?;
        crate::open::mark_clean(&self.dir)
    }

    /// Moves the writes accepted while degraded into the log; fails, naming how many are left
    /// and why, if some cannot go there yet.
    fn log_queued_writes(&self) -> Result<()> {
        if self.router.queued() == 0 {
            return Ok(());
        }
        let report = self.router.try_recover();
        if report.remaining == 0 {
            return Ok(());
        }
        Err(Error::NotLogged {
            dir: self.dir.clone(),
            queued: report.remaining,
            reason: report
                .stopped_by
                .unwrap_or_else(|| "the replay queue did not drain".into()),
        })
    }
}

impl Store {
    /// Runs one maintenance pass now (see the [module documentation](self)); a store opened
    /// without a maintenance thread relies on its owner calling this.
    pub fn maintain(&self) -> MaintenanceReport {
        self.inner.tick()
    }
}
