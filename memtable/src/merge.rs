//! Merging the scans of several memtables into one.

use std::iter::Peekable;

use strata_tiering::{Entry, Key, SeqNo};

/// Merges sorted, per-key-unique streams of `(key, newest visible version)` into one.
///
/// Where several streams hold a key, the version with the highest seqno wins, whichever memtable
/// it came from: a version may reach the active memtable after a newer one was frozen (log replay,
/// a fill from below). On equal seqnos the earlier stream wins, so sources are passed newest
/// memtable first.
pub(crate) struct Merge<I: Iterator<Item = (Key, Entry)>> {
    sources: Vec<Peekable<I>>,
}

impl<I: Iterator<Item = (Key, Entry)>> Merge<I> {
    pub(crate) fn new(sources: impl IntoIterator<Item = I>) -> Self {
        Merge {
            sources: sources.into_iter().map(Iterator::peekable).collect(),
        }
    }
}

impl<I: Iterator<Item = (Key, Entry)>> Iterator for Merge<I> {
    type Item = (Key, Entry);

    fn next(&mut self) -> Option<(Key, Entry)> {
        // A handful of sources (the active memtable and the few frozen ones awaiting a flush):
        // a linear pass over the heads beats a heap here.
        let mut best: Option<(usize, &Key, SeqNo)> = None;
        for (i, source) in self.sources.iter_mut().enumerate() {
            let Some((key, entry)) = source.peek() else {
                continue;
            };
            let better = match &best {
                None => true,
                Some((_, best_key, best_seqno)) => {
                    key < *best_key || (key == *best_key && entry.seqno > *best_seqno)
                }
            };
            if better {
                best = Some((i, key, entry.seqno));
            }
        }
        let (winner, key, _) = best?;
        let key = key.clone();
        let mut item = None;
        for (i, source) in self.sources.iter_mut().enumerate() {
            if source.peek().is_some_and(|(k, _)| *k == key) {
                let taken = source.next();
                if i == winner {
                    item = taken;
                }
            }
        }
        item
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn item(k: &str, seqno: u64) -> (Key, Entry) {
        (Key::new(k).unwrap(), Entry::put(seqno, k))
    }

    #[test]
    fn highest_seqno_wins_and_ties_go_to_the_first_source() {
        let newest = vec![item("a", 5), item("c", 1), item("d", 7)];
        let older = vec![item("a", 3), item("b", 2), item("c", 9), item("d", 7)];
        let oldest = vec![item("e", 1)];
        let mut tie = older.clone();
        tie[3].1 = Entry::put(7, "older-d");
        let merged: Vec<(Key, Entry)> =
            Merge::new([newest.into_iter(), tie.into_iter(), oldest.into_iter()]).collect();
        assert_eq!(
            merged,
            vec![
                item("a", 5),
                item("b", 2),
                item("c", 9),
                item("d", 7),
                item("e", 1)
            ]
        );
    }

    #[test]
    fn no_sources() {
        let merged = Merge::<std::vec::IntoIter<(Key, Entry)>>::new([]);
        assert_eq!(merged.count(), 0);
    }
}
