//! Scans that copy bounded chunks under the read lock.
//!
//! A cursor never holds the memtable's lock between calls: each refill takes the read lock,
//! copies the items of up to [`CHUNK`] keys and releases it, then resumes after the last key it
//! looked at. Writers therefore wait for at most one chunk copy, however long the caller takes
//! over the scan. The cursor fixes the highest committed stamp when it is created and ignores
//! every later version, so the chunks together form one consistent view even though batches are
//! committed between them.

use std::ops::{Bound, Deref};

use strata_tiering::{Entry, Key, KeyRange, SeqNo};

use crate::memtable::Memtable;
use crate::versions::Stamp;

/// Keys examined per hold of the read lock.
pub(crate) const CHUNK: usize = 256;

/// Which versions a cursor yields.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Each key once, with its newest version at the snapshot.
    Visible(SeqNo),
    /// Every distinct version, newest first per key: what a flush writes.
    All,
}

/// A chunked scan over a memtable reached through `M` (a reference, or an `Arc` for scans that
/// must outlive the borrow that started them).
pub(crate) struct Cursor<M> {
    table: M,
    mode: Mode,
    stamp_limit: Stamp,
    /// Where the next chunk starts: the original start, then just after the last key examined.
    next_start: Bound<Key>,
    end: Bound<Key>,
    buffer: std::vec::IntoIter<(Key, Entry)>,
    exhausted: bool,
}

impl<M: Deref<Target = Memtable>> Cursor<M> {
    /// The newest version at `snapshot` of each key in `range`.
    pub(crate) fn visible(table: M, range: &KeyRange, snapshot: SeqNo) -> Self {
        Cursor::new(table, range, Mode::Visible(snapshot))
    }

    /// Every distinct version of every key, newest first per key.
    pub(crate) fn all(table: M) -> Self {
        Cursor::new(table, &KeyRange::all(), Mode::All)
    }

    fn new(table: M, range: &KeyRange, mode: Mode) -> Self {
        let stamp_limit = table.committed();
        Cursor {
            table,
            mode,
            stamp_limit,
            next_start: range.start.clone(),
            end: range.end.clone(),
            buffer: Vec::new().into_iter(),
            exhausted: false,
        }
    }

    /// Copies the next chunk into the buffer; marks the cursor exhausted when no key is left.
    fn refill(&mut self) {
        let range = KeyRange::new(self.next_start.clone(), self.end.clone());
        // `as_bounds` is `None` for empty and inverted ranges, which `BTreeMap::range` rejects
        // with a panic; resuming after the last key can produce either.
        let Some(bounds) = range.as_bounds() else {
            self.exhausted = true;
            return;
        };
        let mut items = Vec::new();
        let mut examined = 0;
        let mut last = None;
        {
            let map = self.table.read();
            for (key, versions) in map.range::<[u8], _>(bounds) {
                match self.mode {
                    Mode::Visible(snapshot) => {
                        if let Some(entry) = versions.visible(snapshot, self.stamp_limit) {
                            items.push((key.clone(), entry.clone()));
                        }
                    }
                    Mode::All => items.extend(
                        versions
                            .distinct(self.stamp_limit)
                            .map(|entry| (key.clone(), entry.clone())),
                    ),
                }
                examined += 1;
                if examined == CHUNK {
                    last = Some(key.clone());
                    break;
                }
            }
        }
        match last {
            Some(key) => self.next_start = Bound::Excluded(key),
            None => self.exhausted = true,
        }
        self.buffer = items.into_iter();
    }
}

impl<M: Deref<Target = Memtable>> Iterator for Cursor<M> {
    type Item = (Key, Entry);

    fn next(&mut self) -> Option<(Key, Entry)> {
        loop {
            if let Some(item) = self.buffer.next() {
                return Some(item);
            }
            if self.exhausted {
                return None;
            }
            self.refill();
        }
    }
}

/// A scan of a [`Memtable`]: ascending keys, each once with its newest version at the scan's
/// snapshot. Returned by [`Memtable::scan`] and
/// [`FrozenMemtable::scan`](crate::FrozenMemtable::scan).
pub struct Scan<'a>(Cursor<&'a Memtable>);

impl<'a> Scan<'a> {
    pub(crate) fn new(cursor: Cursor<&'a Memtable>) -> Self {
        Scan(cursor)
    }
}

impl Iterator for Scan<'_> {
    type Item = (Key, Entry);

    fn next(&mut self) -> Option<(Key, Entry)> {
        self.0.next()
    }
}

impl std::fmt::Debug for Scan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan")
            .field("mode", &self.0.mode)
            .field("exhausted", &self.0.exhausted)
            .finish()
    }
}
