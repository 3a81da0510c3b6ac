//! The debounced committer: tails the write-ahead log from its own watermark and commits the
//! HIGH and CRITICAL changes it finds in batches.
//!
//! ```text
//!   Log ──read durable records from examined+1──► pending batch ──trigger──► ColdStore::commit
//!                                                  quiet 5 s | age 60 s | size 10 MiB | sync()
//! ```
//!
//! Only records the log reports durable are read, so a change lost from the log by a crash can
//! never be in git while its LSN is reused. The committed watermark lives in the head commit;
//! when nothing is pending, the committer also records how far it has examined the log (in the
//! repository config, `strata.examined`), so a store with no HIGH writes does not hold the log
//! back forever. After a crash both resume from there: nothing is lost and nothing applied
//! twice. Time comes from a [`Clock`], so tests drive the triggers without sleeping.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use strata_tiering::clock::Clock;
use strata_tiering::{record, Change, Criticality, Lsn};
use strata_wal::Log;

use crate::error::{Error, Result};
use crate::store::{ColdStore, CommitInfo, Trigger};

/// When the committer commits (the recommended values of the store's design).
#[derive(Debug, Clone)]
pub struct CommitterOptions {
    /// Commit once no new change arrived for this long. Default: 5 s. A change counts as
    /// arrived when a poll first reads it.
    pub quiet_ms: u64,
    /// Commit once the oldest pending change is this old. Default: 60 s.
    pub max_age_ms: u64,
    /// Commit once pending changes hold this many bytes. Default: 10 MiB.
    pub max_batch_bytes: usize,
}

impl Default for CommitterOptions {
    fn default() -> Self {
        CommitterOptions {
            quiet_ms: 5_000,
            max_age_ms: 60_000,
            max_batch_bytes: 10 << 20,
        }
    }
}

/// Counters of the commits made, by what triggered them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitMetrics {
    /// Commits made.
    pub commits: u64,
    /// Changes committed.
    pub changes: u64,
    /// Commits started by the quiet period.
    pub quiet: u64,
    /// Commits started by the maximum age.
    pub age: u64,
    /// Commits started by the maximum batch size.
    pub size: u64,
    /// Commits started by `sync`.
    pub manual: u64,
}

impl CommitMetrics {
    /// Changes per commit.
    pub fn average_batch(&self) -> f64 {
        self.changes as f64 / self.commits.max(1) as f64
    }

    /// Tuning suggestions derived from the counters.
    pub fn advice(&self) -> Vec<String> {
        let mut advice = Vec::new();
        if self.commits == 0 {
            return advice;
        }
        let average = self.average_batch();
        if average < 10.0 {
            advice.push(format!(
                "average batch is {average:.1} changes (under 10): lengthen the quiet period, \
                 there are too many small commits"
            ));
        }
        if average > 1000.0 {
            advice.push(format!(
                "average batch is {average:.0} changes (over 1,000): shorten the maximum age or \
                 the maximum batch size"
            ));
        }
        if self.age * 2 > self.commits {
            advice.push(format!(
                "{} of {} commits hit the maximum age: raise it, writes rarely pause for the quiet period",
                self.age, self.commits
            ));
        }
        advice
    }
}

#[derive(Debug, Default)]
struct Pending {
    examined: Lsn,
    recorded_examined: Lsn,
    changes: Vec<Change>,
    bytes: usize,
    first_at: Option<u64>,
    last_arrival: u64,
    metrics: CommitMetrics,
}

/// Tails a [`Log`] into a [`ColdStore`].
pub struct Committer {
    store: Arc<ColdStore>,
    log: Arc<dyn Log>,
    clock: Arc<dyn Clock>,
    options: CommitterOptions,
    pending: Mutex<Pending>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("store", &self.store.path())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Committer {
    /// A committer resuming from the store's watermarks.
    pub fn new(
        store: Arc<ColdStore>,
        log: Arc<dyn Log>,
        clock: Arc<dyn Clock>,
        options: CommitterOptions,
    ) -> Result<Committer> {
        let examined = store.committed_lsn().max(store.examined_lsn()?);
        Ok(Committer {
            store,
            log,
            clock,
            options,
            pending: Mutex::new(Pending {
                examined,
                recorded_examined: examined,
                ..Pending::default()
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads newly durable records and commits if a trigger fires.
    pub fn poll(&self) -> Result<Option<CommitInfo>> {
        let mut pending = self.lock();
        let now = self.clock.now_ms();
        self.read_new(&mut pending, now)?;
        let Some(first_at) = pending.first_at else {
            self.record_examined(&mut pending)?;
            return Ok(None);
        };
        let trigger = if pending.bytes >= self.options.max_batch_bytes {
            Trigger::Size
        } else if now.saturating_sub(first_at) >= self.options.max_age_ms {
            Trigger::Age
        } else if now.saturating_sub(pending.last_arrival) >= self.options.quiet_ms {
            Trigger::Quiet
        } else {
            return Ok(None);
        };
        self.commit_pending(&mut pending, trigger)
    }

    /// Commits every durable change now; returns the committed watermark.
    pub fn sync(&self) -> Result<Lsn> {
        let mut pending = self.lock();
        let now = self.clock.now_ms();
        self.read_new(&mut pending, now)?;
        if pending.changes.is_empty() {
            self.record_examined(&mut pending)?;
        } else {
            self.commit_pending(&mut pending, Trigger::Manual)?;
        }
        Ok(self.store.committed_lsn())
    }

    /// The counters so far.
    pub fn metrics(&self) -> CommitMetrics {
        self.lock().metrics.clone()
    }

    /// Changes read but not yet committed.
    pub fn pending_changes(&self) -> usize {
        self.lock().changes.len()
    }

    /// The first LSN this committer still needs from the log: the log may drop what is older.
    pub fn needs_log_from(&self) -> Lsn {
        let pending = self.lock();
        pending
            .changes
            .first()
            .map_or(pending.examined + 1, |c| c.entry.seqno)
    }

    fn read_new(&self, pending: &mut Pending, now: u64) -> Result<()> {
        let durable = self.log.synced_lsn();
        if durable <= pending.examined {
            return Ok(());
        }
        let from = pending.examined + 1;
        let records = self.log.read_from(from).map_err(|e| match e {
            strata_wal::Error::Truncated { oldest, .. } => Error::corrupt(
                "log",
                format!(
                    "the log was truncated to LSN {oldest} but the cold tier needs it from {from}"
                ),
            ),
            other => Error::Log(other),
        })?;
        let mut arrived = false;
        for record in records {
            let (lsn, bytes) = record?;
            if lsn > durable {
                break;
            }
            let (criticality, change) = record::decode(lsn, &bytes)?;
            if criticality >= Criticality::High {
                pending.bytes += bytes.len();
                pending.changes.push(change);
                arrived = true;
            }
            pending.examined = lsn;
        }
        if arrived {
            pending.last_arrival = now;
            pending.first_at.get_or_insert(now);
        }
        Ok(())
    }

    fn commit_pending(
        &self,
        pending: &mut Pending,
        trigger: Trigger,
    ) -> Result<Option<CommitInfo>> {
        // On failure the batch stays pending and the next poll tries again, without the
        // changes a failed call put in the repository all the same (a branch renamed into
        // place before its directory's fsync failed).
        let committed = self.store.committed_lsn();
        pending
            .changes
            .retain(|change| change.entry.seqno > committed);
        if pending.changes.is_empty() {
            pending.bytes = 0;
            pending.first_at = None;
            return Ok(None);
        }
        let info = self
            .store
            .commit(&pending.changes, trigger, Some(pending.examined))?;
        let metrics = &mut pending.metrics;
        metrics.commits += 1;
        metrics.changes += pending.changes.len() as u64;
        match trigger {
            Trigger::Quiet => metrics.quiet += 1,
            Trigger::Age => metrics.age += 1,
            Trigger::Size => metrics.size += 1,
            Trigger::Manual | Trigger::Apply => metrics.manual += 1,
        }
        pending.changes.clear();
        pending.bytes = 0;
        pending.first_at = None;
        pending.recorded_examined = pending.examined;
        Ok(info)
    }

    /// With nothing pending, everything examined is as good as committed: say so durably.
    fn record_examined(&self, pending: &mut Pending) -> Result<()> {
        if pending.changes.is_empty() && pending.examined > pending.recorded_examined {
            self.store.record_examined(pending.examined)?;
            pending.recorded_examined = pending.examined;
        }
        Ok(())
    }
}
