//! `FrozenMemtable`: an immutable memtable waiting to be flushed.

use std::fmt;
use std::sync::Arc;

use strata_tiering::{Entry, Key, KeyRange, SeqNo};

use crate::cursor::{Cursor, Scan};
use crate::memtable::Memtable;

/// A memtable that takes no more writes, kept readable until its contents are in a lower tier.
///
/// Made by [`Memtable::freeze`] or [`HotTier::freeze`](crate::HotTier::freeze). A flush writes
/// out [`iter`](Self::iter), which gives every version; readers keep using
/// [`get`](Self::get) and [`scan`](Self::scan) meanwhile.
pub struct FrozenMemtable {
    // Shared, because scans started on the hot tier before the freeze may still be reading it.
    // Nothing holds a write path to it any more: `Memtable::freeze` consumed the memtable, and
    // the hot tier swaps its active memtable out only once no writer is inside it.
    table: Arc<Memtable>,
}

impl FrozenMemtable {
    pub(crate) fn new(table: Arc<Memtable>) -> Self {
        FrozenMemtable { table }
    }

    pub(crate) fn table(&self) -> &Arc<Memtable> {
        &self.table
    }

    /// Every version held, in the order a sorted segment stores them: keys ascending and, for
    /// each key, its versions newest (highest seqno) first. Tombstones are included. Yields
    /// exactly [`len`](Self::len) items.
    ///
    /// The iterator owns a handle on the memtable, so it may be moved to a flushing thread and
    /// outlive this reference.
    pub fn iter(&self) -> FrozenIter {
        FrozenIter(Cursor::all(Arc::clone(&self.table)))
    }

    /// The newest version of `key` with `seqno <= snapshot`, as [`Memtable::get`] gives it.
    pub fn get(&self, key: &[u8], snapshot: SeqNo) -> Option<Entry> {
        self.table.get(key, snapshot)
    }

    /// The keys in `range` with their newest versions at `snapshot`, as [`Memtable::scan`]
    /// gives them.
    pub fn scan(&self, range: &KeyRange, snapshot: SeqNo) -> Scan<'_> {
        self.table.scan(range, snapshot)
    }

    /// The lowest seqno held, or `None` when empty.
    pub fn min_seqno(&self) -> Option<SeqNo> {
        self.table.min_seqno()
    }

    /// The highest seqno held, or `None` when empty. Once this memtable is flushed, every
    /// version up to it from this memtable is in the lower tier.
    pub fn max_seqno(&self) -> Option<SeqNo> {
        self.table.max_seqno()
    }

    /// The number of versions [`iter`](Self::iter) yields.
    pub fn len(&self) -> u64 {
        self.table.len()
    }

    /// Whether no version is held.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The number of distinct keys held.
    pub fn key_count(&self) -> u64 {
        self.table.key_count()
    }

    /// Approximate memory held, in bytes, as [`Memtable::approximate_bytes`] counts it.
    pub fn approximate_bytes(&self) -> u64 {
        self.table.approximate_bytes()
    }
}

impl fmt::Debug for FrozenMemtable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrozenMemtable")
            .field("keys", &self.key_count())
            .field("versions", &self.len())
            .field("min_seqno", &self.min_seqno())
            .field("max_seqno", &self.max_seqno())
            .field("approximate_bytes", &self.approximate_bytes())
            .finish()
    }
}

/// Every version of a [`FrozenMemtable`], keys ascending and versions newest first per key.
/// Returned by [`FrozenMemtable::iter`].
pub struct FrozenIter(Cursor<Arc<Memtable>>);

impl Iterator for FrozenIter {
    type Item = (Key, Entry);

    fn next(&mut self) -> Option<(Key, Entry)> {
        self.0.next()
    }
}

impl fmt::Debug for FrozenIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrozenIter").finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use strata_tiering::{Change, LATEST};

    fn k(b: &[u8]) -> Key {
        Key::new(b).unwrap()
    }

    #[test]
    fn iter_gives_every_version_newest_first_per_key() {
        let m = Memtable::new();
        m.apply(&[
            Change::put(k(b"b"), 4, "b4"),
            Change::put(k(b"a"), 1, "a1"),
            Change::delete(k(b"a"), 5),
            Change::put(k(b"a"), 3, "a3"),
        ]);
        // A rewrite of a held seqno replaces it in the flushed output.
        m.insert(k(b"b"), Entry::put(4, "b4'"));
        let frozen = m.freeze();
        let got: Vec<(Key, Entry)> = frozen.iter().collect();
        assert_eq!(
            got,
            vec![
                (k(b"a"), Entry::tombstone(5)),
                (k(b"a"), Entry::put(3, "a3")),
                (k(b"a"), Entry::put(1, "a1")),
                (k(b"b"), Entry::put(4, "b4'")),
            ]
        );
        assert_eq!(frozen.len(), 4);
        assert_eq!(frozen.key_count(), 2);
        assert_eq!((frozen.min_seqno(), frozen.max_seqno()), (Some(1), Some(5)));
        assert_eq!(frozen.get(b"a", 4), Some(Entry::put(3, "a3")));
        assert_eq!(frozen.scan(&KeyRange::all(), LATEST).count(), 2);
        assert!(format!("{frozen:?}").contains("versions: 4"));
    }

    #[test]
    fn iter_crosses_chunks_and_outlives_the_reference() {
        let m = Memtable::new();
        for i in 0..700u64 {
            let key = k(&i.to_be_bytes());
            m.insert(key.clone(), Entry::put(i + 1000, "new"));
            m.insert(key, Entry::put(i, "old"));
        }
        let frozen = Arc::new(m.freeze());
        let iter = frozen.iter();
        drop(frozen);
        let items: Vec<(Key, Entry)> = std::thread::spawn(move || iter.collect()).join().unwrap();
        assert_eq!(items.len(), 1400);
        for pair in items.chunks(2) {
            assert_eq!(pair[0].0, pair[1].0);
            assert!(pair[0].1.seqno > pair[1].1.seqno);
        }
        assert!(items.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn empty_frozen_memtable() {
        let frozen = Memtable::new().freeze();
        assert!(frozen.is_empty());
        assert_eq!(frozen.iter().count(), 0);
        assert_eq!((frozen.min_seqno(), frozen.max_seqno()), (None, None));
    }
}
