//! The versions of one key inside a memtable.
//!
//! Versions are ordered by seqno, newest first; two versions with the same seqno (a rewrite of a
//! version with different content, which a well-behaved log never produces but a tier must
//! tolerate) are ordered by commit stamp, newest first, and the older one stays until the
//! memtable is dropped. Keeping it, rather than replacing it in place, is what lets a scan that
//! started before the rewrite keep seeing the version it started with.

use strata_tiering::{Entry, SeqNo};

/// A commit stamp: the memtable-internal number of the batch a version arrived in.
///
/// Stamps are handed out in commit order, unlike seqnos, which may arrive in any order. A reader
/// that has fixed the highest committed stamp ignores every version with a higher one, which is
/// what makes a batch atomic for scans that release the lock between chunks.
pub(crate) type Stamp = u64;

/// One stored version.
#[derive(Clone, Debug)]
pub(crate) struct Version {
    pub(crate) entry: Entry,
    pub(crate) stamp: Stamp,
}

impl Version {
    fn seqno(&self) -> SeqNo {
        self.entry.seqno
    }
}

/// Every version of one key, newest first.
///
/// The newest version lives inline so that a point read, the hot path, finds it without
/// following a second pointer; `older` allocates only once a key has a second version.
#[derive(Clone, Debug)]
pub(crate) struct Versions {
    newest: Version,
    older: Vec<Version>,
}

impl Versions {
    pub(crate) fn new(first: Version) -> Self {
        Versions {
            newest: first,
            older: Vec::new(),
        }
    }

    /// All versions, newest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Version> {
        std::iter::once(&self.newest).chain(self.older.iter())
    }

    /// Adds `version`, whose stamp must be higher than every stamp already held.
    ///
    /// Returns `false`, and changes nothing, when the newest version with the same seqno has the
    /// same content: replaying a log over the memtable must not grow it.
    pub(crate) fn insert(&mut self, version: Version) -> bool {
        let seqno = version.seqno();
        // The first position whose seqno is not above the new one: the new version goes before it,
        // ahead of any same-seqno version because its stamp is higher.
        let position = self.iter().position(|v| v.seqno() <= seqno);
        if let Some(p) = position {
            let at = self.at(p);
            if at.seqno() == seqno && at.entry == version.entry {
                return false;
            }
        }
        match position {
            Some(0) => {
                let previous = std::mem::replace(&mut self.newest, version);
                self.older.insert(0, previous);
            }
            Some(p) => self.older.insert(p - 1, version),
            None => self.older.push(version),
        }
        true
    }

    fn at(&self, index: usize) -> &Version {
        match index.checked_sub(1) {
            None => &self.newest,
            // Only called with positions found by `iter`, so the index is in bounds; fall back
            // to the newest version rather than panic if that ever changed.
            Some(i) => self.older.get(i).unwrap_or(&self.newest),
        }
    }

    /// The newest version with `seqno <= snapshot` among those committed by `stamp_limit`.
    pub(crate) fn visible(&self, snapshot: SeqNo, stamp_limit: Stamp) -> Option<&Entry> {
        self.iter()
            .find(|v| v.seqno() <= snapshot && v.stamp <= stamp_limit)
            .map(|v| &v.entry)
    }

    /// The versions a flush writes: every distinct seqno once, with its newest content, newest
    /// first, among those committed by `stamp_limit`.
    pub(crate) fn distinct(&self, stamp_limit: Stamp) -> impl Iterator<Item = &Entry> {
        let mut last: Option<SeqNo> = None;
        self.iter()
            .filter(move |v| v.stamp <= stamp_limit)
            .filter(move |v| {
                let fresh = last != Some(v.seqno());
                last = Some(v.seqno());
                fresh
            })
            .map(|v| &v.entry)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn v(seqno: SeqNo, value: &str, stamp: Stamp) -> Version {
        Version {
            entry: Entry::put(seqno, value),
            stamp,
        }
    }

    fn seqnos(versions: &Versions) -> Vec<(SeqNo, Stamp)> {
        versions.iter().map(|v| (v.seqno(), v.stamp)).collect()
    }

    #[test]
    fn keeps_newest_first_whatever_the_arrival_order() {
        let mut vs = Versions::new(v(5, "a", 1));
        assert!(vs.insert(v(9, "b", 2)));
        assert!(vs.insert(v(1, "c", 3)));
        assert!(vs.insert(v(7, "d", 4)));
        assert_eq!(seqnos(&vs), vec![(9, 2), (7, 4), (5, 1), (1, 3)]);
    }

    #[test]
    fn identical_replay_is_skipped_but_a_rewrite_is_kept() {
        let mut vs = Versions::new(v(5, "a", 1));
        assert!(!vs.insert(v(5, "a", 2)));
        assert!(vs.insert(v(5, "b", 3)));
        assert_eq!(seqnos(&vs), vec![(5, 3), (5, 1)]);
        // The rewrite is what readers after it see; a reader fixed before it still sees "a".
        assert_eq!(vs.visible(5, Stamp::MAX), Some(&Entry::put(5, "b")));
        assert_eq!(vs.visible(5, 2), Some(&Entry::put(5, "a")));
        // Replaying the first content again is a new rewrite, not a duplicate.
        assert!(vs.insert(v(5, "a", 4)));
        assert!(!vs.insert(v(5, "a", 5)));
    }

    #[test]
    fn visibility_respects_snapshot_and_stamp() {
        let mut vs = Versions::new(v(10, "x", 1));
        vs.insert(v(20, "y", 2));
        assert_eq!(vs.visible(9, Stamp::MAX), None);
        assert_eq!(vs.visible(15, Stamp::MAX), Some(&Entry::put(10, "x")));
        assert_eq!(vs.visible(SeqNo::MAX, 1), Some(&Entry::put(10, "x")));
        assert_eq!(vs.visible(SeqNo::MAX, 0), None);
    }

    #[test]
    fn distinct_drops_shadowed_rewrites() {
        let mut vs = Versions::new(v(5, "a", 1));
        vs.insert(v(5, "b", 2));
        vs.insert(v(6, "c", 3));
        vs.insert(v(4, "d", 4));
        let all: Vec<&Entry> = vs.distinct(Stamp::MAX).collect();
        assert_eq!(
            all,
            vec![
                &Entry::put(6, "c"),
                &Entry::put(5, "b"),
                &Entry::put(4, "d")
            ]
        );
        let early: Vec<&Entry> = vs.distinct(1).collect();
        assert_eq!(early, vec![&Entry::put(5, "a")]);
    }
}
