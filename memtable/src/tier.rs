//! `HotTier`: the active memtable and the frozen ones awaiting a flush, as one [`Tier`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use strata_tiering::{Change, Entry, EntryIter, Error, Health, KeyRange, SeqNo, Tier, TierStats};

use crate::cursor::Cursor;
use crate::frozen::FrozenMemtable;
use crate::memtable::Memtable;
use crate::merge::Merge;

/// The default size at which the active memtable should be frozen and flushed: 64 MiB.
pub const DEFAULT_FLUSH_BYTES: u64 = 64 << 20;

/// The default number of versions at which the active memtable should be frozen and flushed.
pub const DEFAULT_FLUSH_ITEMS: u64 = 10_000;

/// The hot tier: writes go to an active [`Memtable`]; [`freeze`](Self::freeze) turns it into a
/// [`FrozenMemtable`] for the owner to flush, and [`release`](Self::release) drops that once the
/// flush is durable. Reads consult the active memtable, then the frozen ones newest first.
///
/// The tier never freezes or flushes on its own: the owner polls
/// [`should_flush`](Self::should_flush) (for instance after each write) and drives the flush,
/// which keeps the policy and the lower tier out of this crate.
pub struct HotTier {
    name: String,
    // Writers hold the read side for a whole `apply`, so `freeze`, which takes the write side,
    // never swaps out a memtable a writer is still inside: once frozen, a memtable is immutable.
    layers: RwLock<Layers>,
    reads: AtomicU64,
    writes: AtomicU64,
}

struct Layers {
    active: Arc<Memtable>,
    /// Oldest first.
    frozen: Vec<Arc<FrozenMemtable>>,
}

impl HotTier {
    /// An empty hot tier named `hot`.
    pub fn new() -> Self {
        HotTier::with_name("hot")
    }

    /// An empty hot tier with the given name.
    pub fn with_name(name: impl Into<String>) -> Self {
        HotTier {
            name: name.into(),
            layers: RwLock::new(Layers {
                active: Arc::new(Memtable::new()),
                frozen: Vec::new(),
            }),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    /// Freezes the active memtable and starts a new one; returns the frozen memtable for the
    /// owner to flush, or `None` when the active memtable is empty.
    ///
    /// The frozen memtable stays readable through this tier until [`release`](Self::release)d.
    /// Waits for batches being applied to finish (so none lands in a frozen memtable); reads
    /// and writes arriving meanwhile wait for that and for a pointer swap.
    pub fn freeze(&self) -> Option<Arc<FrozenMemtable>> {
        let mut layers = self.write_layers();
        if layers.active.is_empty() {
            return None;
        }
        let active = std::mem::replace(&mut layers.active, Arc::new(Memtable::new()));
        let frozen = Arc::new(FrozenMemtable::new(active));
        layers.frozen.push(Arc::clone(&frozen));
        Some(frozen)
    }

    /// Drops `frozen` from the tier once its contents are durable below. Returns whether it was
    /// held (releasing twice, or a memtable from another tier, is a no-op).
    pub fn release(&self, frozen: &Arc<FrozenMemtable>) -> bool {
        let mut layers = self.write_layers();
        let before = layers.frozen.len();
        layers.frozen.retain(|held| !Arc::ptr_eq(held, frozen));
        layers.frozen.len() != before
    }

    /// The frozen memtables not yet released, oldest first: what a flush still has to write,
    /// in the order to write it.
    pub fn frozen(&self) -> Vec<Arc<FrozenMemtable>> {
        self.read_layers().frozen.clone()
    }

    /// Whether the active memtable holds at least `bytes_limit` bytes (approximately) or
    /// `items_limit` versions. [`DEFAULT_FLUSH_BYTES`] and [`DEFAULT_FLUSH_ITEMS`] are the
    /// usual limits.
    pub fn should_flush(&self, bytes_limit: u64, items_limit: u64) -> bool {
        let layers = self.read_layers();
        layers.active.approximate_bytes() >= bytes_limit || layers.active.len() >= items_limit
    }

    /// Approximate bytes held by the active memtable.
    pub fn active_bytes(&self) -> u64 {
        self.read_layers().active.approximate_bytes()
    }

    /// Versions held by the active memtable.
    pub fn active_len(&self) -> u64 {
        self.read_layers().active.len()
    }

    /// Approximate bytes held by the active and frozen memtables together.
    pub fn approximate_bytes(&self) -> u64 {
        let layers = self.read_layers();
        layers
            .frozen
            .iter()
            .map(|f| f.approximate_bytes())
            .fold(layers.active.approximate_bytes(), u64::saturating_add)
    }

    // Poisoning is recovered: the layers change only by a push, a retain or a pointer swap, none
    // of which can leave them half-updated.
    fn read_layers(&self) -> RwLockReadGuard<'_, Layers> {
        self.layers.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_layers(&self) -> RwLockWriteGuard<'_, Layers> {
        self.layers.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for HotTier {
    fn default() -> Self {
        HotTier::new()
    }
}

impl fmt::Debug for HotTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layers = self.read_layers();
        f.debug_struct("HotTier")
            .field("name", &self.name)
            .field("active", &layers.active)
            .field("frozen", &layers.frozen)
            .finish()
    }
}

impl Tier for HotTier {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Entry>, Error> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let layers = self.read_layers();
        let mut best = layers.active.get(key, snapshot);
        for frozen in layers.frozen.iter().rev() {
            // A memtable whose versions all lie above the snapshot, or none above what was
            // already found, cannot change the answer. Equal seqnos go to the newer memtable.
            let (Some(min), Some(max)) = (frozen.min_seqno(), frozen.max_seqno()) else {
                continue;
            };
            if min > snapshot || best.as_ref().is_some_and(|b| b.seqno >= max) {
                continue;
            }
            if let Some(entry) = frozen.get(key, snapshot) {
                if best.as_ref().is_none_or(|b| entry.seqno > b.seqno) {
                    best = Some(entry);
                }
            }
        }
        Ok(best)
    }

    fn apply(&self, batch: &[Change]) -> Result<(), Error> {
        let layers = self.read_layers();
        layers.active.apply(batch);
        drop(layers);
        self.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Merges chunked scans of every memtable. The set of memtables and each one's committed
    /// batches are fixed when the scan starts, so a freeze, a release or a batch during the scan
    /// changes nothing it yields; no lock is held between items.
    fn scan(&self, range: &KeyRange, snapshot: SeqNo) -> Result<EntryIter<'_>, Error> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if range.is_empty() {
            return Ok(Box::new(std::iter::empty()));
        }
        let layers = self.read_layers();
        let active = Cursor::visible(Arc::clone(&layers.active), range, snapshot);
        if layers.frozen.is_empty() {
            return Ok(Box::new(active.map(Ok)));
        }
        let frozen = layers
            .frozen
            .iter()
            .rev()
            .filter(|f| f.min_seqno().is_some_and(|min| min <= snapshot))
            .map(|f| Cursor::visible(Arc::clone(f.table()), range, snapshot));
        let sources: Vec<_> = std::iter::once(active).chain(frozen).collect();
        Ok(Box::new(Merge::new(sources).map(Ok)))
    }

    /// Nothing to do: the hot tier is memory only. Moving data down is the owner's
    /// [`freeze`](HotTier::freeze)-flush-[`release`](HotTier::release) cycle.
    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }

    fn health(&self) -> Health {
        Health::Healthy
    }

    /// `entries` and `bytes` cover the active and the frozen memtables; `live_keys` is not
    /// tracked, as a key's newest version may sit in any of them.
    fn stats(&self) -> TierStats {
        let layers = self.read_layers();
        let memtables =
            std::iter::once(&layers.active).chain(layers.frozen.iter().map(|f| f.table()));
        let (entries, bytes) = memtables.fold((0u64, 0u64), |(e, b), m| {
            (
                e.saturating_add(m.len()),
                b.saturating_add(m.approximate_bytes()),
            )
        });
        TierStats {
            entries,
            live_keys: None,
            bytes,
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use strata_tiering::{Key, LATEST};

    fn k(b: &[u8]) -> Key {
        Key::new(b).unwrap()
    }

    fn put(tier: &HotTier, key: &[u8], seqno: SeqNo, value: &str) {
        tier.apply(&[Change::put(k(key), seqno, value)]).unwrap();
    }

    fn scan_all(tier: &HotTier, snapshot: SeqNo) -> Vec<(Key, Entry)> {
        tier.scan(&KeyRange::all(), snapshot)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn freeze_release_cycle() {
        let tier = HotTier::new();
        assert!(tier.freeze().is_none());
        put(&tier, b"a", 1, "a1");
        put(&tier, b"b", 2, "b2");
        let first = tier.freeze().unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(tier.active_len(), 0);
        put(&tier, b"a", 3, "a3");
        let second = tier.freeze().unwrap();
        put(&tier, b"c", 4, "c4");
        assert_eq!(tier.frozen().len(), 2);
        assert!(Arc::ptr_eq(&tier.frozen()[0], &first));

        let want = vec![
            (k(b"a"), Entry::put(3, "a3")),
            (k(b"b"), Entry::put(2, "b2")),
            (k(b"c"), Entry::put(4, "c4")),
        ];
        assert_eq!(scan_all(&tier, LATEST), want);
        assert_eq!(tier.get(b"a", 2).unwrap(), Some(Entry::put(1, "a1")));
        assert_eq!(tier.stats().entries, 4);

        assert!(tier.release(&first));
        assert!(!tier.release(&first));
        assert_eq!(tier.get(b"b", LATEST).unwrap(), None);
        assert_eq!(tier.get(b"a", 2).unwrap(), None);
        assert!(tier.release(&second));
        assert_eq!(
            scan_all(&tier, LATEST),
            vec![(k(b"c"), Entry::put(4, "c4"))]
        );
    }

    #[test]
    fn newest_seqno_wins_across_memtables() {
        let tier = HotTier::new();
        put(&tier, b"k", 10, "frozen-newer");
        tier.freeze().unwrap();
        // An older version arriving late lands in the active memtable but must not shadow.
        put(&tier, b"k", 5, "active-older");
        assert_eq!(
            tier.get(b"k", LATEST).unwrap(),
            Some(Entry::put(10, "frozen-newer"))
        );
        assert_eq!(
            tier.get(b"k", 9).unwrap(),
            Some(Entry::put(5, "active-older"))
        );
        assert_eq!(
            scan_all(&tier, LATEST),
            vec![(k(b"k"), Entry::put(10, "frozen-newer"))]
        );
        assert_eq!(
            scan_all(&tier, 9),
            vec![(k(b"k"), Entry::put(5, "active-older"))]
        );
    }

    #[test]
    fn a_scan_is_unaffected_by_freeze_and_release() {
        let tier = HotTier::new();
        for i in 0..600u64 {
            put(&tier, &i.to_be_bytes(), i + 1, "v");
        }
        let frozen = tier.freeze().unwrap();
        put(&tier, b"new", 1000, "v");
        let mut scan = tier.scan(&KeyRange::all(), LATEST).unwrap();
        assert!(scan.next().is_some());
        assert!(tier.release(&frozen));
        put(&tier, b"newer", 1001, "v");
        assert_eq!(scan.count(), 600);
    }

    #[test]
    fn flush_triggers() {
        let tier = HotTier::new();
        assert!(!tier.should_flush(DEFAULT_FLUSH_BYTES, DEFAULT_FLUSH_ITEMS));
        put(&tier, b"a", 1, "0123456789");
        assert!(tier.should_flush(DEFAULT_FLUSH_BYTES, 1));
        assert!(!tier.should_flush(DEFAULT_FLUSH_BYTES, 2));
        assert!(tier.should_flush(tier.active_bytes(), 2));
        assert!(!tier.should_flush(tier.active_bytes() + 1, 2));
        let before = tier.approximate_bytes();
        tier.freeze().unwrap();
        assert!(!tier.should_flush(1, 1));
        assert_eq!(tier.approximate_bytes(), before);
        assert_eq!(tier.stats().bytes, before);
    }

    #[test]
    fn name_stats_and_debug() {
        let tier = HotTier::with_name("hot-test");
        assert_eq!(tier.name(), "hot-test");
        assert_eq!(HotTier::default().name(), "hot");
        put(&tier, b"a", 1, "v");
        tier.get(b"a", LATEST).unwrap();
        tier.scan(&KeyRange::all(), LATEST).unwrap().for_each(drop);
        let stats = tier.stats();
        assert_eq!((stats.reads, stats.writes, stats.entries), (2, 1, 1));
        assert!(format!("{tier:?}").contains("hot-test"));
        tier.flush().unwrap();
        assert!(tier.health().is_healthy());
    }
}
