//! `MemoryTier`: the reference implementation of [`Tier`].
//!
//! It keeps every version of every key in ordered maps under one lock and never forgets
//! anything. That makes it too simple for production (no eviction, no pruning of old versions)
//! but easy to trust: it is the model the conformance suite is written against, and a stand-in
//! tier for testing the Router.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::Error;
use crate::range::KeyRange;
use crate::tier::{EntryIter, Health, Tier, TierStats};
use crate::types::{Change, Entry, Key, SeqNo};

/// Bookkeeping cost charged per version in [`TierStats::bytes`], on top of the value's bytes.
const VERSION_OVERHEAD: u64 = (std::mem::size_of::<Entry>() + std::mem::size_of::<SeqNo>()) as u64;

/// An in-memory [`Tier`] holding every version applied to it.
///
/// A version applied with a seqno the tier already holds for that key replaces the held one.
pub struct MemoryTier {
    name: String,
    state: RwLock<State>,
    // Reads run concurrently under the read lock, so their counters cannot live in `State`.
    reads: AtomicU64,
    writes: AtomicU64,
}

/// Everything guarded by the lock. Counters that describe the contents live here so they change
/// in the same critical section as the maps and never disagree with them.
#[derive(Default)]
struct State {
    /// key → seqno → version; the last entry of the inner map is the newest version.
    keys: BTreeMap<Key, BTreeMap<SeqNo, Entry>>,
    versions: u64,
    live_keys: u64,
    bytes: u64,
}

impl State {
    fn insert(&mut self, change: &Change) {
        let entry = &change.entry;
        let versions = match self.keys.get_mut(change.key.as_bytes()) {
            Some(versions) => versions,
            None => {
                self.bytes = self
                    .bytes
                    .saturating_add(change.key.as_bytes().len() as u64);
                self.keys.entry(change.key.clone()).or_default()
            }
        };
        let was_live = newest_is_value(versions);
        match versions.insert(entry.seqno, entry.clone()) {
            Some(replaced) => self.bytes = self.bytes.saturating_sub(version_bytes(&replaced)),
            None => self.versions = self.versions.saturating_add(1),
        }
        self.bytes = self.bytes.saturating_add(version_bytes(entry));
        match (was_live, newest_is_value(versions)) {
            (false, true) => self.live_keys = self.live_keys.saturating_add(1),
            (true, false) => self.live_keys = self.live_keys.saturating_sub(1),
            _ => {}
        }
    }
}

fn newest_is_value(versions: &BTreeMap<SeqNo, Entry>) -> bool {
    versions
        .last_key_value()
        .is_some_and(|(_, e)| !e.is_tombstone())
}

fn version_bytes(entry: &Entry) -> u64 {
    let value_len = entry.value().map_or(0, |v| v.len() as u64);
    value_len.saturating_add(VERSION_OVERHEAD)
}

/// The newest version at or below `snapshot`.
fn visible(versions: &BTreeMap<SeqNo, Entry>, snapshot: SeqNo) -> Option<&Entry> {
    versions.range(..=snapshot).next_back().map(|(_, e)| e)
}

impl MemoryTier {
    /// An empty tier named `memory`.
    pub fn new() -> Self {
        MemoryTier::with_name("memory")
    }

    /// An empty tier with the given name, for setups holding several.
    pub fn with_name(name: impl Into<String>) -> Self {
        MemoryTier {
            name: name.into(),
            state: RwLock::new(State::default()),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    // A poisoned lock is recovered rather than propagated: writers only change the maps through
    // `State::insert`, which cannot panic between its steps short of an allocation failure, so
    // the state behind a poisoned lock is still consistent.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryTier {
    fn default() -> Self {
        MemoryTier::new()
    }
}

impl fmt::Debug for MemoryTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read();
        f.debug_struct("MemoryTier")
            .field("name", &self.name)
            .field("keys", &state.keys.len())
            .field("versions", &state.versions)
            .finish()
    }
}

impl Tier for MemoryTier {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Entry>, Error> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let state = self.read();
        Ok(state
            .keys
            .get(key)
            .and_then(|versions| visible(versions, snapshot))
            .cloned())
    }

    fn apply(&self, batch: &[Change]) -> Result<(), Error> {
        // One write lock for the whole batch is what makes it all-or-nothing for readers.
        let mut state = self.write();
        for change in batch {
            state.insert(change);
        }
        drop(state);
        self.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Collects the visible entries of the range into a vector under the read lock and returns an
    /// iterator over it. That costs memory proportional to the range, but gives a consistent view
    /// without holding the lock while the caller iterates.
    fn scan(&self, range: &KeyRange, snapshot: SeqNo) -> Result<EntryIter<'_>, Error> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let Some(bounds) = range.as_bounds() else {
            return Ok(Box::new(std::iter::empty()));
        };
        let state = self.read();
        let items: Vec<Result<(Key, Entry), Error>> = state
            .keys
            .range::<[u8], _>(bounds)
            .filter_map(|(key, versions)| {
                visible(versions, snapshot).map(|e| Ok((key.clone(), e.clone())))
            })
            .collect();
        Ok(Box::new(items.into_iter()))
    }

    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }

    fn health(&self) -> Health {
        Health::Healthy
    }

    fn stats(&self) -> TierStats {
        let state = self.read();
        TierStats {
            entries: state.versions,
            live_keys: Some(state.live_keys),
            bytes: state.bytes,
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::types::LATEST;
    use std::sync::Arc;

    fn k(b: &[u8]) -> Key {
        Key::new(b).unwrap()
    }

    #[test]
    fn stats_track_versions_live_keys_and_bytes() {
        let tier = MemoryTier::new();
        assert_eq!(
            tier.stats(),
            TierStats {
                live_keys: Some(0),
                ..TierStats::default()
            }
        );

        tier.apply(&[
            Change::put(k(b"a"), 1, "xx"),
            Change::put(k(b"a"), 2, "yyy"),
            Change::put(k(b"b"), 3, "z"),
        ])
        .unwrap();
        let s = tier.stats();
        assert_eq!((s.entries, s.live_keys, s.writes), (3, Some(2), 3));
        assert_eq!(s.bytes, 2 + (2 + 3 + 1) + 3 * VERSION_OVERHEAD);

        tier.apply(&[Change::delete(k(b"a"), 4)]).unwrap();
        let s = tier.stats();
        assert_eq!((s.entries, s.live_keys), (4, Some(1)));

        // An older value applied late does not revive a deleted key.
        tier.apply(&[Change::put(k(b"a"), 0, "old")]).unwrap();
        assert_eq!(tier.stats().live_keys, Some(1));

        // Replacing a version at the same seqno swaps its bytes rather than adding a version.
        let before = tier.stats();
        tier.apply(&[Change::put(k(b"b"), 3, "zzzz")]).unwrap();
        let after = tier.stats();
        assert_eq!(after.entries, before.entries);
        assert_eq!(after.bytes, before.bytes + 3);

        tier.get(b"a", LATEST).unwrap();
        tier.scan(&KeyRange::all(), LATEST).unwrap().for_each(drop);
        assert_eq!(tier.stats().reads, 2);
    }

    #[test]
    fn empty_range_scan_is_empty() {
        let tier = MemoryTier::new();
        tier.apply(&[Change::put(k(b"a"), 1, "v")]).unwrap();
        let inverted = KeyRange::new(
            std::ops::Bound::Included(k(b"b")),
            std::ops::Bound::Included(k(b"a")),
        );
        assert_eq!(tier.scan(&inverted, LATEST).unwrap().count(), 0);
    }

    #[test]
    fn survives_a_poisoned_lock() {
        let tier = Arc::new(MemoryTier::new());
        tier.apply(&[Change::put(k(b"a"), 1, "v")]).unwrap();
        let poisoner = Arc::clone(&tier);
        let joined = std::thread::spawn(move || {
            let _guard = poisoner.state.write().unwrap();
            panic!("poison the lock");
        })
        .join();
        assert!(joined.is_err());
        assert!(tier.state.is_poisoned());

        assert_eq!(tier.get(b"a", LATEST).unwrap(), Some(Entry::put(1, "v")));
        tier.apply(&[Change::put(k(b"b"), 2, "w")]).unwrap();
        assert_eq!(tier.scan(&KeyRange::all(), LATEST).unwrap().count(), 2);
        assert_eq!(tier.stats().entries, 2);
    }

    #[test]
    fn name_and_debug() {
        assert_eq!(MemoryTier::default().name(), "memory");
        let tier = MemoryTier::with_name("hot-test");
        assert_eq!(tier.name(), "hot-test");
        assert!(format!("{tier:?}").contains("hot-test"));
    }
}
