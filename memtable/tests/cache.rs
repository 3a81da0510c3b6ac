//! The hot cache: bounds, pinned entries under pressure, CLOCK order, a model of what it may
//! return, and use from several threads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Barrier;

use proptest::prelude::*;
use strata_memtable::{CacheConfig, HotCache, InsertOutcome};
use strata_tiering::{Entry, ErrorKind, Key, SeqNo};

fn k(b: &[u8]) -> Key {
    Key::new(b).unwrap()
}

fn cache(max_bytes: u64, max_items: u64) -> HotCache {
    HotCache::with_config(CacheConfig {
        max_bytes,
        max_items,
    })
}

fn assert_within_bounds(cache: &HotCache) {
    let stats = cache.stats();
    let config = cache.config();
    assert!(
        stats.bytes <= config.max_bytes && stats.items <= config.max_items,
        "{stats:?} over {config:?}"
    );
}

#[test]
fn defaults() {
    let config = HotCache::new().config();
    assert_eq!(config.max_bytes, 256 << 20);
    assert_eq!(config, CacheConfig::default());
}

#[test]
fn byte_limit_holds_with_values_of_every_size() {
    let max_bytes = 10_000;
    let cache = cache(max_bytes, u64::MAX);
    for i in 0..2_000u64 {
        let len = (i * 37 % 1_500) as usize;
        let outcome = cache
            .insert(k(&i.to_be_bytes()), Entry::put(i, vec![7; len]), true)
            .unwrap();
        assert_eq!(outcome, InsertOutcome::Stored);
        assert_within_bounds(&cache);
    }
    assert!(cache.stats().evictions > 0);
    // An entry larger than the whole cache is refused, and evicts nothing for it.
    let before = cache.len();
    let huge = Entry::put(5_000, vec![0; max_bytes as usize]);
    assert_eq!(
        cache.insert(k(b"huge"), huge, true).unwrap(),
        InsertOutcome::Refused
    );
    assert_eq!(cache.len(), before);
}

#[test]
fn item_limit_holds() {
    let cache = cache(u64::MAX, 50);
    for i in 0..1_000u64 {
        let pinned = i % 10 == 0;
        match cache.insert(k(&i.to_be_bytes()), Entry::put(i, "v"), !pinned) {
            // Once 50 pinned entries fill the cache (the last at 490), evictable ones are refused.
            Ok(outcome) if !pinned => {
                let want = if i < 490 {
                    InsertOutcome::Stored
                } else {
                    InsertOutcome::Refused
                };
                assert_eq!(outcome, want, "insert {i}");
            }
            Ok(outcome) => {
                assert!(i < 500, "pinned entry {i} accepted beyond the item limit");
                assert_eq!(outcome, InsertOutcome::Stored);
            }
            Err(e) => {
                assert!(pinned && i >= 500, "insert {i}: {e}");
                assert_eq!(e.kind(), ErrorKind::Full);
            }
        }
        assert_within_bounds(&cache);
    }
    let stats = cache.stats();
    assert_eq!(stats.items, 50);
    // Every pinned entry that fitted is still there: inserts 0, 10, ... 490 were pinned and
    // accepted; from 500 on, the pinned ones no longer fit beside them and were refused.
    assert_eq!(stats.pinned_items, 50);
    for i in (0..500u64).step_by(10) {
        assert!(cache.contains(&i.to_be_bytes()), "pinned entry {i} lost");
    }
}

#[test]
fn pinned_entries_survive_any_pressure() {
    let entry_bytes = HotCache::charge(&k(b"pin-00"), &Entry::put(1, vec![0; 100]));
    let cache = cache(20 * entry_bytes, u64::MAX);
    for i in 0..10u64 {
        let key = k(format!("pin-{i:02}").as_bytes());
        let outcome = cache.insert(key, Entry::put(i, vec![0; 100]), false);
        assert_eq!(outcome.unwrap(), InsertOutcome::Stored);
    }
    // A flood of evictable entries, read as they go, so the hand meets referenced bits too.
    for i in 0..10_000u64 {
        let key = k(format!("flood-{i}").as_bytes());
        let _ = cache
            .insert(key.clone(), Entry::put(100 + i, vec![1; 100]), true)
            .unwrap();
        if i % 3 == 0 {
            cache.get(key.as_bytes());
        }
        assert_within_bounds(&cache);
    }
    for i in 0..10u64 {
        let got = cache.get(format!("pin-{i:02}").as_bytes());
        assert_eq!(got.map(|e| e.seqno), Some(i), "pinned entry {i}");
    }

    // Fill the rest with pinned entries: then evictable inserts are refused, and a pinned
    // insert that does not fit is an error, not a loss.
    for i in 10..20u64 {
        let key = k(format!("pin-{i:02}").as_bytes());
        let outcome = cache.insert(key, Entry::put(i, vec![0; 100]), false);
        assert_eq!(outcome.unwrap(), InsertOutcome::Stored);
    }
    assert_eq!(cache.stats().pinned_items, 20);
    assert_eq!(cache.len(), 20);
    let refused = cache.insert(k(b"late"), Entry::put(50_000, "v"), true);
    assert_eq!(refused.unwrap(), InsertOutcome::Refused);
    let error = cache
        .insert(k(b"pin-20"), Entry::put(20, vec![0; 100]), false)
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Full);
    assert!(error.to_string().contains("hot-cache"), "{error}");
    assert_eq!(cache.len(), 20);

    // Removing a pinned entry makes room again.
    assert!(cache.remove(b"pin-00").is_some());
    let outcome = cache.insert(k(b"pin-20"), Entry::put(20, vec![0; 100]), false);
    assert_eq!(outcome.unwrap(), InsertOutcome::Stored);
}

#[test]
fn clock_keeps_the_entries_that_are_read() {
    let cache = cache(u64::MAX, 100);
    let hot: Vec<Key> = (0..20u64)
        .map(|i| k(format!("hot-{i}").as_bytes()))
        .collect();
    for key in &hot {
        let _ = cache.insert(key.clone(), Entry::put(1, "v"), true).unwrap();
    }
    // A long stream of one-off entries, while the hot set keeps being read.
    for i in 0..5_000u64 {
        let _ = cache
            .insert(k(format!("cold-{i}").as_bytes()), Entry::put(2, "v"), true)
            .unwrap();
        for key in &hot {
            cache.get(key.as_bytes());
        }
    }
    for key in &hot {
        assert!(cache.contains(key.as_bytes()), "{key} was evicted");
    }
    assert_eq!(cache.len(), 100);
}

#[test]
fn clock_evicts_unread_entries_in_insertion_order() {
    let cache = cache(u64::MAX, 4);
    for key in [b"a", b"b", b"c", b"d"] {
        let _ = cache.insert(k(key), Entry::put(1, "v"), true).unwrap();
    }
    cache.get(b"b");
    let _ = cache.insert(k(b"e"), Entry::put(1, "v"), true).unwrap();
    let _ = cache.insert(k(b"f"), Entry::put(1, "v"), true).unwrap();
    // `a` went first, `b` was spared once (it had been read), so `c` went next.
    let held: Vec<&str> = ["a", "b", "c", "d", "e", "f"]
        .into_iter()
        .filter(|key| cache.contains(key.as_bytes()))
        .collect();
    assert_eq!(held, vec!["b", "d", "e", "f"]);
    assert_eq!(cache.stats().evictions, 2);
}

#[test]
fn stats_count_hits_misses_and_bytes() {
    let cache = HotCache::new();
    let entry = Entry::put(1, "value");
    let _ = cache.insert(k(b"key"), entry.clone(), true).unwrap();
    assert_eq!(cache.get(b"key"), Some(entry.clone()));
    assert_eq!(cache.get(b"nope"), None);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.items), (1, 1, 1));
    assert_eq!(stats.bytes, HotCache::charge(&k(b"key"), &entry));
    assert_eq!(cache.bytes(), stats.bytes);
    cache.remove(b"key");
    assert_eq!((cache.bytes(), cache.len()), (0, 0));
}

#[test]
fn concurrent_use_keeps_bounds_and_pinned_entries() {
    const THREADS: u64 = 4;
    const OPS: u64 = 5_000;
    let cache = cache(40_000, 200);
    let start = Barrier::new(THREADS as usize);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (cache, start) = (&cache, &start);
            s.spawn(move || {
                // Each thread pins a few keys of its own and churns through shared ones.
                for p in 0..5u64 {
                    let key = k(format!("pin-{t}-{p}").as_bytes());
                    let outcome = cache.insert(key, Entry::put(p, "pinned"), false);
                    assert_eq!(outcome.unwrap(), InsertOutcome::Stored);
                }
                start.wait();
                for i in 0..OPS {
                    let key = k(format!("shared-{}", (i * 7 + t) % 500).as_bytes());
                    let seqno = i * THREADS + t;
                    match i % 4 {
                        0 | 1 => {
                            let _ = cache
                                .insert(key, Entry::put(seqno, vec![0; (i % 200) as usize]), true)
                                .unwrap();
                        }
                        2 => {
                            if let Some(entry) = cache.get(key.as_bytes()) {
                                assert!(entry.value().is_some());
                            }
                        }
                        _ => {
                            cache.invalidate(key.as_bytes(), seqno);
                        }
                    }
                    let stats = cache.stats();
                    assert!(stats.bytes <= 40_000 && stats.items <= 200, "{stats:?}");
                }
            });
        }
    });
    for t in 0..THREADS {
        for p in 0..5u64 {
            let got = cache.get(format!("pin-{t}-{p}").as_bytes());
            assert_eq!(got, Some(Entry::put(p, "pinned")));
        }
    }
    assert_eq!(cache.stats().pinned_items, THREADS * 5);
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u8, SeqNo, u16, bool),
    Get(u8),
    Remove(u8),
    Invalidate(u8, SeqNo),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..16u8, 0..50u64, 0..400u16, prop::bool::weighted(0.2))
            .prop_map(|(k, s, len, pin)| Op::Insert(k, s, len, !pin)),
        3 => (0..16u8).prop_map(Op::Get),
        1 => (0..16u8).prop_map(Op::Remove),
        1 => (0..16u8, 0..50u64).prop_map(|(k, s)| Op::Invalidate(k, s)),
    ]
}

proptest! {
    /// What the cache may return, against a model of what it must: a hit is always the newest
    /// version stored for the key and never a stale one; a pinned entry is always there until
    /// removed, invalidated or superseded; the bounds always hold.
    #[test]
    fn cache_never_serves_stale_nor_loses_pinned(
        ops in prop::collection::vec(op(), 1..300),
        max_bytes in 200..3_000u64,
        max_items in 1..12u64,
    ) {
        let cache = cache(max_bytes, max_items);
        // key → (newest entry the cache accepted, pinned)
        let mut model: HashMap<u8, (Entry, bool)> = HashMap::new();
        for op in ops {
            match op {
                Op::Insert(key, seqno, len, evictable) => {
                    let entry = Entry::put(seqno, vec![key; usize::from(len)]);
                    let held = model.get(&key).map(|(e, _)| e.seqno);
                    match cache.insert(k(&[key]), entry.clone(), evictable) {
                        Ok(InsertOutcome::Stored) => {
                            prop_assert!(held.is_none_or(|h| seqno >= h));
                            model.insert(key, (entry, !evictable));
                        }
                        Ok(InsertOutcome::Stale) => {
                            prop_assert!(held.is_some_and(|h| seqno < h));
                        }
                        refused => {
                            match refused {
                                Ok(outcome) => {
                                    prop_assert_eq!(outcome, InsertOutcome::Refused);
                                    prop_assert!(evictable);
                                }
                                Err(e) => {
                                    prop_assert_eq!(e.kind(), ErrorKind::Full);
                                    prop_assert!(!evictable);
                                }
                            }
                            prop_assert!(held.is_none_or(|h| seqno >= h));
                            // A refused insert drops an older evictable version but keeps a
                            // pinned one.
                            if model.get(&key).is_some_and(|(_, pinned)| !pinned) {
                                model.remove(&key);
                            }
                        }
                    }
                }
                Op::Get(key) => {
                    let got = cache.get(&[key]);
                    match model.get(&key) {
                        Some((entry, true)) => prop_assert_eq!(got.as_ref(), Some(entry)),
                        Some((entry, false)) => {
                            prop_assert!(got.is_none() || got.as_ref() == Some(entry));
                        }
                        None => prop_assert_eq!(got, None),
                    }
                }
                Op::Remove(key) => {
                    let got = cache.remove(&[key]);
                    if let Some((entry, true)) = model.get(&key) {
                        prop_assert_eq!(got.as_ref(), Some(entry));
                    }
                    model.remove(&key);
                }
                Op::Invalidate(key, seqno) => {
                    let removed = cache.invalidate(&[key], seqno);
                    if let Some((entry, pinned)) = model.get(&key).cloned() {
                        if entry.seqno < seqno {
                            model.remove(&key);
                        } else {
                            prop_assert!(!removed);
                        }
                        if pinned {
                            prop_assert_eq!(removed, entry.seqno < seqno);
                        }
                    } else {
                        prop_assert!(!removed);
                    }
                }
            }
            // Evicted entries leave the model too, so later gets expect a miss.
            model.retain(|key, (_, pinned)| *pinned || cache.contains(&[*key]));
            let stats = cache.stats();
            prop_assert!(stats.bytes <= max_bytes && stats.items <= max_items);
            let pinned = model.values().filter(|(_, p)| *p).count() as u64;
            prop_assert_eq!(stats.pinned_items, pinned);
        }
    }
}
