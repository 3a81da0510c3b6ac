//! `HotCache`: a bounded cache of `(Key, Entry)` with CLOCK eviction and pinned entries.

use std::collections::HashMap;
use std::fmt;
use std::mem::size_of;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use strata_tiering::{Entry, Error, ErrorKind, Key, SeqNo};

/// The default bound on the bytes a [`HotCache`] holds: 256 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

/// The default bound on the entries a [`HotCache`] holds.
pub const DEFAULT_CACHE_ITEMS: u64 = 1_000_000;

/// Bytes charged per entry on top of its key and value: the slot, the index entry and the
/// reference counts of the key and value.
const ENTRY_OVERHEAD: u64 =
    (size_of::<Option<Slot>>() + size_of::<Key>() + 2 * size_of::<usize>() + 32) as u64;

/// Bounds of a [`HotCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// The most bytes held, as [`HotCache::charge`] counts them.
    pub max_bytes: u64,
    /// The most entries held.
    pub max_items: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: DEFAULT_CACHE_BYTES,
            max_items: DEFAULT_CACHE_ITEMS,
        }
    }
}

/// What became of an [`insert`](HotCache::insert).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum InsertOutcome {
    /// The entry is cached (replacing any older version of its key).
    Stored,
    /// The cache already holds a newer version of the key, which it keeps.
    Stale,
    /// An evictable entry that does not fit beside the pinned ones; it is not cached.
    Refused,
}

/// Counters of a [`HotCache`]. Best effort under concurrent use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads that found their key.
    pub hits: u64,
    /// Reads that did not.
    pub misses: u64,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Inserts refused for lack of room (evictable or pinned).
    pub refused: u64,
    /// Bytes held, as [`HotCache::charge`] counts them.
    pub bytes: u64,
    /// Entries held.
    pub items: u64,
    /// Bytes held by pinned entries.
    pub pinned_bytes: u64,
    /// Pinned entries held.
    pub pinned_items: u64,
}

/// A bounded, thread-safe cache of entries for the hot tier: LOW-criticality data and entries
/// promoted by reads from lower tiers.
///
/// The cache holds one version per key, the newest inserted: an insert older than the held
/// version is ignored ([`InsertOutcome::Stale`]). Entries are stored as given, tombstones and
/// expiry included; interpreting them is the reader's business.
///
/// # Eviction: CLOCK
///
/// Entries sit in a ring of slots with a *referenced* bit each. A read sets the bit; to make
/// room, a hand sweeps the ring, clearing set bits and evicting the first evictable entry whose
/// bit is already clear. So an entry survives a pass of the hand only if it was read since the
/// previous pass: an approximation of LRU whose read path needs no exclusive access. Reads share
/// a read lock and set the bit atomically; only inserts and removals take the write lock. New
/// entries start unreferenced, so a burst of one-off promotions is evicted before entries that
/// are read repeatedly.
///
/// # Pinned entries and full caches
///
/// An entry inserted with `evictable = false` is *pinned*: the hand skips it, and only
/// [`remove`](HotCache::remove), [`invalidate`](HotCache::invalidate) or a newer insert of the
/// same key take it out. The byte and item limits are hard: the cache never holds more than
/// either. When an insert cannot fit even after evicting every evictable entry — the rest of the
/// cache is pinned — it is refused and the cache is left as it was, apart from dropping an older
/// evictable version of the same key, which is stale and may always go:
///
/// - an evictable entry is refused with [`InsertOutcome::Refused`]: it is a cache entry, and
///   not holding it is what eviction would have done a moment later;
/// - a pinned entry is refused with an [`ErrorKind::Full`] error, so that a caller relying on
///   the cache to hold it learns at once that it does not.
///
/// So a pinned entry leaves the cache only through one of the calls above, and an insert the
/// cache cannot hold always says so.
pub struct HotCache {
    name: String,
    config: CacheConfig,
    ring: RwLock<Ring>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    refused: AtomicU64,
}

struct Slot {
    key: Key,
    entry: Entry,
    evictable: bool,
    charge: u64,
    /// Set by reads under the shared lock, hence atomic; cleared by the hand.
    referenced: AtomicBool,
}

/// The slots, their index and the totals, all changed together under the write lock.
#[derive(Default)]
struct Ring {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    index: HashMap<Key, usize>,
    hand: usize,
    bytes: u64,
    pinned_bytes: u64,
    pinned_items: u64,
}

impl Ring {
    fn items(&self) -> u64 {
        self.index.len() as u64
    }

    fn slot(&self, key: &[u8]) -> Option<&Slot> {
        let &i = self.index.get(key)?;
        self.slots.get(i)?.as_ref()
    }

    fn take(&mut self, i: usize) -> Option<Slot> {
        let slot = self.slots.get_mut(i)?.take()?;
        self.index.remove(&slot.key);
        self.free.push(i);
        self.bytes = self.bytes.saturating_sub(slot.charge);
        if !slot.evictable {
            self.pinned_bytes = self.pinned_bytes.saturating_sub(slot.charge);
            self.pinned_items = self.pinned_items.saturating_sub(1);
        }
        Some(slot)
    }

    fn remove(&mut self, key: &[u8]) -> Option<Slot> {
        let &i = self.index.get(key)?;
        self.take(i)
    }

    fn put(&mut self, slot: Slot) {
        self.bytes = self.bytes.saturating_add(slot.charge);
        if !slot.evictable {
            self.pinned_bytes = self.pinned_bytes.saturating_add(slot.charge);
            self.pinned_items += 1;
        }
        let key = slot.key.clone();
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        if let Some(cell) = self.slots.get_mut(i) {
            *cell = Some(slot);
        }
        self.index.insert(key, i);
    }

    /// Moves the hand to the next evictable entry not read since the hand last passed it, and
    /// evicts it. `None` when nothing is evictable.
    fn evict_one(&mut self) -> Option<Slot> {
        if self.items() == self.pinned_items || self.slots.is_empty() {
            return None;
        }
        // Two full turns always suffice: the first clears every bit it passes, so the second
        // finds an evictable entry with a clear bit.
        for _ in 0..2 * self.slots.len() {
            let i = self.hand % self.slots.len();
            self.hand = i + 1;
            if let Some(Some(slot)) = self.slots.get_mut(i) {
                if !slot.evictable {
                    continue;
                }
                if std::mem::replace(slot.referenced.get_mut(), false) {
                    continue;
                }
                return self.take(i);
            }
        }
        None
    }
}

impl HotCache {
    /// An empty cache with the default bounds ([`DEFAULT_CACHE_BYTES`], [`DEFAULT_CACHE_ITEMS`]).
    pub fn new() -> Self {
        HotCache::with_config(CacheConfig::default())
    }

    /// An empty cache with the given bounds.
    pub fn with_config(config: CacheConfig) -> Self {
        HotCache {
            name: "hot-cache".to_owned(),
            config,
            ring: RwLock::new(Ring::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// The bounds the cache keeps to.
    pub fn config(&self) -> CacheConfig {
        self.config
    }

    /// The bytes an entry is charged: its key and value plus a fixed overhead for the slot.
    pub fn charge(key: &Key, entry: &Entry) -> u64 {
        let value = entry.value().map_or(0, |v| v.len() as u64);
        (key.as_bytes().len() as u64)
            .saturating_add(value)
            .saturating_add(ENTRY_OVERHEAD)
    }

    /// The cached entry of `key`, marking it recently used.
    pub fn get(&self, key: &[u8]) -> Option<Entry> {
        let ring = self.read();
        match ring.slot(key) {
            Some(slot) => {
                slot.referenced.store(true, Ordering::Relaxed);
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(slot.entry.clone())
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Whether `key` is cached, without counting a read or marking it used.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.read().slot(key).is_some()
    }

    /// Caches `entry` under `key`, evicting evictable entries as needed to stay within bounds.
    ///
    /// An insert older than the cached version of the key changes nothing
    /// ([`InsertOutcome::Stale`]); one at the same seqno or newer replaces it. `evictable =
    /// false` pins the entry (see [pinned entries](HotCache#pinned-entries-and-full-caches)).
    ///
    /// # Errors
    ///
    /// An [`ErrorKind::Full`] error when a pinned entry cannot fit beside the other pinned
    /// entries. The cache is then unchanged, except that an older evictable version of the key
    /// is dropped.
    pub fn insert(&self, key: Key, entry: Entry, evictable: bool) -> Result<InsertOutcome, Error> {
        let charge = HotCache::charge(&key, &entry);
        let mut ring = self.write();
        let held = ring
            .slot(key.as_bytes())
            .map(|s| (s.entry.seqno, s.evictable, s.charge));
        if let Some((seqno, _, _)) = held {
            if entry.seqno < seqno {
                return Ok(InsertOutcome::Stale);
            }
        }
        // What must stay whatever is evicted: the pinned entries, less the version replaced.
        let (mut pinned_bytes, mut pinned_items) = (ring.pinned_bytes, ring.pinned_items);
        if let Some((_, false, held_charge)) = held {
            pinned_bytes = pinned_bytes.saturating_sub(held_charge);
            pinned_items = pinned_items.saturating_sub(1);
        }
        let fits = pinned_bytes.saturating_add(charge) <= self.config.max_bytes
            && pinned_items < self.config.max_items;
        if !fits {
            return self.refuse(&mut ring, &key, held.is_some_and(|h| h.1), evictable);
        }
        let previous = ring.remove(key.as_bytes());
        while ring.bytes.saturating_add(charge) > self.config.max_bytes
            || ring.items() >= self.config.max_items
        {
            if ring.evict_one().is_none() {
                // Unreachable given `fits`. Should the totals ever drift, refuse rather than break
                // the bounds, and put back a pinned version rather than lose it.
                if let Some(pinned) = previous.filter(|p| !p.evictable) {
                    ring.put(pinned);
                }
                return self.refuse(&mut ring, &key, false, evictable);
            }
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        ring.put(Slot {
            key,
            entry,
            evictable,
            charge,
            referenced: AtomicBool::new(false),
        });
        Ok(InsertOutcome::Stored)
    }

    fn refuse(
        &self,
        ring: &mut Ring,
        key: &Key,
        drop_held: bool,
        evictable: bool,
    ) -> Result<InsertOutcome, Error> {
        if drop_held {
            ring.remove(key.as_bytes());
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        if evictable {
            return Ok(InsertOutcome::Refused);
        }
        let message = format!(
            "cannot pin `{key}`: pinned entries already hold {} of {} bytes and {} of {} items",
            ring.pinned_bytes, self.config.max_bytes, ring.pinned_items, self.config.max_items
        );
        Err(Error::tier(self.name.as_str(), ErrorKind::Full, message))
    }

    /// Removes `key`, pinned or not, returning its entry.
    pub fn remove(&self, key: &[u8]) -> Option<Entry> {
        self.write().remove(key).map(|slot| slot.entry)
    }

    /// Removes the cached version of `key` if it is older than `seqno`: call it when a newer
    /// version is written elsewhere, so the cache never serves a superseded one. Pinned entries
    /// are removed too, as the newer write supersedes them. Returns whether anything was removed.
    pub fn invalidate(&self, key: &[u8], seqno: SeqNo) -> bool {
        let mut ring = self.write();
        match ring.slot(key) {
            Some(slot) if slot.entry.seqno < seqno => ring.remove(key).is_some(),
            _ => false,
        }
    }

    /// The cached entries whose keys `keep` accepts, in ascending key order. Reads the whole
    /// cache under its shared lock: a cache is for point reads, and this is for the rare scan
    /// that must see cache-only entries.
    pub fn entries(&self, mut keep: impl FnMut(&[u8]) -> bool) -> Vec<(Key, Entry)> {
        let ring = self.read();
        let mut out: Vec<(Key, Entry)> = ring
            .slots
            .iter()
            .flatten()
            .filter(|slot| keep(slot.key.as_bytes()))
            .map(|slot| (slot.key.clone(), slot.entry.clone()))
            .collect();
        drop(ring);
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Entries held.
    pub fn len(&self) -> u64 {
        self.read().items()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held, as [`charge`](Self::charge) counts them.
    pub fn bytes(&self) -> u64 {
        self.read().bytes
    }

    /// The cache's counters.
    pub fn stats(&self) -> CacheStats {
        let ring = self.read();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            bytes: ring.bytes,
            items: ring.items(),
            pinned_bytes: ring.pinned_bytes,
            pinned_items: ring.pinned_items,
        }
    }

    // Poisoning is recovered: every change to the ring completes its bookkeeping without a
    // panicking step in between (short of an allocation failure, which aborts).
    fn read(&self) -> RwLockReadGuard<'_, Ring> {
        self.ring.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Ring> {
        self.ring.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for HotCache {
    fn default() -> Self {
        HotCache::new()
    }
}

impl fmt::Debug for HotCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotCache")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn k(b: &[u8]) -> Key {
        Key::new(b).unwrap()
    }

    fn items(max_items: u64) -> HotCache {
        HotCache::with_config(CacheConfig {
            max_bytes: u64::MAX,
            max_items,
        })
    }

    fn store(cache: &HotCache, key: &[u8], seqno: SeqNo, evictable: bool) -> InsertOutcome {
        cache
            .insert(k(key), Entry::put(seqno, "v"), evictable)
            .unwrap()
    }

    #[test]
    fn stale_inserts_never_replace_newer_ones() {
        let cache = HotCache::new();
        assert_eq!(store(&cache, b"a", 5, true), InsertOutcome::Stored);
        assert_eq!(store(&cache, b"a", 4, true), InsertOutcome::Stale);
        assert_eq!(cache.get(b"a").unwrap().seqno, 5);
        assert_eq!(store(&cache, b"a", 5, false), InsertOutcome::Stored);
        assert_eq!(cache.stats().pinned_items, 1);
        assert_eq!(store(&cache, b"a", 6, true), InsertOutcome::Stored);
        assert_eq!(cache.stats().pinned_items, 0);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn invalidate_only_removes_older_versions() {
        let cache = HotCache::new();
        let _ = store(&cache, b"a", 5, false);
        assert!(!cache.invalidate(b"a", 5));
        assert!(!cache.invalidate(b"missing", 9));
        assert!(cache.invalidate(b"a", 6));
        assert!(cache.is_empty());
        assert_eq!(cache.stats().pinned_bytes, 0);
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn clock_spares_entries_read_since_the_last_pass() {
        let cache = items(3);
        for key in [b"a", b"b", b"c"] {
            let _ = store(&cache, key, 1, true);
        }
        cache.get(b"a").unwrap();
        let _ = store(&cache, b"d", 1, true);
        assert!(cache.contains(b"a") && !cache.contains(b"b"));
        // The hand moved past `b`; `c` was never read and goes next, then `a`, whose bit the
        // first pass cleared.
        let _ = store(&cache, b"e", 1, true);
        assert!(!cache.contains(b"c"));
        let _ = store(&cache, b"f", 1, true);
        assert!(!cache.contains(b"a"));
        assert_eq!(cache.stats().evictions, 3);
    }

    #[test]
    fn refusal_drops_a_stale_evictable_version_but_never_a_pinned_one() {
        let cache = items(2);
        let _ = store(&cache, b"p1", 1, false);
        let _ = store(&cache, b"p2", 1, false);
        assert_eq!(store(&cache, b"x", 1, true), InsertOutcome::Refused);
        let err = cache
            .insert(k(b"p3"), Entry::put(1, "v"), false)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Full);
        assert_eq!(err.tier_name(), Some("hot-cache"));
        // Replacing a pinned entry frees its own room first.
        assert_eq!(store(&cache, b"p1", 2, false), InsertOutcome::Stored);
        assert_eq!(cache.stats().refused, 2);

        let cache = HotCache::with_config(CacheConfig {
            max_bytes: 2 * HotCache::charge(&k(b"p"), &Entry::put(1, "v")),
            max_items: 10,
        });
        let _ = store(&cache, b"p", 1, false);
        let _ = store(&cache, b"q", 1, true);
        let big = Entry::put(2, vec![0u8; 1000]);
        assert_eq!(
            cache.insert(k(b"q"), big.clone(), true).unwrap(),
            InsertOutcome::Refused
        );
        assert!(!cache.contains(b"q"), "the stale version must go");
        assert!(cache.insert(k(b"p"), big, false).is_err());
        assert_eq!(cache.get(b"p").unwrap().seqno, 1, "a pinned entry stays");
    }

    #[test]
    fn zero_bounds_refuse_everything_without_panicking() {
        let cache = HotCache::with_config(CacheConfig {
            max_bytes: 0,
            max_items: 0,
        });
        assert_eq!(store(&cache, b"a", 1, true), InsertOutcome::Refused);
        assert!(cache.insert(k(b"a"), Entry::put(1, "v"), false).is_err());
        assert!(cache.is_empty());
        assert_eq!(cache.remove(b"a"), None);
    }

    #[test]
    fn tombstones_are_cached_as_given() {
        let cache = HotCache::new();
        let _ = cache.insert(k(b"gone"), Entry::tombstone(3), true).unwrap();
        assert_eq!(cache.get(b"gone"), Some(Entry::tombstone(3)));
        assert_eq!(cache.remove(b"gone"), Some(Entry::tombstone(3)));
        assert_eq!(cache.get(b"gone"), None);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, 1));
        assert!(format!("{cache:?}").contains("HotCache"));
    }
}
