//! Archival: moving entries from the warm tier to the cold tier.
//!
//! [`Router::archive_tick`] picks warm entries that are older than their class's TTL, and,
//! while the warm tier is over its capacity (default 2 GiB), the oldest entries by seqno. It
//! writes them to the cold tier, and only once the cold tier's `apply` has returned (which for
//! the git tier means committed) asks the owner's [`Evictor`] to drop them from warm. A later
//! read finds them in cold and promotes them into the cache.
//!
//! Tombstones are archived like values: dropping a warm tombstone without moving it would let
//! an older cold value reappear.
//!
//! Entries carry seqnos, not times, so an entry's age comes from [`WriteTimes`]. The default,
//! [`LsnTimeline`], samples (LSN, time) pairs as the Router logs writes and answers with an
//! upper bound on when an LSN was written, so an age is never overestimated and nothing is
//! archived early; it knows only writes made since the Router started.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering as Atomic};
use std::sync::{Arc, Mutex, PoisonError};

use super::{Router, TierId};
use crate::clock::Clock;
use crate::error::Error;
use crate::range::KeyRange;
use crate::record;
use crate::types::{Change, Entry, Key, Lsn, SeqNo, LATEST};

/// Drops archived entries from the warm tier; the owner implements it over its segments.
pub trait Evictor: Send + Sync {
    /// Drops exactly these versions from warm. The cold tier already holds them. A key whose
    /// warm version is now newer than the one given must be left alone.
    fn evict(&self, archived: &[Change]) -> Result<(), Error>;
}

/// When entries were written.
pub trait WriteTimes: Send + Sync {
    /// An upper bound on when `entry` of `key` was written (unix milliseconds), or `None` if
    /// unknown; unknown entries are archived only for capacity.
    fn written_at(&self, key: &Key, entry: &Entry) -> Option<u64>;
}

/// Samples of (LSN, time) taken as writes are logged, bounded in number.
///
/// A sample is taken at the first write of each window of `granularity_ms`, and the last
/// write of the previous window is kept too, so an LSN's time is known to within a window.
/// The last write is tracked in atomics and the samples are locked only once per window, as
/// every logged write passes through here.
#[derive(Debug)]
pub struct LsnTimeline {
    clock: Arc<dyn Clock>,
    granularity_ms: u64,
    capacity: usize,
    /// When the newest sample was taken; `u64::MAX` before the first.
    window_start: AtomicU64,
    /// The newest LSN recorded, and a time no earlier than when any LSN up to it was
    /// written: the time is raised before the LSN, so whoever sees an LSN sees such a time.
    last_lsn: AtomicU64,
    last_ms: AtomicU64,
    samples: Mutex<VecDeque<(Lsn, u64)>>,
}

impl LsnTimeline {
    /// One-minute windows, at most 100,000 samples (about a month of continuous writes).
    pub fn new(clock: Arc<dyn Clock>) -> LsnTimeline {
        LsnTimeline::with_granularity(clock, 60_000, 100_000)
    }

    /// Windows of `granularity_ms`, at most `capacity` samples; the oldest go first.
    pub fn with_granularity(clock: Arc<dyn Clock>, granularity_ms: u64, capacity: usize) -> Self {
        LsnTimeline {
            clock,
            granularity_ms,
            capacity: capacity.max(2),
            window_start: AtomicU64::new(u64::MAX),
            last_lsn: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// Notes that `lsn` was written now.
    pub fn record(&self, lsn: Lsn) {
        let now = self.clock.now_ms();
        let start = self.window_start.load(Atomic::SeqCst);
        if start == u64::MAX || now >= start.saturating_add(self.granularity_ms) {
            let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
            // Re-checked under the lock: another writer may have opened the window.
            let start = self.window_start.load(Atomic::SeqCst);
            if start == u64::MAX || now >= start.saturating_add(self.granularity_ms) {
                let last = (
                    self.last_lsn.load(Atomic::SeqCst),
                    self.last_ms.load(Atomic::SeqCst),
                );
                for sample in [last, (lsn, now)] {
                    if sample.0 > 0 && samples.back().is_none_or(|b| sample.0 > b.0) {
                        samples.push_back(sample);
                    }
                }
                while samples.len() > self.capacity {
                    samples.pop_front();
                }
                self.window_start.store(now, Atomic::SeqCst);
            }
        }
        self.last_ms.fetch_max(now, Atomic::SeqCst);
        self.last_lsn.fetch_max(lsn, Atomic::SeqCst);
    }

    /// An upper bound on when `lsn` was written.
    pub fn lsn_time(&self, lsn: Lsn) -> Option<u64> {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let at = samples.partition_point(|(l, _)| *l < lsn);
        if let Some((_, time)) = samples.get(at) {
            return Some(*time);
        }
        drop(samples);
        let last = self.last_lsn.load(Atomic::SeqCst);
        (last >= lsn && lsn > 0).then(|| self.last_ms.load(Atomic::SeqCst))
    }
}

impl WriteTimes for LsnTimeline {
    fn written_at(&self, _key: &Key, entry: &Entry) -> Option<u64> {
        self.lsn_time(entry.seqno)
    }
}

/// What [`Router::archive_tick`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// Entries moved to cold and dropped from warm.
    pub archived: usize,
    /// Of those, entries older than their TTL.
    pub by_age: usize,
    /// Of those, entries taken because warm was over capacity.
    pub by_capacity: usize,
    /// The warm tier's size before the tick.
    pub warm_bytes: u64,
    /// Why nothing was attempted, when nothing was.
    pub skipped: Option<String>,
}

/// A capacity candidate, ordered by seqno so the heap keeps the oldest.
struct Candidate(Change);

impl Candidate {
    fn order(&self) -> (SeqNo, &Key) {
        (self.0.entry.seqno, &self.0.key)
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.order() == other.order()
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order().cmp(&other.order())
    }
}

fn size(change: &Change) -> u64 {
    (change.key.as_bytes().len() + change.entry.value().map_or(0, |v| v.len())) as u64
}

impl Router {
    /// Archives up to [`RouterConfig::archive_batch`](super::RouterConfig) warm entries to
    /// cold (see the module documentation). Does nothing without a warm tier, a cold tier and
    /// an [`Evictor`], or while either tier's breaker is open.
    pub fn archive_tick(&self) -> Result<ArchiveReport, Error> {
        let mut report = ArchiveReport::default();
        let (Some(warm), Some(cold), Some(evictor)) = (&self.warm, &self.cold, &self.evictor)
        else {
            report.skipped = Some("archival needs a warm tier, a cold tier and an evictor".into());
            return Ok(report);
        };
        if let Some(tier) = [TierId::Warm, TierId::Cold]
            .into_iter()
            .find(|t| !self.breaker(*t).allow())
        {
            report.skipped = Some(format!("the {tier} breaker is open"));
            return Ok(report);
        }
        let now = self.clock.now_ms();
        let batch = self.config.archive_batch.max(1);
        report.warm_bytes = warm.stats().bytes;
        let excess = report
            .warm_bytes
            .saturating_sub(self.config.warm_capacity_bytes);
        let rules = self.rules.snapshot();
        let mut aged = Vec::new();
        let mut oldest = BinaryHeap::new();
        let scan = warm.scan(&KeyRange::all(), LATEST).and_then(|items| {
            for item in items {
                let (key, entry) = item?;
                if record::is_reserved(key.as_bytes()) {
                    continue;
                }
                let ttl = u64::try_from(rules.classify(key.as_bytes()).ttl.as_millis())
                    .unwrap_or(u64::MAX);
                let old = self
                    .write_times
                    .written_at(&key, &entry)
                    .is_some_and(|at| now.saturating_sub(at) >= ttl);
                let change = Change::new(key, entry);
                if old && aged.len() < batch {
                    aged.push(change);
                } else if excess > 0 {
                    oldest.push(Candidate(change));
                    if oldest.len() > batch {
                        oldest.pop();
                    }
                }
            }
            Ok(())
        });
        if let Err(error) = scan {
            self.on_failure(TierId::Warm, &error);
            return Err(error);
        }
        report.by_age = aged.len();
        let mut freed: u64 = aged.iter().map(size).sum();
        let mut chosen = aged;
        for Candidate(change) in oldest.into_sorted_vec() {
            if freed >= excess || chosen.len() >= batch {
                break;
            }
            freed += size(&change);
            chosen.push(change);
            report.by_capacity += 1;
        }
        if chosen.is_empty() {
            return Ok(report);
        }
        if let Err(error) = cold.apply(&chosen) {
            self.on_failure(TierId::Cold, &error);
            return Err(error);
        }
        self.breaker(TierId::Cold).record_success();
        if let Err(error) = evictor.evict(&chosen) {
            self.on_failure(TierId::Warm, &error);
            return Err(error);
        }
        self.breaker(TierId::Warm).record_success();
        report.archived = chosen.len();
        Ok(report)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn timeline_bounds_write_times_from_above() {
        let clock = Arc::new(ManualClock::new(1_000));
        let t = LsnTimeline::with_granularity(Arc::clone(&clock) as Arc<dyn Clock>, 100, 1_000);
        assert_eq!(t.lsn_time(1), None);
        t.record(1);
        clock.advance(10);
        t.record(2);
        clock.advance(10);
        t.record(3);
        // All in the first window: LSN 1 is a sample, 2 and 3 are bounded by the last write.
        assert_eq!(t.lsn_time(1), Some(1_000));
        assert_eq!(t.lsn_time(2), Some(1_020));
        assert_eq!(t.lsn_time(3), Some(1_020));
        assert_eq!(t.lsn_time(4), None);
        clock.set(5_000);
        t.record(4);
        // The first window's last write was kept when the second began.
        assert_eq!(t.lsn_time(2), Some(1_020));
        assert_eq!(t.lsn_time(4), Some(5_000));
    }

    #[test]
    fn timeline_forgets_the_oldest_but_stays_an_upper_bound() {
        let clock = Arc::new(ManualClock::new(0));
        let t = LsnTimeline::with_granularity(Arc::clone(&clock) as Arc<dyn Clock>, 10, 4);
        for lsn in 1..=20 {
            t.record(lsn);
            clock.advance(10);
        }
        for lsn in 1..=20 {
            let bound = t.lsn_time(lsn).unwrap();
            assert!(bound >= (lsn - 1) * 10, "lsn {lsn}: {bound}");
        }
    }
}
