//! Degraded operation: where writes go while the log or the warm tier is failing.
//!
//! Two levels:
//!
//! - **read-only** ([`DegradationLevel::ReadOnly`]): the warm tier's writes (flushes) fail, so
//!   the hot tier cannot drain; new logged writes are held back rather than piling up in it;
//! - **in-memory** ([`DegradationLevel::InMemory`]): the log fails.
//!
//! In both, a write at MEDIUM or above is acknowledged as *not durable* and kept in two places:
//! the **replay queue**, every change in arrival order (bounded in changes, default 10,000), and
//! the **fallback cache**, the newest queued version of each key (bounded in keys, default
//! 1,000), which reads consult before any tier. A write that would overflow either is refused
//! with an error; nothing already accepted is ever dropped, because an evicted fallback entry
//! would let a read return a version older than one acknowledged.
//!
//! Recovery drains the queue in order, in batches of at most 100 changes (a write's changes
//! stay together), each batch one log append. A batch leaves the queue only once the log has
//! taken it, so a failed append keeps it for the next attempt and nothing is logged twice.
//! New writes keep joining the queue until it is empty, which keeps their order.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use crate::error::Error;
use crate::range::KeyRange;
use crate::types::{Change, Criticality, Entry, Key};

/// How far the store has fallen back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DegradationLevel {
    /// Every tier works.
    #[default]
    Normal,
    /// Level 1: the warm tier's writes fail.
    ReadOnly,
    /// Level 2: the log fails.
    InMemory,
}

impl DegradationLevel {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            DegradationLevel::Normal => "normal",
            DegradationLevel::ReadOnly => "read-only",
            DegradationLevel::InMemory => "in-memory",
        }
    }
}

impl fmt::Display for DegradationLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a recovery attempt did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Changes moved from the replay queue into the log.
    pub drained: usize,
    /// Changes still queued.
    pub remaining: usize,
    /// The level afterwards.
    pub level: DegradationLevel,
    /// Why draining stopped early, if it did.
    pub stopped_by: Option<String>,
}

/// One accepted write waiting for the log.
#[derive(Debug)]
pub(crate) struct Queued {
    pub id: u64,
    pub changes: Vec<(Criticality, Change)>,
}

/// The replay queue, the fallback cache and the level, all changed under one lock.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    queue: VecDeque<Queued>,
    queued_changes: usize,
    /// Newest queued version of each key, with the id of the write that queued it.
    fallback: HashMap<Key, (Entry, u64)>,
    next_id: u64,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn queued_changes(&self) -> usize {
        self.queued_changes
    }

    pub fn fallback_len(&self) -> usize {
        self.fallback.len()
    }

    /// The newest queued version of every key in `range`, in key order.
    pub fn entries_in(&self, range: &KeyRange) -> Vec<(Key, Entry)> {
        let mut found: Vec<(Key, Entry)> = self
            .fallback
            .iter()
            .filter(|(key, _)| range.contains(key.as_bytes()))
            .map(|(key, (entry, _))| (key.clone(), entry.clone()))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    pub fn lookup(&self, key: &[u8]) -> Option<&Entry> {
        self.fallback.get(key).map(|(entry, _)| entry)
    }

    /// Queues a write, or refuses it whole when a bound would be passed.
    pub fn admit(
        &mut self,
        changes: Vec<(Criticality, Change)>,
        queue_capacity: usize,
        fallback_capacity: usize,
    ) -> Result<(), Error> {
        let Some(first) = changes.first().map(|(_, c)| c.key.clone()) else {
            return Ok(());
        };
        if self.queued_changes + changes.len() > queue_capacity {
            return Err(Error::ReplayQueueFull {
                key: first,
                capacity: queue_capacity,
            });
        }
        let mut new_keys: Vec<&Key> = changes
            .iter()
            .map(|(_, c)| &c.key)
            .filter(|k| !self.fallback.contains_key(*k))
            .collect();
        new_keys.sort();
        new_keys.dedup();
        if self.fallback.len() + new_keys.len() > fallback_capacity {
            return Err(Error::FallbackFull {
                key: first,
                capacity: fallback_capacity,
            });
        }
        let id = self.next_id;
        self.next_id += 1;
        for (_, change) in &changes {
            self.fallback
                .insert(change.key.clone(), (change.entry.clone(), id));
        }
        self.queued_changes += changes.len();
        self.queue.push_back(Queued { id, changes });
        Ok(())
    }

    /// How many writes from the front make up the next drain batch: whole writes, at most
    /// `max_changes` changes unless the first write alone is larger.
    pub fn next_batch(&self, max_changes: usize) -> usize {
        let mut writes = 0;
        let mut changes = 0;
        for queued in &self.queue {
            if writes > 0 && changes + queued.changes.len() > max_changes {
                break;
            }
            writes += 1;
            changes += queued.changes.len();
        }
        writes
    }

    /// The first `writes` queued writes.
    pub fn front(&self, writes: usize) -> impl Iterator<Item = &Queued> {
        self.queue.iter().take(writes)
    }

    /// Drops the first `writes` queued writes once the log holds them, and their fallback
    /// entries unless a later write replaced them.
    pub fn pop_front(&mut self, writes: usize) {
        for _ in 0..writes {
            let Some(queued) = self.queue.pop_front() else {
                return;
            };
            self.queued_changes -= queued.changes.len();
            for (_, change) in &queued.changes {
                if self
                    .fallback
                    .get(&change.key)
                    .is_some_and(|(_, id)| *id == queued.id)
                {
                    self.fallback.remove(&change.key);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> (Criticality, Change) {
        (
            Criticality::Medium,
            Change::put(Key::new(key).unwrap(), 0, value),
        )
    }

    #[test]
    fn bounds_refuse_whole_writes() {
        let mut p = Pending::default();
        p.admit(vec![put("a", "1"), put("b", "1")], 3, 2).unwrap();
        assert!(matches!(
            p.admit(vec![put("a", "2"), put("b", "2")], 3, 2),
            Err(Error::ReplayQueueFull { capacity: 3, .. })
        ));
        match p.admit(vec![put("c", "1")], 3, 2) {
            Err(e @ Error::FallbackFull { .. }) => {
                assert!(e.to_string().contains("`c`"), "{e}");
            }
            other => panic!("expected FallbackFull, got {other:?}"),
        }
        // Known keys need no new fallback slot.
        p.admit(vec![put("a", "2")], 3, 2).unwrap();
        assert_eq!((p.queued_changes(), p.fallback_len()), (3, 2));
        assert_eq!(p.lookup(b"a").and_then(|e| e.value()), Some(&"2".into()));
    }

    #[test]
    fn batches_keep_writes_whole_and_pop_keeps_newer_fallback() {
        let mut p = Pending::default();
        p.admit(vec![put("a", "1"), put("b", "1")], 100, 100)
            .unwrap();
        p.admit(vec![put("a", "2")], 100, 100).unwrap();
        p.admit(vec![put("c", "1"), put("d", "1"), put("e", "1")], 100, 100)
            .unwrap();
        assert_eq!(p.next_batch(3), 2);
        assert_eq!(p.next_batch(1), 1);
        p.pop_front(1);
        // `a` was queued again by the second write, so it stays in the fallback.
        assert_eq!(p.lookup(b"a").and_then(|e| e.value()), Some(&"2".into()));
        assert!(p.lookup(b"b").is_none());
        assert_eq!(p.next_batch(2), 1);
        p.pop_front(2);
        assert!(p.is_empty());
        assert_eq!((p.queued_changes(), p.fallback_len()), (0, 0));
    }
}
