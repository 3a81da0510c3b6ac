//! Stage watermarks: how far down the pipeline every LSN has travelled, and waiting for it.
//!
//! Each [`Stage`] records the highest LSN it has made durable (with, for the git stages, the
//! evidence: a commit id, a verified remote head). The Router advances `Memory` and `Wal`
//! itself; the owner advances `Warm` after a flush, and the cold committer and the remote
//! pusher advance `Cold` and `Remote` from their own threads. A watermark never moves back.
//!
//! [`Watermarks::wait_for`] blocks on a condition variable until a stage passes an LSN or a
//! real-time timeout runs out. The Router's own `wait_for` first nudges the stage through
//! [`Downstream`], so a waiter need not sit out a whole debounce period.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::types::Lsn;

/// A step of the write pipeline, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Applied to the hot tier.
    Memory,
    /// Synced in the write-ahead log.
    Wal,
    /// Flushed into warm segments.
    Warm,
    /// Committed to the cold git repository.
    Cold,
    /// Pushed to and verified on the remote.
    Remote,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 5] = [
        Stage::Memory,
        Stage::Wal,
        Stage::Warm,
        Stage::Cold,
        Stage::Remote,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Memory => "memory",
            Stage::Wal => "wal",
            Stage::Warm => "warm",
            Stage::Cold => "cold",
            Stage::Remote => "remote",
        }
    }

    fn index(self) -> usize {
        match self {
            Stage::Memory => 0,
            Stage::Wal => 1,
            Stage::Warm => 2,
            Stage::Cold => 3,
            Stage::Remote => 4,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a stage stood when asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageReceipt {
    /// The stage.
    pub stage: Stage,
    /// Its watermark: every LSN up to here has passed it.
    pub lsn: Lsn,
    /// What proves it: the git commit id for `Cold`, the verified remote head for `Remote`.
    pub evidence: Option<String>,
}

/// Asks the stages downstream of the log to hurry: the owner's committer and pusher
/// implement it. Calls must return quickly; they only request work.
pub trait Downstream: Send + Sync {
    /// Requests that `stage` make `lsn` durable soon (for `Remote`, after a short debounce).
    fn request(&self, stage: Stage, lsn: Lsn);
}

/// A [`Downstream`] that ignores every request.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDownstream;

impl Downstream for NoDownstream {
    fn request(&self, _stage: Stage, _lsn: Lsn) {}
}

/// The watermark of every stage, shared between the Router and the threads advancing them.
///
/// The LSNs are atomics, so the write path advances and reads them without a lock; the lock
/// guards only the evidence and the sleep of waiters, and an advance takes it only to record
/// evidence or to wake someone.
#[derive(Debug, Default)]
pub struct Watermarks {
    lsns: [AtomicU64; 5],
    /// Each stage's evidence with the LSN it proves.
    evidence: Mutex<[Option<(Lsn, String)>; 5]>,
    /// Waiters register before they check their condition, so an advance that moves a
    /// watermark after the check is sure to see them and wake them.
    waiters: AtomicUsize,
    changed: Condvar,
}

impl Watermarks {
    /// Every stage at LSN 0.
    pub fn new() -> Watermarks {
        Watermarks::default()
    }

    /// Moves `stage` up to `lsn`, recording `evidence` for that LSN, and wakes waiters. A lower
    /// LSN changes nothing; an equal one may add evidence the stage lacked. Returns whether the
    /// watermark moved.
    pub fn advance(&self, stage: Stage, lsn: Lsn, evidence: Option<String>) -> bool {
        let Some(mark) = self.lsns.get(stage.index()) else {
            return false;
        };
        let moved = mark.fetch_max(lsn, Ordering::SeqCst) < lsn;
        if let Some(evidence) = evidence {
            let mut held = self.lock();
            // Only while `lsn` is still the watermark: a racing advance may have passed it.
            if mark.load(Ordering::SeqCst) == lsn {
                if let Some(slot) = held.get_mut(stage.index()) {
                    if moved || slot.as_ref().is_none_or(|(at, _)| *at != lsn) {
                        *slot = Some((lsn, evidence));
                    }
                }
            }
        }
        if moved && self.waiters.load(Ordering::SeqCst) > 0 {
            let _held = self.lock();
            self.changed.notify_all();
        }
        moved
    }

    /// The watermark of `stage`.
    pub fn get(&self, stage: Stage) -> Lsn {
        self.lsns
            .get(stage.index())
            .map_or(0, |m| m.load(Ordering::SeqCst))
    }

    /// The watermark of `stage` with its evidence, if the advance to it carried one.
    pub fn receipt(&self, stage: Stage) -> StageReceipt {
        let held = self.lock();
        self.receipt_locked(stage, &held)
    }

    fn receipt_locked(&self, stage: Stage, held: &[Option<(Lsn, String)>; 5]) -> StageReceipt {
        let lsn = self.get(stage);
        let evidence = held
            .get(stage.index())
            .and_then(Option::as_ref)
            .filter(|(at, _)| *at == lsn)
            .map(|(_, e)| e.clone());
        StageReceipt {
            stage,
            lsn,
            evidence,
        }
    }

    /// Blocks until `stage`'s watermark reaches `lsn`, for at most `timeout`.
    pub fn wait_for(
        &self,
        stage: Stage,
        lsn: Lsn,
        timeout: Duration,
    ) -> Result<StageReceipt, Error> {
        let start = Instant::now();
        let mut held = self.lock();
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let outcome = loop {
            if self.get(stage) >= lsn {
                break Ok(self.receipt_locked(stage, &held));
            }
            let waited = start.elapsed();
            let Some(left) = timeout.checked_sub(waited).filter(|d| !d.is_zero()) else {
                break Err(Error::WaitTimeout {
                    stage: stage.as_str(),
                    lsn,
                    reached: self.get(stage),
                    waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                });
            };
            held = self
                .changed
                .wait_timeout(held, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        outcome
    }

    fn lock(&self) -> MutexGuard<'_, [Option<(Lsn, String)>; 5]> {
        self.evidence.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn advance_is_monotonic_and_keeps_evidence() {
        let marks = Watermarks::new();
        assert!(marks.advance(Stage::Cold, 5, Some("c5".into())));
        assert!(!marks.advance(Stage::Cold, 3, Some("c3".into())));
        assert_eq!(marks.get(Stage::Cold), 5);
        assert_eq!(marks.receipt(Stage::Cold).evidence.as_deref(), Some("c5"));
        assert_eq!(marks.get(Stage::Remote), 0);
        assert!(!marks.advance(Stage::Wal, 0, None));
        marks.advance(Stage::Wal, 2, None);
        marks.advance(Stage::Wal, 2, Some("late".into()));
        assert_eq!(marks.receipt(Stage::Wal).evidence.as_deref(), Some("late"));
        // Evidence proves one LSN: a later advance without any leaves none.
        marks.advance(Stage::Cold, 6, None);
        assert_eq!(marks.receipt(Stage::Cold).evidence, None);
    }

    #[test]
    fn wait_for_returns_at_once_times_out_or_wakes() {
        let marks = Arc::new(Watermarks::new());
        marks.advance(Stage::Warm, 10, None);
        let r = marks.wait_for(Stage::Warm, 10, Duration::ZERO).unwrap();
        assert_eq!(r.lsn, 10);
        match marks.wait_for(Stage::Cold, 1, Duration::from_millis(5)) {
            Err(Error::WaitTimeout {
                stage: "cold",
                lsn: 1,
                reached: 0,
                ..
            }) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
        let advancer = Arc::clone(&marks);
        let pusher = std::thread::spawn(move || {
            for lsn in 1..=3 {
                advancer.advance(Stage::Remote, lsn, Some(format!("head{lsn}")));
            }
        });
        let r = marks
            .wait_for(Stage::Remote, 3, Duration::from_secs(30))
            .unwrap();
        pusher.join().unwrap();
        assert_eq!((r.lsn, r.evidence.as_deref()), (3, Some("head3")));
    }
}
