//! `Memtable`: the sorted, versioned write buffer.

use std::collections::{btree_map, BTreeMap};
use std::fmt;
use std::mem::size_of;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use strata_tiering::{Change, Entry, Key, KeyRange, SeqNo};

use crate::cursor::{Cursor, Scan};
use crate::frozen::FrozenMemtable;
use crate::versions::{Stamp, Version, Versions};

/// How many changes a writer applies per hold of the write lock. A large batch (a log replay)
/// releases the lock between chunks so that readers wait for at most this many inserts; the
/// batch stays atomic for them through its commit stamp.
const WRITE_CHUNK: usize = 256;

/// Bytes charged per distinct key on top of the key's own bytes: the map slot (the key, which
/// holds a short key's bytes in place, and the inline newest version), a long key's
/// reference counts and a share of the tree node. A short key's bytes are thus counted
/// twice, which errs on the side of flushing early.
pub(crate) const KEY_OVERHEAD: u64 = (size_of::<Key>() + size_of::<Versions>() + 32) as u64;

/// Bytes charged per version on top of its value's bytes: the version record and the value's
/// reference counts.
pub(crate) const VERSION_OVERHEAD: u64 = (size_of::<Version>() + 16) as u64;

type Map = BTreeMap<Key, Versions>;

/// A concurrent, sorted, multi-version write buffer.
///
/// Every version of every key is kept, ordered by seqno (newest first) rather than by arrival,
/// so a read at snapshot `s` sees the newest version with `seqno <= s`, and a version applied
/// late never shadows a newer one. Deletions are stored as tombstones and returned as such.
///
/// All methods take `&self`: any number of readers and writers may share a memtable. Readers
/// hold the lock for one point lookup or one bounded chunk of a scan; writers hold it for at
/// most 256 changes at a time. A batch becomes visible all at once, when its commit stamp is
/// published after its last chunk (see [`apply`](Self::apply)).
///
/// When full, the memtable is [`freeze`](Self::freeze)d into a [`FrozenMemtable`] that a flush
/// writes out.
pub struct Memtable {
    map: RwLock<Map>,
    /// Serialises writers, so that batches are committed in stamp order, and holds the last
    /// stamp handed out.
    writer: Mutex<Stamp>,
    /// The stamp of the last batch whose every change is in the map. Readers ignore versions
    /// with a higher stamp.
    committed: AtomicU64,
    bytes: AtomicU64,
    versions: AtomicU64,
    keys: AtomicU64,
    min_seqno: AtomicU64,
    max_seqno: AtomicU64,
}

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Self {
        Memtable {
            map: RwLock::new(BTreeMap::new()),
            writer: Mutex::new(0),
            committed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            versions: AtomicU64::new(0),
            keys: AtomicU64::new(0),
            min_seqno: AtomicU64::new(SeqNo::MAX),
            max_seqno: AtomicU64::new(0),
        }
    }

    /// Adds one version of `key`.
    ///
    /// A version identical to one already held (same seqno, same content) is ignored, so
    /// replaying a log over the memtable is harmless. A different version with a seqno already
    /// held shadows the held one.
    pub fn insert(&self, key: Key, entry: Entry) {
        let mut last = self.writer();
        let stamp = *last + 1;
        *last = stamp;
        let mut growth = Growth::new();
        growth.insert(&mut self.write(), key, entry, stamp);
        self.publish(&growth, stamp);
    }

    /// Adds every change of `batch`, atomically for readers: a concurrent
    /// [`get`](Self::get) or scan sees all of them or none.
    ///
    /// The batch may hold several versions of one key, in any order.
    pub fn apply(&self, batch: &[Change]) {
        if batch.is_empty() {
            return;
        }
        let mut last = self.writer();
        let stamp = *last + 1;
        *last = stamp;
        let mut growth = Growth::new();
        for chunk in batch.chunks(WRITE_CHUNK) {
            let mut map = self.write();
            for change in chunk {
                growth.insert(&mut map, change.key.clone(), change.entry.clone(), stamp);
            }
        }
        self.publish(&growth, stamp);
    }

    /// Adds a batch's growth to the counters and commits the batch. Called with the writer lock
    /// held, so batches are committed in stamp order.
    fn publish(&self, growth: &Growth, stamp: Stamp) {
        // The seqno range first: `min_seqno` and `max_seqno` report it once `len` is non-zero.
        self.min_seqno
            .fetch_min(growth.min_seqno, Ordering::Relaxed);
        self.max_seqno
            .fetch_max(growth.max_seqno, Ordering::Relaxed);
        self.bytes.fetch_add(growth.bytes, Ordering::Relaxed);
        self.keys.fetch_add(growth.keys, Ordering::Relaxed);
        self.versions.fetch_add(growth.versions, Ordering::Release);
        // Publishing the stamp is the commit: until this store, readers skip the batch's versions.
        self.committed.store(stamp, Ordering::Release);
    }

    /// The newest version of `key` with `seqno <= snapshot`; a deletion is returned as a
    /// tombstone. `None` when the memtable holds no such version (or `key` cannot be a key).
    pub fn get(&self, key: &[u8], snapshot: SeqNo) -> Option<Entry> {
        let map = self.read();
        let limit = self.committed();
        map.get(key)?.visible(snapshot, limit).cloned()
    }

    /// The keys in `range`, ascending, each once with its newest version at `snapshot`
    /// (tombstones included; keys with nothing visible left out).
    ///
    /// The scan sees the memtable as of this call: batches committed later are not part of it,
    /// though it holds the lock only while copying one bounded chunk at a time.
    pub fn scan(&self, range: &KeyRange, snapshot: SeqNo) -> Scan<'_> {
        Scan::new(Cursor::visible(self, range, snapshot))
    }

    /// The keys starting with `prefix`, as [`scan`](Self::scan) gives them.
    pub fn scan_prefix(&self, prefix: &[u8], snapshot: SeqNo) -> Scan<'_> {
        self.scan(&KeyRange::prefix(prefix), snapshot)
    }

    /// Makes the memtable immutable, for a flush.
    pub fn freeze(self) -> FrozenMemtable {
        FrozenMemtable::new(std::sync::Arc::new(self))
    }

    /// Approximate memory held, in bytes: keys and values plus a fixed per-key and per-version
    /// overhead. It only grows, and includes a batch once the batch is committed.
    pub fn approximate_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The number of distinct versions held (a flush writes exactly this many).
    pub fn len(&self) -> u64 {
        self.versions.load(Ordering::Acquire)
    }

    /// Whether no version is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of distinct keys held.
    pub fn key_count(&self) -> u64 {
        self.keys.load(Ordering::Relaxed)
    }

    /// The lowest seqno held, or `None` when empty.
    pub fn min_seqno(&self) -> Option<SeqNo> {
        (!self.is_empty()).then(|| self.min_seqno.load(Ordering::Relaxed))
    }

    /// The highest seqno held, or `None` when empty.
    pub fn max_seqno(&self) -> Option<SeqNo> {
        (!self.is_empty()).then(|| self.max_seqno.load(Ordering::Relaxed))
    }

    pub(crate) fn committed(&self) -> Stamp {
        self.committed.load(Ordering::Acquire)
    }

    // Poisoned locks are recovered: the map changes only through `Growth::insert`, which has no
    // panicking step between its updates short of an allocation failure (which aborts), so the
    // map behind a poisoned lock is consistent. The counters are approximate by contract.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Map> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Map> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Stamp> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a batch adds to a memtable's counters, summed while inserting and published once.
struct Growth {
    bytes: u64,
    keys: u64,
    versions: u64,
    min_seqno: SeqNo,
    max_seqno: SeqNo,
}

impl Growth {
    fn new() -> Self {
        Growth {
            bytes: 0,
            keys: 0,
            versions: 0,
            min_seqno: SeqNo::MAX,
            max_seqno: 0,
        }
    }

    fn insert(&mut self, map: &mut Map, key: Key, entry: Entry, stamp: Stamp) {
        let seqno = entry.seqno;
        let value_len = entry.value().map_or(0, |v| v.len() as u64);
        let version = Version { entry, stamp };
        match map.entry(key) {
            btree_map::Entry::Occupied(mut held) => {
                let versions = held.get_mut();
                let held_seqno = versions.iter().any(|v| v.entry.seqno == seqno);
                if !versions.insert(version) {
                    return;
                }
                // A rewrite of a held seqno takes memory but is not a new version to flush.
                if !held_seqno {
                    self.versions += 1;
                }
            }
            btree_map::Entry::Vacant(slot) => {
                self.bytes += slot.key().as_bytes().len() as u64 + KEY_OVERHEAD;
                slot.insert(Versions::new(version));
                self.keys += 1;
                self.versions += 1;
            }
        }
        self.bytes += value_len + VERSION_OVERHEAD;
        self.min_seqno = self.min_seqno.min(seqno);
        self.max_seqno = self.max_seqno.max(seqno);
    }
}

impl Default for Memtable {
    fn default() -> Self {
        Memtable::new()
    }
}

impl fmt::Debug for Memtable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memtable")
            .field("keys", &self.key_count())
            .field("versions", &self.len())
            .field("approximate_bytes", &self.approximate_bytes())
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::ops::Bound;
    use strata_tiering::LATEST;

    fn k(b: &[u8]) -> Key {
        Key::new(b).unwrap()
    }

    #[test]
    fn get_at_snapshots_and_tombstones() {
        let m = Memtable::new();
        m.insert(k(b"a"), Entry::put(10, "a10"));
        m.insert(k(b"a"), Entry::tombstone(20));
        m.insert(k(b"a"), Entry::put(5, "a5"));
        assert_eq!(m.get(b"a", LATEST), Some(Entry::tombstone(20)));
        assert_eq!(m.get(b"a", 19), Some(Entry::put(10, "a10")));
        assert_eq!(m.get(b"a", 9), Some(Entry::put(5, "a5")));
        assert_eq!(m.get(b"a", 4), None);
        assert_eq!(m.get(b"b", LATEST), None);
        assert_eq!(m.get(b"", LATEST), None);
    }

    #[test]
    fn accounting() {
        let m = Memtable::new();
        assert!(m.is_empty());
        assert_eq!((m.min_seqno(), m.max_seqno()), (None, None));
        m.apply(&[
            Change::put(k(b"ab"), 7, "xyz"),
            Change::put(k(b"ab"), 3, "q"),
            Change::delete(k(b"c"), 9),
        ]);
        assert_eq!((m.len(), m.key_count()), (3, 2));
        assert_eq!((m.min_seqno(), m.max_seqno()), (Some(3), Some(9)));
        let want = (2 + 1) + 2 * KEY_OVERHEAD + (3 + 1) + 3 * VERSION_OVERHEAD;
        assert_eq!(m.approximate_bytes(), want);

        // An identical replay changes nothing; a rewrite of a held seqno costs memory but is
        // not a new version.
        m.insert(k(b"ab"), Entry::put(7, "xyz"));
        assert_eq!((m.len(), m.approximate_bytes()), (3, want));
        m.insert(k(b"ab"), Entry::put(7, "other"));
        assert_eq!(m.len(), 3);
        assert_eq!(m.approximate_bytes(), want + 5 + VERSION_OVERHEAD);
        assert_eq!(m.get(b"ab", LATEST), Some(Entry::put(7, "other")));
    }

    #[test]
    fn scans_merge_versions_and_cross_chunks() {
        let m = Memtable::new();
        // More keys than one scan chunk, each with two versions.
        for i in 0..1000u64 {
            let key = k(format!("k{i:04}").as_bytes());
            m.insert(key.clone(), Entry::put(2 * i + 1, "old"));
            m.insert(key, Entry::put(2 * i + 2, "new"));
        }
        let all: Vec<(Key, Entry)> = m.scan(&KeyRange::all(), LATEST).collect();
        assert_eq!(all.len(), 1000);
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(all
            .iter()
            .all(|(_, e)| e.value().unwrap().as_bytes() == b"new"));

        // At snapshot 1001 keys 0..500 have their newest version, 500 its old one, the rest none.
        let partial: Vec<(Key, Entry)> = m.scan(&KeyRange::all(), 1001).collect();
        assert_eq!(partial.len(), 501);
        assert_eq!(partial[500].1, Entry::put(1001, "old"));

        let prefixed = m.scan_prefix(b"k09", LATEST).count();
        assert_eq!(prefixed, 100);
        let bounded = KeyRange::new(Bound::Excluded(k(b"k0255")), Bound::Included(k(b"k0512")));
        let keys: Vec<Key> = m.scan(&bounded, LATEST).map(|(k, _)| k).collect();
        assert_eq!(keys.len(), 257);
        assert_eq!(keys[0], k(b"k0256"));
        assert_eq!(keys[256], k(b"k0512"));
        let inverted = KeyRange::new(Bound::Included(k(b"z")), Bound::Included(k(b"a")));
        assert_eq!(m.scan(&inverted, LATEST).count(), 0);
    }

    #[test]
    fn a_scan_ignores_batches_committed_after_it_started() {
        let m = Memtable::new();
        for i in 0..600u64 {
            m.insert(
                k(format!("k{i:04}").as_bytes()),
                Entry::put(i + 1, "before"),
            );
        }
        let mut scan = m.scan(&KeyRange::all(), LATEST);
        let first = scan.next().unwrap();
        // A batch touching both a key already passed and keys in later chunks, plus a new key.
        m.apply(&[
            Change::put(k(b"k0000"), 1000, "after"),
            Change::put(k(b"k0599"), 1001, "after"),
            Change::put(k(b"k0300x"), 1002, "after"),
        ]);
        let rest: Vec<(Key, Entry)> = scan.collect();
        assert_eq!(first.1.value().unwrap().as_bytes(), b"before");
        assert_eq!(rest.len(), 599);
        assert!(rest
            .iter()
            .all(|(_, e)| e.value().unwrap().as_bytes() == b"before"));
        assert_eq!(m.scan(&KeyRange::all(), LATEST).count(), 601);
    }

    #[test]
    fn large_batches_are_applied_whole() {
        let m = Memtable::new();
        let batch: Vec<Change> = (0..(3 * WRITE_CHUNK as u64 + 7))
            .map(|i| Change::put(k(&i.to_be_bytes()), i + 1, "v"))
            .collect();
        m.apply(&batch);
        m.apply(&[]);
        assert_eq!(m.len(), batch.len() as u64);
        assert_eq!(m.scan(&KeyRange::all(), LATEST).count(), batch.len());
    }

    #[test]
    fn survives_a_poisoned_lock() {
        let m = std::sync::Arc::new(Memtable::new());
        m.insert(k(b"a"), Entry::put(1, "v"));
        let poisoner = std::sync::Arc::clone(&m);
        let joined = std::thread::spawn(move || {
            let _guard = poisoner.map.write().unwrap();
            let _writer = poisoner.writer.lock().unwrap();
            panic!("poison both locks");
        })
        .join();
        assert!(joined.is_err());
        assert_eq!(m.get(b"a", LATEST), Some(Entry::put(1, "v")));
        m.insert(k(b"b"), Entry::put(2, "w"));
        assert_eq!(m.scan(&KeyRange::all(), LATEST).count(), 2);
    }
}
