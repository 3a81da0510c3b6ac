//! Archival and garbage collection of the warm tier.
//!
//! ```text
//!   maintenance tick ─► GC horizon = oldest pinned snapshot, else the stable seqno
//!                    │      └─► warm compactions may drop versions no reader can see
//!                    └─► every `archive_interval_secs`: Router::archive_tick
//!                           warm entries past their TTL, or the oldest while warm is over
//!                           `warm_capacity_bytes` ─► cold.apply (a git commit)
//!                                                 ─► WarmEvictor: archival markers in warm
//! ```
//!
//! [`Snapshot`](crate::Snapshot)s and transactions read at an old seqno across later
//! compactions, so each holds a [`Pin`] while it lives. A pin is taken and the horizon is set
//! under one lock, and the stable seqno only grows, so a horizon never passes a live reader.
//! Point reads and scans need no pin: they read the segment set current when they start, and
//! a compaction never changes a set someone holds.
//!
//! The warm tier keeps tombstones at the bottom (`drop_bottom_tombstones` is off): cold may
//! hold an older value of the key, archived or committed, that the tombstone must keep
//! hiding until archival moves the tombstone itself down.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use strata_segment::SegmentTier;
use strata_tiering::router::{ArchiveReport, Evictor};
use strata_tiering::{Change, SeqNo};

use crate::error::Result;
use crate::store::{Inner, Store};

/// The seqnos readers are pinned at, with how many readers hold each.
#[derive(Debug, Default)]
pub(crate) struct Pins {
    open: Mutex<BTreeMap<SeqNo, usize>>,
}

/// A reader's hold on its seqno; dropping it lets compaction reclaim what only it could see.
#[derive(Debug)]
pub(crate) struct Pin {
    pins: Arc<Pins>,
    seqno: SeqNo,
}

impl Pins {
    /// Pins the seqno `stable` gives, read under the pins' lock.
    pub fn pin(self: &Arc<Self>, stable: impl FnOnce() -> SeqNo) -> Pin {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let seqno = stable();
        *open.entry(seqno).or_insert(0) += 1;
        Pin {
            pins: Arc::clone(self),
            seqno,
        }
    }

    /// Sets the warm tier's GC horizon to the oldest pin, or to `stable` when none is held.
    pub fn set_horizon(&self, warm: &SegmentTier, stable: impl FnOnce() -> SeqNo) {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let horizon = match open.keys().next() {
            Some(&oldest) => oldest,
            None => stable(),
        };
        warm.set_oldest_snapshot(horizon);
    }

    #[cfg(test)]
    fn held(&self) -> Vec<SeqNo> {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.keys().copied().collect()
    }
}

impl Pin {
    pub fn seqno(&self) -> SeqNo {
        self.seqno
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut open = self
            .pins
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.seqno) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.seqno);
            }
        }
    }
}

/// Drops archived versions from the warm tier by writing archival markers.
#[derive(Debug)]
pub(crate) struct WarmEvictor {
    warm: Arc<SegmentTier>,
}

impl WarmEvictor {
    pub fn new(warm: &Arc<SegmentTier>) -> WarmEvictor {
        WarmEvictor {
            warm: Arc::clone(warm),
        }
    }
}

impl Evictor for WarmEvictor {
    fn evict(&self, archived: &[Change]) -> std::result::Result<(), strata_tiering::Error> {
        let name = strata_tiering::Tier::name(self.warm.as_ref()).to_owned();
        self.warm
            .evict(archived)
            .map(|_| ())
            .map_err(|e| e.into_tier_error(&name))
    }
}

impl Inner {
    /// Lets warm compactions drop what no pinned reader can see.
    pub(crate) fn update_gc_horizon(&self) {
        self.pins.set_horizon(&self.warm, || self.stable_seqno());
    }

    /// Runs an archival pass if one is due (or `force`), and notes when it ran.
    pub(crate) fn archive_if_due(&self, force: bool) -> Result<Option<ArchiveReport>> {
        let now = self.clock.now_ms();
        let interval = self.config.archive_interval_secs.saturating_mul(1_000);
        let last = self.last_archive_ms.load(Ordering::Relaxed);
        if !force && now < last.saturating_add(interval) {
            return Ok(None);
        }
        self.last_archive_ms.store(now, Ordering::Relaxed);
        Ok(Some(self.router.archive_tick()?))
    }
}

impl Store {
    /// Moves warm entries older than their rule's TTL, and the oldest entries while warm is
    /// over `warm_capacity_bytes`, to the cold tier, at most 1,000 per call. Each is dropped
    /// from warm only after cold has committed it; a later read finds it in cold and promotes
    /// it into the cache. Maintenance does this every `archive_interval_secs`.
    pub fn archive(&self) -> Result<ArchiveReport> {
        let inner = &self.inner;
        inner.writable("archive")?;
        let _one = inner.lock_maintenance();
        let report = inner.archive_if_due(true)?;
        Ok(report.unwrap_or_default())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pins_count_readers_per_seqno() {
        let pins = Arc::new(Pins::default());
        let a = pins.pin(|| 5);
        let b = pins.pin(|| 5);
        let c = pins.pin(|| 9);
        assert_eq!((a.seqno(), c.seqno()), (5, 9));
        assert_eq!(pins.held(), [5, 9]);
        drop(a);
        assert_eq!(pins.held(), [5, 9]);
        drop(b);
        assert_eq!(pins.held(), [9]);
        drop(c);
        assert!(pins.held().is_empty());
    }
}
